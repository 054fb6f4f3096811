//! The `cluster` section of the plugin configuration, validated (see
//! `config`): which Envoy cluster reaches the cluster service, the domain
//! its counters live under, how long a request may wait for it, and what a
//! request gets when it does not answer in time.

/// What a request gets when the cluster service cannot decide its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// 503 `Rate limiting temporarily unavailable`: nothing is admitted
    /// unchecked.
    Deny,
    /// This replica's own buckets decide, as without cluster mode (each
    /// replica then admits up to the full limit).
    Local,
}

impl FailureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::Deny => "deny",
            FailureMode::Local => "local",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Name of the Envoy cluster (HTTP/2) that reaches the service.
    pub service: String,
    /// Rate limit domain; also the namespace of revocations and usage.
    pub domain: String,
    /// Deadline of a per-request limit call.
    pub timeout_ms: u32,
    pub failure_mode: FailureMode,
}

/// Most configured keys in cluster mode (the service takes at most this
/// many key reports per sync).
pub const MAX_KEYS: usize = 4096;

/// gRPC service and methods of the cluster service's own API.
pub const SYNC_SERVICE: &str = "rag_guard.cluster.v1.Cluster";
pub const SYNC_METHOD: &str = "Sync";
pub const USAGE_METHOD: &str = "Usage";
/// Envoy's rate limit service.
pub const RLS_SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const RLS_METHOD: &str = "ShouldRateLimit";
/// How often a replica exchanges revocations, addresses and usage with the
/// service (and its deadline for that call).
pub const SYNC_INTERVAL_MS: u64 = 500;
pub const SYNC_TIMEOUT_MS: u64 = 1_000;
