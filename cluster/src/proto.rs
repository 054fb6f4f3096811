//! The messages of `rag_guard.cluster.v1.Cluster`
//! (`cluster/proto/rag_guard_cluster.proto`), as prost types written out by
//! hand (no protoc in the build): same fields, numbers and types as the
//! schema.

#[derive(Clone, PartialEq, prost::Message)]
pub struct SyncRequest {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(string, tag = "2")]
    pub replica: String,
    #[prost(uint64, tag = "3")]
    pub since: u64,
    #[prost(message, repeated, tag = "4")]
    pub keys: Vec<KeyReport>,
    #[prost(uint64, tag = "5")]
    pub epoch: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyReport {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub revocation: Option<Revocation>,
    #[prost(message, repeated, tag = "3")]
    pub seen: Vec<Seen>,
    #[prost(message, optional, tag = "4")]
    pub leak: Option<LeakPolicy>,
    #[prost(message, repeated, tag = "5")]
    pub days: Vec<DayUsage>,
    #[prost(uint64, tag = "6")]
    pub request_count: u64,
    #[prost(uint64, tag = "7")]
    pub last_used: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Revocation {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(bool, tag = "2")]
    pub revoked: bool,
    #[prost(uint32, tag = "3")]
    pub by: u32,
    #[prost(uint64, tag = "4")]
    pub at_secs: u64,
    #[prost(uint64, tag = "5")]
    pub changed_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Seen {
    #[prost(uint32, tag = "1")]
    pub tag: u32,
    #[prost(uint32, tag = "2")]
    pub last_seen: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeakPolicy {
    #[prost(uint32, tag = "1")]
    pub max_addresses: u32,
    #[prost(uint32, tag = "2")]
    pub window_secs: u32,
    #[prost(bool, tag = "3")]
    pub revoke: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DayUsage {
    #[prost(uint32, tag = "1")]
    pub day: u32,
    #[prost(uint32, tag = "2")]
    pub admitted: u32,
    #[prost(uint32, tag = "3")]
    pub rate_limited: u32,
    #[prost(uint32, tag = "4")]
    pub rejected: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SyncResponse {
    #[prost(uint64, tag = "1")]
    pub version: u64,
    #[prost(message, repeated, tag = "2")]
    pub revocations: Vec<Revocation>,
    #[prost(message, repeated, tag = "3")]
    pub leaks: Vec<LeakReport>,
    #[prost(uint64, tag = "4")]
    pub epoch: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeakReport {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub distinct: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UsageRequest {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(string, repeated, tag = "2")]
    pub names: Vec<String>,
    #[prost(uint32, tag = "3")]
    pub first_day: u32,
    #[prost(uint32, tag = "4")]
    pub last_day: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UsageResponse {
    #[prost(message, repeated, tag = "1")]
    pub keys: Vec<KeyUsage>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyUsage {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub days: Vec<DayUsage>,
    #[prost(uint64, tag = "3")]
    pub request_count: u64,
    #[prost(uint64, tag = "4")]
    pub last_used: u64,
}
