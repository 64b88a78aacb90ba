//! The pure-Rust backend (RustCrypto crates): the one WebAssembly builds run.

mod ecdsa;
mod eddsa;
mod hmac;
mod rsa;

use crate::alg::Algorithm;
use crate::crypto::{VerifyingKey, check_signature_shape};
use crate::key::{KeyError, KeyMaterial};

pub(crate) struct RustCryptoKey {
    inner: Inner,
}

enum Inner {
    Hmac(Box<hmac::HmacKeys>),
    Rsa(Box<rsa::RsaKeys>),
    Ec(ecdsa::EcKey),
    Ed25519(eddsa::EdKey),
}

impl VerifyingKey for RustCryptoKey {
    fn prepare(material: &KeyMaterial) -> Result<Self, KeyError> {
        let inner = match material {
            KeyMaterial::Hmac(secret) => Inner::Hmac(Box::new(hmac::HmacKeys::new(secret)?)),
            KeyMaterial::Rsa { n, e } => Inner::Rsa(Box::new(rsa::RsaKeys::new(n, e)?)),
            KeyMaterial::Ec { curve, x, y } => Inner::Ec(ecdsa::EcKey::new(*curve, x, y)?),
            KeyMaterial::Ed25519(bytes) => Inner::Ed25519(eddsa::EdKey::new(bytes)?),
        };
        Ok(RustCryptoKey { inner })
    }

    fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !check_signature_shape(alg, signature) {
            return false;
        }
        match &self.inner {
            Inner::Hmac(key) => key.verify(alg, message, signature),
            Inner::Rsa(key) => key.verify(alg, message, signature),
            Inner::Ec(key) => key.verify(alg, message, signature),
            Inner::Ed25519(key) => key.verify(alg, message, signature),
        }
    }
}
