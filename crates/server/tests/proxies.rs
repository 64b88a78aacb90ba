//! Forward auth through real proxies (issue 5): nginx `auth_request` and Caddy `forward_auth`, run from
//! Debian's packages with exactly the configuration files in `docs/gateway/` (only their addresses
//! replaced), in front of an upstream that echoes the headers it receives.
//!
//! The validator is the target of `JWTV_TEST_TARGET` (native binary or the component under
//! `wasmtime serve`), so the same assertions cover both.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::jwt::hs256;
use support::upstream::Upstream;
use support::{
    IO_TIMEOUT, Response, Server, Target, TempDir, TestConfig, free_port, now, request,
    workspace_root,
};

const SECRET: &[u8] = b"proxy-suite-secret-32-bytes-long!";

/// The addresses written in the docs' files, replaced by the ports a test picked.
const DOC_VALIDATOR: &str = "127.0.0.1:3000";
const DOC_UPSTREAM: &str = "127.0.0.1:9000";
const DOC_LISTEN: &str = "127.0.0.1:8080";

fn validator() -> Server {
    Server::start(
        TestConfig::new()
            .env("JWT_SECRET", String::from_utf8(SECRET.to_vec()).unwrap())
            .env("JWT_AUDIENCE", "api")
            .env("JWT_CLAIM_HEADERS", "X-Auth-Email=email")
            .env("JWT_POLICIES", "admin")
            .env("JWT_POLICY_ADMIN_SCOPES", "admin"),
    )
}

fn token(extra: serde_json::Value) -> String {
    let mut claims = json!({"sub": "alice", "iss": "proxy-suite", "aud": "api", "exp": now() + 600, "scope": "read"});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    hs256(SECRET, &claims)
}

// ---------------------------------------------------------------------------------------------------
// The proxies, from the docs' files.

#[derive(Debug, Clone, Copy)]
enum Kind {
    Nginx,
    Caddy,
}

struct Proxy {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Proxy {
    fn start(kind: Kind, validator: SocketAddr, upstream: SocketAddr) -> Proxy {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let dir = TempDir::new();
        let docs = workspace_root().join("docs/gateway");
        let rewrite = |name: &str| {
            let text = std::fs::read_to_string(docs.join(name))
                .unwrap_or_else(|e| panic!("docs/gateway/{name}: {e}"));
            for doc in [DOC_VALIDATOR, DOC_UPSTREAM, DOC_LISTEN] {
                assert!(
                    text.contains(doc) || name.starts_with("jwt_"),
                    "{name} no longer names {doc}"
                );
            }
            let text = text
                .replace(DOC_VALIDATOR, &validator.to_string())
                .replace(DOC_UPSTREAM, &upstream.to_string())
                .replace(DOC_LISTEN, &listen);
            dir.write(name, text.as_bytes())
        };
        let mut command = match kind {
            Kind::Nginx => {
                for include in ["jwt_identity.conf", "jwt_subrequest.conf"] {
                    rewrite(include);
                }
                let conf = rewrite("nginx.conf");
                std::fs::create_dir_all(dir.path().join("temp")).unwrap();
                let mut c = Command::new(which("nginx", "/usr/sbin/nginx"));
                // One process, in the foreground, so it ends with the PID we hold.
                c.arg("-p")
                    .arg(dir.path())
                    .arg("-c")
                    .arg(&conf)
                    .args(["-g", "daemon off; master_process off;"]);
                c
            }
            Kind::Caddy => {
                let conf = rewrite("Caddyfile");
                let mut c = Command::new(which("caddy", "/usr/bin/caddy"));
                c.args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(&conf);
                c.env("XDG_CONFIG_HOME", dir.path())
                    .env("XDG_DATA_HOME", dir.path())
                    .env("HOME", dir.path());
                c
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{kind:?} cannot start ({e}); run scripts/setup to install it")
            });
        let addr: SocketAddr = listen.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{kind:?} did not listen on {addr}"
            );
            thread::sleep(Duration::from_millis(50));
        }
        Proxy {
            child,
            addr,
            _dir: dir,
        }
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, "GET", path, headers, b"")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str, fallback: &str) -> String {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p.to_string_lossy().into_owned(),
        None if std::path::Path::new(fallback).is_file() => fallback.to_owned(),
        None => panic!("{name} is not installed: run scripts/setup (it installs Debian's {name})"),
    }
}

// ---------------------------------------------------------------------------------------------------

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn allows_with_identity_headers(kind: Kind) {
    let (validator, upstream) = (validator(), Upstream::start());
    let proxy = Proxy::start(kind, validator.addr, upstream.addr);
    let t = token(json!({"email": "alice@example.com"}));
    let auth = bearer(&t);
    // A client-supplied identity header must never reach the upstream.
    let r = proxy.get(
        "/orders/42",
        &[("Authorization", &auth), ("X-Auth-Subject", "mallory")],
    );
    assert_eq!(r.status, 200, "{kind:?}: {}", r.text());
    assert_eq!(upstream.hits(), 1);
    let seen = upstream.last();
    assert_eq!(
        seen.get("x-auth-subject").map(String::as_str),
        Some("alice"),
        "{kind:?}: {seen:?}"
    );
    assert_eq!(
        seen.get("x-auth-issuer").map(String::as_str),
        Some("proxy-suite")
    );
    assert_eq!(seen.get("x-auth-audience").map(String::as_str), Some("api"));
    assert_eq!(seen.get("x-auth-scopes").map(String::as_str), Some("read"));
    assert!(
        seen.get("x-auth-expires")
            .is_some_and(|e| e.parse::<u64>().is_ok())
    );
}

fn denies_without_reaching_the_upstream(kind: Kind) {
    let (validator, upstream) = (validator(), Upstream::start());
    let proxy = Proxy::start(kind, validator.addr, upstream.addr);

    let r = proxy.get("/orders", &[]);
    assert_eq!(r.status, 401, "{kind:?} missing token");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="jwt-validator""#)
    );

    let t = token(json!({}));
    let forged = format!("{}AAAA{}", &t[..t.len() - 8], &t[t.len() - 4..]);
    let expired = token(json!({"exp": now() - 3600}));
    for (what, t, code) in [
        ("bad signature", forged.as_str(), "invalid_signature"),
        ("expired", expired.as_str(), "token_expired"),
        ("garbage", "not-a-jwt", "malformed_token"),
    ] {
        let r = proxy.get("/orders", &[("Authorization", &bearer(t))]);
        assert_eq!(r.status, 401, "{kind:?} {what}");
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
            "{kind:?} {what}: {challenge}"
        );
        assert_eq!(r.header("x-auth-error"), Some(code), "{kind:?} {what}");
    }
    assert_eq!(
        upstream.hits(),
        0,
        "{kind:?}: a denied request reached the upstream"
    );
}

fn named_policy_needs_its_scope(kind: Kind) {
    let (validator, upstream) = (validator(), Upstream::start());
    let proxy = Proxy::start(kind, validator.addr, upstream.addr);
    let reader = bearer(&token(json!({"scope": "read"})));
    let r = proxy.get("/admin/users", &[("Authorization", &reader)]);
    assert_eq!(r.status, 403, "{kind:?}");
    assert_eq!(
        r.header("x-auth-error"),
        Some("insufficient_scope"),
        "{kind:?}"
    );
    // nginx forwards WWW-Authenticate only with 401; Caddy returns the validator's whole answer.
    if let Kind::Caddy = kind {
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
    }
    assert_eq!(upstream.hits(), 0);
    let admin = bearer(&token(json!({"scope": "read admin"})));
    assert_eq!(
        proxy
            .get("/admin/users", &[("Authorization", &admin)])
            .status,
        200,
        "{kind:?}"
    );
    assert_eq!(upstream.hits(), 1);
}

fn fails_closed_when_the_validator_is_down(kind: Kind) {
    let (validator, upstream) = (validator(), Upstream::start());
    let addr = validator.addr;
    let proxy = Proxy::start(kind, addr, upstream.addr);
    let auth = bearer(&token(json!({})));
    assert_eq!(proxy.get("/", &[("Authorization", &auth)]).status, 200);
    drop(validator);
    let r = proxy.get("/", &[("Authorization", &auth)]);
    assert!(
        r.status >= 500,
        "{kind:?}: validator down answered {}",
        r.status
    );
    assert_eq!(
        upstream.hits(),
        1,
        "{kind:?}: the upstream was reached without a decision"
    );
}

#[test]
fn nginx_allows_with_identity_headers() {
    allows_with_identity_headers(Kind::Nginx);
}

#[test]
fn nginx_denies_without_reaching_the_upstream() {
    denies_without_reaching_the_upstream(Kind::Nginx);
}

#[test]
fn nginx_named_policy_needs_its_scope() {
    named_policy_needs_its_scope(Kind::Nginx);
}

#[test]
fn nginx_fails_closed_when_the_validator_is_down() {
    fails_closed_when_the_validator_is_down(Kind::Nginx);
}

#[test]
fn caddy_allows_with_identity_headers() {
    allows_with_identity_headers(Kind::Caddy);
}

#[test]
fn caddy_denies_without_reaching_the_upstream() {
    denies_without_reaching_the_upstream(Kind::Caddy);
}

#[test]
fn caddy_named_policy_needs_its_scope() {
    named_policy_needs_its_scope(Kind::Caddy);
}

#[test]
fn caddy_fails_closed_when_the_validator_is_down() {
    fails_closed_when_the_validator_is_down(Kind::Caddy);
}

/// The `worker_connections` of `docs/gateway/nginx.conf`.
fn nginx_worker_connections() -> usize {
    let conf = std::fs::read_to_string(workspace_root().join("docs/gateway/nginx.conf")).unwrap();
    conf.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("worker_connections")?
                .trim()
                .strip_suffix(';')
        })
        .and_then(|n| n.trim().parse().ok())
        .expect("nginx.conf sets worker_connections")
}

/// Issue 15's attack made on nginx in front: sockets that send nothing, 100 more than nginx's
/// `worker_connections`. nginx reuses its connections that wait for a request when it runs out, so a
/// real client still gets through, and the validator never sees the idle sockets: only the keep-alive
/// connections nginx opens to it.
#[test]
fn nginx_absorbs_idle_sockets_past_its_connection_limit() {
    let (validator, upstream) = (validator(), Upstream::start());
    let proxy = Proxy::start(Kind::Nginx, validator.addr, upstream.addr);
    let idle: Vec<TcpStream> = (0..nginx_worker_connections() + 100)
        .map(|_| TcpStream::connect_timeout(&proxy.addr, IO_TIMEOUT).expect("connect to nginx"))
        .collect();
    let auth = bearer(&token(json!({})));
    for round in 0..3 {
        let r = proxy.get("/", &[("Authorization", &auth)]);
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
    }
    assert_eq!(upstream.hits(), 3);
    if validator.target == Target::Native {
        let metrics = validator.get("/metrics").text();
        let open: usize = metrics
            .lines()
            .find_map(|l| l.strip_prefix("jwtv_connections_open ")?.parse().ok())
            .expect("jwtv_connections_open in /metrics");
        // nginx's keep-alive pool to the validator (`keepalive 16`), and this /metrics request.
        assert!(
            open <= 17,
            "{open} connections reached the validator through nginx"
        );
    }
    drop(idle);
}
