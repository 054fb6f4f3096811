//! The sync lease: one shared-data entry per Envoy process,
//! `rag-guard/v2/cluster/sync` (41 bytes): version (1) | last sync started,
//! Unix ms (8) | revocation version applied (8) | replica id (8) | start of
//! the last sync the service answered, Unix ms (8) | the service's epoch
//! that version belongs to (8).
//!
//! Every thread's timer tries to take the lease; the one whose CAS wins
//! makes the process's sync call, so a process syncs about once per
//! interval whatever its worker count. The replica id is drawn once per
//! process (shared data dies with the process, so a restarted Envoy is a new
//! replica: its earlier usage stays counted under the old id). The answered
//! sync's start lets the next report leave out what the service already
//! has; the epoch (drawn by the service when its Redis has none) tells a
//! Redis that lost its data, or another domain, from the one the version
//! was counted in.

use crate::auth::digest::to_hex;
use crate::cluster::settings::SYNC_INTERVAL_MS;
use crate::shared_store::{SharedStore, StoreError};

pub const LEASE_KEY: &str = "rag-guard/v2/cluster/sync";
const VERSION: u8 = 2;
const LEN: usize = 41;
const CAS_ATTEMPTS: usize = 8;
/// A timer that fires a little early still takes the lease.
const SLACK_MS: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct State {
    at_ms: u64,
    since: u64,
    replica: [u8; 8],
    acked_ms: u64,
    epoch: u64,
}

impl State {
    fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0] = VERSION;
        out[1..9].copy_from_slice(&self.at_ms.to_le_bytes());
        out[9..17].copy_from_slice(&self.since.to_le_bytes());
        out[17..25].copy_from_slice(&self.replica);
        out[25..33].copy_from_slice(&self.acked_ms.to_le_bytes());
        out[33..].copy_from_slice(&self.epoch.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<State> {
        if bytes.len() != LEN || bytes[0] != VERSION {
            return None;
        }
        let u = |i: usize| Some(u64::from_le_bytes(bytes.get(i..i + 8)?.try_into().ok()?));
        Some(State {
            at_ms: u(1)?,
            since: u(9)?,
            replica: bytes.get(17..25)?.try_into().ok()?,
            acked_ms: u(25)?,
            epoch: u(33)?,
        })
    }
}

/// A sync this thread may make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Hex replica id of this process.
    pub replica: String,
    /// Revocation version already applied, in `epoch`.
    pub since: u64,
    pub epoch: u64,
    /// Start of the last answered sync (0: none yet): the report may leave
    /// out what has not changed since (with a margin).
    pub acked_ms: u64,
    /// When this sync started.
    pub started_ms: u64,
}

/// Creates the entry (at configure time) with a fresh replica id; a
/// readable one is kept. Returns whether it was written.
pub fn open(store: &dyn SharedStore, replica: [u8; 8]) -> Result<bool, StoreError> {
    if let Some(v) = store.get(LEASE_KEY)? {
        if State::decode(&v.value).is_some() {
            return Ok(false);
        }
    }
    let state = State {
        replica,
        ..State::default()
    };
    store.set(LEASE_KEY, &state.encode(), None)?;
    Ok(true)
}

/// Takes the lease if the last sync started at least an interval ago.
/// None: another thread has it (or the entry is missing).
pub fn acquire(store: &dyn SharedStore, now_ms: u64) -> Result<Option<Lease>, StoreError> {
    let Some(current) = store.get(LEASE_KEY)? else {
        return Ok(None);
    };
    let Some(mut state) = State::decode(&current.value) else {
        return Ok(None);
    };
    if now_ms.saturating_add(SLACK_MS) < state.at_ms.saturating_add(SYNC_INTERVAL_MS) {
        return Ok(None);
    }
    state.at_ms = now_ms;
    match store.set(LEASE_KEY, &state.encode(), Some(current.cas)) {
        Ok(()) => Ok(Some(Lease {
            replica: to_hex(&state.replica),
            since: state.since,
            epoch: state.epoch,
            acked_ms: state.acked_ms,
            started_ms: now_ms,
        })),
        Err(StoreError::CasMismatch) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What an answered sync leaves in the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// The service's epoch and the revocation version now applied.
    pub epoch: u64,
    pub version: u64,
    /// Whether every revocation of the answer was applied (if not, the
    /// version stays, so they come again).
    pub applied: bool,
    /// When the answered sync started.
    pub started_ms: u64,
}

/// Records an answered sync: a new epoch starts the version (and the
/// reports) over; otherwise the version only grows.
pub fn record(store: &dyn SharedStore, answered: Answered) -> Result<(), StoreError> {
    for _ in 0..CAS_ATTEMPTS {
        let Some(current) = store.get(LEASE_KEY)? else {
            return Ok(());
        };
        let Some(mut state) = State::decode(&current.value) else {
            return Ok(());
        };
        if state.epoch != answered.epoch {
            // Another Redis (or domain): everything is reported again,
            // unless that sync already was a full report (nothing answered
            // before it).
            state.epoch = answered.epoch;
            state.since = if answered.applied {
                answered.version
            } else {
                0
            };
            state.acked_ms = if state.acked_ms == 0 {
                answered.started_ms
            } else {
                0
            };
        } else {
            if answered.applied {
                state.since = state.since.max(answered.version);
            }
            state.acked_ms = state.acked_ms.max(answered.started_ms);
        }
        match store.set(LEASE_KEY, &state.encode(), Some(current.cas)) {
            Ok(()) => return Ok(()),
            Err(StoreError::CasMismatch) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::CasMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_store::MemoryStore;

    fn answered(epoch: u64, version: u64, started_ms: u64) -> Answered {
        Answered {
            epoch,
            version,
            applied: true,
            started_ms,
        }
    }

    #[test]
    fn one_holder_per_interval_and_the_version_only_grows_within_an_epoch() {
        let store = MemoryStore::new();
        assert_eq!(acquire(&store, 10_000).unwrap(), None, "no entry yet");
        assert!(open(&store, [1; 8]).unwrap());
        assert!(!open(&store, [2; 8]).unwrap(), "kept");
        let lease = acquire(&store, 10_000).unwrap().unwrap();
        assert_eq!(lease.replica, "0101010101010101");
        assert_eq!(
            (lease.since, lease.acked_ms, lease.started_ms),
            (0, 0, 10_000)
        );
        assert_eq!(acquire(&store, 10_100).unwrap(), None);
        assert!(acquire(&store, 10_000 + SYNC_INTERVAL_MS - SLACK_MS)
            .unwrap()
            .is_some());
        record(&store, answered(9, 5, 10_400)).unwrap();
        record(&store, answered(9, 3, 10_000)).unwrap();
        let lease = acquire(&store, 20_000).unwrap().unwrap();
        assert_eq!((lease.epoch, lease.since, lease.acked_ms), (9, 5, 10_400));
        // Not all applied: the version stays, the reports move on.
        record(
            &store,
            Answered {
                applied: false,
                ..answered(9, 8, 20_000)
            },
        )
        .unwrap();
        let lease = acquire(&store, 30_000).unwrap().unwrap();
        assert_eq!((lease.since, lease.acked_ms), (5, 20_000));
        // A new epoch (Redis lost its data): start over.
        record(&store, answered(10, 2, 30_000)).unwrap();
        let lease = acquire(&store, 40_000).unwrap().unwrap();
        assert_eq!((lease.epoch, lease.since, lease.acked_ms), (10, 2, 0));
    }

    #[test]
    fn threads_racing_for_the_lease_get_one_holder() {
        let store = std::sync::Arc::new(MemoryStore::new());
        open(&*store, [3; 8]).unwrap();
        let winners: usize = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || usize::from(acquire(&*store, 50_000).unwrap().is_some()))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(winners, 1);
    }
}
