//! A measurement, not a check (it was an `#[ignore]`d test; issue 22): the failover run of
//! `tests/failover.rs` without the documented nginx settings, whose failure counts are the other two
//! rows of the table in `docs/gateway/README.md`:
//!
//!   cargo bench -p jwtv-server --bench failover_settings
//!
//! `tests/failover.rs` asserts zero failures with the documented settings.

#[path = "../tests/support/mod.rs"]
mod support;

use support::failover::measure;

fn main() {
    type Edit = fn(String) -> String;
    let variants: [(&str, Edit); 2] = [
        ("no jwt_failover.conf", |_| String::new()),
        ("without non_idempotent", |conf| {
            conf.replace(" non_idempotent;", ";")
        }),
    ];
    for (name, edit) in variants {
        measure(name, edit);
    }
}
