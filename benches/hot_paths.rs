//! Native timings of the filter's hot pure functions (`cargo bench --bench
//! hot_paths`, also run by `make bench` and `make bench-limiter`). Native
//! code, not wasm in V8: these bound the compute part of a request; the
//! live-Envoy benchmarks (bench/suite.py, bench/limiter.py) add host calls
//! and the wasm runtime. bench/suite.py reads the `... ns/op` lines.

use std::hint::black_box;
use std::time::Instant;

use rag_guard::admission::{decide, RequestView};
use rag_guard::auth::digest::{sha256, sha256_hex};
use rag_guard::auth::failed_auth::FailedAuthTable;
use rag_guard::auth::leak_detection::{address_tag, LeakDetection};
use rag_guard::config;
use rag_guard::inspection::forms::Forms;
use rag_guard::inspection::normalization::normalize;
use rag_guard::inspection::rules::Category;
use rag_guard::key_state;
use rag_guard::key_state::rate_limiter;
use rag_guard::limits::token_bucket::{check, BucketState, Limits};
use rag_guard::ops::usage;
use rag_guard::shared_store::MemoryStore;

fn time(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(iterations));
    }
    println!("{name:<58} {best:>8.0} ns/op (best of 5 x {iterations})");
}

fn main() {
    let key = b"rag_bench-key-0000000000000000000000000000000000";
    let text = format!(
        r#"{{"keys": [{{"name": "bench", "sha256": "{}", "tier": "bench"}}],
            "tiers": {{"bench": {{"per_minute": 1000000, "per_hour": 100000000, "burst": 1000000}}}},
            "failed_auth": {{"per_minute": 1000000}}}}"#,
        sha256_hex(key)
    );
    let Ok(cfg) = config::parse(text.as_bytes()) else {
        eprintln!("bad bench config");
        return;
    };
    let store = MemoryStore::new();
    let _ = key_state::ensure_entries(&store, cfg.keys.iter().map(|k| &k.sha256));
    let Ok((auth_table, _)) = FailedAuthTable::open(&store, || Some([7; 16])) else {
        eprintln!("cannot create the failed-auth table");
        return;
    };
    let limits = Limits {
        per_minute: 1_000_000,
        per_hour: 100_000_000,
        burst: 1_000_000,
    };
    let mut now = 1_800_000_000_000_000_000u64;

    time(
        "sha256 of a 47-byte key + key table lookup",
        200_000,
        || {
            black_box(cfg.keys.get(&sha256(black_box(key))));
        },
    );
    time(
        "token_bucket::check (3 buckets, admitted)",
        1_000_000,
        || {
            now += 1000;
            black_box(check(black_box(&BucketState::default()), &limits, 1, now));
        },
    );
    let digest = sha256(key);
    let detection = LeakDetection::default();
    time(
        "rate_limiter::spend on MemoryStore (get + CAS, leak window)",
        200_000,
        || {
            now += 1000;
            let source = rate_limiter::Source {
                tag: Some(address_tag(std::net::Ipv4Addr::LOCALHOST.into())),
                detection: &detection,
            };
            let _ = black_box(rate_limiter::spend(
                &store, &digest, &limits, 1, now, source,
            ));
        },
    );
    let _ = usage::ensure_entries(&store, [digest].iter());
    let mut acc = usage::Accumulator::default();
    time(
        "usage::Accumulator::record (per request, no host call)",
        1_000_000,
        || {
            acc.record(black_box(&digest), usage::Kind::Admitted, 1_800_000_000);
        },
    );
    time(
        "usage::flush of one key (get + CAS, per tick)",
        200_000,
        || {
            acc.record(&digest, usage::Kind::Admitted, 1_800_000_000);
            black_box(usage::flush(&store, &mut acc));
        },
    );
    let question = format!(
        r#"{{"question": "{}"}}"#,
        &"What does the refund policy say about late returns? ".repeat(40)[..2000]
    );
    let inspection = &cfg.body_inspection;
    if let Some(route) = inspection.route(b"POST", b"/query") {
        time(
            "body_inspection::inspect, 2,000-character question",
            200,
            || {
                black_box(inspection.inspect(route, black_box(question.as_bytes())));
            },
        );
    }
    // The two parts of the question's screening, without the JSON parse.
    let text = &"What does the refund policy say about late returns? ".repeat(40)[..2000];
    time(
        "text_normalization::normalize, 2,000 characters",
        2_000,
        || {
            black_box(normalize(black_box(text)));
        },
    );
    time(
        "RuleSet::screen (normalize + all rules), 2,000 characters",
        200,
        || {
            black_box(inspection.rules.screen(black_box(text), &Category::ALL));
        },
    );
    let document = format!(
        r#"{{"filename": "big.txt", "content": "{}"}}"#,
        "x".repeat(1 << 20)
    );
    time("json_strict::parse, 1 MB document", 20, || {
        black_box(
            rag_guard::inspection::json_strict::parse(black_box(document.as_bytes())).is_ok(),
        );
    });
    let content = "x".repeat(1 << 20);
    time("normalization::collapsed_len, 1 MB", 20, || {
        black_box(rag_guard::inspection::normalization::collapsed_len(
            black_box(&content),
        ));
    });
    if let Some(route) = inspection.route(b"POST", b"/documents") {
        time(
            "body_inspection::inspect, 1 MB document (not screened)",
            20,
            || {
                black_box(inspection.inspect(route, black_box(document.as_bytes())));
            },
        );
    }
    if let Some(scorer) = &inspection.scorer {
        let prose = std::fs::read_to_string("tests/data/train_documents.txt")
            .unwrap_or_default()
            .replace('\n', " ")
            .repeat(8);
        // Varied prose (a repeated sentence is cheaper: its repeats are
        // predictable).
        let question = prose.get(..2000).unwrap_or(&prose);
        let forms = Forms::of(question);
        time(
            "Scorer::logit (features + weights), 2,000 characters of prose",
            2_000,
            || {
                black_box(scorer.logit(black_box(&forms).all()));
            },
        );
        let prose = prose.get(..1 << 20).unwrap_or(&prose);
        time(
            "Scorer::screen_document, 1 MB of prose (windows)",
            20,
            || {
                black_box(scorer.screen_document(black_box(prose)));
            },
        );
    }
    let keys: [&[u8]; 1] = [key];
    let req = RequestView {
        authority: Some(b"127.0.0.1:10000"),
        path: b"/query",
        method: b"GET",
        api_keys: &keys,
        client_ip: Some(
            "127.0.0.1"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        ),
        admin_secrets: &[],
        method_override: false,
        jwt_payload: None,
        bearer: false,
    };
    time(
        "admission::decide, authenticated + limiter + headers",
        100_000,
        || {
            now += 1000;
            black_box(decide(&cfg, &auth_table, &req, &store, now));
        },
    );
}
