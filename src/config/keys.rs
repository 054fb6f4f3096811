//! The `keys` section: one entry per API key, identified by the SHA-256 of
//! the key, with its tier, expiry and kill switch; and the name and
//! timestamp rules other sections share.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::auth::digest::parse_digest_hex;
use crate::auth::keys::{KeyEntry, Previous};
use crate::limits::token_bucket::Limits;

use super::error::{err, ConfigError};

/// Longest key name or tier name. Names go into request headers, event lines
/// and (later) metric names, so they are kept short and plain.
pub const MAX_NAME_LEN: usize = 64;

pub(super) fn default_enabled() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    name: String,
    sha256: String,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default = "default_enabled")]
    enabled: bool,
    /// Keys this one replaced, accepted until their `until`.
    #[serde(default)]
    previous: Vec<RawPrevious>,
    /// Roles (`access.roles`); absent: `access.default_roles`.
    #[serde(default)]
    roles: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrevious {
    sha256: String,
    until: String,
}

pub(super) fn parse_keys(
    raw: Vec<RawKey>,
    tiers: &BTreeMap<String, Limits>,
    default_tier: &str,
) -> Result<Vec<KeyEntry>, ConfigError> {
    let mut names = HashSet::new();
    let mut digests = HashSet::new();
    let mut keys = Vec::with_capacity(raw.len());
    for (i, k) in raw.into_iter().enumerate() {
        let field = |f: &str| format!("keys[{i}].{f}");
        if !is_plain_name(&k.name) {
            return Err(err(field("name"), name_rule()));
        }
        if !names.insert(k.name.clone()) {
            return Err(err(
                field("name"),
                format!("duplicate key name {:?}", k.name),
            ));
        }
        let Some(sha256) = parse_digest_hex(&k.sha256) else {
            return Err(err(
                field("sha256"),
                "must be 64 lowercase hex characters (hashlib.sha256(key.encode()).hexdigest())",
            ));
        };
        if !digests.insert(sha256) {
            return Err(err(
                field("sha256"),
                format!(
                    "the same digest is already configured for an earlier key or one it replaced (this is key {:?})",
                    k.name
                ),
            ));
        }
        let tier = k.tier.unwrap_or_else(|| default_tier.to_string());
        let Some(limits) = tiers.get(&tier).copied() else {
            return Err(err(
                field("tier"),
                format!(
                    "unknown tier {tier:?} (known: {})",
                    tiers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let expires_at = match &k.expires_at {
            None => None,
            Some(text) => Some(parse_timestamp(text).map_err(|m| err(field("expires_at"), m))?),
        };
        let mut previous = Vec::with_capacity(k.previous.len());
        for (j, p) in k.previous.iter().enumerate() {
            let field = |f: &str| format!("keys[{i}].previous[{j}].{f}");
            let Some(digest) = parse_digest_hex(&p.sha256) else {
                return Err(err(field("sha256"), "must be 64 lowercase hex characters"));
            };
            if !digests.insert(digest) {
                return Err(err(
                    field("sha256"),
                    "the same digest is already configured for a key or one it replaced",
                ));
            }
            let until = parse_timestamp(&p.until).map_err(|m| err(field("until"), m))?;
            previous.push(Previous {
                sha256: digest,
                until,
            });
        }
        keys.push(KeyEntry {
            name: k.name,
            sha256,
            tier,
            limits,
            expires_at,
            enabled: k.enabled,
            previous,
            roles: k.roles,
        });
    }
    Ok(keys)
}

pub(super) fn name_rule() -> String {
    format!("must be 1-{MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '-' or '_'")
}

/// Key and tier names: 1-64 characters of `[A-Za-z0-9_-]`.
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses an RFC 3339 UTC timestamp (`2027-03-01T00:00:00Z`) into Unix seconds.
pub fn parse_timestamp(text: &str) -> Result<u64, String> {
    let time = humantime::parse_rfc3339(text).map_err(|e| {
        format!("{text:?} is not an RFC 3339 UTC timestamp like 2027-03-01T00:00:00Z ({e})")
    })?;
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| format!("{text:?} is before 1970"))
}
