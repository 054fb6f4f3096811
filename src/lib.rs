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

pub mod admission;
pub mod client_address;
pub mod config;
pub mod digest;
pub mod events;
pub mod host_allowlist;
pub mod key_table;
pub mod public_paths;
pub mod response_headers;
pub mod shared_store;

#[cfg(target_arch = "wasm32")]
mod filter;
