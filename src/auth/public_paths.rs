//! Paths that pass without an API key.
//!
//! Matching uses the request path without its query string or fragment,
//! after Envoy's `normalize_path` and `merge_slashes` (set in the shipped
//! configs), so `//health` and `/x/../health` reach the filter as `/health`.
//! An entry is an exact path (`/health`), or a prefix when it ends in `*`
//! (`/public/*` matches `/public/a` and `/public/`, not `/public`). Matching is
//! case-sensitive, like routing.

use crate::http::path_only;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicPaths {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl PublicPaths {
    pub fn new(entries: &[String]) -> Result<Self, String> {
        let mut paths = PublicPaths::default();
        for entry in entries {
            if !entry.starts_with('/')
                || entry.contains(['?', '#'])
                || entry.bytes().any(|b| b <= b' ' || b >= 0x7f)
            {
                return Err(format!(
                    "{entry:?} must be a path starting with '/' without query, fragment, spaces or non-ASCII"
                ));
            }
            match entry.strip_suffix('*') {
                Some(prefix) if prefix.contains('*') => {
                    return Err(format!("{entry:?}: '*' is only allowed at the end"))
                }
                Some(prefix) => paths.prefixes.push(prefix.to_string()),
                None if entry.contains('*') => {
                    return Err(format!("{entry:?}: '*' is only allowed at the end"))
                }
                None => paths.exact.push(entry.clone()),
            }
        }
        Ok(paths)
    }

    /// Whether `path` (the raw `:path` header, query included) is public.
    pub fn matches(&self, path: &[u8]) -> bool {
        let path = path_only(path);
        self.exact.iter().any(|e| e.as_bytes() == path)
            || self.prefixes.iter().any(|p| path.starts_with(p.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(entries: &[&str]) -> PublicPaths {
        PublicPaths::new(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn exact_match_ignores_query() {
        let p = paths(&["/health"]);
        assert!(p.matches(b"/health"));
        assert!(p.matches(b"/health?verbose=1"));
        assert!(!p.matches(b"/health/"));
        assert!(!p.matches(b"/healthz"));
        assert!(!p.matches(b"/Health"));
        assert!(!p.matches(b"/query?x=/health"));
    }

    #[test]
    fn star_is_a_prefix() {
        let p = paths(&["/public/*"]);
        assert!(p.matches(b"/public/a/b"));
        assert!(p.matches(b"/public/"));
        assert!(!p.matches(b"/public"));
        assert!(!p.matches(b"/publicity"));
    }

    #[test]
    fn bad_entries_are_errors() {
        for bad in ["health", "/a?b", "/a*b", "/a b", "/*/*", ""] {
            assert!(PublicPaths::new(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
