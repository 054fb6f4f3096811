//! Applies a `SyncResponse`: each revocation record of a configured key
//! that is newer than the key's own last change (`changed_ms`) replaces the
//! key's runtime revocation state: revoked (by the admin API or by leak
//! detection, on any replica) or restored (which also empties the key's
//! address window, as a local restore does). Records of names this replica
//! does not have are ignored.

use crate::auth::leak_detection::AddressWindow;
use crate::cluster::sync_wire::{Change, SyncResponse, BY_LEAK_DETECTION};
use crate::config::Config;
use crate::key_state::{self, ChangeError, Revocation, RevokedBy};
use crate::shared_store::SharedStore;

#[derive(Debug, Clone, PartialEq, Eq)]
/// A change of a key's state (revoked or not) this replica took from the
/// cluster.
pub struct Adopted<'c> {
    pub name: &'c str,
    pub change: Change,
}

/// What applying an answer did.
#[derive(Debug, Default)]
pub struct Applied<'c> {
    pub adopted: Vec<Adopted<'c>>,
    /// Records that could not be written (contention, a missing entry):
    /// the version is then not advanced, so they come again.
    pub failed: usize,
}

pub fn apply<'c>(
    config: &'c Config,
    store: &dyn SharedStore,
    answer: &SyncResponse,
) -> Applied<'c> {
    let mut applied = Applied::default();
    for (name, change) in &answer.revocations {
        let Some(entry) = config.keys.iter().find(|k| &k.name == name) else {
            continue;
        };
        let mut flipped = false;
        let result = key_state::update(store, &entry.sha256, |s| {
            if change.changed_ms <= s.changed_ms {
                return false;
            }
            flipped = s.revoked.is_some() != change.revoked;
            s.changed_ms = change.changed_ms;
            if change.revoked {
                let by = if change.by == BY_LEAK_DETECTION {
                    RevokedBy::LeakDetection
                } else {
                    RevokedBy::Admin
                };
                s.revoked = Some(Revocation {
                    by,
                    at_secs: change.at_secs,
                });
            } else {
                s.revoked = None;
                s.addresses = AddressWindow::default();
            }
            true
        });
        match result {
            // Only a change of state is news (a newer revocation of a key
            // revoked here too just takes the newer time).
            Ok((_, true)) if flipped => applied.adopted.push(Adopted {
                name: &entry.name,
                change: *change,
            }),
            Ok(_) => {}
            Err(ChangeError::NoEntry | ChangeError::Contention | ChangeError::Store(_)) => {
                applied.failed += 1
            }
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::sync_wire::BY_ADMIN;
    use crate::config::parse;
    use crate::key_state::{ensure_entries, read, revoke};
    use crate::shared_store::MemoryStore;
    use crate::sync::lease::{self, Lease};
    use crate::sync::report::build;

    fn config() -> Config {
        let d = crate::auth::digest::sha256_hex(b"k1");
        let e = crate::auth::digest::sha256_hex(b"k2");
        let text = format!(
            r#"{{"keys": [{{"name": "a", "sha256": "{d}"}}, {{"name": "b", "sha256": "{e}"}}],
                "cluster": {{"service": "rls"}}}}"#
        );
        parse(text.as_bytes()).unwrap()
    }

    fn rec(name: &str, revoked: bool, changed_ms: u64) -> (String, Change) {
        (
            name.to_string(),
            Change {
                revoked,
                by: BY_ADMIN,
                at_secs: changed_ms / 1000,
                changed_ms,
            },
        )
    }

    #[test]
    fn the_latest_change_wins_on_both_sides() {
        let config = config();
        let store = MemoryStore::new();
        let digests: Vec<_> = config.keys.iter().map(|k| k.sha256).collect();
        ensure_entries(&store, digests.iter()).unwrap();
        let a = config.keys.iter().find(|k| k.name == "a").unwrap();
        lease::open(&store, [7; 8]).unwrap();
        let lease = Lease {
            replica: "r".into(),
            since: 0,
            epoch: 0,
            acked_ms: 0,
            started_ms: 0,
        };
        // Nothing happened yet: nothing to report.
        let req = build(&config, "rg", &lease, &store, 100).unwrap();
        assert!(req.keys.is_empty());
        // A local revocation is reported with its time.
        revoke(&store, &a.sha256, RevokedBy::Admin, 50_000).unwrap();
        let req = build(&config, "rg", &lease, &store, 100).unwrap();
        assert_eq!(req.keys.len(), 1);
        assert_eq!(req.keys[0].name, "a");
        let change = req.keys[0].change.unwrap();
        assert!(change.revoked);
        assert_eq!(change.changed_ms, 50_000);
        // An older cluster record (a restore before it) does not undo it ...
        let old = SyncResponse {
            version: 1,
            epoch: 1,
            revocations: vec![rec("a", false, 40_000), rec("zz", true, 1)],
            leaks: vec![],
        };
        assert!(apply(&config, &store, &old).adopted.is_empty());
        assert!(read(&store, &a.sha256).unwrap().unwrap().revoked.is_some());
        // ... a newer restore does, and is reported from then on.
        let newer = SyncResponse {
            version: 2,
            epoch: 1,
            revocations: vec![rec("a", false, 60_000)],
            leaks: vec![],
        };
        let applied = apply(&config, &store, &newer);
        assert_eq!(applied.adopted.len(), 1);
        let state = read(&store, &a.sha256).unwrap().unwrap();
        assert_eq!((state.revoked, state.changed_ms), (None, 60_000));
        let req = build(&config, "rg", &lease, &store, 100).unwrap();
        assert!(!req.keys[0].change.unwrap().revoked);
        // Applying the same answer twice changes nothing.
        assert!(apply(&config, &store, &newer).adopted.is_empty());
        // A cluster revocation by leak detection keeps its cause.
        let leak = SyncResponse {
            version: 3,
            epoch: 1,
            revocations: vec![(
                "b".to_string(),
                Change {
                    revoked: true,
                    by: BY_LEAK_DETECTION,
                    at_secs: 70,
                    changed_ms: 70_000,
                },
            )],
            leaks: vec![],
        };
        apply(&config, &store, &leak);
        let b = config.keys.iter().find(|k| k.name == "b").unwrap();
        let r = read(&store, &b.sha256).unwrap().unwrap().revoked.unwrap();
        assert_eq!((r.by, r.at_secs), (RevokedBy::LeakDetection, 70));
        // A newer revocation of a key revoked here too is not news.
        let again = SyncResponse {
            version: 4,
            epoch: 1,
            revocations: vec![rec("b", true, 80_000)],
            leaks: vec![],
        };
        assert!(apply(&config, &store, &again).adopted.is_empty());
        assert_eq!(read(&store, &b.sha256).unwrap().unwrap().changed_ms, 80_000);
    }

    #[test]
    fn reports_leave_out_what_the_service_already_has() {
        let config = config();
        let store = MemoryStore::new();
        let digests: Vec<_> = config.keys.iter().map(|k| k.sha256).collect();
        ensure_entries(&store, digests.iter()).unwrap();
        let a = config.keys.iter().find(|k| k.name == "a").unwrap();
        revoke(&store, &a.sha256, RevokedBy::Admin, 50_000).unwrap();
        let lease = |acked_ms| Lease {
            replica: "r".into(),
            since: 0,
            epoch: 0,
            acked_ms,
            started_ms: 0,
        };
        // Acknowledged long after the change: not sent again.
        let l = lease(100_000);
        assert!(build(&config, "rg", &l, &store, 100)
            .unwrap()
            .keys
            .is_empty());
        // Within the margin, or nothing acknowledged yet: sent.
        let l = lease(51_000);
        assert_eq!(build(&config, "rg", &l, &store, 100).unwrap().keys.len(), 1);
        let l = lease(0);
        assert_eq!(build(&config, "rg", &l, &store, 100).unwrap().keys.len(), 1);
    }
}
