//! The configured API keys, indexed by digest.
//!
//! Each root context builds its table from its own configuration and looks
//! keys up in it without a host call. This is deliberate: Envoy caches
//! plugin root contexts by configuration, so when an operator reverts a
//! listener to an earlier configuration, Envoy reuses the earlier root
//! contexts without calling `on_configure` again. A key table published to
//! shared data at configure time would then keep the newer configuration's
//! keys (a removed key would stay accepted, or a restored one refused); the
//! integration test `test_reload.py` reproduces this. Shared data holds what
//! must change at runtime and be seen by every worker (rate-limit state,
//! runtime revocations), keyed by these digests.
//!
//! Lookups compare SHA-256 digests, not keys, so their timing reveals nothing
//! useful about a key.

use std::collections::{HashMap, HashSet};

use crate::auth::digest::Digest;
use crate::limits::token_bucket::Limits;

/// One configured API key, identified only by its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub name: String,
    /// SHA-256 of the key (configured as lowercase hex).
    pub sha256: Digest,
    pub tier: String,
    /// The limits of `tier`, resolved when the configuration is parsed.
    pub limits: Limits,
    /// Unix seconds after which the key is refused; None = never expires.
    pub expires_at: Option<u64>,
    pub enabled: bool,
    /// Digests of the keys this one replaced (`rag-guard keys rotate`),
    /// each accepted as this key until its end of grace.
    pub previous: Vec<Previous>,
    /// Roles for role-based access; None: the configured default roles.
    pub roles: Option<Vec<String>>,
}

/// A replaced key of a client: accepted as the client's current key (same
/// name, tier, buckets, usage and revocation) until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Previous {
    pub sha256: Digest,
    /// Unix seconds from which the replaced key is refused.
    pub until: u64,
}

#[derive(Debug, Clone, Default)]
pub struct KeyTable {
    by_digest: HashMap<Digest, KeyEntry>,
    /// Replaced digest -> (its client's current digest, end of grace).
    previous: HashMap<Digest, (Digest, u64)>,
    names: HashSet<String>,
}

impl KeyTable {
    /// Builds the table; entries and their previous keys must have
    /// distinct digests (the config parser guarantees it).
    pub fn new(entries: Vec<KeyEntry>) -> Self {
        let previous = entries
            .iter()
            .flat_map(|e| e.previous.iter().map(|p| (p.sha256, (e.sha256, p.until))))
            .collect();
        KeyTable {
            names: entries.iter().map(|e| e.name.clone()).collect(),
            by_digest: entries.into_iter().map(|e| (e.sha256, e)).collect(),
            previous,
        }
    }

    /// The key whose current digest is `digest`.
    pub fn get(&self, digest: &Digest) -> Option<&KeyEntry> {
        self.by_digest.get(digest)
    }

    /// The key a presented digest belongs to: its current one, or one it
    /// replaced, with that one's end of grace.
    pub fn lookup(&self, digest: &Digest) -> Option<(&KeyEntry, Option<u64>)> {
        if let Some(entry) = self.by_digest.get(digest) {
            return Some((entry, None));
        }
        let (current, until) = self.previous.get(digest)?;
        self.by_digest.get(current).map(|e| (e, Some(*until)))
    }

    /// Whether a configured key has this name.
    pub fn has_name(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &KeyEntry> {
        self.by_digest.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::digest::sha256;

    #[test]
    fn a_replaced_key_finds_its_client_with_its_grace() {
        let mut rotated = entry("acme", "new");
        rotated.previous.push(Previous {
            sha256: sha256(b"old"),
            until: 1000,
        });
        let t = KeyTable::new(vec![rotated, entry("b", "kb")]);
        let (e, until) = t.lookup(&sha256(b"new")).unwrap();
        assert_eq!((e.name.as_str(), until), ("acme", None));
        let (e, until) = t.lookup(&sha256(b"old")).unwrap();
        assert_eq!((e.name.as_str(), until), ("acme", Some(1000)));
        assert_eq!(e.sha256, sha256(b"new"));
        // `get` is by current digest only.
        assert!(t.get(&sha256(b"old")).is_none());
        assert!(t.lookup(&sha256(b"nope")).is_none());
    }

    fn entry(name: &str, secret: &str) -> KeyEntry {
        KeyEntry {
            name: name.into(),
            sha256: sha256(secret.as_bytes()),
            tier: "free".into(),
            limits: crate::config::default_tiers()["free"],
            expires_at: None,
            enabled: true,
            previous: Vec::new(),
            roles: None,
        }
    }

    #[test]
    fn finds_by_digest_only() {
        let t = KeyTable::new(vec![entry("a", "ka"), entry("b", "kb")]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&sha256(b"ka")).map(|e| e.name.as_str()), Some("a"));
        assert!(t.get(&sha256(b"a")).is_none());
        assert!(t.get(&sha256(b"")).is_none());
        assert!(KeyTable::default().is_empty());
    }
}
