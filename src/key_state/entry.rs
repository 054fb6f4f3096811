//! The layout of a key's shared-data entry, its creation at configure
//! time, and reading it (see the `key_state` module for what it holds).

use crate::auth::digest::{prefixed_hex, Digest};
use crate::auth::leak_detection::{AddressWindow, SLOTS, SLOT_LEN};
use crate::limits::token_bucket::{BucketState, STATE_LEN};
use crate::shared_store::{create_missing, SharedStore, StoreError};

pub const ENTRY_PREFIX: &str = "rag-guard/v2/key/";
/// Version 3 added the time of the last revocation change; version 2
/// entries (written by earlier builds, kept across a reload) still decode.
const VERSION: u8 = 3;
const VERSION_2: u8 = 2;
const BUCKETS_AT: usize = 1;
const REVOKED_AT: usize = BUCKETS_AT + STATE_LEN;
const WINDOW_AT: usize = REVOKED_AT + 1 + 8;
const CHANGED_AT: usize = WINDOW_AT + SLOTS * SLOT_LEN;
/// Encoded size of a [`KeyState`].
pub const ENTRY_LEN: usize = CHANGED_AT + 8;

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
    /// Unix milliseconds of the last revoke or restore (0: never), made here
    /// or taken from the cluster: in cluster mode the latest change wins.
    pub changed_ms: u64,
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
        self.addresses.encode_into(&mut out[WINDOW_AT..CHANGED_AT]);
        out[CHANGED_AT..].copy_from_slice(&self.changed_ms.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let changed_ms = match (bytes.first(), bytes.len()) {
            (Some(&VERSION), ENTRY_LEN) => {
                u64::from_le_bytes(bytes.get(CHANGED_AT..)?.try_into().ok()?)
            }
            // Version 2 kept no change time: a revocation counts as changed
            // when it was made (so cluster mode reports it), else never.
            (Some(&VERSION_2), CHANGED_AT) => match bytes.get(REVOKED_AT) {
                Some(0) | None => 0,
                Some(_) => {
                    u64::from_le_bytes(bytes.get(REVOKED_AT + 1..WINDOW_AT)?.try_into().ok()?)
                        .saturating_mul(1000)
                }
            },
            _ => return None,
        };
        let by = RevokedBy::from_code(bytes[REVOKED_AT])?;
        let at_secs = u64::from_le_bytes(bytes.get(REVOKED_AT + 1..WINDOW_AT)?.try_into().ok()?);
        Some(KeyState {
            buckets: BucketState::decode(&bytes[BUCKETS_AT..REVOKED_AT])?,
            revoked: by.map(|by| Revocation { by, at_secs }),
            addresses: AddressWindow::decode(&bytes[WINDOW_AT..CHANGED_AT])?,
            changed_ms,
        })
    }
}

pub fn entry_key(digest: &Digest) -> String {
    prefixed_hex(ENTRY_PREFIX, digest)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        s.changed_ms = 1234;
        let bytes = s.encode();
        assert_eq!(bytes.len(), 307);
        assert_eq!(KeyState::decode(&bytes), Some(s));
        assert_eq!(KeyState::decode(&bytes[..306]), None);
        // A version 2 entry (no change time) still reads; its revocation
        // counts as changed when it was made (second 7).
        let mut v2 = bytes[..CHANGED_AT].to_vec();
        v2[0] = VERSION_2;
        let expected = KeyState {
            changed_ms: 7_000,
            ..s
        };
        assert_eq!(KeyState::decode(&v2), Some(expected));
        let open = KeyState { revoked: None, ..s };
        let mut v2_open = open.encode()[..CHANGED_AT].to_vec();
        v2_open[0] = VERSION_2;
        assert_eq!(KeyState::decode(&v2_open).unwrap().changed_ms, 0);
        let mut bad = bytes;
        bad[REVOKED_AT] = 9;
        assert_eq!(KeyState::decode(&bad), None);
    }
}
