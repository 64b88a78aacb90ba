//! One bounded GET for a key set or a discovery document, over outgoing wasi:http: the host makes the
//! connection and the TLS handshake (with its own trust roots), so this module only bounds it. One
//! deadline over the whole exchange (the host's connect and first-byte timeouts, then the body read
//! against a monotonic-clock timer), a size cap checked against `Content-Length` and again while
//! reading, status 200 only (a host does not follow redirects for us, and we want none).

use jwtv_keyset::{Fetch, FetchError};
use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::poll::poll;
use wasip2::io::streams::StreamError;

/// A successful GET.
pub struct Fetched {
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, in seconds.
    pub max_age: Option<u64>,
}

/// Makes `fetch` (its URL already checked by the refresh machine) within `timeout_ms` and
/// `max_bytes`, blocking (WASI 0.2 serves one request per instance at a time).
pub fn get(fetch: &Fetch, timeout_ms: u64, max_bytes: usize) -> Result<Fetched, FetchError> {
    get_blocking(fetch, timeout_ms, max_bytes)
}

/// Waits `ms` milliseconds (blocking, as [`get`]): the key-value build waiting on another instance.
#[cfg(feature = "keyvalue")]
pub fn sleep(ms: u64) {
    monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
}

fn get_blocking(fetch: &Fetch, timeout_ms: u64, max_bytes: usize) -> Result<Fetched, FetchError> {
    let uri = &fetch.url;
    let timeout_ns = timeout_ms.saturating_mul(1_000_000);
    let deadline = monotonic_clock::now().saturating_add(timeout_ns);
    let list: Vec<(String, Vec<u8>)> = fetch
        .headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&list)
        .map_err(|e| FetchError::Http(format!("request headers: {e:?}")))?;
    let request = OutgoingRequest::new(headers);
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") => Scheme::Http,
        _ => return Err(FetchError::Connect("not an http(s) URL".into())),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let method = match fetch.method {
        "GET" => Method::Get,
        other => Method::Other(other.to_owned()),
    };
    let built = request.set_method(&method).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request
            .set_authority(uri.authority().map(|a| a.as_str()))
            .is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !built {
        return Err(FetchError::Http("the host refused the request line".into()));
    }
    let options = RequestOptions::new();
    // A host that does not support one of these keeps its own; the body read below is bounded anyway.
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let _ = options.set_between_bytes_timeout(Some(timeout_ns));
    let pending = outgoing_handler::handle(request, Some(options)).map_err(fault)?;
    let timer = monotonic_clock::subscribe_instant(deadline);
    let ready = pending.subscribe();
    if poll(&[&ready, &timer]) == [1] {
        return Err(FetchError::Timeout);
    }
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(fault(code)),
        Some(Err(())) | None => return Err(FetchError::Timeout),
    };
    let headers = response.headers();
    let max_age = crate::setup::judge_head(
        response.status(),
        &headers.get("content-length"),
        &headers.get("cache-control"),
        max_bytes,
    )?;
    let body = response
        .consume()
        .map_err(|()| FetchError::Http("the response body was already taken".into()))?;
    let bytes = read_all(&body, &timer, max_bytes);
    IncomingBody::finish(body);
    Ok(Fetched {
        body: bytes?,
        max_age,
    })
}

fn read_all(
    body: &IncomingBody,
    timer: &wasip2::io::poll::Pollable,
    max_bytes: usize,
) -> Result<Vec<u8>, FetchError> {
    let stream = body
        .stream()
        .map_err(|()| FetchError::Http("the response body stream was already taken".into()))?;
    let readable = stream.subscribe();
    let mut bytes = Vec::new();
    loop {
        if poll(&[&readable, timer]) == [1] {
            return Err(FetchError::Timeout);
        }
        match stream.read(64 * 1024) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > max_bytes {
                    return Err(FetchError::TooLarge(max_bytes));
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(FetchError::Http(e.to_debug_string()));
            }
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
        | ErrorCode::TlsAlertReceived(_) => FetchError::Tls(describe(&code)),
        ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached => FetchError::Connect(describe(&code)),
        other => FetchError::Http(describe(&other)),
    }
}

/// The host's error code as wasi:http names it (`connection-refused`, `dns-error: NXDOMAIN`), with
/// the detail a reader of the log needs. Written out rather than printed with `{:?}`: the derived
/// `Debug` of the error-code tree and its payloads is ~5 KB of the size-budgeted component.
fn describe(code: &ErrorCode) -> String {
    let name = match code {
        ErrorCode::DnsTimeout => "dns-timeout",
        ErrorCode::DnsError(_) => "dns-error",
        ErrorCode::DestinationNotFound => "destination-not-found",
        ErrorCode::DestinationUnavailable => "destination-unavailable",
        ErrorCode::DestinationIpProhibited => "destination-ip-prohibited",
        ErrorCode::DestinationIpUnroutable => "destination-ip-unroutable",
        ErrorCode::ConnectionRefused => "connection-refused",
        ErrorCode::ConnectionTerminated => "connection-terminated",
        ErrorCode::ConnectionTimeout => "connection-timeout",
        ErrorCode::ConnectionReadTimeout => "connection-read-timeout",
        ErrorCode::ConnectionWriteTimeout => "connection-write-timeout",
        ErrorCode::ConnectionLimitReached => "connection-limit-reached",
        ErrorCode::TlsProtocolError => "TLS-protocol-error",
        ErrorCode::TlsCertificateError => "TLS-certificate-error",
        ErrorCode::TlsAlertReceived(_) => "TLS-alert-received",
        ErrorCode::HttpRequestDenied => "HTTP-request-denied",
        ErrorCode::HttpRequestLengthRequired => "HTTP-request-length-required",
        ErrorCode::HttpRequestBodySize(_) => "HTTP-request-body-size",
        ErrorCode::HttpRequestMethodInvalid => "HTTP-request-method-invalid",
        ErrorCode::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
        ErrorCode::HttpRequestUriTooLong => "HTTP-request-URI-too-long",
        ErrorCode::HttpRequestHeaderSectionSize(_) => "HTTP-request-header-section-size",
        ErrorCode::HttpRequestHeaderSize(_) => "HTTP-request-header-size",
        ErrorCode::HttpRequestTrailerSectionSize(_) => "HTTP-request-trailer-section-size",
        ErrorCode::HttpRequestTrailerSize(_) => "HTTP-request-trailer-size",
        ErrorCode::HttpResponseIncomplete => "HTTP-response-incomplete",
        ErrorCode::HttpResponseHeaderSectionSize(_) => "HTTP-response-header-section-size",
        ErrorCode::HttpResponseHeaderSize(_) => "HTTP-response-header-size",
        ErrorCode::HttpResponseBodySize(_) => "HTTP-response-body-size",
        ErrorCode::HttpResponseTrailerSectionSize(_) => "HTTP-response-trailer-section-size",
        ErrorCode::HttpResponseTrailerSize(_) => "HTTP-response-trailer-size",
        ErrorCode::HttpResponseTransferCoding(_) => "HTTP-response-transfer-coding",
        ErrorCode::HttpResponseContentCoding(_) => "HTTP-response-content-coding",
        ErrorCode::HttpResponseTimeout => "HTTP-response-timeout",
        ErrorCode::HttpUpgradeFailed => "HTTP-upgrade-failed",
        ErrorCode::HttpProtocolError => "HTTP-protocol-error",
        ErrorCode::LoopDetected => "loop-detected",
        ErrorCode::ConfigurationError => "configuration-error",
        ErrorCode::InternalError(_) => "internal-error",
    };
    let detail = match code {
        ErrorCode::DnsError(p) => p.rcode.as_deref(),
        ErrorCode::TlsAlertReceived(p) => p.alert_message.as_deref(),
        ErrorCode::HttpResponseTransferCoding(s)
        | ErrorCode::HttpResponseContentCoding(s)
        | ErrorCode::InternalError(s) => s.as_deref(),
        _ => None,
    };
    match detail {
        Some(detail) => format!("{name}: {detail}"),
        None => name.to_owned(),
    }
}
