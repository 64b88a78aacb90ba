//! A key-set and OIDC discovery server for the remote-key tests, on 127.0.0.1, with std only: one
//! thread accepting, one short-lived thread per connection, `Connection: close` on every answer.
//!
//! The test controls what it serves (the JWK Set, the discovery document, `Cache-Control`) and how it
//! misbehaves ([`Mode`]): down, slow, trickling, garbage, huge, an error status. It counts requests per path.
//! Dropping it stops the accept loop; every wait in it is bounded.
//!
//! Also here: [`TestJwk`], signing keys with their public JWK, so a test can publish, rotate and
//! withdraw keys and mint tokens for them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtv_signer::SigningKey;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};

/// How the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The configured documents.
    Normal,
    /// Accepts and closes at once, without reading or answering (a crashed or unreachable provider).
    Down,
    /// Waits this long before answering normally.
    Slow(Duration),
    /// 200 with the configured document sent one byte per this interval (a provider that stalls
    /// mid-answer); the write timeout ends it.
    Trickle(Duration),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200, chunked, no Content-Length, far more bytes than any cap (the cap must hold while reading).
    Huge,
    /// 200 with a Content-Length far above any cap.
    HugeDeclared,
    /// This status (a 302 carries a Location to another scheme).
    Status(u16),
}

struct State {
    mode: Mode,
    jwks: String,
    discovery: Option<String>,
    cache_control: Option<String>,
    /// Requests per path, counted once the request head was read (not in `Down` mode).
    requests: HashMap<String, usize>,
    /// Every accepted connection, `Down` mode included.
    connections: usize,
    /// Slow answers begun: counted before the first byte is written, so a client that saw the
    /// answer always sees it counted.
    slow_answered: usize,
    /// The header lines of the last request read, names lowercased.
    last_headers: Vec<(String, String)>,
}

pub struct KeyServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<thread::JoinHandle<()>>,
}

/// The key-set path.
pub const JWKS_PATH: &str = "/jwks";
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

impl KeyServer {
    /// Serves `jwks` at [`JWKS_PATH`], no discovery document, no Cache-Control.
    pub fn start(jwks: String) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the key server");
        let addr = listener.local_addr().expect("key server address");
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Normal,
            jwks,
            discovery: None,
            cache_control: None,
            requests: HashMap::new(),
            connections: 0,
            slow_answered: 0,
            last_headers: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let accept_thread = {
            let state = state.clone();
            accept_loop(listener, stop.clone(), move |stream| {
                let state = state.clone();
                thread::spawn(move || serve(stream, &state));
            })
        };
        KeyServer {
            addr,
            state,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    /// `http://127.0.0.1:PORT` (also the issuer for discovery tests).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub fn set_jwks(&self, jwks: String) {
        self.state.lock().unwrap().jwks = jwks;
    }

    pub fn set_discovery(&self, document: Value) {
        self.state.lock().unwrap().discovery = Some(document.to_string());
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        self.state.lock().unwrap().cache_control = value.map(str::to_owned);
    }

    /// Requests received for `path`.
    pub fn requests(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .requests
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// A header of the last request read (`name` lowercase), as sent.
    /// Every shell sends the headers the refresh machine gives its fetches.
    pub fn assert_fetch_headers(&self) {
        assert_eq!(
            self.last_header("accept").as_deref(),
            Some("application/json, application/jwk-set+json")
        );
        let agent = self.last_header("user-agent");
        assert!(
            agent
                .as_deref()
                .is_some_and(|v| v.starts_with("jwt-validator/")),
            "{agent:?}"
        );
    }

    pub fn last_header(&self, name: &str) -> Option<String> {
        let state = self.state.lock().unwrap();
        state
            .last_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Requests `Mode::Slow` has stopped holding (it answers them after its delay).
    pub fn slow_answered(&self) -> usize {
        self.state.lock().unwrap().slow_answered
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) {
    let mode = {
        let mut state = state.lock().unwrap();
        state.connections += 1;
        state.mode.clone()
    };
    if mode == Mode::Down {
        return;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let Some((path, headers)) = read_request_path(&mut stream) else {
        return;
    };
    let (body, cache_control) = {
        let mut state = state.lock().unwrap();
        state.last_headers = headers;
        *state.requests.entry(path.clone()).or_insert(0) += 1;
        let body = if path == JWKS_PATH {
            Some(state.jwks.clone())
        } else if path.ends_with(DISCOVERY_PATH) {
            state.discovery.clone()
        } else {
            None
        };
        (body, state.cache_control.clone())
    };
    let _ = match mode {
        Mode::Down => Ok(()),
        Mode::Slow(delay) => {
            thread::sleep(delay);
            state.lock().unwrap().slow_answered += 1;
            respond(&mut stream, body, cache_control)
        }
        Mode::Normal => respond(&mut stream, body, cache_control),
        Mode::Trickle(interval) => trickle(&mut stream, body.unwrap_or_default(), interval),
        Mode::Garbage => write_response(&mut stream, 200, &[], b"<html><body>It works!</body></html>"),
        Mode::Huge => huge(&mut stream),
        Mode::HugeDeclared => stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\nConnection: close\r\n\r\n{\"keys\":[",
        ),
        Mode::Status(302) => write_response(
            &mut stream,
            302,
            &[("Location", "file:///etc/passwd")],
            b"",
        ),
        Mode::Status(code) => write_response(&mut stream, code, &[], b"{\"error\":\"oops\"}"),
    };
}

fn respond(
    stream: &mut TcpStream,
    body: Option<String>,
    cache_control: Option<String>,
) -> std::io::Result<()> {
    match body {
        Some(body) => {
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(cc) = &cache_control {
                headers.push(("Cache-Control", cc));
            }
            write_response(stream, 200, &headers, body.as_bytes())
        }
        None => write_response(stream, 404, &[], b"not found"),
    }
}

fn trickle(stream: &mut TcpStream, body: String, interval: Duration) -> std::io::Result<()> {
    stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )?;
    for byte in body.as_bytes() {
        stream.write_all(&[*byte])?;
        stream.flush()?;
        thread::sleep(interval);
    }
    Ok(())
}

/// Valid-looking JSON that never ends within any cap: 4 MiB in 16 KiB chunks.
fn huge(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )?;
    let chunk = vec![b' '; 16 * 1024];
    stream.write_all(b"9\r\n{\"keys\":[\r\n")?;
    for _ in 0..256 {
        stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
        stream.write_all(&chunk)?;
        stream.write_all(b"\r\n")?;
    }
    stream.write_all(b"0\r\n\r\n")
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// The path of a `GET` request; the head is read up to 16 KiB.
fn read_request_path(stream: &mut TcpStream) -> Option<(String, Vec<(String, String)>)> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.split_whitespace();
    let path = match (parts.next(), parts.next()) {
        (Some("GET"), Some(path)) => path.split('?').next().unwrap_or(path).to_owned(),
        _ => return None,
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some((path, headers))
}

// ---------------------------------------------------------------------------------------------------
// Keys

/// A signing key with the public JWK an identity provider would publish for it.
pub struct TestJwk {
    pub kid: String,
    pub alg: &'static str,
    key: SigningKey,
    public: Value,
}

impl TestJwk {
    /// A fresh P-256 key (a new one at every call: rotation gives really new keys).
    pub fn es256(kid: &str) -> TestJwk {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate P-256");
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .expect("P-256 key");
        let point = pair.public_key().as_ref();
        let public = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        TestJwk {
            kid: kid.to_owned(),
            alg: "ES256",
            key: SigningKey::from_pkcs8_der("ES256", pkcs8.as_ref()).expect("signer"),
            public,
        }
    }

    /// The fixed RSA 2048 test key of `crates/verifier/testdata`, for RS256.
    pub fn rs256(kid: &str) -> TestJwk {
        let der = super::jwt::testdata("rsa2048.pk8.der");
        let pair = RsaKeyPair::from_pkcs8(&der).expect("RSA PKCS#8");
        let components: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
        let public = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(&components.n),
            "e": URL_SAFE_NO_PAD.encode(&components.e),
        });
        TestJwk {
            kid: kid.to_owned(),
            alg: "RS256",
            key: SigningKey::from_pkcs8_der("RS256", &der).expect("signer"),
            public,
        }
    }

    pub fn public_jwk(&self) -> &Value {
        &self.public
    }

    /// A token signed with this key, naming its kid.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_kid(&self.kid, claims)
    }

    /// A token signed with this key but naming `kid` (an unknown kid, for a spray).
    pub fn token_with_kid(&self, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": self.alg, "typ": "JWT", "kid": kid});
        jwtv_signer::encode(&header, claims, &self.key).expect("sign")
    }
}

/// `{"keys": [...]}` of these keys.
pub fn jwks(keys: &[&TestJwk]) -> String {
    json!({ "keys": keys.iter().map(|k| k.public.clone()).collect::<Vec<_>>() }).to_string()
}

// ---------------------------------------------------------------------------------------------------
// HTTPS

/// A certificate authority made for one test (nothing committed), and a server certificate it signed
/// for `127.0.0.1`: an internal identity provider behind a private CA.
pub struct TestCa {
    /// The CA certificate in PEM: what `JWT_FETCH_CA_FILE` names.
    pub ca_pem: String,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: Vec<u8>,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "jwt-validator test CA");
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, ca_key).expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("server certificate parameters")
            .signed_by(&server_key, &ca)
            .expect("server certificate");
        TestCa {
            ca_pem: ca.pem(),
            server_cert: server_cert.der().clone(),
            server_key: server_key.serialize_der(),
        }
    }
}

/// HTTPS in front of a [`KeyServer`]: terminates TLS with a [`TestCa`] server certificate and passes
/// each request on to the plain server, so its modes and request counts hold over HTTPS too. One
/// short-lived thread per connection; dropping it stops the accept loop.
pub struct TlsFront {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept_thread: Option<thread::JoinHandle<()>>,
}

impl TlsFront {
    pub fn start(backend: &KeyServer, ca: &TestCa) -> TlsFront {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ca.server_key.clone().into());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![ca.server_cert.clone()], key)
            .expect("TLS server configuration");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the TLS front");
        let addr = listener.local_addr().expect("TLS front address");
        let stop = Arc::new(AtomicBool::new(false));
        let backend = backend.addr;
        let accept_thread = accept_loop(listener, stop.clone(), move |stream| {
            let config = config.clone();
            thread::spawn(move || relay(stream, config, backend));
        });
        TlsFront {
            addr,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

/// One HTTPS exchange: the request head (a GET has no body) to the plain server, its answer back until
/// it closes (it always does: `Connection: close`).
fn relay(tcp: TcpStream, config: Arc<rustls::ServerConfig>, backend: SocketAddr) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(5)));
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf) {
            Ok(n) if n > 0 && head.len() <= 16 * 1024 => head.extend_from_slice(&buf[..n]),
            // A refused handshake ends here, before anything reaches the key server.
            _ => return,
        }
    }
    let Ok(mut upstream) = TcpStream::connect_timeout(&backend, Duration::from_secs(5)) else {
        return;
    };
    let _ = upstream.set_read_timeout(Some(Duration::from_secs(10)));
    if upstream.write_all(&head).is_err() {
        return;
    }
    let mut answer = [0u8; 16 * 1024];
    loop {
        match upstream.read(&mut answer) {
            Ok(n) if n > 0 => {
                if tls.write_all(&answer[..n]).is_err() {
                    return;
                }
            }
            _ => break,
        }
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// Hands every accepted connection to `handle` until `stop` is set (the owner then wakes the loop with
/// one last connection).
fn accept_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    handle: impl Fn(TcpStream) + Send + 'static,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for stream in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if let Ok(stream) = stream {
                handle(stream);
            }
        }
    })
}

/// Claims valid for ten minutes; the `jti` makes every token distinct, so a check is never answered from
/// the server's token cache unless the test means it.
pub fn distinct_claims(iss: &str, aud: &str) -> Value {
    static N: AtomicU64 = AtomicU64::new(0);
    json!({
        "iss": iss,
        "aud": aud,
        "sub": "alice",
        "exp": super::now() + 600,
        "jti": N.fetch_add(1, Ordering::Relaxed),
    })
}
