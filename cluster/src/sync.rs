//! `Sync` and `Usage` of rag-guard's cluster API, turned into the
//! arguments of one Redis script each (`sync.lua`, `usage.lua`) and back.
//! Pure: bounds are checked here, before any Redis work.

use crate::proto::{
    DayUsage, KeyUsage, LeakReport, Revocation, SyncRequest, SyncResponse, UsageRequest,
    UsageResponse,
};
use crate::windows::{escape, Invalid, MAX_TEXT};

/// Most key reports in one sync, and names in one usage request.
pub const MAX_KEYS: usize = 4096;
/// Most addresses per key report (a replica sends at most 32).
pub const MAX_SEEN: usize = 64;
/// Most days per key report (a replica sends today and yesterday).
pub const MAX_REPORT_DAYS: usize = 4;
/// Most days one usage request may cover.
pub const MAX_USAGE_DAYS: u32 = 32;
/// Most key names with a revocation record per domain; changes to new
/// names beyond it are dropped (configured keys are far fewer).
pub const MAX_NAMES: usize = 65_536;

/// The Redis key prefix of a domain (`{...}` keeps it in one hash slot).
pub fn prefix(domain: &str) -> String {
    let mut p = String::from("rg:{");
    escape(domain, &mut p);
    p.push('}');
    p
}

fn text_ok(field: &str, text: &str) -> Result<(), Invalid> {
    if text.is_empty() || text.len() > MAX_TEXT {
        return Err(Invalid(format!("{field}: 1 to {MAX_TEXT} bytes")));
    }
    Ok(())
}

/// The script arguments of a sync (see `sync.lua` for their order).
pub fn sync_args(req: &SyncRequest, now_ms: u64) -> Result<Vec<String>, Invalid> {
    text_ok("domain", &req.domain)?;
    text_ok("replica", &req.replica)?;
    if req.keys.len() > MAX_KEYS {
        return Err(Invalid(format!("at most {MAX_KEYS} key reports")));
    }
    let mut a = vec![
        prefix(&req.domain),
        now_ms.to_string(),
        req.since.to_string(),
        req.replica.clone(),
        req.epoch.to_string(),
        MAX_NAMES.to_string(),
        req.keys.len().to_string(),
    ];
    for k in &req.keys {
        text_ok("name", &k.name)?;
        if k.seen.len() > MAX_SEEN || k.days.len() > MAX_REPORT_DAYS {
            return Err(Invalid(format!(
                "at most {MAX_SEEN} addresses and {MAX_REPORT_DAYS} days per key"
            )));
        }
        let mut name = String::new();
        escape(&k.name, &mut name);
        a.push(name);
        match &k.revocation {
            Some(r) => a.extend([
                "1".into(),
                u8::from(r.revoked).to_string(),
                r.by.to_string(),
                r.at_secs.to_string(),
                r.changed_ms.to_string(),
            ]),
            None => a.extend(["0", "0", "0", "0", "0"].map(String::from)),
        }
        let leak = k.leak.clone().unwrap_or_default();
        // No policy: nothing is ever over the threshold.
        let max = if leak.max_addresses == 0 {
            u32::MAX
        } else {
            leak.max_addresses
        };
        a.extend([
            max.to_string(),
            leak.window_secs.max(1).to_string(),
            u8::from(leak.revoke).to_string(),
            k.seen.len().to_string(),
        ]);
        for s in &k.seen {
            a.extend([s.tag.to_string(), s.last_seen.to_string()]);
        }
        a.push(k.days.len().to_string());
        for d in &k.days {
            a.extend([d.day, d.admitted, d.rate_limited, d.rejected].map(|v| v.to_string()));
        }
        a.extend([k.request_count.to_string(), k.last_used.to_string()]);
    }
    Ok(a)
}

/// Undoes `escape` for names coming back from Redis.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A script reply, read front to back.
pub struct Reply {
    items: std::vec::IntoIter<redis::Value>,
}

impl Reply {
    pub fn new(items: Vec<redis::Value>) -> Self {
        Reply {
            items: items.into_iter(),
        }
    }

    fn int(&mut self) -> Result<u64, String> {
        match self.items.next() {
            Some(redis::Value::Int(n)) => Ok(u64::try_from(n).unwrap_or(0)),
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b)
                .parse()
                .map_err(|_| "a number expected".to_string()),
            _ => Err("short script reply".to_string()),
        }
    }

    fn text(&mut self) -> Result<String, String> {
        match self.items.next() {
            Some(redis::Value::BulkString(b)) => Ok(unescape(&String::from_utf8_lossy(&b))),
            Some(redis::Value::SimpleString(s)) => Ok(unescape(&s)),
            _ => Err("a name expected".to_string()),
        }
    }

    fn count(&mut self, max: usize) -> Result<usize, String> {
        let n = usize::try_from(self.int()?).unwrap_or(usize::MAX);
        if n > max {
            return Err("oversized script reply".to_string());
        }
        Ok(n)
    }
}

fn u32_of(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The sync answer from the script's reply.
pub fn sync_response(mut r: Reply) -> Result<SyncResponse, String> {
    let epoch = r.int()?;
    let version = r.int()?;
    let mut out = SyncResponse {
        version,
        epoch,
        ..Default::default()
    };
    for _ in 0..r.count(MAX_NAMES)? {
        out.revocations.push(Revocation {
            name: r.text()?,
            revoked: r.int()? == 1,
            by: u32_of(r.int()?),
            at_secs: r.int()?,
            changed_ms: r.int()?,
        });
    }
    for _ in 0..r.count(MAX_KEYS)? {
        out.leaks.push(LeakReport {
            name: r.text()?,
            distinct: u32_of(r.int()?),
        });
    }
    Ok(out)
}

/// The script arguments of a usage request.
pub fn usage_args(req: &UsageRequest) -> Result<Vec<String>, Invalid> {
    text_ok("domain", &req.domain)?;
    if req.names.len() > MAX_KEYS {
        return Err(Invalid(format!("at most {MAX_KEYS} names")));
    }
    if req.last_day < req.first_day || req.last_day - req.first_day >= MAX_USAGE_DAYS {
        return Err(Invalid(format!("1 to {MAX_USAGE_DAYS} days")));
    }
    let mut a = vec![
        prefix(&req.domain),
        req.first_day.to_string(),
        req.last_day.to_string(),
    ];
    for n in &req.names {
        text_ok("name", n)?;
        let mut name = String::new();
        escape(n, &mut name);
        a.push(name);
    }
    Ok(a)
}

/// The usage answer from the script's reply.
pub fn usage_response(mut r: Reply, names: usize) -> Result<UsageResponse, String> {
    let mut out = UsageResponse::default();
    for _ in 0..names {
        let mut k = KeyUsage {
            name: r.text()?,
            request_count: r.int()?,
            last_used: r.int()?,
            ..Default::default()
        };
        for _ in 0..r.count(MAX_USAGE_DAYS as usize)? {
            k.days.push(DayUsage {
                day: u32_of(r.int()?),
                admitted: u32_of(r.int()?),
                rate_limited: u32_of(r.int()?),
                rejected: u32_of(r.int()?),
            });
        }
        out.keys.push(k);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::KeyReport;

    #[test]
    fn names_are_escaped_both_ways_and_bounds_hold() {
        let mut name = String::new();
        escape("a:b{c}%", &mut name);
        assert!(!name.contains(':') && !name.contains('{'));
        assert_eq!(unescape(&name), "a:b{c}%");
        assert_eq!(prefix("rag-guard"), "rg:{rag-guard}");
        let req = SyncRequest {
            domain: "d".into(),
            replica: "r".into(),
            since: 0,
            epoch: 0,
            keys: vec![KeyReport {
                name: "k".into(),
                ..Default::default()
            }],
        };
        let args = sync_args(&req, 5_000).unwrap();
        assert_eq!(args.len(), 7 + 1 + 5 + 4 + 1 + 2);
        let mut big = req.clone();
        big.keys[0].seen = vec![Default::default(); MAX_SEEN + 1];
        assert!(sync_args(&big, 0).is_err());
        let mut nameless = req;
        nameless.keys[0].name.clear();
        assert!(sync_args(&nameless, 0).is_err());
        let usage = UsageRequest {
            domain: "d".into(),
            names: vec!["k".into()],
            first_day: 10,
            last_day: 10 + MAX_USAGE_DAYS,
        };
        assert!(usage_args(&usage).is_err());
    }
}
