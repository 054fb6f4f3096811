//! A configuration that was accepted, with what requests need from it.

use crate::config::Config;

use super::metrics::Metrics;

/// A configuration that was accepted, with what it needs at request time.
pub(super) struct Active {
    pub(super) config: Config,
    pub(super) metrics: Metrics,
    /// Whether Envoy prints info lines (success events are skipped if not).
    pub(super) info_enabled: bool,
}
