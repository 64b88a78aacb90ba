//! Strict JSON for untrusted input: objects only at the top, duplicate member names rejected
//! (RFC 7519 §4 lets us choose; accepting them lets two parsers disagree about a claim), nesting bounded.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// Parses `bytes` as one JSON object. The error is a short human description.
pub fn parse_object(bytes: &[u8], max_depth: usize) -> Result<Map<String, Value>, String> {
    parse_object_observing(bytes, max_depth, &mut |_, _| {})
}

/// Sees each top-level member of an object as it is read.
pub(crate) type Observer<'a> = dyn FnMut(&str, &Value) + 'a;

/// [`parse_object`] that also shows each top-level member to `observe` as it is read, so a caller can
/// note what it needs (the time claims) without looking members up again afterwards.
///
/// `observe` is a trait object so that every caller shares one copy of serde_json's parser for the
/// top level: each instantiation costs kilobytes in the WebAssembly component.
pub(crate) fn parse_object_observing(
    bytes: &[u8],
    max_depth: usize,
    observe: &mut Observer<'_>,
) -> Result<Map<String, Value>, String> {
    let mut de = deserializer(bytes).map_err(|e| e.to_string())?;
    let map = TopLevel {
        depth_left: max_depth,
        observe,
    }
    .deserialize(&mut de)
    .map_err(|e| describe(&e))?;
    de.end().map_err(|e| describe(&e))?;
    Ok(map)
}

/// A JSON reader over `bytes`. Validating UTF-8 once and reading from a `str` is cheaper than
/// serde_json checking each string of a byte slice (measured: about a fifth of the parse of a usual
/// payload). Same acceptance: JSON outside strings is ASCII, so invalid UTF-8 anywhere is refused
/// either way.
pub(crate) fn deserializer(
    bytes: &[u8],
) -> Result<serde_json::Deserializer<serde_json::de::StrRead<'_>>, std::str::Utf8Error> {
    std::str::from_utf8(bytes).map(serde_json::Deserializer::from_str)
}

fn describe(e: &serde_json::Error) -> String {
    // serde_json's message with its position; it never quotes the input itself.
    e.to_string()
}

/// The top-level object: [`Strict`]'s rules, plus the observer.
struct TopLevel<'f> {
    depth_left: usize,
    observe: &'f mut Observer<'f>,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        read_map(self.depth_left, map, Some(self.observe))
    }
}

/// Any JSON value, under the rules of this module.
pub(crate) struct Strict {
    pub(crate) depth_left: usize,
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
        let inner = enter(self.depth_left)?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict { depth_left: inner })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        read_map(self.depth_left, map, None).map(Value::Object)
    }
}

/// The rest of an object entered with `depth_left`, each top-level member shown to `observe`.
fn read_map<'de, A: MapAccess<'de>>(
    depth_left: usize,
    mut map: A,
    mut observe: Option<&mut Observer<'_>>,
) -> Result<Map<String, Value>, A::Error> {
    let inner = enter(depth_left)?;
    let mut out = Map::new();
    while let Some(key) = map.next_key::<String>()? {
        // One search per member: the vacant entry remembers where the value goes.
        match out.entry(key) {
            Entry::Occupied(e) => return Err(duplicate(e.key())),
            Entry::Vacant(e) => {
                let value = map.next_value_seed(Strict { depth_left: inner })?;
                if let Some(observe) = observe.as_mut() {
                    observe(e.key(), &value);
                }
                e.insert(value);
            }
        }
    }
    Ok(out)
}

/// The depth left inside a container entered with `depth_left`, or the error when there is none.
pub(crate) fn enter<E: de::Error>(depth_left: usize) -> Result<usize, E> {
    depth_left
        .checked_sub(1)
        .ok_or_else(|| E::custom("JSON nested too deeply"))
}

pub(crate) fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format_args!("duplicate member name {key:?}"))
}

/// A member name, borrowed from the input when it holds no escape, so reading a name we only compare
/// costs no allocation.
pub(crate) struct Name;

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
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
