//! Decision logs (issue 12): `JWT_LOG_DECISIONS` (all / refusals / none) and `JWT_LOG_SAMPLE` log
//! exactly the lines they say, counted in the real server's stderr after it shut down; refusal lines
//! keep their reason code; `/metrics` counts every decision whatever is logged.

mod support;

use std::time::Duration;

use support::contract::{claims, config, token, with};
use support::{Server, TestConfig};

const ALLOWED: usize = 20;
const REFUSED: usize = 10;
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Lines logged for allowed and refused decisions after [`ALLOWED`] good and [`REFUSED`] expired
/// tokens, the server then stopped so that every line it wrote has been read.
fn logged_under(config: TestConfig) -> (usize, usize, String) {
    let server = Server::start(config);
    let expired = token(&with(claims(), "exp", serde_json::json!(1)));
    for _ in 0..ALLOWED {
        assert_eq!(server.validate(&token(&claims())).status, 200);
    }
    for _ in 0..REFUSED {
        let r = server.validate(&expired);
        assert_eq!(r.status, 401);
        assert_eq!(r.error_code().as_deref(), Some("token_expired"));
    }
    let metrics = server.get("/metrics").text();
    let stderr = server.stderr().clone();
    assert!(
        server.terminate(EXIT_TIMEOUT).is_some(),
        "no exit after SIGTERM"
    );
    assert!(
        stderr.wait_for("shut down", EXIT_TIMEOUT),
        "{}",
        stderr.text()
    );
    // Whatever was logged, every decision was counted.
    let counted = |result: &str, code: &str| {
        let series = format!(
            "jwtv_decisions_total{{route=\"validate\",result=\"{result}\",code=\"{code}\"}}"
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };
    assert_eq!(counted("allow", "ok"), ALLOWED, "{metrics}");
    assert_eq!(counted("deny", "token_expired"), REFUSED, "{metrics}");

    let text = stderr.text();
    let allowed = text
        .lines()
        .filter(|l| l.contains("decision=\"allow\""))
        .count();
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("decision=\"deny\""))
        .collect();
    for line in &refused {
        assert!(line.contains("code=\"token_expired\""), "{line}");
    }
    (allowed, refused.len(), text)
}

#[test]
fn default_logs_refusals_only() {
    let (allowed, refused, text) = logged_under(config());
    assert_eq!((allowed, refused), (0, REFUSED), "{text}");
}

#[test]
fn all_logs_every_decision() {
    let (allowed, refused, text) = logged_under(config().env("JWT_LOG_DECISIONS", "all"));
    assert_eq!((allowed, refused), (ALLOWED, REFUSED), "{text}");
}

#[test]
fn none_logs_no_decision() {
    let (allowed, refused, text) = logged_under(config().env("JWT_LOG_DECISIONS", "none"));
    assert_eq!((allowed, refused), (0, 0), "{text}");
}

#[test]
fn sample_logs_that_share_of_the_selected_decisions() {
    let (allowed, refused, text) = logged_under(
        config()
            .env("JWT_LOG_DECISIONS", "all")
            .env("JWT_LOG_SAMPLE", "0.5"),
    );
    assert_eq!(allowed + refused, (ALLOWED + REFUSED) / 2, "{text}");

    let (allowed, refused, text) = logged_under(config().env("JWT_LOG_SAMPLE", "0.1"));
    assert_eq!((allowed, refused), (0, REFUSED / 10), "{text}");
}

#[test]
fn bad_decision_log_settings_are_one_line() {
    for (var, value) in [
        ("JWT_LOG_DECISIONS", "some"),
        ("JWT_LOG_SAMPLE", "2"),
        ("JWT_LOG_SAMPLE", "half"),
    ] {
        let exited = support::run_to_exit(&config().env(var, value), &[], EXIT_TIMEOUT);
        assert!(!exited.status.success(), "{var}={value}");
        assert!(
            exited.stderr.trim().lines().count() == 1 && exited.stderr.contains(var),
            "{var}={value}: {}",
            exited.stderr
        );
    }
}
