//! The sync lease: one shared-data entry per Envoy process,
//! `rag-guard/v2/cluster/sync` (25 bytes): version (1) | last sync started,
//! Unix ms (8) | revocation version applied (8) | replica id (8).
//!
//! Every thread's timer tries to take the lease; the one whose CAS wins
//! makes the process's sync call, so a process syncs about once per
//! interval whatever its worker count. The replica id is drawn once per
//! process (shared data dies with the process, so a restarted Envoy is a new
//! replica: its earlier usage stays counted under the old id).

use crate::auth::digest::to_hex;
use crate::cluster::settings::SYNC_INTERVAL_MS;
use crate::shared_store::{SharedStore, StoreError};

pub const LEASE_KEY: &str = "rag-guard/v2/cluster/sync";
const VERSION: u8 = 1;
const LEN: usize = 25;
const CAS_ATTEMPTS: usize = 8;
/// A timer that fires a little early still takes the lease.
const SLACK_MS: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct State {
    at_ms: u64,
    since: u64,
    replica: [u8; 8],
}

impl State {
    fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0] = VERSION;
        out[1..9].copy_from_slice(&self.at_ms.to_le_bytes());
        out[9..17].copy_from_slice(&self.since.to_le_bytes());
        out[17..].copy_from_slice(&self.replica);
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
            replica: bytes.get(17..)?.try_into().ok()?,
        })
    }
}

/// A sync this thread may make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Hex replica id of this process.
    pub replica: String,
    /// Revocation version already applied.
    pub since: u64,
}

/// Creates the entry (at configure time) with a fresh replica id; an
/// existing one is kept. Returns whether it was created.
pub fn open(store: &dyn SharedStore, replica: [u8; 8]) -> Result<bool, StoreError> {
    if store.get(LEASE_KEY)?.is_some() {
        return Ok(false);
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
        })),
        Err(StoreError::CasMismatch) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Records that revocations up to `version` are applied (never goes back).
pub fn record_version(store: &dyn SharedStore, version: u64) -> Result<(), StoreError> {
    for _ in 0..CAS_ATTEMPTS {
        let Some(current) = store.get(LEASE_KEY)? else {
            return Ok(());
        };
        let Some(mut state) = State::decode(&current.value) else {
            return Ok(());
        };
        if state.since >= version {
            return Ok(());
        }
        state.since = version;
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

    #[test]
    fn one_holder_per_interval_and_the_version_only_grows() {
        let store = MemoryStore::new();
        assert_eq!(acquire(&store, 10_000).unwrap(), None, "no entry yet");
        assert!(open(&store, [1; 8]).unwrap());
        assert!(!open(&store, [2; 8]).unwrap(), "kept");
        let lease = acquire(&store, 10_000).unwrap().unwrap();
        assert_eq!(lease.replica, "0101010101010101");
        assert_eq!(lease.since, 0);
        assert_eq!(acquire(&store, 10_100).unwrap(), None);
        assert!(acquire(&store, 10_000 + SYNC_INTERVAL_MS - SLACK_MS)
            .unwrap()
            .is_some());
        record_version(&store, 5).unwrap();
        record_version(&store, 3).unwrap();
        let lease = acquire(&store, 20_000).unwrap().unwrap();
        assert_eq!(lease.since, 5);
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
