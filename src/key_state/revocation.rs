//! Changes to a key's entry outside the request path: runtime revocation
//! (admin API, leak detection) and restore, each one CAS loop.

use crate::auth::digest::Digest;
use crate::auth::leak_detection::AddressWindow;
use crate::key_state::entry::{entry_key, KeyState, Revocation, RevokedBy, MAX_ADMIN_CAS_ATTEMPTS};
use crate::shared_store::{SharedStore, StoreError};

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

/// The time to stamp a change with: now, but always after the change it
/// replaces (a clock behind another replica's must not make a new change
/// look older than the one it undoes; the latest change wins in cluster
/// mode).
pub fn later(now_ms: u64, previous_ms: u64) -> u64 {
    now_ms.max(previous_ms.saturating_add(1))
}

/// Revokes the key at runtime (kept if it already is). `now_ms` is Unix
/// milliseconds. Returns the revocation in force and whether this call made
/// it.
pub fn revoke(
    store: &dyn SharedStore,
    digest: &Digest,
    by: RevokedBy,
    now_ms: u64,
) -> Result<(Revocation, bool), ChangeError> {
    let (state, changed) = update(store, digest, |s| {
        if s.revoked.is_some() {
            return false;
        }
        s.revoked = Some(Revocation {
            by,
            at_secs: now_ms / 1000,
        });
        s.changed_ms = later(now_ms, s.changed_ms);
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
    now_ms: u64,
) -> Result<Option<Revocation>, ChangeError> {
    let mut lifted = None;
    update(store, digest, |s| {
        lifted = s.revoked.take();
        s.addresses = AddressWindow::default();
        if lifted.is_some() {
            s.changed_ms = later(now_ms, s.changed_ms);
        }
        lifted.is_some()
    })?;
    Ok(lifted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::digest::sha256;
    use crate::key_state::entry::{ensure_entries, read};
    use crate::shared_store::MemoryStore;

    #[test]
    fn revoke_and_restore_are_idempotent_and_need_an_entry() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        assert_eq!(
            revoke(&store, &d, RevokedBy::Admin, 1000),
            Err(ChangeError::NoEntry)
        );
        ensure_entries(&store, [d].iter()).unwrap();
        let (r, made) = revoke(&store, &d, RevokedBy::Admin, 10_000).unwrap();
        assert!(made);
        assert_eq!((r.by, r.at_secs), (RevokedBy::Admin, 10));
        // A second revocation keeps the first one's cause and time.
        let (r2, made2) = revoke(&store, &d, RevokedBy::LeakDetection, 20_000).unwrap();
        assert!(!made2);
        assert_eq!(r2, r);
        assert_eq!(read(&store, &d).unwrap().unwrap().revoked, Some(r));
        // Entries are never reset by ensure (a reload).
        assert_eq!(ensure_entries(&store, [d].iter()).unwrap(), 0);
        assert_eq!(read(&store, &d).unwrap().unwrap().revoked, Some(r));
        assert_eq!(read(&store, &d).unwrap().unwrap().changed_ms, 10_000);
        assert_eq!(restore(&store, &d, 30_000).unwrap(), Some(r));
        assert_eq!(restore(&store, &d, 40_000).unwrap(), None);
        let after = read(&store, &d).unwrap().unwrap();
        assert_eq!((after.revoked, after.changed_ms), (None, 30_000));
        // A clock behind the last change still stamps a later one.
        revoke(&store, &d, RevokedBy::Admin, 5_000).unwrap();
        assert_eq!(read(&store, &d).unwrap().unwrap().changed_ms, 30_001);
    }
}
