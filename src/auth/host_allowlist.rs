//! Host allowlist: which `Host` / `:authority` values the filter accepts.
//!
//! Entries are exact host names (`api.example.com`, `127.0.0.1`, `[::1]`) or
//! wildcards `*.example.com`, which match any name ending in `.example.com`
//! (one or more labels deep) but not `example.com` itself. Matching is
//! case-insensitive and ignores the port of the request's authority. An empty
//! list allows every host.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAllowlist {
    exact: Vec<String>,
    /// Suffixes including the leading dot, e.g. `.example.com`.
    suffixes: Vec<String>,
}

impl HostAllowlist {
    /// Builds the list; an entry that is not a valid host pattern is an error
    /// naming the entry.
    pub fn new(entries: &[String]) -> Result<Self, String> {
        let mut list = HostAllowlist::default();
        for entry in entries {
            let lower = entry.to_ascii_lowercase();
            if let Some(suffix) = lower.strip_prefix("*.") {
                if !is_host_name(suffix) || !suffix.contains('.') {
                    return Err(format!(
                        "{entry:?} is not a valid wildcard host (use *.example.com; a bare *.tld is refused)"
                    ));
                }
                list.suffixes.push(format!(".{suffix}"));
            } else if is_host_name(&lower) || is_bracketed_ipv6(&lower) {
                list.exact.push(lower);
            } else {
                return Err(format!(
                    "{entry:?} is not a valid host name (no scheme, port or path)"
                ));
            }
        }
        Ok(list)
    }

    pub fn allows_all(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty()
    }

    /// Whether a request with this `:authority` may pass. A missing or
    /// malformed authority passes only when the list is empty.
    pub fn allows(&self, authority: Option<&[u8]>) -> bool {
        if self.allows_all() {
            return true;
        }
        let Some(host) = authority.and_then(host_of_authority) else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        self.exact.contains(&host)
            || self
                .suffixes
                .iter()
                .any(|s| host.len() > s.len() && host.ends_with(s.as_str()))
    }
}

/// The host part of an authority (`name`, `name:port`, `[v6]`, `[v6]:port`),
/// or None when it is not plain ASCII of that shape.
fn host_of_authority(authority: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(authority).ok()?;
    if text.starts_with('[') {
        let end = text.find(']')?;
        let (host, rest) = text.split_at(end + 1);
        return (rest.is_empty() || is_port(rest.strip_prefix(':')?)).then_some(host);
    }
    let host = match text.rsplit_once(':') {
        Some((host, port)) if is_port(port) => host,
        Some(_) => return None,
        None => text,
    };
    is_host_name(&host.to_ascii_lowercase()).then_some(host)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

fn is_bracketed_ipv6(s: &str) -> bool {
    s.len() > 2
        && s.starts_with('[')
        && s.ends_with(']')
        && s[1..s.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> HostAllowlist {
        HostAllowlist::new(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn empty_list_allows_everything() {
        let l = list(&[]);
        assert!(l.allows(Some(b"anything:1")));
        assert!(l.allows(None));
    }

    #[test]
    fn exact_names_ignore_case_and_port() {
        let l = list(&["API.example.com", "127.0.0.1", "[::1]"]);
        assert!(l.allows(Some(b"api.example.com")));
        assert!(l.allows(Some(b"Api.Example.Com:8443")));
        assert!(l.allows(Some(b"127.0.0.1:10000")));
        assert!(l.allows(Some(b"[::1]:10000")));
        assert!(l.allows(Some(b"[::1]")));
        assert!(!l.allows(Some(b"evil.com")));
        assert!(!l.allows(Some(b"api.example.com.evil.com")));
        assert!(!l.allows(None));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let l = list(&["*.example.com"]);
        assert!(l.allows(Some(b"a.example.com")));
        assert!(l.allows(Some(b"a.b.example.com:1")));
        assert!(!l.allows(Some(b"example.com")));
        assert!(!l.allows(Some(b"badexample.com")));
        assert!(!l.allows(Some(b".example.com")));
    }

    #[test]
    fn malformed_authorities_are_refused() {
        let l = list(&["example.com"]);
        for bad in [
            &b"example.com:"[..],
            b"example.com:99999999",
            b"example.com:x",
            b"user@example.com",
            b"example.com/path",
            b"\xff\xfe",
            b"",
            b"[::1",
        ] {
            assert!(!l.allows(Some(bad)), "{bad:?}");
        }
    }

    #[test]
    fn bad_entries_are_errors() {
        for bad in [
            "http://x.com",
            "x.com:80",
            "*.",
            "a..b",
            "*",
            "x.com/p",
            "",
            "*.com",
        ] {
            assert!(HostAllowlist::new(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
