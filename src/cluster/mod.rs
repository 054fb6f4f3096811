//! Cluster mode's protocol: what a replica (one Envoy) says to the cluster
//! service and reads back. Pure data and wire formats; no shared data, no
//! configuration beyond its own section. Peers of `limits`; depends on
//! nothing but std.
//!
//! - [`settings`]: the `cluster` configuration section as the filter uses it.
//! - [`rls`]: Envoy's rate limit service messages (per-request limits).
//! - [`sync_wire`]: rag-guard's own `rag_guard.cluster.v1.Cluster` messages
//!   (revocations, leak-detection addresses and usage, exchanged by a timer).
//! - [`protobuf`]: the wire-format pieces both use.

pub(crate) mod protobuf;
pub mod rls;
pub mod settings;
pub mod sync_wire;
