//! The proxy-wasm adapter: reads what Envoy gives, asks the pure modules,
//! applies their verdict. No decisions are made here.

mod host;
mod metrics;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel};

use crate::admin_api::SECRET_HEADER;
use crate::admission::{self, Decision, LocalReply, Outcome, RequestView};
use crate::body_inspection::{flag_categories, BodyVerdict, Rejection};
use crate::client_address::parse_source_address;
use crate::config::{self, Config, FLAGS_HEADER, KEY_NAME_HEADER, KEY_TIER_HEADER};
use crate::digest::Digest;
use crate::events::{loggable_path, loggable_token, SecurityEvent, Severity};
use crate::key_state::RevokedBy;
use crate::response_headers;
use crate::usage::{self, Accumulator, Kind};
use crate::{failed_auth, key_state};

use host::HostStore;
use metrics::Metrics;

thread_local! {
    /// This worker's usage counts since the last flush (one VM per worker,
    /// shared by all of its root contexts).
    static USAGE: RefCell<Accumulator> = RefCell::new(Accumulator::default());
}

/// Counts one request of a key for the usage report. No host call.
fn record_usage(active: &Active, digest: &Digest, kind: Kind, now_ns: u64) {
    if !active.config.usage_enabled {
        return;
    }
    USAGE.with(|acc| {
        if let Ok(mut acc) = acc.try_borrow_mut() {
            acc.record(digest, kind, now_ns / 1_000_000_000);
        }
    });
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(RootFilter { active: None }) });
}}

/// A configuration that was accepted, with what it needs at request time.
struct Active {
    config: Config,
    metrics: Metrics,
    /// Whether Envoy prints info lines (success events are skipped if not).
    info_enabled: bool,
}

struct RootFilter {
    active: Option<Rc<Active>>,
}

impl Context for RootFilter {}

impl RootContext for RootFilter {
    fn on_configure(&mut self, size: usize) -> bool {
        match configure(size) {
            Ok((active, created)) => {
                host::log(
                    LogLevel::Info,
                    &format!(
                        "rag-guard: configuration applied ({} keys, {} tiers, {created} shared-data entries created)",
                        active.config.keys.len(),
                        active.config.tiers.len(),
                    ),
                );
                self.active = Some(Rc::new(active));
                // Every worker (and the main thread, which has nothing to
                // flush) adds its usage counts to shared data on this tick.
                let period = Duration::from_secs(usage::FLUSH_INTERVAL_SECS);
                if hostcalls::set_tick_period(period).is_err() {
                    host::log(
                        LogLevel::Error,
                        "rag-guard: cannot start the usage flush timer",
                    );
                }
                true
            }
            Err(message) => {
                host::log(
                    LogLevel::Error,
                    &format!("rag-guard: configuration refused: {message}"),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        USAGE.with(|acc| {
            let Ok(mut acc) = acc.try_borrow_mut() else {
                return;
            };
            if acc.is_empty() {
                return;
            }
            let report = usage::flush(&HostStore, &mut acc);
            if let Some(active) = &self.active {
                active.metrics.count_cas_retries(report.cas_retries);
            }
        });
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RequestFilter {
            active: self.active.clone(),
            response_headers: Vec::new(),
            pending: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Parses the configuration and creates the shared-data entries it needs
/// (state and usage entry per key, failed-auth table), leaving existing ones
/// as they are.
fn configure(size: usize) -> Result<(Active, usize), String> {
    let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
        .map_err(|s| format!("cannot read the plugin configuration ({s:?})"))?
        .unwrap_or_default();
    let config = config::parse(&bytes).map_err(|e| e.to_string())?;
    let digests = || config.keys.iter().map(|k| &k.sha256);
    let buckets = key_state::ensure_entries(&HostStore, digests())
        .map_err(|e| format!("cannot create per-key state entries: {e}"))?
        + usage::ensure_entries(&HostStore, digests())
            .map_err(|e| format!("cannot create usage entries: {e}"))?;
    let slots = failed_auth::ensure_table(&HostStore)
        .map_err(|e| format!("cannot create the failed-auth table: {e}"))?;
    let metrics = Metrics::define(&config).map_err(|s| format!("cannot define metrics ({s:?})"))?;
    let active = Active {
        config,
        metrics,
        info_enabled: host::log_enabled_at(LogLevel::Info),
    };
    Ok((active, buckets + slots))
}

struct RequestFilter {
    /// None when the configuration was refused: every request then gets 503.
    active: Option<Rc<Active>>,
    /// Rate-limit headers to put on the upstream's response.
    response_headers: Vec<(&'static str, String)>,
    /// Set while the body of an inspected route is being buffered.
    pending: Option<PendingBody>,
}

/// What the body phase needs from the headers phase.
struct PendingBody {
    /// Index into the configuration's `body_inspection.routes`.
    route: usize,
    /// Bytes buffered so far.
    size: usize,
    event: SecurityEvent,
    /// The authenticated key (for usage and per-key metrics) and the
    /// request's time.
    key: Option<Digest>,
    /// The headers-phase outcome, counted when the body passes.
    outcome: Outcome,
    now_ns: u64,
}

impl Context for RequestFilter {}

impl HttpContext for RequestFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(active) = self.active.clone() else {
            send_reply(None, LocalReply::for_outcome(Outcome::Unavailable));
            return Action::Pause;
        };
        let Ok(headers) = host::request_headers() else {
            return refuse(&active, Outcome::Unavailable);
        };

        let (mut authority, mut path, mut method) = (None, &b""[..], &b""[..]);
        let (mut content_type, mut content_length) = (None, None);
        let mut api_keys: Vec<&[u8]> = Vec::new();
        let mut admin_secrets: Vec<&[u8]> = Vec::new();
        let mut has_identity_headers = false;
        for (name, value) in &headers {
            match name.as_str() {
                ":authority" => authority = Some(value.as_slice()),
                ":path" => path = value.as_slice(),
                ":method" => method = value.as_slice(),
                "content-type" => content_type = Some(value.as_slice()),
                "content-length" => content_length = Some(value.as_slice()),
                KEY_NAME_HEADER | KEY_TIER_HEADER | FLAGS_HEADER => has_identity_headers = true,
                SECRET_HEADER => admin_secrets.push(value.as_slice()),
                n if n == active.config.api_key_header => api_keys.push(value.as_slice()),
                _ => {}
            }
        }
        let mut request = RequestView {
            authority,
            path,
            method,
            api_keys: &api_keys,
            client_ip: None,
            admin_secrets: &admin_secrets,
        };
        // Host calls for the address, the clock and shared data only when
        // the decision needs them.
        let mut now_ns = 0;
        let decision = match admission::decide_early(&active.config, &request) {
            Some(early) => early,
            None => {
                let Some(now) = host::now_unix_nanos() else {
                    return refuse(&active, Outcome::Unavailable);
                };
                now_ns = now;
                request.client_ip =
                    host::source_address().and_then(|raw| parse_source_address(&raw));
                admission::decide(&active.config, &request, &HostStore, now)
            }
        };
        count_side_effects(&active, &decision);
        // A request held for body inspection is counted once its body is
        // judged (as forwarded or as invalid input), not twice.
        let inspection = &active.config.body_inspection;
        let inspected_route = decision
            .reply
            .is_none()
            .then(|| inspection.route_index(method, path))
            .flatten();
        if inspected_route.is_none() {
            count_request(&active, decision.outcome, decision.key);
        }
        log_event(&active, &decision, &request, now_ns);
        let usage_key = decision.forwarded_identity().map(|k| k.sha256);
        if let Some(key) = decision.key {
            if decision.outcome.decision() == "rate_limited" {
                record_usage(&active, &key.sha256, Kind::RateLimited, now_ns);
            }
        }

        if decision.reply.is_some() {
            send_reply(Some(&active), decision.reply);
            return Action::Pause;
        }
        // Forwarded: the upstream never sees the key, and sees identity
        // headers only when the filter wrote them. Headers that are absent
        // cost no host call.
        let identity = decision.forwarded_identity();
        let mut applied = Ok(());
        if !api_keys.is_empty() {
            applied =
                applied.and_then(|_| host::set_request_header(&active.config.api_key_header, None));
        }
        if !admin_secrets.is_empty() {
            applied = applied.and_then(|_| host::set_request_header(SECRET_HEADER, None));
        }
        if identity.is_some() || has_identity_headers {
            applied = applied
                .and_then(|_| {
                    host::set_request_header(KEY_NAME_HEADER, identity.map(|k| k.name.as_str()))
                })
                .and_then(|_| {
                    host::set_request_header(KEY_TIER_HEADER, identity.map(|k| k.tier.as_str()))
                })
                .and_then(|_| host::set_request_header(FLAGS_HEADER, None));
        }
        if applied.is_err() {
            return refuse(&active, Outcome::Unavailable);
        }
        self.response_headers = decision.response_headers.clone();

        // Inspected routes: nothing goes upstream until the body is checked.
        let Some(route_index) = inspected_route else {
            if let Some(key) = &usage_key {
                record_usage(&active, key, Kind::Admitted, now_ns);
            }
            return Action::Continue;
        };
        let route = &inspection.routes[route_index];
        let event = SecurityEvent {
            event: "validation_failed",
            ..request_event(&decision, &request)
        };
        let pending = PendingBody {
            route: route_index,
            size: 0,
            event,
            key: usage_key,
            outcome: decision.outcome,
            now_ns,
        };
        if let Err(rejection) = inspection.check_headers(route, content_type, content_length) {
            reject_body(&active, rejection, &pending, &self.response_headers);
            return Action::Pause;
        }
        if end_of_stream {
            // No body at all: judged as an empty one.
            return self.finish_body(&active, pending, &[]);
        }
        self.pending = Some(pending);
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(active), Some(pending)) = (self.active.clone(), self.pending.as_mut()) else {
            return Action::Continue;
        };
        pending.size = body_size;
        let inspection = &active.config.body_inspection;
        let Some(route) = inspection.routes.get(pending.route) else {
            return refuse_body(&active);
        };
        if let Some(rejection) = inspection.over_limit(route, body_size) {
            if let Some(pending) = self.pending.take() {
                reject_body(&active, rejection, &pending, &self.response_headers);
            }
            return Action::Pause;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.finish_pending(&active)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // HTTP/2 with trailers: the body ended before them.
        match self.active.clone() {
            Some(active) if self.pending.is_some() => self.finish_pending(&active),
            _ => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Two host calls (read the map, write it back) instead of one per
        // header: the response phase runs on every request.
        let Some(active) = &self.active else {
            return Action::Continue;
        };
        if let Ok(headers) = host::response_headers() {
            let headers = response_headers::apply(
                headers,
                &active.config.security_headers,
                &self.response_headers,
            );
            if host::set_response_headers(&headers).is_err() {
                host::log(LogLevel::Error, "rag-guard: could not set response headers");
            }
        }
        Action::Continue
    }
}

impl RequestFilter {
    fn finish_pending(&mut self, active: &Active) -> Action {
        let Some(pending) = self.pending.take() else {
            return Action::Continue;
        };
        let body = match host::request_body(pending.size) {
            Ok(body) => body,
            Err(_) => return refuse_body(active),
        };
        self.finish_body(active, pending, &body)
    }

    /// Judges a complete body: forward (with report-only flags) or reject.
    fn finish_body(&mut self, active: &Active, pending: PendingBody, body: &[u8]) -> Action {
        let inspection = &active.config.body_inspection;
        let Some(route) = inspection.routes.get(pending.route) else {
            return refuse_body(active);
        };
        let started = host::now_unix_nanos();
        let verdict = inspection.inspect(route, body);
        if let (Some(start), Some(end)) = (started, host::now_unix_nanos()) {
            active
                .metrics
                .record_inspection_us(end.saturating_sub(start) / 1000);
        }
        if !matches!(verdict, BodyVerdict::Reject(_)) {
            let key = pending.key.as_ref().and_then(|d| active.config.keys.get(d));
            count_request(active, pending.outcome, key);
            if let Some(key) = &pending.key {
                record_usage(active, key, Kind::Admitted, pending.now_ns);
            }
        }
        let event = pending.event.clone();
        match verdict {
            BodyVerdict::Pass { flags } if flags.is_empty() => Action::Continue,
            BodyVerdict::Pass { flags } => {
                // One event per match: field, category and rule id.
                for flag in &flags {
                    active.metrics.count_flag(flag.category);
                    let flagged = SecurityEvent {
                        event: "input_flagged",
                        reason: "report_only",
                        field: Some(flag.field.clone()),
                        category: Some(flag.category.as_str()),
                        rule: Some(flag.rule_id.clone()),
                        ..event.clone()
                    };
                    host::log(LogLevel::Warn, &flagged.to_json());
                }
                let names: Vec<&str> = flag_categories(&flags).iter().map(|c| c.as_str()).collect();
                if host::set_request_header(FLAGS_HEADER, Some(&names.join(","))).is_err() {
                    return refuse_body(active);
                }
                Action::Continue
            }
            BodyVerdict::Reject(rejection) => {
                reject_body(active, rejection, &pending, &self.response_headers);
                Action::Pause
            }
        }
    }
}

/// The event fields every event about a request shares.
fn request_event(decision: &Decision<'_>, request: &RequestView<'_>) -> SecurityEvent {
    SecurityEvent {
        ip: request.client_ip.map(|ip| ip.to_string()),
        method: Some(loggable_token(request.method)),
        path: Some(loggable_path(request.path)),
        key_name: decision.key.map(|k| k.name.clone()),
        key_id: decision.key_id.clone(),
        tier: decision.key.map(|k| k.tier.clone()),
        ..Default::default()
    }
}

/// Logs, counts and answers a body the inspection refused. The reply names
/// the field and category, never the payload.
fn reject_body(
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
        rule: rejection.rule_id.clone(),
        ..event
    };
    host::log(LogLevel::Warn, &event.to_json());
    send_reply(
        Some(active),
        Some(LocalReply {
            status: rejection.status,
            body: rejection.body(),
            headers: rate_headers.to_vec(),
        }),
    );
}

/// Counts, logs and answers a request the filter cannot process.
fn refuse(active: &Active, outcome: Outcome) -> Action {
    refuse_as(active, outcome, "auth_failure")
}

/// [`refuse`] for a failure while handling a body (a host call failed).
fn refuse_body(active: &Active) -> Action {
    refuse_as(active, Outcome::Unavailable, "validation_failed")
}

fn refuse_as(active: &Active, outcome: Outcome, event: &'static str) -> Action {
    active.metrics.count(outcome);
    let reply = LocalReply::for_outcome(outcome);
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
fn send_reply(active: Option<&Active>, reply: Option<LocalReply>) {
    let reply = reply.unwrap_or_else(|| LocalReply::error(503, "Service unavailable"));
    let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    headers.extend(reply.headers.iter().map(|(n, v)| (*n, v.as_str())));
    if let Some(active) = active {
        headers.extend(active.config.security_headers.iter());
    }
    if hostcalls::send_http_response(reply.status, headers, Some(&reply.body)).is_err() {
        host::log(
            LogLevel::Error,
            "rag-guard: could not send a local reply; resetting the stream",
        );
        let _ = hostcalls::reset_http_request();
    }
}

/// The request metrics: its decision, and the key's decision.
fn count_request(active: &Active, outcome: Outcome, key: Option<&config::KeyEntry>) {
    let metrics = &active.metrics;
    metrics.count(outcome);
    if let (Some(key), Some(d)) = (key, metrics::key_decision(outcome)) {
        metrics.count_key(key, d);
    }
}

/// Metrics besides the request's own: leak detections and lost CAS races.
fn count_side_effects(active: &Active, decision: &Decision<'_>) {
    let metrics = &active.metrics;
    if let (Some(key), Some(leak)) = (decision.key, decision.leak) {
        metrics.count_leak(key, leak.action.as_str());
    }
    metrics.count_cas_retries(decision.cas_retries);
}

fn log_at(severity: Severity, event: &SecurityEvent) {
    let level = match severity {
        Severity::Info => LogLevel::Info,
        Severity::Warn => LogLevel::Warn,
        Severity::Error => LogLevel::Error,
    };
    host::log(level, &event.to_json());
}

/// Logs the request's event, then the events the decision produced.
/// `now_ns` is when the decision started (0 for the early ones).
fn log_event(active: &Active, decision: &Decision<'_>, request: &RequestView<'_>, now_ns: u64) {
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
                ..crate::admin_api::key_event(
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
            let admin_request = crate::admin_api::AdminRequest {
                method: request.method,
                path: request.path,
                secrets: &[],
                client_ip: request.client_ip,
            };
            let event = crate::admin_api::access_event(&admin_request, status, status_code);
            let severity = if status == crate::admin_api::AdminStatus::Ok {
                Severity::Info
            } else {
                Severity::Warn
            };
            log_at(severity, &event);
            return;
        }
        Outcome::HostRejected => ("host_rejected", Severity::Warn, None),
        Outcome::AuthBlocked => ("rate_limited", Severity::Warn, Some("failed_auth")),
        Outcome::RateLimited(kind) => ("rate_limited", Severity::Warn, Some(kind.as_str())),
        Outcome::RateLimitContention => ("rate_limited", Severity::Warn, Some("contention")),
        Outcome::Unavailable => ("auth_failure", Severity::Error, None),
        Outcome::MissingKey
        | Outcome::MultipleKeys
        | Outcome::InvalidKey
        | Outcome::ExpiredKey
        | Outcome::DisabledKey
        | Outcome::RevokedKey(_) => ("auth_failure", Severity::Warn, None),
    };
    let duration_us = match (event, host::now_unix_nanos()) {
        ("auth_success", Some(end)) if now_ns > 0 => Some(end.saturating_sub(now_ns) / 1000),
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
