//! RS256/384/512 (PKCS#1 v1.5) and PS256/384/512 (PSS, salt length = hash length).

use std::sync::OnceLock;

use ::rsa::signature::Verifier;
use ::rsa::{BoxedUint, PublicKey, pkcs1v15, pss};
use sha2::{Sha256, Sha384, Sha512};

use crate::alg::Algorithm;
use crate::crypto::validate_rsa_components;
use crate::key::{KeyError, RSA_MAX_BITS, RSA_MIN_BITS};

/// Longest signature a key within our limits can produce; longer input is refused before decoding.
const MAX_SIGNATURE_LEN: usize = RSA_MAX_BITS.div_ceil(8);

/// An RSA public key, checked at import and made ready for arithmetic on its first verification.
///
/// Building the Montgomery parameters of a 2048-bit modulus costs more than a verification in Wasm,
/// and a WebAssembly host may start a fresh instance for every request: done at import, every key of
/// an identity provider's set would be paid for on each request, whichever key the token names.
pub(super) struct RsaKeys {
    n: Vec<u8>,
    e: Vec<u8>,
    /// `None` only if the crate refuses components our own checks accepted: then nothing verifies.
    ready: OnceLock<Option<Box<Ready>>>,
}

/// One verifying key per algorithm: each holds the parsed modulus and its Montgomery parameters (and,
/// for PKCS#1 v1.5, the DigestInfo prefix), so nothing is re-derived per token.
struct Ready {
    rs256: pkcs1v15::VerifyingKey<Sha256>,
    rs384: pkcs1v15::VerifyingKey<Sha384>,
    rs512: pkcs1v15::VerifyingKey<Sha512>,
    ps256: pss::VerifyingKey<Sha256>,
    ps384: pss::VerifyingKey<Sha384>,
    ps512: pss::VerifyingKey<Sha512>,
}

impl RsaKeys {
    /// The checks `PublicKey::new_with_size_limits` would make (size, odd modulus, exponent), without
    /// its arithmetic.
    pub(super) fn new(n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let (n, e) = validate_rsa_components(n, e)?;
        Ok(RsaKeys {
            n: n.to_vec(),
            e: e.to_vec(),
            ready: OnceLock::new(),
        })
    }

    pub(super) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        let Some(ready) = self.ready.get_or_init(|| Ready::new(&self.n, &self.e)) else {
            return false;
        };
        match alg {
            Algorithm::RS256 => pkcs1v15(&ready.rs256, message, signature),
            Algorithm::RS384 => pkcs1v15(&ready.rs384, message, signature),
            Algorithm::RS512 => pkcs1v15(&ready.rs512, message, signature),
            Algorithm::PS256 => pss(&ready.ps256, message, signature),
            Algorithm::PS384 => pss(&ready.ps384, message, signature),
            Algorithm::PS512 => pss(&ready.ps512, message, signature),
            _ => false,
        }
    }
}

impl Ready {
    fn new(n: &[u8], e: &[u8]) -> Option<Box<Ready>> {
        // Public values, so the variable-time decoding is fine.
        let key = PublicKey::new_with_size_limits(
            BoxedUint::from_be_slice_vartime(n),
            BoxedUint::from_be_slice_vartime(e),
            // The crate's defaults differ (1024..=8192); ours are ring's, already checked at import.
            RSA_MIN_BITS..=RSA_MAX_BITS,
        )
        .ok()?;
        Some(Box::new(Ready {
            rs256: pkcs1v15::VerifyingKey::new(key.clone()),
            rs384: pkcs1v15::VerifyingKey::new(key.clone()),
            rs512: pkcs1v15::VerifyingKey::new(key.clone()),
            // `new` sets the salt length to the hash length, as RFC 7518 §3.5 requires.
            ps256: pss::VerifyingKey::new(key.clone()),
            ps384: pss::VerifyingKey::new(key.clone()),
            ps512: pss::VerifyingKey::new(key),
        }))
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
