//! The host's shared key-value store, behind a trait.
//!
//! In Envoy this is proxy-wasm shared data: one store per process and
//! `vm_id`, seen by every worker thread, with compare-and-swap versions. The
//! filter implements [`SharedStore`] with host calls (`filter::host_store`);
//! tests use [`MemoryStore`], which copies Envoy's semantics, including the
//! surprising ones, so shared-data logic can be exercised natively and from
//! several threads.

use std::collections::HashMap;
use std::sync::Mutex;

/// A value read from the store with its CAS version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub cas: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The CAS version given to `set` is stale: someone wrote in between.
    CasMismatch,
    /// Any other host failure. The caller must fail closed.
    Host(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::CasMismatch => write!(f, "shared data CAS mismatch"),
            StoreError::Host(msg) => write!(f, "shared data host error: {msg}"),
        }
    }
}

/// Envoy shared data as the filter sees it.
///
/// Semantics that callers must design for (verified against Envoy 1.40):
/// - there is no delete: a key, once written, exists until the process exits;
/// - `set` with `cas = Some(v)` fails with `CasMismatch` when the stored
///   version is not `v`, **but succeeds unconditionally when the key does not
///   exist yet**;
/// - `set` with `cas = None` always succeeds.
pub trait SharedStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

/// Creates each of `keys` that does not exist yet with `initial`; existing
/// entries are left as they are. Returns how many were created. Meant for
/// configure time on the main thread, before workers serve: Envoy ignores
/// the CAS when it creates a key, so the request path never creates one.
pub fn create_missing(
    store: &dyn SharedStore,
    keys: impl Iterator<Item = String>,
    initial: &[u8],
) -> Result<usize, StoreError> {
    let mut created = 0;
    for key in keys {
        if store.get(&key)?.is_none() {
            store.set(&key, initial, None)?;
            created += 1;
        }
    }
    Ok(created)
}

/// In-process store with Envoy's shared-data semantics, safe to share
/// between threads. Used by native tests and by the CLI.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Versioned>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys ever written (there is no delete, as in Envoy).
    pub fn key_count(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let entries = self
            .entries
            .lock()
            .map_err(|_| StoreError::Host("poisoned".into()))?;
        Ok(entries.get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| StoreError::Host("poisoned".into()))?;
        match entries.get_mut(key) {
            Some(existing) => {
                if let Some(expected) = cas {
                    if expected != existing.cas {
                        return Err(StoreError::CasMismatch);
                    }
                }
                existing.value = value.to_vec();
                existing.cas = existing.cas.wrapping_add(1);
            }
            // Like Envoy: a CAS on a missing key is ignored and the write succeeds.
            None => {
                entries.insert(
                    key.to_string(),
                    Versioned {
                        value: value.to_vec(),
                        cas: 1,
                    },
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn cas_is_ignored_when_the_key_is_new() {
        let store = MemoryStore::new();
        store.set("k", b"a", Some(42)).unwrap();
        store.set("k2", b"b", Some(42)).unwrap();
        assert_eq!(store.get("k").unwrap().unwrap().value, b"a");
        assert_eq!(store.key_count(), 2);
    }

    #[test]
    fn stale_cas_is_refused() {
        let store = MemoryStore::new();
        store.set("k", b"a", None).unwrap();
        let v = store.get("k").unwrap().unwrap();
        store.set("k", b"b", Some(v.cas)).unwrap();
        assert_eq!(
            store.set("k", b"c", Some(v.cas)),
            Err(StoreError::CasMismatch)
        );
        assert_eq!(store.get("k").unwrap().unwrap().value, b"b");
    }

    #[test]
    fn cas_increments_are_exact_across_threads() {
        let store = Arc::new(MemoryStore::new());
        store.set("n", b"0", None).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        loop {
                            let cur = store.get("n").unwrap().unwrap();
                            let n: u64 = std::str::from_utf8(&cur.value).unwrap().parse().unwrap();
                            let next = (n + 1).to_string();
                            match store.set("n", next.as_bytes(), Some(cur.cas)) {
                                Ok(()) => break,
                                Err(StoreError::CasMismatch) => continue,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.get("n").unwrap().unwrap().value, b"2000");
    }
}
