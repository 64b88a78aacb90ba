//! Jitter for the background refreshes and retries of remote key sets, so that replicas started
//! together (a rollout, a node drain) spread their fetches instead of reaching the identity provider in
//! lockstep, TTL after TTL.
//!
//! A wait of `d` becomes a point in `[0.8 d, d]`: never later than the TTL the provider asked for
//! (`max-age` is its word on freshness), never sooner than four fifths of it, so N replicas cost the
//! provider at most 1.25 times the fetches of N refreshing exactly at the TTL (`bench/idp_load.py`
//! simulates it; figures in `docs/remote-keys.md`). The draws are a pure function of a seed and a
//! counter (SplitMix64); each shell seeds a source once from its system's random source, and tests pass
//! their own seed. Waits are milliseconds, as everywhere in the machine.

/// The earliest point of a jittered wait, as a fraction of it.
pub const EARLIEST: f64 = 0.8;

/// One source's sequence of draws.
pub struct Jitter {
    seed: u64,
    draws: u64,
}

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter { seed, draws: 0 }
    }

    /// `wait`, brought forward by up to a fifth.
    pub fn spread(&mut self, wait: u64) -> u64 {
        let draw = splitmix64(
            self.seed
                .wrapping_add(self.draws.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        self.draws += 1;
        spread(wait, unit(draw))
    }
}

/// `wait` scaled into `[EARLIEST × wait, wait]` by `unit` in `[0, 1)`.
pub fn spread(wait: u64, unit: f64) -> u64 {
    let scaled = wait as f64 * (EARLIEST + (1.0 - EARLIEST) * unit.clamp(0.0, 1.0));
    // Float rounding may land a hair past `wait`: never later than asked.
    (scaled as u64).min(wait)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The top 53 bits as a float in `[0, 1)`.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 600_000;

    #[test]
    fn a_refresh_falls_between_four_fifths_of_the_ttl_and_the_ttl() {
        for seed in 0..200 {
            let mut jitter = Jitter::new(seed);
            for _ in 0..50 {
                let wait = jitter.spread(TTL);
                assert!((480_000..=TTL).contains(&wait), "{wait}");
            }
        }
        assert_eq!(spread(TTL, 0.0), 480_000);
        assert!(spread(TTL, 0.999_999) < TTL);
        assert_eq!(spread(TTL, 7.0), TTL, "out-of-range draws are clamped");
    }

    #[test]
    fn replicas_with_their_own_seeds_spread_over_the_whole_window() {
        let firsts: Vec<u64> = (0..100u64)
            .map(|seed| Jitter::new(seed.wrapping_mul(0x1234_5678_9ABC_DEF1)).spread(TTL))
            .collect();
        let min = *firsts.iter().min().unwrap();
        let max = *firsts.iter().max().unwrap();
        assert!(min < 490_000 && max > 590_000, "{min}..{max}");
        let mut distinct = firsts.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 95, "{} distinct of 100", distinct.len());
    }

    #[test]
    fn the_same_seed_draws_the_same_schedule() {
        let (mut a, mut b) = (Jitter::new(42), Jitter::new(42));
        let schedule_a: Vec<_> = (0..10).map(|_| a.spread(TTL)).collect();
        let schedule_b: Vec<_> = (0..10).map(|_| b.spread(TTL)).collect();
        assert_eq!(schedule_a, schedule_b);
        assert_ne!(schedule_a[0], schedule_a[1], "each refresh draws anew");
    }
}
