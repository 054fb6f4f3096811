//! The `jwt` section: where the filter finds a caller in a token verified
//! by Envoy's `jwt_authn` filter (placed before rag-guard), and how many
//! subjects the rate-limit table holds.

use serde::Deserialize;

use crate::auth::jwt::{ClaimPath, JwtSettings};
use crate::key_state::subjects::MAX_SUBJECTS;

use super::error::{err, ConfigError};

/// A claim name (`"sub"`) or a path into nested objects
/// (`["realm_access", "roles"]`). A name is taken literally: Auth0-style
/// claim names such as `https://example.com/roles` contain dots.
/// (Deserialized by hand: serde's `untagged` buffers the whole value and
/// cost the wasm more than the rest of the section.)
pub(super) struct RawClaim(Vec<String>);

impl<'de> Deserialize<'de> for RawClaim {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Claim;
        impl<'de> serde::de::Visitor<'de> for Claim {
            type Value = RawClaim;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a claim name or a list of names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawClaim, E> {
                Ok(RawClaim(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawClaim, A::Error> {
                let mut path = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    path.push(name);
                }
                Ok(RawClaim(path))
            }
        }
        d.deserialize_any(Claim)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwt {
    #[serde(default = "default_payload_key")]
    payload_key: String,
    #[serde(default)]
    subject_claim: Option<RawClaim>,
    #[serde(default)]
    name_claim: Option<RawClaim>,
    #[serde(default)]
    tier_claim: Option<RawClaim>,
    #[serde(default)]
    roles_claim: Option<RawClaim>,
    #[serde(default = "default_max_subjects")]
    max_subjects: usize,
}

fn default_payload_key() -> String {
    "jwt_payload".to_string()
}

fn default_max_subjects() -> usize {
    4096
}

fn claim(raw: Option<RawClaim>, field: &str) -> Result<Option<ClaimPath>, ConfigError> {
    let Some(RawClaim(path)) = raw else {
        return Ok(None);
    };
    if path.is_empty() || path.len() > 8 || path.iter().any(|p| p.is_empty() || p.len() > 256) {
        return Err(err(
            format!("jwt.{field}"),
            "must be a claim name or a list of 1-8 non-empty names (a path into nested claims)",
        ));
    }
    Ok(Some(path))
}

pub(super) fn parse_jwt(raw: RawJwt) -> Result<JwtSettings, ConfigError> {
    let key = &raw.payload_key;
    if key.is_empty() || key.len() > 128 || key.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return Err(err(
            "jwt.payload_key",
            "must be the payload_in_metadata name of jwt_authn's providers (printable ASCII)",
        ));
    }
    if !(16..=MAX_SUBJECTS).contains(&raw.max_subjects) {
        return Err(err(
            "jwt.max_subjects",
            format!("must be 16..={MAX_SUBJECTS}"),
        ));
    }
    let subject_claim =
        claim(raw.subject_claim, "subject_claim")?.unwrap_or_else(|| vec!["sub".into()]);
    let name_claim = claim(raw.name_claim, "name_claim")?.unwrap_or_else(|| subject_claim.clone());
    Ok(JwtSettings {
        payload_key: raw.payload_key,
        subject_claim,
        name_claim,
        tier_claim: claim(raw.tier_claim, "tier_claim")?,
        roles_claim: claim(raw.roles_claim, "roles_claim")?,
        max_subjects: raw.max_subjects,
    })
}
