//! `envoy.service.auth.v3.Authorization/Check` on the listener (issue 25), called by tonic's client over
//! h2c as Envoy's gRPC ext_authz calls it: a check is the `/auth` decision of the same request, in
//! Envoy's shapes (`design/api.md` §2). The real Envoy runs these cases in `proxies.rs`
//! (`envoy_grpc`).
//!
//! Native only: the component and the filter serve no gRPC.

mod support;

use std::collections::HashMap;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use envoy_types::pb::google::protobuf::value::Kind as ValueKind;
use serde_json::json;
use support::jwt::hs256;
use support::keyserver::KeyServer;
use support::{Server, Target, TestConfig, now};
use tonic::transport::Channel;

const SECRET: &[u8] = b"grpc-suite-secret-of-32-bytes!!!";

fn config() -> TestConfig {
    TestConfig::new()
        .env("JWT_SECRET", String::from_utf8(SECRET.to_vec()).unwrap())
        .env("JWT_CLAIM_HEADERS", "X-Auth-Email=email")
        .env("JWT_POLICIES", "admin")
        .env("JWT_POLICY_ADMIN_SCOPES", "admin")
}

fn token(extra: serde_json::Value) -> String {
    let mut claims =
        json!({"sub": "alice", "iss": "grpc-suite", "exp": now() + 600, "scope": "read"});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    hs256(SECRET, &claims)
}

fn check_request(headers: &[(&str, &str)], policy: Option<&str>) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/orders/42".into(),
                    host: "api.example".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
                        .chain([(":path".to_owned(), "/orders/42".to_owned())])
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions: policy
                .map(|p| ("policy".to_owned(), p.to_owned()))
                .into_iter()
                .collect(),
            ..Default::default()
        }),
    }
}

/// Calls Check on `server` once; the gRPC status when the call fails.
fn check(server: &Server, request: CheckRequest) -> Result<CheckResponse, tonic::Status> {
    let rt = support::h2::runtime();
    rt.block_on(async {
        let channel = Channel::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
            .expect("connect over h2c");
        AuthorizationClient::new(channel)
            .check(request)
            .await
            .map(tonic::Response::into_inner)
    })
}

fn headers_of(
    options: &[envoy_types::pb::envoy::config::core::v3::HeaderValueOption],
) -> HashMap<String, String> {
    options
        .iter()
        .filter_map(|o| o.header.as_ref())
        .map(|h| {
            let value = if h.raw_value.is_empty() {
                h.value.clone()
            } else {
                String::from_utf8(h.raw_value.clone()).unwrap()
            };
            (h.key.clone(), value)
        })
        .collect()
}

fn metadata(response: &CheckResponse, key: &str) -> Option<String> {
    match &response.dynamic_metadata.as_ref()?.fields.get(key)?.kind {
        Some(ValueKind::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

#[test]
fn check_with_a_valid_token_is_ok_with_identity_and_removes_forged_headers() {
    let server = Server::start_on(Target::Native, config());
    let auth = format!("Bearer {}", token(json!({"email": "alice@example.com"})));
    let response = check(
        &server,
        check_request(
            &[
                ("authorization", &auth),
                ("x-auth-subject", "mallory"),
                ("x-auth-role", "admin"),
                ("x-auth-email", "mallory@example.com"),
            ],
            None,
        ),
    )
    .unwrap();
    assert_eq!(response.status.as_ref().unwrap().code, 0);
    let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
        panic!("not an OK response: {response:?}")
    };
    let set = headers_of(&ok.headers);
    assert_eq!(set["x-auth-subject"], "alice");
    assert_eq!(set["x-auth-issuer"], "grpc-suite");
    assert_eq!(set["x-auth-scopes"], "read");
    assert_eq!(set["x-auth-email"], "alice@example.com");
    assert!(!set.contains_key("cache-control"));
    // Set headers overwrite the forged ones; a forged one the answer does not set is removed.
    assert_eq!(ok.headers_to_remove, vec!["x-auth-role".to_owned()]);
    assert_eq!(metadata(&response, "sub").as_deref(), Some("alice"));
    assert_eq!(metadata(&response, "iss").as_deref(), Some("grpc-suite"));
    assert_eq!(metadata(&response, "scope").as_deref(), Some("read"));
    assert_eq!(metadata(&response, "policy"), None);
}

/// A refusal is `/auth`'s refusal: the same status, challenge, code and JSON body as the HTTP
/// forward-auth answer to the same request.
#[test]
fn check_with_a_bad_or_missing_token_is_denied_exactly_as_auth() {
    let server = Server::start_on(Target::Native, config());
    let expired = format!("Bearer {}", token(json!({"exp": now() - 3600})));
    for (what, headers, status, code) in [
        ("missing", vec![], 401, "missing_token"),
        (
            "malformed",
            vec![("authorization", "Bearer a.b")],
            401,
            "malformed_token",
        ),
        (
            "expired",
            vec![("authorization", expired.as_str())],
            401,
            "token_expired",
        ),
    ] {
        let response = check(&server, check_request(&headers, None)).unwrap();
        assert_eq!(response.status.as_ref().unwrap().code, 16, "{what}");
        let Some(HttpResponse::DeniedResponse(denied)) = &response.http_response else {
            panic!("{what}: not a denial: {response:?}")
        };
        assert_eq!(denied.status.as_ref().unwrap().code, status, "{what}");
        let got = headers_of(&denied.headers);
        assert_eq!(got["x-auth-error"], code, "{what}");

        let http = server.request("GET", "/auth/orders/42", &headers, b"");
        assert_eq!(http.status as i32, status);
        assert_eq!(
            Some(got["www-authenticate"].as_str()),
            http.header("www-authenticate")
        );
        assert_eq!(denied.body.as_bytes(), &http.body[..], "{what}");
        assert!(response.dynamic_metadata.is_none());
    }
}

/// The route's `context_extensions["policy"]` picks the named policy, as `/policy/{name}/auth` does.
#[test]
fn context_extension_policy_is_enforced() {
    let server = Server::start_on(Target::Native, config());
    let reader = format!("Bearer {}", token(json!({"scope": "read"})));
    let refused = check(
        &server,
        check_request(&[("authorization", &reader)], Some("admin")),
    )
    .unwrap();
    assert_eq!(refused.status.as_ref().unwrap().code, 7);
    let Some(HttpResponse::DeniedResponse(denied)) = &refused.http_response else {
        panic!("not a denial: {refused:?}")
    };
    assert_eq!(denied.status.as_ref().unwrap().code, 403);
    assert_eq!(
        headers_of(&denied.headers)["x-auth-error"],
        "insufficient_scope"
    );

    let admin = format!("Bearer {}", token(json!({"scope": "read admin"})));
    let allowed = check(
        &server,
        check_request(&[("authorization", &admin)], Some("admin")),
    )
    .unwrap();
    assert_eq!(allowed.status.as_ref().unwrap().code, 0);
    assert_eq!(metadata(&allowed, "policy").as_deref(), Some("admin"));
    // Without the extension the default policy applies, which the reader passes.
    let default = check(&server, check_request(&[("authorization", &reader)], None)).unwrap();
    assert_eq!(default.status.as_ref().unwrap().code, 0);
}

/// A policy the validator does not have, or a name that is a path, is the gateway's mistake: no
/// decision (UNAVAILABLE, so Envoy's `status_on_error` applies), never an allow.
#[test]
fn unknown_or_malformed_policy_is_unavailable() {
    let server = Server::start_on(Target::Native, config());
    let admin = format!("Bearer {}", token(json!({"scope": "read admin"})));
    for policy in ["nosuch", "../auth", "admin/x"] {
        let status = check(
            &server,
            check_request(&[("authorization", &admin)], Some(policy)),
        )
        .expect_err(policy);
        assert_eq!(
            status.code(),
            tonic::Code::Unavailable,
            "{policy}: {status:?}"
        );
    }
}

/// design/security.md: with no usable keys, never allow: UNAVAILABLE, and Envoy fails closed.
#[test]
fn check_without_keys_is_unavailable() {
    // A key server that never answers with a key set: the remote set is never loaded.
    let keys = KeyServer::start(String::new());
    keys.set_mode(support::keyserver::Mode::Status(500));
    let server = Server::start_on(
        Target::Native,
        TestConfig::new()
            .env("JWT_JWKS_URI", keys.url(support::keyserver::JWKS_PATH))
            .env("JWT_ALLOW_HTTP_LOOPBACK", "true"),
    );
    let auth = format!("Bearer {}", token(json!({})));
    let status = check(&server, check_request(&[("authorization", &auth)], None)).unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("503"), "{status:?}");
}

/// A check is a decision like any other: counted in `/metrics` under the `auth` route.
#[test]
fn checks_are_counted_as_auth_decisions() {
    let server = Server::start_on(Target::Native, config());
    let auth = format!("Bearer {}", token(json!({})));
    check(&server, check_request(&[("authorization", &auth)], None)).unwrap();
    check(&server, check_request(&[], None)).unwrap();
    let metrics = server.get("/metrics").text();
    for line in [
        r#"jwtv_decisions_total{route="auth",result="allow",code="ok"} 1"#,
        r#"jwtv_decisions_total{route="auth",result="deny",code="missing_token"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
}

/// Issue 26: a DPoP-bound token through gRPC ext_authz, checked against the request Envoy describes
/// (method, scheme, host, path), not a client's forward-auth headers; a proof is used once.
#[test]
fn check_with_a_dpop_bound_token_needs_its_proof_for_envoys_request() {
    let server = Server::start_on(Target::Native, config());
    let client = support::dpop::Client::es256();
    let t = token(json!({"cnf": {"jkt": client.jkt()}}));
    let dpop = format!("DPoP {t}");
    let request = |proof: &str, extra: &[(&str, &str)]| {
        let mut headers = vec![("authorization", dpop.as_str()), ("dpop", proof)];
        headers.extend_from_slice(extra);
        let mut request = check_request(&headers, None);
        if let Some(http) = request
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
        {
            http.scheme = "https".into();
        }
        request
    };
    let denied_code = |response: &CheckResponse| match &response.http_response {
        Some(HttpResponse::DeniedResponse(denied)) => {
            headers_of(&denied.headers).get("x-auth-error").cloned()
        }
        _ => None,
    };
    let proof = client.proof(&t, "GET", "https://api.example/orders/42");
    let ok = check(&server, request(&proof, &[])).unwrap();
    assert_eq!(ok.status.as_ref().unwrap().code, 0, "{ok:?}");
    let again = check(&server, request(&proof, &[])).unwrap();
    assert_eq!(denied_code(&again).as_deref(), Some("invalid_dpop_proof"));
    // A proof for the path the client claims, not the one Envoy routes.
    let other = client.proof(&t, "GET", "https://api.example/public");
    let claimed = check(&server, request(&other, &[("x-forwarded-uri", "/public")])).unwrap();
    assert_eq!(denied_code(&claimed).as_deref(), Some("invalid_dpop_proof"));
}
