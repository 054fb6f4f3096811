//! The admission decision for one request, before it is routed: host
//! allowlist, public paths, then API key authentication.
//!
//! This is pure logic over the request's headers and the configuration; the
//! proxy-wasm adapter gathers the inputs and applies the [`Decision`].

use crate::config::{Config, KeyEntry};
use crate::digest::{digest_id, sha256};

/// Keys longer than this are refused without hashing. Generated keys are 47
/// bytes; imported keys are far below this.
pub const MAX_KEY_BYTES: usize = 1024;

/// What happened to a request. Each outcome is one metric and one event
/// reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Valid key, forwarded.
    Allowed,
    /// Public path, forwarded without a key.
    Public,
    MissingKey,
    MultipleKeys,
    InvalidKey,
    ExpiredKey,
    DisabledKey,
    HostRejected,
    /// The filter could not do its job (no accepted configuration, a host
    /// call failed): refused, never admitted.
    Unavailable,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::Allowed,
        Outcome::Public,
        Outcome::MissingKey,
        Outcome::MultipleKeys,
        Outcome::InvalidKey,
        Outcome::ExpiredKey,
        Outcome::DisabledKey,
        Outcome::HostRejected,
        Outcome::Unavailable,
    ];

    /// Stable name used in metrics and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Public => "public",
            Outcome::MissingKey => "missing_key",
            Outcome::MultipleKeys => "multiple_keys",
            Outcome::InvalidKey => "invalid_key",
            Outcome::ExpiredKey => "expired_key",
            Outcome::DisabledKey => "disabled_key",
            Outcome::HostRejected => "host_rejected",
            Outcome::Unavailable => "unavailable",
        }
    }

    /// The local reply for a refused request; None when it is forwarded.
    pub fn reply(self) -> Option<LocalReply> {
        let (status, detail) = match self {
            Outcome::Allowed | Outcome::Public => return None,
            Outcome::MissingKey => (401, "Missing API Key"),
            Outcome::MultipleKeys => (401, "Multiple API Keys"),
            Outcome::InvalidKey => (401, "Invalid API Key"),
            Outcome::ExpiredKey => (401, "API key expired"),
            Outcome::DisabledKey => (401, "API key disabled"),
            Outcome::HostRejected => (400, "Invalid host header"),
            Outcome::Unavailable => (503, "Authentication temporarily unavailable"),
        };
        Some(LocalReply { status, detail })
    }
}

/// A response the filter sends itself instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub detail: &'static str,
}

impl LocalReply {
    /// JSON body in the shape FastAPI uses for errors: `{"detail": "..."}`.
    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({ "detail": self.detail })
            .to_string()
            .into_bytes()
    }

    /// 401 replies carry `WWW-Authenticate: APIKey`.
    pub fn www_authenticate(&self) -> Option<&'static str> {
        (self.status == 401).then_some("APIKey")
    }
}

/// The request as the admission check sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub authority: Option<&'a [u8]>,
    /// Raw `:path`, query string included.
    pub path: &'a [u8],
    /// Every value of the API key header, in arrival order.
    pub api_keys: &'a [&'a [u8]],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'c> {
    pub outcome: Outcome,
    /// The configured key that was presented (for `Allowed`, and for expired
    /// or disabled keys so events can name them).
    pub key: Option<&'c KeyEntry>,
    /// First 16 hex characters of the digest of a key that was presented,
    /// for events about keys without a name.
    pub key_id: Option<String>,
}

impl Decision<'_> {
    fn of(outcome: Outcome) -> Self {
        Decision {
            outcome,
            key: None,
            key_id: None,
        }
    }
}

/// Decides whether a request is admitted. `now` is Unix seconds.
pub fn decide<'c>(config: &'c Config, req: &RequestView<'_>, now: u64) -> Decision<'c> {
    if !config.allowed_hosts.allows(req.authority) {
        return Decision::of(Outcome::HostRejected);
    }
    if config.public_paths.matches(req.path) {
        return Decision::of(Outcome::Public);
    }
    let key = match req.api_keys {
        [] => return Decision::of(Outcome::MissingKey),
        [one] => *one,
        _ => return Decision::of(Outcome::MultipleKeys),
    };
    if key.is_empty() {
        return Decision::of(Outcome::MissingKey);
    }
    if key.len() > MAX_KEY_BYTES {
        return Decision::of(Outcome::InvalidKey);
    }
    let digest = sha256(key);
    let key_id = Some(digest_id(&digest));
    let record = config.keys.get(&digest);
    let outcome = match record {
        None => Outcome::InvalidKey,
        Some(r) if !r.enabled => Outcome::DisabledKey,
        Some(r) if r.expires_at.is_some_and(|t| now >= t) => Outcome::ExpiredKey,
        Some(_) => Outcome::Allowed,
    };
    Decision {
        outcome,
        key: record,
        key_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::digest::sha256_hex;

    const NOW: u64 = 1_800_000_000;

    fn config() -> Config {
        let text = format!(
            r#"{{"keys": [
                {{"name": "good", "sha256": "{}", "tier": "pro"}},
                {{"name": "old", "sha256": "{}", "expires_at": "2020-01-01T00:00:00Z"}},
                {{"name": "off", "sha256": "{}", "enabled": false}}
              ],
              "allowed_hosts": ["api.example.com"]}}"#,
            sha256_hex(b"k-good"),
            sha256_hex(b"k-old"),
            sha256_hex(b"k-off"),
        );
        config::parse(text.as_bytes()).unwrap()
    }

    fn view<'a>(keys: &'a [&'a [u8]], path: &'a str, host: Option<&'a str>) -> RequestView<'a> {
        RequestView {
            authority: host.map(str::as_bytes),
            path: path.as_bytes(),
            api_keys: keys,
        }
    }

    fn outcome_at(keys: &[&[u8]], path: &str, host: Option<&str>) -> Outcome {
        decide(&config(), &view(keys, path, host), NOW).outcome
    }

    fn outcome(keys: &[&[u8]]) -> Outcome {
        outcome_at(keys, "/query", Some("api.example.com"))
    }

    #[test]
    fn valid_key_is_allowed_with_identity() {
        let c = config();
        let d = decide(
            &c,
            &view(&[b"k-good"], "/query", Some("api.example.com:10000")),
            NOW,
        );
        assert_eq!(d.outcome, Outcome::Allowed);
        let k = d.key.unwrap();
        assert_eq!((k.name.as_str(), k.tier.as_str()), ("good", "pro"));
        assert_eq!(d.key_id.unwrap(), &sha256_hex(b"k-good")[..16]);
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
    fn failed_keys_are_named_when_known() {
        let c = config();
        let d = decide(&c, &view(&[b"k-old"], "/q", Some("api.example.com")), NOW);
        assert_eq!(d.key.map(|k| k.name.as_str()), Some("old"));
        let d = decide(&c, &view(&[b"nope"], "/q", Some("api.example.com")), NOW);
        assert_eq!(d.key, None);
        assert_eq!(d.key_id.unwrap(), &sha256_hex(b"nope")[..16]);
    }

    #[test]
    fn expiry_is_inclusive_of_the_instant() {
        let c = config();
        let at = c
            .keys
            .iter()
            .find(|k| k.name == "old")
            .unwrap()
            .expires_at
            .unwrap();
        let req = view(&[b"k-old"], "/q", Some("api.example.com"));
        assert_eq!(decide(&c, &req, at - 1).outcome, Outcome::Allowed);
        assert_eq!(decide(&c, &req, at).outcome, Outcome::ExpiredKey);
        // An unknown clock (u64::MAX) refuses keys that expire.
        assert_eq!(decide(&c, &req, u64::MAX).outcome, Outcome::ExpiredKey);
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
    fn replies_are_fastapi_shaped() {
        let r = Outcome::MissingKey.reply().unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.www_authenticate(), Some("APIKey"));
        let v: serde_json::Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(v, serde_json::json!({"detail": "Missing API Key"}));
        assert_eq!(
            Outcome::HostRejected.reply().unwrap().www_authenticate(),
            None
        );
        assert_eq!(Outcome::Unavailable.reply().unwrap().status, 503);
        assert!(Outcome::Allowed.reply().is_none());
        assert!(Outcome::Public.reply().is_none());
    }
}
