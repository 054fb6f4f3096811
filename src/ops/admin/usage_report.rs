//! The admin API's usage report: requests per UTC day per key and per tier.

use serde_json::{json, Value};

use crate::auth::keys::KeyEntry;
use crate::cluster::settings::SYNC_INTERVAL_MS;
use crate::cluster::sync_wire::KeyUsage;
use crate::config::Config;
use crate::http::LocalReply;
use crate::ops::usage::{self, day_of, DayCounts, FLUSH_INTERVAL_SECS};
use crate::shared_store::SharedStore;

use super::answer::{ok, UsageQuery};
use super::dates::date_of_day;
use super::keys::sorted_keys;

fn day_json(date: String, c: &DayCounts) -> Value {
    json!({"date": date, "admitted": c.admitted, "rate_limited": c.rate_limited, "rejected": c.rejected})
}

fn totals_json(days: &[DayCounts]) -> Value {
    let mut t = DayCounts::default();
    for d in days {
        t.admitted = t.admitted.saturating_add(d.admitted);
        t.rate_limited = t.rate_limited.saturating_add(d.rate_limited);
        t.rejected = t.rejected.saturating_add(d.rejected);
    }
    json!({"admitted": t.admitted, "rate_limited": t.rate_limited, "rejected": t.rejected})
}

/// This replica's report: counts from its shared data.
pub(super) fn usage_report(
    config: &Config,
    store: &dyn SharedStore,
    now_secs: u64,
    days: u64,
) -> Value {
    let note = format!(
        "Counts of configured keys, UTC days. Each worker adds its counts every {FLUSH_INTERVAL_SECS} s; \
         tiers are the keys' current tiers. Kept in Envoy shared data: an Envoy restart resets them."
    );
    let scope = if config.cluster.is_some() {
        "replica"
    } else {
        "envoy"
    };
    report(config, now_secs, days, scope, &note, |entry, day| {
        usage::read(store, &entry.sha256)
            .ok()
            .flatten()
            .map(|u| u.day(day))
            .unwrap_or_default()
    })
}

/// The names the cluster's report asks for (every configured key).
pub fn usage_names(config: &Config) -> Vec<&str> {
    sorted_keys(config)
        .into_iter()
        .map(|k| k.name.as_str())
        .collect()
}

/// The day range of a report of `days` days ending today.
pub fn usage_days(query: &UsageQuery) -> (u32, u32) {
    let today = day_of(query.now_secs);
    let first = today.saturating_sub(u32::try_from(query.days.saturating_sub(1)).unwrap_or(0));
    (first, today)
}

/// The cluster's report: the service's totals over every replica.
pub fn cluster_usage_reply(config: &Config, query: &UsageQuery, totals: &[KeyUsage]) -> LocalReply {
    let note = format!(
        "Counts of configured keys over every replica, UTC days, from the cluster service (each replica \
         reports its counts every {} ms). Tiers are the keys' current tiers.",
        SYNC_INTERVAL_MS
    );
    let body = report(
        config,
        query.now_secs,
        query.days,
        "cluster",
        &note,
        |entry, day| {
            totals
                .iter()
                .find(|k| k.name == entry.name)
                .and_then(|k| k.days.iter().find(|d| d.day == day))
                .map(|d| DayCounts {
                    admitted: d.admitted,
                    rate_limited: d.rate_limited,
                    rejected: d.rejected,
                })
                .unwrap_or_default()
        },
    );
    ok(body)
}

fn report(
    config: &Config,
    now_secs: u64,
    days: u64,
    scope: &str,
    note: &str,
    counts_of: impl Fn(&KeyEntry, u32) -> DayCounts,
) -> Value {
    let (first, today) = usage_days(&UsageQuery { now_secs, days });
    let day_numbers: Vec<u32> = (first..=today).collect();
    let mut tiers: std::collections::BTreeMap<&str, Vec<DayCounts>> = Default::default();
    let keys: Vec<Value> = sorted_keys(config)
        .into_iter()
        .map(|entry| {
            let counts: Vec<DayCounts> = day_numbers.iter().map(|d| counts_of(entry, *d)).collect();
            let tier = tiers
                .entry(entry.tier.as_str())
                .or_insert_with(|| vec![DayCounts::default(); counts.len()]);
            for (sum, c) in tier.iter_mut().zip(&counts) {
                sum.admitted = sum.admitted.saturating_add(c.admitted);
                sum.rate_limited = sum.rate_limited.saturating_add(c.rate_limited);
                sum.rejected = sum.rejected.saturating_add(c.rejected);
            }
            json!({
                "name": entry.name,
                "tier": entry.tier,
                "totals": totals_json(&counts),
                "days": day_numbers.iter().zip(&counts)
                    .map(|(d, c)| day_json(date_of_day(*d), c)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let tiers: Vec<Value> = tiers
        .into_iter()
        .map(|(tier, counts)| {
            json!({
                "tier": tier,
                "totals": totals_json(&counts),
                "days": day_numbers.iter().zip(&counts)
                    .map(|(d, c)| day_json(date_of_day(*d), c)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "from": date_of_day(first),
        "to": date_of_day(today),
        "scope": scope,
        "keys": keys,
        "tiers": tiers,
        "note": note,
    })
}
