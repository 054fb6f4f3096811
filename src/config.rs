//! The plugin configuration: a JSON document in the wasm filter's
//! `configuration`, parsed and validated here, identically for the filter
//! (`on_configure`) and for `rag-guard check-config`.
//!
//! Every problem is reported as one [`ConfigError`] that names the field, so
//! Envoy's log says exactly what to fix.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::digest::{parse_digest_hex, Digest};
use crate::host_allowlist::HostAllowlist;
use crate::key_table::KeyTable;
use crate::public_paths::PublicPaths;
use crate::response_headers::{is_token, SecurityHeaders};

/// Longest key name or tier name. Names go into request headers, event lines
/// and (later) metric names, so they are kept short and plain.
pub const MAX_NAME_LEN: usize = 64;

/// Headers the filter writes for the upstream; a client copy is always
/// replaced or removed.
pub const KEY_NAME_HEADER: &str = "x-api-key-name";
pub const KEY_TIER_HEADER: &str = "x-api-key-tier";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path of the offending field, e.g. `keys[2].sha256`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// One configured API key, identified only by its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub name: String,
    /// SHA-256 of the key (configured as lowercase hex).
    pub sha256: Digest,
    pub tier: String,
    /// Unix seconds after which the key is refused; None = never expires.
    pub expires_at: Option<u64>,
    pub enabled: bool,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Lowercase name of the request header that carries the API key.
    pub api_key_header: String,
    pub keys: KeyTable,
    pub public_paths: PublicPaths,
    pub allowed_hosts: HostAllowlist,
    pub security_headers: SecurityHeaders,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_api_key_header")]
    api_key_header: String,
    keys: Vec<RawKey>,
    #[serde(default = "default_public_paths")]
    public_paths: Vec<String>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    security_headers: BTreeMap<String, Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    sha256: String,
    #[serde(default = "default_tier")]
    tier: String,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default = "default_enabled")]
    enabled: bool,
}

fn default_api_key_header() -> String {
    "x-api-key".to_string()
}
fn default_public_paths() -> Vec<String> {
    vec!["/health".to_string()]
}
fn default_tier() -> String {
    "free".to_string()
}
fn default_enabled() -> bool {
    true
}

/// Parses and validates a plugin configuration.
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    let raw: RawConfig =
        serde_json::from_slice(bytes).map_err(|e| err("configuration", e.to_string()))?;

    let api_key_header = raw.api_key_header.to_ascii_lowercase();
    if !is_token(&api_key_header) {
        return Err(err("api_key_header", "must be a valid HTTP header name"));
    }
    if matches!(
        api_key_header.as_str(),
        "host" | KEY_NAME_HEADER | KEY_TIER_HEADER | "content-length" | "content-type"
    ) {
        return Err(err(
            "api_key_header",
            format!("{api_key_header:?} cannot carry the API key"),
        ));
    }

    let keys = KeyTable::new(parse_keys(raw.keys)?);
    let public_paths = PublicPaths::new(&raw.public_paths).map_err(|m| err("public_paths", m))?;
    let allowed_hosts =
        HostAllowlist::new(&raw.allowed_hosts).map_err(|m| err("allowed_hosts", m))?;
    let security_headers =
        SecurityHeaders::new(&raw.security_headers).map_err(|m| err("security_headers", m))?;

    Ok(Config {
        api_key_header,
        keys,
        public_paths,
        allowed_hosts,
        security_headers,
    })
}

fn parse_keys(raw: Vec<RawKey>) -> Result<Vec<KeyEntry>, ConfigError> {
    let mut names = HashSet::new();
    let mut digests = HashSet::new();
    let mut keys = Vec::with_capacity(raw.len());
    for (i, k) in raw.into_iter().enumerate() {
        let field = |f: &str| format!("keys[{i}].{f}");
        if !is_plain_name(&k.name) {
            return Err(err(field("name"), name_rule()));
        }
        if !names.insert(k.name.clone()) {
            return Err(err(
                field("name"),
                format!("duplicate key name {:?}", k.name),
            ));
        }
        let Some(sha256) = parse_digest_hex(&k.sha256) else {
            return Err(err(
                field("sha256"),
                "must be 64 lowercase hex characters (hashlib.sha256(key.encode()).hexdigest())",
            ));
        };
        if !digests.insert(sha256) {
            return Err(err(
                field("sha256"),
                format!(
                    "the same digest is already configured for another key (key {:?})",
                    k.name
                ),
            ));
        }
        if !is_plain_name(&k.tier) {
            return Err(err(field("tier"), name_rule()));
        }
        let expires_at = match &k.expires_at {
            None => None,
            Some(text) => Some(parse_timestamp(text).map_err(|m| err(field("expires_at"), m))?),
        };
        keys.push(KeyEntry {
            name: k.name,
            sha256,
            tier: k.tier,
            expires_at,
            enabled: k.enabled,
        });
    }
    Ok(keys)
}

fn name_rule() -> String {
    format!("must be 1-{MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '-' or '_'")
}

/// Key and tier names: 1-64 characters of `[A-Za-z0-9_-]`.
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses an RFC 3339 UTC timestamp (`2027-03-01T00:00:00Z`) into Unix seconds.
pub fn parse_timestamp(text: &str) -> Result<u64, String> {
    let time = humantime::parse_rfc3339(text).map_err(|e| {
        format!("{text:?} is not an RFC 3339 UTC timestamp like 2027-03-01T00:00:00Z ({e})")
    })?;
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| format!("{text:?} is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_hex;

    fn key_json(name: &str, secret: &str) -> String {
        format!(
            r#"{{"name": "{name}", "sha256": "{}"}}"#,
            sha256_hex(secret.as_bytes())
        )
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(format!(r#"{{"keys": [{}]}}"#, key_json("a", "k1")).as_bytes()).unwrap();
        assert_eq!(c.api_key_header, "x-api-key");
        assert_eq!(c.keys.len(), 1);
        let k = c.keys.get(&crate::digest::sha256(b"k1")).unwrap();
        assert_eq!(k.tier, "free");
        assert!(k.enabled);
        assert_eq!(k.expires_at, None);
        assert!(c.public_paths.matches(b"/health"));
        assert!(c.allowed_hosts.allows_all());
        assert_eq!(c.security_headers.iter().count(), 7);
    }

    #[test]
    fn full_config_parses() {
        let d = sha256_hex(b"secret");
        let text = format!(
            r#"{{
              "api_key_header": "X-Custom-Key",
              "keys": [{{"name": "client-a", "sha256": "{d}", "tier": "pro",
                        "expires_at": "2027-03-01T00:00:00Z", "enabled": false}}],
              "public_paths": ["/health", "/docs/*"],
              "allowed_hosts": ["api.example.com", "*.example.org"],
              "security_headers": {{"x-frame-options": "SAMEORIGIN", "x-xss-protection": null}}
            }}"#
        );
        let c = parse(text.as_bytes()).unwrap();
        assert_eq!(c.api_key_header, "x-custom-key");
        let k = c.keys.get(&crate::digest::sha256(b"secret")).unwrap();
        assert_eq!(
            (k.name.as_str(), k.tier.as_str(), k.enabled),
            ("client-a", "pro", false)
        );
        // date -u -d 2027-03-01T00:00:00Z +%s
        assert_eq!(k.expires_at, Some(1_803_859_200));
        assert!(c.allowed_hosts.allows(Some(b"x.example.org")));
    }

    fn error_of(text: &str) -> ConfigError {
        parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn errors_name_the_field() {
        let d = sha256_hex(b"x");
        let cases: Vec<(String, &str)> = vec![
            ("{}".into(), "configuration"),
            ("not json".into(), "configuration"),
            (r#"{"keys": [], "kyes": []}"#.into(), "configuration"),
            (
                format!(r#"{{"keys": [{{"name": "a", "sha256": "{d}", "colour": 1}}]}}"#),
                "configuration",
            ),
            (
                r#"{"keys": [{"name": "a", "sha256": "abc"}]}"#.into(),
                "keys[0].sha256",
            ),
            (
                format!(
                    r#"{{"keys": [{{"name": "a", "sha256": "{}"}}]}}"#,
                    d.to_uppercase()
                ),
                "keys[0].sha256",
            ),
            (
                format!(
                    r#"{{"keys": [{}, {}]}}"#,
                    key_json("a", "1"),
                    key_json("a", "2")
                ),
                "keys[1].name",
            ),
            (
                format!(
                    r#"{{"keys": [{}, {}]}}"#,
                    key_json("a", "1"),
                    key_json("b", "1")
                ),
                "keys[1].sha256",
            ),
            (
                format!(r#"{{"keys": [{{"name": "a b", "sha256": "{d}"}}]}}"#),
                "keys[0].name",
            ),
            (
                format!(r#"{{"keys": [{{"name": "a", "sha256": "{d}", "tier": ""}}]}}"#),
                "keys[0].tier",
            ),
            (
                format!(
                    r#"{{"keys": [{{"name": "a", "sha256": "{d}", "expires_at": "2027-03-01"}}]}}"#
                ),
                "keys[0].expires_at",
            ),
            (
                format!(
                    r#"{{"keys": [{{"name": "a", "sha256": "{d}", "expires_at": "2027-13-01T00:00:00Z"}}]}}"#
                ),
                "keys[0].expires_at",
            ),
            (
                r#"{"keys": [], "api_key_header": "bad header"}"#.into(),
                "api_key_header",
            ),
            (
                r#"{"keys": [], "api_key_header": "x-api-key-name"}"#.into(),
                "api_key_header",
            ),
            (
                r#"{"keys": [], "public_paths": ["health"]}"#.into(),
                "public_paths",
            ),
            (
                r#"{"keys": [], "allowed_hosts": ["http://x"]}"#.into(),
                "allowed_hosts",
            ),
            (
                r#"{"keys": [], "security_headers": {"x-a": "a\nb"}}"#.into(),
                "security_headers",
            ),
        ];
        for (text, field) in cases {
            let e = error_of(&text);
            assert_eq!(e.field, field, "{text}: {e}");
        }
    }

    #[test]
    fn unknown_field_message_names_it() {
        let e = error_of(r#"{"keys": [], "kyes": []}"#);
        assert!(e.to_string().contains("unknown field `kyes`"), "{e}");
    }
}
