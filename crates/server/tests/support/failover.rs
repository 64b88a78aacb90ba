//! The failover run of `tests/failover.rs` (issue 12), shared with the measurement
//! `benches/failover_settings.rs`: three native replicas behind a real nginx running
//! `docs/gateway/nginx-replicas.conf`, clients on `/auth` and `POST /validate` the whole time, one
//! replica killed with SIGKILL and restarted on its port; every request a client sees fail is counted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::gateway::Gateway;
use super::keyserver::{JWKS_PATH, KeyServer, Mode, TestJwk, jwks};
use super::{Server, Target, TestConfig, free_port, now, request};
use serde_json::json;

const ISSUER: &str = "https://idp.test";

/// Load while all replicas run, while one is gone, while it runs without keys, and after it is ready
/// again (past `fail_timeout`, so nginx sends it requests once more).
const BEFORE_KILL: Duration = Duration::from_secs(1);
const WHILE_DOWN: Duration = Duration::from_millis(1500);
const WITHOUT_KEYS: Duration = Duration::from_millis(1500);
const AFTER_READY: Duration = Duration::from_secs(3);
/// How long the restarted replica may take to fetch its keys once the provider is back.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Bounds of each client's loop, far beyond the phases above.
const MAX_REQUESTS_PER_CLIENT: usize = 20_000;
const CLIENT_DEADLINE: Duration = Duration::from_secs(60);
/// Clients per endpoint; each paces itself so the run stays light on a shared machine.
const CLIENTS: usize = 2;
const PACE: Duration = Duration::from_millis(1);

/// A replica with its keys from `ks`, refreshed about every second (so the survivors do try, and
/// fail, to reach the provider while it is down).
fn replica(addr: SocketAddr, ks: &KeyServer) -> Server {
    Server::start_on(
        Target::Native,
        TestConfig::new()
            .env("JWT_JWKS_URI", ks.url(JWKS_PATH))
            .env("JWT_ALLOW_HTTP_LOOPBACK", "true")
            .env("JWT_ISSUER", ISSUER)
            .env("JWT_FETCH_TIMEOUT", "1")
            .env("JWT_JWKS_MIN_TTL", "1")
            .env("JWT_JWKS_DEFAULT_TTL", "1")
            .arg("--listen")
            .arg(addr.to_string()),
    )
}

fn ready(server: &Server) -> bool {
    server.get("/readyz").status == 200
}

/// Polls (bounded) until `server` is ready.
fn wait_ready(server: &Server, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !ready(server) {
        assert!(
            Instant::now() < deadline,
            "replica {} not ready within {timeout:?}\n--- stderr ---\n{}",
            server.addr,
            server.stderr_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------------
// The application behind nginx: 204 to every request, one connection at a time.

struct App {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl App {
    fn start() -> App {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = no_content(stream);
                }
            }
        });
        App {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

fn no_content(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the loop sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Clients and the kill.

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    /// `GET /api/orders` through `auth_request`: the application's 204 is a success.
    Auth,
    /// `POST /validate`: 200 `{"valid": true}` is a success.
    Validate,
}

/// What the clients of one endpoint saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub requests: usize,
    /// The statuses of the failures, in order.
    pub failures: Vec<u16>,
}

impl Tally {
    /// "N failed of M (status×count, …)".
    pub fn summary(&self) -> String {
        let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
        for status in &self.failures {
            *by_status.entry(*status).or_default() += 1;
        }
        let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        format!(
            "{} failed of {} ({})",
            self.failures.len(),
            self.requests,
            statuses.join(", ")
        )
    }
}

fn client(proxy: SocketAddr, endpoint: Endpoint, token: &str, stop: &AtomicBool) -> Tally {
    let bearer = format!("Bearer {token}");
    let body = serde_json::to_vec(&json!({ "token": token })).unwrap();
    let deadline = Instant::now() + CLIENT_DEADLINE;
    let mut tally = Tally::default();
    while !stop.load(Ordering::SeqCst)
        && Instant::now() < deadline
        && tally.requests < MAX_REQUESTS_PER_CLIENT
    {
        let (passed, status) = match endpoint {
            Endpoint::Auth => {
                let r = request(
                    proxy,
                    "GET",
                    "/api/orders",
                    &[("Authorization", &bearer)],
                    b"",
                );
                (r.status == 204, r.status)
            }
            Endpoint::Validate => {
                let r = request(
                    proxy,
                    "POST",
                    "/validate",
                    &[("Content-Type", "application/json")],
                    &body,
                );
                let valid = r.status == 200 && r.json()["valid"] == json!(true);
                (valid, r.status)
            }
        };
        tally.requests += 1;
        if !passed {
            tally.failures.push(status);
        }
        thread::sleep(PACE);
    }
    tally
}

/// Runs the clients through nginx while replica 1 is killed with SIGKILL, the identity provider goes
/// down, the replica is restarted on its port (without keys: 503), and the provider comes back;
/// returns the tallies for `/auth` and `/validate`.
fn kill_and_restart_under_load(edit: impl FnOnce(String) -> String) -> (Tally, Tally) {
    let key = TestJwk::es256("k1");
    let ks = KeyServer::start(jwks(&[&key]));
    ks.set_cache_control(Some("public, max-age=1"));
    let token = key.token(&json!({"iss": ISSUER, "sub": "alice", "exp": now() + 600}));
    let addrs: [SocketAddr; 3] = std::array::from_fn(|_| ([127, 0, 0, 1], free_port()).into());
    let mut replicas = addrs.map(|a| Some(replica(a, &ks)));
    for server in replicas.iter().flatten() {
        wait_ready(server, READY_TIMEOUT);
    }
    let app = App::start();
    let nginx = Gateway::nginx_replicas(addrs, app.addr, edit);
    let proxy = nginx.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let spawn = |endpoint| {
        let (stop, token) = (stop.clone(), token.clone());
        thread::spawn(move || client(proxy, endpoint, &token, &stop))
    };
    let auth: Vec<_> = (0..CLIENTS).map(|_| spawn(Endpoint::Auth)).collect();
    let validate: Vec<_> = (0..CLIENTS).map(|_| spawn(Endpoint::Validate)).collect();

    thread::sleep(BEFORE_KILL);
    ks.set_mode(Mode::Down);
    let connections_before_outage = ks.connections();
    // `Drop` of a server is SIGKILL to its PID, then a wait.
    drop(replicas[1].take());
    thread::sleep(WHILE_DOWN);
    let restarted = replica(addrs[1], &ks);
    thread::sleep(WITHOUT_KEYS);
    let survivors_ready = [&replicas[0], &replicas[2]].map(|r| r.as_ref().is_some_and(ready));
    let restarted_ready_without_keys = ready(&restarted);
    let fetches_during_outage = ks.connections() - connections_before_outage;
    ks.set_mode(Mode::Normal);
    wait_ready(&restarted, READY_TIMEOUT);
    thread::sleep(AFTER_READY);
    stop.store(true, Ordering::SeqCst);
    assert_eq!(
        survivors_ready,
        [true, true],
        "replicas with a key set stay ready while the provider is down"
    );
    assert!(
        fetches_during_outage >= 2,
        "the replicas tried the provider while it was down ({fetches_during_outage} connections)"
    );
    assert!(
        !restarted_ready_without_keys,
        "a replica that never had keys is not ready"
    );

    let sum = |handles: Vec<thread::JoinHandle<Tally>>| {
        handles.into_iter().fold(Tally::default(), |mut all, h| {
            let t = h.join().expect("client thread");
            all.requests += t.requests;
            all.failures.extend(t.failures);
            all
        })
    };
    (sum(auth), sum(validate))
}

/// One run under `name`: prints the counts (the figures of the docs) and checks that enough requests
/// ran to span the kill, the outage and the restart.
pub fn measure(name: &str, edit: impl FnOnce(String) -> String) -> (Tally, Tally) {
    let (auth, validate) = kill_and_restart_under_load(edit);
    println!(
        "{name}: /auth {}, /validate {}",
        auth.summary(),
        validate.summary()
    );
    for (endpoint, tally) in [("/auth", &auth), ("/validate", &validate)] {
        assert!(
            tally.requests >= 100,
            "{endpoint}: only {} requests ran",
            tally.requests
        );
    }
    (auth, validate)
}
