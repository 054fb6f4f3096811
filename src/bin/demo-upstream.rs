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
//! Usage: `demo-upstream [--listen 127.0.0.1:8000] [--threads 2]`. Prints
//! `listening on http://ADDR` once bound (port 0 picks a free port).
//!
//! Built on hyper and tokio: keep-alive connections from Envoy stay open for
//! a long time, and a server must not park new connections behind them.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::convert::Infallible;
use std::io::Write;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use rag_guard::auth::digest::sha256_hex;
use serde_json::{json, Value};

fn main() -> Result<(), String> {
    let mut listen = "127.0.0.1:8000".to_string();
    let mut threads = 2usize;
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
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_io()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?
        .block_on(serve(listen))
}

async fn serve(listen: String) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("bind {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let path = parts.uri.path();
    let (status, value) = match (&parts.method, path) {
        (_, p) if p == "/echo" || p.starts_with("/echo/") => (200, echo(&parts, &body)),
        (&Method::GET, "/health") => (200, json!({"status": "ok"})),
        (&Method::POST, "/query") => query(&body),
        (&Method::GET, "/documents") => (
            200,
            json!({"documents": [{"id": "doc-1", "filename": "handbook.md"}]}),
        ),
        (&Method::POST, "/documents") => (
            201,
            json!({"id": "doc-new", "bytes": body.len(), "sha256": sha256_hex(&body)}),
        ),
        _ => (404, json!({"detail": "Not Found"})),
    };
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "server",
        hyper::header::HeaderValue::from_static("demo-upstream"),
    );
    Ok(response)
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

fn echo(parts: &hyper::http::request::Parts, body: &[u8]) -> Value {
    let headers: Vec<Value> = parts
        .headers
        .iter()
        .map(|(name, value)| json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())]))
        .collect();
    let url = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    json!({
        "method": parts.method.as_str(),
        "url": url,
        "headers": headers,
        "body_bytes": body.len(),
        "body_sha256": sha256_hex(body),
    })
}
