//! Key-set fetches the way clusters reach their identity provider (issue 10): an internal IdP behind a
//! private CA (`JWT_FETCH_CA_FILE`), and an egress proxy (`HTTPS_PROXY`, `NO_PROXY`).
//!
//! Everything is real and on 127.0.0.1: a test CA made at every run (`support::keyserver::TestCa`),
//! the key server behind a TLS front that presents its certificate, and Debian's tinyproxy as the
//! proxy, whose log shows what it was asked (`scripts/setup debian` installs it).
//!
//! Native only: the component fetches through its host's outgoing wasi:http, which has no proxy or CA
//! settings of ours (wasmtime serve and Spin decide egress).

mod support;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::keyserver::{JWKS_PATH, KeyServer, TestCa, TestJwk, TlsFront, jwks};
use support::{Server, Target, TempDir, TestConfig, eventually, free_port, now, run_to_exit};

const ISSUER: &str = "https://idp.internal.test";
const AUDIENCE: &str = "api";
const READY_WITHIN: Duration = Duration::from_secs(10);

/// An internal identity provider: the key server behind TLS with a certificate from a private CA.
struct InternalIdp {
    key: TestJwk,
    ks: KeyServer,
    front: TlsFront,
    ca: TestCa,
}

impl InternalIdp {
    fn start() -> InternalIdp {
        let key = TestJwk::es256("internal-1");
        let ks = KeyServer::start(jwks(&[&key]));
        let ca = TestCa::new();
        let front = TlsFront::start(&ks, &ca);
        InternalIdp { key, ks, front, ca }
    }

    /// Fetches from this IdP, without the CA bundle.
    fn config(&self) -> TestConfig {
        TestConfig::new()
            .env("JWT_JWKS_URI", self.front.url(JWKS_PATH))
            .env("JWT_ISSUER", ISSUER)
            .env("JWT_AUDIENCE", AUDIENCE)
            .env("JWT_FETCH_TIMEOUT", "2")
    }

    /// Fetches from this IdP, trusting its CA.
    fn config_with_ca(&self) -> TestConfig {
        self.config()
            .file("internal-ca.pem", self.ca.ca_pem.as_bytes())
            .env("JWT_FETCH_CA_FILE", "{files}/internal-ca.pem")
    }

    fn token(&self) -> String {
        self.key.token(&json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now() + 600,
        }))
    }
}

/// Debian's tinyproxy on 127.0.0.1, logging every request line; ended by its PID on drop.
struct Tinyproxy {
    port: u16,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl Tinyproxy {
    /// `extra` is appended to the configuration (e.g. `ConnectPort 443` to refuse other CONNECTs).
    fn start(extra: &str) -> Tinyproxy {
        let dir = TempDir::new();
        let port = free_port();
        let log = dir.path().join("tinyproxy.log");
        let conf = format!(
            "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 10\nMaxClients 16\n\
             LogLevel Connect\nLogFile \"{}\"\nDisableViaHeader Yes\n{extra}\n",
            log.display()
        );
        let conf_path = dir.write("tinyproxy.conf", conf.as_bytes());
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tinyproxy (Debian's tinyproxy: scripts/setup debian installs it)");
        let proxy = Tinyproxy {
            port,
            child,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tinyproxy did not listen on 127.0.0.1:{port} within 10 s"
            );
            thread::sleep(Duration::from_millis(20));
        }
        proxy
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request lines it logged (`CONNECT host:port HTTP/1.1`, `GET http://… HTTP/1.1`).
    fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter_map(|l| l.split_once("Request (file descriptor "))
            .filter_map(|(_, rest)| rest.split_once("): ").map(|(_, r)| r.to_owned()))
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fetches(server: &Server, result: &str) -> f64 {
    let series = format!("jwtv_key_fetches_total{{issuer=\"{ISSUER}\",result=\"{result}\"}} ");
    let text = server.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or(0.0)
}

fn assert_ready_and_valid(server: &Server, idp: &InternalIdp) {
    assert!(
        eventually(READY_WITHIN, || server.get("/readyz").status == 200),
        "not ready within {READY_WITHIN:?}\n--- stderr ---\n{}",
        server.stderr_text()
    );
    assert_eq!(server.validate(&idp.token()).status, 200);
    assert!(idp.ks.requests(JWKS_PATH) >= 1);
}

/// A refused start: exit status 2 and one error line on stderr (after any configuration summary)
/// holding every `needle`.
fn assert_refused(config: &TestConfig, needles: &[&str]) {
    let exited = run_to_exit(config, &[], Duration::from_secs(20));
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    let errors: Vec<&str> = exited
        .stderr
        .lines()
        .filter(|l| l.starts_with("jwt-validator: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {}", exited.stderr);
    assert!(exited.stderr.trim_end().ends_with(errors[0]));
    for needle in needles {
        assert!(errors[0].contains(needle), "{needle:?} in {}", errors[0]);
    }
}

#[test]
fn a_private_ca_idp_is_trusted_with_the_ca_file_configured() {
    let idp = InternalIdp::start();
    let server = Server::start_on(Target::Native, idp.config_with_ca());
    assert_ready_and_valid(&server, &idp);
    assert_eq!(fetches(&server, "tls"), 0.0);
}

#[test]
fn a_private_ca_idp_without_the_ca_file_is_a_tls_failure_and_503() {
    let idp = InternalIdp::start();
    let server = Server::start_on(Target::Native, idp.config());
    assert!(
        eventually(READY_WITHIN, || fetches(&server, "tls") >= 1.0),
        "{}",
        server.stderr_text()
    );
    server.assert_logged("UnknownIssuer");
    assert_eq!(server.get("/readyz").status, 503);
    let r = server.validate(&idp.token());
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (503, Some("temporarily_unavailable"))
    );
    assert_eq!(
        idp.ks.requests(JWKS_PATH),
        0,
        "no request left the failed handshake"
    );
}

#[test]
fn https_fetches_go_through_the_https_proxy_in_a_connect_tunnel() {
    let idp = InternalIdp::start();
    let proxy = Tinyproxy::start("");
    let server = Server::start_on(
        Target::Native,
        idp.config_with_ca().env("HTTPS_PROXY", proxy.url()),
    );
    assert_ready_and_valid(&server, &idp);
    let connect = format!("CONNECT 127.0.0.1:{} HTTP/1.1", idp.front.addr.port());
    let seen = proxy.requests();
    assert!(seen.contains(&connect), "{connect:?} in {seen:?}");
    assert!(
        server
            .stderr_text()
            .contains("key-set fetches: https through http://127.0.0.1:"),
        "{}",
        server.stderr_text()
    );
}

#[test]
fn no_proxy_sends_fetches_to_a_listed_host_directly() {
    let idp = InternalIdp::start();
    let proxy = Tinyproxy::start("");
    let server = Server::start_on(
        Target::Native,
        idp.config_with_ca()
            .env("https_proxy", proxy.url())
            .env("NO_PROXY", "localhost, 127.0.0.1"),
    );
    assert_ready_and_valid(&server, &idp);
    assert_eq!(
        proxy.requests(),
        Vec::<String>::new(),
        "the proxy saw nothing"
    );
}

#[test]
fn a_connect_refused_by_the_proxy_is_a_proxy_failure_and_503() {
    let idp = InternalIdp::start();
    // Tunnels to port 443 only: the IdP's port is refused.
    let proxy = Tinyproxy::start("ConnectPort 443");
    let server = Server::start_on(
        Target::Native,
        idp.config_with_ca().env("HTTPS_PROXY", proxy.url()),
    );
    assert!(
        eventually(READY_WITHIN, || fetches(&server, "proxy") >= 1.0),
        "{}",
        server.stderr_text()
    );
    assert_eq!(server.validate(&idp.token()).status, 503);
    assert_eq!(idp.ks.requests(JWKS_PATH), 0);
}

// design/security.md, remote key sets: plain http only to loopback. Through a proxy, "loopback"
// would be the proxy's, and the key set would cross the network in clear.
#[test]
fn plain_http_to_an_allowed_loopback_url_never_goes_through_a_proxy() {
    let key = TestJwk::es256("plain-1");
    let ks = KeyServer::start(jwks(&[&key]));
    let proxy = Tinyproxy::start("");
    let server = Server::start_on(
        Target::Native,
        TestConfig::new()
            .env("JWT_JWKS_URI", ks.url(JWKS_PATH))
            .env("JWT_ALLOW_HTTP_LOOPBACK", "true")
            .env("JWT_ISSUER", ISSUER)
            .env("JWT_AUDIENCE", AUDIENCE)
            .env("HTTP_PROXY", proxy.url())
            .env("HTTPS_PROXY", proxy.url())
            .env("ALL_PROXY", proxy.url()),
    );
    assert!(
        eventually(READY_WITHIN, || server.get("/readyz").status == 200),
        "{}",
        server.stderr_text()
    );
    assert!(ks.requests(JWKS_PATH) >= 1);
    assert_eq!(
        proxy.requests(),
        Vec::<String>::new(),
        "the proxy saw nothing"
    );
}

#[test]
fn an_unusable_ca_file_stops_the_start_naming_the_file() {
    let idp = InternalIdp::start();
    let missing = idp
        .config()
        .env("JWT_FETCH_CA_FILE", "{files}/no-such-ca.pem");
    assert_refused(&missing, &["JWT_FETCH_CA_FILE", "no-such-ca.pem"]);
    let not_pem = idp
        .config()
        .file("ca.pem", jwks(&[&idp.key]).as_bytes())
        .env("JWT_FETCH_CA_FILE", "{files}/ca.pem");
    assert_refused(&not_pem, &["JWT_FETCH_CA_FILE", "ca.pem", "no certificate"]);
    let not_a_certificate = idp
        .config()
        .file(
            "ca.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .env("JWT_FETCH_CA_FILE", "{files}/ca.pem");
    assert_refused(
        &not_a_certificate,
        &["JWT_FETCH_CA_FILE", "ca.pem", "certificate 1"],
    );
}

#[test]
fn an_unusable_proxy_variable_stops_the_start_naming_it() {
    let idp = InternalIdp::start();
    assert_refused(
        &idp.config().env("HTTPS_PROXY", "socks5://127.0.0.1:1080"),
        &["HTTPS_PROXY", "socks5://"],
    );
    assert_refused(
        &idp.config().env("https_proxy", "http://"),
        &["https_proxy", "not a proxy URL"],
    );
}
