//! Per-key token buckets in shared data, exact across Envoy workers, with
//! the runtime revocation check and leak detection done in the same step.
//!
//! Each configured key has exactly one shared-data entry (see `key_state`)
//! holding its three buckets, its runtime revocation and its address window,
//! so one compare-and-swap covers them all. A request does one `get` and at
//! most one CAS `set`: always when admitted, and when refused only if its
//! address must be recorded. A lost CAS race is retried up to
//! [`MAX_CAS_ATTEMPTS`] times, after which the request is refused (never
//! admitted for free). The request path never creates an entry: a missing
//! one refuses the request (`key_state::ensure_entries` creates them when a
//! configuration is applied).

use crate::auth::digest::Digest;
use crate::auth::leak_detection::{LeakAction, LeakDetection};
use crate::key_state::entry::{self, KeyState, Revocation, RevokedBy};
use crate::limits::token_bucket::{self, BucketView, LimitKind, Limits, Verdict};
use crate::shared_store::{SharedStore, StoreError};

/// CAS attempts per request before it is refused with 429.
pub const MAX_CAS_ATTEMPTS: usize = 16;

/// Leak detection tripped: the key was used from `distinct` addresses
/// within the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeakTrip {
    pub distinct: u32,
    pub action: LeakAction,
}

/// The result of trying to spend tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// Admitted or refused by the buckets; `leak` when this request tripped
    /// leak detection in report mode.
    Decided {
        verdict: Verdict,
        leak: Option<LeakTrip>,
        /// [`Buckets::BurstOnly`]: the minute or hour bucket this replica
        /// would have refused on (limit, seconds), had it decided alone.
        fallback: Option<(LimitKind, u64)>,
    },
    /// The key is revoked at runtime: refused.
    Revoked(Revocation),
    /// This request tripped leak detection and revoked the key: refused.
    LeakRevoked(LeakTrip),
    /// Every CAS attempt lost a race: refused.
    Contention,
    /// The key has no entry (or an unreadable one): refused.
    NoBucket,
}

/// [`Spend`] and the CAS attempts that were lost on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendResult {
    pub spend: Spend,
    pub cas_retries: u32,
}

/// Where a request comes from, for leak detection.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// `leak_detection::address_tag` of the client address; None when the
    /// address is allowlisted or unknown.
    pub tag: Option<u32>,
    pub detection: &'a LeakDetection,
}

/// Which buckets decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buckets {
    /// All three (a single Envoy).
    All,
    /// Cluster mode: the burst alone; the minute and hour are spent as far
    /// as they have room and decided by the cluster service
    /// (`token_bucket::check_burst`).
    BurstOnly,
}

/// Spends `cost` tokens of the key's buckets, if all three have room and
/// the key is not revoked, recording the request's address.
pub fn spend(
    store: &dyn SharedStore,
    digest: &Digest,
    limits: &Limits,
    cost: u32,
    now_ns: u64,
    source: Source<'_>,
) -> Result<SpendResult, StoreError> {
    spend_with(store, digest, limits, cost, now_ns, source, Buckets::All)
}

/// [`spend`], with the buckets that decide.
pub fn spend_with(
    store: &dyn SharedStore,
    digest: &Digest,
    limits: &Limits,
    cost: u32,
    now_ns: u64,
    source: Source<'_>,
    buckets: Buckets,
) -> Result<SpendResult, StoreError> {
    let key = entry::entry_key(digest);
    let now_secs = now_ns / 1_000_000_000;
    let detection = source.detection;
    let tag = source.tag.filter(|_| detection.enabled);
    let mut cas_retries = 0;
    let done = |spend, cas_retries| Ok(SpendResult { spend, cas_retries });
    for _ in 0..MAX_CAS_ATTEMPTS {
        let Some(current) = store.get(&key)? else {
            return done(Spend::NoBucket, cas_retries);
        };
        let Some(mut state) = KeyState::decode(&current.value) else {
            return done(Spend::NoBucket, cas_retries);
        };
        if let Some(revocation) = state.revoked {
            return done(Spend::Revoked(revocation), cas_retries);
        }
        let (verdict, fallback) = match buckets {
            Buckets::All => (
                token_bucket::check(&state.buckets, limits, cost, now_ns),
                None,
            ),
            Buckets::BurstOnly => token_bucket::check_burst(&state.buckets, limits, cost, now_ns),
        };
        let mut write = verdict.allowed;
        let mut leak = None;
        if let Some(tag) = tag {
            let seen = state.addresses.observe(
                tag,
                u32::try_from(now_secs).unwrap_or(u32::MAX),
                detection.window_secs,
                verdict.allowed,
            );
            write |= seen.changed;
            // Report mode reports each address that takes a slot (at most
            // one per slot and window), not every request from addresses
            // beyond the slots.
            let reportable = detection.action == LeakAction::Revoke || seen.changed;
            if seen.new_address && seen.distinct > detection.max_addresses && reportable {
                leak = Some(LeakTrip {
                    distinct: seen.distinct,
                    action: detection.action,
                });
            }
        }
        let revoking = matches!(leak, Some(t) if t.action == LeakAction::Revoke);
        if revoking {
            // Nothing is spent: the request is refused.
            state.revoked = Some(Revocation {
                by: RevokedBy::LeakDetection,
                at_secs: now_secs,
            });
            state.changed_ms =
                crate::key_state::revocation::later(now_ns / 1_000_000, state.changed_ms);
            write = true;
        } else if verdict.allowed {
            state.buckets = verdict.state;
        }
        if write {
            match store.set(&key, &state.encode(), Some(current.cas)) {
                Ok(()) => {}
                Err(StoreError::CasMismatch) => {
                    cas_retries += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        let spend = match leak {
            Some(trip) if revoking => Spend::LeakRevoked(trip),
            _ => Spend::Decided {
                verdict,
                leak,
                fallback,
            },
        };
        return done(spend, cas_retries);
    }
    done(Spend::Contention, cas_retries)
}

/// A key's runtime revocation and its buckets as clients see them.
pub type Peek = (Option<Revocation>, [BucketView; 3]);

/// The key's revocation and buckets at `now_ns`, without spending anything.
pub fn peek(
    store: &dyn SharedStore,
    digest: &Digest,
    limits: &Limits,
    now_ns: u64,
) -> Result<Option<Peek>, StoreError> {
    Ok(entry::read(store, digest)?.map(|state| {
        (
            state.revoked,
            token_bucket::peek(&state.buckets, limits, now_ns),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::digest::sha256;
    use crate::auth::leak_detection::address_tag;
    use crate::key_state::entry::{ensure_entries, entry_key};
    use crate::key_state::revocation::revoke;
    use crate::shared_store::MemoryStore;
    use std::net::IpAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    const NOW: u64 = 1_800_000_000_000_000_000;
    const SEC: u64 = 1_000_000_000;
    const LIMITS: Limits = Limits {
        per_minute: 1000,
        per_hour: 100_000,
        burst: 10,
    };

    fn off() -> LeakDetection {
        LeakDetection {
            enabled: false,
            ..LeakDetection::default()
        }
    }

    fn go(store: &MemoryStore, d: &Digest, now: u64) -> Spend {
        let detection = off();
        let source = Source {
            tag: None,
            detection: &detection,
        };
        spend(store, d, &LIMITS, 1, now, source).unwrap().spend
    }

    fn from(store: &MemoryStore, d: &Digest, ip: &str, detection: &LeakDetection) -> Spend {
        let ip: IpAddr = ip.parse().unwrap();
        let source = Source {
            tag: detection.counts(ip).then(|| address_tag(ip)),
            detection,
        };
        spend(store, d, &LIMITS, 1, NOW, source).unwrap().spend
    }

    fn admitted(s: &Spend) -> bool {
        matches!(s, Spend::Decided { verdict, .. } if verdict.allowed)
    }

    #[test]
    fn the_request_path_never_creates_entries() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        assert_eq!(go(&store, &d, NOW), Spend::NoBucket);
        assert_eq!(peek(&store, &d, &LIMITS, NOW).unwrap(), None);
        assert_eq!(store.key_count(), 0);
        assert_eq!(ensure_entries(&store, [d].iter()).unwrap(), 1);
        assert!(admitted(&go(&store, &d, NOW)));
        assert_eq!(store.key_count(), 1);
    }

    #[test]
    fn ensure_keeps_what_was_spent() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        ensure_entries(&store, [d].iter()).unwrap();
        for _ in 0..4 {
            go(&store, &d, NOW);
        }
        assert_eq!(ensure_entries(&store, [d].iter()).unwrap(), 0);
        let (revoked, views) = peek(&store, &d, &LIMITS, NOW).unwrap().unwrap();
        assert_eq!(revoked, None);
        assert_eq!(views[0].remaining, 6);
    }

    #[test]
    fn corrupt_entries_refuse() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        store.set(&entry_key(&d), b"junk", None).unwrap();
        assert_eq!(go(&store, &d, NOW), Spend::NoBucket);
    }

    #[test]
    fn a_revoked_key_is_refused_without_spending() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        ensure_entries(&store, [d].iter()).unwrap();
        let (r, _) = revoke(&store, &d, RevokedBy::Admin, 5000).unwrap();
        assert_eq!(go(&store, &d, NOW), Spend::Revoked(r));
        let (_, views) = peek(&store, &d, &LIMITS, NOW).unwrap().unwrap();
        assert_eq!(views[0].remaining, 10);
    }

    #[test]
    fn the_eleventh_address_revokes_the_key() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        ensure_entries(&store, [d].iter()).unwrap();
        let detection = LeakDetection::default();
        for i in 1..=10 {
            let s = from(&store, &d, &format!("127.0.0.{i}"), &detection);
            assert!(
                matches!(s, Spend::Decided { leak: None, .. }),
                "address {i}"
            );
            // Repeats from a known address do not count.
            let again = from(&store, &d, "127.0.0.1", &detection);
            assert!(matches!(again, Spend::Decided { leak: None, .. }));
        }
        let s = from(&store, &d, "127.0.0.11", &detection);
        assert_eq!(
            s,
            Spend::LeakRevoked(LeakTrip {
                distinct: 11,
                action: LeakAction::Revoke
            })
        );
        let s = from(&store, &d, "127.0.0.1", &detection);
        assert!(matches!(s, Spend::Revoked(r) if r.by == RevokedBy::LeakDetection));
    }

    #[test]
    fn report_mode_and_allowlist_do_not_revoke() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        ensure_entries(&store, [d].iter()).unwrap();
        let mut detection = LeakDetection {
            allowlist: vec!["127.0.1.0/24".parse().unwrap()],
            ..LeakDetection::default()
        };
        for i in 1..=40 {
            let s = from(&store, &d, &format!("127.0.1.{i}"), &detection);
            assert!(matches!(s, Spend::Decided { leak: None, .. }), "{s:?}");
        }
        detection.action = LeakAction::Report;
        let mut reports = 0;
        for i in 1..=12 {
            match from(&store, &d, &format!("127.0.2.{i}"), &detection) {
                Spend::Decided { leak: Some(t), .. } => {
                    reports += 1;
                    assert_eq!(t.distinct, i);
                }
                Spend::Decided { leak: None, .. } => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(reports, 2, "the 11th and 12th addresses are reported");
    }

    #[test]
    fn report_mode_reports_at_most_once_per_slot() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        ensure_entries(&store, [d].iter()).unwrap();
        let detection = LeakDetection {
            action: LeakAction::Report,
            ..LeakDetection::default()
        };
        let mut reports = 0;
        for i in 1..=200 {
            let ip = format!("10.0.{}.{}", i / 250, i % 250 + 1);
            if matches!(
                from(&store, &d, &ip, &detection),
                Spend::Decided { leak: Some(_), .. }
            ) {
                reports += 1;
            }
        }
        // Addresses 11..=32 take a slot and are reported; the other 168
        // find every slot live and are not.
        assert_eq!(reports, 22);
    }

    #[test]
    fn refused_requests_still_record_new_addresses() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        ensure_entries(&store, [d].iter()).unwrap();
        let detection = LeakDetection::default();
        for _ in 0..10 {
            from(&store, &d, "127.0.0.1", &detection);
        }
        // The burst is spent: the next ten addresses are refused by the
        // buckets but still counted; the eleventh revokes.
        for i in 2..=11 {
            let s = from(&store, &d, &format!("127.0.0.{i}"), &detection);
            if i < 11 {
                assert!(matches!(s, Spend::Decided { ref verdict, .. } if !verdict.allowed));
            } else {
                assert!(matches!(s, Spend::LeakRevoked(_)), "{s:?}");
            }
        }
    }

    #[test]
    fn addresses_age_out_of_the_window() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        ensure_entries(&store, [d].iter()).unwrap();
        let detection = LeakDetection::default();
        for i in 1..=30u64 {
            // One new address every 31 s: never more than 10 in 300 s.
            let ip: IpAddr = format!("127.0.3.{i}").parse().unwrap();
            let source = Source {
                tag: Some(address_tag(ip)),
                detection: &detection,
            };
            let s = spend(&store, &d, &LIMITS, 1, NOW + i * 31 * SEC, source).unwrap();
            assert!(matches!(s.spend, Spend::Decided { leak: None, .. }), "{i}");
        }
    }

    /// Many threads hammer one bucket at the same instant: exactly `burst`
    /// requests get through, never more, in every round.
    #[test]
    fn no_over_admission_across_threads() {
        let store = Arc::new(MemoryStore::new());
        let keys = [sha256(b"a"), sha256(b"b")];
        ensure_entries(store.as_ref(), keys.iter()).unwrap();
        for round in 0..20u64 {
            let now = NOW + round * 3_600 * SEC; // an hour apart: full refill
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
                            if admitted(&go(store.as_ref(), &keys[k], now)) {
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
