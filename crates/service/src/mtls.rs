//! Certificate-bound access tokens (RFC 8705 §3): a token whose `cnf` claim names `x5t#S256`, the
//! base64url SHA-256 of a client certificate's DER, is accepted only from a request that presented
//! that certificate.
//!
//! Where the presented certificate comes from is configured per deployment ([`CertSource`]), never
//! guessed: a header that names a client certificate is only as trustworthy as the gateway that
//! overwrites it, so a header is read only when the configuration names it, and with `none` (the
//! default) every certificate-bound token is refused. The shells only move the certificate in: the
//! native server puts the DER its TLS listener verified into the request's extensions
//! ([`TlsClientCertificate`]); the proxy-wasm filter puts Envoy's digest of the downstream
//! certificate there ([`PeerCertificateDigest`]); gRPC ext_authz puts Envoy's
//! `attributes.source.certificate` there ([`ReportedCertificate`]). Every decision is here.
//!
//! No X.509 parsing: the binding is a hash of the certificate's bytes, so only the DER is needed
//! (PEM and base64 are unwrapped, nothing is interpreted). The comparison is not constant-time on
//! purpose: the thumbprint is no secret (it is in the token, and in the certificate a TLS 1.2
//! handshake sends in the clear), so its timing tells an attacker nothing.

#[cfg(feature = "dpop")]
use http::header::HeaderName;
use std::fmt;

#[cfg(feature = "dpop")]
pub use self::checks::check;

/// Envoy's header (`forward_client_cert_details`).
pub const XFCC: &str = "x-forwarded-client-cert";

/// Where the client certificate a request presented is read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CertSource {
    /// Nowhere: every certificate-bound token is refused (the default: nothing is assumed).
    #[default]
    None,
    /// The TLS session of our own listener, which verified the client certificate (mTLS with
    /// `JWT_TLS_CLIENT_CA_FILE`); in the proxy-wasm filter, Envoy's downstream TLS session.
    Tls,
    /// Envoy's `x-forwarded-client-cert`, last element, `Hash` or else `Cert`; in gRPC ext_authz,
    /// `attributes.source.certificate` when Envoy sends it (`include_peer_certificate`).
    Xfcc,
    /// A header the gateway sets from its TLS session (only in the builds that check bindings: the
    /// component's default build keeps this type to two words for its size budget).
    #[cfg(feature = "dpop")]
    Header {
        name: HeaderName,
        encoding: CertEncoding,
    },
}

/// How a header carries the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertEncoding {
    /// PEM, URL-escaped or not: nginx `$ssl_client_escaped_cert`.
    Pem,
    /// The DER in standard base64 without PEM armour, URL-escaped or not, the leaf first when a list
    /// separated by `,` follows: Traefik `passTLSClientCert` (`pem: true`), Caddy
    /// `{http.request.tls.client.certificate_der_base64}`.
    Der,
}

#[cfg(feature = "dpop")]
impl CertEncoding {
    fn as_str(self) -> &'static str {
        match self {
            CertEncoding::Pem => "pem",
            CertEncoding::Der => "der",
        }
    }
}

impl CertSource {
    /// Parses `none`, `tls`, `xfcc`, `header:NAME:pem` or `header:NAME:der` (the setting's words).
    pub fn parse(spec: &str) -> Result<CertSource, String> {
        let spec = spec.trim();
        if spec.eq_ignore_ascii_case("none") {
            return Ok(CertSource::None);
        }
        #[cfg(not(feature = "dpop"))]
        return Err(format!(
            "{spec:?} needs certificate-binding checks, which this build leaves out (the component's dpop feature): use none"
        ));
        #[cfg(feature = "dpop")]
        CertSource::parse_source(spec)
    }

    #[cfg(feature = "dpop")]
    fn parse_source(spec: &str) -> Result<CertSource, String> {
        match spec.to_ascii_lowercase().as_str() {
            "none" => return Ok(CertSource::None),
            "tls" => return Ok(CertSource::Tls),
            "xfcc" => return Ok(CertSource::Xfcc),
            _ => {}
        }
        let usage = "use none, tls, xfcc, header:NAME:pem or header:NAME:der";
        let Some(rest) = spec
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("header:"))
            .and_then(|_| spec.get(7..))
        else {
            return Err(format!(
                "{spec:?} is not a client certificate source: {usage}"
            ));
        };
        let Some((name, encoding)) = rest.rsplit_once(':') else {
            return Err(format!(
                "{spec:?} names no encoding: {usage} (pem for nginx, der for Traefik and Caddy)"
            ));
        };
        let encoding = match encoding.trim().to_ascii_lowercase().as_str() {
            "pem" => CertEncoding::Pem,
            "der" => CertEncoding::Der,
            other => {
                return Err(format!(
                    "{other:?} is not a certificate encoding: use pem or der"
                ));
            }
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{name:?} is not a valid header name"))?;
        // Headers a client always controls, or that carry the token itself.
        if ["authorization", "cookie", "host", "dpop"].contains(&name.as_str()) {
            return Err(format!(
                "{name:?} cannot carry a client certificate: name the header your gateway sets"
            ));
        }
        Ok(CertSource::Header { name, encoding })
    }

    /// What the source means for a bound token, in a sentence for start-up summaries.
    pub fn description(&self) -> String {
        match self {
            CertSource::None => {
                "refused: no client certificate is read (client certificate source none)".to_owned()
            }
            CertSource::Tls => {
                "checked against the certificate of the client's TLS session with this listener (tls)"
                    .to_owned()
            }
            CertSource::Xfcc => "checked against the certificate Envoy reports: x-forwarded-client-cert, or source.certificate over gRPC (xfcc); Envoy must overwrite the header".to_owned(),
            #[cfg(feature = "dpop")]
            CertSource::Header { name, encoding } => format!(
                "checked against the certificate in header {name} ({}); the gateway must overwrite it",
                match encoding {
                    CertEncoding::Pem => "PEM, URL-escaped",
                    CertEncoding::Der => "base64 DER, URL-escaped",
                }
            ),
        }
    }
}

impl fmt::Display for CertSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertSource::None => f.write_str("none"),
            CertSource::Tls => f.write_str("tls"),
            CertSource::Xfcc => f.write_str("xfcc"),
            #[cfg(feature = "dpop")]
            CertSource::Header { name, encoding } => {
                write!(f, "header:{name}:{}", encoding.as_str())
            }
        }
    }
}

/// The DER of the client certificate our TLS listener verified, set by the native shell in the
/// request's extensions (shared by the connection's requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClientCertificate(pub std::sync::Arc<[u8]>);

/// The hex SHA-256 of the client certificate of the TLS session Envoy terminated, which the
/// proxy-wasm filter reads from Envoy's `connection.sha256_peer_certificate_digest` (no DER there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificateDigest(pub String);

/// The client certificate a gateway reported outside the headers: Envoy's gRPC
/// `CheckRequest.attributes.source.certificate` (URL-encoded PEM), set by the gRPC shell in the
/// request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedCertificate(pub String);

/// The checks, in the builds that check bindings (the `dpop` feature: the component's default build
/// leaves every binding out for its size budget, and refuses every bound token).
#[cfg(feature = "dpop")]
mod checks {
    use super::*;
    use crate::request::Original;
    use base64::Engine as _;
    use base64::alphabet;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
    use http::HeaderMap;
    use jwtv_verifier::{Code, Rejection};
    use sha2::{Digest as _, Sha256};
    use std::borrow::Cow;

    /// The binding rule, for a token whose `cnf.x5t#S256` is `thumbprint` (`crate::binding` read it):
    /// `Ok` when it equals the SHA-256 of the certificate `source` finds in the request; otherwise a 401
    /// `invalid_token_binding` whose description says why (no certificate, another certificate, an
    /// unreadable one).
    pub fn check(
        source: &CertSource,
        thumbprint: &str,
        request: &Original<'_>,
    ) -> Result<(), Rejection> {
        let expected = URL_SAFE_NO_PAD
            .decode(thumbprint)
            .ok()
            .filter(|d| d.len() == 32)
            .ok_or_else(|| {
                refuse("the token's cnf.x5t#S256 is not the base64url of a SHA-256 digest")
            })?;
        let presented = match presented(source, request)? {
            Some(digest) => digest,
            None if *source == CertSource::None => {
                return Err(refuse(
                    "the token is bound to a client certificate (cnf.x5t#S256) and this deployment reads none (client certificate source: none)",
                ));
            }
            None => {
                return Err(refuse(
                    "the token is bound to a client certificate (cnf.x5t#S256) and the request presented none",
                ));
            }
        };
        if presented[..] == expected[..] {
            Ok(())
        } else {
            Err(refuse(
                "the token is bound to a client certificate (cnf.x5t#S256) other than the one presented",
            ))
        }
    }

    fn refuse(description: impl Into<Cow<'static, str>>) -> Rejection {
        Rejection::new(Code::InvalidTokenBinding, description)
    }

    /// The SHA-256 of the certificate the request presented, per `source`; `None` when it presented none.
    fn presented(source: &CertSource, req: &Original<'_>) -> Result<Option<[u8; 32]>, Rejection> {
        match source {
            CertSource::None => Ok(None),
            CertSource::Tls => {
                if let Some(der) = req.extensions.get::<TlsClientCertificate>() {
                    return Ok(Some(sha256(&der.0)));
                }
                match req.extensions.get::<PeerCertificateDigest>() {
                    None => Ok(None),
                    Some(digest) => hex32(digest.0.trim()).map(Some).ok_or_else(|| {
                        refuse("Envoy's peer certificate digest is not a hex SHA-256 digest")
                    }),
                }
            }
            CertSource::Xfcc => {
                if let Some(reported) = req.extensions.get::<ReportedCertificate>()
                    && !reported.0.is_empty()
                {
                    return pem_cert(&reported.0)
                        .map(|der| Some(sha256(&der)))
                        .map_err(|e| refuse(format!("Envoy's source.certificate {e}")));
                }
                match single(req.headers, XFCC)? {
                    None => Ok(None),
                    Some(value) => xfcc(value)
                        .map(Some)
                        .map_err(|e| refuse(format!("the {XFCC} header {e}"))),
                }
            }
            CertSource::Header { name, encoding } => {
                let Some(value) = single(req.headers, name.as_str())? else {
                    return Ok(None);
                };
                let der = match encoding {
                    CertEncoding::Pem => pem_cert(value),
                    CertEncoding::Der => der_cert(value),
                };
                der.map(|der| Some(sha256(&der)))
                    .map_err(|e| refuse(format!("the {name} header {e}")))
            }
        }
    }

    /// The one value of `name`: absent or empty is no certificate; two values are refused, since a
    /// gateway that appends rather than overwrites leaves the client's beside its own.
    fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Rejection> {
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(refuse(format!(
                "the {name} header comes more than once; the gateway must overwrite it"
            )));
        }
        let value = value
            .to_str()
            .map_err(|_| refuse(format!("the {name} header is not ASCII text")))?
            .trim();
        Ok((!value.is_empty()).then_some(value))
    }

    fn sha256(der: &[u8]) -> [u8; 32] {
        Sha256::digest(der).into()
    }

    /// The leaf of URL-escaped (or plain) PEM: the base64 between the first `BEGIN CERTIFICATE` line and
    /// its `END` line, whatever chain follows. Unwrapping armour is all PEM asks here (RFC 7468 §2: the
    /// label, then base64 in lines); a dedicated PEM crate cost the component ~10 KB for the same.
    fn pem_cert(value: &str) -> Result<Vec<u8>, String> {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let pem = unescape(value)?;
        let Some((_, rest)) = pem.split_once(BEGIN) else {
            return Err("is not a PEM certificate: no BEGIN CERTIFICATE line".to_owned());
        };
        let Some((body, _)) = rest.split_once(END) else {
            return Err("is not a PEM certificate: no END CERTIFICATE line".to_owned());
        };
        let mut base64 = Vec::with_capacity(body.len());
        base64.extend(body.bytes().filter(|b| !b.is_ascii_whitespace()));
        let der = STANDARD_ANY_PADDING
            .decode(base64)
            .map_err(|_| "is not a PEM certificate: its body is not base64".to_owned())?;
        non_empty(der)
    }

    /// Standard base64 (`+/`), padded or not: the same engine code as the verifier's base64url (one
    /// decoder in the component), with the standard alphabet's table. Decoded in place, with no
    /// mapped copy: a copy per request was most of the check's cost.
    const STANDARD_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );

    /// The leaf of URL-escaped (or plain) base64 DER, `,`-separated when a chain follows.
    fn der_cert(value: &str) -> Result<Vec<u8>, String> {
        let text = unescape(value)?;
        let leaf = text.split(',').next().unwrap_or("").trim();
        // Padding as the gateway wrote it: Go's encoders pad, others may not.
        let der = STANDARD_ANY_PADDING
            .decode(leaf)
            .map_err(|_| "is not the base64 of a certificate".to_owned())?;
        non_empty(der)
    }

    fn non_empty(der: Vec<u8>) -> Result<Vec<u8>, String> {
        if der.is_empty() {
            Err("holds an empty certificate".to_owned())
        } else {
            Ok(der)
        }
    }

    /// Borrowed when nothing is escaped (Traefik's and Caddy's base64).
    fn unescape(value: &str) -> Result<Cow<'_, str>, String> {
        // A header value is already text; the decoder would scan it byte by byte to find no escape.
        if !value.contains('%') {
            return Ok(Cow::Borrowed(value));
        }
        percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| "is not URL-escaped UTF-8".to_owned())
    }

    /// The certificate digest of an `x-forwarded-client-cert` value: its LAST element, because each
    /// Envoy that forwards (`APPEND_FORWARD`) appends the client it saw at the end, so the last element
    /// is the one our own gateway wrote, and any before it came from further away (with `SANITIZE_SET`
    /// there is only one). Within it `Hash` (hex SHA-256 of the DER) or, without it, `Cert`
    /// (URL-encoded PEM).
    fn xfcc(value: &str) -> Result<[u8; 32], String> {
        let elements = split_quoted(value, b',');
        let last = elements.last().copied().unwrap_or("");
        let mut hash = None;
        let mut cert = None;
        for pair in split_quoted(last, b';') {
            let Some((key, v)) = pair.split_once('=') else {
                return Err(format!("has a pair without '=' ({:?})", truncate(pair)));
            };
            let v = unquote(v.trim());
            if key.trim().eq_ignore_ascii_case("hash") {
                hash = Some(v);
            } else if key.trim().eq_ignore_ascii_case("cert") {
                cert = Some(v);
            }
        }
        match (hash, cert) {
        (Some(hash), _) => {
            hex32(&hash).ok_or_else(|| "has a Hash that is not a hex SHA-256 digest".to_owned())
        }
        (None, Some(cert)) => pem_cert(&cert).map(|der| sha256(&der)),
        (None, None) => Err("names no Hash or Cert in its last element (set Envoy's forward_client_cert_details and set_current_client_cert_details: cert: true)".to_owned()),
    }
    }

    /// Splits at `sep` outside double quotes (XFCC quotes values that hold `,` `;` or `=`).
    fn split_quoted(s: &str, sep: u8) -> Vec<&str> {
        let mut out = Vec::new();
        let (mut start, mut quoted, mut escaped) = (0, false, false);
        for (i, b) in s.bytes().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                out.push(s[start..i].trim());
                start = i + 1;
            }
        }
        out.push(s[start..].trim());
        out
    }

    fn unquote(v: &str) -> String {
        match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) => inner.replace("\\\"", "\""),
            None => v.to_owned(),
        }
    }

    fn hex32(s: &str) -> Option<[u8; 32]> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return None;
        }
        let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = (nibble(s[2 * i])? << 4) | nibble(s[2 * i + 1])?;
        }
        Some(out)
    }

    fn truncate(s: &str) -> String {
        s.chars().take(40).collect()
    }
}
