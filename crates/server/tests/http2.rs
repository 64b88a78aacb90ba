//! HTTP/2 on the native listener (issue 25): h2c with prior knowledge beside HTTP/1.1 on one port, and
//! the bounds of `design/security.md` ("slow clients are timed out; header and body sizes are bounded;
//! concurrency is bounded") for HTTP/2's own attacks: streams reset as fast as they are opened
//! (CVE-2023-44487), a header block that never ends (the CONTINUATION flood, CVE-2024-27316 and
//! kin), connections that send the preface and nothing more.
//!
//! Native only: under `wasmtime serve` the protocol is the host's.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use support::h2::{self, H2};
use support::jwt::hs256;
use support::{IO_TIMEOUT, Server, Target, TestConfig, eventually, now};

const SECRET: &[u8] = b"http2-suite-secret-of-32-bytes!!";

fn config() -> TestConfig {
    TestConfig::new().env("JWT_SECRET", String::from_utf8(SECRET.to_vec()).unwrap())
}

fn token() -> String {
    hs256(
        SECRET,
        &json!({"sub": "alice", "iss": "me", "exp": now() + 600}),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn header<'a>(answer: &'a h2::Answer, name: &str) -> Option<&'a str> {
    answer.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads from a raw socket until it closes or `IO_TIMEOUT` passes.
fn read_until_closed(socket: &mut TcpStream) -> Vec<u8> {
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn h2c_prior_knowledge_and_http1_on_one_port_answer_alike() {
    let server = Server::start_on(Target::Native, config());
    let token = token();
    let mut client = H2::connect(server.addr);

    let allowed = client
        .send(h2::request(
            "GET",
            "/auth",
            &[("authorization", &bearer(&token))],
            b"",
        ))
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.version(), http::Version::HTTP_2);
    assert_eq!(header(&allowed, "x-auth-subject"), Some("alice"));

    let denied = client
        .send(h2::request(
            "GET",
            "/auth",
            &[("authorization", "Bearer not.a.jwt")],
            b"",
        ))
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(header(&denied, "x-auth-error"), Some("malformed_token"));
    assert!(header(&denied, "www-authenticate").is_some_and(|v| v.starts_with("Bearer ")));

    let body = serde_json::to_vec(&json!({ "token": token })).unwrap();
    let validated = client
        .send(h2::request(
            "POST",
            "/validate",
            &[("content-type", "application/json")],
            &body,
        ))
        .unwrap();
    assert_eq!(validated.status(), 200);
    let json: serde_json::Value = serde_json::from_slice(validated.body()).unwrap();
    assert_eq!(json["valid"], true);

    // The same port still speaks HTTP/1.1.
    let http1 = server.validate(&token);
    assert_eq!(http1.status, 200, "{}", http1.text());
}

#[test]
fn h2_streams_on_one_connection_are_answered_concurrently() {
    let server = Server::start_on(Target::Native, config());
    let token = token();
    let mut client = H2::connect(server.addr);
    let requests = (0..64)
        .map(|_| h2::request("GET", "/auth", &[("authorization", &bearer(&token))], b""))
        .collect();
    let answers = client.send_all(requests);
    assert_eq!(answers.len(), 64);
    for answer in answers {
        assert_eq!(answer.unwrap().status(), 200);
    }
}

/// The header budget follows the token limit under HTTP/2 as under HTTP/1.1: a 40 KiB token fits
/// when the limit is 64 KiB (hyper's own default list size, 16 KiB, would refuse it), and a header
/// list past the budget is refused.
#[test]
fn h2_header_list_budget_follows_the_token_limit() {
    let server = Server::start_on(
        Target::Native,
        config().env("JWT_MAX_TOKEN_BYTES", (64 * 1024).to_string()),
    );
    let mut client = H2::connect(server.addr);
    let padding = "p".repeat(40 * 1024);
    let token = hs256(
        SECRET,
        &json!({"sub": "alice", "pad": padding, "exp": now() + 600}),
    );
    assert!(token.len() > 40 * 1024 && token.len() < 64 * 1024);
    let big = client
        .send(h2::request(
            "GET",
            "/auth",
            &[("authorization", &bearer(&token))],
            b"",
        ))
        .unwrap();
    assert_eq!(big.status(), 200);

    let over = "o".repeat(80 * 1024);
    let refused = client.send(h2::request("GET", "/auth", &[("x-pad", &over)], b""));
    // Either a 431, or the stream (or the connection) reset: refused before the service saw it.
    if let Ok(answer) = refused {
        assert_eq!(answer.status(), 431);
    }
}

/// CONTINUATION flood: a HEADERS frame without END_HEADERS followed by CONTINUATION frames that
/// never end. The server must stop at the header budget and close the connection rather than
/// buffer (or decode) without bound.
#[test]
fn h2_continuation_flood_is_cut_at_the_header_budget() {
    let server = Server::start_on(Target::Native, config());
    let mut socket = server.connect();
    socket.write_all(h2::PREFACE).unwrap();
    socket
        .write_all(&h2::frame(h2::SETTINGS, 0, 0, &[]))
        .unwrap();
    socket
        .write_all(&h2::frame(
            h2::HEADERS,
            0,
            1,
            &h2::header_block("/auth", &[]),
        ))
        .unwrap();
    let fragment = h2::header_block("/x", &[("x-flood", &"f".repeat(4000))]);
    let fragment = &fragment[fragment.len() - 4010..];
    let mut sent = 0usize;
    // 16 MiB is far past the budget (16 KiB): a server still reading at the end has no bound.
    while sent < 16 * 1024 * 1024 {
        let frame = h2::frame(h2::CONTINUATION, 0, 1, fragment);
        if socket.write_all(&frame).is_err() {
            break;
        }
        sent += frame.len();
    }
    assert!(
        sent < 16 * 1024 * 1024,
        "the server took a 16 MiB header block"
    );
    let answered = read_until_closed(&mut socket);
    assert!(
        h2::goaway_code(&answered).is_some() || answered.is_empty() || sent < 1024 * 1024,
        "no GOAWAY: {} bytes",
        answered.len()
    );
    // The server is unharmed.
    assert_eq!(server.get("/healthz").status, 200);
}

/// Rapid reset (CVE-2023-44487): streams opened and reset at once, faster than they are picked up,
/// end the connection with GOAWAY ENHANCE_YOUR_CALM.
#[test]
fn h2_rapid_reset_ends_the_connection_with_enhance_your_calm() {
    let server = Server::start_on(Target::Native, config());
    let mut socket = server.connect();
    let mut burst = Vec::new();
    burst.extend_from_slice(h2::PREFACE);
    burst.extend_from_slice(&h2::frame(h2::SETTINGS, 0, 0, &[]));
    let block = h2::header_block("/healthz", &[]);
    for i in 0..500u32 {
        let stream = 2 * i + 1;
        burst.extend_from_slice(&h2::frame(
            h2::HEADERS,
            h2::END_HEADERS | h2::END_STREAM,
            stream,
            &block,
        ));
        // CANCEL
        burst.extend_from_slice(&h2::frame(h2::RST_STREAM, 0, stream, &8u32.to_be_bytes()));
    }
    let _ = socket.write_all(&burst);
    let answered = read_until_closed(&mut socket);
    assert_eq!(h2::goaway_code(&answered), Some(h2::ENHANCE_YOUR_CALM));
    assert_eq!(server.get("/healthz").status, 200);
}

/// An HTTP/2 connection with no stream in progress is quiet whatever frames it sends: closed after the
/// first-byte timeout, as an idle HTTP/1.1 keep-alive connection is.
#[test]
fn h2_connection_without_a_request_is_closed_after_the_first_byte_timeout() {
    let server = Server::start_on(
        Target::Native,
        config()
            .env("JWT_FIRST_BYTE_TIMEOUT", "1")
            .env("JWT_REQUEST_TIMEOUT", "30"),
    );
    let mut client = H2::connect(server.addr);
    let answer = client
        .send(h2::request("GET", "/healthz", &[], b""))
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        eventually(Duration::from_secs(10), || client.is_closed()),
        "the idle HTTP/2 connection is still open"
    );
}

/// At the connection limit, sockets that sent the HTTP/2 preface (and SETTINGS) but no request make
/// room for a real client, as sockets that sent nothing do (`idle_connections.rs`).
#[test]
fn h2_prefaces_without_requests_make_room_at_the_limit() {
    const LIMIT: usize = 4;
    let server = Server::start_on(
        Target::Native,
        config()
            .env("JWT_MAX_CONNECTIONS", LIMIT.to_string())
            .env("JWT_FIRST_BYTE_TIMEOUT", "30")
            .env("JWT_REQUEST_TIMEOUT", "30"),
    );
    let mut hoarders: Vec<TcpStream> = (0..LIMIT * 2)
        .map(|_| {
            let mut socket = server.connect();
            socket.write_all(h2::PREFACE).unwrap();
            socket
                .write_all(&h2::frame(h2::SETTINGS, 0, 0, &[]))
                .unwrap();
            socket
        })
        .collect();
    // A request still gets through (within the client's IO timeout, far below 2 × 30 s).
    let answer = server.validate(&token());
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mut client = H2::connect(server.addr);
    let answer = client
        .send(h2::request("GET", "/healthz", &[], b""))
        .unwrap();
    assert_eq!(answer.status(), 200);
    hoarders.clear();
}
