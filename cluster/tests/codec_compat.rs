//! The filter writes and reads the rate limit service messages by hand
//! (`rag_guard::cluster::rls`, to keep the wasm small); these tests check its
//! bytes against the protobuf definitions of `envoy-types`, both ways.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit as PbUnit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code as PbCode, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration;
use prost::Message;
use rag_guard::cluster::rls::{decode_response, encode_request, Code, Descriptor, Status, Unit};

#[test]
fn requests_decode_as_envoy_types() {
    let key = vec![("rag_guard_key", "acme-prod"), ("tier", "pro")];
    let ds = [
        Descriptor {
            entries: key.clone(),
            limit: Some((300, Unit::Minute)),
        },
        Descriptor {
            entries: key,
            limit: Some((10_000, Unit::Hour)),
        },
        Descriptor {
            entries: vec![("other", "")],
            limit: None,
        },
    ];
    let bytes = encode_request("rag-guard", &ds, 5);
    let decoded = RateLimitRequest::decode(bytes.as_slice()).unwrap();
    let entry = |k: &str, v: &str| Entry {
        key: k.into(),
        value: v.into(),
    };
    let limited = |n, unit: PbUnit| RateLimitDescriptor {
        entries: vec![entry("rag_guard_key", "acme-prod"), entry("tier", "pro")],
        limit: Some(RateLimitOverride {
            requests_per_unit: n,
            unit: unit as i32,
        }),
        ..Default::default()
    };
    assert_eq!(
        decoded,
        RateLimitRequest {
            domain: "rag-guard".into(),
            descriptors: vec![
                limited(300, PbUnit::Minute),
                limited(10_000, PbUnit::Hour),
                RateLimitDescriptor {
                    entries: vec![entry("other", "")],
                    ..Default::default()
                },
            ],
            hits_addend: 5,
        }
    );
}

#[test]
fn envoy_types_responses_decode() {
    let response = RateLimitResponse {
        overall_code: PbCode::OverLimit as i32,
        statuses: vec![
            DescriptorStatus {
                code: PbCode::Ok as i32,
                current_limit: Some(RateLimit {
                    name: "minute".into(),
                    requests_per_unit: 300,
                    unit: PbUnit::Minute as i32,
                }),
                limit_remaining: 12,
                duration_until_reset: Some(Duration {
                    seconds: 41,
                    nanos: 0,
                }),
                ..Default::default()
            },
            DescriptorStatus {
                code: PbCode::OverLimit as i32,
                current_limit: Some(RateLimit {
                    name: String::new(),
                    requests_per_unit: 10_000,
                    unit: PbUnit::Hour as i32,
                }),
                limit_remaining: 0,
                duration_until_reset: Some(Duration {
                    seconds: 1_799,
                    nanos: 500,
                }),
                ..Default::default()
            },
            DescriptorStatus::default(),
        ],
        raw_body: b"ignored".to_vec(),
        ..Default::default()
    };
    let answer = decode_response(&response.encode_to_vec()).unwrap();
    assert_eq!(answer.overall, Code::OverLimit);
    assert_eq!(
        answer.statuses,
        vec![
            Status {
                code: Some(Code::Ok),
                limit: Some(300),
                remaining: 12,
                reset_secs: Some(41),
            },
            Status {
                code: Some(Code::OverLimit),
                limit: Some(10_000),
                remaining: 0,
                reset_secs: Some(1_800),
            },
            Status::default(),
        ]
    );
}

mod sync_messages {
    //! The same for rag-guard's cluster API (`rag_guard::cluster::sync_wire`
    //! against the service's prost types).

    use prost::Message;
    use rag_guard::cluster::sync_wire::{
        decode_sync, decode_usage, encode_sync, encode_usage, Change, DayUsage, KeyReport,
        LeakPolicy, Seen, SyncRequest,
    };
    use rag_guard_cluster::proto;

    #[test]
    fn sync_requests_decode_as_prost() {
        let req = SyncRequest {
            domain: "rag-guard",
            replica: "00ff",
            since: 300,
            epoch: 1 << 50,
            keys: vec![
                KeyReport {
                    name: "acme",
                    change: Some(Change {
                        revoked: true,
                        by: 2,
                        at_secs: 1_700_000_000,
                        changed_ms: 1_700_000_000_123,
                    }),
                    seen: vec![Seen {
                        tag: u32::MAX,
                        last_seen: 1_700_000_000,
                    }],
                    leak: LeakPolicy {
                        max_addresses: 10,
                        window_secs: 300,
                        revoke: true,
                    },
                    days: vec![DayUsage {
                        day: 20_000,
                        admitted: 5,
                        rate_limited: 0,
                        rejected: 2,
                    }],
                    request_count: 7,
                    last_used: 1_700_000_001,
                },
                KeyReport {
                    name: "quiet",
                    ..Default::default()
                },
            ],
        };
        let pb = proto::SyncRequest::decode(encode_sync(&req).as_slice()).unwrap();
        assert_eq!(
            (pb.domain.as_str(), pb.replica.as_str(), pb.since),
            ("rag-guard", "00ff", 300)
        );
        assert_eq!(pb.epoch, 1 << 50);
        assert_eq!(pb.keys.len(), 2);
        let k = &pb.keys[0];
        let r = k.revocation.as_ref().unwrap();
        assert!(r.revoked);
        assert_eq!(
            (r.by, r.at_secs, r.changed_ms),
            (2, 1_700_000_000, 1_700_000_000_123)
        );
        assert_eq!(k.seen[0].tag, u32::MAX);
        assert_eq!(k.leak.as_ref().unwrap().max_addresses, 10);
        assert_eq!(k.days[0].rejected, 2);
        assert_eq!((k.request_count, k.last_used), (7, 1_700_000_001));
        assert!(pb.keys[1].revocation.is_none());

        let usage =
            proto::UsageRequest::decode(encode_usage("d", &["a", "b"], 19_990, 20_000).as_slice())
                .unwrap();
        assert_eq!(usage.names, vec!["a", "b"]);
        assert_eq!((usage.first_day, usage.last_day), (19_990, 20_000));
    }

    #[test]
    fn prost_answers_decode() {
        let answer = proto::SyncResponse {
            version: 1 << 40,
            epoch: 77,
            revocations: vec![proto::Revocation {
                name: "acme".into(),
                revoked: true,
                by: 1,
                at_secs: 9,
                changed_ms: 9_001,
            }],
            leaks: vec![proto::LeakReport {
                name: "watched".into(),
                distinct: 11,
            }],
        };
        let got = decode_sync(&answer.encode_to_vec()).unwrap();
        assert_eq!((got.version, got.epoch), (1 << 40, 77));
        assert_eq!(got.revocations[0].0, "acme");
        assert_eq!(got.revocations[0].1.changed_ms, 9_001);
        assert_eq!(got.leaks, vec![("watched".to_string(), 11)]);

        let usage = proto::UsageResponse {
            keys: vec![proto::KeyUsage {
                name: "acme".into(),
                days: vec![proto::DayUsage {
                    day: 20_000,
                    admitted: 3,
                    rate_limited: 2,
                    rejected: 1,
                }],
                request_count: 6,
                last_used: 5,
            }],
        };
        let got = decode_usage(&usage.encode_to_vec()).unwrap();
        assert_eq!(got[0].days[0].rate_limited, 2);
        assert_eq!((got[0].request_count, got[0].last_used), (6, 5));
    }
}
