//! The gRPC adapter: `ShouldRateLimit` requests in, windows to the store,
//! the answer in Envoy's terms (per-descriptor code, limit, remaining, time
//! to reset). Redis unreachable: UNAVAILABLE, never OK.

use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use tonic::{Request, Response, Status};

use crate::store::Store;
use crate::windows::windows;

pub struct Rls {
    store: std::sync::Arc<Store>,
}

impl Rls {
    pub fn new(store: std::sync::Arc<Store>) -> Self {
        Rls { store }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[tonic::async_trait]
impl RateLimitService for Rls {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let req = request.into_inner();
        let now = now_secs();
        let windows = windows(&req.domain, &req.descriptors, req.hits_addend, now)
            .map_err(|e| Status::invalid_argument(e.0))?;
        let spent = self
            .store
            .spend(&windows)
            .await
            .map_err(Status::unavailable)?;
        let mut statuses: Vec<DescriptorStatus> = (0..req.descriptors.len())
            .map(|_| DescriptorStatus {
                code: Code::Ok as i32,
                ..Default::default()
            })
            .collect();
        for (w, count) in windows.iter().zip(&spent.counts) {
            let full =
                count.saturating_add(if spent.over { w.hits } else { 0 }) > u64::from(w.limit);
            let Some(status) = statuses.get_mut(w.descriptor) else {
                continue;
            };
            status.code = if full { Code::OverLimit } else { Code::Ok } as i32;
            status.current_limit = Some(RateLimit {
                name: String::new(),
                requests_per_unit: w.limit,
                unit: w.unit,
            });
            status.limit_remaining =
                u32::try_from(u64::from(w.limit).saturating_sub(*count)).unwrap_or(0);
            status.duration_until_reset = Some(PbDuration {
                seconds: i64::try_from(w.ends_at.saturating_sub(now)).unwrap_or(i64::MAX),
                nanos: 0,
            });
        }
        let overall = if spent.over {
            Code::OverLimit
        } else {
            Code::Ok
        };
        Ok(Response::new(RateLimitResponse {
            overall_code: overall as i32,
            statuses,
            ..Default::default()
        }))
    }
}
