//! The proxy-wasm adapter: reads what Envoy gives, asks the pure modules,
//! applies their verdict. No decisions are made here.

mod host;
mod metrics;

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel};

use crate::admission::{self, Decision, LocalReply, Outcome, RequestView};
use crate::client_address::parse_source_address;
use crate::config::{self, Config, KEY_NAME_HEADER, KEY_TIER_HEADER};
use crate::events::{loggable_path, loggable_token, SecurityEvent};
use crate::response_headers;
use crate::{failed_auth, rate_limiter};

use host::HostStore;
use metrics::Metrics;

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

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RequestFilter {
            active: self.active.clone(),
            response_headers: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Parses the configuration and creates the shared-data entries it needs
/// (bucket per key, failed-auth table), leaving existing ones as they are.
fn configure(size: usize) -> Result<(Active, usize), String> {
    let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
        .map_err(|s| format!("cannot read the plugin configuration ({s:?})"))?
        .unwrap_or_default();
    let config = config::parse(&bytes).map_err(|e| e.to_string())?;
    let buckets = rate_limiter::ensure_buckets(&HostStore, config.keys.iter().map(|k| &k.sha256))
        .map_err(|e| format!("cannot create rate-limit buckets: {e}"))?;
    let slots = failed_auth::ensure_table(&HostStore)
        .map_err(|e| format!("cannot create the failed-auth table: {e}"))?;
    let metrics = Metrics::define().map_err(|s| format!("cannot define metrics ({s:?})"))?;
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
}

impl Context for RequestFilter {}

impl HttpContext for RequestFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(active) = self.active.clone() else {
            send_reply(None, LocalReply::for_outcome(Outcome::Unavailable));
            return Action::Pause;
        };
        let Ok(headers) = host::request_headers() else {
            return refuse(&active, Outcome::Unavailable);
        };

        let (mut authority, mut path, mut method) = (None, &b""[..], &b""[..]);
        let mut api_keys: Vec<&[u8]> = Vec::new();
        let mut has_identity_headers = false;
        for (name, value) in &headers {
            match name.as_str() {
                ":authority" => authority = Some(value.as_slice()),
                ":path" => path = value.as_slice(),
                ":method" => method = value.as_slice(),
                KEY_NAME_HEADER | KEY_TIER_HEADER => has_identity_headers = true,
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
        };
        // Host calls for the address, the clock and shared data only when
        // the decision needs them.
        let decision = match admission::decide_early(&active.config, &request) {
            Some(early) => early,
            None => {
                let Some(now) = host::now_unix_nanos() else {
                    return refuse(&active, Outcome::Unavailable);
                };
                request.client_ip =
                    host::source_address().and_then(|raw| parse_source_address(&raw));
                admission::decide(&active.config, &request, &HostStore, now)
            }
        };
        active.metrics.count(decision.outcome);
        log_event(&active, &decision, &request);

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
        if identity.is_some() || has_identity_headers {
            applied = applied
                .and_then(|_| {
                    host::set_request_header(KEY_NAME_HEADER, identity.map(|k| k.name.as_str()))
                })
                .and_then(|_| {
                    host::set_request_header(KEY_TIER_HEADER, identity.map(|k| k.tier.as_str()))
                });
        }
        if applied.is_err() {
            return refuse(&active, Outcome::Unavailable);
        }
        self.response_headers = decision.response_headers;
        Action::Continue
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

/// Counts, logs and answers a request the filter cannot process.
fn refuse(active: &Active, outcome: Outcome) -> Action {
    active.metrics.count(outcome);
    let reply = LocalReply::for_outcome(outcome);
    host::log(
        LogLevel::Error,
        &SecurityEvent {
            event: "auth_failure",
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

fn log_event(active: &Active, decision: &Decision<'_>, request: &RequestView<'_>) {
    let (event, level, limit) = match decision.outcome {
        Outcome::Public => return,
        Outcome::Allowed | Outcome::RateLimitStatus if !active.info_enabled => return,
        Outcome::Allowed | Outcome::RateLimitStatus => ("auth_success", LogLevel::Info, None),
        Outcome::HostRejected => ("host_rejected", LogLevel::Warn, None),
        Outcome::AuthBlocked => ("rate_limited", LogLevel::Warn, Some("failed_auth")),
        Outcome::RateLimited(kind) => ("rate_limited", LogLevel::Warn, Some(kind.as_str())),
        Outcome::RateLimitContention => ("rate_limited", LogLevel::Warn, Some("contention")),
        Outcome::Unavailable => ("auth_failure", LogLevel::Error, None),
        Outcome::MissingKey
        | Outcome::MultipleKeys
        | Outcome::InvalidKey
        | Outcome::ExpiredKey
        | Outcome::DisabledKey => ("auth_failure", LogLevel::Warn, None),
    };
    let event = SecurityEvent {
        event,
        reason: decision.outcome.as_str(),
        status: decision.reply.as_ref().map(|r| r.status),
        ip: request.client_ip.map(|ip| ip.to_string()),
        method: Some(loggable_token(request.method)),
        path: Some(loggable_path(request.path)),
        key_name: decision.key.map(|k| k.name.clone()),
        key_id: decision.key_id.clone(),
        tier: decision.key.map(|k| k.tier.clone()),
        limit,
    };
    host::log(level, &event.to_json());
}
