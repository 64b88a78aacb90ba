//! ES256 (P-256), ES384 (P-384) and ES512 (P-521), raw `r || s` signatures.

use ::ecdsa::signature::Verifier;

use crate::alg::{Algorithm, Curve};
use crate::crypto::ec_point;
use crate::crypto::es512::P521Key;
use crate::key::KeyError;

pub(super) enum EcKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(P521Key),
}

impl EcKey {
    pub(super) fn new(curve: Curve, x: &[u8], y: &[u8]) -> Result<Self, KeyError> {
        let invalid = || KeyError::EcPoint(curve.jwk_name());
        // `ec_point` makes the on-curve and length checks; `from_affine` refuses the identity.
        match curve {
            Curve::P256 => ec_point(x, y)
                .and_then(|point| p256::ecdsa::VerifyingKey::from_affine(point).ok())
                .map(EcKey::P256)
                .ok_or_else(invalid),
            Curve::P384 => ec_point(x, y)
                .and_then(|point| p384::ecdsa::VerifyingKey::from_affine(point).ok())
                .map(EcKey::P384)
                .ok_or_else(invalid),
            Curve::P521 => P521Key::new(x, y).map(EcKey::P521),
            Curve::Ed25519 => Err(invalid()),
        }
    }

    pub(super) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match (self, alg) {
            (EcKey::P256(key), Algorithm::ES256) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            (EcKey::P384(key), Algorithm::ES384) => p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            (EcKey::P521(key), Algorithm::ES512) => key.verify(message, signature),
            _ => false,
        }
    }
}
