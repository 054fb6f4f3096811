//! A stand-in RAG service for `make run` and the integration tests. Not part
//! of the filter.
//!
//! - `GET /health` -> `{"status": "ok"}`
//! - `POST /query` -> an answer built from the JSON `question`
//! - `GET /documents`, `POST /documents`
//! - `ANY /echo/...` -> what reached the upstream: method, path, every header
//!   and the body's length and SHA-256, so tests can assert exactly what the
//!   filter forwarded.
//!
//! Usage: `demo-upstream [--listen 127.0.0.1:8000] [--threads 4]`. Prints
//! `listening on http://ADDR` once bound (port 0 picks a free port).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::sync::Arc;

use rag_guard::digest::sha256_hex;
use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

fn main() -> Result<(), String> {
    let mut listen = "127.0.0.1:8000".to_string();
    let mut threads = 4usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v,
            ("--threads", Some(v)) => {
                threads = v.parse().map_err(|_| "--threads needs a number")?
            }
            _ => return Err("usage: demo-upstream [--listen ADDR] [--threads N]".into()),
        }
    }
    let server = Arc::new(Server::http(&listen).map_err(|e| format!("bind {listen}: {e}"))?);
    let addr = server.server_addr().to_ip().ok_or("not an IP listener")?;
    println!("listening on http://{addr}");

    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let server = Arc::clone(&server);
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    handle(request);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

fn handle(mut request: Request) {
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let url = request.url().to_string();
    let path = url.split('?').next().unwrap_or("").to_string();
    let method = request.method().clone();
    let (status, value) = match (&method, path.as_str()) {
        (_, p) if p == "/echo" || p.starts_with("/echo/") => (200, echo(&request, &body)),
        (Method::Get, "/health") => (200, json!({"status": "ok"})),
        (Method::Post, "/query") => query(&body),
        (Method::Get, "/documents") => (
            200,
            json!({"documents": [{"id": "doc-1", "filename": "handbook.md"}]}),
        ),
        (Method::Post, "/documents") => (
            201,
            json!({"id": "doc-new", "bytes": body.len(), "sha256": sha256_hex(&body)}),
        ),
        _ => (404, json!({"detail": "Not Found"})),
    };
    let mut response = Response::from_string(value.to_string()).with_status_code(status);
    for (name, value) in [
        ("content-type", "application/json"),
        ("server", "demo-upstream"),
    ] {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    let _ = request.respond(response);
}

fn query(body: &[u8]) -> (u16, Value) {
    let question = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.get("question")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    match question {
        Some(q) => (
            200,
            json!({
                "answer": format!("This demo service would answer: {q}"),
                "sources": [{"id": "doc-1", "score": 0.42}],
                "received_body_sha256": sha256_hex(body),
            }),
        ),
        None => (422, json!({"detail": "question is required"})),
    }
}

fn echo(request: &Request, body: &[u8]) -> Value {
    let headers: Vec<Value> = request
        .headers()
        .iter()
        .map(|h| {
            json!([
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str()
            ])
        })
        .collect();
    json!({
        "method": request.method().as_str(),
        "url": request.url(),
        "headers": headers,
        "body_bytes": body.len(),
        "body_sha256": sha256_hex(body),
    })
}
