//! Interop: tokens minted by an independent implementation (PyJWT + cryptography, from PyPI) for every
//! algorithm are accepted, and their tampered variants refused, over HTTP by the real service.
//!
//! `tests/interop/mint.py` generates fresh keys on every run and writes a fixture (see its docstring).
//! It runs with the virtualenv python made by `scripts/setup` (`.cache/venv/bin/python`, or
//! `JWTV_PYTHON`). A missing virtualenv fails the test: it never skips silently.

mod support;

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{Server, TempDir, TestConfig, assert_no_failures, wait_timeout, workspace_root};

const ISSUER: &str = "https://interop.test";
const AUDIENCE: &str = "interop-api";
const ALGORITHMS: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "EdDSA",
];

fn python() -> PathBuf {
    let path = std::env::var_os("JWTV_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".cache/venv/bin/python"));
    assert!(
        path.is_file(),
        "the interop tests need PyJWT from the project's virtualenv, and {} does not exist: run `scripts/setup python` \
         (or set JWTV_PYTHON to a python with PyJWT and cryptography)",
        path.display()
    );
    path
}

/// Runs mint.py and returns its fixture.
fn mint() -> Value {
    let dir = TempDir::new();
    let out = dir.path().join("fixture.json");
    let script = workspace_root().join("tests/interop/mint.py");
    let mut child = Command::new(python())
        .arg(&script)
        .arg(&out)
        .args(["--iss", ISSUER, "--aud", AUDIENCE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the interop minting script");
    let status = wait_timeout(&mut child, Duration::from_secs(60));
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{} did not finish within 60 s", script.display());
    };
    let output = child.wait_with_output().expect("collect mint.py output");
    assert!(
        status.success(),
        "mint.py failed ({status}); if PyJWT is missing run `scripts/setup python`\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fixture: Value = serde_json::from_slice(&std::fs::read(&out).expect("read fixture"))
        .expect("fixture is JSON");
    let algs: Vec<&str> = fixture["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| c["alg"].as_str().unwrap())
        .collect();
    assert_eq!(algs, ALGORITHMS, "the fixture covers every algorithm");
    fixture
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("fixture: {key} missing in {v}"))
}

/// Reason codes a tampered variant may legitimately get; all are 401.
fn accepted_codes(variant: &str) -> &'static [&'static str] {
    match variant {
        "flipped_signature" | "altered_payload" => &["invalid_signature"],
        // An empty signature can be refused as a bad signature or as a malformed one.
        "signature_stripped" => &["invalid_signature", "malformed_token"],
        // The key named by kid is bound to one algorithm; a key of another type cannot be picked.
        "alg_switched" => &["alg_not_allowed", "invalid_signature", "unknown_kid"],
        "hs256_with_public_pem" => &["alg_not_allowed"],
        other => panic!("unknown tampered variant {other}"),
    }
}

/// Checks one answer; returns the failure, if any.
fn check(
    server: &Server,
    what: &str,
    token: &str,
    expect_ok: bool,
    codes: &[&str],
) -> Option<String> {
    let r = server.validate(token);
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    if expect_ok {
        let ok = r.status == 200
            && body["valid"] == Value::Bool(true)
            && body["claims"]["sub"] == "interop-user";
        return (!ok).then(|| format!("{what}: expected 200 valid, got {} {}", r.status, r.text()));
    }
    let code = body["error"].as_str().unwrap_or("");
    let ok = r.status == 401 && body["valid"] == Value::Bool(false) && codes.contains(&code);
    (!ok).then(|| {
        format!(
            "{what}: expected 401 {codes:?}, got {} {}",
            r.status,
            r.text()
        )
    })
}

#[test]
fn pyjwt_tokens_verify_with_a_jwks_and_an_hmac_secret_and_tampering_is_refused() {
    let fixture = mint();
    let jwks = serde_json::to_vec(&fixture["jwks"]).unwrap();
    let server = Server::start(
        TestConfig::new()
            .file("jwks.json", jwks)
            .env("JWT_JWKS_FILE", "{files}/jwks.json")
            .env("JWT_SECRET", s(&fixture, "hmac_secret"))
            .env("JWT_ISSUER", ISSUER)
            .env("JWT_AUDIENCE", AUDIENCE),
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in fixture["cases"].as_array().unwrap() {
        let alg = s(case, "alg");
        failures.extend(check(
            &server,
            &format!("{alg} valid"),
            s(case, "valid"),
            true,
            &[],
        ));
        for (variant, token) in case["tampered"].as_object().unwrap() {
            let token = token.as_str().unwrap();
            failures.extend(check(
                &server,
                &format!("{alg} {variant}"),
                token,
                false,
                accepted_codes(variant),
            ));
            checked += 1;
        }
    }
    assert!(
        checked >= ALGORITHMS.len() * 4,
        "every algorithm has its tampered variants ({checked})"
    );
    assert_no_failures(failures);
}

#[test]
fn pyjwt_tokens_verify_with_pem_public_keys() {
    if !support::pem_keys_supported() {
        // The component's default build has no PEM reader (http_contract checks it refuses PEM keys);
        // scripts/test runs this test again against its `pem` build.
        return;
    }
    let fixture = mint();
    let mut failures = Vec::new();
    for case in fixture["cases"].as_array().unwrap() {
        let alg = s(case, "alg");
        let Some(pem) = case["public_pem"].as_str() else {
            continue; // HMAC: no public key
        };
        // One PEM key, pinned to one algorithm; the token carries no kid.
        let server = Server::start(
            TestConfig::new()
                .file("key.pem", pem.as_bytes())
                .env("JWT_PUBLIC_KEY_FILE", "{files}/key.pem")
                .env("JWT_ALGORITHMS", alg)
                .env("JWT_ISSUER", ISSUER)
                .env("JWT_AUDIENCE", AUDIENCE),
        );
        failures.extend(check(
            &server,
            &format!("{alg} PEM valid"),
            s(case, "valid_no_kid"),
            true,
            &[],
        ));
        let tampered = &case["tampered"];
        failures.extend(check(
            &server,
            &format!("{alg} PEM hs256_with_public_pem"),
            s(tampered, "hs256_with_public_pem"),
            false,
            &["alg_not_allowed"],
        ));
        failures.extend(check(
            &server,
            &format!("{alg} PEM alg_switched"),
            s(tampered, "alg_switched"),
            false,
            &["alg_not_allowed"],
        ));
    }
    assert_no_failures(failures);
}

#[test]
fn pyjwt_hmac_tokens_verify_with_a_secret_file() {
    let fixture = mint();
    let server = Server::start(
        TestConfig::new()
            .file("secret", s(&fixture, "hmac_secret").as_bytes())
            .env("JWT_SECRET_FILE", "{files}/secret")
            .env("JWT_ISSUER", ISSUER)
            .env("JWT_AUDIENCE", AUDIENCE),
    );
    let mut failures = Vec::new();
    for case in fixture["cases"].as_array().unwrap() {
        let alg = s(case, "alg");
        if alg.starts_with("HS") {
            failures.extend(check(
                &server,
                &format!("{alg} (secret file)"),
                s(case, "valid"),
                true,
                &[],
            ));
            let flipped = s(&case["tampered"], "flipped_signature");
            failures.extend(check(
                &server,
                &format!("{alg} flipped (secret file)"),
                flipped,
                false,
                &["invalid_signature"],
            ));
        } else {
            // No public key configured: an asymmetric token has no key to verify it.
            failures.extend(check(
                &server,
                &format!("{alg} without its key"),
                s(case, "valid_no_kid"),
                false,
                &["alg_not_allowed"],
            ));
        }
    }
    assert_no_failures(failures);
}
