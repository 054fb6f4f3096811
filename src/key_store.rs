//! API key records in shared data: how they are laid out, published at
//! configuration time and looked up per request.
//!
//! Layout (every key under the `rag-guard/v1/` prefix):
//! - `rag-guard/v1/key/<sha256 hex>`: one record per configured key, so a
//!   lookup is exactly one host call and copies one small value;
//! - `rag-guard/v1/key-index`: the digests published by the current
//!   configuration, one per line, read only when a configuration is applied.
//!
//! Shared data has no delete, so a key removed from the configuration keeps
//! its shared-data entry, emptied (a tombstone that lookups treat as
//! unknown). The store therefore holds one entry per digest ever configured
//! in this Envoy process plus the index: bounded by the configurations the
//! operator writes, never by traffic. Lookups of unknown digests create
//! nothing.

use crate::config::KeyEntry;
use crate::shared_store::{SharedStore, StoreError};

pub const KEY_PREFIX: &str = "rag-guard/v1/key/";
pub const INDEX_KEY: &str = "rag-guard/v1/key-index";

/// What the filter knows about a key, as stored in shared data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub name: String,
    pub tier: String,
    pub expires_at: Option<u64>,
    pub enabled: bool,
}

impl KeyRecord {
    fn from_entry(e: &KeyEntry) -> Self {
        KeyRecord {
            name: e.name.clone(),
            tier: e.tier.clone(),
            expires_at: e.expires_at,
            enabled: e.enabled,
        }
    }

    /// `1|<enabled 0/1>|<expires unix seconds or ->|<tier>|<name>`. Names and
    /// tiers cannot contain `|` (see `config::is_plain_name`).
    pub fn encode(&self) -> Vec<u8> {
        let expires = self
            .expires_at
            .map_or_else(|| "-".to_string(), |t| t.to_string());
        format!(
            "1|{}|{}|{}|{}",
            u8::from(self.enabled),
            expires,
            self.tier,
            self.name
        )
        .into_bytes()
    }

    /// Decodes a record; None for a tombstone or anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(5, '|');
        if parts.next()? != "1" {
            return None;
        }
        let enabled = match parts.next()? {
            "1" => true,
            "0" => false,
            _ => return None,
        };
        let expires_at = match parts.next()? {
            "-" => None,
            t => Some(t.parse().ok()?),
        };
        let tier = parts.next()?.to_string();
        let name = parts.next()?.to_string();
        if tier.is_empty() || name.is_empty() {
            return None;
        }
        Some(KeyRecord {
            name,
            tier,
            expires_at,
            enabled,
        })
    }
}

fn record_key(digest_hex: &str) -> String {
    format!("{KEY_PREFIX}{digest_hex}")
}

/// Writes the records of `keys` and empties the records of keys that the
/// previous configuration had and this one dropped. Idempotent: every worker
/// applies the same configuration, and unchanged records are not rewritten.
/// Touches nothing else in shared data (rate-limit state and the like survive
/// a reload).
pub fn publish(store: &dyn SharedStore, keys: &[KeyEntry]) -> Result<(), StoreError> {
    for entry in keys {
        let value = KeyRecord::from_entry(entry).encode();
        let key = record_key(&entry.sha256);
        let current = store.get(&key)?;
        if current.as_ref().map(|v| v.value.as_slice()) != Some(value.as_slice()) {
            store.set(&key, &value, None)?;
        }
    }

    let previous = store.get(INDEX_KEY)?.map(|v| v.value).unwrap_or_default();
    let previous = String::from_utf8_lossy(&previous);
    for old in previous.lines() {
        if !keys.iter().any(|k| k.sha256 == old) {
            let key = record_key(old);
            if store.get(&key)?.is_some_and(|v| !v.value.is_empty()) {
                store.set(&key, b"", None)?;
            }
        }
    }

    let index: Vec<&str> = keys.iter().map(|k| k.sha256.as_str()).collect();
    let index = index.join("\n");
    if previous != index {
        store.set(INDEX_KEY, index.as_bytes(), None)?;
    }
    Ok(())
}

/// Looks up a digest: one `get`. Unknown, removed or unreadable records are
/// `None` (the request is refused as an invalid key).
pub fn lookup(store: &dyn SharedStore, digest_hex: &str) -> Result<Option<KeyRecord>, StoreError> {
    Ok(store
        .get(&record_key(digest_hex))?
        .and_then(|v| KeyRecord::decode(&v.value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_hex;
    use crate::shared_store::MemoryStore;

    fn entry(name: &str, secret: &str) -> KeyEntry {
        KeyEntry {
            name: name.into(),
            sha256: sha256_hex(secret.as_bytes()),
            tier: "free".into(),
            expires_at: Some(1_900_000_000),
            enabled: true,
        }
    }

    #[test]
    fn record_round_trips() {
        let r = KeyRecord {
            name: "client-a".into(),
            tier: "pro".into(),
            expires_at: None,
            enabled: false,
        };
        assert_eq!(KeyRecord::decode(&r.encode()), Some(r.clone()));
        let r2 = KeyRecord {
            expires_at: Some(5),
            enabled: true,
            ..r
        };
        assert_eq!(KeyRecord::decode(&r2.encode()), Some(r2));
    }

    #[test]
    fn garbage_decodes_to_none() {
        for bad in [
            &b""[..],
            b"2|1|-|t|n",
            b"1|x|-|t|n",
            b"1|1|soon|t|n",
            b"1|1|-||n",
            b"1|1|-|t",
            b"\xff",
        ] {
            assert_eq!(KeyRecord::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn publish_then_lookup() {
        let store = MemoryStore::new();
        publish(&store, &[entry("a", "ka"), entry("b", "kb")]).unwrap();
        let got = lookup(&store, &sha256_hex(b"ka")).unwrap().unwrap();
        assert_eq!(got.name, "a");
        assert_eq!(lookup(&store, &sha256_hex(b"nope")).unwrap(), None);
        // Lookups of unknown digests create nothing: 2 records + the index.
        assert_eq!(store.key_count(), 3);
    }

    #[test]
    fn removed_keys_stop_working_and_memory_stays_bounded() {
        let store = MemoryStore::new();
        publish(&store, &[entry("a", "ka"), entry("b", "kb")]).unwrap();
        publish(&store, &[entry("b", "kb")]).unwrap();
        assert_eq!(lookup(&store, &sha256_hex(b"ka")).unwrap(), None);
        assert!(lookup(&store, &sha256_hex(b"kb")).unwrap().is_some());
        // Re-adding and re-publishing many times reuses the same entries.
        for _ in 0..10 {
            publish(&store, &[entry("a", "ka"), entry("b", "kb")]).unwrap();
            publish(&store, &[entry("b", "kb")]).unwrap();
        }
        assert_eq!(store.key_count(), 3);
    }

    #[test]
    fn republishing_the_same_config_writes_nothing() {
        let store = MemoryStore::new();
        let keys = [entry("a", "ka")];
        publish(&store, &keys).unwrap();
        let before = store
            .get(&record_key(&keys[0].sha256))
            .unwrap()
            .unwrap()
            .cas;
        publish(&store, &keys).unwrap();
        let after = store
            .get(&record_key(&keys[0].sha256))
            .unwrap()
            .unwrap()
            .cas;
        assert_eq!(before, after);
    }

    #[test]
    fn publishing_leaves_other_state_alone() {
        let store = MemoryStore::new();
        store.set("rag-guard/v1/bucket/a", b"state", None).unwrap();
        publish(&store, &[entry("a", "ka")]).unwrap();
        publish(&store, &[]).unwrap();
        assert_eq!(
            store.get("rag-guard/v1/bucket/a").unwrap().unwrap().value,
            b"state"
        );
    }

    #[test]
    fn concurrent_publishers_agree() {
        let store = std::sync::Arc::new(MemoryStore::new());
        let keys: Vec<KeyEntry> = (0..50)
            .map(|i| entry(&format!("k{i}"), &format!("s{i}")))
            .collect();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (store, keys) = (store.clone(), keys.clone());
                std::thread::spawn(move || publish(store.as_ref(), &keys).unwrap())
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        for k in &keys {
            assert_eq!(
                lookup(store.as_ref(), &k.sha256).unwrap().unwrap().name,
                k.name
            );
        }
        assert_eq!(store.key_count(), 51);
    }
}
