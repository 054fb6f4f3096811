//! The floor of `make bench`: a Rust proxy-wasm HTTP filter, built with the
//! same SDK, profile and runtime as rag-guard, that lets every request
//! through without a single host call. Whatever it costs over passthrough
//! Envoy is what any Rust wasm filter pays before doing any work (the VM
//! entry and exit of each callback, and the context per request).
//!
//! With a plugin configuration `"probe <call> <n>"` (e.g. `"probe
//! get_shared_data 16"`) it makes that host call n times per request instead
//! (any other configuration, such as rag-guard's JSON, is ignored): `make
//! bench-host-calls` (bench/host_calls.py) prices each kind of host call
//! rag-guard makes, from the difference to n = 0.

use std::cell::Cell;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

/// The host calls a probe can repeat.
#[derive(Clone, Copy)]
enum Call {
    RequestHeaders,
    HeaderValue,
    ReplaceHeader,
    RemoveHeader,
    Property,
    Time,
    SharedGet,
    SharedSet,
    Metric,
    LogFiltered,
    /// The response phase's pair: read the response map, write it back.
    ResponseHeaders,
}

impl Call {
    fn parse(name: &str) -> Option<Call> {
        Some(match name {
            "get_header_map_pairs" => Call::RequestHeaders,
            "get_header_map_value" => Call::HeaderValue,
            "replace_header_map_value" => Call::ReplaceHeader,
            "remove_header_map_value" => Call::RemoveHeader,
            "get_property" => Call::Property,
            "get_current_time" => Call::Time,
            "get_shared_data" => Call::SharedGet,
            "set_shared_data" => Call::SharedSet,
            "increment_metric" => Call::Metric,
            "log_filtered" => Call::LogFiltered,
            "response_headers" => Call::ResponseHeaders,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy)]
struct Probe {
    call: Call,
    n: u32,
    metric: u32,
}

thread_local! {
    static PROBE: Cell<Option<Probe>> = const { Cell::new(None) };
}

/// A value the size of rag-guard's per-key entry (41 bytes).
const VALUE: [u8; 41] = [7; 41];

fn run(call: Call, metric: u32) {
    // Results are ignored: the probe measures the call, not its answer.
    match call {
        Call::RequestHeaders => {
            let _ = hostcalls::get_map_bytes(MapType::HttpRequestHeaders);
        }
        Call::HeaderValue => {
            let _ = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "x-api-key");
        }
        Call::ReplaceHeader => {
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                "x-api-key-name",
                Some("bench"),
            );
        }
        Call::RemoveHeader => {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-api-key", None);
        }
        Call::Property => {
            let _ = hostcalls::get_property(vec!["source", "address"]);
        }
        Call::Time => {
            let _ = hostcalls::get_current_time();
        }
        Call::SharedGet => {
            let _ = hostcalls::get_shared_data("probe");
        }
        Call::SharedSet => {
            let _ = hostcalls::set_shared_data("probe", Some(&VALUE), None);
        }
        Call::Metric => {
            let _ = hostcalls::increment_metric(metric, 1);
        }
        Call::LogFiltered => {
            let _ = hostcalls::log(LogLevel::Debug, "probe line, filtered out");
        }
        Call::ResponseHeaders => {
            if let Ok(map) = hostcalls::get_map_bytes(MapType::HttpResponseHeaders) {
                let pairs: Vec<(&str, &[u8])> = map
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_slice()))
                    .collect();
                let _ = hostcalls::set_map_bytes(MapType::HttpResponseHeaders, pairs);
            }
        }
    }
}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let Ok(Some(bytes)) = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
        else {
            return true;
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut words = text.split_whitespace();
        let (Some("probe"), Some(name), Some(n)) = (words.next(), words.next(), words.next())
        else {
            return true;
        };
        let (Some(call), Ok(n)) = (Call::parse(name), n.parse()) else {
            let _ = hostcalls::log(LogLevel::Error, "noop filter: unknown probe");
            return false;
        };
        let metric =
            hostcalls::define_metric(proxy_wasm::types::MetricType::Counter, "probe").unwrap_or(0);
        if matches!(call, Call::SharedGet) {
            let _ = hostcalls::set_shared_data("probe", Some(&VALUE), None);
        }
        PROBE.with(|p| p.set(Some(Probe { call, n, metric })));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Pass))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Pass;

impl Context for Pass {}

impl HttpContext for Pass {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let Some(p) = PROBE.with(Cell::get) {
            if !matches!(p.call, Call::ResponseHeaders) {
                for _ in 0..p.n {
                    run(p.call, p.metric);
                }
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let Some(p) = PROBE.with(Cell::get) {
            if matches!(p.call, Call::ResponseHeaders) {
                for _ in 0..p.n {
                    run(p.call, p.metric);
                }
            }
        }
        Action::Continue
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}
