//! The plugin configuration: a JSON document in the wasm filter's
//! `configuration`, parsed and validated here, identically for the filter
//! (`on_configure`) and for `rag-guard check-config`.
//!
//! Every problem is reported as one [`ConfigError`] that names the field, so
//! Envoy's log says exactly what to fix.

mod access;
mod admin;
mod body_inspection;
mod cluster;
mod error;
mod jwt;
mod keys;
mod leak_detection;
mod limits;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::auth::access::Access;
use crate::auth::host_allowlist::HostAllowlist;
use crate::auth::jwt::JwtSettings;
use crate::auth::keys::KeyTable;
use crate::auth::leak_detection::LeakDetection;
use crate::auth::public_paths::PublicPaths;
use crate::cluster::settings::ClusterSettings;
use crate::http::response_headers::{is_token, SecurityHeaders};
use crate::http::{FLAGS_HEADER, KEY_NAME_HEADER, KEY_TIER_HEADER, SECRET_HEADER};
use crate::inspection::routes::BodyInspection;
use crate::limits::route_cost::{self, RouteCost};
use crate::limits::token_bucket::Limits;

use access::{check_roles, parse_access, RawAccess};
use admin::{parse_admin, RawAdmin};
use body_inspection::RawBodyInspection;
use cluster::{parse_cluster, RawCluster};
use error::err;
use jwt::{parse_jwt, RawJwt};
use keys::{default_enabled, parse_keys, RawKey};
use leak_detection::RawLeakDetection;
use limits::{parse_route_costs, parse_tiers, RawRouteCost, RawTier};

pub use admin::{AdminConfig, DEFAULT_ADMIN_PREFIX};
pub use cluster::MAX_TIMEOUT_MS;
pub use error::ConfigError;
pub use keys::{is_plain_name, parse_timestamp, MAX_NAME_LEN};
pub use limits::{default_tiers, MAX_COST, MAX_PER_HOUR, MAX_PER_MINUTE};

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
    /// Cluster mode: limits, revocations, leak detection and usage shared
    /// by every replica through the cluster service. None: this Envoy alone.
    pub cluster: Option<ClusterSettings>,
    /// Per-request event lines each worker writes per second at most
    /// (`ops::event_budget`).
    pub event_lines_per_second: u32,
    /// Callers with a JWT verified by Envoy's `jwt_authn`. None: API keys only.
    pub jwt: Option<JwtSettings>,
    /// Role-based access. None: every authenticated caller may use every
    /// route, and the admin API takes only its secret.
    pub access: Option<Access>,
}

impl Config {
    /// Tokens a request costs.
    pub fn cost_of(&self, method: &[u8], path: &[u8]) -> u32 {
        route_cost::cost_of(&self.route_costs, method, path)
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
    #[serde(default)]
    cluster: Option<RawCluster>,
    #[serde(default)]
    events: RawEvents,
    #[serde(default)]
    jwt: Option<RawJwt>,
    #[serde(default)]
    access: Option<RawAccess>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    #[serde(default = "default_events_per_second")]
    max_per_second: u32,
}

impl Default for RawEvents {
    fn default() -> Self {
        RawEvents {
            max_per_second: default_events_per_second(),
        }
    }
}

fn default_events_per_second() -> u32 {
    200
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

fn default_api_key_header() -> String {
    "x-api-key".to_string()
}
fn default_public_paths() -> Vec<String> {
    vec!["/health".to_string()]
}
fn default_tier() -> String {
    "free".to_string()
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
            | SECRET_HEADER
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
    let keys_in_order = parse_keys(raw.keys, &tiers, &raw.default_tier)?;
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
    let cluster = raw
        .cluster
        .map(parse_cluster)
        .transpose()
        .map_err(|(field, message)| err(field, message))?;
    if !(1..=1_000_000).contains(&raw.events.max_per_second) {
        return Err(err("events.max_per_second", "must be 1..=1000000"));
    }
    if cluster.is_some() && keys_in_order.len() > crate::cluster::settings::MAX_KEYS {
        return Err(err(
            "keys",
            format!(
                "at most {} keys in cluster mode",
                crate::cluster::settings::MAX_KEYS
            ),
        ));
    }

    let jwt = raw.jwt.map(parse_jwt).transpose()?;
    if jwt.is_some() && cluster.is_some() {
        return Err(err(
            "jwt",
            "is not supported in cluster mode yet (subjects' limits would be per replica)",
        ));
    }
    let access = raw.access.map(parse_access).transpose()?;
    for (i, key) in keys_in_order.iter().enumerate() {
        let Some(roles) = &key.roles else { continue };
        let field = format!("keys[{i}].roles");
        match &access {
            Some(a) => check_roles(a, roles, &field)?,
            None => return Err(err(field, "needs an access section that defines the roles")),
        }
    }
    let keys = KeyTable::new(keys_in_order);

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
        cluster,
        event_lines_per_second: raw.events.max_per_second,
        jwt,
        access,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::digest::sha256_hex;

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
        let k = c.keys.get(&crate::auth::digest::sha256(b"k1")).unwrap();
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
        let k = c.keys.get(&crate::auth::digest::sha256(b"secret")).unwrap();
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
    fn cluster_section_is_optional_and_validated() {
        use crate::cluster::settings::FailureMode;
        let d = sha256_hex(b"x");
        let with =
            |cluster: &str| format!(r#"{{"keys": [{{"name": "a", "sha256": "{d}"}}]{cluster}}}"#);
        assert!(parse(with("").as_bytes()).unwrap().cluster.is_none());
        let c = parse(with(r#", "cluster": {"service": "rag_guard_cluster"}"#).as_bytes()).unwrap();
        let s = c.cluster.unwrap();
        assert_eq!(
            (s.domain.as_str(), s.timeout_ms, s.failure_mode),
            ("rag-guard", 100, FailureMode::Deny)
        );
        let local = with(
            r#", "cluster": {"service": "outbound|8081||svc.ns", "domain": "d", "timeout_ms": 250, "failure_mode": "local"}"#,
        );
        assert_eq!(
            parse(local.as_bytes())
                .unwrap()
                .cluster
                .unwrap()
                .failure_mode,
            FailureMode::Local
        );
        for (cluster, field) in [
            (r#", "cluster": {}"#, "configuration"),
            (r#", "cluster": {"service": ""}"#, "cluster.service"),
            (r#", "cluster": {"service": "a b"}"#, "cluster.service"),
            (r#", "cluster": {"service": "é"}"#, "cluster.service"),
            (
                r#", "cluster": {"service": "s", "domain": "a/b"}"#,
                "cluster.domain",
            ),
            (
                r#", "cluster": {"service": "s", "timeout_ms": 0}"#,
                "cluster.timeout_ms",
            ),
            (
                r#", "cluster": {"service": "s", "timeout_ms": 60000}"#,
                "cluster.timeout_ms",
            ),
            (
                r#", "cluster": {"service": "s", "failure_mode": "open"}"#,
                "cluster.failure_mode",
            ),
            (
                r#", "cluster": {"service": "s", "redis": "x"}"#,
                "configuration",
            ),
        ] {
            assert_eq!(error_of(&with(cluster)).field, field, "{cluster}");
        }
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
        let a = c.keys.get(&crate::auth::digest::sha256(b"ka")).unwrap();
        assert_eq!((a.tier.as_str(), a.limits.burst), ("pro", 30));
        let g = c.keys.get(&crate::auth::digest::sha256(b"kg")).unwrap();
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
