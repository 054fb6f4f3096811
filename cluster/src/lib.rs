//! rag-guard-cluster: serves Envoy's rate limit service API
//! (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`) for the
//! descriptors rag-guard sends, with every counter in Redis, so that every
//! Envoy replica shares one budget per key.
//!
//! `windows` turns a request into fixed windows (pure, tested natively);
//! `store` checks and spends all of a request's windows in one server-side
//! script; `service` is the gRPC adapter. No counting state lives in this
//! process: a restart loses nothing.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod service;
pub mod store;
pub mod windows;
