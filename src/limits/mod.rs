//! Rate-limit arithmetic: exact token buckets (burst, minute, hour), route
//! costs, and the headers and texts that describe a key's limits. Pure: no
//! shared data, no configuration; depends on `http` only.

pub mod headers;
pub mod route_cost;
pub mod token_bucket;
