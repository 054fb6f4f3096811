//! What clients are told about their limits: the `X-RateLimit-*` headers,
//! the IETF draft headers, and the status endpoint's body.
//!
//! The IETF headers follow draft-ietf-httpapi-ratelimit-headers-08
//! (October 2024): `RateLimit-Policy` lists each policy as a quoted name
//! with `q` (quota) and `w` (window, seconds); `RateLimit` gives, per policy,
//! `r` (remaining) and `t` (seconds until the quota is fully restored). A
//! token bucket has no fixed window, so `w` is the time the bucket takes to
//! refill from empty: 60 s for the minute bucket, 3600 s for the hour
//! bucket, and `burst * 60 / per_minute` s (rounded up) for the burst bucket.

use std::fmt::Write;

use crate::limits::token_bucket::{BucketView, LimitKind, Limits};

/// Response headers for an authenticated request.
pub fn headers(limits: &Limits, views: &[BucketView; 3]) -> Vec<(&'static str, String)> {
    let view = |kind: LimitKind| views.iter().find(|v| v.kind == kind);
    let mut out = Vec::with_capacity(6);
    if let Some(m) = view(LimitKind::Minute) {
        out.push(("x-ratelimit-limit-minute", m.limit.to_string()));
        out.push(("x-ratelimit-remaining-minute", m.remaining.to_string()));
    }
    if let Some(h) = view(LimitKind::Hour) {
        out.push(("x-ratelimit-limit-hour", h.limit.to_string()));
        out.push(("x-ratelimit-remaining-hour", h.remaining.to_string()));
    }
    // One string per header, written in place (this runs on every
    // admitted request).
    let (mut policy, mut current) = (String::with_capacity(80), String::with_capacity(80));
    for (i, v) in views.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let name = v.kind.as_str();
        let window = window_secs(limits, v.kind);
        let _ = write!(policy, "{sep}\"{name}\";q={};w={window}", v.limit);
        let _ = write!(
            current,
            "{sep}\"{name}\";r={};t={}",
            v.remaining, v.reset_secs
        );
    }
    out.push(("ratelimit-policy", policy));
    out.push(("ratelimit", current));
    out
}

/// Seconds a bucket takes to refill from empty.
pub fn window_secs(limits: &Limits, kind: LimitKind) -> u64 {
    let b = limits.bucket(kind);
    if b.refill == 0 {
        return b.window_secs;
    }
    (b.capacity * b.window_secs).div_ceil(b.refill)
}

/// The 429 detail naming the limit that tripped.
pub fn exceeded_detail(limits: &Limits, kind: LimitKind) -> String {
    match kind {
        LimitKind::Minute => format!(
            "Rate limit exceeded: {} requests per minute",
            limits.per_minute
        ),
        LimitKind::Hour => format!("Rate limit exceeded: {} requests per hour", limits.per_hour),
        LimitKind::Burst => format!("Rate limit exceeded: burst of {} requests", limits.burst),
    }
}

/// Body of the status endpoint.
pub fn status_body(key_name: &str, tier: &str, views: &[BucketView; 3]) -> serde_json::Value {
    let view = |kind: LimitKind| views.iter().find(|v| v.kind == kind);
    let (minute, hour, burst) = (
        view(LimitKind::Minute),
        view(LimitKind::Hour),
        view(LimitKind::Burst),
    );
    serde_json::json!({
        "key_name": key_name,
        "tier": tier,
        "requests_this_minute": minute.map(|v| v.used),
        "minute_limit": minute.map(|v| v.limit),
        "minute_remaining": minute.map(|v| v.remaining),
        "requests_this_hour": hour.map(|v| v.used),
        "hour_limit": hour.map(|v| v.limit),
        "hour_remaining": hour.map(|v| v.remaining),
        "burst_limit": burst.map(|v| v.limit),
        "burst_remaining": burst.map(|v| v.remaining),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::token_bucket::{check, BucketState};

    const LIMITS: Limits = Limits {
        per_minute: 60,
        per_hour: 1000,
        burst: 10,
    };

    #[test]
    fn headers_after_three_requests() {
        let mut s = BucketState::default();
        let now = 1_800_000_000_000_000_000;
        for _ in 0..3 {
            s = check(&s, &LIMITS, 1, now).state;
        }
        let v = check(&s, &LIMITS, 1, now);
        let h: std::collections::HashMap<_, _> = headers(&LIMITS, &v.views).into_iter().collect();
        assert_eq!(h["x-ratelimit-limit-minute"], "60");
        assert_eq!(h["x-ratelimit-remaining-minute"], "56");
        assert_eq!(h["x-ratelimit-limit-hour"], "1000");
        assert_eq!(h["x-ratelimit-remaining-hour"], "996");
        assert_eq!(
            h["ratelimit-policy"],
            "\"burst\";q=10;w=10, \"minute\";q=60;w=60, \"hour\";q=1000;w=3600"
        );
        assert_eq!(
            h["ratelimit"],
            "\"burst\";r=6;t=4, \"minute\";r=56;t=4, \"hour\";r=996;t=15"
        );
    }

    #[test]
    fn details_name_the_limit() {
        assert_eq!(
            exceeded_detail(&LIMITS, LimitKind::Minute),
            "Rate limit exceeded: 60 requests per minute"
        );
        assert_eq!(
            exceeded_detail(&LIMITS, LimitKind::Hour),
            "Rate limit exceeded: 1000 requests per hour"
        );
        assert_eq!(
            exceeded_detail(&LIMITS, LimitKind::Burst),
            "Rate limit exceeded: burst of 10 requests"
        );
    }
}
