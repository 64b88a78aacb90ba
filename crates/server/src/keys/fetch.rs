//! One bounded HTTP GET for a key set or a discovery document: HTTPS through rustls (ring provider,
//! Mozilla roots compiled in), or plain HTTP for an explicitly allowed loopback URL (checked at
//! configuration, and again for a discovered `jwks_uri`).
//!
//! Bounds, all enforced here: one timeout over connect, handshake, request and the whole body; a size
//! cap checked against `Content-Length` and again while reading (reading stops past it); status 200 only,
//! so redirects are never followed (not to another scheme, not at all); one connection per fetch, closed
//! afterwards (fetches are minutes apart: a pool would only hold sockets open).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, HOST, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Why a fetch failed. `kind` is the metric label; the text is for logs and never holds the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    Timeout,
    Connect(String),
    Tls(String),
    /// The peer does not speak HTTP/1.1 correctly.
    Http(String),
    Status(u16),
    TooLarge(usize),
    /// The body is not a usable document (not JSON, not a key set, a key set we cannot read).
    Invalid(String),
    /// The discovery document is refused (wrong `issuer`, missing or unacceptable `jwks_uri`).
    Discovery(String),
    /// A key set without a single key we can verify with.
    NoUsableKeys(String),
}

impl FetchError {
    /// Every kind, in metric order.
    pub const KINDS: [&'static str; 9] = [
        "timeout",
        "connect",
        "tls",
        "http",
        "status",
        "too_large",
        "invalid",
        "discovery",
        "no_usable_keys",
    ];

    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    pub fn kind_index(&self) -> usize {
        match self {
            FetchError::Timeout => 0,
            FetchError::Connect(_) => 1,
            FetchError::Tls(_) => 2,
            FetchError::Http(_) => 3,
            FetchError::Status(_) => 4,
            FetchError::TooLarge(_) => 5,
            FetchError::Invalid(_) => 6,
            FetchError::Discovery(_) => 7,
            FetchError::NoUsableKeys(_) => 8,
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Timeout => f.write_str("timed out"),
            FetchError::Connect(e) => write!(f, "cannot connect: {e}"),
            FetchError::Tls(e) => write!(f, "TLS: {e}"),
            FetchError::Http(e) => write!(f, "HTTP: {e}"),
            FetchError::Status(code) if (300..400).contains(code) => {
                write!(f, "status {code} (redirects are not followed)")
            }
            FetchError::Status(code) => write!(f, "status {code} (expected 200)"),
            FetchError::TooLarge(max) => write!(f, "response larger than {max} bytes"),
            FetchError::Invalid(e) => write!(f, "unusable document: {e}"),
            FetchError::Discovery(e) => write!(f, "discovery refused: {e}"),
            FetchError::NoUsableKeys(e) => write!(f, "no usable key: {e}"),
        }
    }
}

/// A successful GET.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, in seconds (0 for `no-cache` / `no-store`).
    pub max_age: Option<u64>,
}

/// The HTTP client of the key sets, built once.
pub struct Fetcher {
    tls: TlsConnector,
    timeout: Duration,
    max_bytes: usize,
}

impl Fetcher {
    pub fn new(timeout: Duration, max_bytes: usize) -> anyhow::Result<Fetcher> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS client configuration")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Fetcher {
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
            max_bytes,
        })
    }

    /// GETs `uri` within the timeout and the size cap. The URL was checked by the caller
    /// (`jwtv_service::config::check_remote_url`).
    pub async fn get(&self, uri: &Uri) -> Result<Fetched, FetchError> {
        match tokio::time::timeout(self.timeout, self.get_unbounded(uri)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn get_unbounded(&self, uri: &Uri) -> Result<Fetched, FetchError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(FetchError::Connect("not an http(s) URL".into())),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| FetchError::Connect("the URL names no host".into()))?;
        // `[::1]` in a URL, `::1` for the resolver and for TLS.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| FetchError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let request = Request::get(path)
            .header(HOST, authority.as_str())
            .header(ACCEPT, "application/json, application/jwk-set+json")
            .header(
                USER_AGENT,
                concat!("jwt-validator/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Http(e.to_string()))?;
        if https {
            let name = ServerName::try_from(host)
                .map_err(|_| FetchError::Tls("the host is not a valid TLS server name".into()))?;
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| FetchError::Tls(e.to_string()))?;
            self.exchange(TokioIo::new(stream), request).await
        } else {
            self.exchange(TokioIo::new(tcp), request).await
        }
    }

    async fn exchange<T>(
        &self,
        io: T,
        request: Request<Empty<Bytes>>,
    ) -> Result<Fetched, FetchError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
            // Bounds the response head a hostile server can make us buffer.
            .max_buf_size(64 * 1024)
            .handshake::<_, Empty<Bytes>>(io)
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
        // The connection is driven by its own task, aborted when this fetch ends whichever way (the
        // timeout above drops this future), so no socket outlives its fetch.
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_bytes as u64) {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let max_age = response
            .headers()
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(max_age);
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| FetchError::Http(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > self.max_bytes {
                    return Err(FetchError::TooLarge(self.max_bytes));
                }
                bytes.extend_from_slice(&data);
            }
        }
        drop(driver);
        Ok(Fetched {
            body: bytes,
            max_age,
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `max-age=N` of one Cache-Control value; `no-store` and `no-cache` count as 0 (the shortest TTL the
/// configuration allows, rather than refetching on every token).
fn max_age(value: &str) -> Option<u64> {
    let mut found = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(0);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            found = n.trim_matches('"').parse::<u64>().ok();
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(max_age("public, max-age=3600"), Some(3600));
        assert_eq!(max_age("Max-Age=\"60\", must-revalidate"), Some(60));
        assert_eq!(max_age("no-cache, max-age=600"), Some(0));
        assert_eq!(max_age("private"), None);
        assert_eq!(max_age("max-age=-1"), None);
    }

    #[test]
    fn error_kinds_are_stable_labels() {
        assert_eq!(FetchError::TooLarge(1).kind(), "too_large");
        assert_eq!(FetchError::Status(302).kind(), "status");
        assert!(FetchError::Status(302).to_string().contains("redirects"));
        for (i, kind) in FetchError::KINDS.iter().enumerate() {
            assert!(kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(FetchError::KINDS.iter().position(|k| k == kind), Some(i));
        }
    }
}
