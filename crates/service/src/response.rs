//! Response shapes shared by every route: JSON bodies, error bodies, Bearer challenges.

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use jwtv_verifier::{Code, Rejection};
use serde::Serialize;

/// Seconds a client should wait before retrying while keys are unavailable.
const RETRY_AFTER_SECS: &str = "5";

/// A JSON response. Every answer of the service is `no-store`: a verdict is about one token at one
/// moment and must never be replayed by a cache.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Vec<u8>> {
    // Room for a verdict with a usual token's claims, so the body is written without regrowing
    // (serde_json's own start is 128 bytes). Our bodies always serialize; the fallback keeps this
    // path free of panics anyway.
    let mut bytes = Vec::with_capacity(512);
    if serde_json::to_writer(&mut bytes, body).is_err() {
        bytes = br#"{"valid":false,"error":"internal"}"#.to_vec();
    }
    let mut response = Response::new(bytes);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An empty-bodied answer (forward-auth allow), still `no-store`.
pub(crate) fn empty(status: StatusCode) -> Response<Vec<u8>> {
    let mut response = Response::new(Vec::new());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// HTTP status for a reason code (`design/api.md` §4).
pub(crate) fn status_for(code: Code) -> StatusCode {
    match code {
        Code::InvalidRequest | Code::MissingToken => StatusCode::BAD_REQUEST,
        Code::InsufficientScope | Code::RuleFailed => StatusCode::FORBIDDEN,
        Code::TemporarilyUnavailable | Code::ReplayStoreUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Code::ServerMisconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// The 404 body (no `valid`: it is not a verdict). A struct rather than `json!` (see health.rs).
#[derive(Serialize)]
struct NotFound {
    error: &'static str,
    error_description: String,
}

/// The `{"valid":false,"error":…}` body of the drop-in API. A struct, not a map, so the fields keep
/// the old service's order (`valid` first) byte for byte.
#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    valid: bool,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

impl<'a> ErrorBody<'a> {
    pub(crate) fn new(code: &'a str, description: &'a str, expose: bool) -> ErrorBody<'a> {
        ErrorBody {
            valid: false,
            error: code,
            error_description: expose.then_some(description),
        }
    }
}

/// An error answer with a status from the code; adds `Retry-After` when keys are unavailable.
pub(crate) fn error(status: StatusCode, rejection: &Rejection, expose: bool) -> Response<Vec<u8>> {
    let body = ErrorBody::new(rejection.code.as_str(), &rejection.description, expose);
    let mut response = json(status, &body);
    if matches!(
        rejection.code,
        Code::TemporarilyUnavailable | Code::ReplayStoreUnavailable
    ) {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    response
}

/// A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3). With no `error` it just asks for a token.
pub(crate) fn bearer_challenge(realm: &str, error: Option<(&str, &str)>) -> HeaderValue {
    let mut value = format!("Bearer realm=\"{}\"", quoted_safe(realm));
    if let Some((code, description)) = error {
        value.push_str(&format!(", error=\"{code}\""));
        if !description.is_empty() {
            value.push_str(&format!(
                ", error_description=\"{}\"",
                quoted_safe(description)
            ));
        }
    }
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// A `WWW-Authenticate: DPoP` challenge (RFC 9449 §7.1): like the Bearer one, plus `algs`, the
/// algorithms a proof may use.
pub(crate) fn dpop_challenge(realm: &str, error: Option<(&str, &str)>, algs: &str) -> HeaderValue {
    let bearer = bearer_challenge(realm, error);
    let rest = bearer
        .to_str()
        .unwrap_or("")
        .strip_prefix("Bearer")
        .unwrap_or("");
    let value = format!("DPoP{rest}, algs=\"{}\"", quoted_safe(algs));
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("DPoP"))
}

/// The challenge error for a reason code: `insufficient_scope` keeps its name, every other token
/// problem is `invalid_token` (RFC 6750 §3.1). A failed rule is neither (the token is valid, and what
/// it lacks is not a scope): it says `rule_failed`, an extension error value (RFC 6749 §8.5).
pub(crate) fn challenge_error(code: Code) -> &'static str {
    match code {
        Code::InsufficientScope => "insufficient_scope",
        Code::RuleFailed => "rule_failed",
        Code::InvalidDpopProof => "invalid_dpop_proof",
        Code::MissingToken | Code::InvalidRequest => "invalid_request",
        _ => "invalid_token",
    }
}

/// RFC 6750 allows only `%x20-21 / %x23-5B / %x5D-7E` in these values: no quote, no backslash, no
/// control characters (so no header injection), ASCII only.
pub(crate) fn quoted_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .take(200)
        .collect()
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Vec<u8>> {
    let description = format!("method not allowed; use {allow}");
    let body = ErrorBody::new(Code::InvalidRequest.as_str(), &description, true);
    let mut response = json(StatusCode::METHOD_NOT_ALLOWED, &body);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

pub(crate) fn not_found(path: &str) -> Response<Vec<u8>> {
    let shown: String = path.chars().take(64).collect();
    json(
        StatusCode::NOT_FOUND,
        &NotFound {
            error: "not_found",
            error_description: format!("no route for {shown}"),
        },
    )
}
