//! DPoP (RFC 9449) through [`Service::handle`]: one test per check of §4.3 and §7.1, each failing if
//! its check is removed. Proofs are minted with `jwtv-signer` (ring), independently of the verifier.

use crate::dpop::Mode;
use crate::gateway::{Access, Gateway, NamedPolicy, Requirements, X_AUTH_ERROR};
use crate::replay::Seen;
use crate::tests::token;
use crate::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::header::WWW_AUTHENTICATE;
use http::{Request, StatusCode};
use jwtv_signer::SigningKey;
use jwtv_verifier::{Key, KeyMaterial, KeyParams, KeySet, Limits, Policy, StaticKeys};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const NOW: u64 = 1_700_000_000;
const URL: &str = "https://api.example/orders";

/// A client's DPoP key: what it signs with and the public JWK it sends.
pub(crate) struct Client {
    pub alg: &'static str,
    pub key: SigningKey,
    pub jwk: Value,
}

impl Client {
    pub(crate) fn es256() -> Client {
        let rng = SystemRandom::new();
        let alg = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let der = sig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = sig::EcdsaKeyPair::from_pkcs8(alg, der.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        Client {
            alg: "ES256",
            key: SigningKey::from_pkcs8_der("ES256", der.as_ref()).unwrap(),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])}),
        }
    }

    pub(crate) fn ed25519() -> Client {
        let der = sig::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = sig::Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
        Client {
            alg: "EdDSA",
            key: SigningKey::from_pkcs8_der("EdDSA", der.as_ref()).unwrap(),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(pair.public_key().as_ref())}),
        }
    }

    pub(crate) fn jkt(&self) -> String {
        dpop::thumbprint(self.jwk.as_object().unwrap()).unwrap()
    }

    /// A proof for `token` on `method url`, fresh at `NOW`, with `change` applied to header and claims.
    pub(crate) fn proof_with(
        &self,
        token: &str,
        method: &str,
        url: &str,
        change: impl FnOnce(&mut Value, &mut Value),
    ) -> String {
        let mut header = json!({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk});
        let mut claims = json!({
            "jti": format!("{:x}", rand_u64()),
            "htm": method,
            "htu": url,
            "iat": NOW,
            "ath": B64.encode(Sha256::digest(token.as_bytes())),
        });
        change(&mut header, &mut claims);
        let alg = header["alg"].as_str().unwrap_or(self.alg).to_owned();
        jwtv_signer::encode_raw(
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
            &alg,
            &self.key,
        )
        .unwrap()
    }

    pub(crate) fn proof(&self, token: &str) -> String {
        self.proof_with(token, "GET", URL, |_, _| {})
    }
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}

fn service_with(mode: Mode) -> Service {
    let key = Key::new(
        KeyMaterial::Hmac(crate::tests::SECRET.to_vec()),
        KeyParams::default(),
    )
    .unwrap();
    let keys = Arc::new(StaticKeys(vec![Arc::new(KeySet::new(vec![key]))]));
    let verifier = Verifier::new(vec![Policy::default()], Limits::default()).unwrap();
    let access = Access {
        dpop: mode,
        ..Access::default()
    };
    let gateway = Gateway {
        policies: vec![NamedPolicy {
            name: "strict".into(),
            requirements: Requirements::default(),
            access: Access {
                dpop: Mode::Required,
                ..Access::default()
            },
        }],
        access,
        ..Gateway::default()
    };
    let options = Options {
        gateway,
        ..Options::default()
    };
    Service::new(verifier, keys, options)
}

fn service() -> Service {
    service_with(Mode::Allowed)
}

fn bound(client: &Client) -> String {
    token(json!({"sub": "alice", "exp": NOW + 90, "cnf": {"jkt": client.jkt()}}))
}

fn unbound() -> String {
    token(json!({"sub": "alice", "exp": NOW + 90}))
}

/// A forward-auth check of `GET https://api.example/orders` as Traefik reports it.
fn auth(s: &Service, path: &str, headers: &[(&str, &str)]) -> Handled {
    let mut req = Request::get(path)
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "api.example")
        .header("x-forwarded-uri", "/orders?page=2");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    s.handle(&req.body(Vec::new()).unwrap(), NOW)
}

fn dpop_auth(s: &Service, token: &str, proof: &str) -> Handled {
    auth(
        s,
        "/auth",
        &[("authorization", &format!("DPoP {token}")), ("dpop", proof)],
    )
}

/// The answer once the shell recorded the proof in `seen`.
fn recorded(s: &Service, seen: &mut Seen, handled: Handled) -> Handled {
    let first_use = match &handled.replay {
        Some(pending) => seen.first_use(&pending.first_use, NOW),
        None => return handled,
    };
    s.recorded(handled, first_use)
}

fn challenge(h: &Handled) -> String {
    h.response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn code(h: &Handled) -> Option<Code> {
    h.decision.as_ref().and_then(|d| d.code)
}

/// A refused proof: 401 `invalid_dpop_proof`, the DPoP challenge with that error and the algorithms.
#[track_caller]
fn assert_bad_proof(h: &Handled, says: &str) {
    assert_eq!(h.response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(h), Some(Code::InvalidDpopProof));
    assert_eq!(h.response.headers()[X_AUTH_ERROR], "invalid_dpop_proof");
    let challenge = challenge(h);
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains(r#"error="invalid_dpop_proof""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"algs="RS256"#), "{challenge}");
    assert!(challenge.contains(says), "{challenge} should say {says:?}");
    assert!(h.replay.is_none());
}

/// A refused binding: 401 `invalid_token_binding`, challenge error `invalid_token`.
#[track_caller]
fn assert_bad_binding(h: &Handled, scheme: &str) {
    assert_eq!(h.response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(h), Some(Code::InvalidTokenBinding));
    let challenge = challenge(h);
    assert!(
        challenge.starts_with(scheme) && challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(h.replay.is_none());
}

#[test]
fn a_good_proof_passes_once_recorded() {
    for client in [Client::es256(), Client::ed25519()] {
        let s = service();
        let token = bound(&client);
        let handled = dpop_auth(&s, &token, &client.proof(&token));
        // Not recorded yet: the answer is the fail-closed 503.
        assert_eq!(
            handled.response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            client.alg
        );
        assert!(handled.replay.is_some());
        let handled = recorded(&s, &mut Seen::new(10), handled);
        assert_eq!(handled.response.status(), StatusCode::OK, "{}", client.alg);
        assert_eq!(handled.response.headers()["x-auth-subject"], "alice");
    }
}

// RFC 9449 §11.1: a proof is used once.
#[test]
fn a_replayed_proof_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let proof = client.proof(&token);
    let mut seen = Seen::new(10);
    let first = recorded(&s, &mut seen, dpop_auth(&s, &token, &proof));
    assert_eq!(first.response.status(), StatusCode::OK);
    let again = recorded(&s, &mut seen, dpop_auth(&s, &token, &proof));
    assert_bad_proof(&again, "used before");
}

// A store that cannot record refuses (fail closed).
#[test]
fn a_store_error_is_503_replay_store_unavailable() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let handled = dpop_auth(&s, &token, &client.proof(&token));
    let handled = s.recorded(handled, Err::<bool, _>("connection refused"));
    assert_eq!(handled.response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&handled), Some(Code::ReplayStoreUnavailable));
    assert!(handled.response.headers().contains_key("retry-after"));
}

// §4.3 item 8: htm matches the method.
#[test]
fn a_proof_for_another_method_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let proof = client.proof_with(&token, "POST", URL, |_, _| {});
    assert_bad_proof(&dpop_auth(&s, &token, &proof), "htm");
}

// §4.3 item 9: htu matches the URL, without query and fragment, scheme and host case-insensitive.
#[test]
fn a_proof_for_another_url_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    for url in [
        "https://api.example/other",
        "http://api.example/orders",
        "https://evil.example/orders",
        "https://api.example:8443/orders",
    ] {
        let proof = client.proof_with(&token, "GET", url, |_, _| {});
        assert_bad_proof(&dpop_auth(&s, &token, &proof), "htu");
    }
    let proof = client.proof_with(&token, "GET", "HTTPS://API.example:443/orders#x", |_, _| {});
    let handled = recorded(&s, &mut Seen::new(1), dpop_auth(&s, &token, &proof));
    assert_eq!(handled.response.status(), StatusCode::OK);
}

// §4.3 item 11: iat within the window (60 s plus the issuer's 60 s leeway by default).
#[test]
fn a_stale_proof_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let proof = client.proof_with(&token, "GET", URL, |_, c| c["iat"] = json!(NOW - 121));
    assert_bad_proof(&dpop_auth(&s, &token, &proof), "too old");
    let proof = client.proof_with(&token, "GET", URL, |_, c| c["iat"] = json!(NOW - 120));
    let handled = recorded(&s, &mut Seen::new(1), dpop_auth(&s, &token, &proof));
    assert_eq!(handled.response.status(), StatusCode::OK);
}

#[test]
fn a_proof_from_the_future_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let proof = client.proof_with(&token, "GET", URL, |_, c| c["iat"] = json!(NOW + 61));
    assert_bad_proof(&dpop_auth(&s, &token, &proof), "future");
}

// §4.3 item 12 / §7.1: ath is the hash of the token presented.
#[test]
fn a_proof_for_another_token_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let other = token_with_sub(&client, "bob");
    let proof = client.proof(&other);
    assert_bad_proof(&dpop_auth(&s, &token, &proof), "ath");
}

fn token_with_sub(client: &Client, sub: &str) -> String {
    token(json!({"sub": sub, "exp": NOW + 90, "cnf": {"jkt": client.jkt()}}))
}

// §4.3 item 7: the signature verifies with the jwk of the header.
#[test]
fn a_proof_signed_by_another_key_is_refused() {
    let (s, client, thief) = (service(), Client::es256(), Client::es256());
    let token = bound(&client);
    // The client's public key in the header, the thief's signature.
    let forged = Client {
        alg: "ES256",
        key: thief.key,
        jwk: client.jwk.clone(),
    };
    assert_bad_proof(&dpop_auth(&s, &token, &forged.proof(&token)), "signature");
}

// §7.1 / §6.1: the proof's key is the one the token is bound to (cnf.jkt).
#[test]
fn a_proof_by_a_key_the_token_is_not_bound_to_is_refused() {
    let (s, client, thief) = (service(), Client::es256(), Client::es256());
    let token = bound(&client);
    let handled = dpop_auth(&s, &token, &thief.proof(&token));
    assert_bad_binding(&handled, "DPoP ");
}

// §4.3 item 6: the jwk is a public key.
#[test]
fn a_private_key_in_the_jwk_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    for member in ["d", "k", "p"] {
        let proof = client.proof_with(&token, "GET", URL, |h, _| {
            h["jwk"][member] = json!("AAAA");
        });
        assert_bad_proof(&dpop_auth(&s, &token, &proof), "private member");
    }
}

// §4.3 item 5: an asymmetric algorithm; never none, never a MAC.
#[test]
fn alg_none_and_hmac_proofs_are_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let header = json!({"typ": "dpop+jwt", "alg": "none", "jwk": client.jwk});
    let claims = json!({"jti": "1", "htm": "GET", "htu": URL, "iat": NOW,
        "ath": B64.encode(Sha256::digest(token.as_bytes()))});
    let unsigned = format!(
        "{}.{}.",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    assert_bad_proof(&dpop_auth(&s, &token, &unsigned), "alg");
    let mac = Client {
        alg: "HS256",
        key: SigningKey::hmac(crate::tests::SECRET),
        jwk: client.jwk.clone(),
    };
    assert_bad_proof(&dpop_auth(&s, &token, &mac.proof(&token)), "alg HS256");
}

// §4.3 item 4: typ is dpop+jwt (an access token is not a proof).
#[test]
fn a_proof_of_another_type_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    for typ in [json!("JWT"), json!("at+jwt"), Value::Null] {
        let proof = client.proof_with(&token, "GET", URL, |h, _| match &typ {
            Value::Null => {
                h.as_object_mut().unwrap().remove("typ");
            }
            t => h["typ"] = t.clone(),
        });
        assert_bad_proof(&dpop_auth(&s, &token, &proof), "typ");
    }
}

// §4.3 item 1: exactly one DPoP header.
#[test]
fn two_dpop_headers_are_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let proof = client.proof(&token);
    let handled = auth(
        &s,
        "/auth",
        &[
            ("authorization", &format!("DPoP {token}")),
            ("dpop", &proof),
            ("dpop", &proof),
        ],
    );
    assert_bad_proof(&handled, "several DPoP headers");
}

#[test]
fn a_bound_token_without_a_proof_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let handled = auth(&s, "/auth", &[("authorization", &format!("DPoP {token}"))]);
    assert_bad_proof(&handled, "no DPoP proof");
}

#[test]
fn a_proof_without_jti_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let proof = client.proof_with(&token, "GET", URL, |_, c| {
        c.as_object_mut().unwrap().remove("jti");
    });
    assert_bad_proof(&dpop_auth(&s, &token, &proof), "jti");
    let long = "a".repeat(dpop::MAX_JTI_BYTES + 1);
    let proof = client.proof_with(&token, "GET", URL, |_, c| c["jti"] = json!(long));
    assert_bad_proof(&dpop_auth(&s, &token, &proof), "jti");
}

// §7.1: a DPoP-bound token is not a bearer token, even with its proof.
#[test]
fn a_bound_token_sent_as_bearer_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let handled = auth(
        &s,
        "/auth",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("dpop", &client.proof(&token)),
        ],
    );
    assert_bad_binding(&handled, "DPoP ");
    // Nor from another token source.
    let s = service_with(Mode::Allowed);
    let validate = s.handle(
        &Request::post("/validate")
            .body(json!({"token": token}).to_string().into_bytes())
            .unwrap(),
        NOW,
    );
    assert_bad_binding(&validate, "DPoP ");
}

#[test]
fn required_refuses_an_unbound_token() {
    let s = service_with(Mode::Required);
    let handled = auth(
        &s,
        "/auth",
        &[("authorization", &format!("Bearer {}", unbound()))],
    );
    assert_bad_binding(&handled, "DPoP ");
    // The named policy requires it too, while the default one lets bearer tokens through.
    let s = service();
    let bearer = format!("Bearer {}", unbound());
    let handled = auth(&s, "/policy/strict/auth", &[("authorization", &bearer)]);
    assert_bad_binding(&handled, "DPoP ");
    assert_eq!(
        auth(&s, "/auth", &[("authorization", &bearer)])
            .response
            .status(),
        StatusCode::OK
    );
    // And asks for DPoP when no token came.
    let missing = auth(&s, "/policy/strict/auth", &[]);
    assert!(challenge(&missing).starts_with("DPoP realm="));
}

#[test]
fn off_refuses_a_bound_token_and_ignores_the_dpop_scheme() {
    let (s, client) = (service_with(Mode::Off), Client::es256());
    let token = bound(&client);
    let proof = client.proof(&token);
    let as_dpop = dpop_auth(&s, &token, &proof);
    assert_eq!(code(&as_dpop), Some(Code::MissingToken));
    let as_bearer = auth(
        &s,
        "/auth",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("dpop", &proof),
        ],
    );
    assert_bad_binding(&as_bearer, "Bearer ");
}

#[test]
fn an_unbound_token_with_the_dpop_scheme_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = unbound();
    let handled = dpop_auth(&s, &token, &client.proof(&token));
    assert_bad_binding(&handled, "DPoP ");
}

// The forward-auth URL needs the scheme; without it the proof cannot be checked.
#[test]
fn forward_auth_without_the_scheme_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let req = Request::get("/auth")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-host", "api.example")
        .header("x-forwarded-uri", "/orders")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", client.proof(&token))
        .body(Vec::new())
        .unwrap();
    assert_bad_proof(&s.handle(&req, NOW), "X-Forwarded-Proto");
}

fn validate(s: &Service, body: Value, headers: &[(&str, &str)]) -> Handled {
    let mut req = Request::post("/validate").header("content-type", "application/json");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    s.handle(&req.body(body.to_string().into_bytes()).unwrap(), NOW)
}

#[test]
fn validate_takes_the_proof_and_the_request_in_the_body() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let mut seen = Seen::new(10);
    let proof = client.proof(&token);
    let body = json!({"token": token, "dpop": proof, "method": "GET", "url": URL});
    let handled = recorded(&s, &mut seen, validate(&s, body, &[]));
    assert_eq!(handled.response.status(), StatusCode::OK);
    let answer: Value = serde_json::from_slice(handled.response.body()).unwrap();
    assert_eq!(answer["claims"]["sub"], "alice");
    // The token in Authorization: DPoP, the proof in the DPoP header.
    let proof = client.proof(&token);
    let body = json!({"method": "GET", "url": URL});
    let auth = format!("DPoP {token}");
    let headers = [("authorization", auth.as_str()), ("dpop", proof.as_str())];
    let handled = recorded(&s, &mut seen, validate(&s, body, &headers));
    assert_eq!(handled.response.status(), StatusCode::OK);
    // The same proof again.
    let body = json!({"token": token, "dpop": proof, "method": "GET", "url": URL});
    let handled = recorded(&s, &mut seen, validate(&s, body, &[]));
    assert_eq!(handled.response.status(), StatusCode::UNAUTHORIZED);
    let answer: Value = serde_json::from_slice(handled.response.body()).unwrap();
    assert_eq!(answer["error"], "invalid_dpop_proof");
    assert!(challenge(&handled).starts_with("DPoP "));
}

#[test]
fn validate_without_the_protected_request_is_refused() {
    let (s, client) = (service(), Client::es256());
    let token = bound(&client);
    let body = json!({"token": token, "dpop": client.proof(&token), "method": "GET"});
    let handled = validate(&s, body, &[]);
    assert_eq!(code(&handled), Some(Code::InvalidDpopProof));
    let answer: Value = serde_json::from_slice(handled.response.body()).unwrap();
    assert!(
        answer["error_description"]
            .as_str()
            .unwrap()
            .contains("\"url\"")
    );
    let body = json!({"token": token, "dpop": client.proof_with(&token, "DELETE", URL, |_, _| {}), "method": "GET", "url": URL});
    assert_eq!(code(&validate(&s, body, &[])), Some(Code::InvalidDpopProof));
}

#[test]
fn a_bearer_token_is_unaffected_by_dpop_allowed() {
    let s = service();
    let bearer = format!("Bearer {}", unbound());
    let handled = auth(&s, "/auth", &[("authorization", &bearer)]);
    assert_eq!(handled.response.status(), StatusCode::OK);
    assert!(handled.replay.is_none());
}
