//! The decision for a caller with a verified JWT: its roles, then its
//! buckets in the subject table (`key_state::subjects`), or the rate-limit
//! status endpoint.

use crate::auth::digest::digest_id;
use crate::auth::jwt::{Claims, JwtSettings};
use crate::config::Config;
use crate::http::LocalReply;
use crate::key_state::subjects::{SubjectSpend, SubjectTable};
use crate::limits::headers as rate_headers;
use crate::shared_store::SharedStore;

use super::decision::{Decision, RequestView, Subject};
use super::key_limits::{exceeded, status_reply};
use super::outcome::Outcome;
use super::roles::{is_status_request, role_forbids};

/// What a request of the caller `claims` names gets.
pub(super) fn decide_for_subject<'c>(
    config: &'c Config,
    settings: &JwtSettings,
    req: &RequestView<'_>,
    store: &dyn SharedStore,
    now_ns: u64,
    claims: Claims,
) -> Decision<'c> {
    let tier = claims
        .tier
        .filter(|t| config.tiers.contains_key(t))
        .unwrap_or_else(|| config.default_tier.clone());
    let Some(limits) = config.tiers.get(&tier).copied() else {
        return Decision::of(Outcome::Unavailable);
    };
    let subject = Subject {
        name: claims.name,
        tier,
    };
    let key_id = Some(digest_id(&claims.digest));
    let decision = |outcome, reply: Option<LocalReply>, headers| Decision {
        key_id: key_id.clone(),
        subject: Some(subject.clone()),
        reply: reply.or_else(|| Outcome::reply(outcome)),
        response_headers: headers,
        ..Decision::of(outcome)
    };

    if role_forbids(config, claims.roles.as_deref(), req) {
        return decision(Outcome::Forbidden, None, Vec::new());
    }
    let table = SubjectTable::for_subjects(settings.max_subjects);
    if is_status_request(config, req) {
        return match table.peek(store, &claims.digest, &limits, now_ns) {
            Ok(Some(views)) => {
                let (reply, headers) = status_reply(&subject.name, &subject.tier, &limits, &views);
                decision(Outcome::RateLimitStatus, Some(reply), headers)
            }
            _ => decision(Outcome::Unavailable, None, Vec::new()),
        };
    }

    let cost = config.cost_of(req.method, req.path);
    let Ok(result) = table.spend(store, &claims.digest, &limits, cost, now_ns) else {
        return decision(Outcome::Unavailable, None, Vec::new());
    };
    let mut d = match result.spend {
        SubjectSpend::Decided(v) => {
            let headers = rate_headers::headers(&limits, &v.views);
            if v.allowed {
                decision(Outcome::Allowed, None, headers)
            } else {
                let (outcome, reply) = exceeded(&limits, &v, &headers);
                decision(outcome, Some(reply), headers)
            }
        }
        SubjectSpend::Full { retry_after_secs } => {
            let reply = Outcome::SubjectTableFull
                .reply()
                .map(|r| r.with_retry_after(retry_after_secs));
            decision(Outcome::SubjectTableFull, reply, Vec::new())
        }
        SubjectSpend::Contention => {
            let reply = Outcome::RateLimitContention
                .reply()
                .map(|r| r.with_retry_after(1));
            decision(Outcome::RateLimitContention, reply, Vec::new())
        }
        SubjectSpend::NoSet => decision(Outcome::Unavailable, None, Vec::new()),
    };
    d.cas_retries = result.cas_retries;
    d
}
