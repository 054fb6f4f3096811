//! Brute-force protection: failed authentications per client address, in a
//! fixed-size table in shared data.
//!
//! Client addresses are unbounded, so they are never keys. Each address is
//! hashed to one of [`SLOTS`] slots; each slot is one shared-data entry
//! `rag-guard/v1/auth-fail/<n>` (17 bytes: a token bucket of failures), all
//! created when a configuration is applied. The table costs the same
//! whatever the traffic: 4096 entries, about 1 MiB of Envoy memory at the
//! ~250 bytes per entry measured for shared data.
//!
//! A slot allows `per_minute` failures, refilled at `per_minute` per minute.
//! Once a slot has no failures left, every request from an address in it
//! gets 429 before any key is checked.
//!
//! Trade-off: addresses that share a slot share a budget. A collision can
//! only make things stricter for an innocent address (an attacker's failures
//! also count against it), never laxer for an attacker: all of an attacker's
//! failures from one address land in the same slot. With `N` addresses
//! failing at once, an innocent address shares a slot with one of them with
//! probability about `N / 4096`. IPv6 addresses are grouped by their /64,
//! since one host usually controls a whole /64.
//!
//! The slot hash has no secret, so an attacker who knows a victim's address
//! could look for addresses of its own that share the victim's slot and lock
//! the victim out for a minute at a time; that needs many source addresses,
//! and the lockout is limited to the victim's slot.

use std::net::IpAddr;

use crate::limits::token_bucket::{secs_ceil_min1, Bucket, MICRO};
use crate::shared_store::{create_missing, SharedStore, StoreError};

/// Number of slots in the table.
pub const SLOTS: usize = 4096;
pub const SLOT_PREFIX: &str = "rag-guard/v1/auth-fail/";
const MAX_CAS_ATTEMPTS: usize = 16;
const SLOT_VERSION: u8 = 1;
const SLOT_LEN: usize = 1 + 8 + 8;

/// The slot of an address (IPv6: of its /64).
pub fn slot_of(ip: IpAddr) -> usize {
    let bits: u64 = match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u64::from(u32::from(v4)),
            None => (u128::from(v6) >> 64) as u64 | (1 << 63),
        },
    };
    // splitmix64 finaliser: spreads neighbouring addresses over the table.
    let mut z = bits.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % SLOTS as u64) as usize
}

fn slot_key(slot: usize) -> String {
    format!("{SLOT_PREFIX}{slot}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct SlotState {
    at_ns: u64,
    used: u64,
}

impl SlotState {
    fn encode(&self) -> [u8; SLOT_LEN] {
        let mut out = [0u8; SLOT_LEN];
        out[0] = SLOT_VERSION;
        out[1..9].copy_from_slice(&self.at_ns.to_le_bytes());
        out[9..17].copy_from_slice(&self.used.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != SLOT_LEN || bytes[0] != SLOT_VERSION {
            return None;
        }
        Some(SlotState {
            at_ns: u64::from_le_bytes(bytes.get(1..9)?.try_into().ok()?),
            used: u64::from_le_bytes(bytes.get(9..17)?.try_into().ok()?),
        })
    }
}

fn bucket(per_minute: u32) -> Bucket {
    Bucket {
        capacity: u64::from(per_minute),
        refill: u64::from(per_minute),
        window_secs: 60,
    }
}

/// Creates every slot that does not exist yet. Returns how many were created.
pub fn ensure_table(store: &dyn SharedStore) -> Result<usize, StoreError> {
    create_missing(
        store,
        (0..SLOTS).map(slot_key),
        &SlotState::default().encode(),
    )
}

/// If the address has no failures left: the whole seconds until it has one.
/// A missing or unreadable slot counts as blocked (fail closed).
pub fn blocked_for(
    store: &dyn SharedStore,
    ip: IpAddr,
    per_minute: u32,
    now_ns: u64,
) -> Result<Option<u64>, StoreError> {
    let Some(state) = store
        .get(&slot_key(slot_of(ip)))?
        .and_then(|v| SlotState::decode(&v.value))
    else {
        return Ok(Some(60));
    };
    let b = bucket(per_minute);
    let used = b.used_at(state.used, state.at_ns, now_ns);
    let needed = used.saturating_add(MICRO);
    if needed <= b.capacity_micro() {
        return Ok(None);
    }
    Ok(Some(secs_ceil_min1(
        b.nanos_to_refill(needed - b.capacity_micro()),
    )))
}

/// Whole seconds for one failure to refill in a full slot.
pub fn one_failure_secs(per_minute: u32) -> u64 {
    secs_ceil_min1(bucket(per_minute).nanos_to_refill(MICRO))
}

/// Counts one failed authentication against the address's slot. Returns
/// true if the slot had no failure left when it was counted: another worker
/// used up the budget between this request's check and now, and this
/// request must be answered as blocked (429), not as a plain 401.
pub fn record_failure(
    store: &dyn SharedStore,
    ip: IpAddr,
    per_minute: u32,
    now_ns: u64,
) -> Result<bool, StoreError> {
    let key = slot_key(slot_of(ip));
    let b = bucket(per_minute);
    for _ in 0..MAX_CAS_ATTEMPTS {
        let Some(current) = store.get(&key)? else {
            return Ok(true);
        };
        let state = SlotState::decode(&current.value).unwrap_or_default();
        let used = b.used_at(state.used, state.at_ns, now_ns);
        let was_full = used.saturating_add(MICRO) > b.capacity_micro();
        let next = SlotState {
            at_ns: state.at_ns.max(now_ns),
            used: used.saturating_add(MICRO).min(b.capacity_micro()),
        };
        match store.set(&key, &next.encode(), Some(current.cas)) {
            Ok(()) => return Ok(was_full),
            Err(StoreError::CasMismatch) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Host(
        "failed-auth table: CAS attempts exhausted".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_store::MemoryStore;

    const NOW: u64 = 1_800_000_000_000_000_000;
    const SEC: u64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn eleventh_failure_in_a_minute_is_blocked() {
        let store = MemoryStore::new();
        ensure_table(&store).unwrap();
        let a = ip("203.0.113.7");
        for _ in 0..10 {
            assert_eq!(blocked_for(&store, a, 10, NOW).unwrap(), None);
            assert!(!record_failure(&store, a, 10, NOW).unwrap());
        }
        // A failure counted against a full slot reports it.
        assert!(record_failure(&store, a, 10, NOW).unwrap());
        assert_eq!(blocked_for(&store, a, 10, NOW).unwrap(), Some(6));
        // One failure refills every 6 s (the extra one above was capped).
        assert_eq!(blocked_for(&store, a, 10, NOW + 6 * SEC).unwrap(), None);
        // Another address is not affected.
        let b = (1..=255)
            .map(|i| ip(&format!("198.51.100.{i}")))
            .find(|b| slot_of(*b) != slot_of(a))
            .unwrap();
        assert_eq!(blocked_for(&store, b, 10, NOW).unwrap(), None);
    }

    #[test]
    fn memory_does_not_depend_on_addresses() {
        let store = MemoryStore::new();
        ensure_table(&store).unwrap();
        assert_eq!(store.key_count(), SLOTS);
        for i in 0..100_000u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            record_failure(&store, a, 10, NOW).unwrap();
            blocked_for(&store, a, 10, NOW).unwrap();
        }
        assert_eq!(store.key_count(), SLOTS);
        assert_eq!(ensure_table(&store).unwrap(), 0);
    }

    #[test]
    fn ipv6_is_grouped_by_slash_64_and_mapped_v4_is_v4() {
        assert_eq!(
            slot_of(ip("2001:db8:1:2::1")),
            slot_of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_eq!(slot_of(ip("::ffff:192.0.2.1")), slot_of(ip("192.0.2.1")));
    }

    #[test]
    fn slots_spread_evenly() {
        let mut counts = vec![0u32; SLOTS];
        for i in 0..(SLOTS as u32 * 16) {
            counts[slot_of(IpAddr::V4(std::net::Ipv4Addr::from(0x7f00_0000 + i)))] += 1;
        }
        let max = *counts.iter().max().unwrap();
        assert!(max < 48, "max slot load {max} for a mean of 16");
    }

    #[test]
    fn a_missing_table_blocks() {
        let store = MemoryStore::new();
        assert!(blocked_for(&store, ip("192.0.2.1"), 10, NOW)
            .unwrap()
            .is_some());
    }
}
