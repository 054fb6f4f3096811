//! The `cluster` section: the Envoy cluster of the cluster service, the
//! domain, the per-request deadline and the failure mode.

use serde::Deserialize;

use crate::cluster::settings::{ClusterSettings, FailureMode};

/// Longest per-request deadline (a request waits at most this long).
pub const MAX_TIMEOUT_MS: u32 = 5_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    service: String,
    #[serde(default = "default_domain")]
    domain: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u32,
    #[serde(default = "default_failure_mode")]
    failure_mode: String,
}

fn default_domain() -> String {
    "rag-guard".to_string()
}
fn default_timeout_ms() -> u32 {
    100
}
fn default_failure_mode() -> String {
    "deny".to_string()
}

fn plain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// An Envoy cluster name: printable ASCII without spaces (Istio's are like
/// `outbound|8081||rag-guard-cluster.rag-guard.svc.cluster.local`).
fn cluster_name(text: &str) -> bool {
    !text.is_empty() && text.len() <= 256 && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Validates the `cluster` section; errors name the field.
pub(super) fn parse_cluster(raw: RawCluster) -> Result<ClusterSettings, (String, String)> {
    let field = |f: &str| format!("cluster.{f}");
    if !cluster_name(&raw.service) {
        return Err((
            field("service"),
            "must name an Envoy cluster: 1-256 printable ASCII characters, no spaces".to_string(),
        ));
    }
    if !plain(&raw.domain) {
        return Err((
            field("domain"),
            "must be 1-128 of A-Z a-z 0-9 _ . -".to_string(),
        ));
    }
    if !(1..=MAX_TIMEOUT_MS).contains(&raw.timeout_ms) {
        return Err((field("timeout_ms"), format!("must be 1..={MAX_TIMEOUT_MS}")));
    }
    let failure_mode = match raw.failure_mode.as_str() {
        "deny" => FailureMode::Deny,
        "local" => FailureMode::Local,
        other => {
            return Err((
                field("failure_mode"),
                format!("{other:?} is not one of deny, local"),
            ))
        }
    };
    Ok(ClusterSettings {
        service: raw.service,
        domain: raw.domain,
        timeout_ms: raw.timeout_ms,
        failure_mode,
    })
}
