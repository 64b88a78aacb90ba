//! What the short-lived instances of one app share about a remote key set through a host key-value
//! store (Spin's `key_value_stores`), so that the app, not each instance, is the unit that fetches:
//! the last good set ([`Snapshot`]: its document, fetch time, refresh deadline, discovered
//! `jwks_uri`), when the next fetch may start, and when the last one did. One record per source, read
//! with one `get` by a request that needs that source's keys, written only by the instance that
//! fetched.
//!
//! Who fetches: an instance that reads a record whose [`Shared::next_fetch`] has come takes a lease
//! by atomically incrementing [`Shared::lease_key`] (the store's `atomics.increment`); the one that
//! reads 1 fetches, every other one serves the set in hand (the shared one, or its seed) or, with
//! none, waits for the record to change. The key names the deadline every contender read and the
//! lease period it falls in, so contenders agree on it without a compare-and-swap, and a holder that
//! never comes back (its instance killed mid-fetch) gives way to one new attempt per period. After a
//! failure the record moves `next_fetch` by a backoff, so an outage costs the provider one attempt
//! per backoff for the whole app, not one per instance.
//!
//! Pure: times are passed in (wall-clock milliseconds since the epoch, the one clock every instance
//! shares); the shell does the store calls.

use serde_json::{Value, json};

use crate::FetchError;
use crate::snapshot::Snapshot;
use crate::source::{Rules, Source};

/// The record of one source in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shared {
    /// The last good set, once any instance fetched one.
    pub snapshot: Option<Snapshot>,
    /// No instance starts a scheduled fetch before this: the set's refresh deadline after a success,
    /// a backoff after a failure; 0 (now) before the first attempt.
    pub next_fetch: u64,
    /// When the last attempt by any instance started: the unknown-kid cooldown counts from here.
    pub last_attempt: Option<u64>,
    /// Failed attempts since the last success, for the backoff.
    pub failures: u32,
}

/// Why record bytes were refused (a record written by another version, or not by us).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a shared key-set record: {0}")]
pub struct SharedError(&'static str);

impl Shared {
    /// Whether a scheduled fetch (refresh or retry) is due at `now`.
    pub fn fetch_due(&self, now: u64) -> bool {
        now >= self.next_fetch
    }

    /// Whether an unknown `kid` may start a fetch at `now`: at most one per cooldown for the app.
    pub fn unknown_kid_allowed(&self, now: u64, rules: &Rules) -> bool {
        self.last_attempt
            .is_none_or(|at| now.saturating_sub(at) >= rules.refetch_cooldown)
    }

    /// The counter whose increment to 1 makes its caller the one instance that fetches now.
    /// `prefix` names the source; the key changes with the deadline read and with each `period`
    /// past it, so a lost holder is replaced once per period.
    pub fn lease_key(&self, prefix: &str, now: u64, period: u64) -> String {
        let late = now.saturating_sub(self.next_fetch) / period.max(1);
        format!("{prefix}/lease/{}/{late}", self.next_fetch)
    }

    /// The counter of an unknown-kid refetch: contenders that read the same last attempt share it,
    /// and the attempt it allows moves the key on.
    pub fn kid_lease_key(&self, prefix: &str) -> String {
        format!("{prefix}/kid/{}", self.last_attempt.unwrap_or(0))
    }

    /// How long a lease lasts: a discovery and its key set, each bounded by the fetch `timeout`.
    pub fn lease_period(timeout: u64) -> u64 {
        timeout.saturating_mul(2).saturating_add(1_000)
    }

    /// Records an attempt started at `now`.
    pub fn attempted(&mut self, now: u64) {
        self.last_attempt = Some(now);
    }

    /// Records a fetched set: it is the one every instance serves until `snapshot.refresh_at`.
    pub fn succeeded(&mut self, snapshot: Snapshot) {
        self.next_fetch = snapshot.refresh_at;
        self.snapshot = Some(snapshot);
        self.failures = 0;
    }

    /// Records a failed attempt at `now`: the set stays (stale-on-error), the next attempt waits the
    /// backoff, doubled per failure in a row up to `max_backoff`.
    pub fn failed(&mut self, now: u64, rules: &Rules) {
        let doubled = rules
            .first_backoff
            .saturating_mul(1u64 << self.failures.min(20));
        self.next_fetch = now.saturating_add(doubled.min(rules.max_backoff));
        self.failures = self.failures.saturating_add(1);
    }

    /// Hands `machine` (an instance's) what the record holds that is newer than its own set, then
    /// lets it see at `now` whether a fetch is due: afterwards `machine.busy()` says whether this
    /// instance wants one, [`Shared::fetch_due`] whether the app allows one. A record whose document
    /// is not a usable key set is refused (the next fetch writes a good one).
    pub fn adopt(&self, machine: &mut Source, now: u64) -> Result<(), FetchError> {
        let imported = match &self.snapshot {
            Some(snapshot) => machine.import(snapshot),
            None => Ok(()),
        };
        machine.handle_timeout(now);
        imported
    }

    /// Records what the attempt started at `started` brought `machine`: its set as the app's on
    /// success; on failure of a scheduled fetch (`scheduled`), the backoff; a failed unknown-kid
    /// refetch leaves the schedule alone, as the machine does.
    pub fn conclude(
        &mut self,
        machine: &Source,
        started: u64,
        now: u64,
        rules: &Rules,
        scheduled: bool,
    ) {
        let fetched = machine
            .fetched_at()
            .filter(|&at| at >= started)
            .and_then(|_| machine.export());
        match fetched {
            Some(snapshot) => self.succeeded(snapshot),
            None if scheduled => self.failed(now, rules),
            None => {}
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        json!({
            "v": 1,
            "next_fetch": self.next_fetch,
            "last_attempt": self.last_attempt,
            "failures": self.failures,
            "snapshot": self.snapshot.as_ref().map(Snapshot::to_value),
        })
        .to_string()
        .into_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Shared, SharedError> {
        let root: Value = serde_json::from_slice(bytes).map_err(|_| SharedError("not JSON"))?;
        if root.get("v").and_then(Value::as_u64) != Some(1) {
            return Err(SharedError("unknown version"));
        }
        let snapshot = match root.get("snapshot") {
            None | Some(Value::Null) => None,
            Some(value) => Some(Snapshot::from_value(value).map_err(|_| SharedError("snapshot"))?),
        };
        Ok(Shared {
            snapshot,
            next_fetch: root
                .get("next_fetch")
                .and_then(Value::as_u64)
                .ok_or(SharedError("next_fetch"))?,
            last_attempt: root.get("last_attempt").and_then(Value::as_u64),
            failures: root
                .get("failures")
                .and_then(Value::as_u64)
                .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::FetchSettings;

    fn rules() -> Rules {
        Rules::from_settings(&FetchSettings::default())
    }

    fn snapshot(fetched_at: u64, refresh_at: u64) -> Snapshot {
        Snapshot {
            body: br#"{"keys":[]}"#.to_vec(),
            fetched_at,
            refresh_at,
            jwks_uri: None,
        }
    }

    #[test]
    fn an_empty_store_makes_the_first_fetch_due_at_once() {
        let shared = Shared::default();
        assert!(shared.fetch_due(0));
        assert!(shared.unknown_kid_allowed(0, &rules()));
    }

    #[test]
    fn a_fetched_set_is_fresh_until_its_refresh_deadline() {
        let mut shared = Shared::default();
        shared.attempted(1_000);
        shared.succeeded(snapshot(1_000, 601_000));
        assert!(!shared.fetch_due(600_999));
        assert!(shared.fetch_due(601_000));
    }

    #[test]
    fn contenders_for_one_deadline_share_one_lease_key_per_period() {
        let mut shared = Shared::default();
        shared.succeeded(snapshot(1_000, 601_000));
        let period = Shared::lease_period(5_000);
        let first = shared.lease_key("s0", 601_000, period);
        assert_eq!(first, shared.lease_key("s0", 601_000 + period - 1, period));
        // A holder lost for a whole period gives way to one new attempt.
        assert_ne!(first, shared.lease_key("s0", 601_000 + period, period));
        // A new deadline is a new lease.
        shared.succeeded(snapshot(602_000, 1_202_000));
        assert_ne!(first, shared.lease_key("s0", 1_202_000, period));
    }

    #[test]
    fn failures_keep_the_set_and_back_off_doubling_up_to_the_ceiling() {
        let rules = rules();
        let mut shared = Shared::default();
        shared.succeeded(snapshot(0, 600_000));
        let mut waits = Vec::new();
        let mut now = 600_000;
        for _ in 0..9 {
            shared.failed(now, &rules);
            waits.push(shared.next_fetch - now);
            now = shared.next_fetch;
        }
        assert_eq!(
            waits,
            [
                1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000
            ]
        );
        assert_eq!(shared.snapshot, Some(snapshot(0, 600_000)));
        shared.succeeded(snapshot(now, now + 600_000));
        assert_eq!(shared.failures, 0);
    }

    #[test]
    fn unknown_kids_start_at_most_one_fetch_per_cooldown_for_the_app() {
        let rules = rules();
        let mut shared = Shared::default();
        shared.attempted(10_000);
        assert!(!shared.unknown_kid_allowed(10_000 + rules.refetch_cooldown - 1, &rules));
        assert!(shared.unknown_kid_allowed(10_000 + rules.refetch_cooldown, &rules));
        let key = shared.kid_lease_key("s0");
        shared.attempted(10_000 + rules.refetch_cooldown);
        assert_ne!(key, shared.kid_lease_key("s0"));
    }

    #[test]
    fn a_record_survives_its_bytes_and_foreign_bytes_are_refused() {
        let mut shared = Shared::default();
        assert_eq!(Shared::from_bytes(&shared.to_bytes()), Ok(shared.clone()));
        shared.attempted(7);
        shared.succeeded(Snapshot {
            jwks_uri: Some("https://idp.example.com/keys".into()),
            ..snapshot(7, 600_007)
        });
        shared.failed(600_007, &rules());
        assert_eq!(Shared::from_bytes(&shared.to_bytes()), Ok(shared));
        assert!(Shared::from_bytes(b"{}").is_err());
        assert!(Shared::from_bytes(b"12").is_err());
        assert!(Shared::from_bytes(br#"{"v":1,"next_fetch":1,"snapshot":{}}"#).is_err());
    }
}
