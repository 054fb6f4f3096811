//! Cluster mode's limits: a key's minute and hour budgets are decided by
//! the cluster service, through Envoy's rate limit service protocol, so
//! they hold across every replica; the burst bucket stays this replica's.
//!
//! The headers phase spends the key's local buckets as without cluster mode
//! and then, instead of refusing on the minute or hour bucket, keeps the
//! local verdict as the fallback ([`ClusterCheck`]); the adapter sends
//! [`rls_request`] and hands the answer (or its absence) to [`judge`].
//!
//! Each request sends two descriptors, both with the entries
//! `rag_guard_key` = key name, `tier` = tier, and `window` = `minute` or
//! `hour`, each with its limit as an override, and the route cost as
//! `hits_addend`. The key itself never leaves the filter.

use crate::auth::keys::KeyEntry;
use crate::cluster::rls::{self, Code, Descriptor, Unit};
use crate::cluster::settings::{ClusterSettings, FailureMode};
use crate::http::LocalReply;
use crate::limits::headers as rate_headers;
use crate::limits::token_bucket::{BucketView, LimitKind};

use super::decision::{ClusterCheck, Decision};
use super::outcome::Outcome;

/// Entry names of the descriptors.
pub const KEY_ENTRY: &str = "rag_guard_key";
pub const TIER_ENTRY: &str = "tier";
pub const WINDOW_ENTRY: &str = "window";

/// The `RateLimitRequest` for a request of `entry`.
pub fn rls_request(settings: &ClusterSettings, entry: &KeyEntry, check: &ClusterCheck) -> Vec<u8> {
    let descriptor = |window: &'static str, limit: u32, unit: Unit| Descriptor {
        entries: vec![
            (KEY_ENTRY, entry.name.as_str()),
            (TIER_ENTRY, entry.tier.as_str()),
            (WINDOW_ENTRY, window),
        ],
        limit: Some((limit, unit)),
    };
    let descriptors = [
        descriptor("minute", entry.limits.per_minute, Unit::Minute),
        descriptor("hour", entry.limits.per_hour, Unit::Hour),
    ];
    rls::encode_request(&settings.domain, &descriptors, check.cost)
}

/// How the service's part went, for metrics and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// The service answered.
    Answered,
    /// No usable answer; `failure_mode: deny` refused the request.
    Denied,
    /// No usable answer; this replica's buckets decided.
    Fallback,
}

/// The decision for a request of `entry` given the service's answer
/// (`None`: the call failed, timed out, or the answer did not decode).
pub fn judge<'c>(
    settings: &ClusterSettings,
    entry: &'c KeyEntry,
    key_id: Option<String>,
    check: &ClusterCheck,
    answer: Option<&[u8]>,
) -> (Decision<'c>, Judged) {
    let base = |outcome: Outcome| Decision {
        key: Some(entry),
        key_id: key_id.clone(),
        ..Decision::of(outcome)
    };
    // An OK counts only when it shows both limits applied: an RLS that does
    // not know the descriptors answers OK without them, which would admit
    // every request unchecked.
    let answer = answer
        .and_then(rls::decode_response)
        .filter(|a| match a.overall {
            Code::OverLimit => true,
            Code::Ok => a.statuses.len() == 2 && a.statuses.iter().all(|s| s.limit.is_some()),
            Code::Unknown => false,
        });
    let Some(answer) = answer else {
        return match settings.failure_mode {
            FailureMode::Deny => (base(Outcome::ClusterUnavailable), Judged::Denied),
            FailureMode::Local => {
                let mut d = local_decision(entry, base(Outcome::Allowed), check, check.fallback);
                d.cluster_fallback = true;
                (d, Judged::Fallback)
            }
        };
    };
    // The windows as the service counts them, where it says; this
    // replica's burst bucket.
    let mut views = check.views;
    let mut tripped: Option<(LimitKind, u64)> = None;
    for (kind, status) in [LimitKind::Minute, LimitKind::Hour]
        .into_iter()
        .zip(answer.statuses.iter())
    {
        if let Some(limit) = status.limit {
            let remaining = u64::from(status.remaining.min(limit));
            if let Some(v) = views.iter_mut().find(|v| v.kind == kind) {
                *v = BucketView {
                    kind,
                    limit: u64::from(limit),
                    remaining,
                    used: u64::from(limit) - remaining,
                    reset_secs: status.reset_secs.unwrap_or(v.reset_secs),
                };
            }
        }
        if status.code == Some(Code::OverLimit) {
            let wait = status
                .reset_secs
                .unwrap_or(rate_headers::window_secs(&entry.limits, kind))
                .max(1);
            if tripped.is_none_or(|(_, w)| wait > w) {
                tripped = Some((kind, wait));
            }
        }
    }
    if answer.overall == Code::OverLimit && tripped.is_none() {
        // An RLS that says no without saying which: the minute's window.
        tripped = Some((LimitKind::Minute, 60));
    }
    let checked = ClusterCheck {
        views,
        ..check.clone()
    };
    let verdict = if answer.overall == Code::OverLimit {
        tripped
    } else {
        None
    };
    (
        local_decision(entry, base(Outcome::Allowed), &checked, verdict),
        Judged::Answered,
    )
}

/// Admitted with rate-limit headers, or refused on `refused` (limit, wait).
fn local_decision<'c>(
    entry: &'c KeyEntry,
    mut d: Decision<'c>,
    check: &ClusterCheck,
    refused: Option<(LimitKind, u64)>,
) -> Decision<'c> {
    let headers = rate_headers::headers(&entry.limits, &check.views);
    if let Some((kind, wait)) = refused {
        let detail = rate_headers::exceeded_detail(&entry.limits, kind);
        let mut reply = LocalReply::error(429, &detail).with_retry_after(wait);
        reply.headers.extend(headers.iter().cloned());
        d.outcome = Outcome::RateLimited(kind);
        d.reply = Some(reply);
    }
    d.response_headers = headers;
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::rls::Status;
    use crate::limits::token_bucket::Limits;

    fn entry() -> KeyEntry {
        KeyEntry {
            name: "acme".into(),
            sha256: [0; 32],
            tier: "pro".into(),
            limits: Limits {
                per_minute: 20,
                per_hour: 500,
                burst: 10,
            },
            expires_at: None,
            enabled: true,
            previous: Vec::new(),
            roles: None,
        }
    }

    fn settings(failure_mode: FailureMode) -> ClusterSettings {
        ClusterSettings {
            service: "rls".into(),
            domain: "rg".into(),
            timeout_ms: 100,
            failure_mode,
        }
    }

    fn check(fallback: Option<(LimitKind, u64)>) -> ClusterCheck {
        let view = |kind, limit| BucketView {
            kind,
            limit,
            remaining: limit - 1,
            used: 1,
            reset_secs: 3,
        };
        ClusterCheck {
            cost: 2,
            fallback,
            views: [
                view(LimitKind::Burst, 10),
                view(LimitKind::Minute, 20),
                view(LimitKind::Hour, 500),
            ],
        }
    }

    /// A `RateLimitResponse` in wire format (hand-written: the service's
    /// tests check the codec against envoy-types).
    fn answer(overall: u8, statuses: &[(u8, u8, u8, u8)]) -> Vec<u8> {
        let mut out = vec![0x08, overall];
        for &(code, limit, remaining, reset) in statuses {
            let body = [
                0x08, code, 0x12, 2, 0x08, limit, 0x18, remaining, 0x22, 2, 0x08, reset,
            ];
            out.push(0x12);
            out.push(body.len() as u8);
            out.extend_from_slice(&body);
        }
        out
    }

    #[test]
    fn descriptors_name_the_key_and_tier_never_the_key() {
        let e = entry();
        let bytes = rls_request(&settings(FailureMode::Deny), &e, &check(None));
        let text = String::from_utf8_lossy(&bytes);
        for needle in [
            "rag_guard_key",
            "acme",
            "tier",
            "pro",
            "minute",
            "hour",
            "rg",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
        assert_eq!(*bytes.last().unwrap(), 2, "hits_addend is the cost");
    }

    #[test]
    fn the_services_answer_decides() {
        let e = entry();
        let s = settings(FailureMode::Deny);
        // Admitted: the headers show the service's windows.
        let ok = answer(1, &[(1, 20, 7, 40), (1, 120, 90, 100)]);
        let (d, j) = judge(&s, &e, None, &check(None), Some(&ok));
        assert_eq!((d.outcome, j), (Outcome::Allowed, Judged::Answered));
        assert!(d.reply.is_none());
        let h = |name: &str| {
            d.response_headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(h("x-ratelimit-remaining-minute").as_deref(), Some("7"));
        assert_eq!(h("x-ratelimit-limit-hour").as_deref(), Some("120"));
        // Over the hour: 429 on the hour, Retry-After from its reset.
        let over = answer(2, &[(1, 20, 7, 40), (2, 120, 0, 100)]);
        let (d, _) = judge(&s, &e, None, &check(None), Some(&over));
        assert_eq!(d.outcome, Outcome::RateLimited(LimitKind::Hour));
        let reply = d.reply.unwrap();
        assert_eq!(reply.status, 429);
        assert!(reply
            .headers
            .iter()
            .any(|(n, v)| *n == "retry-after" && v == "100"));
        // The local fallback verdict does not matter while the service answers.
        let (d, _) = judge(
            &s,
            &e,
            None,
            &check(Some((LimitKind::Minute, 9))),
            Some(&ok),
        );
        assert_eq!(d.outcome, Outcome::Allowed);
    }

    #[test]
    fn no_answer_applies_the_failure_mode() {
        let e = entry();
        for bad in [None, Some(&b"\xff\xff"[..]), Some(&b""[..])] {
            let (d, j) = judge(&settings(FailureMode::Deny), &e, None, &check(None), bad);
            assert_eq!(
                (d.outcome, j),
                (Outcome::ClusterUnavailable, Judged::Denied)
            );
            assert_eq!(d.reply.as_ref().map(|r| r.status), Some(503));
            let (d, j) = judge(&settings(FailureMode::Local), &e, None, &check(None), bad);
            assert_eq!((d.outcome, j), (Outcome::Allowed, Judged::Fallback));
            assert!(d.cluster_fallback && d.reply.is_none());
            let local = check(Some((LimitKind::Minute, 9)));
            let (d, _) = judge(&settings(FailureMode::Local), &e, None, &local, bad);
            assert_eq!(d.outcome, Outcome::RateLimited(LimitKind::Minute));
        }
        // An answer without statuses still decides on its overall code.
        let bare = [0x08, 2];
        let (d, _) = judge(
            &settings(FailureMode::Deny),
            &e,
            None,
            &check(None),
            Some(&bare),
        );
        assert_eq!(d.outcome, Outcome::RateLimited(LimitKind::Minute));
        let _ = Status::default();
    }
}
