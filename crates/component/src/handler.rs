//! The `wasi:http/incoming-handler` export.

use crate::setup::{self, Validator, http_method, misconfigured, validator};
use http::Response;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method as WasiMethod, OutgoingBody, OutgoingResponse,
    ResponseOutparam,
};

struct Component;

wasip2::http::proxy::export!(Component);

/// Largest chunk `blocking-write-and-flush` accepts in one call (WASI 0.2 streams).
const WRITE_CHUNK: usize = 4096;

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let response = match validator() {
            Ok(validator) => answer(validator, request),
            Err(_) => misconfigured(),
        };
        send(out, response);
    }
}

fn answer(validator: &Validator, incoming: IncomingRequest) -> Response<Vec<u8>> {
    let mut headers = incoming.headers().entries();
    setup::with_host(&mut headers, incoming.authority());
    let service = validator.service();
    let Some(body) = read_body(&incoming, service.max_body_bytes()) else {
        return service.payload_too_large().response;
    };
    setup::answer(
        validator,
        http_method!(WasiMethod, incoming.method()),
        incoming.path_with_query(),
        headers,
        body,
    )
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
    let entries = setup::header_list(&response);
    let headers = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(headers);
    // A new response is 200 already: one host call fewer for every valid token. Every status the
    // service produces is valid; 500 is the fallback if a host refuses it.
    let status = response.status().as_u16();
    if status != 200 && outgoing.set_status_code(status).is_err() {
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
