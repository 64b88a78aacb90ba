//! Mints signed compact JWS tokens: the `jwt-validator mint` subcommand, the test suites and the
//! benchmarks all sign through here, with `ring`, independently of the verifier's code. ring has no
//! P-521, so ES512 signs with RustCrypto's `p521`; the interop suite checks ES512 against PyJWT.
//!
//! What it must not do: verify anything, or be linked into the WebAssembly component (it needs a
//! source of randomness for ECDSA and PSS, and `ring`'s native code).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p521::ecdsa::signature::Signer as _;
use p521::pkcs8::DecodePrivateKey as _;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("unsupported algorithm {0:?}")]
    Algorithm(String),
    #[error("the key cannot sign {0}")]
    KeyMismatch(String),
    #[error("private key is not usable PKCS#8 for {alg}: {reason}")]
    Key { alg: String, reason: String },
    #[error("signing failed")]
    Failed,
}

/// A private key (or HMAC secret) able to sign one family of algorithms.
pub enum SigningKey {
    Hmac(Vec<u8>),
    Rsa(Box<RsaKeyPair>),
    Ecdsa {
        alg: &'static str,
        pair: Box<EcdsaKeyPair>,
    },
    /// ES512.
    P521(Box<p521::ecdsa::SigningKey>),
    Ed25519(Box<Ed25519KeyPair>),
}

impl SigningKey {
    pub fn hmac(secret: &[u8]) -> SigningKey {
        SigningKey::Hmac(secret.to_vec())
    }

    /// A PKCS#8 private key (DER) for `alg` (`RS*`/`PS*`, `ES256`, `ES384`, `ES512` or `EdDSA`).
    pub fn from_pkcs8_der(alg: &str, der: &[u8]) -> Result<SigningKey, SignError> {
        let bad = |e: ring::error::KeyRejected| SignError::Key {
            alg: alg.to_owned(),
            reason: e.to_string(),
        };
        let rng = SystemRandom::new();
        Ok(match alg {
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
                SigningKey::Rsa(Box::new(RsaKeyPair::from_pkcs8(der).map_err(bad)?))
            }
            "ES256" => SigningKey::Ecdsa {
                alg: "ES256",
                pair: Box::new(
                    EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                        .map_err(bad)?,
                ),
            },
            "ES384" => SigningKey::Ecdsa {
                alg: "ES384",
                pair: Box::new(
                    EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, der, &rng)
                        .map_err(bad)?,
                ),
            },
            "ES512" => SigningKey::P521(Box::new(
                p521::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| SignError::Key {
                    alg: alg.to_owned(),
                    reason: e.to_string(),
                })?,
            )),
            "EdDSA" => SigningKey::Ed25519(Box::new(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(bad)?,
            )),
            other => return Err(SignError::Algorithm(other.to_owned())),
        })
    }

    /// A PEM `PRIVATE KEY` (PKCS#8) for `alg`.
    pub fn from_pkcs8_pem(alg: &str, pem: &str) -> Result<SigningKey, SignError> {
        let (label, der) = pem_rfc7468::decode_vec(pem.as_bytes()).map_err(|e| SignError::Key {
            alg: alg.to_owned(),
            reason: e.to_string(),
        })?;
        if label != "PRIVATE KEY" {
            return Err(SignError::Key {
                alg: alg.to_owned(),
                reason: format!("PEM label {label:?}; expected \"PRIVATE KEY\" (PKCS#8)"),
            });
        }
        SigningKey::from_pkcs8_der(alg, &der)
    }

    /// Signs `input` with `alg`, which must belong to this key's family.
    pub fn sign(&self, alg: &str, input: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        let mismatch = || SignError::KeyMismatch(alg.to_owned());
        match self {
            SigningKey::Hmac(secret) => {
                let algorithm = match alg {
                    "HS256" => ring::hmac::HMAC_SHA256,
                    "HS384" => ring::hmac::HMAC_SHA384,
                    "HS512" => ring::hmac::HMAC_SHA512,
                    _ => return Err(mismatch()),
                };
                let key = ring::hmac::Key::new(algorithm, secret);
                Ok(ring::hmac::sign(&key, input).as_ref().to_vec())
            }
            SigningKey::Rsa(pair) => {
                let padding: &'static dyn sig::RsaEncoding = match alg {
                    "RS256" => &sig::RSA_PKCS1_SHA256,
                    "RS384" => &sig::RSA_PKCS1_SHA384,
                    "RS512" => &sig::RSA_PKCS1_SHA512,
                    "PS256" => &sig::RSA_PSS_SHA256,
                    "PS384" => &sig::RSA_PSS_SHA384,
                    "PS512" => &sig::RSA_PSS_SHA512,
                    _ => return Err(mismatch()),
                };
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, input, &mut out)
                    .map_err(|_| SignError::Failed)?;
                Ok(out)
            }
            SigningKey::Ecdsa { alg: own, pair } if *own == alg => pair
                .sign(&rng, input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Failed),
            SigningKey::P521(key) if alg == "ES512" => key
                .try_sign(input)
                .map(|s: p521::ecdsa::Signature| s.to_bytes().to_vec())
                .map_err(|_| SignError::Failed),
            SigningKey::Ed25519(pair) if alg == "EdDSA" => Ok(pair.sign(input).as_ref().to_vec()),
            _ => Err(mismatch()),
        }
    }
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// A token from exact header and payload bytes, so tests can craft any byte sequence.
pub fn encode_raw(
    header: &[u8],
    payload: &[u8],
    alg: &str,
    key: &SigningKey,
) -> Result<String, SignError> {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = key.sign(alg, input.as_bytes())?;
    Ok(format!("{input}.{}", b64(&signature)))
}

/// A token for a JSON header (its `alg` selects the algorithm) and JSON claims.
pub fn encode(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    key: &SigningKey,
) -> Result<String, SignError> {
    let alg = header["alg"]
        .as_str()
        .ok_or_else(|| SignError::Algorithm("(none)".to_owned()))?;
    encode_raw(
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
        alg,
        key,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signs_every_family_and_refuses_mismatches() {
        let t = encode(
            &json!({"alg": "HS256"}),
            &json!({"sub": "a"}),
            &SigningKey::hmac(b"k"),
        )
        .unwrap();
        assert_eq!(t.split('.').count(), 3);
        let ec = SigningKey::from_pkcs8_pem(
            "ES256",
            include_str!("../../verifier/testdata/p256.pk8.pem"),
        )
        .unwrap();
        assert_eq!(ec.sign("ES256", b"x").unwrap().len(), 64);
        assert!(matches!(
            ec.sign("ES384", b"x"),
            Err(SignError::KeyMismatch(_))
        ));
        let p521 = SigningKey::from_pkcs8_pem(
            "ES512",
            include_str!("../../verifier/testdata/p521.pk8.pem"),
        )
        .unwrap();
        assert_eq!(p521.sign("ES512", b"x").unwrap().len(), 132);
        assert!(matches!(
            p521.sign("ES384", b"x"),
            Err(SignError::KeyMismatch(_))
        ));
        let rsa = SigningKey::from_pkcs8_pem(
            "RS256",
            include_str!("../../verifier/testdata/rsa2048.pk8.pem"),
        )
        .unwrap();
        assert_eq!(rsa.sign("PS512", b"x").unwrap().len(), 256);
        assert!(
            SigningKey::from_pkcs8_pem(
                "ES256",
                include_str!("../../verifier/testdata/p256.pub.pem")
            )
            .is_err()
        );
    }
}
