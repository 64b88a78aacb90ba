//! What both export shells (WASI 0.2 and 0.3) share: the service, configured once per instance (or
//! once for all instances, by `scripts/bake`), and the conversion of a request's parts into an
//! [`http::Request`].

use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use jwtv_config as config;
use jwtv_service::Service;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The configuration as loaded: the service (or the line saying why there is none) and the warnings
/// to print. Built once per instance, or once for all of them by `scripts/bake` ([`bake`]).
struct Configured {
    service: Result<Service, String>,
    warnings: Vec<String>,
}

static CONFIGURED: OnceLock<Configured> = OnceLock::new();

/// Set once an instance has printed its configuration's warnings or error: at its load, or at the
/// first request of a baked instance (the bake prints nothing).
static ANNOUNCED: OnceLock<()> = OnceLock::new();

/// The service of this instance. Hosts such as `wasmtime serve` and Spin create an instance per
/// request (WASI 0.2), so unless the component was baked this is per-request set-up too.
pub(crate) fn service() -> &'static Result<Service, String> {
    let configured = CONFIGURED.get_or_init(|| configure(false));
    ANNOUNCED.get_or_init(|| {
        for warning in &configured.warnings {
            eprintln!("jwt-validator: warning: {warning}");
        }
        if let Err(line) = &configured.service {
            eprintln!("jwt-validator: {line}");
        }
    });
    &configured.service
}

/// Configures the instance for a snapshot (`scripts/bake`), printing nothing: the error line, if any.
#[cfg(not(feature = "p3"))]
pub(crate) fn bake() -> Result<(), String> {
    match &CONFIGURED.get_or_init(|| configure(true)).service {
        Ok(_) => Ok(()),
        Err(line) => Err(line.clone()),
    }
}

fn configure(baking: bool) -> Configured {
    let env = |name: &str| std::env::var(name).ok();
    let read = |path: &std::path::Path| std::fs::read(path);
    let mut warnings = Vec::new();
    let names: Vec<String> = std::env::vars().map(|(name, _)| name).collect();
    let service = config::load_checked(&env, names.iter().map(String::as_str), &read)
        .map_err(|e| e.to_string())
        .and_then(|loaded| {
            warnings.clone_from(&loaded.warnings);
            let remote = loaded.remote.first().map(|s| s.configured_at.clone());
            let service = service_of(loaded)?;
            match remote.filter(|_| baking) {
                Some(at) => Err(format!(
                    "{at}: a remote key set is fetched while serving and cannot be baked; bake a \
                     JWKS file ({}) or serve the component unbaked",
                    config::table::JWKS_FILE.var()
                )),
                None => Ok(service),
            }
        })
        .map_err(|e| format!("configuration error: {e}"));
    Configured { service, warnings }
}

/// The WASI 0.2 build fetches remote key sets with outgoing wasi:http ([`crate::remote`]).
#[cfg(not(feature = "p3"))]
fn service_of(loaded: config::Loaded) -> Result<Service, String> {
    crate::remote::service_of(loaded)
}

/// The WASI 0.3 build has no outgoing fetch yet: a remote key set would never arrive, so every token
/// of that issuer would get 503 forever. Refuse at load, where the operator sees why.
#[cfg(feature = "p3")]
fn service_of(loaded: config::Loaded) -> Result<Service, String> {
    if let Some(source) = loaded.remote.first() {
        return Err(format!(
            "{}: remote key sets (jwks_uri / OIDC discovery) are not supported by the WASI 0.3 \
             build yet; use the WASI 0.2 component, or mount a JWKS file and set {}",
            source.configured_at,
            config::table::JWKS_FILE.var()
        ));
    }
    Ok(loaded.into_service())
}

/// Maps a WASI method to an [`http::Method`]: WASI 0.2 and 0.3 name the same variants in two types.
macro_rules! http_method {
    ($wasi:ident, $method:expr) => {
        match $method {
            $wasi::Get => http::Method::GET,
            $wasi::Head => http::Method::HEAD,
            $wasi::Post => http::Method::POST,
            $wasi::Put => http::Method::PUT,
            $wasi::Delete => http::Method::DELETE,
            $wasi::Connect => http::Method::CONNECT,
            $wasi::Options => http::Method::OPTIONS,
            $wasi::Trace => http::Method::TRACE,
            $wasi::Patch => http::Method::PATCH,
            $wasi::Other(other) => {
                http::Method::from_bytes(other.as_bytes()).unwrap_or(http::Method::GET)
            }
        }
    };
}
pub(crate) use http_method;

/// Answers a request from its parts (headers the `http` crate cannot represent are left out).
pub(crate) fn answer(
    service: &Service,
    method: Method,
    uri: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
) -> Response<Vec<u8>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri.unwrap_or_else(|| "/".to_owned()));
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            builder = builder.header(n, v);
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match builder.body(body) {
        Ok(request) => decide(service, &request, now),
        Err(_) => bad_request(),
    }
}

#[cfg(not(feature = "p3"))]
fn decide(service: &Service, request: &Request<Vec<u8>>, now: u64) -> Response<Vec<u8>> {
    crate::remote::handle(service, request, now)
}

#[cfg(feature = "p3")]
fn decide(service: &Service, request: &Request<Vec<u8>>, now: u64) -> Response<Vec<u8>> {
    service.handle(request, now).response
}

/// The answer's headers as the `(name, value)` list both WASI versions build their fields from.
pub(crate) fn header_list(response: &Response<Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// The configuration cannot be honoured: fail closed on every request (never `valid:true`), and say
/// why on stderr, where the operator sees it.
pub(crate) fn misconfigured() -> Response<Vec<u8>> {
    jwtv_service::shell_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_misconfigured",
        "the validator's configuration is invalid; see its log",
        true,
    )
}

fn bad_request() -> Response<Vec<u8>> {
    jwtv_service::shell_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "request could not be read",
        true,
    )
}
