//! HTTP/2 for the suites: a real client (hyper's, prior knowledge, over any socket: plain or TLS) driven
//! from blocking test code, and raw frames for the attacks a well-behaved client cannot send.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Runtime;

use super::IO_TIMEOUT;

/// One HTTP/2 connection and the runtime that drives it.
pub struct H2 {
    pub rt: Runtime,
    sender: http2::SendRequest<Full<Bytes>>,
}

/// An answer read whole.
pub type Answer = Response<Bytes>;

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

impl H2 {
    /// h2c with prior knowledge: the preface straight away, as Envoy's gRPC client does.
    pub fn connect(addr: SocketAddr) -> H2 {
        let rt = runtime();
        let stream = rt
            .block_on(tokio::net::TcpStream::connect(addr))
            .expect("connect to the server");
        H2::over(rt, stream)
    }

    /// HTTP/2 over an established socket (a TLS stream negotiated with ALPN `h2`).
    pub fn over<S>(rt: Runtime, io: S) -> H2
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = rt
            .block_on(http2::handshake(TokioExecutor::new(), TokioIo::new(io)))
            .expect("HTTP/2 handshake");
        rt.spawn(connection);
        H2 { rt, sender }
    }

    /// Sends one request and reads its answer (bounded by [`IO_TIMEOUT`]).
    pub fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Answer, String> {
        let sender = &mut self.sender;
        self.rt.block_on(async {
            tokio::time::timeout(IO_TIMEOUT, exchange(sender, request))
                .await
                .map_err(|_| "timed out".to_string())?
        })
    }

    /// Sends all `requests` at once on this connection (one stream each) and reads every answer.
    pub fn send_all(&mut self, requests: Vec<Request<Full<Bytes>>>) -> Vec<Result<Answer, String>> {
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|request| {
                let mut sender = self.sender.clone();
                self.rt.spawn(async move {
                    tokio::time::timeout(IO_TIMEOUT, exchange(&mut sender, request))
                        .await
                        .map_err(|_| "timed out".to_string())?
                })
            })
            .collect();
        self.rt.block_on(async {
            let mut out = Vec::new();
            for task in tasks {
                out.push(task.await.map_err(|e| e.to_string()).and_then(|r| r));
            }
            out
        })
    }

    /// Whether the server closed this connection (GOAWAY, or the socket).
    pub fn is_closed(&mut self) -> bool {
        let sender = &mut self.sender;
        self.rt.block_on(async {
            // Let the connection task read what the server sent.
            tokio::time::sleep(Duration::from_millis(10)).await;
            sender.is_closed() || !sender.is_ready()
        })
    }
}

async fn exchange(
    sender: &mut http2::SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<Answer, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// A request for `path` on `http://127.0.0.1` (HTTP/2 takes the authority from the URI).
pub fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1{path}"))
        .version(http::Version::HTTP_2);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("a valid request")
}

// ---- raw frames (RFC 9113 §4.1)

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
/// GOAWAY's code for "the peer is generating excessive load" (RFC 9113 §7).
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK block for `GET path` (static-table indices, RFC 7541 Appendix A) with the literal
/// `headers` (never indexed, names under 128 bytes, values of any length).
pub fn header_block(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    // :method GET, :scheme http
    let mut out = vec![0x82, 0x86];
    literal_indexed_name(&mut out, 4, path); // :path
    literal_indexed_name(&mut out, 1, "127.0.0.1"); // :authority
    for (name, value) in headers {
        out.push(0x10);
        integer(&mut out, 7, 0, name.len());
        out.extend_from_slice(name.as_bytes());
        integer(&mut out, 7, 0, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

fn literal_indexed_name(out: &mut Vec<u8>, index: usize, value: &str) {
    integer(out, 4, 0x10, index);
    integer(out, 7, 0, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// RFC 7541 §5.1.
fn integer(out: &mut Vec<u8>, prefix_bits: u32, flags: u8, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// The frames in `bytes` (type, flags, stream, payload), as far as they are complete.
pub fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        if rest.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        out.push((rest[3], rest[4], stream, rest[9..9 + len].to_vec()));
        rest = &rest[9 + len..];
    }
    out
}

/// The error code of the first GOAWAY in `bytes`, if any.
pub fn goaway_code(bytes: &[u8]) -> Option<u32> {
    frames(bytes)
        .into_iter()
        .find(|(kind, ..)| *kind == GOAWAY)
        .and_then(|(_, _, _, payload)| {
            Some(u32::from_be_bytes(payload.get(4..8)?.try_into().ok()?))
        })
}
