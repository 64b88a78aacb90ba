//! The `wasi:http/incoming-handler` export.

use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use jwtv_service::Service;
use jwtv_service::config;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method as WasiMethod, OutgoingBody, OutgoingResponse,
    ResponseOutparam,
};

struct Component;

wasip2::http::proxy::export!(Component);

/// Largest chunk `blocking-write-and-flush` accepts in one call (WASI 0.2 streams).
const WRITE_CHUNK: usize = 4096;

/// The service, built once per instance. Hosts such as `wasmtime serve` create an instance per
/// request, so this is also the per-request set-up cost that pre-initialisation would remove.
static SERVICE: OnceLock<Result<Service, String>> = OnceLock::new();

fn service() -> &'static Result<Service, String> {
    SERVICE.get_or_init(|| {
        let env = |name: &str| std::env::var(name).ok();
        let read = |path: &std::path::Path| std::fs::read(path);
        config::load(&env, &read)
            .map_err(|e| e.to_string())
            .and_then(|loaded| {
                for warning in &loaded.warnings {
                    eprintln!("jwt-validator: warning: {warning}");
                }
                crate::remote::service_of(loaded)
            })
            .map_err(|e| {
                let line = format!("configuration error: {e}");
                eprintln!("jwt-validator: {line}");
                line
            })
    })
}

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let response = match service() {
            Ok(service) => answer(service, request),
            Err(_) => misconfigured(),
        };
        send(out, response);
    }
}

fn answer(service: &Service, incoming: IncomingRequest) -> Response<Vec<u8>> {
    let mut builder = Request::builder()
        .method(method(&incoming.method()))
        .uri(incoming.path_with_query().unwrap_or_else(|| "/".to_owned()));
    for (name, value) in incoming.headers().entries() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            builder = builder.header(n, v);
        }
    }
    let Some(body) = read_body(&incoming, service.max_body_bytes()) else {
        return service.payload_too_large().response;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match builder.body(body) {
        Ok(request) => crate::remote::handle(service, &request, now),
        Err(_) => bad_request(),
    }
}

fn method(m: &WasiMethod) -> Method {
    match m {
        WasiMethod::Get => Method::GET,
        WasiMethod::Head => Method::HEAD,
        WasiMethod::Post => Method::POST,
        WasiMethod::Put => Method::PUT,
        WasiMethod::Delete => Method::DELETE,
        WasiMethod::Connect => Method::CONNECT,
        WasiMethod::Options => Method::OPTIONS,
        WasiMethod::Trace => Method::TRACE,
        WasiMethod::Patch => Method::PATCH,
        WasiMethod::Other(other) => Method::from_bytes(other.as_bytes()).unwrap_or(Method::GET),
    }
}

/// Reads the body up to `limit` bytes; `None` once it goes past (the caller answers 413 without
/// reading the rest).
fn read_body(request: &IncomingRequest, limit: usize) -> Option<Vec<u8>> {
    let Ok(body) = request.consume() else {
        return Some(Vec::new());
    };
    let mut bytes = Vec::new();
    if let Ok(stream) = body.stream() {
        // Ends on close (end of body) or failure: either way nothing more will come.
        while let Ok(chunk) = stream.blocking_read(WRITE_CHUNK as u64 * 4) {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > limit {
                return None;
            }
        }
    }
    IncomingBody::finish(body);
    Some(bytes)
}

fn send(out: ResponseOutparam, response: Response<Vec<u8>>) {
    let entries: Vec<(String, Vec<u8>)> = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(headers);
    // Every status the service produces is valid; 500 is the fallback if a host refuses it.
    if outgoing
        .set_status_code(response.status().as_u16())
        .is_err()
    {
        let _ = outgoing.set_status_code(500);
    }
    let Ok(body) = outgoing.body() else {
        ResponseOutparam::set(out, Ok(outgoing));
        return;
    };
    ResponseOutparam::set(out, Ok(outgoing));
    if let Ok(stream) = body.write() {
        for chunk in response.body().chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
}

/// The configuration cannot be honoured: fail closed on every request (never `valid:true`), and say
/// why on stderr, where the operator sees it.
fn misconfigured() -> Response<Vec<u8>> {
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
