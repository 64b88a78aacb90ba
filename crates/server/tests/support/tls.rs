//! TLS for the suites: a CA made at every run (rcgen, no key material committed), certificates it
//! issues for the server (127.0.0.1) and for clients, and a tokio-rustls client that speaks HTTP/1.1
//! or HTTP/2 (by ALPN) to the server under test.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::h2::H2;
use super::{IO_TIMEOUT, Response, parse_response};

pub struct Ca {
    pub pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA");
        Ca {
            pem: issuer.pem(),
            issuer,
        }
    }

    /// A server certificate for 127.0.0.1 and localhost, `name` as its common name (to tell two apart).
    pub fn server(&self, name: &str) -> Issued {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        params.subject_alt_names = vec![
            SanType::IpAddress([127, 0, 0, 1].into()),
            // For a gateway that picks its TLS policy by server name (Caddy): see `get_named`.
            SanType::DnsName("localhost".try_into().expect("a DNS name")),
        ];
        params.distinguished_name.push(DnType::CommonName, name);
        self.issue(params)
    }

    /// A client certificate (for mTLS).
    pub fn client(&self, name: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Issued {
    /// The certificate's DER.
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .expect("certificate PEM")
            .to_vec()
    }

    /// RFC 8705 `x5t#S256`: the base64url SHA-256 of the DER, what a bound token's `cnf` names.
    pub fn thumbprint(&self) -> String {
        super::jwt::b64(ring::digest::digest(&ring::digest::SHA256, &self.der()).as_ref())
    }

    /// The hex SHA-256 of the DER (Envoy's XFCC `Hash`).
    pub fn sha256_hex(&self) -> String {
        ring::digest::digest(&ring::digest::SHA256, &self.der())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A TLS client trusting `ca_pem`, presenting `client` when given, offering `alpn`.
pub fn connector(ca_pem: &str, client: Option<&Issued>, alpn: &[&[u8]]) -> TlsConnector {
    connector_with_versions(ca_pem, client, alpn, rustls::DEFAULT_VERSIONS)
}

pub fn connector_with_versions(
    ca_pem: &str,
    client: Option<&Issued>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(issued) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client certificate"),
                PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("client key"),
            )
            .expect("client auth"),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// Connects and completes the handshake (a refused client certificate surfaces on the first read
/// under TLS 1.3, so callers exchange a request before concluding).
pub async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    connect_as(connector, addr, ServerName::IpAddress(addr.ip().into())).await
}

async fn connect_as(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: ServerName<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tokio::time::timeout(IO_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))?
}

/// One HTTP/1.1 GET over a new TLS connection; the answer, or what failed.
pub async fn get(
    connector: &TlsConnector,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let mut stream = connect(connector, addr).await.map_err(|e| e.to_string())?;
    request_on(&mut stream, path, headers, true).await
}

/// [`get`] to `addr` as the server `name` (sent as SNI and as `Host`), for a gateway that chooses
/// its TLS policy, and whether to ask for a client certificate, by server name: Caddy. A client of an
/// IP address sends no server name.
pub async fn get_named(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let mut stream = connect_as(connector, addr, server_name)
        .await
        .map_err(|e| e.to_string())?;
    request_as(&mut stream, name, path, headers, true).await
}

/// One HTTP/1.1 GET on an open TLS connection (kept alive unless `close`).
pub async fn request_on(
    stream: &mut TlsStream<TcpStream>,
    path: &str,
    headers: &[(&str, &str)],
    close: bool,
) -> Result<Response, String> {
    request_as(stream, "127.0.0.1", path, headers, close).await
}

async fn request_as(
    stream: &mut TlsStream<TcpStream>,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    close: bool,
) -> Result<Response, String> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = super::find(&raw, b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            // A proxy may relay an answer chunked (Caddy's forward_auth does): then the body ends
            // with the last chunk, not after a length.
            let chunked = text
                .lines()
                .filter_map(|l| l.strip_prefix("transfer-encoding:"))
                .any(|v| v.contains("chunked"));
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let body = &raw[end + 4..];
            let complete = match chunked {
                true => body.starts_with(b"0\r\n\r\n") || body.ends_with(b"\r\n0\r\n\r\n"),
                false => body.len() >= length,
            };
            if complete {
                return parse_response(&raw);
            }
        }
        let n = tokio::time::timeout(IO_TIMEOUT, stream.read(&mut buf))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "closed before an answer ({} bytes read)",
                raw.len()
            ));
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// The common name of the certificate the server presented on `stream`.
pub fn peer_common_name(stream: &TlsStream<TcpStream>) -> Option<String> {
    let cert = stream.get_ref().1.peer_certificates()?.first()?.clone();
    // The CN is the last PrintableString/UTF8String in the subject; rcgen writes it as UTF8String.
    let der = cert.as_ref();
    let marker = [0x06, 0x03, 0x55, 0x04, 0x03]; // OID 2.5.4.3 (commonName)
    let mut at = None;
    for i in 0..der.len().saturating_sub(marker.len()) {
        if der[i..i + marker.len()] == marker {
            at = Some(i + marker.len());
        }
    }
    let at = at?;
    let len = *der.get(at + 1)? as usize;
    String::from_utf8(der.get(at + 2..at + 2 + len)?.to_vec()).ok()
}

/// HTTP/2 over TLS (ALPN `h2`).
pub fn h2(rt: Runtime, connector: &TlsConnector, addr: SocketAddr) -> H2 {
    let stream = rt
        .block_on(connect(connector, addr))
        .expect("TLS handshake");
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "the server did not choose h2"
    );
    H2::over(rt, stream)
}
