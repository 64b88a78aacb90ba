//! The `keyvalue` build: the instances of an app share each remote key set through the host's
//! `wasi:keyvalue` store, so that the app fetches about once per TTL however the host makes its
//! instances (Spin makes a WASI 0.2 instance per request). What is kept and when a fetch is due is
//! [`jwtv_keyset::shared`] (pure); this module only makes the store calls: one `get` of the source's
//! record for a request that needs the source's keys and finds its own machine due (a fresh instance,
//! a TTL run out), an `increment` for the fetch lease when the record says a fetch is due, and a
//! `set` and a `delete` by the one instance that fetched.
//!
//! Which store: Spin's `default` (the component must declare `key_value_stores = ["default"]`), else
//! the unnamed in-memory store of `wasmtime serve -S keyvalue`. Two builds, because the two hosts
//! implement different drafts of the interface (a component naming one cannot instantiate on the
//! other): `--features keyvalue` imports `wasi:keyvalue@0.2.0-draft2` (Spin), `--features
//! keyvalue-wasmtime` imports `@0.2.0-draft` (wasmtime 48, whose store lives in one instance: the
//! tests prove the shell's calls there, not the sharing).
//!
//! Whoever can write the store can install keys: the store must be the validator's alone (in Spin,
//! give its label to no other component of the app).

use std::sync::OnceLock;

use jwtv_keyset::Shared;

use crate::remote::{Remote, RemoteKeys, now_ms};

#[cfg(not(feature = "keyvalue-wasmtime"))]
mod bindings {
    wit_bindgen::generate!({ path: "wit-keyvalue/spin", world: "jwtv:kv/shared", generate_all });
}
#[cfg(feature = "keyvalue-wasmtime")]
mod bindings {
    wit_bindgen::generate!({ path: "wit-keyvalue/wasmtime", world: "jwtv:kv/shared", generate_all });
}

use bindings::wasi::keyvalue::{atomics, store};

/// Spin's store label, then `wasmtime serve`'s in-memory store (which has no name).
const STORES: [&str; 2] = ["default", ""];

/// How often a request with no set in hand reads the record again while another instance fetches.
const WAIT_STEP_MS: u64 = 50;

/// The store, opened at the first request that needs it (never at bake time: a handle in a snapshot
/// would be stale in every instance). `None` when the host has none: each instance then fetches its
/// own, as the default build does, and says so once.
#[derive(Default)]
pub struct Lazy(OnceLock<Option<SharedStore>>);

impl Lazy {
    pub fn get(&self) -> Option<&SharedStore> {
        self.0
            .get_or_init(|| match SharedStore::open() {
                Ok(store) => Some(store),
                Err(why) => {
                    eprintln!(
                        "jwt-validator: warning: no shared key-value store ({why}): each instance \
                         fetches its own key sets (declare key_value_stores = [\"default\"] in \
                         spin.toml)"
                    );
                    None
                }
            })
            .as_ref()
    }
}

pub struct SharedStore {
    bucket: store::Bucket,
}

impl SharedStore {
    fn open() -> Result<SharedStore, String> {
        let mut last = String::new();
        for name in STORES {
            match store::open(name) {
                Ok(bucket) => return Ok(SharedStore { bucket }),
                Err(error) => last = format!("opening store {name:?}: {error:?}"),
            }
        }
        Err(last)
    }

    /// The record under `key`; `None` when there is none, or it cannot be read or understood (the
    /// next fetch writes a good one).
    fn read(&self, key: &str) -> Option<Shared> {
        let bytes = self.bucket.get(key).ok()??;
        Shared::from_bytes(&bytes).ok()
    }

    fn write(&self, key: &str, record: &Shared) {
        if let Err(error) = self.bucket.set(key, &record.to_bytes()) {
            eprintln!("jwt-validator: warning: writing the shared key set: {error:?}");
        }
    }

    /// Whether this instance holds the lease `key`. A store that cannot count makes every instance
    /// its own holder: fetching per instance is the default build's cost, not an outage.
    fn lease(&self, key: &str) -> bool {
        match increment(&self.bucket, key) {
            Ok(n) => n == 1,
            Err(error) => {
                eprintln!("jwt-validator: warning: the fetch lease: {error:?}");
                true
            }
        }
    }

    fn release(&self, key: &str) {
        let _ = self.bucket.delete(key);
    }
}

#[cfg(not(feature = "keyvalue-wasmtime"))]
fn increment(bucket: &store::Bucket, key: &str) -> Result<u64, store::Error> {
    atomics::increment(bucket, key, 1).map(|n| u64::try_from(n).unwrap_or(0))
}

#[cfg(feature = "keyvalue-wasmtime")]
fn increment(bucket: &store::Bucket, key: &str) -> Result<u64, store::Error> {
    atomics::increment(bucket, key, 1)
}

/// The record of `source`: named by its URL, so a record of another configuration is never read.
fn record_key(source: &Remote) -> String {
    format!("jwt-validator/v1/{}", source.location_url())
}

/// [`Shared::adopt`] on `source`'s machine; a record that cannot be used is said, not fatal.
fn adopt(source: &Remote, record: &Shared) {
    if let Err(error) = record.adopt(&mut source.machine(), now_ms()) {
        eprintln!(
            "jwt-validator: warning: {}: the shared key set is not usable: {error}",
            source.configured_at()
        );
    }
}

impl RemoteKeys {
    /// [`RemoteKeys::refresh`] with a shared store: the app's record first; a fetch only by the one
    /// instance that takes the lease, when the record says one is due.
    pub(crate) fn refresh_shared(&self, source: &Remote, shared: &SharedStore, budget: u64) -> u64 {
        let key = record_key(source);
        let now = now_ms();
        let mut record = shared.read(&key).unwrap_or_default();
        adopt(source, &record);
        if !source.machine().busy() || !record.fetch_due(now) {
            // Fresh enough for the app, or another instance failed lately and the app backs off.
            self.settle(source);
            return source.machine().generation();
        }
        let lease = record.lease_key(&key, now, Shared::lease_period(self.timeout_ms()));
        if !shared.lease(&lease) {
            self.wait_shared(source, shared, &key, budget);
            return source.machine().generation();
        }
        // Close the race with a holder that wrote between our read and our increment.
        if let Some(fresh) = shared.read(&key)
            && fresh != record
        {
            adopt(source, &fresh);
            if !fresh.fetch_due(now) || !source.machine().busy() {
                shared.release(&lease);
                self.settle(source);
                return source.machine().generation();
            }
            record = fresh;
        }
        let started = now_ms();
        record.attempted(started);
        self.fetch_due(source, budget);
        self.publish(source, shared, &key, &mut record, started, true);
        shared.release(&lease);
        source.machine().generation()
    }

    /// [`RemoteKeys::refetch`] with a shared store: a set another instance fetched since counts, and
    /// the cooldown is the app's, not the instance's.
    pub(crate) fn refetch_shared(&self, source: &Remote, shared: &SharedStore, seen: u64) -> bool {
        let key = record_key(source);
        let now = now_ms();
        let mut record = shared.read(&key).unwrap_or_default();
        adopt(source, &record);
        self.settle(source);
        if source.machine().generation() > seen {
            return true;
        }
        if !record.unknown_kid_allowed(now, self.rules()) {
            return false;
        }
        let lease = record.kid_lease_key(&key);
        if !shared.lease(&lease) {
            return false;
        }
        // The app's cooldown starts now, before the fetch: instances asking meanwhile wait it out.
        record.attempted(now);
        shared.write(&key, &record);
        let refetched = self.refetch_local(source, seen);
        self.publish(source, shared, &key, &mut record, now, false);
        shared.release(&lease);
        refetched
    }

    /// Writes what the attempt started at `started` brought ([`Shared::conclude`]).
    fn publish(
        &self,
        source: &Remote,
        shared: &SharedStore,
        key: &str,
        record: &mut Shared,
        started: u64,
        scheduled: bool,
    ) {
        record.conclude(
            &source.machine(),
            started,
            now_ms(),
            self.rules(),
            scheduled,
        );
        shared.write(key, record);
    }

    /// With no set in hand while another instance holds the lease: reads the record until its set
    /// arrives or `budget` runs out (then the answer is 503, as before any first fetch).
    fn wait_shared(&self, source: &Remote, shared: &SharedStore, key: &str, budget: u64) {
        let deadline = now_ms().saturating_add(budget);
        while source.machine().key_set().is_none() && now_ms() < deadline {
            crate::outgoing::sleep(WAIT_STEP_MS);
            if let Some(record) = shared.read(key) {
                adopt(source, &record);
            }
        }
        self.settle(source);
    }
}
