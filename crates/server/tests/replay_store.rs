//! The shared DPoP replay store (issue 26 item 4) against a real `redis-server` started here: what the
//! native binary does at start with the store up, down, or behind a password.
//!
//! Native only: the component and the filter keep their replay cache in their own host.

mod support;

use std::time::Duration;

use support::redis::RedisServer;
use support::{Server, Target, TestConfig, free_port, run_to_exit};

const SECRET: &str = "replay-store-test-secret-0123456789abcdefghij";

fn config() -> TestConfig {
    TestConfig::new().env("JWT_SECRET", SECRET)
}

#[test]
fn reachable_store_at_start_is_named_in_the_logs() {
    let redis = RedisServer::start();
    let server = Server::start_on(
        Target::Native,
        config().env("JWT_DPOP_REPLAY_STORE", redis.url(2)),
    );
    let url = format!("redis://127.0.0.1:{}/2", redis.port);
    assert!(
        server
            .stderr()
            .wait_for("DPoP replay store reachable", Duration::from_secs(5)),
        "{}",
        server.stderr_text()
    );
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
    assert!(
        server.stderr_text().contains("starting anyway"),
        "{}",
        server.stderr_text()
    );
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
    assert!(
        server
            .stderr()
            .wait_for("DPoP replay store reachable", Duration::from_secs(5)),
        "{}",
        server.stderr_text()
    );
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
