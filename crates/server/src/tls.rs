//! TLS on the listener: the rustls server configuration built from the configured PEM files
//! (`jwtv_config::TlsFiles`). rustls with the ring provider (already in the graph for key-set
//! fetches), TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1`; with a client CA, every client must
//! present a certificate that CA signed (mTLS: how a gateway proves it is the gateway).
//!
//! Built with each configuration, so a reload that read a rotated certificate serves it to new
//! connections while the open ones keep theirs.

use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use jwtv_config::{PemFile, TlsFiles};
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// The server configuration of `files`; an unusable file is refused naming its setting and path.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&files.key.pem).map_err(|e| {
        anyhow!(
            "{}: no usable private key in the file ({e}; expected a PEM PRIVATE KEY block)",
            at(&files.key)
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS server configuration")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for (i, cert) in certificates(ca)?.into_iter().enumerate() {
                roots.add(cert).map_err(|e| {
                    anyhow!(
                        "{}: certificate {} is not usable as a CA ({e})",
                        at(ca),
                        i + 1
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| anyhow!("{}: {e}", at(ca)))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        anyhow!(
            "{} and {}: the certificate and key do not make a usable pair ({e})",
            at(&files.cert),
            at(&files.key)
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn certificates(file: &PemFile) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(&file.pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: not a PEM file of certificates ({e})", at(file)))?;
    if certs.is_empty() {
        bail!(
            "{}: no certificate in the file (expected -----BEGIN CERTIFICATE----- blocks)",
            at(file)
        );
    }
    Ok(certs)
}

fn at(file: &PemFile) -> String {
    format!("{} {:?}", file.setting, file.path)
}
