//! The two messages of Envoy's rate limit service protocol that the filter
//! exchanges (`envoy.service.ratelimit.v3.RateLimitRequest` out,
//! `RateLimitResponse` in), in protobuf wire format, written and read here
//! rather than through a protobuf library: the filter needs a handful of
//! fields, and the wasm module stays small. The cluster service's tests
//! check both directions against the `envoy-types` definitions.
//!
//! Decoding skips fields it does not use, and refuses malformed input
//! (truncated, wrong wire type for a known field, nesting past what the
//! messages have) with `None`: the caller treats that like an unreachable
//! service.

use super::protobuf::{fields, put_bytes, put_uint, Value};

/// `RateLimitResponse.Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unknown,
    Ok,
    OverLimit,
}

impl Code {
    fn from_wire(v: u64) -> Code {
        match v {
            1 => Code::Ok,
            2 => Code::OverLimit,
            _ => Code::Unknown,
        }
    }
}

/// `RateLimitResponse.RateLimit.Unit` values the filter sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Second = 1,
    Minute = 2,
    Hour = 3,
    Day = 4,
}

/// One descriptor: entries and the limit it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor<'a> {
    pub entries: Vec<(&'a str, &'a str)>,
    pub limit: Option<(u32, Unit)>,
}

/// One `DescriptorStatus` of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    pub code: Option<Code>,
    /// `current_limit.requests_per_unit`, when the service sent a limit.
    pub limit: Option<u32>,
    pub remaining: u32,
    /// `duration_until_reset`, whole seconds rounded up.
    pub reset_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub overall: Code,
    pub statuses: Vec<Status>,
}

/// `RateLimitRequest{domain, descriptors, hits_addend}`.
pub fn encode_request(domain: &str, descriptors: &[Descriptor<'_>], hits: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 48 * descriptors.len());
    put_bytes(&mut out, 1, domain.as_bytes());
    for d in descriptors {
        let mut desc = Vec::new();
        for (k, v) in &d.entries {
            let mut entry = Vec::with_capacity(k.len() + v.len() + 4);
            put_bytes(&mut entry, 1, k.as_bytes());
            put_bytes(&mut entry, 2, v.as_bytes());
            put_bytes(&mut desc, 1, &entry);
        }
        if let Some((per_unit, unit)) = d.limit {
            let mut limit = Vec::new();
            put_uint(&mut limit, 1, u64::from(per_unit));
            put_uint(&mut limit, 2, unit as u64);
            put_bytes(&mut desc, 2, &limit);
        }
        put_bytes(&mut out, 2, &desc);
    }
    put_uint(&mut out, 3, u64::from(hits));
    out
}

fn decode_status(buf: &[u8]) -> Option<Status> {
    let mut s = Status::default();
    fields(buf, |field, value| {
        match (field, value) {
            (1, Value::Varint(v)) => s.code = Some(Code::from_wire(v)),
            (2, Value::Bytes(limit)) => fields(limit, |f, v| {
                if let (1, Value::Varint(n)) = (f, v) {
                    s.limit = Some(u32::try_from(n).unwrap_or(u32::MAX));
                }
                Some(())
            })?,
            (3, Value::Varint(v)) => s.remaining = u32::try_from(v).unwrap_or(u32::MAX),
            (4, Value::Bytes(d)) => {
                let (mut secs, mut nanos) = (0u64, 0u64);
                fields(d, |f, v| {
                    match (f, v) {
                        (1, Value::Varint(n)) => secs = n,
                        (2, Value::Varint(n)) => nanos = n,
                        _ => {}
                    }
                    Some(())
                })?;
                // Negative durations arrive as huge varints: treat as 0.
                let secs = if secs > i64::MAX as u64 { 0 } else { secs };
                s.reset_secs = Some(secs + u64::from(nanos > 0 && nanos < 1_000_000_000));
            }
            (1 | 3, _) | (2 | 4, Value::Varint(_)) => return None,
            _ => {}
        }
        Some(())
    })?;
    Some(s)
}

/// `RateLimitResponse`: the overall code and the descriptor statuses, in
/// request order.
pub fn decode_response(buf: &[u8]) -> Option<Answer> {
    let mut answer = Answer {
        overall: Code::Unknown,
        statuses: Vec::new(),
    };
    fields(buf, |field, value| {
        match (field, value) {
            (1, Value::Varint(v)) => answer.overall = Code::from_wire(v),
            (2, Value::Bytes(s)) => {
                // Bounded by the request: rag-guard sends a few descriptors.
                if answer.statuses.len() >= 64 {
                    return None;
                }
                answer.statuses.push(decode_status(s)?);
            }
            (1, _) | (2, Value::Varint(_)) => return None,
            _ => {}
        }
        Some(())
    })?;
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_are_protobuf() {
        let d = [Descriptor {
            entries: vec![("k", "v")],
            limit: Some((60, Unit::Minute)),
        }];
        let bytes = encode_request("rg", &d, 2);
        // domain "rg"; descriptor {entry {key "k", value "v"}, limit {60, MINUTE}}; hits 2
        let expected: Vec<u8> = vec![
            0x0a, 2, b'r', b'g', 0x12, 14, 0x0a, 6, 0x0a, 1, b'k', 0x12, 1, b'v', 0x12, 4, 0x08,
            60, 0x10, 2, 0x18, 2,
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn responses_decode_and_junk_is_refused() {
        // overall OVER_LIMIT; status {code OVER_LIMIT, limit {rpu 20}, remaining 0
        // (absent), reset 1 s + 5 ns}
        let bytes = [
            0x08, 2, 0x12, 12, 0x08, 2, 0x12, 2, 0x08, 20, 0x22, 4, 0x08, 1, 0x10, 5,
        ];
        let a = decode_response(&bytes).unwrap();
        assert_eq!(a.overall, Code::OverLimit);
        assert_eq!(
            a.statuses,
            vec![Status {
                code: Some(Code::OverLimit),
                limit: Some(20),
                remaining: 0,
                reset_secs: Some(2)
            }]
        );
        assert_eq!(decode_response(&[]).unwrap().overall, Code::Unknown);
        assert!(decode_response(&bytes[..bytes.len() - 1]).is_none());
        assert!(decode_response(&[0x0a, 1, 0]).is_none(), "code as bytes");
        assert!(decode_response(&[0xff; 11]).is_none());
        // Unknown fields of every wire type are skipped.
        let with_unknown = [
            0x08, 1, 0x2a, 1, 0x00, 0x39, 0, 0, 0, 0, 0, 0, 0, 0, 0x3d, 0, 0, 0, 0,
        ];
        assert_eq!(decode_response(&with_unknown).unwrap().overall, Code::Ok);
    }

    #[test]
    fn any_bytes_get_an_answer_or_none() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 8 * 8)) as u8).collect();
            let _ = decode_response(&bytes);
        }
    }
}
