//! Usage bookkeeping per key: request count, last use, and per-day counts
//! (admitted, rate-limited, rejected by validation) over a fixed ring of
//! [`DAYS`] days.
//!
//! The request path never touches shared data for this: each worker adds to
//! its own [`Accumulator`] (a map bounded by the configured keys), and a
//! timer on each worker ([`flush`], every `FLUSH_INTERVAL_SECS`) adds its
//! deltas to the key's shared-data entry `rag-guard/v1/usage/<sha256 hex>`
//! with one CAS per key that was used since the last flush. Workers do not
//! fight over one hot value on every request; they meet at most once per
//! key per interval. A flush that loses its CAS races keeps its deltas for
//! the next tick.
//!
//! Entry layout ([`ENTRY_LEN`] = 529 bytes): version (1) | request count (8)
//! | last used, Unix seconds (8) | [`DAYS`] x (day number, admitted,
//! rate-limited, rejected: 4 x u32).

use std::collections::HashMap;

use crate::auth::digest::{prefixed_hex, Digest};
use crate::shared_store::{create_missing, SharedStore, StoreError};

pub const ENTRY_PREFIX: &str = "rag-guard/v1/usage/";
/// Days kept per key (the ring): `usage?days=` can ask for up to this.
pub const DAYS: usize = 32;
/// How often each worker adds its counts to shared data.
pub const FLUSH_INTERVAL_SECS: u64 = 1;
const VERSION: u8 = 1;
const DAY_LEN: usize = 16;
const DAYS_AT: usize = 17;
pub const ENTRY_LEN: usize = DAYS_AT + DAYS * DAY_LEN;
const MAX_CAS_ATTEMPTS: usize = 4;
const SECS_PER_DAY: u64 = 86_400;

/// What happened to one authenticated request, for the usage counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Forwarded upstream.
    Admitted,
    /// Refused by a rate limit.
    RateLimited,
    /// Refused by body inspection.
    Rejected,
}

/// Counts of one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DayCounts {
    pub admitted: u32,
    pub rate_limited: u32,
    pub rejected: u32,
}

impl DayCounts {
    fn add(&mut self, other: &DayCounts) {
        self.admitted = self.admitted.saturating_add(other.admitted);
        self.rate_limited = self.rate_limited.saturating_add(other.rate_limited);
        self.rejected = self.rejected.saturating_add(other.rejected);
    }

    fn bump(&mut self, kind: Kind) {
        let slot = match kind {
            Kind::Admitted => &mut self.admitted,
            Kind::RateLimited => &mut self.rate_limited,
            Kind::Rejected => &mut self.rejected,
        };
        *slot = slot.saturating_add(1);
    }

    pub fn total(&self) -> u64 {
        u64::from(self.admitted) + u64::from(self.rate_limited) + u64::from(self.rejected)
    }
}

/// The day number (days since 1970-01-01, UTC) of a Unix time in seconds.
pub fn day_of(unix_secs: u64) -> u32 {
    u32::try_from(unix_secs / SECS_PER_DAY).unwrap_or(u32::MAX)
}

/// One key's stored usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub request_count: u64,
    /// Unix seconds; 0 if never used.
    pub last_used: u64,
    /// Ring indexed by `day % DAYS`: (day number, counts).
    days: [(u32, DayCounts); DAYS],
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            request_count: 0,
            last_used: 0,
            days: [(0, DayCounts::default()); DAYS],
        }
    }
}

impl Usage {
    /// The counts of `day` (zero if it is not in the ring).
    pub fn day(&self, day: u32) -> DayCounts {
        let (stored, counts) = self.days[day as usize % DAYS];
        if stored == day {
            counts
        } else {
            DayCounts::default()
        }
    }

    fn add_day(&mut self, day: u32, counts: &DayCounts) {
        let slot = &mut self.days[day as usize % DAYS];
        if slot.0 != day {
            if slot.0 > day {
                return; // older than the ring: dropped
            }
            *slot = (day, DayCounts::default());
        }
        slot.1.add(counts);
    }

    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0] = VERSION;
        out[1..9].copy_from_slice(&self.request_count.to_le_bytes());
        out[9..17].copy_from_slice(&self.last_used.to_le_bytes());
        for ((day, c), chunk) in self
            .days
            .iter()
            .zip(out[DAYS_AT..].chunks_exact_mut(DAY_LEN))
        {
            for (i, v) in [*day, c.admitted, c.rate_limited, c.rejected]
                .iter()
                .enumerate()
            {
                chunk[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ENTRY_LEN || bytes[0] != VERSION {
            return None;
        }
        let u64_at = |i: usize| Some(u64::from_le_bytes(bytes.get(i..i + 8)?.try_into().ok()?));
        let mut usage = Usage {
            request_count: u64_at(1)?,
            last_used: u64_at(9)?,
            ..Usage::default()
        };
        for (slot, chunk) in usage
            .days
            .iter_mut()
            .zip(bytes[DAYS_AT..].chunks_exact(DAY_LEN))
        {
            let w = |i: usize| -> Option<u32> {
                Some(u32::from_le_bytes(
                    chunk.get(i * 4..i * 4 + 4)?.try_into().ok()?,
                ))
            };
            *slot = (
                w(0)?,
                DayCounts {
                    admitted: w(1)?,
                    rate_limited: w(2)?,
                    rejected: w(3)?,
                },
            );
        }
        Some(usage)
    }
}

pub fn entry_key(digest: &Digest) -> String {
    prefixed_hex(ENTRY_PREFIX, digest)
}

/// Creates the usage entry of every digest that has none (at configure
/// time; the flush never creates one). Returns how many were created.
pub fn ensure_entries<'a>(
    store: &dyn SharedStore,
    digests: impl Iterator<Item = &'a Digest>,
) -> Result<usize, StoreError> {
    create_missing(store, digests.map(entry_key), &Usage::default().encode())
}

/// The stored usage of a key (what the workers have flushed).
pub fn read(store: &dyn SharedStore, digest: &Digest) -> Result<Option<Usage>, StoreError> {
    Ok(store
        .get(&entry_key(digest))?
        .and_then(|v| Usage::decode(&v.value)))
}

/// A worker's counts since its last flush.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Pending {
    last_used: u64,
    /// Usually one day; two around midnight.
    days: Vec<(u32, DayCounts)>,
}

/// One worker's unflushed usage, keyed by digest. Its size is bounded by
/// the configured keys (only authenticated requests are recorded), and it
/// is emptied by every successful flush.
#[derive(Debug, Default)]
pub struct Accumulator {
    pending: HashMap<Digest, Pending>,
}

impl Accumulator {
    /// Counts one request of the key at `now_secs`. No host call.
    pub fn record(&mut self, digest: &Digest, kind: Kind, now_secs: u64) {
        let p = self.pending.entry(*digest).or_default();
        p.last_used = p.last_used.max(now_secs);
        let day = day_of(now_secs);
        match p.days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, counts)) => counts.bump(kind),
            None => {
                let mut counts = DayCounts::default();
                counts.bump(kind);
                p.days.push((day, counts));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Keys with unflushed counts.
    pub fn len(&self) -> usize {
        self.pending.len()
    }
}

/// What a flush did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlushReport {
    pub written: usize,
    /// Kept for the next flush (CAS races lost, host errors).
    pub kept: usize,
    /// Dropped: the key has no usage entry (removed from the configuration
    /// before its entry existed, or an unreadable entry).
    pub dropped: usize,
    pub cas_retries: u32,
}

/// Adds the accumulated counts to shared data, one CAS per key.
pub fn flush(store: &dyn SharedStore, acc: &mut Accumulator) -> FlushReport {
    let mut report = FlushReport::default();
    acc.pending.retain(|digest, pending| {
        let key = entry_key(digest);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = match store.get(&key) {
                Ok(Some(v)) => v,
                Ok(None) => {
                    report.dropped += 1;
                    return false;
                }
                Err(_) => break,
            };
            let Some(mut usage) = Usage::decode(&current.value) else {
                report.dropped += 1;
                return false;
            };
            for (day, counts) in &pending.days {
                usage.request_count = usage.request_count.saturating_add(counts.total());
                usage.add_day(*day, counts);
            }
            usage.last_used = usage.last_used.max(pending.last_used);
            match store.set(&key, &usage.encode(), Some(current.cas)) {
                Ok(()) => {
                    report.written += 1;
                    return false;
                }
                Err(StoreError::CasMismatch) => report.cas_retries += 1,
                Err(_) => break,
            }
        }
        report.kept += 1;
        true
    });
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::digest::sha256;
    use crate::shared_store::MemoryStore;
    use std::sync::{Arc, Mutex};

    const T: u64 = 1_800_000_000;

    #[test]
    fn counts_reach_shared_data_on_flush_only() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        ensure_entries(&store, [d].iter()).unwrap();
        let mut acc = Accumulator::default();
        acc.record(&d, Kind::Admitted, T);
        acc.record(&d, Kind::Admitted, T + 1);
        acc.record(&d, Kind::RateLimited, T + 2);
        acc.record(&d, Kind::Rejected, T + 3);
        assert_eq!(read(&store, &d).unwrap().unwrap(), Usage::default());
        let r = flush(&store, &mut acc);
        assert_eq!((r.written, r.kept, r.dropped), (1, 0, 0));
        assert!(acc.is_empty());
        let u = read(&store, &d).unwrap().unwrap();
        assert_eq!((u.request_count, u.last_used), (4, T + 3));
        assert_eq!(
            u.day(day_of(T)),
            DayCounts {
                admitted: 2,
                rate_limited: 1,
                rejected: 1
            }
        );
        // A second flush with nothing pending writes nothing.
        assert_eq!(flush(&store, &mut acc), FlushReport::default());
    }

    #[test]
    fn the_ring_keeps_the_last_days_only() {
        let store = MemoryStore::new();
        let d = sha256(b"k");
        ensure_entries(&store, [d].iter()).unwrap();
        let mut acc = Accumulator::default();
        for day in 0..40u64 {
            acc.record(&d, Kind::Admitted, T + day * SECS_PER_DAY);
            flush(&store, &mut acc);
        }
        let u = read(&store, &d).unwrap().unwrap();
        assert_eq!(u.request_count, 40);
        let last = day_of(T + 39 * SECS_PER_DAY);
        assert_eq!(u.day(last).admitted, 1);
        assert_eq!(u.day(last - 31).admitted, 1);
        assert_eq!(u.day(last - 32).admitted, 0, "overwritten by the ring");
        // A late count for a day that left the ring is dropped, not mixed in.
        acc.record(&d, Kind::Admitted, T);
        flush(&store, &mut acc);
        assert_eq!(read(&store, &d).unwrap().unwrap().day(last).admitted, 1);
    }

    #[test]
    fn keys_without_entries_are_dropped() {
        let store = MemoryStore::new();
        let mut acc = Accumulator::default();
        acc.record(&sha256(b"gone"), Kind::Admitted, T);
        let r = flush(&store, &mut acc);
        assert_eq!(r.dropped, 1);
        assert!(acc.is_empty());
        assert_eq!(store.key_count(), 0, "a flush never creates entries");
    }

    /// Workers flushing concurrently lose nothing: the totals are exact.
    #[test]
    fn concurrent_flushes_add_up() {
        let store = Arc::new(MemoryStore::new());
        let d = sha256(b"k");
        ensure_entries(store.as_ref(), [d].iter()).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let acc = Mutex::new(Accumulator::default());
                    for round in 0..200u64 {
                        let mut acc = acc.lock().unwrap();
                        for _ in 0..5 {
                            acc.record(&d, Kind::Admitted, T + round);
                        }
                        flush(store.as_ref(), &mut acc);
                    }
                    let mut acc = acc.lock().unwrap();
                    for _ in 0..1000 {
                        if acc.is_empty() {
                            break;
                        }
                        flush(store.as_ref(), &mut acc);
                    }
                    assert!(acc.is_empty());
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let u = read(store.as_ref(), &d).unwrap().unwrap();
        assert_eq!(u.request_count, 4 * 200 * 5);
        assert_eq!(u.day(day_of(T)).admitted, 4000);
    }
}
