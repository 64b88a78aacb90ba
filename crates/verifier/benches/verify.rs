//! One full verification per algorithm (parse, key selection, signature, claims), in process.
//! `cargo bench -p jwtv-verifier` for the native (ring) backend; add `--features rustcrypto` for the
//! pure-Rust backend the WebAssembly component uses.

use criterion::{Criterion, criterion_group, criterion_main};
use jwtv_signer::{SigningKey, encode};
use jwtv_verifier::{
    Algorithm, Family, Key, KeyMaterial, KeyParams, KeySet, Limits, Policy, StaticKeys, Verifier,
    decode_public_key_pem,
};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;

const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn fixture(alg: Algorithm) -> (KeyMaterial, SigningKey) {
    let (public, private): (&str, &[u8]) = match alg.family() {
        Family::Hmac => return (KeyMaterial::Hmac(SECRET.to_vec()), SigningKey::hmac(SECRET)),
        Family::Rsa => (
            include_str!("../testdata/rsa2048.pub.pem"),
            include_bytes!("../testdata/rsa2048.pk8.der"),
        ),
        Family::Ec(jwtv_verifier::Curve::P256) => (
            include_str!("../testdata/p256.pub.pem"),
            include_bytes!("../testdata/p256.pk8.der"),
        ),
        Family::Ec(jwtv_verifier::Curve::P384) => (
            include_str!("../testdata/p384.pub.pem"),
            include_bytes!("../testdata/p384.pk8.der"),
        ),
        Family::Ec(_) => (
            include_str!("../testdata/p521.pub.pem"),
            include_bytes!("../testdata/p521.pk8.der"),
        ),
        Family::Okp(_) => (
            include_str!("../testdata/ed25519.pub.pem"),
            include_bytes!("../testdata/ed25519.pk8.der"),
        ),
    };
    let material = decode_public_key_pem(public).expect("fixture public key");
    let signer = SigningKey::from_pkcs8_der(alg.as_str(), private).expect("fixture private key");
    (material, signer)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("verify/{}", jwtv_verifier::crypto::BACKEND));
    for alg in Algorithm::ALL {
        let (material, signer) = fixture(alg);
        let key = Key::new(
            material,
            KeyParams {
                alg: Some(alg),
                ..KeyParams::default()
            },
        )
        .expect("key");
        let keys = StaticKeys(vec![Arc::new(KeySet::new(vec![key]))]);
        let verifier = Verifier::new(
            vec![Policy {
                audiences: vec!["api".into()],
                ..Policy::default()
            }],
            Limits::default(),
        )
        .expect("verifier");
        let claims = json!({"iss": "https://issuer.example", "sub": "user-1234", "aud": "api", "exp": NOW + 3600, "iat": NOW, "scope": "read write"});
        let token = encode(
            &json!({"alg": alg.as_str(), "typ": "JWT"}),
            &claims,
            &signer,
        )
        .expect("token");
        verifier
            .verify(token.as_bytes(), NOW, &keys)
            .expect("fixture token verifies");
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| verifier.verify(black_box(token.as_bytes()), NOW, &keys))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
