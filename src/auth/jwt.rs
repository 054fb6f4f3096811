//! JWT callers: the claims of a token that Envoy's `jwt_authn` filter has
//! already verified (signature, issuer, audience, expiry, JWKS), read from
//! the payload it stores as dynamic metadata (`payload_in_metadata`). No JWT
//! parsing or cryptography happens here.
//!
//! Envoy hands the payload to the filter (property
//! `metadata.filter_metadata["envoy.filters.http.jwt_authn"][<payload key>]`)
//! in the proxy-wasm pairs encoding: a map is `count: u32`, then `count`
//! pairs of lengths `(key: u32, value: u32)`, then each key and value
//! followed by a NUL byte. Values are encoded the same way recursively:
//! strings as their bytes, lists as pairs with empty values, maps as pairs,
//! numbers as 8-byte floats. One property read gives every claim.

use crate::auth::digest::{sha256, Digest};

/// A claim: its name at the top of the payload, or a path into nested
/// objects (`["realm_access", "roles"]`, Keycloak's realm roles).
pub type ClaimPath = Vec<String>;

/// Where the filter finds a caller's identity in a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// jwt_authn's `payload_in_metadata` value.
    pub payload_key: String,
    /// The caller's identity (its rate limits), with the issuer.
    pub subject_claim: ClaimPath,
    /// Forwarded upstream as `x-api-key-name` (default: the subject).
    pub name_claim: ClaimPath,
    /// A configured tier name (absent or unknown: `default_tier`).
    pub tier_claim: Option<ClaimPath>,
    /// A list of role names, or one string of space-separated names
    /// (OAuth2 `scope`).
    pub roles_claim: Option<ClaimPath>,
    /// Subjects the rate-limit table holds at once.
    pub max_subjects: usize,
}

/// The metadata namespace jwt_authn writes its payloads under.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";
/// Longest subject or name accepted, in bytes.
pub const MAX_CLAIM_BYTES: usize = 256;
/// Most roles read from one token.
pub const MAX_ROLES: usize = 32;

/// What the filter takes from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// SHA-256 of issuer, NUL, subject: the caller's identity.
    pub digest: Digest,
    /// Header-safe name for `x-api-key-name` and events.
    pub name: String,
    /// The tier claim's value, if any (checked against the tiers later).
    pub tier: Option<String>,
    /// None: the token has no roles claim.
    pub roles: Option<Vec<String>>,
}

/// Why a verified payload cannot identify a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimsError {
    /// Not in the pairs encoding.
    Unreadable,
    /// No subject, an empty one or a longer one than [`MAX_CLAIM_BYTES`].
    NoSubject,
}

/// One level of the pairs encoding, read strictly: None unless the bytes
/// are exactly one well-formed map or list.
pub fn pairs(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    crate::http::header_map::parse_exact(bytes)
}

/// The value of `path` in an encoded map.
fn lookup<'a>(payload: &'a [u8], path: &[String]) -> Option<&'a [u8]> {
    let mut current = payload;
    for name in path {
        current = pairs(current)?
            .into_iter()
            .find(|(k, _)| *k == name.as_bytes())
            .map(|(_, v)| v)?;
    }
    Some(current)
}

/// A claim that must be a string.
fn string_claim<'a>(payload: &'a [u8], path: &[String]) -> Option<&'a str> {
    std::str::from_utf8(lookup(payload, path)?).ok()
}

/// A list of strings, or one string of space-separated names.
fn names_claim(value: &[u8]) -> Vec<String> {
    let list = pairs(value).filter(|items| items.iter().all(|(_, v)| v.is_empty()));
    let names: Vec<String> = match list {
        Some(items) => items
            .iter()
            .filter_map(|(k, _)| std::str::from_utf8(k).ok())
            .map(str::to_string)
            .collect(),
        None => std::str::from_utf8(value)
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
    };
    names.into_iter().take(MAX_ROLES).collect()
}

/// A claim value as a header value and event field: printable ASCII kept,
/// every other byte (and `%`) percent-encoded.
pub fn header_safe(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The caller a verified payload names.
pub fn claims(settings: &JwtSettings, payload: &[u8]) -> Result<Claims, ClaimsError> {
    if pairs(payload).is_none() {
        return Err(ClaimsError::Unreadable);
    }
    let subject = string_claim(payload, &settings.subject_claim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_CLAIM_BYTES)
        .ok_or(ClaimsError::NoSubject)?;
    let issuer = string_claim(payload, &["iss".to_string()]).unwrap_or_default();
    let mut identity = Vec::with_capacity(issuer.len() + 1 + subject.len());
    identity.extend_from_slice(issuer.as_bytes());
    identity.push(0);
    identity.extend_from_slice(subject.as_bytes());
    let name = string_claim(payload, &settings.name_claim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_CLAIM_BYTES)
        .unwrap_or(subject);
    let tier = settings
        .tier_claim
        .as_ref()
        .and_then(|path| string_claim(payload, path))
        .map(str::to_string);
    let roles = settings
        .roles_claim
        .as_ref()
        .and_then(|path| lookup(payload, path))
        .map(names_claim);
    Ok(Claims {
        digest: sha256(&identity),
        name: header_safe(name),
        tier,
        roles,
    })
}

/// Encodes one level of the pairs encoding, as Envoy does (tests build
/// payloads with it).
#[cfg(test)]
pub fn encode_pairs(pairs: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let slices: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (k.as_bytes(), &v[..])).collect();
    crate::http::header_map::encode(&slices)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload Envoy 1.40 gave the filter for a token with
    /// `{"iss": "https://idp.test", "aud": "rag-api", "sub":
    /// "alice@example.com", "exp": ..., "roles": ["reader", "ingest"],
    /// "scope": "query docs", "nested": {"a": 1, "b": ["x"]}, "tier": "pro"}`
    /// (captured from a live Envoy with jwt_authn and a local JWKS).
    const ENVOY_PAYLOAD: &str = "080000000400000003000000030000000800000005000000240000000300000007000000060000003100000003000000110000000300000010000000050000000a000000746965720070726f00657870000000802720c4da4100726f6c65730002000000060000000000000006000000000000007265616465720000696e67657374000000617564007261672d617069006e65737465640002000000010000000f00000001000000080000006200010000000100000000000000780000006100000000000000f03f000073756200616c696365406578616d706c652e636f6d006973730068747470733a2f2f6964702e746573740073636f706500717565727920646f637300";

    fn payload() -> Vec<u8> {
        (0..ENVOY_PAYLOAD.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&ENVOY_PAYLOAD[i..i + 2], 16).unwrap())
            .collect()
    }

    fn path(p: &[&str]) -> ClaimPath {
        p.iter().map(|s| s.to_string()).collect()
    }

    fn settings() -> JwtSettings {
        JwtSettings {
            payload_key: "jwt_payload".into(),
            subject_claim: path(&["sub"]),
            name_claim: path(&["sub"]),
            tier_claim: Some(path(&["tier"])),
            roles_claim: Some(path(&["roles"])),
            max_subjects: 4096,
        }
    }

    #[test]
    fn reads_envoys_payload() {
        let c = claims(&settings(), &payload()).unwrap();
        assert_eq!(c.name, "alice@example.com");
        assert_eq!(c.tier.as_deref(), Some("pro"));
        assert_eq!(c.roles, Some(vec!["reader".into(), "ingest".into()]));
        assert_eq!(c.digest, sha256(b"https://idp.test\0alice@example.com"));
    }

    #[test]
    fn scopes_nested_claims_and_missing_ones() {
        let p = payload();
        let scope = JwtSettings {
            roles_claim: Some(path(&["scope"])),
            tier_claim: Some(path(&["missing"])),
            ..settings()
        };
        let c = claims(&scope, &p).unwrap();
        assert_eq!(c.roles, Some(vec!["query".into(), "docs".into()]));
        assert_eq!(c.tier, None);
        let nested = JwtSettings {
            roles_claim: Some(path(&["nested", "b"])),
            name_claim: path(&["aud"]),
            ..settings()
        };
        let c = claims(&nested, &p).unwrap();
        assert_eq!(c.roles, Some(vec!["x".into()]));
        assert_eq!(c.name, "rag-api");
        let none = JwtSettings {
            roles_claim: Some(path(&["nope"])),
            ..settings()
        };
        assert_eq!(claims(&none, &p).unwrap().roles, None);
    }

    #[test]
    fn no_subject_or_junk_is_refused() {
        let p = payload();
        let other = JwtSettings {
            subject_claim: path(&["email"]),
            ..settings()
        };
        assert_eq!(claims(&other, &p), Err(ClaimsError::NoSubject));
        // A number is not a subject.
        let number = JwtSettings {
            subject_claim: path(&["exp"]),
            ..settings()
        };
        assert_eq!(claims(&number, &p), Err(ClaimsError::NoSubject));
        assert_eq!(claims(&settings(), b"sub"), Err(ClaimsError::Unreadable));
        assert_eq!(
            claims(&settings(), &p[..p.len() - 1]),
            Err(ClaimsError::Unreadable)
        );
        assert!(pairs(&[0xff, 0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn encoding_round_trips() {
        let bytes = encode_pairs(&[("sub", b"x".to_vec()), ("roles", Vec::new())]);
        let parsed = pairs(&bytes).unwrap();
        assert_eq!(
            parsed,
            vec![(&b"sub"[..], &b"x"[..]), (&b"roles"[..], &b""[..])]
        );
    }

    #[test]
    fn names_are_header_safe() {
        assert_eq!(header_safe("josé\r\nx: 1%"), "jos%C3%A9%0D%0Ax: 1%25");
        assert_eq!(header_safe("alice@example.com"), "alice@example.com");
    }
}
