//! The cluster sync on the timer: take the process's lease, send the
//! report, apply the answer (see the `sync` module for what is exchanged).
//! A failed call changes nothing here; the next tick tries again.

use proxy_wasm::types::LogLevel;

use crate::cluster::settings::{SYNC_METHOD, SYNC_SERVICE, SYNC_TIMEOUT_MS};
use crate::cluster::sync_wire;
use crate::ops::events::SecurityEvent;
use crate::sync::{apply, lease, report};

use super::active::Active;
use super::host::{self, HostStore};

/// A sync call in flight: its token and when it started.
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    pub(super) token: u32,
    pub(super) started_ms: u64,
}

/// Starts this interval's sync if this thread wins the lease.
pub(super) fn start_sync(active: &Active) -> Option<InFlight> {
    let settings = active.config.cluster.as_ref()?;
    let now_ns = host::now_unix_nanos()?;
    let lease = lease::acquire(&HostStore, now_ns / 1_000_000).ok()??;
    let message = match report::build(
        &active.config,
        &settings.domain,
        &lease,
        &HostStore,
        now_ns / 1_000_000_000,
    ) {
        Ok(request) => sync_wire::encode_sync(&request),
        Err(_) => {
            active.metrics.count_sync(false);
            return None;
        }
    };
    match host::dispatch_grpc(
        &settings.service,
        SYNC_SERVICE,
        SYNC_METHOD,
        &message,
        SYNC_TIMEOUT_MS,
    ) {
        Ok(token) => Some(InFlight {
            token,
            started_ms: lease.started_ms,
        }),
        Err(_) => {
            active.metrics.count_sync(false);
            None
        }
    }
}

/// Applies the sync answer (None: the call failed). `was_failing`: the
/// previous sync of this thread failed; the event is logged when that
/// changes, not every interval of an outage. Returns whether it failed.
pub(super) fn sync_answered(
    active: &Active,
    call: InFlight,
    answer: Option<&[u8]>,
    was_failing: bool,
) -> bool {
    let answer = answer.and_then(sync_wire::decode_sync);
    if answer.is_none() != was_failing {
        let (event, level) = if was_failing {
            ("cluster_sync_recovered", LogLevel::Info)
        } else {
            ("cluster_sync_failed", LogLevel::Warn)
        };
        let e = SecurityEvent {
            event,
            reason: if was_failing {
                "ok"
            } else {
                "cluster_unavailable"
            },
            ..Default::default()
        };
        host::log(level, &e.to_json());
    }
    let Some(answer) = answer else {
        active.metrics.count_sync(false);
        return true;
    };
    active.metrics.count_sync(true);
    let applied = apply::apply(&active.config, &HostStore, &answer);
    active.metrics.count_adopted(applied.adopted.len());
    for adopted in &applied.adopted {
        let Some(entry) = active.config.keys.iter().find(|k| k.name == adopted.name) else {
            continue;
        };
        let (event, by) = match (adopted.change.revoked, adopted.change.by) {
            (false, _) => ("key_restored", None),
            (true, sync_wire::BY_LEAK_DETECTION) => ("key_revoked", Some("leak_detection")),
            (true, _) => ("key_revoked", Some("admin")),
        };
        let e = SecurityEvent {
            by,
            ..crate::ops::admin::key_event(event, entry, "cluster", None)
        };
        host::log(LogLevel::Warn, &e.to_json());
    }
    for (name, distinct) in &answer.leaks {
        let Some(entry) = active.config.keys.iter().find(|k| &k.name == name) else {
            continue;
        };
        active.metrics.count_leak(entry, "report");
        let e = SecurityEvent {
            event: "key_leak_detected",
            reason: "too_many_addresses",
            key_name: Some(entry.name.clone()),
            tier: Some(entry.tier.clone()),
            addresses: Some(*distinct),
            window_secs: Some(active.config.leak_detection.window_secs),
            action: Some("report"),
            by: Some("cluster"),
            ..Default::default()
        };
        host::log(LogLevel::Error, &e.to_json());
    }
    let answered = lease::Answered {
        epoch: answer.epoch,
        version: answer.version,
        applied: applied.failed == 0,
        started_ms: call.started_ms,
    };
    if lease::record(&HostStore, answered).is_err() {
        host::log(
            LogLevel::Warn,
            "rag-guard: could not record the cluster sync",
        );
    }
    false
}
