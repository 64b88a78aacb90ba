//! `jwt-validator explain`: its verdict is the service's on every token of the HTTP contract suite
//! (the same list, `support::contract`), its text names the failing check and never shows the
//! signature, and its exit status says valid (0), refused (1) or configuration error (2).
//!
//! These run the native binary whatever `JWTV_TEST_TARGET` says: `explain` is a command of the binary.

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::contract::{accepted_token_cases, claims, config, rejected_token_cases, token, with};
use support::keyserver::{JWKS_PATH, KeyServer, Mode, TestJwk, jwks};
use support::{Server, Target, TestConfig, assert_no_failures, binary, now, run_to_exit};

const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

fn explain_json(config: &TestConfig, token: &str) -> (Option<i32>, Value) {
    let exited = run_to_exit(config, &["explain", "--json", token], EXIT_TIMEOUT);
    let report = serde_json::from_str(&exited.stdout).unwrap_or_else(|e| {
        panic!(
            "explain --json printed no JSON ({e}): {}\nstderr: {}",
            exited.stdout, exited.stderr
        )
    });
    (exited.status.code(), report)
}

#[test]
fn explain_agrees_with_the_service_on_every_contract_token() {
    let server = Server::start_on(Target::Native, config());
    let mut cases: Vec<(&str, String, Option<&str>)> = rejected_token_cases()
        .into_iter()
        .map(|(name, token, code)| (name, token, Some(code)))
        .collect();
    cases.extend(
        accepted_token_cases()
            .into_iter()
            .map(|(name, token)| (name, token, None)),
    );
    cases.push(("the untouched token", token(&claims()), None));

    let mut failures = Vec::new();
    for (name, token, code) in &cases {
        let answer = server.validate(token);
        let served_code = answer.error_code();
        let (exit, report) = explain_json(&config(), token);
        let explained_status = report["validate"]["status"].as_u64();
        let explained_code = report["validate"]["body"]["error"].as_str();
        if explained_status != Some(u64::from(answer.status))
            || explained_code != served_code.as_deref()
            || explained_code != *code
        {
            failures.push(format!(
                "{name}: served {} {served_code:?}, explained {explained_status:?} \
                 {explained_code:?}, contract {code:?}",
                answer.status
            ));
        }
        let valid = answer.status == 200;
        if exit != Some(if valid { 0 } else { 1 }) || report["valid"] != valid {
            failures.push(format!("{name}: exit {exit:?}, valid {}", report["valid"]));
        }
        // The traced checks tell the same story: all pass, or the one that failed carries the code.
        let checks = report["checks"].as_array().cloned().unwrap_or_default();
        let failed: Vec<&Value> = checks.iter().filter(|c| c["result"] == "fail").collect();
        let consistent = match code {
            None => checks.iter().all(|c| c["result"] == "pass"),
            Some(code) => failed.len() == 1 && failed[0]["code"] == *code,
        };
        if !consistent {
            failures.push(format!("{name}: checks {checks:?}"));
        }
        // The /auth answer is the service's too.
        let auth = &report["auth"];
        if auth["status"].as_u64().is_some_and(|s| (s == 200) != valid) {
            failures.push(format!("{name}: /auth {auth}"));
        }
    }
    assert_no_failures(failures);
}

#[test]
fn the_text_names_the_failing_check_with_relative_times_and_hides_the_signature() {
    let expired = token(&with(claims(), "exp", serde_json::json!(now() - 3600)));
    let exited = run_to_exit(&config(), &["explain", &expired], EXIT_TIMEOUT);
    assert_eq!(exited.status.code(), Some(1), "{}", exited.stderr);
    let text = exited.stdout;
    let signature = expired.rsplit('.').next().unwrap();
    assert!(!text.contains(signature), "the signature is shown:\n{text}");
    for expected in [
        "pass  signature",
        "FAIL  exp",
        "token_expired",
        "1h 0m ago, leeway 60 s",
        "not reached",
        "POST /validate  401 token_expired",
        "GET  /auth      401 token_expired",
        "\"https://issuer.test\"",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
}

#[test]
fn a_token_read_from_stdin_is_explained_and_valid_exits_0() {
    let config = config();
    let mut child = Command::new(binary())
        .args(["explain", "-"])
        .env_clear()
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jwt-validator");
    let token = format!("{}\n", token(&claims()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let Some(status) = support::wait_timeout(&mut child, EXIT_TIMEOUT) else {
        let _ = child.kill();
        panic!("explain still running after {EXIT_TIMEOUT:?}");
    };
    let output = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("verdict    valid"), "{text}");
}

// Issue 24: explain sends the token by the first configured source and says which one the service
// took it from, and gives the rule's verdict.
#[test]
fn explain_shows_the_token_source_and_the_rule_verdict() {
    let config = config()
        .env("JWT_TOKEN_SOURCES", "cookie:session,bearer")
        .env("JWT_RULE", "claims.sub == 'alice'");
    let (exit, report) = explain_json(&config, &token(&claims()));
    assert_eq!(exit, Some(0), "{report}");
    assert_eq!(report["auth"]["source"], "cookie:session", "{report}");
    assert_eq!(report["rule"]["verdict"], "pass", "{report}");
    let bob = token(&with(claims(), "sub", serde_json::json!("bob")));
    let exited = run_to_exit(&config, &["explain", &bob], EXIT_TIMEOUT);
    assert_eq!(exited.status.code(), Some(1), "{}", exited.stderr);
    for expected in [
        "GET  /auth      403 rule_failed (token from cookie:session)",
        "rule       claims.sub == 'alice': fail",
        "POST /validate  403 rule_failed",
    ] {
        assert!(
            exited.stdout.contains(expected),
            "{expected:?} missing from:\n{}",
            exited.stdout
        );
    }
    let (_, report) = explain_json(
        &config.env("JWT_RULE", "'x' in claims.groups"),
        &token(&claims()),
    );
    assert_eq!(report["rule"]["verdict"], "error", "{report}");
}

// Issue 26: explain says what the token is bound to and, given a proof, each proof check.
#[test]
fn explain_shows_the_binding_and_each_dpop_proof_check() {
    let client = support::dpop::Client::es256();
    let bound = token(&with(
        claims(),
        "cnf",
        serde_json::json!({"jkt": client.jkt()}),
    ));
    let (exit, report) = explain_json(&config(), &bound);
    assert_eq!(exit, Some(1), "{report}");
    assert_eq!(report["dpop"]["binding"], "dpop (cnf.jkt)", "{report}");
    assert_eq!(report["dpop"]["bound_to"], client.jkt().as_str());
    assert_eq!(
        report["validate"]["body"]["error"], "invalid_token_binding",
        "{report}"
    );
    let url = "https://api.example/orders";
    let proof = client.proof(&bound, "GET", url);
    let args = ["explain", "--json", "--dpop", &proof, "--url", url, &bound];
    let exited = run_to_exit(&config(), &args, EXIT_TIMEOUT);
    let report: Value = serde_json::from_str(&exited.stdout).expect(&exited.stderr);
    assert_eq!(exited.status.code(), Some(0), "{report}");
    let checks = report["dpop"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 11);
    assert!(checks.iter().all(|c| c["result"] == "pass"), "{report}");
    assert_eq!(report["dpop"]["validate"]["status"], 200);
    // A proof for another method: the htm check fails, the ones after it are not reached.
    let args = [
        "explain", "--dpop", &proof, "--method", "POST", "--url", url, &bound,
    ];
    let exited = run_to_exit(&config(), &args, EXIT_TIMEOUT);
    assert_eq!(exited.status.code(), Some(1), "{}", exited.stderr);
    for expected in [
        "binding    dpop (cnf.jkt)",
        "  pass  signature",
        "  FAIL  htm             invalid_dpop_proof: DPoP proof htm does not match",
        "  -     htu             not reached",
        "POST /validate with the proof  401 invalid_dpop_proof",
        "verdict    refused (invalid_dpop_proof)",
    ] {
        assert!(
            exited.stdout.contains(expected),
            "{expected:?} missing from:\n{}",
            exited.stdout
        );
    }
}

#[test]
fn a_configuration_error_exits_2_with_one_line() {
    let config = config().env("JWT_LEEWAY", "soon");
    let exited = run_to_exit(&config, &["explain", "a.b.c"], EXIT_TIMEOUT);
    assert_eq!(exited.status.code(), Some(2));
    assert_eq!(exited.stderr.lines().count(), 1, "{}", exited.stderr);
    assert!(exited.stderr.contains("JWT_LEEWAY"), "{}", exited.stderr);
    assert!(exited.stdout.is_empty());
}

#[test]
fn a_remote_key_set_is_fetched_once_and_an_unreachable_one_is_reported() {
    let key = TestJwk::es256("k1");
    let keys = KeyServer::start(jwks(&[&key]));
    let config = |uri: &str| {
        TestConfig::new()
            .env("JWT_ISSUER", "https://issuer.test")
            .env("JWT_JWKS_URI", uri)
            .env("JWT_ALLOW_HTTP_LOOPBACK", "true")
            .env("JWT_FETCH_TIMEOUT", "1")
    };
    let token = key.token(&serde_json::json!({"iss": "https://issuer.test", "exp": now() + 600}));

    let (exit, report) = explain_json(&config(&keys.url(JWKS_PATH)), &token);
    assert_eq!(exit, Some(0), "{report}");
    assert_eq!(report["key"]["kid"], "k1");
    assert_eq!(keys.requests(JWKS_PATH), 1);

    keys.set_mode(Mode::Down);
    let (exit, report) = explain_json(&config(&keys.url(JWKS_PATH)), &token);
    assert_eq!(exit, Some(1), "{report}");
    assert_eq!(report["validate"]["status"], 503, "{report}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("not fetched"), "{report}");
}

// Issue 26: a certificate-bound token is explained with what it needs and where this deployment
// reads the certificate; explain presents none, so both answers refuse it.
#[test]
fn explain_shows_a_certificate_binding_and_where_the_certificate_is_read() {
    let bound = token(&with(
        claims(),
        "cnf",
        serde_json::json!({"x5t#S256": "A".repeat(43)}),
    ));
    let config = config().env("JWT_CLIENT_CERT_SOURCE", "header:X-SSL-Client-Cert:pem");
    let exited = run_to_exit(&config, &["explain", &bound], EXIT_TIMEOUT);
    assert_eq!(exited.status.code(), Some(1), "{}", exited.stderr);
    for expected in [
        "binding    mtls (cnf.x5t#S256): needs the client certificate cnf.x5t#S256 names; checked against the certificate in header x-ssl-client-cert",
        "(DPoP allowed): certificate-bound: needs the client certificate cnf.x5t#S256 names, not a DPoP proof",
        "POST /validate  401 invalid_token_binding",
        "GET  /auth      401 invalid_token_binding",
    ] {
        assert!(
            exited.stdout.contains(expected),
            "{expected:?} missing from:\n{}",
            exited.stdout
        );
    }
}
