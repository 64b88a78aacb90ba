//! One test per rule of `design/security.md`, through the public `Verifier::verify` path. Each signs
//! real tokens with `jwtv-signer` (ring, a dev-dependency) so removing the rule turns an assertion red.

use crate::issuer::TemplateError;
use crate::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jwtv_signer::SigningKey;
#[cfg(feature = "eddsa")]
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};
use std::sync::Arc;

const CONFIGURED: Origin = Origin::Configured {
    allow_weak_secret: false,
};

const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn claims() -> Value {
    json!({"sub": "alice", "exp": NOW + 600, "iat": NOW - 10})
}

/// A token from raw header and payload bytes, signed for `alg`.
fn token_raw(header: &[u8], payload: &[u8], alg: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    format!("{input}.{}", b64(&sign(alg, input.as_bytes())))
}

fn token(header: Value, payload: Value) -> String {
    let alg = header["alg"].as_str().unwrap_or("HS256").to_owned();
    token_raw(
        header.to_string().as_bytes(),
        payload.to_string().as_bytes(),
        &alg,
    )
}

fn hs256(payload: Value) -> String {
    token(json!({"alg": "HS256", "typ": "JWT"}), payload)
}

fn sign(alg: &str, input: &[u8]) -> Vec<u8> {
    let key = match alg {
        "HS256" | "HS384" | "HS512" => SigningKey::hmac(SECRET),
        "ES256" => {
            SigningKey::from_pkcs8_der(alg, include_bytes!("../testdata/p256.pk8.der")).unwrap()
        }
        "ES384" => {
            SigningKey::from_pkcs8_der(alg, include_bytes!("../testdata/p384.pk8.der")).unwrap()
        }
        "ES512" => {
            SigningKey::from_pkcs8_der(alg, include_bytes!("../testdata/p521.pk8.der")).unwrap()
        }
        "EdDSA" => {
            SigningKey::from_pkcs8_der(alg, include_bytes!("../testdata/ed25519.pk8.der")).unwrap()
        }
        a if a.starts_with("RS") || a.starts_with("PS") => {
            SigningKey::from_pkcs8_der(alg, include_bytes!("../testdata/rsa2048.pk8.der")).unwrap()
        }
        // Anything else (e.g. `none`) gets an empty signature.
        _ => return Vec::new(),
    };
    key.sign(alg, input).unwrap()
}

#[cfg(any(feature = "rsa", feature = "ec", feature = "eddsa"))]
fn pem_key(pem: &str, kid: Option<&str>) -> Key {
    let params = KeyParams {
        kid: kid.map(str::to_owned),
        ..KeyParams::default()
    };
    Key::new(decode_public_key_pem(pem).unwrap(), params).unwrap()
}

fn secret_key(kid: Option<&str>) -> Key {
    let params = KeyParams {
        kid: kid.map(str::to_owned),
        ..KeyParams::default()
    };
    Key::new(KeyMaterial::Hmac(SECRET.to_vec()), params).unwrap()
}

#[cfg(all(feature = "rsa", feature = "ec", feature = "eddsa"))]
fn all_keys() -> KeySet {
    KeySet::new(vec![
        secret_key(Some("hs")),
        pem_key(include_str!("../testdata/rsa2048.pub.pem"), Some("rsa")),
        pem_key(include_str!("../testdata/p256.pub.pem"), Some("p256")),
        pem_key(include_str!("../testdata/p384.pub.pem"), Some("p384")),
        pem_key(include_str!("../testdata/p521.pub.pem"), Some("p521")),
        pem_key(include_str!("../testdata/ed25519.pub.pem"), Some("ed")),
    ])
}

struct Fixture {
    verifier: Verifier,
    keys: StaticKeys,
}

impl Fixture {
    fn new(policy: Policy, keys: KeySet) -> Fixture {
        Fixture::issuers(vec![(policy, keys)])
    }

    fn issuers(issuers: Vec<(Policy, KeySet)>) -> Fixture {
        let (policies, sets): (Vec<_>, Vec<_>) = issuers.into_iter().unzip();
        Fixture {
            verifier: Verifier::new(policies, Limits::default()).unwrap(),
            keys: StaticKeys(sets.into_iter().map(Arc::new).collect()),
        }
    }

    fn hs() -> Fixture {
        Fixture::new(Policy::default(), KeySet::new(vec![secret_key(None)]))
    }

    fn verify(&self, token: &str) -> Result<Verified, Code> {
        self.verifier
            .verify(token.as_bytes(), NOW, &self.keys)
            .map_err(|r| r.rejection.code)
    }

    fn code(&self, token: &str) -> Code {
        match self.verify(token) {
            Ok(_) => panic!("token was accepted"),
            Err(code) => code,
        }
    }
}

#[test]
#[cfg(all(feature = "rsa", feature = "ec", feature = "eddsa"))]
fn every_algorithm_verifies_and_a_flipped_signature_does_not() {
    let f = Fixture::new(Policy::default(), all_keys());
    for alg in Algorithm::ALL {
        let kid = match alg.family() {
            Family::Hmac => "hs",
            Family::Rsa => "rsa",
            Family::Ec(Curve::P256) => "p256",
            Family::Ec(Curve::P384) => "p384",
            Family::Ec(_) => "p521",
            Family::Okp(_) => "ed",
        };
        let t = token(json!({"alg": alg.as_str(), "kid": kid}), claims());
        let v = f.verify(&t).unwrap_or_else(|c| panic!("{alg}: {c}"));
        assert_eq!(v.alg, alg);
        assert_eq!(v.claims["sub"], "alice");
        // Flip one bit of the signature's first byte.
        let (input, s) = t.rsplit_once('.').unwrap();
        let mut raw = B64.decode(s).unwrap();
        raw[0] ^= 1;
        let bad = format!("{input}.{}", b64(&raw));
        assert_eq!(f.code(&bad), Code::InvalidSignature, "{alg}");
        // Change the payload under the same signature.
        let other = token(
            json!({"alg": alg.as_str(), "kid": kid}),
            json!({"sub": "mallory", "exp": NOW + 600}),
        );
        let (_, s) = t.rsplit_once('.').unwrap();
        let (other_input, _) = other.rsplit_once('.').unwrap();
        assert_eq!(
            f.code(&format!("{other_input}.{s}")),
            Code::InvalidSignature,
            "{alg}"
        );
    }
}

// ---- Parsing ----

#[test]
#[cfg(feature = "rsa")]
fn segments_too_large_for_the_stack_buffer_still_verify() {
    // Decoding uses a fixed stack buffer and spills to the heap: a large header, a large payload and
    // an RSA signature that no longer fit must verify exactly like small ones, and be refused
    // exactly like them when tampered with.
    let f = Fixture::new(Policy::default(), all_keys());
    let pad = "p".repeat(1500);
    for (header, payload) in [
        (
            json!({"alg": "RS256", "kid": "rsa"}),
            json!({"exp": NOW + 600, "pad": pad}),
        ),
        (
            json!({"alg": "RS256", "kid": "rsa", "x": pad}),
            json!({"exp": NOW + 600}),
        ),
        (
            json!({"alg": "HS256", "kid": "hs", "x": pad}),
            json!({"exp": NOW + 600, "pad": pad}),
        ),
    ] {
        let t = token(header.clone(), payload);
        f.verify(&t).unwrap_or_else(|c| panic!("{header}: {c}"));
        let (input, s) = t.rsplit_once('.').unwrap();
        let mut raw = B64.decode(s).unwrap();
        raw[0] ^= 1;
        assert_eq!(
            f.code(&format!("{input}.{}", b64(&raw))),
            Code::InvalidSignature
        );
    }
}

#[test]
fn results_carry_the_kid_as_written() {
    // The verifier reads `kid` without copying it; results still get it, escapes resolved.
    let f = Fixture::new(
        Policy::default(),
        KeySet::new(vec![secret_key(Some("a/b"))]),
    );
    let header = br#"{"alg":"HS256","kid":"a\/b"}"#;
    let payload = json!({"exp": NOW + 600}).to_string();
    let v = f
        .verify(&token_raw(header, payload.as_bytes(), "HS256"))
        .unwrap();
    assert_eq!(v.kid.as_deref(), Some("a/b"));
    assert_eq!(v.expires_at, Some((NOW + 600) as f64));
    let expired = json!({"exp": NOW - 600, "iss": "https://x"}).to_string();
    let r = f
        .verifier
        .verify(
            token_raw(header, expired.as_bytes(), "HS256").as_bytes(),
            NOW,
            &f.keys,
        )
        .unwrap_err();
    assert_eq!(r.rejection.code, Code::TokenExpired);
    assert_eq!(r.kid.as_deref(), Some("a/b"));
    assert_eq!(r.iss.as_deref(), Some("https://x"));
}

#[test]
fn token_size_is_capped_before_parsing() {
    let f = Fixture::hs();
    let big = hs256(json!({"exp": NOW + 600, "pad": "x".repeat(9000)}));
    assert_eq!(f.code(&big), Code::TokenTooLarge);
}

#[test]
fn only_compact_serialization() {
    let f = Fixture::hs();
    let t = hs256(claims());
    assert_eq!(
        f.code(&format!("{t}.x.y")),
        Code::MalformedToken,
        "JWE-shaped"
    );
    assert_eq!(f.code(&t.replacen('.', "..", 1)), Code::MalformedToken);
    assert_eq!(f.code(&format!(".{t}")), Code::MalformedToken);
    assert_eq!(
        f.code(r#"{"protected":"x","payload":"y","signature":"z"}"#),
        Code::MalformedToken
    );
}

#[test]
fn base64url_must_be_canonical() {
    let f = Fixture::hs();
    let t = hs256(claims());
    f.verify(&t).unwrap();
    assert_eq!(f.code(&format!("{t}=")), Code::MalformedToken, "padding");
    // A 32-byte HMAC is 43 base64url characters: the last carries 2 unused bits. Setting one gives a
    // different string that lenient decoders map to the same signature bytes.
    let (input, s) = t.rsplit_once('.').unwrap();
    let last = s.as_bytes()[s.len() - 1];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.iter().position(|&c| c == last).unwrap();
    let twin = alphabet[idx | 1] as char;
    let mangled = format!("{input}.{}{twin}", &s[..s.len() - 1]);
    assert_ne!(mangled, t);
    assert_eq!(
        f.code(&mangled),
        Code::MalformedToken,
        "non-canonical trailing bits"
    );
}

#[test]
fn header_and_payload_must_be_objects_without_duplicates() {
    let f = Fixture::hs();
    let header = br#"{"alg":"HS256"}"#;
    let dup = format!(r#"{{"sub":"alice","exp":{},"sub":"admin"}}"#, NOW + 600);
    assert_eq!(
        f.code(&token_raw(header, dup.as_bytes(), "HS256")),
        Code::MalformedToken
    );
    let dup_header = br#"{"alg":"HS256","alg":"none"}"#;
    assert_eq!(
        f.code(&token_raw(
            dup_header,
            claims().to_string().as_bytes(),
            "HS256"
        )),
        Code::MalformedToken
    );
    assert_eq!(
        f.code(&token_raw(header, b"[1,2]", "HS256")),
        Code::MalformedToken
    );
    assert_eq!(
        f.code(&token_raw(
            b"\"HS256\"",
            claims().to_string().as_bytes(),
            "HS256"
        )),
        Code::MalformedToken
    );
    assert_eq!(
        f.code(&token_raw(header, b"\xff\xfe", "HS256")),
        Code::MalformedToken
    );
}

#[test]
fn json_nesting_is_bounded() {
    let f = Fixture::hs();
    let deep = format!(
        r#"{{"exp":{},"x":{}1{}}}"#,
        NOW + 600,
        "[".repeat(40),
        "]".repeat(40)
    );
    assert_eq!(
        f.code(&token_raw(br#"{"alg":"HS256"}"#, deep.as_bytes(), "HS256")),
        Code::MalformedToken
    );
}

#[test]
fn time_claims_must_be_numbers() {
    let f = Fixture::hs();
    assert_eq!(
        f.code(&hs256(json!({"exp": (NOW + 600).to_string()}))),
        Code::MalformedToken
    );
}

#[test]
fn crit_is_refused() {
    let f = Fixture::hs();
    for crit in [json!([]), json!(["exp"]), json!(["b64"])] {
        let t = token(
            json!({"alg": "HS256", "crit": crit, "b64": false}),
            claims(),
        );
        assert_eq!(f.code(&t), Code::UnsupportedCrit);
    }
}

// RFC 9068 §2.1 / §4: access tokens are typed `at+jwt`, and identity providers issue them so; the
// default takes them, the generic type, and tokens without `typ`.
#[test]
fn default_types_accept_access_tokens_generic_and_untyped() {
    let f = Fixture::hs();
    for typ in [
        "JWT",
        "jwt",
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        f.verify(&token(json!({"alg": "HS256", "typ": typ}), claims()))
            .unwrap_or_else(|e| panic!("typ {typ}: {e:?}"));
    }
    f.verify(&token(json!({"alg": "HS256"}), claims())).unwrap();
}

// RFC 8725 §3.11: explicit typing keeps one kind of token from being used as another. The issuer's
// other signed tokens (back-channel logout, security events, DPoP proofs) are refused by default.
#[test]
fn default_types_refuse_other_token_kinds() {
    let f = Fixture::hs();
    for typ in [
        "logout+jwt",
        "secevent+jwt",
        "dpop+jwt",
        "JWS",
        "application/jwt+x",
        "",
    ] {
        assert_eq!(
            f.code(&token(json!({"alg": "HS256", "typ": typ}), claims())),
            Code::InvalidType,
            "typ {typ:?}"
        );
    }
}

// RFC 9068 §4: a resource server MUST verify `typ` is `at+jwt` or `application/at+jwt`; narrowed to
// that, the generic type and a missing `typ` are refused.
#[test]
fn strict_access_token_type_refuses_generic_and_untyped() {
    let at = Fixture::new(
        Policy {
            types: vec!["at+jwt".into()],
            ..Policy::default()
        },
        KeySet::new(vec![secret_key(None)]),
    );
    for typ in ["at+jwt", "application/at+jwt"] {
        at.verify(&token(json!({"alg": "HS256", "typ": typ}), claims()))
            .unwrap();
    }
    assert_eq!(
        at.code(&token(json!({"alg": "HS256", "typ": "JWT"}), claims())),
        Code::InvalidType
    );
    assert_eq!(
        at.code(&token(json!({"alg": "HS256"}), claims())),
        Code::InvalidType
    );
}

// A list with the generic type keeps accepting tokens without `typ`, as RFC 7519 §5.1 makes it optional.
#[test]
fn generic_type_only_accepts_untyped_and_refuses_access_tokens() {
    let jwt = Fixture::new(
        Policy {
            types: vec!["JWT".into()],
            ..Policy::default()
        },
        KeySet::new(vec![secret_key(None)]),
    );
    jwt.verify(&token(json!({"alg": "HS256"}), claims()))
        .unwrap();
    assert_eq!(
        jwt.code(&token(json!({"alg": "HS256", "typ": "at+jwt"}), claims())),
        Code::InvalidType
    );
}

// ---- Algorithms and keys ----

#[test]
fn alg_none_is_never_accepted() {
    let f = Fixture::hs();
    for alg in ["none", "None", "NONE"] {
        let t = format!(
            "{}.{}.",
            b64(json!({"alg": alg}).to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        assert_eq!(f.code(&t), Code::AlgNotAllowed, "{alg}");
    }
}

#[test]
fn allow_list_is_enforced_and_case_sensitive() {
    let keys = || KeySet::new(vec![secret_key(None)]);
    let only_hs384 = Fixture::new(
        Policy {
            algorithms: vec![Algorithm::HS384],
            ..Policy::default()
        },
        keys(),
    );
    assert_eq!(only_hs384.code(&hs256(claims())), Code::AlgNotAllowed);
    only_hs384
        .verify(&token(json!({"alg": "HS384"}), claims()))
        .unwrap();
    // The signature is a valid HS256 MAC; only the spelling of alg differs.
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"hs256"}"#),
        b64(claims().to_string().as_bytes())
    );
    let t = format!("{input}.{}", b64(&sign("HS256", input.as_bytes())));
    assert_eq!(Fixture::hs().code(&t), Code::AlgNotAllowed);
}

#[test]
#[cfg(feature = "rsa")]
fn rsa_public_key_is_never_an_hmac_secret() {
    // CVE-2015-9235 / CVE-2022-23541: sign HS256 with the RSA public key's PEM text as the secret.
    let pem = include_str!("../testdata/rsa2048.pub.pem");
    let f = Fixture::new(Policy::default(), KeySet::new(vec![pem_key(pem, None)]));
    let forge = |kid: Option<&str>| {
        let mut header = json!({"alg": "HS256"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, pem.as_bytes()),
            input.as_bytes(),
        );
        format!("{input}.{}", b64(mac.as_ref()))
    };
    assert_eq!(f.code(&forge(None)), Code::AlgNotAllowed);
    let named = Fixture::new(
        Policy::default(),
        KeySet::new(vec![pem_key(pem, Some("rsa"))]),
    );
    assert_eq!(named.code(&forge(Some("rsa"))), Code::AlgNotAllowed);
}

#[test]
#[cfg(all(feature = "rsa", feature = "ec"))]
fn curves_are_bound_to_their_algorithm() {
    let p384 = pem_key(include_str!("../testdata/p384.pub.pem"), Some("k"));
    let f = Fixture::new(Policy::default(), KeySet::new(vec![p384]));
    let t = token(json!({"alg": "ES256", "kid": "k"}), claims());
    assert_eq!(f.code(&t), Code::AlgNotAllowed);
    // An ES512 token against a P-256 key, and an ES256 one against a P-521 key.
    let p256 = pem_key(include_str!("../testdata/p256.pub.pem"), Some("k"));
    let f = Fixture::new(Policy::default(), KeySet::new(vec![p256]));
    let t = token(json!({"alg": "ES512", "kid": "k"}), claims());
    assert_eq!(f.code(&t), Code::AlgNotAllowed);
    let p521 = pem_key(include_str!("../testdata/p521.pub.pem"), Some("k"));
    let f = Fixture::new(Policy::default(), KeySet::new(vec![p521]));
    let t = token(json!({"alg": "ES256", "kid": "k"}), claims());
    assert_eq!(f.code(&t), Code::AlgNotAllowed);
    // A JWK that binds an RSA key to an EC algorithm is refused at import.
    let material = decode_public_key_pem(include_str!("../testdata/rsa2048.pub.pem")).unwrap();
    let params = KeyParams {
        alg: Some(Algorithm::ES256),
        ..KeyParams::default()
    };
    assert!(matches!(
        Key::new(material, params),
        Err(KeyError::AlgorithmMismatch { .. })
    ));
}

#[test]
#[cfg(all(feature = "rsa", feature = "ec", feature = "eddsa"))]
fn kid_is_an_exact_lookup_key() {
    let f = Fixture::new(Policy::default(), all_keys());
    for kid in [
        "../../dev/null",
        "rsa' OR '1'='1",
        "RSA",
        "rsa ",
        "file:///etc/passwd",
    ] {
        let t = token(json!({"alg": "RS256", "kid": kid}), claims());
        assert_eq!(f.code(&t), Code::UnknownKid, "{kid}");
    }
}

#[test]
fn key_use_and_key_ops_are_honoured() {
    let with = |usage: Option<&str>, ops: Option<Vec<&str>>| {
        let params = KeyParams {
            usage: usage.map(str::to_owned),
            key_ops: ops.map(|o| o.into_iter().map(str::to_owned).collect()),
            ..KeyParams::default()
        };
        Fixture::new(
            Policy::default(),
            KeySet::new(vec![
                Key::new(KeyMaterial::Hmac(SECRET.to_vec()), params).unwrap(),
            ]),
        )
    };
    let t = hs256(claims());
    with(Some("sig"), Some(vec!["verify"])).verify(&t).unwrap();
    assert_eq!(with(Some("enc"), None).code(&t), Code::AlgNotAllowed);
    assert_eq!(with(None, Some(vec!["sign"])).code(&t), Code::AlgNotAllowed);
}

#[test]
#[cfg(all(feature = "rsa", feature = "ec", feature = "eddsa"))]
fn token_without_kid_needs_exactly_one_fitting_key() {
    let two = Fixture::new(
        Policy::default(),
        KeySet::new(vec![secret_key(Some("a")), secret_key(Some("b"))]),
    );
    assert_eq!(two.code(&hs256(claims())), Code::UnknownKid);
    two.verify(&token(json!({"alg": "HS256", "kid": "b"}), claims()))
        .unwrap();
    // One HMAC key among keys of other families is unambiguous.
    let mixed = Fixture::new(Policy::default(), all_keys());
    mixed.verify(&hs256(claims())).unwrap();
}

#[test]
fn a_kid_naming_no_key_falls_back_only_to_one_unnamed_key() {
    // Drop-in: the old service verified with its one secret whatever kid the token carried.
    let one = Fixture::new(Policy::default(), KeySet::new(vec![secret_key(None)]));
    one.verify(&token(
        json!({"alg": "HS256", "kid": "2024-rotation"}),
        claims(),
    ))
    .unwrap();
    // Two unnamed secrets: ambiguous. Named keys are never picked for another kid.
    let two = Fixture::new(
        Policy::default(),
        KeySet::new(vec![secret_key(None), secret_key(None)]),
    );
    assert_eq!(
        two.code(&token(json!({"alg": "HS256", "kid": "x"}), claims())),
        Code::UnknownKid
    );
    let named = Fixture::new(Policy::default(), KeySet::new(vec![secret_key(Some("a"))]));
    assert_eq!(
        named.code(&token(json!({"alg": "HS256", "kid": "b"}), claims())),
        Code::UnknownKid
    );
}

#[test]
#[cfg(feature = "eddsa")]
fn keys_embedded_in_the_token_are_ignored() {
    // The attacker signs with their own Ed25519 key and ships its public half in `jwk` (CVE-2018-0114);
    // our configured Ed25519 key is different.
    let attacker = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(attacker.public_key().as_ref())});
    let header = json!({"alg": "EdDSA", "jwk": jwk, "jku": "http://127.0.0.1:1/keys", "x5u": "http://127.0.0.1:1/c", "x5c": ["AAAA"]});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let t = format!("{input}.{}", b64(attacker.sign(input.as_bytes()).as_ref()));
    let f = Fixture::new(
        Policy::default(),
        KeySet::new(vec![pem_key(
            include_str!("../testdata/ed25519.pub.pem"),
            None,
        )]),
    );
    assert_eq!(f.code(&t), Code::InvalidSignature);
}

#[test]
#[cfg(all(feature = "rsa", feature = "ec", feature = "eddsa"))]
fn psychic_ecdsa_signature_is_refused() {
    let f = Fixture::new(Policy::default(), all_keys());
    for (alg, kid, len) in [
        ("ES256", "p256", 64),
        ("ES384", "p384", 96),
        ("ES512", "p521", 132),
    ] {
        let input = format!(
            "{}.{}",
            b64(json!({"alg": alg, "kid": kid}).to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        assert_eq!(
            f.code(&format!("{input}.{}", b64(&vec![0u8; len]))),
            Code::InvalidSignature,
            "{alg}"
        );
    }
}

#[test]
#[cfg(all(feature = "rsa", feature = "ec", feature = "eddsa"))]
fn der_encoded_ecdsa_signature_is_refused() {
    let f = Fixture::new(Policy::default(), all_keys());
    let t = token(json!({"alg": "ES256", "kid": "p256"}), claims());
    let (input, s) = t.rsplit_once('.').unwrap();
    let raw = B64.decode(s).unwrap();
    let int = |b: &[u8]| {
        let mut v = b.to_vec();
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let mut body = int(&raw[..32]);
    body.extend(int(&raw[32..]));
    let mut der = vec![0x30, body.len() as u8];
    der.extend(body);
    assert_eq!(
        f.code(&format!("{input}.{}", b64(&der))),
        Code::InvalidSignature
    );
}

#[test]
#[cfg(feature = "ec")]
fn ec_public_keys_are_validated_on_import() {
    let jwks = |y_flip: bool| {
        let der_point =
            match decode_public_key_pem(include_str!("../testdata/p256.pub.pem")).unwrap() {
                KeyMaterial::Ec { x, mut y, .. } => {
                    if y_flip {
                        y[31] ^= 1;
                    }
                    (x, y)
                }
                _ => unreachable!(),
            };
        json!({"keys": [{"kty": "EC", "crv": "P-256", "x": b64(&der_point.0), "y": b64(&der_point.1)}]}).to_string()
    };
    assert!(read_jwks(jwks(false).as_bytes(), CONFIGURED).is_ok());
    let err = read_jwks(jwks(true).as_bytes(), CONFIGURED).unwrap_err();
    assert!(err.to_string().contains("not a valid point"), "{err}");
}

/// ES512 keys as a JWK: `crv` "P-521" with 66-byte coordinates (RFC 7518 §6.2.1.2: the full length,
/// leading zeros kept), verifying a token end to end; a shortened coordinate is refused at import.
#[test]
#[cfg(feature = "ec")]
fn p521_jwk_verifies_es512_and_short_coordinates_are_refused() {
    let KeyMaterial::Ec { x, y, .. } =
        decode_public_key_pem(include_str!("../testdata/p521.pub.pem")).unwrap()
    else {
        panic!("not EC");
    };
    assert_eq!((x.len(), y.len()), (66, 66));
    let jwks = |x: &[u8]| {
        json!({"keys": [{"kty": "EC", "crv": "P-521", "kid": "p521", "alg": "ES512",
            "x": b64(x), "y": b64(&y)}]})
        .to_string()
    };
    let set = read_jwks(jwks(&x).as_bytes(), CONFIGURED).unwrap().set;
    let f = Fixture::new(Policy::default(), set);
    let t = token(json!({"alg": "ES512", "kid": "p521"}), claims());
    assert_eq!(f.verify(&t).map(|v| v.alg), Ok(Algorithm::ES512));
    // The top byte of a P-521 coordinate is 0 or 1: dropping it leaves 65 bytes, never a key.
    let err = read_jwks(jwks(&x[1..]).as_bytes(), CONFIGURED).unwrap_err();
    assert!(err.to_string().contains("P-521"), "{err}");
}

#[test]
fn short_hmac_secrets_are_refused_unless_overridden() {
    let short = KeyMaterial::Hmac(vec![1u8; 31]);
    assert!(matches!(
        Key::new(short.clone(), KeyParams::default()),
        Err(KeyError::WeakSecret { min: 32, .. })
    ));
    let params = KeyParams {
        alg: Some(Algorithm::HS512),
        ..KeyParams::default()
    };
    assert!(matches!(
        Key::new(KeyMaterial::Hmac(vec![1u8; 32]), params),
        Err(KeyError::WeakSecret { min: 64, .. })
    ));
    // A 32-byte secret without alg is kept for HS256 only.
    let k = Key::new(KeyMaterial::Hmac(vec![1u8; 32]), KeyParams::default()).unwrap();
    assert_eq!(k.algorithms(), &[Algorithm::HS256]);
    let overridden = KeyParams {
        allow_weak_secret: true,
        ..KeyParams::default()
    };
    assert!(Key::new(short, overridden).unwrap().is_weak_secret());
}

#[test]
fn truncated_hmac_is_refused() {
    let f = Fixture::hs();
    let t = hs256(claims());
    let (input, s) = t.rsplit_once('.').unwrap();
    let raw = B64.decode(s).unwrap();
    assert_eq!(
        f.code(&format!("{input}.{}", b64(&raw[..16]))),
        Code::InvalidSignature
    );
    assert_eq!(f.code(&format!("{input}.")), Code::InvalidSignature);
}

// ---- Claims and issuers ----

#[test]
fn claim_policy_is_applied_after_the_signature() {
    let f = Fixture::hs();
    assert_eq!(f.code(&hs256(json!({"sub": "a"}))), Code::MissingClaim);
    assert_eq!(f.code(&hs256(json!({"exp": NOW - 61}))), Code::TokenExpired);
    assert_eq!(
        f.code(&hs256(json!({"exp": NOW + 600, "nbf": NOW + 120}))),
        Code::TokenNotYetValid
    );
    assert_eq!(
        f.code(&hs256(json!({"exp": NOW + 600, "iat": NOW + 120}))),
        Code::TokenNotYetValid
    );
    let v = f.verify(&hs256(json!({"exp": NOW + 600}))).unwrap();
    assert_eq!(v.expires_at, Some((NOW + 600) as f64));
}

#[test]
#[cfg(feature = "ec")]
fn a_token_is_checked_only_against_its_own_issuers_keys() {
    let a = Policy {
        issuer: Some("https://a".into()),
        ..Policy::default()
    };
    let b = Policy {
        issuer: Some("https://b".into()),
        ..Policy::default()
    };
    let f = Fixture::issuers(vec![
        (
            a,
            KeySet::new(vec![pem_key(
                include_str!("../testdata/p256.pub.pem"),
                None,
            )]),
        ),
        (b, KeySet::new(vec![secret_key(None)])),
    ]);
    // Signed with b's secret but claiming a: a has no HMAC key, so it cannot verify.
    let claims_a = json!({"iss": "https://a", "exp": NOW + 600});
    assert_eq!(f.code(&hs256(claims_a.clone())), Code::AlgNotAllowed);
    let v = f
        .verify(&hs256(json!({"iss": "https://b", "exp": NOW + 600})))
        .unwrap();
    assert_eq!(v.issuer, 1);
    assert_eq!(
        f.code(&hs256(json!({"iss": "https://c", "exp": NOW + 600}))),
        Code::InvalidIssuer
    );
    assert_eq!(
        f.code(&hs256(json!({"exp": NOW + 600}))),
        Code::MissingClaim
    );
    f.verify(&token(json!({"alg": "ES256"}), claims_a)).unwrap();
}

#[test]
fn a_rejection_names_the_issuer_once_one_is_selected() {
    let a = Policy {
        issuer: Some("https://a".into()),
        ..Policy::default()
    };
    let b = Policy {
        issuer: Some("https://b".into()),
        ..Policy::default()
    };
    let f = Fixture::issuers(vec![
        (a, KeySet::new(vec![secret_key(Some("one"))])),
        (b, KeySet::new(vec![secret_key(Some("two"))])),
    ]);
    let unknown = token(
        json!({"alg": "HS256", "kid": "nope"}),
        json!({"iss": "https://b", "exp": NOW + 600}),
    );
    let r = f
        .verifier
        .verify(unknown.as_bytes(), NOW, &f.keys)
        .unwrap_err();
    assert_eq!(r.rejection.code, Code::UnknownKid);
    assert_eq!(r.issuer, Some(1));
    // Before an issuer is chosen (malformed, or an iss nobody accepts) there is none to name.
    let stranger = hs256(json!({"iss": "https://c", "exp": NOW + 600}));
    let r = f
        .verifier
        .verify(stranger.as_bytes(), NOW, &f.keys)
        .unwrap_err();
    assert_eq!(r.issuer, None);
    let r = f.verifier.verify(b"a.b", NOW, &f.keys).unwrap_err();
    assert_eq!(r.issuer, None);
}

#[test]
#[cfg(feature = "ec")]
fn the_default_issuer_still_checks_a_configured_iss() {
    let default = Policy::default();
    let named = Policy {
        issuer: Some("https://a".into()),
        ..Policy::default()
    };
    let f = Fixture::issuers(vec![
        (
            named,
            KeySet::new(vec![pem_key(
                include_str!("../testdata/p256.pub.pem"),
                None,
            )]),
        ),
        (default, KeySet::new(vec![secret_key(None)])),
    ]);
    // Unknown iss falls to the default issuer, which has no iss requirement.
    f.verify(&hs256(json!({"iss": "other", "exp": NOW + 600})))
        .unwrap();
    // Claiming the named issuer never falls back to the default issuer's keys.
    assert_eq!(
        f.code(&hs256(json!({"iss": "https://a", "exp": NOW + 600}))),
        Code::AlgNotAllowed
    );
}

#[test]
fn missing_keys_are_temporarily_unavailable_not_invalid() {
    let verifier = Verifier::new(vec![Policy::default()], Limits::default()).unwrap();
    let none = StaticKeys(Vec::new());
    let r = verifier
        .verify(hs256(claims()).as_bytes(), NOW, &none)
        .unwrap_err();
    assert_eq!(r.rejection.code, Code::TemporarilyUnavailable);
}

#[test]
fn issuer_configuration_is_checked() {
    let p = |iss: Option<&str>| Policy {
        issuer: iss.map(str::to_owned),
        ..Policy::default()
    };
    assert_eq!(
        Verifier::new(vec![], Limits::default()).unwrap_err(),
        ConfigError::NoIssuer
    );
    assert!(matches!(
        Verifier::new(vec![p(Some("a")), p(Some("a"))], Limits::default()),
        Err(ConfigError::DuplicateIssuer(_))
    ));
    assert_eq!(
        Verifier::new(vec![p(None), p(None)], Limits::default()).unwrap_err(),
        ConfigError::SeveralDefaults
    );
}

// ---- Issuer templates (multi-tenant Entra ID) ----

const ENTRA: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
const TENANT_A: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
const TENANT_B: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn entra_claims(iss_tenant: &str, tid: Option<&str>) -> Value {
    let mut c = claims();
    c["iss"] = json!(format!(
        "https://login.microsoftonline.com/{iss_tenant}/v2.0"
    ));
    if let Some(tid) = tid {
        c["tid"] = json!(tid);
    }
    c
}

fn entra(tenants: &[&str]) -> Fixture {
    Fixture::new(
        Policy {
            issuer: Some(ENTRA.into()),
            allowed_tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
            ..Policy::default()
        },
        KeySet::new(vec![secret_key(None)]),
    )
}

#[test]
fn issuer_template_accepts_an_allowed_tenant() {
    let f = entra(&[TENANT_A, TENANT_B]);
    for tenant in [TENANT_A, TENANT_B] {
        f.verify(&hs256(entra_claims(tenant, Some(tenant))))
            .unwrap_or_else(|e| panic!("{tenant}: {e:?}"));
    }
}

// Anyone can create an Entra tenant: one not listed is another issuer.
#[test]
fn issuer_template_refuses_a_tenant_not_listed() {
    let f = entra(&[TENANT_A]);
    let other = "00000000-0000-0000-0000-000000000001";
    assert_eq!(
        f.code(&hs256(entra_claims(other, Some(other)))),
        Code::InvalidIssuer
    );
    // Nor does it fall to a default issuer configured beside the template.
    let with_default = Fixture::issuers(vec![
        (
            Policy {
                issuer: Some(ENTRA.into()),
                allowed_tenants: vec![TENANT_A.into()],
                ..Policy::default()
            },
            KeySet::new(vec![secret_key(None)]),
        ),
        (Policy::default(), KeySet::new(vec![secret_key(None)])),
    ]);
    assert_eq!(
        with_default.code(&hs256(entra_claims(other, Some(other)))),
        Code::InvalidIssuer
    );
}

// `iss` must be the template filled with the token's own `tid`: a listed tenant in `iss` with another
// `tid` (or the reverse) is refused, and a template token without `tid` misses a claim.
#[test]
fn issuer_template_refuses_iss_and_tid_that_disagree() {
    let f = entra(&[TENANT_A, TENANT_B]);
    assert_eq!(
        f.code(&hs256(entra_claims(TENANT_A, Some(TENANT_B)))),
        Code::InvalidIssuer
    );
    assert_eq!(
        f.code(&hs256(entra_claims(TENANT_A, None))),
        Code::MissingClaim
    );
    let mut numeric = entra_claims(TENANT_A, None);
    numeric["tid"] = json!(7);
    assert_eq!(f.code(&hs256(numeric)), Code::MalformedToken);
    // The placeholder itself, or a path smuggled into the tenant, is no tenant.
    for iss in [
        ENTRA.to_owned(),
        format!("https://login.microsoftonline.com/{TENANT_A}/x/v2.0"),
        "https://login.microsoftonline.com//v2.0".to_owned(),
    ] {
        let mut c = entra_claims(TENANT_A, Some(TENANT_A));
        c["iss"] = json!(iss);
        assert_eq!(f.code(&hs256(c)), Code::InvalidIssuer, "{iss}");
    }
}

#[test]
fn issuer_template_without_tenants_is_refused_at_configuration() {
    let p = |issuer: &str, tenants: &[&str]| Policy {
        issuer: Some(issuer.into()),
        allowed_tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
        ..Policy::default()
    };
    let err = |policy| Verifier::new(vec![policy], Limits::default()).unwrap_err();
    assert_eq!(
        err(p(ENTRA, &[])),
        ConfigError::Template(TemplateError::NoTenants(ENTRA.into()))
    );
    assert_eq!(
        err(p("https://login.microsoftonline.com/x/v2.0", &[TENANT_A])),
        ConfigError::Template(TemplateError::NotATemplate)
    );
    assert_eq!(
        err(p("https://a/{tenantid}/{tenantid}", &[TENANT_A])),
        ConfigError::Template(TemplateError::Placeholders(
            "https://a/{tenantid}/{tenantid}".into()
        ))
    );
    assert_eq!(
        err(p(ENTRA, &["a/b"])),
        ConfigError::Template(TemplateError::BadTenant("a/b".into()))
    );
}

// A tenant-specific issuer configured beside the template keeps its own keys and policy.
#[test]
fn an_exact_issuer_wins_over_a_template_of_its_shape() {
    let exact = Policy {
        issuer: Some(format!("https://login.microsoftonline.com/{TENANT_B}/v2.0")),
        audiences: vec!["only-b".into()],
        ..Policy::default()
    };
    let template = Policy {
        issuer: Some(ENTRA.into()),
        allowed_tenants: vec![TENANT_A.into(), TENANT_B.into()],
        ..Policy::default()
    };
    let f = Fixture::issuers(vec![
        (template, KeySet::new(vec![secret_key(None)])),
        (exact, KeySet::new(vec![secret_key(None)])),
    ]);
    assert_eq!(
        f.verify(&hs256(entra_claims(TENANT_A, Some(TENANT_A))))
            .unwrap()
            .issuer,
        0
    );
    let mut b = entra_claims(TENANT_B, Some(TENANT_B));
    assert_eq!(
        f.code(&hs256(b.clone())),
        Code::MissingClaim,
        "aud, as the exact issuer requires"
    );
    b["aud"] = json!("only-b");
    assert_eq!(f.verify(&hs256(b)).unwrap().issuer, 1);
}

// ---- Robustness ----

#[test]
#[cfg(all(feature = "rsa", feature = "ec", feature = "eddsa"))]
fn mutated_tokens_never_panic_and_never_verify() {
    let f = Fixture::new(Policy::default(), all_keys());
    let originals: Vec<String> = ["HS256", "RS256", "ES256", "EdDSA"]
        .iter()
        .zip(["hs", "rsa", "p256", "ed"])
        .map(|(alg, kid)| token(json!({"alg": alg, "kid": kid}), claims()))
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..4000 {
        let t = &originals[i % originals.len()];
        let mut bytes = t.as_bytes().to_vec();
        for _ in 0..=(next() % 3) {
            let pos = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[pos] = (next() % 256) as u8,
                1 => {
                    bytes.remove(pos);
                }
                _ => bytes.insert(pos, b"._-A0{\"\\"[(next() % 8) as usize]),
            }
        }
        if bytes == t.as_bytes() {
            continue;
        }
        // Changing only the unused trailing bits is refused by strict base64, so no mutant verifies.
        assert!(
            f.verifier.verify(&bytes, NOW, &f.keys).is_err(),
            "mutant {i} verified"
        );
    }
}

/// The trace behind `explain`: a valid token passes every check of `Check::ORDER`, in that order; a
/// refused one stops the trace right before the check that refused it.
#[test]
fn the_trace_reports_checks_in_order_up_to_the_refusal() {
    #[derive(Default)]
    struct Seen {
        passed: Vec<Check>,
        issuer: Option<usize>,
        key: bool,
    }
    impl Trace for Seen {
        fn passed(&mut self, check: Check) {
            self.passed.push(check);
        }
        fn issuer(&mut self, index: usize) {
            self.issuer = Some(index);
        }
        fn key(&mut self, _: &Key) {
            self.key = true;
        }
    }
    let fixture = Fixture::hs();
    let trace = |token: &str| {
        let mut seen = Seen::default();
        let outcome = fixture
            .verifier
            .verify_traced(token.as_bytes(), NOW, &fixture.keys, &mut seen)
            .map_err(|r| r.rejection.code);
        (outcome, seen)
    };

    let (outcome, seen) = trace(&hs256(claims()));
    assert!(outcome.is_ok());
    assert_eq!(seen.passed, Check::ORDER);
    assert_eq!((seen.issuer, seen.key), (Some(0), true));

    let (outcome, seen) = trace(&hs256(json!({"exp": NOW - 3600})));
    assert_eq!(outcome.unwrap_err(), Code::TokenExpired);
    let expiry = Check::ORDER
        .iter()
        .position(|c| *c == Check::Expiry)
        .unwrap();
    assert_eq!(seen.passed, Check::ORDER[..expiry]);

    let (outcome, seen) = trace("not.a-token");
    assert_eq!(outcome.unwrap_err(), Code::MalformedToken);
    assert!(seen.passed.is_empty() && seen.issuer.is_none() && !seen.key);
}
