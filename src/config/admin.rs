//! The `admin` section: where the admin API answers and the digest of its
//! secret.

use serde::Deserialize;

use crate::auth::digest::{parse_digest_hex, Digest};

use super::error::{err, ConfigError};

/// The admin API: where it answers and the digest of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub secret_sha256: Digest,
    /// Starts and ends with '/'.
    pub path_prefix: String,
}

/// Default `admin.path_prefix`.
pub const DEFAULT_ADMIN_PREFIX: &str = "/rag-guard/admin/";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    secret_sha256: String,
    #[serde(default = "default_admin_prefix")]
    path_prefix: String,
}

fn default_admin_prefix() -> String {
    DEFAULT_ADMIN_PREFIX.to_string()
}

pub(super) fn parse_admin(raw: RawAdmin) -> Result<AdminConfig, ConfigError> {
    let Some(secret_sha256) = parse_digest_hex(&raw.secret_sha256) else {
        return Err(err(
            "admin.secret_sha256",
            "must be 64 lowercase hex characters (the SHA-256 of the admin secret, never the secret)",
        ));
    };
    let p = &raw.path_prefix;
    let valid = p.len() > 2
        && p.starts_with('/')
        && p.ends_with('/')
        && !p.contains("//")
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
    if !valid {
        return Err(err(
            "admin.path_prefix",
            "must be a path like /rag-guard/admin/ (starts and ends with '/', letters, digits, '-', '_', '.')",
        ));
    }
    Ok(AdminConfig {
        secret_sha256,
        path_prefix: raw.path_prefix,
    })
}
