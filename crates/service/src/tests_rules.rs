//! Token sources, anonymous routes and CEL rules (issue 24), through [`Service::handle`]: each rule of
//! `sources.rs`, `request.rs` and `rule.rs` as the routes apply it.

use crate::gateway::{Access, Gateway, NamedPolicy, Requirements, X_AUTH_ERROR};
use crate::rule::{Rule, RuleError};
use crate::sources::TokenSource;
use crate::tests::token;
use crate::*;
use http::header::WWW_AUTHENTICATE;
use http::{Request, StatusCode};
use jwtv_verifier::{Key, KeyMaterial, KeyParams, KeySet, Limits, Policy, StaticKeys};
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000;

fn service(access: Access, named: Vec<(&str, Access)>) -> Service {
    let key = Key::new(
        KeyMaterial::Hmac(crate::tests::SECRET.to_vec()),
        KeyParams::default(),
    )
    .unwrap();
    let keys = Arc::new(StaticKeys(vec![Arc::new(KeySet::new(vec![key]))]));
    let verifier = Verifier::new(vec![Policy::default()], Limits::default()).unwrap();
    let gateway = Gateway {
        claim_headers: vec![gateway::ClaimHeader::new("X-Email", "email").unwrap()],
        access,
        policies: named
            .into_iter()
            .map(|(name, access)| NamedPolicy {
                name: name.into(),
                requirements: Requirements::default(),
                access,
            })
            .collect(),
        ..Gateway::default()
    };
    Service::new(
        verifier,
        keys,
        Options {
            gateway,
            ..Options::default()
        },
    )
}

fn sources(spec: &str) -> Access {
    Access {
        token_sources: TokenSource::parse_list(spec).unwrap(),
        ..Access::default()
    }
}

fn ruled(rule: &str) -> Access {
    Access {
        rule: Some(Rule::compile(rule).unwrap()),
        ..Access::default()
    }
}

fn alice() -> String {
    token(json!({
        "sub": "alice", "exp": NOW + 90, "email": "a@example.com", "email_verified": true,
        "groups": ["dev", "admin"], "realm_access": {"roles": ["ops"]}, "level": 3
    }))
}

fn auth(s: &Service, path: &str, headers: &[(&str, &str)]) -> Handled {
    let mut req = Request::get(path);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    s.handle(&req.body(Vec::new()).unwrap(), NOW)
}

fn code(h: &Handled) -> Option<&str> {
    h.response
        .headers()
        .get(X_AUTH_ERROR)
        .map(|v| v.to_str().unwrap())
}

// ---- Token sources ----

#[test]
fn a_cookie_token_is_accepted_when_listed() {
    let s = service(sources("cookie:session"), vec![]);
    let h = auth(
        &s,
        "/auth",
        &[("cookie", &format!("theme=dark; session=\"{}\"", alice()))],
    );
    assert_eq!(h.response.status(), StatusCode::OK);
    assert_eq!(h.response.headers()["x-auth-subject"], "alice");
    assert_eq!(h.decision.unwrap().source, Some(0));
}

#[test]
fn a_cookie_token_is_not_read_by_default() {
    let s = service(Access::default(), vec![]);
    let h = auth(&s, "/auth", &[("cookie", &format!("session={}", alice()))]);
    assert_eq!(h.response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(&h), Some("missing_token"));
}

#[test]
fn a_custom_header_token_is_accepted_when_listed() {
    let s = service(sources("bearer,header:x-jwt"), vec![]);
    let h = auth(&s, "/auth", &[("x-jwt", &alice())]);
    assert_eq!(h.response.status(), StatusCode::OK);
    assert_eq!(h.decision.unwrap().source, Some(1));
}

#[test]
fn a_query_token_is_read_from_the_original_uri_when_listed() {
    let s = service(sources("query:access_token"), vec![]);
    let uri = format!("/app?access_token={}", alice());
    let h = auth(&s, "/auth", &[("x-forwarded-uri", &uri)]);
    assert_eq!(h.response.status(), StatusCode::OK);
    // Envoy: the original path and query under the path prefix.
    let h = auth(&s, &format!("/auth/app?access_token={}", alice()), &[]);
    assert_eq!(h.response.status(), StatusCode::OK);
    let s = service(Access::default(), vec![]);
    let h = auth(&s, "/auth", &[("x-forwarded-uri", &uri)]);
    assert_eq!(code(&h), Some("missing_token"));
}

// /auth answers 401 or 403 only (api.md §2: nginx turns anything else into 500), so a conflict is 401
// with the code invalid_request; /validate keeps 400 as for body vs header.
#[test]
fn different_tokens_in_two_sources_are_refused_on_every_route() {
    let other = token(json!({"sub": "mallory", "exp": NOW + 90}));
    let s = service(
        sources("cookie:session,bearer"),
        vec![("p", sources("cookie:session,bearer"))],
    );
    let headers = [
        ("cookie", format!("session={}", alice())),
        ("authorization", format!("Bearer {other}")),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    for path in ["/auth", "/policy/p/auth"] {
        let h = auth(&s, path, &headers);
        assert_eq!(h.response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(code(&h), Some("invalid_request"), "{path}");
        let challenge = h.response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.contains("error=\"invalid_request\""),
            "{challenge}"
        );
    }
    let mut req = Request::post("/validate").header("content-type", "application/json");
    for (n, v) in &headers {
        req = req.header(*n, *v);
    }
    let h = s.handle(&req.body(Vec::new()).unwrap(), NOW);
    assert_eq!(h.response.status(), StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_slice(h.response.body()).unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(!String::from_utf8_lossy(h.response.body()).contains(&other));
}

#[test]
fn validate_reads_the_default_policys_sources() {
    let s = service(sources("header:x-jwt"), vec![]);
    let req = Request::post("/validate")
        .header("x-jwt", alice())
        .body(Vec::new())
        .unwrap();
    let h = s.handle(&req, NOW);
    assert_eq!(h.response.status(), StatusCode::OK);
    // The body's token and a source's, when different, conflict as they did with the header.
    let body = json!({"token": token(json!({"sub": "bob", "exp": NOW + 9}))}).to_string();
    let req = Request::post("/validate")
        .header("x-jwt", alice())
        .body(body.into_bytes())
        .unwrap();
    assert_eq!(
        s.handle(&req, NOW).response.status(),
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn each_named_policy_has_its_own_sources() {
    let s = service(Access::default(), vec![("web", sources("cookie:id"))]);
    let cookie = format!("id={}", alice());
    assert_eq!(
        auth(&s, "/policy/web/auth", &[("cookie", &cookie)])
            .response
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        auth(&s, "/auth", &[("cookie", &cookie)]).response.status(),
        StatusCode::UNAUTHORIZED
    );
}

// ---- Anonymous routes ----

fn anonymous() -> Access {
    Access {
        anonymous: true,
        ..Access::default()
    }
}

#[test]
fn an_anonymous_route_passes_a_request_without_token_with_empty_identity() {
    let s = service(anonymous(), vec![]);
    let h = auth(&s, "/auth", &[("x-auth-subject", "root")]);
    assert_eq!(h.response.status(), StatusCode::OK);
    for name in [
        "x-auth-subject",
        "x-auth-issuer",
        "x-auth-audience",
        "x-auth-scopes",
        "x-auth-expires",
        "x-email",
    ] {
        assert_eq!(
            h.response.headers()[name],
            "",
            "{name} must be present and empty"
        );
    }
    let d = h.decision.unwrap();
    assert!(d.allowed && d.anonymous);
}

#[test]
fn an_anonymous_route_still_refuses_a_bad_token() {
    let s = service(anonymous(), vec![]);
    let expired = token(json!({"sub": "alice", "exp": NOW - 3600}));
    let h = auth(
        &s,
        "/auth",
        &[("authorization", &format!("Bearer {expired}"))],
    );
    assert_eq!(h.response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(&h), Some("token_expired"));
    let h = auth(&s, "/auth", &[("authorization", "Bearer not-a-jwt")]);
    assert_eq!(code(&h), Some("malformed_token"));
}

#[test]
fn an_anonymous_route_with_a_good_token_sends_its_identity() {
    let s = service(anonymous(), vec![]);
    let h = auth(
        &s,
        "/auth",
        &[("authorization", &format!("Bearer {}", alice()))],
    );
    assert_eq!(h.response.headers()["x-auth-subject"], "alice");
    assert!(!h.decision.unwrap().anonymous);
}

#[test]
fn anonymous_is_per_policy() {
    let s = service(Access::default(), vec![("public", anonymous())]);
    assert_eq!(
        auth(&s, "/policy/public/auth", &[]).response.status(),
        StatusCode::OK
    );
    assert_eq!(
        auth(&s, "/auth", &[]).response.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn validate_never_passes_without_a_token() {
    let s = service(anonymous(), vec![]);
    let req = Request::post("/validate").body(Vec::new()).unwrap();
    assert_eq!(
        s.handle(&req, NOW).response.status(),
        StatusCode::BAD_REQUEST
    );
}

// ---- CEL rules ----

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[test]
fn a_true_rule_on_a_nested_claim_passes() {
    let s = service(
        ruled("'ops' in claims.realm_access.roles && claims.email_verified"),
        vec![],
    );
    let h = auth(&s, "/auth", &[("authorization", &bearer(&alice()))]);
    assert_eq!(h.response.status(), StatusCode::OK);
}

#[test]
fn a_false_rule_is_403_rule_failed_without_insufficient_scope() {
    let s = service(ruled("'root' in claims.groups"), vec![]);
    let h = auth(&s, "/auth", &[("authorization", &bearer(&alice()))]);
    assert_eq!(h.response.status(), StatusCode::FORBIDDEN);
    assert_eq!(code(&h), Some("rule_failed"));
    let challenge = h.response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"rule_failed\""), "{challenge}");
    assert!(!challenge.contains("insufficient_scope"), "{challenge}");
    assert_eq!(
        h.decision.unwrap().code,
        Some(jwtv_verifier::Code::RuleFailed)
    );
}

// An evaluation error refuses: a missing claim used as a list, a non-boolean result.
#[test]
fn a_rule_that_cannot_be_evaluated_refuses() {
    for rule in [
        "'x' in claims.missing",
        "claims.sub",
        "claims.groups.exists(g, g > 1)",
        "claims.level / 0 == 1",
    ] {
        let s = service(ruled(rule), vec![]);
        let h = auth(&s, "/auth", &[("authorization", &bearer(&alice()))]);
        assert_eq!(h.response.status(), StatusCode::FORBIDDEN, "{rule}");
        assert_eq!(code(&h), Some("rule_failed"), "{rule}");
    }
}

#[test]
fn a_rule_runs_only_after_the_token_is_verified() {
    let s = service(ruled("true"), vec![]);
    let forged = format!("{}x", alice());
    let h = auth(&s, "/auth", &[("authorization", &bearer(&forged))]);
    assert_eq!(code(&h), Some("invalid_signature"));
}

#[test]
fn a_rule_on_validate_is_403() {
    let s = service(ruled("claims.level > 5"), vec![]);
    let req = Request::post("/validate")
        .body(json!({"token": alice()}).to_string().into_bytes())
        .unwrap();
    let h = s.handle(&req, NOW);
    assert_eq!(h.response.status(), StatusCode::FORBIDDEN);
    let body: Value = serde_json::from_slice(h.response.body()).unwrap();
    assert_eq!(body["error"], "rule_failed");
    assert_eq!(body["valid"], false);
}

#[test]
fn json_numbers_compare_as_ints_and_doubles() {
    for rule in [
        "claims.level == 3",
        "claims.level >= 2 && claims.exp > 0",
        "size(claims.groups) == 2",
    ] {
        let s = service(ruled(rule), vec![]);
        let h = auth(&s, "/auth", &[("authorization", &bearer(&alice()))]);
        assert_eq!(h.response.status(), StatusCode::OK, "{rule}");
    }
}

fn method_rule() -> Service {
    service(
        ruled(
            "request.method == 'GET' || 'admin' in claims.groups && request.path.startsWith('/admin')",
        ),
        vec![],
    )
}

// The original request as each gateway reports it (request.rs).
#[test]
fn request_attributes_come_from_each_gateways_headers() {
    let s = service(
        ruled(
            "request.method == 'DELETE' && request.path == '/admin/x' && request.host == 'app.example' && request.headers['x-tenant'] == 't1'",
        ),
        vec![],
    );
    let t = bearer(&alice());
    let traefik = [
        ("authorization", t.as_str()),
        ("x-forwarded-method", "DELETE"),
        ("x-forwarded-uri", "/admin/x?y=1"),
        ("x-forwarded-host", "app.example"),
        ("x-tenant", "t1"),
    ];
    assert_eq!(
        auth(&s, "/auth", &traefik).response.status(),
        StatusCode::OK
    );
    let nginx = [
        ("authorization", t.as_str()),
        ("host", "app.example"),
        ("x-original-method", "DELETE"),
        ("x-original-uri", "/admin/x"),
        ("x-tenant", "t1"),
    ];
    assert_eq!(auth(&s, "/auth", &nginx).response.status(), StatusCode::OK);
    let mut req = Request::delete("/auth/admin/x")
        .header("authorization", t.as_str())
        .header("host", "app.example")
        .header("x-tenant", "t1");
    let envoy = s.handle(&req.body(Vec::new()).unwrap(), NOW);
    assert_eq!(envoy.response.status(), StatusCode::OK);
    req = Request::get("/auth/admin/x")
        .header("authorization", t.as_str())
        .header("host", "app.example")
        .header("x-tenant", "t1");
    assert_eq!(
        s.handle(&req.body(Vec::new()).unwrap(), NOW)
            .response
            .status(),
        StatusCode::FORBIDDEN
    );
}

#[test]
fn a_rule_on_the_request_method_decides_per_request() {
    let s = method_rule();
    let bob = bearer(&token(
        json!({"sub": "bob", "exp": NOW + 90, "groups": ["dev"]}),
    ));
    let get = [
        ("authorization", bob.as_str()),
        ("x-forwarded-method", "GET"),
        ("x-forwarded-uri", "/admin/a"),
    ];
    let post = [
        ("authorization", bob.as_str()),
        ("x-forwarded-method", "POST"),
        ("x-forwarded-uri", "/admin/a"),
    ];
    assert_eq!(auth(&s, "/auth", &get).response.status(), StatusCode::OK);
    assert_eq!(
        auth(&s, "/auth", &post).response.status(),
        StatusCode::FORBIDDEN
    );
    let admin = bearer(&alice());
    let post = [
        ("authorization", admin.as_str()),
        ("x-forwarded-method", "POST"),
        ("x-forwarded-uri", "/admin/a"),
    ];
    assert_eq!(auth(&s, "/auth", &post).response.status(), StatusCode::OK);
}

#[test]
fn bad_rules_are_refused_at_load_with_a_column() {
    let cases = [
        ("claims.sub ==", 14),
        ("claims.sub == == 'a'", 15),
        ("clams.sub == 'a'", 1),
        ("claims.sub == 'a' && env.x", 22),
        ("exec('rm')", 5),
        (
            "claims.a.all(x, claims.b.all(y, claims.c.all(z, true)))",
            45,
        ),
    ];
    for (rule, column) in cases {
        match Rule::compile(rule) {
            Err(RuleError::Invalid { column: c, message }) => {
                assert_eq!(c, column, "{rule}: {message}")
            }
            other => panic!("{rule}: {other:?}"),
        }
    }
    assert!(Rule::compile("").is_err());
    assert!(Rule::compile(&"true && ".repeat(1000).to_string()).is_err());
    // Bounded before the parser recurses: 20 brackets overflowed a test thread's stack.
    for n in [9, 20, 1000] {
        let deep = format!("{}true{}", "(".repeat(n), ")".repeat(n));
        assert!(
            matches!(
                Rule::compile(&deep),
                Err(RuleError::Invalid { column: 9, .. })
            ),
            "{n}"
        );
    }
    let ok = format!("{}true{}", "(".repeat(8), ")".repeat(8));
    Rule::compile(&ok).unwrap();
    // Brackets in string literals count too (a literal scanner that got raw or triple-quoted strings
    // wrong would let deep nesting through): balanced ones cost nothing, nine open ones are refused.
    Rule::compile("claims.sub == '(a)' && claims.x == \"[b]\"").unwrap();
    assert!(Rule::compile(&format!("claims.sub == '{}'", "(".repeat(9))).is_err());
    let hidden = format!(r"r'\' + '''a'b''' == {}x{}", "(".repeat(20), ")".repeat(20));
    assert!(Rule::compile(&hidden).is_err());
    for n in [200, 290] {
        assert!(Rule::compile(&"true ? true : ".repeat(n)).is_err(), "{n}");
    }
}

#[test]
fn rules_see_only_claims_request_and_their_own_variables() {
    Rule::compile("claims.groups.exists(g, g == 'admin') && request.method == 'GET'").unwrap();
    Rule::compile("claims.groups.all(g, claims.roles.exists(r, r == g))").unwrap();
    Rule::compile("has(claims.email) && claims.email.endsWith('@example.com')").unwrap();
}

// A rule gets only the fields it selects (rule.rs `Reads`); one that uses a variable whole gets all of
// it, and a field it does not select is never there to be misread.
#[test]
fn rules_that_use_a_variable_whole_see_all_of_it() {
    for rule in [
        "size(claims) == 7",
        "claims.exists(k, k == 'realm_access')",
        "claims['realm_access'].roles[0] == 'ops'",
        "'email' in claims && !('missing' in claims)",
        "size(request) == 4 && request.method == 'GET'",
    ] {
        let s = service(ruled(rule), vec![]);
        let h = auth(&s, "/auth", &[("authorization", &bearer(&alice()))]);
        assert_eq!(h.response.status(), StatusCode::OK, "{rule}");
    }
    let s = service(ruled("has(claims.email) && !has(claims.phone)"), vec![]);
    let h = auth(&s, "/auth", &[("authorization", &bearer(&alice()))]);
    assert_eq!(h.response.status(), StatusCode::OK);
}
