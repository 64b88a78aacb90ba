//! `CheckRequest` → the `/auth` request, and the `/auth` answer → `CheckResponse`: only a change of
//! shape. What the answer is (allow, which identity, which refusal) is the service's, decided from the
//! HTTP request exactly as for a proxy's HTTP forward-auth call; nothing here reads a token.

use std::collections::{BTreeMap, HashSet};

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderName, HeaderValue as HttpHeaderValue, Method, Request, Response, StatusCode};
use jwtv_service::gateway::{Gateway, is_policy_name};
use jwtv_service::mtls::ReportedCertificate;

/// Where a route names its policy: `context_extensions` of the route's `ext_authz` per-route settings
/// (Envoy's `check_settings`, Istio's and Envoy Gateway's per-route extensions).
pub const POLICY_KEY: &str = "policy";

const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// gRPC status codes used here (google.rpc.Code).
const OK: i32 = 0;
const PERMISSION_DENIED: i32 = 7;
const UNAUTHENTICATED: i32 = 16;

/// A `CheckRequest` that cannot become an `/auth` request: the gateway's configuration is wrong, so
/// the check fails (`UNAVAILABLE`) and Envoy's `failure_mode_allow` / `status_on_error` decide.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Untranslatable {
    #[error("the check request carries no HTTP request attributes")]
    NoHttpRequest,
    #[error("context_extensions policy {0:?} is not a policy name (letters, digits, '-', '_')")]
    PolicyName(String),
    #[error("the HTTP method {0:?} is not valid")]
    Method(String),
}

/// The `/auth` request a check stands for, and the policy it names.
#[derive(Debug)]
pub struct Translated {
    pub request: Request<Vec<u8>>,
    pub policy: Option<String>,
}

/// `/auth{path}`, or `/policy/{name}/auth{path}` when the route names a policy: the same request a
/// proxy's HTTP forward-auth call makes, with the original method, path, host and headers.
pub fn to_auth_request(check: &CheckRequest) -> Result<Translated, Untranslatable> {
    let attributes = check.attributes.as_ref();
    let http = attributes
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
        .ok_or(Untranslatable::NoHttpRequest)?;
    let policy = match attributes.and_then(|a| a.context_extensions.get(POLICY_KEY)) {
        None => None,
        Some(name) if is_policy_name(name) => Some(name.clone()),
        Some(name) => return Err(Untranslatable::PolicyName(name.clone())),
    };
    let route = match &policy {
        Some(name) => format!("/policy/{name}/auth"),
        None => "/auth".to_owned(),
    };
    let method = if http.method.is_empty() {
        Method::GET
    } else {
        Method::from_bytes(http.method.as_bytes())
            .map_err(|_| Untranslatable::Method(http.method.clone()))?
    };
    // The original path after the route, as a proxy's `/auth/{anything…}` call has it; a path the
    // URI grammar refuses leaves the route alone (the path is context, never what is decided on).
    let uri = if http.path.starts_with('/') {
        format!("{route}{}", http.path)
            .parse()
            .unwrap_or_else(|_| route.parse().unwrap_or_default())
    } else {
        route.parse().unwrap_or_default()
    };
    let mut request = Request::new(Vec::new());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    for (name, value) in client_headers_of(http) {
        // Pseudo-headers (`:path`, `:authority`…) are the attributes above, not headers; so are the
        // headers a forward-auth gateway reports the request in, which here would be the client's
        // own claim (Envoy tells the method, path, host and scheme itself).
        if name.starts_with(':')
            || jwtv_service::request::REPORTED_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
        {
            continue;
        }
        // A header HTTP cannot carry is one the service could not have seen from a proxy either.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HttpHeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    if !http.host.is_empty()
        && let Ok(host) = HttpHeaderValue::from_str(&http.host)
    {
        headers.insert(HOST, host);
    }
    // The scheme, for a DPoP proof's `htu` (`jwtv_service::request`).
    if !http.scheme.is_empty()
        && let Ok(scheme) = HttpHeaderValue::from_str(&http.scheme)
    {
        headers.insert(X_FORWARDED_PROTO, scheme);
    }
    // The client certificate Envoy saw (`include_peer_certificate`), URL-encoded PEM: the service
    // reads it when the deployment names Envoy as the certificate's source.
    if let Some(certificate) = attributes
        .and_then(|a| a.source.as_ref())
        .map(|peer| &peer.certificate)
        .filter(|c| !c.is_empty())
    {
        request
            .extensions_mut()
            .insert(ReportedCertificate(certificate.clone()));
    }
    Ok(Translated { request, policy })
}

/// The request's headers: `header_map` when Envoy sends raw headers (`encode_raw_headers`), else the
/// `headers` map (whose repeated headers Envoy has joined with `,`).
fn client_headers_of(http: &HttpRequest) -> Vec<(&str, &[u8])> {
    match &http.header_map {
        Some(map) if !map.headers.is_empty() => map
            .headers
            .iter()
            .map(|h| {
                let value = if h.raw_value.is_empty() {
                    h.value.as_bytes()
                } else {
                    &h.raw_value[..]
                };
                (h.key.as_str(), value)
            })
            .collect(),
        _ => http
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect(),
    }
}

/// What the route grammar of `/policy/{name}/auth` can hold without being another path.
/// An `/auth` answer that is no decision for Envoy (keys unavailable, no such policy, a timeout):
/// the check fails with gRPC `UNAVAILABLE`, so Envoy applies `status_on_error` (fails closed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the validator cannot decide: /auth answered {status}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct Undecided {
    pub status: u16,
    pub code: Option<String>,
}

/// The `/auth` answer as a `CheckResponse`.
///
/// Allow (200): its identity headers are set upstream (overwriting), every header the client sent
/// that is one ([`Gateway::is_identity_header`]: `x-auth-*`, or a configured claim header) and that
/// the answer does not set is removed, no other header of the answer goes upstream, and `dynamic_metadata` carries `sub`, `iss`, `scope` and the policy for Envoy's logs and
/// RBAC. Deny (401, 403): exactly `/auth`'s status, headers and JSON body for the client.
pub fn to_check_response(
    answer: &Response<Vec<u8>>,
    translated: &Translated,
    gateway: &Gateway,
) -> Result<CheckResponse, Undecided> {
    match answer.status() {
        StatusCode::OK => Ok(allowed(answer, translated, gateway)),
        status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Ok(denied(answer, status)),
        status => Err(Undecided {
            status: status.as_u16(),
            code: answer
                .headers()
                .get(jwtv_service::gateway::X_AUTH_ERROR)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }),
    }
}

fn allowed(
    answer: &Response<Vec<u8>>,
    translated: &Translated,
    gateway: &Gateway,
) -> CheckResponse {
    let mut set = HashSet::new();
    let headers = answer
        .headers()
        .iter()
        .filter(|(name, _)| gateway.is_identity_header(name.as_str()))
        .map(|(name, value)| {
            set.insert(name.as_str());
            header_option(
                name.as_str(),
                value.as_bytes(),
                HeaderAppendAction::OverwriteIfExistsOrAdd,
            )
        })
        .collect();
    // The client's headers are the translated request's (its keys are unique and lowercase).
    let mut headers_to_remove: Vec<String> = translated
        .request
        .headers()
        .keys()
        .map(HeaderName::as_str)
        .filter(|name| gateway.is_identity_header(name) && !set.contains(name))
        .map(str::to_owned)
        .collect();
    headers_to_remove.sort_unstable();

    let identity = |header: &str| {
        answer
            .headers()
            .get(header)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    };
    let mut fields = BTreeMap::new();
    for (key, header) in [
        ("sub", "x-auth-subject"),
        ("iss", "x-auth-issuer"),
        ("scope", "x-auth-scopes"),
    ] {
        if let Some(value) = identity(header) {
            fields.insert(key.to_owned(), string_value(value));
        }
    }
    if let Some(policy) = &translated.policy {
        fields.insert("policy".to_owned(), string_value(policy));
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: OK,
            ..Default::default()
        }),
        dynamic_metadata: Some(Struct {
            fields: fields.into_iter().collect(),
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
            ..Default::default()
        })),
    }
}

fn denied(answer: &Response<Vec<u8>>, status: StatusCode) -> CheckResponse {
    let headers = answer
        .headers()
        .iter()
        .filter(|(name, _)| *name != CONTENT_LENGTH)
        .map(|(name, value)| {
            header_option(
                name.as_str(),
                value.as_bytes(),
                HeaderAppendAction::OverwriteIfExistsOrAdd,
            )
        })
        .collect();
    let code = if status == StatusCode::FORBIDDEN {
        PERMISSION_DENIED
    } else {
        UNAUTHENTICATED
    };
    CheckResponse {
        status: Some(rpc::Status {
            code,
            ..Default::default()
        }),
        dynamic_metadata: None,
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(status.as_u16()),
            }),
            headers,
            // The service's bodies are JSON, hence UTF-8.
            body: String::from_utf8_lossy(answer.body()).into_owned(),
        })),
    }
}

fn header_option(name: &str, value: &[u8], action: HeaderAppendAction) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            // Header values the service writes are visible ASCII; `raw_value` is what Envoy reads
            // first, `value` is kept for older Envoys.
            value: String::from_utf8_lossy(value).into_owned(),
            raw_value: value.to_vec(),
        }),
        append_action: action as i32,
        // Every configured header is sent even when empty (design/api.md §2).
        keep_empty_value: true,
        ..Default::default()
    }
}

fn string_value(value: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context;
    use jwtv_service::gateway::ClaimHeader;

    fn check(headers: &[(&str, &str)], policy: Option<&str>, path: &str) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(attribute_context::Request {
                    http: Some(HttpRequest {
                        method: "POST".to_owned(),
                        path: path.to_owned(),
                        host: "api.example".to_owned(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                            .collect(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                context_extensions: policy
                    .map(|p| (POLICY_KEY.to_owned(), p.to_owned()))
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn check_becomes_the_auth_request_of_its_route() {
        let t = to_auth_request(&check(
            &[(":path", "/x"), ("authorization", "Bearer t")],
            None,
            "/orders/1?x=y",
        ))
        .unwrap();
        assert_eq!(t.request.method(), Method::POST);
        assert_eq!(t.request.uri(), "/auth/orders/1?x=y");
        assert_eq!(t.request.headers()["host"], "api.example");
        assert_eq!(t.request.headers()["authorization"], "Bearer t");
        assert!(t.request.headers().get(":path").is_none());
        assert_eq!(t.policy, None);
    }

    // The request a DPoP proof is checked against is Envoy's, never what the client claims in a
    // forward-auth header.
    #[test]
    fn the_scheme_is_envoys_and_reported_headers_are_dropped() {
        let mut c = check(
            &[
                ("x-forwarded-proto", "http"),
                ("x-forwarded-uri", "/elsewhere"),
                ("x-original-method", "GET"),
                ("dpop", "a.b.c"),
            ],
            None,
            "/orders",
        );
        if let Some(http) = c
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
        {
            http.scheme = "https".to_owned();
        }
        let t = to_auth_request(&c).unwrap();
        let headers = t.request.headers();
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert!(headers.get("x-forwarded-uri").is_none());
        assert!(headers.get("x-original-method").is_none());
        assert_eq!(headers["dpop"], "a.b.c");
    }

    #[test]
    fn context_extension_policy_picks_the_named_policy_route() {
        let t = to_auth_request(&check(&[], Some("admin"), "/a")).unwrap();
        assert_eq!(t.request.uri(), "/policy/admin/auth/a");
        assert_eq!(t.policy.as_deref(), Some("admin"));
    }

    /// The policy name becomes a path segment: it may not climb out of `/policy/{name}/auth`.
    #[test]
    fn policy_name_that_is_a_path_is_untranslatable() {
        for bad in ["../auth", "a/b", "", "..", "a b", "a?b"] {
            assert_eq!(
                to_auth_request(&check(&[], Some(bad), "/")).unwrap_err(),
                Untranslatable::PolicyName(bad.to_owned()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn source_certificate_reaches_the_service_and_nothing_else_does() {
        let mut with_peer = check(&[], None, "/");
        let attributes = with_peer.attributes.as_mut().unwrap();
        attributes.source = Some(attribute_context::Peer {
            certificate: "-----BEGIN%20CERTIFICATE-----".to_owned(),
            ..Default::default()
        });
        let translated = to_auth_request(&with_peer).unwrap();
        assert_eq!(
            translated.request.extensions().get::<ReportedCertificate>(),
            Some(&ReportedCertificate("-----BEGIN%20CERTIFICATE-----".into()))
        );
        let translated = to_auth_request(&check(&[], None, "/")).unwrap();
        assert!(
            translated
                .request
                .extensions()
                .get::<ReportedCertificate>()
                .is_none()
        );
    }

    #[test]
    fn check_without_http_attributes_is_untranslatable() {
        let err = to_auth_request(&CheckRequest::default()).unwrap_err();
        assert_eq!(err, Untranslatable::NoHttpRequest);
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Vec<u8>> {
        let mut r = Response::new(body.as_bytes().to_vec());
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        for (k, v) in headers {
            r.headers_mut().insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HttpHeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    /// Forged identity headers never reach the upstream: those the answer does not overwrite are
    /// removed.
    #[test]
    fn allow_removes_client_identity_headers_it_does_not_set() {
        let t = to_auth_request(&check(
            &[
                ("x-auth-subject", "mallory"),
                ("x-auth-role", "admin"),
                ("x-tenant", "forged"),
                ("accept", "*/*"),
            ],
            Some("p"),
            "/",
        ))
        .unwrap();
        let a = answer(
            200,
            &[
                ("x-auth-subject", "alice"),
                ("x-auth-issuer", "https://issuer"),
                ("x-auth-scopes", "read write"),
                ("x-tenant", "t1"),
                ("cache-control", "no-store"),
            ],
            "",
        );
        let gateway = Gateway {
            claim_headers: vec![
                ClaimHeader::new("x-tenant", "tenant").unwrap(),
                ClaimHeader::new("x-org", "org").unwrap(),
            ],
            ..Gateway::default()
        };
        let r = to_check_response(&a, &t, &gateway).unwrap();
        assert_eq!(r.status.unwrap().code, OK);
        let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
            panic!("not an OK response")
        };
        assert_eq!(ok.headers_to_remove, vec!["x-auth-role".to_owned()]);
        let set: Vec<_> = ok
            .headers
            .iter()
            .map(|h| h.header.as_ref().unwrap().key.as_str())
            .collect();
        assert_eq!(
            set,
            [
                "x-auth-subject",
                "x-auth-issuer",
                "x-auth-scopes",
                "x-tenant"
            ]
        );
        let meta = r.dynamic_metadata.unwrap().fields;
        let s = |k: &str| match &meta[k].kind {
            Some(Kind::StringValue(s)) => s.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(s("sub"), "alice");
        assert_eq!(s("iss"), "https://issuer");
        assert_eq!(s("scope"), "read write");
        assert_eq!(s("policy"), "p");
    }

    #[test]
    fn refusal_keeps_the_auth_status_challenge_and_body() {
        let t = to_auth_request(&check(&[], None, "/")).unwrap();
        let body = r#"{"valid":false,"error":"token_expired"}"#;
        let a = answer(
            401,
            &[
                (
                    "www-authenticate",
                    "Bearer realm=\"r\", error=\"invalid_token\"",
                ),
                ("x-auth-error", "token_expired"),
                ("content-type", "application/json"),
                ("content-length", "40"),
            ],
            body,
        );
        let r = to_check_response(&a, &t, &Gateway::default()).unwrap();
        assert_eq!(r.status.unwrap().code, UNAUTHENTICATED);
        let Some(HttpResponse::DeniedResponse(denied)) = r.http_response else {
            panic!("not a denial")
        };
        assert_eq!(denied.status.unwrap().code, 401);
        assert_eq!(denied.body, body);
        let keys: Vec<_> = denied
            .headers
            .iter()
            .map(|h| h.header.as_ref().unwrap().key.as_str())
            .collect();
        assert_eq!(keys, ["www-authenticate", "x-auth-error", "content-type"]);

        let forbidden =
            to_check_response(&answer(403, &[], "{}"), &t, &Gateway::default()).unwrap();
        assert_eq!(forbidden.status.unwrap().code, PERMISSION_DENIED);
    }

    /// design/api.md §2: 503 when keys are unavailable, so that the gateway fails closed; never an
    /// allow.
    #[test]
    fn unavailable_keys_are_no_decision() {
        let t = to_auth_request(&check(&[], None, "/")).unwrap();
        let a = answer(503, &[("x-auth-error", "temporarily_unavailable")], "{}");
        assert_eq!(
            to_check_response(&a, &t, &Gateway::default()).unwrap_err(),
            Undecided {
                status: 503,
                code: Some("temporarily_unavailable".to_owned())
            }
        );
        assert!(to_check_response(&answer(404, &[], "{}"), &t, &Gateway::default()).is_err());
    }
}
