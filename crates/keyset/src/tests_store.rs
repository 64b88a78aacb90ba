//! The store every shell's service reads, the words every shell logs, the headers every shell sends.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use jwtv_verifier::{KeySet, KeyStore};

use crate::document::parse_key_set;
use crate::{Event, FetchError, RemoteLocation, Rules, Slot, Source, Store};

const KEY: &str = r#"{"kty":"EC","crv":"P-256","kid":"a","alg":"ES256","x":"wvhwFCIic8_m92NIyh1NI3dmU9UVEY2udytFhKWVMVs","y":"Dran8KX9g5_J-dHqN4TFCDPIWWFikjzPvn54IjPD8sc"}"#;

fn key_set() -> Arc<KeySet> {
    let doc = format!(r#"{{"keys":[{KEY}]}}"#);
    Arc::new(parse_key_set(doc.as_bytes()).unwrap().0)
}

#[test]
fn a_fetched_issuer_has_no_set_until_one_is_installed_and_each_install_counts() {
    let configured = key_set();
    let store = Store::new(vec![Some(configured.clone()), None]);
    assert!(Arc::ptr_eq(&store.key_set(0).unwrap(), &configured));
    assert!(
        store.key_set(1).is_none(),
        "503 until fetched, never a verdict"
    );
    assert!(store.key_set(2).is_none());
    assert_eq!(store.generation(), 0);

    let fetched = key_set();
    assert_eq!(store.install(1, fetched.clone()), Some(1));
    assert!(Arc::ptr_eq(&store.key_set(1).unwrap(), &fetched));
    assert_eq!(store.install(1, fetched), None, "the same set again");
    assert_eq!(store.install(1, key_set()), Some(2));
    assert_eq!(store.install(5, key_set()), None, "no such issuer");
    assert_eq!(store.generation(), 2);
}

#[test]
fn a_reloaded_store_keeps_the_generation_and_the_slots_it_takes_over() {
    let old = Store::new(vec![None]);
    let slot = Arc::new(Slot::default());
    let counter: Arc<AtomicU64> = old.generation_counter();
    assert_eq!(slot.install(key_set(), &counter), Some(1));

    let mut new = Store::new(vec![None, None]).with_generation(old.generation_counter());
    new.share_slot(1, slot.clone());
    assert!(new.key_set(1).is_some(), "the carried-over set, no refetch");
    assert_eq!(new.generation(), 1);
    slot.install(key_set(), &counter);
    assert_eq!(
        new.generation(),
        2,
        "installs by a carried-over source count"
    );
}

#[test]
fn every_fetch_asks_for_json_as_jwt_validator() {
    let mut source = Source::new(
        RemoteLocation::JwksUri("https://idp.example.com/keys".into()),
        Rules::from_settings(&crate::FetchSettings::default()),
        1,
    );
    let fetch = source.poll_fetch(0).unwrap();
    assert_eq!(fetch.method, "GET");
    let header = |name: &str| {
        fetch
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    };
    assert_eq!(
        header("accept"),
        Some("application/json, application/jwk-set+json")
    );
    assert!(header("user-agent").is_some_and(|v| v.starts_with("jwt-validator/")));
}

#[test]
fn events_read_the_same_in_every_shell() {
    let line = |e: Event| e.to_string();
    assert_eq!(
        line(Event::Fetched {
            keys: 2,
            published: 3,
            ttl: 600_000
        }),
        "key set fetched: 2 usable key(s) of 3 published, ttl 600 s"
    );
    assert_eq!(
        line(Event::Failed {
            error: FetchError::Status(500),
            serving: true,
            seed: false
        }),
        "key set fetch failed: status 500 (expected 200); serving the last good key set"
    );
    assert!(
        line(Event::Failed {
            error: FetchError::Timeout,
            serving: false,
            seed: false
        })
        .ends_with("no key set yet: answering 503")
    );
    assert_eq!(
        line(Event::UnknownKidRefetch),
        "token with an unknown kid: refetching the key set"
    );
    assert_eq!(
        line(Event::Discovered {
            jwks_uri: "https://idp.example.com/keys".parse().unwrap()
        }),
        "OIDC discovery: jwks_uri https://idp.example.com/keys"
    );
    assert_eq!(
        Event::Failed {
            error: FetchError::Timeout,
            serving: true,
            seed: false
        }
        .level(),
        crate::Level::Warn
    );
    assert_eq!(Event::UnknownKidSuppressed.level(), crate::Level::Debug);
}
