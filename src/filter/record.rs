//! What a request leaves behind: its events in Envoy's log and its
//! metrics.

use proxy_wasm::types::LogLevel;

use crate::admission::{Decision, Outcome, RequestView};
use crate::auth::keys::KeyEntry;
use crate::key_state::RevokedBy;
use crate::ops::event_budget::{Admit, Class};
use crate::ops::events::{loggable_path, loggable_token, SecurityEvent, Severity};

use super::active::Active;
use super::host::{self};
use super::metrics::{self};

/// The event fields every event about a request shares.
pub(super) fn request_event(decision: &Decision<'_>, request: &RequestView<'_>) -> SecurityEvent {
    SecurityEvent {
        ip: request.client_ip.map(|ip| ip.to_string()),
        method: Some(loggable_token(request.method)),
        path: Some(loggable_path(request.path)),
        key_name: decision.caller().map(|(name, _)| name.to_string()),
        key_id: decision.key_id.clone(),
        tier: decision.caller().map(|(_, tier)| tier.to_string()),
        ..Default::default()
    }
}

/// The request metrics: its decision, and the key's decision.
pub(super) fn count_request(active: &Active, outcome: Outcome, key: Option<&KeyEntry>) {
    let metrics = &active.metrics;
    metrics.count(outcome);
    if let (Some(key), Some(d)) = (key, metrics::key_decision(outcome)) {
        metrics.count_key(key, d);
    }
}

/// Metrics besides the request's own: leak detections and lost CAS races.
pub(super) fn count_side_effects(active: &Active, decision: &Decision<'_>) {
    let metrics = &active.metrics;
    if let (Some(key), Some(leak)) = (decision.key, decision.leak) {
        metrics.count_leak(key, leak.action.as_str());
    }
    metrics.count_cas_retries(decision.cas_retries);
}

pub(super) fn log_at(severity: Severity, event: &SecurityEvent) {
    let level = match severity {
        Severity::Info => LogLevel::Info,
        Severity::Warn => LogLevel::Warn,
        Severity::Error => LogLevel::Error,
    };
    host::log(level, &event.to_json());
}

/// Logs one per-request event within this worker's budget for its class
/// (`ops::event_budget`): past it the line is counted instead, and the next
/// line of the class written is preceded by the count. `now_ns` 0: the
/// clock is read; without a clock the line is written.
pub(super) fn log_request(
    active: &Active,
    class: Class,
    severity: Severity,
    event: &SecurityEvent,
    now_ns: u64,
) {
    if admitted(active, class, now_ns) {
        log_at(severity, event);
    }
}

/// Whether the budget of `class` lets one more line be written now (see
/// [`log_request`]); a line that is not is counted. Asked before building
/// the event, which a suppressed line never needs.
fn admitted(active: &Active, class: Class, now_ns: u64) -> bool {
    let now = if now_ns > 0 {
        Some(now_ns)
    } else {
        host::now_unix_nanos()
    };
    let admit = match (now, active.events.try_borrow_mut()) {
        (Some(now), Ok(mut budgets)) => budgets.admit(class, now),
        _ => Admit::Write,
    };
    match admit {
        Admit::Suppress => {
            active.metrics.count_suppressed_event();
            false
        }
        Admit::WriteAfterSuppressed(n) => {
            let summary = SecurityEvent {
                event: "events_suppressed",
                reason: class.as_str(),
                suppressed: Some(n),
                ..Default::default()
            };
            log_at(Severity::Warn, &summary);
            true
        }
        Admit::Write => true,
    }
}

/// Logs the request's event, then the events the decision produced.
/// `now_ns` is when the decision started (0 for the early ones).
pub(super) fn log_event(
    active: &Active,
    decision: &Decision<'_>,
    request: &RequestView<'_>,
    now_ns: u64,
) {
    for (severity, event) in &decision.events {
        log_at(*severity, event);
    }
    if let (Some(key), Some(leak)) = (decision.key, decision.leak) {
        let detected = SecurityEvent {
            event: "key_leak_detected",
            reason: "too_many_addresses",
            addresses: Some(leak.distinct),
            window_secs: Some(active.config.leak_detection.window_secs),
            action: Some(leak.action.as_str()),
            ..request_event(decision, request)
        };
        log_at(Severity::Error, &detected);
        if decision.outcome == Outcome::RevokedKey(RevokedBy::LeakDetection) {
            let revoked = SecurityEvent {
                by: Some(RevokedBy::LeakDetection.as_str()),
                ..crate::ops::admin::key_event(
                    "key_revoked",
                    key,
                    RevokedBy::LeakDetection.as_str(),
                    request.client_ip,
                )
            };
            log_at(Severity::Error, &revoked);
        }
    }
    let (event, severity, limit) = match decision.outcome {
        Outcome::Public => return,
        Outcome::Allowed | Outcome::RateLimitStatus if !active.info_enabled => return,
        Outcome::Allowed | Outcome::RateLimitStatus => ("auth_success", Severity::Info, None),
        Outcome::Admin(status) => {
            let status_code = decision.reply.as_ref().map_or(0, |r| r.status);
            let admin_request = crate::ops::admin::AdminRequest {
                method: request.method,
                path: request.path,
                secrets: &[],
                client_ip: request.client_ip,
                by_role: false,
            };
            let event = crate::ops::admin::access_event(&admin_request, status, status_code);
            let severity = if status == crate::ops::admin::AdminStatus::Ok {
                Severity::Info
            } else {
                Severity::Warn
            };
            log_at(severity, &event);
            return;
        }
        Outcome::HostRejected => ("host_rejected", Severity::Warn, None),
        Outcome::MethodOverride => ("method_override_rejected", Severity::Warn, None),
        Outcome::AuthBlocked => ("rate_limited", Severity::Warn, Some("failed_auth")),
        Outcome::RateLimited(kind) => ("rate_limited", Severity::Warn, Some(kind.as_str())),
        Outcome::RateLimitContention => ("rate_limited", Severity::Warn, Some("contention")),
        Outcome::SubjectTableFull => ("rate_limited", Severity::Warn, Some("subject_table")),
        Outcome::Forbidden => ("access_denied", Severity::Warn, None),
        Outcome::Unavailable => ("auth_failure", Severity::Error, None),
        Outcome::ClusterUnavailable => ("cluster_unavailable", Severity::Error, None),
        Outcome::MissingKey
        | Outcome::MultipleKeys
        | Outcome::InvalidKey
        | Outcome::ExpiredKey
        | Outcome::DisabledKey
        | Outcome::InvalidToken
        | Outcome::RevokedKey(_) => ("auth_failure", Severity::Warn, None),
    };
    // The filter failing is never left out; other lines within their
    // class's budget, asked before the event is built.
    let class = match decision.outcome {
        Outcome::Unavailable => None,
        Outcome::Allowed | Outcome::RateLimitStatus => Some(Class::Success),
        Outcome::ClusterUnavailable => Some(Class::Cluster),
        _ => Some(Class::Refusal),
    };
    if class.is_some_and(|class| !admitted(active, class, now_ns)) {
        return;
    }
    // The clock only for the one event that uses it.
    let duration_us = match event {
        "auth_success" if now_ns > 0 => {
            host::now_unix_nanos().map(|end| end.saturating_sub(now_ns) / 1000)
        }
        _ => None,
    };
    let by = match decision.outcome {
        Outcome::RevokedKey(by) => Some(by.as_str()),
        _ => None,
    };
    let event = SecurityEvent {
        event,
        reason: decision.outcome.as_str(),
        status: decision.reply.as_ref().map(|r| r.status),
        limit,
        duration_us,
        by,
        ..request_event(decision, request)
    };
    log_at(severity, &event);
}
