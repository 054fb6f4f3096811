//! From a rate limit request to the fixed windows it spends from.
//!
//! A descriptor is enforced when it carries its limit (`limit`, the
//! descriptor's `RateLimitOverride`: rag-guard sends each key's tier limits
//! this way, so the plugin configuration stays the one source of truth). A
//! descriptor without one is answered `OK` with no limit, as Envoy's own
//! reference service answers descriptors it has no rule for.
//!
//! Each enforced descriptor is one fixed window aligned to its unit (a
//! minute window starts on the minute), counted in Redis under
//! `rg:{<domain>|<entries>}:<unit seconds>:<window start>`. The braces are a
//! Redis Cluster hash tag: the windows of descriptors with the same entries
//! (a key's minute and hour) share one slot, so one script can spend them
//! together on a cluster too; the service itself talks to one Redis node.
//!
//! Requests are bounded before any Redis work: at most [`MAX_DESCRIPTORS`]
//! descriptors of [`MAX_ENTRIES`] entries, names and values of at most
//! [`MAX_TEXT`] bytes, a domain of at most [`MAX_TEXT`] bytes.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;

pub const MAX_DESCRIPTORS: usize = 16;
pub const MAX_ENTRIES: usize = 8;
pub const MAX_TEXT: usize = 256;
/// Hits one request may add (a route cost is at most 1,000 in rag-guard).
pub const MAX_HITS: u64 = 1_000_000;

/// One window a request spends from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Index of the descriptor in the request.
    pub descriptor: usize,
    pub redis_key: String,
    pub limit: u32,
    /// `Unit` as sent (for the answer's `current_limit`).
    pub unit: i32,
    pub unit_secs: u64,
    /// Unix second the window ends (exclusive).
    pub ends_at: u64,
    pub hits: u64,
}

/// Why a request is refused without looking at Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

/// Seconds in a unit; None for units without a fixed length (or unknown).
pub fn unit_secs(unit: i32) -> Option<u64> {
    match Unit::try_from(unit).ok()? {
        Unit::Second => Some(1),
        Unit::Minute => Some(60),
        Unit::Hour => Some(3_600),
        Unit::Day => Some(86_400),
        Unit::Week => Some(7 * 86_400),
        // Months and years have no fixed length; rag-guard never sends them.
        _ => None,
    }
}

/// Keeps `[A-Za-z0-9_.-]`, percent-encodes the rest, so entries cannot
/// forge the separators or the hash tag of a key.
pub fn escape(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The windows of a request at `now_secs`. `request_hits` is the request's
/// `hits_addend` (0 means 1).
pub fn windows(
    domain: &str,
    descriptors: &[RateLimitDescriptor],
    request_hits: u32,
    now_secs: u64,
) -> Result<Vec<Window>, Invalid> {
    if domain.is_empty() || domain.len() > MAX_TEXT {
        return Err(Invalid(format!("domain must be 1-{MAX_TEXT} bytes")));
    }
    if descriptors.is_empty() || descriptors.len() > MAX_DESCRIPTORS {
        return Err(Invalid(format!("1-{MAX_DESCRIPTORS} descriptors")));
    }
    let mut out = Vec::new();
    for (i, d) in descriptors.iter().enumerate() {
        if d.entries.is_empty() || d.entries.len() > MAX_ENTRIES {
            return Err(Invalid(format!("descriptor {i}: 1-{MAX_ENTRIES} entries")));
        }
        if d.entries
            .iter()
            .any(|e| e.key.is_empty() || e.key.len() > MAX_TEXT || e.value.len() > MAX_TEXT)
        {
            return Err(Invalid(format!(
                "descriptor {i}: entry names 1-{MAX_TEXT} bytes, values at most {MAX_TEXT}"
            )));
        }
        if d.is_negative_hits {
            return Err(Invalid(format!(
                "descriptor {i}: negative hits are not supported"
            )));
        }
        let Some(limit) = &d.limit else {
            continue;
        };
        let Some(secs) = unit_secs(limit.unit) else {
            return Err(Invalid(format!(
                "descriptor {i}: unsupported unit {}",
                limit.unit
            )));
        };
        let hits = match d.hits_addend {
            Some(h) => h.value,
            None if request_hits == 0 => 1,
            None => u64::from(request_hits),
        };
        if hits > MAX_HITS {
            return Err(Invalid(format!(
                "descriptor {i}: more than {MAX_HITS} hits"
            )));
        }
        let start = now_secs - now_secs % secs;
        let mut key = String::from("rg:{");
        escape(domain, &mut key);
        for e in &d.entries {
            key.push('|');
            escape(&e.key, &mut key);
            key.push('=');
            escape(&e.value, &mut key);
        }
        key.push_str(&format!("}}:{secs}:{start}"));
        // Two descriptors on one counter would each be checked against the
        // count before the other's hits: refuse rather than over-admit.
        if out.iter().any(|w: &Window| w.redis_key == key) {
            return Err(Invalid(format!(
                "descriptor {i}: same entries and unit as an earlier descriptor"
            )));
        }
        out.push(Window {
            descriptor: i,
            redis_key: key,
            limit: limit.requests_per_unit,
            unit: limit.unit,
            unit_secs: secs,
            ends_at: start + secs,
            hits,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
        Entry, RateLimitOverride,
    };
    use envoy_types::pb::google::protobuf::UInt64Value;

    fn descriptor(entries: &[(&str, &str)], limit: Option<(u32, Unit)>) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(k, v)| Entry {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            limit: limit.map(|(n, unit)| RateLimitOverride {
                requests_per_unit: n,
                unit: unit as i32,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn windows_are_aligned_and_share_a_hash_tag() {
        let key = [("rag_guard_key", "acme"), ("tier", "pro")];
        let ds = [
            descriptor(&key, Some((300, Unit::Minute))),
            descriptor(&key, Some((10_000, Unit::Hour))),
            descriptor(&[("other", "x")], None),
        ];
        let now = 1_800_000_123;
        let w = windows("rag-guard", &ds, 3, now).unwrap();
        assert_eq!(w.len(), 2, "descriptors without a limit are not counted");
        assert_eq!(
            w[0].redis_key,
            "rg:{rag-guard|rag_guard_key=acme|tier=pro}:60:1800000120"
        );
        assert_eq!(w[0].ends_at, 1_800_000_180);
        assert_eq!(
            w[1].redis_key,
            "rg:{rag-guard|rag_guard_key=acme|tier=pro}:3600:1800000000"
        );
        assert_eq!((w[0].hits, w[0].limit, w[1].limit), (3, 300, 10_000));
        assert_eq!(windows("d", &ds[..1], 0, now).unwrap()[0].hits, 1);
    }

    #[test]
    fn entries_cannot_forge_separators() {
        let a = windows(
            "d",
            &[descriptor(&[("k", "a|b=c}")], Some((1, Unit::Second)))],
            1,
            0,
        )
        .unwrap();
        assert_eq!(a[0].redis_key, "rg:{d|k=a%7Cb%3Dc%7D}:1:0");
    }

    #[test]
    fn bounds_are_checked_before_redis() {
        let ok = descriptor(&[("k", "v")], Some((1, Unit::Minute)));
        assert!(windows("", std::slice::from_ref(&ok), 1, 0).is_err());
        assert!(windows("d", &[], 1, 0).is_err());
        assert!(windows("d", &vec![ok.clone(); MAX_DESCRIPTORS + 1], 1, 0).is_err());
        let long = "x".repeat(MAX_TEXT + 1);
        assert!(windows("d", &[descriptor(&[("k", &long)], None)], 1, 0).is_err());
        assert!(windows("d", &[descriptor(&[], None)], 1, 0).is_err());
        let mut month = ok.clone();
        month.limit.as_mut().unwrap().unit = Unit::Month as i32;
        assert!(windows("d", &[month], 1, 0).is_err());
        let twice = [ok.clone(), ok.clone()];
        assert!(
            windows("d", &twice, 1, 0).is_err(),
            "one counter, two checks"
        );
        let mut many = ok;
        many.hits_addend = Some(UInt64Value {
            value: MAX_HITS + 1,
        });
        assert!(windows("d", &[many], 1, 0).is_err());
    }
}
