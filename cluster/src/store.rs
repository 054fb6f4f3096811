//! The counters in Redis: one server-side script (`spend.lua`, run with
//! EVALSHA, loaded again by the client when Redis restarted) checks every
//! window of a request and spends all of them or none, so concurrent
//! services and Envoy replicas cannot over-admit.
//!
//! The connection is made on first use and re-made by the client after a
//! failure; a Redis that is down or slower than [`TIMEOUT`] makes the call
//! fail at once, and the service answers UNAVAILABLE (rag-guard then applies
//! its `failure_mode`).

use std::time::Duration;

use std::sync::OnceLock;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::Mutex;

use crate::windows::Window;

/// Longest wait for Redis: connecting or one script call.
pub const TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Some window had no room: nothing was spent.
    pub over: bool,
    /// Each window's count after the request (before it when `over`).
    pub counts: Vec<u64>,
}

pub struct Store {
    client: redis::Client,
    /// Made once; the manager reconnects by itself after failures.
    conn: OnceLock<ConnectionManager>,
    /// Held by the one request that makes the first connection; the others
    /// fail at once instead of queueing behind a Redis that is down.
    connecting: Mutex<()>,
    script: Script,
}

impl Store {
    /// A store for `url` (`redis://host:port`); connects on first use.
    pub fn new(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL {url:?}: {e}"))?;
        Ok(Store {
            client,
            conn: OnceLock::new(),
            connecting: Mutex::new(()),
            script: Script::new(include_str!("spend.lua")),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        if let Some(conn) = self.conn.get() {
            return Ok(conn.clone());
        }
        let Ok(_connecting) = self.connecting.try_lock() else {
            return Err("Redis connection being made".to_string());
        };
        if let Some(conn) = self.conn.get() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            TIMEOUT,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| "Redis connection timed out".to_string())?
        .map_err(|e| format!("Redis connection failed: {e}"))?;
        Ok(self.conn.get_or_init(|| conn).clone())
    }

    /// Checks and spends `windows` in one script call.
    pub async fn spend(&self, windows: &[Window]) -> Result<Outcome, String> {
        if windows.is_empty() {
            return Ok(Outcome {
                over: false,
                counts: Vec::new(),
            });
        }
        let mut conn = self.connection().await?;
        let mut call = self.script.prepare_invoke();
        for w in windows {
            call.key(&w.redis_key)
                .arg(w.limit)
                .arg(w.hits)
                .arg(w.ends_at);
        }
        let reply: Vec<u64> = tokio::time::timeout(TIMEOUT, call.invoke_async(&mut conn))
            .await
            .map_err(|_| "Redis call timed out".to_string())?
            .map_err(|e| format!("Redis call failed: {e}"))?;
        match reply.split_first() {
            Some((over, counts)) if counts.len() == windows.len() => Ok(Outcome {
                over: *over == 1,
                counts: counts.to_vec(),
            }),
            _ => Err("unexpected reply from the spend script".to_string()),
        }
    }
}

impl Store {
    /// Runs a script with `args` (no KEYS: every key it touches is under
    /// one domain's prefix, one hash slot).
    pub async fn run(&self, script: &Script, args: &[String]) -> Result<Vec<redis::Value>, String> {
        let mut conn = self.connection().await?;
        let mut call = script.prepare_invoke();
        for a in args {
            call.arg(a);
        }
        tokio::time::timeout(TIMEOUT, call.invoke_async(&mut conn))
            .await
            .map_err(|_| "Redis call timed out".to_string())?
            .map_err(|e| format!("Redis call failed: {e}"))
    }
}
