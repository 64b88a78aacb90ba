//! Remote key sets (issue 6) against a real key-set / discovery server on 127.0.0.1
//! (`support::keyserver`): fetch at start with 503 and `/readyz` waiting, rotation picked up by an
//! unknown-kid refetch, a spray of random kids held by the cooldown, the last good set kept
//! through every kind of outage, discovery with its issuer check, the http/https rules, and the token
//! cache. In every fault the one thing that must never happen is checked: a bad token getting 200.
//!
//! Both targets (`JWTV_TEST_TARGET`) for the rules: the native server and the component under
//! `wasmtime serve` drive the same refresh machine (`jwtv-keyset`), so the verdicts are the same;
//! metrics, the token cache and the TLS fetcher are the native shell's. The component fetches only
//! while it serves requests that need keys (no background task), so waits on the key server send
//! such requests ([`while_serving`]).

mod support;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::keyserver::{
    DISCOVERY_PATH, JWKS_PATH, KeyServer, Mode, TestJwk, distinct_claims, jwks,
};
use support::{Server, Target, TestConfig, eventually, now, run_to_exit};

const AUDIENCE: &str = "api";
const ISSUER: &str = "https://idp.test";
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
fn claims(iss: &str) -> Value {
    distinct_claims(iss, AUDIENCE)
}

/// A JWT_JWKS_URI configuration for `ks`, with short bounds so the tests run in seconds.
fn remote_config(ks: &KeyServer) -> TestConfig {
    with_cooldown(ks, 2)
}

/// [`remote_config`] with an unknown-kid refetch cooldown of `secs`.
fn with_cooldown(ks: &KeyServer, secs: u64) -> TestConfig {
    TestConfig::new()
        .env("JWT_JWKS_URI", ks.url(JWKS_PATH))
        .env("JWT_ALLOW_HTTP_LOOPBACK", "true")
        .env("JWT_ISSUER", ISSUER)
        .env("JWT_AUDIENCE", AUDIENCE)
        .env("JWT_FETCH_TIMEOUT", "1")
        .env("JWT_FETCH_MAX_BYTES", "16384")
        .env("JWT_JWKS_REFETCH_COOLDOWN", secs.to_string())
}

/// `check`, after requests that make `server` consult its key sources: the component fetches only
/// for a request that needs keys (`/readyz` while not ready, a token of the issuer; here one whose
/// `kid` no set holds, so it needs the keys whatever set is in hand), never for `/healthz`.
fn while_serving<'a>(
    server: &'a Server,
    mut check: impl FnMut() -> bool + 'a,
) -> impl FnMut() -> bool + 'a {
    let probe = TestJwk::es256("while-serving").token(&claims(ISSUER));
    move || {
        let _ = server.get("/readyz");
        if server.target == Target::Wasm {
            let _ = auth(server, &probe);
        }
        check()
    }
}

fn wait_ready(server: &Server, timeout: Duration) {
    assert!(
        eventually(timeout, || server.get("/readyz").status == 200),
        "not ready within {timeout:?}\n--- stderr ---\n{}",
        server.stderr_text()
    );
}

/// The key-set fetches so far. Natively one machine makes them all; `wasmtime serve` starts and drops
/// instances by its reuse count and idle timeout, each with its own machine and a fetch at its start,
/// so only the verdicts are compared there, not the count.
fn assert_jwks_requests(server: &Server, ks: &KeyServer, expected: usize, why: &str) {
    if server.target == Target::Native {
        assert_eq!(ks.requests(JWKS_PATH), expected, "{why}");
    }
}

/// `(status, error code)` of `POST /validate`.
fn validate(server: &Server, token: &str) -> (u16, Option<String>) {
    let r = server.validate(token);
    (r.status, r.error_code())
}

fn auth(server: &Server, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    server
        .request("GET", "/auth", &[("Authorization", &bearer)], b"")
        .status
}

fn metric(server: &Server, series: &str) -> Option<f64> {
    let text = server.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn fetches(server: &Server, result: &str) -> f64 {
    metric(
        server,
        &format!("jwtv_key_fetches_total{{issuer=\"{ISSUER}\",result=\"{result}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Tokens that must never get 200, whatever state the key set is in.
fn bad_tokens(good: &TestJwk, other: &TestJwk) -> Vec<(&'static str, String)> {
    let valid = good.token(&claims(ISSUER));
    let (input, _) = valid.rsplit_once('.').unwrap();
    let forged = format!("{input}.{}", support::jwt::b64(&[7u8; 64]));
    let mut expired = claims(ISSUER);
    expired["exp"] = json!(now() - 3600);
    let mut other_issuer = claims("https://evil.test");
    other_issuer["aud"] = json!(AUDIENCE);
    vec![
        ("forged signature", forged),
        ("unpublished key", other.token(&claims(ISSUER))),
        (
            "random kid",
            good.token_with_kid("no-such-kid", &claims(ISSUER)),
        ),
        ("expired", good.token(&expired)),
        ("other issuer", good.token(&other_issuer)),
        (
            "alg none",
            format!(
                "{}.{}.",
                support::jwt::b64(br#"{"alg":"none"}"#),
                support::jwt::b64(claims(ISSUER).to_string().as_bytes())
            ),
        ),
    ]
}

fn assert_never_allowed(server: &Server, good: &TestJwk, other: &TestJwk, when: &str) {
    for (what, token) in bad_tokens(good, other) {
        let (status, code) = validate(server, &token);
        assert!(
            status == 401 || status == 503,
            "{when}: {what} got {status} {code:?}"
        );
        let status = auth(server, &token);
        assert!(
            status == 401 || status == 503,
            "{when}: {what} got {status} on /auth"
        );
    }
}

/// The failure kinds the fault suite provokes, as `jwtv_key_set_fetches_total` labels them.
const FAILED_FETCH_KINDS: [&str; 6] = [
    "timeout",
    "http",
    "too_large",
    "invalid",
    "status",
    "no_usable_keys",
];
#[test]
fn before_the_first_fetch_tokens_get_503_and_readyz_waits_through_every_fault() {
    let key = TestJwk::es256("k1");
    let other = TestJwk::es256("k2");
    let ks = KeyServer::start(jwks(&[&key]));
    ks.set_mode(Mode::Down);
    // A TTL of 2 s caps the retry backoff at 2 s, so every fault below is met within seconds.
    let server = Server::start_on(
        Target::from_env(),
        remote_config(&ks)
            .env("JWT_JWKS_MIN_TTL", "1")
            .env("JWT_JWKS_DEFAULT_TTL", "2"),
    );
    // The listener is up before any key set: alive, not ready.
    assert_eq!(server.get("/healthz").status, 200);

    let enc_only =
        json!({"keys": [{"kty": "RSA", "use": "enc", "kid": "e", "n": "AQAB", "e": "AQAB"}]});
    let faults: Vec<(&str, Mode, Option<String>)> = vec![
        ("down", Mode::Down, None),
        ("garbage", Mode::Garbage, None),
        ("huge", Mode::Huge, None),
        ("huge declared", Mode::HugeDeclared, None),
        ("slow", Mode::Slow(Duration::from_secs(3)), None),
        ("status 500", Mode::Status(500), None),
        ("redirect", Mode::Status(302), None),
        ("no usable key", Mode::Normal, Some(enc_only.to_string())),
    ];
    for (name, mode, document) in faults {
        if let Some(document) = document {
            ks.set_jwks(document);
        }
        ks.set_mode(mode);
        let before = ks.connections();
        // At least one attempt in this fault, then the answers.
        assert!(
            eventually(
                Duration::from_secs(8),
                while_serving(&server, || ks.connections() > before)
            ),
            "{name}: no fetch attempt"
        );
        let ready = server.get("/readyz");
        assert_eq!(ready.status, 503, "{name}: /readyz");
        let token = key.token(&claims(ISSUER));
        let r = server.validate(&token);
        assert_eq!(r.status, 503, "{name}: a valid token before any key set");
        assert_eq!(r.error_code().as_deref(), Some("temporarily_unavailable"));
        assert!(r.header("retry-after").is_some(), "{name}: Retry-After");
        assert_eq!(auth(&server, &token), 503, "{name}: /auth fails closed");
        assert_never_allowed(&server, &key, &other, name);
    }

    ks.set_jwks(jwks(&[&key]));
    ks.set_mode(Mode::Normal);
    wait_ready(&server, Duration::from_secs(10));
    if server.target == Target::Wasm {
        // Readiness is per instance: one started during the faults may still be in its backoff.
        assert!(eventually(Duration::from_secs(10), || (0..5).all(
            |_| validate(&server, &key.token(&claims(ISSUER))).0 == 200
        )));
    }
    assert_eq!(validate(&server, &key.token(&claims(ISSUER))), (200, None));
    assert_eq!(auth(&server, &key.token(&claims(ISSUER))), 200);
    assert_never_allowed(&server, &key, &other, "after the first success");
    ks.assert_fetch_headers();

    let logs = server.stderr_text();
    assert!(logs.contains("key set fetch failed"), "{logs}");
    assert!(logs.contains("key set fetched"), "{logs}");
    // Logs name kids and sizes, never key material.
    let x = key.public_jwk()["x"].as_str().unwrap();
    assert!(
        !logs.contains(x),
        "a public key coordinate reached the logs"
    );
    if server.target == Target::Wasm {
        return;
    }
    for result in std::iter::once("ok").chain(FAILED_FETCH_KINDS) {
        assert!(fetches(&server, result) >= 1.0, "no {result} fetch counted");
    }
    assert_eq!(
        metric(
            &server,
            &format!("jwtv_key_set_loaded{{issuer=\"{ISSUER}\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &server,
            &format!("jwtv_key_set_keys{{issuer=\"{ISSUER}\"}}")
        ),
        Some(1.0)
    );
    assert!(
        metric(
            &server,
            &format!("jwtv_key_set_age_seconds{{issuer=\"{ISSUER}\"}}")
        )
        .is_some()
    );
    assert!(
        metric(
            &server,
            &format!("jwtv_key_fetch_duration_seconds_count{{issuer=\"{ISSUER}\"}}")
        )
        .is_some_and(|n| n >= 8.0)
    );
}

// The cooldown's rules (one fetch per cooldown, period after period, from the last attempt of any
// kind, single flight) are proven in keyset on a virtual clock (`crates/keyset/src/tests.rs`); the two
// tests below are the shells' wiring of them, with no sleep through a real cooldown.

#[test]
fn a_rotated_key_is_picked_up_by_an_unknown_kid_refetch_and_cached_tokens_follow() {
    let k1 = TestJwk::es256("k1");
    let k2 = TestJwk::rs256("k2");
    let ks = KeyServer::start(jwks(&[&k1]));
    // The shortest cooldown (1 s): the refetch comes once the start fetch's cooldown is over.
    let server = Server::start_on(Target::from_env(), with_cooldown(&ks, 1));
    wait_ready(&server, Duration::from_secs(10));
    assert_jwks_requests(&server, &ks, 1, "");

    let old = k1.token(&claims(ISSUER));
    assert_eq!(validate(&server, &old), (200, None));
    assert_eq!(
        validate(&server, &old),
        (200, None),
        "again, from the cache"
    );

    // The provider rotates: k2 in, k1 out.
    ks.set_jwks(jwks(&[&k2]));
    let new = k2.token(&claims(ISSUER));
    // Within the start fetch's cooldown the new kid is refused without a fetch; the first request
    // after it refetches and finds the rotation.
    let mut answers = Vec::new();
    let picked_up = eventually(Duration::from_secs(15), || {
        answers.push(validate(&server, &new));
        answers.last() == Some(&(200, None))
    });
    assert!(picked_up, "rotation never picked up: {answers:?}");
    for answer in &answers[..answers.len() - 1] {
        assert_eq!(answer, &(401, Some("unknown_kid".to_owned())));
    }
    assert_jwks_requests(&server, &ks, 2, "one refetch, after the cooldown");
    // The withdrawn key's token was cached while k1 was published: the new set voids the cache.
    let withdrawn = validate(&server, &old);
    let unpublished = TestJwk::es256("k3");
    let never = match server.target {
        Target::Native => {
            assert_eq!(withdrawn, (401, Some("unknown_kid".into())));
            &k1
        }
        // `wasmtime serve` may hand a request to a second instance (one that was not yet back in its
        // pool took the previous request): an instance that fetched before the rotation keeps its set
        // until its TTL or an unknown kid of its own, while the one that refetched refuses
        // (docs/remote-keys.md). Never another answer; and a key no set held is refused everywhere.
        Target::Wasm => {
            assert!(
                withdrawn == (401, Some("unknown_kid".into())) || withdrawn == (200, None),
                "{withdrawn:?}"
            );
            &unpublished
        }
    };
    assert_eq!(auth(&server, &new), 200);
    assert_never_allowed(&server, &k2, never, "after rotation");
    if server.target == Target::Native {
        let logs = server.stderr_text();
        assert!(logs.contains("unknown kid: refetching"), "{logs}");
    }
}

#[test]
fn a_spray_of_random_kids_within_the_cooldown_makes_no_fetch() {
    let key = TestJwk::es256("k1");
    let ks = KeyServer::start(jwks(&[&key]));
    // An hour: the whole spray falls within the cooldown of the start fetch.
    let server = Server::start_on(Target::from_env(), with_cooldown(&ks, 3600));
    wait_ready(&server, Duration::from_secs(10));
    let before = ks.requests(JWKS_PATH);

    // `wasmtime serve` runs concurrent requests in instances of their own, each with its own machine:
    // the component's spray is sequential, so its instances are only those the reuse count makes.
    let workers = if server.target == Target::Wasm { 1 } else { 20 };
    let started = Instant::now();
    let server_ref = &server;
    let key_ref = &key;
    let answers: Vec<(u16, Option<String>)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    (0..200 / workers)
                        .map(|i| {
                            let kid = format!("random-{w}-{i}-{}", now());
                            validate(server_ref, &key_ref.token_with_kid(&kid, &claims(ISSUER)))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    let elapsed = started.elapsed();
    assert_eq!(answers.len(), 200);
    for answer in &answers {
        assert_eq!(answer, &(401, Some("unknown_kid".to_owned())));
    }
    let fetched = ks.requests(JWKS_PATH) - before;
    // Natively one machine: no fetch at all. In the component one machine per instance (64 requests
    // each), whose only fetch is its start fetch.
    let allowed = match server.target {
        Target::Native => 0,
        Target::Wasm => 200 / 64 + 2,
    };
    assert!(
        fetched <= allowed,
        "{fetched} fetches for 200 random kids in {elapsed:?} within the cooldown (at most {allowed})"
    );
    // The real key still works throughout.
    assert_eq!(validate(&server, &key.token(&claims(ISSUER))), (200, None));
    if server.target == Target::Wasm {
        return;
    }
    let suppressed = metric(
        &server,
        &format!("jwtv_key_unknown_kid_refetches_total{{issuer=\"{ISSUER}\",result=\"cooldown\"}}"),
    );
    assert_eq!(
        suppressed,
        Some(200.0),
        "each counted as held by the cooldown"
    );
}

#[test]
fn the_last_good_key_set_is_served_through_an_outage() {
    let key = TestJwk::es256("k1");
    let other = TestJwk::es256("k2");
    let ks = KeyServer::start(jwks(&[&key]));
    // max-age=1 within a 1 s minimum: a background refresh every second or so.
    ks.set_cache_control(Some("public, max-age=1"));
    let server = Server::start_on(
        Target::from_env(),
        remote_config(&ks)
            .env("JWT_JWKS_MIN_TTL", "1")
            .env("JWT_JWKS_DEFAULT_TTL", "2"),
    );
    wait_ready(&server, Duration::from_secs(10));
    assert!(
        eventually(
            Duration::from_secs(5),
            while_serving(&server, || ks.requests(JWKS_PATH) >= 2)
        ),
        "max-age=1 refreshes"
    );

    let empty = json!({"keys": []}).to_string();
    let faults: Vec<(&str, Mode, Option<String>)> = vec![
        ("down", Mode::Down, None),
        ("garbage", Mode::Garbage, None),
        ("huge", Mode::Huge, None),
        ("huge declared", Mode::HugeDeclared, None),
        ("slow", Mode::Slow(Duration::from_secs(3)), None),
        ("status 503", Mode::Status(503), None),
        ("redirect", Mode::Status(302), None),
        ("empty key set", Mode::Normal, Some(empty)),
    ];
    for (name, mode, document) in faults {
        if let Some(document) = document {
            ks.set_jwks(document);
        }
        ks.set_mode(mode);
        let before = ks.connections();
        assert!(
            eventually(
                Duration::from_secs(8),
                while_serving(&server, || ks.connections() > before + 1)
            ),
            "{name}: no refresh attempts"
        );
        // Fresh tokens (no cache hit): verified with the last good set. A component instance started
        // during the outage never had one: 503 there, never 401 (docs/remote-keys.md, the component per host mode).
        let last_good = match server.target {
            Target::Native => &[200][..],
            Target::Wasm => &[200, 503][..],
        };
        let status = validate(&server, &key.token(&claims(ISSUER))).0;
        assert!(last_good.contains(&status), "{name}: {status}");
        let status = auth(&server, &key.token(&claims(ISSUER)));
        assert!(last_good.contains(&status), "{name}: /auth {status}");
        let status = server.get("/readyz").status;
        assert!(last_good.contains(&status), "{name}: /readyz {status}");
        assert_never_allowed(&server, &key, &other, name);
    }
    if server.target == Target::Native {
        for result in FAILED_FETCH_KINDS {
            assert!(fetches(&server, result) >= 1.0, "no {result} fetch counted");
        }
        let age = metric(
            &server,
            &format!("jwtv_key_set_age_seconds{{issuer=\"{ISSUER}\"}}"),
        )
        .expect("age of the set in use");
        assert!(
            age >= 5.0,
            "the set in use is the one from before the outage (age {age})"
        );
    }

    ks.set_jwks(jwks(&[&key, &other]));
    ks.set_mode(Mode::Normal);
    assert!(
        eventually(Duration::from_secs(6), || validate(
            &server,
            &other.token(&claims(ISSUER))
        )
        .0 == 200),
        "recovery: the provider's new key is used"
    );
}

#[test]
fn discovery_finds_the_key_set_and_a_mismatching_issuer_is_refused() {
    let key = TestJwk::es256("k1");
    let ks = KeyServer::start(jwks(&[&key]));
    let issuer = ks.base();
    ks.set_discovery(json!({"issuer": issuer, "jwks_uri": ks.url(JWKS_PATH)}));
    let config = |ks: &KeyServer| {
        TestConfig::new()
            .env("JWT_OIDC_DISCOVERY", "true")
            .env("JWT_ISSUER", ks.base())
            .env("JWT_ALLOW_HTTP_LOOPBACK", "true")
            .env("JWT_FETCH_TIMEOUT", "1")
    };
    let server = Server::start_on(Target::from_env(), config(&ks));
    wait_ready(&server, Duration::from_secs(10));
    // One discovery and one key set fetch; under `wasmtime serve` a probe may meet a second
    // instance, which does both again.
    let fetches = match server.target {
        Target::Native => 1..=1,
        Target::Wasm => 1..=2,
    };
    let discovered = ks.requests(DISCOVERY_PATH);
    assert!(fetches.contains(&discovered), "{discovered} discoveries");
    assert_eq!(ks.requests(JWKS_PATH), discovered);
    let mut c = claims(&issuer);
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(validate(&server, &key.token(&c)), (200, None));
    drop(server);

    // A document for another issuer (or a trailing-slash variant) is not this issuer's.
    for wrong in [format!("{issuer}/"), "https://evil.test".to_owned()] {
        let ks2 = KeyServer::start(jwks(&[&key]));
        ks2.set_discovery(json!({"issuer": wrong, "jwks_uri": ks2.url(JWKS_PATH)}));
        let server = Server::start_on(Target::from_env(), config(&ks2));
        assert!(
            eventually(
                Duration::from_secs(8),
                while_serving(&server, || ks2.requests(DISCOVERY_PATH) >= 2)
            ),
            "discovery retried"
        );
        assert_eq!(server.get("/readyz").status, 503, "{wrong}");
        let mut c = claims(&ks2.base());
        c.as_object_mut().unwrap().remove("aud");
        assert_eq!(validate(&server, &key.token(&c)).0, 503, "{wrong}");
        assert_eq!(
            ks2.requests(JWKS_PATH),
            0,
            "{wrong}: the key set is never fetched"
        );
        let logs = server.stderr_text();
        assert!(logs.contains("is not the configured issuer"), "{logs}");
        let series = format!(
            "jwtv_key_fetches_total{{issuer=\"{}\",result=\"discovery\"}}",
            ks2.base()
        );
        if server.target == Target::Native {
            assert!(metric(&server, &series).is_some_and(|n| n >= 1.0));
        }
    }

    // A discovered jwks_uri must obey the same scheme rule as a configured one.
    let ks3 = KeyServer::start(jwks(&[&key]));
    ks3.set_discovery(json!({"issuer": ks3.base(), "jwks_uri": "http://keys.example.com/jwks"}));
    let server = Server::start_on(Target::from_env(), config(&ks3));
    assert!(eventually(
        Duration::from_secs(8),
        while_serving(&server, || ks3.requests(DISCOVERY_PATH) >= 1)
    ));
    thread::sleep(Duration::from_millis(200));
    assert_eq!(server.get("/readyz").status, 503);
    server.assert_logged("only for a loopback host");
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_at_configuration() {
    if Target::from_env() == Target::Wasm {
        return; // the native shell's own (configuration exit, TLS fetcher, token cache)
    }
    let cases = [
        (
            TestConfig::new()
                .env("JWT_JWKS_URI", "http://keys.example.com/jwks")
                .env("JWT_ALLOW_HTTP_LOOPBACK", "true"),
            "JWT_JWKS_URI: ",
            "only for a loopback host",
        ),
        (
            TestConfig::new().env("JWT_JWKS_URI", "http://127.0.0.1:9/jwks"),
            "JWT_JWKS_URI: ",
            "plain http is refused",
        ),
        (
            TestConfig::new()
                .env("JWT_OIDC_DISCOVERY", "true")
                .env("JWT_ISSUER", "http://idp.example.com")
                .env("JWT_ALLOW_HTTP_LOOPBACK", "true"),
            "JWT_OIDC_DISCOVERY: ",
            "only for a loopback host",
        ),
        (
            TestConfig::new()
                .env("JWT_CONFIG", "{files}/jwtv.toml")
                .file(
                    "jwtv.toml",
                    "[fetch]\nallow_http_loopback = true\n[[issuers]]\njwks_uri = \"http://10.0.0.1/jwks\"\n",
                ),
            "issuers[0].jwks_uri: ",
            "only for a loopback host",
        ),
    ];
    for (config, place, why) in cases {
        for args in [&["check-config"][..], &["--listen", "127.0.0.1:0"][..]] {
            let exited = run_to_exit(&config, args, EXIT_TIMEOUT);
            assert_eq!(exited.status.code(), Some(2), "{args:?}: {exited:?}");
            let line = exited.stderr.trim();
            assert!(
                line.contains(place) && line.contains(why) && !line.contains('\n'),
                "{args:?}: {line}"
            );
        }
    }
    let ok = run_to_exit(
        &TestConfig::new().env("JWT_JWKS_URI", "https://keys.example.com/jwks"),
        &["check-config"],
        EXIT_TIMEOUT,
    );
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        ok.stdout
            .contains("keys fetched from https://keys.example.com/jwks"),
        "{}",
        ok.stdout
    );
}

#[test]
fn https_to_a_server_without_tls_is_a_failed_fetch_not_a_verdict() {
    if Target::from_env() == Target::Wasm {
        return; // the native shell's own (configuration exit, TLS fetcher, token cache)
    }
    let key = TestJwk::es256("k1");
    let ks = KeyServer::start(jwks(&[&key]));
    let server = Server::start_on(
        Target::Native,
        remote_config(&ks).env("JWT_JWKS_URI", format!("https://{}{JWKS_PATH}", ks.addr)),
    );
    // A plain-HTTP peer never answers a ClientHello with a ServerHello: the handshake fails, or the
    // fetch times out waiting for it.
    assert!(
        eventually(Duration::from_secs(8), || fetches(&server, "tls")
            + fetches(&server, "timeout")
            >= 1.0),
        "{}",
        server.stderr_text()
    );
    assert_eq!(fetches(&server, "ok"), 0.0);
    assert_eq!(ks.requests(JWKS_PATH), 0, "no plain request was ever sent");
    assert_eq!(server.get("/readyz").status, 503);
    assert_eq!(validate(&server, &key.token(&claims(ISSUER))).0, 503);
}

#[test]
fn the_token_cache_never_serves_a_token_past_its_exp() {
    if Target::from_env() == Target::Wasm {
        return; // the native shell's own (configuration exit, TLS fetcher, token cache)
    }
    let secret = "0123456789abcdef0123456789abcdef";
    let config = TestConfig::new()
        .env("JWT_SECRET", secret)
        .env("JWT_LEEWAY", "0");
    let server = Server::start_on(Target::Native, config.clone());
    let exp = now() + 2;
    let token = support::jwt::hs256(secret.as_bytes(), &json!({"sub": "a", "exp": exp}));
    assert_eq!(validate(&server, &token).0, 200);
    assert_eq!(validate(&server, &token).0, 200);
    assert_eq!(
        metric(&server, "jwtv_token_cache_requests_total{result=\"hit\"}"),
        Some(1.0)
    );
    assert!(eventually(Duration::from_secs(5), || now() >= exp));
    assert_eq!(
        validate(&server, &token),
        (401, Some("token_expired".into()))
    );
    assert_eq!(auth(&server, &token), 401);

    let off = Server::start_on(Target::Native, config.env("JWT_TOKEN_CACHE_SIZE", "0"));
    assert_eq!(
        validate(
            &off,
            &support::jwt::hs256(secret.as_bytes(), &json!({"exp": now() + 60}))
        )
        .0,
        200
    );
    assert!(!off.get("/metrics").text().contains("jwtv_token_cache"));
}

// A seed key set (issue 23, item 3): served until the identity provider is first heard, and for as
// long as it never is; the first fetched set replaces it. Each `wasmtime serve` instance starts with
// the seed of its own, so these hold for every instance, not only for the first.

/// [`remote_config`] with `seed` as `JWT_JWKS_SEED_FILE`.
fn seeded_config(ks: &KeyServer, seed: &[&TestJwk]) -> TestConfig {
    remote_config(ks)
        .file("seed.json", jwks(seed).into_bytes())
        .env("JWT_JWKS_SEED_FILE", "{files}/seed.json")
}

#[test]
fn an_idp_down_from_the_start_with_a_seed_serves_valid_tokens_and_is_ready() {
    let key = TestJwk::es256("k1");
    let other = TestJwk::es256("k2");
    let ks = KeyServer::start(jwks(&[&key]));
    ks.set_mode(Mode::Down);
    let server = Server::start_on(Target::from_env(), seeded_config(&ks, &[&key]));
    // The provider was asked and could not answer: the seed serves.
    assert!(
        eventually(
            Duration::from_secs(8),
            while_serving(&server, || ks.connections() >= 1)
        ),
        "no fetch attempt"
    );
    for _ in 0..5 {
        assert_eq!(server.get("/readyz").status, 200);
        assert_eq!(validate(&server, &key.token(&claims(ISSUER))), (200, None));
        assert_eq!(auth(&server, &key.token(&claims(ISSUER))), 200);
    }
    assert_never_allowed(&server, &key, &other, "serving the seed");
    let logs = server.stderr_text();
    assert!(logs.contains("serving the seed key set"), "{logs}");
    assert!(!logs.contains("answering 503"), "{logs}");
}

#[test]
fn a_stalling_idp_with_a_seed_answers_from_the_seed_while_the_fetch_is_held() {
    let key = TestJwk::es256("k1");
    let ks = KeyServer::start(jwks(&[&key]));
    // Held for longer than the refetch wait, shorter than the fetch timeout: a request that waited
    // on the fetch would only be answered after the key server let go.
    ks.set_mode(Mode::Slow(Duration::from_secs(4)));
    // Not remote_config: its 1 s fetch timeout would end the fetch before the key server answers.
    let config = TestConfig::new()
        .env("JWT_JWKS_URI", ks.url(JWKS_PATH))
        .env("JWT_ALLOW_HTTP_LOOPBACK", "true")
        .env("JWT_ISSUER", ISSUER)
        .env("JWT_AUDIENCE", AUDIENCE)
        .env("JWT_FETCH_TIMEOUT", "8")
        .env("JWT_JWKS_REFETCH_WAIT_MS", "300")
        .file("seed.json", jwks(&[&key]).into_bytes())
        .env("JWT_JWKS_SEED_FILE", "{files}/seed.json");
    let server = Server::start_on(Target::from_env(), config);
    assert_eq!(validate(&server, &key.token(&claims(ISSUER))), (200, None));
    assert_eq!(
        ks.slow_answered(),
        0,
        "answered only once the key server let go of the fetch"
    );
    if server.target == Target::Wasm {
        // That first request itself made the fetch (no background task in a component).
        assert!(ks.requests(JWKS_PATH) >= 1);
    }
}

#[test]
fn the_first_fetch_replaces_the_seed_and_its_withdrawn_key_is_refused() {
    let withdrawn = TestJwk::es256("k1");
    let current = TestJwk::rs256("k2");
    let ks = KeyServer::start(jwks(&[&current]));
    let server = Server::start_on(Target::from_env(), seeded_config(&ks, &[&withdrawn]));
    // Once the provider has been heard, its set alone counts: not merged with the seed.
    assert!(
        eventually(Duration::from_secs(10), || validate(
            &server,
            &current.token(&claims(ISSUER))
        ) == (200, None)),
        "the fetched set never served"
    );
    for _ in 0..5 {
        assert_eq!(
            validate(&server, &withdrawn.token(&claims(ISSUER))),
            (401, Some("unknown_kid".into()))
        );
        assert_eq!(
            validate(&server, &current.token(&claims(ISSUER))),
            (200, None)
        );
    }
    assert_never_allowed(&server, &current, &withdrawn, "after the seed was replaced");
}

// scripts/bake fetches the key set while baking and bakes it in as the seed (component only).
#[test]
fn a_baked_component_starts_with_the_fetched_set_as_its_seed() {
    if server_target_is_not_bakeable() {
        return;
    }
    let key = TestJwk::es256("k1");
    let other = TestJwk::es256("k2");
    let ks = KeyServer::start(jwks(&[&key]));
    let server = Server::start_baked(remote_config(&ks), TestConfig::new());
    assert_eq!(ks.requests(JWKS_PATH), 1, "fetched once, while baking");
    // The provider is gone before any baked instance starts: the seed answers.
    ks.set_mode(Mode::Down);
    for _ in 0..5 {
        assert_eq!(server.get("/readyz").status, 200);
        assert_eq!(validate(&server, &key.token(&claims(ISSUER))), (200, None));
    }
    assert_never_allowed(&server, &key, &other, "baked seed, provider down");
    // Back with a rotated set: heard, it replaces the baked seed.
    ks.set_jwks(jwks(&[&other]));
    ks.set_mode(Mode::Normal);
    assert!(
        eventually(Duration::from_secs(10), || validate(
            &server,
            &other.token(&claims(ISSUER))
        ) == (200, None)),
        "the fetched set never replaced the baked seed"
    );
    // An instance that has not heard the provider yet still serves the seed; each one tries again once
    // its backoff is over, and then the withdrawn key is refused. Never another answer.
    let mut answers = Vec::new();
    let refused = eventually(Duration::from_secs(10), || {
        answers.push(validate(&server, &key.token(&claims(ISSUER))));
        answers.last() == Some(&(401, Some("unknown_kid".into())))
    });
    assert!(refused, "the withdrawn key kept passing: {answers:?}");
    assert!(
        answers
            .iter()
            .all(|a| a == &(200, None) || a == &(401, Some("unknown_kid".into()))),
        "{answers:?}"
    );
}

fn server_target_is_not_bakeable() -> bool {
    Target::from_env() != Target::Wasm || support::wasi_p3()
}

// ---------------------------------------------------------------------------------------------------
// IdP requests per validation, per host mode (docs/remote-keys.md, "The WebAssembly component, per
// host mode"). Counts of requests the key server saw, never times. `wasmtime serve` with
// `--max-instance-reuse-count 1` makes an instance per request, as Spin does for WASI 0.2
// components; Spin itself is not run here.

/// Validations per figure.
const VALIDATIONS: usize = 30;

/// Key-set requests `server` made for [`VALIDATIONS`] valid tokens (every one answered 200).
fn cost_of_validations(server: &Server, ks: &KeyServer, key: &TestJwk) -> usize {
    let before = ks.requests(JWKS_PATH);
    for i in 0..VALIDATIONS {
        let (status, code) = validate(server, &key.token(&claims(ISSUER)));
        assert_eq!(
            (status, code),
            (200, None),
            "validation {i}\n--- stderr ---\n{}",
            server.stderr_text()
        );
    }
    ks.requests(JWKS_PATH) - before
}

#[test]
fn requests_that_need_no_key_never_fetch_and_never_log_a_fetch() {
    if Target::from_env() != Target::Wasm {
        return; // the native server fetches in the background from its start
    }
    let key = TestJwk::es256("k1");
    let ks = KeyServer::start(jwks(&[&key]));
    let server = Server::start(remote_config(&ks));
    for _ in 0..10 {
        assert_eq!(server.get("/healthz").status, 200);
        assert_eq!(validate(&server, "not-a-token").0, 401);
        assert_eq!(auth(&server, "a.b"), 401);
        assert_eq!(server.get("/auth").status, 401, "no token");
    }
    assert_eq!(
        ks.requests(JWKS_PATH),
        0,
        "/healthz, malformed and missing tokens need no key"
    );
    assert!(
        !server.stderr_text().contains("key set"),
        "{}",
        server.stderr_text()
    );
    // /readyz with no set in hand fetches it; then a usable set answers without fetching.
    assert_eq!(server.get("/readyz").status, 200);
    let after_ready = ks.requests(JWKS_PATH);
    assert_eq!(after_ready, 1);
    for _ in 0..10 {
        assert_eq!(server.get("/readyz").status, 200);
        assert_eq!(server.get("/healthz").status, 200);
    }
    // A ready instance answers without fetching. `wasmtime serve` may still hand one of these
    // requests to a new instance (the previous one not back in its pool yet), whose first /readyz
    // fetches: at most one more, where a fetch per /readyz would be ten.
    let fetched = ks.requests(JWKS_PATH);
    assert!(
        (after_ready..=after_ready + 1).contains(&fetched),
        "a ready instance fetched: {fetched} fetches"
    );
    let logs = server.stderr_text();
    assert_eq!(
        logs.matches("key set fetched").count(),
        fetched,
        "one line per fetch: {logs}"
    );
}

#[test]
fn validations_in_reused_instances_cost_one_fetch_per_instance() {
    let key = TestJwk::es256("k1");
    let ks = KeyServer::start(jwks(&[&key]));
    let server = Server::start(remote_config(&ks));
    if server.target == Target::Native {
        // Fetched in the background from the start.
        wait_ready(&server, Duration::from_secs(10));
    }
    let cost = cost_of_validations(&server, &ks, &key);
    eprintln!("IdP requests for {VALIDATIONS} validations, instances reused: {cost}");
    match server.target {
        Target::Native => assert_eq!(cost, 0),
        // Sequential requests reuse an instance (64 requests each), whose first request fetches;
        // a request sent while the last one's instance is still returning to the pool gets a new
        // instance, so two instances (and fetches) are seen at times.
        Target::Wasm => assert!((1..=2).contains(&cost), "{cost}"),
    }
}

#[test]
fn an_instance_per_request_without_a_shared_store_fetches_once_per_validation() {
    if Target::from_env() != Target::Wasm || support::keyvalue() {
        return;
    }
    let key = TestJwk::es256("k1");
    let ks = KeyServer::start(jwks(&[&key]));
    let server = Server::start(remote_config(&ks).instance_reuse(1));
    let cost = cost_of_validations(&server, &ks, &key);
    eprintln!("IdP requests for {VALIDATIONS} validations, an instance per request: {cost}");
    // The cost a host such as Spin pays with the default build: what the key-value build removes.
    assert_eq!(cost, VALIDATIONS);
    for _ in 0..10 {
        assert_eq!(server.get("/healthz").status, 200);
    }
    assert_eq!(
        ks.requests(JWKS_PATH),
        VALIDATIONS,
        "/healthz fetches nothing"
    );
}

/// The lease keys of the first fetch of `ks`'s set for the lease period now and the next one (so a
/// period that ends during the test is covered): the store's key scheme (`jwtv_keyset::shared`),
/// with a fetch timeout of `timeout_secs`.
fn first_fetch_leases(ks: &KeyServer, timeout_secs: u64) -> [String; 2] {
    let period = timeout_secs * 2_000 + 1_000;
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let record = format!("jwt-validator/v1/{}", ks.url(JWKS_PATH));
    let window = now_ms / period;
    [
        format!("{record}/lease/0/{window}"),
        format!("{record}/lease/0/{}", window + 1),
    ]
}

/// `config` with a fetch timeout of `secs` instead of its own.
fn with_timeout(mut config: TestConfig, secs: u64) -> TestConfig {
    config.env.retain(|(name, _)| name != "JWT_FETCH_TIMEOUT");
    config.env("JWT_FETCH_TIMEOUT", secs.to_string())
}

#[test]
fn instances_that_find_the_fetch_lease_taken_serve_their_seed_without_fetching() {
    if !support::keyvalue() {
        return;
    }
    let key = TestJwk::es256("k1");
    let ks = KeyServer::start(jwks(&[&key]));
    // Another instance holds the lease of the app's first fetch: no instance of ours may fetch.
    let [now, next] = first_fetch_leases(&ks, 60);
    let config = with_timeout(seeded_config(&ks, &[&key]), 60)
        .instance_reuse(1)
        .keyvalue_entry(now, "1")
        .keyvalue_entry(next, "1");
    let server = Server::start(config);
    let cost = cost_of_validations(&server, &ks, &key);
    eprintln!("IdP requests for {VALIDATIONS} validations, lease held elsewhere: {cost}");
    assert_eq!(cost, 0, "{}", server.stderr_text());

    // Without the lease taken, each of these instances (whose store is its own under wasmtime serve)
    // takes it and fetches: the lease, not something else, kept the count at 0.
    let ks = KeyServer::start(jwks(&[&key]));
    let server = Server::start(with_timeout(seeded_config(&ks, &[&key]), 60).instance_reuse(1));
    assert_eq!(cost_of_validations(&server, &ks, &key), VALIDATIONS);
}

#[test]
fn an_instance_with_a_shared_store_fetches_once_and_keeps_serving_from_it() {
    if !support::keyvalue() {
        return;
    }
    let old = TestJwk::es256("old");
    let new = TestJwk::es256("new");
    let ks = KeyServer::start(jwks(&[&new]));
    // A seed the provider no longer publishes: the first token needs the fetch.
    let server = Server::start(seeded_config(&ks, &[&old]));
    let cost = cost_of_validations(&server, &ks, &new);
    eprintln!(
        "IdP requests for {VALIDATIONS} validations, key-value build, instances reused: {cost}"
    );
    // One per instance (see validations_in_reused_instances_cost_one_fetch_per_instance): the store
    // of `wasmtime serve -S keyvalue` is the instance's own.
    assert!((1..=2).contains(&cost), "{cost}\n{}", server.stderr_text());
    assert_eq!(validate(&server, &old.token(&claims(ISSUER))).0, 401);
}
