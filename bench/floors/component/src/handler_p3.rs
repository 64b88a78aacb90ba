//! The `wasi:http/handler` export of WASI 0.3 (`--features p3`).

use wasip3::exports::http::handler::Guest;
use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::wit_bindgen::StreamResult;
use wasip3::{wit_future, wit_stream};

struct Floor;

wasip3::http::service::export!(Floor);

const BODY: &[u8] = br#"{"valid":true}"#;
/// The read size crates/component uses.
const READ_CHUNK: usize = 16 * 1024;

impl Guest for Floor {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        {
            // Dropping the writer tells the host we handled the request without error.
            let (_handled, handled_reader) = wit_future::new(|| Ok(()));
            let (mut stream, _trailers) = Request::consume_body(request, handled_reader);
            // Ends on close (end of body) or a read without progress: nothing more will come.
            while matches!(stream.read(Vec::with_capacity(READ_CHUNK)).await.0, StreamResult::Complete(n) if n > 0)
            {
            }
        }
        let headers =
            Fields::from_list(&[("content-type".to_owned(), b"application/json".to_vec())])
                .unwrap_or_else(|_| Fields::new());
        let (mut writer, reader) = wit_stream::new();
        let (_trailers, trailers_reader) = wit_future::new(|| Ok(None));
        let (response, _sent) = Response::new(headers, Some(reader), trailers_reader);
        // The host reads the body only once `handle` has returned the response: write it from a task.
        wasip3::spawn_local(async move {
            let _unsent = writer.write_all(BODY.to_vec()).await;
        });
        Ok(response)
    }
}
