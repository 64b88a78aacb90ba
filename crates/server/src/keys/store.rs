//! The server's key store: configured key sets as they are, fetched ones swapped in as they arrive.
//!
//! A configuration reload builds a new store from the previous one: a remote source configured exactly
//! as before is carried over with its set and its running refresh (no refetch, no gap), a new one is
//! fetched by a task of its own, and a source the new store no longer has stops when the last store
//! holding it is dropped.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use jwtv_keyset::{FetchSettings, RemoteSource, Store};
use jwtv_service::verifier::{KeySet, KeyStore, Policy};

use super::fetch::Fetcher;
use super::proxy::Proxies;
use super::remote::Remote;

/// How long a first fetch may take beyond the fetch timeout: the fetcher retries a failed first
/// attempt after one second.
const FIRST_FETCH_GRACE: Duration = Duration::from_secs(2);

/// The refresh task of one remote source, aborted when no store holds the source any more.
#[derive(Default)]
struct Task(OnceLock<tokio::task::AbortHandle>);

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(handle) = self.0.get() {
            handle.abort();
        }
    }
}

/// The keyset store (one slot per issuer, in issuer order, and the generation), and the remote
/// sources that install into it.
pub struct Keys {
    store: Store,
    remotes: Vec<Arc<Remote>>,
    /// The refresh task of each of `remotes`, shared with the store this one replaces or is replaced by.
    tasks: Vec<Arc<Task>>,
    settings: FetchSettings,
}

impl Keys {
    /// The configured sets, plus a live slot for every remote source. Nothing is fetched until
    /// [`Keys::start`]. With `previous` (a reload), remote sources configured exactly as there are
    /// taken over as they are, and the generation counter is shared. Fails on a fetch setting the
    /// configuration could not check (the CA bundle's certificates, the proxy variables).
    pub fn new(
        configured: Store,
        remote: Vec<RemoteSource>,
        policies: &[Policy],
        settings: &FetchSettings,
        previous: Option<&Keys>,
    ) -> anyhow::Result<Keys> {
        // Bumped after every key set installed by any source, across reloads: the token cache drops
        // what was verified before a change; an unknown-kid retry compares against the value read
        // before verifying.
        let mut store = match previous {
            Some(p) => configured.with_generation(p.store.generation_counter()),
            None => configured,
        };
        let generation = store.generation_counter();
        let mut remotes = Vec::with_capacity(remote.len());
        let mut tasks = Vec::with_capacity(remote.len());
        if !remote.is_empty() {
            let proxies =
                Proxies::from_env(|name| std::env::var(name).ok()).map_err(anyhow::Error::msg)?;
            let fetcher = Arc::new(Fetcher::new(settings, proxies)?);
            if let Some(proxies) = fetcher.proxies().describe() {
                tracing::info!("key-set fetches: {proxies}");
            }
            for source in remote {
                let index = source.issuer;
                let kept = previous.filter(|p| p.settings == *settings).and_then(|p| {
                    p.remotes
                        .iter()
                        .zip(&p.tasks)
                        // The seed is left out: a source that has been heard keeps its fetched set
                        // through a reload that only changes the seed file.
                        .find(|(r, _)| {
                            (r.source.issuer, &r.source.location, &r.source.configured_at)
                                == (source.issuer, &source.location, &source.configured_at)
                        })
                });
                if let Some((remote, task)) = kept {
                    store.share_slot(index, remote.slot.clone());
                    remotes.push(remote.clone());
                    tasks.push(task.clone());
                    continue;
                }
                let label = policies
                    .get(source.issuer)
                    .and_then(|p| p.issuer.clone())
                    .unwrap_or_else(|| "(default)".to_owned());
                // The configured slot: it starts with the source's seed, if it has one.
                let slot = store.slot(index).cloned().unwrap_or_default();
                store.share_slot(index, slot.clone());
                let remote = Arc::new(Remote::new(
                    source,
                    label,
                    settings,
                    fetcher.clone(),
                    slot,
                    generation.clone(),
                ));
                remotes.push(remote);
                tasks.push(Arc::new(Task::default()));
            }
        }
        Ok(Keys {
            store,
            remotes,
            tasks,
            settings: settings.clone(),
        })
    }

    /// Starts the fetch-and-refresh task of every remote source not already running (inside the
    /// runtime). Returns at once: the listener does not wait for identity providers, `/readyz` does.
    pub fn start(&self) {
        for (remote, task) in self.remotes.iter().zip(&self.tasks) {
            if task.0.get().is_none() {
                let _ = task
                    .0
                    .set(tokio::spawn(remote.clone().run()).abort_handle());
            }
        }
    }

    /// Waits, after [`Keys::start`], until every remote source has a key set, for at most the fetch
    /// timeout plus [`FIRST_FETCH_GRACE`]. Returns whether they all have one, and the bound.
    pub async fn first_fetch(&self) -> (bool, Duration) {
        let bound = self.settings.timeout + FIRST_FETCH_GRACE;
        let deadline = Instant::now() + bound;
        while !self.remotes.iter().all(|r| r.key_set().is_some()) {
            if Instant::now() >= deadline {
                return (false, bound);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (true, bound)
    }

    pub fn generation(&self) -> u64 {
        self.store.generation()
    }

    /// The counter behind [`Keys::generation`], for the token cache.
    pub fn generation_counter(&self) -> Arc<AtomicU64> {
        self.store.generation_counter()
    }

    /// The remote source of an issuer, if its keys are fetched.
    pub fn remote(&self, issuer: usize) -> Option<&Arc<Remote>> {
        self.remotes.iter().find(|r| r.source.issuer == issuer)
    }

    pub fn remotes(&self) -> &[Arc<Remote>] {
        &self.remotes
    }
}

impl KeyStore for Keys {
    fn key_set(&self, issuer: usize) -> Option<Arc<KeySet>> {
        self.store.key_set(issuer)
    }
}
