//! Hot reload: the configuration is read again on SIGHUP and whenever a file it read changes; a
//! complete new service is built off the request path and swapped in, and a configuration that does
//! not load never replaces the one serving.
//!
//! - Watched: every file the loader asked for (the TOML file, secret, JWK set and PEM files, and those
//!   it asked for but did not find), by what the path resolves to (device, inode, size, modification
//!   time), polled at an interval. Paths are followed through symlinks, so the Kubernetes swap of a
//!   mounted volume's `..data` link is a change of every file under it. Polling costs one `stat` per
//!   file per interval on any file system; inotify-style watches miss a swap of a parent's symlink.
//! - Served: [`Current`] holds the [`Active`] configuration (service, key store, token cache) behind
//!   a lock held only to clone an `Arc`. A request keeps the `Arc` it started with, so requests in
//!   flight finish on the configuration they began on.
//! - Applied when the new configuration loads, its digest differs from the active one, and every
//!   remote key set it names has been fetched (sources configured as before carry their set and their
//!   refresh over). Otherwise the active configuration stays, and the reason is one log line.
//! - The digest: SHA-256 over every input the loader read (environment variable names and values, file
//!   paths and contents). It changes exactly when what was read changes, and shows none of it.

use crate::replay::ReplayStore;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use jwtv_config::{self as config, ConfigError, DecisionLog, Loaded, ServerSettings, table};
use jwtv_service::Service;

use crate::keys::Keys;
use jwtv_service::cache::VerifiedCache;

/// The identity of what a path resolved to when it was read; `None` in [`Inputs`] when it was absent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    device: u64,
    #[cfg(unix)]
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt as _;
    Some(Stamp {
        len: metadata.len(),
        modified: metadata.modified().ok(),
        #[cfg(unix)]
        device: metadata.dev(),
        #[cfg(unix)]
        inode: metadata.ino(),
    })
}

/// What one load read: the digest of it all, and the files to watch.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// SHA-256, lower-case hex.
    pub digest: String,
    files: Vec<(PathBuf, Option<Stamp>)>,
}

impl Inputs {
    /// A configuration that read nothing (the demo).
    pub fn none() -> Inputs {
        Inputs {
            digest: hex(ring::digest::digest(&ring::digest::SHA256, b"").as_ref()),
            files: Vec::new(),
        }
    }

    fn changed(&self) -> bool {
        self.files.iter().any(|(path, seen)| stamp(path) != *seen)
    }
}

/// Where the configuration comes from: the process environment, `--config` standing in for its
/// variable ([`table::CONFIG`]), and the files they name.
#[derive(Debug, Clone)]
pub struct Source {
    config_file: Option<String>,
}

impl Source {
    pub fn new(config_file: Option<&Path>) -> Source {
        Source {
            config_file: config_file.map(|p| p.to_string_lossy().into_owned()),
        }
    }

    /// Loads the configuration, recording what was read (also when loading fails, so that fixing a
    /// file is noticed).
    pub fn load(&self) -> (Result<Loaded, ConfigError>, Inputs) {
        let hasher = RefCell::new(ring::digest::Context::new(&ring::digest::SHA256));
        let files = RefCell::new(Vec::new());
        let env = |name: &str| {
            let value = match &self.config_file {
                Some(file) if name == table::CONFIG.var() => Some(file.clone()),
                _ => std::env::var(name).ok(),
            };
            feed(
                &mut hasher.borrow_mut(),
                b'e',
                name.as_bytes(),
                value.as_deref().map(str::as_bytes),
            );
            value
        };
        let read = |path: &Path| {
            // Stamped before reading: a change racing the read shows as a change at the next poll.
            let seen = stamp(path);
            let result = std::fs::read(path);
            feed(
                &mut hasher.borrow_mut(),
                b'f',
                path.as_os_str().as_encoded_bytes(),
                result.as_deref().ok(),
            );
            files.borrow_mut().push((path.to_owned(), seen));
            result
        };
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect();
        let loaded = config::load_checked(&env, names.iter().map(String::as_str), &read);
        let inputs = Inputs {
            digest: hex(hasher.into_inner().finish().as_ref()),
            files: files.into_inner(),
        };
        (loaded, inputs)
    }
}

/// One input into the digest, length-prefixed so that no two sequences of inputs hash alike.
fn feed(hasher: &mut ring::digest::Context, kind: u8, name: &[u8], value: Option<&[u8]>) {
    hasher.update(&[kind]);
    hasher.update(&(name.len() as u64).to_le_bytes());
    hasher.update(name);
    match value {
        Some(value) => {
            hasher.update(&[1]);
            hasher.update(&(value.len() as u64).to_le_bytes());
            hasher.update(value);
        }
        None => hasher.update(&[0]),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Settings the listener was built with: a reload that changes them is applied otherwise, and says
/// that these wait for a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RestartOnly {
    listen: String,
    request_timeout: Duration,
    first_byte_timeout: Duration,
    max_connections: Option<usize>,
    max_token_bytes: usize,
    /// TLS on or off (the certificate itself is reloaded).
    tls: bool,
    /// The DPoP replay store is opened once, and kept across reloads with the proofs it holds.
    dpop_replay: jwtv_config::replay_store::ReplayStoreSettings,
}

impl RestartOnly {
    fn of(loaded: &Loaded) -> RestartOnly {
        let ServerSettings {
            listen,
            request_timeout,
            first_byte_timeout,
            max_connections,
            ..
        } = &loaded.server;
        RestartOnly {
            listen: listen.clone(),
            request_timeout: *request_timeout,
            first_byte_timeout: *first_byte_timeout,
            max_connections: *max_connections,
            max_token_bytes: loaded.verifier.limits().max_token_bytes,
            tls: loaded.server.tls.is_some(),
            dpop_replay: loaded.server.dpop_replay.clone(),
        }
    }
}

/// One complete configuration, as requests use it.
pub struct Active {
    pub service: Service,
    /// The key store the service reads.
    pub keys: Arc<Keys>,
    /// The token cache the service was given, for `/metrics`.
    pub cache: Option<Arc<VerifiedCache>>,
    /// Of the inputs it was built from ([`Inputs::digest`]).
    pub digest: String,
    /// When it started serving.
    pub since: Instant,
    /// Which decisions get a log line (changes with a reload).
    pub decision_log: DecisionLog,
    /// The listener's TLS configuration: new connections handshake with the one of the configuration
    /// serving when they arrive, so a rotated certificate is served without closing any connection.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// The DPoP proofs seen; kept across reloads, so a reload is no way to replay a proof.
    pub replay: Arc<ReplayStore>,
    restart_only: RestartOnly,
}

impl Active {
    /// Builds the service of `loaded`. With `previous` (a reload), unchanged remote key sources are
    /// taken over, and the token cache is a new one: nothing verified under the previous keys is
    /// served after the swap.
    pub fn build(
        loaded: Loaded,
        digest: String,
        previous: Option<&Active>,
    ) -> anyhow::Result<Active> {
        let restart_only = RestartOnly::of(&loaded);
        let settings = &loaded.server;
        let tls = settings
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        let keys = Keys::new(
            loaded.keys,
            loaded.remote,
            loaded.verifier.policies(),
            &settings.fetch,
            previous.map(|p| &*p.keys),
        )
        .context("cannot prepare the key-set fetcher")?;
        let keys = Arc::new(keys);
        let mut service = Service::new(loaded.verifier, keys.clone(), loaded.options);
        let size = settings.token_cache_size;
        let cache = (size > 0).then(|| {
            let generation = keys.generation_counter();
            Arc::new(match previous.and_then(|p| p.cache.as_deref()) {
                Some(old) => VerifiedCache::succeeding(old, size, generation),
                None => VerifiedCache::new(size, generation),
            })
        });
        if let Some(cache) = &cache {
            service = service.with_token_cache(cache.clone());
        }
        let replay = match previous {
            Some(previous) => previous.replay.clone(),
            None => Arc::new(ReplayStore::memory(
                service.options().dpop.replay_max_entries,
            )),
        };
        Ok(Active {
            service,
            keys,
            cache,
            digest,
            since: Instant::now(),
            decision_log: settings.decision_log,
            tls,
            replay,
            restart_only,
        })
    }
}

/// Reloads by result, for `/metrics`.
#[derive(Default)]
pub struct Reloads {
    /// A new configuration was swapped in.
    pub applied: AtomicU64,
    /// The configuration read was the one serving.
    pub unchanged: AtomicU64,
    /// The configuration read could not be served; the active one stayed.
    pub failed: AtomicU64,
}

/// The configuration serving now.
pub struct Current {
    active: RwLock<Arc<Active>>,
    pub reloads: Reloads,
}

impl Current {
    pub fn new(active: Active) -> Current {
        Current {
            active: RwLock::new(Arc::new(active)),
            reloads: Reloads::default(),
        }
    }

    pub fn get(&self) -> Arc<Active> {
        // Writers only assign a whole `Arc`: a poisoned lock still holds a valid one.
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, active: Arc<Active>) {
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = active;
    }
}

/// What the reload task needs, prepared before the runtime starts.
pub struct Plan {
    pub source: Source,
    /// What the serving configuration was loaded from.
    pub inputs: Inputs,
    /// Between two checks of the watched files; `None`: only SIGHUP reloads.
    pub interval: Option<Duration>,
}

impl Plan {
    /// Installs the SIGHUP handler. Called before the listening line, so that a supervisor signalling
    /// right after it reloads the process rather than killing it.
    pub fn arm(self, current: Arc<Current>) -> anyhow::Result<Watcher> {
        Ok(Watcher {
            hangup: Hangup::new()?,
            current,
            source: self.source,
            watched: self.inputs,
            interval: self.interval,
        })
    }
}

pub struct Watcher {
    hangup: Hangup,
    current: Arc<Current>,
    source: Source,
    /// What the last attempt read, successful or not: the next file-triggered attempt waits for a
    /// change of it, so a broken file is reported once rather than at every poll.
    watched: Inputs,
    interval: Option<Duration>,
}

impl Watcher {
    /// Reloads on every SIGHUP and every change of a watched file, until the runtime stops.
    pub async fn run(mut self) {
        loop {
            let trigger = tokio::select! {
                () = self.hangup.recv() => "SIGHUP",
                () = tick(self.interval) => {
                    if !self.watched.changed() {
                        continue;
                    }
                    "a configuration file changed"
                }
            };
            self.reload(trigger).await;
        }
    }

    async fn reload(&mut self, trigger: &str) {
        let outcome = self.attempt().await;
        let reloads = &self.current.reloads;
        match outcome {
            Ok(Some(digest)) => {
                reloads.applied.fetch_add(1, Ordering::Relaxed);
                tracing::info!(trigger, digest = %digest, "configuration reloaded");
            }
            Ok(None) => {
                reloads.unchanged.fetch_add(1, Ordering::Relaxed);
                tracing::info!(trigger, "configuration reloaded: unchanged");
            }
            Err(reason) => {
                reloads.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    trigger,
                    "configuration reload failed, the active configuration stays: {reason}"
                );
            }
        }
    }

    /// Loads and builds off the runtime's workers, waits for new remote key sets, swaps. Returns the
    /// new digest, or `None` when the configuration read is the one serving.
    async fn attempt(&mut self) -> Result<Option<String>, String> {
        let source = self.source.clone();
        let previous = self.current.get();
        let (built, inputs) = tokio::task::spawn_blocking(move || {
            let (loaded, inputs) = source.load();
            let built = match loaded {
                Err(e) => Err(e.to_string()),
                Ok(_) if inputs.digest == previous.digest => Ok(None),
                Ok(loaded) => {
                    let warnings = loaded.warnings.clone();
                    Active::build(loaded, inputs.digest.clone(), Some(&previous))
                        .map(|active| Some((active, warnings)))
                        .map_err(|e| format!("{e:#}"))
                }
            };
            (built, inputs)
        })
        .await
        .map_err(|e| format!("the reload task failed: {e}"))?;
        self.watched = inputs;
        let Some((active, warnings)) = built? else {
            return Ok(None);
        };
        active.keys.start();
        let (fetched, bound) = active.keys.first_fetch().await;
        if !fetched {
            // Dropping `active` stops the fetchers it started.
            return Err(format!(
                "a remote key set of the new configuration was not fetched within {}s",
                bound.as_secs()
            ));
        }
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        let previous = self.current.get();
        if active.restart_only != previous.restart_only {
            tracing::warn!(
                "the listen address, request and first-byte timeouts, connection limit, token size \
                 limit and DPoP replay store take effect at the next restart"
            );
        }
        let digest = active.digest.clone();
        self.current.replace(Arc::new(active));
        Ok(Some(digest))
    }
}

async fn tick(interval: Option<Duration>) {
    match interval {
        Some(interval) => tokio::time::sleep(interval).await,
        None => std::future::pending().await,
    }
}

/// SIGHUP, where there is one.
struct Hangup {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangup {
    fn new() -> anyhow::Result<Hangup> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
            Ok(Hangup { signal })
        }
        #[cfg(not(unix))]
        Ok(Hangup {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if self.signal.recv().await.is_some() {
            return;
        }
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_inputs_are_unambiguous() {
        let digest = |inputs: &[(&[u8], Option<&[u8]>)]| {
            let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
            for (name, value) in inputs {
                feed(&mut hasher, b'f', name, *value);
            }
            hex(hasher.finish().as_ref())
        };
        assert_ne!(
            digest(&[(b"ab", Some(b"c"))]),
            digest(&[(b"a", Some(b"bc"))])
        );
        assert_ne!(digest(&[(b"a", None)]), digest(&[(b"a", Some(b""))]));
        assert_eq!(digest(&[(b"a", None)]), digest(&[(b"a", None)]));
    }

    #[test]
    fn a_swapped_symlink_is_a_change_and_an_untouched_file_is_not() {
        let dir = std::env::temp_dir().join(format!("jwtv-reload-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("v1")).unwrap();
        std::fs::create_dir_all(dir.join("v2")).unwrap();
        std::fs::write(dir.join("v1/secret"), b"one").unwrap();
        std::fs::write(dir.join("v2/secret"), b"two").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("v1", dir.join("..data")).unwrap();
            std::os::unix::fs::symlink("..data/secret", dir.join("secret")).unwrap();
            let path = dir.join("secret");
            let inputs = Inputs {
                digest: String::new(),
                files: vec![(path.clone(), stamp(&path))],
            };
            assert!(!inputs.changed());
            std::os::unix::fs::symlink("v2", dir.join("..data_tmp")).unwrap();
            std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
            assert!(inputs.changed());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
