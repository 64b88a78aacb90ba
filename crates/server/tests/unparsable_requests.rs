//! The answers that are not JSON, exactly as docs/api.md lists them (issue 12): what hyper answers
//! itself to a request it cannot parse, over a raw TCP stream to the real server. If hyper ever lets
//! us write these, this test is where docs/api.md's exception list gets shorter.

mod support;

use support::contract::{MAX_TOKEN_BYTES, config};
use support::{Server, parse_response};

#[test]
fn unparsable_requests_get_hyper_empty_answers_and_close() {
    let server = Server::start(config());
    // The header budget is the token limit plus 8 KiB, at least 16 KiB.
    let oversized = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat((MAX_TOKEN_BYTES + 8 * 1024).max(16 * 1024) + 1)
    );
    let cases: [(&str, &[u8], u16); 6] = [
        ("malformed request line", b"GARBAGE\r\n\r\n", 400),
        ("bad method", b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("unknown version", b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 400),
        ("space in a header name", b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", 400),
        (
            "two Content-Lengths",
            b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            400,
        ),
        ("headers over the budget", oversized.as_bytes(), 431),
    ];
    for (name, raw, status) in cases {
        let answer = parse_response(&server.send_raw(raw))
            .unwrap_or_else(|e| panic!("{name}: no HTTP answer: {e}"));
        assert_eq!(answer.status, status, "{name}");
        assert!(answer.body.is_empty(), "{name}: {:?}", answer.text());
        assert_eq!(answer.header("connection"), Some("close"), "{name}");
    }
    // The server carries on.
    assert_eq!(server.get("/healthz").status, 200);
}
