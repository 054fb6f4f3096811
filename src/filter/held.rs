//! A request held in its headers phase while the cluster service answers
//! (cluster mode): what it needs when the answer comes, and the facts of
//! its headers, owned (the header map is not read again).

use std::net::IpAddr;

use crate::admission::{ClusterCheck, Decision, Outcome};
use crate::auth::digest::Digest;
use crate::http::LocalReply;
use crate::key_state::rate_limiter::LeakTrip;
use crate::ops::admin::UsageQuery;
use crate::ops::events::{SecurityEvent, Severity};

/// The headers-phase facts that the rest of the request needs.
pub(super) struct Facts<'a> {
    pub(super) method: &'a [u8],
    pub(super) path: &'a [u8],
    pub(super) client_ip: Option<IpAddr>,
    pub(super) content_type: Option<&'a [u8]>,
    pub(super) content_length: Option<&'a [u8]>,
    /// The request carried the API key / the admin secret (removed before
    /// it goes upstream).
    pub(super) strip_key: bool,
    pub(super) strip_secret: bool,
    /// The identity headers the client sent (overwritten or removed).
    pub(super) sent_identity: SentIdentity,
    pub(super) end_of_stream: bool,
    pub(super) now_ns: u64,
}

/// Which of the headers the filter owns (`x-api-key-name`,
/// `x-api-key-tier`, `x-rag-guard-flags`) the client sent: only those are
/// removed when the filter has nothing to write in their place.
#[derive(Clone, Copy, Default)]
pub(super) struct SentIdentity {
    pub(super) name: bool,
    pub(super) tier: bool,
    pub(super) flags: bool,
    /// A bearer token on a request judged by its API key (`jwt` configured):
    /// `jwt_authn` may not have verified it, so it never goes upstream.
    pub(super) unjudged_token: bool,
}

/// What the request waits for.
pub(super) enum Held {
    /// The key's minute and hour budgets.
    Limits {
        digest: Digest,
        key_id: Option<String>,
        check: ClusterCheck,
        leak: Option<LeakTrip>,
    },
    /// The cluster's usage totals for the admin API's report.
    Usage {
        query: UsageQuery,
        /// This replica's report, sent if the service does not answer.
        reply: Option<LocalReply>,
        outcome: Outcome,
        events: Vec<(Severity, SecurityEvent)>,
    },
}

impl Held {
    pub(super) fn of(decision: &Decision<'_>) -> Option<Held> {
        if let (Some(check), Some(key)) = (&decision.cluster, decision.key) {
            return Some(Held::Limits {
                digest: key.sha256,
                key_id: decision.key_id.clone(),
                check: check.clone(),
                leak: decision.leak,
            });
        }
        decision.cluster_usage.map(|query| Held::Usage {
            query,
            reply: decision.reply.clone(),
            outcome: decision.outcome,
            events: decision.events.clone(),
        })
    }
}

/// A held request: the call's token, what it waits for, its facts, and the
/// body seen meanwhile (bytes buffered, ended).
pub(super) struct Waiting {
    pub(super) token: u32,
    pub(super) held: Held,
    pub(super) method: Vec<u8>,
    pub(super) path: Vec<u8>,
    pub(super) client_ip: Option<IpAddr>,
    pub(super) content_type: Option<Vec<u8>>,
    pub(super) content_length: Option<Vec<u8>>,
    pub(super) strip_key: bool,
    pub(super) strip_secret: bool,
    pub(super) sent_identity: SentIdentity,
    pub(super) end_of_stream: bool,
    pub(super) now_ns: u64,
    pub(super) body: Option<(usize, bool)>,
}

impl Waiting {
    pub(super) fn new(token: u32, held: Held, f: &Facts<'_>) -> Self {
        Waiting {
            token,
            held,
            method: f.method.to_vec(),
            path: f.path.to_vec(),
            client_ip: f.client_ip,
            content_type: f.content_type.map(<[u8]>::to_vec),
            content_length: f.content_length.map(<[u8]>::to_vec),
            strip_key: f.strip_key,
            strip_secret: f.strip_secret,
            sent_identity: f.sent_identity,
            end_of_stream: f.end_of_stream,
            now_ns: f.now_ns,
            body: None,
        }
    }

    pub(super) fn facts(&self) -> Facts<'_> {
        Facts {
            method: &self.method,
            path: &self.path,
            client_ip: self.client_ip,
            content_type: self.content_type.as_deref(),
            content_length: self.content_length.as_deref(),
            strip_key: self.strip_key,
            strip_secret: self.strip_secret,
            sent_identity: self.sent_identity,
            end_of_stream: self.end_of_stream,
            now_ns: self.now_ns,
        }
    }
}
