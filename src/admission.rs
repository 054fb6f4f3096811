//! The decision for one request, before it is routed, in this order:
//! host allowlist, the admin API, public paths, the failed-authentication
//! table of the client's address, API key authentication, then the key's
//! runtime state: revocation, leak detection and rate limits (or the
//! rate-limit status endpoint).
//!
//! Pure logic over the request's headers, the configuration and a
//! [`SharedStore`]; the proxy-wasm adapter gathers the inputs and applies the
//! [`Decision`]. Native tests run it against `MemoryStore`.

use std::net::{IpAddr, Ipv4Addr};

use crate::admin_api::{self, AdminRequest, AdminStatus};
use crate::config::{Config, KeyEntry};
use crate::digest::{digest_id, sha256, Digest};
use crate::events::{SecurityEvent, Severity};
use crate::failed_auth;
use crate::key_state::RevokedBy;
use crate::leak_detection::address_tag;
use crate::rate_limit_headers;
use crate::rate_limiter::{self, LeakTrip, Source, Spend};
use crate::shared_store::SharedStore;
use crate::token_bucket::LimitKind;

/// Keys longer than this are refused without hashing. Generated keys are 47
/// bytes; imported keys are far below this.
pub const MAX_KEY_BYTES: usize = 1024;

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
    /// Too many failed authentications from the client's address.
    AuthBlocked,
    RateLimited(LimitKind),
    /// Every CAS attempt on the key's buckets lost a race: refused.
    RateLimitContention,
    /// The filter could not do its job (no accepted configuration, a host
    /// call failed, a bucket is missing): refused, never admitted.
    Unavailable,
    /// A request to the admin API, answered by it.
    Admin(AdminStatus),
}

impl Outcome {
    pub const ALL: [Outcome; 22] = [
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
        Outcome::AuthBlocked,
        Outcome::RateLimited(LimitKind::Burst),
        Outcome::RateLimited(LimitKind::Minute),
        Outcome::RateLimited(LimitKind::Hour),
        Outcome::RateLimitContention,
        Outcome::Unavailable,
        Outcome::Admin(AdminStatus::Ok),
        Outcome::Admin(AdminStatus::Denied),
        Outcome::Admin(AdminStatus::QuerySecret),
        Outcome::Admin(AdminStatus::Disabled),
        Outcome::Admin(AdminStatus::Error),
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
            Outcome::AuthBlocked => "auth_blocked",
            Outcome::RateLimited(LimitKind::Burst) => "rate_limited_burst",
            Outcome::RateLimited(LimitKind::Minute) => "rate_limited_minute",
            Outcome::RateLimited(LimitKind::Hour) => "rate_limited_hour",
            Outcome::RateLimitContention => "rate_limited_contention",
            Outcome::Unavailable => "unavailable",
            Outcome::Admin(_) => "admin",
        }
    }

    /// The `decision` label of the request metric.
    pub fn decision(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Public => "public",
            Outcome::RateLimitStatus => "status",
            Outcome::MissingKey | Outcome::MultipleKeys => "unauthenticated",
            Outcome::InvalidKey => "invalid",
            Outcome::ExpiredKey => "expired",
            Outcome::DisabledKey | Outcome::RevokedKey(_) => "revoked",
            Outcome::HostRejected => "host_rejected",
            Outcome::AuthBlocked | Outcome::RateLimited(_) | Outcome::RateLimitContention => {
                "rate_limited"
            }
            Outcome::Unavailable => "unavailable",
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
            Outcome::AuthBlocked => "failed_auth",
            Outcome::RateLimited(kind) => kind.as_str(),
            Outcome::RateLimitContention => "contention",
            Outcome::Admin(status) => status.as_str(),
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
        )
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
            Outcome::AuthBlocked => (429, "Too many failed authentication attempts"),
            Outcome::RateLimitContention => (
                429,
                "Rate limit exceeded: too many simultaneous requests for this key",
            ),
            Outcome::Unavailable => (503, "Authentication temporarily unavailable"),
            Outcome::Allowed
            | Outcome::Public
            | Outcome::RateLimitStatus
            | Outcome::RateLimited(_)
            | Outcome::Admin(_) => return None,
        })
    }
}

/// A response the filter sends itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    /// JSON body.
    pub body: Vec<u8>,
    /// Headers besides `content-type` and the security headers.
    pub headers: Vec<(&'static str, String)>,
}

impl LocalReply {
    /// An error in the shape FastAPI uses: `{"detail": "..."}`; 401s carry
    /// `WWW-Authenticate: APIKey`.
    pub fn error(status: u32, detail: &str) -> Self {
        let mut headers = Vec::new();
        if status == 401 {
            headers.push(("www-authenticate", "APIKey".to_string()));
        }
        LocalReply {
            status,
            body: serde_json::json!({ "detail": detail })
                .to_string()
                .into_bytes(),
            headers,
        }
    }

    /// The reply for an outcome that has a fixed one.
    pub fn for_outcome(outcome: Outcome) -> Option<Self> {
        outcome
            .fixed_reply()
            .map(|(status, detail)| Self::error(status, detail))
    }

    fn with_retry_after(mut self, secs: u64) -> Self {
        self.headers.push(("retry-after", secs.to_string()));
        self
    }

    /// The detail text of an error reply (for tests and logs).
    pub fn detail(&self) -> Option<String> {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()?
            .get("detail")?
            .as_str()
            .map(str::to_string)
    }
}

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
}

impl<'c> Decision<'c> {
    fn of(outcome: Outcome) -> Self {
        Decision {
            outcome,
            key: None,
            key_id: None,
            reply: LocalReply::for_outcome(outcome),
            response_headers: Vec::new(),
            leak: None,
            cas_retries: 0,
            events: Vec::new(),
        }
    }

    /// The key to name in `x-api-key-name` / `x-api-key-tier` upstream:
    /// only for requests that were authenticated and are forwarded.
    pub fn forwarded_identity(&self) -> Option<&'c KeyEntry> {
        self.key.filter(|_| self.outcome == Outcome::Allowed)
    }
}

/// The decisions that need neither the client's address, the clock nor
/// shared data: a rejected host or a public path. None: call [`decide`].
/// (The adapter asks this first and skips those host calls when it can.)
pub fn decide_early(config: &Config, req: &RequestView<'_>) -> Option<Decision<'static>> {
    if !config.allowed_hosts.allows(req.authority) {
        return Some(Decision::of(Outcome::HostRejected));
    }
    if admin_api::is_admin_path(config, req.path) {
        return None;
    }
    if config.public_paths.matches(req.path) {
        return Some(Decision::of(Outcome::Public));
    }
    None
}

/// Decides what to do with a request. `now_ns` is Unix nanoseconds.
pub fn decide<'c>(
    config: &'c Config,
    req: &RequestView<'_>,
    store: &dyn SharedStore,
    now_ns: u64,
) -> Decision<'c> {
    if let Some(early) = decide_early(config, req) {
        return early;
    }

    // Addresses with too many recent failures get no further.
    let ip = req.client_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    match failed_auth::blocked_for(store, ip, config.failed_auth_per_minute, now_ns) {
        Ok(None) => {}
        Ok(Some(secs)) => {
            let mut d = Decision::of(Outcome::AuthBlocked);
            d.reply = d.reply.map(|r| r.with_retry_after(secs));
            return d;
        }
        Err(_) => return Decision::of(Outcome::Unavailable),
    }

    if admin_api::is_admin_path(config, req.path) {
        let admin_req = AdminRequest {
            method: req.method,
            path: req.path,
            secrets: req.admin_secrets,
            client_ip: req.client_ip,
        };
        let answer = admin_api::handle(config, &admin_req, store, now_ns);
        if answer.status.is_auth_failure() {
            if let Some(blocked) = record_failure(config, store, ip, now_ns) {
                return blocked;
            }
        }
        return Decision {
            reply: Some(answer.reply),
            events: answer.events,
            ..Decision::of(Outcome::Admin(answer.status))
        };
    }

    let (outcome, key, key_id) = authenticate(config, req.api_keys, now_ns / 1_000_000_000);
    // A refusal that counts as a failed authentication of the address.
    let failed = |outcome: Outcome, key_id: Option<String>| {
        // Decided by the CAS that counts the failure: if other workers used
        // up the address's budget since the check above, this is a blocked
        // request too. A failure that cannot be recorded keeps its answer.
        if let Some(blocked) = record_failure(config, store, ip, now_ns) {
            return blocked;
        }
        Decision {
            key,
            key_id,
            ..Decision::of(outcome)
        }
    };
    if outcome != Outcome::Allowed {
        if outcome.is_auth_failure() {
            return failed(outcome, key_id);
        }
        return Decision {
            key,
            key_id,
            ..Decision::of(outcome)
        };
    }
    let Some(entry) = key else {
        return Decision::of(Outcome::Unavailable);
    };
    let digest = &entry.sha256;
    let decision = |outcome, reply, response_headers| Decision {
        key,
        key_id: key_id.clone(),
        reply,
        response_headers,
        ..Decision::of(outcome)
    };

    let path = crate::public_paths::path_only(req.path);
    if req.method == b"GET" && path == config.rate_limit_status_path.as_bytes() {
        return match rate_limiter::peek(store, digest, &entry.limits, now_ns) {
            Ok(Some((Some(revocation), _))) => Decision {
                key,
                key_id: key_id.clone(),
                ..Decision::of(Outcome::RevokedKey(revocation.by))
            },
            Ok(Some((None, views))) => {
                let body = rate_limit_headers::status_body(&entry.name, &entry.tier, &views);
                let headers = rate_limit_headers::headers(&entry.limits, &views);
                let reply = LocalReply {
                    status: 200,
                    body: body.to_string().into_bytes(),
                    headers: headers.clone(),
                };
                decision(Outcome::RateLimitStatus, Some(reply), headers)
            }
            _ => Decision::of(Outcome::Unavailable),
        };
    }

    let cost = config.cost_of(req.method, req.path);
    let detection = &config.leak_detection;
    let source = Source {
        tag: req
            .client_ip
            .filter(|ip| detection.counts(*ip))
            .map(address_tag),
        detection,
    };
    let Ok(result) = rate_limiter::spend(store, digest, &entry.limits, cost, now_ns, source) else {
        return Decision {
            key,
            key_id,
            ..Decision::of(Outcome::Unavailable)
        };
    };
    let mut d = match result.spend {
        Spend::Decided { verdict: v, leak } => {
            let headers = rate_limit_headers::headers(&entry.limits, &v.views);
            let mut d = match (v.allowed, v.tripped) {
                (true, _) => decision(Outcome::Allowed, None, headers),
                (false, tripped) => {
                    let kind = tripped.unwrap_or(LimitKind::Burst);
                    let detail = rate_limit_headers::exceeded_detail(&entry.limits, kind);
                    let mut reply = LocalReply::error(429, &detail);
                    // Never admissible (cost above a capacity) cannot happen
                    // with a validated configuration; say "a minute" then.
                    reply = reply.with_retry_after(v.retry_after_secs.unwrap_or(60));
                    reply.headers.extend(headers.iter().cloned());
                    decision(Outcome::RateLimited(kind), Some(reply), headers)
                }
            };
            d.leak = leak;
            d
        }
        Spend::Revoked(revocation) => Decision {
            key,
            key_id: key_id.clone(),
            ..Decision::of(Outcome::RevokedKey(revocation.by))
        },
        Spend::LeakRevoked(trip) => {
            // The request that trips detection is refused with the rest.
            let mut d = decision(
                Outcome::RevokedKey(RevokedBy::LeakDetection),
                None,
                Vec::new(),
            );
            d.reply = LocalReply::for_outcome(d.outcome);
            d.leak = Some(trip);
            d
        }
        Spend::Contention => {
            let headers = rate_limiter::peek(store, digest, &entry.limits, now_ns)
                .ok()
                .flatten()
                .map(|(_, views)| rate_limit_headers::headers(&entry.limits, &views))
                .unwrap_or_default();
            let mut reply = LocalReply::for_outcome(Outcome::RateLimitContention)
                .map(|r| r.with_retry_after(1));
            if let Some(r) = reply.as_mut() {
                r.headers.extend(headers.iter().cloned());
            }
            decision(Outcome::RateLimitContention, reply, headers)
        }
        Spend::NoBucket => Decision {
            key,
            key_id: key_id.clone(),
            ..Decision::of(Outcome::Unavailable)
        },
    };
    d.cas_retries = result.cas_retries;
    d
}

/// Counts a failed authentication of `ip`; Some(blocked decision) when the
/// address has now used up its budget.
fn record_failure(
    config: &Config,
    store: &dyn SharedStore,
    ip: IpAddr,
    now_ns: u64,
) -> Option<Decision<'static>> {
    let blocked = failed_auth::record_failure(store, ip, config.failed_auth_per_minute, now_ns);
    if let Ok(true) = blocked {
        let mut d = Decision::of(Outcome::AuthBlocked);
        let secs = failed_auth::one_failure_secs(config.failed_auth_per_minute);
        d.reply = d.reply.map(|r| r.with_retry_after(secs));
        return Some(d);
    }
    None
}

/// API key authentication alone: the outcome, the configured key if the
/// digest is known, and the digest's short id.
fn authenticate<'c>(
    config: &'c Config,
    api_keys: &[&[u8]],
    now_secs: u64,
) -> (Outcome, Option<&'c KeyEntry>, Option<String>) {
    let key = match api_keys {
        [] => return (Outcome::MissingKey, None, None),
        [one] => *one,
        _ => return (Outcome::MultipleKeys, None, None),
    };
    if key.is_empty() {
        return (Outcome::MissingKey, None, None);
    }
    if key.len() > MAX_KEY_BYTES {
        return (Outcome::InvalidKey, None, None);
    }
    let digest: Digest = sha256(key);
    let record = config.keys.get(&digest);
    let outcome = match record {
        None => Outcome::InvalidKey,
        Some(r) if !r.enabled => Outcome::DisabledKey,
        Some(r) if r.expires_at.is_some_and(|t| now_secs >= t) => Outcome::ExpiredKey,
        Some(_) => Outcome::Allowed,
    };
    (outcome, record, Some(digest_id(&digest)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::digest::sha256_hex;
    use crate::shared_store::{MemoryStore, StoreError, Versioned};

    const SEC: u64 = 1_000_000_000;
    const NOW: u64 = 1_800_000_000 * SEC;

    fn config_with(extra: &str) -> Config {
        let text = format!(
            r#"{{"keys": [
                {{"name": "good", "sha256": "{}", "tier": "pro"}},
                {{"name": "old", "sha256": "{}", "expires_at": "2020-01-01T00:00:00Z"}},
                {{"name": "off", "sha256": "{}", "enabled": false}},
                {{"name": "tiny", "sha256": "{}", "tier": "tiny"}}
              ],
              "tiers": {{"tiny": {{"per_minute": 3, "per_hour": 100, "burst": 2}}}},
              "allowed_hosts": ["api.example.com"]{extra}}}"#,
            sha256_hex(b"k-good"),
            sha256_hex(b"k-old"),
            sha256_hex(b"k-off"),
            sha256_hex(b"k-tiny"),
        );
        config::parse(text.as_bytes()).unwrap()
    }

    fn store_for(c: &Config) -> MemoryStore {
        let store = MemoryStore::new();
        crate::key_state::ensure_entries(&store, c.keys.iter().map(|k| &k.sha256)).unwrap();
        failed_auth::ensure_table(&store).unwrap();
        store
    }

    fn view<'a>(keys: &'a [&'a [u8]], path: &'a str, host: Option<&'a str>) -> RequestView<'a> {
        RequestView {
            authority: host.map(str::as_bytes),
            path: path.as_bytes(),
            method: b"GET",
            api_keys: keys,
            client_ip: Some("192.0.2.10".parse().unwrap()),
            admin_secrets: &[],
        }
    }

    fn outcome_at(keys: &[&[u8]], path: &str, host: Option<&str>) -> Outcome {
        let c = config_with("");
        let store = store_for(&c);
        decide(&c, &view(keys, path, host), &store, NOW).outcome
    }

    fn outcome(keys: &[&[u8]]) -> Outcome {
        outcome_at(keys, "/query", Some("api.example.com"))
    }

    fn header<'a>(d: &'a Decision<'_>, name: &str) -> Option<&'a str> {
        d.response_headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn valid_key_is_allowed_with_identity_and_headers() {
        let c = config_with("");
        let store = store_for(&c);
        let d = decide(
            &c,
            &view(&[b"k-good"], "/query", Some("api.example.com:10000")),
            &store,
            NOW,
        );
        assert_eq!(d.outcome, Outcome::Allowed);
        assert!(d.reply.is_none());
        let k = d.forwarded_identity().unwrap();
        assert_eq!((k.name.as_str(), k.tier.as_str()), ("good", "pro"));
        assert_eq!(d.key_id.as_deref().unwrap(), &sha256_hex(b"k-good")[..16]);
        assert_eq!(header(&d, "x-ratelimit-limit-minute"), Some("300"));
        assert_eq!(header(&d, "x-ratelimit-remaining-minute"), Some("299"));
    }

    #[test]
    fn each_failure_has_its_outcome() {
        assert_eq!(outcome(&[]), Outcome::MissingKey);
        assert_eq!(outcome(&[b""]), Outcome::MissingKey);
        assert_eq!(outcome(&[b"k-good", b"k-good"]), Outcome::MultipleKeys);
        assert_eq!(outcome(&[b"nope"]), Outcome::InvalidKey);
        assert_eq!(outcome(&[b"k-old"]), Outcome::ExpiredKey);
        assert_eq!(outcome(&[b"k-off"]), Outcome::DisabledKey);
        assert_eq!(outcome(&[&[b'a'; 10 * 1024]]), Outcome::InvalidKey);
        assert_eq!(outcome(&[b"\xff\xfe\x00k"]), Outcome::InvalidKey);
        assert_eq!(outcome(&[b"K-GOOD"]), Outcome::InvalidKey);
    }

    #[test]
    fn failures_get_401_with_www_authenticate_and_no_rate_headers() {
        let c = config_with("");
        let store = store_for(&c);
        let d = decide(
            &c,
            &view(&[b"k-old"], "/q", Some("api.example.com")),
            &store,
            NOW,
        );
        assert_eq!(d.key.map(|k| k.name.as_str()), Some("old"));
        assert!(d.forwarded_identity().is_none());
        let r = d.reply.unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.detail().as_deref(), Some("API key expired"));
        assert!(r
            .headers
            .contains(&("www-authenticate", "APIKey".to_string())));
        assert!(d.response_headers.is_empty());
        let d = decide(
            &c,
            &view(&[b"nope"], "/q", Some("api.example.com")),
            &store,
            NOW,
        );
        assert_eq!(d.key, None);
        assert_eq!(d.key_id.unwrap(), &sha256_hex(b"nope")[..16]);
    }

    #[test]
    fn expiry_is_inclusive_of_the_instant() {
        let c = config_with("");
        let store = store_for(&c);
        let at = c
            .keys
            .iter()
            .find(|k| k.name == "old")
            .unwrap()
            .expires_at
            .unwrap();
        let req = view(&[b"k-old"], "/q", Some("api.example.com"));
        assert_eq!(
            decide(&c, &req, &store, (at - 1) * SEC).outcome,
            Outcome::Allowed
        );
        assert_eq!(
            decide(&c, &req, &store, at * SEC).outcome,
            Outcome::ExpiredKey
        );
    }

    #[test]
    fn host_is_checked_before_anything_else() {
        assert_eq!(
            outcome_at(&[b"k-good"], "/query", Some("evil.com")),
            Outcome::HostRejected
        );
        assert_eq!(
            outcome_at(&[], "/health", Some("evil.com")),
            Outcome::HostRejected
        );
        assert_eq!(
            outcome_at(&[b"k-good"], "/query", None),
            Outcome::HostRejected
        );
    }

    #[test]
    fn public_paths_need_no_key() {
        let host = Some("api.example.com");
        assert_eq!(outcome_at(&[], "/health", host), Outcome::Public);
        assert_eq!(outcome_at(&[], "/health?x", host), Outcome::Public);
        assert_eq!(outcome_at(&[b"bad"], "/health", host), Outcome::Public);
        assert_eq!(outcome_at(&[], "/healthz", host), Outcome::MissingKey);
    }

    #[test]
    fn rate_limits_answer_429_with_retry_after() {
        let c = config_with("");
        let store = store_for(&c);
        let req = view(&[b"k-tiny"], "/q", Some("api.example.com"));
        for _ in 0..2 {
            assert_eq!(decide(&c, &req, &store, NOW).outcome, Outcome::Allowed);
        }
        let d = decide(&c, &req, &store, NOW);
        assert_eq!(d.outcome, Outcome::RateLimited(LimitKind::Burst));
        let r = d.reply.clone().unwrap();
        assert_eq!(r.status, 429);
        assert_eq!(
            r.detail().as_deref(),
            Some("Rate limit exceeded: burst of 2 requests")
        );
        // 3 per minute: a token every 20 s.
        assert!(r.headers.contains(&("retry-after", "20".to_string())));
        assert!(r.headers.iter().any(|(n, _)| *n == "ratelimit"));
        assert_eq!(header(&d, "x-ratelimit-remaining-minute"), Some("1"));
        // 20 s later one token is back in every bucket: one more request,
        // then the burst bucket is empty again.
        assert_eq!(
            decide(&c, &req, &store, NOW + 20 * SEC).outcome,
            Outcome::Allowed
        );
        let d = decide(&c, &req, &store, NOW + 20 * SEC);
        assert_eq!(d.outcome, Outcome::RateLimited(LimitKind::Burst));
    }

    #[test]
    fn route_cost_consumes_several_tokens() {
        let c = config_with(
            r#", "route_costs": [{"prefix": "/documents", "method": "POST", "cost": 2}]"#,
        );
        let store = store_for(&c);
        let mut req = view(&[b"k-good"], "/documents", Some("api.example.com"));
        req.method = b"POST";
        let d = decide(&c, &req, &store, NOW);
        assert_eq!(header(&d, "x-ratelimit-remaining-minute"), Some("298"));
        req.method = b"GET";
        let d = decide(&c, &req, &store, NOW);
        assert_eq!(header(&d, "x-ratelimit-remaining-minute"), Some("297"));
    }

    #[test]
    fn status_endpoint_answers_locally_and_costs_nothing() {
        let c = config_with("");
        let store = store_for(&c);
        let q = view(&[b"k-tiny"], "/q", Some("api.example.com"));
        decide(&c, &q, &store, NOW);
        let st = view(
            &[b"k-tiny"],
            "/rate-limit/status?x=1",
            Some("api.example.com"),
        );
        for _ in 0..5 {
            let d = decide(&c, &st, &store, NOW);
            assert_eq!(d.outcome, Outcome::RateLimitStatus);
            let r = d.reply.unwrap();
            assert_eq!(r.status, 200);
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["requests_this_minute"], 1);
            assert_eq!(v["minute_limit"], 3);
            assert_eq!(v["minute_remaining"], 2);
            assert_eq!(v["burst_remaining"], 1);
            assert_eq!(v["tier"], "tiny");
        }
        // The status endpoint still needs a valid key.
        let bad = view(&[b"nope"], "/rate-limit/status", Some("api.example.com"));
        assert_eq!(decide(&c, &bad, &store, NOW).outcome, Outcome::InvalidKey);
    }

    #[test]
    fn failed_authentications_block_the_address_before_key_checks() {
        let c = config_with("");
        let store = store_for(&c);
        let bad = view(&[b"nope"], "/q", Some("api.example.com"));
        for _ in 0..10 {
            assert_eq!(decide(&c, &bad, &store, NOW).outcome, Outcome::InvalidKey);
        }
        let d = decide(&c, &bad, &store, NOW);
        assert_eq!(d.outcome, Outcome::AuthBlocked);
        assert_eq!(d.reply.as_ref().unwrap().status, 429);
        assert!(d
            .reply
            .unwrap()
            .headers
            .contains(&("retry-after", "6".to_string())));
        // Even a valid key from that address is refused now...
        let good = view(&[b"k-good"], "/q", Some("api.example.com"));
        assert_eq!(decide(&c, &good, &store, NOW).outcome, Outcome::AuthBlocked);
        // ...but not from another one.
        let mut other = good;
        other.client_ip = Some("198.51.100.77".parse().unwrap());
        assert_ne!(
            failed_auth::slot_of(other.client_ip.unwrap()),
            failed_auth::slot_of("192.0.2.10".parse().unwrap())
        );
        assert_eq!(decide(&c, &other, &store, NOW).outcome, Outcome::Allowed);
    }

    #[test]
    fn admin_paths_skip_key_checks_and_wrong_secrets_count_as_failures() {
        let admin = format!(
            r#", "admin": {{"secret_sha256": "{}"}}"#,
            sha256_hex(b"adm")
        );
        let c = config_with(&admin);
        let store = store_for(&c);
        let host = Some("api.example.com");
        let req = view(&[], "/rag-guard/admin/keys", host);
        assert!(
            decide_early(&c, &req).is_none(),
            "admin requests need the store"
        );
        let right: [&[u8]; 1] = [b"adm"];
        let ok = decide(
            &c,
            &RequestView {
                admin_secrets: &right,
                ..req
            },
            &store,
            NOW,
        );
        assert_eq!(ok.outcome, Outcome::Admin(AdminStatus::Ok));
        assert_eq!(ok.reply.unwrap().status, 200);
        let wrong: [&[u8]; 1] = [b"guess"];
        for _ in 0..10 {
            let d = decide(
                &c,
                &RequestView {
                    admin_secrets: &wrong,
                    ..req
                },
                &store,
                NOW,
            );
            assert_eq!(d.outcome, Outcome::Admin(AdminStatus::Denied));
        }
        let d = decide(
            &c,
            &RequestView {
                admin_secrets: &right,
                ..req
            },
            &store,
            NOW,
        );
        assert_eq!(d.outcome, Outcome::AuthBlocked);
        // Host checks come first, for the admin API too.
        let elsewhere = view(&[], "/rag-guard/admin/keys", Some("evil.example"));
        assert_eq!(
            decide_early(&c, &elsewhere).unwrap().outcome,
            Outcome::HostRejected
        );
    }

    #[test]
    fn runtime_revocation_refuses_with_403_without_blocking_the_address() {
        let c = config_with("");
        let store = store_for(&c);
        let good = c.keys.get(&sha256(b"k-good")).unwrap();
        crate::key_state::revoke(&store, &good.sha256, RevokedBy::Admin, 1).unwrap();
        let req = view(&[b"k-good"], "/query", Some("api.example.com"));
        let d = decide(&c, &req, &store, NOW);
        assert_eq!(d.outcome, Outcome::RevokedKey(RevokedBy::Admin));
        assert_eq!(d.key.unwrap().name, "good");
        let reply = d.reply.unwrap();
        assert_eq!(
            (reply.status, reply.detail().unwrap().as_str()),
            (403, "API key revoked")
        );
        // The status endpoint is refused the same way.
        let status = view(&[b"k-good"], "/rate-limit/status", Some("api.example.com"));
        assert_eq!(
            decide(&c, &status, &store, NOW).outcome,
            Outcome::RevokedKey(RevokedBy::Admin)
        );
        for _ in 0..20 {
            assert_eq!(
                decide(&c, &req, &store, NOW).outcome,
                Outcome::RevokedKey(RevokedBy::Admin)
            );
        }
        // Other keys from the same address still work.
        let pro = view(&[b"k-tiny"], "/query", Some("api.example.com"));
        assert_eq!(decide(&c, &pro, &store, NOW).outcome, Outcome::Allowed);
    }

    #[test]
    fn the_request_that_trips_leak_detection_is_refused_and_carries_the_trip() {
        let c = config_with("");
        let store = store_for(&c);
        let mut req = view(&[b"k-good"], "/query", Some("api.example.com"));
        for i in 1..=10 {
            req.client_ip = Some(format!("198.51.100.{i}").parse().unwrap());
            let d = decide(&c, &req, &store, NOW);
            assert_eq!((d.outcome, d.leak), (Outcome::Allowed, None));
        }
        req.client_ip = Some("198.51.100.11".parse().unwrap());
        let d = decide(&c, &req, &store, NOW);
        assert_eq!(d.outcome, Outcome::RevokedKey(RevokedBy::LeakDetection));
        assert_eq!(d.leak.map(|l| l.distinct), Some(11));
        assert_eq!(d.reply.unwrap().status, 403);
    }

    struct BrokenStore;
    impl SharedStore for BrokenStore {
        fn get(&self, _: &str) -> Result<Option<Versioned>, StoreError> {
            Err(StoreError::Host("down".into()))
        }
        fn set(&self, _: &str, _: &[u8], _: Option<u32>) -> Result<(), StoreError> {
            Err(StoreError::Host("down".into()))
        }
    }

    #[test]
    fn store_failures_fail_closed() {
        let c = config_with("");
        let d = decide(
            &c,
            &view(&[b"k-good"], "/q", Some("api.example.com")),
            &BrokenStore,
            NOW,
        );
        assert_eq!(d.outcome, Outcome::Unavailable);
        assert_eq!(d.reply.unwrap().status, 503);
        // A store without buckets (never configured) refuses too.
        let empty = MemoryStore::new();
        failed_auth::ensure_table(&empty).unwrap();
        let d = decide(
            &c,
            &view(&[b"k-good"], "/q", Some("api.example.com")),
            &empty,
            NOW,
        );
        assert_eq!(d.outcome, Outcome::Unavailable);
    }

    #[test]
    fn replies_are_fastapi_shaped() {
        let r = LocalReply::for_outcome(Outcome::MissingKey).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v, serde_json::json!({"detail": "Missing API Key"}));
        let host = LocalReply::for_outcome(Outcome::HostRejected).unwrap();
        assert_eq!(host.status, 400);
        assert!(host.headers.is_empty());
        assert!(LocalReply::for_outcome(Outcome::Allowed).is_none());
        // Each outcome is one metric: its labels are distinct.
        let labels: std::collections::HashSet<_> = Outcome::ALL
            .iter()
            .map(|o| (o.decision(), o.reason()))
            .collect();
        assert_eq!(labels.len(), Outcome::ALL.len());
        let leak = LocalReply::for_outcome(Outcome::RevokedKey(RevokedBy::LeakDetection)).unwrap();
        assert_eq!(leak.status, 403);
        assert_eq!(
            leak.detail().unwrap(),
            "API key revoked due to suspicious activity"
        );
    }
}
