//! The `access` section: roles and what each may do.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::auth::access::{Access, Grant};

use super::error::{err, ConfigError};
use super::keys::{is_plain_name, name_rule};
use super::limits::{check_prefix, is_method};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrant {
    prefix: String,
    #[serde(default)]
    methods: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    roles: BTreeMap<String, Vec<RawGrant>>,
    #[serde(default)]
    default_roles: Vec<String>,
}

pub(super) fn parse_access(raw: RawAccess) -> Result<Access, ConfigError> {
    if raw.roles.is_empty() || raw.roles.len() > 64 {
        return Err(err("access.roles", "must define 1-64 roles"));
    }
    let mut roles = BTreeMap::new();
    for (name, grants) in raw.roles {
        let field = |f: &str| format!("access.roles.{name}{f}");
        if !is_plain_name(&name) {
            return Err(err(field(""), format!("role names {}", name_rule())));
        }
        let mut parsed = Vec::with_capacity(grants.len());
        for (i, g) in grants.into_iter().enumerate() {
            check_prefix(field(&format!("[{i}].prefix")), &g.prefix)?;
            if !g.methods.iter().all(|m| is_method(m)) {
                return Err(err(
                    field(&format!("[{i}].methods")),
                    "must be upper-case HTTP methods (empty: any method)",
                ));
            }
            parsed.push(Grant {
                prefix: g.prefix,
                methods: g.methods,
            });
        }
        roles.insert(name, parsed);
    }
    let access = Access {
        roles,
        default_roles: raw.default_roles,
    };
    check_roles(&access, &access.default_roles, "access.default_roles")?;
    Ok(access)
}

/// Every role in `names` is defined.
pub(super) fn check_roles(
    access: &Access,
    names: &[String],
    field: &str,
) -> Result<(), ConfigError> {
    match names.iter().find(|r| !access.roles.contains_key(*r)) {
        Some(r) => Err(err(
            field,
            format!(
                "unknown role {r:?} (defined: {})",
                access.roles.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )),
        None => Ok(()),
    }
}
