//! Leaked-key detection: one key used from too many client addresses within
//! a sliding window.
//!
//! Each key keeps a fixed window of [`SLOTS`] address slots inside its
//! shared-data entry (see `key_state`): a 32-bit tag of the address (IPv6:
//! of its /64, as one host commonly owns a whole /64) and the second it was
//! last seen. A new address takes an empty or expired slot. When every slot
//! holds an address seen within the window, the key has been used from at
//! least `SLOTS` addresses, which is above any allowed threshold. So the
//! count is exact up to `SLOTS`, and memory per key is fixed whatever the
//! traffic.
//!
//! Addresses inside `allowlist` ranges (a NAT, an office egress) are never
//! recorded.

use std::net::IpAddr;

use ipnet::IpNet;

/// Address slots per key: the largest exact count.
pub const SLOTS: usize = 32;
/// Bytes of one slot in the encoded entry: tag and last-seen second.
pub const SLOT_LEN: usize = 8;
/// A slot whose address was seen less than this long ago is not rewritten
/// by a request that does not write the entry anyway (refused requests).
pub const REFRESH_SECS: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakAction {
    /// Revoke the key at runtime and refuse it from then on.
    Revoke,
    /// Log and count only.
    Report,
}

impl LeakAction {
    pub fn as_str(self) -> &'static str {
        match self {
            LeakAction::Revoke => "revoke",
            LeakAction::Report => "report",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakDetection {
    pub enabled: bool,
    /// Trips when more than this many distinct addresses used the key
    /// within the window.
    pub max_addresses: u32,
    pub window_secs: u32,
    pub action: LeakAction,
    pub allowlist: Vec<IpNet>,
}

impl Default for LeakDetection {
    fn default() -> Self {
        LeakDetection {
            enabled: true,
            max_addresses: 10,
            window_secs: 300,
            action: LeakAction::Revoke,
            allowlist: Vec::new(),
        }
    }
}

impl LeakDetection {
    /// Whether this address is counted (not allowlisted).
    pub fn counts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !self.allowlist.iter().any(|net| net.contains(&ip))
    }
}

/// IPv4-mapped IPv6 addresses are their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The 32-bit tag of an address (IPv6: of its /64); never 0, which marks an
/// empty slot. Two addresses sharing a tag count once (lenient, about one
/// pair in four billion).
pub fn address_tag(ip: IpAddr) -> u32 {
    let bits: u64 = match canonical(ip) {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) >> 64) as u64 | (1 << 63),
    };
    // splitmix64 finaliser, folded to 32 bits.
    let mut z = bits.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let tag = (z ^ (z >> 32)) as u32;
    tag.max(1)
}

/// One address slot: tag 0 is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressSlot {
    pub tag: u32,
    pub last_seen: u32,
}

/// The address window of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressWindow {
    pub slots: [AddressSlot; SLOTS],
}

impl Default for AddressWindow {
    fn default() -> Self {
        AddressWindow {
            slots: [AddressSlot::default(); SLOTS],
        }
    }
}

/// What recording one address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The window changed and must be written back.
    pub changed: bool,
    /// The address was not in the window.
    pub new_address: bool,
    /// Distinct addresses seen within the window, this one included.
    pub distinct: u32,
}

impl AddressWindow {
    fn live(slot: &AddressSlot, now: u32, window: u32) -> bool {
        slot.tag != 0 && now.saturating_sub(slot.last_seen) < window
    }

    /// Distinct addresses seen within `window` seconds before `now`.
    pub fn distinct(&self, now: u32, window: u32) -> u32 {
        self.slots
            .iter()
            .filter(|s| Self::live(s, now, window))
            .count() as u32
    }

    /// Records a request from the address `tag` at second `now`.
    /// `refresh_always`: the entry is written anyway, so keep the time
    /// exact; otherwise a recent slot is left alone.
    pub fn observe(
        &mut self,
        tag: u32,
        now: u32,
        window: u32,
        refresh_always: bool,
    ) -> Observation {
        let mut changed = false;
        let mut new_address = false;
        if let Some(slot) = self.slots.iter_mut().find(|s| s.tag == tag) {
            let stale = now.saturating_sub(slot.last_seen) >= REFRESH_SECS;
            if slot.last_seen < now && (refresh_always || stale) {
                new_address = now.saturating_sub(slot.last_seen) >= window;
                slot.last_seen = now;
                changed = true;
            }
        } else {
            new_address = true;
            // An empty slot, else the one seen longest ago if it is outside
            // the window. When every slot is live, the address is not
            // stored, and the count is already SLOTS.
            let free = self
                .slots
                .iter_mut()
                .filter(|s| !Self::live(s, now, window))
                .min_by_key(|s| s.last_seen);
            if let Some(slot) = free {
                *slot = AddressSlot {
                    tag,
                    last_seen: now,
                };
                changed = true;
            }
        }
        let mut distinct = self.distinct(now, window);
        if new_address && !changed {
            distinct = distinct.saturating_add(1);
        }
        Observation {
            changed,
            new_address,
            distinct,
        }
    }

    pub fn encode_into(&self, out: &mut [u8]) {
        for (slot, chunk) in self.slots.iter().zip(out.chunks_exact_mut(SLOT_LEN)) {
            chunk[..4].copy_from_slice(&slot.tag.to_le_bytes());
            chunk[4..].copy_from_slice(&slot.last_seen.to_le_bytes());
        }
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != SLOTS * SLOT_LEN {
            return None;
        }
        let mut window = AddressWindow::default();
        for (slot, chunk) in window.slots.iter_mut().zip(bytes.chunks_exact(SLOT_LEN)) {
            slot.tag = u32::from_le_bytes(chunk[..4].try_into().ok()?);
            slot.last_seen = u32::from_le_bytes(chunk[4..].try_into().ok()?);
        }
        Some(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 300;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_distinct_addresses_within_the_window() {
        let mut w = AddressWindow::default();
        for i in 1..=11u8 {
            let o = w.observe(address_tag(ip(&format!("127.0.0.{i}"))), 1000, W, true);
            assert!(o.new_address && o.changed);
            assert_eq!(o.distinct, u32::from(i));
        }
        // The same address again is not new.
        let o = w.observe(address_tag(ip("127.0.0.1")), 1001, W, true);
        assert!(!o.new_address);
        assert_eq!(o.distinct, 11);
        // After the window, only the address seen at 1001 is live.
        assert_eq!(w.distinct(1000 + W, W), 1);
        let o = w.observe(address_tag(ip("127.0.0.2")), 1000 + W, W, true);
        assert!(o.new_address);
        assert_eq!(o.distinct, 2);
    }

    #[test]
    fn memory_is_fixed_and_counts_saturate_above_the_slots() {
        let mut w = AddressWindow::default();
        let mut last = None;
        for i in 0..1000u32 {
            let a = IpAddr::V4((0x0a00_0000 + i).into());
            last = Some(w.observe(address_tag(a), 5000, W, true));
        }
        let o = last.unwrap();
        assert!(o.new_address && !o.changed);
        assert_eq!(o.distinct, SLOTS as u32 + 1);
        assert_eq!(w.distinct(5000, W), SLOTS as u32);
    }

    #[test]
    fn refused_requests_do_not_rewrite_recent_slots() {
        let mut w = AddressWindow::default();
        let t = address_tag(ip("192.0.2.1"));
        assert!(w.observe(t, 100, W, false).changed);
        assert!(!w.observe(t, 105, W, false).changed);
        assert!(w.observe(t, 105, W, true).changed);
        assert!(w.observe(t, 100 + 5 + REFRESH_SECS, W, false).changed);
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_mapped_v4_is_v4() {
        assert_eq!(
            address_tag(ip("2001:db8::1")),
            address_tag(ip("2001:db8::ffff:1"))
        );
        assert_ne!(
            address_tag(ip("2001:db8::1")),
            address_tag(ip("2001:db8:0:1::1"))
        );
        assert_eq!(
            address_tag(ip("::ffff:192.0.2.1")),
            address_tag(ip("192.0.2.1"))
        );
        assert_ne!(address_tag(ip("0.0.0.0")), 0);
    }

    #[test]
    fn encoding_round_trips() {
        let mut w = AddressWindow::default();
        w.observe(7, 9, W, true);
        let mut buf = [0u8; SLOTS * SLOT_LEN];
        w.encode_into(&mut buf);
        assert_eq!(AddressWindow::decode(&buf), Some(w));
        assert_eq!(AddressWindow::decode(&buf[1..]), None);
    }
}
