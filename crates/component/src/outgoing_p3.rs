//! One bounded GET for a key set or a discovery document, over WASI 0.3's `wasi:http/client` (the
//! WASI 0.3 build): the same bounds as the WASI 0.2 fetch ([`crate::outgoing`] there): one deadline
//! over the whole exchange, raced against a monotonic-clock wait, the host's connect and first-byte
//! timeouts, a size cap checked against `Content-Length` and again while reading, status 200 only.
//! Unlike WASI 0.2 it does not block the instance: other requests run while it waits.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use jwtv_keyset::{Fetch, FetchError};
use wasip3::clocks::monotonic_clock;
use wasip3::http::client;
use wasip3::http::types::{ErrorCode, Fields, Method, Request, RequestOptions, Response, Scheme};
use wasip3::wit_bindgen::StreamResult;
use wasip3::wit_future;

/// A successful GET.
pub struct Fetched {
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, in seconds.
    pub max_age: Option<u64>,
}

/// Bytes asked of the body stream per read.
const READ_CHUNK: usize = 64 * 1024;

/// Makes `fetch` (its URL already checked by the refresh machine) within `timeout_ms` and
/// `max_bytes`.
pub async fn get(fetch: &Fetch, timeout_ms: u64, max_bytes: usize) -> Result<Fetched, FetchError> {
    let timeout_ns = timeout_ms.saturating_mul(1_000_000);
    let exchange = exchange(fetch, timeout_ns, max_bytes);
    let deadline = monotonic_clock::wait_for(timeout_ns);
    first(exchange, deadline)
        .await
        .unwrap_or(Err(FetchError::Timeout))
}

/// Waits `ms` milliseconds without holding the instance's other requests.
pub async fn sleep(ms: u64) {
    monotonic_clock::wait_for(ms.saturating_mul(1_000_000)).await;
}

/// The output of `work`, or `None` if `deadline` comes first (`work` is then dropped, which cancels
/// the host call under way).
async fn first<T>(work: impl Future<Output = T>, deadline: impl Future<Output = ()>) -> Option<T> {
    let mut work = pin!(work);
    let mut deadline = pin!(deadline);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

async fn exchange(fetch: &Fetch, timeout_ns: u64, max_bytes: usize) -> Result<Fetched, FetchError> {
    let uri = &fetch.url;
    let list: Vec<(String, Vec<u8>)> = fetch
        .headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&list)
        .map_err(|e| FetchError::Http(format!("request headers: {e:?}")))?;
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") => Scheme::Http,
        _ => return Err(FetchError::Connect("not an http(s) URL".into())),
    };
    let options = RequestOptions::new();
    // A host that does not support one of these keeps its own; the deadline above bounds it anyway.
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let _ = options.set_between_bytes_timeout(Some(timeout_ns));
    let (_no_trailers, trailers) = wit_future::new(|| Ok(None));
    let (request, _sent) = Request::new(headers, None, trailers, Some(options));
    let method = match fetch.method {
        "GET" => Method::Get,
        other => Method::Other(other.to_owned()),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let built = request.set_method(&method).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request
            .set_authority(uri.authority().map(|a| a.as_str()))
            .is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !built {
        return Err(FetchError::Http("the host refused the request line".into()));
    }
    let response = client::send(request).await.map_err(fault)?;
    let headers = response.get_headers();
    let max_age = crate::setup::judge_head(
        response.get_status_code(),
        &headers.get("content-length"),
        &headers.get("cache-control"),
        max_bytes,
    )?;
    // Dropping the writer tells the host we took the body without error.
    let (_read, read) = wit_future::new(|| Ok(()));
    let (mut stream, _trailers) = Response::consume_body(response, read);
    let mut body = Vec::new();
    loop {
        let (result, chunk) = stream.read(Vec::with_capacity(READ_CHUNK)).await;
        if body.len() + chunk.len() > max_bytes {
            return Err(FetchError::TooLarge(max_bytes));
        }
        body.extend_from_slice(&chunk);
        // Ends when the sender closes the body (or a read makes no progress); a body cut short
        // is refused by the document parser.
        if !matches!(result, StreamResult::Complete(n) if n > 0) {
            return Ok(Fetched { body, max_age });
        }
    }
}

/// The host's error for a request that got no response, in the native fetcher's kinds.
fn fault(code: ErrorCode) -> FetchError {
    match code {
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => FetchError::Timeout,
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => FetchError::Tls(format!("{code:?}")),
        ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached => FetchError::Connect(format!("{code:?}")),
        other => FetchError::Http(format!("{other:?}")),
    }
}
