//! JSON parsing that refuses duplicate object keys at any depth.
//!
//! Parsers disagree on which copy of a duplicate key wins (the filter might
//! screen the first `question` while the upstream uses the last), so a body
//! with a duplicate key is refused instead of being interpreted. Nesting is
//! limited by serde_json's recursion limit (128).

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Most JSON values (objects, arrays, strings, numbers, ...) a body may
/// hold. Bounds the work and memory spent on a hostile body (a 10 MB object
/// of a million one-character keys) before the schema refuses it.
pub const MAX_VALUES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON, or not UTF-8.
    Invalid(String),
    /// An object has the same key twice.
    DuplicateKey(String),
    /// More than [`MAX_VALUES`] values.
    TooLarge,
}

/// Parses `bytes` as JSON, refusing duplicate keys.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let budget = Cell::new(MAX_VALUES);
    let value = Strict(&budget).deserialize(&mut de).map_err(|e| {
        let msg = e.to_string();
        if let Some(rest) = msg.strip_prefix(DUPLICATE_PREFIX) {
            let key = rest.split(" at line").next().unwrap_or(rest);
            JsonError::DuplicateKey(key.to_string())
        } else if msg.starts_with(TOO_LARGE) {
            JsonError::TooLarge
        } else {
            JsonError::Invalid(msg)
        }
    })?;
    de.end().map_err(|e| JsonError::Invalid(e.to_string()))?;
    Ok(value)
}

const DUPLICATE_PREFIX: &str = "duplicate key: ";
const TOO_LARGE: &str = "too many JSON values";

/// Deserializes one value, spending one unit of the shared budget.
#[derive(Clone, Copy)]
struct Strict<'b>(&'b Cell<usize>);

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.0.get().checked_sub(1) {
            Some(left) => self.0.set(left),
            None => return Err(de::Error::custom(TOO_LARGE)),
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
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
        while let Some(v) = seq.next_element_seed(self)? {
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
            let v = map.next_value_seed(self)?;
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

    #[test]
    fn value_count_is_bounded() {
        let many = format!("[{}0]", "0,".repeat(MAX_VALUES));
        assert_eq!(parse(many.as_bytes()), Err(JsonError::TooLarge));
        let fits = format!("[{}0]", "0,".repeat(MAX_VALUES - 2));
        assert!(parse(fits.as_bytes()).is_ok());
    }
}
