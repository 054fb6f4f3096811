//! The plugin configuration: a JSON document in the wasm filter's
//! `configuration`, parsed and validated here, identically for the filter
//! (`on_configure`) and for `rag-guard check-config`.
//!
//! Every problem is reported as one [`ConfigError`] that names the field, so
//! Envoy's log says exactly what to fix.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::body_inspection::{self, BodyInspection, RawBodyInspection};
use crate::digest::{parse_digest_hex, Digest};
use crate::host_allowlist::HostAllowlist;
use crate::key_table::KeyTable;
use crate::leak_detection::{self, LeakDetection, RawLeakDetection};
use crate::public_paths::PublicPaths;
use crate::response_headers::{is_token, SecurityHeaders};
use crate::token_bucket::Limits;

/// Longest key name or tier name. Names go into request headers, event lines
/// and (later) metric names, so they are kept short and plain.
pub const MAX_NAME_LEN: usize = 64;

/// Headers the filter writes for the upstream; a client copy is always
/// replaced or removed.
pub const KEY_NAME_HEADER: &str = "x-api-key-name";
pub const KEY_TIER_HEADER: &str = "x-api-key-tier";
/// Report-only screening categories that matched, for the upstream.
pub const FLAGS_HEADER: &str = "x-rag-guard-flags";

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
    /// The limits of `tier`, resolved when the configuration is parsed.
    pub limits: Limits,
    /// Unix seconds after which the key is refused; None = never expires.
    pub expires_at: Option<u64>,
    pub enabled: bool,
}

/// A route that costs more than one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCost {
    /// Path prefix, matched on whole segments: `/documents` matches
    /// `/documents` and `/documents/7`, not `/documentsX`.
    pub prefix: String,
    /// Upper-case method, or None for any method.
    pub method: Option<String>,
    pub cost: u32,
}

impl RouteCost {
    pub fn matches(&self, method: &[u8], path: &[u8]) -> bool {
        let prefix = self.prefix.trim_end_matches('/').as_bytes();
        let segment_match =
            path.starts_with(prefix) && matches!(path.get(prefix.len()), None | Some(b'/'));
        segment_match && self.method.as_ref().is_none_or(|m| m.as_bytes() == method)
    }
}

/// Default tiers; a configuration's `tiers` are merged over these.
pub fn default_tiers() -> BTreeMap<String, Limits> {
    [
        ("free", 60, 1_000, 10),
        ("pro", 300, 10_000, 30),
        ("enterprise", 1_000, 50_000, 100),
    ]
    .into_iter()
    .map(|(name, per_minute, per_hour, burst)| {
        (
            name.to_string(),
            Limits {
                per_minute,
                per_hour,
                burst,
            },
        )
    })
    .collect()
}

/// Upper bounds that keep the bucket arithmetic far from overflow.
pub const MAX_PER_MINUTE: u32 = 1_000_000;
pub const MAX_PER_HOUR: u32 = 100_000_000;
pub const MAX_COST: u32 = 1_000;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Lowercase name of the request header that carries the API key.
    pub api_key_header: String,
    pub keys: KeyTable,
    pub public_paths: PublicPaths,
    pub allowed_hosts: HostAllowlist,
    pub security_headers: SecurityHeaders,
    /// Every tier (defaults merged with the configured ones).
    pub tiers: BTreeMap<String, Limits>,
    pub default_tier: String,
    /// Checked in order; the first match sets the cost (default 1).
    pub route_costs: Vec<RouteCost>,
    /// `GET` on this path with a valid key answers the key's limits locally.
    pub rate_limit_status_path: String,
    /// Failed authentications allowed per client address per minute.
    pub failed_auth_per_minute: u32,
    /// Routes whose JSON bodies are checked, and the screening rules.
    pub body_inspection: BodyInspection,
    /// The admin API; None: its prefix answers 404.
    pub admin: Option<AdminConfig>,
    pub leak_detection: LeakDetection,
    /// Per-key usage bookkeeping (request counts, last use, per-day counts).
    pub usage_enabled: bool,
}

/// The admin API: where it answers and the digest of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub secret_sha256: Digest,
    /// Starts and ends with '/'.
    pub path_prefix: String,
}

/// Default `admin.path_prefix`.
pub const DEFAULT_ADMIN_PREFIX: &str = "/rag-guard/admin/";

impl Config {
    /// Tokens a request costs.
    pub fn cost_of(&self, method: &[u8], path: &[u8]) -> u32 {
        let path = crate::public_paths::path_only(path);
        self.route_costs
            .iter()
            .find(|r| r.matches(method, path))
            .map_or(1, |r| r.cost)
    }
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
    #[serde(default = "default_tier")]
    default_tier: String,
    #[serde(default)]
    tiers: BTreeMap<String, RawTier>,
    #[serde(default)]
    route_costs: Vec<RawRouteCost>,
    #[serde(default = "default_status_path")]
    rate_limit_status_path: String,
    #[serde(default)]
    failed_auth: RawFailedAuth,
    #[serde(default)]
    body_inspection: RawBodyInspection,
    #[serde(default)]
    admin: Option<RawAdmin>,
    #[serde(default)]
    leak_detection: RawLeakDetection,
    #[serde(default)]
    usage: RawUsage,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsage {
    #[serde(default = "default_enabled")]
    enabled: bool,
}

impl Default for RawUsage {
    fn default() -> Self {
        RawUsage { enabled: true }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    secret_sha256: String,
    #[serde(default = "default_admin_prefix")]
    path_prefix: String,
}

fn default_admin_prefix() -> String {
    DEFAULT_ADMIN_PREFIX.to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    per_minute: u32,
    per_hour: u32,
    burst: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouteCost {
    prefix: String,
    #[serde(default)]
    method: Option<String>,
    cost: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFailedAuth {
    #[serde(default = "default_failed_auth_per_minute")]
    per_minute: u32,
}

impl Default for RawFailedAuth {
    fn default() -> Self {
        RawFailedAuth {
            per_minute: default_failed_auth_per_minute(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    sha256: String,
    #[serde(default)]
    tier: Option<String>,
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
fn default_status_path() -> String {
    "/rate-limit/status".to_string()
}
fn default_failed_auth_per_minute() -> u32 {
    10
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
        "host"
            | KEY_NAME_HEADER
            | KEY_TIER_HEADER
            | FLAGS_HEADER
            | crate::admin_api::SECRET_HEADER
            | "content-length"
            | "content-type"
            | "transfer-encoding"
            | "connection"
            | "te"
            | "upgrade"
            | "keep-alive"
            | "cookie"
            | "authorization"
    ) || api_key_header.starts_with("x-envoy-")
    {
        return Err(err(
            "api_key_header",
            format!("{api_key_header:?} cannot carry the API key"),
        ));
    }

    let tiers = parse_tiers(raw.tiers)?;
    if !tiers.contains_key(&raw.default_tier) {
        return Err(err(
            "default_tier",
            format!("unknown tier {:?}", raw.default_tier),
        ));
    }
    let keys = KeyTable::new(parse_keys(raw.keys, &tiers, &raw.default_tier)?);
    let route_costs = parse_route_costs(raw.route_costs, &tiers)?;
    let public_paths = PublicPaths::new(&raw.public_paths).map_err(|m| err("public_paths", m))?;
    let status_path = raw.rate_limit_status_path;
    if !status_path.starts_with('/') || status_path.contains(['?', '#', '*']) {
        return Err(err(
            "rate_limit_status_path",
            "must be a path starting with '/' without query, fragment or '*'",
        ));
    }
    if public_paths.matches(status_path.as_bytes()) {
        return Err(err(
            "rate_limit_status_path",
            "is also a public path; the status endpoint needs a key",
        ));
    }
    let failed_auth_per_minute = raw.failed_auth.per_minute;
    if !(1..=MAX_PER_MINUTE).contains(&failed_auth_per_minute) {
        return Err(err(
            "failed_auth.per_minute",
            format!("must be 1..={MAX_PER_MINUTE}"),
        ));
    }
    let allowed_hosts =
        HostAllowlist::new(&raw.allowed_hosts).map_err(|m| err("allowed_hosts", m))?;
    let security_headers =
        SecurityHeaders::new(&raw.security_headers).map_err(|m| err("security_headers", m))?;
    let admin = raw.admin.map(parse_admin).transpose()?;
    if let Some(a) = &admin {
        let prefix = a.path_prefix.trim_end_matches('/').as_bytes();
        if public_paths.matches(prefix) || public_paths.matches(a.path_prefix.as_bytes()) {
            return Err(err(
                "admin.path_prefix",
                "is also a public path; the admin API must not be public",
            ));
        }
        if status_path.starts_with(&a.path_prefix) {
            return Err(err(
                "admin.path_prefix",
                "contains rate_limit_status_path; choose distinct paths",
            ));
        }
    }
    let leak_detection = leak_detection::parse_config(raw.leak_detection)
        .map_err(|(field, message)| err(field, message))?;

    Ok(Config {
        api_key_header,
        keys,
        public_paths,
        allowed_hosts,
        security_headers,
        tiers,
        default_tier: raw.default_tier,
        route_costs,
        rate_limit_status_path: status_path,
        failed_auth_per_minute,
        body_inspection: body_inspection::parse_config(raw.body_inspection)
            .map_err(|(field, message)| err(field, message))?,
        admin,
        leak_detection,
        usage_enabled: raw.usage.enabled,
    })
}

fn parse_admin(raw: RawAdmin) -> Result<AdminConfig, ConfigError> {
    let Some(secret_sha256) = parse_digest_hex(&raw.secret_sha256) else {
        return Err(err(
            "admin.secret_sha256",
            "must be 64 lowercase hex characters (the SHA-256 of the admin secret, never the secret)",
        ));
    };
    let p = &raw.path_prefix;
    let valid = p.len() > 2
        && p.starts_with('/')
        && p.ends_with('/')
        && !p.contains("//")
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
    if !valid {
        return Err(err(
            "admin.path_prefix",
            "must be a path like /rag-guard/admin/ (starts and ends with '/', letters, digits, '-', '_', '.')",
        ));
    }
    Ok(AdminConfig {
        secret_sha256,
        path_prefix: raw.path_prefix,
    })
}

fn parse_tiers(raw: BTreeMap<String, RawTier>) -> Result<BTreeMap<String, Limits>, ConfigError> {
    let mut tiers = default_tiers();
    for (name, t) in raw {
        let field = |f: &str| format!("tiers.{name}.{f}");
        if !is_plain_name(&name) {
            return Err(err(format!("tiers.{name}"), name_rule()));
        }
        for (f, value, max) in [
            ("per_minute", t.per_minute, MAX_PER_MINUTE),
            ("per_hour", t.per_hour, MAX_PER_HOUR),
            ("burst", t.burst, MAX_PER_MINUTE),
        ] {
            if !(1..=max).contains(&value) {
                return Err(err(field(f), format!("must be 1..={max}")));
            }
        }
        tiers.insert(
            name,
            Limits {
                per_minute: t.per_minute,
                per_hour: t.per_hour,
                burst: t.burst,
            },
        );
    }
    Ok(tiers)
}

fn parse_route_costs(
    raw: Vec<RawRouteCost>,
    tiers: &BTreeMap<String, Limits>,
) -> Result<Vec<RouteCost>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let field = |f: &str| format!("route_costs[{i}].{f}");
        if !r.prefix.starts_with('/') || r.prefix.contains(['?', '#', '*']) {
            return Err(err(
                field("prefix"),
                "must be a path starting with '/' without query, fragment or '*'",
            ));
        }
        let method = match r.method {
            Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => Some(m),
            Some(_) => return Err(err(field("method"), "must be an upper-case HTTP method")),
            None => None,
        };
        if !(1..=MAX_COST).contains(&r.cost) {
            return Err(err(field("cost"), format!("must be 1..={MAX_COST}")));
        }
        if let Some((name, limits)) = tiers.iter().find(|(_, l)| l.max_cost() < r.cost) {
            return Err(err(
                field("cost"),
                format!(
                    "{} is more than tier {name:?} can ever spend at once ({}): its requests on this route could never be admitted",
                    r.cost,
                    limits.max_cost()
                ),
            ));
        }
        out.push(RouteCost {
            prefix: r.prefix,
            method,
            cost: r.cost,
        });
    }
    Ok(out)
}

fn parse_keys(
    raw: Vec<RawKey>,
    tiers: &BTreeMap<String, Limits>,
    default_tier: &str,
) -> Result<Vec<KeyEntry>, ConfigError> {
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
        let tier = k.tier.unwrap_or_else(|| default_tier.to_string());
        let Some(limits) = tiers.get(&tier).copied() else {
            return Err(err(
                field("tier"),
                format!(
                    "unknown tier {tier:?} (known: {})",
                    tiers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let expires_at = match &k.expires_at {
            None => None,
            Some(text) => Some(parse_timestamp(text).map_err(|m| err(field("expires_at"), m))?),
        };
        keys.push(KeyEntry {
            name: k.name,
            sha256,
            tier,
            limits,
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
                r#"{"keys": [], "api_key_header": "x-envoy-key"}"#.into(),
                "api_key_header",
            ),
            (
                r#"{"keys": [], "api_key_header": "Connection"}"#.into(),
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
    fn tiers_merge_over_defaults_and_keys_resolve_limits() {
        let text = format!(
            r#"{{"keys": [{}, {{"name": "g", "sha256": "{}", "tier": "gold"}}],
                "default_tier": "pro",
                "tiers": {{"gold": {{"per_minute": 5, "per_hour": 50, "burst": 2}},
                          "free": {{"per_minute": 1, "per_hour": 1, "burst": 1}}}}}}"#,
            key_json("a", "ka"),
            sha256_hex(b"kg")
        );
        let c = parse(text.as_bytes()).unwrap();
        assert_eq!(c.tiers.len(), 4);
        assert_eq!(c.tiers["free"].per_minute, 1);
        let a = c.keys.get(&crate::digest::sha256(b"ka")).unwrap();
        assert_eq!((a.tier.as_str(), a.limits.burst), ("pro", 30));
        let g = c.keys.get(&crate::digest::sha256(b"kg")).unwrap();
        assert_eq!(
            g.limits,
            Limits {
                per_minute: 5,
                per_hour: 50,
                burst: 2
            }
        );
    }

    #[test]
    fn route_costs_match_whole_segments_and_methods() {
        let c = parse(
            br#"{"keys": [], "route_costs": [
                {"prefix": "/documents", "method": "POST", "cost": 5},
                {"prefix": "/query/", "cost": 2}]}"#,
        )
        .unwrap();
        assert_eq!(c.cost_of(b"POST", b"/documents"), 5);
        assert_eq!(c.cost_of(b"POST", b"/documents/7?x=1"), 5);
        assert_eq!(c.cost_of(b"GET", b"/documents"), 1);
        assert_eq!(c.cost_of(b"POST", b"/documentsX"), 1);
        assert_eq!(c.cost_of(b"GET", b"/query"), 2);
        assert_eq!(c.cost_of(b"GET", b"/query/a"), 2);
        assert_eq!(c.cost_of(b"GET", b"/other"), 1);
    }

    #[test]
    fn rate_limit_errors_name_the_field() {
        let d = sha256_hex(b"x");
        let cases: Vec<(String, &str)> = vec![
            (
                r#"{"keys": [], "default_tier": "gold"}"#.into(),
                "default_tier",
            ),
            (
                format!(r#"{{"keys": [{{"name": "a", "sha256": "{d}", "tier": "gold"}}]}}"#),
                "keys[0].tier",
            ),
            (
                r#"{"keys": [], "tiers": {"x": {"per_minute": 0, "per_hour": 1, "burst": 1}}}"#
                    .into(),
                "tiers.x.per_minute",
            ),
            (
                r#"{"keys": [], "tiers": {"x": {"per_minute": 1, "per_hour": 1}}}"#.into(),
                "configuration",
            ),
            (
                r#"{"keys": [], "tiers": {"a b": {"per_minute": 1, "per_hour": 1, "burst": 1}}}"#
                    .into(),
                "tiers.a b",
            ),
            (
                r#"{"keys": [], "route_costs": [{"prefix": "/d", "cost": 11}]}"#.into(),
                "route_costs[0].cost",
            ),
            (
                r#"{"keys": [], "route_costs": [{"prefix": "/d", "cost": 0}]}"#.into(),
                "route_costs[0].cost",
            ),
            (
                r#"{"keys": [], "route_costs": [{"prefix": "d", "cost": 1}]}"#.into(),
                "route_costs[0].prefix",
            ),
            (
                r#"{"keys": [], "route_costs": [{"prefix": "/d", "method": "post", "cost": 1}]}"#
                    .into(),
                "route_costs[0].method",
            ),
            (
                r#"{"keys": [], "rate_limit_status_path": "/health"}"#.into(),
                "rate_limit_status_path",
            ),
            (
                r#"{"keys": [], "rate_limit_status_path": "status"}"#.into(),
                "rate_limit_status_path",
            ),
            (
                r#"{"keys": [], "failed_auth": {"per_minute": 0}}"#.into(),
                "failed_auth.per_minute",
            ),
        ];
        for (text, field) in cases {
            let e = error_of(&text);
            assert_eq!(e.field, field, "{text}: {e}");
        }
        let e = error_of(r#"{"keys": [], "route_costs": [{"prefix": "/d", "cost": 11}]}"#);
        assert!(e.message.contains("tier \"free\""), "{e}");
    }

    #[test]
    fn unknown_field_message_names_it() {
        let e = error_of(r#"{"keys": [], "kyes": []}"#);
        assert!(e.to_string().contains("unknown field `kyes`"), "{e}");
    }
}
