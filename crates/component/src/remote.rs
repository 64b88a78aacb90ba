//! Remote key sets (`jwks_uri`, OIDC discovery) in the component: the shell of the
//! [`jwtv_keyset::Source`] refresh machine over outgoing wasi:http ([`crate::outgoing`]).
//!
//! A component has no task to refresh in the background, so each request drives the machines first
//! (`handle_timeout`, then the fetches they ask for, blocking) and the service decides after; a token
//! naming an unknown `kid` asks its source, which refetches at most once per cooldown, within the
//! request and bounded by the refetch wait. The machines live in the instance (the instance is the
//! state), so a host that reuses instances (`wasmtime serve --max-instance-reuse-count`, Spin) fetches
//! once per instance and TTL, and one that makes a fresh instance per request fetches on every request
//! (`docs/remote-keys.md`, "The WebAssembly component, per host mode").

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use http::Request;
use jwtv_config::Loaded;
use jwtv_keyset::{
    Event, FetchSettings, Level, RemoteSource, Rules, Seed, Source, Store, UnknownKid,
};
use jwtv_service::{Handled, Service};

use crate::outgoing;

/// The fetched sources of an instance, installing into the store its service reads.
pub struct RemoteKeys {
    store: Arc<Store>,
    sources: Vec<Remote>,
    rules: Rules,
    timeout_ms: u64,
    max_bytes: usize,
}

struct Remote {
    issuer: usize,
    /// As configured; a bake gives it the seed it fetched.
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
        }
    }

    /// At bake time (`scripts/bake`): fetches each source's key set once and makes it the seed its
    /// baked instances start with, so they answer valid tokens before (and without) reaching the
    /// provider; each instance still fetches at its first request and the fetched set replaces the
    /// seed. A source that cannot be fetched fails the bake, naming it: a baked component that could
    /// only answer 503 until the provider is back is not what the bake was asked for. Prints nothing
    /// (a stream opened now would be stale in every baked instance).
    pub fn bake_seeds(&mut self) -> Result<(), String> {
        let jitter = now_ms();
        for remote in &mut self.sources {
            let machine = remote.machine.get_mut().unwrap_or_else(|p| p.into_inner());
            // A discovery and its key set: the machine asks for nothing more until a deadline.
            for _ in 0..4 {
                let Some(fetch) = machine.poll_fetch(now_ms()) else {
                    break;
                };
                match outgoing::get(&fetch, self.timeout_ms.max(1), self.max_bytes) {
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
            let seed = Seed::parse(&snapshot.body)
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

    /// Answers `request`: the sources first get the fetches they are due, then the service decides;
    /// a token naming a `kid` its fetched set lacks may make one refetch and one more decision.
    pub fn handle(&self, service: &Service, request: &Request<Vec<u8>>, now_secs: u64) -> Handled {
        let seen: Vec<u64> = self.sources.iter().map(|s| self.refresh(s)).collect();
        let handled = service.handle(request, now_secs);
        let unknown_kid_of = handled
            .refetch()
            .and_then(|issuer| self.sources.iter().position(|s| s.issuer == issuer));
        match unknown_kid_of {
            Some(i) if self.refetch(&self.sources[i], seen[i]) => service.handle(request, now_secs),
            _ => handled,
        }
    }

    /// Makes the fetches `source` is due; returns its generation afterwards.
    fn refresh(&self, source: &Remote) -> u64 {
        let mut machine = source.machine();
        machine.handle_timeout(now_ms());
        // With only a seed in hand, a slow provider holds this request no longer than the refetch
        // wait; the seed answers and the next request past the backoff tries again.
        let budget = machine.fetch_budget(self.timeout_ms);
        self.fetch_due(source, &mut machine, budget);
        machine.generation()
    }

    /// After a token named a `kid` the set lacks, `seen` being the generation it was verified
    /// against: whether a refetch brought a new set (verify again).
    fn refetch(&self, source: &Remote, seen: u64) -> bool {
        let mut machine = source.machine();
        let now = now_ms();
        match machine.handle_unknown_kid(now, seen) {
            UnknownKid::Retry => return true,
            UnknownKid::Suppressed => {}
            // Nothing runs after the answer here: the wait bounds the fetch itself.
            UnknownKid::Wait { until } => {
                let budget = until.saturating_sub(now).min(self.timeout_ms);
                self.fetch_due(source, &mut machine, budget);
            }
        }
        self.settle(source, &mut machine);
        machine.generation() > seen
    }

    fn fetch_due(&self, source: &Remote, machine: &mut Source, timeout_ms: u64) {
        // Bounded: a discovery and its key set, then the machine asks for nothing until a deadline.
        for _ in 0..4 {
            let Some(fetch) = machine.poll_fetch(now_ms()) else {
                break;
            };
            match outgoing::get(&fetch, timeout_ms.max(1), self.max_bytes) {
                Ok(fetched) => machine.handle_fetched(now_ms(), &fetched.body, fetched.max_age),
                Err(error) => machine.handle_failed(now_ms(), error),
            }
        }
        self.settle(source, machine);
    }

    /// Installs the machine's set in the store, and logs its events on stderr in keyset's words.
    fn settle(&self, source: &Remote, machine: &mut Source) {
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
}

impl Remote {
    fn machine(&self) -> MutexGuard<'_, Source> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wall-clock milliseconds: the machine's clock in the component (a snapshot shared between
/// instances would need one clock for all of them).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
