//! `jwt-validator probe URL`: one bounded HTTP GET whose status becomes the exit status, for container
//! HEALTHCHECKs and Kubernetes exec probes in an image that has no curl (the native image is the
//! static binary alone, `FROM scratch`).
//!
//! Plain `http://` only, and blocking std I/O rather than the tokio runtime: a probe talks to the
//! server in its own container over loopback, once, and must not need TLS roots or threads to do so.
//! Every step (resolve, connect, write, read) is bounded by one deadline.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

use http::Uri;

/// The status line is all a probe reads; a longer answer is cut here.
const MAX_HEAD_BYTES: usize = 1024;

/// Why a probe failed. Each variant is one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{url}: not a URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "{url}: only http:// URLs can be probed (the probe talks to the server in its own container)"
    )]
    NotHttp { url: String },
    #[error("{url}: cannot resolve {authority}: {reason}")]
    Resolve {
        url: String,
        authority: String,
        reason: String,
    },
    #[error("{url}: {what}: {source}")]
    Io {
        url: String,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{url}: no answer within {timeout:?}")]
    TimedOut { url: String, timeout: Duration },
    #[error("{url}: not an HTTP answer: {line:?}")]
    NotHttpAnswer { url: String, line: String },
    #[error("{url}: answered {status}")]
    Status { url: String, status: u16 },
}

/// GETs `url` within `timeout`; Ok with the status when it is 2xx.
pub fn probe(url: &str, timeout: Duration) -> Result<u16, ProbeError> {
    let deadline = Instant::now() + timeout;
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| ProbeError::BadUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    if uri.scheme_str() != Some("http") {
        return Err(ProbeError::NotHttp {
            url: url.to_owned(),
        });
    }
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(80);
    let authority = format!("{host}:{port}");
    let addr = resolve(url, &authority)?;
    let io = |what: &'static str| {
        let url = url.to_owned();
        move |source: std::io::Error| ProbeError::Io { url, what, source }
    };
    let remaining = |url: &str| {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ProbeError::TimedOut {
                url: url.to_owned(),
                timeout,
            })
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, remaining(url)?).map_err(io("cannot connect"))?;
    stream
        .set_write_timeout(Some(remaining(url)?))
        .map_err(io("cannot set a timeout"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: jwt-validator-probe\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(io("cannot send the request"))?;

    let mut head = Vec::with_capacity(MAX_HEAD_BYTES);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < MAX_HEAD_BYTES {
        stream
            .set_read_timeout(Some(remaining(url)?))
            .map_err(io("cannot set a timeout"))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {
                return Err(ProbeError::TimedOut {
                    url: url.to_owned(),
                    timeout,
                });
            }
            Err(e) => return Err(io("cannot read the answer")(e)),
        }
    }
    let status = status_of(&head).ok_or_else(|| ProbeError::NotHttpAnswer {
        url: url.to_owned(),
        line: String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or_default())
            .trim_end()
            .to_owned(),
    })?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(ProbeError::Status {
            url: url.to_owned(),
            status,
        })
    }
}

fn resolve(url: &str, authority: &str) -> Result<SocketAddr, ProbeError> {
    let error = |reason: String| ProbeError::Resolve {
        url: url.to_owned(),
        authority: authority.to_owned(),
        reason,
    };
    authority
        .to_socket_addrs()
        .map_err(|e| error(e.to_string()))?
        .next()
        .ok_or_else(|| error("no address".to_owned()))
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The status code of an `HTTP/1.x NNN …` status line.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_ascii_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    (code.len() == 3).then_some(())?;
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            status_of(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 20\r\n"), None);
    }
}
