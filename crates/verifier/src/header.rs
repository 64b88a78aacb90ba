//! The JOSE header: which algorithm, which key, which type. Nothing in it can bring a key of its own.

use crate::alg::Algorithm;
use crate::error::{Code, Rejection};
use crate::key::MAX_KID_LEN;
use serde_json::{Map, Value};

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
        if let Some(crit) = map.get("crit") {
            // We implement no extension, so any `crit` (even an empty list, which RFC 7515 forbids)
            // names something we would silently ignore.
            return Err(Rejection::new(
                Code::UnsupportedCrit,
                format!("critical header extensions are not supported: {crit}"),
            ));
        }
        let alg = match map.get("alg") {
            Some(Value::String(s)) => s
                .parse::<Algorithm>()
                .map_err(|_| Rejection::new(Code::AlgNotAllowed, alg_refusal(s)))?,
            Some(_) => return Err(Rejection::malformed("header alg is not a string")),
            None => return Err(Rejection::malformed("header has no alg")),
        };
        let kid = match map.get("kid") {
            None => None,
            Some(Value::String(s)) if s.len() <= MAX_KID_LEN => Some(s.clone()),
            Some(Value::String(_)) => {
                return Err(Rejection::malformed(format!(
                    "header kid is longer than {MAX_KID_LEN} bytes"
                )));
            }
            Some(_) => return Err(Rejection::malformed("header kid is not a string")),
        };
        let typ = match map.get("typ") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Rejection::malformed("header typ is not a string")),
        };
        Ok(Header { alg, kid, typ })
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

    fn header(v: Value) -> Result<Header, Rejection> {
        Header::from_json(v.as_object().unwrap())
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
