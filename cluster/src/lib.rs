//! rag-guard-cluster: serves Envoy's rate limit service API
//! (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`) for the
//! descriptors rag-guard sends, with every counter in Redis, so that every
//! Envoy replica shares one budget per key.
//!
//! It also serves rag-guard's own `rag_guard.cluster.v1.Cluster` API on the
//! same listener: each replica's sync (revocations, leak-detection
//! addresses, usage) and the cluster's usage totals.
//!
//! `windows` turns a request into fixed windows (pure, tested natively);
//! `store` checks and spends all of a request's windows in one server-side
//! script; `service` is the rate limit gRPC adapter. `proto` holds the
//! cluster API's messages, `sync` turns them into script arguments and back
//! (pure), `api` is their gRPC adapter. No state lives in this process: a
//! restart loses nothing.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api;
pub mod proto;
pub mod service;
pub mod store;
pub mod sync;
pub mod windows;
