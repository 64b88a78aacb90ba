//! The gateways of `docs/gateway/` as users run them: nginx, Caddy, Traefik and Envoy, each started
//! from exactly its documented files with only the addresses replaced by the ports a test picked.
//!
//! Each proxy is one small adapter (which files, which command line); rendering the files, starting,
//! waiting until the routes answer, capturing the log and stopping by PID are shared. nginx and Caddy
//! come from Debian (`scripts/setup debian`); Envoy and Traefik from `.cache/bin/` (`scripts/setup
//! proxies`) or `JWTV_ENVOY` / `JWTV_TRAEFIK`. A missing proxy fails the test with that hint: the
//! suites never skip.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{
    Captured, Response, TempDir, eventually, free_port, parse_response, read_to_close, request,
    workspace_root,
};

/// Where the docs' files put the validator replicas (the first one alone in the single-validator
/// files), the application and the proxy itself.
pub const DOC_VALIDATORS: [&str; 3] = ["127.0.0.1:3000", "127.0.0.1:3001", "127.0.0.1:3002"];
pub const DOC_UPSTREAM: &str = "127.0.0.1:9000";
pub const DOC_LISTEN: &str = "127.0.0.1:8080";

/// How long a proxy may take to answer on its routes.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
    Traefik,
    Envoy,
    /// Envoy with gRPC ext_authz (`envoy-grpc.yaml`); the validator must be the native binary.
    EnvoyGrpc,
}

/// A running proxy, ended by its PID when dropped.
pub struct Gateway {
    pub addr: SocketAddr,
    child: Child,
    log: Captured,
    _dir: TempDir,
}

impl Gateway {
    /// `kind` with its documented files, asking `validator` and forwarding to `upstream`.
    pub fn start(kind: Kind, validator: SocketAddr, upstream: SocketAddr) -> Gateway {
        let files = Files::new(&[validator], upstream);
        let command = match kind {
            Kind::Nginx => nginx(&files, "nginx.conf"),
            Kind::Caddy => caddy(&files),
            Kind::Traefik => traefik(&files),
            Kind::Envoy => envoy(&files, "envoy.yaml"),
            Kind::EnvoyGrpc => envoy(&files, "envoy-grpc.yaml"),
        };
        Gateway::run(kind, command, files)
    }

    /// `kind` with its main documented file changed by `edit` before it is written (a test adds what
    /// the docs show as a snippet, such as TLS to the validator).
    pub fn start_edited(
        kind: Kind,
        validator: SocketAddr,
        upstream: SocketAddr,
        edit: impl FnOnce(String) -> String,
    ) -> Gateway {
        let files = Files::new(&[validator], upstream);
        let command = match kind {
            Kind::EnvoyGrpc => envoy_command(files.render("envoy-grpc.yaml", edit)),
            other => panic!("{other:?}: no edited start"),
        };
        Gateway::run(kind, command, files)
    }

    /// `kind` with `conf`, a variant of its documented main file (an mTLS listener), every file
    /// written through `edit` (where the certificates are). A TLS listener does not answer the plain
    /// probe, so the proxy routes once `ready` says it does.
    pub fn start_variant(
        kind: Kind,
        conf: &str,
        validator: SocketAddr,
        upstream: SocketAddr,
        edit: impl Fn(String) -> String,
        ready: impl Fn(SocketAddr) -> bool,
    ) -> Gateway {
        let files = Files::new(&[validator], upstream);
        let command = match kind {
            Kind::Envoy | Kind::EnvoyGrpc => envoy_command(files.render(conf, &edit)),
            Kind::Nginx => {
                for include in ["jwt_identity.conf", "jwt_subrequest.conf"] {
                    files.copy(include);
                }
                nginx_command(&files, files.render(conf, &edit))
            }
            Kind::Traefik => {
                files.render(conf, &edit);
                let dynamic = format!("filename: {conf}");
                let static_conf = files.render("traefik.yml", |text| {
                    assert!(
                        text.contains("filename: traefik-dynamic.yml"),
                        "traefik.yml moved its file provider"
                    );
                    text.replace("filename: traefik-dynamic.yml", &dynamic)
                });
                let mut c = Command::new(Kind::Traefik.program());
                c.arg(format!("--configFile={}", static_conf.display()));
                c
            }
            Kind::Caddy => {
                let conf = files.render(conf, &edit);
                caddy_command(&files, conf)
            }
        };
        Gateway::run_until(kind, command, files, ready)
    }

    /// nginx with `nginx-replicas.conf` in front of three replicas; `edit` changes
    /// `jwt_failover.conf` before it is written (a measurement drops it).
    pub fn nginx_replicas(
        replicas: [SocketAddr; 3],
        upstream: SocketAddr,
        edit: impl FnOnce(String) -> String,
    ) -> Gateway {
        let files = Files::new(&replicas, upstream);
        files.render("jwt_failover.conf", edit);
        let command = nginx(&files, "nginx-replicas.conf");
        Gateway::run(Kind::Nginx, command, files)
    }

    /// Spawns `command` and waits (bounded) until the proxy routes requests: any answer but 404,
    /// which Traefik gives until its file provider has loaded the routes.
    fn run(kind: Kind, command: Command, files: Files) -> Gateway {
        Gateway::run_until(kind, command, files, |addr| {
            probe(addr).is_some_and(|status| status != 404)
        })
    }

    fn run_until(
        kind: Kind,
        mut command: Command,
        files: Files,
        ready: impl Fn(SocketAddr) -> bool,
    ) -> Gateway {
        files.assert_every_address_named(kind);
        let mut child = command
            .current_dir(files.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{kind:?} cannot start ({e}): {}", kind.setup_hint()));
        let log = Captured::default();
        log.drain(child.stdout.take().expect("piped stdout"));
        log.drain(child.stderr.take().expect("piped stderr"));
        let addr = files.listen;
        let routed = eventually(READY_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{kind:?} exited before serving ({status})\n--- log ---\n{}",
                    log.text()
                );
            }
            ready(addr)
        });
        if !routed {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{kind:?} did not route requests on {addr} within {READY_TIMEOUT:?}\n--- log ---\n{}",
                log.text()
            );
        }
        Gateway {
            addr,
            child,
            log,
            _dir: files.dir,
        }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, "GET", path, headers, b"")
    }

    /// A request with another method (rules over `request.method`), no body.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, method, path, headers, b"")
    }

    /// Everything the proxy wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        self.log.text()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // `Child::kill` signals exactly this child's PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of `GET /` without a token, or `None` when nothing answers yet.
fn probe(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let head = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    parse_response(&read_to_close(&mut stream))
        .ok()
        .map(|r| r.status)
}

// ---------------------------------------------------------------------------------------------------
// The adapters: which documented files, which command line.

/// One process in the foreground, so it ends with the PID we hold.
fn nginx(files: &Files, conf: &str) -> Command {
    for include in ["jwt_identity.conf", "jwt_subrequest.conf"] {
        files.copy(include);
    }
    let conf = files.copy(conf);
    nginx_command(files, conf)
}

fn nginx_command(files: &Files, conf: PathBuf) -> Command {
    std::fs::create_dir_all(files.dir.path().join("temp")).expect("nginx temp dir");
    let mut c = Command::new(Kind::Nginx.program());
    c.arg("-p")
        .arg(files.dir.path())
        .arg("-c")
        .arg(conf)
        .args(["-g", "daemon off; master_process off;"]);
    c
}

fn caddy(files: &Files) -> Command {
    caddy_command(files, files.copy("Caddyfile"))
}

fn caddy_command(files: &Files, conf: PathBuf) -> Command {
    let mut c = Command::new(Kind::Caddy.program());
    c.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(conf)
        .env("XDG_CONFIG_HOME", files.dir.path())
        .env("XDG_DATA_HOME", files.dir.path())
        .env("HOME", files.dir.path());
    c
}

/// The static file names the dynamic one relative to the working directory, the rendered files'.
fn traefik(files: &Files) -> Command {
    files.copy("traefik-dynamic.yml");
    let conf = files.copy("traefik.yml");
    let mut c = Command::new(Kind::Traefik.program());
    c.arg(format!("--configFile={}", conf.display()));
    c
}

/// Envoy's hot-restart socket would collide between the suites' parallel Envoys; one worker is
/// enough for a test.
fn envoy(files: &Files, conf: &str) -> Command {
    envoy_command(files.copy(conf))
}

fn envoy_command(conf: PathBuf) -> Command {
    let mut c = Command::new(Kind::Envoy.program());
    c.arg("-c")
        .arg(conf)
        .args(["--disable-hot-restart", "--concurrency", "1"]);
    c
}

impl Kind {
    fn program(self) -> PathBuf {
        match self {
            Kind::Nginx => debian("nginx", "/usr/sbin/nginx"),
            Kind::Caddy => debian("caddy", "/usr/bin/caddy"),
            Kind::Traefik => cached("traefik", "JWTV_TRAEFIK"),
            Kind::Envoy | Kind::EnvoyGrpc => cached("envoy", "JWTV_ENVOY"),
        }
    }

    fn setup_hint(self) -> &'static str {
        match self {
            Kind::Nginx | Kind::Caddy => "run `scripts/setup debian` to install it",
            Kind::Traefik => "run `scripts/setup proxies` (or set JWTV_TRAEFIK)",
            Kind::Envoy | Kind::EnvoyGrpc => "run `scripts/setup proxies` (or set JWTV_ENVOY)",
        }
    }
}

/// A Debian package's binary, from `PATH` or its packaged place.
fn debian(name: &str, packaged: &str) -> PathBuf {
    let in_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    in_path
        .or_else(|| Some(PathBuf::from(packaged)).filter(|p| p.is_file()))
        .unwrap_or_else(|| panic!("{name} is not installed: run `scripts/setup debian`"))
}

/// A binary `scripts/setup proxies` links into `.cache/bin/`, unless `var` names another.
fn cached(name: &str, var: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".cache/bin").join(name));
    assert!(
        path.is_file(),
        "{name} not found at {}: run `scripts/setup proxies` (or set {var})",
        path.display()
    );
    path
}

// ---------------------------------------------------------------------------------------------------
// The documented files, rendered

/// A directory of `docs/gateway/` files with the documented addresses replaced by ours, in both the
/// `127.0.0.1:3000` form and Envoy's `port_value: 3000`.
struct Files {
    dir: TempDir,
    listen: SocketAddr,
    replacements: Vec<(&'static str, SocketAddr)>,
    /// The documented addresses found in the files written so far.
    named: RefCell<BTreeSet<&'static str>>,
}

impl Files {
    fn new(validators: &[SocketAddr], upstream: SocketAddr) -> Files {
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut replacements: Vec<_> = DOC_VALIDATORS
            .into_iter()
            .zip(validators.iter().copied())
            .collect();
        replacements.extend([(DOC_UPSTREAM, upstream), (DOC_LISTEN, listen)]);
        Files {
            dir: TempDir::new(),
            listen,
            replacements,
            named: RefCell::new(BTreeSet::new()),
        }
    }

    /// Writes `docs/gateway/{name}`, changed by `edit`, with the addresses replaced.
    fn render(&self, name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
        let docs = workspace_root().join("docs/gateway");
        let mut text = edit(
            std::fs::read_to_string(docs.join(name))
                .unwrap_or_else(|e| panic!("docs/gateway/{name}: {e}")),
        );
        for (doc, ours) in &self.replacements {
            let doc_port = doc.rsplit(':').next().unwrap_or_default();
            let forms = [
                (doc.to_string(), ours.to_string()),
                (
                    format!("port_value: {doc_port}"),
                    format!("port_value: {}", ours.port()),
                ),
                // A site named for its clients (Caddyfile-mtls), bound to 127.0.0.1.
                (
                    format!("localhost:{doc_port}"),
                    format!("localhost:{}", ours.port()),
                ),
            ];
            for (from, to) in forms {
                if text.contains(&from) {
                    self.named.borrow_mut().insert(doc);
                    text = text.replace(&from, &to);
                }
            }
        }
        self.dir.write(name, text.as_bytes())
    }

    fn copy(&self, name: &str) -> PathBuf {
        self.render(name, |text| text)
    }

    /// A documented address that no file names any more would leave the proxy talking to it.
    fn assert_every_address_named(&self, kind: Kind) {
        let named = self.named.borrow();
        for (doc, _) in &self.replacements {
            assert!(
                named.contains(doc),
                "{kind:?}: the files of docs/gateway no longer name {doc}"
            );
        }
    }
}
