//! The shape of a JWS ECDSA signature (RFC 7518 §3.4): raw `r || s`, each a scalar in `[1, n-1]`.

use crate::alg::Curve;

/// Group orders, big-endian (SEC 2).
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
const P384_ORDER: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];
const P521_ORDER: [u8; 66] = [
    0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xfa, 0x51, 0x86, 0x87, 0x83, 0xbf, 0x2f, 0x96, 0x6b, 0x7f, 0xcc, 0x01, 0x48, 0xf7, 0x09,
    0xa5, 0xd0, 0x3b, 0xb5, 0xc9, 0xb8, 0x89, 0x9c, 0x47, 0xae, 0xbb, 0x6f, 0xb7, 0x1e, 0x91, 0x38,
    0x64, 0x09,
];

pub(crate) fn is_canonical_raw(curve: Curve, signature: &[u8]) -> bool {
    let order: &[u8] = match curve {
        Curve::P256 => &P256_ORDER,
        Curve::P384 => &P384_ORDER,
        Curve::P521 => &P521_ORDER,
        Curve::Ed25519 => return false,
    };
    if signature.len() != 2 * order.len() {
        return false;
    }
    let (r, s) = signature.split_at(order.len());
    in_scalar_range(r, order) && in_scalar_range(s, order)
}

/// `1 <= v <= n-1` for equal-length big-endian byte strings. Public values, so no constant time needed.
fn in_scalar_range(v: &[u8], order: &[u8]) -> bool {
    v.iter().any(|&b| b != 0) && v < order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psychic_zero_signature_is_refused() {
        // CVE-2022-21449: r = s = 0 verified every message in Java 15-18.
        assert!(!is_canonical_raw(Curve::P256, &[0u8; 64]));
        assert!(!is_canonical_raw(Curve::P384, &[0u8; 96]));
        assert!(!is_canonical_raw(Curve::P521, &[0u8; 132]));
    }

    #[test]
    fn p521_scalars_must_be_below_the_order() {
        // The top byte of a P-521 scalar is 0 or 1: 0xff there is far above n.
        let mut sig = [1u8; 132];
        assert!(is_canonical_raw(Curve::P521, &sig));
        sig[66] = 0xff;
        assert!(!is_canonical_raw(Curve::P521, &sig), "s > n");
        let mut sig = [1u8; 132];
        sig[..66].copy_from_slice(&P521_ORDER);
        assert!(!is_canonical_raw(Curve::P521, &sig), "r = n");
        sig[65] -= 1;
        assert!(is_canonical_raw(Curve::P521, &sig), "r = n-1 is fine");
        assert!(!is_canonical_raw(Curve::P521, &[1u8; 131]));
        assert!(!is_canonical_raw(Curve::P521, &[1u8; 96]), "P-384 length");
    }

    #[cfg(feature = "ec")]
    #[test]
    fn p521_order_is_the_curve_crates() {
        use p521::elliptic_curve::Curve as _;
        let hex: String = P521_ORDER.iter().map(|b| format!("{b:02x}")).collect();
        let order = format!("{:x}", p521::NistP521::ORDER.get());
        assert_eq!(order.trim_start_matches('0'), hex.trim_start_matches('0'));
    }

    #[test]
    fn scalars_must_be_below_the_order() {
        let mut sig = [1u8; 64];
        assert!(is_canonical_raw(Curve::P256, &sig));
        sig[..32].copy_from_slice(&P256_ORDER);
        assert!(!is_canonical_raw(Curve::P256, &sig), "r = n");
        let mut sig = [1u8; 64];
        sig[32..].copy_from_slice(&[0xff; 32]);
        assert!(!is_canonical_raw(Curve::P256, &sig), "s > n");
        let mut sig = [1u8; 64];
        sig[..32].copy_from_slice(&P256_ORDER);
        sig[31] -= 1;
        assert!(is_canonical_raw(Curve::P256, &sig), "r = n-1 is fine");
    }

    #[test]
    fn only_exact_raw_length_is_accepted() {
        assert!(!is_canonical_raw(Curve::P256, &[1u8; 63]));
        assert!(!is_canonical_raw(Curve::P256, &[1u8; 65]));
        assert!(
            !is_canonical_raw(Curve::P256, &[1u8; 96]),
            "P-384 length on P-256"
        );
        // A DER SEQUENCE of two INTEGERs is ~70-72 bytes: never raw length.
        let mut der = vec![0x30, 0x44, 0x02, 0x20];
        der.extend([1u8; 32]);
        der.extend([0x02, 0x20]);
        der.extend([1u8; 32]);
        assert!(!is_canonical_raw(Curve::P256, &der));
    }
}
