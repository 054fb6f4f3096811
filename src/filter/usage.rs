//! This worker's usage counts: recorded per request without a host call,
//! added to shared data on the tick.

use std::cell::RefCell;

use crate::auth::digest::Digest;
use crate::ops::usage::{self, Accumulator, Kind};

use super::active::Active;
use super::host::HostStore;

thread_local! {
    /// This worker's usage counts since the last flush (one VM per worker,
    /// shared by all of its root contexts).
    static USAGE: RefCell<Accumulator> = RefCell::new(Accumulator::default());
}

/// Counts one request of a key for the usage report. No host call.
pub(super) fn record_usage(active: &Active, digest: &Digest, kind: Kind, now_ns: u64) {
    if !active.config.usage_enabled {
        return;
    }
    USAGE.with(|acc| {
        if let Ok(mut acc) = acc.try_borrow_mut() {
            acc.record(digest, kind, now_ns / 1_000_000_000);
        }
    });
}

/// Adds this worker's usage counts to shared data (on the tick).
pub(super) fn flush_usage(active: Option<&Active>) {
    USAGE.with(|acc| {
        let Ok(mut acc) = acc.try_borrow_mut() else {
            return;
        };
        if acc.is_empty() {
            return;
        }
        let report = usage::flush(&HostStore, &mut acc);
        if let Some(active) = active {
            active.metrics.count_cas_retries(report.cas_retries);
        }
    });
}
