//! Forward auth through real proxies (issues 5 and 13): nginx `auth_request`, Caddy `forward_auth`,
//! Traefik `forwardAuth` and Envoy `ext_authz`, each run with exactly the configuration files in
//! `docs/gateway/` (only their addresses replaced, `support::gateway`), in front of an upstream that
//! echoes the headers it receives. Every proxy runs the same cases, one module per proxy.
//!
//! The validator is the target of `JWTV_TEST_TARGET` (native binary or the component under
//! `wasmtime serve`), so the same assertions cover both.

mod support;

use std::net::TcpStream;

use serde_json::json;
use support::dpop;
use support::gateway::{Gateway, Kind};
use support::jwt::hs256;
use support::keyserver::{JWKS_PATH, KeyServer, Mode, TestJwk, jwks};
use support::upstream::Upstream;
use support::{IO_TIMEOUT, Server, Target, TestConfig, now, workspace_root};

const SECRET: &[u8] = b"proxy-suite-secret-32-bytes-long!";

fn validator() -> Server {
    Server::start(validator_config())
}

/// The validator `kind` asks: the target under test, except for gRPC, which only the native binary
/// serves.
fn validator_for(kind: Kind) -> Server {
    match kind {
        Kind::EnvoyGrpc => Server::start_on(Target::Native, validator_config()),
        _ => validator(),
    }
}

fn validator_config() -> TestConfig {
    TestConfig::new()
        .env("JWT_SECRET", String::from_utf8(SECRET.to_vec()).unwrap())
        .env("JWT_AUDIENCE", "api")
        .env("JWT_CLAIM_HEADERS", "X-Auth-Email=email")
        .env("JWT_POLICIES", "admin")
        .env("JWT_POLICY_ADMIN_SCOPES", "admin")
}

fn token(extra: serde_json::Value) -> String {
    let mut claims = json!({"sub": "alice", "iss": "proxy-suite", "aud": "api", "exp": now() + 600, "scope": "read"});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    hs256(SECRET, &claims)
}

// ---------------------------------------------------------------------------------------------------

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn allows_with_identity_headers(kind: Kind) {
    let (validator, upstream) = (validator_for(kind), Upstream::start());
    let proxy = Gateway::start(kind, validator.addr, upstream.addr);
    let t = token(json!({"email": "alice@example.com"}));
    let auth = bearer(&t);
    // A client-supplied identity header must never reach the upstream.
    let r = proxy.get(
        "/orders/42",
        &[
            ("Authorization", &auth),
            ("X-Auth-Subject", "mallory"),
            ("X-Auth-Email", "mallory@example.com"),
        ],
    );
    assert_eq!(r.status, 200, "{kind:?}: {}", r.text());
    assert_eq!(upstream.hits(), 1);
    let seen = upstream.last();
    assert_eq!(
        seen.get("x-auth-subject").map(String::as_str),
        Some("alice"),
        "{kind:?}: {seen:?}"
    );
    assert_eq!(
        seen.get("x-auth-issuer").map(String::as_str),
        Some("proxy-suite")
    );
    assert_eq!(seen.get("x-auth-audience").map(String::as_str), Some("api"));
    assert_eq!(seen.get("x-auth-scopes").map(String::as_str), Some("read"));
    assert!(
        seen.get("x-auth-expires")
            .is_some_and(|e| e.parse::<u64>().is_ok())
    );
    // A client-sent header under a configured claim header's name: Caddy, Traefik and Envoy drop
    // every X-Auth-* by pattern; nginx cannot, it replaces the five above and a user adds theirs
    // (docs/gateway/README.md).
    if kind != Kind::Nginx {
        assert_ne!(
            seen.get("x-auth-email").map(String::as_str),
            Some("mallory@example.com"),
            "{kind:?}: {seen:?}"
        );
    }
    // A configured claim header: Envoy's and Traefik's files take every X-Auth-* of the answer;
    // nginx's and Caddy's list the five above, and a user adds theirs (docs/gateway/README.md).
    // gRPC ext_authz: every client-sent X-Auth-* the answer does not set is removed
    // (headers_to_remove), with no header allow-list in the gateway's file.
    if kind == Kind::EnvoyGrpc {
        let r = proxy.get(
            "/orders/42",
            &[("Authorization", &auth), ("X-Auth-Role", "admin")],
        );
        assert_eq!(r.status, 200);
        let seen = upstream.last();
        assert_eq!(seen.get("x-auth-role"), None, "{kind:?}: {seen:?}");
        assert_eq!(
            seen.get("x-auth-subject").map(String::as_str),
            Some("alice")
        );
    }
    if matches!(kind, Kind::Envoy | Kind::EnvoyGrpc | Kind::Traefik) {
        assert_eq!(
            seen.get("x-auth-email").map(String::as_str),
            Some("alice@example.com"),
            "{kind:?}: {seen:?}"
        );
    }
}

fn denies_without_reaching_the_upstream(kind: Kind) {
    let (validator, upstream) = (validator_for(kind), Upstream::start());
    let proxy = Gateway::start(kind, validator.addr, upstream.addr);

    let r = proxy.get("/orders", &[]);
    assert_eq!(r.status, 401, "{kind:?} missing token");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="jwt-validator""#),
        "{kind:?} missing token"
    );

    let t = token(json!({}));
    let forged = format!("{}AAAA{}", &t[..t.len() - 8], &t[t.len() - 4..]);
    let expired = token(json!({"exp": now() - 3600}));
    for (what, t, code) in [
        ("bad signature", forged.as_str(), "invalid_signature"),
        ("expired", expired.as_str(), "token_expired"),
        ("garbage", "not-a-jwt", "malformed_token"),
    ] {
        let r = proxy.get("/orders", &[("Authorization", &bearer(t))]);
        assert_eq!(r.status, 401, "{kind:?} {what}");
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
            "{kind:?} {what}: {challenge}"
        );
        assert_eq!(r.header("x-auth-error"), Some(code), "{kind:?} {what}");
    }
    assert_eq!(
        upstream.hits(),
        0,
        "{kind:?}: a denied request reached the upstream"
    );
}

fn named_policy_needs_its_scope(kind: Kind) {
    let (validator, upstream) = (validator_for(kind), Upstream::start());
    let proxy = Gateway::start(kind, validator.addr, upstream.addr);
    let reader = bearer(&token(json!({"scope": "read"})));
    let r = proxy.get("/admin/users", &[("Authorization", &reader)]);
    assert_eq!(r.status, 403, "{kind:?}");
    assert_eq!(
        r.header("x-auth-error"),
        Some("insufficient_scope"),
        "{kind:?}"
    );
    // nginx forwards WWW-Authenticate only with 401; the others pass it with 403 too.
    if kind != Kind::Nginx {
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{kind:?}: {challenge}"
        );
    }
    assert_eq!(upstream.hits(), 0);
    let admin = bearer(&token(json!({"scope": "read admin"})));
    assert_eq!(
        proxy
            .get("/admin/users", &[("Authorization", &admin)])
            .status,
        200,
        "{kind:?}"
    );
    assert_eq!(upstream.hits(), 1);
}

/// What each proxy answers when it cannot reach the validator, and when the validator answers 503
/// (no key set yet): the table of `docs/gateway/README.md`. Envoy's is its `status_on_error`.
fn fail_closed_statuses(kind: Kind) -> (u16, u16) {
    match kind {
        Kind::Nginx => (500, 500),
        Kind::Caddy => (502, 503),
        Kind::Traefik => (500, 503),
        Kind::Envoy | Kind::EnvoyGrpc => (503, 503),
    }
}

fn fails_closed_when_the_validator_is_down(kind: Kind) {
    let (validator, upstream) = (validator_for(kind), Upstream::start());
    let proxy = Gateway::start(kind, validator.addr, upstream.addr);
    let auth = bearer(&token(json!({})));
    assert_eq!(proxy.get("/", &[("Authorization", &auth)]).status, 200);
    drop(validator);
    let r = proxy.get("/", &[("Authorization", &auth)]);
    assert_eq!(
        r.status,
        fail_closed_statuses(kind).0,
        "{kind:?}: validator down"
    );
    assert_eq!(
        upstream.hits(),
        1,
        "{kind:?}: the upstream was reached without a decision"
    );
}

/// A validator whose identity provider has never answered has no keys and answers 503. The native
/// binary only: the component reads no remote key sets yet, and what is checked here is the proxy.
fn fails_closed_when_the_validator_has_no_keys(kind: Kind) {
    let key = TestJwk::es256("k1");
    let ks = KeyServer::start(jwks(&[&key]));
    ks.set_mode(Mode::Down);
    let validator = Server::start_on(
        Target::Native,
        TestConfig::new()
            .env("JWT_JWKS_URI", ks.url(JWKS_PATH))
            .env("JWT_ALLOW_HTTP_LOOPBACK", "true")
            .env("JWT_ISSUER", "https://idp.test")
            .env("JWT_FETCH_TIMEOUT", "1"),
    );
    let upstream = Upstream::start();
    let proxy = Gateway::start(kind, validator.addr, upstream.addr);
    let t = key.token(&json!({"iss": "https://idp.test", "sub": "alice", "exp": now() + 600}));
    let r = proxy.get("/", &[("Authorization", &bearer(&t))]);
    assert_eq!(
        r.status,
        fail_closed_statuses(kind).1,
        "{kind:?}: validator without keys"
    );
    assert_eq!(upstream.hits(), 0, "{kind:?}: the upstream was reached");
}

// ---- Issue 24: token sources, anonymous routes and rules, through each proxy's documented file ----

/// A validator with these settings, on the target under test (gRPC: the native binary, as
/// `validator_for`).
fn validator_with(kind: Kind, extra: &[(&str, &str)]) -> Server {
    let mut config = TestConfig::new()
        .env("JWT_SECRET", String::from_utf8(SECRET.to_vec()).unwrap())
        .env("JWT_AUDIENCE", "api");
    for (k, v) in extra {
        config = config.env(k, *v);
    }
    match kind {
        Kind::EnvoyGrpc => Server::start_on(Target::Native, config),
        _ => Server::start(config),
    }
}

/// The gateway files pass `Cookie` and a named header (Envoy lists them in `allowed_headers`).
fn cookie_and_header_tokens_reach_the_upstream(kind: Kind) {
    let validator = validator_with(
        kind,
        &[(
            "JWT_TOKEN_SOURCES",
            "cookie:session,header:x-access-token,bearer",
        )],
    );
    let upstream = Upstream::start();
    let proxy = Gateway::start(kind, validator.addr, upstream.addr);
    let t = token(json!({}));
    let cookie = format!("theme=dark; session={t}");
    let r = proxy.get("/orders", &[("Cookie", &cookie)]);
    assert_eq!(r.status, 200, "{kind:?} cookie: {}", r.text());
    assert_eq!(
        upstream.last().get("x-auth-subject").map(String::as_str),
        Some("alice"),
        "{kind:?}"
    );
    let r = proxy.get("/orders", &[("X-Access-Token", &t)]);
    assert_eq!(r.status, 200, "{kind:?} header: {}", r.text());
    // Two sources, two tokens: refused, 401 (forward auth answers 401/403 only).
    let other = token(json!({"sub": "mallory"}));
    let r = proxy.get(
        "/orders",
        &[("Cookie", &cookie), ("Authorization", &bearer(&other))],
    );
    assert_eq!(r.status, 401, "{kind:?} conflict");
    assert_eq!(
        r.header("x-auth-error"),
        Some("invalid_request"),
        "{kind:?}"
    );
    assert_eq!(upstream.hits(), 2);
}

fn an_anonymous_route_passes_without_a_token_but_not_with_a_bad_one(kind: Kind) {
    let validator = validator_with(kind, &[("JWT_ANONYMOUS", "allow")]);
    let upstream = Upstream::start();
    let proxy = Gateway::start(kind, validator.addr, upstream.addr);
    // The start probe (`GET /` without a token) passes too on this route.
    let before = upstream.hits();
    let r = proxy.get("/public", &[("X-Auth-Subject", "mallory")]);
    assert_eq!(r.status, 200, "{kind:?}: {}", r.text());
    let seen = upstream.last();
    assert_ne!(
        seen.get("x-auth-subject").map(String::as_str),
        Some("mallory"),
        "{kind:?}: {seen:?}"
    );
    assert_eq!(
        seen.get("x-auth-subject").map(String::as_str).unwrap_or(""),
        "",
        "{kind:?}: {seen:?}"
    );
    let expired = token(json!({"exp": now() - 3600}));
    let r = proxy.get("/public", &[("Authorization", &bearer(&expired))]);
    assert_eq!(r.status, 401, "{kind:?}");
    assert_eq!(r.header("x-auth-error"), Some("token_expired"), "{kind:?}");
    assert_eq!(upstream.hits() - before, 1);
}

/// A rule on a nested claim and on the original request's method, as each proxy reports it.
fn a_rule_on_a_nested_claim_and_the_method_decides(kind: Kind) {
    if kind != Kind::EnvoyGrpc && !support::rules_supported() {
        return; // http_contract.rs: such a build refuses a rule at start
    }
    let validator = validator_with(
        kind,
        &[(
            "JWT_RULE",
            "'ops' in claims.realm_access.roles && (request.method == 'GET' || 'writer' in claims.realm_access.roles)",
        )],
    );
    let upstream = Upstream::start();
    let proxy = Gateway::start(kind, validator.addr, upstream.addr);
    let ops = bearer(&token(json!({"realm_access": {"roles": ["ops"]}})));
    let writer = bearer(&token(
        json!({"realm_access": {"roles": ["ops", "writer"]}}),
    ));
    let dev = bearer(&token(json!({"realm_access": {"roles": ["dev"]}})));
    assert_eq!(
        proxy.get("/orders", &[("Authorization", &ops)]).status,
        200,
        "{kind:?} GET ops"
    );
    let r = proxy.get("/orders", &[("Authorization", &dev)]);
    assert_eq!(r.status, 403, "{kind:?} GET dev");
    assert_eq!(r.header("x-auth-error"), Some("rule_failed"), "{kind:?}");
    let r = proxy.send("DELETE", "/orders/1", &[("Authorization", &ops)]);
    assert_eq!(r.status, 403, "{kind:?} DELETE ops");
    assert_eq!(r.header("x-auth-error"), Some("rule_failed"), "{kind:?}");
    assert_eq!(
        proxy
            .send("DELETE", "/orders/1", &[("Authorization", &writer)])
            .status,
        200,
        "{kind:?} DELETE writer"
    );
    assert_eq!(upstream.hits(), 2);
}

/// DPoP (RFC 9449, issue 26) through the gateway: the `DPoP` header, `Authorization: DPoP` and the
/// original method, scheme, host and path reach the validator, which rebuilds the URL the proof must
/// name (`htu`) from what the proxy reports.
fn dpop_bound_request_passes_once_and_only_for_its_url(kind: Kind) {
    if kind != Kind::EnvoyGrpc && !support::dpop_supported() {
        return; // the default component refuses bound tokens (tests/dpop.rs checks it)
    }
    let (validator, upstream) = (validator_for(kind), Upstream::start());
    let proxy = Gateway::start(kind, validator.addr, upstream.addr);
    let client = dpop::Client::es256();
    let t = token(json!({"cnf": {"jkt": client.jkt()}}));
    let authorization = format!("DPoP {t}");
    let url = format!("http://{}/orders", proxy.addr);
    let send = |proof: &str| {
        proxy.get(
            "/orders?page=2",
            &[("Authorization", &authorization), ("DPoP", proof)],
        )
    };
    let proof = client.proof(&t, "GET", &url);
    let r = send(&proof);
    assert_eq!(r.status, 200, "{kind:?} DPoP-bound request: {}", r.text());
    assert_eq!(
        upstream.last().get("x-auth-subject").map(String::as_str),
        Some("alice"),
        "{kind:?}"
    );
    // RFC 9449 §11.1: the same proof again. Only where one store answers: a component instance
    // remembers only the proofs it served, and which instance serves a request is the host's choice
    // (docs/dpop.md; tests/dpop.rs).
    if kind == Kind::EnvoyGrpc || Target::from_env() == Target::Native {
        let r = send(&proof);
        assert_eq!(r.status, 401, "{kind:?} replay");
        assert_eq!(
            r.header("x-auth-error"),
            Some("invalid_dpop_proof"),
            "{kind:?} replay"
        );
    }
    // §4.3 (htu, htm): a proof made for another URL, or another method.
    let other = format!("http://{}/admin/users", proxy.addr);
    let r = send(&client.proof(&t, "GET", &other));
    assert_eq!(r.status, 401, "{kind:?} another URL");
    assert_eq!(
        r.header("x-auth-error"),
        Some("invalid_dpop_proof"),
        "{kind:?}"
    );
    let r = send(&client.proof(&t, "POST", &url));
    assert_eq!(r.status, 401, "{kind:?} another method");
    assert_eq!(
        r.header("x-auth-error"),
        Some("invalid_dpop_proof"),
        "{kind:?}"
    );
    // §7.1: a DPoP-bound token presented as a bearer token, with or without a proof.
    let fresh = client.proof(&t, "GET", &url);
    for headers in [
        vec![("Authorization", bearer(&t))],
        vec![("Authorization", bearer(&t)), ("DPoP", fresh)],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let r = proxy.get("/orders", &headers);
        assert_eq!(r.status, 401, "{kind:?} bound token as Bearer");
        assert_eq!(
            r.header("x-auth-error"),
            Some("invalid_token_binding"),
            "{kind:?} bound token as Bearer"
        );
    }
    assert_eq!(upstream.hits(), 1, "{kind:?}");
}

/// The cases above for one proxy, as a module named for it.
macro_rules! gateway_suite {
    ($name:ident, $kind:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn valid_token_reaches_the_upstream_with_identity_headers() {
                allows_with_identity_headers($kind);
            }

            #[test]
            fn refused_tokens_are_401_without_reaching_the_upstream() {
                denies_without_reaching_the_upstream($kind);
            }

            #[test]
            fn named_policy_without_its_scope_is_403() {
                named_policy_needs_its_scope($kind);
            }

            #[test]
            fn cookie_and_header_tokens_are_accepted() {
                cookie_and_header_tokens_reach_the_upstream($kind);
            }

            #[test]
            fn anonymous_route_passes_without_token() {
                an_anonymous_route_passes_without_a_token_but_not_with_a_bad_one($kind);
            }

            #[test]
            fn rule_on_nested_claim_and_method() {
                a_rule_on_a_nested_claim_and_the_method_decides($kind);
            }

            #[test]
            fn dpop_bound_request_passes_once_for_its_url() {
                dpop_bound_request_passes_once_and_only_for_its_url($kind);
            }

            #[test]
            fn validator_down_fails_closed() {
                fails_closed_when_the_validator_is_down($kind);
            }

            #[test]
            fn validator_without_keys_fails_closed() {
                fails_closed_when_the_validator_has_no_keys($kind);
            }
        }
    };
}

gateway_suite!(nginx, Kind::Nginx);
gateway_suite!(caddy, Kind::Caddy);
gateway_suite!(traefik, Kind::Traefik);
gateway_suite!(envoy, Kind::Envoy);
gateway_suite!(envoy_grpc, Kind::EnvoyGrpc);

/// Issue 14: Envoy warned at every start that `authorization_request.allowed_headers` is deprecated,
/// and that client connections had no limit.
#[test]
fn envoy_starts_without_warnings() {
    for kind in [Kind::Envoy, Kind::EnvoyGrpc] {
        let (validator, upstream) = (validator_for(kind), Upstream::start());
        let proxy = Gateway::start(kind, validator.addr, upstream.addr);
        let log = proxy.log();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("[warning]") || l.contains("[error]"))
            .collect();
        assert!(
            warnings.is_empty(),
            "{kind:?} warned:\n{}",
            warnings.join("\n")
        );
    }
}

/// The `worker_connections` of `docs/gateway/nginx.conf`.
fn nginx_worker_connections() -> usize {
    let conf = std::fs::read_to_string(workspace_root().join("docs/gateway/nginx.conf")).unwrap();
    conf.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("worker_connections")?
                .trim()
                .strip_suffix(';')
        })
        .and_then(|n| n.trim().parse().ok())
        .expect("nginx.conf sets worker_connections")
}

/// Issue 15's attack made on nginx in front: sockets that send nothing, 100 more than nginx's
/// `worker_connections`. nginx reuses its connections that wait for a request when it runs out, so a
/// real client still gets through, and the validator never sees the idle sockets: only the keep-alive
/// connections nginx opens to it.
#[test]
fn nginx_absorbs_idle_sockets_past_its_connection_limit() {
    let (validator, upstream) = (validator(), Upstream::start());
    let proxy = Gateway::start(Kind::Nginx, validator.addr, upstream.addr);
    let idle: Vec<TcpStream> = (0..nginx_worker_connections() + 100)
        .map(|_| TcpStream::connect_timeout(&proxy.addr, IO_TIMEOUT).expect("connect to nginx"))
        .collect();
    let auth = bearer(&token(json!({})));
    for round in 0..3 {
        let r = proxy.get("/", &[("Authorization", &auth)]);
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
    }
    assert_eq!(upstream.hits(), 3);
    if validator.target == Target::Native {
        let metrics = validator.get("/metrics").text();
        let open: usize = metrics
            .lines()
            .find_map(|l| l.strip_prefix("jwtv_connections_open ")?.parse().ok())
            .expect("jwtv_connections_open in /metrics");
        // nginx's keep-alive pool to the validator (`keepalive 16`), and this /metrics request.
        assert!(
            open <= 17,
            "{open} connections reached the validator through nginx"
        );
    }
    drop(idle);
}

/// Envoy's gRPC ext_authz over mTLS (issue 25): the validator's listener requires a client certificate
/// of the gateway CA; Envoy's cluster presents one and verifies the validator's (the snippet of
/// docs/gateway/README.md added to envoy-grpc.yaml). A cluster without the client certificate is
/// refused, and Envoy fails closed.
#[test]
fn envoy_grpc_over_mtls_with_a_client_certificate() {
    use support::tls::Ca;
    let ca = Ca::new("proxy-suite CA");
    let server_cert = ca.server("validator");
    let envoy_cert = ca.client("envoy");
    let dir = support::TempDir::new();
    let path = |name: &str, bytes: &str| {
        dir.write(name, bytes.as_bytes())
            .to_string_lossy()
            .into_owned()
    };
    let (cert, key, ca_file) = (
        path("cert.pem", &server_cert.cert_pem),
        path("key.pem", &server_cert.key_pem),
        path("ca.pem", &ca.pem),
    );
    let (client_cert, client_key) = (
        path("envoy.pem", &envoy_cert.cert_pem),
        path("envoy-key.pem", &envoy_cert.key_pem),
    );
    let validator = Server::start_on(
        Target::Native,
        validator_config()
            .env("JWT_TLS_CERT_FILE", cert)
            .env("JWT_TLS_KEY_FILE", key)
            .env("JWT_TLS_CLIENT_CA_FILE", ca_file.clone()),
    );
    let tls = |with_client_cert: bool| {
        let mut lines = vec![
            "    - name: jwt_validator".to_owned(),
            "      type: STATIC".to_owned(),
            "      transport_socket:".to_owned(),
            "        name: envoy.transport_sockets.tls".to_owned(),
            "        typed_config:".to_owned(),
            "          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext".to_owned(),
            "          common_tls_context:".to_owned(),
            "            alpn_protocols: [h2]".to_owned(),
        ];
        if with_client_cert {
            lines.push("            tls_certificates:".to_owned());
            lines.push(format!(
                "              - certificate_chain: {{ filename: {client_cert} }}"
            ));
            lines.push(format!(
                "                private_key: {{ filename: {client_key} }}"
            ));
        }
        lines.extend([
            "            validation_context:".to_owned(),
            format!("              trusted_ca: {{ filename: {ca_file} }}"),
            "              match_typed_subject_alt_names:".to_owned(),
            "                - san_type: IP_ADDRESS".to_owned(),
            "                  matcher: { exact: 127.0.0.1 }".to_owned(),
        ]);
        lines.join("\n") + "\n"
    };
    let cluster = "    - name: jwt_validator\n      type: STATIC\n";
    let auth = bearer(&token(json!({})));

    let upstream = Upstream::start();
    let with_cert = tls(true);
    let proxy = Gateway::start_edited(Kind::EnvoyGrpc, validator.addr, upstream.addr, |text| {
        assert!(
            text.contains(cluster),
            "envoy-grpc.yaml changed its cluster"
        );
        text.replace(cluster, &with_cert)
    });
    let r = proxy.get("/orders", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", proxy.log());
    assert_eq!(
        upstream.last().get("x-auth-subject").map(String::as_str),
        Some("alice")
    );
    assert_eq!(proxy.get("/orders", &[]).status, 401);
    drop(proxy);

    let without_cert = tls(false);
    let proxy = Gateway::start_edited(Kind::EnvoyGrpc, validator.addr, upstream.addr, |text| {
        text.replace(cluster, &without_cert)
    });
    let r = proxy.get("/orders", &[("Authorization", &auth)]);
    assert_eq!(
        r.status, 503,
        "a gateway without a client certificate was served"
    );
    assert_eq!(upstream.hits(), 1);
}

/// Certificate-bound tokens (RFC 8705 §3, issue 26) through gateways that terminate mutual TLS, each
/// with its documented mTLS variant (`docs/gateway/*-mtls.*`): the gateway verifies the client's
/// certificate and reports it (Envoy XFCC or gRPC `source.certificate`, nginx
/// `$ssl_client_escaped_cert`, Traefik `passTLSClientCert`), the validator reads it where
/// `JWT_CLIENT_CERT_SOURCE` says. A token bound to alice's certificate passes from alice, not from
/// bob, not even when bob sends alice's certificate in the header himself; an unbound token passes.
mod certificate_bound {
    use super::*;
    use support::tls::{self, Ca, Issued};

    struct Pki {
        ca: Ca,
        alice: Issued,
        bob: Issued,
        dir: support::TempDir,
    }

    fn pki() -> Pki {
        let ca = Ca::new("proxy-suite mTLS CA");
        let gateway = ca.server("gateway");
        let dir = support::TempDir::new();
        dir.write("gateway.pem", gateway.cert_pem.as_bytes());
        dir.write("gateway-key.pem", gateway.key_pem.as_bytes());
        dir.write("client-ca.pem", ca.pem.as_bytes());
        let (alice, bob) = (ca.client("alice"), ca.client("bob"));
        Pki {
            ca,
            alice,
            bob,
            dir,
        }
    }

    /// As a client of the server name `name` (Caddy picks the policy that asks for a client
    /// certificate by it), or of the address; with `client`'s certificate, or none.
    fn get_as(
        pki: &Pki,
        client: Option<&Issued>,
        addr: std::net::SocketAddr,
        name: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<support::Response, String> {
        let connector = tls::connector(&pki.ca.pem, client, &[b"http/1.1"]);
        let get = async {
            match name {
                Some(name) => tls::get_named(&connector, addr, name, "/orders", headers).await,
                None => tls::get(&connector, addr, "/orders", headers).await,
            }
        };
        support::h2::runtime().block_on(get)
    }

    /// `forge` makes the certificate header bob sends with alice's certificate in it.
    fn run(kind: Kind, conf: &str, source: &str, forge: fn(&Issued) -> (&'static str, String)) {
        let pki = pki();
        let config = validator_config().env("JWT_CLIENT_CERT_SOURCE", source);
        // The component checks certificate bindings only in its dpop build (JWTV_COMPONENT_DPOP=1):
        // the default one refuses every bound token, so these run on the native binary then.
        let validator = match kind {
            Kind::EnvoyGrpc => Server::start_on(Target::Native, config),
            _ if !support::dpop_supported() => Server::start_on(Target::Native, config),
            _ => Server::start(config),
        };
        let upstream = Upstream::start();
        let server_name = (kind == Kind::Caddy).then_some("localhost");
        let get = |client: &Issued, addr, headers: &[(&str, &str)]| {
            get_as(&pki, Some(client), addr, server_name, headers)
        };
        let dir = format!("{}/", pki.dir.path().display());
        let proxy = Gateway::start_variant(
            kind,
            conf,
            validator.addr,
            upstream.addr,
            |text| {
                [
                    "/etc/envoy/tls/",
                    "/etc/nginx/tls/",
                    "/etc/traefik/tls/",
                    "/etc/caddy/tls/",
                ]
                .iter()
                .fold(text, |text, placeholder| text.replace(placeholder, &dir))
            },
            |addr| get(&pki.alice, addr, &[]).is_ok_and(|r| r.status != 404),
        );
        let bound = bearer(&token(json!({"cnf": {"x5t#S256": pki.alice.thumbprint()}})));
        let auth = [("Authorization", bound.as_str())];

        let r = get(&pki.alice, proxy.addr, &auth).unwrap();
        assert_eq!(
            r.status,
            200,
            "{:?} {}\n--- proxy ---\n{}",
            r.headers,
            r.text(),
            proxy.log()
        );
        assert_eq!(
            upstream.last().get("x-auth-subject").map(String::as_str),
            Some("alice")
        );
        let hits = upstream.hits();

        let r = get(&pki.bob, proxy.addr, &auth).unwrap();
        assert_eq!(r.status, 401);
        let (name, value) = forge(&pki.alice);
        let forged = [auth[0], (name, value.as_str())];
        let r = get(&pki.bob, proxy.addr, &forged).unwrap();
        assert_eq!(
            r.status, 401,
            "a client's own certificate header was trusted"
        );
        assert_eq!(upstream.hits(), hits);

        // No client certificate at all: the gateway refuses the connection or the validator the token.
        let r = get_as(&pki, None, proxy.addr, server_name, &auth);
        assert!(
            r.as_ref().map_or(true, |r| r.status != 200),
            "a bound token passed with no client certificate: {r:?}"
        );
        assert_eq!(upstream.hits(), hits);

        let unbound = bearer(&token(json!({})));
        let r = get(&pki.bob, proxy.addr, &[("Authorization", &unbound)]).unwrap();
        assert_eq!(r.status, 200);
    }

    fn escaped_pem(cert: &Issued) -> String {
        cert.cert_pem
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    #[test]
    fn envoy_xfcc_binds_tokens_to_the_client_certificate() {
        run(Kind::Envoy, "envoy-mtls.yaml", "xfcc", |alice| {
            (
                "X-Forwarded-Client-Cert",
                format!("Hash={}", alice.sha256_hex()),
            )
        });
    }

    #[test]
    fn envoy_grpc_source_certificate_binds_tokens_to_the_client_certificate() {
        run(Kind::EnvoyGrpc, "envoy-grpc-mtls.yaml", "xfcc", |alice| {
            (
                "X-Forwarded-Client-Cert",
                format!("Hash={}", alice.sha256_hex()),
            )
        });
    }

    #[test]
    fn nginx_escaped_cert_binds_tokens_to_the_client_certificate() {
        run(
            Kind::Nginx,
            "nginx-mtls.conf",
            "header:X-SSL-Client-Cert:pem",
            |alice| ("X-SSL-Client-Cert", escaped_pem(alice)),
        );
    }

    #[test]
    fn caddy_certificate_placeholder_binds_tokens_to_the_client_certificate() {
        run(
            Kind::Caddy,
            "Caddyfile-mtls",
            "header:X-Client-Cert:der",
            |alice| {
                use base64::Engine as _;
                let der = base64::engine::general_purpose::STANDARD.encode(alice.der());
                ("X-Client-Cert", der)
            },
        );
    }

    #[test]
    fn traefik_pass_tls_client_cert_binds_tokens_to_the_client_certificate() {
        run(
            Kind::Traefik,
            "traefik-mtls.yml",
            "header:X-Forwarded-Tls-Client-Cert:der",
            |alice| {
                use base64::Engine as _;
                let der = base64::engine::general_purpose::STANDARD.encode(alice.der());
                ("X-Forwarded-Tls-Client-Cert", der)
            },
        );
    }
}
