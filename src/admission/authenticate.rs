//! API key authentication alone: which configured key the request
//! presents, and whether it may be used now. No shared data.

use crate::auth::digest::{digest_id, sha256, Digest};
use crate::auth::keys::KeyEntry;
use crate::config::Config;

use super::outcome::Outcome;

/// Keys longer than this are refused without hashing. Generated keys are 47
/// bytes; imported keys are far below this.
pub const MAX_KEY_BYTES: usize = 1024;

/// API key authentication alone: the outcome, the configured key if the
/// digest is known, and the digest's short id.
pub(super) fn authenticate<'c>(
    config: &'c Config,
    api_keys: &[&[u8]],
    now_secs: u64,
) -> (Outcome, Option<&'c KeyEntry>, Option<String>) {
    let key = match api_keys {
        [] => return (Outcome::MissingKey, None, None),
        [one] => *one,
        _ => return (Outcome::MultipleKeys, None, None),
    };
    if key.is_empty() {
        return (Outcome::MissingKey, None, None);
    }
    if key.len() > MAX_KEY_BYTES {
        return (Outcome::InvalidKey, None, None);
    }
    let digest: Digest = sha256(key);
    // A key replaced by `rag-guard keys rotate` is its client's key until
    // its grace ends; the id names the digest presented, so events show
    // which of the two a client still uses.
    let found = config.keys.lookup(&digest);
    let outcome = match found {
        None => Outcome::InvalidKey,
        Some((r, _)) if !r.enabled => Outcome::DisabledKey,
        Some((_, Some(until))) if now_secs >= until => Outcome::ExpiredKey,
        Some((r, _)) if r.expires_at.is_some_and(|t| now_secs >= t) => Outcome::ExpiredKey,
        Some(_) => Outcome::Allowed,
    };
    (outcome, found.map(|(r, _)| r), Some(digest_id(&digest)))
}
