//! The admin API's usage report: requests per UTC day per key and per tier.

use serde_json::{json, Value};

use crate::config::Config;
use crate::ops::usage::{self, day_of, DayCounts, FLUSH_INTERVAL_SECS};
use crate::shared_store::SharedStore;

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

pub(super) fn usage_report(
    config: &Config,
    store: &dyn SharedStore,
    now_secs: u64,
    days: u64,
) -> Value {
    let today = day_of(now_secs);
    let first = today.saturating_sub(u32::try_from(days - 1).unwrap_or(0));
    let day_numbers: Vec<u32> = (first..=today).collect();
    let mut tiers: std::collections::BTreeMap<&str, Vec<DayCounts>> = Default::default();
    let keys: Vec<Value> = sorted_keys(config)
        .into_iter()
        .map(|entry| {
            let used = usage::read(store, &entry.sha256).ok().flatten();
            let counts: Vec<DayCounts> = day_numbers
                .iter()
                .map(|d| used.map(|u| u.day(*d)).unwrap_or_default())
                .collect();
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
        "keys": keys,
        "tiers": tiers,
        "note": format!(
            "Counts of configured keys, UTC days. Each worker adds its counts every {FLUSH_INTERVAL_SECS} s; \
             tiers are the keys' current tiers. Kept in Envoy shared data: an Envoy restart resets them."
        ),
    })
}
