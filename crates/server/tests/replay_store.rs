//! The shared DPoP replay store (issue 26 item 4) against a real `redis-server` started here: a proof
//! used once passes and its replay is refused, on one replica or another sharing the store; the key
//! is namespaced and forgotten with the proof's window; the store down refuses (fail closed, 503
//! `replay_store_unavailable`) or, when configured so, allows; the store restarted is used again
//! without a restart of ours. And what the native binary does at start with the store up, down, or
//! behind a password.
//!
//! Native only: the component and the filter keep their replay cache in their own host.

mod support;

use std::time::Duration;

use serde_json::json;
use support::dpop::Client;
use support::redis::RedisServer;
use support::{Response, Server, Target, TestConfig, free_port, jwt, now, run_to_exit};

const SECRET: &str = "replay-store-test-secret-0123456789abcdefghij";
const URL: &str = "https://api.example/orders";
/// The service's defaults: the proof window (60 s) plus the issuer's leeway (60 s).
const WINDOW_AND_LEEWAY_SECS: u64 = 120;

fn config() -> TestConfig {
    TestConfig::new().env("JWT_SECRET", SECRET)
}

/// A replica whose replay store is `redis`.
fn replica(redis: &RedisServer) -> Server {
    Server::start_on(
        Target::Native,
        config().env("JWT_DPOP_REPLAY_STORE", redis.url(0)),
    )
}

/// An HS256 access token bound to `client`'s key.
fn bound_token(client: &Client) -> String {
    jwt::hs256(
        SECRET.as_bytes(),
        &json!({"sub": "alice", "exp": now() + 600, "cnf": {"jkt": client.jkt()}}),
    )
}

/// `POST /validate` with the token, the proof and the protected request in the body.
fn validate_body(token: &str, proof: &str, method: &str, url: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"token": token, "dpop": proof, "method": method, "url": url}))
        .expect("json")
}

fn send(server: &Server, token: &str, proof: &str) -> Response {
    server.post_json("/validate", &validate_body(token, proof, "GET", URL))
}

fn assert_answer(response: &Response, status: u16, code: Option<&str>) {
    assert_eq!(
        (response.status, response.error_code().as_deref()),
        (status, code),
        "{}",
        response.text()
    );
}

// RFC 9449 §11.1, across replicas: the jti a proof carries is accepted once by the whole deployment.
#[test]
fn proof_used_on_one_replica_is_refused_on_another() {
    let redis = RedisServer::start();
    let (a, b) = (replica(&redis), replica(&redis));
    let client = Client::es256();
    let token = bound_token(&client);
    let proof = client.proof(&token, "GET", URL);
    assert_answer(&send(&a, &token, &proof), 200, None);
    assert_answer(&send(&b, &token, &proof), 401, Some("invalid_dpop_proof"));
    assert_answer(&send(&a, &token, &proof), 401, Some("invalid_dpop_proof"));
    // A new proof of the same client is a first use on either replica.
    assert_answer(
        &send(&b, &token, &client.proof(&token, "GET", URL)),
        200,
        None,
    );
}

#[test]
fn without_a_shared_store_each_replica_remembers_only_its_own_proofs() {
    // The default (memory): what the shared store is for.
    let (a, b) = (
        Server::start_on(Target::Native, config()),
        Server::start_on(Target::Native, config()),
    );
    let client = Client::es256();
    let token = bound_token(&client);
    let proof = client.proof(&token, "GET", URL);
    assert_answer(&send(&a, &token, &proof), 200, None);
    assert_answer(&send(&a, &token, &proof), 401, Some("invalid_dpop_proof"));
    assert_answer(&send(&b, &token, &proof), 200, None);
}

#[test]
fn proofs_are_kept_under_a_namespaced_key_for_their_window_only() {
    let redis = RedisServer::start();
    let server = replica(&redis);
    let client = Client::es256();
    let token = bound_token(&client);
    let proof = client.proof(&token, "GET", URL);
    assert_answer(&send(&server, &token, &proof), 200, None);
    let keys = redis.keys(0, "*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let hash = keys[0]
        .strip_prefix("jwtv:dpop:")
        .unwrap_or_else(|| panic!("{keys:?}"));
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash}"
    );
    // Neither the jti nor the proof is kept in clear.
    assert!(!proof.contains(hash));
    let ttl_ms: u64 = redis.cli(0, &["PTTL", &keys[0]]).parse().expect("PTTL");
    assert!(
        ttl_ms > 0 && ttl_ms <= (WINDOW_AND_LEEWAY_SECS + 1) * 1000,
        "kept {ttl_ms} ms"
    );
}

// Fail closed (issue 26 item 4): a proof whose first use cannot be recorded could be replayed.
#[test]
fn store_down_refuses_proofs_with_the_store_error_code() {
    let mut redis = RedisServer::start();
    let server = replica(&redis);
    let client = Client::es256();
    let token = bound_token(&client);
    redis.stop();
    let response = send(&server, &token, &client.proof(&token, "GET", URL));
    assert_answer(&response, 503, Some("replay_store_unavailable"));
    // The answer does not tell the client where the store is; the log does.
    assert!(
        !response.text().contains("127.0.0.1"),
        "{}",
        response.text()
    );
    server.assert_logged("DPoP replay store error");
    // A bearer token without a binding needs no store.
    let bearer = jwt::hs256(
        SECRET.as_bytes(),
        &json!({"sub": "bob", "exp": now() + 600}),
    );
    assert_answer(&server.validate(&bearer), 200, None);
}

#[test]
fn store_down_with_allow_lets_proofs_through() {
    let mut redis = RedisServer::start();
    let server = Server::start_on(
        Target::Native,
        config()
            .env("JWT_DPOP_REPLAY_STORE", redis.url(0))
            .env("JWT_DPOP_REPLAY_ON_STORE_ERROR", "allow"),
    );
    let client = Client::es256();
    let token = bound_token(&client);
    redis.stop();
    let proof = client.proof(&token, "GET", URL);
    assert_answer(&send(&server, &token, &proof), 200, None);
    // The documented risk: while the store is down, a replay passes too.
    assert_answer(&send(&server, &token, &proof), 200, None);
}

#[test]
fn store_restarted_is_used_again_without_a_restart_of_ours() {
    let mut redis = RedisServer::start();
    let server = replica(&redis);
    let client = Client::es256();
    let token = bound_token(&client);
    assert_answer(
        &send(&server, &token, &client.proof(&token, "GET", URL)),
        200,
        None,
    );
    redis.stop();
    let response = send(&server, &token, &client.proof(&token, "GET", URL));
    assert_answer(&response, 503, Some("replay_store_unavailable"));
    redis.restart();
    let proof = client.proof(&token, "GET", URL);
    assert_answer(&send(&server, &token, &proof), 200, None);
    assert_answer(
        &send(&server, &token, &proof),
        401,
        Some("invalid_dpop_proof"),
    );
}

#[test]
fn reachable_store_at_start_is_named_in_the_logs() {
    let redis = RedisServer::start();
    let server = Server::start_on(
        Target::Native,
        config().env("JWT_DPOP_REPLAY_STORE", redis.url(2)),
    );
    let url = format!("redis://127.0.0.1:{}/2", redis.port);
    server.assert_logged("DPoP replay store reachable");
    assert!(
        server.stderr_text().contains(&url),
        "{}",
        server.stderr_text()
    );
}

// Fail closed (issue 26 item 4): a replica that could only refuse DPoP requests does not start.
#[test]
fn unreachable_store_at_start_stops_the_start_in_one_line() {
    let port = free_port();
    let exited = run_to_exit(
        &config().env(
            "JWT_DPOP_REPLAY_STORE",
            format!("redis://127.0.0.1:{port}/0"),
        ),
        &["--listen", "127.0.0.1:0"],
        Duration::from_secs(10),
    );
    assert_eq!(exited.status.code(), Some(1), "{exited:?}");
    assert!(!exited.stdout.contains("listening on"), "{exited:?}");
    let refusal: Vec<&str> = exited
        .stderr
        .lines()
        .filter(|l| l.starts_with("jwt-validator: "))
        .collect();
    assert_eq!(refusal.len(), 1, "{exited:?}");
    assert!(
        refusal[0].contains(&format!("redis://127.0.0.1:{port}/0"))
            && refusal[0].contains("JWT_DPOP_REPLAY_ON_STORE_ERROR=allow"),
        "{exited:?}"
    );
}

#[test]
fn unreachable_store_at_start_with_allow_starts_with_a_warning() {
    let port = free_port();
    let server = Server::start_on(
        Target::Native,
        config()
            .env(
                "JWT_DPOP_REPLAY_STORE",
                format!("redis://127.0.0.1:{port}/0"),
            )
            .env("JWT_DPOP_REPLAY_ON_STORE_ERROR", "allow"),
    );
    // Written before the listener opens, but read from the pipe by another thread: waited for.
    server.assert_logged("starting anyway");
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn store_password_is_sent_and_never_logged() {
    const PASSWORD: &str = "replay-store-password-4d1f";
    let redis = RedisServer::start_with(Some(PASSWORD));
    let server = Server::start_on(
        Target::Native,
        config()
            .env("JWT_DPOP_REPLAY_STORE", redis.url(0))
            .env(
                "JWT_DPOP_REPLAY_STORE_PASSWORD_FILE",
                "{files}/redis-password",
            )
            .file("redis-password", format!("{PASSWORD}\n"))
            .env("JWT_LOG_DECISIONS", "all"),
    );
    server.assert_logged("DPoP replay store reachable");
    server.assert_not_logged(PASSWORD);

    // A wrong password is a refused start, naming the store's answer and not the password.
    let exited = run_to_exit(
        &config()
            .env("JWT_DPOP_REPLAY_STORE", redis.url(0))
            .env(
                "JWT_DPOP_REPLAY_STORE_PASSWORD_FILE",
                "{files}/redis-password",
            )
            .file("redis-password", "not-the-password"),
        &["--listen", "127.0.0.1:0"],
        Duration::from_secs(10),
    );
    assert_eq!(exited.status.code(), Some(1), "{exited:?}");
    assert!(exited.stderr.contains("WRONGPASS"), "{exited:?}");
    assert!(!exited.stderr.contains("not-the-password"), "{exited:?}");
}

/// The store is opened once: a reload that names another keeps the one serving (and the proofs it
/// holds) and says that the change waits for a restart.
#[test]
fn a_reload_keeps_the_shared_store_and_says_its_change_waits_for_a_restart() {
    let redis = RedisServer::start();
    let dir = support::TempDir::new();
    let toml = |store: &str| {
        format!("[server]\ndpop_replay_store = \"{store}\"\n\n[[issuers]]\nsecret = \"{SECRET}\"\n")
    };
    let file = dir.write("jwtv.toml", toml(&redis.url(0)).as_bytes());
    let server = Server::start_on(
        Target::Native,
        TestConfig::new().env("JWT_CONFIG", file.to_string_lossy()),
    );
    let other = replica(&redis);
    std::fs::write(&file, toml("memory")).expect("rewrite the configuration");
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    assert!(
        server.stderr().wait_for(
            "DPoP replay store take effect at the next restart",
            Duration::from_secs(10)
        ),
        "{}",
        server.stderr_text()
    );
    let client = Client::es256();
    let token = bound_token(&client);
    let proof = client.proof(&token, "GET", URL);
    assert_answer(&send(&other, &token, &proof), 200, None);
    assert_answer(
        &send(&server, &token, &proof),
        401,
        Some("invalid_dpop_proof"),
    );
}
