//! A stand-in for Envoy in native unit tests: the proxy-wasm ABI functions
//! the SDK imports (`proxy_log`, `proxy_get_header_map_pairs`, ...),
//! defined here over one thread-local [`Host`]. The filter's own code runs
//! unchanged on top of it, so a test can drive a request through the real
//! callbacks and see every host call the filter made, in order.
//!
//! Only what the filter uses behaves like Envoy (maps, buffers, shared data
//! with CAS versions, properties, metrics, local replies, gRPC calls that
//! never answer); the rest answers `Unimplemented`-like `InternalFailure`
//! so a new kind of call shows up in the log of calls at once.
#![allow(clippy::missing_safety_doc, clippy::not_unsafe_ptr_arg_deref)]

use std::cell::RefCell;
use std::collections::HashMap;

use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status, StreamType};

/// A header map as the ABI carries it.
pub type Headers = Vec<(String, Vec<u8>)>;

/// One request's worth of Envoy, plus the calls made to it.
#[derive(Default)]
pub struct Host {
    /// Every host call, by ABI name without the `proxy_` prefix.
    pub calls: Vec<&'static str>,
    pub plugin_config: Vec<u8>,
    pub request_headers: Headers,
    pub response_headers: Headers,
    pub request_body: Vec<u8>,
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    pub source_address: Vec<u8>,
    /// What `jwt_authn` stored as `jwt_payload`, if anything.
    pub jwt_payload: Option<Vec<u8>>,
    pub now_ns: u64,
    /// Envoy's log level (0 trace .. 5 critical).
    pub log_level: i32,
    pub logs: Vec<(i32, String)>,
    /// The local reply sent, if any: status, headers, body.
    pub reply: Option<(u32, Headers, Vec<u8>)>,
    pub metrics: Vec<(String, i64)>,
    pub grpc_calls: u32,
}

thread_local! {
    static HOST: RefCell<Host> = RefCell::new(Host::default());
}

/// Runs `f` on this thread's host.
pub fn with<R>(f: impl FnOnce(&mut Host) -> R) -> R {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

fn called(name: &'static str) {
    with(|h| h.calls.push(name));
}

/// Hands `data` to the SDK the way Envoy does: in memory the module
/// allocated, which the SDK frees as a `Vec` of that exact length.
unsafe fn give(data: Vec<u8>, out_data: *mut *mut u8, out_size: *mut usize) {
    let len = data.len();
    let ptr = Box::into_raw(data.into_boxed_slice()) as *mut u8;
    *out_data = ptr;
    *out_size = len;
}

unsafe fn bytes<'a>(data: *const u8, size: usize) -> &'a [u8] {
    if size == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(data, size)
    }
}

unsafe fn text(data: *const u8, size: usize) -> String {
    String::from_utf8_lossy(bytes(data, size)).into_owned()
}

// Written apart from `http::header_map` on purpose: the fake Envoy must not
// share a bug with the codec it checks.
fn serialize(map: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = (map.len() as u32).to_le_bytes().to_vec();
    for (n, v) in map {
        out.extend((n.len() as u32).to_le_bytes());
        out.extend((v.len() as u32).to_le_bytes());
    }
    for (n, v) in map {
        out.extend(n.as_bytes());
        out.push(0);
        out.extend(v);
        out.push(0);
    }
    out
}

fn deserialize(data: &[u8]) -> Headers {
    let word = |at: usize| {
        data.get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0);
    let mut at = 4 + 8 * count;
    let mut map = Vec::new();
    for i in 0..count {
        let (n, v) = (word(4 + 8 * i), word(8 + 8 * i));
        let name = String::from_utf8_lossy(&data[at..at + n]).into_owned();
        at += n + 1;
        map.push((name, data[at..at + v].to_vec()));
        at += v + 1;
    }
    map
}

fn map_of(h: &mut Host, map: MapType) -> Option<&mut Headers> {
    match map {
        MapType::HttpRequestHeaders => Some(&mut h.request_headers),
        MapType::HttpResponseHeaders => Some(&mut h.response_headers),
        _ => None,
    }
}

#[no_mangle]
pub extern "C" fn proxy_log(level: LogLevel, data: *const u8, size: usize) -> Status {
    called("log");
    let line = unsafe { text(data, size) };
    with(|h| h.logs.push((level as i32, line)));
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_get_log_level(out: *mut LogLevel) -> Status {
    called("get_log_level");
    let level = match with(|h| h.log_level) {
        0 => LogLevel::Trace,
        1 => LogLevel::Debug,
        2 => LogLevel::Info,
        3 => LogLevel::Warn,
        4 => LogLevel::Error,
        _ => LogLevel::Critical,
    };
    unsafe { *out = level };
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_get_current_time_nanoseconds(out: *mut u64) -> Status {
    called("get_current_time");
    unsafe { *out = with(|h| h.now_ns) };
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_set_tick_period_milliseconds(_period: u32) -> Status {
    called("set_tick_period");
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_get_buffer_bytes(
    buffer: BufferType,
    start: usize,
    max_size: usize,
    out_data: *mut *mut u8,
    out_size: *mut usize,
) -> Status {
    called("get_buffer_bytes");
    let data = with(|h| match buffer {
        BufferType::PluginConfiguration => Some(h.plugin_config.clone()),
        BufferType::HttpRequestBody => Some(h.request_body.clone()),
        _ => None,
    });
    let Some(data) = data else {
        return Status::NotFound;
    };
    let end = start.saturating_add(max_size).min(data.len());
    let part = data.get(start.min(end)..end).unwrap_or_default().to_vec();
    unsafe { give(part, out_data, out_size) };
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_set_buffer_bytes(
    _buffer: BufferType,
    _start: usize,
    _size: usize,
    _data: *const u8,
    _data_size: usize,
) -> Status {
    called("set_buffer_bytes");
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_get_header_map_pairs(
    map: MapType,
    out_data: *mut *mut u8,
    out_size: *mut usize,
) -> Status {
    called("get_header_map_pairs");
    let data = with(|h| map_of(h, map).map(|m| serialize(m)));
    match data {
        Some(data) => {
            unsafe { give(data, out_data, out_size) };
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub extern "C" fn proxy_set_header_map_pairs(map: MapType, data: *const u8, size: usize) -> Status {
    called("set_header_map_pairs");
    let pairs = deserialize(unsafe { bytes(data, size) });
    with(|h| match map_of(h, map) {
        Some(m) => {
            *m = pairs;
            Status::Ok
        }
        None => Status::NotFound,
    })
}

#[no_mangle]
pub extern "C" fn proxy_get_header_map_value(
    map: MapType,
    key: *const u8,
    key_size: usize,
    out_data: *mut *mut u8,
    out_size: *mut usize,
) -> Status {
    called("get_header_map_value");
    let key = unsafe { text(key, key_size) };
    let value = with(|h| {
        map_of(h, map).and_then(|m| m.iter().find(|(n, _)| *n == key).map(|(_, v)| v.clone()))
    });
    match value {
        Some(v) => {
            unsafe { give(v, out_data, out_size) };
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub extern "C" fn proxy_remove_header_map_value(
    map: MapType,
    key: *const u8,
    key_size: usize,
) -> Status {
    called("remove_header_map_value");
    let key = unsafe { text(key, key_size) };
    with(|h| {
        if let Some(m) = map_of(h, map) {
            m.retain(|(n, _)| *n != key);
        }
    });
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_replace_header_map_value(
    map: MapType,
    key: *const u8,
    key_size: usize,
    value: *const u8,
    value_size: usize,
) -> Status {
    called("replace_header_map_value");
    let key = unsafe { text(key, key_size) };
    let value = unsafe { bytes(value, value_size) }.to_vec();
    with(|h| {
        if let Some(m) = map_of(h, map) {
            m.retain(|(n, _)| *n != key);
            m.push((key, value));
        }
    });
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_add_header_map_value(
    map: MapType,
    key: *const u8,
    key_size: usize,
    value: *const u8,
    value_size: usize,
) -> Status {
    called("add_header_map_value");
    let key = unsafe { text(key, key_size) };
    let value = unsafe { bytes(value, value_size) }.to_vec();
    with(|h| {
        if let Some(m) = map_of(h, map) {
            m.push((key, value));
        }
    });
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_get_property(
    path: *const u8,
    path_size: usize,
    out_data: *mut *mut u8,
    out_size: *mut usize,
) -> Status {
    called("get_property");
    let path = unsafe { bytes(path, path_size) };
    let value = if path == b"source\0address" {
        with(|h| h.source_address.clone())
    } else if path == b"metadata\0filter_metadata\0envoy.filters.http.jwt_authn\0jwt_payload" {
        match with(|h| h.jwt_payload.clone()) {
            Some(payload) => payload,
            None => return Status::NotFound,
        }
    } else {
        return Status::NotFound;
    };
    unsafe { give(value, out_data, out_size) };
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_set_property(
    _path: *const u8,
    _path_size: usize,
    _value: *const u8,
    _value_size: usize,
) -> Status {
    called("set_property");
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_get_shared_data(
    key: *const u8,
    key_size: usize,
    out_data: *mut *mut u8,
    out_size: *mut usize,
    out_cas: *mut u32,
) -> Status {
    called("get_shared_data");
    let key = unsafe { text(key, key_size) };
    match with(|h| h.shared.get(&key).cloned()) {
        Some((value, cas)) => {
            unsafe {
                give(value, out_data, out_size);
                *out_cas = cas;
            }
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub extern "C" fn proxy_set_shared_data(
    key: *const u8,
    key_size: usize,
    value: *const u8,
    value_size: usize,
    cas: u32,
) -> Status {
    called("set_shared_data");
    let key = unsafe { text(key, key_size) };
    let value = unsafe { bytes(value, value_size) }.to_vec();
    with(|h| {
        let current = h.shared.get(&key).map_or(0, |(_, c)| *c);
        if cas != 0 && cas != current {
            return Status::CasMismatch;
        }
        h.shared.insert(key, (value, current + 1));
        Status::Ok
    })
}

#[no_mangle]
pub extern "C" fn proxy_register_shared_queue(
    _name: *const u8,
    _size: usize,
    _id: *mut u32,
) -> Status {
    called("register_shared_queue");
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_resolve_shared_queue(
    _vm: *const u8,
    _vm_size: usize,
    _name: *const u8,
    _size: usize,
    _id: *mut u32,
) -> Status {
    called("resolve_shared_queue");
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_dequeue_shared_queue(
    _id: u32,
    _data: *mut *mut u8,
    _size: *mut usize,
) -> Status {
    called("dequeue_shared_queue");
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_enqueue_shared_queue(_id: u32, _data: *const u8, _size: usize) -> Status {
    called("enqueue_shared_queue");
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_continue_stream(_stream: StreamType) -> Status {
    called("continue_stream");
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_close_stream(_stream: StreamType) -> Status {
    called("close_stream");
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_send_local_response(
    status: u32,
    _details: *const u8,
    _details_size: usize,
    body: *const u8,
    body_size: usize,
    headers: *const u8,
    headers_size: usize,
    _grpc_status: i32,
) -> Status {
    called("send_local_response");
    let body = unsafe { bytes(body, body_size) }.to_vec();
    let headers = deserialize(unsafe { bytes(headers, headers_size) });
    // Envoy answers with these headers (and its own :status): the response
    // phase then sees them.
    with(|h| {
        h.response_headers =
            std::iter::once((":status".to_string(), status.to_string().into_bytes()))
                .chain(headers.iter().cloned())
                .collect();
        h.reply = Some((status, headers, body));
    });
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_http_call(
    _upstream: *const u8,
    _upstream_size: usize,
    _headers: *const u8,
    _headers_size: usize,
    _body: *const u8,
    _body_size: usize,
    _trailers: *const u8,
    _trailers_size: usize,
    _timeout: u32,
    _token: *mut u32,
) -> Status {
    called("http_call");
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_grpc_call(
    _upstream: *const u8,
    _upstream_size: usize,
    _service: *const u8,
    _service_size: usize,
    _method: *const u8,
    _method_size: usize,
    _metadata: *const u8,
    _metadata_size: usize,
    _message: *const u8,
    _message_size: usize,
    _timeout: u32,
    token: *mut u32,
) -> Status {
    called("grpc_call");
    let next = with(|h| {
        h.grpc_calls += 1;
        h.grpc_calls
    });
    unsafe { *token = next };
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_grpc_stream(
    _upstream: *const u8,
    _upstream_size: usize,
    _service: *const u8,
    _service_size: usize,
    _method: *const u8,
    _method_size: usize,
    _metadata: *const u8,
    _metadata_size: usize,
    _id: *mut u32,
) -> Status {
    called("grpc_stream");
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_grpc_send(
    _token: u32,
    _message: *const u8,
    _size: usize,
    _end: bool,
) -> Status {
    called("grpc_send");
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_grpc_cancel(_token: u32) -> Status {
    called("grpc_cancel");
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_grpc_close(_token: u32) -> Status {
    called("grpc_close");
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_get_status(
    _code: *mut u32,
    _message: *mut *mut u8,
    _size: *mut usize,
) -> Status {
    called("get_status");
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_set_effective_context(_context: u32) -> Status {
    called("set_effective_context");
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_call_foreign_function(
    _name: *const u8,
    _name_size: usize,
    _args: *const u8,
    _args_size: usize,
    _results: *mut *mut u8,
    _results_size: *mut usize,
) -> Status {
    called("call_foreign_function");
    Status::NotFound
}

#[no_mangle]
pub extern "C" fn proxy_done() -> Status {
    called("done");
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_define_metric(
    _kind: MetricType,
    name: *const u8,
    name_size: usize,
    out_id: *mut u32,
) -> Status {
    called("define_metric");
    let name = unsafe { text(name, name_size) };
    let id = with(|h| {
        let id = match h.metrics.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                h.metrics.push((name, 0));
                h.metrics.len() - 1
            }
        };
        id as u32
    });
    unsafe { *out_id = id };
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_get_metric(id: u32, out: *mut u64) -> Status {
    called("get_metric");
    match with(|h| h.metrics.get(id as usize).map(|(_, v)| *v)) {
        Some(v) => {
            unsafe { *out = v as u64 };
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub extern "C" fn proxy_record_metric(id: u32, value: u64) -> Status {
    called("record_metric");
    with(|h| match h.metrics.get_mut(id as usize) {
        Some((_, v)) => {
            *v = value as i64;
            Status::Ok
        }
        None => Status::NotFound,
    })
}

#[no_mangle]
pub extern "C" fn proxy_increment_metric(id: u32, by: i64) -> Status {
    called("increment_metric");
    with(|h| match h.metrics.get_mut(id as usize) {
        Some((_, v)) => {
            *v += by;
            Status::Ok
        }
        None => Status::NotFound,
    })
}
