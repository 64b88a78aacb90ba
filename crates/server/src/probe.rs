//! `jwt-validator probe URL`: one bounded HTTP GET whose status becomes the exit status, for container
//! HEALTHCHECKs and Kubernetes exec probes in an image that has no curl (the native image is the
//! static binary alone, `FROM scratch`).
//!
//! Blocking std I/O rather than the tokio runtime: a probe talks to the server in its own container
//! over loopback, once, and must not need TLS roots or threads to do so. Every step (resolve,
//! connect, handshake, write, read) is bounded by one deadline.
//!
//! When the listener speaks TLS (its certificate file set in the probe's environment, as in the
//! server's container) the probe does too, for `http://` and `https://` URLs alike, so the image's
//! HEALTHCHECK line stays the same: it trusts exactly the configured certificate (the same leaf,
//! whatever name the URL uses: loopback is not the name in the certificate), and under mTLS
//! (a client CA file set) presents that certificate and key as its own, so the listener's
//! certificate must then be one the client CA signed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Uri;
use jwtv_config::{TlsFiles, table};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

/// The status line is all a probe reads; a longer answer is cut here.
const MAX_HEAD_BYTES: usize = 1024;

/// Why a probe failed. Each variant is one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{url}: not a URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "{url}: only http:// and https:// URLs can be probed (the probe talks to the server in its own container)"
    )]
    NotHttp { url: String },
    #[error(
        "{url}: https needs {} and {}, the listener's certificate the probe expects",
        table::TLS_CERT_FILE.var(),
        table::TLS_KEY_FILE.var()
    )]
    NoCertificate { url: String },
    #[error("{url}: TLS: {reason}")]
    Tls { url: String, reason: String },
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

/// GETs `url` within `timeout`, over TLS when `tls` (the listener's files) is given; Ok with the status
/// when it is 2xx.
pub fn probe(url: &str, timeout: Duration, tls: Option<&TlsFiles>) -> Result<u16, ProbeError> {
    let deadline = Instant::now() + timeout;
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| ProbeError::BadUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let (https, default_port) = match uri.scheme_str() {
        Some("http") => (false, 80),
        Some("https") => (true, 443),
        _ => {
            return Err(ProbeError::NotHttp {
                url: url.to_owned(),
            });
        }
    };
    let tls = match tls {
        Some(files) => Some(client_config(files).map_err(|reason| ProbeError::Tls {
            url: url.to_owned(),
            reason,
        })?),
        None if https => {
            return Err(ProbeError::NoCertificate {
                url: url.to_owned(),
            });
        }
        None => None,
    };
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(default_port);
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
    let tcp = TcpStream::connect_timeout(&addr, remaining(url)?).map_err(io("cannot connect"))?;
    tcp.set_write_timeout(Some(remaining(url)?))
        .map_err(io("cannot set a timeout"))?;
    // The handshake happens on the first write and read, under the same timeouts.
    tcp.set_read_timeout(Some(remaining(url)?))
        .map_err(io("cannot set a timeout"))?;
    let mut stream: Box<dyn ReadWrite> = match tls {
        None => Box::new(tcp.try_clone().map_err(io("cannot use the socket"))?),
        Some(config) => {
            // Any name: the verifier compares the certificate itself, not a name.
            let name = ServerName::IpAddress(addr.ip().into());
            let connection =
                rustls::ClientConnection::new(config, name).map_err(|e| ProbeError::Tls {
                    url: url.to_owned(),
                    reason: e.to_string(),
                })?;
            Box::new(rustls::StreamOwned::new(
                connection,
                tcp.try_clone().map_err(io("cannot use the socket"))?,
            ))
        }
    };
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
        tcp.set_read_timeout(Some(remaining(url)?))
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

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A client that accepts exactly the listener's certificate and, under mTLS, presents it.
fn client_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(&files.cert.pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} {:?}: {e}", files.cert.setting, files.cert.path))?;
    let leaf = chain.first().cloned().ok_or_else(|| {
        format!(
            "{} {:?}: no certificate in the file",
            files.cert.setting, files.cert.path
        )
    })?;
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { leaf, provider }));
    let mut config = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(_) => {
            let key = PrivateKeyDer::from_pem_slice(&files.key.pem)
                .map_err(|e| format!("{} {:?}: {e}", files.key.setting, files.key.path))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts the one certificate the listener was configured with; signatures are still checked, so
/// only the holder of its key passes.
#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate is not {}'s",
                table::TLS_CERT_FILE.var()
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
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
