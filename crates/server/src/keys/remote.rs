//! One remote key source: the live key set of one issuer, how it is refreshed, and its statistics.
//!
//! The rules of `design/security.md` ("Remote key sets"):
//! - fetched at start in the background, retried with backoff until the first success (until then the
//!   issuer has no key set: the service answers 503 and `/readyz` waits);
//! - refreshed in the background when its TTL (`Cache-Control: max-age` within bounds) runs out,
//!   brought forward by up to a fifth ([`super::jitter`]) so replicas do not refresh in lockstep;
//! - refetched for a token naming an unknown `kid` at most once per cooldown, in a single flight: every
//!   fetch of a source holds `flight`, so concurrent unknown kids wait on the fetch under way and then
//!   find it recent; none waits longer than the refetch wait, after which the fetch goes on in its own
//!   task for the requests that come next;
//! - a failed fetch never removes the last good set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use http::Uri;
use jwtv_service::config::{FetchSettings, RemoteLocation, RemoteSource, check_remote_url};
use jwtv_service::verifier::{KeySet, Unusable, parse_jwks};
use serde_json::Value;

use super::fetch::{FetchError, Fetcher};
use super::jitter::Jitter;

/// First retry delay after a failure; doubled per failure up to [`MAX_BACKOFF`] (or the default TTL when
/// that is shorter, so a short-TTL test setup retries as often as it refreshes).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Counters and gauges of one source, read by `/metrics`.
#[derive(Default)]
pub struct Stats {
    /// Successful fetches (changed or not).
    pub ok: AtomicU64,
    /// Failed fetches, by [`FetchError::KINDS`].
    pub errors: [AtomicU64; FetchError::KINDS.len()],
    /// Sum of fetch durations in microseconds, and their count (every attempt).
    pub duration_sum_us: AtomicU64,
    pub duration_count: AtomicU64,
    /// Keys in the set in use.
    pub keys: AtomicU64,
    /// Refetches caused by tokens with an unknown `kid`, and those refused by the cooldown.
    pub unknown_kid_refetches: AtomicU64,
    pub unknown_kid_suppressed: AtomicU64,
    /// Requests with an unknown `kid` answered from the set in hand because the refetch outlasted the
    /// refetch wait.
    pub unknown_kid_wait_expired: AtomicU64,
}

/// What the last fetches left behind, under one small lock.
#[derive(Default)]
struct Progress {
    /// Start of the last fetch attempt, whatever caused it: the unknown-kid cooldown counts from here.
    last_attempt: Option<Instant>,
    /// Start of the fetch under way, if one is: unknown-kid waits are bounded from here.
    fetching_since: Option<Instant>,
    /// End of the last successful fetch: the age of the set in use counts from here.
    last_success: Option<Instant>,
    /// SHA-256 of the document behind the set in use; an identical document changes nothing.
    digest: Option<[u8; 32]>,
    /// Keys the document behind the set in use published, usable or not (for the log line).
    published: usize,
    /// The `jwks_uri` found by discovery, kept until a fetch through it fails.
    discovered: Option<Uri>,
}

/// How a successful fetch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new set was installed.
    Changed,
    /// The same document as the set in use.
    Unchanged,
}

pub struct Remote {
    pub source: RemoteSource,
    /// The issuer as configured, for logs and metric labels (`(default)` for the default issuer).
    pub label: String,
    settings: FetchSettings,
    fetcher: Arc<Fetcher>,
    current: RwLock<Option<Arc<KeySet>>>,
    progress: Mutex<Progress>,
    /// Held by every fetch of this source: at most one at a time. Owned guards, so a fetch task can
    /// hold it.
    flight: Arc<tokio::sync::Mutex<()>>,
    /// The store's generation, bumped after every installed set (all sources): the token cache and
    /// unknown-kid retries compare against it.
    generation: Arc<AtomicU64>,
    /// The value of `generation` this source's last installation produced.
    changed_at: AtomicU64,
    pub stats: Stats,
}

impl Remote {
    pub fn new(
        source: RemoteSource,
        label: String,
        settings: FetchSettings,
        fetcher: Arc<Fetcher>,
        generation: Arc<AtomicU64>,
    ) -> Remote {
        Remote {
            source,
            label,
            settings,
            fetcher,
            current: RwLock::new(None),
            progress: Mutex::new(Progress::default()),
            flight: Arc::new(tokio::sync::Mutex::new(())),
            generation,
            changed_at: AtomicU64::new(0),
            stats: Stats::default(),
        }
    }

    /// The set in use, if a fetch ever succeeded.
    pub fn key_set(&self) -> Option<Arc<KeySet>> {
        // A poisoned lock still holds a valid `Option<Arc<_>>` (writers only assign it).
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Seconds since the last successful fetch, if any.
    pub fn age(&self) -> Option<Duration> {
        self.progress().last_success.map(|t| t.elapsed())
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fetches at start, then refreshes at every TTL; retries failures with backoff; both waits
    /// jittered. Runs until the runtime stops.
    pub async fn run(self: Arc<Self>) {
        let mut jitter = Jitter::from_system();
        let mut backoff = FIRST_BACKOFF;
        let backoff_cap = MAX_BACKOFF
            .min(self.settings.default_ttl)
            .max(FIRST_BACKOFF);
        loop {
            let result = {
                let _flight = self.flight.lock().await;
                self.fetch_in_flight().await
            };
            let wait = match result {
                Ok((_, ttl)) => {
                    backoff = FIRST_BACKOFF;
                    ttl
                }
                Err(_) => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(backoff_cap);
                    wait
                }
            };
            tokio::time::sleep(jitter.spread(wait)).await;
        }
    }

    /// After a token named a `kid` the set lacks: refetches unless a fetch started within the cooldown,
    /// waiting on the fetch already under way if there is one. `seen` is the store generation read
    /// before the token was verified. Returns whether this source's set changed since then (the caller
    /// then verifies once more).
    ///
    /// Waits at most the refetch wait from the start of the fetch it joins or starts; past it, answers
    /// `false`, and the fetch finishes in its own task.
    pub async fn refetch_for_unknown_kid(self: &Arc<Self>, seen: u64) -> bool {
        if self.changed_since(seen) {
            return true;
        }
        // Counted from the start of the fetch under way, if any: once a fetch has outlasted the
        // wait, the requests that keep coming are answered at once instead of each waiting again.
        let since = self.progress().fetching_since.unwrap_or_else(Instant::now);
        let deadline = since + self.settings.refetch_wait;
        match tokio::time::timeout_at(deadline.into(), self.refetch_or_join(seen)).await {
            Ok(changed) => changed,
            Err(_) => {
                self.stats
                    .unknown_kid_wait_expired
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    async fn refetch_or_join(self: &Arc<Self>, seen: u64) -> bool {
        if self.changed_since(seen) {
            return true;
        }
        let flight = self.flight.clone().lock_owned().await;
        if self.changed_since(seen) {
            return true;
        }
        let recent = self
            .progress()
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.settings.refetch_cooldown);
        if recent {
            self.stats
                .unknown_kid_suppressed
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.stats
            .unknown_kid_refetches
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            issuer = %self.label,
            "token with an unknown kid: refetching the key set"
        );
        // The fetch runs in its own task, holding the flight, so a request that stops waiting or whose
        // client leaves does not cancel the fetch the other waiters and the next requests rely on.
        let this = self.clone();
        let task = tokio::spawn(async move {
            let _flight = flight;
            this.fetch_in_flight().await
        });
        matches!(task.await, Ok(Ok((Outcome::Changed, _))))
    }

    fn changed_since(&self, seen: u64) -> bool {
        self.changed_at.load(Ordering::Acquire) > seen
    }

    /// One fetch; the caller holds `flight`. Returns the outcome and the TTL of the set.
    async fn fetch_in_flight(&self) -> Result<(Outcome, Duration), FetchError> {
        let started = Instant::now();
        {
            let mut progress = self.progress();
            progress.last_attempt = Some(started);
            progress.fetching_since = Some(started);
        }
        let result = self.fetch_and_install().await;
        self.progress().fetching_since = None;
        let elapsed = started.elapsed();
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.stats.duration_sum_us.fetch_add(us, Ordering::Relaxed);
        self.stats.duration_count.fetch_add(1, Ordering::Relaxed);
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok((outcome, ttl)) => {
                self.stats.ok.fetch_add(1, Ordering::Relaxed);
                let keys = self.stats.keys.load(Ordering::Relaxed);
                match outcome {
                    Outcome::Changed => tracing::info!(
                        issuer = %self.label,
                        keys,
                        skipped = (self.progress().published as u64).saturating_sub(keys),
                        kids = %self.kids(),
                        ttl_s = ttl.as_secs(),
                        duration_ms,
                        "key set fetched"
                    ),
                    Outcome::Unchanged => tracing::debug!(
                        issuer = %self.label,
                        keys,
                        ttl_s = ttl.as_secs(),
                        duration_ms,
                        "key set unchanged"
                    ),
                }
            }
            Err(error) => {
                self.stats.errors[error.kind_index()].fetch_add(1, Ordering::Relaxed);
                let serving = self.key_set().is_some();
                tracing::warn!(
                    issuer = %self.label,
                    source = %self.source.configured_at,
                    error_kind = error.kind(),
                    %error,
                    duration_ms,
                    serving = if serving { "the last good key set" } else { "503: no key set yet" },
                    "key set fetch failed"
                );
            }
        }
        result
    }

    async fn fetch_and_install(&self) -> Result<(Outcome, Duration), FetchError> {
        let jwks_uri = self.jwks_uri().await?;
        let fetched = match self.fetcher.get(&jwks_uri).await {
            Ok(fetched) => fetched,
            Err(e) => {
                // A provider may have moved its keys: discover again next time.
                self.progress().discovered = None;
                return Err(e);
            }
        };
        let ttl = self.ttl(fetched.max_age);
        let digest = sha256(&fetched.body);
        if self.progress().digest == Some(digest) && self.key_set().is_some() {
            self.progress().last_success = Some(Instant::now());
            return Ok((Outcome::Unchanged, ttl));
        }
        let (set, published) = parse_key_set(&fetched.body)?;
        self.stats
            .keys
            .store(set.keys().len() as u64, Ordering::Relaxed);
        {
            let mut current = match self.current.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            *current = Some(Arc::new(set));
        }
        // After the set is in place: whoever reads the new generation also reads the new set.
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed_at.store(generation, Ordering::Release);
        let mut progress = self.progress();
        progress.digest = Some(digest);
        progress.published = published;
        progress.last_success = Some(Instant::now());
        Ok((Outcome::Changed, ttl))
    }

    /// The key-set URL: configured, or found through discovery (and kept).
    async fn jwks_uri(&self) -> Result<Uri, FetchError> {
        let allow_http = self.settings.allow_http_loopback;
        let (issuer, url) = match &self.source.location {
            RemoteLocation::JwksUri(url) => {
                return check_remote_url(url, allow_http).map_err(FetchError::Invalid);
            }
            RemoteLocation::Discovery { issuer, url } => (issuer, url),
        };
        if let Some(uri) = self.progress().discovered.clone() {
            return Ok(uri);
        }
        let discovery = check_remote_url(url, allow_http).map_err(FetchError::Discovery)?;
        let document = self.fetcher.get(&discovery).await?;
        let uri = jwks_uri_of(&document.body, issuer, allow_http)?;
        tracing::info!(issuer = %self.label, jwks_uri = %uri, "OIDC discovery");
        self.progress().discovered = Some(uri.clone());
        Ok(uri)
    }

    fn ttl(&self, max_age: Option<u64>) -> Duration {
        match max_age {
            Some(secs) => {
                Duration::from_secs(secs).clamp(self.settings.min_ttl, self.settings.max_ttl)
            }
            None => self.settings.default_ttl,
        }
    }

    /// The kids of the set in use, for the fetch log line (identifiers, never key material).
    fn kids(&self) -> String {
        let Some(set) = self.key_set() else {
            return String::new();
        };
        let kids: Vec<String> = set
            .keys()
            .iter()
            .take(20)
            .map(|k| {
                k.kid()
                    .map(|kid| {
                        kid.chars()
                            .take(64)
                            .collect::<String>()
                            .escape_debug()
                            .to_string()
                    })
                    .unwrap_or_else(|| "(none)".to_owned())
            })
            .collect();
        kids.join(",")
    }
}

/// A published key set: `{"keys": [...]}`. Keys we cannot use (encryption keys, algorithms or curves we
/// do not implement, malformed entries) are skipped; symmetric (`oct`) keys are skipped too, since a
/// secret published at a URL proves nothing. No usable key at all is a failed fetch. Also returns how
/// many keys were published.
pub fn parse_key_set(body: &[u8]) -> Result<(KeySet, usize), FetchError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| FetchError::Invalid(format!("not JSON ({e})")))?;
    let Some(keys) = root.get("keys").and_then(Value::as_array) else {
        return Err(FetchError::Invalid(
            "not a JWK Set (no \"keys\" array)".into(),
        ));
    };
    let published = keys.len();
    let asymmetric: Vec<&Value> = keys
        .iter()
        .filter(|k| k.get("kty").and_then(Value::as_str) != Some("oct"))
        .collect();
    let document = serde_json::to_vec(&serde_json::json!({ "keys": asymmetric }))
        .map_err(|e| FetchError::Invalid(e.to_string()))?;
    let set = parse_jwks(&document, Unusable::Skip, false)
        .map_err(|e| FetchError::Invalid(e.to_string()))?;
    if set.is_empty() {
        return Err(FetchError::NoUsableKeys(format!(
            "none of the {published} published keys is a signature key we support"
        )));
    }
    Ok((set, published))
}

/// The `jwks_uri` of a discovery document whose `issuer` is exactly `issuer` (OpenID Connect Discovery
/// 1.0 §4.3: anything else may be an attacker's document for another issuer).
pub fn jwks_uri_of(body: &[u8], issuer: &str, allow_http: bool) -> Result<Uri, FetchError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| FetchError::Discovery(format!("the document is not JSON ({e})")))?;
    let found = root.get("issuer").and_then(Value::as_str);
    if found != Some(issuer) {
        let shown: String = found.unwrap_or("(none)").chars().take(200).collect();
        return Err(FetchError::Discovery(format!(
            "the document's issuer {shown:?} is not the configured issuer {issuer:?}"
        )));
    }
    let uri = root
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| FetchError::Discovery("the document has no jwks_uri".into()))?;
    check_remote_url(uri, allow_http).map_err(|m| FetchError::Discovery(format!("jwks_uri {m}")))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec1","alg":"ES256","use":"sig","x":"wvhwFCIic8_m92NIyh1NI3dmU9UVEY2udytFhKWVMVs","y":"Dran8KX9g5_J-dHqN4TFCDPIWWFikjzPvn54IjPD8sc"}"#;

    #[test]
    fn unusable_and_symmetric_keys_are_skipped() {
        let doc = format!(
            r#"{{"keys":[{EC},
                {{"kty":"oct","kid":"s","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0"}},
                {{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}},
                {{"kty":"EC","crv":"P-521","kid":"p521","x":"AA","y":"AA"}}]}}"#
        );
        let (set, published) = parse_key_set(doc.as_bytes()).unwrap();
        assert_eq!(published, 4);
        assert_eq!(set.keys().len(), 1);
        assert_eq!(set.keys()[0].kid(), Some("ec1"));
    }

    #[test]
    fn documents_without_usable_keys_fail() {
        for (doc, kind) in [
            (r#"{"keys":[]}"#, "no_usable_keys"),
            (
                r#"{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0"}]}"#,
                "no_usable_keys",
            ),
            (r#"{"kty":"EC"}"#, "invalid"),
            ("<html>oops</html>", "invalid"),
            (r#"{"keys":{}}"#, "invalid"),
        ] {
            let e = parse_key_set(doc.as_bytes()).unwrap_err();
            assert_eq!(e.kind(), kind, "{doc}: {e}");
        }
    }

    #[test]
    fn discovery_checks_the_issuer_exactly() {
        let doc =
            br#"{"issuer":"https://idp.example.com","jwks_uri":"https://idp.example.com/keys"}"#;
        assert_eq!(
            jwks_uri_of(doc, "https://idp.example.com", false)
                .unwrap()
                .to_string(),
            "https://idp.example.com/keys"
        );
        for issuer in [
            "https://idp.example.com/",
            "https://IDP.example.com",
            "https://evil",
        ] {
            let e = jwks_uri_of(doc, issuer, false).unwrap_err();
            assert_eq!(e.kind(), "discovery", "{issuer}");
        }
        let http = br#"{"issuer":"https://a","jwks_uri":"http://a/keys"}"#;
        assert!(
            jwks_uri_of(http, "https://a", true).is_err(),
            "http to a non-loopback host"
        );
        let none = br#"{"issuer":"https://a"}"#;
        assert!(jwks_uri_of(none, "https://a", false).is_err());
    }
}
