//! RS256/384/512 (PKCS#1 v1.5) and PS256/384/512 (PSS, salt length = hash length).

use ::rsa::signature::Verifier;
use ::rsa::{BoxedUint, PublicKey, pkcs1v15, pss};
use sha2::{Sha256, Sha384, Sha512};

use crate::alg::Algorithm;
use crate::crypto::validate_rsa_components;
use crate::key::{KeyError, RSA_MAX_BITS, RSA_MIN_BITS};

/// Longest signature a key within our limits can produce; longer input is refused before decoding.
const MAX_SIGNATURE_LEN: usize = RSA_MAX_BITS.div_ceil(8);

/// One verifying key per algorithm, built once: each holds the parsed modulus and its Montgomery
/// parameters (and, for PKCS#1 v1.5, the DigestInfo prefix), so nothing is re-derived per token.
pub(super) struct RsaKeys {
    rs256: pkcs1v15::VerifyingKey<Sha256>,
    rs384: pkcs1v15::VerifyingKey<Sha384>,
    rs512: pkcs1v15::VerifyingKey<Sha512>,
    ps256: pss::VerifyingKey<Sha256>,
    ps384: pss::VerifyingKey<Sha384>,
    ps512: pss::VerifyingKey<Sha512>,
}

impl RsaKeys {
    pub(super) fn new(n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let (n, e) = validate_rsa_components(n, e)?;
        // Public values, so the variable-time decoding is fine.
        let key = PublicKey::new_with_size_limits(
            BoxedUint::from_be_slice_vartime(n),
            BoxedUint::from_be_slice_vartime(e),
            // The crate's defaults differ (1024..=8192); ours are ring's, already checked above.
            RSA_MIN_BITS..=RSA_MAX_BITS,
        )
        .map_err(|_| KeyError::Format("RSA public key rejected".to_owned()))?;
        Ok(RsaKeys {
            rs256: pkcs1v15::VerifyingKey::new(key.clone()),
            rs384: pkcs1v15::VerifyingKey::new(key.clone()),
            rs512: pkcs1v15::VerifyingKey::new(key.clone()),
            // `new` sets the salt length to the hash length, as RFC 7518 §3.5 requires.
            ps256: pss::VerifyingKey::new(key.clone()),
            ps384: pss::VerifyingKey::new(key.clone()),
            ps512: pss::VerifyingKey::new(key),
        })
    }

    pub(super) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match alg {
            Algorithm::RS256 => pkcs1v15(&self.rs256, message, signature),
            Algorithm::RS384 => pkcs1v15(&self.rs384, message, signature),
            Algorithm::RS512 => pkcs1v15(&self.rs512, message, signature),
            Algorithm::PS256 => pss(&self.ps256, message, signature),
            Algorithm::PS384 => pss(&self.ps384, message, signature),
            Algorithm::PS512 => pss(&self.ps512, message, signature),
            _ => false,
        }
    }
}

fn pkcs1v15<K: Verifier<pkcs1v15::Signature>>(key: &K, message: &[u8], signature: &[u8]) -> bool {
    pkcs1v15::Signature::from_bytes_with_max_len(signature, MAX_SIGNATURE_LEN)
        .is_ok_and(|sig| key.verify(message, &sig).is_ok())
}

fn pss<K: Verifier<pss::Signature>>(key: &K, message: &[u8], signature: &[u8]) -> bool {
    pss::Signature::from_bytes_with_max_len(signature, MAX_SIGNATURE_LEN)
        .is_ok_and(|sig| key.verify(message, &sig).is_ok())
}
