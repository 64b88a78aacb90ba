//! One bounded HTTP GET for a key set or a discovery document: HTTPS through rustls (ring provider,
//! Mozilla roots compiled in, plus the CA bundle of the `fetch.ca_file` setting when set), or
//! plain HTTP for an explicitly allowed loopback URL (checked at configuration, and again for a
//! discovered `jwks_uri`). HTTPS goes through the proxy of `HTTPS_PROXY` unless `NO_PROXY` says
//! otherwise ([`super::proxy`]), in a CONNECT tunnel: TLS end to end, the proxy sees only the host and
//! port. Plain HTTP, loopback only, is never proxied.
//!
//! Bounds, all enforced here: one timeout over connect, handshake, request and the whole body; a size
//! cap checked against `Content-Length` and again while reading (reading stops past it); status 200 only,
//! so redirects are never followed (not to another scheme, not at all); one connection per fetch, closed
//! afterwards (fetches are minutes apart: a pool would only hold sockets open). The proxy's part (TCP,
//! CONNECT) runs under the same timeout, and its answer head under the same header cap.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, HOST, PROXY_AUTHORIZATION};
use http::uri::Authority;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
pub use jwtv_keyset::FetchError;
use jwtv_keyset::cache_control;
use jwtv_keyset::error::check_head;
use jwtv_keyset::{CaBundle, Fetch, FetchSettings};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::proxy::{Proxies, Route};

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
    proxies: Proxies,
    timeout: Duration,
    max_bytes: usize,
}

impl Fetcher {
    /// Fails, with one line naming the file, on a CA bundle without a usable certificate.
    pub fn new(settings: &FetchSettings, proxies: Proxies) -> anyhow::Result<Fetcher> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // Added to the Mozilla roots rather than replacing them: one configuration may name public
        // and internal identity providers side by side.
        if let Some(bundle) = &settings.ca_bundle {
            add_bundle(&mut roots, bundle)?;
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS client configuration")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Fetcher {
            tls: TlsConnector::from(Arc::new(config)),
            proxies,
            timeout: settings.timeout,
            max_bytes: settings.max_bytes,
        })
    }

    /// The proxies in use, for the start-up log line.
    pub fn proxies(&self) -> &Proxies {
        &self.proxies
    }

    /// Makes `fetch` (its URL checked by the refresh machine, `jwtv_keyset::check_remote_url`)
    /// within the timeout and the size cap.
    pub async fn get(&self, fetch: &Fetch) -> Result<Fetched, FetchError> {
        match tokio::time::timeout(self.timeout, self.get_unbounded(fetch)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn get_unbounded(&self, fetch: &Fetch) -> Result<Fetched, FetchError> {
        let uri = &fetch.url;
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
        let route = if https { self.proxies.route(uri) } else { None };
        let tcp = match &route {
            Some(proxy) => TcpStream::connect((proxy.host.as_str(), proxy.port))
                .await
                .map_err(|e| FetchError::Proxy(format!("cannot connect to the proxy: {e}")))?,
            None => TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| FetchError::Connect(e.to_string()))?,
        };
        let _ = tcp.set_nodelay(true);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = Request::builder()
            .method(fetch.method)
            .uri(path)
            .header(HOST, authority.as_str());
        for (name, value) in fetch.headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Http(e.to_string()))?;
        if !https {
            return self.exchange(TokioIo::new(tcp), request).await;
        }
        let name = ServerName::try_from(host)
            .map_err(|_| FetchError::Tls("the host is not a valid TLS server name".into()))?;
        match &route {
            Some(proxy) => {
                let tunnel = connect_tunnel(tcp, authority, port, proxy).await?;
                self.exchange_tls(tunnel, name, request).await
            }
            None => self.exchange_tls(tcp, name, request).await,
        }
    }

    async fn exchange_tls<S>(
        &self,
        io: S,
        name: ServerName<'static>,
        request: Request<Empty<Bytes>>,
    ) -> Result<Fetched, FetchError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let stream = self
            .tls
            .connect(name, io)
            .await
            .map_err(|e| FetchError::Tls(e.to_string()))?;
        self.exchange(TokioIo::new(stream), request).await
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
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        check_head(response.status().as_u16(), declared, self.max_bytes)?;
        let max_age = cache_control::max_age_of(
            response
                .headers()
                .get_all(CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
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

/// Asks the proxy on `tcp` for a tunnel to `authority` (RFC 9110 §9.3.6) and returns it once the proxy
/// answered 200. The proxy's answer head is bounded like any other.
async fn connect_tunnel(
    tcp: TcpStream,
    authority: &Authority,
    port: u16,
    proxy: &Route,
) -> Result<TokioIo<hyper::upgrade::Upgraded>, FetchError> {
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await
        .map_err(|e| FetchError::Proxy(e.to_string()))?;
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    }));
    let target = format!("{}:{port}", authority.host());
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(target.as_str())
        .header(HOST, target.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::Proxy(e.to_string()))?;
    if let Some(auth) = &proxy.authorization {
        request
            .headers_mut()
            .insert(PROXY_AUTHORIZATION, HeaderValue::clone(auth));
    }
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| FetchError::Proxy(e.to_string()))?;
    if response.status() != StatusCode::OK {
        return Err(FetchError::Proxy(format!(
            "CONNECT {target} answered {}",
            response.status().as_u16()
        )));
    }
    let tunnel = hyper::upgrade::on(response)
        .await
        .map_err(|e| FetchError::Proxy(e.to_string()))?;
    // The connection task handed the socket over with the upgrade and has ended.
    drop(driver);
    Ok(TokioIo::new(tunnel))
}

/// Adds every certificate of a PEM bundle as a trust anchor; anything unusable stops the start.
fn add_bundle(roots: &mut RootCertStore, bundle: &CaBundle) -> anyhow::Result<()> {
    let at = format!("{} {:?}", bundle.setting, bundle.path);
    let certs = CertificateDer::pem_slice_iter(&bundle.pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{at}: not a PEM file of certificates ({e})"))?;
    if certs.is_empty() {
        bail!("{at}: no certificate in the file (expected -----BEGIN CERTIFICATE----- blocks)");
    }
    for (i, cert) in certs.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|e| anyhow!("{at}: certificate {} is not usable as a CA ({e})", i + 1))?;
    }
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
