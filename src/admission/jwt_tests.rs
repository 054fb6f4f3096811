//! Decisions for JWT callers and role-based access.

use super::*;
use crate::auth::digest::sha256_hex;
use crate::auth::jwt::encode_pairs;
use crate::config;
use crate::key_state::subjects::SubjectTable;
use crate::ops::admin::AdminStatus;
use crate::shared_store::MemoryStore;

const SEC: u64 = 1_000_000_000;
const NOW: u64 = 1_800_000_000 * SEC;
const TABLE_KEY: [u8; 16] = [7; 16];

/// A claim value in the proxy-wasm pairs encoding Envoy uses.
enum V<'a> {
    S(&'a str),
    L(&'a [&'a str]),
}

fn payload(claims: &[(&str, V<'_>)]) -> Vec<u8> {
    let pairs: Vec<(&str, Vec<u8>)> = claims
        .iter()
        .map(|(k, v)| {
            let bytes = match v {
                V::S(s) => s.as_bytes().to_vec(),
                V::L(items) => {
                    encode_pairs(&items.iter().map(|i| (*i, Vec::new())).collect::<Vec<_>>())
                }
            };
            (*k, bytes)
        })
        .collect();
    encode_pairs(&pairs)
}

fn config(extra: &str) -> Config {
    let ops_roles = if extra.is_empty() {
        ""
    } else {
        r#", "roles": ["admin"]"#
    };
    let text = format!(
        r#"{{"keys": [
            {{"name": "plain", "sha256": "{}"}},
            {{"name": "ops", "sha256": "{}"{ops_roles}}}
          ],
          "tiers": {{"tiny": {{"per_minute": 60, "per_hour": 100, "burst": 2}}}},
          "admin": {{"secret_sha256": "{}"}},
          "jwt": {{"tier_claim": "tier", "roles_claim": "roles", "max_subjects": 16}}{extra}}}"#,
        sha256_hex(b"k-plain"),
        sha256_hex(b"k-ops"),
        sha256_hex(b"adm"),
    );
    config::parse(text.as_bytes()).unwrap()
}

const ACCESS: &str = r#", "access": {"roles": {
    "reader": [{"prefix": "/query", "methods": ["POST"]}],
    "ingest": [{"prefix": "/documents", "methods": ["POST"]}],
    "admin": [{"prefix": "/rag-guard/admin"}]},
  "default_roles": ["reader"]}"#;

fn store_for(c: &Config) -> MemoryStore {
    let store = MemoryStore::new();
    crate::key_state::ensure_entries(&store, c.keys.iter().map(|k| &k.sha256)).unwrap();
    FailedAuthTable::open(&store, || Some(TABLE_KEY)).unwrap();
    if let Some(jwt) = &c.jwt {
        SubjectTable::for_subjects(jwt.max_subjects)
            .ensure(&store)
            .unwrap();
    }
    store
}

fn table() -> FailedAuthTable {
    let half = u64::from_le_bytes([7; 8]);
    FailedAuthTable::with_key(half, half)
}

fn req<'a>(
    method: &'a str,
    path: &'a str,
    keys: &'a [&'a [u8]],
    jwt: Option<&'a [u8]>,
) -> RequestView<'a> {
    RequestView {
        authority: None,
        path: path.as_bytes(),
        method: method.as_bytes(),
        api_keys: keys,
        client_ip: Some("192.0.2.10".parse().unwrap()),
        admin_secrets: &[],
        method_override: false,
        jwt_payload: jwt,
        bearer: jwt.is_some(),
    }
}

fn alice(tier: &str, roles: &[&str]) -> Vec<u8> {
    payload(&[
        ("iss", V::S("https://idp.test")),
        ("sub", V::S("alice")),
        ("tier", V::S(tier)),
        ("roles", V::L(roles)),
    ])
}

#[test]
fn a_verified_token_is_a_caller_with_its_tier_and_own_limits() {
    let c = config("");
    let store = store_for(&c);
    let p = alice("tiny", &[]);
    let r = req("POST", "/query", &[], Some(&p));
    for _ in 0..2 {
        let d = decide(&c, &table(), &r, &store, NOW);
        assert_eq!(d.outcome, Outcome::Allowed);
        assert_eq!(d.forwarded_caller(), Some(("alice", "tiny")));
        assert!(d.key.is_none());
    }
    let d = decide(&c, &table(), &r, &store, NOW);
    assert_eq!(
        d.outcome,
        Outcome::RateLimited(crate::limits::token_bucket::LimitKind::Burst)
    );
    assert_eq!(d.reply.unwrap().status, 429);
    // Another subject has its own buckets; an unknown tier is the default.
    let bob = payload(&[("sub", V::S("bob")), ("tier", V::S("platinum"))]);
    let d = decide(
        &c,
        &table(),
        &req("POST", "/query", &[], Some(&bob)),
        &store,
        NOW,
    );
    assert_eq!(d.forwarded_caller(), Some(("bob", "free")));
}

#[test]
fn a_key_wins_over_a_token_and_bad_tokens_are_401_naming_both_schemes() {
    let c = config("");
    let store = store_for(&c);
    let p = alice("pro", &[]);
    let wrong_key: [&[u8]; 1] = [b"nope"];
    let d = decide(
        &c,
        &table(),
        &req("GET", "/x", &wrong_key, Some(&p)),
        &store,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::InvalidKey);
    let plain: [&[u8]; 1] = [b"k-plain"];
    let unverified = RequestView {
        bearer: true,
        ..req("GET", "/x", &plain, None)
    };
    let d = decide(&c, &table(), &unverified, &store, NOW);
    assert_eq!(d.forwarded_caller(), Some(("plain", "free")));
    // A bearer token jwt_authn did not verify, or one without a subject.
    let unverified = RequestView {
        bearer: true,
        ..req("GET", "/x", &[], None)
    };
    let no_sub = payload(&[("iss", V::S("x"))]);
    for r in [unverified, req("GET", "/x", &[], Some(&no_sub))] {
        let d = decide(&c, &table(), &r, &store, NOW);
        assert_eq!(d.outcome, Outcome::InvalidToken);
        let reply = d.reply.unwrap();
        assert_eq!(reply.status, 401);
        assert!(reply
            .headers
            .contains(&("www-authenticate", "APIKey, Bearer".to_string())));
        assert!(d.outcome.is_auth_failure());
    }
    let d = decide(&c, &table(), &req("GET", "/x", &[], None), &store, NOW);
    assert_eq!(d.outcome, Outcome::MissingKey);
    assert!(d
        .reply
        .unwrap()
        .headers
        .contains(&("www-authenticate", "APIKey, Bearer".to_string())));
}

#[test]
fn roles_decide_routes_for_tokens_and_keys() {
    let c = config(ACCESS);
    let store = store_for(&c);
    let reader = alice("pro", &["reader"]);
    let ingest = alice("pro", &["ingest"]);
    let none = payload(&[("sub", V::S("carol"))]);
    let plain: [&[u8]; 1] = [b"k-plain"];
    let ops: [&[u8]; 1] = [b"k-ops"];
    let cases: [(RequestView<'_>, Outcome); 8] = [
        (req("POST", "/query", &[], Some(&reader)), Outcome::Allowed),
        (
            req("POST", "/documents", &[], Some(&reader)),
            Outcome::Forbidden,
        ),
        (
            req("POST", "/documents", &[], Some(&ingest)),
            Outcome::Allowed,
        ),
        (
            req("POST", "/query", &[], Some(&ingest)),
            Outcome::Forbidden,
        ),
        // No roles claim: the default roles.
        (req("POST", "/query", &[], Some(&none)), Outcome::Allowed),
        (req("POST", "/query", &plain, None), Outcome::Allowed),
        (req("POST", "/documents", &plain, None), Outcome::Forbidden),
        // Roles of a key replace the defaults.
        (req("POST", "/query", &ops, None), Outcome::Forbidden),
    ];
    for (i, (r, expected)) in cases.iter().enumerate() {
        let d = decide(&c, &table(), r, &store, NOW);
        assert_eq!(d.outcome, *expected, "case {i}");
        if *expected == Outcome::Forbidden {
            let reply = d.reply.unwrap();
            assert_eq!(reply.status, 403);
            assert_eq!(reply.detail().as_deref(), Some("Insufficient permissions"));
            assert!(!d.outcome.is_auth_failure());
        }
    }
    // The status endpoint is every caller's own.
    let d = decide(
        &c,
        &table(),
        &req("GET", "/rate-limit/status", &ops, None),
        &store,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::RateLimitStatus);
}

#[test]
fn the_admin_api_takes_an_admin_role_instead_of_the_secret() {
    let c = config(ACCESS);
    let store = store_for(&c);
    let admin = alice("pro", &["admin"]);
    let reader = alice("pro", &["reader"]);
    let ops: [&[u8]; 1] = [b"k-ops"];
    let plain: [&[u8]; 1] = [b"k-plain"];
    let path = "/rag-guard/admin/keys";
    let status = |r: &RequestView<'_>| match decide(&c, &table(), r, &store, NOW).outcome {
        Outcome::Admin(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        status(&req("GET", path, &[], Some(&admin))),
        AdminStatus::Ok
    );
    assert_eq!(status(&req("GET", path, &ops, None)), AdminStatus::Ok);
    assert_eq!(
        status(&req("GET", path, &[], Some(&reader))),
        AdminStatus::Denied
    );
    assert_eq!(status(&req("GET", path, &plain, None)), AdminStatus::Denied);
    // A revoked admin key is no admin.
    crate::key_state::revoke(
        &store,
        &crate::auth::digest::sha256(b"k-ops"),
        crate::key_state::RevokedBy::Admin,
        NOW / 1_000_000,
    )
    .unwrap();
    assert_eq!(status(&req("GET", path, &ops, None)), AdminStatus::Denied);
    // Without an access section roles mean nothing: the secret only.
    let c2 = config("");
    let store2 = store_for(&c2);
    let d = decide(
        &c2,
        &table(),
        &req("GET", path, &[], Some(&admin)),
        &store2,
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Admin(AdminStatus::Denied));
}

#[test]
fn a_full_subject_table_refuses_newcomers_with_429() {
    let c = config("");
    let store = store_for(&c);
    let get = |p: &[u8], at: u64| decide(&c, &table(), &req("GET", "/x", &[], Some(p)), &store, at);
    // 16 subjects fill the one set (max_subjects 16).
    let subjects: Vec<Vec<u8>> = (0..17)
        .map(|i| payload(&[("sub", V::S(&format!("user-{i}")))]))
        .collect();
    for p in &subjects[..16] {
        let d = get(p, NOW);
        assert_eq!(d.outcome, Outcome::Allowed);
    }
    let d = get(&subjects[16], NOW);
    assert_eq!(d.outcome, Outcome::SubjectTableFull);
    let reply = d.reply.unwrap();
    assert_eq!(reply.status, 429);
    assert!(reply.headers.iter().any(|(n, _)| *n == "retry-after"));
    // Known subjects go on.
    let d = get(&subjects[0], NOW);
    assert_eq!(d.outcome, Outcome::Allowed);
    // Free (free tier: 60/min, 1000/h): a record is free again after its
    // hour bucket has refilled, 3.6 s for one token.
    let later = NOW + 4 * SEC;
    let d = get(&subjects[16], later);
    assert_eq!(d.outcome, Outcome::Allowed);
}

#[test]
fn jwt_configuration_is_checked() {
    let base = r#"{"keys": [], "jwt": JWT}"#;
    for jwt in [
        r#"{}"#,
        r#"{"roles_claim": ["realm_access", "roles"], "name_claim": "email"}"#,
    ] {
        assert!(
            config::parse(base.replace("JWT", jwt).as_bytes()).is_ok(),
            "{jwt}"
        );
    }
    // Each refusal names its field.
    let field_of = |text: &str| config::parse(text.as_bytes()).err().map(|e| e.field);
    for (jwt, field) in [
        (r#"{"max_subjects": 8}"#, "jwt.max_subjects"),
        (r#"{"max_subjects": 100000}"#, "jwt.max_subjects"),
        (r#"{"roles_claim": []}"#, "jwt.roles_claim"),
        (r#"{"payload_key": ""}"#, "jwt.payload_key"),
        (r#"{"subject": "sub"}"#, "configuration"),
    ] {
        assert_eq!(
            field_of(&base.replace("JWT", jwt)).as_deref(),
            Some(field),
            "{jwt}"
        );
    }
    let key = |roles: &str| {
        format!(
            r#"{{"name": "a", "sha256": "{}", "roles": {roles}}}"#,
            sha256_hex(b"a")
        )
    };
    let roles_without_access = format!(r#"{{"keys": [{}]}}"#, key(r#"["x"]"#));
    let unknown_role = format!(
        r#"{{"keys": [{}], "access": {{"roles": {{"y": []}}}}}}"#,
        key(r#"["x"]"#)
    );
    let unknown_default = r#"{"keys": [], "access": {"roles": {"y": []}, "default_roles": ["z"]}}"#;
    let bad_grant = r#"{"keys": [], "access": {"roles": {"y": [{"prefix": "query"}]}}}"#;
    let bad_method =
        r#"{"keys": [], "access": {"roles": {"y": [{"prefix": "/q", "methods": ["post"]}]}}}"#;
    let cluster = r#"{"keys": [], "jwt": {}, "cluster": {"service": "rls"}}"#;
    for (text, field) in [
        (roles_without_access.as_str(), "keys[0].roles"),
        (unknown_role.as_str(), "keys[0].roles"),
        (unknown_default, "access.default_roles"),
        (bad_grant, "access.roles.y[0].prefix"),
        (bad_method, "access.roles.y[0].methods"),
        (cluster, "jwt"),
    ] {
        assert_eq!(field_of(text).as_deref(), Some(field), "{text}");
    }
}
