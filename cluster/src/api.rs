//! The gRPC adapter of rag-guard's cluster API
//! (`rag_guard.cluster.v1.Cluster`: `Sync` and `Usage`), on the same
//! listener as the rate limit service. Written out as a tower service (what
//! tonic's code generator would emit for two unary methods), since the
//! build has no protoc.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use redis::Script;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::proto::{SyncRequest, SyncResponse, UsageRequest, UsageResponse};
use crate::store::Store;
use crate::sync::{sync_args, sync_response, usage_args, usage_response, Reply};

pub struct Cluster {
    store: Arc<Store>,
    sync: Script,
    usage: Script,
}

impl Cluster {
    pub fn new(store: Arc<Store>) -> Self {
        Cluster {
            store,
            sync: Script::new(include_str!("sync.lua")),
            usage: Script::new(include_str!("usage.lua")),
        }
    }

    pub async fn sync(&self, req: SyncRequest) -> Result<SyncResponse, Status> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let args = sync_args(&req, now_ms).map_err(|e| Status::invalid_argument(e.0))?;
        let reply = self
            .store
            .run(&self.sync, &args)
            .await
            .map_err(Status::unavailable)?;
        sync_response(Reply::new(reply)).map_err(Status::internal)
    }

    pub async fn usage(&self, req: UsageRequest) -> Result<UsageResponse, Status> {
        let args = usage_args(&req).map_err(|e| Status::invalid_argument(e.0))?;
        let reply = self
            .store
            .run(&self.usage, &args)
            .await
            .map_err(Status::unavailable)?;
        usage_response(Reply::new(reply), req.names.len()).map_err(Status::internal)
    }
}

/// The tower service tonic's router calls.
#[derive(Clone)]
pub struct ClusterServer {
    inner: Arc<Cluster>,
}

impl ClusterServer {
    pub fn new(cluster: Cluster) -> Self {
        ClusterServer {
            inner: Arc::new(cluster),
        }
    }
}

impl NamedService for ClusterServer {
    const NAME: &'static str = "rag_guard.cluster.v1.Cluster";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

struct SyncMethod(Arc<Cluster>);
struct UsageMethod(Arc<Cluster>);

impl UnaryService<SyncRequest> for SyncMethod {
    type Response = SyncResponse;
    type Future = BoxFuture<Result<Response<SyncResponse>, Status>>;
    fn call(&mut self, request: Request<SyncRequest>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.sync(request.into_inner()).await.map(Response::new) })
    }
}

impl UnaryService<UsageRequest> for UsageMethod {
    type Response = UsageResponse;
    type Future = BoxFuture<Result<Response<UsageResponse>, Status>>;
    fn call(&mut self, request: Request<UsageRequest>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.usage(request.into_inner()).await.map(Response::new) })
    }
}

/// Largest request message accepted (a sync of 4096 keys fits).
const MAX_MESSAGE: usize = 4 << 20;

impl<B> tower_service::Service<http::Request<B>> for ClusterServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        match req.uri().path() {
            "/rag_guard.cluster.v1.Cluster/Sync" => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<SyncResponse, SyncRequest>::default())
                    .apply_max_message_size_config(Some(MAX_MESSAGE), None);
                Ok(grpc.unary(SyncMethod(inner), req).await)
            }),
            "/rag_guard.cluster.v1.Cluster/Usage" => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<UsageResponse, UsageRequest>::default())
                    .apply_max_message_size_config(Some(MAX_MESSAGE), None);
                Ok(grpc.unary(UsageMethod(inner), req).await)
            }),
            _ => Box::pin(async move {
                let mut response = http::Response::new(Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            }),
        }
    }
}
