//! The filter writes and reads the rate limit service messages by hand
//! (`rag_guard::limits::rls`, to keep the wasm small); these tests check its
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
use rag_guard::limits::rls::{decode_response, encode_request, Code, Descriptor, Status, Unit};

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
