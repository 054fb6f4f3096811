//! The messages of rag-guard's cluster API, `rag_guard.cluster.v1.Cluster`
//! (`cluster/proto/rag_guard_cluster.proto` is the schema), in protobuf
//! wire format:
//!
//! - `Sync`: a replica reports, per key, its latest revocation change, the
//!   addresses (tags) it saw recently and its own usage totals; the answer
//!   carries every revocation changed since the version the replica has,
//!   and the keys whose addresses, over all replicas, crossed the leak
//!   threshold in report mode.
//! - `Usage`: the cluster's usage totals of some keys and days, for the
//!   admin API's usage report.
//!
//! Decoding refuses malformed input with `None` and bounds every list.

use super::protobuf::{fields, put_bytes, put_uint, Value};

/// Most records a decoded answer may hold (revocations, leaks, keys).
pub const MAX_RECORDS: usize = 16_384;
/// Most days per key in a usage answer.
pub const MAX_DAYS: usize = 64;

/// Who made a revocation change (`Revocation.by`).
pub const BY_ADMIN: u32 = 1;
pub const BY_LEAK_DETECTION: u32 = 2;

/// A revocation state and when it was set (last writer wins by
/// `changed_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Change {
    pub revoked: bool,
    /// [`BY_ADMIN`] or [`BY_LEAK_DETECTION`] when revoked.
    pub by: u32,
    pub at_secs: u64,
    pub changed_ms: u64,
}

/// An address seen using a key: its tag and the second it was last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub tag: u32,
    pub last_seen: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeakPolicy {
    pub max_addresses: u32,
    pub window_secs: u32,
    pub revoke: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DayUsage {
    pub day: u32,
    pub admitted: u32,
    pub rate_limited: u32,
    pub rejected: u32,
}

/// What one replica reports about one key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyReport<'a> {
    pub name: &'a str,
    pub change: Option<Change>,
    pub seen: Vec<Seen>,
    pub leak: LeakPolicy,
    pub days: Vec<DayUsage>,
    pub request_count: u64,
    pub last_used: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest<'a> {
    pub domain: &'a str,
    /// This replica's id (its counts are kept apart from the others').
    pub replica: &'a str,
    /// The revocation version this replica has applied, and the service's
    /// epoch it belongs to (0: none yet).
    pub since: u64,
    pub epoch: u64,
    pub keys: Vec<KeyReport<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResponse {
    pub version: u64,
    /// The service's epoch: when it is not the request's, `since` was taken
    /// as 0 and the answer holds every revocation.
    pub epoch: u64,
    pub revocations: Vec<(String, Change)>,
    /// Keys over the leak threshold across replicas (report mode), with
    /// their distinct address count.
    pub leaks: Vec<(String, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyUsage {
    pub name: String,
    pub days: Vec<DayUsage>,
    pub request_count: u64,
    pub last_used: u64,
}

fn put_msg(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    put_bytes(out, field, body);
}

fn change_bytes(name: &str, c: &Change) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + name.len());
    if !name.is_empty() {
        put_bytes(&mut m, 1, name.as_bytes());
    }
    put_uint(&mut m, 2, u64::from(c.revoked));
    put_uint(&mut m, 3, u64::from(c.by));
    put_uint(&mut m, 4, c.at_secs);
    put_uint(&mut m, 5, c.changed_ms);
    m
}

fn day_bytes(d: &DayUsage) -> Vec<u8> {
    let mut m = Vec::with_capacity(20);
    put_uint(&mut m, 1, u64::from(d.day));
    put_uint(&mut m, 2, u64::from(d.admitted));
    put_uint(&mut m, 3, u64::from(d.rate_limited));
    put_uint(&mut m, 4, u64::from(d.rejected));
    m
}

/// `SyncRequest{domain, replica, since, keys}`.
pub fn encode_sync(req: &SyncRequest<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 96 * req.keys.len());
    put_bytes(&mut out, 1, req.domain.as_bytes());
    put_bytes(&mut out, 2, req.replica.as_bytes());
    put_uint(&mut out, 3, req.since);
    for k in &req.keys {
        let mut m = Vec::with_capacity(64 + 12 * k.seen.len());
        put_bytes(&mut m, 1, k.name.as_bytes());
        if let Some(c) = &k.change {
            put_msg(&mut m, 2, &change_bytes("", c));
        }
        for s in &k.seen {
            let mut seen = Vec::with_capacity(12);
            put_uint(&mut seen, 1, u64::from(s.tag));
            put_uint(&mut seen, 2, u64::from(s.last_seen));
            put_msg(&mut m, 3, &seen);
        }
        let mut leak = Vec::with_capacity(12);
        put_uint(&mut leak, 1, u64::from(k.leak.max_addresses));
        put_uint(&mut leak, 2, u64::from(k.leak.window_secs));
        put_uint(&mut leak, 3, u64::from(k.leak.revoke));
        put_msg(&mut m, 4, &leak);
        for d in &k.days {
            put_msg(&mut m, 5, &day_bytes(d));
        }
        put_uint(&mut m, 6, k.request_count);
        put_uint(&mut m, 7, k.last_used);
        put_msg(&mut out, 4, &m);
    }
    put_uint(&mut out, 5, req.epoch);
    out
}

/// `UsageRequest{domain, names, first_day, last_day}`.
pub fn encode_usage(domain: &str, names: &[&str], first_day: u32, last_day: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + 24 * names.len());
    put_bytes(&mut out, 1, domain.as_bytes());
    for n in names {
        put_bytes(&mut out, 2, n.as_bytes());
    }
    put_uint(&mut out, 3, u64::from(first_day));
    put_uint(&mut out, 4, u64::from(last_day));
    out
}

fn u32_of(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn text(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes).ok().map(str::to_string)
}

fn decode_change(buf: &[u8]) -> Option<(String, Change)> {
    let mut name = String::new();
    let mut c = Change::default();
    fields(buf, |field, value| {
        match (field, value) {
            (1, Value::Bytes(b)) => name = text(b)?,
            (2, Value::Varint(v)) => c.revoked = v != 0,
            (3, Value::Varint(v)) => c.by = u32_of(v),
            (4, Value::Varint(v)) => c.at_secs = v,
            (5, Value::Varint(v)) => c.changed_ms = v,
            (1, _) | (2..=5, Value::Bytes(_)) => return None,
            _ => {}
        }
        Some(())
    })?;
    Some((name, c))
}

fn decode_day(buf: &[u8]) -> Option<DayUsage> {
    let mut d = DayUsage::default();
    fields(buf, |field, value| {
        match (field, value) {
            (1, Value::Varint(v)) => d.day = u32_of(v),
            (2, Value::Varint(v)) => d.admitted = u32_of(v),
            (3, Value::Varint(v)) => d.rate_limited = u32_of(v),
            (4, Value::Varint(v)) => d.rejected = u32_of(v),
            (1..=4, Value::Bytes(_)) => return None,
            _ => {}
        }
        Some(())
    })?;
    Some(d)
}

/// `SyncResponse{version, revocations, leaks}`.
pub fn decode_sync(buf: &[u8]) -> Option<SyncResponse> {
    let mut r = SyncResponse::default();
    fields(buf, |field, value| {
        match (field, value) {
            (1, Value::Varint(v)) => r.version = v,
            (4, Value::Varint(v)) => r.epoch = v,
            (2, Value::Bytes(b)) => {
                if r.revocations.len() >= MAX_RECORDS {
                    return None;
                }
                r.revocations.push(decode_change(b)?);
            }
            (3, Value::Bytes(b)) => {
                if r.leaks.len() >= MAX_RECORDS {
                    return None;
                }
                let (mut name, mut distinct) = (String::new(), 0);
                fields(b, |f, v| {
                    match (f, v) {
                        (1, Value::Bytes(n)) => name = text(n)?,
                        (2, Value::Varint(d)) => distinct = u32_of(d),
                        (1 | 2, _) => return None,
                        _ => {}
                    }
                    Some(())
                })?;
                r.leaks.push((name, distinct));
            }
            (1 | 4, _) | (2 | 3, Value::Varint(_)) => return None,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

/// `UsageResponse{keys}`.
pub fn decode_usage(buf: &[u8]) -> Option<Vec<KeyUsage>> {
    let mut keys = Vec::new();
    fields(buf, |field, value| {
        match (field, value) {
            (1, Value::Bytes(b)) => {
                if keys.len() >= MAX_RECORDS {
                    return None;
                }
                let mut k = KeyUsage::default();
                fields(b, |f, v| {
                    match (f, v) {
                        (1, Value::Bytes(n)) => k.name = text(n)?,
                        (2, Value::Bytes(d)) => {
                            if k.days.len() >= MAX_DAYS {
                                return None;
                            }
                            k.days.push(decode_day(d)?);
                        }
                        (3, Value::Varint(n)) => k.request_count = n,
                        (4, Value::Varint(n)) => k.last_used = n,
                        (1..=4, _) => return None,
                        _ => {}
                    }
                    Some(())
                })?;
                keys.push(k);
            }
            (1, _) => return None,
            _ => {}
        }
        Some(())
    })?;
    Some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_answers_decode_and_junk_is_refused() {
        // version 7; revocation {name "a", revoked, by 1, at 5, changed 9}; leak {"b", 12}
        let rev = [0x0a, 1, b'a', 0x10, 1, 0x18, 1, 0x20, 5, 0x28, 9];
        let mut bytes = vec![0x08, 7, 0x12, rev.len() as u8];
        bytes.extend_from_slice(&rev);
        bytes.extend_from_slice(&[0x1a, 5, 0x0a, 1, b'b', 0x10, 12, 0x20, 3]);
        let r = decode_sync(&bytes).unwrap();
        assert_eq!((r.version, r.epoch), (7, 3));
        assert_eq!(
            r.revocations,
            vec![(
                "a".to_string(),
                Change {
                    revoked: true,
                    by: 1,
                    at_secs: 5,
                    changed_ms: 9
                }
            )]
        );
        assert_eq!(r.leaks, vec![("b".to_string(), 12)]);
        assert!(decode_sync(&bytes[..bytes.len() - 1]).is_none());
        assert!(decode_sync(&[0x12, 1, 0x0a]).is_none());
        assert!(
            decode_sync(&[0x12, 3, 0x0a, 1, 0xff]).is_none(),
            "bad utf-8"
        );
        assert_eq!(decode_sync(&[]).unwrap(), SyncResponse::default());
    }

    #[test]
    fn usage_answers_decode() {
        // keys {name "k", days {day 3, admitted 4}, count 9}
        let bytes = [0x0a, 11, 0x0a, 1, b'k', 0x12, 4, 0x08, 3, 0x10, 4, 0x18, 9];
        let keys = decode_usage(&bytes).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].name, "k");
        assert_eq!(keys[0].request_count, 9);
        assert_eq!(
            keys[0].days,
            vec![DayUsage {
                day: 3,
                admitted: 4,
                ..Default::default()
            }]
        );
        assert!(decode_usage(&[0x0a, 2, 0x12, 0x00, 0x00]).is_none());
    }

    #[test]
    fn any_bytes_get_an_answer_or_none() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 48) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 8 * 8)) as u8).collect();
            let _ = decode_sync(&bytes);
            let _ = decode_usage(&bytes);
        }
    }
}
