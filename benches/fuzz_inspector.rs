//! Randomized robustness run of the body inspector (`make fuzz`; not part of
//! `make test`). cargo-fuzz needs a nightly toolchain, which this project's
//! machines cannot fetch, so this is the stable-Rust equivalent: it mutates
//! seed bodies (the dev corpus lines wrapped as `question` and as JSON,
//! when ../shared/corpus is present, plus built-in seeds) and random bytes,
//! for FUZZ_SECONDS (default 60), and checks that every input gets a clean
//! verdict: forwarded, or refused with a 4xx. A panic aborts the run with
//! the input printed as hex. Nothing is written to disk, so there is no
//! corpus to keep small.

use std::time::{Duration, Instant};

use rag_guard::config;
use rag_guard::inspection::verdict::BodyVerdict;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"\\u0000",
    b"\\ud800",
    b"\\u003c",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\x8d",
    b"question",
    b"max_sources",
    b"temperature",
    b"1e309",
    b"-0",
    b"null",
    b"true",
    b"ignore previous instructions",
    b"<script>",
    b"' or 1=1--",
    b"{{7*7}}",
    b"%3c",
    b"&#60;",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(8) {
        let pos = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if !out.is_empty() => {
                let end = (pos + rng.below(16)).min(out.len());
                out.drain(pos.min(end)..end);
            }
            1 => out.insert(pos.min(out.len()), rng.next() as u8),
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                for (i, b) in t.iter().enumerate() {
                    out.insert((pos + i).min(out.len()), *b);
                }
            }
            3 if !out.is_empty() => {
                let i = pos.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            _ => {
                let copy: Vec<u8> = out.iter().take(rng.below(64)).copied().collect();
                for (i, b) in copy.iter().enumerate() {
                    out.insert((pos + i).min(out.len()), *b);
                }
            }
        }
    }
    out
}

fn main() {
    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let Ok(cfg) = config::parse(br#"{"keys": []}"#) else {
        eprintln!("default configuration refused");
        std::process::exit(1);
    };
    let inspection = &cfg.body_inspection;
    let routes: Vec<_> = inspection.routes.clone();
    let mut seeds: Vec<Vec<u8>> = vec![
        br#"{"question": "What is our refund policy?", "max_sources": 3, "temperature": 0.5}"#
            .to_vec(),
        br#"{"filename": "a.md", "content": "hello"}"#.to_vec(),
    ];
    for name in ["malicious", "benign"] {
        let path = format!(
            "{}/../shared/corpus/dev/{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines().take(3000) {
                seeds.push(
                    serde_json::json!({ "question": line })
                        .to_string()
                        .into_bytes(),
                );
            }
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut passed, mut refused) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..256 {
            let input = if rng.below(10) == 0 {
                (0..rng.below(256)).map(|_| rng.next() as u8).collect()
            } else {
                let seed = &seeds[rng.below(seeds.len())];
                mutate(&mut rng, seed)
            };
            let route = &routes[rng.below(routes.len())];
            match inspection.inspect(route, &input) {
                BodyVerdict::Pass { .. } => passed += 1,
                BodyVerdict::Reject(r) if (400..500).contains(&r.status) => refused += 1,
                BodyVerdict::Reject(r) => {
                    let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
                    eprintln!("status {} outside 4xx for input {hex}", r.status);
                    std::process::exit(1);
                }
            }
            runs += 1;
        }
    }
    println!(
        "fuzz_inspector: {runs} inputs in {seconds}s ({} seeds): {passed} forwarded, {refused} refused with 4xx, no panic",
        seeds.len()
    );
}
