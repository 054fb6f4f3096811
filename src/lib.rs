//! rag-guard: an API-protection filter for RAG services, loaded by Envoy as a
//! proxy-wasm module.
//!
//! The decisions live in host-independent modules, unit-tested natively;
//! `filter` (built only for wasm32) is the thin proxy-wasm adapter that moves
//! data between Envoy and them. Layers, lowest first; a module may use the
//! layers below it, never one above (`scripts/check_layers.py` checks this):
//!
//! | layer | what lives there |
//! |---|---|
//! | [`http`], [`shared_store`] | vocabulary (replies, header names, paths, response header policy); the shared-data trait and its in-memory twin |
//! | [`limits`], [`inspection`], [`cluster`] | token-bucket arithmetic, rate-limit headers, route costs; body inspection: strict JSON, normalization, rules; cluster mode's settings and wire messages |
//! | [`auth`] | digests, the key table, host allowlist, public paths, client address, failed-auth table, leak-detection window |
//! | [`key_state`] | each key's shared-data entry (buckets, revocation, address window) and the one-CAS spend on it |
//! | [`config`] | parsing and validation of the plugin configuration into the types above |
//! | [`ops`] | admin API, usage bookkeeping, security events |
//! | [`admission`], [`sync`] | the decision for one request, from all of the above; what a replica reports to the cluster service and applies from its answer |
//! | `filter` | the proxy-wasm adapter: the only code that calls the host |
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admission;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod http;
pub mod inspection;
pub mod key_state;
pub mod limits;
pub mod ops;
pub mod shared_store;
pub mod sync;

// Natively only in unit tests, on a fake Envoy (`filter::fake_host`).
#[cfg(any(target_arch = "wasm32", test))]
mod filter;
