//! Dates in admin API answers: RFC 3339 UTC text.

use std::time::{Duration, UNIX_EPOCH};

pub(super) const SECS_PER_DAY: u64 = 86_400;

/// RFC 3339 UTC text of Unix seconds.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// `YYYY-MM-DD` of a UTC day number.
pub(super) fn date_of_day(day: u32) -> String {
    let mut text = rfc3339(u64::from(day) * SECS_PER_DAY);
    text.truncate(10);
    text
}
