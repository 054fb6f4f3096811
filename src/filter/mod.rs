//! The proxy-wasm adapter: reads what Envoy gives, asks the pure modules,
//! applies their verdict. No decisions are made here, and no code outside
//! this folder calls the host (`scripts/check_layers.py` checks it).
//!
//! `root` applies a configuration and ticks; `request` runs the phases of
//! one request (`pending` carries its state into the body phase); `reply`
//! sends the filter's own answers; `record` writes events and counts
//! metrics; `usage` holds this worker's usage counts; `host` wraps the host
//! calls so they never panic and implements `SharedStore` on shared data;
//! `metrics` defines and increments the Envoy metrics; `held` carries a
//! request that waits for the cluster service, `sync` makes the timer's
//! cluster sync call and applies its answer.

mod active;
#[cfg(test)]
mod fake_host;
mod held;
mod host;
mod metrics;
mod pending;
mod phase_timing;
mod record;
mod reply;
mod request;
mod root;
mod sync;
mod usage;

#[cfg(test)]
mod tests;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(root::RootFilter {
        active: None,
        sync_call: None,
        sync_failing: false,
    }) });
}}
