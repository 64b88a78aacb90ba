//! The server's key store: configured key sets as they are, fetched ones swapped in as they arrive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jwtv_service::config::{ConfiguredKeys, FetchSettings, RemoteSource};
use jwtv_service::verifier::{KeySet, KeyStore, Policy};

use super::fetch::Fetcher;
use super::proxy::Proxies;
use super::remote::Remote;

enum Slot {
    Configured(Option<Arc<KeySet>>),
    Remote(Arc<Remote>),
}

/// One slot per issuer, in issuer order.
pub struct Keys {
    slots: Vec<Slot>,
    remotes: Vec<Arc<Remote>>,
    /// Bumped after every key set installed by any source. The token cache drops what was verified
    /// before a change; an unknown-kid retry compares against the value read before verifying.
    generation: Arc<AtomicU64>,
}

impl Keys {
    /// The configured sets, plus a live slot for every remote source. Nothing is fetched until
    /// [`Keys::start`]. Fails on a fetch setting the configuration could not check (the CA bundle's
    /// certificates, the proxy variables).
    pub fn new(
        configured: ConfiguredKeys,
        remote: Vec<RemoteSource>,
        policies: &[Policy],
        settings: &FetchSettings,
    ) -> anyhow::Result<Keys> {
        let generation = Arc::new(AtomicU64::new(0));
        let mut slots: Vec<Slot> = configured.0.into_iter().map(Slot::Configured).collect();
        let mut remotes = Vec::with_capacity(remote.len());
        if !remote.is_empty() {
            let proxies =
                Proxies::from_env(|name| std::env::var(name).ok()).map_err(anyhow::Error::msg)?;
            let fetcher = Arc::new(Fetcher::new(settings, proxies)?);
            if let Some(proxies) = fetcher.proxies().describe() {
                tracing::info!("key-set fetches: {proxies}");
            }
            for source in remote {
                let label = policies
                    .get(source.issuer)
                    .and_then(|p| p.issuer.clone())
                    .unwrap_or_else(|| "(default)".to_owned());
                let index = source.issuer;
                let remote = Arc::new(Remote::new(
                    source,
                    label,
                    settings.clone(),
                    fetcher.clone(),
                    generation.clone(),
                ));
                if index >= slots.len() {
                    slots.resize_with(index + 1, || Slot::Configured(None));
                }
                slots[index] = Slot::Remote(remote.clone());
                remotes.push(remote);
            }
        }
        Ok(Keys {
            slots,
            remotes,
            generation,
        })
    }

    /// Starts the fetch-and-refresh task of every remote source (inside the runtime). Returns at once:
    /// the listener does not wait for identity providers, `/readyz` does.
    pub fn start(&self) {
        for remote in &self.remotes {
            tokio::spawn(remote.clone().run());
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The counter behind [`Keys::generation`], for the token cache.
    pub fn generation_counter(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }

    /// The remote source of an issuer, if its keys are fetched.
    pub fn remote(&self, issuer: usize) -> Option<&Arc<Remote>> {
        match self.slots.get(issuer) {
            Some(Slot::Remote(remote)) => Some(remote),
            _ => None,
        }
    }

    pub fn remotes(&self) -> &[Arc<Remote>] {
        &self.remotes
    }
}

impl KeyStore for Keys {
    fn key_set(&self, issuer: usize) -> Option<Arc<KeySet>> {
        match self.slots.get(issuer)? {
            Slot::Configured(set) => set.clone(),
            Slot::Remote(remote) => remote.key_set(),
        }
    }
}
