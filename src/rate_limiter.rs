//! Per-key token buckets in shared data, exact across Envoy workers.
//!
//! Each configured key has exactly one shared-data entry,
//! `rag-guard/v1/bucket/<sha256 hex>`, holding all three of its buckets (33
//! bytes, see `token_bucket::BucketState`), so one compare-and-swap covers
//! them. A request does one `get` and, when admitted, one CAS `set`; a lost
//! CAS race is retried up to [`MAX_CAS_ATTEMPTS`] times, after which the
//! request is refused (never admitted for free).
//!
//! Envoy ignores the CAS when a key does not exist yet, so two workers could
//! both "create" a bucket and lose an update. Buckets are therefore created
//! when a configuration is applied ([`ensure_buckets`], on the main thread
//! before any worker serves with that configuration), and the request path
//! never creates one: a missing bucket refuses the request. Entries are
//! never reset by a later configuration, so a reload keeps what each key has
//! spent; a key removed from the configuration keeps its 33-byte entry
//! (shared data has no delete), so the entry count is bounded by the keys
//! ever configured in the process.

use crate::digest::{to_hex, Digest};
use crate::shared_store::{SharedStore, StoreError};
use crate::token_bucket::{self, BucketState, BucketView, Limits, Verdict};

pub const BUCKET_PREFIX: &str = "rag-guard/v1/bucket/";

/// CAS attempts per request before it is refused with 429.
pub const MAX_CAS_ATTEMPTS: usize = 16;

pub fn bucket_key(digest: &Digest) -> String {
    format!("{BUCKET_PREFIX}{}", to_hex(digest))
}

/// Creates the bucket entry of every digest that has none; existing entries
/// (and what they have spent) are left alone. Returns how many were created.
pub fn ensure_buckets<'a>(
    store: &dyn SharedStore,
    digests: impl Iterator<Item = &'a Digest>,
) -> Result<usize, StoreError> {
    let mut created = 0;
    for digest in digests {
        let key = bucket_key(digest);
        if store.get(&key)?.is_none() {
            store.set(&key, &BucketState::default().encode(), None)?;
            created += 1;
        }
    }
    Ok(created)
}

/// The result of trying to spend tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// Admitted or refused by the buckets.
    Decided(Verdict),
    /// Every CAS attempt lost a race: refused.
    Contention { attempts: usize },
    /// The key has no bucket entry (or an unreadable one): refused.
    NoBucket,
}

/// Spends `cost` tokens of the key's buckets, if all three have room.
pub fn spend(
    store: &dyn SharedStore,
    digest: &Digest,
    limits: &Limits,
    cost: u32,
    now_ns: u64,
) -> Result<Spend, StoreError> {
    let key = bucket_key(digest);
    for _ in 0..MAX_CAS_ATTEMPTS {
        let Some(current) = store.get(&key)? else {
            return Ok(Spend::NoBucket);
        };
        let Some(state) = BucketState::decode(&current.value) else {
            return Ok(Spend::NoBucket);
        };
        let verdict = token_bucket::check(&state, limits, cost, now_ns);
        if !verdict.allowed {
            return Ok(Spend::Decided(verdict));
        }
        match store.set(&key, &verdict.state.encode(), Some(current.cas)) {
            Ok(()) => return Ok(Spend::Decided(verdict)),
            Err(StoreError::CasMismatch) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Spend::Contention {
        attempts: MAX_CAS_ATTEMPTS,
    })
}

/// The key's buckets at `now_ns`, without spending anything.
pub fn peek(
    store: &dyn SharedStore,
    digest: &Digest,
    limits: &Limits,
    now_ns: u64,
) -> Result<Option<[BucketView; 3]>, StoreError> {
    Ok(store
        .get(&bucket_key(digest))?
        .and_then(|v| BucketState::decode(&v.value))
        .map(|state| token_bucket::peek(&state, limits, now_ns)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;
    use crate::shared_store::MemoryStore;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    const NOW: u64 = 1_800_000_000_000_000_000;
    const LIMITS: Limits = Limits {
        per_minute: 1000,
        per_hour: 100_000,
        burst: 10,
    };

    fn admitted(s: &Spend) -> bool {
        matches!(s, Spend::Decided(v) if v.allowed)
    }

    #[test]
    fn the_request_path_never_creates_entries() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        assert_eq!(spend(&store, &d, &LIMITS, 1, NOW).unwrap(), Spend::NoBucket);
        assert_eq!(peek(&store, &d, &LIMITS, NOW).unwrap(), None);
        assert_eq!(store.key_count(), 0);
        assert_eq!(ensure_buckets(&store, [d].iter()).unwrap(), 1);
        assert!(admitted(&spend(&store, &d, &LIMITS, 1, NOW).unwrap()));
        assert_eq!(store.key_count(), 1);
    }

    #[test]
    fn ensure_keeps_what_was_spent() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        ensure_buckets(&store, [d].iter()).unwrap();
        for _ in 0..4 {
            spend(&store, &d, &LIMITS, 1, NOW).unwrap();
        }
        assert_eq!(ensure_buckets(&store, [d].iter()).unwrap(), 0);
        assert_eq!(
            peek(&store, &d, &LIMITS, NOW).unwrap().unwrap()[0].remaining,
            6
        );
    }

    #[test]
    fn corrupt_entries_refuse() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        store.set(&bucket_key(&d), b"junk", None).unwrap();
        assert_eq!(spend(&store, &d, &LIMITS, 1, NOW).unwrap(), Spend::NoBucket);
    }

    /// Many threads hammer one bucket at the same instant: exactly `burst`
    /// requests get through, never more, in every round.
    #[test]
    fn no_over_admission_across_threads() {
        let store = Arc::new(MemoryStore::new());
        let keys = [sha256(b"a"), sha256(b"b")];
        ensure_buckets(store.as_ref(), keys.iter()).unwrap();
        for round in 0..20u64 {
            let now = NOW + round * 3_600_000_000_000; // an hour apart: full refill
            let threads = 8;
            let per_thread = 25;
            let barrier = Arc::new(Barrier::new(threads));
            let counts: Arc<[AtomicUsize; 2]> =
                Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (store, barrier, counts) = (store.clone(), barrier.clone(), counts.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        for i in 0..per_thread {
                            let k = (t + i) % 2;
                            let s = spend(store.as_ref(), &keys[k], &LIMITS, 1, now).unwrap();
                            if admitted(&s) {
                                counts[k].fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(counts[0].load(Ordering::SeqCst), 10, "round {round}, key a");
            assert_eq!(counts[1].load(Ordering::SeqCst), 10, "round {round}, key b");
        }
    }
}
