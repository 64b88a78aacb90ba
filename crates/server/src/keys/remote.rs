//! One remote key source of the native server: the tokio driver of its [`jwtv_keyset::Source`], the
//! live set the service reads, and the source's statistics.
//!
//! Every rule (TTL, backoff, unknown-kid cooldown and single flight, stale-on-error, readiness,
//! discovery, jitter) is the machine's; this module only does its I/O: one task per source fetches what
//! `poll_fetch` asks for and sleeps until `poll_timeout`, woken early when an unknown kid makes a fetch
//! due. A request with an unknown kid asks the machine, then waits at most until the deadline it gave
//! for the machine's generation to pass the one it read, or for the fetch to end; the fetch itself runs
//! in the task, so a request that stops waiting or whose client leaves never cancels it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jwtv_keyset::{
    Event, FetchError, FetchSettings, Level, RemoteSource, Rules, Slot, Source, UnknownKid,
};
use jwtv_service::verifier::KeySet;
use tokio::sync::{Notify, watch};

use super::fetch::Fetcher;

/// Counters and gauges of one source, read by `/metrics`.
#[derive(Default)]
pub struct Stats {
    /// Successful fetches (changed or not).
    pub ok: AtomicU64,
    /// Failed fetches, by [`FetchError::KINDS`].
    pub errors: [AtomicU64; FetchError::KINDS.len()],
    /// Sum of fetch durations in microseconds, and their count (every attempt, discovery included).
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

pub struct Remote {
    pub source: RemoteSource,
    /// The issuer as configured, for logs and metric labels (`(default)` for the default issuer).
    pub label: String,
    fetcher: Arc<Fetcher>,
    machine: Mutex<Source>,
    /// Zero of the machine's clock.
    epoch: Instant,
    /// This issuer's slot of the store: the set in use, mirrored from the machine so that requests
    /// read it without its lock.
    pub slot: Arc<Slot>,
    /// Wakes the task when an unknown kid made a fetch due.
    wake: Notify,
    /// Bumped after every answered fetch: unknown-kid waiters look at the machine again.
    answered: watch::Sender<u64>,
    /// The store's generation, bumped after every installed set (all sources): the token cache and
    /// unknown-kid retries compare against it.
    generation: Arc<AtomicU64>,
    /// The value of `generation` this source's last installation produced (written under the lock).
    changed_at: AtomicU64,
    pub stats: Stats,
}

impl Remote {
    pub fn new(
        source: RemoteSource,
        label: String,
        settings: &FetchSettings,
        fetcher: Arc<Fetcher>,
        slot: Arc<Slot>,
        generation: Arc<AtomicU64>,
    ) -> Remote {
        let machine = Source::for_remote(&source, Rules::from_settings(settings), system_seed());
        Remote {
            source,
            label,
            fetcher,
            machine: Mutex::new(machine),
            epoch: Instant::now(),
            slot,
            wake: Notify::new(),
            answered: watch::Sender::new(0),
            generation,
            changed_at: AtomicU64::new(0),
            stats: Stats::default(),
        }
    }

    /// The set in use, if a fetch ever succeeded.
    pub fn key_set(&self) -> Option<Arc<KeySet>> {
        self.slot.get()
    }

    /// Time since the last successful fetch, if any.
    pub fn age(&self) -> Option<Duration> {
        let fetched_at = self.machine().fetched_at()?;
        Some(Duration::from_millis(self.now().saturating_sub(fetched_at)))
    }

    fn machine(&self) -> MutexGuard<'_, Source> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Milliseconds on the machine's clock.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Fetches what the machine asks for, when it asks. Runs until the runtime stops.
    pub async fn run(self: Arc<Self>) {
        // Start of the attempt under way: a discovery and its key set are one attempt.
        let mut attempt: Option<Instant> = None;
        loop {
            let (fetch, deadline) = {
                let mut machine = self.machine();
                machine.handle_timeout(self.now());
                let fetch = machine.poll_fetch(self.now());
                (fetch, machine.poll_timeout())
            };
            self.report(None);
            let Some(fetch) = fetch else {
                let sleep = match deadline {
                    Some(at) => Duration::from_millis(at.saturating_sub(self.now())),
                    None => Duration::from_secs(3600),
                };
                tokio::select! {
                    () = tokio::time::sleep(sleep) => {}
                    () = self.wake.notified() => {}
                }
                continue;
            };
            let started = *attempt.get_or_insert_with(Instant::now);
            let result = self.fetcher.get(&fetch).await;
            let busy = {
                let mut machine = self.machine();
                let now = self.now();
                match result {
                    Ok(fetched) => machine.handle_fetched(now, &fetched.body, fetched.max_age),
                    Err(error) => machine.handle_failed(now, error),
                }
                self.mirror(&machine);
                machine.busy()
            };
            let mut duration = None;
            if !busy {
                attempt = None;
                let elapsed = started.elapsed();
                let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                self.stats.duration_sum_us.fetch_add(us, Ordering::Relaxed);
                self.stats.duration_count.fetch_add(1, Ordering::Relaxed);
                duration = Some(elapsed);
            }
            self.report(duration);
            self.answered.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Publishes a set the machine installed; the caller holds the machine's lock, so an unknown-kid
    /// request that reads `changed_at` under it sees the set with its generation.
    fn mirror(&self, machine: &Source) {
        // A machine never drops a set it had, so there is nothing to mirror until it has one.
        let Some(set) = machine.key_set() else {
            return;
        };
        if let Some(generation) = self.slot.install(set.clone(), &self.generation) {
            self.changed_at.store(generation, Ordering::Release);
        }
    }

    /// After a token named a `kid` the set lacks: asks the machine, which refetches unless an attempt
    /// started within the cooldown, and waits on the fetch due or under way, at most until the deadline
    /// the machine gives (the refetch wait from that fetch's start). `seen` is the store generation read
    /// before the token was verified. Returns whether this source's set changed since then (the caller
    /// then verifies once more).
    pub async fn refetch_for_unknown_kid(&self, seen: u64) -> bool {
        let mut answered = self.answered.subscribe();
        let (verdict, local) = {
            let mut machine = self.machine();
            if self.changed_at.load(Ordering::Acquire) > seen {
                return true;
            }
            let local = machine.generation();
            (machine.handle_unknown_kid(self.now(), local), local)
        };
        self.report(None);
        let until = match verdict {
            UnknownKid::Retry => return true,
            UnknownKid::Suppressed => return false,
            UnknownKid::Wait { until } => until,
        };
        self.wake.notify_one();
        let deadline = self.epoch + Duration::from_millis(until);
        loop {
            {
                let machine = self.machine();
                if machine.generation() > local {
                    return true;
                }
                if !machine.busy() {
                    return false;
                }
            }
            match tokio::time::timeout_at(deadline.into(), answered.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return false,
                Err(_) => {
                    self.stats
                        .unknown_kid_wait_expired
                        .fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
        }
    }

    /// Turns the machine's events into log lines and counters. `duration` is that of the attempt
    /// that just ended, if one did.
    fn report(&self, duration: Option<Duration>) {
        let events: Vec<Event> = {
            let mut machine = self.machine();
            std::iter::from_fn(|| machine.poll_event()).collect()
        };
        let duration_ms = duration.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        for event in events {
            match &event {
                Event::Fetched { keys, .. } => {
                    self.stats.ok.fetch_add(1, Ordering::Relaxed);
                    self.stats.keys.store(*keys as u64, Ordering::Relaxed);
                }
                Event::Unchanged { .. } => {
                    self.stats.ok.fetch_add(1, Ordering::Relaxed);
                }
                Event::Failed { error, .. } => {
                    self.stats.errors[error.kind_index()].fetch_add(1, Ordering::Relaxed);
                }
                Event::UnknownKidRefetch => {
                    self.stats
                        .unknown_kid_refetches
                        .fetch_add(1, Ordering::Relaxed);
                }
                Event::UnknownKidSuppressed => {
                    self.stats
                        .unknown_kid_suppressed
                        .fetch_add(1, Ordering::Relaxed);
                }
                Event::Discovered { .. } => {}
            }
            // The words are keyset's (every shell's); the fields are what only this shell knows.
            let kids = match event {
                Event::Fetched { .. } => self.kids(),
                _ => String::new(),
            };
            let source = &self.source.configured_at;
            match event.level() {
                Level::Warn => {
                    let error_kind = match &event {
                        Event::Failed { error, .. } => error.kind(),
                        _ => "",
                    };
                    tracing::warn!(issuer = %self.label, %source, error_kind, duration_ms, "{event}")
                }
                Level::Info => {
                    tracing::info!(issuer = %self.label, %source, duration_ms, %kids, "{event}")
                }
                Level::Debug => {
                    tracing::debug!(issuer = %self.label, %source, duration_ms, "{event}")
                }
            }
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

/// The jitter seed of a source, from the system's random source; a failing source leaves a fixed seed,
/// which only loses the spread, never a bound.
fn system_seed() -> u64 {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    u64::from_le_bytes(bytes)
}
