//! The `wasi:http/handler` export of WASI 0.3 (`--features p3`): hosts may run many requests in one
//! instance at once, so the per-instance set-up is paid once for all of them.

use crate::setup::{self, Validator, http_method, misconfigured, validator};
use http::Response;
use wasip3::exports::http::handler::Guest;
use wasip3::http::types::{
    ErrorCode, Fields, Method as WasiMethod, Request, Response as WasiResponse,
};
use wasip3::wit_bindgen::StreamResult;
use wasip3::{wit_future, wit_stream};

struct Component;

wasip3::http::service::export!(Component);

/// Bytes asked of the body stream per read.
const READ_CHUNK: usize = 16 * 1024;

impl Guest for Component {
    async fn handle(request: Request) -> Result<WasiResponse, ErrorCode> {
        let response = match validator() {
            Ok(validator) => answer(validator, request).await,
            Err(_) => misconfigured(),
        };
        Ok(send(response))
    }
}

async fn answer(validator: &Validator, request: Request) -> Response<Vec<u8>> {
    let method = http_method!(WasiMethod, request.get_method());
    let uri = request.get_path_with_query();
    let mut headers = request.get_headers().copy_all();
    setup::with_host(&mut headers, request.get_authority());
    let service = validator.service();
    let Some(body) = read_body(request, service.max_body_bytes()).await else {
        return service.payload_too_large().response;
    };
    setup::answer(validator, method, uri, headers, body).await
}

/// Reads the body up to `limit` bytes; `None` once it goes past (the caller answers 413 without
/// reading the rest).
async fn read_body(request: Request, limit: usize) -> Option<Vec<u8>> {
    // Dropping the writer tells the host we handled the request without error.
    let (_handled, handled_reader) = wit_future::new(|| Ok(()));
    let (mut stream, _trailers) = Request::consume_body(request, handled_reader);
    let mut bytes = Vec::new();
    loop {
        let (result, chunk) = stream.read(Vec::with_capacity(READ_CHUNK)).await;
        bytes.extend_from_slice(&chunk);
        if bytes.len() > limit {
            return None;
        }
        // Ends when the sender closes the body (or a read makes no progress): nothing more will come.
        if !matches!(result, StreamResult::Complete(n) if n > 0) {
            return Some(bytes);
        }
    }
}

fn send(response: Response<Vec<u8>>) -> WasiResponse {
    let headers =
        Fields::from_list(&setup::header_list(&response)).unwrap_or_else(|_| Fields::new());
    let (mut writer, reader) = wit_stream::new();
    let (_trailers, trailers_reader) = wit_future::new(|| Ok(None));
    let (outgoing, _sent) = WasiResponse::new(headers, Some(reader), trailers_reader);
    // Every status the service produces is valid; 500 is the fallback if a host refuses it.
    if outgoing
        .set_status_code(response.status().as_u16())
        .is_err()
    {
        let _ = outgoing.set_status_code(500);
    }
    let body = response.into_body();
    // The host reads the body only once `handle` has returned the response: write it from a task.
    wasip3::spawn_local(async move {
        // A client gone before the end leaves nothing to do with the rest.
        let _unsent = writer.write_all(body).await;
    });
    outgoing
}
