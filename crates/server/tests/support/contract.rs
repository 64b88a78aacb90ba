//! The token cases of the HTTP contract suite (`tests/http_contract.rs`), shared with the suites that
//! must agree with it (`tests/explain.rs`): one list, so a case added there is checked everywhere.

use serde_json::{Value, json};

use super::jwt::{self, TestKey};
use super::{TestConfig, now};

/// 64 bytes: long enough for every HMAC algorithm.
pub const SECRET: &str = "integration-test-secret-0123456789abcdefghijklmnopqrstuvwxyz-012";
pub const ISSUER: &str = "https://issuer.test";
pub const MAX_TOKEN_BYTES: usize = 4096;
pub const HS256_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The single-issuer configuration most tests use.
pub fn config() -> TestConfig {
    assert_eq!(SECRET.len(), 64);
    TestConfig::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_ISSUER", ISSUER)
        .env("JWT_AUDIENCE", "api,other-api")
        .env("JWT_ALGORITHMS", "HS256")
        .env("JWT_MAX_AGE", "3600")
        .env("JWT_MAX_TOKEN_BYTES", MAX_TOKEN_BYTES.to_string())
}

pub fn claims() -> Value {
    let now = now();
    json!({"iss": ISSUER, "aud": "api", "sub": "alice", "iat": now, "exp": now + 600, "scope": "read"})
}

pub fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

pub fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

pub fn token(claims: &Value) -> String {
    jwt::hs256(SECRET.as_bytes(), claims)
}

/// An HS256 token with the given header and payload texts, signed with the right secret.
pub fn signed(header: &str, payload: &str) -> String {
    jwt::hmac_token("HS256", SECRET.as_bytes(), header, payload)
}

/// Tokens the contract configuration refuses: name, token, error code.
pub fn rejected_token_cases() -> Vec<(&'static str, String, &'static str)> {
    let now = now();
    let payload = claims().to_string();
    let good = token(&claims());
    let (good_input, good_sig) = good.rsplit_once('.').unwrap();

    // A header whose base64url needs padding, then sent with it.
    let padded_header = {
        use base64::Engine as _;
        let h = base64::engine::general_purpose::URL_SAFE.encode(r#"{"alg":"HS256","typ":"JWT" }"#);
        assert!(h.ends_with('='), "test setup: {h} should be padded");
        h
    };
    let padded = {
        let input = format!("{padded_header}.{}", jwt::b64(payload.as_bytes()));
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes()),
            input.as_bytes(),
        );
        format!("{input}.{}", jwt::b64(tag.as_ref()))
    };
    let big_claim = with(claims(), "pad", json!("x".repeat(MAX_TOKEN_BYTES)));
    // alg none: an empty signature segment.
    let unsigned = |header: &str| {
        format!(
            "{}.{}.",
            jwt::b64(header.as_bytes()),
            jwt::b64(payload.as_bytes())
        )
    };

    let mut cases: Vec<(&'static str, String, &'static str)> = vec![
        // malformed_token
        ("two segments", good_input.to_owned(), "malformed_token"),
        ("four segments", format!("{good}.AAAA"), "malformed_token"),
        (
            "JWE, five segments",
            "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.QUFBQQ.QUFBQQ.QUFBQQ.QUFBQQ".into(),
            "malformed_token",
        ),
        (
            "JSON serialization",
            json!({"payload": "e30", "signatures": []}).to_string(),
            "malformed_token",
        ),
        (
            "empty header segment",
            format!(".{}", good.split_once('.').unwrap().1),
            "malformed_token",
        ),
        (
            "bad base64url length",
            format!("{}.e.{good_sig}", good.split('.').next().unwrap()),
            "malformed_token",
        ),
        (
            "standard base64 alphabet",
            good.replacen('_', "/", 1).replacen('-', "+", 1) + "+/",
            "malformed_token",
        ),
        ("base64 padding", padded, "malformed_token"),
        (
            "whitespace inside",
            format!("{} ", good.replacen('.', ". ", 1)),
            "malformed_token",
        ),
        (
            "non-canonical trailing bits",
            format!("{good_input}.{}", non_canonical(good_sig)),
            "malformed_token",
        ),
        (
            "duplicate claim names",
            signed(
                HS256_HEADER,
                &format!(
                    r#"{{"sub":"alice","sub":"admin","iss":"{ISSUER}","aud":"api","iat":{now},"exp":{}}}"#,
                    now + 600
                ),
            ),
            "malformed_token",
        ),
        (
            "duplicate header names",
            signed(r#"{"alg":"HS256","alg":"none"}"#, &payload),
            "malformed_token",
        ),
        (
            "header is an array",
            signed(r#"["HS256"]"#, &payload),
            "malformed_token",
        ),
        (
            "header is a string",
            signed(r#""HS256""#, &payload),
            "malformed_token",
        ),
        (
            "header is not JSON",
            signed("alg=HS256", &payload),
            "malformed_token",
        ),
        (
            "payload is an array",
            signed(HS256_HEADER, "[1,2]"),
            "malformed_token",
        ),
        (
            "exp is a string",
            signed(
                HS256_HEADER,
                &with(claims(), "exp", json!((now + 600).to_string())).to_string(),
            ),
            "malformed_token",
        ),
        (
            "deeply nested claim",
            signed(
                HS256_HEADER,
                &format!(
                    r#"{{"iss":"{ISSUER}","aud":"api","iat":{now},"exp":{},"x":{}1{}}}"#,
                    now + 600,
                    "[".repeat(64),
                    "]".repeat(64)
                ),
            ),
            "malformed_token",
        ),
        // token_too_large
        (
            "token over JWT_MAX_TOKEN_BYTES",
            token(&big_claim),
            "token_too_large",
        ),
        // alg_not_allowed
        (
            "alg none",
            unsigned(r#"{"alg":"none","typ":"JWT"}"#),
            "alg_not_allowed",
        ),
        ("alg None", unsigned(r#"{"alg":"None"}"#), "alg_not_allowed"),
        ("alg NONE", unsigned(r#"{"alg":"NONE"}"#), "alg_not_allowed"),
        ("alg nOnE", unsigned(r#"{"alg":"nOnE"}"#), "alg_not_allowed"),
        (
            "alg none with a signature",
            signed(r#"{"alg":"none"}"#, &payload),
            "alg_not_allowed",
        ),
        (
            "alg HS384 outside JWT_ALGORITHMS",
            jwt::hmac_token(
                "HS384",
                SECRET.as_bytes(),
                r#"{"alg":"HS384","typ":"JWT"}"#,
                &payload,
            ),
            "alg_not_allowed",
        ),
        (
            "alg hs256 (case)",
            jwt::hmac_token("HS256", SECRET.as_bytes(), r#"{"alg":"hs256"}"#, &payload),
            "alg_not_allowed",
        ),
        (
            "alg RS256 with no RSA key",
            jwt::signed_token(TestKey::Rsa2048, "RS256", r#"{"alg":"RS256"}"#, &payload),
            "alg_not_allowed",
        ),
        // invalid_signature
        (
            "flipped signature byte",
            jwt::flip_signature(&good),
            "invalid_signature",
        ),
        (
            "signed with another secret",
            jwt::hs256(
                b"another-secret-that-is-also-long-enough-for-hs256",
                &claims(),
            ),
            "invalid_signature",
        ),
        (
            "signature stripped",
            format!("{good_input}."),
            "invalid_signature",
        ),
        (
            "payload altered",
            format!(
                "{}.{}.{good_sig}",
                good.split('.').next().unwrap(),
                jwt::b64(with(claims(), "sub", json!("admin")).to_string().as_bytes())
            ),
            "invalid_signature",
        ),
        (
            "key embedded in the header",
            jwt::hmac_token(
                "HS256",
                b"attacker-chosen-secret-attacker-chosen-secret",
                &format!(
                    r#"{{"alg":"HS256","jwk":{{"kty":"oct","k":"{}"}}}}"#,
                    jwt::b64(b"attacker-chosen-secret-attacker-chosen-secret")
                ),
                &payload,
            ),
            "invalid_signature",
        ),
        // time
        (
            "expired",
            token(&with(claims(), "exp", json!(now - 3600))),
            "token_expired",
        ),
        (
            "exp missing",
            token(&without(claims(), "exp")),
            "missing_claim",
        ),
        (
            "nbf in the future",
            token(&with(claims(), "nbf", json!(now + 3600))),
            "token_not_yet_valid",
        ),
        (
            "iat in the future",
            token(&with(claims(), "iat", json!(now + 3600))),
            "token_not_yet_valid",
        ),
        (
            "older than JWT_MAX_AGE",
            token(&with(claims(), "iat", json!(now - 7200))),
            "token_too_old",
        ),
        // claim and header policy
        (
            "wrong iss",
            token(&with(claims(), "iss", json!("https://evil.test"))),
            "invalid_issuer",
        ),
        (
            "iss differs by a slash",
            token(&with(claims(), "iss", json!(format!("{ISSUER}/")))),
            "invalid_issuer",
        ),
        (
            "iss missing",
            token(&without(claims(), "iss")),
            "missing_claim",
        ),
        (
            "wrong aud",
            token(&with(claims(), "aud", json!("nope"))),
            "invalid_audience",
        ),
        (
            "aud array without an accepted one",
            token(&with(claims(), "aud", json!(["x", "API"]))),
            "invalid_audience",
        ),
        (
            "aud missing",
            token(&without(claims(), "aud")),
            "missing_claim",
        ),
        (
            // The default types refuse the issuer's other kinds of token (RFC 8725 §3.11).
            "typ of a logout token",
            signed(r#"{"alg":"HS256","typ":"logout+jwt"}"#, &payload),
            "invalid_type",
        ),
        (
            "crit present",
            signed(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#, &payload),
            "unsupported_crit",
        ),
        (
            "crit empty",
            signed(r#"{"alg":"HS256","crit":[]}"#, &payload),
            "unsupported_crit",
        ),
    ];
    // The size cap comes before any parsing, so even garbage gets token_too_large.
    cases.push(("9000-byte garbage", "a".repeat(9000), "token_too_large"));
    cases
}

/// Variants of valid tokens the contract configuration accepts: name, token.
pub fn accepted_token_cases() -> Vec<(&'static str, String)> {
    let now = now();
    vec![
        (
            "aud array, one accepted",
            token(&with(claims(), "aud", json!(["unknown", "other-api"]))),
        ),
        (
            "expired 30 s ago, inside the 60 s leeway",
            token(&with(claims(), "exp", json!(now - 30))),
        ),
        (
            "nbf 30 s ahead, inside the leeway",
            token(&with(claims(), "nbf", json!(now + 30))),
        ),
        (
            "iat 30 s ahead, inside the leeway",
            token(&with(claims(), "iat", json!(now + 30))),
        ),
        (
            "iat 50 min ago, under max age",
            token(&with(claims(), "iat", json!(now - 3000))),
        ),
        (
            "typ absent",
            signed(r#"{"alg":"HS256"}"#, &claims().to_string()),
        ),
        // RFC 9068 access tokens, as identity providers issue them, under the default types.
        (
            "typ at+jwt",
            signed(r#"{"alg":"HS256","typ":"at+jwt"}"#, &claims().to_string()),
        ),
        (
            "typ application/at+jwt",
            signed(
                r#"{"alg":"HS256","typ":"application/at+jwt"}"#,
                &claims().to_string(),
            ),
        ),
        (
            "typ jwt lowercase",
            signed(r#"{"alg":"HS256","typ":"jwt"}"#, &claims().to_string()),
        ),
        (
            "embedded jku/x5u ignored",
            signed(
                r#"{"alg":"HS256","jku":"http://127.0.0.1:9/keys","x5u":"http://127.0.0.1:9/x"}"#,
                &claims().to_string(),
            ),
        ),
        (
            "exp as a float",
            token(&with(claims(), "exp", json!(now as f64 + 600.5))),
        ),
    ]
}

/// Changes the last character of a base64url segment so that its unused low bits are set.
fn non_canonical(segment: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused_bits = match segment.len() % 4 {
        2 => 4,
        3 => 2,
        _ => panic!(
            "test setup: segment of length {} has no unused bits",
            segment.len()
        ),
    };
    let last = segment.as_bytes()[segment.len() - 1];
    let value = ALPHABET.iter().position(|&c| c == last).unwrap();
    let changed = value | ((1 << unused_bits) - 1);
    assert_ne!(changed, value, "test setup: bits already set");
    format!(
        "{}{}",
        &segment[..segment.len() - 1],
        ALPHABET[changed] as char
    )
}
