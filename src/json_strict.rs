//! JSON parsing that refuses duplicate object keys at any depth.
//!
//! Parsers disagree on which copy of a duplicate key wins (the filter might
//! screen the first `question` while the upstream uses the last), so a body
//! with a duplicate key is refused instead of being interpreted. Nesting is
//! limited by serde_json's recursion limit (128).

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON, or not UTF-8.
    Invalid(String),
    /// An object has the same key twice.
    DuplicateKey(String),
}

/// Parses `bytes` as JSON, refusing duplicate keys.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue::deserialize(&mut de).map_err(|e| {
        let msg = e.to_string();
        match msg.strip_prefix(DUPLICATE_PREFIX) {
            Some(rest) => {
                JsonError::DuplicateKey(rest.split(" at line").next().unwrap_or(rest).to_string())
            }
            None => JsonError::Invalid(msg),
        }
    })?;
    de.end().map_err(|e| JsonError::Invalid(e.to_string()))?;
    Ok(value.0)
}

const DUPLICATE_PREFIX: &str = "duplicate key: ";

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("{DUPLICATE_PREFIX}{key}")));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_serde_json() {
        let v = parse(br#"{"a": [1, 2.5, "x", null, true, {"b": {}}]}"#).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": [1, 2.5, "x", null, true, {"b": {}}]})
        );
    }

    #[test]
    fn refuses_duplicates_at_any_depth() {
        assert_eq!(
            parse(br#"{"question": "a", "question": "b"}"#),
            Err(JsonError::DuplicateKey("question".into()))
        );
        assert!(matches!(
            parse(br#"{"x": [{"k": 1, "k": 2}]}"#),
            Err(JsonError::DuplicateKey(_))
        ));
        // Escapes are decoded before comparing: these are the same key.
        assert!(matches!(
            parse(br#"{"q": 1, "\u0071": 2}"#),
            Err(JsonError::DuplicateKey(_))
        ));
    }

    #[test]
    fn refuses_invalid_json_and_utf8() {
        for bad in [
            &b"{"[..],
            b"{'a': 1}",
            b"{\"a\": 1} x",
            b"\xff\xfe",
            b"",
            b"{\"a\": \"\xff\"}",
        ] {
            assert!(matches!(parse(bad), Err(JsonError::Invalid(_))), "{bad:?}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
