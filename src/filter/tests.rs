//! The adapter on a fake Envoy (`fake_host`): each path's host calls,
//! counted and pinned. These counts are the README's table; a change that
//! adds a host call to a path fails here and has to say why.

use std::collections::BTreeMap;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::Action;

use super::fake_host::{self, Host};
use super::root::RootFilter;
use crate::auth::digest::sha256_hex;

const NOW: u64 = 1_800_000_000_000_000_000;
const WARN: i32 = 3;
const INFO: i32 = 2;

fn config() -> String {
    format!(
        r#"{{"keys": [
              {{"name": "good", "sha256": "{}", "tier": "pro"}},
              {{"name": "tiny", "sha256": "{}", "tier": "tiny"}}
            ],
            "tiers": {{
              "pro": {{"per_minute": 1000, "per_hour": 10000, "burst": 100}},
              "tiny": {{"per_minute": 1, "per_hour": 1, "burst": 1}}
            }}}}"#,
        sha256_hex(b"k-good"),
        sha256_hex(b"k-tiny"),
    )
}

/// A root context configured on a fresh fake host at `log_level`.
fn configured(log_level: i32) -> RootFilter {
    configured_with(log_level, &config())
}

fn configured_with(log_level: i32, config: &str) -> RootFilter {
    let plugin_config = config.as_bytes().to_vec();
    let size = plugin_config.len();
    fake_host::with(|h| {
        *h = Host {
            plugin_config,
            now_ns: NOW,
            log_level,
            source_address: b"127.0.0.1:40000".to_vec(),
            ..Host::default()
        }
    });
    let mut root = RootFilter {
        active: None,
        sync_call: None,
        sync_failing: false,
    };
    assert!(
        root.on_configure(size),
        "{:?}",
        fake_host::with(|h| h.logs.clone())
    );
    root
}

/// What one request did: the reply status (200 when forwarded) and its
/// host calls by name.
struct Ran {
    status: u32,
    calls: Vec<&'static str>,
}

impl Ran {
    fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for call in &self.calls {
            *counts.entry(*call).or_default() += 1;
        }
        counts
    }

    fn total(&self) -> usize {
        self.calls.len()
    }
}

/// Runs one request through the filter's callbacks as Envoy would: the
/// headers, the body if any (in one piece), and the response headers
/// (Envoy runs them for the filter's own replies too).
fn run(root: &RootFilter, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Ran {
    let mut request = vec![
        (":authority".to_string(), b"api.example.com".to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":method".to_string(), method.as_bytes().to_vec()),
        (":scheme".to_string(), b"http".to_vec()),
        ("user-agent".to_string(), b"curl/8.5.0".to_vec()),
        ("accept".to_string(), b"*/*".to_vec()),
    ];
    request.extend(
        headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
    );
    if !body.is_empty() {
        request.push(("content-type".into(), b"application/json".to_vec()));
        request.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    let n = request.len();
    fake_host::with(|h| {
        h.calls.clear();
        h.reply = None;
        h.request_headers = request;
        h.request_body = body.as_bytes().to_vec();
        h.response_headers = vec![
            (":status".into(), b"200".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
        ];
    });
    let mut ctx = root.create_http_context(2).expect("a context");
    let mut action = ctx.on_http_request_headers(n, body.is_empty());
    if action == Action::Pause && !body.is_empty() && fake_host::with(|h| h.reply.is_none()) {
        action = ctx.on_http_request_body(body.len(), true);
    }
    let replied = fake_host::with(|h| h.reply.as_ref().map(|r| r.0));
    assert!(
        replied.is_some() || action == Action::Continue,
        "neither forwarded nor answered"
    );
    ctx.on_http_response_headers(2, false);
    fake_host::with(|h| Ran {
        status: replied.unwrap_or(200),
        calls: h.calls.clone(),
    })
}

fn get(root: &RootFilter, headers: &[(&str, &str)]) -> Ran {
    run(root, "GET", "/collections", headers, "")
}

fn counts(pairs: &[(&'static str, usize)]) -> BTreeMap<&'static str, usize> {
    pairs.iter().copied().collect()
}

/// The paths of the README's table with their requests, on `root`.
fn paths(root: &RootFilter) -> Vec<(&'static str, Ran)> {
    let key = [("x-api-key", "k-good")];
    let question = r#"{"question": "What does the refund policy say about late returns?"}"#;
    vec![
        ("authenticated GET", get(root, &key)),
        ("401, no key", get(root, &[])),
        ("401, unknown key", get(root, &[("x-api-key", "nope")])),
        ("429, over limit", {
            get(root, &[("x-api-key", "k-tiny")]);
            get(root, &[("x-api-key", "k-tiny")])
        }),
        ("public path", run(root, "GET", "/health", &[], "")),
        (
            "POST /query, screened",
            run(root, "POST", "/query", &key, question),
        ),
    ]
}

#[test]
fn host_calls_per_path_are_pinned() {
    // At Envoy's `warning` level, as `make bench` runs it. Print the table
    // with `cargo test host_calls_per_path -- --nocapture`.
    let root = configured(WARN);
    // Every path reads the request and the response header maps; the
    // response map is written back only on forwarded requests (the
    // filter's own replies already carry the security headers).
    let common = [
        ("get_header_map_pairs", 2),
        ("get_current_time", 1),
        ("get_property", 1),
    ];
    let with = |extra: &[(&'static str, usize)]| {
        let mut all = counts(&common);
        for (call, n) in extra {
            *all.entry(*call).or_default() += n;
        }
        all
    };
    let refused = with(&[
        ("get_shared_data", 1),
        ("set_shared_data", 1),
        ("increment_metric", 1),
        ("log", 1),
        ("send_local_response", 1),
    ]);
    let forwarded = [
        ("get_shared_data", 2),
        ("set_shared_data", 1),
        ("increment_metric", 2),
        ("remove_header_map_value", 1),
        ("replace_header_map_value", 2),
        ("set_header_map_pairs", 1),
    ];
    // The screened POST: the GET's, plus the body and the inspection time.
    let screened: Vec<_> = forwarded
        .iter()
        .copied()
        .chain([
            ("get_buffer_bytes", 1),
            ("get_current_time", 2),
            ("record_metric", 1),
        ])
        .collect();
    let expected = [
        (200, with(&forwarded)),
        (401, refused.clone()),
        (401, refused),
        (
            429,
            with(&[
                ("get_shared_data", 2),
                ("increment_metric", 2),
                ("log", 1),
                ("send_local_response", 1),
            ]),
        ),
        (
            200,
            counts(&[
                ("get_header_map_pairs", 2),
                ("set_header_map_pairs", 1),
                ("increment_metric", 1),
            ]),
        ),
        (200, with(&screened)),
    ];
    for ((name, ran), (status, calls)) in paths(&root).iter().zip(expected) {
        println!(
            "{name}: {} -> {} host calls {:?}",
            ran.status,
            ran.total(),
            ran.counts()
        );
        assert_eq!(ran.status, status, "{name}");
        assert_eq!(ran.counts(), calls, "{name}: {:?}", ran.calls);
    }
}

#[test]
fn a_jwt_section_costs_key_requests_nothing_and_tokens_one_property_read() {
    let with_jwt = config().replacen("{", r#"{"jwt": {}, "#, 1);
    let plain = configured(WARN);
    let key = get(&plain, &[("x-api-key", "k-good")]).counts();
    let root = configured_with(WARN, &with_jwt);
    // A key request: the payload is not read (the key takes precedence).
    let ran = get(&root, &[("x-api-key", "k-good")]);
    assert_eq!((ran.status, ran.counts()), (200, key.clone()));
    // A token request: one more property read (the payload), the subject's
    // set instead of the key's entry, no key to strip and no per-key counter.
    let payload = crate::auth::jwt::encode_pairs(&[("sub", b"alice".to_vec())]);
    fake_host::with(|h| h.jwt_payload = Some(payload));
    let ran = get(&root, &[]);
    let mut expected = key;
    *expected.entry("get_property").or_default() += 1;
    for gone in ["remove_header_map_value", "increment_metric"] {
        *expected.entry(gone).or_default() -= 1;
    }
    expected.retain(|_, n| *n > 0);
    println!(
        "token GET: {} -> {} host calls {:?}",
        ran.status,
        ran.total(),
        ran.counts()
    );
    assert_eq!((ran.status, ran.counts()), (200, expected));
    let headers = fake_host::with(|h| h.request_headers.clone());
    assert!(headers.contains(&("x-api-key-name".to_string(), b"alice".to_vec())));
}

#[test]
fn info_level_adds_the_success_line() {
    // At `info` an admitted request also writes its `auth_success` event
    // (with its duration: one more clock read).
    let root = configured(INFO);
    let ran = get(&root, &[("x-api-key", "k-good")]);
    assert_eq!(ran.status, 200);
    assert_eq!(ran.total(), 15, "{:?}", ran.calls);
    assert_eq!(ran.counts().get("log"), Some(&1));
    assert_eq!(ran.counts().get("get_current_time"), Some(&2));
}

#[test]
fn forwarded_requests_lose_the_key_and_forged_identity() {
    // What the header edits are for: the key never goes upstream, the
    // identity headers are the filter's, a forged flags header is removed.
    let root = configured(WARN);
    let ran = get(
        &root,
        &[
            ("x-api-key", "k-good"),
            ("x-api-key-name", "admin"),
            ("x-rag-guard-flags", "none"),
        ],
    );
    assert_eq!(ran.status, 200);
    let headers = fake_host::with(|h| h.request_headers.clone());
    let value = |name: &str| {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect::<Vec<_>>()
    };
    assert!(value("x-api-key").is_empty());
    assert_eq!(value("x-api-key-name"), ["good"]);
    assert_eq!(value("x-api-key-tier"), ["pro"]);
    assert!(value("x-rag-guard-flags").is_empty());
}

#[test]
#[ignore = "timing, not a check: cargo test --release --lib native_cost -- --ignored --nocapture"]
fn native_cost_of_the_paths() {
    // The adapter and the core natively, fake host included: what V8 runs
    // in the filter's callbacks, at native speed, for comparison with
    // `make bench-host-calls`' phase timing.
    let root = configured(WARN);
    for (name, headers) in [
        ("authenticated GET", &[("x-api-key", "k-good")][..]),
        ("401, no key", &[][..]),
    ] {
        let n = 20_000;
        let started = std::time::Instant::now();
        for _ in 0..n {
            get(&root, headers);
        }
        println!(
            "{name}: {} ns per request",
            started.elapsed().as_nanos() / n
        );
    }
}
