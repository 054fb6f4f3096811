//! Small wrappers around the proxy-wasm host calls that never panic (the
//! SDK's `Context` helpers unwrap host errors; these return them), and read
//! header values as bytes (the SDK's string accessors panic on invalid
//! UTF-8).

use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, Status};

use crate::shared_store::{SharedStore, StoreError, Versioned};

/// Envoy shared data of this plugin's `vm_id`.
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        match hostcalls::get_shared_data(key) {
            // Envoy always returns a version with a value; a CAS of 0 would
            // mean "write unconditionally", so a missing one is an error.
            Ok((Some(value), Some(cas))) => Ok(Some(Versioned { value, cas })),
            Ok((Some(_), None)) => Err(StoreError::Host("value without a CAS version".into())),
            Ok((None, _)) => Ok(None),
            Err(status) => Err(StoreError::Host(format!("{status:?}"))),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(StoreError::CasMismatch),
            Err(status) => Err(StoreError::Host(format!("{status:?}"))),
        }
    }
}

/// Current time in Unix nanoseconds; None if the host cannot tell (the
/// request is then refused).
pub fn now_unix_nanos() -> Option<u64> {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
}

/// Writes a line to Envoy's log; a failure to log is ignored.
pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// Whether Envoy would print a line at `level` (so the filter can skip
/// building it). Asked once per configuration.
pub fn log_enabled_at(level: LogLevel) -> bool {
    hostcalls::get_log_level().map_or(true, |host| host as i32 <= level as i32)
}

// The header-map calls of the ABI, used directly: the SDK's accessors
// copy every header into a `String` and a `Vec` (`http::header_map` reads
// the map in place instead).
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
    fn proxy_set_header_map_pairs(
        map_type: MapType,
        map_data: *const u8,
        map_size: usize,
    ) -> Status;
}

/// A header map as the host serializes it (`http::header_map::parse`).
fn header_map(map: MapType) -> Result<Vec<u8>, Status> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer to `size` bytes it allocated in
    // this module's memory through `proxy_on_memory_allocate` (the SDK's
    // allocator: a boxed slice of exactly `size` bytes), whose ownership
    // passes to us; the SDK's own accessor takes it the same way.
    match unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) } {
        Status::Ok if data.is_null() => Ok(Vec::new()),
        Status::Ok => Ok(unsafe { Vec::from_raw_parts(data, size, size) }),
        status => Err(status),
    }
}

/// Replaces a whole header map with `encoded` (`http::header_map::encode`).
fn set_header_map(map: MapType, encoded: &[u8]) -> Result<(), Status> {
    // SAFETY: the host only reads `encoded.len()` bytes at the pointer.
    match unsafe { proxy_set_header_map_pairs(map, encoded.as_ptr(), encoded.len()) } {
        Status::Ok => Ok(()),
        status => Err(status),
    }
}

/// The request header map, serialized (`http::header_map::parse`).
pub fn request_headers() -> Result<Vec<u8>, Status> {
    header_map(MapType::HttpRequestHeaders)
}

pub fn set_request_header(name: &str, value: Option<&str>) -> Result<(), Status> {
    hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value)
}

/// The buffered request body (the first `size` bytes).
pub fn request_body(size: usize) -> Result<Vec<u8>, Status> {
    hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size).map(Option::unwrap_or_default)
}

/// The response header map, serialized.
pub fn response_headers() -> Result<Vec<u8>, Status> {
    header_map(MapType::HttpResponseHeaders)
}

/// Replaces the whole response header map with an encoded one.
pub fn set_response_headers(encoded: &[u8]) -> Result<(), Status> {
    set_header_map(MapType::HttpResponseHeaders, encoded)
}

/// `source.address` as raw bytes (`ip:port`).
pub fn source_address() -> Option<Vec<u8>> {
    hostcalls::get_property(vec!["source", "address"])
        .ok()
        .flatten()
}

/// The payload Envoy's `jwt_authn` verified and stored under `key`
/// (`payload_in_metadata`), in the proxy-wasm pairs encoding. Ok(None): no
/// verified token; Err: the host call failed.
pub fn jwt_payload(key: &str) -> Result<Option<Vec<u8>>, Status> {
    let namespace = crate::auth::jwt::JWT_AUTHN_NAMESPACE;
    hostcalls::get_property(vec!["metadata", "filter_metadata", namespace, key])
}

/// Starts a unary gRPC call to `cluster` (an Envoy cluster name); the
/// answer comes to the calling context's `on_grpc_call_response`.
pub fn dispatch_grpc(
    cluster: &str,
    service: &str,
    method: &str,
    message: &[u8],
    timeout_ms: u64,
) -> Result<u32, Status> {
    hostcalls::dispatch_grpc_call(
        cluster,
        service,
        method,
        Vec::new(),
        Some(message),
        std::time::Duration::from_millis(timeout_ms),
    )
}

/// The message of a gRPC answer (`size` bytes), if its status is OK (0):
/// any other status (unreachable, deadline) is no answer.
pub fn grpc_answer(status_code: u32, size: usize) -> Option<Vec<u8>> {
    if status_code != 0 {
        return None;
    }
    hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size)
        .ok()
        .map(Option::unwrap_or_default)
}

/// Lets a request that the filter held go on.
pub fn resume_request() -> Result<(), Status> {
    hostcalls::resume_http_request()
}
