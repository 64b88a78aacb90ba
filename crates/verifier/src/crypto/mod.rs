//! Signature primitives behind one small trait, one backend per build.
//!
//! Natively the assembly-backed `ring` does the work; on `wasm32` (or with the `rustcrypto` feature)
//! the pure-Rust RustCrypto crates do, unless the `ring` feature asks for ring's portable C and Rust
//! there too (see the feature in Cargo.toml for what it saves); `ring` wins over `rustcrypto`. Both
//! receive input that the common checks below have already shaped, so the rules that matter for
//! security live here once, not per backend.

use crate::alg::{Algorithm, Curve, Family};
use crate::key::{KeyError, KeyMaterial, RSA_MAX_BITS, RSA_MIN_BITS};

#[cfg(any(
    feature = "ring",
    not(any(feature = "rustcrypto", target_arch = "wasm32"))
))]
mod ring;
#[cfg(any(
    feature = "ring",
    not(any(feature = "rustcrypto", target_arch = "wasm32"))
))]
pub use self::ring::BACKEND;
#[cfg(any(
    feature = "ring",
    not(any(feature = "rustcrypto", target_arch = "wasm32"))
))]
pub(crate) use self::ring::RingKey as Prepared;

#[cfg(all(
    not(feature = "ring"),
    any(feature = "rustcrypto", target_arch = "wasm32")
))]
mod rustcrypto;
#[cfg(all(
    not(feature = "ring"),
    any(feature = "rustcrypto", target_arch = "wasm32")
))]
pub use self::rustcrypto::BACKEND;
#[cfg(all(
    not(feature = "ring"),
    any(feature = "rustcrypto", target_arch = "wasm32")
))]
pub(crate) use self::rustcrypto::RustCryptoKey as Prepared;

mod ecdsa_sig;
#[cfg(feature = "ec")]
mod es512;
#[cfg(test)]
mod tests;

/// A public key (or HMAC secret) made ready for repeated verification.
pub(crate) trait VerifyingKey: Sized + Send + Sync {
    /// Parses and validates the material once, at configuration time.
    fn prepare(material: &KeyMaterial) -> Result<Self, KeyError>;

    /// Checks `signature` over `message`. Only called after [`check_signature_shape`] passed and with
    /// an `alg` of this key's family.
    fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool;
}

/// Format rules a signature must meet before any backend sees it.
///
/// ECDSA: exactly `r || s` of the curve's length, both in `[1, n-1]` (DER is refused; the zero
/// signature of CVE-2022-21449 never reaches the math). EdDSA: 64 bytes. HMAC: exactly the hash output,
/// so a truncated MAC can never match a prefix.
pub(crate) fn check_signature_shape(alg: Algorithm, signature: &[u8]) -> bool {
    match alg.family() {
        Family::Ec(curve) => ecdsa_sig::is_canonical_raw(curve, signature),
        Family::Okp(Curve::Ed25519) => signature.len() == 64,
        Family::Hmac => signature.len() == alg.hash_len(),
        Family::Rsa => !signature.is_empty(),
        Family::Okp(_) => false,
    }
}

/// Validates an EC public point on import (on the curve, right coordinate length).
#[cfg(feature = "ec")]
pub(crate) fn validate_ec_point(curve: Curve, x: &[u8], y: &[u8]) -> Result<(), KeyError> {
    let on_curve = match curve {
        Curve::P256 => ec_point::<p256::AffinePoint>(x, y).is_some(),
        Curve::P384 => ec_point::<p384::AffinePoint>(x, y).is_some(),
        Curve::P521 => ec_point::<p521::AffinePoint>(x, y).is_some(),
        Curve::Ed25519 => false,
    };
    if on_curve {
        Ok(())
    } else {
        Err(KeyError::EcPoint(curve.jwk_name()))
    }
}

/// The affine point `(x, y)`, if both coordinates have the curve's length, are canonical (below the
/// field prime) and satisfy the curve equation: the checks SEC1 decoding of `04 || x || y` makes.
/// Built from the coordinates directly, so SEC1 parsing and point decompression, which we never
/// need, stay out of the build (about 10 KB of WebAssembly).
#[cfg(feature = "ec")]
pub(crate) fn ec_point<P>(x: &[u8], y: &[u8]) -> Option<P>
where
    P: p256::elliptic_curve::point::AffineCoordinates,
    P::FieldRepr: for<'a> TryFrom<&'a [u8]>,
{
    let x = P::FieldRepr::try_from(x).ok()?;
    let y = P::FieldRepr::try_from(y).ok()?;
    // Public values: nothing secret depends on this branch.
    P::from_coordinates(&x, &y).into()
}

/// Without the `ec` family no EC key is ever accepted.
#[cfg(not(feature = "ec"))]
pub(crate) fn validate_ec_point(_: Curve, _: &[u8], _: &[u8]) -> Result<(), KeyError> {
    Err(KeyError::Unsupported("EC"))
}

/// Validates RSA public components on import and returns them without leading zero bytes.
///
/// The limits are ring's (modulus 2048..=8192 bits, odd exponent from 3 to 33 bits), enforced here
/// for both backends so a key accepted by one is never refused by the other at verification time.
#[cfg_attr(not(feature = "rsa"), allow(dead_code))]
pub(crate) fn validate_rsa_components<'a>(
    n: &'a [u8],
    e: &'a [u8],
) -> Result<(&'a [u8], &'a [u8]), KeyError> {
    let n = strip_leading_zeros(n);
    let bits = match n.first() {
        Some(&top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    };
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(KeyError::RsaSize(bits));
    }
    // A product of two odd primes is odd; an even "modulus" could never verify anything.
    if n.last().is_some_and(|b| b & 1 == 0) {
        return Err(KeyError::Format("RSA modulus is even".to_owned()));
    }
    let e = strip_leading_zeros(e);
    if e.is_empty() || e.len() > 5 {
        return Err(KeyError::RsaExponent);
    }
    let value = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if value < 3 || value & 1 == 0 || value >= 1 << 33 {
        return Err(KeyError::RsaExponent);
    }
    Ok((n, e))
}

pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}
