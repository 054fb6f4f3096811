//! SHA-256 digests of API keys, as lowercase hex.
//!
//! The digest of a key is `sha256(key bytes)` written as 64 lowercase hex
//! characters: the same string as Python's
//! `hashlib.sha256(key.encode()).hexdigest()`, so keys issued by an existing
//! Python service can be imported unchanged.

use sha2::{Digest as _, Sha256};

/// Length of a hex-encoded SHA-256 digest.
pub const DIGEST_HEX_LEN: usize = 64;

/// How many hex characters of a digest may appear in logs and events to
/// identify a key that has no name (an unknown key). 64 bits: enough to tell
/// keys apart, far too little to help anyone guess a key.
pub const DIGEST_ID_LEN: usize = 16;

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(DIGEST_HEX_LEN);
    for byte in hash.iter() {
        out.push(hex_char(byte >> 4));
        out.push(hex_char(byte & 0x0f));
    }
    out
}

fn hex_char(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

/// True when `s` is exactly 64 lowercase hex characters.
pub fn is_digest_hex(s: &str) -> bool {
    s.len() == DIGEST_HEX_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The short identifier of a digest used in logs: its first 16 hex characters.
pub fn digest_id(digest_hex: &str) -> &str {
    digest_hex.get(..DIGEST_ID_LEN).unwrap_or(digest_hex)
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
    fn recognises_only_lowercase_64_hex() {
        let good = sha256_hex(b"key");
        assert!(is_digest_hex(&good));
        assert!(!is_digest_hex(&good.to_uppercase()));
        assert!(!is_digest_hex(&good[..63]));
        assert!(!is_digest_hex(&format!("{good}0")));
        assert!(!is_digest_hex(&good.replace('a', "g")));
    }

    #[test]
    fn digest_id_is_a_prefix() {
        let d = sha256_hex(b"key");
        assert_eq!(digest_id(&d), &d[..16]);
        assert_eq!(digest_id("abc"), "abc");
    }
}
