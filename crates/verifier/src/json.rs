//! Strict JSON for untrusted input: objects only at the top, duplicate member names rejected
//! (RFC 7519 §4 lets us choose; accepting them lets two parsers disagree about a claim), nesting bounded.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Parses `bytes` as one JSON object. The error is a short human description.
pub fn parse_object(bytes: &[u8], max_depth: usize) -> Result<Map<String, Value>, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict {
        depth_left: max_depth,
    }
    .deserialize(&mut de)
    .map_err(|e| describe(&e))?;
    de.end().map_err(|e| describe(&e))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err("not a JSON object".to_owned()),
    }
}

fn describe(e: &serde_json::Error) -> String {
    // serde_json's message with its position; it never quotes the input itself.
    e.to_string()
}

struct Strict {
    depth_left: usize,
}

impl Strict {
    fn nested<E: de::Error>(&self) -> Result<Strict, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(Strict { depth_left }),
            None => Err(E::custom("JSON nested too deeply")),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
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

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict {
            depth_left: inner.depth_left,
        })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate member name {key:?}"
                )));
            }
            let v = map.next_value_seed(Strict {
                depth_left: inner.depth_left,
            })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_an_object() {
        let m = parse_object(br#"{"a":1,"b":[true,null,"x"],"c":{"d":2.5}}"#, 8).unwrap();
        assert_eq!(m["a"], 1);
        assert_eq!(m["c"]["d"], 2.5);
    }

    #[test]
    fn rejects_duplicate_member_names() {
        let e = parse_object(br#"{"sub":"alice","sub":"admin"}"#, 8).unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
        let e = parse_object(br#"{"a":{"x":1,"x":2}}"#, 8).unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
    }

    #[test]
    fn bounds_nesting_depth() {
        assert!(parse_object(br#"{"a":[[1]]}"#, 3).is_ok());
        let e = parse_object(br#"{"a":[[[1]]]}"#, 3).unwrap_err();
        assert!(e.contains("deep"), "{e}");
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
        assert!(parse_object(deep.as_bytes(), 16).is_err());
    }

    #[test]
    fn rejects_non_objects_and_trailing_data() {
        for s in [
            &b"[1]"[..],
            b"\"x\"",
            b"1",
            b"null",
            b"{} {}",
            b"{",
            b"",
            b"{\"a\":1,}",
        ] {
            assert!(
                parse_object(s, 8).is_err(),
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
    }

    #[test]
    fn rejects_invalid_utf8() {
        assert!(parse_object(b"{\"a\":\"\xff\"}", 8).is_err());
    }
}
