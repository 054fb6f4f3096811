//! The admin API's key endpoints: the key list, keys that expire soon, and
//! runtime revocation and restore.

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::auth::digest::digest_id;
use crate::auth::keys::KeyEntry;
use crate::config::Config;
use crate::http::LocalReply;
use crate::key_state::{self, ChangeError, KeyState, RevokedBy};
use crate::limits::token_bucket;
use crate::ops::events::{SecurityEvent, Severity};
use crate::ops::usage::{self, FLUSH_INTERVAL_SECS};
use crate::shared_store::SharedStore;

use super::answer::{ok, AdminAnswer, AdminRequest, AdminStatus};
use super::dates::{rfc3339, SECS_PER_DAY};

pub(super) fn sorted_keys(config: &Config) -> Vec<&KeyEntry> {
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

pub(super) fn list_keys(config: &Config, store: &dyn SharedStore, now_ns: u64) -> Value {
    let now_secs = now_ns / 1_000_000_000;
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
                // This Envoy's buckets now (the cluster's in cluster mode
                // are the service's).
                "rate_limit": state.map(|s| rate_limit_json(entry, &s, now_ns)),
                // Keys this one replaced that are still accepted.
                "replaced_keys": entry
                    .previous
                    .iter()
                    .filter(|p| p.until > now_secs)
                    .map(|p| json!({"key_id": digest_id(&p.sha256), "until": rfc3339(p.until)}))
                    .collect::<Vec<_>>(),
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

fn rate_limit_json(entry: &KeyEntry, state: &KeyState, now_ns: u64) -> Value {
    let [burst, minute, hour] = token_bucket::peek(&state.buckets, &entry.limits, now_ns);
    json!({
        "burst": entry.limits.burst,
        "per_minute": entry.limits.per_minute,
        "per_hour": entry.limits.per_hour,
        "burst_remaining": burst.remaining,
        "minute_remaining": minute.remaining,
        "hour_remaining": hour.remaining,
    })
}

pub(super) fn expiring(config: &Config, now_secs: u64, days: u64) -> Value {
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

pub(super) fn with_key(
    config: &Config,
    name: &str,
    act: impl FnOnce(&KeyEntry) -> Result<(Value, Vec<(Severity, SecurityEvent)>), LocalReply>,
) -> AdminAnswer {
    let Some(entry) = config.keys.iter().find(|k| k.name == name) else {
        return AdminAnswer {
            status: AdminStatus::Error,
            reply: LocalReply::error(404, "Unknown key"),
            events: Vec::new(),
            cluster_usage: None,
        };
    };
    match act(entry) {
        Ok((body, events)) => AdminAnswer {
            status: AdminStatus::Ok,
            reply: ok(body),
            events,
            cluster_usage: None,
        },
        Err(reply) => AdminAnswer {
            status: AdminStatus::Error,
            reply,
            events: Vec::new(),
            cluster_usage: None,
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

/// What the revoke answer says about the revocation's reach.
const LOCAL_NOTE: &str =
    "Runtime revocation: every worker of this Envoy process refuses this key from now on, \
    across configuration and VM reloads, but an Envoy restart forgets it, and other Envoy \
    replicas need the same call. Make it permanent with the configuration change below \
    (or remove the key).";
const CLUSTER_NOTE: &str =
    "Runtime revocation, cluster mode: this replica refuses the key from now on and every \
    replica within about a second (kept in the cluster service's Redis, across Envoy restarts). \
    Make it permanent with the configuration change below (or remove the key).";

pub(super) fn revoke(
    entry: &KeyEntry,
    store: &dyn SharedStore,
    now_ms: u64,
    req: &AdminRequest<'_>,
    clustered: bool,
) -> Acted {
    let (revocation, changed) =
        key_state::revoke(store, &entry.sha256, RevokedBy::Admin, now_ms).map_err(change_failed)?;
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
        "note": if clustered { CLUSTER_NOTE } else { LOCAL_NOTE },
        "config_change": {"keys": [{"name": entry.name, "enabled": false}]},
    });
    Ok((body, events))
}

pub(super) fn restore(
    entry: &KeyEntry,
    store: &dyn SharedStore,
    now_ms: u64,
    req: &AdminRequest<'_>,
) -> Acted {
    let now_secs = now_ms / 1000;
    if !entry.enabled {
        return Err(LocalReply::error(
            409,
            "The key is disabled in the configuration; set \"enabled\": true there to restore it",
        ));
    }
    let lifted = key_state::restore(store, &entry.sha256, now_ms).map_err(change_failed)?;
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
