//! The cluster API (`Sync`, `Usage`) through the service binary and a real
//! Redis, both started here on free loopback ports: two replicas' reports
//! meet in Redis as the filters rely on.

use std::time::{SystemTime, UNIX_EPOCH};

use rag_guard_cluster::proto::{
    DayUsage, KeyReport, LeakPolicy, Revocation, Seen, SyncRequest, SyncResponse, UsageRequest,
    UsageResponse,
};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

mod common;

use common::{free_port, start_redis, start_service};

async fn call<Req, Resp>(channel: &Channel, method: &str, req: Req) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path =
        PathAndQuery::from_maybe_shared(format!("/rag_guard.cluster.v1.Cluster/{method}")).unwrap();
    grpc.unary(
        tonic::Request::new(req),
        path,
        ProstCodec::<Req, Resp>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

/// One inline command to the Redis on `port`; waits for its reply.
fn redis_command(port: u16, command: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"+OK"), "{:?}", &buf[..n]);
}

fn now() -> (u64, u32) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    (d.as_millis() as u64, d.as_secs() as u32)
}

fn report(name: &str, seen: &[u32], revoke: bool) -> KeyReport {
    let (_, secs) = now();
    KeyReport {
        name: name.into(),
        seen: seen
            .iter()
            .map(|&tag| Seen {
                tag,
                last_seen: secs,
            })
            .collect(),
        leak: Some(LeakPolicy {
            max_addresses: 10,
            window_secs: 300,
            revoke,
        }),
        ..Default::default()
    }
}

async fn sync(
    c: &Channel,
    replica: &str,
    since: u64,
    epoch: u64,
    keys: Vec<KeyReport>,
) -> SyncResponse {
    let req = SyncRequest {
        domain: "test".into(),
        replica: replica.into(),
        since,
        epoch,
        keys,
    };
    call(c, "Sync", req).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_meet_in_redis() {
    let (redis_port, port) = (free_port(), free_port());
    let _redis = start_redis(redis_port);
    let mut service = start_service(port, redis_port);
    let c = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // Replica A revokes "acme"; B learns it from its next sync.
    let (ms, secs) = now();
    let mut a = report("acme", &[], true);
    a.revocation = Some(Revocation {
        revoked: true,
        by: 1,
        at_secs: u64::from(secs),
        changed_ms: ms,
        ..Default::default()
    });
    let ra = sync(&c, "A", 0, 0, vec![a.clone()]).await;
    assert_eq!(ra.revocations.len(), 1);
    let ep = ra.epoch;
    assert_ne!(ep, 0, "the service draws an epoch");
    let rb = sync(&c, "B", 0, 0, vec![]).await;
    assert_eq!(rb.revocations[0].name, "acme");
    assert!(rb.revocations[0].revoked);
    // Nothing new since that version.
    assert!(sync(&c, "B", rb.version, ep, vec![])
        .await
        .revocations
        .is_empty());
    // B restores later; A's stale revocation, resent, does not undo it.
    let mut b = report("acme", &[], true);
    b.revocation = Some(Revocation {
        revoked: false,
        changed_ms: ms + 10,
        ..Default::default()
    });
    let rb2 = sync(&c, "B", rb.version, ep, vec![b]).await;
    assert!(!rb2.revocations[0].revoked);
    let ra2 = sync(&c, "A", ra.version, ep, vec![a.clone()]).await;
    assert_eq!(ra2.revocations.len(), 1);
    assert!(!ra2.revocations[0].revoked, "the later restore wins");
    // A replica with nothing new to learn by version, reporting a change
    // older than the stored one, still gets the stored one.
    let rc = sync(&c, "C", ra2.version, ep, vec![a.clone()]).await;
    assert_eq!(rc.revocations.len(), 1);
    assert!(!rc.revocations[0].revoked);

    // Leak detection over the union: 6 addresses on A, 5 on B (limit 10).
    let ra3 = sync(
        &c,
        "A",
        ra2.version,
        ep,
        vec![report("leaky", &[1, 2, 3, 4, 5, 6], true)],
    )
    .await;
    assert!(ra3.revocations.is_empty(), "6 addresses are fine");
    let rb3 = sync(
        &c,
        "B",
        rb2.version,
        ep,
        vec![report("leaky", &[7, 8, 9, 10, 11], true)],
    )
    .await;
    let leaky: Vec<_> = rb3
        .revocations
        .iter()
        .filter(|r| r.name == "leaky")
        .collect();
    assert_eq!(leaky.len(), 1);
    assert!(leaky[0].revoked);
    assert_eq!(leaky[0].by, 2, "by leak detection");
    // Report mode: the crossing is reported once, nothing revoked.
    let _ = sync(
        &c,
        "A",
        0,
        0,
        vec![report("watched", &[1, 2, 3, 4, 5, 6], false)],
    )
    .await;
    let r = sync(
        &c,
        "B",
        0,
        0,
        vec![report("watched", &[7, 8, 9, 10, 11], false)],
    )
    .await;
    assert_eq!(r.leaks.len(), 1);
    assert_eq!(
        (r.leaks[0].name.as_str(), r.leaks[0].distinct),
        ("watched", 11)
    );
    assert!(!r.revocations.iter().any(|x| x.name == "watched"));
    let again = sync(&c, "B", 0, 0, vec![report("watched", &[7], false)]).await;
    assert!(again.leaks.is_empty());

    // Usage: each replica's totals, summed; resending a total counts once.
    let used = |replica_total: u32| KeyReport {
        days: vec![DayUsage {
            day: 20_000,
            admitted: replica_total,
            rate_limited: 1,
            rejected: 0,
        }],
        request_count: u64::from(replica_total) + 1,
        last_used: 1_700_000_000,
        ..report("acme", &[], true)
    };
    for _ in 0..2 {
        sync(&c, "A", 0, 0, vec![used(5)]).await;
        sync(&c, "B", 0, 0, vec![used(7)]).await;
    }
    let usage_req = || UsageRequest {
        domain: "test".into(),
        names: vec!["acme".into(), "nobody".into()],
        first_day: 19_999,
        last_day: 20_000,
    };
    let u: UsageResponse = call(&c, "Usage", usage_req()).await.unwrap();
    assert_eq!(u.keys.len(), 2);
    assert_eq!(u.keys[0].days.len(), 1);
    assert_eq!(u.keys[0].days[0].admitted, 12);
    assert_eq!(u.keys[0].days[0].rate_limited, 2);
    assert_eq!(u.keys[0].request_count, 14);
    assert!(u.keys[1].days.is_empty());

    // A service restart loses nothing.
    drop(service);
    service = start_service(port, redis_port);
    let c = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let fresh = sync(&c, "C", 0, 0, vec![]).await;
    assert!(fresh
        .revocations
        .iter()
        .any(|r| r.name == "leaky" && r.revoked));
    let u: UsageResponse = call(&c, "Usage", usage_req()).await.unwrap();
    assert_eq!(u.keys[0].days[0].admitted, 12);

    // Redis loses its data: a new epoch, and a replica whose version is
    // from the old one gets every record again (not only those above it).
    let high = sync(&c, "A", 0, ep, vec![]).await.version;
    redis_command(redis_port, "FLUSHALL");
    let (ms, secs) = now();
    let mut again = report("acme", &[], true);
    again.revocation = Some(Revocation {
        revoked: true,
        by: 1,
        at_secs: u64::from(secs),
        changed_ms: ms,
        ..Default::default()
    });
    let ra4 = sync(&c, "A", high, ep, vec![again]).await;
    assert_ne!(ra4.epoch, ep);
    let rb4 = sync(&c, "B", high, ep, vec![]).await;
    assert!(rb4
        .revocations
        .iter()
        .any(|r| r.name == "acme" && r.revoked));

    // Bounds are refused before Redis.
    let err = call::<_, UsageResponse>(
        &c,
        "Usage",
        UsageRequest {
            last_day: 20_100,
            ..usage_req()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    drop(service);
}
