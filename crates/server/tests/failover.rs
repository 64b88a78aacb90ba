//! Failover, as users run it (issue 12): three native replicas on 127.0.0.1 behind a real nginx running
//! exactly `docs/gateway/nginx-replicas.conf` (+ its includes, only addresses replaced: `support::gateway`), clients
//! sending `/auth`-protected requests and `POST /validate` the whole time, one replica killed with
//! SIGKILL and restarted on its port. Every request a client sees fail is counted.
//!
//! The identity provider goes down with the replica: the survivors keep their key set and stay ready
//! (issue 12: a replica that cannot reach the IdP must not fail readiness once it has a usable key
//! set), while the restarted one answers 503 until the provider is back, which nginx retries elsewhere.
//!
//! Native only, whatever `JWTV_TEST_TARGET` says: killing and restarting a replica on its port is a
//! process matter, and the HTTP answers themselves are covered against both targets elsewhere.
//! Every kind of provider outage against one replica is in `remote_keys.rs`
//! (`the_last_good_key_set_is_served_through_an_outage`). The run itself is `support::failover`; the
//! figures without the documented settings are a measurement, `benches/failover_settings.rs`.

mod support;

use support::failover::measure;

#[test]
fn replica_killed_and_restarted_under_load_costs_no_request() {
    let (auth, validate) = measure("documented settings", |conf| conf);
    assert!(auth.failures.is_empty(), "/auth: {}", auth.summary());
    assert!(
        validate.failures.is_empty(),
        "/validate: {}",
        validate.summary()
    );
}
