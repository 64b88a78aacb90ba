//! ES256 (P-256) and ES384 (P-384), raw `r || s` signatures.

use ::ecdsa::signature::Verifier;

use crate::alg::{Algorithm, Curve};
use crate::crypto::validate_ec_point;
use crate::key::KeyError;

pub(super) enum EcKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl EcKey {
    pub(super) fn new(curve: Curve, x: &[u8], y: &[u8]) -> Result<Self, KeyError> {
        validate_ec_point(curve, x, y)?;
        let mut sec1 = Vec::with_capacity(1 + x.len() + y.len());
        sec1.push(0x04);
        sec1.extend_from_slice(x);
        sec1.extend_from_slice(y);
        let invalid = |_| KeyError::EcPoint(curve.jwk_name());
        match curve {
            Curve::P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                .map(EcKey::P256)
                .map_err(invalid),
            Curve::P384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                .map(EcKey::P384)
                .map_err(invalid),
            Curve::Ed25519 => Err(KeyError::EcPoint(curve.jwk_name())),
        }
    }

    pub(super) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match (self, alg) {
            (EcKey::P256(key), Algorithm::ES256) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            (EcKey::P384(key), Algorithm::ES384) => p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            _ => false,
        }
    }
}
