//! EdDSA over Ed25519.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::alg::Algorithm;
use crate::key::KeyError;

pub(super) struct EdKey(VerifyingKey);

impl EdKey {
    pub(super) fn new(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(EdKey)
            .map_err(|_| KeyError::Ed25519)
    }

    pub(super) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if alg != Algorithm::EdDSA {
            return false;
        }
        let Ok(bytes) = <&[u8; 64]>::try_from(signature) else {
            return false;
        };
        // Strict: refuses non-canonical encodings and small-order keys and `R`s, which plain
        // `verify` lets through (signature malleability).
        self.0
            .verify_strict(message, &Signature::from_bytes(bytes))
            .is_ok()
    }
}
