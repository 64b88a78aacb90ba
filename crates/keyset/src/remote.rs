//! The vocabulary of a remote key set: where it is ([`RemoteLocation`], [`RemoteSource`]), which URLs
//! may be fetched ([`check_remote_url`]), and the bounds of every fetch ([`FetchSettings`]). The
//! configuration builds these; the refresh machine and every shell read them.

use std::time::Duration;

use http::Uri;

/// Where a remote issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteLocation {
    /// A JWK Set URL.
    JwksUri(String),
    /// OIDC discovery: `url` is `{issuer}/.well-known/openid-configuration`; the document's `issuer`
    /// must equal `issuer` exactly, and its `jwks_uri` is then fetched.
    Discovery { issuer: String, url: String },
}

impl RemoteLocation {
    /// The first URL fetched.
    pub fn url(&self) -> &str {
        match self {
            RemoteLocation::JwksUri(url) => url,
            RemoteLocation::Discovery { url, .. } => url,
        }
    }
}

/// One issuer whose key set is fetched rather than configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSource {
    /// Index of the issuer in the verifier's policy order.
    pub issuer: usize,
    pub location: RemoteLocation,
    /// Where it was configured (its variable, or `FILE: issuers[0].jwks_uri`…), for logs.
    pub configured_at: String,
}

/// The bounds of every remote key-set fetch (`design/security.md`, "Remote key sets").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// Plain `http://` is accepted only with this set, and only for a loopback host (tests, sidecars).
    pub allow_http_loopback: bool,
    /// Connection, TLS handshake, request and whole response.
    pub timeout: Duration,
    /// Largest key-set or discovery document read; reading stops past it.
    pub max_bytes: usize,
    /// `Cache-Control: max-age` is clamped to `[min_ttl, max_ttl]`.
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// Time to live of a key set served without `max-age`.
    pub default_ttl: Duration,
    /// At most one refetch per this interval for tokens naming a `kid` the set does not hold.
    pub refetch_cooldown: Duration,
    /// The longest a request with an unknown `kid` waits on the refetch it caused (or found under way);
    /// past it the request is answered from the set in hand and the fetch finishes in the background.
    /// Independent of `timeout`, so a hanging identity provider cannot hold clients for a whole fetch.
    pub refetch_wait: Duration,
    /// Trust anchors added to the compiled-in Mozilla roots (an internal identity provider's CA).
    pub ca_bundle: Option<CaBundle>,
}

/// A PEM file of CA certificates, read with the configuration. It is only read there, not parsed:
/// certificates are the TLS shell's business, and it names [`CaBundle::setting`] and
/// [`CaBundle::path`] when it refuses one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle {
    /// The variable or file field that named it.
    pub setting: String,
    /// The path as configured.
    pub path: String,
    pub pem: Vec<u8>,
}

impl Default for FetchSettings {
    fn default() -> FetchSettings {
        FetchSettings {
            allow_http_loopback: false,
            timeout: Duration::from_secs(5),
            max_bytes: 256 * 1024,
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(600),
            refetch_cooldown: Duration::from_secs(30),
            refetch_wait: DEFAULT_REFETCH_WAIT,
            ca_bundle: None,
        }
    }
}

/// A provider that answers at all answers a small key set well within this; longer waits only hold
/// clients while it is in trouble.
pub const DEFAULT_REFETCH_WAIT: Duration = Duration::from_secs(1);
pub const MAX_REFETCH_WAIT_MS: u64 = 10_000;

/// Checks a key-set or discovery URL: `https://host[:port]/path`, or `http://` only when
/// `allow_http_loopback` is set and the host is a loopback address (127.0.0.0/8, ::1, `localhost`).
/// A URL comes from configuration or from a discovery document, never from a token.
pub fn check_remote_url(url: &str, allow_http_loopback: bool) -> Result<Uri, String> {
    let shown: String = url.chars().take(200).collect();
    if url.len() > 2048 {
        return Err(format!("{shown:?}…: URL longer than 2048 bytes"));
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("{shown:?} is not a URL (expected https://host/path)"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!(
            "{shown:?} is not an absolute URL (expected https://host/path)"
        ));
    };
    // Credentials in the URL would end up in logs and metric labels.
    if authority.as_str().contains('@') {
        return Err(format!(
            "{shown:?}: user information (user@host) is not accepted in a key-set URL"
        ));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(format!("{shown:?} names no host"));
    }
    match scheme {
        "https" => Ok(uri),
        "http" if !allow_http_loopback => Err(format!(
            "{shown:?}: plain http is refused (key sets must come over https); for a loopback test \
             server, allow it explicitly (JWT_ALLOW_HTTP_LOOPBACK=true, or allow_http_loopback = true \
             in [fetch])"
        )),
        "http" if is_loopback_host(host) => Ok(uri),
        "http" => Err(format!(
            "{shown:?}: plain http is allowed only for a loopback host (127.0.0.1, ::1, localhost); \
             use https"
        )),
        other => Err(format!(
            "{shown:?}: scheme {other:?} is not supported; use https"
        )),
    }
}

/// 127.0.0.0/8, ::1 and `localhost`, written literally: a name that merely resolves to a loopback
/// address today is not trusted, since what it resolves to can change.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The OIDC discovery URL of an issuer (OpenID Connect Discovery 1.0 §4: the issuer without a trailing
/// slash, followed by `/.well-known/openid-configuration`).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}
