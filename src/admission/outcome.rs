//! What happened to a request: one [`Outcome`] per decision, its metric
//! labels, and the fixed reply of each refusal.

use crate::http::LocalReply;
use crate::key_state::RevokedBy;
use crate::limits::token_bucket::LimitKind;
use crate::ops::admin::AdminStatus;

/// What happened to a request. Each outcome is one metric and one event
/// reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Valid key, within its limits: forwarded.
    Allowed,
    /// Public path: forwarded without a key.
    Public,
    /// The rate-limit status endpoint, answered locally.
    RateLimitStatus,
    MissingKey,
    MultipleKeys,
    InvalidKey,
    ExpiredKey,
    DisabledKey,
    /// Revoked at runtime (admin API or leak detection): 403.
    RevokedKey(RevokedBy),
    HostRejected,
    /// A method-override header (`X-HTTP-Method-Override` and kin): 400.
    MethodOverride,
    /// Too many failed authentications from the client's address.
    AuthBlocked,
    RateLimited(LimitKind),
    /// Every CAS attempt on the key's buckets lost a race: refused.
    RateLimitContention,
    /// The filter could not do its job (no accepted configuration, a host
    /// call failed, a bucket is missing): refused, never admitted.
    Unavailable,
    /// Cluster mode, `failure_mode: deny`: the cluster service did not
    /// answer in time (or not sensibly), so the key's limits could not be
    /// checked: refused, never admitted unchecked.
    ClusterUnavailable,
    /// A request to the admin API, answered by it.
    Admin(AdminStatus),
    /// A bearer token that Envoy's `jwt_authn` did not verify, or a verified
    /// one without a usable subject: 401.
    InvalidToken,
    /// Authenticated, but none of the caller's roles grants the request: 403.
    Forbidden,
    /// A JWT subject new to the subject table, whose set is full: 429.
    SubjectTableFull,
}

impl Outcome {
    pub const ALL: [Outcome; 27] = [
        Outcome::Allowed,
        Outcome::Public,
        Outcome::RateLimitStatus,
        Outcome::MissingKey,
        Outcome::MultipleKeys,
        Outcome::InvalidKey,
        Outcome::ExpiredKey,
        Outcome::DisabledKey,
        Outcome::RevokedKey(RevokedBy::Admin),
        Outcome::RevokedKey(RevokedBy::LeakDetection),
        Outcome::HostRejected,
        Outcome::MethodOverride,
        Outcome::AuthBlocked,
        Outcome::RateLimited(LimitKind::Burst),
        Outcome::RateLimited(LimitKind::Minute),
        Outcome::RateLimited(LimitKind::Hour),
        Outcome::RateLimitContention,
        Outcome::Unavailable,
        Outcome::ClusterUnavailable,
        Outcome::Admin(AdminStatus::Ok),
        Outcome::Admin(AdminStatus::Denied),
        Outcome::Admin(AdminStatus::QuerySecret),
        Outcome::Admin(AdminStatus::Disabled),
        Outcome::Admin(AdminStatus::Error),
        Outcome::InvalidToken,
        Outcome::Forbidden,
        Outcome::SubjectTableFull,
    ];

    /// Stable name used in metrics and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Public => "public",
            Outcome::RateLimitStatus => "rate_limit_status",
            Outcome::MissingKey => "missing_key",
            Outcome::MultipleKeys => "multiple_keys",
            Outcome::InvalidKey => "invalid_key",
            Outcome::ExpiredKey => "expired_key",
            Outcome::DisabledKey => "disabled_key",
            Outcome::RevokedKey(_) => "revoked_key",
            Outcome::HostRejected => "host_rejected",
            Outcome::MethodOverride => "method_override",
            Outcome::AuthBlocked => "auth_blocked",
            Outcome::RateLimited(LimitKind::Burst) => "rate_limited_burst",
            Outcome::RateLimited(LimitKind::Minute) => "rate_limited_minute",
            Outcome::RateLimited(LimitKind::Hour) => "rate_limited_hour",
            Outcome::RateLimitContention => "rate_limited_contention",
            Outcome::Unavailable => "unavailable",
            Outcome::ClusterUnavailable => "cluster_unavailable",
            Outcome::Admin(_) => "admin",
            Outcome::InvalidToken => "invalid_token",
            Outcome::Forbidden => "forbidden",
            Outcome::SubjectTableFull => "subject_table_full",
        }
    }

    /// The `decision` label of the request metric.
    pub fn decision(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Public => "public",
            Outcome::RateLimitStatus => "status",
            Outcome::MissingKey | Outcome::MultipleKeys => "unauthenticated",
            Outcome::InvalidKey | Outcome::InvalidToken => "invalid",
            Outcome::Forbidden => "forbidden",
            Outcome::ExpiredKey => "expired",
            Outcome::DisabledKey | Outcome::RevokedKey(_) => "revoked",
            Outcome::HostRejected => "host_rejected",
            Outcome::MethodOverride => "bad_request",
            Outcome::AuthBlocked
            | Outcome::RateLimited(_)
            | Outcome::RateLimitContention
            | Outcome::SubjectTableFull => "rate_limited",
            Outcome::Unavailable | Outcome::ClusterUnavailable => "unavailable",
            Outcome::Admin(_) => "admin",
        }
    }

    /// The `reason` label of the request metric: which limit, who revoked,
    /// what went wrong.
    pub fn reason(self) -> &'static str {
        match self {
            Outcome::Allowed | Outcome::Public | Outcome::Unavailable => "none",
            Outcome::RateLimitStatus => "rate_limit_status",
            Outcome::MissingKey => "missing_key",
            Outcome::MultipleKeys => "multiple_keys",
            Outcome::InvalidKey => "invalid_key",
            Outcome::ExpiredKey => "expired_key",
            Outcome::DisabledKey => "config",
            Outcome::RevokedKey(by) => by.as_str(),
            Outcome::HostRejected => "host",
            Outcome::MethodOverride => "method_override",
            Outcome::AuthBlocked => "failed_auth",
            Outcome::RateLimited(kind) => kind.as_str(),
            Outcome::RateLimitContention => "contention",
            Outcome::ClusterUnavailable => "cluster",
            Outcome::Admin(status) => status.as_str(),
            Outcome::InvalidToken => "invalid_token",
            Outcome::Forbidden => "role",
            Outcome::SubjectTableFull => "subject_table",
        }
    }

    /// Failed authentications: counted against the client's address. A key
    /// revoked at runtime is not: after a leak-detection false positive its
    /// owner's addresses (an office NAT) must not be locked out for every
    /// key.
    pub fn is_auth_failure(self) -> bool {
        matches!(
            self,
            Outcome::MissingKey
                | Outcome::MultipleKeys
                | Outcome::InvalidKey
                | Outcome::ExpiredKey
                | Outcome::DisabledKey
                | Outcome::InvalidToken
        )
    }

    /// The fixed reply of a refusal; None for outcomes whose reply depends
    /// on the request (rate limits, the status endpoint, the admin API) or
    /// that are forwarded.
    pub fn reply(self) -> Option<LocalReply> {
        self.fixed_reply()
            .map(|(status, detail)| LocalReply::error(status, detail))
    }

    fn fixed_reply(self) -> Option<(u32, &'static str)> {
        Some(match self {
            Outcome::MissingKey => (401, "Missing API Key"),
            Outcome::MultipleKeys => (401, "Multiple API Keys"),
            Outcome::InvalidKey => (401, "Invalid API Key"),
            Outcome::ExpiredKey => (401, "API key expired"),
            Outcome::DisabledKey => (401, "API key disabled"),
            Outcome::RevokedKey(RevokedBy::Admin) => (403, "API key revoked"),
            Outcome::RevokedKey(RevokedBy::LeakDetection) => {
                (403, "API key revoked due to suspicious activity")
            }
            Outcome::HostRejected => (400, "Invalid host header"),
            Outcome::MethodOverride => (400, "Method override headers are not accepted"),
            Outcome::AuthBlocked => (429, "Too many failed authentication attempts"),
            Outcome::RateLimitContention => (
                429,
                "Rate limit exceeded: too many simultaneous requests for this key",
            ),
            Outcome::Unavailable => (503, "Authentication temporarily unavailable"),
            Outcome::ClusterUnavailable => (503, "Rate limiting temporarily unavailable"),
            Outcome::InvalidToken => (401, "Invalid bearer token"),
            Outcome::Forbidden => (403, "Insufficient permissions"),
            Outcome::SubjectTableFull => (429, "Too many active callers, retry later"),
            Outcome::Allowed
            | Outcome::Public
            | Outcome::RateLimitStatus
            | Outcome::RateLimited(_)
            | Outcome::Admin(_) => return None,
        })
    }
}
