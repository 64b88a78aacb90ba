//! The shared record ([`crate::shared`]) composed with the refresh machine as the component's
//! key-value build drives them (`crates/component/src/kv.rs`, `refresh_shared`: the same
//! `adopt`, `fetch_due`, `lease_key`, `conclude`, with the store calls in between): every request a fresh
//! machine (an instance per request, as Spin makes them), one store for the app, a virtual clock. What
//! these prove is that the rules add up to "about one fetch per TTL for the app" and "one attempt per
//! backoff during an outage"; that the shell makes these calls is proven under `wasmtime serve -S
//! keyvalue` (`crates/server/tests/remote_keys.rs`), whose store is per instance.

use std::collections::HashMap;
use std::time::Duration;

use crate::{FetchError, FetchSettings, RemoteLocation, RemoteSource, Rules, Seed, Shared, Source};

const KEY: &str = r#"{"kty":"EC","crv":"P-256","kid":"a","alg":"ES256","x":"wvhwFCIic8_m92NIyh1NI3dmU9UVEY2udytFhKWVMVs","y":"Dran8KX9g5_J-dHqN4TFCDPIWWFikjzPvn54IjPD8sc"}"#;
const RECORD: &str = "jwt-validator/v1/https://idp.example.com/keys";
const TIMEOUT: u64 = 5_000;

fn document() -> Vec<u8> {
    format!(r#"{{"keys":[{KEY}]}}"#).into_bytes()
}

fn rules() -> Rules {
    Rules::from_settings(&FetchSettings {
        default_ttl: Duration::from_secs(600),
        ..FetchSettings::default()
    })
}

/// The app: its store, its identity provider, what the provider saw.
struct App {
    store: HashMap<String, Vec<u8>>,
    idp_up: bool,
    idp_requests: Vec<u64>,
}

impl App {
    fn new(idp_up: bool) -> App {
        App {
            store: HashMap::new(),
            idp_up,
            idp_requests: Vec::new(),
        }
    }

    fn increment(&mut self, key: &str) -> u64 {
        let value = self.store.get(key).map_or(0, |v| {
            String::from_utf8_lossy(v).parse::<u64>().unwrap_or(0)
        }) + 1;
        self.store
            .insert(key.to_owned(), value.to_string().into_bytes());
        value
    }

    /// One request needing the keys, in a fresh instance whose seed is the provider's set; whether
    /// it had a set to answer from.
    fn request(&mut self, now: u64, instance: u64) -> bool {
        let remote = RemoteSource {
            issuer: 0,
            location: RemoteLocation::JwksUri("https://idp.example.com/keys".into()),
            configured_at: "JWT_JWKS_URI".into(),
            seed: Some(Seed::parse(&document()).unwrap()),
        };
        let mut machine = Source::for_remote(&remote, rules(), instance);
        let mut record = self
            .store
            .get(RECORD)
            .map(|bytes| Shared::from_bytes(bytes).unwrap())
            .unwrap_or_default();
        record.adopt(&mut machine, now).unwrap();
        if !machine.busy() || !record.fetch_due(now) {
            return machine.key_set().is_some();
        }
        let lease = record.lease_key(RECORD, now, Shared::lease_period(TIMEOUT));
        if self.increment(&lease) != 1 {
            return machine.key_set().is_some();
        }
        record.attempted(now);
        while machine.poll_fetch(now).is_some() {
            self.idp_requests.push(now);
            if self.idp_up {
                machine.handle_fetched(now, &document(), None);
            } else {
                machine.handle_failed(now, FetchError::Timeout);
            }
        }
        match machine
            .fetched_at()
            .filter(|&at| at >= now)
            .and_then(|_| machine.export())
        {
            Some(snapshot) => record.succeeded(snapshot),
            None => record.failed(now, &rules()),
        }
        self.store.insert(RECORD.to_owned(), record.to_bytes());
        self.store.remove(&lease);
        machine.key_set().is_some()
    }
}

#[test]
fn per_request_instances_sharing_a_store_make_one_fetch_per_ttl_for_the_app() {
    let mut app = App::new(true);
    // 2,000 requests over 1,200 s: two TTLs of 600 s, each refresh brought forward by up to a fifth.
    for i in 0..2_000 {
        assert!(app.request(i * 600, i));
    }
    assert!(
        (2..=3).contains(&app.idp_requests.len()),
        "{:?}",
        app.idp_requests
    );
    assert_eq!(app.idp_requests[0], 0);
}

#[test]
fn an_outage_costs_the_app_one_attempt_per_backoff_and_the_seed_serves() {
    let mut app = App::new(false);
    // A request every 100 ms for 100 s: attempts at 0, then after 1, 2, 4, 8, 16, 32 s of backoff.
    for i in 0..1_000 {
        assert!(app.request(i * 100, i), "the seed serves");
    }
    assert_eq!(
        app.idp_requests,
        [0, 1_000, 3_000, 7_000, 15_000, 31_000, 63_000]
    );
    // Back up: the next attempt after the 60 s ceiling succeeds, and the app is served from then on.
    app.idp_up = true;
    for i in 1_000..2_000 {
        assert!(app.request(i * 100, i));
    }
    assert_eq!(app.idp_requests.len(), 8);
    assert_eq!(app.idp_requests[7], 123_000);
}

#[test]
fn a_holder_lost_mid_fetch_gives_way_after_one_lease_period() {
    let mut app = App::new(true);
    // An instance took the first lease at 0 and was killed before writing anything.
    let lost = Shared::default().lease_key(RECORD, 0, Shared::lease_period(TIMEOUT));
    app.increment(&lost);
    for i in 0..200 {
        assert!(app.request(i * 100, i));
    }
    assert_eq!(app.idp_requests, [Shared::lease_period(TIMEOUT)]);
}

#[test]
fn a_failed_unknown_kid_refetch_leaves_the_apps_schedule_and_a_failed_refresh_backs_it_off() {
    let mut record = Shared::default();
    record.succeeded(crate::Snapshot {
        body: document(),
        fetched_at: 0,
        refresh_at: 600_000,
        jwks_uri: None,
    });
    let mut machine = Source::new(
        RemoteLocation::JwksUri("https://idp.example.com/keys".into()),
        rules(),
        1,
    );
    machine.poll_fetch(10_000).unwrap();
    machine.handle_failed(10_000, FetchError::Timeout);
    record.conclude(&machine, 10_000, 10_000, &rules(), false);
    assert_eq!(record.next_fetch, 600_000);
    record.conclude(&machine, 10_000, 10_000, &rules(), true);
    assert_eq!(record.next_fetch, 11_000);
    // A fetch that succeeded is the app's set, whatever started it (here the retry, once due).
    machine.handle_timeout(12_000);
    machine.poll_fetch(12_000).unwrap();
    machine.handle_fetched(12_000, &document(), None);
    record.conclude(&machine, 12_000, 12_000, &rules(), false);
    assert_eq!(record.snapshot.as_ref().map(|s| s.fetched_at), Some(12_000));
    assert_eq!(record.failures, 0);
}
