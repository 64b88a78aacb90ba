//! Registered-claim checks (RFC 7519 §4.1) against a [`Policy`] and a caller-supplied time.

use crate::error::{Code, Rejection};
use crate::json;
use crate::policy::Policy;
use crate::trace::{Check, NoTrace, Trace};
use serde_json::{Map, Value};

pub type Claims = Map<String, Value>;

/// Applies every claim rule of `policy` at time `now` (seconds since the Unix epoch).
pub fn check(claims: &Claims, policy: &Policy, now: u64) -> Result<(), Rejection> {
    check_with_dates(claims, Dates::of(claims), policy, now, &mut NoTrace).map(|_| ())
}

/// What a claims set holds under `exp`, `nbf` and `iat`, read while it is parsed (see [`parse`]) or
/// looked up afterwards; either way the same rules apply to it.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Dates {
    exp: Date,
    nbf: Date,
    iat: Date,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Date {
    #[default]
    Absent,
    /// A JSON number, and its value when it has one as `f64`.
    Number(Option<f64>),
    NotNumber,
}

impl Date {
    fn of(value: Option<&Value>) -> Date {
        match value {
            None => Date::Absent,
            Some(Value::Number(n)) => Date::Number(n.as_f64()),
            Some(_) => Date::NotNumber,
        }
    }

    /// Absent, or a JSON number: a string `"exp"` is malformed, not absent.
    fn get(self, name: &str) -> Result<Option<f64>, Rejection> {
        match self {
            Date::Absent => Ok(None),
            Date::Number(Some(n)) => Ok(Some(n)),
            Date::Number(None) => Err(Rejection::malformed(format!(
                "{name} is not a usable number"
            ))),
            Date::NotNumber => Err(Rejection::malformed(format!("{name} must be a number"))),
        }
    }
}

impl Dates {
    fn of(claims: &Claims) -> Dates {
        Dates {
            exp: Date::of(claims.get("exp")),
            nbf: Date::of(claims.get("nbf")),
            iat: Date::of(claims.get("iat")),
        }
    }

    /// Notes a top-level member if it is one of the three.
    fn observe(&mut self, name: &str, value: &Value) {
        let slot = match name {
            "exp" => &mut self.exp,
            "nbf" => &mut self.nbf,
            "iat" => &mut self.iat,
            _ => return,
        };
        *slot = Date::of(Some(value));
    }
}

/// Parses a payload with the rules of [`json::parse_object`], noting the time claims on the way, so
/// checking them needs no lookup.
pub(crate) fn parse(bytes: &[u8], max_depth: usize) -> Result<(Claims, Dates), String> {
    let mut dates = Dates::default();
    let claims = json::parse_object_observing(bytes, max_depth, &mut |name, value| {
        dates.observe(name, value)
    })?;
    Ok((claims, dates))
}

/// [`check`] with the time claims already read; returns `exp` (seconds since the epoch, when
/// present) for the result.
pub(crate) fn check_with_dates<T: Trace>(
    claims: &Claims,
    dates: Dates,
    policy: &Policy,
    now: u64,
    trace: &mut T,
) -> Result<Option<f64>, Rejection> {
    let exp = check_times(dates, policy, now, trace)?;
    if policy.issuer.is_some() {
        match string_claim(claims, "iss")? {
            Some(iss) => match crate::issuer::matches(policy, iss, claims) {
                crate::issuer::Match::Yes => {}
                crate::issuer::Match::No => {
                    return Err(Rejection::new(
                        Code::InvalidIssuer,
                        "issuer is not accepted",
                    ));
                }
                crate::issuer::Match::Refused(rejection) => return Err(rejection),
            },
            None => return Err(missing("iss")),
        }
    }
    trace.passed(Check::IssuerClaim);
    check_audience(claims, &policy.audiences)?;
    trace.passed(Check::Audience);
    if let Some(expected) = &policy.subject {
        match string_claim(claims, "sub")? {
            Some(sub) if sub == expected => {}
            Some(_) => return Err(Rejection::new(Code::MissingClaim, "sub does not match")),
            None => return Err(missing("sub")),
        }
    }
    trace.passed(Check::Subject);
    check_present(claims, &policy.required_claims)?;
    trace.passed(Check::RequiredClaims);
    check_scopes(claims, &policy.required_scopes)?;
    trace.passed(Check::Scopes);
    Ok(exp)
}

/// The time rules; returns `exp`.
fn check_times<T: Trace>(
    dates: Dates,
    policy: &Policy,
    now: u64,
    trace: &mut T,
) -> Result<Option<f64>, Rejection> {
    let now = now as f64;
    let leeway = policy.leeway_secs as f64;
    let exp = dates.exp.get("exp")?;
    match exp {
        // RFC 7519 §4.1.4: the current time must be before exp.
        Some(exp) if now >= exp + leeway => {
            return Err(Rejection::new(Code::TokenExpired, "token has expired"));
        }
        Some(_) => {}
        None if policy.require_exp => return Err(missing("exp")),
        None => {}
    }
    trace.passed(Check::Expiry);
    if let Some(nbf) = dates.nbf.get("nbf")?
        && now + leeway < nbf
    {
        return Err(Rejection::new(
            Code::TokenNotYetValid,
            "token is not valid yet (nbf)",
        ));
    }
    trace.passed(Check::NotBefore);
    let iat = dates.iat.get("iat")?;
    if let Some(iat) = iat
        && iat > now + leeway
    {
        return Err(Rejection::new(
            Code::TokenNotYetValid,
            "token was issued in the future (iat)",
        ));
    }
    trace.passed(Check::IssuedAt);
    if let Some(max_age) = policy.max_age_secs {
        let iat = iat.ok_or_else(|| missing("iat"))?;
        if now - iat > max_age as f64 + leeway {
            return Err(Rejection::new(
                Code::TokenTooOld,
                format!("token is older than {max_age} s"),
            ));
        }
    }
    trace.passed(Check::MaxAge);
    Ok(exp)
}

/// `aud` must name one of `accepted` (any-of); with nothing accepted, `aud` is not checked.
pub fn check_audience(claims: &Claims, accepted: &[String]) -> Result<(), Rejection> {
    if accepted.is_empty() {
        return Ok(());
    }
    let matches = |a: &str| accepted.iter().any(|x| x == a);
    let ok = match claims.get("aud") {
        None => return Err(missing("aud")),
        Some(Value::String(a)) => matches(a),
        Some(Value::Array(items)) => {
            let mut any = false;
            for item in items {
                match item {
                    Value::String(a) => any |= matches(a),
                    _ => return Err(Rejection::malformed("aud array holds a non-string")),
                }
            }
            any
        }
        Some(_) => return Err(Rejection::malformed("aud is neither a string nor an array")),
    };
    if ok {
        Ok(())
    } else {
        Err(Rejection::new(
            Code::InvalidAudience,
            "audience is not accepted",
        ))
    }
}

/// Every name in `required` must be present as a claim (dotted paths reach into objects).
pub fn check_present(claims: &Claims, required: &[String]) -> Result<(), Rejection> {
    match required.iter().find(|name| lookup(claims, name).is_none()) {
        Some(name) => Err(missing(name)),
        None => Ok(()),
    }
}

/// Every scope in `required` must be granted.
pub fn check_scopes(claims: &Claims, required: &[String]) -> Result<(), Rejection> {
    if required.is_empty() {
        return Ok(());
    }
    let granted = scopes(claims);
    match required.iter().find(|r| !granted.contains(&r.as_str())) {
        Some(r) => Err(Rejection::new(
            Code::InsufficientScope,
            format!("scope {r:?} is required"),
        )),
        None => Ok(()),
    }
}

/// Granted scopes: OAuth `scope` (space-delimited, RFC 8693 / RFC 9068) and `scp` (array or string,
/// as Entra and Okta issue it).
pub fn scopes(claims: &Claims) -> Vec<&str> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split(' ').filter(|s| !s.is_empty())),
            Some(Value::Array(items)) => out.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    out
}

/// Looks up a claim by dotted path (`realm_access.roles`). An exact top-level name wins, so claims
/// whose names contain dots (URL-style namespaced claims) stay reachable.
pub fn lookup<'a>(claims: &'a Claims, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// A NumericDate claim: absent, or a JSON number (a string `"exp"` is malformed, not absent).
pub fn numeric_date(claims: &Claims, name: &str) -> Result<Option<f64>, Rejection> {
    Date::of(claims.get(name)).get(name)
}

fn string_claim<'a>(claims: &'a Claims, name: &str) -> Result<Option<&'a str>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Rejection::malformed(format!("{name} must be a string"))),
    }
}

fn missing(name: &str) -> Rejection {
    Rejection::new(
        Code::MissingClaim,
        format!("required claim {name:?} is missing"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn claims(v: Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    fn code(v: Value, policy: &Policy) -> Option<Code> {
        check(&claims(v), policy, NOW).err().map(|e| e.code)
    }

    #[test]
    fn exp_is_required_by_default() {
        let p = Policy::default();
        assert_eq!(code(json!({}), &p), Some(Code::MissingClaim));
        let lax = Policy {
            require_exp: false,
            ..Policy::default()
        };
        assert_eq!(code(json!({}), &lax), None);
    }

    #[test]
    fn exp_with_leeway() {
        let p = Policy::default();
        assert_eq!(code(json!({"exp": NOW + 1}), &p), None);
        assert_eq!(
            code(json!({"exp": NOW - 59}), &p),
            None,
            "inside the 60 s leeway"
        );
        assert_eq!(code(json!({"exp": NOW - 60}), &p), Some(Code::TokenExpired));
        let strict = Policy {
            leeway_secs: 0,
            ..Policy::default()
        };
        assert_eq!(code(json!({"exp": NOW}), &strict), Some(Code::TokenExpired));
        assert_eq!(
            code(json!({"exp": NOW as f64 + 0.5}), &strict),
            None,
            "fractional NumericDate"
        );
    }

    #[test]
    fn nbf_and_future_iat_with_leeway() {
        let p = Policy::default();
        let exp = NOW + 600;
        assert_eq!(code(json!({"exp": exp, "nbf": NOW + 60}), &p), None);
        assert_eq!(
            code(json!({"exp": exp, "nbf": NOW + 61}), &p),
            Some(Code::TokenNotYetValid)
        );
        assert_eq!(code(json!({"exp": exp, "iat": NOW + 60}), &p), None);
        assert_eq!(
            code(json!({"exp": exp, "iat": NOW + 61}), &p),
            Some(Code::TokenNotYetValid)
        );
    }

    #[test]
    fn time_claims_must_be_numbers() {
        let p = Policy::default();
        assert_eq!(
            code(json!({"exp": "9999999999"}), &p),
            Some(Code::MalformedToken)
        );
        assert_eq!(
            code(json!({"exp": NOW + 9, "nbf": "0"}), &p),
            Some(Code::MalformedToken)
        );
        assert_eq!(
            code(json!({"exp": NOW + 9, "iat": null}), &p),
            Some(Code::MalformedToken)
        );
        assert_eq!(
            code(json!({"exp": [NOW + 9]}), &p),
            Some(Code::MalformedToken)
        );
    }

    #[test]
    fn max_age_needs_iat() {
        let p = Policy {
            max_age_secs: Some(300),
            ..Policy::default()
        };
        let exp = NOW + 600;
        assert_eq!(code(json!({"exp": exp}), &p), Some(Code::MissingClaim));
        assert_eq!(code(json!({"exp": exp, "iat": NOW - 300}), &p), None);
        assert_eq!(
            code(json!({"exp": exp, "iat": NOW - 361}), &p),
            Some(Code::TokenTooOld)
        );
    }

    #[test]
    fn issuer_exact_match() {
        let p = Policy {
            issuer: Some("https://idp".into()),
            ..Policy::default()
        };
        let exp = NOW + 600;
        assert_eq!(code(json!({"exp": exp, "iss": "https://idp"}), &p), None);
        assert_eq!(
            code(json!({"exp": exp, "iss": "https://idp/"}), &p),
            Some(Code::InvalidIssuer)
        );
        assert_eq!(
            code(json!({"exp": exp, "iss": "HTTPS://IDP"}), &p),
            Some(Code::InvalidIssuer)
        );
        assert_eq!(code(json!({"exp": exp}), &p), Some(Code::MissingClaim));
    }

    #[test]
    fn audience_any_of_and_required_when_configured() {
        let p = Policy {
            audiences: vec!["api".into(), "web".into()],
            ..Policy::default()
        };
        let exp = NOW + 600;
        assert_eq!(code(json!({"exp": exp, "aud": "web"}), &p), None);
        assert_eq!(code(json!({"exp": exp, "aud": ["x", "api"]}), &p), None);
        assert_eq!(
            code(json!({"exp": exp, "aud": ["x", "y"]}), &p),
            Some(Code::InvalidAudience)
        );
        assert_eq!(
            code(json!({"exp": exp, "aud": "API"}), &p),
            Some(Code::InvalidAudience)
        );
        assert_eq!(
            code(json!({"exp": exp, "aud": []}), &p),
            Some(Code::InvalidAudience)
        );
        assert_eq!(code(json!({"exp": exp}), &p), Some(Code::MissingClaim));
        assert_eq!(
            code(json!({"exp": exp, "aud": 1}), &p),
            Some(Code::MalformedToken)
        );
    }

    #[test]
    fn subject_and_required_claims() {
        let p = Policy {
            subject: Some("svc".into()),
            required_claims: vec!["tenant".into(), "realm_access.roles".into()],
            ..Policy::default()
        };
        let exp = NOW + 600;
        let ok = json!({"exp": exp, "sub": "svc", "tenant": "t", "realm_access": {"roles": []}});
        assert_eq!(code(ok, &p), None);
        assert_eq!(
            code(
                json!({"exp": exp, "sub": "other", "tenant": 1, "realm_access": {"roles": []}}),
                &p
            ),
            Some(Code::MissingClaim)
        );
        assert_eq!(
            code(
                json!({"exp": exp, "sub": "svc", "realm_access": {"roles": []}}),
                &p
            ),
            Some(Code::MissingClaim)
        );
        assert_eq!(
            code(
                json!({"exp": exp, "sub": "svc", "tenant": "t", "realm_access": {}}),
                &p
            ),
            Some(Code::MissingClaim)
        );
    }

    #[test]
    fn required_scopes_from_scope_or_scp() {
        let p = Policy {
            required_scopes: vec!["read".into(), "write".into()],
            ..Policy::default()
        };
        let exp = NOW + 600;
        assert_eq!(
            code(json!({"exp": exp, "scope": "read write admin"}), &p),
            None
        );
        assert_eq!(
            code(json!({"exp": exp, "scp": ["write", "read"]}), &p),
            None
        );
        assert_eq!(
            code(json!({"exp": exp, "scope": "read"}), &p),
            Some(Code::InsufficientScope)
        );
        assert_eq!(
            code(json!({"exp": exp, "scope": "readwrite"}), &p),
            Some(Code::InsufficientScope)
        );
        assert_eq!(code(json!({"exp": exp}), &p), Some(Code::InsufficientScope));
    }

    #[test]
    fn dates_read_while_parsing_are_the_dates_looked_up() {
        let policy = Policy {
            max_age_secs: Some(300),
            ..Policy::default()
        };
        for payload in [
            json!({}),
            json!({"exp": NOW + 9, "nbf": NOW - 9, "iat": NOW - 9}),
            json!({"exp": NOW - 600}),
            json!({"exp": "9999999999"}),
            json!({"exp": NOW + 9, "nbf": null}),
            json!({"exp": NOW + 9, "iat": [NOW]}),
            json!({"exp": NOW as f64 + 0.5, "iat": NOW - 400}),
            json!({"exp": NOW + 9, "nbf": NOW + 600}),
            // Only top-level members are claims; a nested `exp` is just data.
            json!({"x": {"exp": 1, "nbf": "no"}, "exp": NOW + 9, "iat": NOW}),
        ] {
            let bytes = payload.to_string();
            let (parsed, dates) = parse(bytes.as_bytes(), 8).unwrap();
            assert_eq!(parsed, claims(payload.clone()));
            assert_eq!(dates, Dates::of(&parsed), "{payload}");
            assert_eq!(
                check_with_dates(&parsed, dates, &policy, NOW, &mut NoTrace).map_err(|e| e.code),
                check(&parsed, &policy, NOW)
                    .map(|()| numeric_date(&parsed, "exp").unwrap())
                    .map_err(|e| e.code),
                "{payload}"
            );
        }
    }

    #[test]
    fn parsing_keeps_the_strict_json_rules() {
        for bad in [
            &br#"{"exp":1,"exp":2}"#[..],
            br#"{"a":{"b":1,"b":1}}"#,
            br#"{"a":[[[[1]]]]}"#,
            br#"[1]"#,
            br#"{"exp":1} x"#,
            b"{\"a\":\"\xff\"}",
        ] {
            assert!(parse(bad, 4).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(parse(br#"{"a":[[[1]]]}"#, 4).is_ok());
    }

    #[test]
    fn dotted_lookup_prefers_exact_names() {
        let c = claims(json!({"a.b": 1, "a": {"b": 2}, "https://x.io/role": "admin"}));
        assert_eq!(lookup(&c, "a.b"), Some(&json!(1)));
        assert_eq!(lookup(&c, "https://x.io/role"), Some(&json!("admin")));
        assert_eq!(lookup(&c, "a.c"), None);
    }
}
