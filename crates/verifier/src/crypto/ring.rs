//! The ring backend: its assembly natively; on wasm32 (the `ring` feature) its portable C and Rust,
//! compiled by clang.

use ::hmac::{Hmac as RustCryptoHmac, KeyInit, Mac};
use ring::{hmac, signature};
use sha2::Sha256;

use crate::alg::{Algorithm, Curve};
#[cfg(feature = "ec")]
use crate::crypto::es512::P521Key;
use crate::crypto::{
    VerifyingKey, check_signature_shape, validate_ec_point, validate_rsa_components,
};
use crate::key::{KeyError, KeyMaterial};

/// Name of the backend compiled in, for logs and benchmark reports.
pub const BACKEND: &str = "ring";

pub(crate) struct RingKey {
    material: Material,
}

enum Material {
    Hmac(Box<HmacKeys>),
    /// ring takes the raw components on every call and rejects leading zeros, so they are kept stripped.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed SEC1 point `0x04 || x || y`, the only encoding ring's ECDSA accepts.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    /// ring has no P-521: RustCrypto's verifier, prepared once.
    #[cfg(feature = "ec")]
    P521(P521Key),
    Ed25519([u8; 32]),
}

/// One precomputed key per hash, so the secret's inner/outer pads are hashed once, at import.
///
/// HS256 uses RustCrypto's `hmac` over `sha2` (pure Rust, with the CPU's SHA instructions when it has
/// them): on a token-sized message it measured about 40 ns cheaper per check than ring's, for the same
/// per-block cost, which is a few percent of a whole HS256 verification. For SHA-384/512, which have no
/// such instructions here, ring's assembly is the faster one (by about as much), so it keeps them.
struct HmacKeys {
    hs256: RustCryptoHmac<Sha256>,
    hs384: hmac::Key,
    hs512: hmac::Key,
}

impl VerifyingKey for RingKey {
    fn prepare(material: &KeyMaterial) -> Result<Self, KeyError> {
        let material = match material {
            KeyMaterial::Hmac(secret) => {
                if secret.is_empty() {
                    return Err(KeyError::EmptySecret);
                }
                // HMAC takes keys of any length, so this cannot fail; mapped rather than unwrapped.
                let hs256 = RustCryptoHmac::new_from_slice(secret)
                    .map_err(|_| KeyError::Format("HMAC secret rejected".to_owned()))?;
                Material::Hmac(Box::new(HmacKeys {
                    hs256,
                    hs384: hmac::Key::new(hmac::HMAC_SHA384, secret),
                    hs512: hmac::Key::new(hmac::HMAC_SHA512, secret),
                }))
            }
            KeyMaterial::Rsa { n, e } => {
                let (n, e) = validate_rsa_components(n, e)?;
                Material::Rsa {
                    n: n.to_vec(),
                    e: e.to_vec(),
                }
            }
            #[cfg(feature = "ec")]
            KeyMaterial::Ec {
                curve: Curve::P521,
                x,
                y,
            } => Material::P521(P521Key::new(x, y)?),
            KeyMaterial::Ec { curve, x, y } => {
                validate_ec_point(*curve, x, y)?;
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                Material::Ec {
                    curve: *curve,
                    point,
                }
            }
            // ring offers no way to check an Ed25519 point ahead of use; a bad one fails every verify.
            KeyMaterial::Ed25519(bytes) => Material::Ed25519(*bytes),
        };
        Ok(RingKey { material })
    }

    fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !check_signature_shape(alg, signature) {
            return false;
        }
        match (&self.material, alg) {
            (Material::Hmac(keys), Algorithm::HS256) => {
                let mut mac = keys.hs256.clone();
                mac.update(message);
                // Constant-time comparison; the exact tag length was already enforced above.
                mac.verify_slice(signature).is_ok()
            }
            (Material::Hmac(keys), Algorithm::HS384) => {
                hmac::verify(&keys.hs384, message, signature).is_ok()
            }
            (Material::Hmac(keys), Algorithm::HS512) => {
                hmac::verify(&keys.hs512, message, signature).is_ok()
            }
            (Material::Rsa { n, e }, alg) => match rsa_params(alg) {
                Some(params) => signature::RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok(),
                None => false,
            },
            (Material::Ec { curve, point }, alg) => {
                let params = match (curve, alg) {
                    (Curve::P256, Algorithm::ES256) => &signature::ECDSA_P256_SHA256_FIXED,
                    (Curve::P384, Algorithm::ES384) => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return false,
                };
                signature::UnparsedPublicKey::new(params, point)
                    .verify(message, signature)
                    .is_ok()
            }
            #[cfg(feature = "ec")]
            (Material::P521(key), Algorithm::ES512) => key.verify(message, signature),
            (Material::Ed25519(key), Algorithm::EdDSA) => {
                signature::UnparsedPublicKey::new(&signature::ED25519, key)
                    .verify(message, signature)
                    .is_ok()
            }
            _ => false,
        }
    }
}

fn rsa_params(alg: Algorithm) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}
