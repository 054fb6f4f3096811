//! Response header policy: the security headers added to every response and
//! the headers removed from it.

use std::collections::BTreeMap;

use super::header_map;

/// Security headers set on every response unless the configuration
/// overrides or drops them.
pub const DEFAULT_SECURITY_HEADERS: [(&str, &str); 7] = [
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("x-xss-protection", "1; mode=block"),
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("content-security-policy", "default-src 'self'"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "geolocation=(), microphone=(), camera=()",
    ),
];

/// Headers removed from every response: they tell an attacker what runs
/// behind the API.
pub const REMOVED_RESPONSE_HEADERS: [&str; 2] = ["server", "x-envoy-upstream-service-time"];

/// Headers the policy may not set: they would break responses or forge
/// framing, authentication or cookies.
const FORBIDDEN: [&str; 9] = [
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "www-authenticate",
    "set-cookie",
    "retry-after",
    "date",
    "location",
];

/// The resolved list of security headers, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityHeaders {
    headers: Vec<(String, String)>,
    /// Default headers the configuration dropped: removed from responses,
    /// in case Envoy's own local-reply config added them.
    dropped: Vec<String>,
}

impl SecurityHeaders {
    /// Defaults merged with `overrides`: a string value replaces or adds a
    /// header, `null` drops it.
    pub fn new(overrides: &BTreeMap<String, Option<String>>) -> Result<Self, String> {
        let mut merged: BTreeMap<String, String> = DEFAULT_SECURITY_HEADERS
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        for (name, value) in overrides {
            let lower = name.to_ascii_lowercase();
            if !is_token(&lower) {
                return Err(format!("{name:?} is not a valid header name"));
            }
            if REMOVED_RESPONSE_HEADERS.contains(&lower.as_str())
                || FORBIDDEN.contains(&lower.as_str())
                || lower.starts_with("x-ratelimit-")
                || lower.starts_with("ratelimit")
            {
                return Err(format!("{name:?} cannot be set by this policy"));
            }
            match value {
                Some(v) if is_field_value(v) => {
                    merged.insert(lower, v.clone());
                }
                Some(_) => return Err(format!("{name:?}: value must be printable ASCII")),
                None => {
                    merged.remove(&lower);
                }
            }
        }
        let dropped = DEFAULT_SECURITY_HEADERS
            .iter()
            .map(|(n, _)| n.to_string())
            .filter(|n| !merged.contains_key(n))
            .collect();
        Ok(SecurityHeaders {
            headers: merged.into_iter().collect(),
            dropped,
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Default security headers this policy removes.
    pub fn dropped(&self) -> impl Iterator<Item = &str> {
        self.dropped.iter().map(String::as_str)
    }
}

/// The response headers after the policy, encoded for the host: removed
/// and dropped headers gone, every security header and every `extra` header
/// set exactly once (any copy the upstream sent is replaced), everything
/// else kept in order. None when that is the map as it is (the filter's own
/// replies already carry the policy), so that no write is needed.
pub fn apply(
    headers: &[(&[u8], &[u8])],
    policy: &SecurityHeaders,
    extra: &[(&str, String)],
) -> Option<Vec<u8>> {
    let replaced = |name: &[u8]| {
        REMOVED_RESPONSE_HEADERS
            .iter()
            .any(|r| r.as_bytes() == name)
            || policy.dropped.iter().any(|d| d.as_bytes() == name)
            || policy.headers.iter().any(|(n, _)| n.as_bytes() == name)
            || extra.iter().any(|(n, _)| n.as_bytes() == name)
    };
    let mut out: Vec<(&[u8], &[u8])> =
        Vec::with_capacity(headers.len() + policy.headers.len() + extra.len());
    out.extend(headers.iter().copied().filter(|(name, _)| !replaced(name)));
    // A header the filter sets for this response (`extra`) wins over the
    // policy's value of the same name.
    out.extend(
        policy
            .headers
            .iter()
            .filter(|(n, _)| !extra.iter().any(|(e, _)| e == n))
            .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    );
    out.extend(extra.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    if same_headers(headers, &out) {
        return None;
    }
    Some(header_map::encode(&out))
}

/// Whether two header lists hold the same headers, in any order (headers
/// of one name keep their relative order in `apply`, so order among them
/// needs no check).
fn same_headers(a: &[(&[u8], &[u8])], b: &[(&[u8], &[u8])]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

/// An HTTP header name (RFC 9110 token), lowercase.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

/// A header value we are willing to emit: printable ASCII and spaces, not
/// empty, no leading or trailing space.
fn is_field_value(s: &str) -> bool {
    !s.is_empty() && s.trim() == s && s.bytes().all(|b| (b' '..=b'~').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(h: &'a SecurityHeaders, name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    #[test]
    fn defaults_are_all_present() {
        let h = SecurityHeaders::new(&BTreeMap::new()).unwrap();
        assert_eq!(h.iter().count(), 7);
        assert_eq!(get(&h, "x-frame-options"), Some("DENY"));
    }

    #[test]
    fn override_add_and_drop() {
        let mut o = BTreeMap::new();
        o.insert(
            "X-Frame-Options".to_string(),
            Some("SAMEORIGIN".to_string()),
        );
        o.insert("x-xss-protection".to_string(), None);
        o.insert(
            "cross-origin-opener-policy".to_string(),
            Some("same-origin".to_string()),
        );
        let h = SecurityHeaders::new(&o).unwrap();
        assert_eq!(get(&h, "x-frame-options"), Some("SAMEORIGIN"));
        assert_eq!(get(&h, "x-xss-protection"), None);
        assert_eq!(get(&h, "cross-origin-opener-policy"), Some("same-origin"));
        assert_eq!(h.iter().count(), 7);
        assert_eq!(h.dropped().collect::<Vec<_>>(), ["x-xss-protection"]);
    }

    #[test]
    fn apply_replaces_removes_and_keeps_the_rest() {
        let mut o = BTreeMap::new();
        o.insert("x-xss-protection".to_string(), None);
        let policy = SecurityHeaders::new(&o).unwrap();
        let upstream: Vec<(&[u8], &[u8])> = vec![
            (b":status", b"200"),
            (b"content-type", b"application/json"),
            (b"server", b"gunicorn"),
            (b"x-envoy-upstream-service-time", b"3"),
            (b"x-frame-options", b"ALLOWALL"),
            (b"x-xss-protection", b"0"),
            (b"x-ratelimit-remaining-minute", b"999"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ];
        let extra = [("x-ratelimit-remaining-minute", "5".to_string())];
        let encoded = apply(&upstream, &policy, &extra).unwrap();
        let out = header_map::parse(&encoded).unwrap();
        let all = |name: &str| -> Vec<&[u8]> {
            out.iter()
                .filter(|(n, _)| *n == name.as_bytes())
                .map(|(_, v)| *v)
                .collect()
        };
        assert_eq!(out[0].0, b":status");
        assert_eq!(all("x-frame-options"), [b"DENY"]);
        assert!(all("x-xss-protection").is_empty());
        assert!(all("server").is_empty());
        assert!(all("x-envoy-upstream-service-time").is_empty());
        assert_eq!(all("x-ratelimit-remaining-minute"), [b"5"]);
        assert_eq!(all("set-cookie"), [&b"a=1"[..], b"b=2"]);
        assert_eq!(all("content-type"), [b"application/json"]);
        assert_eq!(all("x-content-type-options"), [b"nosniff"]);
    }

    #[test]
    fn a_map_that_already_follows_the_policy_needs_no_write() {
        let policy = SecurityHeaders::new(&BTreeMap::new()).unwrap();
        // The filter's own reply: its headers, then the policy's, and
        // Envoy's content-length after them.
        let mut reply: Vec<(&[u8], &[u8])> = vec![
            (b":status", b"429"),
            (b"content-type", b"application/json"),
            (b"retry-after", b"7"),
        ];
        reply.extend(policy.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        reply.push((b"content-length", b"56"));
        assert_eq!(apply(&reply, &policy, &[]), None);
        // Envoy's local_reply_config changed one: written back.
        let mut changed = reply.clone();
        changed[3].1 = b"SAMEORIGIN";
        assert!(apply(&changed, &policy, &[]).is_some());
        // A duplicated security header is not the same map either.
        let mut doubled = reply.clone();
        doubled.push((b"x-frame-options", b"DENY"));
        assert!(apply(&doubled, &policy, &[]).is_some());
    }

    #[test]
    fn bad_names_and_values_are_errors() {
        for (name, value) in [
            ("bad name", Some("x")),
            (":status", Some("200")),
            ("x-a", Some("line\r\nbreak")),
            ("x-a", Some("")),
            ("x-a", Some("caf\u{e9}")),
            ("server", Some("nginx")),
            ("content-length", Some("1")),
            ("Set-Cookie", Some("a=b")),
            ("content-type", Some("text/html")),
            ("x-ratelimit-limit-minute", Some("1")),
        ] {
            let mut o = BTreeMap::new();
            o.insert(name.to_string(), value.map(String::from));
            assert!(SecurityHeaders::new(&o).is_err(), "{name:?} {value:?}");
        }
    }
}
