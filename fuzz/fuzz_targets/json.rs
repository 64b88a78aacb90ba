//! The strict JSON reader on any bytes, at the deepest nesting it allows: it must answer, never panic
//! or overflow its stack.
#![no_main]

use jwtv_verifier::json::{MAX_DEPTH, parse_object, parse_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let value = parse_value(data, MAX_DEPTH);
    let object = parse_object(data, MAX_DEPTH);
    // Both read the same grammar; an object is a value that is an object.
    match (&value, &object) {
        (Ok(serde_json::Value::Object(v)), Ok(o)) => assert_eq!(v, o),
        (Ok(serde_json::Value::Object(_)), Err(e)) => {
            panic!("object refused only by parse_object: {e}")
        }
        (_, Ok(_)) => panic!("parse_object accepted what parse_value did not read as an object"),
        _ => {}
    }
});
