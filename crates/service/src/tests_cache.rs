//! The token-cache contract: the service asks the shell's cache first, stores only verified tokens with
//! the ticket of the miss, and re-applies the time-dependent claim rules on every hit.

use crate::tests::token;
use crate::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, StatusCode};
use jwtv_verifier::{Key, KeyMaterial, KeyParams, KeySet, Limits, Policy};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

const NOW: u64 = 1_700_000_000;
use crate::tests::SECRET;

/// Keys that count how often the verifier asked for them.
struct CountingKeys {
    set: Arc<KeySet>,
    asked: AtomicUsize,
}

impl KeyStore for CountingKeys {
    fn key_set(&self, _: usize) -> Option<Arc<jwtv_verifier::KeySet>> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        Some(self.set.clone())
    }
}

/// A map with a fixed ticket, recording what was inserted.
#[derive(Default)]
struct MapCache {
    entries: Mutex<HashMap<String, Arc<Verified>>>,
    tickets: Mutex<Vec<u64>>,
}

impl TokenCache for MapCache {
    fn get(&self, token: &str, _now: u64) -> Lookup {
        match self.entries.lock().unwrap().get(token) {
            Some(v) => Lookup::Hit(v.clone()),
            None => Lookup::Miss { ticket: 7 },
        }
    }

    fn insert(&self, token: &str, verified: Arc<Verified>, ticket: u64) {
        self.tickets.lock().unwrap().push(ticket);
        self.entries
            .lock()
            .unwrap()
            .insert(token.to_owned(), verified);
    }
}

fn setup() -> (Service, Arc<CountingKeys>, Arc<MapCache>) {
    let key = Key::new(KeyMaterial::Hmac(SECRET.to_vec()), KeyParams::default()).unwrap();
    let keys = Arc::new(CountingKeys {
        set: Arc::new(KeySet::new(vec![key])),
        asked: AtomicUsize::new(0),
    });
    let policy = Policy {
        leeway_secs: 0,
        ..Policy::default()
    };
    let verifier = Verifier::new(vec![policy], Limits::default()).unwrap();
    let cache = Arc::new(MapCache::default());
    let service =
        Service::new(verifier, keys.clone(), Options::default()).with_token_cache(cache.clone());
    (service, keys, cache)
}

fn validate(s: &Service, token: &str, now: u64) -> Handled {
    let body = json!({ "token": token }).to_string();
    let req = Request::post("/validate")
        .header(CONTENT_TYPE, "application/json")
        .body(body.into_bytes())
        .unwrap();
    s.handle(&req, now)
}

#[test]
fn a_repeated_token_skips_verification_but_not_the_clock() {
    let (s, keys, cache) = setup();
    let t = token(json!({"sub": "a", "exp": NOW + 10}));
    let first = validate(&s, &t, NOW);
    assert_eq!(first.response.status(), StatusCode::OK);
    assert_eq!(keys.asked.load(Ordering::Relaxed), 1);
    assert_eq!(
        *cache.tickets.lock().unwrap(),
        [7],
        "stored with the miss's ticket"
    );

    let again = validate(&s, &t, NOW + 5);
    assert_eq!(again.response.status(), StatusCode::OK);
    assert_eq!(
        keys.asked.load(Ordering::Relaxed),
        1,
        "served from the cache"
    );
    let body: serde_json::Value = serde_json::from_slice(again.response.body()).unwrap();
    assert_eq!(
        body["expires_in"], 5,
        "expires_in is computed at the current time"
    );

    // Past exp, a cached entry is refused like any other token: exp is checked again on every hit.
    let late = validate(&s, &t, NOW + 10);
    assert_eq!(late.response.status(), StatusCode::UNAUTHORIZED);
    let decision = late.decision.unwrap();
    assert_eq!(decision.code, Some(Code::TokenExpired));
    assert_eq!(decision.issuer, Some(0));
    assert_eq!(keys.asked.load(Ordering::Relaxed), 1);
}

#[test]
fn refused_tokens_are_never_cached() {
    let (s, _, cache) = setup();
    let t = token(json!({"sub": "a", "exp": NOW - 1}));
    assert_eq!(
        validate(&s, &t, NOW).response.status(),
        StatusCode::UNAUTHORIZED
    );
    let (input, _) = t.rsplit_once('.').unwrap();
    let forged = format!("{input}.{}", B64.encode([0u8; 32]));
    assert_eq!(
        validate(&s, &forged, NOW).response.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(cache.entries.lock().unwrap().is_empty());
}

#[test]
fn the_gateway_uses_the_cache_too_and_decisions_name_the_issuer() {
    let (s, keys, _) = setup();
    let t = token(json!({"sub": "a", "exp": NOW + 100}));
    let req = Request::get("/auth")
        .header(AUTHORIZATION, format!("Bearer {t}"))
        .body(Vec::new())
        .unwrap();
    for _ in 0..3 {
        let handled = s.handle(&req, NOW);
        assert_eq!(handled.response.status(), StatusCode::OK);
        assert_eq!(handled.decision.unwrap().issuer, Some(0));
    }
    assert_eq!(keys.asked.load(Ordering::Relaxed), 1);
}
