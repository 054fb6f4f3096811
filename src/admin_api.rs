//! The admin API, answered by the filter itself under `admin.path_prefix`
//! (default `/rag-guard/admin/`) and never forwarded upstream.
//!
//! | request | answer |
//! |---|---|
//! | `GET keys` | every configured key (no secrets): status, usage, addresses in the leak window |
//! | `GET keys/expiring?days=N` | keys that expire within N days (default 7) |
//! | `POST keys/{name}/revoke` | runtime revocation, on every worker at once |
//! | `POST keys/{name}/restore` | lifts a runtime revocation |
//! | `GET usage?days=N` | requests per day per key and per tier (default 7, at most `usage::DAYS`) |
//!
//! Access needs the admin secret in the `x-admin-secret` header; the
//! configuration holds only its SHA-256. Without an `admin` section every
//! path under the default prefix answers 404. A wrong or missing secret gets
//! 403 and a secret in the query string 400 (the secret may now sit in
//! access logs); both count as failed authentications of the client's
//! address in the failed-auth table, which blocks it with 429 like failed
//! API keys.

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::admission::LocalReply;
use crate::config::{Config, KeyEntry, DEFAULT_ADMIN_PREFIX};
use crate::digest::{digest_id, sha256};
use crate::events::{loggable_path, loggable_token, SecurityEvent, Severity};
use crate::key_state::{self, ChangeError, KeyState, RevokedBy};
use crate::public_paths::path_only;
use crate::shared_store::SharedStore;
use crate::usage::{self, day_of, DayCounts, DAYS, FLUSH_INTERVAL_SECS};

/// The header that carries the admin secret.
pub const SECRET_HEADER: &str = "x-admin-secret";
/// Longest accepted secret; longer values are refused without hashing.
const MAX_SECRET_BYTES: usize = 1024;
const SECS_PER_DAY: u64 = 86_400;
/// Longest `days=` for `keys/expiring`.
const MAX_EXPIRING_DAYS: u64 = 3650;

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAnswer {
    pub status: AdminStatus,
    pub reply: LocalReply,
    /// Events besides `admin_access` (key_revoked, key_restored).
    pub events: Vec<(Severity, SecurityEvent)>,
}

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
    let authorized = match req.secrets {
        [one] if !one.is_empty() && one.len() <= MAX_SECRET_BYTES => {
            sha256(one) == admin.secret_sha256
        }
        _ => false,
    };
    if !authorized {
        return answer(AdminStatus::Denied, LocalReply::error(403, "Forbidden"));
    }
    let route = path
        .strip_prefix(admin.path_prefix.as_bytes())
        .unwrap_or(b"");
    let route = std::str::from_utf8(route).unwrap_or("\u{fffd}");
    let segments: Vec<&str> = route.split('/').collect();
    let now_secs = now_ns / 1_000_000_000;
    let result = match (segments.as_slice(), req.method) {
        (["keys"], b"GET") => Ok(list_keys(config, store, now_secs)),
        (["keys", "expiring"], b"GET") => {
            days_param(query, 7, MAX_EXPIRING_DAYS).map(|d| expiring(config, now_secs, d))
        }
        (["keys", name, "revoke"], b"POST") => {
            return with_key(config, name, |entry| revoke(entry, store, now_secs, req))
        }
        (["keys", name, "restore"], b"POST") => {
            return with_key(config, name, |entry| restore(entry, store, now_secs, req))
        }
        (["usage"], b"GET") => {
            days_param(query, 7, DAYS as u64).map(|d| usage_report(config, store, now_secs, d))
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

fn ok(body: Value) -> LocalReply {
    LocalReply {
        status: 200,
        body: body.to_string().into_bytes(),
        headers: vec![("cache-control", "no-store".to_string())],
    }
}

fn method_not_allowed(allow: &str) -> LocalReply {
    let mut reply = LocalReply::error(405, "Method Not Allowed");
    reply.headers.push(("allow", allow.to_string()));
    reply
}

fn split_query(raw: &[u8]) -> (&[u8], &[u8]) {
    let path = path_only(raw);
    let query = raw.get(path.len()..).unwrap_or(b"");
    let query = query.strip_prefix(b"?").unwrap_or(b"");
    let query = query.split(|b| *b == b'#').next().unwrap_or(b"");
    (path, query)
}

/// Percent-decodes a query component (`+` is a space); invalid escapes are
/// kept as they are.
fn decode_component(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b,
            raw.get(i + 1).and_then(|c| hex(*c)),
            raw.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            (b'+', _, _) => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

fn query_pairs(query: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    query
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |b| *b == b'=');
            let name = decode_component(parts.next().unwrap_or(b""));
            let value = decode_component(parts.next().unwrap_or(b""));
            (name, value)
        })
}

/// A parameter whose name mentions a secret, or any value that is the admin
/// secret itself, whatever its name.
fn query_has_secret(query: &[u8], secret_sha256: &[u8; 32]) -> bool {
    query_pairs(query).any(|(name, value)| {
        let name = name.to_ascii_lowercase();
        name.windows(6).any(|w| w == b"secret")
            || (!value.is_empty()
                && value.len() <= MAX_SECRET_BYTES
                && &sha256(&value) == secret_sha256)
    })
}

/// `days=N` within 1..=max (default when absent).
fn days_param(query: &[u8], default: u64, max: u64) -> Result<u64, LocalReply> {
    let Some((_, value)) = query_pairs(query).find(|(n, _)| n == b"days") else {
        return Ok(default);
    };
    std::str::from_utf8(&value)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|d| (1..=max).contains(d))
        .ok_or_else(|| LocalReply::error(400, &format!("days must be an integer from 1 to {max}")))
}

/// RFC 3339 UTC text of Unix seconds.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn date_of_day(day: u32) -> String {
    let mut text = rfc3339(u64::from(day) * SECS_PER_DAY);
    text.truncate(10);
    text
}

fn sorted_keys(config: &Config) -> Vec<&KeyEntry> {
    let mut keys: Vec<&KeyEntry> = config.keys.iter().collect();
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    keys
}

/// Status, cause and time of a key's state.
fn key_status(
    entry: &KeyEntry,
    state: Option<&KeyState>,
    now_secs: u64,
) -> (&'static str, Option<&'static str>, Option<u64>) {
    if !entry.enabled {
        return ("revoked", Some("config"), None);
    }
    if let Some(r) = state.and_then(|s| s.revoked) {
        return ("revoked", Some(r.by.as_str()), Some(r.at_secs));
    }
    if entry.expires_at.is_some_and(|t| now_secs >= t) {
        return ("expired", None, None);
    }
    ("active", None, None)
}

fn list_keys(config: &Config, store: &dyn SharedStore, now_secs: u64) -> Value {
    let leak = &config.leak_detection;
    let now32 = u32::try_from(now_secs).unwrap_or(u32::MAX);
    let keys: Vec<Value> = sorted_keys(config)
        .into_iter()
        .map(|entry| {
            let state = key_state::read(store, &entry.sha256).ok().flatten();
            let used = usage::read(store, &entry.sha256).ok().flatten();
            let (status, by, at) = key_status(entry, state.as_ref(), now_secs);
            json!({
                "name": entry.name,
                "key_id": digest_id(&entry.sha256),
                "tier": entry.tier,
                "enabled": entry.enabled,
                "expires_at": entry.expires_at.map(rfc3339),
                "status": status,
                "revoked_by": by,
                "revoked_at": at.map(rfc3339),
                "runtime_override": state.and_then(|s| s.revoked).is_some(),
                "request_count": used.map_or(0, |u| u.request_count),
                "last_used": used.map(|u| u.last_used).filter(|t| *t > 0).map(rfc3339),
                "addresses_in_window": state.map_or(0, |s| s.addresses.distinct(now32, leak.window_secs)),
            })
        })
        .collect();
    json!({
        "keys": keys,
        "leak_detection": {
            "enabled": leak.enabled,
            "max_addresses": leak.max_addresses,
            "window_secs": leak.window_secs,
            "action": leak.action.as_str(),
        },
        "usage_flush_interval_secs": FLUSH_INTERVAL_SECS,
    })
}

fn expiring(config: &Config, now_secs: u64, days: u64) -> Value {
    let until = now_secs.saturating_add(days * SECS_PER_DAY);
    let mut keys: Vec<&KeyEntry> = config
        .keys
        .iter()
        .filter(|k| k.enabled && k.expires_at.is_some_and(|t| t > now_secs && t <= until))
        .collect();
    keys.sort_by_key(|k| (k.expires_at, k.name.clone()));
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            let at = k.expires_at.unwrap_or(now_secs);
            json!({
                "name": k.name,
                "key_id": digest_id(&k.sha256),
                "tier": k.tier,
                "expires_at": rfc3339(at),
                "expires_in_secs": at - now_secs,
            })
        })
        .collect();
    json!({ "days": days, "keys": keys })
}

fn day_json(date: String, c: &DayCounts) -> Value {
    json!({"date": date, "admitted": c.admitted, "rate_limited": c.rate_limited, "rejected": c.rejected})
}

fn totals_json(days: &[DayCounts]) -> Value {
    let mut t = DayCounts::default();
    for d in days {
        t.admitted = t.admitted.saturating_add(d.admitted);
        t.rate_limited = t.rate_limited.saturating_add(d.rate_limited);
        t.rejected = t.rejected.saturating_add(d.rejected);
    }
    json!({"admitted": t.admitted, "rate_limited": t.rate_limited, "rejected": t.rejected})
}

fn usage_report(config: &Config, store: &dyn SharedStore, now_secs: u64, days: u64) -> Value {
    let today = day_of(now_secs);
    let first = today.saturating_sub(u32::try_from(days - 1).unwrap_or(0));
    let day_numbers: Vec<u32> = (first..=today).collect();
    let mut tiers: std::collections::BTreeMap<&str, Vec<DayCounts>> = Default::default();
    let keys: Vec<Value> = sorted_keys(config)
        .into_iter()
        .map(|entry| {
            let used = usage::read(store, &entry.sha256).ok().flatten();
            let counts: Vec<DayCounts> = day_numbers
                .iter()
                .map(|d| used.map(|u| u.day(*d)).unwrap_or_default())
                .collect();
            let tier = tiers
                .entry(entry.tier.as_str())
                .or_insert_with(|| vec![DayCounts::default(); counts.len()]);
            for (sum, c) in tier.iter_mut().zip(&counts) {
                sum.admitted = sum.admitted.saturating_add(c.admitted);
                sum.rate_limited = sum.rate_limited.saturating_add(c.rate_limited);
                sum.rejected = sum.rejected.saturating_add(c.rejected);
            }
            json!({
                "name": entry.name,
                "tier": entry.tier,
                "totals": totals_json(&counts),
                "days": day_numbers.iter().zip(&counts)
                    .map(|(d, c)| day_json(date_of_day(*d), c)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let tiers: Vec<Value> = tiers
        .into_iter()
        .map(|(tier, counts)| {
            json!({
                "tier": tier,
                "totals": totals_json(&counts),
                "days": day_numbers.iter().zip(&counts)
                    .map(|(d, c)| day_json(date_of_day(*d), c)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "from": date_of_day(first),
        "to": date_of_day(today),
        "keys": keys,
        "tiers": tiers,
        "note": format!(
            "Counts of configured keys, UTC days. Each worker adds its counts every {FLUSH_INTERVAL_SECS} s; \
             tiers are the keys' current tiers. Kept in Envoy shared data: an Envoy restart resets them."
        ),
    })
}

fn with_key(
    config: &Config,
    name: &str,
    act: impl FnOnce(&KeyEntry) -> Result<(Value, Vec<(Severity, SecurityEvent)>), LocalReply>,
) -> AdminAnswer {
    let Some(entry) = config.keys.iter().find(|k| k.name == name) else {
        return AdminAnswer {
            status: AdminStatus::Error,
            reply: LocalReply::error(404, "Unknown key"),
            events: Vec::new(),
        };
    };
    match act(entry) {
        Ok((body, events)) => AdminAnswer {
            status: AdminStatus::Ok,
            reply: ok(body),
            events,
        },
        Err(reply) => AdminAnswer {
            status: AdminStatus::Error,
            reply,
            events: Vec::new(),
        },
    }
}

fn change_failed(e: ChangeError) -> LocalReply {
    match e {
        ChangeError::NoEntry => LocalReply::error(503, "The key has no shared-data entry yet"),
        ChangeError::Contention | ChangeError::Store(_) => {
            LocalReply::error(503, "Shared data is busy or unavailable; retry")
        }
    }
}

/// The event about a key changed by the admin API.
pub fn key_event(
    event: &'static str,
    entry: &KeyEntry,
    by: &'static str,
    ip: Option<IpAddr>,
) -> SecurityEvent {
    SecurityEvent {
        event,
        reason: by,
        by: Some(by),
        key_name: Some(entry.name.clone()),
        key_id: Some(digest_id(&entry.sha256)),
        tier: Some(entry.tier.clone()),
        ip: ip.map(|ip| ip.to_string()),
        ..Default::default()
    }
}

type Acted = Result<(Value, Vec<(Severity, SecurityEvent)>), LocalReply>;

fn revoke(
    entry: &KeyEntry,
    store: &dyn SharedStore,
    now_secs: u64,
    req: &AdminRequest<'_>,
) -> Acted {
    let (revocation, changed) = key_state::revoke(store, &entry.sha256, RevokedBy::Admin, now_secs)
        .map_err(change_failed)?;
    let events = if changed {
        vec![(
            Severity::Warn,
            key_event("key_revoked", entry, "admin", req.client_ip),
        )]
    } else {
        Vec::new()
    };
    let body = json!({
        "name": entry.name,
        "key_id": digest_id(&entry.sha256),
        "status": "revoked",
        "revoked_by": revocation.by.as_str(),
        "revoked_at": rfc3339(revocation.at_secs),
        "changed": changed,
        "runtime_override": true,
        "note": "Runtime revocation: every worker of this Envoy process refuses this key from now on, \
                 across configuration and VM reloads, but an Envoy restart forgets it, and other Envoy \
                 replicas need the same call. Make it permanent with the configuration change below \
                 (or remove the key).",
        "config_change": {"keys": [{"name": entry.name, "enabled": false}]},
    });
    Ok((body, events))
}

fn restore(
    entry: &KeyEntry,
    store: &dyn SharedStore,
    now_secs: u64,
    req: &AdminRequest<'_>,
) -> Acted {
    if !entry.enabled {
        return Err(LocalReply::error(
            409,
            "The key is disabled in the configuration; set \"enabled\": true there to restore it",
        ));
    }
    let lifted = key_state::restore(store, &entry.sha256).map_err(change_failed)?;
    let events = match lifted {
        Some(_) => vec![(
            Severity::Info,
            key_event("key_restored", entry, "admin", req.client_ip),
        )],
        None => Vec::new(),
    };
    let (status, _, _) = key_status(entry, None, now_secs);
    let body = json!({
        "name": entry.name,
        "key_id": digest_id(&entry.sha256),
        "status": status,
        "changed": lifted.is_some(),
        "lifted": lifted.map(|r| json!({"revoked_by": r.by.as_str(), "revoked_at": rfc3339(r.at_secs)})),
        "runtime_override": false,
        "note": "The runtime revocation is lifted on every worker and the key's leak-detection \
                 address window is cleared. If the configuration was changed to disable this key, \
                 that change wins.",
    });
    Ok((body, events))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::digest::sha256_hex;
    use crate::shared_store::MemoryStore;
    use crate::usage::{Accumulator, Kind};

    const SEC: u64 = 1_000_000_000;
    // 2027-01-15T08:00:00Z
    const NOW_SECS: u64 = 1_799_999_999 - 1_799_999_999 % 86_400 + 8 * 3600;
    const NOW: u64 = NOW_SECS * SEC;

    fn cfg(admin: bool) -> Config {
        let admin = if admin {
            format!(
                r#", "admin": {{"secret_sha256": "{}"}}"#,
                sha256_hex(b"s3cret")
            )
        } else {
            String::new()
        };
        let soon = rfc3339(NOW_SECS + 3 * 86_400);
        let later = rfc3339(NOW_SECS + 30 * 86_400);
        let text = format!(
            r#"{{"keys": [
                {{"name": "alpha", "sha256": "{}", "tier": "pro", "expires_at": "{soon}"}},
                {{"name": "beta", "sha256": "{}", "expires_at": "{later}"}},
                {{"name": "off", "sha256": "{}", "enabled": false}}
              ]{admin}}}"#,
            sha256_hex(b"ka"),
            sha256_hex(b"kb"),
            sha256_hex(b"ko"),
        );
        config::parse(text.as_bytes()).unwrap()
    }

    fn store_for(c: &Config) -> MemoryStore {
        let store = MemoryStore::new();
        key_state::ensure_entries(&store, c.keys.iter().map(|k| &k.sha256)).unwrap();
        usage::ensure_entries(&store, c.keys.iter().map(|k| &k.sha256)).unwrap();
        store
    }

    fn call(
        c: &Config,
        store: &MemoryStore,
        method: &str,
        path: &str,
        secret: Option<&str>,
    ) -> AdminAnswer {
        let secrets: Vec<&[u8]> = secret.map(str::as_bytes).into_iter().collect();
        let req = AdminRequest {
            method: method.as_bytes(),
            path: path.as_bytes(),
            secrets: &secrets,
            client_ip: Some("127.0.0.1".parse().unwrap()),
        };
        handle(c, &req, store, NOW)
    }

    fn body(a: &AdminAnswer) -> Value {
        serde_json::from_slice(&a.reply.body).unwrap()
    }

    const P: &str = "/rag-guard/admin/";

    #[test]
    fn access_needs_the_secret_in_the_header() {
        let c = cfg(true);
        let s = store_for(&c);
        let keys = format!("{P}keys");
        assert_eq!(call(&c, &s, "GET", &keys, Some("s3cret")).reply.status, 200);
        for secret in [None, Some("wrong"), Some("")] {
            let a = call(&c, &s, "GET", &keys, secret);
            assert_eq!(
                (a.status, a.reply.status),
                (AdminStatus::Denied, 403),
                "{secret:?}"
            );
        }
        let secrets: Vec<&[u8]> = vec![b"s3cret", b"s3cret"];
        let req = AdminRequest {
            method: b"GET",
            path: keys.as_bytes(),
            secrets: &secrets,
            client_ip: None,
        };
        assert_eq!(handle(&c, &req, &s, NOW).status, AdminStatus::Denied);
        // In the query string: refused even with the right header, under any name.
        for q in [
            "?secret=s3cret",
            "?x-admin-secret=nope",
            "?ADMIN_SECRET=x",
            "?token=s3cret",
            "?t=s3%63ret",
        ] {
            let a = call(&c, &s, "GET", &format!("{keys}{q}"), Some("s3cret"));
            assert_eq!(
                (a.status, a.reply.status),
                (AdminStatus::QuerySecret, 400),
                "{q}"
            );
        }
        assert!(
            AdminStatus::QuerySecret.is_auth_failure() && AdminStatus::Denied.is_auth_failure()
        );
    }

    #[test]
    fn without_an_admin_section_everything_is_404() {
        let c = cfg(false);
        let s = store_for(&c);
        assert!(is_admin_path(&c, b"/rag-guard/admin/keys?x=1"));
        assert!(is_admin_path(&c, b"/rag-guard/admin"));
        assert!(!is_admin_path(&c, b"/rag-guard/administrator"));
        let a = call(&c, &s, "GET", &format!("{P}keys"), Some("s3cret"));
        assert_eq!((a.status, a.reply.status), (AdminStatus::Disabled, 404));
    }

    #[test]
    fn lists_keys_with_status_and_usage() {
        let c = cfg(true);
        let s = store_for(&c);
        let mut acc = Accumulator::default();
        let alpha = &c.keys.iter().find(|k| k.name == "alpha").unwrap().sha256;
        acc.record(alpha, Kind::Admitted, NOW_SECS - 10);
        acc.record(alpha, Kind::RateLimited, NOW_SECS - 5);
        usage::flush(&s, &mut acc);
        let a = call(&c, &s, "GET", &format!("{P}keys"), Some("s3cret"));
        let v = body(&a);
        let keys = v["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0]["name"], "alpha");
        assert_eq!(keys[0]["status"], "active");
        assert_eq!(keys[0]["request_count"], 2);
        assert_eq!(keys[0]["last_used"], rfc3339(NOW_SECS - 5));
        assert_eq!(keys[0]["key_id"], &sha256_hex(b"ka")[..16]);
        assert_eq!(keys[2]["status"], "revoked");
        assert_eq!(keys[2]["revoked_by"], "config");
        let text = String::from_utf8(a.reply.body.clone()).unwrap();
        assert!(!text.contains(&sha256_hex(b"ka")), "no full digests");
        assert_eq!(
            a.reply.headers,
            vec![("cache-control", "no-store".to_string())]
        );
    }

    #[test]
    fn expiring_keys_within_n_days() {
        let c = cfg(true);
        let s = store_for(&c);
        let names = |path: &str| -> Vec<String> {
            body(&call(&c, &s, "GET", path, Some("s3cret")))["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(&format!("{P}keys/expiring")), vec!["alpha"]);
        assert_eq!(
            names(&format!("{P}keys/expiring?days=31")),
            vec!["alpha", "beta"]
        );
        assert_eq!(
            names(&format!("{P}keys/expiring?days=2")),
            Vec::<String>::new()
        );
        for bad in ["0", "x", "99999"] {
            let a = call(
                &c,
                &s,
                "GET",
                &format!("{P}keys/expiring?days={bad}"),
                Some("s3cret"),
            );
            assert_eq!((a.status, a.reply.status), (AdminStatus::Error, 400));
        }
    }

    #[test]
    fn revoke_and_restore() {
        let c = cfg(true);
        let s = store_for(&c);
        let a = call(
            &c,
            &s,
            "POST",
            &format!("{P}keys/beta/revoke"),
            Some("s3cret"),
        );
        assert_eq!(a.reply.status, 200);
        let v = body(&a);
        assert_eq!(v["runtime_override"], true);
        assert_eq!(v["changed"], true);
        assert_eq!(
            v["config_change"],
            json!({"keys": [{"name": "beta", "enabled": false}]})
        );
        assert_eq!(a.events.len(), 1);
        assert_eq!(a.events[0].1.event, "key_revoked");
        let listed = body(&call(&c, &s, "GET", &format!("{P}keys"), Some("s3cret")));
        assert_eq!(listed["keys"][1]["status"], "revoked");
        assert_eq!(listed["keys"][1]["revoked_by"], "admin");
        // Again: no change, no event.
        let again = call(
            &c,
            &s,
            "POST",
            &format!("{P}keys/beta/revoke"),
            Some("s3cret"),
        );
        assert_eq!(body(&again)["changed"], false);
        assert!(again.events.is_empty());
        let r = call(
            &c,
            &s,
            "POST",
            &format!("{P}keys/beta/restore"),
            Some("s3cret"),
        );
        assert_eq!(body(&r)["status"], "active");
        assert_eq!(r.events[0].1.event, "key_restored");
        // A key disabled in the configuration cannot be restored at runtime.
        let off = call(
            &c,
            &s,
            "POST",
            &format!("{P}keys/off/restore"),
            Some("s3cret"),
        );
        assert_eq!(off.reply.status, 409);
        let unknown = call(
            &c,
            &s,
            "POST",
            &format!("{P}keys/nope/revoke"),
            Some("s3cret"),
        );
        assert_eq!(unknown.reply.status, 404);
        let get = call(
            &c,
            &s,
            "GET",
            &format!("{P}keys/beta/revoke"),
            Some("s3cret"),
        );
        assert_eq!(get.reply.status, 405);
        assert!(get.reply.headers.contains(&("allow", "POST".to_string())));
    }

    #[test]
    fn usage_per_day_per_key_and_tier() {
        let c = cfg(true);
        let s = store_for(&c);
        let mut acc = Accumulator::default();
        let key = |n: &str| c.keys.iter().find(|k| k.name == n).unwrap().sha256;
        for _ in 0..3 {
            acc.record(&key("alpha"), Kind::Admitted, NOW_SECS);
        }
        acc.record(&key("alpha"), Kind::Rejected, NOW_SECS - 86_400);
        acc.record(&key("beta"), Kind::RateLimited, NOW_SECS);
        usage::flush(&s, &mut acc);
        let v = body(&call(
            &c,
            &s,
            "GET",
            &format!("{P}usage?days=2"),
            Some("s3cret"),
        ));
        let alpha = &v["keys"][0];
        assert_eq!(alpha["days"].as_array().unwrap().len(), 2);
        assert_eq!(alpha["days"][1]["admitted"], 3);
        assert_eq!(alpha["days"][0]["rejected"], 1);
        assert_eq!(
            alpha["totals"],
            json!({"admitted": 3, "rate_limited": 0, "rejected": 1})
        );
        let tiers = v["tiers"].as_array().unwrap();
        let free = tiers.iter().find(|t| t["tier"] == "free").unwrap();
        assert_eq!(free["totals"]["rate_limited"], 1);
        assert_eq!(v["to"], rfc3339(NOW_SECS)[..10]);
        let too_many = call(&c, &s, "GET", &format!("{P}usage?days=33"), Some("s3cret"));
        assert_eq!(too_many.reply.status, 400);
    }

    #[test]
    fn unknown_paths_are_404_after_authentication() {
        let c = cfg(true);
        let s = store_for(&c);
        for path in ["", "keys/", "nope", "keys/alpha", "keys/alpha/revoke/x"] {
            let a = call(&c, &s, "GET", &format!("{P}{path}"), Some("s3cret"));
            assert_eq!(a.reply.status, 404, "{path}");
        }
    }
}
