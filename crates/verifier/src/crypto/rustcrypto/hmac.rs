//! HS256/384/512.

use ::hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha384, Sha512};

use crate::alg::Algorithm;
use crate::key::KeyError;

/// Keyed states for each hash, so the secret's inner/outer pads are hashed once, at import.
pub(super) struct HmacKeys {
    hs256: Hmac<Sha256>,
    hs384: Hmac<Sha384>,
    hs512: Hmac<Sha512>,
}

impl HmacKeys {
    pub(super) fn new(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        // HMAC takes keys of any length, so these cannot fail; mapped rather than unwrapped anyway.
        let rejected = |_| KeyError::Format("HMAC secret rejected".to_owned());
        Ok(HmacKeys {
            hs256: Hmac::new_from_slice(secret).map_err(rejected)?,
            hs384: Hmac::new_from_slice(secret).map_err(rejected)?,
            hs512: Hmac::new_from_slice(secret).map_err(rejected)?,
        })
    }

    pub(super) fn verify(&self, alg: Algorithm, message: &[u8], tag: &[u8]) -> bool {
        match alg {
            Algorithm::HS256 => check(&self.hs256, message, tag),
            Algorithm::HS384 => check(&self.hs384, message, tag),
            Algorithm::HS512 => check(&self.hs512, message, tag),
            _ => false,
        }
    }
}

fn check<M: Mac + Clone>(keyed: &M, message: &[u8], tag: &[u8]) -> bool {
    let mut mac = keyed.clone();
    mac.update(message);
    // Constant-time comparison; the exact tag length was already enforced by the shape check.
    mac.verify_slice(tag).is_ok()
}
