//! The strict JSON reader against serde_json: the same verdict and the same value for every input.
//!
//! The reference is serde_json with duplicate member names refused (the one rule json.rs documents as
//! its own) and `float_roundtrip`, which rounds floats correctly as the strict reader does. The other
//! documented difference is nesting: each reader has its own bound, so a verdict reached at that bound
//! ("nested too deeply" / "recursion limit") is not compared.
#![no_main]

use jwtv_verifier::json::{MAX_DEPTH, parse_value};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A `Value` read by serde_json with duplicate member names refused.
struct NoDuplicates(Value);

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor).map(NoDuplicates)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom("not finite"))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(NoDuplicates(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let NoDuplicates(v) = map.next_value()?;
            if members.insert(name, v).is_some() {
                return Err(de::Error::custom("duplicate member name"));
            }
        }
        Ok(Value::Object(members))
    }
}

fn at_depth_bound(error: &str) -> bool {
    error.contains("nested too deeply") || error.contains("recursion limit")
}

fuzz_target!(|data: &[u8]| {
    let strict = parse_value(data, MAX_DEPTH);
    let reference = serde_json::from_slice::<NoDuplicates>(data)
        .map(|v| v.0)
        .map_err(|e| e.to_string());
    match (strict, reference) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the readers disagree on the value"),
        (Err(_), Err(_)) => {}
        (Err(e), Ok(_)) | (Ok(_), Err(e)) if at_depth_bound(&e) => {}
        (Ok(a), Err(e)) => panic!("only the strict reader accepts ({a:?}); serde_json: {e}"),
        (Err(e), Ok(b)) => panic!("only serde_json accepts ({b:?}); strict reader: {e}"),
    }
});
