//! Cluster sync: what one replica (one Envoy process) tells the cluster
//! service every [`SYNC_INTERVAL_MS`](crate::cluster::settings::SYNC_INTERVAL_MS),
//! and what it applies from the answer, so that revocations, leak detection
//! and usage hold across replicas. Pure logic over a [`SharedStore`] and the
//! configuration; the adapter runs it on its timer and makes the call.
//!
//! - [`lease`]: one sync per process and interval, whichever thread's timer
//!   fires first; the process's replica id and the revocation version it has.
//! - [`report`]: the `SyncRequest`: per configured key, its latest
//!   revocation change, the addresses of its window and its usage totals.
//! - [`apply`]: the answer's revocations (last change wins) written into
//!   the keys' entries.
//!
//! Depends on `cluster`, `config`, `key_state`, `auth`, `ops` (usage) and
//! `shared_store`.
//!
//! [`SharedStore`]: crate::shared_store::SharedStore

pub mod apply;
pub mod lease;
pub mod report;
