//! The HTTP contract of `POST /validate`, the probes and the hardening rules, spoken over real TCP to
//! the real service (`JWTV_TEST_TARGET=native|wasm`, see `support`).

mod support;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};
use support::contract::{
    HS256_HEADER, ISSUER, SECRET, accepted_token_cases, claims, config, rejected_token_cases,
    signed, token, with,
};
use support::jwt::{self, TestKey};
use support::{Response, Server, Target, TempDir, TestConfig, assert_no_failures};

fn is_json_content_type(r: &Response) -> bool {
    r.header("content-type")
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// Checks the shape every error answer of `/validate` shares; returns what is wrong, if anything.
fn error_shape_problems(r: &Response, status: u16, code: &str, token: Option<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    if r.status != status {
        problems.push(format!("status {} (expected {status})", r.status));
    }
    if !is_json_content_type(r) {
        problems.push(format!("content-type {:?}", r.header("content-type")));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
        problems.push(format!("body is not JSON: {:?}", r.text()));
        return problems;
    };
    if body["valid"] != json!(false) {
        problems.push(format!("valid is {} (expected false)", body["valid"]));
    }
    if body["error"] != json!(code) {
        problems.push(format!("error is {} (expected {code:?})", body["error"]));
    }
    if let Some(token) = token {
        let leaks = |s: &str| {
            s.contains(token)
                || token
                    .rsplit('.')
                    .next()
                    .is_some_and(|sig| sig.len() >= 16 && s.contains(sig))
        };
        if leaks(&r.text()) {
            problems.push("the body contains the token".into());
        }
        if r.headers.iter().any(|(_, v)| leaks(v)) {
            problems.push("a header contains the token".into());
        }
    }
    problems
}

/// A 401 of the drop-in API: the shape above, a description, and the RFC 6750 challenge.
fn unauthorized_problems(r: &Response, code: &str, token: &str) -> Vec<String> {
    let mut problems = error_shape_problems(r, 401, code, Some(token));
    let description = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|b| b["error_description"].as_str().map(str::to_owned));
    if description.as_deref().is_none_or(str::is_empty) {
        problems.push("no error_description".into());
    }
    match r.header("www-authenticate") {
        None => problems.push("no WWW-Authenticate".into()),
        Some(challenge) => {
            if !challenge.starts_with("Bearer ") {
                problems.push(format!("challenge is not Bearer: {challenge:?}"));
            }
            if !challenge.contains(r#"error="invalid_token""#) {
                problems.push(format!(
                    "challenge lacks error=\"invalid_token\": {challenge:?}"
                ));
            }
            if !challenge.contains(r#"error_description=""#) {
                problems.push(format!("challenge lacks error_description: {challenge:?}"));
            }
            if challenge.matches('"').count() % 2 != 0 {
                problems.push(format!("challenge has unbalanced quotes: {challenge:?}"));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------------
// 200

#[test]
fn a_valid_token_is_accepted_with_its_claims_and_expires_in() {
    let server = Server::start(config());
    let claims = claims();
    let token = token(&claims);
    let r = server.validate(&token);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(is_json_content_type(&r), "{:?}", r.header("content-type"));
    let body = r.json();
    assert_eq!(body["valid"], json!(true), "{body}");
    assert_eq!(
        body["claims"], claims,
        "claims must be the verified payload"
    );
    assert!(body.get("error").is_none(), "{body}");
    let expires_in = body["expires_in"]
        .as_u64()
        .unwrap_or_else(|| panic!("expires_in: {body}"));
    assert!(
        (590..=600).contains(&expires_in),
        "expires_in {expires_in}, exp is 600 s away"
    );
    server.assert_not_logged(&token);
}

#[test]
fn accepted_variants_of_valid_tokens() {
    let server = Server::start(config());
    let cases = accepted_token_cases();
    let mut failures = Vec::new();
    for (name, token) in &cases {
        let r = server.validate(token);
        if r.status != 200 || r.json()["valid"] != json!(true) {
            failures.push(format!("{name}: {} {}", r.status, r.text()));
        }
    }
    assert_no_failures(failures);
}

#[test]
fn content_type_json_variants_and_a_missing_content_type_are_accepted() {
    let server = Server::start(config());
    let token = token(&claims());
    let body = json!({ "token": token }).to_string();
    let mut failures = Vec::new();
    for headers in [
        vec![],
        vec![("Content-Type", "application/json; charset=utf-8")],
        vec![("Content-Type", "Application/JSON")],
    ] {
        let r = server.request("POST", "/validate", &headers, body.as_bytes());
        if r.status != 200 {
            failures.push(format!("{headers:?}: {} {}", r.status, r.text()));
        }
    }
    assert_no_failures(failures);
}

// ---------------------------------------------------------------------------------------------------
// 400, 405, 413, 415

#[test]
fn requests_without_a_usable_token_are_400() {
    let server = Server::start(config());
    let cases: &[(&str, &[u8], &[&str])] = &[
        ("empty body", b"", &["missing_token", "invalid_request"]),
        (
            "whitespace body",
            b"  \r\n",
            &["missing_token", "invalid_request"],
        ),
        ("not JSON", b"token=abc", &["invalid_request"]),
        ("truncated JSON", br#"{"token": "abc"#, &["invalid_request"]),
        ("{}", b"{}", &["missing_token"]),
        ("empty token", br#"{"token":""}"#, &["missing_token"]),
        ("null token", br#"{"token":null}"#, &["missing_token"]),
        ("numeric token", br#"{"token":5}"#, &["invalid_request"]),
        (
            "array token",
            br#"{"token":["a.b.c"]}"#,
            &["invalid_request"],
        ),
        (
            "object token",
            br#"{"token":{"jwt":"a.b.c"}}"#,
            &["invalid_request"],
        ),
        ("JSON array body", br#"["a.b.c"]"#, &["invalid_request"]),
        ("JSON string body", br#""a.b.c""#, &["invalid_request"]),
        (
            "not UTF-8",
            b"{\"token\":\"\xff\xfe\"}",
            &["invalid_request"],
        ),
    ];
    let mut failures = Vec::new();
    for (name, body, codes) in cases {
        let r = server.post_json("/validate", body);
        let code = r.error_code().unwrap_or_default();
        let expected = if codes.contains(&code.as_str()) {
            code.as_str()
        } else {
            codes[0]
        };
        let problems = error_shape_problems(&r, 400, expected, None);
        if !problems.is_empty() {
            failures.push(format!("{name}: {} — {}", problems.join("; "), r.text()));
        }
    }
    assert_no_failures(failures);
}

#[test]
fn a_body_over_the_limit_is_413() {
    let server = Server::start(config().env("JWT_MAX_BODY_BYTES", "1024"));
    // Just under the limit: answered normally.
    let token = token(&claims());
    let mut small = json!({ "token": token }).to_string().into_bytes();
    assert!(small.len() < 1024);
    small.resize(1000, b' ');
    let r = server.post_json("/validate", &small);
    assert_eq!(
        r.status,
        200,
        "a 1000-byte body under a 1024-byte limit: {}",
        r.text()
    );

    let big = json!({ "token": "a".repeat(2000) }).to_string();
    let r = server.post_json("/validate", big.as_bytes());
    assert_no_failures(error_shape_problems(&r, 413, "invalid_request", None));

    // Without Content-Length: the limit holds for a chunked body too.
    let mut chunked = format!("{:x}\r\n", big.len()).into_bytes();
    chunked.extend_from_slice(big.as_bytes());
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let r = server.request(
        "POST",
        "/validate",
        &[
            ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"),
        ],
        &chunked,
    );
    assert_no_failures(error_shape_problems(&r, 413, "invalid_request", None));
}

#[test]
fn other_methods_are_405_and_non_json_media_types_415() {
    let server = Server::start(config());
    let mut failures = Vec::new();
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let r = server.request(method, "/validate", &[], b"");
        if r.status != 405 {
            failures.push(format!("{method} /validate: {} {}", r.status, r.text()));
            continue;
        }
        if !r.header("allow").is_some_and(|a| a.contains("POST")) {
            failures.push(format!(
                "{method} /validate: 405 without `Allow: POST` ({:?})",
                r.header("allow")
            ));
        }
        if serde_json::from_slice::<Value>(&r.body).is_err() {
            failures.push(format!(
                "{method} /validate: 405 body is not JSON: {:?}",
                r.text()
            ));
        }
    }
    let body = json!({ "token": token(&claims()) }).to_string();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = server.request(
            "POST",
            "/validate",
            &[("Content-Type", ct)],
            body.as_bytes(),
        );
        let problems = error_shape_problems(
            &r,
            415,
            r.error_code().as_deref().unwrap_or("invalid_request"),
            None,
        );
        if !problems.is_empty() {
            failures.push(format!("Content-Type {ct}: {}", problems.join("; ")));
        }
    }
    assert_no_failures(failures);
}

/// `POST /validate` takes the token from `Authorization: Bearer` when the body carries none; two
/// different tokens are refused rather than guessed between (issue 13). The rule is the service's,
/// checked here through each shell.
#[test]
fn a_bearer_header_stands_in_for_a_missing_body_token() {
    let server = Server::start(config());
    let good = token(&claims());
    let other = token(&with(claims(), "sub", json!("mallory")));
    let bearer = format!("Bearer {good}");
    let too_long = format!(
        "Bearer {}",
        "a".repeat(support::contract::MAX_TOKEN_BYTES + 1)
    );
    let json = ("Content-Type", "application/json");
    let mut failures = Vec::new();
    // `code` empty: the answer must be 200 with alice's claims.
    let mut check = |name: &str, headers: &[(&str, &str)], body: &str, status: u16, code: &str| {
        let r = server.request("POST", "/validate", headers, body.as_bytes());
        let problems = if code.is_empty() {
            let body = serde_json::from_slice::<Value>(&r.body).unwrap_or_default();
            match (r.status, body["claims"]["sub"].as_str()) {
                (200, Some("alice")) => Vec::new(),
                _ => vec![format!("expected 200 for alice: {} {}", r.status, r.text())],
            }
        } else {
            let mut problems = error_shape_problems(&r, status, code, Some(&good));
            problems.extend(error_shape_problems(&r, status, code, Some(&other)));
            problems.dedup();
            problems
        };
        if !problems.is_empty() {
            failures.push(format!("{name}: {}", problems.join("; ")));
        }
    };
    let with_bearer = [json, ("Authorization", bearer.as_str())];
    check(
        "header, no body, no Content-Type",
        &[("Authorization", &bearer)],
        "",
        200,
        "",
    );
    check("header, body {}", &with_bearer, "{}", 200, "");
    let body_of = |t: &str| json!({ "token": t }).to_string();
    check(
        "the same token in both",
        &with_bearer,
        &body_of(&good),
        200,
        "",
    );
    check(
        "different tokens",
        &with_bearer,
        &body_of(&other),
        400,
        "invalid_request",
    );
    check(
        "Basic scheme, no body",
        &[("Authorization", "Basic dXNlcjpwYXNz")],
        "",
        400,
        "missing_token",
    );
    check(
        "header over the token cap",
        &[("Authorization", &too_long)],
        "",
        401,
        "token_too_large",
    );
    assert_no_failures(failures);
}

// ---------------------------------------------------------------------------------------------------
// 401: one stable code per reason

#[test]
fn rejected_tokens_are_401_with_stable_codes_and_a_bearer_challenge() {
    let server = Server::start(config());
    let good = token(&claims());
    let cases = rejected_token_cases();

    let mut failures = Vec::new();
    for (name, token, code) in &cases {
        let r = server.validate(token);
        let problems = unauthorized_problems(&r, code, token);
        if !problems.is_empty() {
            failures.push(format!("{name}: {} — {}", problems.join("; "), r.text()));
        }
    }
    // The positive control: the same server accepts the untouched token.
    let r = server.validate(&good);
    if r.status != 200 {
        failures.push(format!("control token refused: {} {}", r.status, r.text()));
    }
    for (_, token, _) in &cases {
        if token.len() > 40 {
            server.assert_not_logged(token);
        }
    }
    assert_no_failures(failures);
}

#[test]
fn a_token_signed_with_the_rsa_public_key_pem_as_hmac_secret_is_refused() {
    // CVE-2015-9235: a library that takes `alg` from the token and the configured PEM as an HMAC key
    // accepts a token anyone can forge from the public key. A build without PEM support gets the same
    // key as a JWK: the forger still has the PEM.
    let pem = TestKey::Rsa2048.public_pem();
    let key_config = if support::pem_keys_supported() {
        TestConfig::new()
            .file("rsa.pub.pem", pem.as_bytes())
            .env("JWT_PUBLIC_KEY_FILE", "{files}/rsa.pub.pem")
    } else {
        let jwk = support::keyserver::TestJwk::rs256("rsa");
        TestConfig::new().env("JWT_JWKS", json!({"keys": [jwk.public_jwk()]}).to_string())
    };
    let server = Server::start(
        key_config
            .env("JWT_ISSUER", ISSUER)
            .env("JWT_AUDIENCE", "api"),
    );
    let payload = claims().to_string();
    let rs256 = jwt::signed_token(
        TestKey::Rsa2048,
        "RS256",
        r#"{"alg":"RS256","typ":"JWT"}"#,
        &payload,
    );
    let r = server.validate(&rs256);
    assert_eq!(
        r.status,
        200,
        "control: RS256 with the configured key: {}",
        r.text()
    );

    let mut failures = Vec::new();
    for (name, secret) in [
        ("PEM", pem.as_str()),
        ("PEM without trailing newline", pem.trim_end()),
    ] {
        let forged = jwt::hmac_token("HS256", secret.as_bytes(), HS256_HEADER, &payload);
        let problems = unauthorized_problems(&server.validate(&forged), "alg_not_allowed", &forged);
        if !problems.is_empty() {
            failures.push(format!(
                "HS256 keyed with the {name}: {}",
                problems.join("; ")
            ));
        }
    }
    // The raw key bytes as the secret, for good measure.
    let der_key = TestKey::Rsa2048.public_key_bytes();
    let forged = jwt::hmac_token("HS256", &der_key, HS256_HEADER, &payload);
    let problems = unauthorized_problems(&server.validate(&forged), "alg_not_allowed", &forged);
    if !problems.is_empty() {
        failures.push(format!(
            "HS256 keyed with the DER key: {}",
            problems.join("; ")
        ));
    }
    assert_no_failures(failures);
}

#[test]
fn a_kid_that_names_no_configured_key_is_unknown_kid() {
    use base64::Engine as _;
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
    let jwks = json!({"keys": [{"kty": "oct", "k": k, "kid": "k1", "alg": "HS256"}]});
    let server = Server::start(
        TestConfig::new()
            .env("JWT_JWKS", jwks.to_string())
            .env("JWT_ISSUER", ISSUER),
    );
    let payload = claims().to_string();
    let mut failures = Vec::new();
    for (name, header) in [
        ("kid k1", r#"{"alg":"HS256","kid":"k1"}"#),
        ("no kid, one key fits", r#"{"alg":"HS256"}"#),
    ] {
        let r = server.validate(&signed(header, &payload));
        if r.status != 200 {
            failures.push(format!("{name}: {} {}", r.status, r.text()));
        }
    }
    for kid in [
        "no-such-key",
        "K1",
        "k1 ",
        "../k1",
        "https://127.0.0.1:9/k1",
    ] {
        let token = signed(&json!({"alg": "HS256", "kid": kid}).to_string(), &payload);
        let problems = unauthorized_problems(&server.validate(&token), "unknown_kid", &token);
        if !problems.is_empty() {
            failures.push(format!("kid {kid:?}: {}", problems.join("; ")));
        }
    }
    assert_no_failures(failures);
}

#[test]
fn a_kid_is_ignored_when_the_only_key_is_an_unnamed_secret() {
    // The replaced service ignored kid: a bare JWT_SECRET still verifies a token that names a kid,
    // and a bad signature is still refused.
    let server = Server::start(config());
    let payload = claims().to_string();
    let token = signed(r#"{"alg":"HS256","kid":"whatever"}"#, &payload);
    let r = server.validate(&token);
    assert_eq!(r.status, 200, "{}", r.text());
    let forged = jwt::flip_signature(&token);
    assert_no_failures(unauthorized_problems(
        &server.validate(&forged),
        "invalid_signature",
        &forged,
    ));
}

#[test]
fn expose_errors_false_hides_descriptions_but_keeps_codes() {
    let exposed = Server::start(config());
    let hidden = Server::start(config().env("JWT_EXPOSE_ERRORS", "false"));
    let bad = jwt::flip_signature(&token(&claims()));

    let shown = exposed.validate(&bad);
    let description = shown.json()["error_description"]
        .as_str()
        .unwrap_or_else(|| panic!("exposed server gives a description: {}", shown.text()))
        .to_owned();
    assert!(!description.is_empty());

    let r = hidden.validate(&bad);
    assert_no_failures(error_shape_problems(
        &r,
        401,
        "invalid_signature",
        Some(&bad),
    ));
    let body = r.json();
    assert!(
        body.get("error_description").is_none(),
        "description exposed: {body}"
    );
    let challenge = r
        .header("www-authenticate")
        .expect("401 carries WWW-Authenticate");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(
        !challenge.contains(&description),
        "challenge shows the description: {challenge}"
    );

    let r = hidden.post_json("/validate", b"{}");
    assert_no_failures(error_shape_problems(&r, 400, "missing_token", None));
    assert!(r.json().get("error_description").is_none(), "{}", r.text());
}

// ---------------------------------------------------------------------------------------------------
// Old clients

#[test]
fn answers_are_byte_compatible_with_the_express_service() {
    // The old service answered `{"valid":true}` / `{"valid":false,"error":"…"}`; clients that test the
    // status, parse `valid`, or match the leading bytes keep working.
    let server = Server::start(config());
    let ok = server.validate(&token(&claims()));
    assert_eq!(ok.status, 200);
    assert!(ok.text().starts_with(r#"{"valid":true"#), "{}", ok.text());
    assert_eq!(ok.json()["valid"], json!(true));
    assert!(ok.json().get("error").is_none());

    for (body, status) in [
        (
            json!({"token": jwt::flip_signature(&token(&claims()))}).to_string(),
            401,
        ),
        (json!({"token": "not-a-jwt"}).to_string(), 401),
        ("{}".to_owned(), 400),
    ] {
        let r = server.post_json("/validate", body.as_bytes());
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(
            r.text().starts_with(r#"{"valid":false,"error":""#),
            "{}",
            r.text()
        );
        let json = r.json();
        assert_eq!(json["valid"], json!(false));
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{json}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// Operations and routing

#[test]
fn health_and_readiness_probes_answer_200() {
    let server = Server::start(config());
    for path in ["/healthz", "/readyz"] {
        let r = server.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(
            is_json_content_type(&r),
            "{path}: {:?}",
            r.header("content-type")
        );
        r.json();
    }
}

#[test]
fn unknown_paths_are_404_json() {
    let server = Server::start(config());
    let mut failures = Vec::new();
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/nope"),
        ("POST", "/validate/extra"),
        ("POST", "/VALIDATE"),
        ("GET", "/../etc/passwd"),
    ] {
        let r = server.request(method, path, &[("Content-Type", "application/json")], b"{}");
        let json = serde_json::from_slice::<Value>(&r.body).ok();
        if r.status != 404
            || json.as_ref().and_then(|j| j["error"].as_str()) != Some("not_found")
            || !is_json_content_type(&r)
        {
            failures.push(format!(
                "{method} {path}: {} {:?} {}",
                r.status,
                r.header("content-type"),
                r.text()
            ));
        }
    }
    assert_no_failures(failures);
}

// ---------------------------------------------------------------------------------------------------
// Hardening

/// A client trickling its headers never blocks others. Cutting it off is the listener's job: the native
/// server does it (request timeout); `wasmtime serve` has no header timeout, so for the component it
/// belongs to the proxy in front (docs/gateway.md, "Slow clients"), and only the first half is checked.
#[test]
fn a_slow_client_is_cut_off_and_others_are_still_served() {
    let server = Server::start(config());
    if server.target == Target::Wasm {
        let mut slow = server.connect();
        for byte in b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " {
            slow.write_all(&[*byte]).unwrap();
            thread::sleep(Duration::from_millis(20));
        }
        let r = server.get("/healthz");
        assert_eq!(r.status, 200, "a slow client must not block others");
        assert_eq!(server.validate(&token(&claims())).status, 200);
        return;
    }
    let started = Instant::now();
    let mut slow = server.connect();
    // One byte per second: each read waits up to one second for the server to give up on us.
    slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let header = b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let mut sent = 0usize;
    let mut checked_others = false;
    let outcome = loop {
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "a client sending one header byte per second was still connected after 25 s ({sent} bytes sent)"
        );
        let byte = header.get(sent).copied().unwrap_or(b'a');
        if slow.write_all(&[byte]).is_err() {
            break "write refused";
        }
        sent += 1;
        let mut buf = [0u8; 1024];
        match slow.read(&mut buf) {
            Ok(0) => break "closed",
            Ok(_) => break "answered",
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break "reset",
        }
        if !checked_others {
            checked_others = true;
            let r = server.get("/healthz");
            assert_eq!(r.status, 200, "a slow client must not block others");
        }
    };
    assert!(
        checked_others,
        "cut off after {sent} bytes, before the check that others are served"
    );
    eprintln!(
        "slow client: {outcome} after {:?} ({sent} bytes)",
        started.elapsed()
    );
    let r = server.validate(&token(&claims()));
    assert_eq!(
        r.status, 200,
        "server still serves after cutting off a slow client"
    );
}

#[test]
fn garbage_bytes_get_400_and_the_server_keeps_serving() {
    let server = Server::start(config());
    let garbage: &[&[u8]] = &[
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x01\x02\x03garbage\r\n\r\n",
        b"\x00\x00\x00\x00\r\n\r\n",
        b"POST /validate HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nContent-Length: -5\r\nHost: 127.0.0.1\r\n\r\n",
        b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}",
    ];
    let mut failures = Vec::new();
    for bytes in garbage {
        let raw = server.send_raw(bytes);
        let shown = String::from_utf8_lossy(bytes);
        if !raw.starts_with(b"HTTP/1.1 400") {
            failures.push(format!(
                "{shown:?}: answered {:?}",
                String::from_utf8_lossy(&raw)
            ));
        }
        let r = server.get("/healthz");
        if r.status != 200 {
            failures.push(format!("after {shown:?}: /healthz {}", r.status));
        }
    }
    // 1 MiB of headers: refused with a 4xx (or the connection closed), not a crash.
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let raw = server.send_raw(huge.as_bytes());
    if !(raw.starts_with(b"HTTP/1.1 4") || raw.is_empty()) {
        failures.push(format!(
            "1 MiB header: answered {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        ));
    }
    let r = server.validate(&token(&claims()));
    if r.status != 200 {
        failures.push(format!(
            "valid token after garbage: {} {}",
            r.status,
            r.text()
        ));
    }
    assert_no_failures(failures);
}

#[test]
fn fifty_concurrent_requests_are_all_answered() {
    let server = Arc::new(Server::start(config()));
    let barrier = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let server = server.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let good = i % 5 != 0;
                let claims = with(claims(), "jti", json!(format!("req-{i}")));
                let token = if good {
                    token(&claims)
                } else {
                    jwt::flip_signature(&token(&claims))
                };
                barrier.wait();
                let r = server.validate(&token);
                (i, good, r.status, r.json()["valid"].clone())
            })
        })
        .collect();
    let mut failures = Vec::new();
    for handle in handles {
        let (i, good, status, valid) = handle.join().expect("request thread");
        let expected = if good {
            (200, json!(true))
        } else {
            (401, json!(false))
        };
        if (status, valid.clone()) != expected {
            failures.push(format!(
                "request {i}: {status} valid={valid}, expected {expected:?}"
            ));
        }
    }
    assert_no_failures(failures);
}

// ---------------------------------------------------------------------------------------------------
// Configurations the component cannot honour: refused with the reason on stderr, never served half-way

#[test]
fn the_component_refuses_a_fetch_ca_file_with_a_clear_error() {
    if Target::from_env() != Target::Wasm {
        return; // the native binary adds it to its roots (fetch_proxy.rs)
    }
    refused_at_start(
        TestConfig::new()
            .env("JWT_JWKS_URI", "https://keys.example.com/jwks")
            .file(
                "ca.pem",
                "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            )
            .env("JWT_FETCH_CA_FILE", "{files}/ca.pem"),
        "JWT_FETCH_CA_FILE: the component cannot add CA certificates; the host makes the TLS \
         connections with its own roots",
    );
}

#[test]
fn a_pem_key_is_refused_with_a_clear_error_where_pem_is_not_built_in() {
    if support::pem_keys_supported() {
        return; // PEM keys are read: a_token_signed_with_the_rsa_public_key_pem_as_hmac_secret_is_refused
    }
    refused_at_start(
        TestConfig::new()
            .file("rsa.pub.pem", TestKey::Rsa2048.public_pem())
            .env("JWT_PUBLIC_KEY_FILE", "{files}/rsa.pub.pem"),
        "JWT_PUBLIC_KEY_FILE: PEM public keys are not supported by this build (the component reads \
         PEM when built with `--features pem`); give the key as a JWK",
    );
}

// Issue 24: a configuration that asks for a rule never runs on a build that cannot evaluate it.
#[test]
fn a_rule_is_refused_with_a_clear_error_where_rules_are_not_built_in() {
    if support::rules_supported() {
        return;
    }
    refused_at_start(
        TestConfig::new().env("JWT_RULE", "'admin' in claims.groups"),
        "JWT_RULE: the default policy has a rule, but this build has no CEL rules (the WebAssembly \
         component's `rules` build has them)",
    );
}

#[test]
fn the_wide_component_without_the_wide_arithmetic_flag_is_refused_by_wasmtime_at_start() {
    if !support::wide_arithmetic() {
        return;
    }
    // The harness adds `-W wide-arithmetic=y`; without it, wasmtime must stop before serving and say why
    // (what a host without the proposal, or a user who forgot the flag, sees).
    let addr = format!("127.0.0.1:{}", support::free_port());
    let mut child = std::process::Command::new(support::wasmtime())
        .args(["serve", "-S", "cli", "--addr", &addr])
        .arg(support::component())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wasmtime");
    let stderr = support::Captured::default();
    let drained = stderr.drain(child.stderr.take().expect("piped stderr"));
    let Some(status) = support::wait_timeout(&mut child, support::START_TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("wasmtime serve started the wide component without -W wide-arithmetic=y");
    };
    let _ = drained.join();
    let text = stderr.text();
    assert!(!status.success(), "wasmtime exited with {status}");
    assert!(
        text.contains("wide arithmetic support is not enabled"),
        "wasmtime's refusal does not name the feature:\n{text}"
    );
}

/// Every route answers 500 `server_misconfigured` and stderr names the problem; a component baked per
/// test (`JWTV_COMPONENT_BAKE=1`) is refused by the bake instead, with the same reason.
fn refused_at_start(config: TestConfig, reason: &str) {
    if support::baked() {
        match support::bake(&config, &TempDir::new()) {
            Ok(_) => panic!("scripts/bake baked a configuration it must refuse ({reason:?})"),
            Err(refusal) => assert!(
                refusal.contains(reason) && refusal.trim_end().lines().count() == 1,
                "expected one line with {reason:?}, got:\n{refusal}"
            ),
        }
        return;
    }
    let server = Server::start(config);
    let mut failures = Vec::new();
    for r in [server.get("/healthz"), server.validate(&token(&claims()))] {
        if r.status != 500 || r.json()["error"] != "server_misconfigured" {
            failures.push(format!(
                "expected 500 server_misconfigured: {} {}",
                r.status,
                r.text()
            ));
        }
    }
    if !server.stderr().wait_for(reason, Duration::from_secs(5)) {
        failures.push(format!(
            "stderr lacks {reason:?}:\n{}",
            server.stderr_text()
        ));
    }
    assert_no_failures(failures);
}

// ---------------------------------------------------------------------------------------------------
// A baked component (scripts/bake): configured once, before serving

/// The WASI 0.2 component under `JWTV_TEST_TARGET=wasm`, the one scripts/bake pre-initialises.
fn bakeable() -> bool {
    Target::from_env() == Target::Wasm && !support::wasi_p3()
}

#[test]
fn a_baked_component_answers_with_its_baked_keys_without_environment_or_files() {
    if !bakeable() {
        return;
    }
    let secret = "a-secret-baked-into-the-component-32b";
    let baked = TestConfig::new()
        .file("secret", format!("{secret}\n"))
        .env("JWT_SECRET_FILE", "{files}/secret");
    let server = Server::start_baked(baked, TestConfig::new());
    let r = server.validate(&jwt::hs256(secret.as_bytes(), &claims()));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["valid"], true, "{}", r.text());
    let r = server.validate(&token(&claims()));
    assert_eq!(r.json()["error"], "invalid_signature", "{}", r.text());
}

#[test]
fn a_baked_component_ignores_the_serving_environment() {
    if !bakeable() {
        return;
    }
    let baked = TestConfig::new().env("JWT_SECRET", SECRET);
    let serving = TestConfig::new().env("JWT_SECRET", "another-secret-given-only-when-serving");
    let server = Server::start_baked(baked, serving);
    let r = server.validate(&token(&claims()));
    assert_eq!(r.json()["valid"], true, "{}", r.text());
    let r = server.validate(&jwt::hs256(
        b"another-secret-given-only-when-serving",
        &claims(),
    ));
    assert_eq!(r.json()["error"], "invalid_signature", "{}", r.text());
}

/// The bake prints nothing (a stream opened then would be stale in every instance): each baked
/// instance prints the configuration's warnings at its first request instead.
#[test]
fn a_baked_component_prints_its_configuration_warnings_when_serving() {
    if !bakeable() {
        return;
    }
    let baked = TestConfig::new()
        .env("JWT_SECRET", "short-secret")
        .env("JWT_ALLOW_WEAK_SECRET", "1");
    let server = Server::start_baked(baked, TestConfig::new());
    assert_eq!(server.get("/healthz").status, 200);
    let warning = "jwt-validator: warning: JWT_SECRET: HMAC secret is 12 bytes";
    server.assert_logged(warning);
}

#[test]
fn an_unreachable_remote_key_set_or_a_misconfiguration_is_refused_by_the_bake_in_one_line() {
    if !bakeable() {
        return;
    }
    for (name, value, reason) in [
        // The bake fetches the key set to seed the baked component; unreachable, it refuses.
        (
            "JWT_JWKS_URI",
            "https://keys.invalid/jwks",
            "JWT_JWKS_URI: the key set to seed the baked component could not be fetched",
        ),
        (
            "JWT_SECRET",
            "short",
            "cannot bake: configuration error: JWT_SECRET: HMAC secret is 5 bytes",
        ),
    ] {
        let config = TestConfig::new().env(name, value);
        let refusal = support::bake(&config, &TempDir::new())
            .expect_err(&format!("{name}={value} was baked"));
        assert_eq!(refusal.trim_end().lines().count(), 1, "{refusal}");
        assert!(refusal.contains(reason), "{refusal}");
    }
}
