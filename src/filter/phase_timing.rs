//! Opt-in timing of the filter's own callbacks (cargo feature
//! `phase-timing`, used by `make bench-host-calls` only): how much of a
//! request's cost is spent inside the filter (its code and its host calls)
//! rather than in Envoy around it. Every 10,000 requests the worker logs
//! the mean time of the request-headers and response-headers callbacks.
//! Without the feature both functions are empty and cost nothing.

#[cfg(feature = "phase-timing")]
mod timing {
    use std::cell::Cell;

    use proxy_wasm::types::LogLevel;

    use crate::filter::host;

    const EVERY: u64 = 10_000;

    thread_local! {
        /// Requests, request-phase and response-phase nanoseconds.
        static SUMS: Cell<(u64, u64, u64)> = const { Cell::new((0, 0, 0)) };
    }

    pub fn start() -> u64 {
        host::now_unix_nanos().unwrap_or(0)
    }

    pub fn stop(started: u64, response: bool) {
        let spent = host::now_unix_nanos().unwrap_or(0).saturating_sub(started);
        SUMS.with(|sums| {
            let (n, req, resp) = sums.get();
            let (n, req, resp) = if response {
                (n + 1, req, resp + spent)
            } else {
                (n, req + spent, resp)
            };
            if n >= EVERY {
                host::log(
                    LogLevel::Warn,
                    &format!(
                        "rag-guard phase timing: request headers {} ns, response headers {} ns (mean of {n})",
                        req / n,
                        resp / n
                    ),
                );
                sums.set((0, 0, 0));
            } else {
                sums.set((n, req, resp));
            }
        });
    }
}

#[cfg(feature = "phase-timing")]
pub(super) use timing::{start, stop};

#[cfg(not(feature = "phase-timing"))]
#[inline(always)]
pub(super) fn start() -> u64 {
    0
}

#[cfg(not(feature = "phase-timing"))]
#[inline(always)]
pub(super) fn stop(_started: u64, _response: bool) {}
