//! The admin console: one page and its script and style sheet, embedded in
//! the wasm and served under the admin prefix (`{prefix}console`). The
//! assets hold no data and need no credential; the page signs in with the
//! admin secret or an admin-role token and does everything through the
//! admin API itself (`GET keys`, `GET usage`, `POST keys/{name}/revoke`,
//! `POST keys/{name}/restore`), so there is no second code path for
//! decisions. No external resource, no inline script or style: the answers
//! carry [`CSP`].

use crate::http::LocalReply;

/// The console's Content-Security-Policy: only its own script, style and
/// API, nothing inline, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// The asset at `route` (the path below the admin prefix, in segments).
pub(super) fn asset(route: &[&str]) -> Option<LocalReply> {
    let (body, content_type) = match route {
        ["console"] => (INDEX, "text/html; charset=utf-8"),
        ["console", "console.js"] => (SCRIPT, "text/javascript; charset=utf-8"),
        ["console", "console.css"] => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    Some(LocalReply {
        status: 200,
        body: body.as_bytes().to_vec(),
        headers: vec![
            ("content-type", content_type.to_string()),
            ("content-security-policy", CSP.to_string()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of all the console's assets (budget: 60 KiB).
    fn assets_len() -> usize {
        INDEX.len() + SCRIPT.len() + STYLE.len()
    }

    #[test]
    fn assets_are_served_small_and_self_contained() {
        assert!(assets_len() <= 60 * 1024, "{} bytes", assets_len());
        let page = asset(&["console"]).unwrap();
        let html = String::from_utf8(page.body).unwrap();
        // Nothing from elsewhere, nothing inline.
        for needle in [
            "http://",
            "https://",
            "<style",
            "style=",
            "onclick",
            "javascript:",
        ] {
            assert!(!html.contains(needle), "{needle}");
        }
        assert!(!html.contains("<script>"));
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(!SCRIPT.contains("https://") && !STYLE.contains("http"));
        assert!(asset(&["console", "console.js"]).is_some());
        assert!(asset(&["console", "other.js"]).is_none());
        assert!(asset(&["keys"]).is_none());
    }
}
