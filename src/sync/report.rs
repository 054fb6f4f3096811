//! The `SyncRequest` of one replica: for each configured key with something
//! to say, its latest revocation change (revoked or restored, and when),
//! the addresses live in its leak-detection window, and this replica's
//! usage totals of today and yesterday.
//!
//! Everything is read from shared data (two gets per configured key), so
//! whichever thread holds the lease reports the same thing. Only what
//! changed since the start of the last sync the service answered (less a
//! margin, [`RESEND_MARGIN_MS`]) is sent: a change, an address or a day total
//! sent twice counts once, and what a failed sync carried goes again with
//! the next one.

use crate::auth::leak_detection::LeakAction;
use crate::cluster::sync_wire::{
    Change, DayUsage, KeyReport, LeakPolicy, Seen, SyncRequest, BY_ADMIN, BY_LEAK_DETECTION,
};
use crate::config::Config;
use crate::key_state::{self, KeyState, RevokedBy};
use crate::ops::usage::{self, day_of};
use crate::shared_store::{SharedStore, StoreError};

use super::lease::Lease;

/// What changed this long before the last answered sync started is sent
/// again (usage reaches shared data up to one timer interval late, and
/// workers' clocks are read at different moments).
pub const RESEND_MARGIN_MS: u64 = 2_000;

/// The revocation state of an entry as the cluster sees it; None when it
/// never changed.
pub fn change_of(state: &KeyState) -> Option<Change> {
    if state.changed_ms == 0 {
        return None;
    }
    Some(match state.revoked {
        Some(r) => Change {
            revoked: true,
            by: match r.by {
                RevokedBy::Admin => BY_ADMIN,
                RevokedBy::LeakDetection => BY_LEAK_DETECTION,
            },
            at_secs: r.at_secs,
            changed_ms: state.changed_ms,
        },
        None => Change {
            revoked: false,
            by: 0,
            at_secs: 0,
            changed_ms: state.changed_ms,
        },
    })
}

/// Builds the report. `domain` is the cluster section's.
pub fn build<'c>(
    config: &'c Config,
    domain: &'c str,
    lease: &'c Lease,
    store: &dyn SharedStore,
    now_secs: u64,
) -> Result<SyncRequest<'c>, StoreError> {
    let detection = &config.leak_detection;
    let now32 = u32::try_from(now_secs).unwrap_or(u32::MAX);
    let today = day_of(now_secs);
    let since_ms = lease.acked_ms.saturating_sub(RESEND_MARGIN_MS);
    let since_secs = since_ms / 1000;
    let since32 = u32::try_from(since_secs).unwrap_or(u32::MAX);
    let mut keys = Vec::new();
    for entry in config.keys.iter() {
        let state = key_state::read(store, &entry.sha256)?;
        let used = usage::read(store, &entry.sha256)?;
        let mut report = KeyReport {
            name: &entry.name,
            leak: LeakPolicy {
                max_addresses: detection.max_addresses,
                window_secs: detection.window_secs,
                revoke: detection.action == LeakAction::Revoke,
            },
            ..KeyReport::default()
        };
        if let Some(state) = &state {
            report.change = change_of(state).filter(|c| c.changed_ms >= since_ms);
            if detection.enabled {
                report.seen = state
                    .addresses
                    .slots
                    .iter()
                    .filter(|s| {
                        s.tag != 0
                            && s.last_seen >= since32
                            && now32.saturating_sub(s.last_seen) < detection.window_secs
                    })
                    .map(|s| Seen {
                        tag: s.tag,
                        last_seen: s.last_seen,
                    })
                    .collect();
            }
        }
        if let Some(used) = used.filter(|u| u.request_count > 0 && u.last_used >= since_secs) {
            report.request_count = used.request_count;
            report.last_used = used.last_used;
            for day in [today.saturating_sub(1), today] {
                let c = used.day(day);
                if c.total() > 0 {
                    report.days.push(DayUsage {
                        day,
                        admitted: c.admitted,
                        rate_limited: c.rate_limited,
                        rejected: c.rejected,
                    });
                }
            }
        }
        let quiet = report.change.is_none() && report.seen.is_empty() && report.days.is_empty();
        if !quiet {
            keys.push(report);
        }
    }
    Ok(SyncRequest {
        domain,
        replica: &lease.replica,
        since: lease.since,
        epoch: lease.epoch,
        keys,
    })
}
