//! The refresh machine of one remote key set.
//!
//! Inputs carry `now` in milliseconds: [`Source::handle_timeout`], [`Source::handle_fetched`],
//! [`Source::handle_failed`], [`Source::handle_unknown_kid`]. Outputs, polled after any input in this
//! order: [`Source::poll_fetch`] (the one request to make, if any), [`Source::poll_event`] (what
//! happened, for logs and metrics), [`Source::poll_timeout`] (when to call `handle_timeout` next).
//! [`Source::key_set`] is what to serve, [`Source::generation`] counts the sets installed.
//!
//! The rules (`design/security.md`, "Remote key sets"):
//! - fetched at once, retried with backoff until the first success; until then there is no set, and
//!   the shell answers 503 and is not ready, unless the source has a [`Seed`]: then the seed is
//!   served (and the shell is ready) until the first success, and the first fetched set replaces it;
//! - refreshed when the TTL (`Cache-Control: max-age` within bounds, else the default) runs out;
//!   every wait brought forward by up to a fifth ([`crate::jitter`]), so replicas do not fetch in
//!   lockstep;
//! - refetched for a token naming an unknown `kid` at most once per cooldown, counted from the start
//!   of the last attempt whatever caused it; a single flight by construction: `poll_fetch` hands out
//!   one request and no other until it is answered, and unknown kids during it join it;
//! - a failed fetch never removes the last good set (stale-on-error), and the same document twice
//!   changes nothing;
//! - with discovery, the `jwks_uri` is kept until a fetch through it fails, then discovered again.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use http::Uri;
use jwtv_verifier::KeySet;

use crate::FetchError;
use crate::document::{jwks_uri_of, parse_key_set};
use crate::jitter::Jitter;
use crate::remote::{FetchSettings, RemoteLocation, RemoteSource, Seed, check_remote_url};
use crate::snapshot::Snapshot;

/// The bounds of one source, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Plain `http://` only for a loopback host, and only with this set.
    pub allow_http_loopback: bool,
    /// `max-age` is clamped to `[min_ttl, max_ttl]`; `default_ttl` without one.
    pub min_ttl: u64,
    pub max_ttl: u64,
    pub default_ttl: u64,
    /// At most one unknown-kid refetch per this interval from the last attempt.
    pub refetch_cooldown: u64,
    /// The longest a request with an unknown `kid` waits on the fetch it caused or joined.
    pub refetch_wait: u64,
    /// First retry delay after a failure, doubled per failure up to `max_backoff`.
    pub first_backoff: u64,
    pub max_backoff: u64,
}

/// First retry after a failure, and the ceiling of the doubling (lowered to the default TTL when that
/// is shorter, so a short-TTL test setup retries as often as it refreshes).
const FIRST_BACKOFF_MS: u64 = 1_000;
const MAX_BACKOFF_MS: u64 = 60_000;

impl Rules {
    pub fn from_settings(settings: &FetchSettings) -> Rules {
        let default_ttl = ms(settings.default_ttl);
        Rules {
            allow_http_loopback: settings.allow_http_loopback,
            min_ttl: ms(settings.min_ttl),
            max_ttl: ms(settings.max_ttl),
            default_ttl,
            refetch_cooldown: ms(settings.refetch_cooldown),
            refetch_wait: ms(settings.refetch_wait),
            first_backoff: FIRST_BACKOFF_MS,
            max_backoff: MAX_BACKOFF_MS.min(default_ttl).max(FIRST_BACKOFF_MS),
        }
    }

    /// The TTL of a set served with `max_age` seconds (or none).
    pub fn ttl(&self, max_age: Option<u64>) -> u64 {
        match max_age {
            Some(secs) => secs
                .saturating_mul(1000)
                .clamp(self.min_ttl, self.max_ttl.max(self.min_ttl)),
            None => self.default_ttl,
        }
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a fetch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The OIDC discovery document; the key set follows in the same attempt.
    Discovery,
    KeySet,
}

/// Why a fetch is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The first fetch of the source.
    Start,
    /// The TTL ran out.
    Refresh,
    /// The last attempt failed.
    Retry,
    /// A token named a `kid` the set lacks.
    UnknownKid,
}

/// The headers of every fetch, whichever shell makes it: a provider sees one client.
pub const REQUEST_HEADERS: &[(&str, &str)] = &[
    ("accept", "application/json, application/jwk-set+json"),
    (
        "user-agent",
        concat!("jwt-validator/", env!("CARGO_PKG_VERSION")),
    ),
];

/// One request for the shell to make, then answer with `handle_fetched` or `handle_failed`: the
/// shell sends `method` to `url` with `headers` (plus `Host`), and follows no redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub method: &'static str,
    pub url: Uri,
    pub headers: &'static [(&'static str, &'static str)],
    pub purpose: Purpose,
    pub reason: Reason,
}

/// What happened, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Discovery named this `jwks_uri`.
    Discovered { jwks_uri: Uri },
    /// A new set is in use.
    Fetched {
        keys: usize,
        published: usize,
        ttl: u64,
    },
    /// The same document as the set in use.
    Unchanged { ttl: u64 },
    /// The fetch failed; `serving` says whether a set is still served, `seed` whether that set is
    /// the seed (the source was never heard from).
    Failed {
        error: FetchError,
        serving: bool,
        seed: bool,
    },
    /// An unknown `kid` started a refetch.
    UnknownKidRefetch,
    /// An unknown `kid` made no fetch of its own: within the cooldown, or joining the fetch due or
    /// under way (single flight).
    UnknownKidSuppressed,
}

/// How loud an [`Event`] is in a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A fetch failed.
    Warn,
    Info,
    /// Routine: worth a counter, not a line by default.
    Debug,
}

impl Event {
    pub fn level(&self) -> Level {
        match self {
            Event::Failed { .. } => Level::Warn,
            Event::Discovered { .. } | Event::Fetched { .. } | Event::UnknownKidRefetch => {
                Level::Info
            }
            Event::Unchanged { .. } | Event::UnknownKidSuppressed => Level::Debug,
        }
    }
}

/// The words of every shell's log line for an event (the shell adds which source it is about).
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Discovered { jwks_uri } => write!(f, "OIDC discovery: jwks_uri {jwks_uri}"),
            Event::Fetched {
                keys,
                published,
                ttl,
            } => write!(
                f,
                "key set fetched: {keys} usable key(s) of {published} published, ttl {} s",
                ttl / 1000
            ),
            Event::Unchanged { ttl } => write!(f, "key set unchanged, ttl {} s", ttl / 1000),
            Event::Failed {
                error,
                serving,
                seed,
            } => write!(
                f,
                "key set fetch failed: {error}; {}",
                match (serving, seed) {
                    (true, true) => "serving the seed key set",
                    (true, false) => "serving the last good key set",
                    (false, _) => "no key set yet: answering 503",
                }
            ),
            Event::UnknownKidRefetch => {
                f.write_str("token with an unknown kid: refetching the key set")
            }
            Event::UnknownKidSuppressed => f.write_str(
                "token with an unknown kid: no refetch of its own (within the cooldown, or one is \
                 under way)",
            ),
        }
    }
}

/// What a request with an unknown `kid` should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKid {
    /// The set changed since the request read `generation`: verify again now.
    Retry,
    /// A fetch is due or under way: wait until `generation` passes the one read, or the fetch ends
    /// ([`Source::busy`] turns false), or `until`, whichever comes first.
    Wait { until: u64 },
    /// Within the cooldown: answer from the set in hand.
    Suppressed,
}

/// The fetch handed out and not yet answered.
#[derive(Debug, Clone, Copy)]
struct Flight {
    purpose: Purpose,
    reason: Reason,
    started: u64,
}

/// The refresh machine of one remote key set. See the module documentation.
pub struct Source {
    location: RemoteLocation,
    rules: Rules,
    jitter: Jitter,
    set: Option<Arc<KeySet>>,
    /// The document behind `set`: an identical one changes nothing, and snapshots carry it.
    body: Vec<u8>,
    published: usize,
    generation: u64,
    fetched_at: Option<u64>,
    discovered: Option<Uri>,
    /// A fetch wanted now, not yet handed out.
    due: Option<Reason>,
    flight: Option<Flight>,
    /// When the next refresh or retry falls due, while none is due or under way.
    next: Option<u64>,
    backoff: u64,
    /// Start of the last attempt, whatever caused it: the unknown-kid cooldown counts from here.
    last_attempt: Option<u64>,
    /// The fetch due is the key set of the discovery just answered (same attempt).
    continuing: bool,
    events: VecDeque<Event>,
}

impl Source {
    /// A source with no set yet and its first fetch due. `seed` draws its jitter.
    pub fn new(location: RemoteLocation, rules: Rules, seed: u64) -> Source {
        let backoff = rules.first_backoff;
        Source {
            location,
            rules,
            jitter: Jitter::new(seed),
            set: None,
            body: Vec::new(),
            published: 0,
            generation: 0,
            fetched_at: None,
            discovered: None,
            due: Some(Reason::Start),
            flight: None,
            next: None,
            backoff,
            last_attempt: None,
            continuing: false,
            events: VecDeque::new(),
        }
    }

    /// A source that serves `source`'s seed, if it has one, until its first successful fetch.
    pub fn for_remote(source: &RemoteSource, rules: Rules, seed: u64) -> Source {
        let mut machine = Source::new(source.location.clone(), rules, seed);
        if let Some(seed) = &source.seed {
            machine.seed(seed);
        }
        machine
    }

    /// Serves `seed` until the first successful fetch. Not an install: the generation stays, since
    /// the store's slot starts with the same set.
    fn seed(&mut self, seed: &Seed) {
        if self.fetched_at.is_none() {
            self.set = Some(seed.key_set().clone());
            self.body = seed.body().to_vec();
            self.published = seed.published();
        }
    }

    /// Whether the set served is the seed: the source was never heard from.
    pub fn serving_seed(&self) -> bool {
        self.set.is_some() && self.fetched_at.is_none()
    }

    /// How long a request may wait on a fetch it makes itself (a shell without background tasks),
    /// given the fetch timeout: with only the seed in hand, no longer than the refetch wait, so a new
    /// instance of a slow or hanging provider answers from its seed instead of waiting the timeout.
    pub fn fetch_budget(&self, timeout: u64) -> u64 {
        if self.serving_seed() {
            timeout.min(self.rules.refetch_wait)
        } else {
            timeout
        }
    }

    /// The set to serve; `None` until a fetch succeeded and without a seed (the shell answers 503
    /// and is not ready).
    pub fn key_set(&self) -> Option<&Arc<KeySet>> {
        self.set.as_ref()
    }

    pub fn is_ready(&self) -> bool {
        self.set.is_some()
    }

    /// Sets installed so far; an unknown-kid request retries once this passes the value it read.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// When the set in use was fetched (or last confirmed unchanged).
    pub fn fetched_at(&self) -> Option<u64> {
        self.fetched_at
    }

    /// Keys the document behind the set in use published, usable or not.
    pub fn published(&self) -> usize {
        self.published
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Whether a fetch is due or under way.
    pub fn busy(&self) -> bool {
        self.due.is_some() || self.flight.is_some()
    }

    /// Makes the refresh or retry due once its deadline has come.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.busy() {
            return;
        }
        if self.next.is_some_and(|at| at <= now) {
            self.next = None;
            self.due = Some(
                if self.fetched_at.is_some() && self.backoff == self.rules.first_backoff {
                    Reason::Refresh
                } else {
                    Reason::Retry
                },
            );
        }
    }

    /// The request to make, if one is due and none is under way; no other until it is answered.
    pub fn poll_fetch(&mut self, now: u64) -> Option<Fetch> {
        if self.flight.is_some() {
            return None;
        }
        let reason = self.due.take()?;
        let (url, purpose) = match self.url() {
            Ok(found) => found,
            Err(error) => {
                self.continuing = false;
                self.last_attempt = Some(now);
                self.fail(now, reason, error);
                return None;
            }
        };
        // A discovery's key set continues the same attempt: the cooldown and the unknown-kid wait
        // count from its start.
        if !std::mem::take(&mut self.continuing) {
            self.last_attempt = Some(now);
        }
        self.flight = Some(Flight {
            purpose,
            reason,
            started: self.last_attempt.unwrap_or(now),
        });
        Some(Fetch {
            method: "GET",
            url,
            headers: REQUEST_HEADERS,
            purpose,
            reason,
        })
    }

    fn url(&self) -> Result<(Uri, Purpose), FetchError> {
        let allow_http = self.rules.allow_http_loopback;
        match &self.location {
            RemoteLocation::JwksUri(url) => check_remote_url(url, allow_http)
                .map(|uri| (uri, Purpose::KeySet))
                .map_err(FetchError::Invalid),
            RemoteLocation::Discovery { url, .. } => match &self.discovered {
                Some(uri) => Ok((uri.clone(), Purpose::KeySet)),
                None => check_remote_url(url, allow_http)
                    .map(|uri| (uri, Purpose::Discovery))
                    .map_err(FetchError::Discovery),
            },
        }
    }

    /// The body of the fetch under way, with the response's `max-age` in seconds. An answer when no
    /// fetch is under way is ignored.
    pub fn handle_fetched(&mut self, now: u64, body: &[u8], max_age: Option<u64>) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        if flight.purpose == Purpose::Discovery {
            let issuer = match &self.location {
                RemoteLocation::Discovery { issuer, .. } => issuer.as_str(),
                RemoteLocation::JwksUri(_) => return,
            };
            match jwks_uri_of(body, issuer, self.rules.allow_http_loopback) {
                Ok(jwks_uri) => {
                    self.events.push_back(Event::Discovered {
                        jwks_uri: jwks_uri.clone(),
                    });
                    self.discovered = Some(jwks_uri);
                    self.due = Some(flight.reason);
                    self.continuing = true;
                }
                Err(error) => self.fail(now, flight.reason, error),
            }
            return;
        }
        let ttl = self.rules.ttl(max_age);
        // The seed's own document still counts as the first fetch: the provider has been heard.
        if self.set.is_some() && self.body == body && !self.serving_seed() {
            self.events.push_back(Event::Unchanged { ttl });
        } else {
            match parse_key_set(body) {
                Ok((set, published)) => {
                    self.events.push_back(Event::Fetched {
                        keys: set.keys().len(),
                        published,
                        ttl,
                    });
                    self.install(set, body.to_vec(), published);
                }
                Err(error) => return self.fail(now, flight.reason, error),
            }
        }
        self.fetched_at = Some(now);
        self.backoff = self.rules.first_backoff;
        self.next = Some(now.saturating_add(self.jitter.spread(ttl)));
    }

    fn install(&mut self, set: KeySet, body: Vec<u8>, published: usize) {
        self.set = Some(Arc::new(set));
        self.body = body;
        self.published = published;
        self.generation += 1;
    }

    /// The fetch under way failed in transport (the shell's kinds: timeout, connect, TLS, HTTP,
    /// status, too large, proxy). The last good set stays.
    pub fn handle_failed(&mut self, now: u64, error: FetchError) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        self.fail(now, flight.reason, error);
    }

    fn fail(&mut self, now: u64, reason: Reason, error: FetchError) {
        // A provider may have moved its keys: discover again next time.
        self.discovered = None;
        self.events.push_back(Event::Failed {
            error,
            serving: self.set.is_some(),
            seed: self.serving_seed(),
        });
        // An unknown-kid refetch that fails leaves a served set's refresh where it was.
        if reason == Reason::UnknownKid && self.set.is_some() && self.next.is_some() {
            return;
        }
        let wait = self.jitter.spread(self.backoff);
        self.backoff = self.backoff.saturating_mul(2).min(self.rules.max_backoff);
        self.next = Some(now.saturating_add(wait));
    }

    /// A token named a `kid` the set lacks, after the request read `seen` from [`Source::generation`].
    pub fn handle_unknown_kid(&mut self, now: u64, seen: u64) -> UnknownKid {
        if self.generation > seen {
            return UnknownKid::Retry;
        }
        // Joining the fetch due or under way makes no fetch of its own: counted as suppressed.
        if let Some(flight) = &self.flight {
            self.events.push_back(Event::UnknownKidSuppressed);
            return UnknownKid::Wait {
                until: flight.started.saturating_add(self.rules.refetch_wait),
            };
        }
        let until = now.saturating_add(self.rules.refetch_wait);
        if self.due.is_some() {
            self.events.push_back(Event::UnknownKidSuppressed);
            return UnknownKid::Wait { until };
        }
        let recent = self
            .last_attempt
            .is_some_and(|at| now.saturating_sub(at) < self.rules.refetch_cooldown);
        if recent {
            self.events.push_back(Event::UnknownKidSuppressed);
            return UnknownKid::Suppressed;
        }
        self.events.push_back(Event::UnknownKidRefetch);
        self.due = Some(Reason::UnknownKid);
        UnknownKid::Wait { until }
    }

    /// When to call [`Source::handle_timeout`] next; `None` while a fetch is due or under way (poll
    /// and answer it first).
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.busy() { None } else { self.next }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The set in use with its schedule, for a shell that shares it between short-lived instances.
    pub fn export(&self) -> Option<Snapshot> {
        Some(Snapshot {
            body: self.set.as_ref().map(|_| self.body.clone())?,
            fetched_at: self.fetched_at?,
            refresh_at: self.next.or(self.fetched_at)?,
            jwks_uri: self.discovered.as_ref().map(Uri::to_string),
        })
    }

    /// Takes over a snapshot fetched later than the set in hand: its set, its refresh deadline, and
    /// its discovered `jwks_uri`. The document is checked as if just fetched.
    pub fn import(&mut self, snapshot: &Snapshot) -> Result<(), FetchError> {
        if self.fetched_at.is_some_and(|at| at >= snapshot.fetched_at) {
            return Ok(());
        }
        if self.set.is_none() || self.body != snapshot.body {
            let (set, published) = parse_key_set(&snapshot.body)?;
            self.install(set, snapshot.body.clone(), published);
        }
        if let (RemoteLocation::Discovery { .. }, Some(uri)) = (&self.location, &snapshot.jwks_uri)
        {
            self.discovered = check_remote_url(uri, self.rules.allow_http_loopback).ok();
        }
        self.fetched_at = Some(snapshot.fetched_at);
        self.backoff = self.rules.first_backoff;
        if self.flight.is_none() {
            self.due = None;
            self.next = Some(snapshot.refresh_at);
        }
        Ok(())
    }
}
