//! DPoP proofs (RFC 9449): the checks of §4.3 on one proof, for one access token and one request.
//!
//! Inputs: the proof (the `DPoP` header's value), the access token as sent, the `cnf.jkt` the token
//! is bound to, the protected request's method and URL, the settings and the time. Output: the
//! proof's [`FirstUse`] (the shell records it before answering, see [`crate::replay`]) or a
//! refusal naming the check that failed. Every refusal of the proof is `invalid_dpop_proof`; a proof
//! signed by another key than the one the token is bound to is `invalid_token_binding`.
//!
//! The checks, in order (each is its own refusal):
//! 1. one compact JWS within the token size limit; header and payload strict JSON objects;
//! 2. `typ` is `dpop+jwt`;
//! 3. `alg` is in the DPoP allow-list, which holds asymmetric algorithms only (never `none`, never
//!    HS*: a MAC proves nothing about a public key);
//! 4. `jwk` is a public key: any private member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `k`) is refused, and
//!    so is a key the verifier would not import (a point off its curve, a short RSA modulus);
//! 5. the signature verifies with that `jwk`, through the verifier's own key and crypto backend;
//! 6. `jti` is a string of 1 to [`MAX_JTI_BYTES`] bytes;
//! 7. `htm` equals the request's method; `htu` equals its URL, both normalised as §4.3 says
//!    (scheme and host in lower case, the default port dropped, no query, no fragment);
//! 8. `iat` is within the window: not older than `window + leeway`, not later than `now + leeway`;
//! 9. `ath` is the base64url SHA-256 of the access token;
//! 10. the RFC 7638 thumbprint of `jwk` equals `cnf.jkt`.
//!
//! Server-supplied nonces (§8) are not implemented: a proof with a `nonce` is checked like any other.

use crate::replay::FirstUse;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtv_verifier::header::{self, Header};
use jwtv_verifier::{Algorithm, Code, Family, Rejection, compact, json, jwk};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

/// Whether this build checks DPoP proofs (the `dpop` feature); without it a DPoP-bound token is
/// refused and the `required` mode is refused at load.
pub const BUILT: bool = cfg!(feature = "dpop");

/// Default of `JWT_DPOP_WINDOW`: how old a proof's `iat` may be, in seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 60;
/// Default of `JWT_DPOP_REPLAY_MAX_ENTRIES`: at the default window (60 s plus 60 s of leeway), room
/// for over 800 new proofs a second, at about 100 bytes each (10 MB).
pub const DEFAULT_REPLAY_MAX_ENTRIES: usize = 100_000;
/// Longest `jti` accepted: enough for any random id (a UUID is 36), short enough to bound the store.
pub const MAX_JTI_BYTES: usize = 256;
/// Nesting depth of a proof's header and payload (a `jwk` is one level down).
const MAX_DEPTH: usize = 8;
/// JWK members that only a private key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// What a policy does with DPoP (`JWT_DPOP`, `JWT_POLICY_<NAME>_DPOP`, TOML `dpop`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// No bearer token passes: a token must be DPoP-bound and come with its proof, or be bound to
    /// the client certificate it comes with (RFC 8705, docs/dpop.md's table).
    Required,
    /// A bound token must come with its proof; an unbound bearer token passes as before.
    #[default]
    Allowed,
    /// `Authorization: DPoP` is not read, and a bound token is refused: it cannot be verified as a
    /// bearer token (RFC 9449 §7.1), and taking it as one would make a stolen bound token work.
    Off,
}

impl Mode {
    pub const WORDS: [&'static str; 3] = ["required", "allowed", "off"];

    pub fn parse(word: &str) -> Result<Mode, String> {
        match word.trim() {
            "required" => Ok(Mode::Required),
            "allowed" => Ok(Mode::Allowed),
            "off" => Ok(Mode::Off),
            other => Err(format!(
                "{other:?} is not a DPoP mode (required, allowed, off)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Required => "required",
            Mode::Allowed => "allowed",
            Mode::Off => "off",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings shared by every policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How old a proof's `iat` may be (the issuer's leeway is added for clock skew).
    pub window_secs: u64,
    /// Algorithms a proof may be signed with: asymmetric only.
    pub algorithms: Vec<Algorithm>,
    /// How many proofs a shell's in-memory replay store holds ([`crate::replay::Seen`]).
    pub replay_max_entries: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            window_secs: DEFAULT_WINDOW_SECS,
            algorithms: supported_algorithms(),
            replay_max_entries: DEFAULT_REPLAY_MAX_ENTRIES,
        }
    }
}

impl Settings {
    /// The `algs` parameter of a `DPoP` challenge (RFC 9449 §7.1): the algorithms, space-separated.
    pub fn algs(&self) -> String {
        let names: Vec<&str> = self.algorithms.iter().map(|a| a.as_str()).collect();
        names.join(" ")
    }
}

/// The asymmetric algorithms this build can verify.
pub fn supported_algorithms() -> Vec<Algorithm> {
    Algorithm::ALL
        .into_iter()
        .filter(|a| match a.family() {
            Family::Hmac => false,
            Family::Rsa => cfg!(feature = "rsa"),
            Family::Ec(_) => cfg!(feature = "ec"),
            Family::Okp(_) => cfg!(feature = "eddsa"),
        })
        .collect()
}

/// The request a proof is for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub method: &'a str,
    /// The URL as the client sent it (scheme, host, path; query and fragment are ignored).
    pub url: &'a str,
}

/// A proof to check, and what it is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Proof<'a> {
    pub proof: &'a str,
    pub access_token: &'a str,
    /// The token's `cnf.jkt`.
    pub jkt: &'a str,
    pub target: Target<'a>,
    /// The token issuer's leeway, for clock skew.
    pub leeway_secs: u64,
    pub max_bytes: usize,
}

/// The checks of [`check`], in order, as [`check_traced`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Format,
    Type,
    Algorithm,
    PublicKey,
    Signature,
    Jti,
    Method,
    Url,
    IssuedAt,
    TokenHash,
    Thumbprint,
}

impl Step {
    pub const ORDER: [Step; 11] = [
        Step::Format,
        Step::Type,
        Step::Algorithm,
        Step::PublicKey,
        Step::Signature,
        Step::Jti,
        Step::Method,
        Step::Url,
        Step::IssuedAt,
        Step::TokenHash,
        Step::Thumbprint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Format => "format",
            Step::Type => "typ",
            Step::Algorithm => "alg",
            Step::PublicKey => "jwk",
            Step::Signature => "signature",
            Step::Jti => "jti",
            Step::Method => "htm",
            Step::Url => "htu",
            Step::IssuedAt => "iat",
            Step::TokenHash => "ath",
            Step::Thumbprint => "cnf.jkt",
        }
    }
}

fn refuse(description: impl Into<std::borrow::Cow<'static, str>>) -> Rejection {
    Rejection::new(Code::InvalidDpopProof, description)
}

/// Checks `proof` at `now` (seconds since the epoch); see the module doc for the checks.
pub fn check(proof: &Proof<'_>, settings: &Settings, now: u64) -> Result<FirstUse, Rejection> {
    check_traced(proof, settings, now, &mut |_| {})
}

/// [`check`], telling `passed` each check that passed (`explain` shows them).
pub fn check_traced(
    proof: &Proof<'_>,
    settings: &Settings,
    now: u64,
    passed: &mut dyn FnMut(Step),
) -> Result<FirstUse, Rejection> {
    // 1. Shape.
    let segments = compact::split(proof.proof.as_bytes(), proof.max_bytes).map_err(|r| {
        refuse(format!(
            "the DPoP proof is not a compact JWS: {}",
            r.description
        ))
    })?;
    let header_bytes = compact::decode_segment(segments.header, "header")
        .map_err(|r| refuse(format!("DPoP proof: {}", r.description)))?;
    let header_map = json::parse_object(&header_bytes, MAX_DEPTH)
        .map_err(|e| refuse(format!("DPoP proof header is not a JSON object: {e}")))?;
    let header = Header::from_json(&header_map)
        .map_err(|r| refuse(format!("DPoP proof header: {}", r.description)))?;

    passed(Step::Format);

    // 2. Type.
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| header::type_matches(t, "dpop+jwt"))
    {
        return Err(refuse("DPoP proof typ must be dpop+jwt"));
    }

    passed(Step::Type);

    // 3. Algorithm.
    if !settings.algorithms.contains(&header.alg) {
        return Err(refuse(format!(
            "DPoP proof alg {} is not accepted (accepted: {})",
            header.alg,
            settings.algs()
        )));
    }

    passed(Step::Algorithm);

    // 4. The public key.
    let jwk = match header_map.get("jwk") {
        Some(Value::Object(jwk)) => jwk,
        Some(_) => return Err(refuse("DPoP proof jwk is not a JSON object")),
        None => return Err(refuse("DPoP proof has no jwk header")),
    };
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(refuse(format!(
            "DPoP proof jwk holds the private member {member:?}: it must be a public key"
        )));
    }
    let key = jwk::parse_jwk(jwk, false)
        .map_err(|e| refuse(format!("DPoP proof jwk is not a usable public key: {e}")))?;

    passed(Step::PublicKey);

    // 5. Signature, with the verifier's key and backend.
    let signature = compact::decode_segment(segments.signature, "signature")
        .map_err(|r| refuse(format!("DPoP proof: {}", r.description)))?;
    if !key.verify_signature(header.alg, segments.signing_input, &signature) {
        return Err(refuse("DPoP proof signature does not verify with its jwk"));
    }

    let payload = compact::decode_segment(segments.payload, "payload")
        .map_err(|r| refuse(format!("DPoP proof: {}", r.description)))?;
    let claims = json::parse_object(&payload, MAX_DEPTH)
        .map_err(|e| refuse(format!("DPoP proof payload is not a JSON object: {e}")))?;

    passed(Step::Signature);

    // 6. jti.
    let jti = match claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= MAX_JTI_BYTES => jti,
        Some(Value::String(_)) => {
            return Err(refuse(format!(
                "DPoP proof jti must be 1 to {MAX_JTI_BYTES} bytes"
            )));
        }
        _ => return Err(refuse("DPoP proof has no jti string")),
    };

    passed(Step::Jti);

    // 7. Method and URL.
    if string(&claims, "htm")? != proof.target.method {
        return Err(refuse(format!(
            "DPoP proof htm does not match the request method {}",
            shown(proof.target.method)
        )));
    }
    passed(Step::Method);
    let expected = normalize_url(proof.target.url).ok_or_else(|| {
        refuse(format!(
            "the request URL {} cannot be compared with the proof's htu",
            shown(proof.target.url)
        ))
    })?;
    let htu = string(&claims, "htu")?;
    if normalize_url(htu).as_deref() != Some(expected.as_str()) {
        return Err(refuse(format!(
            "DPoP proof htu does not match the request URL {}",
            shown(&expected)
        )));
    }

    passed(Step::Url);

    // 8. Freshness.
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(_) => return Err(refuse("DPoP proof iat is not a number")),
        None => return Err(refuse("DPoP proof has no iat")),
    };
    if !iat.is_finite() || iat < 0.0 {
        return Err(refuse("DPoP proof iat is not a time"));
    }
    let iat = iat.floor() as u64;
    if iat > now.saturating_add(proof.leeway_secs) {
        return Err(refuse("DPoP proof iat is in the future"));
    }
    let expires_at = iat
        .saturating_add(settings.window_secs)
        .saturating_add(proof.leeway_secs);
    if expires_at < now {
        return Err(refuse(format!(
            "DPoP proof is too old (iat more than {} s ago)",
            settings.window_secs + proof.leeway_secs
        )));
    }

    passed(Step::IssuedAt);

    // 9. Access token hash.
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(proof.access_token.as_bytes()));
    if string(&claims, "ath")? != ath {
        return Err(refuse("DPoP proof ath is not the hash of the access token"));
    }

    passed(Step::TokenHash);

    // 10. The key the token is bound to.
    let thumbprint = thumbprint(jwk).ok_or_else(|| refuse("DPoP proof jwk has no thumbprint"))?;
    if thumbprint != proof.jkt {
        return Err(Rejection::new(
            Code::InvalidTokenBinding,
            "the DPoP proof is signed by another key than the one the token is bound to (cnf.jkt)",
        ));
    }

    passed(Step::Thumbprint);

    let mut hash = Sha256::new();
    hash.update(b"dpop\0");
    hash.update(thumbprint.as_bytes());
    hash.update(b"\0");
    hash.update(jti.as_bytes());
    Ok(FirstUse {
        key: hash.finalize().into(),
        expires_at,
    })
}

fn string<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, Rejection> {
    match claims.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(refuse(format!("DPoP proof {name} is not a string"))),
        None => Err(refuse(format!("DPoP proof has no {name}"))),
    }
}

fn shown(s: &str) -> String {
    s.chars().take(128).collect()
}

/// The RFC 7638 thumbprint of a public JWK: base64url SHA-256 of its required members in
/// lexicographic order, no whitespace. `None` for a key type we do not accept.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let member = |name: &str| match jwk.get(name) {
        Some(Value::String(s)) => serde_json::to_string(s).ok(),
        _ => None,
    };
    let canonical = match jwk.get("kty").and_then(Value::as_str)? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            member("crv")?,
            member("x")?,
            member("y")?
        ),
        "RSA" => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            member("e")?,
            member("n")?
        ),
        "OKP" => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            member("crv")?,
            member("x")?
        ),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// A URL as RFC 9449 §4.3 compares it: scheme and host in lower case, the scheme's default port
/// dropped, an empty path as `/`, no query and no fragment (RFC 3986 §6.2.2 and §6.2.3). `None`
/// for what is not an absolute `http`/`https` URL, or one with user information.
pub fn normalize_url(url: &str) -> Option<String> {
    let url = url.trim();
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    // The port follows the last ':' after an IPv6 literal's ']'.
    let port_at = match authority.rfind(']') {
        Some(close) => authority[close..].find(':').map(|i| close + i),
        None => authority.rfind(':'),
    };
    let (host, port) = match port_at {
        Some(at) => (&authority[..at], Some(&authority[at + 1..])),
        None => (authority, None),
    };
    if host.is_empty() || port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let mut out = format!("{scheme}://{}", host.to_ascii_lowercase());
    match port {
        Some(p) if !p.is_empty() && p != default_port => {
            out.push(':');
            out.push_str(p);
        }
        _ => {}
    }
    out.push_str(path);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 9449 §4.3 item 9 with RFC 3986 §6.2.2-6.2.3.
    #[test]
    fn urls_are_normalised_as_the_rfc_says() {
        let n = |u| normalize_url(u);
        assert_eq!(
            n("HTTPS://Server.Example.COM:443/Path?q=1#f").as_deref(),
            Some("https://server.example.com/Path")
        );
        assert_eq!(n("http://h:80").as_deref(), Some("http://h/"));
        assert_eq!(n("http://h:8080/a").as_deref(), Some("http://h:8080/a"));
        assert_eq!(n("https://h:80/a").as_deref(), Some("https://h:80/a"));
        assert_eq!(n("https://[::1]:443/a").as_deref(), Some("https://[::1]/a"));
        assert_eq!(n("https://[::1]/a").as_deref(), Some("https://[::1]/a"));
        for bad in [
            "/a",
            "ftp://h/a",
            "https://u@h/a",
            "https://:1/a",
            "https://h:x/",
        ] {
            assert_eq!(n(bad), None, "{bad}");
        }
    }

    // RFC 7638 §3.1: the example key and its thumbprint.
    #[test]
    fn the_thumbprint_of_the_rfc_example_key() {
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(jwk.as_object().unwrap()).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn modes_read_their_three_words() {
        for word in Mode::WORDS {
            assert_eq!(Mode::parse(word).unwrap().as_str(), word);
        }
        assert!(Mode::parse("on").is_err());
    }

    #[test]
    fn the_allow_list_holds_no_hmac() {
        assert!(
            supported_algorithms()
                .iter()
                .all(|a| a.family() != Family::Hmac)
        );
        assert_eq!(
            supported_algorithms().contains(&Algorithm::ES256),
            cfg!(feature = "ec")
        );
    }
}
