//! Which requests roles apply to, and whether a caller's roles forbid one
//! (`access` section; the grants themselves are `auth::access`).

use crate::config::Config;

use super::decision::RequestView;

/// A `GET` of the rate-limit status endpoint.
pub(super) fn is_status_request(config: &Config, req: &RequestView<'_>) -> bool {
    req.method == b"GET"
        && crate::http::path_only(req.path) == config.rate_limit_status_path.as_bytes()
}

/// With an `access` section, whether none of a caller's `roles` (None: the
/// default roles) grants the request. The status endpoint is every caller's
/// own and needs no role.
pub(super) fn role_forbids(
    config: &Config,
    roles: Option<&[String]>,
    req: &RequestView<'_>,
) -> bool {
    config.access.as_ref().is_some_and(|access| {
        !is_status_request(config, req) && !access.allows(roles, req.method, req.path)
    })
}
