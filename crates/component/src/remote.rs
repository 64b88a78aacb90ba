//! Remote key sets (`jwks_uri`, OIDC discovery) in the component: the shell of the
//! [`jwtv_keyset::Source`] refresh machine over outgoing wasi:http (`net`: [`crate::outgoing`] in
//! the WASI 0.2 build, [`crate::outgoing_p3`] in the WASI 0.3 build).
//!
//! A component has no task to refresh in the background, so requests drive the machines. The service
//! answers first from the sets in hand; only when that answer depended on a source's keys (the token
//! named that issuer, or `/readyz` found a set missing) does the source get the fetches it is due,
//! and the service answers again if the set changed. So `/healthz`, `/readyz` with usable sets and a
//! malformed token never fetch, and a log line about fetching means a fetch happened. A token naming
//! an unknown `kid` asks its source, which refetches at most once per cooldown, within the request and
//! bounded by the refetch wait.
//!
//! The machines live in the instance, so a host that reuses instances (`wasmtime serve
//! --max-instance-reuse-count`, Spin's WASI 0.3 instances) fetches once per instance and TTL. Where
//! the host shares a key-value store between instances (the `keyvalue` build, [`crate::kv`]), the
//! instances of the app share the last good set, the schedule and a fetch lease, so the app fetches
//! about once per TTL whatever the instance model (`docs/remote-keys.md`, "The WebAssembly component,
//! per host mode").

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{Request, StatusCode};
use jwtv_config::Loaded;
#[cfg(not(feature = "p3"))]
use jwtv_keyset::Event;
use jwtv_keyset::{FetchSettings, Level, RemoteSource, Rules, Source, Store, UnknownKid};
use jwtv_service::{Handled, Service};

/// A function that is `async` in the WASI 0.3 build (its fetches and waits let the instance's other
/// requests run) and plain in the WASI 0.2 build, where every fetch blocks anyway: an `async` state
/// machine there would only add size (2.6 KB) to a component with a size budget.
macro_rules! maybe_async {
    ($(#[$meta:meta])* $vis:vis async fn $($rest:tt)*) => {
        #[cfg(feature = "p3")]
        $(#[$meta])* $vis async fn $($rest)*
        #[cfg(not(feature = "p3"))]
        $(#[$meta])* $vis fn $($rest)*
    };
}
pub(crate) use maybe_async;

/// `.await` in the WASI 0.3 build, nothing in the WASI 0.2 build (see [`maybe_async`]).
#[cfg(feature = "p3")]
macro_rules! wait {
    ($e:expr) => {
        $e.await
    };
}
#[cfg(not(feature = "p3"))]
macro_rules! wait {
    ($e:expr) => {
        $e
    };
}
pub(crate) use wait;

#[cfg(not(feature = "p3"))]
use crate::outgoing as net;
#[cfg(feature = "p3")]
use crate::outgoing_p3 as net;

/// How often a request with no set in hand looks again while another request of the instance
/// fetches (WASI 0.3).
#[cfg(feature = "p3")]
const WAIT_STEP_MS: u64 = 25;

/// The fetched sources of an instance, installing into the store its service reads.
pub struct RemoteKeys {
    store: Arc<Store>,
    sources: Vec<Remote>,
    #[cfg_attr(all(feature = "p3", not(feature = "keyvalue")), allow(dead_code))]
    rules: Rules,
    timeout_ms: u64,
    max_bytes: usize,
    #[cfg(feature = "keyvalue")]
    shared: crate::kv::Lazy,
}

pub(crate) struct Remote {
    issuer: usize,
    /// As configured; a bake gives it the seed it fetched.
    #[cfg_attr(feature = "p3", allow(dead_code))]
    source: RemoteSource,
    /// Where it was configured (a variable or a file field), for log lines.
    configured_at: String,
    machine: Mutex<Source>,
}

/// The service of a loaded configuration and, with remote sources, what fetches their keys. Refuses
/// the fetch settings only a native shell can honour.
pub fn service_of(loaded: Loaded) -> Result<(Service, Option<RemoteKeys>), String> {
    if loaded.remote.is_empty() {
        return Ok((loaded.into_service(), None));
    }
    // Published key sets hold public keys only (`oct` keys are skipped): without their algorithms every
    // fetch would end "no usable key" and every token 503.
    if cfg!(not(feature = "all-algorithms")) {
        return Err(format!(
            "{}: remote key sets need RSA, ECDSA or EdDSA, and this component is built HMAC-only \
             (--no-default-features)",
            loaded.remote[0].configured_at
        ));
    }
    let fetch = &loaded.server.fetch;
    if let Some(bundle) = &fetch.ca_bundle {
        return Err(format!(
            "{}: the component cannot add CA certificates; the host makes the TLS connections with \
             its own roots (trust the CA in the host instead)",
            bundle.setting
        ));
    }
    let store = Arc::new(loaded.keys);
    let remote = RemoteKeys::new(store.clone(), loaded.remote, fetch);
    let service = Service::new(loaded.verifier, store, loaded.options);
    Ok((service, Some(remote)))
}

impl RemoteKeys {
    fn new(store: Arc<Store>, remote: Vec<RemoteSource>, fetch: &FetchSettings) -> RemoteKeys {
        let rules = Rules::from_settings(fetch);
        let seed = now_ms();
        let sources = remote
            .into_iter()
            .map(|source| Remote {
                issuer: source.issuer,
                machine: Mutex::new(Source::for_remote(
                    &source,
                    rules.clone(),
                    seed ^ (source.issuer as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                )),
                configured_at: source.configured_at.clone(),
                source,
            })
            .collect();
        RemoteKeys {
            store,
            sources,
            rules,
            timeout_ms: u64::try_from(fetch.timeout.as_millis()).unwrap_or(u64::MAX),
            max_bytes: fetch.max_bytes,
            #[cfg(feature = "keyvalue")]
            shared: crate::kv::Lazy::default(),
        }
    }

    /// At bake time (`scripts/bake`): fetches each source's key set once and makes it the seed its
    /// baked instances start with, so they answer valid tokens before (and without) reaching the
    /// provider; each instance still fetches at its first request that needs the keys, and the
    /// fetched set replaces the seed. A source that cannot be fetched fails the bake, naming it: a
    /// baked component that could only answer 503 until the provider is back is not what the bake was
    /// asked for. Prints nothing (a stream opened now would be stale in every baked instance).
    #[cfg(not(feature = "p3"))]
    pub fn bake_seeds(&mut self) -> Result<(), String> {
        let jitter = now_ms();
        for remote in &mut self.sources {
            let machine = remote.machine.get_mut().unwrap_or_else(|p| p.into_inner());
            // A discovery and its key set: the machine asks for nothing more until a deadline.
            for _ in 0..4 {
                let Some(fetch) = machine.poll_fetch(now_ms()) else {
                    break;
                };
                let fetched = net::get(&fetch, self.timeout_ms.max(1), self.max_bytes);
                match fetched {
                    Ok(fetched) => machine.handle_fetched(now_ms(), &fetched.body, fetched.max_age),
                    Err(error) => machine.handle_failed(now_ms(), error),
                }
            }
            let failure = std::iter::from_fn(|| machine.poll_event())
                .filter(|e| matches!(e, Event::Failed { .. }))
                .last();
            let snapshot = match (machine.export(), failure) {
                (Some(snapshot), None) => snapshot,
                (_, failure) => {
                    return Err(format!(
                        "{}: the key set to seed the baked component could not be fetched: {}",
                        remote.configured_at,
                        failure.map_or_else(|| "no answer".to_owned(), |e| e.to_string())
                    ));
                }
            };
            let seed = jwtv_keyset::Seed::parse(&snapshot.body)
                .map_err(|e| format!("{}: the fetched key set: {e}", remote.configured_at))?;
            self.store.install(remote.issuer, seed.key_set().clone());
            remote.source.seed = Some(seed);
            *machine = Source::for_remote(
                &remote.source,
                self.rules.clone(),
                jitter ^ (remote.issuer as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
        }
        Ok(())
    }

    maybe_async! {
        /// Answers `request`: the service first, from the sets in hand; the sources that answer depended
        /// on then get the fetches they are due, and the service answers again if a set changed; a token
        /// naming a `kid` its set lacks may make one refetch and one more answer. The service is called
        /// from one place (a loop): each call site would be one more copy of it in the component.
        pub async fn handle(
            &self,
            service: &Service,
            request: &Request<Vec<u8>>,
            now_secs: u64,
        ) -> Handled {
            // The sources consulted, with the generation the next answer reads.
            let mut consulted: Vec<(usize, u64)> = Vec::new();
            let (mut refreshed, mut refetched) = (false, false);
            loop {
                let handled = service.handle(request, now_secs);
                if !refreshed {
                    refreshed = true;
                    let issuer = handled.decision.as_ref().and_then(|d| d.issuer);
                    let not_ready = handled.decision.is_none()
                        && handled.response.status() == StatusCode::SERVICE_UNAVAILABLE;
                    let mut changed = false;
                    for (i, source) in self.sources.iter().enumerate() {
                        // A token of this issuer used (or missed) its keys, or `/readyz` found its set
                        // missing; any other answer needed no key: nothing is fetched, nothing read.
                        let wanted = match issuer {
                            Some(issuer) => source.issuer == issuer,
                            None => not_ready && source.machine().key_set().is_none(),
                        };
                        if wanted {
                            let before = source.machine().generation();
                            let after = wait!(self.refresh(source));
                            changed |= after != before;
                            consulted.push((i, after));
                        }
                    }
                    if changed {
                        continue;
                    }
                }
                if !refetched {
                    refetched = true;
                    let unknown_kid_of = handled.refetch().and_then(|issuer| {
                        consulted
                            .iter()
                            .find(|(i, _)| self.sources[*i].issuer == issuer)
                    });
                    if let Some(&(i, seen)) = unknown_kid_of
                        && wait!(self.refetch(&self.sources[i], seen))
                    {
                        continue;
                    }
                }
                return handled;
            }
        }
    }

    maybe_async! {
        /// Makes the fetches `source` is due; returns its generation afterwards.
        async fn refresh(&self, source: &Remote) -> u64 {
            let (idle, budget) = {
                let mut machine = source.machine();
                machine.handle_timeout(now_ms());
                // With only a seed in hand, a slow provider holds this request no longer than the
                // refetch wait; the seed answers and the next request past the backoff tries again.
                (
                    !machine.busy() && machine.key_set().is_some(),
                    machine.fetch_budget(self.timeout_ms),
                )
            };
            if idle {
                return source.machine().generation();
            }
            #[cfg(feature = "keyvalue")]
            if let Some(shared) = self.shared.get() {
                return self.refresh_shared(source, shared, budget);
            }
            wait!(self.fetch_due(source, budget));
            source.machine().generation()
        }
    }

    maybe_async! {
        /// After a token named a `kid` the set lacks, `seen` being the generation it was verified
        /// against: whether a refetch brought a new set (verify again).
        async fn refetch(&self, source: &Remote, seen: u64) -> bool {
            #[cfg(feature = "keyvalue")]
            if let Some(shared) = self.shared.get() {
                return self.refetch_shared(source, shared, seen);
            }
            wait!(self.refetch_local(source, seen))
        }
    }

    maybe_async! {
        pub(crate) async fn refetch_local(&self, source: &Remote, seen: u64) -> bool {
            let now = now_ms();
            let answer = source.machine().handle_unknown_kid(now, seen);
            match answer {
                UnknownKid::Retry => return true,
                UnknownKid::Suppressed => {}
                // Nothing runs after the answer here: the wait bounds the fetch itself.
                UnknownKid::Wait { until } => {
                    let budget = until.saturating_sub(now).min(self.timeout_ms);
                    wait!(self.fetch_due(source, budget));
                }
            }
            self.settle(source);
            source.machine().generation() > seen
        }
    }

    maybe_async! {
        /// Makes the fetches the machine hands out (a discovery and its key set at most, then it asks
        /// for nothing until a deadline). The machine is not locked across a fetch: in the WASI 0.3 build
        /// other requests of the instance run meanwhile, and find the fetch under way (single flight).
        /// A request with no set in hand waits for a fetch another one made, within `budget`.
        pub(crate) async fn fetch_due(&self, source: &Remote, budget: u64) {
            let deadline = now_ms().saturating_add(budget);
            for _ in 0..4 {
                let fetch = source.machine().poll_fetch(now_ms());
                let Some(fetch) = fetch else {
                    break;
                };
                let fetched = wait!(net::get(&fetch, budget.max(1), self.max_bytes));
                let mut machine = source.machine();
                match fetched {
                    Ok(fetched) => machine.handle_fetched(now_ms(), &fetched.body, fetched.max_age),
                    Err(error) => machine.handle_failed(now_ms(), error),
                }
            }
            // Only a WASI 0.3 instance runs requests at once: in WASI 0.2 no other fetch is under way.
            #[cfg(feature = "p3")]
            loop {
                let waiting = {
                    let machine = source.machine();
                    machine.key_set().is_none() && machine.busy()
                };
                if !waiting || now_ms() >= deadline {
                    break;
                }
                net::sleep(WAIT_STEP_MS).await;
            }
            #[cfg(not(feature = "p3"))]
            let _ = deadline;
            self.settle(source);
        }
    }

    /// Installs the machine's set in the store, and logs its events on stderr in keyset's words.
    pub(crate) fn settle(&self, source: &Remote) {
        let mut machine = source.machine();
        if let Some(set) = machine.key_set() {
            self.store.install(source.issuer, set.clone());
        }
        while let Some(event) = machine.poll_event() {
            match event.level() {
                Level::Warn => {
                    eprintln!("jwt-validator: warning: {}: {event}", source.configured_at)
                }
                Level::Info => eprintln!("jwt-validator: {}: {event}", source.configured_at),
                Level::Debug => {}
            }
        }
    }

    #[cfg(feature = "keyvalue")]
    pub(crate) fn rules(&self) -> &Rules {
        &self.rules
    }

    #[cfg(feature = "keyvalue")]
    pub(crate) fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }
}

impl Remote {
    pub(crate) fn machine(&self) -> MutexGuard<'_, Source> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first URL of the source (its JWKS or discovery URL): names its record in a shared store,
    /// so a record written for another configuration is never read as this one's.
    #[cfg(feature = "keyvalue")]
    pub(crate) fn location_url(&self) -> &str {
        self.source.location.url()
    }

    #[cfg(feature = "keyvalue")]
    pub(crate) fn configured_at(&self) -> &str {
        &self.configured_at
    }
}

/// Wall-clock milliseconds: the machine's clock in the component (a snapshot shared between
/// instances needs one clock for all of them).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
