//! The `tiers` and `route_costs` sections: the limits each tier gets and
//! the routes that cost more than one token.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::limits::route_cost::RouteCost;
use crate::limits::token_bucket::Limits;

use super::error::{err, ConfigError};
use super::keys::{is_plain_name, name_rule};

/// Default tiers; a configuration's `tiers` are merged over these.
pub fn default_tiers() -> BTreeMap<String, Limits> {
    [
        ("free", 60, 1_000, 10),
        ("pro", 300, 10_000, 30),
        ("enterprise", 1_000, 50_000, 100),
    ]
    .into_iter()
    .map(|(name, per_minute, per_hour, burst)| {
        (
            name.to_string(),
            Limits {
                per_minute,
                per_hour,
                burst,
            },
        )
    })
    .collect()
}

/// Upper bounds that keep the bucket arithmetic far from overflow.
pub const MAX_PER_MINUTE: u32 = 1_000_000;
pub const MAX_PER_HOUR: u32 = 100_000_000;
pub const MAX_COST: u32 = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTier {
    per_minute: u32,
    per_hour: u32,
    burst: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouteCost {
    prefix: String,
    #[serde(default)]
    method: Option<String>,
    cost: u32,
}

pub(super) fn parse_tiers(
    raw: BTreeMap<String, RawTier>,
) -> Result<BTreeMap<String, Limits>, ConfigError> {
    let mut tiers = default_tiers();
    for (name, t) in raw {
        let field = |f: &str| format!("tiers.{name}.{f}");
        if !is_plain_name(&name) {
            return Err(err(format!("tiers.{name}"), name_rule()));
        }
        for (f, value, max) in [
            ("per_minute", t.per_minute, MAX_PER_MINUTE),
            ("per_hour", t.per_hour, MAX_PER_HOUR),
            ("burst", t.burst, MAX_PER_MINUTE),
        ] {
            if !(1..=max).contains(&value) {
                return Err(err(field(f), format!("must be 1..={max}")));
            }
        }
        tiers.insert(
            name,
            Limits {
                per_minute: t.per_minute,
                per_hour: t.per_hour,
                burst: t.burst,
            },
        );
    }
    Ok(tiers)
}

/// A path prefix of route costs and role grants: starts with '/', no
/// query, fragment or '*'.
pub(super) fn check_prefix(field: String, prefix: &str) -> Result<(), ConfigError> {
    if !prefix.starts_with('/') || prefix.contains(['?', '#', '*']) {
        return Err(err(
            field,
            "must be a path starting with '/' without query, fragment or '*'",
        ));
    }
    Ok(())
}

/// An upper-case HTTP method name.
pub(super) fn is_method(m: &str) -> bool {
    !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase())
}

pub(super) fn parse_route_costs(
    raw: Vec<RawRouteCost>,
    tiers: &BTreeMap<String, Limits>,
) -> Result<Vec<RouteCost>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let field = |f: &str| format!("route_costs[{i}].{f}");
        check_prefix(field("prefix"), &r.prefix)?;
        let method = match r.method {
            Some(m) if is_method(&m) => Some(m),
            Some(_) => return Err(err(field("method"), "must be an upper-case HTTP method")),
            None => None,
        };
        if !(1..=MAX_COST).contains(&r.cost) {
            return Err(err(field("cost"), format!("must be 1..={MAX_COST}")));
        }
        if let Some((name, limits)) = tiers.iter().find(|(_, l)| l.max_cost() < r.cost) {
            return Err(err(
                field("cost"),
                format!(
                    "{} is more than tier {name:?} can ever spend at once ({}): its requests on this route could never be admitted",
                    r.cost,
                    limits.max_cost()
                ),
            ));
        }
        out.push(RouteCost {
            prefix: r.prefix,
            method,
            cost: r.cost,
        });
    }
    Ok(out)
}
