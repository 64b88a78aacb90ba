//! Token minting for the tests, with ring: the test writes the header and payload JSON text itself, so
//! it controls every byte (duplicate members, odd types, spellings of `alg`).
//!
//! Keys: the HMAC secret is whatever the test configures; asymmetric keys are the fixed test keys of
//! `crates/verifier/testdata` (PKCS#8 DER private keys, SPKI PEM public keys next to them).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::Value;
use std::path::PathBuf;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

/// `b64(header).b64(payload)` from JSON texts, exactly as given.
pub fn signing_input(header_json: &str, payload_json: &str) -> String {
    format!(
        "{}.{}",
        b64(header_json.as_bytes()),
        b64(payload_json.as_bytes())
    )
}

/// A token with an HMAC signature; the hash is chosen by `alg` (HS256/HS384/HS512) whatever the
/// header says, so a test can sign a header that lies.
pub fn hmac_token(alg: &str, secret: &[u8], header_json: &str, payload_json: &str) -> String {
    let hash = match alg {
        "HS256" => ring::hmac::HMAC_SHA256,
        "HS384" => ring::hmac::HMAC_SHA384,
        "HS512" => ring::hmac::HMAC_SHA512,
        other => panic!("not an HMAC alg: {other}"),
    };
    let input = signing_input(header_json, payload_json);
    let tag = ring::hmac::sign(&ring::hmac::Key::new(hash, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// An HS256 token with the header `{"alg":"HS256","typ":"JWT"}`.
pub fn hs256(secret: &[u8], claims: &Value) -> String {
    hmac_token(
        "HS256",
        secret,
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &claims.to_string(),
    )
}

/// The fixed asymmetric test keys of `crates/verifier/testdata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    Rsa2048,
    P256,
    P384,
    Ed25519,
}

impl TestKey {
    fn stem(self) -> &'static str {
        match self {
            TestKey::Rsa2048 => "rsa2048",
            TestKey::P256 => "p256",
            TestKey::P384 => "p384",
            TestKey::Ed25519 => "ed25519",
        }
    }

    /// The SPKI PEM public key.
    pub fn public_pem(self) -> String {
        String::from_utf8(testdata(&format!("{}.pub.pem", self.stem()))).unwrap()
    }

    fn pkcs8(self) -> Vec<u8> {
        testdata(&format!("{}.pk8.der", self.stem()))
    }

    /// The raw public key bytes (RSA: DER `RSAPublicKey`; EC: uncompressed point; Ed25519: 32 bytes).
    pub fn public_key_bytes(self) -> Vec<u8> {
        let der = self.pkcs8();
        let rng = SystemRandom::new();
        match self {
            TestKey::Rsa2048 => RsaKeyPair::from_pkcs8(&der)
                .unwrap()
                .public()
                .as_ref()
                .to_vec(),
            TestKey::P256 => {
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                    .unwrap()
                    .public_key()
                    .as_ref()
                    .to_vec()
            }
            TestKey::P384 => {
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &der, &rng)
                    .unwrap()
                    .public_key()
                    .as_ref()
                    .to_vec()
            }
            TestKey::Ed25519 => Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                .unwrap()
                .public_key()
                .as_ref()
                .to_vec(),
        }
    }
}

pub fn testdata(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../verifier/testdata")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A token signed with one of the test keys; `alg` chooses the scheme (RS*, PS*, ES256, ES384, EdDSA).
pub fn signed_token(key: TestKey, alg: &str, header_json: &str, payload_json: &str) -> String {
    let input = signing_input(header_json, payload_json);
    let msg = input.as_bytes();
    let rng = SystemRandom::new();
    let der = key.pkcs8();
    let sig: Vec<u8> = match (key, alg) {
        (TestKey::Rsa2048, _) => {
            let scheme: &'static dyn signature::RsaEncoding = match alg {
                "RS256" => &signature::RSA_PKCS1_SHA256,
                "RS384" => &signature::RSA_PKCS1_SHA384,
                "RS512" => &signature::RSA_PKCS1_SHA512,
                "PS256" => &signature::RSA_PSS_SHA256,
                "PS384" => &signature::RSA_PSS_SHA384,
                "PS512" => &signature::RSA_PSS_SHA512,
                other => panic!("{other} is not an RSA alg"),
            };
            let pair = RsaKeyPair::from_pkcs8(&der).expect("RSA PKCS#8");
            let mut sig = vec![0; pair.public().modulus_len()];
            pair.sign(scheme, &rng, msg, &mut sig).expect("RSA sign");
            sig
        }
        (TestKey::P256, "ES256") => {
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                .expect("P-256 PKCS#8")
                .sign(&rng, msg)
                .expect("ES256 sign")
                .as_ref()
                .to_vec()
        }
        (TestKey::P384, "ES384") => {
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &der, &rng)
                .expect("P-384 PKCS#8")
                .sign(&rng, msg)
                .expect("ES384 sign")
                .as_ref()
                .to_vec()
        }
        (TestKey::Ed25519, "EdDSA") => Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .expect("Ed25519 PKCS#8")
            .sign(msg)
            .as_ref()
            .to_vec(),
        (key, alg) => panic!("{key:?} cannot sign {alg}"),
    };
    format!("{input}.{}", b64(&sig))
}

/// Replaces one byte in the middle of the signature with another, keeping it valid base64url.
pub fn flip_signature(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').expect("three segments");
    let mut sig = b64_decode(sig);
    let mid = sig.len() / 2;
    sig[mid] ^= 0x01;
    format!("{input}.{}", b64(&sig))
}
