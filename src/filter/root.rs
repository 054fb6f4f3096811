//! The root context: applies a configuration (`on_configure`), flushes
//! usage on the tick, and creates a request context per request.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use crate::auth::failed_auth::FailedAuthTable;
use crate::cluster::settings::SYNC_INTERVAL_MS;
use crate::config::{self};
use crate::key_state::subjects::SubjectTable;
use crate::key_state::{self};
use crate::ops::event_budget::EventBudgets;
use crate::ops::usage::{self};
use crate::sync::lease;

use super::active::Active;
use super::host::{self, HostStore};
use super::metrics::Metrics;
use super::request::RequestFilter;
use super::sync::{start_sync, sync_answered, InFlight};
use super::usage::flush_usage;

pub(super) struct RootFilter {
    pub(super) active: Option<Rc<Active>>,
    /// Cluster mode: the sync call in flight from this thread, if any.
    pub(super) sync_call: Option<InFlight>,
    /// Cluster mode: this thread's last sync failed.
    pub(super) sync_failing: bool,
}

impl Context for RootFilter {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        let Some(call) = self.sync_call.take_if(|c| c.token == token_id) else {
            return;
        };
        let Some(active) = self.active.clone() else {
            return;
        };
        let answer = host::grpc_answer(status_code, response_size);
        self.sync_failing = sync_answered(&active, call, answer.as_deref(), self.sync_failing);
    }
}

impl RootContext for RootFilter {
    fn on_configure(&mut self, size: usize) -> bool {
        match configure(size) {
            Ok((active, created)) => {
                host::log(
                    LogLevel::Info,
                    &format!(
                        "rag-guard: configuration applied ({} keys, {} tiers, {created} shared-data entries created, {} KiB of wasm memory)",
                        active.config.keys.len(),
                        active.config.tiers.len(),
                        memory_kib(),
                    ),
                );
                let clustered = active.config.cluster.is_some();
                self.active = Some(Rc::new(active));
                // Every worker (and the main thread, which has nothing to
                // flush) adds its usage counts to shared data on this tick;
                // in cluster mode one of them also syncs with the service.
                let period = if clustered {
                    Duration::from_millis(SYNC_INTERVAL_MS)
                } else {
                    Duration::from_secs(usage::FLUSH_INTERVAL_SECS)
                };
                if hostcalls::set_tick_period(period).is_err() {
                    host::log(
                        LogLevel::Error,
                        "rag-guard: cannot start the usage flush timer",
                    );
                }
                true
            }
            Err(message) => {
                host::log(
                    LogLevel::Error,
                    &format!("rag-guard: configuration refused: {message}"),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        flush_usage(self.active.as_deref());
        if let Some(active) = self.active.clone() {
            if active.config.cluster.is_some() && self.sync_call.is_none() {
                self.sync_call = start_sync(&active);
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RequestFilter::new(self.active.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Parses the configuration and creates the shared-data entries it needs
/// (state and usage entry per key, failed-auth table), leaving existing ones
/// as they are.
fn configure(size: usize) -> Result<(Active, usize), String> {
    let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
        .map_err(|s| format!("cannot read the plugin configuration ({s:?})"))?
        .unwrap_or_default();
    let config = config::parse(&bytes).map_err(|e| e.to_string())?;
    let digests = || config.keys.iter().map(|k| &k.sha256);
    let buckets = key_state::ensure_entries(&HostStore, digests())
        .map_err(|e| format!("cannot create per-key state entries: {e}"))?
        + usage::ensure_entries(&HostStore, digests())
            .map_err(|e| format!("cannot create usage entries: {e}"))?;
    let buckets = buckets
        + match &config.jwt {
            Some(jwt) => SubjectTable::for_subjects(jwt.max_subjects)
                .ensure(&HostStore)
                .map_err(|e| format!("cannot create the subject table: {e}"))?,
            None => 0,
        };
    let (auth_table, slots) = FailedAuthTable::open(&HostStore, random_key)
        .map_err(|e| format!("cannot create the failed-auth table: {e}"))?;
    let mut slots = slots;
    if config.cluster.is_some() {
        let replica = random_key()
            .and_then(|k| k[..8].try_into().ok())
            .ok_or("no random source for the replica id")?;
        slots += usize::from(
            lease::open(&HostStore, replica)
                .map_err(|e| format!("cannot create the cluster sync entry: {e}"))?,
        );
    }
    let metrics = Metrics::define(&config).map_err(|s| format!("cannot define metrics ({s:?})"))?;
    let config_events = config.event_lines_per_second;
    let active = Active {
        config,
        auth_table,
        metrics,
        info_enabled: host::log_enabled_at(LogLevel::Info),
        events: RefCell::new(EventBudgets::new(config_events)),
    };
    Ok((active, buckets + slots))
}

/// This VM's linear memory (it only grows): the module's data, the heap
/// the configuration and the compiled rules took.
fn memory_kib() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) * 64;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// 16 bytes from the host's random source (WASI `random_get`).
fn random_key() -> Option<[u8; 16]> {
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).ok().map(|()| key)
}
