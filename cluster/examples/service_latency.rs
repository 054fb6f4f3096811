//! Round-trip time of `ShouldRateLimit` straight to rag-guard-cluster (and
//! its Redis), without Envoy: what the service and Redis add to a request in
//! cluster mode. `make bench` runs it beside its Envoy rows.
//!
//! `service_latency PORT [GAP_US] [COUNT]`: COUNT calls (default 2000), one
//! at a time, GAP_US apart (default 2000: the pace of one of the bench's
//! four connections at 500 requests/s); prints p50 and p99 in microseconds
//! of the calls after the first 100.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;

const WARM_UP: usize = 100;

fn descriptor(window: &str, unit: Unit) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: vec![
            Entry {
                key: "rag_guard_key".into(),
                value: "latency-probe".into(),
            },
            Entry {
                key: "window".into(),
                value: window.into(),
            },
        ],
        limit: Some(RateLimitOverride {
            requests_per_unit: 1_000_000_000,
            unit: unit as i32,
        }),
        ..Default::default()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .ok_or("usage: service_latency PORT [GAP_US] [COUNT]")?
        .parse()?;
    let gap: u64 = args.next().map_or(Ok(2000), |a| a.parse())?;
    let count: usize = args.next().map_or(Ok(2000), |a| a.parse())?;
    let mut client = RateLimitServiceClient::connect(format!("http://127.0.0.1:{port}")).await?;
    let request = RateLimitRequest {
        domain: "latency-probe".into(),
        descriptors: vec![
            descriptor("minute", Unit::Minute),
            descriptor("hour", Unit::Hour),
        ],
        hits_addend: 1,
    };
    let mut micros = Vec::with_capacity(count);
    for i in 0..count.max(WARM_UP + 1) {
        let started = Instant::now();
        client.should_rate_limit(request.clone()).await?;
        if i >= WARM_UP {
            micros.push(started.elapsed().as_micros());
        }
        tokio::time::sleep(Duration::from_micros(gap)).await;
    }
    micros.sort_unstable();
    let p = |q: usize| micros[(micros.len() * q / 100).min(micros.len() - 1)];
    println!("p50_us {} p99_us {}", p(50), p(99));
    Ok(())
}
