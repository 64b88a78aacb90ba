//! Sender-constrained tokens: the one reading of a verified token's `cnf` claim (RFC 7800 §3.1), and
//! the dispatch to the check each kind of binding needs.
//!
//! - no `cnf`: a bearer token; refused only where the policy requires DPoP, or when it was sent with
//!   the `DPoP` scheme (the client asked for a proof-of-possession check that cannot happen);
//! - `cnf.jkt` (RFC 9449 §6.1): DPoP, checked by [`crate::dpop`];
//! - `cnf.x5t#S256` (RFC 8705 §3.1): a client certificate, checked by [`crate::mtls`].
//!
//! A binding we cannot check is refused, never passed: a `cnf` that is not an object, one with a
//! member we do not implement (`jwk`, `jwe`, `jku`, `kid`, …) or with both kinds at once. A bound
//! token that passes without its proof is exactly the stolen token this exists to stop.

#[cfg(feature = "dpop")]
use crate::dpop::{self, Proof};
use crate::dpop::{Mode, Target};
use crate::replay::FirstUse;
use crate::request::Original;
use jwtv_verifier::{Claims, Code, Rejection};
use serde_json::Value;

/// What a token is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding<'a> {
    /// No `cnf`: a bearer token.
    None,
    /// `cnf.jkt`: the RFC 7638 thumbprint of the client's DPoP key.
    Jkt(&'a str),
    /// `cnf.x5t#S256`: the base64url SHA-256 of the client certificate (DER).
    X5tS256(&'a str),
}

impl Binding<'_> {
    /// For `explain` and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Binding::None => "none",
            Binding::Jkt(_) => "dpop (cnf.jkt)",
            Binding::X5tS256(_) => "mtls (cnf.x5t#S256)",
        }
    }
}

fn unbindable(description: impl Into<std::borrow::Cow<'static, str>>) -> Rejection {
    Rejection::new(Code::InvalidTokenBinding, description)
}

/// The binding a token's claims declare.
pub fn of(claims: &Claims) -> Result<Binding<'_>, Rejection> {
    let cnf = match claims.get("cnf") {
        None => return Ok(Binding::None),
        Some(Value::Object(cnf)) => cnf,
        Some(_) => return Err(unbindable("cnf is not a JSON object")),
    };
    let mut binding = Binding::None;
    for (name, value) in cnf {
        let found = match (name.as_str(), value) {
            ("jkt", Value::String(t)) if !t.is_empty() => Binding::Jkt(t),
            ("x5t#S256", Value::String(t)) if !t.is_empty() => Binding::X5tS256(t),
            ("jkt" | "x5t#S256", _) => {
                return Err(unbindable(format!("cnf.{name} is not a non-empty string")));
            }
            _ => {
                let shown: String = name.chars().take(32).collect();
                return Err(unbindable(format!(
                    "cnf.{shown} is a key binding this validator cannot check"
                )));
            }
        };
        if binding != Binding::None {
            return Err(unbindable(
                "cnf binds the token to both a DPoP key and a certificate; only one is checked",
            ));
        }
        binding = found;
    }
    if binding == Binding::None {
        return Err(unbindable("cnf names no key binding"));
    }
    Ok(binding)
}

/// How the token and its proof came with the request.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "dpop"), allow(dead_code))]
pub(crate) struct Presented<'a> {
    /// The token as sent.
    pub token: &'a str,
    /// It came as `Authorization: DPoP <token>`.
    pub dpop_scheme: bool,
    /// The proof: the one `DPoP` header (or the body's `dpop`), none, or why it cannot be read.
    pub proof: Result<Option<&'a str>, &'a str>,
    /// The request the proof is for, or why it is not known.
    pub target: Result<Target<'a>, &'a str>,
}

/// A refused binding, and whether the answer challenges with the `DPoP` scheme (RFC 9449 §7.1) rather
/// than `Bearer`.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub rejection: Rejection,
    pub dpop: bool,
}

/// Without DPoP checks in the build (the component's default build, for its size budget), every
/// bound token is refused: a binding that is not checked must not make a bearer token. A policy
/// cannot require DPoP there (refused at load), and `Authorization: DPoP` is not read.
#[cfg(not(feature = "dpop"))]
pub(crate) fn check(
    _: &crate::Service,
    _: Mode,
    claims: &Claims,
    _: usize,
    _: &Presented<'_>,
    _: &Original<'_>,
    _: u64,
) -> Result<Option<FirstUse>, Refusal> {
    match claims.contains_key("cnf") {
        true => Err(Refusal {
            rejection: unbindable(
                "the token is bound to a key (cnf), and this build checks no binding (docs/dpop.md)",
            ),
            dpop: false,
        }),
        false => Ok(None),
    }
}

/// Checks the binding of a verified token: `Ok(Some(first use))` for a DPoP proof the shell must
/// record before answering, `Ok(None)` when there is nothing to record.
#[cfg(feature = "dpop")]
pub(crate) fn check(
    service: &crate::Service,
    mode: Mode,
    claims: &Claims,
    issuer: usize,
    presented: &Presented<'_>,
    original: &Original<'_>,
    now: u64,
) -> Result<Option<FirstUse>, Refusal> {
    let certificate = matches!(of(claims), Ok(Binding::X5tS256(_)));
    dispatch(service, mode, claims, issuer, presented, original, now).map_err(|rejection| Refusal {
        rejection,
        dpop: mode != Mode::Off && !certificate,
    })
}

#[cfg(feature = "dpop")]
fn dispatch(
    service: &crate::Service,
    mode: Mode,
    claims: &Claims,
    issuer: usize,
    presented: &Presented<'_>,
    original: &Original<'_>,
    now: u64,
) -> Result<Option<FirstUse>, Rejection> {
    match of(claims)? {
        Binding::None if mode == Mode::Required => Err(unbindable(
            "this route refuses bearer tokens: a DPoP-bound token (cnf.jkt) with its proof, or a token bound to the client certificate (cnf.x5t#S256)",
        )),
        Binding::None if presented.dpop_scheme => Err(unbindable(
            "the token is sent with the DPoP scheme but is not DPoP-bound (no cnf.jkt)",
        )),
        Binding::None => Ok(None),
        Binding::Jkt(_) if mode == Mode::Off => Err(unbindable(
            "the token is DPoP-bound and DPoP is off here: a bound token is never accepted as a bearer token",
        )),
        Binding::Jkt(_) if !presented.dpop_scheme => Err(unbindable(
            "the token is DPoP-bound: send it as Authorization: DPoP <token> with its DPoP proof, not as a bearer token",
        )),
        Binding::Jkt(jkt) => {
            let proof = match presented.proof {
                Ok(Some(proof)) => proof,
                Ok(None) => {
                    return Err(Rejection::new(
                        Code::InvalidDpopProof,
                        "the token is DPoP-bound and no DPoP proof was sent",
                    ));
                }
                Err(why) => return Err(Rejection::new(Code::InvalidDpopProof, why.to_owned())),
            };
            let target = presented
                .target
                .map_err(|why| Rejection::new(Code::InvalidDpopProof, why.to_owned()))?;
            let leeway_secs = service
                .verifier
                .policies()
                .get(issuer)
                .map_or(0, |p| p.leeway_secs);
            let proof = Proof {
                proof,
                access_token: presented.token,
                jkt,
                target,
                leeway_secs,
                max_bytes: service.verifier.limits().max_token_bytes,
            };
            dpop::check(&proof, &service.options.dpop, now).map(Some)
        }
        Binding::X5tS256(thumbprint) => {
            crate::mtls::check(&service.options.client_cert, thumbprint, original).map(|()| None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(claims: Value) -> Result<String, Code> {
        let claims: Claims = serde_json::from_value(claims).unwrap();
        of(&claims).map(|b| format!("{b:?}")).map_err(|r| r.code)
    }

    #[test]
    fn cnf_says_which_binding_a_token_has() {
        assert_eq!(binding(json!({})), Ok("None".into()));
        assert_eq!(
            binding(json!({"cnf": {"jkt": "abc"}})),
            Ok("Jkt(\"abc\")".into())
        );
        assert_eq!(
            binding(json!({"cnf": {"x5t#S256": "abc"}})),
            Ok("X5tS256(\"abc\")".into())
        );
    }

    // A binding that cannot be checked must not make a bearer token.
    #[test]
    fn a_binding_that_cannot_be_checked_is_refused() {
        for claims in [
            json!({"cnf": "abc"}),
            json!({"cnf": {}}),
            json!({"cnf": {"jkt": ""}}),
            json!({"cnf": {"jkt": 1}}),
            json!({"cnf": {"jwk": {"kty": "EC"}}}),
            json!({"cnf": {"kid": "k"}}),
            json!({"cnf": {"jkt": "a", "x5t#S256": "b"}}),
        ] {
            assert_eq!(
                binding(claims.clone()),
                Err(Code::InvalidTokenBinding),
                "{claims}"
            );
        }
    }
}
