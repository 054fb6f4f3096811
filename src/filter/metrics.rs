//! Counters, defined once per root context (each `define_metric` call
//! allocates a new id, so per-request definition would leak ids).
//!
//! Names: `rag_guard.requests.<outcome>`; Envoy shows them as
//! `wasmcustom.rag_guard.requests.<outcome>` in `/stats`, and the shipped
//! `stats_tags` turn them into `rag_guard_requests{outcome="..."}` in
//! `/stats/prometheus`. Envoy sums them across workers.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MetricType, Status};

use crate::admission::Outcome;

pub struct Metrics {
    by_outcome: [u32; Outcome::ALL.len()],
}

impl Metrics {
    pub fn define() -> Result<Self, Status> {
        let mut by_outcome = [0; Outcome::ALL.len()];
        for (slot, outcome) in by_outcome.iter_mut().zip(Outcome::ALL) {
            let name = format!("rag_guard.requests.{}", outcome.as_str());
            *slot = hostcalls::define_metric(MetricType::Counter, &name)?;
        }
        Ok(Metrics { by_outcome })
    }

    pub fn count(&self, outcome: Outcome) {
        if let Some(pos) = Outcome::ALL.iter().position(|o| *o == outcome) {
            if let Some(id) = self.by_outcome.get(pos) {
                let _ = hostcalls::increment_metric(*id, 1);
            }
        }
    }
}
