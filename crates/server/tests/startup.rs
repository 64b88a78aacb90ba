//! The native binary's start and stop: a bad configuration stops the start with ONE line on stderr
//! naming what is wrong and where; SIGTERM shuts down cleanly; `--help`, `--demo`, `check-config`.
//!
//! These run the native binary whatever `JWTV_TEST_TARGET` says: they test the process, not the HTTP
//! contract (the component reports configuration errors through its host).

mod support;

use base64::Engine as _;
use serde_json::json;
use std::time::Duration;
use support::jwt::{self, TestKey};
use support::{Exited, Server, Target, TestConfig, free_port, run_to_exit, workspace_root};

const SECRET: &str = "startup-test-secret-0123456789abcdefghijklmnop";
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

fn good_env() -> TestConfig {
    TestConfig::new().env("JWT_SECRET", SECRET)
}

fn claims() -> serde_json::Value {
    json!({"sub": "alice", "iat": support::now(), "exp": support::now() + 600})
}

/// Runs the binary, which must refuse to start: non-zero exit, exactly one line on stderr that names
/// every string of `culprits` (each given as alternatives).
fn assert_refused(config: &TestConfig, args: &[&str], culprits: &[&[&str]]) -> Exited {
    let exited = run_to_exit(config, args, EXIT_TIMEOUT);
    let context = format!(
        "env {:?} args {args:?}\n--- stderr ---\n{}",
        config.env, exited.stderr
    );
    // `--help`, EXIT STATUS: 2 for a configuration or usage error.
    assert_eq!(
        exited.status.code(),
        Some(2),
        "expected exit status 2 for a bad configuration: {context}"
    );
    assert!(
        !exited.stdout.contains("listening on"),
        "it listened before refusing: {context}\n--- stdout ---\n{}",
        exited.stdout
    );
    let lines: Vec<&str> = exited
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "the refusal must be one line on stderr: {context}"
    );
    for alternatives in culprits {
        assert!(
            alternatives.iter().any(|c| lines[0].contains(c)),
            "the message must name {alternatives:?}: {context}"
        );
    }
    exited
}

#[test]
fn no_key_at_all_is_refused() {
    assert_refused(&TestConfig::new(), &[], &[&["JWT_SECRET"]]);
    // Policy without keys is still no key.
    assert_refused(
        &TestConfig::new().env("JWT_ISSUER", "https://issuer.test"),
        &[],
        &[&["JWT_SECRET"]],
    );
}

#[test]
fn a_secret_shorter_than_32_bytes_is_refused_without_being_shown() {
    let short = "only-31-bytes-of-secret-0123456";
    assert_eq!(short.len(), 31);
    let exited = assert_refused(
        &TestConfig::new().env("JWT_SECRET", short),
        &[],
        &[&["JWT_SECRET"]],
    );
    assert!(
        !exited.stderr.contains(short),
        "the refusal shows the secret: {}",
        exited.stderr
    );
    // Exactly 32 bytes is enough for HS256.
    let server = Server::start_on(
        Target::Native,
        TestConfig::new().env("JWT_SECRET", "k".repeat(32)),
    );
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn a_weak_secret_starts_with_the_explicit_override_and_warns() {
    let weak = "weak-secret-16by";
    let server = Server::start_on(
        Target::Native,
        TestConfig::new()
            .env("JWT_SECRET", weak)
            .env("JWT_ALLOW_WEAK_SECRET", "1"),
    );
    assert!(
        server
            .stderr()
            .wait_for("JWT_SECRET", Duration::from_secs(5))
            || server.stderr_text().to_ascii_lowercase().contains("weak"),
        "no warning on stderr about the weak secret: {:?}",
        server.stderr_text()
    );
    let token = jwt::hs256(weak.as_bytes(), &claims());
    let r = server.validate(&token);
    assert_eq!(r.status, 200, "{}", r.text());
    server.assert_not_logged(weak);
    server.assert_not_logged(&token);
}

#[test]
fn a_non_numeric_leeway_is_refused() {
    assert_refused(
        &good_env().env("JWT_LEEWAY", "soon"),
        &[],
        &[&["JWT_LEEWAY"]],
    );
    assert_refused(&good_env().env("JWT_LEEWAY", "-5"), &[], &[&["JWT_LEEWAY"]]);
}

#[test]
fn alg_none_cannot_be_enabled() {
    assert_refused(
        &good_env().env("JWT_ALGORITHMS", "none"),
        &[],
        &[&["JWT_ALGORITHMS"]],
    );
    assert_refused(
        &good_env().env("JWT_ALGORITHMS", "HS256,none"),
        &[],
        &[&["JWT_ALGORITHMS"]],
    );
    assert_refused(
        &good_env().env("JWT_ALGORITHMS", "HS257"),
        &[],
        &[&["JWT_ALGORITHMS"]],
    );
}

#[test]
fn a_toml_file_with_an_unknown_field_is_refused_naming_file_and_line() {
    let toml = "# jwt-validator test configuration\n\nno_such_option = true\n";
    let config = good_env().file("bad-config.toml", toml.as_bytes());
    assert_refused(
        &config,
        &["--config", "{files}/bad-config.toml"],
        &[&["bad-config.toml"], &["line 3", ":3:", ":3 "]],
    );
    let config = config.env("JWT_CONFIG", "{files}/bad-config.toml");
    assert_refused(
        &config,
        &[],
        &[&["bad-config.toml"], &["line 3", ":3:", ":3 "]],
    );
}

#[test]
fn a_missing_jwks_file_is_refused() {
    let config = TestConfig::new().env("JWT_JWKS_FILE", "{files}/no-such-jwks.json");
    assert_refused(&config, &[], &[&["no-such-jwks.json"]]);
}

#[test]
fn an_ec_key_off_its_curve_is_refused() {
    // The P-256 test key with one bit of y flipped: no longer a point on the curve.
    let point = TestKey::P256.public_key_bytes();
    assert_eq!((point.len(), point[0]), (65, 4), "uncompressed P-256 point");
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let x = b64(&point[1..33]);
    let mut y = point[33..].to_vec();
    let good = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": b64(&y), "kid": "p256", "alg": "ES256"}]});
    y[31] ^= 1;
    let bad = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": b64(&y), "kid": "off-curve", "alg": "ES256"}]});

    // Control: the untouched key loads and verifies.
    let server = Server::start_on(
        Target::Native,
        TestConfig::new()
            .file("jwks.json", good.to_string())
            .env("JWT_JWKS_FILE", "{files}/jwks.json"),
    );
    let token = jwt::signed_token(
        TestKey::P256,
        "ES256",
        r#"{"alg":"ES256","kid":"p256"}"#,
        &claims().to_string(),
    );
    assert_eq!(
        server.validate(&token).status,
        200,
        "control: the valid P-256 key"
    );
    drop(server);

    let config = TestConfig::new()
        .file("jwks.json", bad.to_string())
        .env("JWT_JWKS_FILE", "{files}/jwks.json");
    assert_refused(
        &config,
        &[],
        &[&["jwks.json", "JWT_JWKS_FILE", "off-curve"]],
    );
}

#[test]
fn sigterm_exits_0() {
    let server = Server::start_on(Target::Native, good_env());
    assert_eq!(server.get("/healthz").status, 200);
    let status = server.terminate(Duration::from_secs(10));
    let status = status.expect("still running 10 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status:?}");
}

#[test]
fn jwt_listen_is_honoured() {
    let server = Server::start_on(Target::Native, good_env().env("JWT_LISTEN", "127.0.0.1:0"));
    assert!(server.addr.ip().is_loopback());
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn help_documents_every_environment_variable() {
    let exited = run_to_exit(&TestConfig::new(), &["--help"], EXIT_TIMEOUT);
    assert!(exited.status.success(), "--help: {exited:?}");
    let help = exited.stdout + &exited.stderr;
    // Every variable of the settings table, the shell's own (log format, listen address) included.
    let missing: Vec<&str> = jwtv_config::table::SETTINGS
        .iter()
        .filter_map(|row| row.env)
        .filter(|v| !help.contains(v))
        .collect();
    assert!(missing.is_empty(), "--help does not mention {missing:?}");
}

/// Issue 22, item 7: the summary tells the address in effect, not the configuration's default.
#[test]
fn listen_flag_is_the_address_the_summary_names() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let server = Server::start_on(
        Target::Native,
        good_env().arg("--listen").arg(address.as_str()),
    );
    let stderr = server.stderr();
    assert!(
        stderr.wait_for(&format!("listen {address}"), Duration::from_secs(5)),
        "the summary does not name {address}: {}",
        server.stderr_text()
    );
    assert!(
        !server.stderr_text().contains("listen 0.0.0.0:3000"),
        "the summary names the default address: {}",
        server.stderr_text()
    );
}

/// Issue 22: a mistyped variable must not start the service as if it were unset, without a word.
#[test]
fn mistyped_variable_is_warned_naming_the_known_one() {
    let server = Server::start_on(Target::Native, good_env().env("JWT_AUDIENCES", "api"));
    server
        .assert_logged("JWT_AUDIENCES is not a setting and is ignored: did you mean JWT_AUDIENCE?");
}

/// `docs/configuration.md` is what `config-reference` prints (the committed file is compared with the
/// table in `crates/config/tests/reference.rs`).
#[test]
fn config_reference_prints_the_committed_reference() {
    let exited = run_to_exit(&TestConfig::new(), &["config-reference"], EXIT_TIMEOUT);
    assert!(exited.status.success(), "config-reference: {exited:?}");
    let committed = std::fs::read_to_string(workspace_root().join("docs/configuration.md"))
        .expect("docs/configuration.md");
    assert!(
        exited.stdout == committed,
        "docs/configuration.md differs from `jwt-validator config-reference`; regenerate it with \
         `jwt-validator config-reference > docs/configuration.md`"
    );
}

#[test]
fn check_config_accepts_a_good_configuration_and_refuses_a_bad_one() {
    let ok = run_to_exit(&good_env(), &["check-config"], EXIT_TIMEOUT);
    assert!(
        ok.status.success(),
        "check-config on a good configuration: {ok:?}"
    );
    assert_refused(
        &good_env().env("JWT_LEEWAY", "soon"),
        &["check-config"],
        &[&["JWT_LEEWAY"]],
    );
}

/// `check-config` says what a token must be, defaults included, and warns when an identity provider's
/// keys are trusted for any audience (its tokens for other applications would pass).
#[test]
fn check_config_states_the_effective_policy_and_warns_without_audience() {
    let remote = TestConfig::new()
        .env("JWT_ISSUER", "https://idp.example.com")
        .env("JWT_OIDC_DISCOVERY", "true");
    let ok = run_to_exit(&remote, &["check-config"], EXIT_TIMEOUT);
    assert!(ok.status.success(), "{ok:?}");
    for line in [
        "policy for tokens from \"https://idp.example.com\":",
        "  iss must be exactly \"https://idp.example.com\".",
        "  Any audience is accepted — warning: ",
        "  typ must be one of JWT, at+jwt, or absent",
        "  exp is required; exp, nbf and iat are checked with 60 s of leeway.",
        "warning: issuer \"https://idp.example.com\": keys fetched from \
         https://idp.example.com/.well-known/openid-configuration but no audience configured",
    ] {
        assert!(
            ok.stdout.lines().any(|l| l.starts_with(line)),
            "no line starting {line:?} in:\n{}",
            ok.stdout
        );
    }
    let strict = remote.env("JWT_AUDIENCE", "api").env("JWT_TYPES", "at+jwt");
    let ok = run_to_exit(&strict, &["check-config"], EXIT_TIMEOUT);
    assert!(ok.status.success(), "{ok:?}");
    assert!(ok.stdout.contains("  aud must be \"api\""), "{}", ok.stdout);
    assert!(
        ok.stdout.contains("  typ must be at+jwt and is required"),
        "{}",
        ok.stdout
    );
    assert!(!ok.stdout.contains("warning"), "{}", ok.stdout);
}

#[test]
fn demo_prints_a_curl_whose_token_is_valid() {
    let server = Server::start_on(Target::Native, TestConfig::new().arg("--demo"));
    assert!(
        server.stdout().wait_for("curl", Duration::from_secs(5)),
        "--demo printed no curl line: {:?}",
        server.stdout_text()
    );
    let out = server.stdout_text();
    let curl = out.lines().find(|l| l.contains("curl")).unwrap();
    assert!(
        curl.contains(&server.addr.port().to_string()),
        "the curl targets the real port {}: {curl}",
        server.addr
    );
    let start = curl
        .find("eyJ")
        .unwrap_or_else(|| panic!("no token in {curl}"));
    let token: String = curl[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let r = server.validate(&token);
    assert_eq!(r.status, 200, "the demo token: {}", r.text());
}

#[test]
fn mint_prints_a_token_the_service_accepts() {
    let config = good_env()
        .env("JWT_ISSUER", "https://issuer.test")
        .env("JWT_AUDIENCE", "api");
    let exited = run_to_exit(
        &config,
        &["mint", "--sub", "alice", "--claim", "tenant=7"],
        EXIT_TIMEOUT,
    );
    assert!(exited.status.success(), "mint: {exited:?}");
    let token = exited.stdout.trim();
    assert_eq!(
        token.matches('.').count(),
        2,
        "mint prints only the token: {:?}",
        exited.stdout
    );
    let server = Server::start_on(Target::Native, config);
    let r = server.validate(token);
    assert_eq!(r.status, 200, "{}", r.text());
    let claims = &r.json()["claims"];
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], "https://issuer.test");
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["tenant"], 7);
    // A token minted with another secret is refused by this server.
    let other = run_to_exit(
        &TestConfig::new()
            .env(
                "JWT_SECRET",
                "a-different-secret-0123456789abcdefghijklmnop",
            )
            .env("JWT_ISSUER", "https://issuer.test")
            .env("JWT_AUDIENCE", "api"),
        &["mint"],
        EXIT_TIMEOUT,
    );
    let r = server.validate(other.stdout.trim());
    assert_eq!(r.status, 401, "{}", r.text());
}
