use super::*;
use crate::auth::digest::sha256;
use crate::auth::digest::sha256_hex;
use crate::config;
use crate::key_state::RevokedBy;
use crate::limits::token_bucket::LimitKind;
use crate::ops::admin::AdminStatus;
use crate::shared_store::{MemoryStore, StoreError, Versioned};

const SEC: u64 = 1_000_000_000;
const NOW: u64 = 1_800_000_000 * SEC;

fn config_with(extra: &str) -> Config {
    let text = format!(
        r#"{{"keys": [
            {{"name": "good", "sha256": "{}", "tier": "pro"}},
            {{"name": "old", "sha256": "{}", "expires_at": "2020-01-01T00:00:00Z"}},
            {{"name": "off", "sha256": "{}", "enabled": false}},
            {{"name": "tiny", "sha256": "{}", "tier": "tiny"}}
          ],
          "tiers": {{"tiny": {{"per_minute": 3, "per_hour": 100, "burst": 2}}}},
          "allowed_hosts": ["api.example.com"]{extra}}}"#,
        sha256_hex(b"k-good"),
        sha256_hex(b"k-old"),
        sha256_hex(b"k-off"),
        sha256_hex(b"k-tiny"),
    );
    config::parse(text.as_bytes()).unwrap()
}

fn store_for(c: &Config) -> MemoryStore {
    let store = MemoryStore::new();
    crate::key_state::ensure_entries(&store, c.keys.iter().map(|k| &k.sha256)).unwrap();
    FailedAuthTable::open(&store, || Some(TABLE_KEY)).unwrap();
    store
}

const TABLE_KEY: [u8; 16] = [7; 16];

/// `super::decide` with the failed-auth table `store_for` created.
fn decide<'c>(
    c: &'c Config,
    req: &RequestView<'_>,
    store: &dyn SharedStore,
    now_ns: u64,
) -> Decision<'c> {
    let half = u64::from_le_bytes([7; 8]);
    super::decide(
        c,
        &FailedAuthTable::with_key(half, half),
        req,
        store,
        now_ns,
    )
}

fn view<'a>(keys: &'a [&'a [u8]], path: &'a str, host: Option<&'a str>) -> RequestView<'a> {
    RequestView {
        authority: host.map(str::as_bytes),
        path: path.as_bytes(),
        method: b"GET",
        api_keys: keys,
        client_ip: Some("192.0.2.10".parse().unwrap()),
        admin_secrets: &[],
        method_override: false,
        jwt_payload: None,
        bearer: false,
    }
}

fn outcome_at(keys: &[&[u8]], path: &str, host: Option<&str>) -> Outcome {
    let c = config_with("");
    let store = store_for(&c);
    decide(&c, &view(keys, path, host), &store, NOW).outcome
}

fn outcome(keys: &[&[u8]]) -> Outcome {
    outcome_at(keys, "/query", Some("api.example.com"))
}

fn header<'a>(d: &'a Decision<'_>, name: &str) -> Option<&'a str> {
    d.response_headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn valid_key_is_allowed_with_identity_and_headers() {
    let c = config_with("");
    let store = store_for(&c);
    let d = decide(
        &c,
        &view(&[b"k-good"], "/query", Some("api.example.com:10000")),
        &store,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Allowed);
    assert!(d.reply.is_none());
    let k = d.forwarded_identity().unwrap();
    assert_eq!((k.name.as_str(), k.tier.as_str()), ("good", "pro"));
    assert_eq!(d.key_id.as_deref().unwrap(), &sha256_hex(b"k-good")[..16]);
    assert_eq!(header(&d, "x-ratelimit-limit-minute"), Some("300"));
    assert_eq!(header(&d, "x-ratelimit-remaining-minute"), Some("299"));
}

#[test]
fn each_failure_has_its_outcome() {
    assert_eq!(outcome(&[]), Outcome::MissingKey);
    assert_eq!(outcome(&[b""]), Outcome::MissingKey);
    assert_eq!(outcome(&[b"k-good", b"k-good"]), Outcome::MultipleKeys);
    assert_eq!(outcome(&[b"nope"]), Outcome::InvalidKey);
    assert_eq!(outcome(&[b"k-old"]), Outcome::ExpiredKey);
    assert_eq!(outcome(&[b"k-off"]), Outcome::DisabledKey);
    assert_eq!(outcome(&[&[b'a'; 10 * 1024]]), Outcome::InvalidKey);
    assert_eq!(outcome(&[b"\xff\xfe\x00k"]), Outcome::InvalidKey);
    assert_eq!(outcome(&[b"K-GOOD"]), Outcome::InvalidKey);
}

#[test]
fn failures_get_401_with_www_authenticate_and_no_rate_headers() {
    let c = config_with("");
    let store = store_for(&c);
    let d = decide(
        &c,
        &view(&[b"k-old"], "/q", Some("api.example.com")),
        &store,
        NOW,
    );
    assert_eq!(d.key.map(|k| k.name.as_str()), Some("old"));
    assert!(d.forwarded_identity().is_none());
    let r = d.reply.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.detail().as_deref(), Some("API key expired"));
    assert!(r
        .headers
        .contains(&("www-authenticate", "APIKey".to_string())));
    assert!(d.response_headers.is_empty());
    let d = decide(
        &c,
        &view(&[b"nope"], "/q", Some("api.example.com")),
        &store,
        NOW,
    );
    assert_eq!(d.key, None);
    assert_eq!(d.key_id.unwrap(), &sha256_hex(b"nope")[..16]);
}

#[test]
fn expiry_is_inclusive_of_the_instant() {
    let c = config_with("");
    let store = store_for(&c);
    let at = c
        .keys
        .iter()
        .find(|k| k.name == "old")
        .unwrap()
        .expires_at
        .unwrap();
    let req = view(&[b"k-old"], "/q", Some("api.example.com"));
    assert_eq!(
        decide(&c, &req, &store, (at - 1) * SEC).outcome,
        Outcome::Allowed
    );
    assert_eq!(
        decide(&c, &req, &store, at * SEC).outcome,
        Outcome::ExpiredKey
    );
}

#[test]
fn host_is_checked_before_anything_else() {
    assert_eq!(
        outcome_at(&[b"k-good"], "/query", Some("evil.com")),
        Outcome::HostRejected
    );
    assert_eq!(
        outcome_at(&[], "/health", Some("evil.com")),
        Outcome::HostRejected
    );
    assert_eq!(
        outcome_at(&[b"k-good"], "/query", None),
        Outcome::HostRejected
    );
}

#[test]
fn public_paths_need_no_key() {
    let host = Some("api.example.com");
    assert_eq!(outcome_at(&[], "/health", host), Outcome::Public);
    assert_eq!(outcome_at(&[], "/health?x", host), Outcome::Public);
    assert_eq!(outcome_at(&[b"bad"], "/health", host), Outcome::Public);
    assert_eq!(outcome_at(&[], "/healthz", host), Outcome::MissingKey);
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let c = config_with("");
    let store = store_for(&c);
    let req = view(&[b"k-tiny"], "/q", Some("api.example.com"));
    for _ in 0..2 {
        assert_eq!(decide(&c, &req, &store, NOW).outcome, Outcome::Allowed);
    }
    let d = decide(&c, &req, &store, NOW);
    assert_eq!(d.outcome, Outcome::RateLimited(LimitKind::Burst));
    let r = d.reply.clone().unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(
        r.detail().as_deref(),
        Some("Rate limit exceeded: burst of 2 requests")
    );
    // 3 per minute: a token every 20 s.
    assert!(r.headers.contains(&("retry-after", "20".to_string())));
    assert!(r.headers.iter().any(|(n, _)| *n == "ratelimit"));
    assert_eq!(header(&d, "x-ratelimit-remaining-minute"), Some("1"));
    // 20 s later one token is back in every bucket: one more request,
    // then the burst bucket is empty again.
    assert_eq!(
        decide(&c, &req, &store, NOW + 20 * SEC).outcome,
        Outcome::Allowed
    );
    let d = decide(&c, &req, &store, NOW + 20 * SEC);
    assert_eq!(d.outcome, Outcome::RateLimited(LimitKind::Burst));
}

#[test]
fn route_cost_consumes_several_tokens() {
    let c =
        config_with(r#", "route_costs": [{"prefix": "/documents", "method": "POST", "cost": 2}]"#);
    let store = store_for(&c);
    let mut req = view(&[b"k-good"], "/documents", Some("api.example.com"));
    req.method = b"POST";
    let d = decide(&c, &req, &store, NOW);
    assert_eq!(header(&d, "x-ratelimit-remaining-minute"), Some("298"));
    req.method = b"GET";
    let d = decide(&c, &req, &store, NOW);
    assert_eq!(header(&d, "x-ratelimit-remaining-minute"), Some("297"));
}

#[test]
fn status_endpoint_answers_locally_and_costs_nothing() {
    let c = config_with("");
    let store = store_for(&c);
    let q = view(&[b"k-tiny"], "/q", Some("api.example.com"));
    decide(&c, &q, &store, NOW);
    let st = view(
        &[b"k-tiny"],
        "/rate-limit/status?x=1",
        Some("api.example.com"),
    );
    for _ in 0..5 {
        let d = decide(&c, &st, &store, NOW);
        assert_eq!(d.outcome, Outcome::RateLimitStatus);
        let r = d.reply.unwrap();
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["requests_this_minute"], 1);
        assert_eq!(v["minute_limit"], 3);
        assert_eq!(v["minute_remaining"], 2);
        assert_eq!(v["burst_remaining"], 1);
        assert_eq!(v["tier"], "tiny");
    }
    // The status endpoint still needs a valid key.
    let bad = view(&[b"nope"], "/rate-limit/status", Some("api.example.com"));
    assert_eq!(decide(&c, &bad, &store, NOW).outcome, Outcome::InvalidKey);
}

#[test]
fn failed_authentications_block_the_address_before_key_checks() {
    let c = config_with("");
    let store = store_for(&c);
    let bad = view(&[b"nope"], "/q", Some("api.example.com"));
    for _ in 0..10 {
        assert_eq!(decide(&c, &bad, &store, NOW).outcome, Outcome::InvalidKey);
    }
    let d = decide(&c, &bad, &store, NOW);
    assert_eq!(d.outcome, Outcome::AuthBlocked);
    assert_eq!(d.reply.as_ref().unwrap().status, 429);
    assert!(d
        .reply
        .unwrap()
        .headers
        .contains(&("retry-after", "6".to_string())));
    // Even a valid key from that address is refused now...
    let good = view(&[b"k-good"], "/q", Some("api.example.com"));
    assert_eq!(decide(&c, &good, &store, NOW).outcome, Outcome::AuthBlocked);
    // ...but not from another one.
    let mut other = good;
    other.client_ip = Some("198.51.100.77".parse().unwrap());
    assert_eq!(decide(&c, &other, &store, NOW).outcome, Outcome::Allowed);
}

#[test]
fn admin_paths_skip_key_checks_and_wrong_secrets_count_as_failures() {
    let admin = format!(
        r#", "admin": {{"secret_sha256": "{}"}}"#,
        sha256_hex(b"adm")
    );
    let c = config_with(&admin);
    let store = store_for(&c);
    let host = Some("api.example.com");
    let req = view(&[], "/rag-guard/admin/keys", host);
    assert!(
        decide_early(&c, &req).is_none(),
        "admin requests need the store"
    );
    let right: [&[u8]; 1] = [b"adm"];
    let ok = decide(
        &c,
        &RequestView {
            admin_secrets: &right,
            ..req
        },
        &store,
        NOW,
    );
    assert_eq!(ok.outcome, Outcome::Admin(AdminStatus::Ok));
    assert_eq!(ok.reply.unwrap().status, 200);
    let wrong: [&[u8]; 1] = [b"guess"];
    for _ in 0..10 {
        let d = decide(
            &c,
            &RequestView {
                admin_secrets: &wrong,
                ..req
            },
            &store,
            NOW,
        );
        assert_eq!(d.outcome, Outcome::Admin(AdminStatus::Denied));
    }
    let d = decide(
        &c,
        &RequestView {
            admin_secrets: &right,
            ..req
        },
        &store,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::AuthBlocked);
    // Host checks come first, for the admin API too.
    let elsewhere = view(&[], "/rag-guard/admin/keys", Some("evil.example"));
    assert_eq!(
        decide_early(&c, &elsewhere).unwrap().outcome,
        Outcome::HostRejected
    );
}

#[test]
fn runtime_revocation_refuses_with_403_without_blocking_the_address() {
    let c = config_with("");
    let store = store_for(&c);
    let good = c.keys.get(&sha256(b"k-good")).unwrap();
    crate::key_state::revoke(&store, &good.sha256, RevokedBy::Admin, 1000).unwrap();
    let req = view(&[b"k-good"], "/query", Some("api.example.com"));
    let d = decide(&c, &req, &store, NOW);
    assert_eq!(d.outcome, Outcome::RevokedKey(RevokedBy::Admin));
    assert_eq!(d.key.unwrap().name, "good");
    let reply = d.reply.unwrap();
    assert_eq!(
        (reply.status, reply.detail().unwrap().as_str()),
        (403, "API key revoked")
    );
    // The status endpoint is refused the same way.
    let status = view(&[b"k-good"], "/rate-limit/status", Some("api.example.com"));
    assert_eq!(
        decide(&c, &status, &store, NOW).outcome,
        Outcome::RevokedKey(RevokedBy::Admin)
    );
    for _ in 0..20 {
        assert_eq!(
            decide(&c, &req, &store, NOW).outcome,
            Outcome::RevokedKey(RevokedBy::Admin)
        );
    }
    // Other keys from the same address still work.
    let pro = view(&[b"k-tiny"], "/query", Some("api.example.com"));
    assert_eq!(decide(&c, &pro, &store, NOW).outcome, Outcome::Allowed);
}

#[test]
fn the_request_that_trips_leak_detection_is_refused_and_carries_the_trip() {
    let c = config_with("");
    let store = store_for(&c);
    let mut req = view(&[b"k-good"], "/query", Some("api.example.com"));
    for i in 1..=10 {
        req.client_ip = Some(format!("198.51.100.{i}").parse().unwrap());
        let d = decide(&c, &req, &store, NOW);
        assert_eq!((d.outcome, d.leak), (Outcome::Allowed, None));
    }
    req.client_ip = Some("198.51.100.11".parse().unwrap());
    let d = decide(&c, &req, &store, NOW);
    assert_eq!(d.outcome, Outcome::RevokedKey(RevokedBy::LeakDetection));
    assert_eq!(d.leak.map(|l| l.distinct), Some(11));
    assert_eq!(d.reply.unwrap().status, 403);
}

struct BrokenStore;
impl SharedStore for BrokenStore {
    fn get(&self, _: &str) -> Result<Option<Versioned>, StoreError> {
        Err(StoreError::Host("down".into()))
    }
    fn set(&self, _: &str, _: &[u8], _: Option<u32>) -> Result<(), StoreError> {
        Err(StoreError::Host("down".into()))
    }
}

#[test]
fn store_failures_fail_closed() {
    let c = config_with("");
    let d = decide(
        &c,
        &view(&[b"k-good"], "/q", Some("api.example.com")),
        &BrokenStore,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Unavailable);
    assert_eq!(d.reply.unwrap().status, 503);
    // A store without buckets (never configured) refuses too.
    let empty = MemoryStore::new();
    FailedAuthTable::open(&empty, || Some(TABLE_KEY)).unwrap();
    let d = decide(
        &c,
        &view(&[b"k-good"], "/q", Some("api.example.com")),
        &empty,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Unavailable);
}

#[test]
fn replies_are_fastapi_shaped() {
    let r = Outcome::MissingKey.reply().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v, serde_json::json!({"detail": "Missing API Key"}));
    let host = Outcome::HostRejected.reply().unwrap();
    assert_eq!(host.status, 400);
    assert!(host.headers.is_empty());
    assert!(Outcome::Allowed.reply().is_none());
    // Each outcome is one metric: its labels are distinct.
    let labels: std::collections::HashSet<_> = Outcome::ALL
        .iter()
        .map(|o| (o.decision(), o.reason()))
        .collect();
    assert_eq!(labels.len(), Outcome::ALL.len());
    let leak = Outcome::RevokedKey(RevokedBy::LeakDetection)
        .reply()
        .unwrap();
    assert_eq!(leak.status, 403);
    assert_eq!(
        leak.detail().unwrap(),
        "API key revoked due to suspicious activity"
    );
}

#[test]
fn method_override_headers_are_refused_before_anything_else_but_the_host() {
    let c = config_with("");
    let store = store_for(&c);
    for path in ["/query", "/health", "/rag-guard/admin/keys"] {
        let req = RequestView {
            method_override: true,
            ..view(&[b"k-good"], path, Some("api.example.com"))
        };
        let d = decide(&c, &req, &store, NOW);
        assert_eq!(d.outcome, Outcome::MethodOverride, "{path}");
        let r = d.reply.unwrap();
        assert_eq!(
            (r.status, r.detail().unwrap().as_str()),
            (400, "Method override headers are not accepted")
        );
        assert!(!d.outcome.is_auth_failure());
    }
    let elsewhere = RequestView {
        method_override: true,
        ..view(&[b"k-good"], "/query", Some("evil.example"))
    };
    assert_eq!(
        decide(&c, &elsewhere, &store, NOW).outcome,
        Outcome::HostRejected
    );
}

#[test]
fn cluster_mode_asks_the_service_for_minute_and_hour_but_burst_stays_local() {
    let text = format!(
        r#"{{"keys": [{{"name": "k", "sha256": "{}", "tier": "t"}}],
            "tiers": {{"t": {{"per_minute": 3, "per_hour": 100, "burst": 4}}}},
            "cluster": {{"service": "rls"}}}}"#,
        sha256_hex(b"k-k")
    );
    let c = config::parse(text.as_bytes()).unwrap();
    let store = store_for(&c);
    let req = view(&[b"k-k"], "/q", None);
    // The minute (3) trips before the burst (4): the service decides, with
    // this replica's "over the minute" as the fallback; the burst is spent
    // all the same, so a fifth at once is refused here.
    let fallbacks: Vec<_> = (0..4)
        .map(|_| {
            let d = decide(&c, &req, &store, NOW);
            assert_eq!(d.outcome, Outcome::Allowed);
            assert!(d.reply.is_none());
            let check = d.cluster.expect("a cluster check");
            assert_eq!(check.cost, 1);
            check.fallback.map(|(kind, _)| kind)
        })
        .collect();
    assert_eq!(fallbacks, vec![None, None, None, Some(LimitKind::Minute)]);
    let fifth = decide(&c, &req, &store, NOW);
    assert_eq!(fifth.outcome, Outcome::RateLimited(LimitKind::Burst));
    assert!(fifth.cluster.is_none());
    // tiny (burst 2 under a minute of 3): the third at once is over this
    // replica's burst and refused here, without asking.
    let c2 = config_with(r#", "cluster": {"service": "rls"}"#);
    let store2 = store_for(&c2);
    let req2 = view(&[b"k-tiny"], "/q", Some("api.example.com"));
    let d: Vec<Decision<'_>> = (0..3).map(|_| decide(&c2, &req2, &store2, NOW)).collect();
    assert!(d[0].cluster.is_some() && d[1].cluster.is_some());
    assert!(d[2].cluster.is_none());
    assert!(matches!(d[2].outcome, Outcome::RateLimited(_)));
    // Without a cluster section nothing is asked.
    let local = config_with("");
    let store3 = store_for(&local);
    assert!(decide(&local, &req2, &store3, NOW).cluster.is_none());
}

#[test]
fn a_replaced_key_is_its_client_until_its_grace_ends() {
    let text = format!(
        r#"{{"keys": [{{"name": "acme", "sha256": "{}", "tier": "pro",
              "previous": [{{"sha256": "{}", "until": "2027-01-15T08:01:40Z"}}]}}]}}"#,
        sha256_hex(b"k-new"),
        sha256_hex(b"k-old"),
    );
    let c = config::parse(text.as_bytes()).unwrap();
    let store = store_for(&c);
    let until = 1_800_000_100; // 2027-01-15T08:01:40Z
    let before = (until - 1) * SEC;
    let old: [&[u8]; 1] = [b"k-old"];
    let new: [&[u8]; 1] = [b"k-new"];
    let d = decide(&c, &view(&old, "/query", None), &store, before);
    assert_eq!(d.outcome, Outcome::Allowed);
    // The old key is the same client: same entry, same state.
    assert_eq!(d.key.map(|k| k.sha256), Some(sha256(b"k-new")));
    assert_eq!(
        d.key_id,
        Some(crate::auth::digest::digest_id(&sha256(b"k-old")))
    );
    let d = decide(&c, &view(&old, "/query", None), &store, until * SEC);
    assert_eq!(d.outcome, Outcome::ExpiredKey);
    let d = decide(&c, &view(&new, "/query", None), &store, until * SEC);
    assert_eq!(d.outcome, Outcome::Allowed);
}

#[test]
fn previous_digests_are_checked_like_keys() {
    let key = |extra: &str| {
        format!(
            r#"{{"keys": [{{"name": "a", "sha256": "{}", "previous": [{extra}]}},
                          {{"name": "b", "sha256": "{}"}}]}}"#,
            sha256_hex(b"ka"),
            sha256_hex(b"kb"),
        )
    };
    let dup = key(&format!(
        r#"{{"sha256": "{}", "until": "2027-01-01T00:00:00Z"}}"#,
        sha256_hex(b"kb")
    ));
    // Found at key b, whose digest key a's previous already claims.
    let e = config::parse(dup.as_bytes()).unwrap_err().to_string();
    assert!(
        e.contains("keys[1].sha256") && e.contains("already configured"),
        "{e}"
    );
    let bad_until = key(&format!(
        r#"{{"sha256": "{}", "until": "next week"}}"#,
        sha256_hex(b"old")
    ));
    let e = config::parse(bad_until.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("keys[0].previous[0].until"), "{e}");
    let bad_hex = key(r#"{"sha256": "xyz", "until": "2027-01-01T00:00:00Z"}"#);
    assert!(config::parse(bad_hex.as_bytes()).is_err());
}
