//! The decision for one request, before it is routed, in this order:
//! host allowlist, the admin API, public paths, the failed-authentication
//! table of the client's address, API key authentication, then the key's
//! runtime state: revocation, leak detection and rate limits (or the
//! rate-limit status endpoint).
//!
//! Pure logic over the request's headers, the configuration and a
//! [`SharedStore`]; the proxy-wasm adapter gathers the inputs and applies the
//! [`Decision`]. Native tests run it against `MemoryStore`.

mod authenticate;
pub mod cluster_limits;
mod decision;
#[cfg(test)]
mod jwt_tests;
mod key_limits;
mod outcome;
mod roles;
mod subject_limits;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr};

use crate::auth::failed_auth::{self, FailedAuthTable, Seen};
use crate::auth::jwt;
use crate::config::Config;
use crate::ops::admin::{self, AdminRequest};
use crate::shared_store::SharedStore;

use authenticate::authenticate;
use roles::role_forbids;

pub use authenticate::MAX_KEY_BYTES;
pub use decision::{ClusterCheck, Decision, RequestView, Subject};
pub use outcome::Outcome;

/// The decisions that need neither the client's address, the clock nor
/// shared data: a rejected host, a method-override header, or a public
/// path. None: call [`decide`].
/// (The adapter asks this first and skips those host calls when it can.)
pub fn decide_early(config: &Config, req: &RequestView<'_>) -> Option<Decision<'static>> {
    if !config.allowed_hosts.allows(req.authority) {
        return Some(Decision::of(Outcome::HostRejected));
    }
    if req.method_override {
        return Some(Decision::of(Outcome::MethodOverride));
    }
    if admin::is_admin_path(config, req.path) {
        return None;
    }
    if config.public_paths.matches(req.path) {
        return Some(Decision::of(Outcome::Public));
    }
    None
}

/// Decides what to do with a request. `now_ns` is Unix nanoseconds.
pub fn decide<'c>(
    config: &'c Config,
    auth_table: &FailedAuthTable,
    req: &RequestView<'_>,
    store: &dyn SharedStore,
    now_ns: u64,
) -> Decision<'c> {
    let mut decision = decide_inner(config, auth_table, req, store, now_ns);
    // With JWT callers configured, a 401 names both schemes.
    if config.jwt.is_some() {
        if let Some(reply) = decision.reply.as_mut().filter(|r| r.status == 401) {
            for (name, value) in reply.headers.iter_mut() {
                if *name == "www-authenticate" {
                    *value = "APIKey, Bearer".to_string();
                }
            }
        }
    }
    decision
}

fn decide_inner<'c>(
    config: &'c Config,
    auth_table: &FailedAuthTable,
    req: &RequestView<'_>,
    store: &dyn SharedStore,
    now_ns: u64,
) -> Decision<'c> {
    if let Some(early) = decide_early(config, req) {
        return early;
    }

    // Addresses with too many recent failures get no further.
    let ip = req.client_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    // The set read here is where a failure of this request is counted.
    let seen = match auth_table.check(store, ip, config.failed_auth_per_minute, now_ns) {
        Ok((None, seen)) => seen,
        Ok((Some(secs), _)) => return blocked_decision(secs),
        Err(_) => return Decision::of(Outcome::Unavailable),
    };

    if admin::is_admin_path(config, req.path) {
        let admin_req = AdminRequest {
            method: req.method,
            path: req.path,
            secrets: req.admin_secrets,
            client_ip: req.client_ip,
            by_role: req.admin_secrets.is_empty() && admitted_by_role(config, req, store, now_ns),
        };
        let answer = admin::handle(config, &admin_req, store, now_ns);
        if answer.status.is_auth_failure() {
            if let Some(blocked) = record_failure(config, auth_table, store, seen, now_ns) {
                return blocked;
            }
        }
        // The console's pages keep their own CSP through the response phase.
        let response_headers = answer
            .reply
            .headers
            .iter()
            .filter(|(n, _)| *n == "content-security-policy")
            .cloned()
            .collect();
        return Decision {
            response_headers,
            reply: Some(answer.reply),
            events: answer.events,
            cluster_usage: answer.cluster_usage,
            ..Decision::of(Outcome::Admin(answer.status))
        };
    }

    let (outcome, key, key_id) = match verified(config, req) {
        Some(Ok(claims)) => {
            if let Some(settings) = &config.jwt {
                return subject_limits::decide_for_subject(
                    config, settings, req, store, now_ns, claims,
                );
            }
            (Outcome::Unavailable, None, None)
        }
        Some(Err(())) => (Outcome::InvalidToken, None, None),
        None => authenticate(config, req.api_keys, now_ns / 1_000_000_000),
    };
    // A refusal that counts as a failed authentication of the address.
    let failed = |outcome: Outcome, key_id: Option<String>| {
        // Decided by the CAS that counts the failure: if other workers used
        // up the address's budget since the check above, this is a blocked
        // request too. A failure that cannot be recorded keeps its answer.
        if let Some(blocked) = record_failure(config, auth_table, store, seen, now_ns) {
            return blocked;
        }
        Decision {
            key,
            key_id,
            ..Decision::of(outcome)
        }
    };
    if outcome != Outcome::Allowed {
        if outcome.is_auth_failure() {
            return failed(outcome, key_id);
        }
        return Decision {
            key,
            key_id,
            ..Decision::of(outcome)
        };
    }
    let Some(entry) = key else {
        return Decision::of(Outcome::Unavailable);
    };
    if role_forbids(config, entry.roles.as_deref(), req) {
        return Decision {
            key,
            key_id,
            ..Decision::of(Outcome::Forbidden)
        };
    }
    key_limits::decide_for_key(config, req, store, now_ns, entry, key_id)
}

/// The claims of the request's verified JWT: None when the request is one
/// for API keys (no `jwt` section, an API key header, or neither a verified
/// payload nor a bearer token), Err for a bearer token that `jwt_authn` did
/// not verify or a payload that names no subject. An API key takes
/// precedence over a token sent with it: the adapter then does not even
/// read the payload, so key requests cost the same with or without a `jwt`
/// section.
fn verified(config: &Config, req: &RequestView<'_>) -> Option<Result<jwt::Claims, ()>> {
    let settings = config.jwt.as_ref()?;
    if !req.api_keys.is_empty() {
        return None;
    }
    match req.jwt_payload {
        // A token named like a configured key would pose as that key's
        // client upstream (`x-api-key-name`): refused.
        Some(payload) => Some(
            jwt::claims(settings, payload)
                .map_err(|_| ())
                .and_then(|c| {
                    if config.keys.has_name(&c.name) {
                        Err(())
                    } else {
                        Ok(c)
                    }
                }),
        ),
        None if req.bearer => Some(Err(())),
        None => None,
    }
}

/// Whether the caller of an admin request (API key or verified token,
/// valid, not revoked) holds a role that grants it. Spends nothing.
fn admitted_by_role(
    config: &Config,
    req: &RequestView<'_>,
    store: &dyn SharedStore,
    now_ns: u64,
) -> bool {
    let (Some(access), Some(admin)) = (&config.access, &config.admin) else {
        return false;
    };
    // Only grants at or under the admin prefix: `/` for the API is no
    // grant of the admin API.
    let scope = admin.path_prefix.as_str();
    match verified(config, req) {
        Some(Ok(claims)) => {
            access.allows_under(claims.roles.as_deref(), req.method, req.path, scope)
        }
        Some(Err(())) => false,
        None => match authenticate(config, req.api_keys, now_ns / 1_000_000_000) {
            (Outcome::Allowed, Some(entry), _) => {
                let not_revoked = matches!(
                    crate::key_state::read(store, &entry.sha256),
                    Ok(Some(state)) if state.revoked.is_none()
                );
                not_revoked
                    && access.allows_under(entry.roles.as_deref(), req.method, req.path, scope)
            }
            _ => false,
        },
    }
}

/// Counts a failed authentication of `ip`; Some(blocked decision) when the
/// address has now used up its budget.
fn record_failure(
    config: &Config,
    auth_table: &FailedAuthTable,
    store: &dyn SharedStore,
    seen: Seen,
    now_ns: u64,
) -> Option<Decision<'static>> {
    let per_minute = config.failed_auth_per_minute;
    let blocked = auth_table.record_failure_after(store, seen, per_minute, now_ns);
    if let Ok(true) = blocked {
        return Some(blocked_decision(failed_auth::one_failure_secs(
            config.failed_auth_per_minute,
        )));
    }
    None
}

/// The 429 of an address with no failed authentication left.
fn blocked_decision(retry_after_secs: u64) -> Decision<'static> {
    let mut d = Decision::of(Outcome::AuthBlocked);
    d.reply = d.reply.map(|r| r.with_retry_after(retry_after_secs));
    d
}
