//! The `wasi:http/incoming-handler` export.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Floor;

wasip2::http::proxy::export!(Floor);

const BODY: &[u8] = br#"{"valid":true}"#;
/// The read size crates/component uses.
const READ_CHUNK: u64 = 16 * 1024;

impl Guest for Floor {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if let Ok(body) = request.consume() {
            if let Ok(stream) = body.stream() {
                // Ends on close (end of body) or failure: either way nothing more will come.
                while stream.blocking_read(READ_CHUNK).is_ok() {}
            }
            IncomingBody::finish(body);
        }
        let headers =
            Fields::from_list(&[("content-type".to_owned(), b"application/json".to_vec())])
                .unwrap_or_else(|_| Fields::new());
        let response = OutgoingResponse::new(headers);
        let Ok(body) = response.body() else {
            ResponseOutparam::set(out, Ok(response));
            return;
        };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = body.write() {
            let _ = stream.blocking_write_and_flush(BODY);
        }
        let _ = OutgoingBody::finish(body, None);
    }
}
