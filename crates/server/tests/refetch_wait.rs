//! The unknown-kid refetch wait (issue 12): while the identity provider hangs, trickles or answers
//! garbage, a spray of made-up kids from several clients is answered 401 `unknown_kid` within the
//! refetch wait (default 1 s), never after the whole fetch timeout; tokens with known keys are answered
//! throughout; and a key published meanwhile is accepted once a fetch gets through.
//!
//! The hanging-provider test prints the latency of the spray (max, p99) for the record; run it with
//! `--nocapture` to read them.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::keyserver::{JWKS_PATH, KeyServer, Mode, TestJwk, distinct_claims, jwks};
use support::{Server, TestConfig, eventually};

const AUDIENCE: &str = "api";
const ISSUER: &str = "https://idp.test";
/// Long, so that a request waiting on the whole fetch shows: every answer must come well before it.
const FETCH_TIMEOUT: Duration = Duration::from_secs(6);
const ANSWERED_BEFORE: Duration = Duration::from_secs(3);
const SPRAY_FOR: Duration = Duration::from_millis(2500);
const SPRAYERS: usize = 4;
/// A little more than the 1 s refetch cooldown of [`start`].
const COOLDOWN_PASSED: Duration = Duration::from_millis(1200);

fn claims() -> Value {
    distinct_claims(ISSUER, AUDIENCE)
}

/// The refetch wait is left at its default; the cooldown is short so the spray starts several fetches.
fn start(ks: &KeyServer) -> Server {
    let server = Server::start(
        TestConfig::new()
            .env("JWT_JWKS_URI", ks.url(JWKS_PATH))
            .env("JWT_ALLOW_HTTP_LOOPBACK", "true")
            .env("JWT_ISSUER", ISSUER)
            .env("JWT_AUDIENCE", AUDIENCE)
            .env("JWT_FETCH_TIMEOUT", FETCH_TIMEOUT.as_secs().to_string())
            .env("JWT_JWKS_REFETCH_COOLDOWN", "1"),
    );
    assert!(
        eventually(Duration::from_secs(10), || server.get("/readyz").status
            == 200),
        "not ready\n{}",
        server.stderr_text()
    );
    server
}

/// One `POST /validate`: status, error code, and how long the answer took.
fn timed_validate(server: &Server, token: &str) -> (u16, Option<String>, Duration) {
    let started = Instant::now();
    let r = server.validate(token);
    (r.status, r.error_code(), started.elapsed())
}

struct Spray {
    unknown: Vec<Duration>,
    known: Vec<Duration>,
}

/// [`SPRAYERS`] clients send tokens with made-up kids, one more sends tokens with the published key,
/// all for [`SPRAY_FOR`]; every answer is checked as it comes.
fn spray(server: &Server, key: &TestJwk) -> Spray {
    let deadline = Instant::now() + SPRAY_FOR;
    let (unknown, known) = thread::scope(|scope| {
        let sprayers: Vec<_> = (0..SPRAYERS)
            .map(|w| {
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    for i in 0..10_000 {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let token = key.token_with_kid(&format!("made-up-{w}-{i}"), &claims());
                        let (status, code, took) = timed_validate(server, &token);
                        assert_eq!(
                            (status, code.as_deref()),
                            (401, Some("unknown_kid")),
                            "made-up kid"
                        );
                        latencies.push(took);
                    }
                    latencies
                })
            })
            .collect();
        let known = scope.spawn(move || {
            let mut latencies = Vec::new();
            for _ in 0..10_000 {
                if Instant::now() >= deadline {
                    break;
                }
                let (status, code, took) = timed_validate(server, &key.token(&claims()));
                assert_eq!((status, code), (200, None), "published kid");
                latencies.push(took);
            }
            latencies
        });
        let unknown: Vec<Duration> = sprayers
            .into_iter()
            .flat_map(|s| s.join().expect("sprayer"))
            .collect();
        (unknown, known.join().expect("known-kid client"))
    });
    Spray { unknown, known }
}

fn max_and_p99(latencies: &mut [Duration]) -> (Duration, Duration) {
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    (latencies[latencies.len() - 1], p99)
}

fn metric(server: &Server, series: &str) -> f64 {
    let text = server.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Sprays while the provider misbehaves as `mode`, checks the bound, then publishes a new key and
/// lets the provider recover: the new key is accepted on a later request.
fn bounded_under(mode: Mode, label: &str) {
    let old = TestJwk::es256("old");
    let new = TestJwk::es256("new");
    let ks = KeyServer::start(jwks(&[&old]));
    let server = start(&ks);
    ks.set_mode(mode);
    // The set now published is only served once the provider recovers.
    ks.set_jwks(jwks(&[&old, &new]));
    // Past the cooldown of the start-up fetch, so the spray's first unknown kid starts a fetch.
    thread::sleep(COOLDOWN_PASSED);

    let Spray {
        mut unknown,
        mut known,
    } = spray(&server, &old);
    assert!(
        !unknown.is_empty() && !known.is_empty(),
        "{label}: no spray"
    );
    let (max, p99) = max_and_p99(&mut unknown);
    let (known_max, known_p99) = max_and_p99(&mut known);
    eprintln!(
        "{label}: {} unknown-kid answers, max {max:?}, p99 {p99:?}; {} known-kid answers, max \
         {known_max:?}, p99 {known_p99:?}",
        unknown.len(),
        known.len()
    );
    assert!(
        max < ANSWERED_BEFORE,
        "{label}: an unknown kid waited {max:?}, fetch timeout {FETCH_TIMEOUT:?}"
    );
    assert!(
        known_max < ANSWERED_BEFORE,
        "{label}: a known kid waited {known_max:?}"
    );

    ks.set_mode(Mode::Normal);
    let accepted = eventually(FETCH_TIMEOUT * 3, || {
        let (status, _, took) = timed_validate(&server, &new.token(&claims()));
        assert!(took < ANSWERED_BEFORE, "{label}: new key waited {took:?}");
        status == 200
    });
    assert!(
        accepted,
        "{label}: the newly published key was never accepted\n{}",
        server.stderr_text()
    );
}

#[test]
fn hanging_provider_unknown_kids_answered_within_the_wait() {
    bounded_under(Mode::Slow(Duration::from_secs(60)), "hanging provider");
}

#[test]
fn trickling_provider_unknown_kids_answered_within_the_wait() {
    bounded_under(
        Mode::Trickle(Duration::from_millis(200)),
        "trickling provider",
    );
}

#[test]
fn garbage_provider_unknown_kids_answered_within_the_wait() {
    bounded_under(Mode::Garbage, "garbage provider");
}

#[test]
fn expired_waits_are_counted_in_metrics() {
    let key = TestJwk::es256("only");
    let ks = KeyServer::start(jwks(&[&key]));
    let server = start(&ks);
    ks.set_mode(Mode::Slow(Duration::from_secs(60)));
    thread::sleep(COOLDOWN_PASSED);
    let (status, code, took) = timed_validate(&server, &key.token_with_kid("made-up", &claims()));
    assert_eq!((status, code.as_deref()), (401, Some("unknown_kid")));
    assert!(took < ANSWERED_BEFORE, "waited {took:?}");
    let series = format!("jwtv_key_unknown_kid_wait_expired_total{{issuer=\"{ISSUER}\"}}");
    assert_eq!(metric(&server, &series), 1.0);
}
