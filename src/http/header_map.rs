//! The proxy-wasm ABI's serialized header map, read in place and written
//! in one buffer: a little-endian `u32` count, then a (name length, value
//! length) pair of `u32`s per header, then each name and each value
//! followed by a NUL byte.
//!
//! The SDK's accessors turn every header into a `String` and a `Vec`; on
//! the hot path that is two allocations per header, twice per request (the
//! request map and the response map). Here a map costs one allocation for
//! the list of slices, and the response map written back costs one.

/// The headers of `bytes` as (name, value) slices into it, in order; None
/// if the bytes are too short for the map they announce (the caller fails
/// closed). Read as the SDK reads it: the byte after each name and value
/// is skipped, bytes after the last header are ignored.
pub fn parse(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    read(bytes, false)
}

/// The same encoding read strictly: each name and value must be followed
/// by a NUL byte and the map must end where the bytes do. Envoy encodes
/// property values this way too (the claims of a JWT payload, a list of
/// roles); strictness tells such an encoded map from a plain string.
pub fn parse_exact(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    read(bytes, true)
}

fn read(bytes: &[u8], strict: bool) -> Option<Vec<(&[u8], &[u8])>> {
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()
    };
    let count = word(0)?;
    // Each header takes at least 10 bytes (its two lengths and two NULs):
    // a count the buffer cannot hold is refused before allocating for it.
    if count > bytes.len() / 10 {
        return None;
    }
    let nul = |at: usize| match bytes.get(at) {
        Some(0) => Some(()),
        Some(_) if !strict => Some(()),
        _ => None,
    };
    let mut at = 4 + 8 * count;
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let name_len = word(4 + 8 * i)?;
        let value_len = word(8 + 8 * i)?;
        let name = bytes.get(at..at.checked_add(name_len)?)?;
        at += name_len;
        nul(at)?;
        at += 1;
        let value = bytes.get(at..at.checked_add(value_len)?)?;
        at += value_len;
        nul(at)?;
        at += 1;
        pairs.push((name, value));
    }
    (!strict || at == bytes.len()).then_some(pairs)
}

/// `pairs` serialized as the ABI expects, in one allocation.
pub fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(n, v)| 10 + n.len() + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    // Header maps are far below 4 GiB; a longer value would be cut by the
    // host's own limits first.
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len(pairs.len()));
    for (name, value) in pairs {
        out.extend_from_slice(&len(name.len()));
        out.extend_from_slice(&len(value.len()));
    }
    for (name, value) in pairs {
        out.extend_from_slice(name);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b":status", b"200"),
            (b"content-type", b"application/json"),
            (b"x-empty", b""),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ];
        let bytes = encode(&pairs);
        assert_eq!(parse(&bytes), Some(pairs));
        assert_eq!(parse(&encode(&[])), Some(vec![]));
        assert_eq!(parse(b""), Some(vec![]));
    }

    #[test]
    fn malformed_maps_are_refused() {
        let good = encode(&[(b"a", b"1"), (b"bb", b"22")]);
        // Every truncation and a count the bytes cannot hold.
        for cut in 1..good.len() {
            assert_eq!(parse(&good[..cut]), None, "cut at {cut}");
        }
        let mut huge = good;
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&huge), None);
    }
}
