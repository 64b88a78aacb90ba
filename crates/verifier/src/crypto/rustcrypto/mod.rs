//! The pure-Rust backend (RustCrypto crates): the one WebAssembly builds run.

#[cfg(feature = "ec")]
mod ecdsa;
#[cfg(feature = "eddsa")]
mod eddsa;
mod hmac;
#[cfg(feature = "rsa")]
mod rsa;

use crate::alg::Algorithm;
use crate::crypto::{VerifyingKey, check_signature_shape};
use crate::key::{KeyError, KeyMaterial};

/// Name of the backend compiled in, for logs and benchmark reports.
pub const BACKEND: &str = "rustcrypto";

pub(crate) struct RustCryptoKey {
    inner: Inner,
}

enum Inner {
    Hmac(Box<hmac::HmacKeys>),
    #[cfg(feature = "rsa")]
    Rsa(rsa::RsaKeys),
    #[cfg(feature = "ec")]
    Ec(ecdsa::EcKey),
    #[cfg(feature = "eddsa")]
    Ed25519(eddsa::EdKey),
}

impl VerifyingKey for RustCryptoKey {
    fn prepare(material: &KeyMaterial) -> Result<Self, KeyError> {
        let inner = match material {
            KeyMaterial::Hmac(secret) => Inner::Hmac(Box::new(hmac::HmacKeys::new(secret)?)),
            #[cfg(feature = "rsa")]
            KeyMaterial::Rsa { n, e } => Inner::Rsa(rsa::RsaKeys::new(n, e)?),
            #[cfg(feature = "ec")]
            KeyMaterial::Ec { curve, x, y } => Inner::Ec(ecdsa::EcKey::new(*curve, x, y)?),
            #[cfg(feature = "eddsa")]
            KeyMaterial::Ed25519(bytes) => Inner::Ed25519(eddsa::EdKey::new(bytes)?),
            #[allow(unreachable_patterns)]
            other => return Err(KeyError::Unsupported(other.family_label())),
        };
        Ok(RustCryptoKey { inner })
    }

    fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !check_signature_shape(alg, signature) {
            return false;
        }
        match &self.inner {
            Inner::Hmac(key) => key.verify(alg, message, signature),
            #[cfg(feature = "rsa")]
            Inner::Rsa(key) => key.verify(alg, message, signature),
            #[cfg(feature = "ec")]
            Inner::Ec(key) => key.verify(alg, message, signature),
            #[cfg(feature = "eddsa")]
            Inner::Ed25519(key) => key.verify(alg, message, signature),
        }
    }
}
