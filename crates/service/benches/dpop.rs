//! What a DPoP proof costs (issue 26): `dpop::check` alone (parse, `jwk` import, signature, the
//! claim checks, thumbprint) for ES256 and EdDSA proofs, and a forward-auth check of a bound HS256
//! token with its proof through `Service::handle` beside the same check of a bearer token.
//! `cargo bench -p jwtv-service --bench dpop`. No token cache, no replay store (the shell's).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use jwtv_service::dpop::{self, Proof, Settings, Target};
use jwtv_service::verifier::{
    Key, KeyMaterial, KeyParams, KeySet, Limits, Policy, StaticKeys, Verifier,
};
use jwtv_service::{Options, Service};
use jwtv_signer::{SigningKey, encode, encode_raw};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::sync::Arc;

const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const URL: &str = "https://api.example/orders";

fn es256() -> (SigningKey, Value) {
    let rng = SystemRandom::new();
    let alg = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
    let der = sig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = sig::EcdsaKeyPair::from_pkcs8(alg, der.as_ref(), &rng).unwrap();
    let p = pair.public_key().as_ref();
    let jwk =
        json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..])});
    (
        SigningKey::from_pkcs8_der("ES256", der.as_ref()).unwrap(),
        jwk,
    )
}

fn ed25519() -> (SigningKey, Value) {
    let der = sig::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = sig::Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(pair.public_key().as_ref())});
    (
        SigningKey::from_pkcs8_der("EdDSA", der.as_ref()).unwrap(),
        jwk,
    )
}

fn proof(alg: &str, key: &SigningKey, jwk: &Value, token: &str) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
    let claims = json!({"jti": "e1j3V_bKic8-LAEB", "htm": "GET", "htu": URL, "iat": NOW,
        "ath": B64.encode(Sha256::digest(token.as_bytes()))});
    encode_raw(
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
        alg,
        key,
    )
    .unwrap()
}

fn token(jkt: Option<&str>) -> String {
    let mut claims = json!({"sub": "alice", "exp": NOW + 600});
    if let Some(jkt) = jkt {
        claims["cnf"] = json!({"jkt": jkt});
    }
    encode(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
        &SigningKey::hmac(SECRET),
    )
    .unwrap()
}

fn service() -> Service {
    let key = Key::new(KeyMaterial::Hmac(SECRET.to_vec()), KeyParams::default()).unwrap();
    let keys = Arc::new(StaticKeys(vec![Arc::new(KeySet::new(vec![key]))]));
    let verifier = Verifier::new(vec![Policy::default()], Limits::default()).unwrap();
    Service::new(verifier, keys, Options::default())
}

fn auth(authorization: String, proof: Option<&str>) -> Request<Vec<u8>> {
    let mut req = Request::get("/auth")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "api.example")
        .header("x-forwarded-uri", "/orders")
        .header("authorization", authorization);
    if let Some(proof) = proof {
        req = req.header("dpop", proof);
    }
    req.body(Vec::new()).unwrap()
}

fn bench(c: &mut Criterion) {
    let settings = Settings::default();
    let mut group = c.benchmark_group("dpop_check");
    for (alg, (key, jwk)) in [("ES256", es256()), ("EdDSA", ed25519())] {
        let jkt = dpop::thumbprint(jwk.as_object().unwrap()).unwrap();
        let access_token = token(Some(&jkt));
        let proof_text = proof(alg, &key, &jwk, &access_token);
        let input = Proof {
            proof: &proof_text,
            access_token: &access_token,
            jkt: &jkt,
            target: Target {
                method: "GET",
                url: URL,
            },
            leeway_secs: 60,
            max_bytes: 8192,
        };
        assert!(dpop::check(&input, &settings, NOW).is_ok());
        group.bench_function(alg, |b| {
            b.iter(|| dpop::check(black_box(&input), &settings, NOW))
        });
        // The floor under the same load: the signature alone, with the key already imported.
        let imported =
            jwtv_service::verifier::jwk::parse_jwk(jwk.as_object().unwrap(), false).unwrap();
        let (signing_input, signature) = proof_text.rsplit_once('.').unwrap();
        let signature = B64.decode(signature).unwrap();
        let algorithm = alg.parse().unwrap();
        assert!(imported.verify_signature(algorithm, signing_input.as_bytes(), &signature));
        group.bench_function(format!("{alg}_signature_only"), |b| {
            b.iter(|| {
                imported.verify_signature(
                    algorithm,
                    black_box(signing_input.as_bytes()),
                    &signature,
                )
            })
        });
        group.bench_function(format!("{alg}_jwk_import_only"), |b| {
            b.iter(|| {
                jwtv_service::verifier::jwk::parse_jwk(black_box(jwk.as_object().unwrap()), false)
            })
        });
    }
    group.finish();

    let s = service();
    let (key, jwk) = es256();
    let jkt = dpop::thumbprint(jwk.as_object().unwrap()).unwrap();
    let bound = token(Some(&jkt));
    let proof_text = proof("ES256", &key, &jwk, &bound);
    let with_proof = auth(format!("DPoP {bound}"), Some(&proof_text));
    let bearer = auth(format!("Bearer {}", token(None)), None);
    assert!(s.handle(&with_proof, NOW).replay.is_some());
    assert_eq!(s.handle(&bearer, NOW).response.status(), 200);
    let mut group = c.benchmark_group("auth_hs256");
    group.bench_function("bearer", |b| b.iter(|| s.handle(black_box(&bearer), NOW)));
    group.bench_function("dpop_es256", |b| {
        b.iter(|| s.handle(black_box(&with_proof), NOW))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
