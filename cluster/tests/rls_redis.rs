//! rag-guard-cluster through its gRPC API, against a real Redis: both
//! started here on free loopback ports (`redis-server` from Debian, which
//! `make test` installs), both stopped by PID at the end.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::transport::Channel;

mod common;

use common::{free_port, start_redis, start_service};

async fn client(port: u16) -> RateLimitServiceClient<Channel> {
    RateLimitServiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap()
}

fn descriptor(key: &str, limit: u32, unit: Unit) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: vec![
            Entry {
                key: "rag_guard_key".into(),
                value: key.into(),
            },
            Entry {
                key: "tier".into(),
                value: "test".into(),
            },
        ],
        limit: Some(RateLimitOverride {
            requests_per_unit: limit,
            unit: unit as i32,
        }),
        ..Default::default()
    }
}

fn request(descriptors: Vec<RateLimitDescriptor>, hits: u32) -> RateLimitRequest {
    RateLimitRequest {
        domain: "rag-guard".into(),
        descriptors,
        hits_addend: hits,
    }
}

async fn ask(c: &mut RateLimitServiceClient<Channel>, r: RateLimitRequest) -> RateLimitResponse {
    c.should_rate_limit(r).await.unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_service_against_redis() {
    // Started before its Redis: UNAVAILABLE at once, also for calls made
    // while one is connecting; served once Redis is up.
    let redis_port = free_port();
    let port = free_port();
    let mut service = start_service(port, redis_port);
    let early = client(port).await;
    let started = Instant::now();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let mut c = early.clone();
            tokio::spawn(async move {
                c.should_rate_limit(request(vec![descriptor("early", 5, Unit::Week)], 1))
                    .await
            })
        })
        .collect();
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    }
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "{:?}",
        started.elapsed()
    );
    let mut redis = start_redis(redis_port);
    let mut c = early.clone();
    let up = Instant::now();
    while c
        .should_rate_limit(request(vec![descriptor("early", 5, Unit::Week)], 1))
        .await
        .is_err()
    {
        assert!(
            up.elapsed() < Duration::from_secs(5),
            "no answer 5 s after Redis started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Exact across connections: 40 requests at once from two clients (two
    // Envoy replicas) on a budget of 20: exactly 20 admitted.
    let (a, b) = (client(port).await, client(port).await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let mut c = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            ask(
                &mut c,
                request(vec![descriptor("exact", 20, Unit::Week)], 1),
            )
            .await
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.overall_code == Code::Ok as i32 {
            admitted += 1;
        } else {
            assert_eq!(r.overall_code, Code::OverLimit as i32);
            let s = &r.statuses[0];
            assert_eq!(s.limit_remaining, 0);
            assert!(s.duration_until_reset.unwrap().seconds <= 7 * 86_400);
        }
    }
    assert_eq!(admitted, 20);

    // All windows or none: the week (3) runs out before the day (5), and
    // the refused request spends nothing from the day either. (Days and
    // weeks, so that no window ends while the test runs.)
    let mut c = client(port).await;
    let both = || {
        request(
            vec![
                descriptor("both", 5, Unit::Day),
                descriptor("both", 3, Unit::Week),
            ],
            1,
        )
    };
    for remaining in [2, 1, 0] {
        let r = ask(&mut c, both()).await;
        assert_eq!(r.overall_code, Code::Ok as i32);
        assert_eq!(r.statuses[1].limit_remaining, remaining);
    }
    let r = ask(&mut c, both()).await;
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert_eq!(r.statuses[0].code, Code::Ok as i32);
    assert_eq!(r.statuses[1].code, Code::OverLimit as i32);
    let day_left = r.statuses[0].limit_remaining;
    // A cost above what is left is refused whole; a descriptor without a
    // limit is answered OK and counted nowhere.
    let r = ask(&mut c, request(vec![descriptor("cost", 5, Unit::Week)], 6)).await;
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    let r = ask(&mut c, request(vec![descriptor("cost", 5, Unit::Week)], 5)).await;
    assert_eq!(
        (r.overall_code, r.statuses[0].limit_remaining),
        (Code::Ok as i32, 0)
    );
    let mut free = descriptor("free", 1, Unit::Hour);
    free.limit = None;
    let r = ask(&mut c, request(vec![free], 1)).await;
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert!(r.statuses[0].current_limit.is_none());
    // Bad requests are refused before Redis.
    let err = c
        .should_rate_limit(request(Vec::new(), 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // A service restart keeps every counter (they live in Redis).
    drop(service);
    let port = free_port();
    service = start_service(port, redis_port);
    let mut c = client(port).await;
    let r = ask(&mut c, both()).await;
    assert_eq!(
        r.overall_code,
        Code::OverLimit as i32,
        "the hour stays spent"
    );
    assert_eq!(r.statuses[0].limit_remaining, day_left);

    // Redis down: UNAVAILABLE, fast. Back up: served again within 5 s.
    drop(redis);
    let started = Instant::now();
    let err = c
        .should_rate_limit(request(vec![descriptor("down", 5, Unit::Hour)], 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "{:?}",
        started.elapsed()
    );
    redis = start_redis(redis_port);
    let back = Instant::now();
    loop {
        let r = c
            .should_rate_limit(request(vec![descriptor("up", 5, Unit::Hour)], 1))
            .await;
        if let Ok(r) = r {
            assert_eq!(r.into_inner().overall_code, Code::Ok as i32);
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "not back after 5 s: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(service);
    drop(redis);
}
