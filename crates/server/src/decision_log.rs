//! Which decisions get a log line: the configured kind (all, refusals, none), then a share of those,
//! chosen by counting rather than by chance, so that a rate of 0.1 logs exactly every tenth line and a
//! test can count them; then, for refusals, a rate per reason code.
//!
//! The rate is what keeps the log from being an attacker's disk-filler: anyone can send bad tokens,
//! and a line per refusal wrote ~3.7 MB/s under a flood (issue 22). Each code has a token bucket
//! (`refusals_per_sec` lines a second, as many in a burst); what a bucket turns away is counted, and
//! once per [`SUMMARY_INTERVAL`] the shell asks for one summary line of those counts. `/metrics`
//! counts every decision whatever is logged.
//!
//! No clock here: the shell passes `now` in, so the rules are tested on a virtual clock.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jwtv_config::{DecisionLog, LoggedDecisions};

/// How often the shell asks for the summary of suppressed refusal lines: the period of the rate, so
/// a flood costs at most one summary line a second besides the admitted lines.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(1);

/// Decisions eligible for a line so far, across reloads, and the refusal buckets.
#[derive(Default)]
pub struct Sampler {
    eligible: AtomicU64,
    refusals: Mutex<RefusalLimiter>,
}

impl Sampler {
    /// Whether the decision (`allowed`, or refused with `code`) gets a line under `config` at `now`.
    pub fn logs(
        &self,
        config: DecisionLog,
        allowed: bool,
        code: &'static str,
        now: Instant,
    ) -> bool {
        let eligible = match config.which {
            LoggedDecisions::All => true,
            LoggedDecisions::Refusals => !allowed,
            LoggedDecisions::None => false,
        };
        if !eligible || !self.sampled(config) {
            return false;
        }
        if allowed || config.refusals_per_sec == 0 {
            return true;
        }
        // A poisoned lock only means another request panicked mid-count: the counts stay usable.
        let mut limiter = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        limiter.admit(code, config.refusals_per_sec, now)
    }

    /// The refusal lines suppressed since the last call, per code; `None` when there were none.
    pub fn take_suppressed(&self) -> Option<Suppressed> {
        let mut limiter = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        limiter.take_suppressed()
    }

    fn sampled(&self, config: DecisionLog) -> bool {
        let rate = u64::from(config.sample_per_million);
        if rate >= 1_000_000 {
            return true;
        }
        // The n-th eligible decision is logged when the running total of `rate` crosses a million.
        let n = self.eligible.fetch_add(1, Ordering::Relaxed);
        (n + 1) * rate / 1_000_000 > n * rate / 1_000_000
    }
}

/// A token bucket per refusal code, and what the buckets turned away since the last summary.
#[derive(Default)]
pub struct RefusalLimiter {
    buckets: BTreeMap<&'static str, Bucket>,
    suppressed: BTreeMap<&'static str, u64>,
}

struct Bucket {
    /// Lines that may still be written now; refilled at the rate, capped at one second's worth.
    tokens: f64,
    refilled: Instant,
}

/// Refusal lines not written, per code (in code order), since the previous summary.
#[derive(Debug, PartialEq, Eq)]
pub struct Suppressed(pub Vec<(&'static str, u64)>);

impl Suppressed {
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, n)| n).sum()
    }
}

/// `code=count` pairs, space-separated, for the summary line.
impl std::fmt::Display for Suppressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (code, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{code}={n}")?;
        }
        Ok(())
    }
}

impl RefusalLimiter {
    /// Whether a refusal with `code` gets a line at `now`, at most `per_sec` a second per code (as
    /// many at once after a quiet second); if not, it is counted for the next summary.
    pub fn admit(&mut self, code: &'static str, per_sec: u32, now: Instant) -> bool {
        let capacity = f64::from(per_sec);
        let bucket = self.buckets.entry(code).or_insert(Bucket {
            tokens: capacity,
            refilled: now,
        });
        // `now` before `refilled` (clocks of two requests read in the other order) refills nothing.
        let elapsed = now.saturating_duration_since(bucket.refilled);
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * capacity).min(capacity);
        bucket.refilled = bucket.refilled.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            *self.suppressed.entry(code).or_default() += 1;
            false
        }
    }

    /// What was suppressed since the last call, which starts a new count.
    pub fn take_suppressed(&mut self) -> Option<Suppressed> {
        if self.suppressed.is_empty() {
            return None;
        }
        Some(Suppressed(
            std::mem::take(&mut self.suppressed).into_iter().collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(which: LoggedDecisions, sample_per_million: u32, allowed: bool, n: usize) -> usize {
        let sampler = Sampler::default();
        let config = DecisionLog {
            which,
            sample_per_million,
            refusals_per_sec: 0,
        };
        let now = Instant::now();
        (0..n)
            .filter(|_| sampler.logs(config, allowed, "token_expired", now))
            .count()
    }

    #[test]
    fn each_kind_logs_what_it_names() {
        assert_eq!(logged(LoggedDecisions::All, 1_000_000, true, 50), 50);
        assert_eq!(logged(LoggedDecisions::Refusals, 1_000_000, true, 50), 0);
        assert_eq!(logged(LoggedDecisions::Refusals, 1_000_000, false, 50), 50);
        assert_eq!(logged(LoggedDecisions::None, 1_000_000, false, 50), 0);
    }

    #[test]
    fn sampling_logs_the_exact_share() {
        assert_eq!(logged(LoggedDecisions::All, 100_000, true, 1000), 100);
        assert_eq!(logged(LoggedDecisions::All, 250_000, true, 4000), 1000);
        assert_eq!(logged(LoggedDecisions::All, 0, true, 1000), 0);
        assert_eq!(logged(LoggedDecisions::All, 1, true, 1000), 0);
    }

    /// Admitted refusals of `code`, `n` of them spread evenly over `over` from `start`.
    fn admitted(
        limiter: &mut RefusalLimiter,
        code: &'static str,
        per_sec: u32,
        start: Instant,
        over: Duration,
        n: u32,
    ) -> usize {
        (0..n)
            .filter(|&i| limiter.admit(code, per_sec, start + over * i / n))
            .count()
    }

    #[test]
    fn a_flood_of_one_code_logs_a_burst_then_the_rate() {
        let mut limiter = RefusalLimiter::default();
        let t0 = Instant::now();
        // 10,000 refusals in one instant: the burst only.
        assert_eq!(
            admitted(
                &mut limiter,
                "invalid_signature",
                10,
                t0,
                Duration::ZERO,
                10_000
            ),
            10
        );
        // Then 10,000 a second for 10 s: the rate, 10 a second.
        let logged = admitted(
            &mut limiter,
            "invalid_signature",
            10,
            t0,
            Duration::from_secs(10),
            100_000,
        );
        assert!((99..=100).contains(&logged), "{logged}");
        let suppressed = limiter.take_suppressed().expect("a summary");
        assert_eq!(
            suppressed.0,
            vec![("invalid_signature", 110_000 - 10 - logged as u64)]
        );
    }

    #[test]
    fn each_code_has_its_own_bucket() {
        let mut limiter = RefusalLimiter::default();
        let t0 = Instant::now();
        assert_eq!(
            admitted(&mut limiter, "token_expired", 5, t0, Duration::ZERO, 50),
            5
        );
        // Another code is not starved by the first one's flood.
        assert_eq!(
            admitted(&mut limiter, "invalid_signature", 5, t0, Duration::ZERO, 7),
            5
        );
        let suppressed = limiter.take_suppressed().expect("a summary");
        assert_eq!(
            suppressed.0,
            vec![("invalid_signature", 2), ("token_expired", 45)]
        );
        assert_eq!(suppressed.total(), 47);
        assert_eq!(
            suppressed.to_string(),
            "invalid_signature=2 token_expired=45"
        );
    }

    #[test]
    fn a_quiet_second_refills_the_burst_and_no_more() {
        let mut limiter = RefusalLimiter::default();
        let t0 = Instant::now();
        assert_eq!(
            admitted(&mut limiter, "token_expired", 10, t0, Duration::ZERO, 10),
            10
        );
        assert!(!limiter.admit("token_expired", 10, t0));
        // An hour of quiet refills one second's worth, not an hour's.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(
            admitted(
                &mut limiter,
                "token_expired",
                10,
                later,
                Duration::ZERO,
                100
            ),
            10
        );
    }

    #[test]
    fn a_summary_counts_only_since_the_last_one() {
        let mut limiter = RefusalLimiter::default();
        let t0 = Instant::now();
        assert_eq!(limiter.take_suppressed(), None);
        admitted(&mut limiter, "token_expired", 1, t0, Duration::ZERO, 4);
        assert_eq!(
            limiter.take_suppressed(),
            Some(Suppressed(vec![("token_expired", 3)]))
        );
        // Nothing suppressed since: no summary line.
        assert_eq!(limiter.take_suppressed(), None);
        admitted(&mut limiter, "token_expired", 1, t0, Duration::ZERO, 2);
        assert_eq!(
            limiter.take_suppressed(),
            Some(Suppressed(vec![("token_expired", 2)]))
        );
    }

    #[test]
    fn a_clock_read_out_of_order_refills_nothing() {
        let mut limiter = RefusalLimiter::default();
        let t1 = Instant::now() + Duration::from_secs(5);
        assert!(limiter.admit("token_expired", 1, t1));
        assert!(!limiter.admit("token_expired", 1, t1 - Duration::from_secs(5)));
        assert!(!limiter.admit("token_expired", 1, t1));
    }

    #[test]
    fn the_rate_bounds_refusals_not_allowed_decisions() {
        let sampler = Sampler::default();
        let config = DecisionLog {
            which: LoggedDecisions::All,
            sample_per_million: 1_000_000,
            refusals_per_sec: 2,
        };
        let now = Instant::now();
        let allowed = (0..100)
            .filter(|_| sampler.logs(config, true, "ok", now))
            .count();
        let refused = (0..100)
            .filter(|_| sampler.logs(config, false, "token_expired", now))
            .count();
        assert_eq!((allowed, refused), (100, 2));
        assert_eq!(sampler.take_suppressed().map(|s| s.total()), Some(98));
        // 0: no bound.
        let unbounded = DecisionLog {
            refusals_per_sec: 0,
            ..config
        };
        assert_eq!(
            (0..100)
                .filter(|_| sampler.logs(unbounded, false, "token_expired", now))
                .count(),
            100
        );
    }
}
