//! `jwt-validator probe URL`, the health check of images without curl: exit 0 on a 2xx answer, 1 with
//! one line on stderr otherwise. Against the real native server on 127.0.0.1, whatever
//! `JWTV_TEST_TARGET` says (the probe is the native binary's).

mod support;

use std::time::Duration;
use support::{Server, Target, TestConfig, run_to_exit};

const SECRET: &str = "probe-test-secret-0123456789abcdefghijklmnopqr";
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

fn probe(url: &str) -> support::Exited {
    run_to_exit(&TestConfig::new(), &["probe", url], EXIT_TIMEOUT)
}

fn assert_one_line_naming(exited: &support::Exited, needle: &str) {
    let lines: Vec<&str> = exited.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {}", exited.stderr);
    assert!(lines[0].contains(needle), "stderr: {}", exited.stderr);
}

#[test]
fn probe_of_a_ready_server_exits_0() {
    let server = Server::start_on(Target::Native, TestConfig::new().env("JWT_SECRET", SECRET));
    let exited = probe(&format!("http://{}/readyz", server.addr));
    assert_eq!(exited.status.code(), Some(0), "stderr: {}", exited.stderr);
}

#[test]
fn probe_of_a_server_answering_404_exits_1_naming_the_status() {
    let server = Server::start_on(Target::Native, TestConfig::new().env("JWT_SECRET", SECRET));
    let exited = probe(&format!("http://{}/no-such-route", server.addr));
    assert_eq!(exited.status.code(), Some(1));
    assert_one_line_naming(&exited, "answered 404");
}

#[test]
fn probe_of_a_closed_port_exits_1_naming_the_connection() {
    let exited = probe(&format!("http://127.0.0.1:{}/readyz", support::free_port()));
    assert_eq!(exited.status.code(), Some(1));
    assert_one_line_naming(&exited, "cannot connect");
}

/// The probe trusts only the listener's own certificate, which it reads from `JWT_TLS_CERT_FILE`;
/// without it there is nothing to trust (TLS probes: tests/tls.rs).
#[test]
fn probe_of_an_https_url_without_the_certificate_exits_1_without_connecting() {
    let exited = probe("https://127.0.0.1:1/readyz");
    assert_eq!(exited.status.code(), Some(1));
    assert_one_line_naming(&exited, "needs JWT_TLS_CERT_FILE");
}

#[test]
fn probe_of_another_scheme_exits_1_without_connecting() {
    let exited = probe("ftp://127.0.0.1:1/readyz");
    assert_eq!(exited.status.code(), Some(1));
    assert_one_line_naming(&exited, "only http:// and https://");
}
