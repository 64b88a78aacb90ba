//! Which decisions get a log line: the configured kind (all, refusals, none), then a share of those,
//! chosen by counting rather than by chance, so that a rate of 0.1 logs exactly every tenth line and a
//! test can count them.

use std::sync::atomic::{AtomicU64, Ordering};

use jwtv_config::{DecisionLog, LoggedDecisions};

/// Decisions eligible for a line so far, across reloads.
#[derive(Default)]
pub struct Sampler {
    eligible: AtomicU64,
}

impl Sampler {
    /// Whether the decision (`allowed` or not) gets a line under `config`.
    pub fn logs(&self, config: DecisionLog, allowed: bool) -> bool {
        let eligible = match config.which {
            LoggedDecisions::All => true,
            LoggedDecisions::Refusals => !allowed,
            LoggedDecisions::None => false,
        };
        if !eligible {
            return false;
        }
        let rate = u64::from(config.sample_per_million);
        if rate >= 1_000_000 {
            return true;
        }
        // The n-th eligible decision is logged when the running total of `rate` crosses a million.
        let n = self.eligible.fetch_add(1, Ordering::Relaxed);
        (n + 1) * rate / 1_000_000 > n * rate / 1_000_000
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
        };
        (0..n).filter(|_| sampler.logs(config, allowed)).count()
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
}
