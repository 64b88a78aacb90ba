//! What both export shells (WASI 0.2 and 0.3) share: the one static of an instance (its validator,
//! configured once per instance, or once for all instances by `scripts/bake`), and the conversion of
//! a request's parts into an [`http::Request`]. A request goes handler → [`Validator`] (remote key
//! fetches due, then the service) → response.

use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use jwtv_config as config;
use jwtv_service::Service;
#[cfg(feature = "dpop")]
use jwtv_service::replay::Seen;
#[cfg(feature = "dpop")]
use std::sync::Mutex;
use std::sync::{Once, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::remote::maybe_async;

/// The instance's one piece of state: the configuration as loaded (what answers requests, or the
/// line saying why nothing can) and the warnings to print. Built once per instance, or once for all
/// of them by `scripts/bake` ([`bake`]).
struct Instance {
    validator: Result<Validator, String>,
    warnings: Vec<String>,
    /// Passed once the instance has printed its warnings or error: at its load, or at the first
    /// request of a baked instance (the bake prints nothing).
    announced: Once,
}

static INSTANCE: OnceLock<Instance> = OnceLock::new();

/// What answers a request: the service, and the remote key sources it reads.
pub(crate) struct Validator {
    service: Service,
    /// The DPoP proofs this instance let through: per instance, so a proof replayed to another
    /// instance is not seen (docs/dpop.md).
    #[cfg(feature = "dpop")]
    replay: Mutex<Seen>,
    remote: Option<crate::remote::RemoteKeys>,
}

impl Validator {
    pub(crate) fn service(&self) -> &Service {
        &self.service
    }

    maybe_async! {
        /// The answer to `request`: the service's, with the remote sources' fetches it needed; an
        /// allow resting on a DPoP proof stands once the proof's first use is recorded.
        async fn decide(&self, request: &Request<Vec<u8>>, now: u64) -> Response<Vec<u8>> {
            let handled = match &self.remote {
                Some(remote) => crate::remote::wait!(remote.handle(&self.service, request, now)),
                None => self.service.handle(request, now),
            };
            // Without the feature no allow waits on a proof (a bound token is refused), and were one
            // to, its answer is the fail-closed 503.
            #[cfg(feature = "dpop")]
            if let Some(pending) = &handled.replay {
                let mut seen = self.replay.lock().unwrap_or_else(|p| p.into_inner());
                let first_use = seen.first_use(&pending.first_use, now);
                drop(seen);
                return self.service.recorded(handled, first_use).response;
            }
            handled.response
        }
    }
}

/// The validator of this instance. Hosts such as `wasmtime serve` and Spin create an instance per
/// request (WASI 0.2), so unless the component was baked this is per-request set-up too.
pub(crate) fn validator() -> &'static Result<Validator, String> {
    let instance = INSTANCE.get_or_init(|| configure(false));
    instance.announced.call_once(|| {
        for warning in &instance.warnings {
            eprintln!("jwt-validator: warning: {warning}");
        }
        if let Err(line) = &instance.validator {
            eprintln!("jwt-validator: {line}");
        }
    });
    &instance.validator
}

/// Configures the instance for a snapshot (`scripts/bake`), printing nothing: the error line, if any.
#[cfg(not(feature = "p3"))]
pub(crate) fn bake() -> Result<(), String> {
    match &INSTANCE.get_or_init(|| configure(true)).validator {
        Ok(_) => Ok(()),
        Err(line) => Err(line.clone()),
    }
}

fn configure(baking: bool) -> Instance {
    let env = |name: &str| std::env::var(name).ok();
    let read = |path: &std::path::Path| std::fs::read(path);
    let mut warnings = Vec::new();
    let names: Vec<String> = std::env::vars().map(|(name, _)| name).collect();
    let validator = config::load_checked(&env, names.iter().map(String::as_str), &read)
        .map_err(|e| e.to_string())
        .and_then(|loaded| {
            warnings.clone_from(&loaded.warnings);
            // What the shell cannot serve at all is said first, whether baking or not.
            #[allow(unused_mut)]
            let mut validator = validator_of(loaded)?;
            // A baked component starts with the key sets fetched now as its seeds.
            #[cfg(not(feature = "p3"))]
            if let (true, Some(remote)) = (baking, validator.remote.as_mut()) {
                remote.bake_seeds()?;
            }
            #[cfg(feature = "p3")]
            let _ = baking;
            Ok(validator)
        })
        .map_err(|e| format!("configuration error: {e}"));
    Instance {
        validator,
        warnings,
        announced: Once::new(),
    }
}

/// Remote key sets are fetched with outgoing wasi:http ([`crate::remote`]).
fn validator_of(loaded: config::Loaded) -> Result<Validator, String> {
    let (service, remote) = crate::remote::service_of(loaded)?;
    Ok(Validator {
        #[cfg(feature = "dpop")]
        replay: Mutex::new(Seen::new(service.options().dpop.replay_max_entries)),
        service,
        remote,
    })
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

maybe_async! {
    /// Answers a request from its parts (headers the `http` crate cannot represent are left out).
    pub(crate) async fn answer(
        validator: &Validator,
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
            Ok(request) => crate::remote::wait!(validator.decide(&request, now)),
            Err(_) => bad_request(),
        }
    }
}

/// A fetch answer's head, read the same way by both WASI versions' clients: keyset's verdict on the
/// status and the declared length, then the `max-age` the key set may be kept for.
pub(crate) fn judge_head(
    status: u16,
    content_length: &[Vec<u8>],
    cache_control: &[Vec<u8>],
    max_bytes: usize,
) -> Result<Option<u64>, jwtv_keyset::FetchError> {
    let declared = content_length
        .first()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    jwtv_keyset::error::check_head(status, declared, max_bytes)?;
    Ok(jwtv_keyset::cache_control::max_age_of(
        cache_control
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok()),
    ))
}

/// The request's `Host` back among its headers: `wasmtime serve` moves it into the request's authority
/// (a forbidden field in wasi:http), and the service reads the original request's host from it when
/// the gateway reports none in `X-Forwarded-Host` (Envoy's HTTP ext_authz): the URL a DPoP proof is
/// checked against, and `request.host` in rules. The default build reads neither, and has no room in
/// its size budget for what it does not read.
pub(crate) fn with_host(headers: &mut Vec<(String, Vec<u8>)>, authority: Option<String>) {
    #[cfg(not(any(feature = "dpop", feature = "rules")))]
    let _ = (headers, authority);
    #[cfg(any(feature = "dpop", feature = "rules"))]
    if let Some(authority) = authority.filter(|a| !a.is_empty())
        && !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host"))
    {
        headers.push(("host".to_owned(), authority.into_bytes()));
    }
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
    jwtv_service::misconfigured("the validator's configuration is invalid; see its log")
}

fn bad_request() -> Response<Vec<u8>> {
    jwtv_service::unreadable_request(StatusCode::BAD_REQUEST, "request could not be read", true)
}
