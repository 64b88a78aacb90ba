//! The listener: accepts connections, bounds them (count, header size, time, body size), hands each
//! request to the service and writes back what it answered. Also `/metrics`, decision logs, graceful
//! shutdown, configuration reload (see [`crate::reload`]), and the one retry the pure service cannot
//! do itself: after an `unknown_kid` for an issuer whose keys are fetched, refetch (rate-limited,
//! single flight) and ask the service once more.

use std::borrow::Cow;
use std::convert::Infallible;
use std::io::Cursor;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use jwtv_config::ServerSettings;
use jwtv_service::Handled;
use jwtv_service::mtls::TlsClientCertificate;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::connections::Connections;
use crate::decision_log::{SUMMARY_INTERVAL, Sampler};
use crate::grpc;
use crate::metrics::{self, Metrics};
use crate::reload::{self, Active, Current};

/// How long in-flight requests may take to finish once a shutdown signal arrived.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Request line and headers together. A gateway request carries the token in `Authorization`, so this
/// is sized from the token limit; hyper answers 431 past it.
fn max_header_bytes(max_token_bytes: usize) -> usize {
    (max_token_bytes + 8 * 1024).max(16 * 1024)
}

/// Streams one HTTP/2 connection may have open at once: a gateway multiplexes its checks over a few
/// connections, and the connection limit times this bounds the requests in progress.
const H2_MAX_STREAMS: u32 = 128;

/// Streams a client may open and reset before the server picked them up (the rapid-reset attack,
/// CVE-2023-44487): past it, the connection is closed with GOAWAY `ENHANCE_YOUR_CALM`.
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;

/// Streams the server may have to reset for a client's protocol errors before closing the
/// connection (the same attack, provoked through errors rather than resets).
const H2_MAX_LOCAL_ERROR_RESETS: usize = 128;

/// An answer's body: the bytes the service wrote, handed to hyper as they are (a `Bytes` made from
/// a `Vec` with room to spare allocates a shared header besides); or a gRPC answer, whose status
/// comes in trailers.
type Body = Either<Full<Cursor<Vec<u8>>>, UnsyncBoxBody<Cursor<Vec<u8>>, tonic::Status>>;

pub(crate) struct State {
    /// Read once per request: a request finishes on the configuration it began on.
    current: Arc<Current>,
    metrics: Metrics,
    request_timeout: Duration,
    connections: Arc<Connections>,
    decision_logs: Sampler,
    /// The TLS configuration the listener started with: TLS on or off waits for a restart, so a reload
    /// that drops the TLS files keeps serving TLS with the last certificate.
    started_tls: Option<Arc<ServerConfig>>,
    /// The largest gRPC message read or written: a `CheckRequest` carries the request's headers (the
    /// header budget) and, when the gateway sends it, some of its body.
    grpc_message_bytes: usize,
}

/// What `run` needs besides the service.
pub struct Setup {
    /// The configuration to serve (its remote key sets are fetched from here, in the background).
    pub current: Arc<Current>,
    /// Reloads of the configuration (none for the demo, which reads nothing).
    pub reload: Option<reload::Plan>,
    pub settings: ServerSettings,
    pub max_token_bytes: usize,
    /// Printed to stdout after the listening line, with the bound address (the demo's curl command).
    pub announce: Option<Box<dyn FnOnce(SocketAddr) -> String + Send>>,
}

/// Serves until SIGTERM or SIGINT, then lets in-flight requests finish.
pub async fn run(setup: Setup) -> anyhow::Result<()> {
    // Signal handlers go in before the listening line, so a supervisor that signals right after
    // reading it is obeyed rather than killing the process.
    let mut shutdown = pin!(shutdown_signal()?);
    let watcher = match setup.reload {
        Some(plan) => Some(plan.arm(setup.current.clone())?),
        None => None,
    };
    let listen = setup.settings.listen.clone();
    let listener = TcpListener::bind(listen.as_str())
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener
        .local_addr()
        .with_context(|| format!("cannot read the bound address of {listen}"))?;
    {
        let mut stdout = std::io::stdout().lock();
        let scheme = if setup.current.get().tls.is_some() {
            "https"
        } else {
            "http"
        };
        writeln!(stdout, "jwt-validator listening on {scheme}://{local}")?;
        if let Some(announce) = setup.announce {
            writeln!(stdout, "{}", announce(local))?;
        }
        stdout.flush()?;
    }
    tracing::info!(address = %local, "listening");
    // After the listening line: `/healthz` answers at once, `/readyz` once every key set arrived.
    setup.current.get().keys.start();
    if let Some(watcher) = watcher {
        tokio::spawn(watcher.run());
    }

    let connections = Connections::new(
        crate::fdlimit::connection_limit(setup.settings.max_connections),
        setup.settings.first_byte_timeout,
    );
    let started_tls = setup.current.get().tls.clone();
    let state = Arc::new(State {
        current: setup.current,
        metrics: Metrics::default(),
        request_timeout: setup.settings.request_timeout,
        connections: connections.clone(),
        decision_logs: Sampler::default(),
        grpc_message_bytes: 2 * max_header_bytes(setup.max_token_bytes) + 64 * 1024,
        started_tls,
    });
    let summaries = tokio::spawn(summarise_suppressed(state.clone()));
    let builder = Arc::new(protocols(&setup.settings, setup.max_token_bytes));

    loop {
        // Every connection is accepted, so that at the limit it can take the slot of an idle one
        // instead of queueing behind it in the kernel's backlog.
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Typically out of file descriptors: pause instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // With every slot busy mid-request, this one waits (the next ones in the backlog) until a
        // request finishes; it is dropped, unserved, if none does within the longest a request may
        // take: a request timeout for the headers (hyper's), another for the body and the answer.
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = connections.admit_within(2 * setup.settings.request_timeout) => match slot {
                Some(slot) => slot,
                None => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let tls = state.tls_for_new_connection();
        let (state, builder) = (state.clone(), builder.clone());
        let handshake_timeout = setup.settings.first_byte_timeout;
        tokio::spawn(async move {
            let Some(tls) = tls else {
                return serve_connection(stream, slot, &builder, state, None).await;
            };
            // The handshake is bounded like the wait for a first byte: the slot is held meanwhile.
            let accept = TlsAcceptor::from(tls).accept(stream);
            match tokio::time::timeout(handshake_timeout, accept).await {
                Ok(Ok(stream)) => {
                    // The leaf the handshake verified (mTLS), for certificate-bound tokens: every
                    // request of the connection carries it to the service.
                    let peer = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| TlsClientCertificate(leaf.as_ref().into()));
                    serve_connection(stream, slot, &builder, state, peer).await
                }
                Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }

    drop(listener);
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    tokio::select! {
        () = connections.shutdown() => tracing::info!("shut down cleanly"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("requests still in flight after {}s; exiting anyway", SHUTDOWN_GRACE.as_secs());
        }
    }
    // The last interval's count too: every refusal is either a line or in a summary.
    summaries.abort();
    log_suppressed(&state.decision_logs);
    Ok(())
}

/// Serves one accepted connection (plain, or TLS once the handshake is done) until it closes.
async fn serve_connection<S>(
    stream: S,
    slot: crate::connections::Slot,
    builder: &auto::Builder<TokioExecutor>,
    state: Arc<State>,
    peer: Option<TlsClientCertificate>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(slot.watch(stream));
    let requests = slot.requests();
    let service = service_fn(move |mut req: Request<Incoming>| {
        if let Some(peer) = &peer {
            req.extensions_mut().insert(peer.clone());
        }
        let state = state.clone();
        let request = requests.start();
        async move {
            let response = state.respond(req).await;
            drop(request);
            Ok::<_, Infallible>(response)
        }
    });
    let connection = builder.serve_connection(io, service);
    if let Err(error) = slot.serve(connection, |c| c.graceful_shutdown()).await {
        tracing::debug!(%error, "connection closed with an error");
    }
}

/// HTTP/1.1 and HTTP/2 on one port, told apart by the HTTP/2 preface (prior knowledge: h2c for gRPC
/// clients such as Envoy's, and ALPN `h2` under TLS).
fn protocols(settings: &ServerSettings, max_token_bytes: usize) -> auto::Builder<TokioExecutor> {
    let header_bytes = max_header_bytes(max_token_bytes);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // From the end of the previous answer to the end of the headers; the first-byte timeout
        // (`Connections`) is the shorter bound on the wait before a request starts.
        .header_read_timeout(settings.request_timeout)
        .max_buf_size(header_bytes)
        .keep_alive(true);
    // An HTTP/2 HEADERS block (with its CONTINUATION frames) is bounded by the same budget as HTTP/1
    // headers; the `h2` crate refuses a block past it as it arrives, which also ends a CONTINUATION
    // flood. A stream's own time is the request timeout (`State::respond`); a connection without
    // a stream in progress is closed after the first-byte timeout (`Connections`); the pings find a
    // peer that vanished while its requests were in progress.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
        .keep_alive_interval(settings.request_timeout)
        .keep_alive_timeout(settings.request_timeout);
    builder
}

fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Once a [`SUMMARY_INTERVAL`], one line for the refusal lines the rate per code kept out of the
/// log since the previous one (none when nothing was kept out).
async fn summarise_suppressed(state: Arc<State>) {
    let mut ticks = tokio::time::interval(SUMMARY_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        log_suppressed(&state.decision_logs);
    }
}

fn log_suppressed(decision_logs: &Sampler) {
    if let Some(suppressed) = decision_logs.take_suppressed() {
        tracing::warn!(
            suppressed = suppressed.total(),
            codes = %suppressed,
            "refusal lines suppressed by the rate per code"
        );
    }
}

impl State {
    /// The TLS configuration a connection accepted now handshakes with (`None`: plain HTTP).
    fn tls_for_new_connection(&self) -> Option<Arc<ServerConfig>> {
        let started = self.started_tls.as_ref()?;
        Some(
            self.current
                .get()
                .tls
                .clone()
                .unwrap_or_else(|| started.clone()),
        )
    }

    async fn respond(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        if req.method() == Method::GET && req.uri().path() == "/metrics" {
            let active = self.current.get();
            let mut text = self.metrics.render();
            metrics::render_connections(&mut text, &self.connections);
            metrics::render_keys(&mut text, &active.keys);
            if let Some(cache) = &active.cache {
                metrics::render_cache(&mut text, cache);
            }
            metrics::render_config(&mut text, &active, &self.current.reloads);
            return text_response(text);
        }
        if grpc::is_check(&req) {
            return self.clone().check(req).await;
        }
        let active = self.current.get();
        let route = metrics::route_of(req.uri().path());
        let handled = self
            .observed(&active, route, started, active.read_and_handle(req))
            .await;
        handled
            .response
            .map(|body| Either::Left(Full::new(Cursor::new(body))))
    }

    /// A gRPC `Check` call, read, decided ([`State::decide`]) and answered within the request timeout.
    async fn check(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        use tonic::codegen::Service as _;
        let timeout = self.request_timeout;
        let mut service = grpc::service(self.clone(), self.grpc_message_bytes);
        let response = match tokio::time::timeout(timeout, service.call(req)).await {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_) => tonic::Status::unavailable("request timed out").into_http(),
        };
        response.map(|body| {
            Either::Right(
                body.map_frame(|frame| frame.map_data(|data| Cursor::new(Vec::from(data))))
                    .boxed_unsync(),
            )
        })
    }

    /// The decision on an `/auth` request a gRPC check stands for, through the same path as an HTTP
    /// request (timeout, unknown-kid refetch, metrics, decision logs); with the configuration that
    /// decided (its identity headers).
    pub(crate) async fn decide(&self, request: &Request<Vec<u8>>) -> (Handled, Arc<Active>) {
        let started = Instant::now();
        let active = self.current.get();
        let route = metrics::route_of(request.uri().path());
        let handled = self
            .observed(&active, route, started, active.decide(request))
            .await;
        (handled, active)
    }

    /// Runs `work` within the request timeout, counts it in the metrics and logs its decision.
    async fn observed(
        &self,
        active: &Active,
        route: Option<usize>,
        started: Instant,
        work: impl Future<Output = Handled>,
    ) -> Handled {
        let _in_flight = self.metrics.start();
        // The deadline from the clock reading just taken, rather than reading it again.
        let deadline = tokio::time::Instant::from_std(started) + self.request_timeout;
        let handled = match tokio::time::timeout_at(deadline, work).await {
            Ok(handled) => handled,
            Err(_) => active.transport_error(StatusCode::REQUEST_TIMEOUT, "request timed out"),
        };
        let elapsed = started.elapsed();
        self.metrics
            .observe(route, handled.decision.as_ref(), elapsed);
        let status = handled.response.status().as_u16();
        let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        // Every decision is in `/metrics` (above); a line only for those the configuration asks for.
        match &handled.decision {
            Some(d)
                if self.decision_logs.logs(
                    active.decision_log,
                    d.allowed,
                    d.code.map_or("ok", |c| c.as_str()),
                    started,
                ) =>
            {
                tracing::info!(
                decision = if d.anonymous {
                    "anonymous"
                } else if d.allowed {
                    "allow"
                } else {
                    "deny"
                },
                code = d.code.map_or("ok", |c| c.as_str()),
                iss = %printable(d.iss.as_deref()),
                kid = %printable(d.kid.as_deref()),
                status,
                    latency_us,
                    "decision"
                )
            }
            Some(_) => {}
            None => tracing::debug!(status, latency_us, "request"),
        }
        handled
    }
}

/// What a request needs of the configuration it began on.
impl Active {
    async fn read_and_handle(&self, req: Request<Incoming>) -> Handled {
        let max = self.service.max_body_bytes();
        // A declared length over the limit is refused before a byte of the body is read.
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return closing(self.service.payload_too_large());
        }
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, max).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                return closing(self.service.payload_too_large());
            }
            Err(_) => {
                return self.transport_error(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                );
            }
        };
        self.decide(&Request::from_parts(parts, body)).await
    }

    /// The service's answer to a request read whole.
    async fn decide<B: AsRef<[u8]>>(&self, request: &Request<B>) -> Handled {
        let seen = self.keys.generation();
        let handled = self.service.handle(request, now_secs());
        // A key the fetched set lacks may have been published since: refetch (at most once per
        // cooldown, one fetch for all waiting requests, waited on at most the refetch wait) and decide
        // again with the new set. Only once,
        // and only when the set changed, so an unknown kid costs at most one extra verification.
        let unknown_kid_of = handled
            .refetch()
            .and_then(|issuer| self.keys.remote(issuer));
        let handled = match unknown_kid_of {
            Some(remote) if remote.refetch_for_unknown_kid(seen).await => {
                self.service.handle(request, now_secs())
            }
            _ => handled,
        };
        // An allow that rests on a DPoP proof stands only once the proof's first use is recorded.
        match &handled.replay {
            Some(pending) => {
                let first_use = self.replay.first_use(&pending.first_use).await;
                self.service.recorded(handled, first_use)
            }
            None => handled,
        }
    }

    /// An answer for a request that never reached the service (timed out, or a broken body). Same
    /// shape as the service's own errors; the connection is closed since its state is unknown.
    fn transport_error(&self, status: StatusCode, description: &str) -> Handled {
        let expose = self.service.options().expose_descriptions;
        closing(Handled::new(
            jwtv_service::unreadable_request(status, description, expose),
            None,
        ))
    }
}

/// Asks hyper to close the connection after this answer (the rest of the body is left unread).
fn closing(mut handled: Handled) -> Handled {
    handled
        .response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    handled
}

fn text_response(text: String) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Cursor::new(text.into_bytes()))));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Seconds since the epoch; a clock before 1970 reads as 0, which makes every token look too new:
/// refused, never accepted.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `iss` and `kid` come from the token, so they are escaped before reaching a text log line.
fn printable(value: Option<&str>) -> Cow<'_, str> {
    match value {
        None => Cow::Borrowed(""),
        Some(v) if v.chars().all(|c| !c.is_control()) => Cow::Borrowed(v),
        Some(v) => Cow::Owned(v.escape_debug().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_budget_fits_a_bearer_token() {
        assert_eq!(max_header_bytes(8192), 16 * 1024);
        assert_eq!(max_header_bytes(1), 16 * 1024);
        assert_eq!(max_header_bytes(65536), 65536 + 8192);
    }

    #[test]
    fn token_values_cannot_forge_log_lines() {
        assert_eq!(printable(Some("a\nlevel=ERROR")), "a\\nlevel=ERROR");
        assert_eq!(printable(Some("plain")), "plain");
        assert_eq!(printable(None), "");
    }
}
