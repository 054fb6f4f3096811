//! The admin API, answered by the filter itself under `admin.path_prefix`
//! (default `/rag-guard/admin/`) and never forwarded upstream.
//!
//! | request | answer |
//! |---|---|
//! | `GET keys` | every configured key (no secrets): status, usage, addresses in the leak window |
//! | `GET keys/expiring?days=N` | keys that expire within N days (default 7) |
//! | `POST keys/{name}/revoke` | runtime revocation, on every worker at once |
//! | `POST keys/{name}/restore` | lifts a runtime revocation |
//! | `GET console` | the admin console page (and `console/console.js`, `console/console.css`), no credential needed |
//! | `GET usage?days=N` | requests per day per key and per tier (default 7, at most `usage::DAYS`) |
//!
//! Access needs the admin secret in the `x-admin-secret` header (the
//! configuration holds only its SHA-256), or, with an `access` section, a
//! caller (API key or verified token) one of whose roles grants the request. Without an `admin` section every
//! path under the default prefix answers 404. A wrong or missing secret gets
//! 403 and a secret in the query string 400 (the secret may now sit in
//! access logs); both count as failed authentications of the client's
//! address in the failed-auth table, which blocks it with 429 like failed
//! API keys.

mod answer;
mod console;
mod dates;
mod keys;
mod query;
#[cfg(test)]
mod tests;
mod usage_report;

use crate::auth::digest::sha256;
use crate::config::{Config, DEFAULT_ADMIN_PREFIX};
use crate::http::{path_only, LocalReply};
use crate::ops::events::{loggable_path, loggable_token, SecurityEvent};
use crate::ops::usage::DAYS;
use crate::shared_store::SharedStore;

use answer::{method_not_allowed, ok};
use keys::{expiring, list_keys, restore, revoke, with_key};
use query::{days_param, query_has_secret, split_query, MAX_SECRET_BYTES};
use usage_report::usage_report;

pub use answer::{AdminAnswer, AdminRequest, AdminStatus, UsageQuery};
pub use dates::rfc3339;
pub use keys::key_event;
pub use usage_report::{cluster_usage_reply, usage_days, usage_names};

/// Longest `days=` for `keys/expiring`.
const MAX_EXPIRING_DAYS: u64 = 3650;

/// Whether `path` belongs to the admin API (configured or default prefix).
pub fn is_admin_path(config: &Config, path: &[u8]) -> bool {
    let prefix = config
        .admin
        .as_ref()
        .map_or(DEFAULT_ADMIN_PREFIX, |a| a.path_prefix.as_str());
    let path = path_only(path);
    path.starts_with(prefix.as_bytes()) || path == prefix.trim_end_matches('/').as_bytes()
}

/// Checks access and answers. The caller has already checked the client's
/// address against the failed-auth table, and records a failure when the
/// status [`AdminStatus::is_auth_failure`].
pub fn handle(
    config: &Config,
    req: &AdminRequest<'_>,
    store: &dyn SharedStore,
    now_ns: u64,
) -> AdminAnswer {
    let mut answer = answer_inner(config, req, store, now_ns);
    if !answer
        .reply
        .headers
        .iter()
        .any(|(n, _)| *n == "cache-control")
    {
        answer
            .reply
            .headers
            .push(("cache-control", "no-store".to_string()));
    }
    answer
}

fn answer_inner(
    config: &Config,
    req: &AdminRequest<'_>,
    store: &dyn SharedStore,
    now_ns: u64,
) -> AdminAnswer {
    let answer = |status, reply| AdminAnswer {
        status,
        reply,
        events: Vec::new(),
        cluster_usage: None,
    };
    let Some(admin) = &config.admin else {
        return answer(AdminStatus::Disabled, LocalReply::error(404, "Not Found"));
    };
    let (path, query) = split_query(req.path);
    if query_has_secret(query, &admin.secret_sha256) {
        return answer(
            AdminStatus::QuerySecret,
            LocalReply::error(
                400,
                "The admin secret must be sent in the x-admin-secret header, never in the query string",
            ),
        );
    }
    let route = path
        .strip_prefix(admin.path_prefix.as_bytes())
        .unwrap_or(b"");
    let route = std::str::from_utf8(route).unwrap_or("\u{fffd}");
    let segments: Vec<&str> = route.split('/').collect();
    // The console's assets hold no data: served without a credential.
    if req.method == b"GET" {
        if let Some(reply) = console::asset(&segments) {
            return answer(AdminStatus::Ok, reply);
        }
    }
    let authorized = req.by_role
        || match req.secrets {
            [one] if !one.is_empty() && one.len() <= MAX_SECRET_BYTES => {
                sha256(one) == admin.secret_sha256
            }
            _ => false,
        };
    if !authorized {
        return answer(AdminStatus::Denied, LocalReply::error(403, "Forbidden"));
    }
    let now_secs = now_ns / 1_000_000_000;
    let result = match (segments.as_slice(), req.method) {
        (["keys"], b"GET") => Ok(list_keys(config, store, now_ns)),
        (["keys", "expiring"], b"GET") => {
            days_param(query, 7, MAX_EXPIRING_DAYS).map(|d| expiring(config, now_secs, d))
        }
        (["keys", name, "revoke"], b"POST") => {
            let clustered = config.cluster.is_some();
            return with_key(config, name, |entry| {
                revoke(entry, store, now_ns / 1_000_000, req, clustered)
            });
        }
        (["keys", name, "restore"], b"POST") => {
            return with_key(config, name, |entry| {
                restore(entry, store, now_ns / 1_000_000, req)
            });
        }
        (["usage"], b"GET") => {
            let days = match days_param(query, 7, DAYS as u64) {
                Ok(days) => days,
                Err(reply) => return answer(AdminStatus::Error, reply),
            };
            let local = usage_report(config, store, now_secs, days);
            return AdminAnswer {
                cluster_usage: config
                    .cluster
                    .as_ref()
                    .map(|_| UsageQuery { now_secs, days }),
                ..answer(AdminStatus::Ok, ok(local))
            };
        }
        (["keys"] | ["keys", "expiring"] | ["usage"], _) => Err(method_not_allowed("GET")),
        (["keys", _, "revoke" | "restore"], _) => Err(method_not_allowed("POST")),
        _ => Err(LocalReply::error(404, "Not Found")),
    };
    match result {
        Ok(body) => answer(AdminStatus::Ok, ok(body)),
        Err(reply) => answer(AdminStatus::Error, reply),
    }
}

/// The `admin_access` event of an answered admin request.
pub fn access_event(
    req: &AdminRequest<'_>,
    status: AdminStatus,
    http_status: u32,
) -> SecurityEvent {
    SecurityEvent {
        event: "admin_access",
        reason: status.as_str(),
        status: Some(http_status),
        ip: req.client_ip.map(|ip| ip.to_string()),
        method: Some(loggable_token(req.method)),
        path: Some(loggable_path(req.path)),
        ..Default::default()
    }
}
