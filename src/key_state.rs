//! The runtime state of one configured key, shared by every worker: its
//! token buckets, a runtime revocation, and its leak-detection address
//! window, in one shared-data entry `rag-guard/v2/key/<sha256 hex>`
//! ([`ENTRY_LEN`] = 299 bytes).
//!
//! One entry per key means one `get` and at most one CAS `set` per request
//! cover the limits, the revocation check and the address count together;
//! a revocation written by the admin API or by leak detection is seen by the
//! next request on any worker.
//!
//! Entries are created when a configuration is applied ([`ensure_entries`],
//! on the main thread before workers serve it), never on the request path,
//! because Envoy ignores the CAS when it creates a key. Entries are never
//! reset by a later configuration, so spent tokens and runtime revocations
//! survive listener and VM reloads (not a process restart: shared data lives
//! in the Envoy process). Shared data has no delete: a key removed from the
//! configuration keeps its entry, so the entry count is bounded by the keys
//! ever configured in the process.
//!
//! Layout: version (1) | buckets (`token_bucket::STATE_LEN` = 33) |
//! revocation kind (1) | revoked at, Unix seconds (8) | address window
//! (`leak_detection::SLOTS` x 8).

use crate::digest::{to_hex, Digest};
use crate::leak_detection::{AddressWindow, SLOTS, SLOT_LEN};
use crate::shared_store::{create_missing, SharedStore, StoreError};
use crate::token_bucket::{BucketState, STATE_LEN};

pub const ENTRY_PREFIX: &str = "rag-guard/v2/key/";
const VERSION: u8 = 2;
const BUCKETS_AT: usize = 1;
const REVOKED_AT: usize = BUCKETS_AT + STATE_LEN;
const WINDOW_AT: usize = REVOKED_AT + 1 + 8;
/// Encoded size of a [`KeyState`].
pub const ENTRY_LEN: usize = WINDOW_AT + SLOTS * SLOT_LEN;

/// CAS attempts of an admin change before it gives up (503).
pub const MAX_ADMIN_CAS_ATTEMPTS: usize = 16;

/// Who revoked a key at runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedBy {
    Admin,
    LeakDetection,
}

impl RevokedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokedBy::Admin => "admin",
            RevokedBy::LeakDetection => "leak_detection",
        }
    }

    fn code(self) -> u8 {
        match self {
            RevokedBy::Admin => 1,
            RevokedBy::LeakDetection => 2,
        }
    }

    fn from_code(code: u8) -> Option<Option<Self>> {
        match code {
            0 => Some(None),
            1 => Some(Some(RevokedBy::Admin)),
            2 => Some(Some(RevokedBy::LeakDetection)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    pub by: RevokedBy,
    pub at_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyState {
    pub buckets: BucketState,
    pub revoked: Option<Revocation>,
    pub addresses: AddressWindow,
}

impl KeyState {
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0] = VERSION;
        out[BUCKETS_AT..REVOKED_AT].copy_from_slice(&self.buckets.encode());
        if let Some(r) = self.revoked {
            out[REVOKED_AT] = r.by.code();
            out[REVOKED_AT + 1..WINDOW_AT].copy_from_slice(&r.at_secs.to_le_bytes());
        }
        self.addresses.encode_into(&mut out[WINDOW_AT..]);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ENTRY_LEN || bytes[0] != VERSION {
            return None;
        }
        let by = RevokedBy::from_code(bytes[REVOKED_AT])?;
        let at_secs = u64::from_le_bytes(bytes.get(REVOKED_AT + 1..WINDOW_AT)?.try_into().ok()?);
        Some(KeyState {
            buckets: BucketState::decode(&bytes[BUCKETS_AT..REVOKED_AT])?,
            revoked: by.map(|by| Revocation { by, at_secs }),
            addresses: AddressWindow::decode(&bytes[WINDOW_AT..])?,
        })
    }
}

pub fn entry_key(digest: &Digest) -> String {
    format!("{ENTRY_PREFIX}{}", to_hex(digest))
}

/// Creates the entry of every digest that has none; existing entries (what
/// they have spent, their revocation) are left alone. Returns how many were
/// created.
pub fn ensure_entries<'a>(
    store: &dyn SharedStore,
    digests: impl Iterator<Item = &'a Digest>,
) -> Result<usize, StoreError> {
    create_missing(store, digests.map(entry_key), &KeyState::default().encode())
}

/// The key's state, if it has a readable entry.
pub fn read(store: &dyn SharedStore, digest: &Digest) -> Result<Option<KeyState>, StoreError> {
    Ok(store
        .get(&entry_key(digest))?
        .and_then(|v| KeyState::decode(&v.value)))
}

/// Why a change of the entry could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// The key has no entry (or an unreadable one).
    NoEntry,
    /// Every CAS attempt lost a race.
    Contention,
    Store(StoreError),
}

/// Applies `change` to the entry with CAS; `change` returns false when
/// nothing needs writing. Returns the state after the change and whether it
/// was written.
pub fn update(
    store: &dyn SharedStore,
    digest: &Digest,
    mut change: impl FnMut(&mut KeyState) -> bool,
) -> Result<(KeyState, bool), ChangeError> {
    let key = entry_key(digest);
    for _ in 0..MAX_ADMIN_CAS_ATTEMPTS {
        let current = store.get(&key).map_err(ChangeError::Store)?;
        let Some(current) = current else {
            return Err(ChangeError::NoEntry);
        };
        let Some(mut state) = KeyState::decode(&current.value) else {
            return Err(ChangeError::NoEntry);
        };
        if !change(&mut state) {
            return Ok((state, false));
        }
        match store.set(&key, &state.encode(), Some(current.cas)) {
            Ok(()) => return Ok((state, true)),
            Err(StoreError::CasMismatch) => continue,
            Err(e) => return Err(ChangeError::Store(e)),
        }
    }
    Err(ChangeError::Contention)
}

/// Revokes the key at runtime (kept if it already is). Returns the
/// revocation in force and whether this call made it.
pub fn revoke(
    store: &dyn SharedStore,
    digest: &Digest,
    by: RevokedBy,
    now_secs: u64,
) -> Result<(Revocation, bool), ChangeError> {
    let (state, changed) = update(store, digest, |s| {
        if s.revoked.is_some() {
            return false;
        }
        s.revoked = Some(Revocation {
            by,
            at_secs: now_secs,
        });
        true
    })?;
    state
        .revoked
        .map(|r| (r, changed))
        .ok_or(ChangeError::NoEntry)
}

/// Lifts a runtime revocation and forgets the key's address window (or the
/// next request would trip leak detection again). Returns the revocation
/// that was lifted, if any.
pub fn restore(
    store: &dyn SharedStore,
    digest: &Digest,
) -> Result<Option<Revocation>, ChangeError> {
    let mut lifted = None;
    update(store, digest, |s| {
        lifted = s.revoked.take();
        s.addresses = AddressWindow::default();
        lifted.is_some()
    })?;
    Ok(lifted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;
    use crate::shared_store::MemoryStore;

    #[test]
    fn encoding_round_trips_and_rejects_junk() {
        let mut s = KeyState::default();
        s.buckets.at_ns = 42;
        s.buckets.used = [1, 2, 3];
        s.revoked = Some(Revocation {
            by: RevokedBy::LeakDetection,
            at_secs: 7,
        });
        s.addresses.observe(5, 6, 300, true);
        let bytes = s.encode();
        assert_eq!(bytes.len(), 299);
        assert_eq!(KeyState::decode(&bytes), Some(s));
        assert_eq!(KeyState::decode(&bytes[..298]), None);
        let mut bad = bytes;
        bad[REVOKED_AT] = 9;
        assert_eq!(KeyState::decode(&bad), None);
    }

    #[test]
    fn revoke_and_restore_are_idempotent_and_need_an_entry() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        assert_eq!(
            revoke(&store, &d, RevokedBy::Admin, 1),
            Err(ChangeError::NoEntry)
        );
        ensure_entries(&store, [d].iter()).unwrap();
        let (r, made) = revoke(&store, &d, RevokedBy::Admin, 10).unwrap();
        assert!(made);
        assert_eq!((r.by, r.at_secs), (RevokedBy::Admin, 10));
        // A second revocation keeps the first one's cause and time.
        let (r2, made2) = revoke(&store, &d, RevokedBy::LeakDetection, 20).unwrap();
        assert!(!made2);
        assert_eq!(r2, r);
        assert_eq!(read(&store, &d).unwrap().unwrap().revoked, Some(r));
        // Entries are never reset by ensure (a reload).
        assert_eq!(ensure_entries(&store, [d].iter()).unwrap(), 0);
        assert_eq!(read(&store, &d).unwrap().unwrap().revoked, Some(r));
        assert_eq!(restore(&store, &d).unwrap(), Some(r));
        assert_eq!(restore(&store, &d).unwrap(), None);
        assert_eq!(read(&store, &d).unwrap().unwrap().revoked, None);
    }
}
