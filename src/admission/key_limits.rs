//! The decision for an authenticated key: its runtime revocation, leak
//! detection and rate limits in one spend from its shared-data entry, or the
//! rate-limit status endpoint.

use crate::auth::keys::KeyEntry;
use crate::auth::leak_detection::address_tag;
use crate::config::Config;
use crate::http::LocalReply;
use crate::key_state::rate_limiter::{self, Buckets, Source, Spend};
use crate::key_state::RevokedBy;
use crate::limits::headers as rate_headers;
use crate::limits::token_bucket::{BucketView, LimitKind, Limits, Verdict};
use crate::shared_store::SharedStore;

use super::decision::{ClusterCheck, Decision, RequestView};
use super::outcome::Outcome;
use super::roles::is_status_request;

/// What a request of the valid, enabled, unexpired key `entry` gets.
pub(super) fn decide_for_key<'c>(
    config: &'c Config,
    req: &RequestView<'_>,
    store: &dyn SharedStore,
    now_ns: u64,
    entry: &'c KeyEntry,
    key_id: Option<String>,
) -> Decision<'c> {
    let key = Some(entry);
    let digest = &entry.sha256;
    let decision = |outcome, reply, response_headers| Decision {
        key,
        key_id: key_id.clone(),
        reply,
        response_headers,
        ..Decision::of(outcome)
    };

    if is_status_request(config, req) {
        return match rate_limiter::peek(store, digest, &entry.limits, now_ns) {
            Ok(Some((Some(revocation), _))) => Decision {
                key,
                key_id: key_id.clone(),
                ..Decision::of(Outcome::RevokedKey(revocation.by))
            },
            Ok(Some((None, views))) => {
                let (reply, headers) =
                    status_reply(&entry.name, &entry.tier, &entry.limits, &views);
                decision(Outcome::RateLimitStatus, Some(reply), headers)
            }
            _ => Decision::of(Outcome::Unavailable),
        };
    }

    let cost = config.cost_of(req.method, req.path);
    let detection = &config.leak_detection;
    let source = Source {
        tag: req
            .client_ip
            .filter(|ip| detection.counts(*ip))
            .map(address_tag),
        detection,
    };
    let buckets = if config.cluster.is_some() {
        Buckets::BurstOnly
    } else {
        Buckets::All
    };
    let spent =
        rate_limiter::spend_with(store, digest, &entry.limits, cost, now_ns, source, buckets);
    let Ok(result) = spent else {
        return Decision {
            key,
            key_id,
            ..Decision::of(Outcome::Unavailable)
        };
    };
    let mut d = match result.spend {
        Spend::Decided {
            verdict: v,
            leak,
            fallback,
        } => {
            let headers = rate_headers::headers(&entry.limits, &v.views);
            // Cluster mode: the burst bucket is this replica's and refused
            // here if over; the minute and hour are the service's to decide,
            // with this replica's view of them as the fallback.
            let clustered = buckets == Buckets::BurstOnly && v.allowed;
            let mut d = match (v.allowed, v.tripped) {
                _ if clustered => {
                    let mut d = decision(Outcome::Allowed, None, headers);
                    d.cluster = Some(ClusterCheck {
                        cost,
                        fallback,
                        views: v.views,
                    });
                    d
                }
                (true, _) => decision(Outcome::Allowed, None, headers),
                (false, _) => {
                    let (outcome, reply) = exceeded(&entry.limits, &v, &headers);
                    decision(outcome, Some(reply), headers)
                }
            };
            d.leak = leak;
            d
        }
        Spend::Revoked(revocation) => Decision {
            key,
            key_id: key_id.clone(),
            ..Decision::of(Outcome::RevokedKey(revocation.by))
        },
        Spend::LeakRevoked(trip) => {
            // The request that trips detection is refused with the rest.
            let mut d = decision(
                Outcome::RevokedKey(RevokedBy::LeakDetection),
                None,
                Vec::new(),
            );
            d.reply = d.outcome.reply();
            d.leak = Some(trip);
            d
        }
        Spend::Contention => {
            let headers = rate_limiter::peek(store, digest, &entry.limits, now_ns)
                .ok()
                .flatten()
                .map(|(_, views)| rate_headers::headers(&entry.limits, &views))
                .unwrap_or_default();
            let mut reply = Outcome::RateLimitContention
                .reply()
                .map(|r| r.with_retry_after(1));
            if let Some(r) = reply.as_mut() {
                r.headers.extend(headers.iter().cloned());
            }
            decision(Outcome::RateLimitContention, reply, headers)
        }
        Spend::NoBucket => Decision {
            key,
            key_id: key_id.clone(),
            ..Decision::of(Outcome::Unavailable)
        },
    };
    d.cas_retries = result.cas_retries;
    d
}

/// The status endpoint's answer for a caller's buckets `views`, and its
/// rate-limit headers.
pub(super) fn status_reply(
    name: &str,
    tier: &str,
    limits: &Limits,
    views: &[BucketView; 3],
) -> (LocalReply, Vec<(&'static str, String)>) {
    let body = rate_headers::status_body(name, tier, views);
    let headers = rate_headers::headers(limits, views);
    let reply = LocalReply {
        status: 200,
        body: body.to_string().into_bytes(),
        headers: headers.clone(),
    };
    (reply, headers)
}

/// The 429 of a request its buckets refused (`verdict.allowed` is false),
/// with the rate-limit `headers`.
pub(super) fn exceeded(
    limits: &Limits,
    verdict: &Verdict,
    headers: &[(&'static str, String)],
) -> (Outcome, LocalReply) {
    let kind = verdict.tripped.unwrap_or(LimitKind::Burst);
    let detail = rate_headers::exceeded_detail(limits, kind);
    // Never admissible (cost above a capacity) cannot happen with a
    // validated configuration; say "a minute" then.
    let mut reply =
        LocalReply::error(429, &detail).with_retry_after(verdict.retry_after_secs.unwrap_or(60));
    reply.headers.extend(headers.iter().cloned());
    (Outcome::RateLimited(kind), reply)
}
