//! DPoP (RFC 9449) clients for the suites: a fresh key pair per client (ES256 or EdDSA, made with
//! ring), its public JWK and RFC 7638 thumbprint, and proofs signed with `jwtv-signer`, with every
//! claim the test wants to change.

use super::jwt::b64;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self as sig, KeyPair as _};
use serde_json::{Value, json};

pub struct Client {
    pub alg: &'static str,
    key: jwtv_signer::SigningKey,
    pub jwk: Value,
}

impl Client {
    pub fn es256() -> Client {
        let rng = SystemRandom::new();
        let alg = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let der = sig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = sig::EcdsaKeyPair::from_pkcs8(alg, der.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        Client {
            alg: "ES256",
            key: jwtv_signer::SigningKey::from_pkcs8_der("ES256", der.as_ref()).unwrap(),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])}),
        }
    }

    pub fn ed25519() -> Client {
        let der = sig::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = sig::Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
        Client {
            alg: "EdDSA",
            key: jwtv_signer::SigningKey::from_pkcs8_der("EdDSA", der.as_ref()).unwrap(),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
        }
    }

    /// The RFC 7638 thumbprint, computed here from the members (not by the code under test).
    pub fn jkt(&self) -> String {
        let j = &self.jwk;
        let canonical = match j["kty"].as_str().unwrap() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                j["crv"].as_str().unwrap(),
                j["x"].as_str().unwrap(),
                j["y"].as_str().unwrap()
            ),
            _ => format!(
                r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
                j["crv"].as_str().unwrap(),
                j["x"].as_str().unwrap()
            ),
        };
        b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// A proof for `token` on `method url` made at `iat`, with `change` applied to its claims.
    pub fn proof_with(
        &self,
        token: &str,
        method: &str,
        url: &str,
        iat: u64,
        change: impl FnOnce(&mut Value),
    ) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk});
        let mut jti = [0u8; 16];
        SystemRandom::new().fill(&mut jti).unwrap();
        let mut claims = json!({
            "jti": b64(&jti),
            "htm": method,
            "htu": url,
            "iat": iat,
            "ath": b64(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref()),
        });
        change(&mut claims);
        jwtv_signer::encode_raw(
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
            self.alg,
            &self.key,
        )
        .unwrap()
    }

    pub fn proof(&self, token: &str, method: &str, url: &str) -> String {
        self.proof_with(token, method, url, super::now(), |_| {})
    }
}
