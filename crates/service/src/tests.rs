//! The contract of `design/api.md` §1, §3 and §4, driven in-process (the HTTP suites in
//! `crates/server/tests` drive the same code through the real shells).

use crate::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use jwtv_verifier::{Key, KeyMaterial, KeyParams, KeySet, KeyStore, Limits, Policy, StaticKeys};
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000;
pub(crate) const SECRET: &[u8] = b"an-hmac-secret-that-is-32-bytes!";

fn service_with(options: Options, keys: Arc<dyn KeyStore + Send + Sync>) -> Service {
    let policy = Policy {
        audiences: vec!["api".into()],
        ..Policy::default()
    };
    let verifier = Verifier::new(vec![policy], Limits::default()).unwrap();
    Service::new(verifier, keys, options)
}

fn static_keys() -> Arc<dyn KeyStore + Send + Sync> {
    let key = Key::new(KeyMaterial::Hmac(SECRET.to_vec()), KeyParams::default()).unwrap();
    Arc::new(StaticKeys(vec![Arc::new(KeySet::new(vec![key]))]))
}

fn service() -> Service {
    service_with(Options::default(), static_keys())
}

pub(crate) fn token(claims: Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        B64.encode(claims.to_string())
    );
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET),
        input.as_bytes(),
    );
    format!("{input}.{}", B64.encode(mac.as_ref()))
}

fn good() -> String {
    token(json!({"sub": "alice", "aud": "api", "exp": NOW + 90}))
}

fn post(body: &str) -> Request<Vec<u8>> {
    Request::post("/validate")
        .header(CONTENT_TYPE, "application/json")
        .body(body.as_bytes().to_vec())
        .unwrap()
}

fn call(s: &Service, req: Request<Vec<u8>>) -> (StatusCode, Value, Handled) {
    let handled = s.handle(&req, NOW);
    let body: Value =
        serde_json::from_slice(handled.response.body()).expect("every answer is JSON");
    assert_eq!(handled.response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(handled.response.headers()[CONTENT_TYPE], "application/json");
    (handled.response.status(), body, handled)
}

#[test]
fn valid_token_is_200_with_claims_and_expires_in() {
    let (status, body, handled) = call(&service(), post(&json!({"token": good()}).to_string()));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["valid"], true);
    assert_eq!(body["claims"]["sub"], "alice");
    assert_eq!(body["expires_in"], 90);
    assert!(
        handled
            .response
            .body()
            .starts_with(br#"{"valid":true,"claims":{"#)
    );
    assert!(handled.decision.unwrap().allowed);
}

#[test]
fn rejected_token_is_401_with_code_description_and_challenge() {
    let t = token(json!({"aud": "other", "exp": NOW + 90}));
    let (status, body, handled) = call(&service(), post(&json!({"token": t}).to_string()));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"valid": false, "error": "invalid_audience", "error_description": "audience is not accepted"})
    );
    let challenge = handled.response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap();
    assert_eq!(
        challenge,
        r#"Bearer realm="jwt-validator", error="invalid_token", error_description="audience is not accepted""#
    );
    let decision = handled.decision.unwrap();
    assert_eq!(
        (decision.allowed, decision.code),
        (false, Some(Code::InvalidAudience))
    );
}

#[test]
fn missing_token_and_bad_bodies_are_400() {
    let s = service();
    for (body, code) in [
        ("", "missing_token"),
        ("  ", "missing_token"),
        ("{}", "missing_token"),
        (r#"{"token":""}"#, "missing_token"),
        (r#"{"token":null}"#, "missing_token"),
        (r#"{"token":5}"#, "invalid_request"),
        (r#"{"token":["a"]}"#, "invalid_request"),
        ("not json", "invalid_request"),
        ("[]", "invalid_request"),
        (r#"{"token":"a","token":"b"}"#, "invalid_request"),
    ] {
        let (status, json, handled) = call(&s, post(body));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json["valid"], false, "{body}");
        assert_eq!(json["error"], code, "{body}");
        assert!(!handled.response.headers().contains_key(WWW_AUTHENTICATE));
    }
}

/// `POST /validate` with the token in `Authorization: Bearer` (issue 13): the header stands in for a
/// body that carries no token; it never overrides one.
mod bearer_on_validate {
    use super::*;
    use http::header::AUTHORIZATION;

    fn post_with(body: &str, authorization: &str) -> Request<Vec<u8>> {
        let mut req = post(body);
        req.headers_mut()
            .append(AUTHORIZATION, authorization.parse().unwrap());
        req
    }

    #[test]
    fn a_header_token_without_a_body_token_is_verified() {
        let s = service();
        let bearer = format!("Bearer {}", good());
        for body in ["", "  ", "{}", r#"{"token":null}"#, r#"{"token":""}"#] {
            let (status, json, _) = call(&s, post_with(body, &bearer));
            assert_eq!(status, StatusCode::OK, "body {body:?}");
            assert_eq!(json["claims"]["sub"], "alice");
        }
        let bare = Request::post("/validate")
            .header(AUTHORIZATION, format!("bearer {}", good()))
            .body(Vec::new())
            .unwrap();
        assert_eq!(
            call(&s, bare).0,
            StatusCode::OK,
            "no Content-Type, no body, scheme in lower case"
        );
    }

    #[test]
    fn the_same_token_in_body_and_header_is_verified() {
        let t = good();
        let req = post_with(&json!({ "token": t }).to_string(), &format!("Bearer {t}"));
        assert_eq!(call(&service(), req).0, StatusCode::OK);
    }

    #[test]
    fn different_tokens_in_body_and_header_are_400_without_echo() {
        let body_token = good();
        let header_token = token(json!({"sub": "mallory", "aud": "api", "exp": NOW + 90}));
        let req = post_with(
            &json!({ "token": body_token }).to_string(),
            &format!("Bearer {header_token}"),
        );
        let (status, json, handled) = call(&service(), req);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["error"], "invalid_request");
        assert!(
            json["error_description"]
                .as_str()
                .unwrap()
                .contains("differ")
        );
        let text = String::from_utf8_lossy(handled.response.body()).into_owned();
        for t in [&body_token, &header_token] {
            let signature = t.rsplit('.').next().unwrap();
            assert!(!text.contains(signature), "echoed a token: {text}");
        }
    }

    #[test]
    fn other_schemes_and_empty_bearers_count_as_no_token() {
        let s = service();
        for authorization in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Bearerx.y.z"] {
            let (status, json, _) = call(&s, post_with("", authorization));
            assert_eq!(status, StatusCode::BAD_REQUEST, "{authorization}");
            assert_eq!(json["error"], "missing_token", "{authorization}");
            let body = json!({ "token": good() }).to_string();
            let (status, _, _) = call(&s, post_with(&body, authorization));
            assert_eq!(status, StatusCode::OK, "body token beside {authorization}");
        }
    }

    #[test]
    fn a_bad_body_stays_400_whatever_the_header() {
        let bearer = format!("Bearer {}", good());
        for body in ["not json", "[]", r#"{"token":5}"#] {
            let (status, json, _) = call(&service(), post_with(body, &bearer));
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(json["error"], "invalid_request", "{body}");
        }
    }

    #[test]
    fn several_authorization_headers_are_400() {
        let mut req = post_with("", &format!("Bearer {}", good()));
        req.headers_mut()
            .append(AUTHORIZATION, format!("Bearer {}", good()).parse().unwrap());
        let (status, json, _) = call(&service(), req);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["error"], "invalid_request");
    }

    #[test]
    fn a_header_token_over_the_cap_is_401_token_too_large() {
        let too_long = format!(
            "Bearer {}",
            "a".repeat(Limits::default().max_token_bytes + 1)
        );
        let (status, json, _) = call(&service(), post_with("", &too_long));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json["error"], "token_too_large");
    }

    #[test]
    fn a_header_token_is_refused_like_a_body_token() {
        let t = token(json!({"aud": "other", "exp": NOW + 90}));
        let (status, json, handled) = call(&service(), post_with("", &format!("Bearer {t}")));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json["error"], "invalid_audience");
        assert!(handled.response.headers().contains_key(WWW_AUTHENTICATE));
    }
}

#[test]
fn limits_method_and_content_type() {
    let s = service_with(
        Options {
            max_body_bytes: 64,
            ..Options::default()
        },
        static_keys(),
    );
    let (status, body, _) = call(&s, post(&format!(r#"{{"token":"{}"}}"#, "a".repeat(80))));
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("invalid_request"))
    );
    assert_eq!(
        s.payload_too_large().response.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );

    let get = Request::get("/validate").body(Vec::new()).unwrap();
    let (status, _, handled) = call(&s, get);
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(handled.response.headers()["allow"], "POST");

    let text = Request::post("/validate")
        .header(CONTENT_TYPE, "text/plain")
        .body(b"{}".to_vec())
        .unwrap();
    assert_eq!(call(&s, text).0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let form = Request::post("/validate")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(b"token=x".to_vec())
        .unwrap();
    assert_eq!(call(&s, form).0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body = json!({"token": good()}).to_string().into_bytes();
    let bare = Request::post("/validate").body(body.clone()).unwrap();
    assert_eq!(
        call(&service(), bare).0,
        StatusCode::OK,
        "missing Content-Type is JSON"
    );
    let charset = Request::post("/validate")
        .header(CONTENT_TYPE, "Application/JSON; charset=utf-8")
        .body(body.clone())
        .unwrap();
    assert_eq!(call(&service(), charset).0, StatusCode::OK);
    // Media types compare case-insensitively, a structured `+json` suffix included (RFC 6839).
    for (media, status) in [
        ("application/problem+JSON", StatusCode::OK),
        (" application/json ", StatusCode::OK),
        ("json", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("+jso", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("application/json+xml", StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ] {
        let request = Request::post("/validate")
            .header(CONTENT_TYPE, media)
            .body(body.clone())
            .unwrap();
        assert_eq!(call(&service(), request).0, status, "{media:?}");
    }
}

#[test]
fn descriptions_can_be_hidden() {
    let s = service_with(
        Options {
            expose_descriptions: false,
            ..Options::default()
        },
        static_keys(),
    );
    let (status, body, handled) = call(&s, post(r#"{"token":"a.b.c"}"#));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"valid": false, "error": "malformed_token"}));
    // Byte for byte what the old Express service answered, field order included.
    assert_eq!(
        handled.response.body(),
        br#"{"valid":false,"error":"malformed_token"}"#
    );
    assert_eq!(
        handled.response.headers()[WWW_AUTHENTICATE],
        r#"Bearer realm="jwt-validator", error="invalid_token""#
    );
}

#[test]
fn error_bodies_never_echo_the_token() {
    let s = service();
    let forged = format!("{}x", good());
    for t in [
        forged.as_str(),
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "a.b.c",
    ] {
        let handled = s.handle(&post(&json!({"token": t}).to_string()), NOW);
        let text = String::from_utf8(handled.response.body().clone()).unwrap();
        assert!(!text.contains(t), "{text}");
        let challenge = handled.response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(!challenge.contains(t));
    }
}

#[test]
fn keys_not_loaded_is_503_never_valid() {
    let s = service_with(Options::default(), Arc::new(StaticKeys(Vec::new())));
    let (status, body, handled) = call(&s, post(&json!({"token": good()}).to_string()));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(body["valid"], false);
    assert!(handled.response.headers().contains_key(RETRY_AFTER));
    let ready = Request::get("/readyz").body(Vec::new()).unwrap();
    assert_eq!(call(&s, ready).0, StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn operations_routes() {
    let s = service();
    let get = |path: &str| Request::get(path).body(Vec::new()).unwrap();
    assert_eq!(call(&s, get("/healthz")).1, json!({"status": "ok"}));
    assert_eq!(call(&s, get("/readyz")).1, json!({"status": "ready"}));
    let (status, body, _) = call(&s, get("/nope"));
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let post_health = Request::post("/healthz").body(Vec::new()).unwrap();
    assert_eq!(call(&s, post_health).0, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn every_code_has_its_status() {
    for code in Code::ALL {
        let expected = match code {
            Code::InvalidRequest | Code::MissingToken => 400,
            Code::InsufficientScope | Code::RuleFailed => 403,
            Code::TemporarilyUnavailable | Code::ReplayStoreUnavailable => 503,
            Code::ServerMisconfigured => 500,
            _ => 401,
        };
        assert_eq!(response::status_for(code).as_u16(), expected, "{code}");
    }
}

#[test]
fn challenge_values_cannot_inject_headers() {
    let v = response::bearer_challenge(
        "r\"e\\alm\r\nX-Evil: 1",
        Some(("invalid_token", "kid \"x\"\r\nSet-Cookie: a")),
    );
    let s = v.to_str().unwrap();
    assert!(!s.contains('\r') && !s.contains('\n'));
    assert_eq!(s.matches('"').count(), 6, "{s}");
}

// ---- Forward auth (api.md §2) ----

mod gateway_mode {
    use super::*;
    use crate::gateway::{ClaimHeader, ClaimRequirement, Gateway, NamedPolicy, Requirements};

    fn gateway_service(keys: Arc<dyn KeyStore + Send + Sync>) -> Service {
        let gateway = Gateway {
            claim_headers: vec![
                ClaimHeader::new("X-User-Email", "email").unwrap(),
                ClaimHeader::new("X-Roles", "realm_access.roles").unwrap(),
            ],
            max_header_value_bytes: 16,
            policies: vec![NamedPolicy {
                name: "admin".into(),
                requirements: Requirements {
                    scopes: vec!["admin".into()],
                    claims: vec![ClaimRequirement {
                        claim: "realm_access.roles".into(),
                        values: vec![json!("ops")],
                    }],
                    ..Requirements::default()
                },
                access: crate::gateway::Access::default(),
            }],
            access: crate::gateway::Access::default(),
        };
        service_with(
            Options {
                gateway,
                ..Options::default()
            },
            keys,
        )
    }

    fn auth(s: &Service, path: &str, authorization: Option<&str>) -> Response<Vec<u8>> {
        let mut req = Request::get(path);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let response = s
            .handle(&req.body(b"ignored body".to_vec()).unwrap(), NOW)
            .response;
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert!(
            matches!(response.status().as_u16(), 200 | 401 | 403 | 503),
            "{}",
            response.status()
        );
        response
    }

    fn header<'a>(r: &'a Response<Vec<u8>>, name: &str) -> &'a str {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn allow_is_200_empty_with_identity_headers() {
        let s = gateway_service(static_keys());
        let t = token(
            json!({"sub": "alice", "iss": "idp", "aud": ["api", "web"], "exp": NOW + 90, "scope": "read write", "realm_access": {"roles": ["ops", "dev"]}}),
        );
        for path in ["/auth", "/auth/", "/auth/some/upstream/path"] {
            let r = auth(&s, path, Some(&format!("Bearer {t}")));
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert!(r.body().is_empty());
            assert_eq!(header(&r, "x-auth-subject"), "alice");
            assert_eq!(header(&r, "x-auth-issuer"), "idp");
            assert_eq!(header(&r, "x-auth-audience"), "api,web");
            assert_eq!(header(&r, "x-auth-scopes"), "read write");
            assert_eq!(header(&r, "x-auth-expires"), (NOW + 90).to_string());
            assert_eq!(header(&r, "x-roles"), "ops,dev");
            assert_eq!(
                header(&r, "x-user-email"),
                "",
                "configured headers are present even when empty"
            );
        }
        let r = auth(&s, "/auth", Some(&format!("bEaReR   {t}  ")));
        assert_eq!(r.status(), StatusCode::OK, "scheme is case-insensitive");
    }

    #[test]
    fn claim_header_values_are_cleaned_and_capped() {
        let s = gateway_service(static_keys());
        let t = token(
            json!({"sub": "a", "aud": "api", "exp": NOW + 90, "email": "x@y.z\r\nX-Admin: 1 and a long tail"}),
        );
        let r = auth(&s, "/auth", Some(&format!("Bearer {t}")));
        let v = header(&r, "x-user-email");
        assert!(!v.contains('\r') && !v.contains('\n'));
        assert_eq!(v, "x@y.zX-Admin: 1 ");
        assert!(r.headers().get("x-admin").is_none());
    }

    #[test]
    fn missing_token_is_401_with_a_bare_challenge() {
        let s = gateway_service(static_keys());
        for authorization in [
            None,
            Some("Basic dXNlcjpwYXNz"),
            Some("Bearer"),
            Some("Bearer   "),
        ] {
            let r = auth(&s, "/auth", authorization);
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{authorization:?}");
            assert_eq!(
                header(&r, "www-authenticate"),
                r#"Bearer realm="jwt-validator""#
            );
            assert_eq!(header(&r, "x-auth-error"), "missing_token");
        }
    }

    #[test]
    fn bad_tokens_are_401_never_400() {
        let s = gateway_service(static_keys());
        let expired = token(json!({"aud": "api", "exp": NOW - 600}));
        for (t, code) in [
            ("a.b", "malformed_token"),
            ("%%%", "malformed_token"),
            (expired.as_str(), "token_expired"),
        ] {
            let r = auth(&s, "/auth", Some(&format!("Bearer {t}")));
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(header(&r, "x-auth-error"), code);
            assert!(header(&r, "www-authenticate").contains(r#"error="invalid_token""#));
        }
        let req = Request::get("/auth")
            .header("authorization", "Bearer a")
            .header("authorization", "Bearer b")
            .body(Vec::new())
            .unwrap();
        assert_eq!(
            s.handle(&req, NOW).response.status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn named_policy_requirements_are_403() {
        let s = gateway_service(static_keys());
        let with = |scope: &str, roles: Value| {
            token(
                json!({"aud": "api", "exp": NOW + 90, "scope": scope, "realm_access": {"roles": roles}}),
            )
        };
        let ok = auth(
            &s,
            "/policy/admin/auth/x",
            Some(&format!("Bearer {}", with("admin", json!(["ops"])))),
        );
        assert_eq!(ok.status(), StatusCode::OK);
        for t in [
            with("read", json!(["ops"])),
            with("admin", json!(["dev"])),
            with("admin", json!(null)),
        ] {
            let r = auth(&s, "/policy/admin/auth", Some(&format!("Bearer {t}")));
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            assert_eq!(header(&r, "x-auth-error"), "insufficient_scope");
            assert!(header(&r, "www-authenticate").contains(r#"error="insufficient_scope""#));
        }
        // The plain /auth route has no such requirement.
        assert_eq!(
            auth(
                &s,
                "/auth",
                Some(&format!("Bearer {}", with("read", json!([]))))
            )
            .status(),
            StatusCode::OK
        );
    }

    #[test]
    fn routes_outside_the_gateway_are_not_matched() {
        let s = gateway_service(static_keys());
        let t = format!("Bearer {}", good());
        for path in [
            "/authx",
            "/policy//auth",
            "/policy/admin/authz",
            "/policy/nope/auth",
            "/policy/admin",
        ] {
            let req = Request::get(path)
                .header("authorization", t.as_str())
                .body(Vec::new())
                .unwrap();
            assert_eq!(
                s.handle(&req, NOW).response.status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    }

    #[test]
    fn keys_unavailable_is_503() {
        let s = gateway_service(Arc::new(StaticKeys(Vec::new())));
        let r = auth(&s, "/auth", Some(&format!("Bearer {}", good())));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&r, "x-auth-error"), "temporarily_unavailable");
    }

    #[test]
    fn mappings_cannot_take_reserved_headers() {
        for h in [
            "X-Auth-Subject",
            "x-auth-expires",
            "X-Auth-Error",
            "Host",
            "content-length",
            "Authorization",
            "bad header",
        ] {
            assert!(ClaimHeader::new(h, "sub").is_err(), "{h}");
        }
        assert_eq!(ClaimHeader::parse_list("X-A=a, X-B=b.c").unwrap().len(), 2);
        assert!(ClaimHeader::parse_list("X-A").is_err());
    }
}

#[test]
fn a_misconfigured_shell_answers_500_with_its_code_and_never_valid() {
    let r = crate::misconfigured("see the log");
    assert_eq!(r.status().as_u16(), 500);
    let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(body["valid"], false);
    assert_eq!(body["error"], Code::ServerMisconfigured.as_str());
    assert_eq!(body["error_description"], "see the log");
}

#[test]
fn client_sent_identity_headers_are_every_x_auth_one_and_each_claim_header() {
    let gateway = gateway::Gateway {
        claim_headers: gateway::ClaimHeader::parse_list("X-Tenant=tenant").unwrap(),
        ..gateway::Gateway::default()
    };
    for name in [
        "x-auth-subject",
        "X-Auth-Anything",
        "X-AUTH-ERROR",
        "x-tenant",
        "X-Tenant",
    ] {
        assert!(gateway.is_identity_header(name), "{name}");
    }
    for name in [
        "x-auth",
        "x-authority",
        "authorization",
        "x-tenants",
        "cache-control",
        "",
    ] {
        assert!(!gateway.is_identity_header(name), "{name}");
    }
}
