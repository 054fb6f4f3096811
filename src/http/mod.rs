//! HTTP vocabulary every layer may use: the filter's own JSON replies, the
//! names of the headers it reads and writes, path helpers, and the response
//! header policy, the ABI's header-map encoding. Depends on nothing else in
//! the crate.

pub mod header_map;
pub mod response_headers;

/// Headers the filter writes for the upstream; a client copy is always
/// replaced or removed.
pub const KEY_NAME_HEADER: &str = "x-api-key-name";
pub const KEY_TIER_HEADER: &str = "x-api-key-tier";
/// Report-only screening categories that matched, for the upstream.
pub const FLAGS_HEADER: &str = "x-rag-guard-flags";
/// Headers some frameworks take as the request's real method (a `POST`
/// carrying `X-HTTP-Method-Override: PUT` is routed as a `PUT`): requests
/// that carry one are refused, so the method the filter judged is the one
/// the upstream sees.
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];
/// The header that carries the admin secret.
pub const SECRET_HEADER: &str = "x-admin-secret";

/// A response the filter sends itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    /// JSON body.
    pub body: Vec<u8>,
    /// Headers besides `content-type` and the security headers.
    pub headers: Vec<(&'static str, String)>,
}

impl LocalReply {
    /// An error in the shape FastAPI uses: `{"detail": "..."}`; 401s carry
    /// `WWW-Authenticate: APIKey`.
    pub fn error(status: u32, detail: &str) -> Self {
        let mut headers = Vec::new();
        if status == 401 {
            headers.push(("www-authenticate", "APIKey".to_string()));
        }
        LocalReply {
            status,
            body: serde_json::json!({ "detail": detail })
                .to_string()
                .into_bytes(),
            headers,
        }
    }

    /// The reply with `Retry-After: secs`.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.headers.push(("retry-after", secs.to_string()));
        self
    }

    /// The detail text of an error reply (for tests and logs).
    pub fn detail(&self) -> Option<String> {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()?
            .get("detail")?
            .as_str()
            .map(str::to_string)
    }
}

/// The path without query string and fragment.
pub fn path_only(path: &[u8]) -> &[u8] {
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    &path[..end]
}

/// Whether `path` lies under `prefix` on whole segments: `/documents`
/// (or `/documents/`) covers `/documents` and `/documents/7`, not
/// `/documentsX`; `/` covers every path.
pub fn under_prefix(path: &[u8], prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/').as_bytes();
    path.starts_with(prefix) && matches!(path.get(prefix.len()), None | Some(b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_fastapi_shaped_and_401s_name_the_scheme() {
        let r = LocalReply::error(401, "Missing API Key");
        assert_eq!(r.detail().as_deref(), Some("Missing API Key"));
        assert_eq!(r.headers, vec![("www-authenticate", "APIKey".to_string())]);
        let r = LocalReply::error(400, "x").with_retry_after(3);
        assert_eq!(r.headers, vec![("retry-after", "3".to_string())]);
    }

    #[test]
    fn path_only_drops_query_and_fragment() {
        assert_eq!(path_only(b"/a?b#c"), b"/a");
        assert_eq!(path_only(b"/a#c?b"), b"/a");
        assert_eq!(path_only(b"/a"), b"/a");
    }
}
