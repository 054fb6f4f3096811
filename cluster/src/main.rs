//! `rag-guard-cluster --listen 127.0.0.1:PORT --redis redis://127.0.0.1:PORT`
//!
//! Serves Envoy's rate limit service API and rag-guard's cluster API over
//! gRPC (HTTP/2 cleartext) on `--listen`, with every counter, revocation
//! and usage total in the Redis at `--redis`. Stops on
//! SIGINT or SIGTERM.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::net::SocketAddr;
use std::process::ExitCode;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use rag_guard_cluster::api::{Cluster, ClusterServer};
use rag_guard_cluster::service::Rls;
use rag_guard_cluster::store::Store;
use tokio::signal::unix::{signal, SignalKind};

const USAGE: &str = "usage: rag-guard-cluster --listen HOST:PORT --redis redis://HOST:PORT";

fn args() -> Result<(SocketAddr, String), String> {
    let mut listen = None;
    let mut redis = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--listen" => {
                listen = Some(
                    value
                        .parse::<SocketAddr>()
                        .map_err(|e| format!("--listen {value:?}: {e}"))?,
                )
            }
            "--redis" => redis = Some(value),
            _ => return Err(format!("unknown option {flag:?}\n{USAGE}")),
        }
    }
    match (listen, redis) {
        (Some(l), Some(r)) => Ok((l, r)),
        _ => Err(USAGE.to_string()),
    }
}

async fn serve(listen: SocketAddr, redis: String) -> Result<(), String> {
    let store = std::sync::Arc::new(Store::new(&redis)?);
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    eprintln!("rag-guard-cluster: serving the rate limit service and the cluster API on {listen}, state in {redis}");
    tonic::transport::Server::builder()
        // Bounded work per client: a slow call is cut, and one connection
        // has at most this many calls in flight.
        .timeout(std::time::Duration::from_secs(2))
        .concurrency_limit_per_connection(256)
        .add_service(RateLimitServiceServer::new(Rls::new(store.clone())))
        .add_service(ClusterServer::new(Cluster::new(store)))
        .serve_with_shutdown(listen, stop)
        .await
        .map_err(|e| format!("server failed: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match args() {
        Ok((listen, redis)) => serve(listen, redis).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rag-guard-cluster: {e}");
            ExitCode::FAILURE
        }
    }
}
