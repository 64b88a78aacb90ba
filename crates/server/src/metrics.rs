//! Prometheus metrics, hand-written over atomics: decisions by route and code, request latency, requests
//! in flight, build information; key-set fetches by issuer and result, fetch duration, key count and age
//! of the set in use; token-cache hits and misses; configuration reloads by result, and the digest and
//! age of the configuration serving; connections open, reclaimed and refused.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jwtv_service::Decision;
use jwtv_service::verifier::Code;

use crate::connections::Connections;
use crate::keys::Keys;
use crate::keys::fetch::FetchError;
use crate::reload::{Active, Reloads};
use jwtv_service::cache::VerifiedCache;

/// Upper bounds of the latency histogram, in microseconds (50 µs … 1 s).
const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// Routes that produce decisions. Gateway paths (`/auth…`, `/policy/…`) count as `auth`.
const ROUTES: [&str; 2] = ["validate", "auth"];

/// One slot per code, plus one for allow and one for an anonymous pass (no token, on an anonymous
/// route: `result="allow",code="anonymous"`).
const OUTCOMES: usize = Code::ALL.len() + 2;
const ALLOW: usize = Code::ALL.len();
const ANONYMOUS: usize = Code::ALL.len() + 1;

pub struct Metrics {
    decisions: [[AtomicU64; OUTCOMES]; ROUTES.len()],
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    duration_sum_us: AtomicU64,
    duration_count: AtomicU64,
    in_flight: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            decisions: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_sum_us: AtomicU64::new(0),
            duration_count: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }
}

/// Decrements the in-flight gauge when the request is done, whichever way it ends.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The route label of a path, when the path makes decisions.
pub fn route_of(path: &str) -> Option<usize> {
    if path == "/validate" {
        Some(0)
    } else if path == "/auth" || path.starts_with("/auth/") || path.starts_with("/policy/") {
        Some(1)
    } else {
        None
    }
}

impl Metrics {
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Records one answered request; `route` comes from [`route_of`].
    pub fn observe(&self, route: Option<usize>, decision: Option<&Decision>, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.duration_sum_us.fetch_add(us, Ordering::Relaxed);
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        if let (Some(route), Some(decision)) = (route, decision) {
            self.decisions[route][outcome(decision)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP jwtv_decisions_total Token decisions by route, result and reason code (code=\"ok\" when allowed, \"anonymous\" when let through without a token).\n\
             # TYPE jwtv_decisions_total counter\n",
        );
        for (r, route) in ROUTES.iter().enumerate() {
            for (o, counter) in self.decisions[r].iter().enumerate() {
                let n = counter.load(Ordering::Relaxed);
                // Zero series are shown for /validate so dashboards have them from the start.
                if n == 0 && r != 0 {
                    continue;
                }
                let (result, code) = if o == ALLOW {
                    ("allow", "ok")
                } else if o == ANONYMOUS {
                    ("allow", "anonymous")
                } else {
                    ("deny", Code::ALL[o].as_str())
                };
                let _ = writeln!(
                    out,
                    "jwtv_decisions_total{{route=\"{route}\",result=\"{result}\",code=\"{code}\"}} {n}"
                );
            }
        }

        out.push_str(
            "# HELP jwtv_request_duration_seconds Time from request headers to response, body reading included.\n\
             # TYPE jwtv_request_duration_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "jwtv_request_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
                seconds(*bound)
            );
        }
        cumulative += self.buckets[BUCKETS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "jwtv_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "jwtv_request_duration_seconds_sum {}",
            seconds(self.duration_sum_us.load(Ordering::Relaxed))
        );
        let _ = writeln!(
            out,
            "jwtv_request_duration_seconds_count {}",
            self.duration_count.load(Ordering::Relaxed)
        );

        let _ = writeln!(
            out,
            "# HELP jwtv_requests_in_flight Requests being served.\n\
             # TYPE jwtv_requests_in_flight gauge\n\
             jwtv_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP jwtv_build_info Version and crypto backend of this binary.\n\
             # TYPE jwtv_build_info gauge\n\
             jwtv_build_info{{version=\"{}\",backend=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            jwtv_service::verifier::crypto::BACKEND
        );
        out
    }
}

fn outcome(decision: &Decision) -> usize {
    if decision.anonymous {
        return ANONYMOUS;
    }
    if decision.allowed {
        return ALLOW;
    }
    decision
        .code
        .and_then(|c| Code::ALL.iter().position(|&k| k == c))
        // A denial without a code cannot happen today; count it as the generic request error rather
        // than as an allow.
        .unwrap_or(0)
}

/// Key-set series, one per remote source (labelled by issuer). Nothing when every key is configured.
pub fn render_keys(out: &mut String, keys: &Keys) {
    let remotes = keys.remotes();
    if remotes.is_empty() {
        return;
    }
    out.push_str(
        "# HELP jwtv_key_fetches_total Key-set fetches (discovery included) by issuer and result (ok or the error kind).\n\
         # TYPE jwtv_key_fetches_total counter\n",
    );
    for remote in remotes {
        let issuer = label(&remote.label);
        let stats = &remote.stats;
        let _ = writeln!(
            out,
            "jwtv_key_fetches_total{{issuer=\"{issuer}\",result=\"ok\"}} {}",
            stats.ok.load(Ordering::Relaxed)
        );
        for (kind, counter) in FetchError::KINDS.iter().zip(&stats.errors) {
            let _ = writeln!(
                out,
                "jwtv_key_fetches_total{{issuer=\"{issuer}\",result=\"{kind}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
    }
    out.push_str(
        "# HELP jwtv_key_fetch_duration_seconds Time taken by key-set fetch attempts, failed ones included.\n\
         # TYPE jwtv_key_fetch_duration_seconds summary\n",
    );
    for remote in remotes {
        let issuer = label(&remote.label);
        let _ = writeln!(
            out,
            "jwtv_key_fetch_duration_seconds_sum{{issuer=\"{issuer}\"}} {}\n\
             jwtv_key_fetch_duration_seconds_count{{issuer=\"{issuer}\"}} {}",
            seconds(remote.stats.duration_sum_us.load(Ordering::Relaxed)),
            remote.stats.duration_count.load(Ordering::Relaxed)
        );
    }
    out.push_str(
        "# HELP jwtv_key_set_loaded Whether the issuer has a usable key set (0 until the first successful fetch).\n\
         # TYPE jwtv_key_set_loaded gauge\n",
    );
    for remote in remotes {
        let _ = writeln!(
            out,
            "jwtv_key_set_loaded{{issuer=\"{}\"}} {}",
            label(&remote.label),
            u8::from(remote.key_set().is_some())
        );
    }
    out.push_str(
        "# HELP jwtv_key_set_keys Keys in the key set in use.\n\
         # TYPE jwtv_key_set_keys gauge\n",
    );
    for remote in remotes {
        let _ = writeln!(
            out,
            "jwtv_key_set_keys{{issuer=\"{}\"}} {}",
            label(&remote.label),
            remote.stats.keys.load(Ordering::Relaxed)
        );
    }
    out.push_str(
        "# HELP jwtv_key_set_age_seconds Seconds since the last successful fetch of the key set in use.\n\
         # TYPE jwtv_key_set_age_seconds gauge\n",
    );
    for remote in remotes {
        // No series before the first success: an age of nothing is not zero.
        if let Some(age) = remote.age() {
            let _ = writeln!(
                out,
                "jwtv_key_set_age_seconds{{issuer=\"{}\"}} {}",
                label(&remote.label),
                age.as_secs()
            );
        }
    }
    out.push_str(
        "# HELP jwtv_key_unknown_kid_refetches_total Refetches caused by tokens naming an unknown kid, by whether the cooldown allowed them.\n\
         # TYPE jwtv_key_unknown_kid_refetches_total counter\n",
    );
    for remote in remotes {
        let issuer = label(&remote.label);
        let _ = writeln!(
            out,
            "jwtv_key_unknown_kid_refetches_total{{issuer=\"{issuer}\",result=\"fetched\"}} {}\n\
             jwtv_key_unknown_kid_refetches_total{{issuer=\"{issuer}\",result=\"cooldown\"}} {}",
            remote.stats.unknown_kid_refetches.load(Ordering::Relaxed),
            remote.stats.unknown_kid_suppressed.load(Ordering::Relaxed)
        );
    }
    out.push_str(
        "# HELP jwtv_key_unknown_kid_wait_expired_total Requests with an unknown kid answered from the key set in hand because the refetch outlasted the refetch wait.\n\
         # TYPE jwtv_key_unknown_kid_wait_expired_total counter\n",
    );
    for remote in remotes {
        let _ = writeln!(
            out,
            "jwtv_key_unknown_kid_wait_expired_total{{issuer=\"{}\"}} {}",
            label(&remote.label),
            remote
                .stats
                .unknown_kid_wait_expired
                .load(Ordering::Relaxed)
        );
    }
}

/// Token-cache series.
pub fn render_cache(out: &mut String, cache: &VerifiedCache) {
    let _ = writeln!(
        out,
        "# HELP jwtv_token_cache_requests_total Token-cache lookups by result.\n\
         # TYPE jwtv_token_cache_requests_total counter\n\
         jwtv_token_cache_requests_total{{result=\"hit\"}} {}\n\
         jwtv_token_cache_requests_total{{result=\"miss\"}} {}\n\
         # HELP jwtv_token_cache_entries Verified tokens held.\n\
         # TYPE jwtv_token_cache_entries gauge\n\
         jwtv_token_cache_entries {}",
        cache.hits.load(Ordering::Relaxed),
        cache.misses.load(Ordering::Relaxed),
        cache.len()
    );
}

pub fn render_config(out: &mut String, active: &Active, reloads: &Reloads) {
    let _ = writeln!(
        out,
        "# HELP jwtv_config_reloads_total Configuration reloads by result (applied, unchanged, or failed: the active configuration stayed).\n\
         # TYPE jwtv_config_reloads_total counter\n\
         jwtv_config_reloads_total{{result=\"applied\"}} {}\n\
         jwtv_config_reloads_total{{result=\"unchanged\"}} {}\n\
         jwtv_config_reloads_total{{result=\"failed\"}} {}\n\
         # HELP jwtv_config_info The configuration serving: SHA-256 of everything it was read from.\n\
         # TYPE jwtv_config_info gauge\n\
         jwtv_config_info{{digest=\"{}\"}} 1\n\
         # HELP jwtv_config_age_seconds Time since the configuration serving was loaded.\n\
         # TYPE jwtv_config_age_seconds gauge\n\
         jwtv_config_age_seconds {:.3}",
        reloads.applied.load(Ordering::Relaxed),
        reloads.unchanged.load(Ordering::Relaxed),
        reloads.failed.load(Ordering::Relaxed),
        active.digest,
        active.since.elapsed().as_secs_f64()
    );
}

/// Connection series: what is open against the limit, and what was closed to stay within it.
pub fn render_connections(out: &mut String, connections: &Connections) {
    let _ = writeln!(
        out,
        "# HELP jwtv_connections_open Client connections open.\n\
         # TYPE jwtv_connections_open gauge\n\
         jwtv_connections_open {}\n\
         # HELP jwtv_connections_limit Client connections allowed at once.\n\
         # TYPE jwtv_connections_limit gauge\n\
         jwtv_connections_limit {}\n\
         # HELP jwtv_connections_reclaimed_total Connections without a request in progress closed at the limit to make room for a new one.\n\
         # TYPE jwtv_connections_reclaimed_total counter\n\
         jwtv_connections_reclaimed_total {}\n\
         # HELP jwtv_connections_refused_total Connections closed unserved: every slot stayed busy as long as a request may take.\n\
         # TYPE jwtv_connections_refused_total counter\n\
         jwtv_connections_refused_total {}",
        connections.open(),
        connections.limit(),
        connections.reclaimed(),
        connections.refused()
    );
}

/// A label value (the issuer comes from configuration, but is escaped all the same).
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Microseconds as a decimal number of seconds, exactly (no float rounding in bucket labels).
fn seconds(us: u64) -> String {
    let whole = us / 1_000_000;
    let frac = us % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny(code: Code) -> Decision {
        Decision {
            allowed: false,
            anonymous: false,
            code: Some(code),
            iss: None,
            kid: None,
            issuer: None,
            source: None,
        }
    }

    #[test]
    fn bucket_bounds_are_exact_decimals() {
        assert_eq!(seconds(50), "0.00005");
        assert_eq!(seconds(2_500), "0.0025");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(1_500_000), "1.5");
    }

    #[test]
    fn decisions_and_latency_are_counted() {
        let m = Metrics::default();
        let allow = Decision {
            allowed: true,
            anonymous: false,
            code: None,
            iss: None,
            kid: None,
            issuer: None,
            source: None,
        };
        m.observe(
            route_of("/validate"),
            Some(&allow),
            Duration::from_micros(40),
        );
        m.observe(
            route_of("/validate"),
            Some(&deny(Code::TokenExpired)),
            Duration::from_micros(300),
        );
        m.observe(
            route_of("/auth/x"),
            Some(&deny(Code::MissingToken)),
            Duration::from_secs(2),
        );
        m.observe(route_of("/healthz"), None, Duration::from_micros(10));
        let text = m.render();
        assert!(
            text.contains(
                "jwtv_decisions_total{route=\"validate\",result=\"allow\",code=\"ok\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "jwtv_decisions_total{route=\"validate\",result=\"deny\",code=\"token_expired\"} 1\n"
        ));
        assert!(text.contains(
            "jwtv_decisions_total{route=\"validate\",result=\"deny\",code=\"unknown_kid\"} 0\n"
        ));
        assert!(text.contains(
            "jwtv_decisions_total{route=\"auth\",result=\"deny\",code=\"missing_token\"} 1\n"
        ));
        assert!(!text.contains("route=\"auth\",result=\"allow\""));
        assert!(
            text.contains("jwtv_request_duration_seconds_bucket{le=\"0.00005\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("jwtv_request_duration_seconds_bucket{le=\"0.0005\"} 3\n"));
        assert!(text.contains("jwtv_request_duration_seconds_bucket{le=\"1\"} 3\n"));
        assert!(text.contains("jwtv_request_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("jwtv_request_duration_seconds_count 4\n"));
        assert!(text.contains("jwtv_build_info{version=\""));
    }

    // Issue 24: an anonymous pass is counted apart from a verified allow.
    #[test]
    fn anonymous_passes_have_their_own_label() {
        let m = Metrics::default();
        let anonymous = Decision {
            allowed: true,
            anonymous: true,
            ..deny(Code::MissingToken)
        };
        let anonymous = Decision {
            code: None,
            ..anonymous
        };
        m.observe(
            route_of("/auth"),
            Some(&anonymous),
            Duration::from_micros(5),
        );
        let text = m.render();
        assert!(
            text.contains(
                "jwtv_decisions_total{route=\"auth\",result=\"allow\",code=\"anonymous\"} 1\n"
            ),
            "{text}"
        );
        assert!(!text.contains("route=\"auth\",result=\"allow\",code=\"ok\""));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("https://a"), "https://a");
        assert_eq!(label("a\"b\\c\nd\re"), "a\\\"b\\\\c\\nde");
    }

    #[test]
    fn in_flight_gauge_follows_guards() {
        let m = Metrics::default();
        let a = m.start();
        let b = m.start();
        assert!(m.render().contains("jwtv_requests_in_flight 2\n"));
        drop(a);
        drop(b);
        assert!(m.render().contains("jwtv_requests_in_flight 0\n"));
    }
}
