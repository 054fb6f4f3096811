//! Envoy metrics. Fixed families are defined once per root context (each
//! `define_metric` call allocates a new id, so per-request definition would
//! leak ids). Per-key counters ([`KEY_DECISIONS`] and both leak actions, 7
//! per configured key) are defined up front too, so they exist at 0 and
//! Prometheus's `increase()` sees their first increment; their number is
//! bounded by the configured keys.
//!
//! Names (Envoy prefixes them with `wasmcustom.`; the shipped `stats_tags`
//! turn the `.<label>.<value>` pairs into Prometheus labels):
//!
//! | Envoy stat | Prometheus |
//! |---|---|
//! | `rag_guard.requests.decision.<d>.reason.<r>` | `rag_guard_requests{decision,reason}` |
//! | `rag_guard.key_requests.key.<k>.tier.<t>.decision.<d>` | `rag_guard_key_requests{key,tier,decision}` |
//! | `rag_guard.leak_detections.key.<k>.action.<a>` | `rag_guard_leak_detections{key,action}` |
//! | `rag_guard.key_expires_at_seconds.key.<k>` (gauge, `expires_at` in Unix seconds, 0: never) | `rag_guard_key_expires_at_seconds{key}` |
//! | `rag_guard.body_flagged.category.<c>` | `rag_guard_body_flagged{category}` |
//! | `rag_guard.cas_retries` | `rag_guard_cas_retries` |
//! | `rag_guard.events_suppressed` | `rag_guard_events_suppressed` (per-request event lines left out past `events.max_per_second`) |
//! | `rag_guard.scorer_vetoes` | `rag_guard_scorer_vetoes` (prompt-injection rule matches the scorer vetoed: the request passed) |
//! | `rag_guard.cluster.call_errors` | `rag_guard_cluster_call_errors` (per-request calls to the cluster service that got no usable answer) |
//! | `rag_guard.cluster.fallbacks` | `rag_guard_cluster_fallbacks` (requests decided by local buckets, `failure_mode: local`) |
//! | `rag_guard.cluster.syncs` / `rag_guard.cluster.sync_errors` | `rag_guard_cluster_syncs` / `rag_guard_cluster_sync_errors` |
//! | `rag_guard.cluster.adopted` | `rag_guard_cluster_adopted` (revocation changes taken from the cluster) |
//! | `rag_guard.inspection_duration_us` (histogram) | `rag_guard_inspection_duration_us_bucket{le}` |

use std::cell::RefCell;
use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MetricType, Status};

use crate::admission::Outcome;
use crate::auth::digest::Digest;
use crate::auth::keys::KeyEntry;
use crate::config::Config;
use crate::inspection::rules::Category;
use crate::inspection::verdict::{Rejection, REJECTION_REASONS};

/// The `decision` values of `rag_guard_key_requests`.
pub const KEY_DECISIONS: [&str; 5] = [
    "allowed",
    "rate_limited",
    "invalid_input",
    "revoked",
    "expired",
];

/// The per-key `decision` of a request that named a configured key.
pub fn key_decision(outcome: Outcome) -> Option<&'static str> {
    match outcome.decision() {
        "allowed" | "rate_limited" | "revoked" | "expired" => Some(outcome.decision()),
        _ => None,
    }
}

pub struct Metrics {
    by_outcome: [u32; Outcome::ALL.len()],
    /// `decision="invalid_input"`, one per reason (rejection reasons and
    /// categories).
    invalid_input: Vec<(&'static str, u32)>,
    flagged: Vec<u32>,
    cas_retries: u32,
    inspection_us: u32,
    /// Cluster mode: call errors, fallbacks, syncs, sync errors, adopted
    /// changes.
    cluster: [u32; 5],
    events_suppressed: u32,
    scorer_vetoes: u32,
    /// (key digest, decision or leak slot) -> id: a copyable key, so the
    /// per-request lookup allocates nothing.
    per_key: RefCell<HashMap<(Digest, &'static str), u32>>,
}

fn counter(name: &str) -> Result<u32, Status> {
    hostcalls::define_metric(MetricType::Counter, name)
}

impl Metrics {
    pub fn define(config: &Config) -> Result<Self, Status> {
        let mut by_outcome = [0; Outcome::ALL.len()];
        for (slot, outcome) in by_outcome.iter_mut().zip(Outcome::ALL) {
            *slot = counter(&request_name(outcome.decision(), outcome.reason()))?;
        }
        let mut reasons: Vec<&'static str> = REJECTION_REASONS.to_vec();
        reasons.extend(Category::ALL.iter().map(|c| c.as_str()));
        reasons.sort_unstable();
        reasons.dedup();
        let invalid_input = reasons
            .into_iter()
            .map(|r| Ok((r, counter(&request_name("invalid_input", r))?)))
            .collect::<Result<Vec<_>, Status>>()?;
        let flagged = Category::ALL
            .iter()
            .map(|c| counter(&format!("rag_guard.body_flagged.category.{}", c.as_str())))
            .collect::<Result<Vec<_>, Status>>()?;
        let mut per_key = HashMap::new();
        for key in config.keys.iter() {
            for decision in KEY_DECISIONS {
                let id = counter(&key_name(key, decision))?;
                per_key.insert((key.sha256, decision), id);
            }
            for action in ["revoke", "report"] {
                let id = counter(&leak_name(key, action))?;
                per_key.insert((key.sha256, leak_slot(action)), id);
            }
            // The key's expiry (0: never), for the alert on keys about to
            // expire. Set here, never per request; 0 also clears the value
            // an earlier configuration gave a key that no longer expires.
            let name = format!("rag_guard.key_expires_at_seconds.key.{}", key.name);
            let id = hostcalls::define_metric(MetricType::Gauge, &name)?;
            hostcalls::record_metric(id, key.expires_at.unwrap_or(0))?;
        }
        Ok(Metrics {
            by_outcome,
            invalid_input,
            flagged,
            cas_retries: counter("rag_guard.cas_retries")?,
            cluster: [
                counter("rag_guard.cluster.call_errors")?,
                counter("rag_guard.cluster.fallbacks")?,
                counter("rag_guard.cluster.syncs")?,
                counter("rag_guard.cluster.sync_errors")?,
                counter("rag_guard.cluster.adopted")?,
            ],
            events_suppressed: counter("rag_guard.events_suppressed")?,
            scorer_vetoes: counter("rag_guard.scorer_vetoes")?,
            inspection_us: hostcalls::define_metric(
                MetricType::Histogram,
                "rag_guard.inspection_duration_us",
            )?,
            per_key: RefCell::new(per_key),
        })
    }

    pub fn count(&self, outcome: Outcome) {
        if let Some(pos) = Outcome::ALL.iter().position(|o| *o == outcome) {
            increment(self.by_outcome.get(pos).copied(), 1);
        }
    }

    /// A body refused by inspection: `decision="invalid_input"` with the
    /// category as reason (or the rejection reason when it has none).
    pub fn count_rejection(&self, rejection: &Rejection) {
        let reason = rejection.category.map_or(rejection.reason, |c| c.as_str());
        let id = self
            .invalid_input
            .iter()
            .find(|(r, _)| *r == reason)
            .map(|(_, id)| *id);
        increment(id, 1);
    }

    pub fn count_flag(&self, category: Category) {
        let pos = Category::ALL.iter().position(|x| *x == category);
        increment(pos.and_then(|i| self.flagged.get(i)).copied(), 1);
    }

    /// A prompt-injection rule's match the scorer vetoed.
    pub fn count_veto(&self) {
        increment(Some(self.scorer_vetoes), 1);
    }

    pub fn count_cas_retries(&self, retries: u32) {
        if retries > 0 {
            increment(Some(self.cas_retries), u64::from(retries));
        }
    }

    pub fn count_suppressed_event(&self) {
        increment(Some(self.events_suppressed), 1);
    }

    pub fn count_cluster_error(&self) {
        increment(Some(self.cluster[0]), 1);
    }

    pub fn count_cluster_fallback(&self) {
        increment(Some(self.cluster[1]), 1);
    }

    pub fn count_sync(&self, ok: bool) {
        increment(Some(self.cluster[if ok { 2 } else { 3 }]), 1);
    }

    pub fn count_adopted(&self, n: usize) {
        if n > 0 {
            increment(Some(self.cluster[4]), n as u64);
        }
    }

    pub fn record_inspection_us(&self, micros: u64) {
        let _ = hostcalls::record_metric(self.inspection_us, micros);
    }

    /// `rag_guard_key_requests{key, tier, decision}`.
    pub fn count_key(&self, key: &KeyEntry, decision: &'static str) {
        self.count_lazy((key.sha256, decision), || key_name(key, decision));
    }

    /// `rag_guard_leak_detections{key, action}`.
    pub fn count_leak(&self, key: &KeyEntry, action: &'static str) {
        self.count_lazy((key.sha256, leak_slot(action)), || leak_name(key, action));
    }

    fn count_lazy(&self, slot: (Digest, &'static str), name: impl FnOnce() -> String) {
        let Ok(mut ids) = self.per_key.try_borrow_mut() else {
            return;
        };
        let id = match ids.get(&slot) {
            Some(id) => Some(*id),
            None => match counter(&name()) {
                Ok(id) => {
                    ids.insert(slot, id);
                    Some(id)
                }
                Err(_) => None,
            },
        };
        increment(id, 1);
    }
}

fn key_name(key: &KeyEntry, decision: &str) -> String {
    format!(
        "rag_guard.key_requests.key.{}.tier.{}.decision.{decision}",
        key.name, key.tier
    )
}

fn leak_name(key: &KeyEntry, action: &str) -> String {
    format!("rag_guard.leak_detections.key.{}.action.{action}", key.name)
}

/// The per-key map slot of a leak counter ("leak:" cannot clash with a
/// decision: decisions have no colon).
fn leak_slot(action: &str) -> &'static str {
    if action == "revoke" {
        "leak:revoke"
    } else {
        "leak:report"
    }
}

fn request_name(decision: &str, reason: &str) -> String {
    format!("rag_guard.requests.decision.{decision}.reason.{reason}")
}

fn increment(id: Option<u32>, by: u64) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
    }
}
