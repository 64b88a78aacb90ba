//! The machine's rules on a virtual clock: `now` is a number the test moves, so nothing sleeps.

use std::time::Duration;

use crate::{FetchSettings, RemoteLocation};

use crate::{Event, Fetch, FetchError, Purpose, Reason, Rules, Snapshot, Source, UnknownKid};

const KEY_A: &str = r#"{"kty":"EC","crv":"P-256","kid":"a","alg":"ES256","x":"wvhwFCIic8_m92NIyh1NI3dmU9UVEY2udytFhKWVMVs","y":"Dran8KX9g5_J-dHqN4TFCDPIWWFikjzPvn54IjPD8sc"}"#;
const KEY_B: &str = r#"{"kty":"EC","crv":"P-256","kid":"b","alg":"ES256","x":"wvhwFCIic8_m92NIyh1NI3dmU9UVEY2udytFhKWVMVs","y":"Dran8KX9g5_J-dHqN4TFCDPIWWFikjzPvn54IjPD8sc"}"#;
const SECOND: u64 = 1_000;
const COOLDOWN: u64 = 30 * SECOND;
const WAIT: u64 = 2 * SECOND;

fn set(keys: &[&str]) -> Vec<u8> {
    format!(r#"{{"keys":[{}]}}"#, keys.join(",")).into_bytes()
}

fn rules() -> Rules {
    Rules::from_settings(&FetchSettings {
        min_ttl: Duration::from_secs(60),
        max_ttl: Duration::from_secs(86_400),
        default_ttl: Duration::from_secs(600),
        refetch_cooldown: Duration::from_millis(COOLDOWN),
        refetch_wait: Duration::from_millis(WAIT),
        ..FetchSettings::default()
    })
}

fn jwks_source() -> Source {
    Source::new(
        RemoteLocation::JwksUri("https://idp.example.com/keys".into()),
        rules(),
        7,
    )
}

fn events(source: &mut Source) -> Vec<Event> {
    std::iter::from_fn(|| source.poll_event()).collect()
}

/// A source that fetched `KEY_A` at `now` with the default TTL.
fn serving(now: u64) -> Source {
    let mut source = jwks_source();
    source.poll_fetch(now).unwrap();
    source.handle_fetched(now, &set(&[KEY_A]), None);
    events(&mut source);
    source
}

fn is_within_jitter(deadline: u64, from: u64, wait: u64) -> bool {
    (from + wait * 4 / 5..=from + wait).contains(&deadline)
}

// design/security.md, remote key sets: "if there was never one, answer 503" (not ready), retried with
// backoff.
#[test]
fn before_the_first_set_the_source_is_not_ready_and_retries_with_backoff() {
    let mut source = jwks_source();
    assert!(!source.is_ready());
    let fetch = source.poll_fetch(0).unwrap();
    assert_eq!(
        (fetch.purpose, fetch.reason, fetch.url.to_string().as_str()),
        (
            Purpose::KeySet,
            Reason::Start,
            "https://idp.example.com/keys"
        )
    );
    let mut now = 0;
    for (attempt, backoff) in [SECOND, 2 * SECOND, 4 * SECOND].into_iter().enumerate() {
        source.handle_failed(now, FetchError::Timeout);
        assert!(!source.is_ready(), "attempt {attempt}");
        assert_eq!(
            events(&mut source),
            [Event::Failed {
                error: FetchError::Timeout,
                serving: false,
                seed: false
            }]
        );
        let retry_at = source.poll_timeout().unwrap();
        assert!(is_within_jitter(retry_at, now, backoff), "{retry_at}");
        source.handle_timeout(retry_at - 1);
        assert_eq!(
            source.poll_fetch(retry_at - 1),
            None,
            "not before the deadline"
        );
        now = retry_at;
        source.handle_timeout(now);
        assert_eq!(source.poll_fetch(now).unwrap().reason, Reason::Retry);
    }
    source.handle_fetched(now, &set(&[KEY_A]), None);
    assert!(source.is_ready());
    assert_eq!(source.generation(), 1);
}

// design/security.md: "Cache with a TTL", max-age within the configured bounds.
#[test]
fn max_age_is_clamped_to_the_configured_bounds() {
    let rules = rules();
    assert_eq!(rules.ttl(Some(1)), 60 * SECOND, "below the minimum");
    assert_eq!(
        rules.ttl(Some(u64::MAX)),
        86_400 * SECOND,
        "above the maximum"
    );
    assert_eq!(rules.ttl(Some(3_600)), 3_600 * SECOND);
    assert_eq!(rules.ttl(None), 600 * SECOND, "no max-age: the default");
    let mut source = jwks_source();
    source.poll_fetch(0).unwrap();
    source.handle_fetched(0, &set(&[KEY_A]), Some(3_600));
    assert!(is_within_jitter(
        source.poll_timeout().unwrap(),
        0,
        3_600 * SECOND
    ));
}

#[test]
fn the_set_is_refreshed_when_its_ttl_runs_out() {
    let mut source = serving(0);
    let due = source.poll_timeout().unwrap();
    assert!(is_within_jitter(due, 0, 600 * SECOND), "{due}");
    source.handle_timeout(due);
    let fetch = source.poll_fetch(due).unwrap();
    assert_eq!(fetch.reason, Reason::Refresh);
    source.handle_fetched(due, &set(&[KEY_B]), None);
    assert_eq!(source.generation(), 2);
    assert_eq!(source.key_set().unwrap().keys()[0].kid(), Some("b"));
}

// design/security.md: "On fetch failure keep serving the last good key set".
#[test]
fn the_last_good_set_is_served_through_an_outage() {
    let mut source = serving(0);
    let due = source.poll_timeout().unwrap();
    source.handle_timeout(due);
    source.poll_fetch(due).unwrap();
    source.handle_failed(due, FetchError::Status(503));
    assert_eq!(
        events(&mut source),
        [Event::Failed {
            error: FetchError::Status(503),
            serving: true,
            seed: false
        }]
    );
    assert_eq!(source.generation(), 1);
    assert_eq!(source.key_set().unwrap().keys()[0].kid(), Some("a"));
    assert!(is_within_jitter(
        source.poll_timeout().unwrap(),
        due,
        SECOND
    ));
    // A garbage document is a failure too, not a new (empty) set.
    let retry = source.poll_timeout().unwrap();
    source.handle_timeout(retry);
    source.poll_fetch(retry).unwrap();
    source.handle_fetched(retry, b"<html>oops</html>", None);
    assert!(matches!(
        events(&mut source)[..],
        [Event::Failed { serving: true, .. }]
    ));
    assert_eq!(source.key_set().unwrap().keys()[0].kid(), Some("a"));
}

#[test]
fn the_same_document_twice_changes_nothing() {
    let mut source = serving(0);
    let due = source.poll_timeout().unwrap();
    source.handle_timeout(due);
    source.poll_fetch(due).unwrap();
    source.handle_fetched(due, &set(&[KEY_A]), Some(120));
    assert_eq!(
        events(&mut source),
        [Event::Unchanged { ttl: 120 * SECOND }]
    );
    assert_eq!(source.generation(), 1);
    assert_eq!(source.fetched_at(), Some(due));
}

// design/security.md: "refetch on an unknown kid at most once per cooldown (30 s) with a single
// flight, so a stream of random kids cannot make a fetch storm".
#[test]
fn unknown_kids_within_the_cooldown_make_one_fetch() {
    let mut source = serving(0);
    let seen = source.generation();
    for now in [SECOND, 10 * SECOND, COOLDOWN - 1] {
        assert_eq!(source.handle_unknown_kid(now, seen), UnknownKid::Suppressed);
        assert_eq!(source.poll_fetch(now), None);
    }
    assert_eq!(
        events(&mut source),
        [
            Event::UnknownKidSuppressed,
            Event::UnknownKidSuppressed,
            Event::UnknownKidSuppressed
        ],
        "counted for the metrics"
    );
    let now = COOLDOWN;
    assert_eq!(
        source.handle_unknown_kid(now, seen),
        UnknownKid::Wait { until: now + WAIT }
    );
    assert_eq!(events(&mut source), [Event::UnknownKidRefetch]);
    let fetch = source.poll_fetch(now).unwrap();
    assert_eq!(fetch.reason, Reason::UnknownKid);
    // A spray during the fetch joins it: no second request, the same bound.
    for later in [now + 1, now + 500] {
        assert_eq!(
            source.handle_unknown_kid(later, seen),
            UnknownKid::Wait { until: now + WAIT }
        );
        assert_eq!(source.poll_fetch(later), None, "single flight");
    }
    assert_eq!(
        events(&mut source),
        [Event::UnknownKidSuppressed, Event::UnknownKidSuppressed],
        "joiners make no fetch of their own"
    );
    source.handle_fetched(now + 600, &set(&[KEY_A, KEY_B]), None);
    assert!(!source.busy(), "waiters stop waiting");
    assert_eq!(
        source.handle_unknown_kid(now + 601, seen),
        UnknownKid::Retry
    );
    // The new kid found nothing new for the next spray: suppressed again, no fetch.
    let seen = source.generation();
    assert_eq!(
        source.handle_unknown_kid(now + 700, seen),
        UnknownKid::Suppressed
    );
}

// design/security.md: "at most once per cooldown", period after period: a kid the provider never
// publishes, sent every second for ten cooldowns, makes one fetch per cooldown and no more (the
// native suite's spray relied on sleeping through real cooldowns for this).
#[test]
fn an_unknown_kid_every_second_makes_one_fetch_per_cooldown() {
    let mut source = serving(0);
    let mut fetched_at = Vec::new();
    for now in (SECOND..=10 * COOLDOWN).step_by(SECOND as usize) {
        let seen = source.generation();
        let answer = source.handle_unknown_kid(now, seen);
        match source.poll_fetch(now) {
            Some(fetch) => {
                assert_eq!(fetch.reason, Reason::UnknownKid);
                assert_eq!(answer, UnknownKid::Wait { until: now + WAIT });
                fetched_at.push(now);
                // The provider answers at once, with nothing new.
                source.handle_fetched(now, &set(&[KEY_A]), None);
            }
            None => assert_eq!(answer, UnknownKid::Suppressed, "at {now}"),
        }
    }
    let expected: Vec<u64> = (1..=10).map(|n| n * COOLDOWN).collect();
    assert_eq!(fetched_at, expected);
    let refetches = events(&mut source)
        .into_iter()
        .filter(|e| *e == Event::UnknownKidRefetch)
        .count();
    assert_eq!(refetches, 10, "each counted for the metrics");
}

// The cooldown counts from the last attempt, whatever caused it (unlike jose, which counts from the
// last unknown-kid refetch): a refresh that just happened is as fresh as a refetch.
#[test]
fn the_cooldown_counts_from_the_last_attempt_whatever_caused_it() {
    let mut source = serving(0);
    let due = source.poll_timeout().unwrap();
    source.handle_timeout(due);
    source.poll_fetch(due).unwrap();
    source.handle_failed(due + 5 * SECOND, FetchError::Timeout);
    assert_eq!(
        source.handle_unknown_kid(due + 6 * SECOND, 1),
        UnknownKid::Suppressed
    );
    assert!(matches!(
        source.handle_unknown_kid(due + COOLDOWN, 1),
        UnknownKid::Wait { .. }
    ));
}

// A failed unknown-kid refetch leaves the served set and its refresh deadline alone.
#[test]
fn a_failed_unknown_kid_refetch_keeps_the_set_and_its_schedule() {
    let mut source = serving(0);
    let refresh = source.poll_timeout().unwrap();
    source.handle_unknown_kid(COOLDOWN, 1);
    source.poll_fetch(COOLDOWN).unwrap();
    source.handle_failed(COOLDOWN + 10, FetchError::Connect("refused".into()));
    assert!(!source.busy());
    assert_eq!(source.poll_timeout(), Some(refresh));
    assert!(source.is_ready());
}

#[test]
fn an_answer_without_a_fetch_under_way_is_ignored() {
    let mut source = serving(0);
    source.handle_fetched(5, &set(&[KEY_B]), None);
    source.handle_failed(6, FetchError::Timeout);
    assert_eq!(source.generation(), 1);
    assert!(events(&mut source).is_empty());
}

fn discovery_source() -> Source {
    Source::new(
        RemoteLocation::Discovery {
            issuer: "https://idp.example.com".into(),
            url: "https://idp.example.com/.well-known/openid-configuration".into(),
        },
        rules(),
        7,
    )
}

fn answer_discovery(source: &mut Source, now: u64, issuer: &str) -> Fetch {
    let fetch = source.poll_fetch(now).unwrap();
    assert_eq!(fetch.purpose, Purpose::Discovery);
    let document = format!(r#"{{"issuer":"{issuer}","jwks_uri":"https://keys.example.com/jwks"}}"#);
    source.handle_fetched(now, document.as_bytes(), None);
    fetch
}

// design/security.md: discovery of a configured issuer "whose issuer must equal the configured one".
#[test]
fn discovery_with_a_mismatched_issuer_installs_nothing() {
    let mut source = discovery_source();
    answer_discovery(&mut source, 0, "https://evil.example.com");
    assert_eq!(source.poll_fetch(0), None, "no key set fetched");
    assert!(!source.is_ready());
    assert!(matches!(
        &events(&mut source)[..],
        [Event::Failed {
            error: FetchError::Discovery(_),
            serving: false,
            seed: false
        }]
    ));
}

#[test]
fn discovery_is_kept_until_a_fetch_through_it_fails() {
    let mut source = discovery_source();
    answer_discovery(&mut source, 0, "https://idp.example.com");
    let keys = source.poll_fetch(0).unwrap();
    assert_eq!(
        (keys.purpose, keys.url.to_string().as_str()),
        (Purpose::KeySet, "https://keys.example.com/jwks")
    );
    source.handle_fetched(0, &set(&[KEY_A]), None);
    let due = source.poll_timeout().unwrap();
    source.handle_timeout(due);
    assert_eq!(source.poll_fetch(due).unwrap().purpose, Purpose::KeySet);
    source.handle_failed(due, FetchError::Status(404));
    let retry = source.poll_timeout().unwrap();
    source.handle_timeout(retry);
    assert_eq!(
        source.poll_fetch(retry).unwrap().purpose,
        Purpose::Discovery,
        "the provider may have moved its keys"
    );
}

// The discovery and its key set are one attempt: an unknown kid waits from its start.
#[test]
fn a_discovered_key_set_continues_the_same_attempt() {
    let mut source = discovery_source();
    answer_discovery(&mut source, 0, "https://idp.example.com");
    source.poll_fetch(300).unwrap();
    assert_eq!(
        source.handle_unknown_kid(400, 0),
        UnknownKid::Wait { until: WAIT }
    );
}

// Short-lived instances share one fetch through a snapshot (wasi:keyvalue, proxy-wasm shared data).
#[test]
fn an_imported_snapshot_serves_without_a_fetch_until_its_refresh() {
    let exported = serving(0).export().unwrap();
    let snapshot = Snapshot::from_bytes(&exported.to_bytes()).unwrap();
    let mut fresh = jwks_source();
    fresh.import(&snapshot).unwrap();
    assert!(fresh.is_ready());
    fresh.handle_timeout(10 * SECOND);
    assert_eq!(fresh.poll_fetch(10 * SECOND), None);
    assert_eq!(fresh.poll_timeout(), Some(snapshot.refresh_at));
    fresh.handle_timeout(snapshot.refresh_at);
    assert_eq!(
        fresh.poll_fetch(snapshot.refresh_at).unwrap().reason,
        Reason::Refresh
    );

    let mut newer = serving(50 * SECOND);
    newer.import(&snapshot).unwrap();
    assert_eq!(
        newer.fetched_at(),
        Some(50 * SECOND),
        "an older snapshot is ignored"
    );

    let garbage = Snapshot {
        body: b"{}".to_vec(),
        ..snapshot
    };
    assert!(jwks_source().import(&garbage).is_err());
}

#[test]
fn sources_with_their_own_seeds_refresh_at_different_times() {
    let deadlines: std::collections::BTreeSet<u64> = (0..20)
        .map(|seed| {
            let mut source = Source::new(
                RemoteLocation::JwksUri("https://idp.example.com/keys".into()),
                rules(),
                seed,
            );
            source.poll_fetch(0).unwrap();
            source.handle_fetched(0, &set(&[KEY_A]), None);
            source.poll_timeout().unwrap()
        })
        .collect();
    assert!(deadlines.len() > 15, "{deadlines:?}");
}

// A seed key set (issue 23): served until the first successful fetch, replaced (not merged) by it.

fn seeded_source(keys: &[&str]) -> Source {
    let remote = crate::RemoteSource {
        issuer: 0,
        location: RemoteLocation::JwksUri("https://idp.example.com/keys".into()),
        configured_at: "JWT_JWKS_URI".into(),
        seed: Some(crate::Seed::parse(&set(keys)).unwrap()),
    };
    Source::for_remote(&remote, rules(), 7)
}

fn kids(source: &Source) -> Vec<String> {
    source
        .key_set()
        .unwrap()
        .keys()
        .iter()
        .filter_map(|k| k.kid().map(str::to_owned))
        .collect()
}

#[test]
fn a_seed_is_served_and_ready_before_the_first_fetch() {
    let mut source = seeded_source(&[KEY_A]);
    assert!(source.is_ready());
    assert!(source.serving_seed());
    assert_eq!(kids(&source), ["a"]);
    // The provider is still asked at once.
    let fetch = source.poll_fetch(0).unwrap();
    assert_eq!(fetch.reason, Reason::Start);
    // A fetch may hold a request no longer than the refetch wait while only the seed is in hand.
    assert_eq!(source.fetch_budget(5 * SECOND), WAIT);
}

#[test]
fn a_seed_is_served_while_every_fetch_fails_and_retried_with_backoff() {
    let mut source = seeded_source(&[KEY_A]);
    let mut now = 0;
    for backoff in [SECOND, 2 * SECOND, 4 * SECOND] {
        let fetch = source.poll_fetch(now).unwrap();
        assert_ne!(fetch.reason, Reason::Refresh);
        source.handle_failed(now, FetchError::Status(500));
        assert_eq!(
            events(&mut source),
            [Event::Failed {
                error: FetchError::Status(500),
                serving: true,
                seed: true
            }]
        );
        assert_eq!(kids(&source), ["a"]);
        let at = source.poll_timeout().unwrap();
        assert!(is_within_jitter(at, now, backoff));
        now = at;
        source.handle_timeout(now);
    }
    assert_eq!(source.generation(), 0);
}

#[test]
fn the_first_fetch_replaces_the_seed_and_a_withdrawn_key_is_gone() {
    let mut source = seeded_source(&[KEY_A]);
    source.poll_fetch(0).unwrap();
    source.handle_fetched(0, &set(&[KEY_B]), None);
    assert!(!source.serving_seed());
    assert_eq!(kids(&source), ["b"], "replaced, not merged");
    assert_eq!(source.generation(), 1);
    assert_eq!(source.fetch_budget(5 * SECOND), 5 * SECOND);
}

#[test]
fn the_seed_document_fetched_again_counts_as_heard() {
    let mut source = seeded_source(&[KEY_A]);
    source.poll_fetch(0).unwrap();
    source.handle_fetched(0, &set(&[KEY_A]), None);
    assert!(!source.serving_seed());
    assert!(matches!(events(&mut source)[..], [Event::Fetched { .. }]));
}

// After a success, a failed refresh keeps the last good fetched set, never the seed again.
#[test]
fn after_a_fetch_a_failed_refresh_keeps_the_fetched_set_not_the_seed() {
    let mut source = seeded_source(&[KEY_A]);
    source.poll_fetch(0).unwrap();
    source.handle_fetched(0, &set(&[KEY_B]), None);
    events(&mut source);
    let at = source.poll_timeout().unwrap();
    source.handle_timeout(at);
    let fetch = source.poll_fetch(at).unwrap();
    assert_eq!(fetch.reason, Reason::Refresh);
    source.handle_failed(at, FetchError::Timeout);
    assert_eq!(
        events(&mut source),
        [Event::Failed {
            error: FetchError::Timeout,
            serving: true,
            seed: false
        }]
    );
    assert_eq!(kids(&source), ["b"]);
}

#[test]
fn a_seed_without_a_usable_key_is_refused() {
    assert!(matches!(
        crate::Seed::parse(br#"{"keys":[]}"#),
        Err(FetchError::NoUsableKeys(_))
    ));
    assert!(crate::Seed::parse(b"not json").is_err());
}
