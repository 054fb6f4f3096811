//! rag-guard: an API-protection filter for RAG services, loaded by Envoy as a
//! proxy-wasm module.
//!
//! The decisions live in host-independent modules, unit-tested natively;
//! `filter` (built only for wasm32) is the thin proxy-wasm adapter that moves
//! data between Envoy and them.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin_api;
pub mod admission;
pub mod body_inspection;
pub mod client_address;
pub mod config;
pub mod digest;
pub mod events;
pub mod failed_auth;
pub mod host_allowlist;
pub mod injection_rules;
pub mod json_strict;
pub mod key_state;
pub mod key_table;
pub mod leak_detection;
pub mod public_paths;
pub mod rate_limit_headers;
pub mod rate_limiter;
pub mod response_headers;
pub mod shared_store;
pub mod text_normalization;
pub mod token_bucket;
pub mod usage;

#[cfg(target_arch = "wasm32")]
mod filter;
