//! A configuration that was accepted, with what requests need from it.

use std::cell::RefCell;

use crate::auth::failed_auth::FailedAuthTable;
use crate::config::Config;
use crate::ops::event_budget::EventBudgets;

use super::metrics::Metrics;

/// A configuration that was accepted, with what it needs at request time.
pub(super) struct Active {
    pub(super) config: Config,
    /// The failed-auth table's hash key (read once per configuration).
    pub(super) auth_table: FailedAuthTable,
    pub(super) metrics: Metrics,
    /// Whether Envoy prints info lines (success events are skipped if not).
    pub(super) info_enabled: bool,
    /// This worker's budget of per-request event lines.
    pub(super) events: RefCell<EventBudgets>,
}
