//! The reader's own rules, and differential tests against serde_json: on hand-picked documents and on
//! many mutations of valid ones, it must accept exactly what serde_json accepts, to the same values,
//! apart from the differences chosen on purpose (duplicate member names, refused here).

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
    // Compared after unescaping, at any level, in arrays too.
    for s in [&br#"{"a":1,"\u0061":2}"#[..], br#"{"x":[{"k":1,"k":1}]}"#] {
        let e = parse_object(s, 8).unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
    }
    let e = parse_value(br#"[{"k":1,"k":2}]"#, 8).unwrap_err();
    assert!(e.contains("duplicate"), "{e}");
}

#[test]
fn bounds_nesting_depth() {
    assert!(parse_object(br#"{"a":[[1]]}"#, 3).is_ok());
    let e = parse_object(br#"{"a":[[[1]]]}"#, 3).unwrap_err();
    assert!(e.contains("deep"), "{e}");
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
    assert!(parse_object(deep.as_bytes(), 16).is_err());
    // Whatever the caller asks, never deeper than MAX_DEPTH (no stack overflow either way).
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(parse_value(nested(MAX_DEPTH).as_bytes(), usize::MAX).is_ok());
    let e = parse_value(nested(MAX_DEPTH + 1).as_bytes(), usize::MAX).unwrap_err();
    assert!(e.contains("nested too deeply"), "{e}");
    let e = parse_value(nested(1_000_000).as_bytes(), usize::MAX).unwrap_err();
    assert!(e.contains("nested too deeply"), "{e}");
    let e = parse_object(b"{}", 0).unwrap_err();
    assert!(e.contains("nested too deeply"), "{e}");
    // Scalars take no depth.
    assert_eq!(parse_value(b"1", 0).unwrap(), 1);
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

#[test]
fn errors_give_a_byte_offset_and_never_quote_the_input() {
    let cases: [(&[u8], &str); 8] = [
        (br#"{"a" 1}"#, "expected ':' at byte 5"),
        (
            br#"{"secret":1,"secret":2}"#,
            "duplicate member name at byte 12",
        ),
        (b"{\"a\":\"\xff\"}", "invalid UTF-8 at byte 6"),
        (br#"{"a":01}"#, "leading zero) at byte 5"),
        (br#"{"a":1e400}"#, "number out of range at byte 5"),
        (br#"{"a":"\x"}"#, "invalid escape at byte 7"),
        (br#"{"a":1} x"#, "trailing characters at byte 8"),
        (br#"{"a":"#, "unexpected end of input at byte 5"),
    ];
    for (doc, expected) in cases {
        let e = parse_object(doc, 8).unwrap_err();
        assert!(e.ends_with(expected), "{e:?} for {expected:?}");
        assert!(!e.contains("secret"), "{e}");
    }
}

#[test]
fn unescaped_strings_are_borrowed() {
    let mut seen = Vec::new();
    read_object(
        br#"{"plain":"value","esc\"aped":"v\n"}"#,
        8,
        &mut |r, name, depth| {
            let value = r.string_or_other(depth)?;
            seen.push((
                matches!(name, Cow::Borrowed(_)),
                matches!(value, Some(Cow::Borrowed(_))),
            ));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(seen, [(true, true), (false, false)]);
}

#[test]
fn the_observer_sees_top_level_members_in_order() {
    let mut seen = Vec::new();
    let map = parse_object_observing(br#"{"b":1,"a":{"x":2},"c":[3]}"#, 8, &mut |k, v| {
        seen.push((k.to_owned(), v.clone()));
    })
    .unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0], ("b".to_owned(), Value::from(1)));
    assert_eq!(seen[1].0, "a");
    assert_eq!(seen[2].0, "c");
    assert_eq!(map.len(), 3);
}

// --- Differential tests against serde_json -------------------------------------------------------

/// serde_json refuses a 128th level of nesting; this depth makes the reader refuse it too.
const SERDE_DEPTH: usize = 127;

fn serde(doc: &[u8]) -> Option<Value> {
    serde_json::from_slice(doc).ok()
}

/// Equal values, except that floats may differ in the last bits: without its `float_roundtrip`
/// feature (not enabled here), serde_json's float parsing is fast but not always correctly rounded,
/// while this reader uses `str::parse::<f64>`, which is. Integers and everything else must match
/// exactly, representation included (`1` is not `1.0`).
fn same(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() && b.is_f64() => {
            match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y
                        || (x.is_sign_negative() == y.is_sign_negative()
                            && (x - y).abs() <= x.abs().max(y.abs()) * 1e-15)
                }
                _ => false,
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => ours == theirs,
    }
}

fn show(doc: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(doc))
}

const VALID: &[&str] = &[
    r#"{}"#,
    r#"[]"#,
    r#" { } "#,
    "\t\n\r {\"a\" \t:\n1\r}\n",
    r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
    r#""plain""#,
    r#""""#,
    r#""\"\\\/\b\f\n\r\t""#,
    r#""\u0000\u001f\u0020\u007f\u00e9\u20AC\uFFFF\uffFe""#,
    r#""\uD83D\uDE00 \ud834\udd1e""#,
    r#""\uDBFF\uDFFF\uD800\uDC00""#,
    "\"caf\u{e9} \u{1F600} \u{7f} \u{ffff}\"",
    r#"{"\u0061":"\u0062","b\"c":"d\\e"}"#,
    r#"0"#,
    r#"-0"#,
    r#"-0.0"#,
    r#"0.0"#,
    r#"1"#,
    r#"-1"#,
    r#"123456789"#,
    r#"18446744073709551615"#,
    r#"18446744073709551616"#,
    r#"-9223372036854775808"#,
    r#"-9223372036854775809"#,
    r#"-18446744073709551615"#,
    r#"-18446744073709551616"#,
    r#"100000000000000000000000000000000000000000000000000"#,
    r#"9223372036854775807"#,
    r#"9223372036854775808"#,
    r#"1.5"#,
    r#"-1.5"#,
    r#"0.1"#,
    r#"3.141592653589793"#,
    r#"1e3"#,
    r#"1E3"#,
    r#"1e+3"#,
    r#"1e-3"#,
    r#"1.5e10"#,
    r#"-2.5E-10"#,
    r#"0e0"#,
    r#"0E+0"#,
    r#"1e308"#,
    r#"1.7976931348623157e308"#,
    r#"2.2250738585072014e-308"#,
    r#"5e-324"#,
    r#"1e-400"#,
    r#"-1e-400"#,
    r#"0e400"#,
    r#"0e99999999999999999999"#,
    r#"1e-99999999999999999999"#,
    r#"123456789012345678901234567890.5e-10"#,
    r#"1.0"#,
    r#"1e0"#,
    r#"[1,-1,1.0,-0,0]"#,
    r#"true"#,
    r#"false"#,
    r#"null"#,
    r#"[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]"#,
    r#"{"a":{"b":{"c":{"d":{"e":[{"f":null}]}}}}}"#,
    r#"[1 , 2 ,3 ]"#,
    r#"{"alg":"HS256","typ":"JWT","kid":"k-1"}"#,
    r#"{"sub":"alice","exp":1700000600,"iat":1699999990.5,"aud":["a","b"],"x":{"y":[1,{"z":-3}]}}"#,
    r#"{"keys":[{"kty":"oct","k":"AAAA","alg":"HS256"},{"kty":"EC","crv":"P-256","x":"x","y":"y"}]}"#,
];

const INVALID: &[&[u8]] = &[
    b"",
    b" ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"{\"a\"}",
    b"{\"a\":}",
    b"{\"a\" 1}",
    b"{\"a\":1,}",
    b"[1,]",
    b"[,1]",
    b"[1 2]",
    b"{,}",
    b"{\"a\":1 \"b\":2}",
    b"{1:2}",
    b"{a:1}",
    b"{'a':1}",
    b"'a'",
    b"01",
    b"-01",
    b"00",
    b"+1",
    b".5",
    b"-.5",
    b"1.",
    b"1.e3",
    b"1e",
    b"1e+",
    b"1e-",
    b"-",
    b"--1",
    b"0x10",
    b"1e400",
    b"-1e400",
    b"1e99999999999999999999",
    b"1.8e308",
    b"NaN",
    b"nan",
    b"Infinity",
    b"-Infinity",
    b"tru",
    b"True",
    b"nul",
    b"nulll",
    b"falsee",
    b"\"abc",
    b"\"\\\"",
    b"\"a\nb\"",
    b"\"a\tb\"",
    b"\"\x00\"",
    b"\"\x1f\"",
    b"\"\\x41\"",
    b"\"\\a\"",
    b"\"\\U0041\"",
    b"\"\\u41\"",
    b"\"\\u004\"",
    b"\"\\u00G1\"",
    b"\"\\uD800\"",
    b"\"\\uDC00\"",
    b"\"\\uDFFF\"",
    b"\"\\uD800\\u0041\"",
    b"\"\\uD800\\uD800\"",
    b"\"\\uD800\\n\"",
    b"\"\\uD800x\"",
    b"\"\\uDC00\\uD800\"",
    b"\"\xff\"",
    b"\"\xc3\"",
    b"\"\xed\xa0\x80\"",
    b"\"\xc0\xaf\"",
    b"{\"a\xff\":1}",
    b"\xef\xbb\xbf{}",
    b"{} // comment",
    b"/* c */ {}",
    b"{\"a\":1 /* c */}",
    b"# c\n{}",
    b"{}x",
    b"{} {}",
    b"1 2",
    b"[1]]",
    b"{\"a\":1}}",
    b"\x0c{}",
    b"\x0b{}",
    b"{}\x00",
    b"\xc2\xa0{}",
    b"[\"a\",]",
    b"{\"a\":[1,2}",
    b"{\"a\":{\"b\":1]}",
];

#[test]
fn accepts_what_serde_json_accepts_to_the_same_value() {
    for doc in VALID {
        let theirs = serde(doc.as_bytes()).unwrap_or_else(|| panic!("serde_json refuses {doc}"));
        let ours =
            parse_value(doc.as_bytes(), SERDE_DEPTH).unwrap_or_else(|e| panic!("{doc}: {e}"));
        assert!(same(&ours, &theirs), "{doc}: {ours} vs {theirs}");
        if let Value::Object(map) = &theirs {
            let object = parse_object(doc.as_bytes(), SERDE_DEPTH).unwrap();
            assert!(
                same(&Value::Object(object), &Value::Object(map.clone())),
                "{doc}"
            );
        }
    }
}

#[test]
fn numbers_keep_serde_json_representations() {
    // Exactly equal, so also the same variant: u64 when it fits, i64 when negative and it fits, else
    // f64; `-0` is a float.
    for doc in [
        "0",
        "-0",
        "1",
        "-1",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "1.0",
        "1e2",
        "-0.0",
    ] {
        let ours = parse_value(doc.as_bytes(), 8).unwrap();
        let theirs: Value = serde_json::from_str(doc).unwrap();
        assert_eq!(ours, theirs, "{doc}");
        let (Value::Number(a), Value::Number(b)) = (&ours, &theirs) else {
            panic!("{doc}")
        };
        assert_eq!(
            (a.is_u64(), a.is_i64(), a.is_f64()),
            (b.is_u64(), b.is_i64(), b.is_f64()),
            "{doc}"
        );
        if a.is_f64() {
            let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert_eq!(x.is_sign_negative(), y.is_sign_negative(), "{doc}");
        }
    }
}

#[test]
fn refuses_what_serde_json_refuses() {
    for doc in INVALID {
        assert!(serde(doc).is_none(), "serde_json accepts {}", show(doc));
        assert!(
            parse_value(doc, SERDE_DEPTH).is_err(),
            "accepted {}",
            show(doc)
        );
        assert!(
            parse_object(doc, SERDE_DEPTH).is_err(),
            "accepted {}",
            show(doc)
        );
    }
}

#[test]
fn depth_matches_serde_json_at_its_limit() {
    for n in [SERDE_DEPTH - 1, SERDE_DEPTH, SERDE_DEPTH + 1] {
        let arrays = format!("{}{}", "[".repeat(n), "]".repeat(n));
        let objects = format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        for doc in [arrays, objects] {
            assert_eq!(
                parse_value(doc.as_bytes(), SERDE_DEPTH).is_ok(),
                serde(doc.as_bytes()).is_some(),
                "depth {n}"
            );
        }
    }
}

#[test]
fn duplicates_are_the_deliberate_difference() {
    // serde_json keeps the last of duplicate members; this reader refuses the document.
    let doc = br#"{"a":1,"a":2}"#;
    assert_eq!(serde(doc), Some(serde_json::json!({"a": 2})));
    assert!(parse_value(doc, 8).unwrap_err().contains("duplicate"));
}

/// xorshift64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes worth putting into JSON: its syntax, the starts of escapes, number parts, and bytes that are
/// invalid in various ways.
const INTERESTING: &[u8] =
    b"{}[]\":,\\/ \t\n\r0123456789-+.eEutfnlrsabDdCcF\x00\x01\x1f\x7f\x80\xbf\xc3\xed\xf0\xff'#*";

fn mutate(doc: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = doc.to_vec();
    for _ in 0..1 + rng.below(3) {
        let len = out.len();
        let pos = if len == 0 { 0 } else { rng.below(len) };
        let byte = if rng.below(4) == 0 {
            (rng.next() & 0xff) as u8
        } else {
            INTERESTING[rng.below(INTERESTING.len())]
        };
        match rng.below(6) {
            0 | 1 if len > 0 => out[pos] = byte,
            2 if len > 0 => {
                out.remove(pos);
            }
            3 => out.insert(pos, byte),
            4 if len > 0 => {
                // Repeat a short span: duplicates members, nests, lengthens numbers.
                let end = (pos + 1 + rng.below(12)).min(len);
                let span = out[pos..end].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, span);
            }
            5 if len > 0 => out.truncate(pos),
            _ => out.push(byte),
        }
    }
    out
}

#[test]
fn mutated_documents_are_judged_like_serde_json() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut refused, mut duplicates, mut rounding) = (0, 0, 0, 0);
    for seed in VALID {
        for _ in 0..3000 {
            let doc = mutate(seed.as_bytes(), &mut rng);
            let ours = parse_value(&doc, SERDE_DEPTH);
            let theirs = serde(&doc);
            match (&ours, &theirs) {
                (Err(e), _) if e.contains("duplicate") => duplicates += 1,
                (Ok(a), Some(b)) => {
                    assert!(same(a, b), "{}: {a} vs {b}", show(&doc));
                    accepted += 1;
                }
                (Err(_), None) => refused += 1,
                (Ok(a), None) if near_max(a) => rounding += 1,
                (Ok(_), None) => panic!("accepted what serde_json refuses: {}", show(&doc)),
                (Err(e), Some(_)) => panic!("refused what serde_json accepts: {}: {e}", show(&doc)),
            }
            // The object reader agrees with the value reader on objects, and refuses the rest.
            let object = parse_object(&doc, SERDE_DEPTH);
            match (&ours, &object) {
                (Ok(Value::Object(a)), Ok(b)) => assert_eq!(a, b, "{}", show(&doc)),
                (Ok(Value::Object(_)), Err(e)) => panic!("{}: {e}", show(&doc)),
                (_, Ok(_)) => panic!("object reader accepted {}", show(&doc)),
                _ => {}
            }
        }
    }
    eprintln!(
        "{accepted} accepted, {refused} refused, {duplicates} duplicates, {rounding} near f64::MAX"
    );
    // The mutations reach both outcomes often (and duplicates now and then).
    assert!(accepted > 10_000, "{accepted} accepted");
    assert!(refused > 50_000, "{refused} refused");
    assert!(duplicates > 10, "{duplicates} duplicates");
    assert!(rounding < 50, "{rounding} numbers next to f64::MAX");
}

/// Whether `v` holds a float so close to `f64::MAX` that serde_json, whose float parsing is not
/// correctly rounded (see [`same`]), may take it for infinity and refuse it.
fn near_max(v: &Value) -> bool {
    match v {
        Value::Number(n) => n
            .as_f64()
            .is_some_and(|x| n.is_f64() && x.abs() > 1.7976931348623e308),
        Value::Array(a) => a.iter().any(near_max),
        Value::Object(m) => m.values().any(near_max),
        _ => false,
    }
}

#[test]
fn floats_are_correctly_rounded_up_to_f64_max() {
    // The one place where acceptance differs for numbers: this rounds to f64::MAX (finite), which
    // serde_json without `float_roundtrip` takes for infinity and refuses. We read the number the way
    // Rust and RFC 8259's "IEEE 754 binary64" mean it.
    let doc = b"1.797693134862315708e308";
    assert_eq!(parse_value(doc, 8).unwrap(), Value::from(f64::MAX));
    // Past the halfway point to 2^1024, it is infinity for everyone.
    assert!(parse_value(b"1.7976931348623158080e308", 8).is_err());
    assert!(serde(b"1.7976931348623158080e308").is_none());
}

#[test]
fn strings_are_read_alike_wherever_their_special_bytes_fall() {
    // The reader skips through strings eight bytes at a time: put each kind of byte a string treats
    // specially (and a few it does not) at every position of strings of every length around a word.
    for len in 0..40 {
        for at in 0..len {
            for special in [
                &b"\""[..],
                b"\\",
                b"\\n",
                b"\\u00e9",
                b"\\ud83d\\ude00",
                b"\x00",
                b"\x1f",
                b" ",
                b"\x7f",
                "\u{e9}".as_bytes(),
                "\u{1F600}".as_bytes(),
            ] {
                let mut doc = b"[\"".to_vec();
                doc.extend(std::iter::repeat_n(b'a', at));
                doc.extend_from_slice(special);
                doc.extend(std::iter::repeat_n(b'b', len - at));
                doc.extend_from_slice(b"\"]");
                for doc in [doc.clone(), doc[1..doc.len() - 1].to_vec()] {
                    let ours = parse_value(&doc, 8).ok();
                    assert_eq!(ours, serde(&doc), "{}", show(&doc));
                }
            }
        }
    }
}

#[test]
fn find_member_reads_the_whole_object_and_keeps_one_member() {
    let found = find_member(br#"{"a":[1,{"b":2}],"token":"x.y.z"}"#, "token", 8).unwrap();
    assert_eq!(found, Found::Str(Cow::Borrowed("x.y.z")));
    assert_eq!(find_member(br#"{"a":1}"#, "token", 8), Ok(Found::Absent));
    assert_eq!(
        find_member(br#"{"token":null}"#, "token", 8),
        Ok(Found::Null)
    );
    assert_eq!(
        find_member(br#"{"token":nul}"#, "token", 8)
            .map(|_| ())
            .unwrap_err(),
        "expected a value at byte 9"
    );
    assert_eq!(
        find_member(br#"{"token":[1]}"#, "token", 8),
        Ok(Found::Other)
    );
    // The rules of parse_object hold for every member, kept or not.
    for doc in [
        &br#"{"token":"a","token":"a"}"#[..],
        br#"{"a":1,"a":1,"token":"t"}"#,
        br#"{"token":"t","a":{"k":1,"k":2}}"#,
    ] {
        let e = find_member(doc, "token", 8).unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
    }
    assert!(find_member(br#"{"a":[[[1]]],"token":"t"}"#, "token", 3).is_err());
    assert!(find_member(br#"{"token":"t"} x"#, "token", 8).is_err());
    assert!(find_member(br#"["token"]"#, "token", 8).is_err());
}
