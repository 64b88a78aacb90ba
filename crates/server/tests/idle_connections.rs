//! Connections at the limit (issue 15): sockets that send nothing must not keep real clients out.
//! At the limit, the connection quiet the longest makes room for a new one; a connection with a request
//! in progress never does; slow-header clients are cut at the request timeout.
//!
//! Native only: under `wasmtime serve` connections are the host's business (docs/wasm.md, docs/gateway.md).
//! A small limit keeps each scenario to a few hundred sockets.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::jwt::hs256;
use support::{IO_TIMEOUT, Response, Server, Target, TestConfig, find, now, parse_response};

const SECRET: &[u8] = b"idle-connections-secret-32-bytes";
/// Sockets an attacker opens beyond the limit.
const EXTRA: usize = 100;

fn config(limit: usize, first_byte_secs: u64, request_secs: u64) -> TestConfig {
    TestConfig::new()
        .env("JWT_SECRET", String::from_utf8(SECRET.to_vec()).unwrap())
        .env("JWT_MAX_CONNECTIONS", limit.to_string())
        .env("JWT_FIRST_BYTE_TIMEOUT", first_byte_secs.to_string())
        .env("JWT_REQUEST_TIMEOUT", request_secs.to_string())
}

fn token() -> String {
    hs256(SECRET, &json!({"sub": "alice", "exp": now() + 600}))
}

fn validate_body() -> Vec<u8> {
    serde_json::to_vec(&json!({ "token": token() })).unwrap()
}

/// A counter or gauge from `/metrics`.
fn metric(server: &Server, name: &str) -> u64 {
    let text = server.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

/// Polls `/metrics` (bounded) until `name` satisfies `ok`; returns the last value.
fn wait_for_metric(
    server: &Server,
    name: &str,
    ok: impl Fn(u64) -> bool,
    timeout: Duration,
) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let value = metric(server, name);
        if ok(value) || Instant::now() >= deadline {
            return value;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sockets that connect and never send a byte; reopened when the server closes them.
struct IdleSockets {
    addr: SocketAddr,
    sockets: Vec<TcpStream>,
}

impl IdleSockets {
    fn open(addr: SocketAddr, n: usize) -> IdleSockets {
        let sockets = (0..n).map(|_| connect(addr)).collect();
        IdleSockets { addr, sockets }
    }

    /// Replaces every socket the server closed; returns how many.
    fn reopen_closed(&mut self) -> usize {
        let mut reopened = 0;
        for socket in &mut self.sockets {
            if is_closed(socket) {
                *socket = connect(self.addr);
                reopened += 1;
            }
        }
        reopened
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Whether the server ended the connection (closed or reset it, or answered a request never sent
/// whole), without waiting.
fn is_closed(socket: &TcpStream) -> bool {
    socket.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match socket.peek(&mut byte) {
        Ok(_) => true,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    socket.set_nonblocking(false).unwrap();
    closed
}

/// Reads exactly one response (its head, then `Content-Length` bytes of body) from a kept-alive
/// connection.
fn read_response(stream: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(head_end) = find(&raw, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if raw.len() >= head_end + 4 + length {
                return parse_response(&raw).unwrap();
            }
        }
        let n = stream.read(&mut buf).expect("read a response");
        assert!(
            n > 0,
            "closed before a whole response: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    }
}

fn validate_head(body_len: usize, close: bool) -> String {
    format!(
        "POST /validate HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )
}

/// The attack: limit + 100 sockets that send nothing. A new client's valid request is
/// answered long before the idle sockets' timeout, since it takes the slot of the oldest of them; and
/// again each time the attacker reopens what was reclaimed.
#[test]
fn idle_sockets_past_the_limit_do_not_keep_a_new_client_waiting() {
    const LIMIT: usize = 16;
    const FIRST_BYTE: Duration = Duration::from_secs(20);
    let server = Server::start_on(Target::Native, config(LIMIT, FIRST_BYTE.as_secs(), 30));
    let mut attacker = IdleSockets::open(server.addr, LIMIT + EXTRA);
    let reclaimed = wait_for_metric(
        &server,
        "jwtv_connections_reclaimed_total",
        |n| n >= EXTRA as u64,
        Duration::from_secs(10),
    );
    assert!(
        reclaimed >= EXTRA as u64,
        "only {reclaimed} idle connections reclaimed"
    );

    for round in 0..5 {
        let started = Instant::now();
        let r = server.post_json("/validate", &validate_body());
        let took = started.elapsed();
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
        assert!(
            took < FIRST_BYTE,
            "round {round}: answered after {took:?}, when idle connections time out"
        );
        let reopened = attacker.reopen_closed();
        assert!(
            reopened > 0,
            "round {round}: no idle socket was closed to make room"
        );
    }
    // Reclaimed connections close within moments; the `/metrics` request itself took the slot of one.
    let open = wait_for_metric(
        &server,
        "jwtv_connections_open",
        |n| n <= LIMIT as u64 + 1,
        Duration::from_secs(5),
    );
    assert!(open <= LIMIT as u64 + 1, "{open} connections open");
    assert_eq!(metric(&server, "jwtv_connections_refused_total"), 0);
}

/// Connections mid-request (headers partly read, body partly read, the second request of a kept-alive
/// connection) hold their slots through a flood of idle sockets, and are answered.
#[test]
fn clients_mid_request_are_never_reclaimed() {
    const LIMIT: usize = 5;
    let server = Server::start_on(Target::Native, config(LIMIT, 10, 20));
    let body = validate_body();
    let (first_half, second_half) = body.split_at(body.len() / 2);

    let mut mid_headers = connect(server.addr);
    let head = validate_head(body.len(), true);
    let (head_start, head_rest) = head.split_at(head.len() / 2);
    mid_headers.write_all(head_start.as_bytes()).unwrap();

    let mut mid_body = connect(server.addr);
    mid_body.write_all(head.as_bytes()).unwrap();
    mid_body.write_all(first_half).unwrap();

    // Kept alive after a first answer, then the next request begun: its body in part, or only part of
    // its headers (hyper alone would take that one for an idle connection).
    let kept_alive = || {
        let mut stream = connect(server.addr);
        stream
            .write_all(validate_head(body.len(), false).as_bytes())
            .unwrap();
        stream.write_all(&body).unwrap();
        assert_eq!(read_response(&mut stream).status, 200);
        stream
    };
    let mut kept_mid_body = kept_alive();
    kept_mid_body.write_all(head.as_bytes()).unwrap();
    kept_mid_body.write_all(first_half).unwrap();
    let mut kept_mid_headers = kept_alive();
    kept_mid_headers.write_all(head_start.as_bytes()).unwrap();
    // Loopback delivers at once; this leaves the server time to read what was sent.
    thread::sleep(Duration::from_millis(200));

    let _attacker = IdleSockets::open(server.addr, EXTRA);
    let reclaimed = wait_for_metric(
        &server,
        "jwtv_connections_reclaimed_total",
        |n| n >= EXTRA as u64 - 1,
        Duration::from_secs(10),
    );
    assert!(reclaimed >= EXTRA as u64 - 1, "{reclaimed} reclaimed");

    for stream in [&mut mid_headers, &mut kept_mid_headers] {
        stream.write_all(head_rest.as_bytes()).unwrap();
        stream.write_all(first_half).unwrap();
    }
    for (what, stream) in [
        ("mid-headers", &mut mid_headers),
        ("mid-body", &mut mid_body),
        ("kept alive, second request mid-body", &mut kept_mid_body),
        (
            "kept alive, second request mid-headers",
            &mut kept_mid_headers,
        ),
    ] {
        stream.write_all(second_half).unwrap();
        let r = read_response(stream);
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert_eq!(r.json()["valid"], true, "{what}");
    }
}

/// Slow-header clients at the limit are mid-request, so they are not reclaimed: they are cut at the
/// request timeout, and a new client queued behind them is then answered, not refused.
#[test]
fn slow_header_clients_at_the_limit_are_cut_and_a_new_client_is_then_answered() {
    const LIMIT: usize = 50;
    let server = Server::start_on(Target::Native, config(LIMIT, 1, 1));
    let partial = b"POST /validate HTTP/1.1\r\nHost: test\r\nX-Slow: ";
    let slow: Vec<TcpStream> = (0..LIMIT + EXTRA)
        .map(|_| {
            let mut s = connect(server.addr);
            s.write_all(partial).unwrap();
            s
        })
        .collect();

    let r = server.post_json("/validate", &validate_body());
    assert_eq!(r.status, 200, "{}", r.text());
    let cut = slow.iter().filter(|s| is_closed(s)).count();
    assert!(
        cut >= LIMIT,
        "only {cut} slow-header clients were cut at the request timeout"
    );
    assert_eq!(metric(&server, "jwtv_connections_reclaimed_total"), 0);
    assert_eq!(metric(&server, "jwtv_connections_refused_total"), 0);
}

/// The start raises a lower soft file-descriptor limit to the hard one, and sizes the default
/// connection limit from it with headroom; both are logged.
#[test]
fn the_start_raises_the_descriptor_limit_and_sizes_the_connection_limit_from_it() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -S -n 256 && exec \"$0\" --listen 127.0.0.1:0"])
        .arg(support::binary())
        .env_clear()
        .env("JWT_SECRET", String::from_utf8(SECRET.to_vec()).unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut logged = Vec::new();
    let deadline = Instant::now() + support::START_TIMEOUT;
    while !logged
        .iter()
        .any(|l: &String| l.contains("connection limit"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => logged.push(line),
            Err(_) => break,
        }
    }
    let hard = std::fs::read_to_string(format!("/proc/{}/limits", child.id()))
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(4).map(str::to_owned)
        });
    // `Child::kill` signals exactly this child's PID (sh exec'd into the server).
    let _ = child.kill();
    let _ = child.wait();
    let logged = logged.join("\n");
    let hard = hard.expect("the server's /proc limits");
    assert!(
        logged.contains(&format!("file-descriptor limit raised from 256 to {hard}")),
        "{logged}"
    );
    assert!(
        logged.contains("sized from the file-descriptor limit"),
        "{logged}"
    );
}
