//! What a certificate-bound token costs (RFC 8705 §3, issue 26): a forward-auth check of an HS256
//! token bound to a client certificate through `Service::handle`, for each place a gateway reports the
//! certificate, beside the same check of a bearer token. `cargo bench -p jwtv-service --bench mtls`.
//! No token cache. The binding hashes the certificate's DER and never parses it, so 1,200 bytes (a
//! typical client certificate with a 2048-bit RSA key) stand in for one.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use jwtv_service::mtls::CertSource;
use jwtv_service::verifier::{
    Key, KeyMaterial, KeyParams, KeySet, Limits, Policy, StaticKeys, Verifier,
};
use jwtv_service::{Options, Service};
use jwtv_signer::{SigningKey, encode};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::sync::Arc;

const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn certificate() -> Vec<u8> {
    (0..1200u32).map(|i| (i * 31 % 251) as u8).collect()
}

fn token(thumbprint: Option<&str>) -> String {
    let mut claims = json!({"sub": "alice", "exp": NOW + 600});
    if let Some(t) = thumbprint {
        claims["cnf"] = json!({"x5t#S256": t});
    }
    encode(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
        &SigningKey::hmac(SECRET),
    )
    .unwrap()
}

fn service(source: &str) -> Service {
    let key = Key::new(KeyMaterial::Hmac(SECRET.to_vec()), KeyParams::default()).unwrap();
    let keys = Arc::new(StaticKeys(vec![Arc::new(KeySet::new(vec![key]))]));
    let verifier = Verifier::new(vec![Policy::default()], Limits::default()).unwrap();
    let mut options = Options::default();
    options.set_client_cert(CertSource::parse(source).unwrap());
    Service::new(verifier, keys, options)
}

/// nginx's `$ssl_client_escaped_cert`: PEM, URL-escaped.
fn escaped_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    );
    percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn auth(token: &str, header: Option<(&str, String)>) -> Request<Vec<u8>> {
    let mut req = Request::get("/auth").header("authorization", format!("Bearer {token}"));
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    req.body(Vec::new()).unwrap()
}

fn bench(c: &mut Criterion) {
    let der = certificate();
    let digest = Sha256::digest(&der);
    let bound = token(Some(&B64.encode(digest)));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let cases = [
        (
            "nginx_escaped_pem",
            "header:X-SSL-Client-Cert:pem",
            ("x-ssl-client-cert", escaped_pem(&der)),
        ),
        (
            "traefik_der",
            "header:X-Forwarded-Tls-Client-Cert:der",
            ("x-forwarded-tls-client-cert", STANDARD.encode(&der)),
        ),
        (
            "envoy_xfcc_hash",
            "xfcc",
            (
                "x-forwarded-client-cert",
                format!("By=spiffe://api;Hash={hex};Subject=\"CN=client\""),
            ),
        ),
    ];
    let mut group = c.benchmark_group("auth_hs256_certificate_bound");
    let plain = service("none");
    let bearer = auth(&token(None), None);
    assert_eq!(plain.handle(&bearer, NOW).response.status(), 200);
    group.bench_function("bearer", |b| {
        b.iter(|| plain.handle(black_box(&bearer), NOW))
    });
    for (name, source, header) in cases {
        let s = service(source);
        let req = auth(&bound, Some(header));
        assert_eq!(s.handle(&req, NOW).response.status(), 200, "{name}");
        group.bench_function(name, |b| b.iter(|| s.handle(black_box(&req), NOW)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
