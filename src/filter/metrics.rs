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
use crate::body_inspection::REJECTION_REASONS;
use crate::injection_rules::Category;

pub struct Metrics {
    by_outcome: [u32; Outcome::ALL.len()],
    /// `rag_guard.body.rejected.<reason>`
    body_rejected: Vec<u32>,
    /// `rag_guard.body.blocked.<category>` and `rag_guard.body.flagged.<category>`
    blocked: Vec<u32>,
    flagged: Vec<u32>,
}

impl Metrics {
    pub fn define() -> Result<Self, Status> {
        let mut by_outcome = [0; Outcome::ALL.len()];
        for (slot, outcome) in by_outcome.iter_mut().zip(Outcome::ALL) {
            let name = format!("rag_guard.requests.{}", outcome.as_str());
            *slot = hostcalls::define_metric(MetricType::Counter, &name)?;
        }
        let define = |prefix: &str, names: &mut dyn Iterator<Item = &'static str>| {
            names
                .map(|n| hostcalls::define_metric(MetricType::Counter, &format!("{prefix}.{n}")))
                .collect::<Result<Vec<u32>, Status>>()
        };
        Ok(Metrics {
            by_outcome,
            body_rejected: define(
                "rag_guard.body.rejected",
                &mut REJECTION_REASONS.iter().copied(),
            )?,
            blocked: define(
                "rag_guard.body.blocked",
                &mut Category::ALL.iter().map(|c| c.as_str()),
            )?,
            flagged: define(
                "rag_guard.body.flagged",
                &mut Category::ALL.iter().map(|c| c.as_str()),
            )?,
        })
    }

    pub fn count_rejection(&self, reason: &str, category: Option<Category>) {
        if let Some(i) = REJECTION_REASONS.iter().position(|r| *r == reason) {
            increment(self.body_rejected.get(i));
        }
        if let Some(c) = category {
            increment(
                Category::ALL
                    .iter()
                    .position(|x| *x == c)
                    .and_then(|i| self.blocked.get(i)),
            );
        }
    }

    pub fn count_flag(&self, category: Category) {
        increment(
            Category::ALL
                .iter()
                .position(|x| *x == category)
                .and_then(|i| self.flagged.get(i)),
        );
    }

    pub fn count(&self, outcome: Outcome) {
        if let Some(pos) = Outcome::ALL.iter().position(|o| *o == outcome) {
            if let Some(id) = self.by_outcome.get(pos) {
                let _ = hostcalls::increment_metric(*id, 1);
            }
        }
    }
}

fn increment(id: Option<&u32>) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(*id, 1);
    }
}
