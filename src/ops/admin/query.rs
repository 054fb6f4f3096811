//! The admin API's query strings: percent-decoding, a secret sent where it
//! would be logged, and the `days=N` parameter.

use crate::auth::digest::sha256;
use crate::http::{path_only, LocalReply};

/// Longest accepted secret; longer values are refused without hashing.
pub(super) const MAX_SECRET_BYTES: usize = 1024;

pub(super) fn split_query(raw: &[u8]) -> (&[u8], &[u8]) {
    let path = path_only(raw);
    let query = raw.get(path.len()..).unwrap_or(b"");
    let query = query.strip_prefix(b"?").unwrap_or(b"");
    let query = query.split(|b| *b == b'#').next().unwrap_or(b"");
    (path, query)
}

/// Percent-decodes a query component (`+` is a space); invalid escapes are
/// kept as they are.
fn decode_component(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b,
            raw.get(i + 1).and_then(|c| hex(*c)),
            raw.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            (b'+', _, _) => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

fn query_pairs(query: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    query
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |b| *b == b'=');
            let name = decode_component(parts.next().unwrap_or(b""));
            let value = decode_component(parts.next().unwrap_or(b""));
            (name, value)
        })
}

/// A parameter whose name mentions a secret, or any value that is the admin
/// secret itself, whatever its name.
pub(super) fn query_has_secret(query: &[u8], secret_sha256: &[u8; 32]) -> bool {
    query_pairs(query).any(|(name, value)| {
        let name = name.to_ascii_lowercase();
        name.windows(6).any(|w| w == b"secret")
            || (!value.is_empty()
                && value.len() <= MAX_SECRET_BYTES
                && &sha256(&value) == secret_sha256)
    })
}

/// `days=N` within 1..=max (default when absent).
pub(super) fn days_param(query: &[u8], default: u64, max: u64) -> Result<u64, LocalReply> {
    let Some((_, value)) = query_pairs(query).find(|(n, _)| n == b"days") else {
        return Ok(default);
    };
    std::str::from_utf8(&value)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|d| (1..=max).contains(d))
        .ok_or_else(|| LocalReply::error(400, &format!("days must be an integer from 1 to {max}")))
}
