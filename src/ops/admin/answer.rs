//! What the admin API works with: the request as it sees it, how a request
//! ended, and the JSON replies it builds.

use std::net::IpAddr;

use serde_json::Value;

use crate::http::LocalReply;
use crate::ops::events::{SecurityEvent, Severity};

/// How an admin request ended (the metric reason and event reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminStatus {
    /// Answered (2xx).
    Ok,
    /// Wrong, missing or repeated secret: 403.
    Denied,
    /// A secret in the query string: 400.
    QuerySecret,
    /// No `admin` section: 404.
    Disabled,
    /// Authenticated, but the request was wrong (unknown path or key,
    /// bad parameter, wrong method, conflict) or a shared-data failure.
    Error,
}

impl AdminStatus {
    pub const ALL: [AdminStatus; 5] = [
        AdminStatus::Ok,
        AdminStatus::Denied,
        AdminStatus::QuerySecret,
        AdminStatus::Disabled,
        AdminStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AdminStatus::Ok => "ok",
            AdminStatus::Denied => "denied",
            AdminStatus::QuerySecret => "query_secret",
            AdminStatus::Disabled => "disabled",
            AdminStatus::Error => "error",
        }
    }

    /// Counted against the client's address like a failed API key.
    pub fn is_auth_failure(self) -> bool {
        matches!(self, AdminStatus::Denied | AdminStatus::QuerySecret)
    }
}

/// An admin request as the API sees it.
#[derive(Debug, Clone, Copy)]
pub struct AdminRequest<'a> {
    pub method: &'a [u8],
    /// Raw `:path`, query string included.
    pub path: &'a [u8],
    /// Every value of the `x-admin-secret` header.
    pub secrets: &'a [&'a [u8]],
    pub client_ip: Option<IpAddr>,
    /// The caller was authenticated (API key or verified token) and one of
    /// its roles grants this request (`access`): no secret needed.
    pub by_role: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAnswer {
    pub status: AdminStatus,
    pub reply: LocalReply,
    /// Events besides `admin_access` (key_revoked, key_restored).
    pub events: Vec<(Severity, SecurityEvent)>,
    /// Cluster mode, usage report: `reply` is this replica's report; the
    /// adapter asks the cluster service for these days and answers with
    /// [`cluster_usage_reply`](super::cluster_usage_reply) when it can.
    pub cluster_usage: Option<UsageQuery>,
}

/// The days of a usage report, to be fetched from the cluster service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageQuery {
    pub now_secs: u64,
    pub days: u64,
}

pub(super) fn ok(body: Value) -> LocalReply {
    LocalReply {
        status: 200,
        body: body.to_string().into_bytes(),
        headers: vec![("cache-control", "no-store".to_string())],
    }
}

pub(super) fn method_not_allowed(allow: &str) -> LocalReply {
    let mut reply = LocalReply::error(405, "Method Not Allowed");
    reply.headers.push(("allow", allow.to_string()));
    reply
}
