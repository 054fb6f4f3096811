//! Operating rag-guard: the admin API, per-key usage bookkeeping and the
//! security events. May depend on `config`, `key_state`, `auth`,
//! `shared_store` and `http`; never on `admission` or `filter`.

pub mod admin;
pub mod event_budget;
pub mod events;
pub mod usage;
