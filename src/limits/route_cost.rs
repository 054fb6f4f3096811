//! Route costs: requests on some routes spend more than one token.

use crate::http::{path_only, under_prefix};

/// A route that costs more than one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCost {
    /// Path prefix, matched on whole segments: `/documents` matches
    /// `/documents` and `/documents/7`, not `/documentsX`.
    pub prefix: String,
    /// Upper-case method, or None for any method.
    pub method: Option<String>,
    pub cost: u32,
}

impl RouteCost {
    pub fn matches(&self, method: &[u8], path: &[u8]) -> bool {
        under_prefix(path, &self.prefix)
            && self.method.as_ref().is_none_or(|m| m.as_bytes() == method)
    }
}

/// Tokens a request costs: the first matching route's cost, else 1.
pub fn cost_of(route_costs: &[RouteCost], method: &[u8], path: &[u8]) -> u32 {
    let path = path_only(path);
    route_costs
        .iter()
        .find(|r| r.matches(method, path))
        .map_or(1, |r| r.cost)
}
