//! The request as the decision sees it, and the decision: outcome, reply,
//! headers and side effects for the adapter to apply.

use std::net::IpAddr;

use crate::auth::keys::KeyEntry;
use crate::http::LocalReply;
use crate::key_state::rate_limiter::LeakTrip;
use crate::limits::token_bucket::{BucketView, LimitKind};
use crate::ops::events::{SecurityEvent, Severity};

use super::outcome::Outcome;

/// The request as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub authority: Option<&'a [u8]>,
    /// Raw `:path`, query string included.
    pub path: &'a [u8],
    pub method: &'a [u8],
    /// Every value of the API key header, in arrival order.
    pub api_keys: &'a [&'a [u8]],
    /// The client's address, if Envoy gave one.
    pub client_ip: Option<IpAddr>,
    /// Every value of the admin secret header (read on admin paths only).
    pub admin_secrets: &'a [&'a [u8]],
    /// The request carries a method-override header (`http::METHOD_OVERRIDE_HEADERS`).
    pub method_override: bool,
    /// The JWT payload Envoy's `jwt_authn` verified and stored (read only
    /// when the `jwt` section is configured).
    pub jwt_payload: Option<&'a [u8]>,
    /// The request carries `Authorization: Bearer ...`.
    pub bearer: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'c> {
    pub outcome: Outcome,
    /// The configured key that was presented (also for expired or disabled
    /// keys, so events can name them).
    pub key: Option<&'c KeyEntry>,
    /// First 16 hex characters of the digest of a key that was presented.
    pub key_id: Option<String>,
    /// Some: answer with this instead of forwarding.
    pub reply: Option<LocalReply>,
    /// Rate-limit headers for the response (authenticated requests).
    pub response_headers: Vec<(&'static str, String)>,
    /// This request tripped leak detection.
    pub leak: Option<LeakTrip>,
    /// CAS attempts lost to other workers while spending.
    pub cas_retries: u32,
    /// Events besides the request's own (admin changes to keys).
    pub events: Vec<(Severity, SecurityEvent)>,
    /// Cluster mode: the key's minute and hour budgets must be asked of the
    /// cluster service before this decision stands (see
    /// [`cluster_limits`](super::cluster_limits)).
    pub cluster: Option<ClusterCheck>,
    /// Cluster mode: decided by this replica's buckets because the service
    /// did not answer (`failure_mode: local`).
    pub cluster_fallback: bool,
    /// Cluster mode, admin usage report: the cluster's totals are to be
    /// fetched for these days (`reply` is this replica's report meanwhile).
    pub cluster_usage: Option<crate::ops::admin::UsageQuery>,
    /// The caller of a verified JWT (`key` is None then).
    pub subject: Option<Subject>,
}

/// A caller identified by a JWT that Envoy's `jwt_authn` verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The name claim, header-safe (`x-api-key-name`).
    pub name: String,
    /// A configured tier (`x-api-key-tier`).
    pub tier: String,
}

impl<'c> Decision<'c> {
    pub fn of(outcome: Outcome) -> Self {
        Decision {
            outcome,
            key: None,
            key_id: None,
            reply: outcome.reply(),
            response_headers: Vec::new(),
            leak: None,
            cas_retries: 0,
            events: Vec::new(),
            cluster: None,
            cluster_fallback: false,
            cluster_usage: None,
            subject: None,
        }
    }

    /// The key to name in `x-api-key-name` / `x-api-key-tier` upstream:
    /// only for requests that were authenticated and are forwarded.
    pub fn forwarded_identity(&self) -> Option<&'c KeyEntry> {
        self.key.filter(|_| self.outcome == Outcome::Allowed)
    }

    /// The caller's name and tier, key or token, for events and (when the
    /// request is forwarded) the identity headers.
    pub fn caller(&self) -> Option<(&str, &str)> {
        match (self.key, &self.subject) {
            (Some(k), _) => Some((k.name.as_str(), k.tier.as_str())),
            (None, Some(s)) => Some((s.name.as_str(), s.tier.as_str())),
            (None, None) => None,
        }
    }

    /// [`caller`](Self::caller) of a request that is forwarded.
    pub fn forwarded_caller(&self) -> Option<(&str, &str)> {
        self.caller().filter(|_| self.outcome == Outcome::Allowed)
    }
}

/// What the answer of the cluster service is judged with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCheck {
    /// The route cost (the request's `hits_addend`).
    pub cost: u32,
    /// This replica's buckets' verdict, applied when the service does not
    /// answer and `failure_mode` is `local`: None admits, Some refuses on
    /// that limit after that many seconds.
    pub fallback: Option<(LimitKind, u64)>,
    /// This replica's bucket views after its spend (burst, minute, hour).
    pub views: [BucketView; 3],
}
