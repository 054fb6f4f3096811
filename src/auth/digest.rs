//! SHA-256 digests of API keys.
//!
//! The digest of a key is `sha256(key bytes)`. In configuration and logs it is
//! written as lowercase hex: the same string as Python's
//! `hashlib.sha256(key.encode()).hexdigest()`, so keys issued by an existing
//! Python service can be imported unchanged.

use sha2::{Digest as _, Sha256};

/// A raw SHA-256 digest.
pub type Digest = [u8; 32];

/// Length of a hex-encoded SHA-256 digest.
pub const DIGEST_HEX_LEN: usize = 64;

/// How many hex characters of a digest may appear in logs and events to
/// identify a key: 64 bits, enough to tell keys apart, far too little to help
/// anyone guess one.
pub const DIGEST_ID_LEN: usize = 16;

pub fn sha256(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&sha256(bytes))
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    prefixed_hex("", bytes)
}

/// `prefix` followed by `bytes` in lowercase hex, in one allocation (the
/// shared-data key of a digest, built on every request).
pub fn prefixed_hex(prefix: &str, bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(prefix.len() + bytes.len() * 2);
    out.push_str(prefix);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// Parses exactly 64 lowercase hex characters; None for anything else
/// (uppercase included, so one digest has one spelling).
pub fn parse_digest_hex(s: &str) -> Option<Digest> {
    if s.len() != DIGEST_HEX_LEN {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// The short identifier of a digest used in logs: its first 16 hex characters.
pub fn digest_id(digest: &Digest) -> String {
    to_hex(&digest[..DIGEST_ID_LEN / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_hashlib() {
        // python3 -c 'import hashlib; print(hashlib.sha256(b"abc").hexdigest())'
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hex_round_trips_and_only_lowercase_64_hex_parses() {
        let d = sha256(b"key");
        let hex = to_hex(&d);
        assert_eq!(parse_digest_hex(&hex), Some(d));
        assert_eq!(parse_digest_hex(&hex.to_uppercase()), None);
        assert_eq!(parse_digest_hex(&hex[..63]), None);
        assert_eq!(parse_digest_hex(&format!("{hex}0")), None);
        assert_eq!(parse_digest_hex(&hex.replace('a', "g")), None);
        assert_eq!(parse_digest_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn digest_id_is_the_hex_prefix() {
        let d = sha256(b"key");
        assert_eq!(digest_id(&d), &to_hex(&d)[..16]);
    }
}
