//! Brute-force protection: failed authentications per client address, in a
//! fixed-size table in shared data.
//!
//! Client addresses are unbounded, so they are never shared-data keys. The
//! table has [`SETS`] sets, each one shared-data entry
//! `rag-guard/v2/auth-fail/<n>` ([`SET_LEN`] = 961 bytes) holding [`WAYS`]
//! records of 20 bytes: a 32-bit tag of one address and that address's own
//! token bucket of failures. All sets are created when a configuration is
//! applied, so the table costs the same whatever the traffic: 4,096 entries,
//! about 4.7 MiB of Envoy memory (961 bytes of value plus the ~250 bytes
//! Envoy spends per entry), for up to 196,608 addresses with failures at
//! once. One request reads one set (one `get` of 961 bytes).
//!
//! The set and the tag of an address come from SipHash-1-3 keyed with 128
//! random bits drawn when the Envoy process first applies a configuration
//! (entry `rag-guard/v2/auth-fail/key`, shared by every worker, kept across
//! reloads, new at each restart): a client cannot tell which addresses share
//! a set, so it cannot aim its addresses at a victim's set.
//!
//! A record allows `per_minute` failures, refilled at `per_minute` per
//! minute. An address whose own record has no failure left gets 429 before
//! any key is checked. An address with no record (no recent failures of its
//! own) is never refused, however full its set: a crowded table cannot lock
//! out clients that did nothing wrong. Two addresses share a record only if
//! they have the same set and the same 32-bit tag (one chance in 2^32 per
//! pair in one set; a fresh address meets a tag of its full set with odds
//! of about 48 in 2^32).
//!
//! When a failure comes from an address without a record and every record
//! of its set holds failures, the record closest to being forgiven (the
//! fewest failures still counted after refill, then the oldest) gives way. So an
//! attacker with more failing addresses than the table holds (a set
//! overflows past 48 of them: with 40,000 failing addresses a set holds
//! about 10 on average, with 65,536 about 16)
//! gets some of its addresses forgotten and retried early: the protection
//! weakens for the attacker's own addresses, and never turns against other
//! clients. IPv6 addresses are grouped by their /64, since one host usually
//! controls a whole /64; a /48 (65,536 of them) fits in the table.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher13;

use crate::limits::token_bucket::{secs_ceil_min1, Bucket, MICRO};
use crate::shared_store::{create_missing, SharedStore, StoreError, Versioned};

/// Sets in the table.
pub const SETS: usize = 4096;
/// Address records per set.
pub const WAYS: usize = 48;
pub const SET_PREFIX: &str = "rag-guard/v2/auth-fail/";
/// The entry that holds the table's hash key.
pub const KEY_ENTRY: &str = "rag-guard/v2/auth-fail/key";
const MAX_CAS_ATTEMPTS: usize = 16;
const SET_VERSION: u8 = 2;
const RECORD_LEN: usize = 4 + 8 + 8;
/// Encoded size of one set.
pub const SET_LEN: usize = 1 + WAYS * RECORD_LEN;
const HASH_KEY_LEN: usize = 16;

/// The table's hash key, read from shared data once per configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedAuthTable {
    k0: u64,
    k1: u64,
}

/// Where an address lives in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    set: usize,
    /// Never 0 (0 marks an empty record).
    tag: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Record {
    tag: u32,
    at_ns: u64,
    used: u64,
}

impl Record {
    /// One encoded record ([`RECORD_LEN`] bytes).
    fn from_chunk(chunk: &[u8]) -> Option<Record> {
        Some(Record {
            tag: u32::from_le_bytes(chunk.get(0..4)?.try_into().ok()?),
            at_ns: u64::from_le_bytes(chunk.get(4..12)?.try_into().ok()?),
            used: u64::from_le_bytes(chunk.get(12..20)?.try_into().ok()?),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Set {
    records: [Record; WAYS],
}

impl Default for Set {
    fn default() -> Self {
        Set {
            records: [Record::default(); WAYS],
        }
    }
}

impl Set {
    fn encode(&self) -> [u8; SET_LEN] {
        let mut out = [0u8; SET_LEN];
        out[0] = SET_VERSION;
        for (r, chunk) in self
            .records
            .iter()
            .zip(out[1..].chunks_exact_mut(RECORD_LEN))
        {
            chunk[0..4].copy_from_slice(&r.tag.to_le_bytes());
            chunk[4..12].copy_from_slice(&r.at_ns.to_le_bytes());
            chunk[12..20].copy_from_slice(&r.used.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != SET_LEN || bytes.first() != Some(&SET_VERSION) {
            return None;
        }
        let mut set = Set::default();
        for (r, chunk) in set
            .records
            .iter_mut()
            .zip(bytes[1..].chunks_exact(RECORD_LEN))
        {
            *r = Record::from_chunk(chunk)?;
        }
        Some(set)
    }

    /// The record of `tag` in an encoded set, read without decoding the
    /// others (the check on every request); None when the bytes are not a
    /// set.
    fn record_in(bytes: &[u8], tag: u32) -> Option<Option<Record>> {
        if bytes.len() != SET_LEN || bytes.first() != Some(&SET_VERSION) {
            return None;
        }
        let want = tag.to_le_bytes();
        Some(
            bytes[1..]
                .chunks_exact(RECORD_LEN)
                .find(|chunk| chunk.get(0..4) == Some(&want[..]))
                .and_then(Record::from_chunk),
        )
    }

    fn find(&self, tag: u32) -> Option<usize> {
        self.records.iter().position(|r| r.tag == tag)
    }

    /// The record a new address takes: an empty or fully refilled one, else
    /// the one closest to being forgiven (fewest failures still counted, then the
    /// oldest).
    fn victim(&self, b: &Bucket, now_ns: u64) -> usize {
        let mut best = 0;
        let mut best_key = (u64::MAX, u64::MAX);
        for (i, r) in self.records.iter().enumerate() {
            let used = if r.tag == 0 {
                0
            } else {
                b.used_at(r.used, r.at_ns, now_ns)
            };
            let key = (used, r.at_ns);
            if used == 0 {
                return i;
            }
            if key < best_key {
                best_key = key;
                best = i;
            }
        }
        best
    }
}

fn bucket(per_minute: u32) -> Bucket {
    Bucket {
        capacity: u64::from(per_minute),
        refill: u64::from(per_minute),
        window_secs: 60,
    }
}

fn set_key(set: usize) -> String {
    format!("{SET_PREFIX}{set}")
}

/// The bits of an address that identify its client: IPv4 (also when mapped
/// into IPv6), or an IPv6 /64.
fn address_bits(ip: IpAddr) -> (u8, u64) {
    match ip {
        IpAddr::V4(v4) => (4, u64::from(u32::from(v4))),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (4, u64::from(u32::from(v4))),
            None => (6, (u128::from(v6) >> 64) as u64),
        },
    }
}

impl FailedAuthTable {
    /// A table with a given hash key (tests, benches).
    pub fn with_key(k0: u64, k1: u64) -> Self {
        FailedAuthTable { k0, k1 }
    }

    /// Creates every set that does not exist yet, and the hash key from
    /// `random` if there is none, then reads the key in force. Meant for
    /// configure time, before workers serve (see `create_missing`). Returns
    /// the table and how many entries were created.
    pub fn open(
        store: &dyn SharedStore,
        random: impl FnOnce() -> Option<[u8; HASH_KEY_LEN]>,
    ) -> Result<(Self, usize), StoreError> {
        let mut created = create_missing(store, (0..SETS).map(set_key), &Set::default().encode())?;
        let stored = store.get(KEY_ENTRY)?;
        let bytes = match stored {
            Some(v) if v.value.len() == HASH_KEY_LEN => v.value,
            _ => {
                let fresh = random().ok_or_else(|| {
                    StoreError::Host("no random source for the failed-auth hash key".into())
                })?;
                store.set(KEY_ENTRY, &fresh, None)?;
                created += 1;
                // Read back what is stored. Envoy applies a configuration on
                // the main thread before the workers (which then find this
                // key), so one key serves every worker; two configures racing
                // here could each keep their own (see the module docs).
                store
                    .get(KEY_ENTRY)?
                    .map(|v| v.value)
                    .filter(|v| v.len() == HASH_KEY_LEN)
                    .ok_or_else(|| StoreError::Host("failed-auth hash key unreadable".into()))?
            }
        };
        let half = |r: std::ops::Range<usize>| {
            bytes
                .get(r)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0)
        };
        Ok((
            FailedAuthTable {
                k0: half(0..8),
                k1: half(8..16),
            },
            created,
        ))
    }

    fn place(&self, ip: IpAddr) -> Place {
        let (family, bits) = address_bits(ip);
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write_u8(family);
        h.write_u64(bits);
        let hash = h.finish();
        Place {
            set: (hash % SETS as u64) as usize,
            tag: ((hash >> 32) as u32).max(1),
        }
    }

    /// If the address has no failures left: the whole seconds until it has
    /// one. An address without a record is never blocked. A missing or
    /// unreadable set counts as blocked (fail closed). Tests' shorthand for
    /// [`Self::check`].
    #[cfg(test)]
    pub fn blocked_for(
        &self,
        store: &dyn SharedStore,
        ip: IpAddr,
        per_minute: u32,
        now_ns: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.check(store, ip, per_minute, now_ns)
            .map(|(blocked, _)| blocked)
    }

    /// [`Self::blocked_for`], also returning the set as read, so that a
    /// failure counted next ([`Self::record_failure_after`]) needs no
    /// second read.
    pub fn check(
        &self,
        store: &dyn SharedStore,
        ip: IpAddr,
        per_minute: u32,
        now_ns: u64,
    ) -> Result<(Option<u64>, Seen), StoreError> {
        let place = self.place(ip);
        let read = store.get(&set_key(place.set))?;
        let record = read
            .as_ref()
            .and_then(|v| Set::record_in(&v.value, place.tag));
        let seen = Seen { place, read };
        let Some(found) = record else {
            return Ok((Some(60), seen));
        };
        let Some(r) = found else {
            return Ok((None, seen));
        };
        let b = bucket(per_minute);
        let needed = b.used_at(r.used, r.at_ns, now_ns).saturating_add(MICRO);
        if needed <= b.capacity_micro() {
            return Ok((None, seen));
        }
        let secs = secs_ceil_min1(b.nanos_to_refill(needed - b.capacity_micro()));
        Ok((Some(secs), seen))
    }

    /// Counts one failed authentication of the address. Returns true if its
    /// record had no failure left when it was counted: another worker used
    /// up the budget between this request's check and now, and this request
    /// must be answered as blocked (429), not as a plain 401.
    /// Tests' shorthand for [`Self::record_failure_after`] without a read.
    #[cfg(test)]
    pub fn record_failure(
        &self,
        store: &dyn SharedStore,
        ip: IpAddr,
        per_minute: u32,
        now_ns: u64,
    ) -> Result<bool, StoreError> {
        let seen = Seen {
            place: self.place(ip),
            read: None,
        };
        self.record_failure_after(store, seen, per_minute, now_ns)
    }

    /// [`Self::record_failure`] whose first CAS attempt starts from the set
    /// [`Self::check`] read (a stale one only costs a retry).
    pub fn record_failure_after(
        &self,
        store: &dyn SharedStore,
        seen: Seen,
        per_minute: u32,
        now_ns: u64,
    ) -> Result<bool, StoreError> {
        let Seen { place, mut read } = seen;
        let key = set_key(place.set);
        let b = bucket(per_minute);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = match read.take() {
                Some(current) => current,
                None => match store.get(&key)? {
                    Some(current) => current,
                    None => return Ok(true),
                },
            };
            let mut set = Set::decode(&current.value).unwrap_or_default();
            let (way, used) = match set.find(place.tag) {
                Some(way) => {
                    let r = set.records[way];
                    (way, b.used_at(r.used, r.at_ns, now_ns))
                }
                None => (set.victim(&b, now_ns), 0),
            };
            let was_full = used.saturating_add(MICRO) > b.capacity_micro();
            let at_ns = set.records[way].at_ns.max(now_ns);
            set.records[way] = Record {
                tag: place.tag,
                at_ns,
                used: used.saturating_add(MICRO).min(b.capacity_micro()),
            };
            match store.set(&key, &set.encode(), Some(current.cas)) {
                Ok(()) => return Ok(was_full),
                Err(StoreError::CasMismatch) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Host(
            "failed-auth table: CAS attempts exhausted".into(),
        ))
    }
}

/// The set [`FailedAuthTable::check`] read for an address, handed on to
/// [`FailedAuthTable::record_failure_after`].
pub struct Seen {
    place: Place,
    read: Option<Versioned>,
}

/// Whole seconds for one failure to refill in a full record.
pub fn one_failure_secs(per_minute: u32) -> u64 {
    secs_ceil_min1(bucket(per_minute).nanos_to_refill(MICRO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_store::MemoryStore;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const NOW: u64 = 1_800_000_000_000_000_000;
    const SEC: u64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table(store: &MemoryStore) -> FailedAuthTable {
        FailedAuthTable::open(store, || Some([7; 16])).unwrap().0
    }

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    /// A store that counts its reads.
    struct Counting<'a>(&'a MemoryStore, std::cell::Cell<u32>);

    impl SharedStore for Counting<'_> {
        fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
            self.1.set(self.1.get() + 1);
            self.0.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            self.0.set(key, value, cas)
        }
    }

    #[test]
    fn a_failure_after_the_check_reuses_its_read() {
        let store = MemoryStore::new();
        let t = table(&store);
        let counting = Counting(&store, std::cell::Cell::new(0));
        let a = ip("203.0.113.7");
        for _ in 0..10 {
            let (blocked, seen) = t.check(&counting, a, 10, NOW).unwrap();
            assert_eq!(blocked, None);
            assert!(!t.record_failure_after(&counting, seen, 10, NOW).unwrap());
        }
        // One read per check-and-count, not two.
        assert_eq!(counting.1.get(), 10);
        assert!(t.blocked_for(&store, a, 10, NOW).unwrap().is_some());
    }

    #[test]
    fn a_stale_read_costs_a_retry_not_a_lost_failure() {
        let store = MemoryStore::new();
        let t = table(&store);
        let a = ip("203.0.113.7");
        let (_, seen) = t.check(&store, a, 2, NOW).unwrap();
        // Another worker counts a failure of the same address meanwhile.
        assert!(!t.record_failure(&store, a, 2, NOW).unwrap());
        // The stale read's CAS fails; the retry reads again and counts the
        // second failure on top of the first.
        assert!(!t.record_failure_after(&store, seen, 2, NOW).unwrap());
        assert!(t.record_failure(&store, a, 2, NOW).unwrap());
    }

    #[test]
    fn eleventh_failure_in_a_minute_is_blocked() {
        let store = MemoryStore::new();
        let t = table(&store);
        let a = ip("203.0.113.7");
        for _ in 0..10 {
            assert_eq!(t.blocked_for(&store, a, 10, NOW).unwrap(), None);
            assert!(!t.record_failure(&store, a, 10, NOW).unwrap());
        }
        // A failure counted against a full record reports it.
        assert!(t.record_failure(&store, a, 10, NOW).unwrap());
        assert_eq!(t.blocked_for(&store, a, 10, NOW).unwrap(), Some(6));
        // One failure refills every 6 s (the extra one above was capped).
        assert_eq!(t.blocked_for(&store, a, 10, NOW + 6 * SEC).unwrap(), None);
        // Another address, even in the same set, is not affected.
        let same_set = (1..100_000)
            .map(v4)
            .find(|b| t.place(*b).set == t.place(a).set)
            .unwrap();
        assert_eq!(t.blocked_for(&store, same_set, 10, NOW).unwrap(), None);
    }

    #[test]
    fn the_key_is_random_per_start_and_shared_after() {
        let store = MemoryStore::new();
        let (first, created) = FailedAuthTable::open(&store, || Some([1; 16])).unwrap();
        assert_eq!(created, SETS + 1);
        // A later configuration (another worker, a reload) keeps the key.
        let (again, created) = FailedAuthTable::open(&store, || Some([2; 16])).unwrap();
        assert_eq!((again, created), (first, 0));
        // Another process start draws another key: other sets.
        let other = FailedAuthTable::open(&MemoryStore::new(), || Some([2; 16]))
            .unwrap()
            .0;
        let moved = (0..1000)
            .filter(|i| first.place(v4(*i)) != other.place(v4(*i)))
            .count();
        assert!(moved > 990, "{moved}");
        // No random source: the configuration cannot be applied.
        assert!(FailedAuthTable::open(&MemoryStore::new(), || None).is_err());
    }

    #[test]
    fn a_crowded_table_never_blocks_addresses_without_failures() {
        let store = MemoryStore::new();
        let t = table(&store);
        // 40,000 attacking addresses, each blocked after its one failure.
        let attackers = 40_000;
        for i in 0..attackers {
            t.record_failure(&store, v4(i), 1, NOW).unwrap();
        }
        for i in 0..attackers {
            assert!(
                t.blocked_for(&store, v4(i), 1, NOW + SEC)
                    .unwrap()
                    .is_some(),
                "attacker {i} forgotten"
            );
        }
        for i in 0..20_000 {
            let fresh = v4(1_000_000 + i);
            assert_eq!(t.blocked_for(&store, fresh, 1, NOW + SEC).unwrap(), None);
        }
        assert_eq!(store.key_count(), SETS + 1);
    }

    #[test]
    fn a_whole_ipv6_slash_48_fits_and_blocks_no_one_else() {
        let store = MemoryStore::new();
        let t = table(&store);
        let prefix = 0x2001_0db8_0001u128 << 80;
        for sub in 0..65_536u128 {
            let a = IpAddr::V6(Ipv6Addr::from(prefix | sub << 64 | 1));
            t.record_failure(&store, a, 1, NOW).unwrap();
        }
        let blocked = (0..65_536u128)
            .filter(|sub| {
                let a = IpAddr::V6(Ipv6Addr::from(prefix | sub << 64 | 0xffff));
                t.blocked_for(&store, a, 1, NOW + SEC).unwrap().is_some()
            })
            .count();
        assert_eq!(blocked, 65_536, "every /64 of the /48 keeps its record");
        for i in 0..10_000 {
            assert_eq!(t.blocked_for(&store, v4(i), 1, NOW + SEC).unwrap(), None);
            let other = IpAddr::V6(Ipv6Addr::from(
                0x2001_0db8_9999u128 << 80 | (i as u128) << 64,
            ));
            assert_eq!(t.blocked_for(&store, other, 1, NOW + SEC).unwrap(), None);
        }
    }

    #[test]
    fn an_overflowing_set_forgets_the_closest_to_forgiven_first() {
        let store = MemoryStore::new();
        let t = table(&store);
        let target = t.place(v4(0)).set;
        let same: Vec<IpAddr> = (0..2_000_000)
            .map(v4)
            .filter(|a| t.place(*a).set == target)
            .take(WAYS + 1)
            .collect();
        // One typo from the first address, ten failures from the others.
        t.record_failure(&store, same[0], 10, NOW).unwrap();
        for a in &same[1..WAYS] {
            for _ in 0..10 {
                t.record_failure(&store, *a, 10, NOW).unwrap();
            }
        }
        // A 49th address in the full set takes the record of the first.
        t.record_failure(&store, same[WAYS], 10, NOW).unwrap();
        let set = Set::decode(&store.get(&set_key(target)).unwrap().unwrap().value).unwrap();
        assert!(set.find(t.place(same[0]).tag).is_none());
        for a in &same[1..] {
            assert!(set.find(t.place(*a).tag).is_some());
        }
        for a in &same[1..WAYS] {
            assert!(t.blocked_for(&store, *a, 10, NOW).unwrap().is_some());
        }
    }

    #[test]
    fn ipv6_is_grouped_by_slash_64_and_mapped_v4_is_v4() {
        let t = FailedAuthTable::with_key(1, 2);
        assert_eq!(
            t.place(ip("2001:db8:1:2::1")),
            t.place(ip("2001:db8:1:2:ffff::9"))
        );
        assert_eq!(t.place(ip("::ffff:192.0.2.1")), t.place(ip("192.0.2.1")));
        assert_ne!(
            t.place(ip("2001:db8:1:2::1")),
            t.place(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn sets_spread_evenly() {
        let t = FailedAuthTable::with_key(3, 4);
        let mut counts = vec![0u32; SETS];
        for i in 0..(SETS as u32 * 8) {
            counts[t.place(IpAddr::V4(Ipv4Addr::from(0x7f00_0000 + i))).set] += 1;
        }
        let max = *counts.iter().max().unwrap();
        assert!(max < 30, "max set load {max} for a mean of 8");
    }

    #[test]
    fn a_missing_table_blocks() {
        let t = FailedAuthTable::with_key(1, 2);
        assert!(t
            .blocked_for(&MemoryStore::new(), ip("192.0.2.1"), 10, NOW)
            .unwrap()
            .is_some());
    }

    #[test]
    fn encoding_round_trips() {
        let mut s = Set::default();
        s.records[3] = Record {
            tag: 9,
            at_ns: 10,
            used: 11,
        };
        assert_eq!(Set::decode(&s.encode()), Some(s));
        assert_eq!(Set::decode(&s.encode()[1..]), None);
        assert_eq!(Set::record_in(&s.encode(), 9), Some(Some(s.records[3])));
        assert_eq!(Set::record_in(&s.encode(), 8), Some(None));
        assert_eq!(Set::record_in(&s.encode()[1..], 9), None);
    }
}
