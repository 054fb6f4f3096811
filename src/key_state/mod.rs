//! The runtime state of one configured key, shared by every worker: its
//! token buckets, a runtime revocation, and its leak-detection address
//! window, in one shared-data entry `rag-guard/v2/key/<sha256 hex>`
//! (`entry::ENTRY_LEN` = 307 bytes).
//!
//! One entry per key means one `get` and at most one CAS `set` per request
//! cover the limits, the revocation check and the address count together;
//! a revocation written by the admin API or by leak detection is seen by the
//! next request on any worker.
//!
//! Entries are created when a configuration is applied (`entry::ensure_entries`,
//! on the main thread before workers serve it), never on the request path,
//! because Envoy ignores the CAS when it creates a key. Entries are never
//! reset by a later configuration, so spent tokens and runtime revocations
//! survive listener and VM reloads (not a process restart: shared data lives
//! in the Envoy process). Shared data has no delete: a key removed from the
//! configuration keeps its entry, so the entry count is bounded by the keys
//! ever configured in the process.
//!
//! Layout: version (1) | buckets (`token_bucket::STATE_LEN` = 33) |
//! revocation kind (1) | revoked at, Unix seconds (8) | address window
//! (`leak_detection::SLOTS` x 8) | last revocation change, Unix ms (8).

//!
//! `entry` holds the layout, `rate_limiter` the per-request spend (one CAS
//! for limits, revocation check and address count), `revocation` the admin
//! and leak-detection changes. Depends on `auth`, `limits` and
//! `shared_store`.

pub mod entry;
pub mod rate_limiter;
pub mod revocation;
pub mod subjects;

pub use entry::{ensure_entries, entry_key, read, KeyState, Revocation, RevokedBy, ENTRY_LEN};
pub use revocation::{restore, revoke, update, ChangeError};
