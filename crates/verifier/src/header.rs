//! The JOSE header: which algorithm, which key, which type. Nothing in it can bring a key of its own.

use crate::alg::Algorithm;
use crate::error::{Code, Rejection};
use crate::json;
use crate::key::MAX_KID_LEN;
use serde_json::map::Entry;
use serde_json::{Map, Value};
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

impl Header {
    /// Reads the members we use. `jku`, `x5u`, `jwk` and `x5c` are ignored on purpose: a key named or
    /// carried by the token would let its author choose the key that verifies it (CVE-2018-0114).
    pub fn from_json(map: &Map<String, Value>) -> Result<Header, Rejection> {
        let member = |name: &str| match map.get(name) {
            None => Member::Absent,
            Some(Value::String(s)) => Member::Str(Cow::Borrowed(s.as_str())),
            Some(_) => Member::Other,
        };
        let members = Members {
            alg: member("alg"),
            kid: member("kid"),
            typ: member("typ"),
            crit: map.get("crit").cloned(),
        };
        let header = members.into_header()?;
        Ok(Header {
            alg: header.alg,
            kid: header.kid.map(Cow::into_owned),
            typ: header.typ.map(Cow::into_owned),
        })
    }
}

/// A header as the verifier uses it: `kid` and `typ` borrowed from the decoded header when they hold
/// no escape, so only a `kid` that ends up in a result is ever copied.
#[derive(Debug)]
pub(crate) struct HeaderRef<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<Cow<'a, str>>,
    pub(crate) typ: Option<Cow<'a, str>>,
}

/// Parses the decoded JOSE header straight into the members we use, with the rules of
/// [`json::parse_object`] (one object, no duplicate names, bounded depth) and those of
/// [`Header::from_json`]. No map is built: other members are checked and dropped.
pub(crate) fn parse(bytes: &[u8], max_depth: usize) -> Result<HeaderRef<'_>, Rejection> {
    let mut members = Members::default();
    // Names of the members we ignore, only to refuse duplicates among them too. A header rarely has
    // any, so this usually stays empty and never allocates; it is the map type the parser already
    // uses, so it adds no code.
    let mut others = Map::new();
    json::read_object(bytes, max_depth, &mut |r, name, depth_left| {
        let slot = match &*name {
            "alg" => &mut members.alg,
            "kid" => &mut members.kid,
            "typ" => &mut members.typ,
            "crit" => {
                if members.crit.is_some() {
                    return Err(r.duplicate());
                }
                members.crit = Some(r.value(depth_left)?);
                return Ok(());
            }
            _ => {
                match others.entry(name.into_owned()) {
                    Entry::Occupied(_) => return Err(r.duplicate()),
                    Entry::Vacant(e) => {
                        e.insert(Value::Null);
                    }
                }
                // Read like a member we use, so it is checked by the same rules, then dropped.
                r.string_or_other(depth_left)?;
                return Ok(());
            }
        };
        if !matches!(slot, Member::Absent) {
            return Err(r.duplicate());
        }
        *slot = match r.string_or_other(depth_left)? {
            Some(s) => Member::Str(s),
            None => Member::Other,
        };
        Ok(())
    })
    .map_err(|e| Rejection::malformed(format!("header is not a JSON object: {e}")))?;
    members.into_header()
}

/// A header member we read: absent, a string, or any other JSON value (a type error for every
/// member we read).
#[derive(Debug, Default)]
enum Member<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    Other,
}

/// The members the rules look at, as found in the header.
#[derive(Debug, Default)]
struct Members<'a> {
    alg: Member<'a>,
    kid: Member<'a>,
    typ: Member<'a>,
    /// Kept whole, only to be named in the refusal.
    crit: Option<Value>,
}

impl<'a> Members<'a> {
    /// The header rules, in one place for both ways of reading a header.
    fn into_header(self) -> Result<HeaderRef<'a>, Rejection> {
        if let Some(crit) = self.crit {
            // We implement no extension, so any `crit` (even an empty list, which RFC 7515 forbids)
            // names something we would silently ignore.
            return Err(Rejection::new(
                Code::UnsupportedCrit,
                format!("critical header extensions are not supported: {crit}"),
            ));
        }
        let alg = match self.alg {
            Member::Str(s) => s
                .parse::<Algorithm>()
                .map_err(|_| Rejection::new(Code::AlgNotAllowed, alg_refusal(&s)))?,
            Member::Other => return Err(Rejection::malformed("header alg is not a string")),
            Member::Absent => return Err(Rejection::malformed("header has no alg")),
        };
        let kid = match self.kid {
            Member::Absent => None,
            Member::Str(s) if s.len() <= MAX_KID_LEN => Some(s),
            Member::Str(_) => {
                return Err(Rejection::malformed(format!(
                    "header kid is longer than {MAX_KID_LEN} bytes"
                )));
            }
            Member::Other => return Err(Rejection::malformed("header kid is not a string")),
        };
        let typ = match self.typ {
            Member::Absent => None,
            Member::Str(s) => Some(s),
            Member::Other => return Err(Rejection::malformed("header typ is not a string")),
        };
        Ok(HeaderRef { alg, kid, typ })
    }
}

fn alg_refusal(alg: &str) -> String {
    if alg.eq_ignore_ascii_case("none") {
        "unsigned tokens (alg none) are never accepted".to_owned()
    } else {
        let shown: String = alg.chars().take(32).collect();
        format!("alg {shown:?} is not supported")
    }
}

/// Compares a `typ` with an accepted type as RFC 7515 §4.1.9 says: case-insensitively, with the
/// `application/` prefix optional.
pub fn type_matches(typ: &str, accepted: &str) -> bool {
    fn short(t: &str) -> &str {
        let lower_prefix = t.len() >= 12 && t[..12].eq_ignore_ascii_case("application/");
        if lower_prefix { &t[12..] } else { t }
    }
    short(typ).eq_ignore_ascii_case(short(accepted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Reads `v` both ways (from a map, and straight from its bytes as the verifier does); the two must
    /// agree.
    fn header(v: Value) -> Result<Header, Rejection> {
        let from_map = Header::from_json(v.as_object().unwrap());
        let bytes = v.to_string();
        let parsed = parse(bytes.as_bytes(), 8).map(|h| Header {
            alg: h.alg,
            kid: h.kid.map(Cow::into_owned),
            typ: h.typ.map(Cow::into_owned),
        });
        assert_eq!(parsed, from_map, "{v}");
        from_map
    }

    fn parse_code(bytes: &[u8], depth: usize) -> Code {
        parse(bytes, depth).unwrap_err().code
    }

    #[test]
    fn parse_refuses_duplicate_members_of_any_kind() {
        for h in [
            &br#"{"alg":"HS256","alg":"HS256"}"#[..],
            br#"{"alg":"HS256","kid":"a","kid":"a"}"#,
            br#"{"alg":"HS256","typ":"JWT","typ":"JWT"}"#,
            br#"{"alg":"HS256","x5t":"a","x5t":"b"}"#,
            br#"{"alg":"HS256","jwk":{"k":"a","k":"b"}}"#,
            br#"{"alg":"HS256","x":[{"a":1,"a":1}]}"#,
            // Names are compared after unescaping, as a map would compare them.
            br#"{"alg":"HS256","\u0061lg":"none"}"#,
            br#"{"alg":"HS256","x\u0074":1,"xt":2}"#,
        ] {
            let e = parse(h, 8).unwrap_err();
            assert_eq!(
                e.code,
                Code::MalformedToken,
                "{}",
                String::from_utf8_lossy(h)
            );
            assert!(e.description.contains("duplicate"), "{}", e.description);
        }
        // A duplicate `crit` is malformed before it is unsupported.
        assert_eq!(
            parse_code(br#"{"alg":"HS256","crit":[],"crit":[]}"#, 8),
            Code::MalformedToken
        );
    }

    #[test]
    fn parse_bounds_depth_everywhere() {
        // The header object is one level; its members' values count from there.
        assert!(parse(br#"{"alg":"HS256","x":[[1]]}"#, 3).is_ok());
        for h in [
            &br#"{"alg":"HS256","x":[[[1]]]}"#[..],
            br#"{"alg":"HS256","x":{"a":{"b":{}}}}"#,
            br#"{"alg":[[[1]]]}"#,
            br#"{"alg":"HS256","kid":{"a":{"b":{}}}}"#,
            br#"{"alg":"HS256","crit":[[["b64"]]]}"#,
        ] {
            let e = parse(h, 3).unwrap_err();
            assert_eq!(
                e.code,
                Code::MalformedToken,
                "{}",
                String::from_utf8_lossy(h)
            );
            assert!(e.description.contains("deep"), "{}", e.description);
        }
        assert_eq!(parse_code(br#"{"alg":"HS256"}"#, 0), Code::MalformedToken);
        let deep = format!(
            "{{\"alg\":\"HS256\",\"x\":{}1{}}}",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert_eq!(parse_code(deep.as_bytes(), 16), Code::MalformedToken);
    }

    #[test]
    fn parse_wants_exactly_one_object() {
        for h in [
            &b"[]"[..],
            b"\"HS256\"",
            b"1",
            b"null",
            b"",
            b"{",
            br#"{"alg":"HS256"} {}"#,
            br#"{"alg":"HS256"}x"#,
            br#"{"alg":"HS256",}"#,
            b"{\"alg\":\"HS256\",\"x\":\"\xff\"}",
        ] {
            assert_eq!(
                parse_code(h, 8),
                Code::MalformedToken,
                "{}",
                String::from_utf8_lossy(h)
            );
        }
    }

    #[test]
    fn parse_reads_escaped_members() {
        let h = parse(
            br#"{"\u0061lg":"HS\u0032\u00356","kid":"a\/b","typ":"J\u0057T"}"#,
            8,
        )
        .unwrap();
        assert_eq!(h.alg, Algorithm::HS256);
        assert_eq!(h.kid.as_deref(), Some("a/b"));
        assert_eq!(h.typ.as_deref(), Some("JWT"));
        let h = parse(br#"{"alg":"HS256","kid":"plain"}"#, 8).unwrap();
        assert!(
            matches!(h.kid, Some(Cow::Borrowed("plain"))),
            "an unescaped kid is borrowed, not copied"
        );
    }

    #[test]
    fn alg_none_is_refused_in_every_spelling() {
        for alg in ["none", "None", "NONE", "nOnE"] {
            let e = header(json!({"alg": alg})).unwrap_err();
            assert_eq!(e.code, Code::AlgNotAllowed, "{alg}");
        }
    }

    #[test]
    fn alg_is_case_sensitive_and_required() {
        assert_eq!(
            header(json!({"alg": "hs256"})).unwrap_err().code,
            Code::AlgNotAllowed
        );
        assert_eq!(
            header(json!({"typ": "JWT"})).unwrap_err().code,
            Code::MalformedToken
        );
        assert_eq!(
            header(json!({"alg": 1})).unwrap_err().code,
            Code::MalformedToken
        );
    }

    #[test]
    fn any_crit_is_refused_even_empty() {
        for crit in [json!([]), json!(["b64"]), json!(["exp"]), json!("x")] {
            let e = header(json!({"alg": "HS256", "crit": crit})).unwrap_err();
            assert_eq!(e.code, Code::UnsupportedCrit);
        }
    }

    #[test]
    fn kid_is_length_capped_and_a_string() {
        let long = "k".repeat(MAX_KID_LEN + 1);
        assert_eq!(
            header(json!({"alg": "HS256", "kid": long}))
                .unwrap_err()
                .code,
            Code::MalformedToken
        );
        assert_eq!(
            header(json!({"alg": "HS256", "kid": 7})).unwrap_err().code,
            Code::MalformedToken
        );
        let ok = header(json!({"alg": "HS256", "kid": "k".repeat(MAX_KID_LEN)})).unwrap();
        assert_eq!(ok.kid.unwrap().len(), MAX_KID_LEN);
    }

    #[test]
    fn embedded_keys_are_not_read() {
        let h = header(json!({"alg": "RS256", "jwk": {"kty": "oct", "k": "AAAA"}, "jku": "https://evil", "x5u": "https://evil", "x5c": ["MIIB"]})).unwrap();
        assert_eq!(
            h,
            Header {
                alg: Algorithm::RS256,
                kid: None,
                typ: None
            }
        );
    }

    #[test]
    fn typ_comparison() {
        assert!(type_matches("JWT", "JWT"));
        assert!(type_matches("jwt", "JWT"));
        assert!(type_matches("application/at+jwt", "at+jwt"));
        assert!(type_matches("AT+JWT", "application/at+jwt"));
        assert!(!type_matches("JWS", "JWT"));
        assert!(!type_matches("application/jwt+x", "JWT"));
    }
}
