//! TLS and mTLS on the native listener (issue 25): `JWT_TLS_CERT_FILE` / `JWT_TLS_KEY_FILE`, TLS 1.2
//! and 1.3, ALPN `h2` and `http/1.1`; `JWT_TLS_CLIENT_CA_FILE` refuses clients without a certificate
//! that CA signed; a rotated certificate is served to new connections after a reload, with no request
//! failing meanwhile. Certificates come from a CA made by the test.
//!
//! Native only: under `wasmtime serve` TLS is the host's.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use serde_json::json;
use support::jwt::hs256;
use support::tls::{self, Ca, Issued};
use support::{Server, Target, TempDir, TestConfig, eventually, h2, now, run_to_exit};

const SECRET: &str = "tls-suite-secret-of-32-bytes!!!!";

struct Files {
    dir: TempDir,
}

impl Files {
    fn new(server: &Issued, client_ca: Option<&Ca>) -> Files {
        let dir = TempDir::new();
        dir.write("cert.pem", server.cert_pem.as_bytes());
        dir.write("key.pem", server.key_pem.as_bytes());
        if let Some(ca) = client_ca {
            dir.write("client-ca.pem", ca.pem.as_bytes());
        }
        Files { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn config(&self) -> TestConfig {
        let mut config = TestConfig::new()
            .env("JWT_SECRET", SECRET)
            .env("JWT_TLS_CERT_FILE", self.path("cert.pem"))
            .env("JWT_TLS_KEY_FILE", self.path("key.pem"));
        if self.dir.path().join("client-ca.pem").exists() {
            config = config.env("JWT_TLS_CLIENT_CA_FILE", self.path("client-ca.pem"));
        }
        config
    }

    /// Replaces the certificate and key, each in one step (renamed over).
    fn rotate(&self, server: &Issued) {
        replace(&self.dir.path().join("key.pem"), server.key_pem.as_bytes());
        replace(
            &self.dir.path().join("cert.pem"),
            server.cert_pem.as_bytes(),
        );
    }
}

fn replace(path: &Path, bytes: &[u8]) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, bytes).expect("write");
    std::fs::rename(&staged, path).expect("rename");
}

fn token() -> String {
    hs256(
        SECRET.as_bytes(),
        &json!({"sub": "alice", "exp": now() + 600}),
    )
}

#[test]
fn tls_listener_serves_http1_and_h2_by_alpn_and_refuses_plain_http() {
    let ca = Ca::new("tls-suite CA");
    let files = Files::new(&ca.server("server-a"), None);
    let server = Server::start_on(Target::Native, files.config());
    let rt = h2::runtime();
    let auth = format!("Bearer {}", token());

    let http1 = tls::connector(&ca.pem, None, &[b"http/1.1"]);
    let answer = rt
        .block_on(tls::get(
            &http1,
            server.addr,
            "/auth",
            &[("Authorization", &auth)],
        ))
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-auth-subject"), Some("alice"));

    // TLS 1.2 too.
    let tls12 =
        tls::connector_with_versions(&ca.pem, None, &[b"http/1.1"], &[&rustls::version::TLS12]);
    let answer = rt
        .block_on(tls::get(&tls12, server.addr, "/healthz", &[]))
        .unwrap();
    assert_eq!(answer.status, 200);

    let mut client = tls::h2(
        rt,
        &tls::connector(&ca.pem, None, &[b"h2", b"http/1.1"]),
        server.addr,
    );
    let answer = client
        .send(h2::request(
            "GET",
            "/auth",
            &[("authorization", &auth)],
            b"",
        ))
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.version(), http::Version::HTTP_2);

    // Plain HTTP on the TLS port gets no HTTP answer.
    let raw = server.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        !raw.starts_with(b"HTTP/1.1 200"),
        "plain HTTP was served on the TLS port"
    );
}

#[test]
fn mtls_refuses_clients_without_a_certificate_of_the_client_ca() {
    let ca = Ca::new("tls-suite CA");
    let gateways = Ca::new("gateway CA");
    let files = Files::new(&ca.server("server-a"), Some(&gateways));
    let server = Server::start_on(Target::Native, files.config());
    let rt = h2::runtime();

    let anonymous = tls::connector(&ca.pem, None, &[b"http/1.1"]);
    let refused = rt.block_on(tls::get(&anonymous, server.addr, "/healthz", &[]));
    assert!(
        refused.is_err(),
        "served a client without a certificate: {refused:?}"
    );

    let stranger = tls::connector(&ca.pem, Some(&ca.client("stranger")), &[b"http/1.1"]);
    let refused = rt.block_on(tls::get(&stranger, server.addr, "/healthz", &[]));
    assert!(
        refused.is_err(),
        "served a certificate of another CA: {refused:?}"
    );

    let gateway = tls::connector(&ca.pem, Some(&gateways.client("envoy")), &[b"http/1.1"]);
    let answer = rt
        .block_on(tls::get(&gateway, server.addr, "/healthz", &[]))
        .unwrap();
    assert_eq!(answer.status, 200);
}

// RFC 8705 §3 (issue 26): with JWT_CLIENT_CERT_SOURCE=tls, a token bound to a client certificate
// passes only on a connection whose handshake presented that certificate, on every route; a header
// naming the certificate is never read.
#[test]
fn bound_token_passes_only_on_a_connection_with_its_certificate() {
    let ca = Ca::new("tls-suite CA");
    let clients = Ca::new("client CA");
    let (alice, bob) = (clients.client("alice"), clients.client("bob"));
    let files = Files::new(&ca.server("server-a"), Some(&clients));
    let config = files.config().env("JWT_CLIENT_CERT_SOURCE", "tls");
    let server = Server::start_on(Target::Native, config);
    let rt = h2::runtime();
    let bound = hs256(
        SECRET.as_bytes(),
        &json!({"sub": "alice", "exp": now() + 600, "cnf": {"x5t#S256": alice.thumbprint()}}),
    );
    let auth = format!("Bearer {bound}");
    let xfcc = format!("Hash={}", alice.sha256_hex());

    let as_alice = tls::connector(&ca.pem, Some(&alice), &[b"http/1.1"]);
    let answer = rt
        .block_on(tls::get(
            &as_alice,
            server.addr,
            "/auth",
            &[("Authorization", &auth)],
        ))
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-auth-subject"), Some("alice"));

    let as_bob = tls::connector(&ca.pem, Some(&bob), &[b"http/1.1"]);
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Forwarded-Client-Cert", xfcc.as_str()),
    ];
    let answer = rt
        .block_on(tls::get(&as_bob, server.addr, "/auth", &headers))
        .unwrap();
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("x-auth-error"), Some("invalid_token_binding"));

    // POST /validate over HTTP/2, same rule.
    let body = format!(r#"{{"token":"{bound}"}}"#);
    let validate = |client: &Issued| {
        let connector = tls::connector(&ca.pem, Some(client), &[b"h2"]);
        let mut h2 = tls::h2(h2::runtime(), &connector, server.addr);
        let json = [("content-type", "application/json")];
        let answer = h2
            .send(h2::request("POST", "/validate", &json, body.as_bytes()))
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(answer.body()).unwrap();
        (answer.status().as_u16(), value["error"].clone())
    };
    assert_eq!(validate(&alice), (200, serde_json::Value::Null));
    assert_eq!(validate(&bob), (401, json!("invalid_token_binding")));
}

/// Rotation: new certificate files are picked up by the reload machinery; new connections get the new
/// certificate, connections opened before keep working, and no request fails meanwhile.
#[test]
fn rotated_certificate_is_served_without_failing_a_request() {
    let ca = Ca::new("tls-suite CA");
    let files = Files::new(&ca.server("server-a"), None);
    let server = Server::start_on(
        Target::Native,
        files.config().arg("--reload-interval").arg("0.2"),
    );
    let addr = server.addr;
    let connector = tls::connector(&ca.pem, None, &[b"http/1.1"]);
    let rt = h2::runtime();
    let mut kept = rt.block_on(tls::connect(&connector, addr)).unwrap();
    assert_eq!(tls::peer_common_name(&kept).as_deref(), Some("server-a"));

    // Bounded load: 4 clients, each a new connection per request, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, connector) =
                (stop.clone(), ok.clone(), failed.clone(), connector.clone());
            thread::spawn(move || {
                let rt = h2::runtime();
                while !stop.load(Ordering::Relaxed) {
                    match rt.block_on(tls::get(&connector, addr, "/healthz", &[])) {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    assert!(eventually(Duration::from_secs(10), || ok
        .load(Ordering::Relaxed)
        > 20));

    files.rotate(&ca.server("server-b"));
    let rotated = eventually(Duration::from_secs(15), || {
        rt.block_on(tls::connect(&connector, addr))
            .ok()
            .and_then(|s| tls::peer_common_name(&s))
            .as_deref()
            == Some("server-b")
    });
    let before = ok.load(Ordering::Relaxed);
    assert!(eventually(Duration::from_secs(10), || ok
        .load(Ordering::Relaxed)
        > before + 20));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    assert!(
        rotated,
        "the new certificate was not served; stderr:\n{}",
        server.stderr_text()
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during the rotation"
    );
    // The connection opened before the rotation is still served.
    let answer = rt
        .block_on(tls::request_on(&mut kept, "/healthz", &[], false))
        .unwrap();
    assert_eq!(answer.status, 200);
}

#[test]
fn unusable_tls_files_stop_the_start_naming_the_setting() {
    let ca = Ca::new("tls-suite CA");
    let server = ca.server("server-a");
    let dir = TempDir::new();
    let cert = dir.write("cert.pem", server.cert_pem.as_bytes());
    let other_key = dir.write("other-key.pem", ca.server("other").key_pem.as_bytes());
    let garbage = dir.write("garbage.pem", b"not a key");
    let path = |p: &std::path::PathBuf| p.to_string_lossy().into_owned();
    for (env, needle) in [
        (
            vec![("JWT_TLS_CERT_FILE", path(&cert))],
            "JWT_TLS_CERT_FILE: needs JWT_TLS_KEY_FILE",
        ),
        (
            vec![
                ("JWT_TLS_CERT_FILE", path(&cert)),
                ("JWT_TLS_KEY_FILE", path(&garbage)),
            ],
            "JWT_TLS_KEY_FILE",
        ),
        (
            vec![
                ("JWT_TLS_CERT_FILE", path(&cert)),
                ("JWT_TLS_KEY_FILE", path(&other_key)),
            ],
            "do not make a usable pair",
        ),
        (
            vec![("JWT_TLS_CLIENT_CA_FILE", path(&cert))],
            "JWT_TLS_CLIENT_CA_FILE",
        ),
    ] {
        let mut config = TestConfig::new().env("JWT_SECRET", SECRET);
        for (k, v) in &env {
            config = config.env(k, v.clone());
        }
        let exited = run_to_exit(&config, &[], Duration::from_secs(10));
        assert_eq!(exited.status.code(), Some(2), "{env:?}: {}", exited.stderr);
        // One line says what is wrong and where (after the start's informational lines, if any).
        let errors: Vec<_> = exited
            .stderr
            .lines()
            .filter(|l| l.starts_with("jwt-validator:"))
            .collect();
        assert_eq!(errors.len(), 1, "{env:?}: {}", exited.stderr);
        assert!(errors[0].contains(needle), "{env:?}: {}", exited.stderr);
    }
}

/// The probe (and so the image's HEALTHCHECK line, unchanged) speaks TLS when the listener does:
/// same environment, the configured certificate pinned, and under mTLS that certificate presented.
#[test]
fn probe_speaks_tls_and_mtls_with_the_listeners_certificate() {
    let ca = Ca::new("tls-suite CA");
    // One CA for the listener and its clients, so the listener's certificate is a client's too.
    let files = Files::new(&ca.server("server-a"), Some(&ca));
    let server = Server::start_on(Target::Native, files.config());
    for url in [
        format!("http://{}/healthz", server.addr),
        format!("https://{}/healthz", server.addr),
    ] {
        let exited = run_to_exit(&files.config(), &["probe", &url], Duration::from_secs(10));
        assert_eq!(exited.status.code(), Some(0), "{url}: {}", exited.stderr);
    }

    // A probe that expects another certificate refuses the listener's.
    let other = Files::new(&ca.server("server-b"), Some(&ca));
    let url = format!("https://{}/healthz", server.addr);
    let exited = run_to_exit(&other.config(), &["probe", &url], Duration::from_secs(10));
    assert_eq!(exited.status.code(), Some(1));
    assert!(
        exited.stderr.contains("TLS") || exited.stderr.contains("certificate"),
        "{}",
        exited.stderr
    );
}

/// A client that connects to the TLS port and never completes a handshake is closed after the
/// first-byte timeout (design/security.md: slow clients are timed out).
#[test]
fn silent_tls_client_is_closed_after_the_first_byte_timeout() {
    let ca = Ca::new("tls-suite CA");
    let files = Files::new(&ca.server("server-a"), None);
    let server = Server::start_on(
        Target::Native,
        files
            .config()
            .env("JWT_FIRST_BYTE_TIMEOUT", "1")
            .env("JWT_REQUEST_TIMEOUT", "30"),
    );
    let mut socket = server.connect();
    // Half a ClientHello record header, then nothing.
    std::io::Write::write_all(&mut socket, &[0x16, 0x03]).unwrap();
    let mut buf = [0u8; 64];
    // Bounded by the support's IO timeout (10 s): a read error there would be a timeout, not a close.
    let read = std::io::Read::read(&mut socket, &mut buf);
    assert!(
        matches!(read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the silent TLS client was not closed: {read:?}"
    );
}
