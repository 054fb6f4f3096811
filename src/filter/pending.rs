//! What the body phase of a request needs from its headers phase.

use crate::admission::Outcome;
use crate::auth::digest::Digest;
use crate::ops::events::SecurityEvent;

/// What the body phase needs from the headers phase.
pub(super) struct PendingBody {
    /// Index into the configuration's `body_inspection.routes`.
    pub(super) route: usize,
    /// Bytes buffered so far.
    pub(super) size: usize,
    pub(super) event: SecurityEvent,
    /// The authenticated key (for usage and per-key metrics) and the
    /// request's time.
    pub(super) key: Option<Digest>,
    /// The headers-phase outcome, counted when the body passes.
    pub(super) outcome: Outcome,
    pub(super) now_ns: u64,
}
