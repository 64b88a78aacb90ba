//! ES512 (P-521) for both backends: ring has no P-521, so the native build verifies it with the same
//! RustCrypto `p521` the WebAssembly build uses.

use ::p521::ecdsa::signature::Verifier;
use ::p521::ecdsa::{Signature, VerifyingKey};

use crate::alg::Curve;
use crate::crypto::ec_point;
use crate::key::KeyError;

pub(crate) struct P521Key(VerifyingKey);

impl P521Key {
    /// `ec_point` makes the on-curve and length checks; `from_affine` refuses the identity.
    pub(crate) fn new(x: &[u8], y: &[u8]) -> Result<Self, KeyError> {
        ec_point(x, y)
            .and_then(|point| VerifyingKey::from_affine(point).ok())
            .map(P521Key)
            .ok_or(KeyError::EcPoint(Curve::P521.jwk_name()))
    }

    /// Checks a raw 132-byte `r || s` over `message`, hashed with SHA-512.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature).is_ok_and(|sig| self.0.verify(message, &sig).is_ok())
    }
}
