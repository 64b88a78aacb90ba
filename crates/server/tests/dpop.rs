//! DPoP (RFC 9449, issue 26) over real HTTP, against the native binary or the component under
//! `wasmtime serve` (`JWTV_TEST_TARGET`, see `support`): forward auth as a gateway reports the
//! request, `POST /validate` with the proof and the protected request in the body, the refusals and
//! their challenges, and the replay store (per process natively; per instance in the component).
//! The component checks proofs only when built with its `dpop` feature (`JWTV_COMPONENT_DPOP=1`);
//! the default build refuses every bound token, which `a_build_without_dpop_refuses_bound_tokens`
//! checks.

mod support;

use serde_json::{Value, json};
use support::contract::{ISSUER, claims, config, token};
use support::dpop::Client;
use support::{Response, Server, Target, TestConfig, dpop_supported, now};

const URL: &str = "https://api.example/orders";

fn bound(client: &Client) -> String {
    let mut c = claims();
    c["cnf"] = json!({"jkt": client.jkt()});
    token(&c)
}

/// `GET https://api.example/orders?page=2` as Traefik reports it to `/auth`.
fn auth(server: &Server, authorization: &str, proof: Option<&str>) -> Response {
    let mut headers = vec![
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "api.example"),
        ("X-Forwarded-Uri", "/orders?page=2"),
        ("Authorization", authorization),
    ];
    if let Some(proof) = proof {
        headers.push(("DPoP", proof));
    }
    server.request("GET", "/auth", &headers, b"")
}

fn validate(server: &Server, body: Value) -> Response {
    server.post_json("/validate", body.to_string().as_bytes())
}

#[track_caller]
fn assert_refused(r: &Response, code: &str, challenge_error: &str) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("x-auth-error"), Some(code), "{:?}", r.headers);
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("DPoP realm=")
            && challenge.contains(&format!("error=\"{challenge_error}\""))
            && challenge.contains("algs=\""),
        "{challenge}"
    );
}

#[test]
fn a_bound_token_with_its_proof_passes_forward_auth_es256_and_eddsa() {
    if !dpop_supported() {
        return;
    }
    let server = Server::start(config());
    for client in [Client::es256(), Client::ed25519()] {
        let t = bound(&client);
        let r = auth(
            &server,
            &format!("DPoP {t}"),
            Some(&client.proof(&t, "GET", URL)),
        );
        assert_eq!(r.status, 200, "{}: {}", client.alg, r.text());
        assert_eq!(r.header("x-auth-subject"), Some("alice"));
        assert_eq!(r.header("x-auth-issuer"), Some(ISSUER));
    }
}

/// Whether the replay store under test is one per server. Natively it is the process's. A component
/// instance remembers only the proofs it served, and which instance `wasmtime serve` hands a request
/// is the host's choice (with instance reuse, sequential requests usually but not always meet the
/// same one): the replay rules are then not something a test can pin (docs/dpop.md).
fn one_store() -> bool {
    Target::from_env() == Target::Native
}

// A build without DPoP checks (the component's default, for its size budget) never passes a bound
// token: DPoP is not a scheme there, and a bound token sent as bearer is refused.
#[test]
fn a_build_without_dpop_refuses_bound_tokens() {
    if dpop_supported() {
        return;
    }
    let server = Server::start(config());
    let client = Client::es256();
    let t = bound(&client);
    let proof = client.proof(&t, "GET", URL);
    let r = auth(&server, &format!("DPoP {t}"), Some(&proof));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("x-auth-error"), Some("missing_token"));
    let r = auth(&server, &format!("Bearer {t}"), Some(&proof));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("x-auth-error"), Some("invalid_token_binding"));
    let body = json!({"token": t, "dpop": proof, "method": "GET", "url": URL});
    assert_eq!(
        validate(&server, body).error_code().as_deref(),
        Some("invalid_token_binding")
    );
    assert_eq!(
        auth(&server, &format!("Bearer {}", token(&claims())), None).status,
        200
    );
}

// RFC 9449 §11.1.
#[test]
fn a_replayed_proof_is_refused() {
    if !dpop_supported() {
        return;
    }
    if !one_store() {
        return;
    }
    let server = Server::start(config());
    let client = Client::es256();
    let t = bound(&client);
    let proof = client.proof(&t, "GET", URL);
    assert_eq!(
        auth(&server, &format!("DPoP {t}"), Some(&proof)).status,
        200
    );
    let again = auth(&server, &format!("DPoP {t}"), Some(&proof));
    assert_refused(&again, "invalid_dpop_proof", "invalid_dpop_proof");
    // Through the other route too: one store for both.
    let body = json!({"token": t, "dpop": proof, "method": "GET", "url": URL});
    assert_eq!(validate(&server, body).status, 401);
}

// A proof that cannot be recorded is refused (fail closed), never let through.
#[test]
fn a_full_replay_store_refuses_new_proofs_with_503() {
    if !dpop_supported() {
        return;
    }
    if !one_store() {
        return;
    }
    let server = Server::start(config().env("JWT_DPOP_REPLAY_MAX_ENTRIES", "1"));
    let client = Client::es256();
    let t = bound(&client);
    let first = client.proof(&t, "GET", URL);
    assert_eq!(
        auth(&server, &format!("DPoP {t}"), Some(&first)).status,
        200
    );
    let second = client.proof(&t, "GET", URL);
    let r = auth(&server, &format!("DPoP {t}"), Some(&second));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("x-auth-error"), Some("replay_store_unavailable"));
    assert!(r.header("retry-after").is_some());
}

#[test]
fn each_failed_proof_check_is_401_invalid_dpop_proof() {
    if !dpop_supported() {
        return;
    }
    let server = Server::start(config());
    let client = Client::es256();
    let t = bound(&client);
    let stale = now() - 200;
    let cases = [
        ("wrong htm", client.proof(&t, "POST", URL)),
        (
            "wrong htu",
            client.proof(&t, "GET", "https://api.example/admin"),
        ),
        (
            "stale iat",
            client.proof_with(&t, "GET", URL, stale, |_| {}),
        ),
        (
            "future iat",
            client.proof_with(&t, "GET", URL, now() + 600, |_| {}),
        ),
        ("wrong ath", client.proof(&token(&claims()), "GET", URL)),
        (
            "no jti",
            client.proof_with(&t, "GET", URL, now(), |c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
    ];
    for (case, proof) in cases {
        let r = auth(&server, &format!("DPoP {t}"), Some(&proof));
        assert_eq!(r.status, 401, "{case}: {}", r.text());
        assert_refused(&r, "invalid_dpop_proof", "invalid_dpop_proof");
    }
    // Signed by another key than the one the token is bound to.
    let thief = Client::es256();
    let r = auth(
        &server,
        &format!("DPoP {t}"),
        Some(&thief.proof(&t, "GET", URL)),
    );
    assert_refused(&r, "invalid_token_binding", "invalid_token");
    // No proof at all.
    let r = auth(&server, &format!("DPoP {t}"), None);
    assert_refused(&r, "invalid_dpop_proof", "invalid_dpop_proof");
}

// RFC 9449 §7.1: a DPoP-bound token is not a bearer token.
#[test]
fn a_bound_token_sent_as_bearer_is_refused() {
    if !dpop_supported() {
        return;
    }
    let server = Server::start(config());
    let client = Client::es256();
    let t = bound(&client);
    let r = auth(
        &server,
        &format!("Bearer {t}"),
        Some(&client.proof(&t, "GET", URL)),
    );
    assert_refused(&r, "invalid_token_binding", "invalid_token");
    let r = server.validate(&t);
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code().as_deref(), Some("invalid_token_binding"));
}

#[test]
fn required_refuses_bearer_tokens_and_off_refuses_bound_ones() {
    if !dpop_supported() {
        return;
    }
    let required = Server::start(config().env("JWT_DPOP", "required"));
    let r = auth(&required, &format!("Bearer {}", token(&claims())), None);
    assert_refused(&r, "invalid_token_binding", "invalid_token");
    let r = required.request("GET", "/auth", &[], b"");
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|c| c.starts_with("DPoP realm="))
    );

    let off = Server::start(config().env("JWT_DPOP", "off"));
    let client = Client::es256();
    let t = bound(&client);
    let r = auth(
        &off,
        &format!("Bearer {t}"),
        Some(&client.proof(&t, "GET", URL)),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-auth-error"), Some("invalid_token_binding"));
    assert!(
        r.header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer realm="))
    );
    let r = auth(&off, &format!("Bearer {}", token(&claims())), None);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn validate_checks_the_proof_against_the_request_in_the_body() {
    if !dpop_supported() {
        return;
    }
    let server = Server::start(config());
    let client = Client::ed25519();
    let t = bound(&client);
    let body =
        json!({"token": t, "dpop": client.proof(&t, "GET", URL), "method": "GET", "url": URL});
    let r = validate(&server, body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["claims"]["cnf"]["jkt"], client.jkt());
    // The token as Authorization: DPoP, the proof in the DPoP header.
    let proof = client.proof(&t, "DELETE", URL);
    let body = json!({"method": "DELETE", "url": "https://API.example:443/orders?x=1"});
    let r = server.request(
        "POST",
        "/validate",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("DPoP {t}")),
            ("DPoP", &proof),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The body's request is not the proof's.
    let body =
        json!({"token": t, "dpop": client.proof(&t, "GET", URL), "method": "PUT", "url": URL});
    let r = validate(&server, body);
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code().as_deref(), Some("invalid_dpop_proof"));
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("DPoP "), "{challenge}");
}

#[test]
fn a_window_setting_shortens_how_old_a_proof_may_be() {
    if !dpop_supported() {
        return;
    }
    let server = Server::start(config().env("JWT_DPOP_WINDOW", "5").env("JWT_LEEWAY", "0"));
    let client = Client::es256();
    let t = bound(&client);
    let old = client.proof_with(&t, "GET", URL, now() - 30, |_| {});
    let r = auth(&server, &format!("DPoP {t}"), Some(&old));
    assert_refused(&r, "invalid_dpop_proof", "invalid_dpop_proof");
}

/// `JWT_DPOP_ALGORITHMS` narrows the proof algorithms: a proof in another one is refused, and the
/// challenge names only the listed ones (RFC 9449 §7.1 `algs`).
#[test]
fn an_algorithm_list_narrows_what_proofs_may_be_signed_with() {
    if !dpop_supported() {
        return;
    }
    let server = Server::start(config().env("JWT_DPOP_ALGORITHMS", "EdDSA"));
    let (es256, ed25519) = (Client::es256(), Client::ed25519());
    let t = bound(&es256);
    let r = auth(
        &server,
        &format!("DPoP {t}"),
        Some(&es256.proof(&t, "GET", URL)),
    );
    assert_refused(&r, "invalid_dpop_proof", "invalid_dpop_proof");
    assert!(
        r.header("www-authenticate")
            .unwrap_or_default()
            .contains("algs=\"EdDSA\""),
        "{:?}",
        r.headers
    );
    let t = bound(&ed25519);
    let r = auth(
        &server,
        &format!("DPoP {t}"),
        Some(&ed25519.proof(&t, "GET", URL)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The configuration check stops the start on a bad mode, naming the variable.
#[test]
fn a_bad_dpop_mode_stops_the_start() {
    let exited = support::run_to_exit(
        &TestConfig::new()
            .env("JWT_SECRET", support::contract::SECRET)
            .env("JWT_DPOP", "sometimes"),
        &[],
        std::time::Duration::from_secs(60),
    );
    assert!(
        exited
            .stderr
            .contains("JWT_DPOP: \"sometimes\" is not a DPoP mode"),
        "{}",
        exited.stderr
    );
}
