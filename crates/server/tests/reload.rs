//! Hot reload of the native server: real binary, real files, real signals, over loopback.
//!
//! Files change the way a cluster changes them: a Kubernetes Secret or ConfigMap volume is a directory
//! of symlinks (`secret -> ..data/secret`) into a timestamped directory, and an update writes a new
//! timestamped directory and renames a new `..data` symlink over the old one (one atomic step). The
//! load runs on keep-alive connections opened before the first swap, so requests in flight during a
//! swap are part of what is checked.
//!
//! These run the native binary whatever `JWTV_TEST_TARGET` says: the component has no reload (it reads
//! its configuration per instance).

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::jwt::{hmac_token, hs256};
use support::keyserver::{JWKS_PATH, KeyServer, Mode, TestJwk, jwks};
use support::{IO_TIMEOUT, Server, Target, TempDir, TestConfig, assert_no_failures, find, now};

/// Between two checks of the watched files: short, so the tests are quick.
const INTERVAL: &str = "0.05";
/// The longest a change may take to be served (many intervals: the machine may be busy).
const PICKUP: Duration = Duration::from_secs(10);
/// Load threads, and the most requests each sends (the load also stops when the test is done).
const LOAD_THREADS: usize = 2;
const LOAD_MAX_REQUESTS: u64 = 200_000;
const LOAD_MAX_TIME: Duration = Duration::from_secs(120);

fn claims() -> Value {
    json!({"sub": "alice", "iat": now(), "exp": now() + 600})
}

fn secret(round: usize) -> String {
    format!("reload-test-secret-{round}-0123456789abcdefghijklmnopqrstuvwxyz")
}

// ---------------------------------------------------------------------------------------------------
// A Kubernetes-style volume

/// A directory laid out as the kubelet lays out a Secret or ConfigMap volume.
struct Volume {
    dir: TempDir,
    version: usize,
}

impl Volume {
    fn new(files: &[(&str, &[u8])]) -> Volume {
        let mut volume = Volume {
            dir: TempDir::new(),
            version: 0,
        };
        volume.swap(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), volume.path(name))
                .expect("link a file to ..data");
        }
        volume
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a new version beside the current one, then renames a new `..data` symlink over the old.
    fn swap(&mut self, files: &[(&str, &[u8])]) {
        self.version += 1;
        let version = format!("..2026_11_29_00_00_00.{}", self.version);
        std::fs::create_dir(self.dir.path().join(&version)).expect("version directory");
        for (name, bytes) in files {
            std::fs::write(self.dir.path().join(&version).join(name), bytes).expect("write");
        }
        let staged = self.path("..data_tmp");
        std::os::unix::fs::symlink(&version, &staged).expect("stage ..data");
        std::fs::rename(&staged, self.path("..data")).expect("swap ..data");
    }
}

// ---------------------------------------------------------------------------------------------------
// Load: keep-alive clients validating a shared list of tokens

/// A token and the statuses it may get.
type Expected = (String, &'static [u16]);

/// Keep-alive connections validating every token of `tokens` in turn until stopped (or their bound).
/// A status outside a token's expected ones, a connection error or a 5xx is a failure.
struct Load {
    tokens: Arc<Mutex<Vec<Expected>>>,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, tokens: Vec<Expected>) -> Load {
        let mut load = Load {
            tokens: Arc::new(Mutex::new(tokens)),
            stop: Arc::new(AtomicBool::new(false)),
            served: Arc::new(AtomicU64::new(0)),
            failures: Arc::new(Mutex::new(Vec::new())),
            threads: Vec::new(),
        };
        for _ in 0..LOAD_THREADS {
            let (tokens, stop, served, failures) = (
                load.tokens.clone(),
                load.stop.clone(),
                load.served.clone(),
                load.failures.clone(),
            );
            load.threads.push(thread::spawn(move || {
                let started = Instant::now();
                let mut client = KeepAlive::connect(addr);
                for _ in 0..LOAD_MAX_REQUESTS {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > LOAD_MAX_TIME {
                        break;
                    }
                    let batch = tokens.lock().unwrap().clone();
                    for (token, expected) in batch {
                        let outcome = client.validate(&token);
                        served.fetch_add(1, Ordering::Relaxed);
                        let problem = match outcome {
                            Ok(status) if expected.contains(&status) => continue,
                            Ok(status) => format!("status {status}, expected one of {expected:?}"),
                            Err(error) => {
                                client = KeepAlive::connect(addr);
                                error
                            }
                        };
                        let mut failures = failures.lock().unwrap();
                        if failures.len() < 20 {
                            failures.push(problem);
                        }
                    }
                }
            }));
        }
        load
    }

    fn set(&self, tokens: Vec<Expected>) {
        *self.tokens.lock().unwrap() = tokens;
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Stops the clients; returns the requests served and the failures seen.
    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("load thread");
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.served.load(Ordering::Relaxed), failures)
    }
}

/// One HTTP/1.1 keep-alive connection.
struct KeepAlive {
    addr: SocketAddr,
    stream: Option<TcpStream>,
}

impl KeepAlive {
    fn connect(addr: SocketAddr) -> KeepAlive {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).ok();
        if let Some(stream) = &stream {
            stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
            let _ = stream.set_nodelay(true);
        }
        KeepAlive { addr, stream }
    }

    /// `POST /validate`; the status, or what went wrong.
    fn validate(&mut self, token: &str) -> Result<u16, String> {
        let addr = self.addr;
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| format!("cannot connect to {addr}"))?;
        let body = json!({ "token": token }).to_string();
        let request = format!(
            "POST /validate HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = find(&raw, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or("an answer without content-length")?;
                if raw.len() >= end + 4 + length {
                    let status = head
                        .split(' ')
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .ok_or("an answer without a status")?;
                    if head.contains("connection: close") {
                        return Err(format!("status {status} closed the connection"));
                    }
                    return Ok(status);
                }
            }
            match stream.read(&mut buf) {
                Ok(0) => return Err("connection closed mid-answer".to_owned()),
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Observing the server

/// `name` (with its labels) in `/metrics`.
fn metric(server: &Server, name: &str) -> Option<String> {
    let text = server.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .map(str::to_owned)
}

fn reloads(server: &Server, result: &str) -> u64 {
    metric(
        server,
        &format!("jwtv_config_reloads_total{{result=\"{result}\"}}"),
    )
    .and_then(|v| v.parse().ok())
    .unwrap_or_else(|| panic!("no reload counter for {result}"))
}

/// The digest label of `jwtv_config_info`.
fn digest(server: &Server) -> String {
    let text = server.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix("jwtv_config_info{digest=\""))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .expect("jwtv_config_info in /metrics")
}

/// Waits (bounded) until `reloads(result)` reaches `count`.
fn wait_reloads(server: &Server, result: &str, count: u64) {
    let deadline = Instant::now() + PICKUP;
    while reloads(server, result) < count {
        assert!(
            Instant::now() < deadline,
            "no {result} reload #{count} within {PICKUP:?}; stderr:\n{}",
            server.stderr_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until `token` gets `status`; returns how long that took.
fn wait_status(server: &Server, token: &str, status: u16) -> Duration {
    let started = Instant::now();
    loop {
        if server.validate(token).status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PICKUP,
            "not {status} within {PICKUP:?}; stderr:\n{}",
            server.stderr_text()
        );
        thread::sleep(Duration::from_millis(2));
    }
}

fn hangup(server: &Server) {
    let pid = server.pid().to_string();
    let sent = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -HUP {pid} failed");
}

fn start(config: TestConfig) -> Server {
    Server::start_on(
        Target::Native,
        config.arg("--reload-interval").arg(INTERVAL),
    )
}

/// Replaces a file in one step (a new file renamed over it), so a poll sees either version whole.
fn replace(path: &Path, bytes: &[u8]) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, bytes).expect("write");
    std::fs::rename(&staged, path).expect("rename");
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------------------
// The tests

#[test]
fn a_secret_swapped_kubernetes_style_under_load_is_served_with_no_failed_request() {
    const SWAPS: usize = 5;
    let mut volume = Volume::new(&[("secret", secret(0).as_bytes())]);
    let server = start(TestConfig::new().env("JWT_SECRET_FILE", path_str(&volume.path("secret"))));
    let token = |round: usize| hs256(secret(round).as_bytes(), &claims());
    assert_eq!(server.validate(&token(0)).status, 200);

    // Around each swap the load sends the token of the secret in use and that of the next one: each
    // may get 200 or 401 (it flips at the swap), never anything else.
    let around = |round: usize| -> Vec<Expected> {
        vec![(token(round), &[200, 401]), (token(round + 1), &[200, 401])]
    };
    let load = Load::start(server.addr, around(0));
    let before = load.served();
    let mut pickups = Vec::new();
    for round in 0..SWAPS {
        let (old, new) = (token(round), token(round + 1));
        load.set(around(round));
        // The old token is in the cache before the swap: it must not be served from there after.
        assert_eq!(server.validate(&old).status, 200, "round {round}");
        assert_eq!(server.validate(&new).status, 401, "round {round}");
        // Requests on the load's connections are in flight when the swap lands.
        thread::sleep(Duration::from_millis(100));
        volume.swap(&[("secret", secret(round + 1).as_bytes())]);
        pickups.push(wait_status(&server, &new, 200));
        assert_eq!(
            server.validate(&old).status,
            401,
            "round {round}: old secret after the swap"
        );
    }
    let during = load.served() - before;
    let (served, failures) = load.finish();
    assert_eq!(reloads(&server, "applied"), SWAPS as u64);
    assert_eq!(reloads(&server, "failed"), 0);
    server.assert_not_logged(&secret(0));

    pickups.sort();
    eprintln!(
        "reload figures: {SWAPS} Kubernetes-style swaps (poll interval {INTERVAL} s): swap to new key \
         in use median {:?} (min {:?}, max {:?}); {during} requests served during the swaps \
         ({served} in all, {LOAD_THREADS} keep-alive clients); {} failed",
        pickups[SWAPS / 2],
        pickups[0],
        pickups[SWAPS - 1],
        failures.len()
    );
    assert_no_failures(failures);
}

#[test]
fn half_written_and_garbage_files_keep_the_active_configuration_and_are_counted() {
    let (k1, k2) = (TestJwk::es256("k1"), TestJwk::es256("k2"));
    let dir = TempDir::new();
    let toml = |jwks_file: &str| {
        format!("[[issuers]]\nissuer = \"https://issuer.test\"\njwks_file = \"{jwks_file}\"\n")
    };
    let config = dir.write("jwtv.toml", toml("keys.json").as_bytes());
    let keys = dir.write("keys.json", jwks(&[&k1]).as_bytes());
    let server = start(TestConfig::new().arg("--config").arg(path_str(&config)));
    let claims = json!({"iss": "https://issuer.test", "sub": "a", "exp": now() + 600});
    let (t1, t2) = (k1.token(&claims), k2.token(&claims));
    let load = Load::start(server.addr, vec![(t1.clone(), &[200])]);
    let active = digest(&server);

    let full = jwks(&[&k2]);
    let good_keys = jwks(&[&k1]).into_bytes();
    let good_config = toml("keys.json").into_bytes();
    let bad: [(&str, &Path, Vec<u8>, &[u8]); 3] = [
        (
            "a half-written key set",
            &keys,
            full.as_bytes()[..full.len() / 2].to_vec(),
            &good_keys,
        ),
        (
            "a garbage key set",
            &keys,
            b"\x00\xffnot json at all".to_vec(),
            &good_keys,
        ),
        (
            "a half-written configuration file",
            &config,
            good_config[..30].to_vec(),
            &good_config,
        ),
    ];
    for (n, (what, path, bytes, good)) in bad.iter().enumerate() {
        // What a reader sees of a file caught half-way through its writing.
        replace(path, bytes);
        wait_reloads(&server, "failed", n as u64 + 1);
        assert_eq!(
            server.validate(&t1).status,
            200,
            "{what}: the old keys serve"
        );
        assert_eq!(server.validate(&t2).status, 401, "{what}");
        assert_eq!(server.get("/readyz").status, 200, "{what}");
        assert_eq!(digest(&server), active, "{what}");
        // The file stays as it is: one failure, not one per poll.
        thread::sleep(Duration::from_millis(300));
        assert_eq!(
            reloads(&server, "failed"),
            n as u64 + 1,
            "{what}: counted once"
        );
        // The good file back: a change of the file, the configuration serving.
        replace(path, good);
        wait_reloads(&server, "unchanged", n as u64 + 1);
    }
    let log = server.stderr_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("configuration reload failed"))
        .collect();
    assert_eq!(lines.len(), 3, "one line per failure:\n{log}");
    assert!(
        lines[0].contains("jwks_file"),
        "names the file: {}",
        lines[0]
    );
    assert!(
        lines[2].contains("jwtv.toml"),
        "names the file: {}",
        lines[2]
    );
    assert_eq!(reloads(&server, "applied"), 0);

    // A good new key set is then applied.
    load.set(vec![(t1.clone(), &[200, 401])]);
    replace(&keys, full.as_bytes());
    wait_status(&server, &t2, 200);
    assert_eq!(server.validate(&t1).status, 401);
    assert_ne!(digest(&server), active);
    let (_, failures) = load.finish();
    assert_no_failures(failures);
}

#[test]
fn a_weak_or_missing_secret_keeps_the_active_one() {
    const WEAK: &str = "weak-secret-xyz";
    let dir = TempDir::new();
    let file = dir.write("secret", secret(0).as_bytes());
    let server = start(TestConfig::new().env("JWT_SECRET_FILE", path_str(&file)));
    let token = hs256(secret(0).as_bytes(), &claims());
    assert_eq!(server.validate(&token).status, 200);

    replace(&file, WEAK.as_bytes());
    wait_reloads(&server, "failed", 1);
    assert_eq!(server.validate(&token).status, 200, "a weak secret");
    std::fs::remove_file(&file).unwrap();
    wait_reloads(&server, "failed", 2);
    assert_eq!(server.validate(&token).status, 200, "a missing file");
    assert_eq!(server.get("/readyz").status, 200);
    // The file back as it was: the configuration serving.
    replace(&file, secret(0).as_bytes());
    wait_reloads(&server, "unchanged", 1);
    assert_eq!(reloads(&server, "applied"), 0);
    let log = server.stderr_text();
    let failed = log.lines().filter(|l| l.contains("reload failed"));
    assert!(
        failed.clone().all(|l| l.contains("JWT_SECRET_FILE")),
        "{log}"
    );
    assert_eq!(failed.count(), 2, "{log}");
    server.assert_not_logged(WEAK);
}

#[test]
fn sighup_with_an_unchanged_configuration_keeps_digest_and_cache() {
    let dir = TempDir::new();
    let file = dir.write("secret", secret(0).as_bytes());
    // No polling: only the signal reloads.
    let server = Server::start_on(
        Target::Native,
        TestConfig::new()
            .env("JWT_SECRET_FILE", path_str(&file))
            .arg("--reload-interval")
            .arg("0"),
    );
    let token = hs256(secret(0).as_bytes(), &claims());
    assert_eq!(server.validate(&token).status, 200);
    let entries = || metric(&server, "jwtv_token_cache_entries").expect("cache entries");
    let hits = || metric(&server, "jwtv_token_cache_requests_total{result=\"hit\"}").expect("hits");
    let active = digest(&server);
    let cached = entries();
    assert_eq!(cached, "1");

    hangup(&server);
    wait_reloads(&server, "unchanged", 1);
    assert_eq!(digest(&server), active);
    assert_eq!(entries(), cached, "the cache was not flushed");
    let before = hits();
    assert_eq!(server.validate(&token).status, 200);
    assert_ne!(hits(), before, "served from the cache");

    // A change without polling waits for the signal; then it is applied, and the cache starts empty.
    std::fs::write(&file, secret(1)).unwrap();
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        server.validate(&token).status,
        200,
        "not reloaded before SIGHUP"
    );
    hangup(&server);
    wait_reloads(&server, "applied", 1);
    assert_ne!(digest(&server), active);
    assert_eq!(entries(), "0");
    assert_eq!(server.validate(&token).status, 401);
    let new = hs256(secret(1).as_bytes(), &claims());
    assert_eq!(server.validate(&new).status, 200);
    assert_eq!(reloads(&server, "failed"), 0);
}

/// docs/operations.md, "Rotating a key": publish the new key beside the old one, each with a `kid`; sign with the
/// new one; remove the old one once its last token expired. At no step is a token refused.
#[test]
fn rotating_an_hmac_secret_with_overlapping_kids_refuses_no_token() {
    let oct = |kid: &str, secret: &str| json!({"kty": "oct", "kid": kid, "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(secret)});
    let set = |keys: &[Value]| json!({ "keys": keys }).to_string();
    let (old, new) = (secret(0), secret(1));
    let signed = |kid: &str, secret: &str| {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string();
        hmac_token("HS256", secret.as_bytes(), &header, &claims().to_string())
    };
    let (old_token, new_token) = (signed("2026-a", &old), signed("2026-b", &new));

    let mut volume = Volume::new(&[("jwks.json", set(&[oct("2026-a", &old)]).as_bytes())]);
    let server = start(TestConfig::new().env("JWT_JWKS_FILE", path_str(&volume.path("jwks.json"))));
    // Step 0: the old key signs.
    let load = Load::start(server.addr, vec![(old_token.clone(), &[200])]);
    // Step 1: both keys published; tokens of the old one keep working.
    volume.swap(&[(
        "jwks.json",
        set(&[oct("2026-a", &old), oct("2026-b", &new)]).as_bytes(),
    )]);
    wait_status(&server, &new_token, 200);
    // Step 2: the signer switches to the new key; old tokens are still in circulation.
    load.set(vec![
        (old_token.clone(), &[200]),
        (new_token.clone(), &[200]),
    ]);
    thread::sleep(Duration::from_millis(300));
    // Step 3: the old tokens have expired (here: no longer sent); the old key is removed.
    load.set(vec![(new_token.clone(), &[200])]);
    volume.swap(&[("jwks.json", set(&[oct("2026-b", &new)]).as_bytes())]);
    wait_status(&server, &old_token, 401);
    thread::sleep(Duration::from_millis(300));
    let (served, failures) = load.finish();
    assert!(served > 0);
    assert_eq!(reloads(&server, "applied"), 2);
    assert_no_failures(failures);
}

#[test]
fn a_new_jwks_uri_is_fetched_before_the_swap_and_an_unreachable_one_is_not_swapped_in() {
    let (k1, k2) = (TestJwk::es256("k1"), TestJwk::es256("k2"));
    let (a, b) = (
        KeyServer::start(jwks(&[&k1])),
        KeyServer::start(jwks(&[&k2])),
    );
    let toml = |uri: &str, comment: &str| {
        format!(
            "# {comment}\n[fetch]\nallow_http_loopback = true\ntimeout_secs = 1\n\
             [[issuers]]\nissuer = \"https://issuer.test\"\njwks_uri = \"{uri}\"\n"
        )
    };
    let dir = TempDir::new();
    let config = dir.write("jwtv.toml", toml(&a.url(JWKS_PATH), "a").as_bytes());
    let server = start(TestConfig::new().arg("--config").arg(path_str(&config)));
    let claims = json!({"iss": "https://issuer.test", "sub": "a", "exp": now() + 600});
    let (t1, t2) = (k1.token(&claims), k2.token(&claims));
    wait_status(&server, &t1, 200);
    let load = Load::start(server.addr, vec![(t1.clone(), &[200])]);

    // Another configuration, the same key source: its set and refresh are carried over, unfetched.
    replace(&config, toml(&a.url(JWKS_PATH), "a, commented").as_bytes());
    wait_reloads(&server, "applied", 1);
    assert_eq!(
        a.requests(JWKS_PATH),
        1,
        "no refetch for an unchanged source"
    );

    // A new source that cannot be fetched: the active configuration stays, ready.
    b.set_mode(Mode::Down);
    replace(&config, toml(&b.url(JWKS_PATH), "b").as_bytes());
    wait_reloads(&server, "failed", 1);
    // The counter moves before the warning is written, and stderr is read by another thread.
    server.assert_logged("was not fetched within");
    assert_eq!(server.get("/readyz").status, 200);
    assert_eq!(server.validate(&t1).status, 200);

    // Once it answers, the next change swaps it in with its keys already there.
    load.set(vec![(t1.clone(), &[200, 401]), (t2.clone(), &[200, 401])]);
    b.set_mode(Mode::Normal);
    replace(&config, toml(&b.url(JWKS_PATH), "b").as_bytes());
    wait_reloads(&server, "applied", 2);
    assert_eq!(server.validate(&t2).status, 200, "fetched before the swap");
    assert_eq!(server.validate(&t1).status, 401);
    assert_eq!(server.get("/readyz").status, 200);
    let (_, failures) = load.finish();
    assert_no_failures(failures);
}
