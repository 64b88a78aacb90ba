//! The vocabulary of a remote key set: where it is ([`RemoteLocation`], [`RemoteSource`]), which URLs
//! may be fetched ([`check_remote_url`]), and the bounds of every fetch ([`FetchSettings`]). The
//! configuration builds these; the refresh machine and every shell read them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use jwtv_verifier::KeySet;

use crate::FetchError;
use crate::document::parse_key_set;

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
    /// The set served until the source is first heard from.
    pub seed: Option<Seed>,
}

/// A key set served beside a remote source until its first successful fetch, and for as long as
/// every fetch fails before that one. Each fetched set replaces it (never merged with it): a key the
/// provider withdrew stops working once the provider has been heard. After a success, a failed
/// refresh keeps the last good *fetched* set, not the seed.
///
/// It is read exactly as a fetched document is (public keys only), so a seed is made by saving what
/// the provider publishes: `curl $JWKS_URI > seed.json`.
#[derive(Clone)]
pub struct Seed {
    body: Vec<u8>,
    set: Arc<KeySet>,
    published: usize,
}

impl Seed {
    /// Reads a JWK Set document as the provider would publish it.
    pub fn parse(body: &[u8]) -> Result<Seed, FetchError> {
        let (set, published) = parse_key_set(body)?;
        Ok(Seed {
            body: body.to_vec(),
            set: Arc::new(set),
            published,
        })
    }

    /// The set, shared: the store's slot starts with this same set, so handing it on changes nothing.
    pub fn key_set(&self) -> &Arc<KeySet> {
        &self.set
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn published(&self) -> usize {
        self.published
    }
}

impl PartialEq for Seed {
    fn eq(&self, other: &Seed) -> bool {
        self.body == other.body
    }
}

impl Eq for Seed {}

impl fmt::Debug for Seed {
    // The keys are public, but a line per key helps nobody reading a log of the configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seed")
            .field("keys", &self.set.keys().len())
            .field("published", &self.published)
            .finish()
    }
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
