//! DPoP (RFC 9449) for the HTTP suites: a client key (ES256, made per test with ring), tokens bound to
//! it (`cnf.jkt`, RFC 7638) and proofs for one protected request, each with a fresh `jti`.

use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

use super::jwt::{b64, signing_input};

pub struct Client {
    pair: EcdsaKeyPair,
    pub jwk: Value,
}

impl Client {
    pub fn es256() -> Client {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref(), &rng)
            .expect("P-256 key");
        let point = pair.public_key().as_ref();
        let jwk =
            json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])});
        Client { pair, jwk }
    }

    /// The RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order.
    pub fn jkt(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().unwrap_or_default(),
            self.jwk["y"].as_str().unwrap_or_default()
        );
        b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// A proof for `token` on `method url`, `iat` now, a new `jti`.
    pub fn proof(&self, token: &str, method: &str, url: &str) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let claims = json!({
            "jti": jti(),
            "htm": method,
            "htu": url,
            "iat": super::now(),
            "ath": b64(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref()),
        });
        let input = signing_input(&header.to_string(), &claims.to_string());
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!("{input}.{}", b64(sig.as_ref()))
    }
}

fn jti() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).expect("random");
    b64(&bytes)
}

/// `POST /validate` with the token, the proof and the protected request in the body.
pub fn validate_body(token: &str, proof: &str, method: &str, url: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"token": token, "dpop": proof, "method": method, "url": url}))
        .expect("json")
}
