//! Decision logs (issue 12): `JWT_LOG_DECISIONS` (all / refusals / none) and `JWT_LOG_SAMPLE` log
//! exactly the lines they say, counted in the real server's stderr after it shut down; refusal lines
//! keep their reason code; `/metrics` counts every decision whatever is logged. A flood of refusals
//! is bounded by `JWT_LOG_REFUSALS_PER_SEC` (issue 22), the rest summed up in summary lines.

mod support;

use std::time::{Duration, Instant};

use support::contract::{claims, config, token, with};
use support::{Server, TestConfig, eventually};

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
        ("JWT_LOG_REFUSALS_PER_SEC", "-1"),
        ("JWT_LOG_REFUSALS_PER_SEC", "2000000"),
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

/// Sum of `suppressed=N` over the summary lines in `text`.
fn suppressed_in(text: &str) -> usize {
    text.lines()
        .filter(|l| l.contains("refusal lines suppressed"))
        .filter_map(|l| {
            let n = l.split("suppressed=").nth(1)?;
            n.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

/// Logs an attacker cannot inflate (issue 22, item 6): a flood of refusals writes at most the rate
/// per code (a burst, then so many a second), and every refusal kept out of the log is counted in
/// a summary line, so lines plus suppressed add up to the refusals sent; `/metrics` counts them all.
#[test]
fn a_flood_of_refusals_logs_the_rate_and_sums_up_the_rest() {
    const FLOOD: usize = 300;
    const PER_SEC: usize = 2;
    let server = Server::start(config().env("JWT_LOG_REFUSALS_PER_SEC", PER_SEC.to_string()));
    let expired = token(&with(claims(), "exp", serde_json::json!(1)));
    let started = Instant::now();
    for _ in 0..FLOOD {
        assert_eq!(server.validate(&expired).status, 401);
    }
    let elapsed = started.elapsed();
    let metrics = server.get("/metrics").text();
    let series = "jwtv_decisions_total{route=\"validate\",result=\"deny\",code=\"token_expired\"}";
    assert!(
        metrics.lines().any(|l| l == format!("{series} {FLOOD}")),
        "{metrics}"
    );
    let stderr = server.stderr().clone();
    assert!(
        server.terminate(EXIT_TIMEOUT).is_some(),
        "no exit after SIGTERM"
    );
    let lines = |text: &str| {
        text.lines()
            .filter(|l| l.contains("decision=\"deny\""))
            .count()
    };
    // The last summary is written at shutdown, just before the exit: read until it arrived.
    let all_counted = eventually(EXIT_TIMEOUT, || {
        let text = stderr.text();
        lines(&text) + suppressed_in(&text) == FLOOD
    });
    let text = stderr.text();
    assert!(
        all_counted,
        "lines and suppressed do not add up to {FLOOD}:\n{text}"
    );
    // The burst, then the rate over the flood's duration (rounded up: the server's clock started
    // a little after ours and stopped a little before).
    let bound = PER_SEC + PER_SEC * (elapsed.as_secs() as usize + 1);
    assert!(
        lines(&text) <= bound,
        "{} refusal lines in {elapsed:?}, bound {bound}:\n{text}",
        lines(&text)
    );
    assert!(
        text.lines()
            .any(|l| l.contains("refusal lines suppressed") && l.contains("token_expired=")),
        "no summary line naming the code:\n{text}"
    );
}

/// Unbounded on request (`0`): every refusal has its line, as before the rate existed.
#[test]
fn no_refusal_rate_logs_every_refusal() {
    let (_, refused, text) = logged_under(config().env("JWT_LOG_REFUSALS_PER_SEC", "0"));
    assert_eq!(refused, REFUSED, "{text}");
    assert_eq!(suppressed_in(&text), 0, "{text}");
}
