//! Security events: one JSON object per line in Envoy's log, all with the
//! one schema below (fields absent when they do not apply).
//! `docs/events-and-metrics.md` documents every event and reason.
//!
//! `{"event", "reason", "status", "ip", "method", "path", "key_name",
//! "key_id", "tier", "limit", "field", "category", "rule", "score",
//! "offset", "duration_us", "by", "addresses", "window_secs", "action",
//! "suppressed"}`
//!
//! `key_id` is the first 16 hex characters of the key's SHA-256. An event
//! never holds a key, a secret, a header value other than these, or a body;
//! `path` is cut before the query string (which may carry secrets) and to
//! 200 bytes.

use serde::Serialize;

/// Longest path written into an event.
pub const MAX_EVENT_PATH: usize = 200;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SecurityEvent {
    pub event: &'static str,
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// For `rate_limited`: `burst`, `minute`, `hour`, `contention` or
    /// `failed_auth`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<&'static str>,
    /// For `validation_failed` / `input_flagged` / `input_vetoed`: the JSON field (never its
    /// value), the screening category and the rule id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The prompt-injection scorer's score of the field (0..1, three
    /// decimals), when it had one; for a document, the byte offset of the
    /// chunk the injection is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    /// For `auth_success`: microseconds the filter took to decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// For `key_revoked` / `key_restored`: `admin` or `leak_detection`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<&'static str>,
    /// For `key_leak_detected`: distinct addresses within the window, the
    /// window, and what was done (`revoke` or `report`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// For `events_suppressed`: lines left out since the last one written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
}

/// A score in an event: written with three decimals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f32);

impl Eq for Score {}

impl Serialize for Score {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((f64::from(self.0) * 1000.0).round() / 1000.0)
    }
}

/// How loud an event is (the Envoy log level it is written at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl SecurityEvent {
    pub fn to_json(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"event\":\"{}\"}}", self.event))
    }
}

/// A request path made safe for a log line: no query string or fragment, at
/// most `MAX_EVENT_PATH` bytes, invalid UTF-8 replaced.
pub fn loggable_path(raw_path: &[u8]) -> String {
    let path = crate::http::path_only(raw_path);
    let cut = &path[..path.len().min(MAX_EVENT_PATH)];
    String::from_utf8_lossy(cut).into_owned()
}

/// Short text for a header value in a log line (method): lossy, bounded.
pub fn loggable_token(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(16)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_only_known_fields() {
        let e = SecurityEvent {
            event: "auth_failure",
            reason: "invalid_key",
            status: Some(401),
            ip: Some("127.0.0.1".into()),
            path: Some(loggable_path(b"/query?api_key=secret")),
            key_id: Some("0123456789abcdef".into()),
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event": "auth_failure", "reason": "invalid_key", "status": 401,
                               "ip": "127.0.0.1", "path": "/query", "key_id": "0123456789abcdef"})
        );
    }

    #[test]
    fn paths_are_bounded_and_lossy() {
        let long = vec![b'a'; 5000];
        assert_eq!(loggable_path(&long).len(), MAX_EVENT_PATH);
        assert_eq!(loggable_path(b"/\xff"), "/\u{fffd}");
        // Quotes and newlines are escaped by the JSON encoder, not dropped.
        let e = SecurityEvent {
            event: "x",
            reason: "y",
            path: Some("/\"\n".into()),
            ..Default::default()
        };
        assert!(!e.to_json().contains('\n'));
    }
}
