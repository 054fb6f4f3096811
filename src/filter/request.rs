//! The request context: headers phase (decision), body phase (inspection)
//! and response phase (headers).

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};

use crate::admission::cluster_limits::{self, Judged};
use crate::admission::{self, Decision, Outcome, RequestView};
use crate::auth::client_address::parse_source_address;
use crate::cluster::settings::{RLS_METHOD, RLS_SERVICE, SYNC_SERVICE, USAGE_METHOD};
use crate::cluster::sync_wire;
use crate::http::{header_map, response_headers};
use crate::http::{
    FLAGS_HEADER, KEY_NAME_HEADER, KEY_TIER_HEADER, METHOD_OVERRIDE_HEADERS, SECRET_HEADER,
};
use crate::inspection::routes::RouteMatch;
use crate::inspection::verdict::{flags_header, BodyVerdict, Rejection};
use crate::ops::admin::{self as admin_api, usage_days, usage_names};
use crate::ops::event_budget::Class;
use crate::ops::events::{Score, SecurityEvent, Severity};
use crate::ops::usage::Kind;

use super::active::Active;
use super::held::{Facts, Held, SentIdentity, Waiting};
use super::host::{self, HostStore};
use super::pending::PendingBody;
use super::phase_timing;
use super::record::{count_request, count_side_effects, log_event, log_request, request_event};
use super::reply::{refuse, refuse_body, reject_body, send_reply};
use super::usage::record_usage;

pub(super) struct RequestFilter {
    /// None when the configuration was refused: every request then gets 503.
    active: Option<Rc<Active>>,
    /// Rate-limit headers to put on the upstream's response.
    response_headers: Vec<(&'static str, String)>,
    /// Set while the body of an inspected route is being buffered.
    pending: Option<PendingBody>,
    /// Set while the request waits for the cluster service.
    waiting: Option<Waiting>,
}

impl RequestFilter {
    pub(super) fn new(active: Option<Rc<Active>>) -> Self {
        RequestFilter {
            active,
            response_headers: Vec::new(),
            pending: None,
            waiting: None,
        }
    }
}

impl Context for RequestFilter {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        let Some(active) = self.active.clone() else {
            return;
        };
        let Some(waiting) = self.waiting.take_if(|w| w.token == token_id) else {
            return;
        };
        let answer = host::grpc_answer(status_code, response_size);
        let action = self.answered(&active, waiting, answer.as_deref());
        if action == Action::Continue && host::resume_request().is_err() {
            host::log(
                LogLevel::Error,
                "rag-guard: could not resume a held request",
            );
        }
    }
}

impl HttpContext for RequestFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let started = phase_timing::start();
        let action = self.request_headers(end_of_stream);
        phase_timing::stop(started, false);
        action
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.request_body(body_size, end_of_stream)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.request_trailers()
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Two host calls (read the map, write it back) instead of one per
        // header: the response phase runs on every request. Also on the
        // filter's own replies: Envoy's `local_reply_config` may have changed
        // their headers since; if it did not, the map is not written back.
        let started = phase_timing::start();
        let Some(active) = &self.active else {
            return Action::Continue;
        };
        let applied = host::response_headers().ok().and_then(|raw| {
            let headers = header_map::parse(&raw)?;
            let policy = &active.config.security_headers;
            match response_headers::apply(&headers, policy, &self.response_headers) {
                Some(encoded) => host::set_response_headers(&encoded).ok(),
                // Already as it should be (the filter's own replies).
                None => Some(()),
            }
        });
        if applied.is_none() {
            host::log(LogLevel::Error, "rag-guard: could not set response headers");
        }
        phase_timing::stop(started, true);
        Action::Continue
    }
}

impl RequestFilter {
    fn request_headers(&mut self, end_of_stream: bool) -> Action {
        let Some(active) = self.active.clone() else {
            send_reply(None, Outcome::Unavailable.reply());
            return Action::Pause;
        };
        let raw = host::request_headers();
        let Some(headers) = raw.as_deref().ok().and_then(header_map::parse) else {
            return refuse(&active, Outcome::Unavailable);
        };

        let (mut authority, mut path, mut method) = (None, &b""[..], &b""[..]);
        let (mut content_type, mut content_length) = (None, None);
        let mut api_keys: Vec<&[u8]> = Vec::new();
        let mut admin_secrets: Vec<&[u8]> = Vec::new();
        let mut sent_identity = SentIdentity::default();
        let mut method_override = false;
        let mut bearer = false;
        for &(name, value) in &headers {
            // Envoy's header names are lowercase ASCII tokens.
            match std::str::from_utf8(name).unwrap_or_default() {
                ":authority" => authority = Some(value),
                ":path" => path = value,
                ":method" => method = value,
                "content-type" => content_type = Some(value),
                "content-length" => content_length = Some(value),
                KEY_NAME_HEADER => sent_identity.name = true,
                KEY_TIER_HEADER => sent_identity.tier = true,
                FLAGS_HEADER => sent_identity.flags = true,
                SECRET_HEADER => admin_secrets.push(value),
                n if n == active.config.api_key_header => api_keys.push(value),
                n if METHOD_OVERRIDE_HEADERS.contains(&n) => method_override = true,
                "authorization" => {
                    bearer |= value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ")
                }
                _ => {}
            }
        }
        let jwt_payload: Option<Vec<u8>>;
        sent_identity.unjudged_token =
            bearer && !api_keys.is_empty() && active.config.jwt.is_some();
        let mut request = RequestView {
            authority,
            path,
            method,
            api_keys: &api_keys,
            client_ip: None,
            admin_secrets: &admin_secrets,
            method_override,
            jwt_payload: None,
            bearer,
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
                // A key request is judged by its key (it takes precedence):
                // the payload is read only for requests without one.
                if let Some(settings) = active.config.jwt.as_ref().filter(|_| api_keys.is_empty()) {
                    match host::jwt_payload(&settings.payload_key) {
                        Ok(found) => jwt_payload = found,
                        Err(_) => return refuse(&active, Outcome::Unavailable),
                    }
                    request.jwt_payload = jwt_payload.as_deref();
                }
                admission::decide(
                    &active.config,
                    &active.auth_table,
                    &request,
                    &HostStore,
                    now,
                )
            }
        };
        count_side_effects(&active, &decision);
        let facts = Facts {
            method,
            path,
            client_ip: request.client_ip,
            content_type,
            content_length,
            strip_key: !api_keys.is_empty(),
            strip_secret: !admin_secrets.is_empty(),
            sent_identity,
            end_of_stream,
            now_ns,
        };
        // Cluster mode: the key's minute and hour budgets, or the admin
        // usage report, come from the cluster service; the request waits.
        if let Some(held) = Held::of(&decision) {
            return self.hold(&active, held, decision, &facts);
        }
        self.settle(&active, decision, &facts)
    }

    fn request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(waiting) = self.waiting.as_mut() {
            // Buffered until the cluster service has answered.
            waiting.body = Some((body_size, end_of_stream));
            return Action::Pause;
        }
        self.body_phase(body_size, end_of_stream)
    }

    fn request_trailers(&mut self) -> Action {
        // HTTP/2 with trailers: the body ended before them.
        if let Some(waiting) = self.waiting.as_mut() {
            let size = waiting.body.map_or(0, |(size, _)| size);
            waiting.body = Some((size, true));
            return Action::Pause;
        }
        match self.active.clone() {
            Some(active) if self.pending.is_some() => self.finish_pending(&active),
            _ => Action::Continue,
        }
    }
}

impl RequestFilter {
    /// Sends the cluster service its question and holds the request; if the
    /// call cannot even start, the answer is judged as missing at once.
    fn hold(
        &mut self,
        active: &Active,
        held: Held,
        decision: Decision<'_>,
        f: &Facts<'_>,
    ) -> Action {
        let Some(settings) = &active.config.cluster else {
            return self.settle(active, decision, f);
        };
        let call = match &held {
            Held::Limits { check, .. } => decision.key.map(|key| {
                let message = cluster_limits::rls_request(settings, key, check);
                let timeout = u64::from(settings.timeout_ms);
                host::dispatch_grpc(
                    &settings.service,
                    RLS_SERVICE,
                    RLS_METHOD,
                    &message,
                    timeout,
                )
            }),
            Held::Usage { query, .. } => {
                let (first, last) = usage_days(query);
                let names = usage_names(&active.config);
                let message = sync_wire::encode_usage(&settings.domain, &names, first, last);
                let timeout = crate::cluster::settings::SYNC_TIMEOUT_MS;
                Some(host::dispatch_grpc(
                    &settings.service,
                    SYNC_SERVICE,
                    USAGE_METHOD,
                    &message,
                    timeout,
                ))
            }
        };
        let waiting = Waiting::new(0, held, f);
        match call {
            Some(Ok(token)) => {
                self.waiting = Some(Waiting { token, ..waiting });
                Action::Pause
            }
            _ => self.answered(active, waiting, None),
        }
    }

    /// The cluster service's answer (None: none) turned into the request's
    /// decision, then applied as any other.
    fn answered(&mut self, active: &Active, waiting: Waiting, answer: Option<&[u8]>) -> Action {
        let facts = waiting.facts();
        let decision = match &waiting.held {
            Held::Limits {
                digest,
                key_id,
                check,
                leak,
            } => {
                let (Some(settings), Some(key)) =
                    (&active.config.cluster, active.config.keys.get(digest))
                else {
                    return refuse(active, Outcome::Unavailable);
                };
                let (mut d, judged) =
                    cluster_limits::judge(settings, key, key_id.clone(), check, answer);
                if judged != Judged::Answered {
                    active.metrics.count_cluster_error();
                }
                if judged == Judged::Fallback {
                    active.metrics.count_cluster_fallback();
                }
                d.leak = *leak;
                d
            }
            Held::Usage {
                query,
                reply,
                outcome,
                events,
            } => {
                let totals = answer.and_then(sync_wire::decode_usage);
                if totals.is_none() {
                    active.metrics.count_cluster_error();
                }
                Decision {
                    reply: match totals {
                        Some(t) => Some(admin_api::cluster_usage_reply(&active.config, query, &t)),
                        None => reply.clone(),
                    },
                    events: events.clone(),
                    ..Decision::of(*outcome)
                }
            }
        };
        let action = self.settle(active, decision, &facts);
        // A body that arrived while the request was held.
        match (action, waiting.body) {
            (Action::Pause, Some((size, ended))) if self.pending.is_some() => {
                self.body_phase(size, ended)
            }
            _ => action,
        }
    }

    /// Applies a decision: metrics, events and usage, then the reply, or
    /// the request's headers and (inspected routes) the wait for its body.
    fn settle(&mut self, active: &Active, mut decision: Decision<'_>, f: &Facts<'_>) -> Action {
        let request = RequestView {
            authority: None,
            path: f.path,
            method: f.method,
            api_keys: &[],
            client_ip: f.client_ip,
            admin_secrets: &[],
            method_override: false,
            jwt_payload: None,
            bearer: false,
        };
        let now_ns = f.now_ns;
        if decision.cluster_fallback {
            let fallback = SecurityEvent {
                event: "cluster_fallback",
                reason: "cluster_unavailable",
                ..request_event(&decision, &request)
            };
            log_request(active, Class::Cluster, Severity::Warn, &fallback, now_ns);
        }
        // A request held for body inspection is counted once its body is
        // judged (as forwarded or as invalid input), not twice.
        let inspection = &active.config.body_inspection;
        let route_match = if decision.reply.is_none() {
            inspection.match_request(f.method, f.path, !f.end_of_stream)
        } else {
            RouteMatch::NotInspected
        };
        if route_match == RouteMatch::NotInspected {
            count_request(active, decision.outcome, decision.key);
        }
        log_event(active, &decision, &request, now_ns);
        let usage_key = decision.forwarded_identity().map(|k| k.sha256);
        if let Some(key) = decision.key {
            if decision.outcome.decision() == "rate_limited" {
                record_usage(active, &key.sha256, Kind::RateLimited, now_ns);
            }
        }

        // Headers for the response phase (rate-limit headers, the console's
        // CSP), for a reply as for a forwarded request.
        self.response_headers = std::mem::take(&mut decision.response_headers);
        if decision.reply.is_some() {
            send_reply(Some(active), decision.reply);
            return Action::Pause;
        }
        // Forwarded: the upstream never sees the key, and sees identity
        // headers only when the filter wrote them. Headers that are absent
        // cost no host call.
        let identity = decision.forwarded_caller();
        let mut applied = Ok(());
        if f.strip_key {
            applied =
                applied.and_then(|_| host::set_request_header(&active.config.api_key_header, None));
        }
        if f.strip_secret {
            applied = applied.and_then(|_| host::set_request_header(SECRET_HEADER, None));
        }
        if f.sent_identity.unjudged_token {
            applied = applied.and_then(|_| host::set_request_header("authorization", None));
        }
        let sent = f.sent_identity;
        let written = [
            (KEY_NAME_HEADER, identity.map(|(name, _)| name), sent.name),
            (KEY_TIER_HEADER, identity.map(|(_, tier)| tier), sent.tier),
            (FLAGS_HEADER, None, sent.flags),
        ];
        for (header, value, sent) in written {
            if value.is_some() || sent {
                applied = applied.and_then(|_| host::set_request_header(header, value));
            }
        }
        if applied.is_err() {
            return refuse(active, Outcome::Unavailable);
        }

        // Inspected routes: nothing goes upstream until the body is checked.
        let (route_index, wrong_method) = match route_match {
            RouteMatch::NotInspected => {
                if let Some(key) = &usage_key {
                    record_usage(active, key, Kind::Admitted, now_ns);
                }
                return Action::Continue;
            }
            RouteMatch::Inspect(index) => (index, None),
            RouteMatch::WrongMethod(allow) => (0, Some(allow)),
        };
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
        if let Some(allow) = wrong_method {
            let rejection = Rejection::method_not_allowed(allow);
            reject_body(active, rejection, &pending, &self.response_headers);
            return Action::Pause;
        }
        let Some(route) = inspection.routes.get(route_index) else {
            return refuse_body(active);
        };
        if let Err(rejection) = inspection.check_headers(route, f.content_type, f.content_length) {
            reject_body(active, rejection, &pending, &self.response_headers);
            return Action::Pause;
        }
        if f.end_of_stream {
            // No body at all: judged as an empty one.
            return self.finish_body(active, pending, &[]);
        }
        self.pending = Some(pending);
        Action::Pause
    }

    /// The body of an inspected route: buffered until it ends, then judged.
    fn body_phase(&mut self, body_size: usize, end_of_stream: bool) -> Action {
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

    /// Judges a complete body: forward (with report-only and vetoed flags) or reject.
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
                    let (name, reason) = if flag.vetoed {
                        active.metrics.count_veto();
                        ("input_vetoed", "scorer_veto")
                    } else {
                        active.metrics.count_flag(flag.category);
                        ("input_flagged", "report_only")
                    };
                    let flagged = SecurityEvent {
                        event: name,
                        reason,
                        field: Some(flag.field.clone()),
                        category: Some(flag.category.as_str()),
                        rule: Some(flag.rule_id.clone()),
                        score: flag.score.map(Score),
                        offset: flag.offset,
                        ..event.clone()
                    };
                    log_request(
                        active,
                        Class::Inspection,
                        Severity::Warn,
                        &flagged,
                        pending.now_ns,
                    );
                }
                let header = flags_header(&flags);
                if !header.is_empty()
                    && host::set_request_header(FLAGS_HEADER, Some(&header)).is_err()
                {
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
