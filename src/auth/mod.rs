//! Who is calling, and may it ask at all: key digests and the configured key
//! table, the claims of verified JWTs, roles and their grants, the host
//! allowlist, public paths, the client's address, the
//! failed-authentication table and the leak-detection address window. May
//! depend on `http`, `shared_store` and `limits` (the failed-auth table is a
//! token bucket per address), never on `config` or higher.

pub mod access;
pub mod client_address;
pub mod digest;
pub mod failed_auth;
pub mod host_allowlist;
pub mod jwt;
pub mod keys;
pub mod leak_detection;
pub mod public_paths;
