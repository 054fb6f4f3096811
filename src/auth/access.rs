//! Role-based access: which routes and methods each role may use.
//!
//! A caller's roles come from its API key's `roles` or its token's roles
//! claim (`access.default_roles` when it has none). A request is allowed
//! when one of the caller's roles has a grant matching its method and path.
//! Grant paths are prefixes on whole segments, as route costs are
//! (`/documents` matches `/documents` and `/documents/7`, not
//! `/documentsX`), on the normalized path without its query string. Role
//! names a caller holds but the configuration does not define grant
//! nothing.

use std::collections::BTreeMap;

use crate::http::{path_only, under_prefix};

/// One thing a role may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Path prefix, matched on whole segments.
    pub prefix: String,
    /// Upper-case methods; empty: any method.
    pub methods: Vec<String>,
}

impl Grant {
    pub fn matches(&self, method: &[u8], path: &[u8]) -> bool {
        under_prefix(path, &self.prefix)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m.as_bytes() == method))
    }
}

/// The `access` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Access {
    pub roles: BTreeMap<String, Vec<Grant>>,
    /// Roles of a caller whose key or token names none.
    pub default_roles: Vec<String>,
}

impl Access {
    /// Whether a caller with `roles` (None: the default roles) may send
    /// `method` to `path` (the raw `:path`).
    pub fn allows<S: AsRef<str>>(&self, roles: Option<&[S]>, method: &[u8], path: &[u8]) -> bool {
        self.allows_under(roles, method, path, "")
    }

    /// [`allows`](Self::allows), counting only grants whose prefix lies at
    /// or under `scope`. The admin API asks with its prefix, so a broad grant
    /// (`/`, meant for the API) never makes a caller an administrator.
    pub fn allows_under<S: AsRef<str>>(
        &self,
        roles: Option<&[S]>,
        method: &[u8],
        path: &[u8],
        scope: &str,
    ) -> bool {
        let path = path_only(path);
        let granted = |role: &str| {
            self.roles.get(role).is_some_and(|grants| {
                grants
                    .iter()
                    .any(|g| g.matches(method, path) && under_prefix(g.prefix.as_bytes(), scope))
            })
        };
        match roles {
            Some(roles) => roles.iter().any(|r| granted(r.as_ref())),
            None => self.default_roles.iter().any(|r| granted(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(prefix: &str, methods: &[&str]) -> Grant {
        Grant {
            prefix: prefix.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn access() -> Access {
        Access {
            roles: [
                ("reader".to_string(), vec![grant("/query", &["POST"])]),
                (
                    "ingest".to_string(),
                    vec![grant("/documents", &["POST", "PUT"])],
                ),
                ("admin".to_string(), vec![grant("/rag-guard/admin", &[])]),
            ]
            .into_iter()
            .collect(),
            default_roles: vec!["reader".into()],
        }
    }

    #[test]
    fn roles_grant_their_routes_only() {
        let a = access();
        let reader = Some(&["reader"][..]);
        assert!(a.allows(reader, b"POST", b"/query?x=1"));
        assert!(a.allows(reader, b"POST", b"/query/"));
        assert!(!a.allows(reader, b"GET", b"/query"));
        assert!(!a.allows(reader, b"POST", b"/queryX"));
        assert!(!a.allows(reader, b"POST", b"/documents"));
        let both = Some(&["reader", "ingest"][..]);
        assert!(a.allows(both, b"PUT", b"/documents/7"));
        let admin = Some(&["admin"][..]);
        assert!(a.allows(admin, b"GET", b"/rag-guard/admin/keys"));
        assert!(a.allows(admin, b"POST", b"/rag-guard/admin/keys/a/revoke"));
        assert!(!a.allows(admin, b"POST", b"/query"));
    }

    #[test]
    fn only_grants_under_a_scope_count_for_it() {
        let mut a = access();
        a.roles.insert("everything".into(), vec![grant("/", &[])]);
        let every = Some(&["everything"][..]);
        assert!(a.allows(every, b"GET", b"/rag-guard/admin/keys"));
        let admin_scope = "/rag-guard/admin";
        assert!(!a.allows_under(every, b"GET", b"/rag-guard/admin/keys", admin_scope));
        let admin = Some(&["admin"][..]);
        assert!(a.allows_under(admin, b"GET", b"/rag-guard/admin/keys", admin_scope));
        assert!(a.allows_under(admin, b"GET", b"/rag-guard/admin/keys", "/rag-guard/admin/"));
    }

    #[test]
    fn no_roles_means_the_defaults_and_unknown_roles_grant_nothing() {
        let a = access();
        assert!(a.allows(None::<&[&str]>, b"POST", b"/query"));
        assert!(!a.allows(None::<&[&str]>, b"POST", b"/documents"));
        assert!(!a.allows(Some(&["root"][..]), b"POST", b"/query"));
        assert!(!a.allows(Some(&[] as &[&str]), b"POST", b"/query"));
    }
}
