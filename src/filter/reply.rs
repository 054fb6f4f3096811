//! The filter's own replies: refusals and rejected bodies, with their
//! metrics and events.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, LogLevel};

use crate::admission::Outcome;
use crate::http::LocalReply;
use crate::inspection::verdict::Rejection;
use crate::ops::event_budget::Class;
use crate::ops::events::{Score, SecurityEvent, Severity};
use crate::ops::usage::Kind;

use super::active::Active;
use super::host::{self};
use super::pending::PendingBody;
use super::record::log_request;
use super::usage::record_usage;

/// Logs, counts and answers a body the inspection refused. The reply names
/// the field and category, never the payload.
pub(super) fn reject_body(
    active: &Active,
    rejection: Rejection,
    pending: &PendingBody,
    rate_headers: &[(&'static str, String)],
) {
    active.metrics.count_rejection(&rejection);
    if let Some(digest) = &pending.key {
        record_usage(active, digest, Kind::Rejected, pending.now_ns);
        if let Some(key) = active.config.keys.get(digest) {
            active.metrics.count_key(key, "invalid_input");
        }
    }
    let event = pending.event.clone();
    let event = SecurityEvent {
        reason: rejection.reason,
        status: Some(rejection.status),
        field: rejection.field.clone(),
        category: rejection.category.map(|c| c.as_str()),
        rule: rejection.rule_id.as_deref().map(String::from),
        score: rejection.score.map(Score),
        offset: rejection.offset,
        ..event
    };
    log_request(
        active,
        Class::Inspection,
        Severity::Warn,
        &event,
        pending.now_ns,
    );
    send_reply(
        Some(active),
        Some(LocalReply {
            status: rejection.status,
            body: rejection.body(),
            headers: rate_headers
                .iter()
                .cloned()
                .chain(rejection.allow.as_deref().map(|a| ("allow", a.to_string())))
                .collect(),
        }),
    );
}

/// Counts, logs and answers a request the filter cannot process.
pub(super) fn refuse(active: &Active, outcome: Outcome) -> Action {
    refuse_as(active, outcome, "auth_failure")
}

/// [`refuse`] for a failure while handling a body (a host call failed).
pub(super) fn refuse_body(active: &Active) -> Action {
    refuse_as(active, Outcome::Unavailable, "validation_failed")
}

pub(super) fn refuse_as(active: &Active, outcome: Outcome, event: &'static str) -> Action {
    active.metrics.count(outcome);
    let reply = outcome.reply();
    host::log(
        LogLevel::Error,
        &SecurityEvent {
            event,
            reason: outcome.as_str(),
            status: reply.as_ref().map(|r| r.status),
            ..Default::default()
        }
        .to_json(),
    );
    send_reply(Some(active), reply);
    Action::Pause
}

/// Sends the filter's own JSON reply, with the security headers already on
/// it (the response phase sets them again, replacing, not duplicating).
pub(super) fn send_reply(active: Option<&Active>, reply: Option<LocalReply>) {
    let reply = reply.unwrap_or_else(|| LocalReply::error(503, "Service unavailable"));
    // JSON unless the reply names its type; a security header the reply
    // sets itself (the console's CSP) replaces the default one.
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(reply.headers.len() + 10);
    if !reply.headers.iter().any(|(n, _)| *n == "content-type") {
        headers.push(("content-type", "application/json"));
    }
    headers.extend(reply.headers.iter().map(|(n, v)| (*n, v.as_str())));
    if let Some(active) = active {
        let own = |name: &str| reply.headers.iter().any(|(n, _)| *n == name);
        headers.extend(
            active
                .config
                .security_headers
                .iter()
                .filter(|(n, _)| !own(n)),
        );
    }
    if hostcalls::send_http_response(reply.status, headers, Some(&reply.body)).is_err() {
        host::log(
            LogLevel::Error,
            "rag-guard: could not send a local reply; resetting the stream",
        );
        let _ = hostcalls::reset_http_request();
    }
}
