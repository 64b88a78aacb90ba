//! What a CEL rule adds to a forward-auth check (issue 24): `GET /auth` with an HS256 token through
//! `Service::handle`, without a rule and with a typical one, and the rule's evaluation alone.
//! `cargo bench -p jwtv-service --bench rules`. No token cache: every request verifies, so the
//! difference is the rule's cost on top of the whole verification.

use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use jwtv_service::gateway::{Access, Gateway};
use jwtv_service::request::Original;
use jwtv_service::rule::Rule;
use jwtv_service::verifier::{
    Key, KeyMaterial, KeyParams, KeySet, Limits, Policy, StaticKeys, Verifier,
};
use jwtv_service::{Options, Service};
use jwtv_signer::{SigningKey, encode};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;

const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
/// A typical rule: a nested claim, a flag and the request's method.
const RULE: &str =
    "'ops' in claims.realm_access.roles && claims.email_verified && request.method == 'GET'";

fn service(rule: Option<&str>) -> Service {
    let key = Key::new(KeyMaterial::Hmac(SECRET.to_vec()), KeyParams::default()).unwrap();
    let keys = Arc::new(StaticKeys(vec![Arc::new(KeySet::new(vec![key]))]));
    let verifier = Verifier::new(vec![Policy::default()], Limits::default()).unwrap();
    let gateway = Gateway {
        access: Access {
            rule: rule.map(|r| Rule::compile(r).unwrap()),
            ..Access::default()
        },
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

fn claims() -> serde_json::Value {
    json!({
        "iss": "https://login.example.com", "sub": "alice", "aud": "api", "exp": NOW + 600,
        "iat": NOW, "scope": "read write", "email": "alice@example.com", "email_verified": true,
        "realm_access": {"roles": ["dev", "ops"]}, "groups": ["team-a", "team-b"]
    })
}

fn bench(c: &mut Criterion) {
    let token = encode(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims(),
        &SigningKey::hmac(SECRET),
    )
    .unwrap();
    let request = Request::get("/auth")
        .header("authorization", format!("Bearer {token}"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/orders/42")
        .header("x-forwarded-host", "app.example")
        .header("user-agent", "bench")
        .body(Vec::new())
        .unwrap();
    let mut group = c.benchmark_group("auth_hs256");
    for (name, rule) in [("no_rule", None), ("typical_rule", Some(RULE))] {
        let service = service(rule);
        assert_eq!(service.handle(&request, NOW).response.status(), 200);
        group.bench_function(name, |b| {
            b.iter(|| service.handle(black_box(&request), NOW))
        });
    }
    group.finish();

    let rule = Rule::compile(RULE).unwrap();
    let claims = claims().as_object().unwrap().clone();
    let headers = request.headers().clone();
    let original = Original {
        method: "GET",
        path: "/orders/42",
        query: None,
        host: "app.example",
        scheme: Some("https"),
        headers: &headers,
        extensions: request.extensions(),
    };
    c.bench_function("rule_evaluate_typical", |b| {
        b.iter(|| rule.evaluate(black_box(&claims), black_box(&original)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
