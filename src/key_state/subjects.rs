//! Token buckets of JWT subjects, in a fixed-size table in shared data.
//!
//! Configured keys have one shared-data entry each (`entry`), which is
//! bounded because the configuration is. The subjects of an identity
//! provider's tokens are not: they are never shared-data keys. The table has
//! `sets` entries `rag-guard/v2/subjects/<n>` ([`SET_LEN`] = 769 bytes),
//! each holding [`WAYS`] records of 48 bytes: a 64-bit tag of the subject,
//! the instant from which its buckets are full again, and its three buckets.
//! `jwt.max_subjects` sets the size (rounded up to whole sets); every set is
//! created when a configuration is applied, so memory does not grow with
//! traffic: 4,096 subjects (the default) are 256 entries, about 260 KiB of
//! Envoy memory with its per-entry overhead.
//!
//! A subject lives in the set named by its digest, so finding it, claiming
//! a record for it and spending its tokens is one `get` and one CAS `set` of
//! one entry: two workers can never give one subject two records, and the
//! limits are exact across workers.
//!
//! A record is free when its tag is 0 or its buckets are full again (its
//! subject has been idle long enough that a fresh record would hold exactly
//! the same state, at most an hour for the hour bucket). Taking a free
//! record therefore forgets nothing. A new subject whose set has no free
//! record is refused ([`SubjectSpend::Full`], a 429 with the seconds until
//! the first record of the set frees up): a busy table never resets the
//! budget of a subject that is using it. The subjects are those an identity
//! provider signed tokens for, so the table fills only when more distinct
//! callers are active within an hour than it was sized for; size it above
//! the number of callers expected per hour.

use crate::auth::digest::Digest;
use crate::limits::token_bucket::{self, secs_ceil_min1, BucketState, BucketView, Limits, Verdict};
use crate::shared_store::{create_missing, SharedStore, StoreError};

/// Records per set.
pub const WAYS: usize = 16;
pub const SET_PREFIX: &str = "rag-guard/v2/subjects/";
/// Largest table (`jwt.max_subjects`).
pub const MAX_SUBJECTS: usize = 65_536;
const MAX_CAS_ATTEMPTS: usize = 16;
const SET_VERSION: u8 = 1;
/// tag | free at (ns) | buckets at (ns) | used x 3.
const RECORD_LEN: usize = 8 + 8 + 8 + 3 * 8;
/// Encoded size of one set.
pub const SET_LEN: usize = 1 + WAYS * RECORD_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Record {
    /// 0: never used.
    tag: u64,
    free_at_ns: u64,
    buckets: BucketState,
}

impl Record {
    fn is_free(&self, now_ns: u64) -> bool {
        self.tag == 0 || self.free_at_ns <= now_ns
    }
}

fn word(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn encode(records: &[Record; WAYS]) -> [u8; SET_LEN] {
    let mut out = [0u8; SET_LEN];
    out[0] = SET_VERSION;
    for (i, r) in records.iter().enumerate() {
        let at = 1 + i * RECORD_LEN;
        let words = [
            r.tag,
            r.free_at_ns,
            r.buckets.at_ns,
            r.buckets.used[0],
            r.buckets.used[1],
            r.buckets.used[2],
        ];
        for (j, w) in words.iter().enumerate() {
            out[at + j * 8..at + j * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
    }
    out
}

fn decode(bytes: &[u8]) -> Option<[Record; WAYS]> {
    if bytes.len() != SET_LEN || bytes[0] != SET_VERSION {
        return None;
    }
    let mut records = [Record::default(); WAYS];
    for (i, r) in records.iter_mut().enumerate() {
        let at = 1 + i * RECORD_LEN;
        *r = Record {
            tag: word(bytes, at)?,
            free_at_ns: word(bytes, at + 8)?,
            buckets: BucketState {
                at_ns: word(bytes, at + 16)?,
                used: [
                    word(bytes, at + 24)?,
                    word(bytes, at + 32)?,
                    word(bytes, at + 40)?,
                ],
            },
        };
    }
    Some(records)
}

/// What a subject's request got from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectSpend {
    /// Admitted or refused by the subject's buckets.
    Decided(Verdict),
    /// A new subject, and every record of its set is in use: refused; the
    /// first record frees up in this many seconds.
    Full { retry_after_secs: u64 },
    /// Every CAS attempt lost a race: refused.
    Contention,
    /// The set is missing or unreadable: refused.
    NoSet,
}

/// [`SubjectSpend`] and the CAS attempts lost on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectResult {
    pub spend: SubjectSpend,
    pub cas_retries: u32,
}

/// The table's shape: how many sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectTable {
    sets: usize,
}

impl SubjectTable {
    /// A table for at least `max_subjects` subjects (1..=[`MAX_SUBJECTS`]).
    pub fn for_subjects(max_subjects: usize) -> Self {
        SubjectTable {
            sets: max_subjects.clamp(1, MAX_SUBJECTS).div_ceil(WAYS),
        }
    }

    /// Subjects the table holds at once.
    pub fn capacity(&self) -> usize {
        self.sets * WAYS
    }

    /// Creates the sets that do not exist yet (configure time, main
    /// thread). Existing sets keep their records.
    pub fn ensure(&self, store: &dyn SharedStore) -> Result<usize, StoreError> {
        let empty = encode(&[Record::default(); WAYS]);
        create_missing(store, (0..self.sets).map(set_key), &empty)
    }

    fn place(&self, digest: &Digest) -> (String, u64) {
        let head = u64::from_le_bytes(digest[..8].try_into().unwrap_or_default());
        let tag = u64::from_le_bytes(digest[8..16].try_into().unwrap_or_default()).max(1);
        let sets = u64::try_from(self.sets).unwrap_or(1).max(1);
        let set = usize::try_from(head % sets).unwrap_or(0);
        (set_key(set), tag)
    }

    /// Spends `cost` tokens of the subject's buckets (claiming a free
    /// record for a subject seen for the first time).
    pub fn spend(
        &self,
        store: &dyn SharedStore,
        digest: &Digest,
        limits: &Limits,
        cost: u32,
        now_ns: u64,
    ) -> Result<SubjectResult, StoreError> {
        let (key, tag) = self.place(digest);
        let mut cas_retries = 0;
        let done = |spend, cas_retries| Ok(SubjectResult { spend, cas_retries });
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(current) = store.get(&key)? else {
                return done(SubjectSpend::NoSet, cas_retries);
            };
            let Some(mut records) = decode(&current.value) else {
                return done(SubjectSpend::NoSet, cas_retries);
            };
            let (index, state) = match records.iter().position(|r| r.tag == tag) {
                Some(i) => (i, records[i].buckets),
                None => match records.iter().position(|r| r.is_free(now_ns)) {
                    Some(i) => (i, BucketState::default()),
                    None => {
                        let first_free = records.iter().map(|r| r.free_at_ns).min();
                        let wait = first_free.unwrap_or(now_ns).saturating_sub(now_ns);
                        return done(
                            SubjectSpend::Full {
                                retry_after_secs: secs_ceil_min1(wait),
                            },
                            cas_retries,
                        );
                    }
                },
            };
            let verdict = token_bucket::check(&state, limits, cost, now_ns);
            if verdict.allowed {
                records[index] = Record {
                    tag,
                    free_at_ns: verdict.state.full_at_ns(limits),
                    buckets: verdict.state,
                };
                match store.set(&key, &encode(&records), Some(current.cas)) {
                    Ok(()) => {}
                    Err(StoreError::CasMismatch) => {
                        cas_retries += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            return done(SubjectSpend::Decided(verdict), cas_retries);
        }
        done(SubjectSpend::Contention, cas_retries)
    }

    /// The subject's buckets at `now_ns` without spending (a subject not in
    /// the table has full buckets). None: the set is missing or unreadable.
    pub fn peek(
        &self,
        store: &dyn SharedStore,
        digest: &Digest,
        limits: &Limits,
        now_ns: u64,
    ) -> Result<Option<[BucketView; 3]>, StoreError> {
        let (key, tag) = self.place(digest);
        let Some(records) = store.get(&key)?.and_then(|v| decode(&v.value)) else {
            return Ok(None);
        };
        let state = records
            .iter()
            .find(|r| r.tag == tag)
            .map(|r| r.buckets)
            .unwrap_or_default();
        Ok(Some(token_bucket::peek(&state, limits, now_ns)))
    }
}

fn set_key(set: usize) -> String {
    format!("{SET_PREFIX}{set}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::digest::sha256;
    use crate::shared_store::MemoryStore;
    use std::sync::Arc;

    const SEC: u64 = 1_000_000_000;
    const T0: u64 = 1_700_000_000 * SEC;
    const LIMITS: Limits = Limits {
        per_minute: 60,
        per_hour: 1000,
        burst: 5,
    };

    fn admitted(r: &SubjectResult) -> bool {
        matches!(&r.spend, SubjectSpend::Decided(v) if v.allowed)
    }

    #[test]
    fn sets_round_trip_and_junk_is_refused() {
        let mut records = [Record::default(); WAYS];
        records[3] = Record {
            tag: 7,
            free_at_ns: 9,
            buckets: BucketState {
                at_ns: 11,
                used: [1, 2, 3],
            },
        };
        let bytes = encode(&records);
        assert_eq!(bytes.len(), 769);
        assert_eq!(decode(&bytes), Some(records));
        assert_eq!(decode(&bytes[..768]), None);
        let table = SubjectTable::for_subjects(32);
        let store = MemoryStore::new();
        assert_eq!(table.ensure(&store).unwrap(), 2);
        store.set(&set_key(0), b"junk", None).unwrap();
        store.set(&set_key(1), b"junk", None).unwrap();
        let r = table.spend(&store, &sha256(b"a"), &LIMITS, 1, T0).unwrap();
        assert_eq!(r.spend, SubjectSpend::NoSet);
    }

    #[test]
    fn sizes_round_up_to_whole_sets() {
        assert_eq!(SubjectTable::for_subjects(1).capacity(), 16);
        assert_eq!(SubjectTable::for_subjects(4096).capacity(), 4096);
        assert_eq!(SubjectTable::for_subjects(4097).capacity(), 4112);
        assert_eq!(SubjectTable::for_subjects(1 << 30).capacity(), MAX_SUBJECTS);
    }

    #[test]
    fn a_subject_has_its_own_exact_buckets() {
        let store = MemoryStore::new();
        let table = SubjectTable::for_subjects(16);
        table.ensure(&store).unwrap();
        let (a, b) = (sha256(b"alice"), sha256(b"bob"));
        for _ in 0..5 {
            assert!(admitted(&table.spend(&store, &a, &LIMITS, 1, T0).unwrap()));
        }
        assert!(!admitted(&table.spend(&store, &a, &LIMITS, 1, T0).unwrap()));
        // Bob is another record of the same (only) set.
        assert!(admitted(&table.spend(&store, &b, &LIMITS, 1, T0).unwrap()));
        let views = table.peek(&store, &a, &LIMITS, T0).unwrap().unwrap();
        assert_eq!(views[0].remaining, 0);
        let fresh = table
            .peek(&store, &sha256(b"carol"), &LIMITS, T0)
            .unwrap()
            .unwrap();
        assert_eq!(fresh[0].remaining, 5);
    }

    #[test]
    fn a_full_set_refuses_new_subjects_and_never_resets_busy_ones() {
        let store = MemoryStore::new();
        let table = SubjectTable::for_subjects(16);
        table.ensure(&store).unwrap();
        let subject = |i: usize| sha256(format!("user-{i}").as_bytes());
        for i in 0..WAYS {
            assert!(admitted(
                &table.spend(&store, &subject(i), &LIMITS, 5, T0).unwrap()
            ));
        }
        // The 17th subject: no free record. The first record frees up when
        // the hour bucket (5 of 1000 used) has refilled: 18 s.
        let r = table.spend(&store, &subject(99), &LIMITS, 1, T0).unwrap();
        assert_eq!(
            r.spend,
            SubjectSpend::Full {
                retry_after_secs: 18
            }
        );
        // The busy subjects keep what they spent.
        let r = table.spend(&store, &subject(0), &LIMITS, 1, T0).unwrap();
        assert!(!admitted(&r));
        // Once a record's buckets are full again it is free: taken by the
        // newcomer, and its old subject starts again from a full bucket,
        // which is what it had anyway.
        let later = T0 + 18 * SEC;
        let r = table
            .spend(&store, &subject(99), &LIMITS, 1, later)
            .unwrap();
        assert!(admitted(&r));
        let r = table.spend(&store, &subject(0), &LIMITS, 5, later).unwrap();
        assert!(admitted(&r));
    }

    #[test]
    fn no_over_admission_across_threads() {
        let store = Arc::new(MemoryStore::new());
        let table = SubjectTable::for_subjects(16);
        table.ensure(store.as_ref()).unwrap();
        let limits = Limits {
            per_minute: 1000,
            per_hour: 1000,
            burst: 100,
        };
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let mut admitted_here = [0u32; 2];
                    for i in 0..200 {
                        let who = (i + t) % 2;
                        let d = sha256(format!("subject-{who}").as_bytes());
                        if let Ok(r) = table.spend(store.as_ref(), &d, &limits, 1, T0) {
                            if admitted(&r) {
                                admitted_here[who] += 1;
                            }
                        }
                    }
                    admitted_here
                })
            })
            .collect();
        let mut total = [0u32; 2];
        for h in handles {
            let a = h.join().unwrap();
            total[0] += a[0];
            total[1] += a[1];
        }
        // 400 attempts per subject, burst 100 at one instant: exactly 100
        // each (up to contention refusals, never more).
        assert!(total[0] <= 100 && total[1] <= 100, "{total:?}");
        assert!(total[0] >= 90 && total[1] >= 90, "{total:?}");
    }
}
