//! Backend conformance: the same assertions run against ring (default) and RustCrypto
//! (`--features rustcrypto`). Signatures always come from ring's signers, so each backend is checked
//! against an independent implementation; ES512's come from RustCrypto's `p521` signer (ring has no
//! P-521), and PyJWT checks it independently in the interop suite.

use jwtv_signer::SigningKey;

use super::{Prepared, VerifyingKey};
use crate::alg::{Algorithm, Curve, Family};
use crate::key::{KeyError, KeyMaterial};
use crate::pem::decode_public_key_pem;

const RSA2048_PK8: &[u8] = include_bytes!("../../testdata/rsa2048.pk8.der");
const P256_PK8: &[u8] = include_bytes!("../../testdata/p256.pk8.der");
const P384_PK8: &[u8] = include_bytes!("../../testdata/p384.pk8.der");
const P521_PK8: &[u8] = include_bytes!("../../testdata/p521.pk8.der");
const ED25519_PK8: &[u8] = include_bytes!("../../testdata/ed25519.pk8.der");
const RSA2048_PUB: &str = include_str!("../../testdata/rsa2048.pub.pem");
#[cfg(feature = "rsa")]
const RSA1024_PUB: &str = include_str!("../../testdata/rsa1024.pub.pem");
const P256_PUB: &str = include_str!("../../testdata/p256.pub.pem");
const P384_PUB: &str = include_str!("../../testdata/p384.pub.pem");
const P521_PUB: &str = include_str!("../../testdata/p521.pub.pem");
const ED25519_PUB: &str = include_str!("../../testdata/ed25519.pub.pem");

const MESSAGE: &[u8] = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0";

fn hmac_secret() -> Vec<u8> {
    (0u8..64)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect()
}

fn material(family: Family) -> KeyMaterial {
    match family {
        Family::Hmac => KeyMaterial::Hmac(hmac_secret()),
        Family::Rsa => decode_public_key_pem(RSA2048_PUB).unwrap(),
        Family::Ec(Curve::P256) => decode_public_key_pem(P256_PUB).unwrap(),
        Family::Ec(Curve::P384) => decode_public_key_pem(P384_PUB).unwrap(),
        Family::Ec(Curve::P521) => decode_public_key_pem(P521_PUB).unwrap(),
        Family::Okp(Curve::Ed25519) => decode_public_key_pem(ED25519_PUB).unwrap(),
        other => panic!("no fixture for {other:?}"),
    }
}

/// Whether this build verifies `alg`: HMAC always, the other families with their feature.
fn compiled_in(alg: Algorithm) -> bool {
    match alg.family() {
        Family::Hmac => true,
        Family::Rsa => cfg!(feature = "rsa"),
        Family::Ec(_) => cfg!(feature = "ec"),
        Family::Okp(_) => cfg!(feature = "eddsa"),
    }
}

/// The algorithms this build verifies (all of them by default; HMAC only without the family features).
fn algorithms() -> impl Iterator<Item = Algorithm> {
    Algorithm::ALL.into_iter().filter(|&alg| compiled_in(alg))
}

fn prepared(alg: Algorithm) -> Prepared {
    Prepared::prepare(&material(alg.family())).unwrap()
}

fn sign(alg: Algorithm, message: &[u8]) -> Vec<u8> {
    let key = match alg.family() {
        Family::Hmac => SigningKey::hmac(&hmac_secret()),
        Family::Rsa => SigningKey::from_pkcs8_der(alg.as_str(), RSA2048_PK8).unwrap(),
        Family::Ec(Curve::P256) => SigningKey::from_pkcs8_der(alg.as_str(), P256_PK8).unwrap(),
        Family::Ec(Curve::P384) => SigningKey::from_pkcs8_der(alg.as_str(), P384_PK8).unwrap(),
        Family::Ec(_) => SigningKey::from_pkcs8_der(alg.as_str(), P521_PK8).unwrap(),
        Family::Okp(_) => SigningKey::from_pkcs8_der(alg.as_str(), ED25519_PK8).unwrap(),
    };
    key.sign(alg.as_str(), message).unwrap()
}

fn flip_bit(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

#[cfg_attr(not(any(feature = "rsa", feature = "rustcrypto")), allow(dead_code))]
fn rsa_material(n: Vec<u8>, e: Vec<u8>) -> KeyMaterial {
    KeyMaterial::Rsa { n, e }
}

#[cfg(feature = "rsa")]
fn rsa2048_n() -> Vec<u8> {
    match material(Family::Rsa) {
        KeyMaterial::Rsa { n, .. } => n,
        _ => unreachable!(),
    }
}

#[test]
fn backend_is_the_one_selected() {
    let rustcrypto = !cfg!(feature = "ring") && cfg!(feature = "rustcrypto");
    let expected = if rustcrypto { "rustcrypto" } else { "ring" };
    assert_eq!(super::BACKEND, expected);
}

#[test]
fn every_algorithm_verifies_a_valid_signature() {
    for alg in algorithms() {
        let sig = sign(alg, MESSAGE);
        assert!(prepared(alg).verify(alg, MESSAGE, &sig), "{alg}");
    }
}

#[test]
fn one_flipped_bit_in_message_or_signature_fails() {
    for alg in algorithms() {
        let key = prepared(alg);
        let sig = sign(alg, MESSAGE);
        for bit in [0, 7, MESSAGE.len() * 4, MESSAGE.len() * 8 - 1] {
            let message = flip_bit(MESSAGE, bit);
            assert!(!key.verify(alg, &message, &sig), "{alg}: message bit {bit}");
        }
        for bit in [0, 9, sig.len() * 4 + 3, sig.len() * 8 - 1] {
            let sig = flip_bit(&sig, bit);
            assert!(
                !key.verify(alg, MESSAGE, &sig),
                "{alg}: signature bit {bit}"
            );
        }
    }
}

#[test]
fn a_signature_for_another_algorithm_of_the_family_fails() {
    for alg in algorithms() {
        let key = prepared(alg);
        let sig = sign(alg, MESSAGE);
        for other in Algorithm::for_family(alg.family()).filter(|&o| o != alg) {
            assert!(
                !key.verify(other, MESSAGE, &sig),
                "{alg} signature as {other}"
            );
        }
    }
}

#[test]
fn a_key_never_verifies_an_algorithm_of_another_family() {
    for key_alg in algorithms() {
        let key = prepared(key_alg);
        // Signatures of every family, compiled in or not: ring signs them all.
        for alg in Algorithm::ALL
            .into_iter()
            .filter(|a| a.family() != key_alg.family())
        {
            let sig = sign(alg, MESSAGE);
            assert!(!key.verify(alg, MESSAGE, &sig), "{key_alg} key, {alg} call");
        }
    }
}

#[test]
#[cfg(feature = "rsa")]
fn rsa_public_key_used_as_hmac_secret_fails() {
    // The HS/RS confusion: an attacker MACs with the public key bytes they can download.
    let pem_bytes = RSA2048_PUB.as_bytes();
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, pem_bytes),
        MESSAGE,
    );
    assert!(!prepared(Algorithm::RS256).verify(Algorithm::HS256, MESSAGE, mac.as_ref()));
}

#[test]
#[cfg(feature = "ec")]
fn an_ec_key_refuses_the_algorithms_of_other_curves() {
    // `design/security.md`: ES256 <-> P-256, ES384 <-> P-384, ES512 <-> P-521.
    let ecdsa = [Algorithm::ES256, Algorithm::ES384, Algorithm::ES512];
    for key_alg in ecdsa {
        let key = prepared(key_alg);
        for alg in ecdsa.into_iter().filter(|&a| a != key_alg) {
            let sig = sign(alg, MESSAGE);
            assert!(!key.verify(alg, MESSAGE, &sig), "{key_alg} key, {alg} call");
        }
    }
}

#[test]
#[cfg(feature = "ec")]
fn zero_and_der_ecdsa_signatures_are_refused() {
    use ring::rand::SystemRandom;
    use ring::signature::{self as ring_sig, EcdsaKeyPair};

    let p256 = prepared(Algorithm::ES256);
    let p384 = prepared(Algorithm::ES384);
    assert!(!p256.verify(Algorithm::ES256, MESSAGE, &[0; 64]));
    assert!(!p384.verify(Algorithm::ES384, MESSAGE, &[0; 96]));
    let p521 = prepared(Algorithm::ES512);
    assert!(!p521.verify(Algorithm::ES512, MESSAGE, &[0; 132]));

    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING, P256_PK8, &rng)
        .unwrap();
    let der = pair.sign(&rng, MESSAGE).unwrap();
    assert!(!p256.verify(Algorithm::ES256, MESSAGE, der.as_ref()));

    // The valid ES512 signature re-encoded as DER: SEQUENCE { INTEGER r, INTEGER s }.
    let raw = sign(Algorithm::ES512, MESSAGE);
    let (r, s) = raw.split_at(66);
    let mut der = vec![0x30, 0x81, 0x88, 0x02, 0x42];
    der.extend_from_slice(r);
    der.extend_from_slice(&[0x02, 0x42]);
    der.extend_from_slice(s);
    assert!(p521.verify(Algorithm::ES512, MESSAGE, &raw));
    assert!(!p521.verify(Algorithm::ES512, MESSAGE, &der));
}

#[test]
#[cfg(feature = "ec")]
fn es512_signatures_of_the_wrong_length_are_refused() {
    let p521 = prepared(Algorithm::ES512);
    let raw = sign(Algorithm::ES512, MESSAGE);
    assert_eq!(raw.len(), 132);
    assert!(!p521.verify(Algorithm::ES512, MESSAGE, &raw[..131]));
    let mut longer = raw.clone();
    longer.push(0);
    assert!(!p521.verify(Algorithm::ES512, MESSAGE, &longer));
    // r and s each with a leading zero dropped (65 + 65 bytes), as some encoders emit.
    let mut short = raw[1..66].to_vec();
    short.extend_from_slice(&raw[67..]);
    assert!(!p521.verify(Algorithm::ES512, MESSAGE, &short));
}

#[test]
fn truncated_or_extended_hmac_is_refused() {
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let key = prepared(alg);
        let sig = sign(alg, MESSAGE);
        assert!(!key.verify(alg, MESSAGE, &sig[..sig.len() - 1]), "{alg}");
        assert!(!key.verify(alg, MESSAGE, &sig[..16]), "{alg}");
        assert!(!key.verify(alg, MESSAGE, &[]), "{alg}");
        let mut longer = sig.clone();
        longer.push(0);
        assert!(!key.verify(alg, MESSAGE, &longer), "{alg}");
    }
    // An HS512 MAC cut to 32 bytes is not an HS256 MAC.
    let hs512 = sign(Algorithm::HS512, MESSAGE);
    let key = prepared(Algorithm::HS256);
    assert!(!key.verify(Algorithm::HS256, MESSAGE, &hs512[..32]));
}

#[test]
fn empty_hmac_secret_is_refused() {
    assert!(matches!(
        Prepared::prepare(&KeyMaterial::Hmac(Vec::new())),
        Err(KeyError::EmptySecret)
    ));
}

#[test]
#[cfg(feature = "rsa")]
fn wrong_length_rsa_signatures_are_refused() {
    let key = prepared(Algorithm::RS256);
    let sig = sign(Algorithm::RS256, MESSAGE);
    assert!(!key.verify(Algorithm::RS256, MESSAGE, &[]));
    assert!(!key.verify(Algorithm::RS256, MESSAGE, &sig[1..]));
    let mut padded = vec![0];
    padded.extend(&sig);
    assert!(!key.verify(Algorithm::RS256, MESSAGE, &padded));
}

#[test]
#[cfg(feature = "rsa")]
fn rsa_1024_is_refused_at_prepare() {
    let material = decode_public_key_pem(RSA1024_PUB).unwrap();
    assert!(matches!(
        Prepared::prepare(&material),
        Err(KeyError::RsaSize(1024))
    ));
}

#[test]
#[cfg(feature = "rsa")]
fn rsa_modulus_size_is_counted_in_bits() {
    let e = vec![1, 0, 1];
    let mut n_2047 = vec![0x7f];
    n_2047.extend([0xff; 255]);
    let mut n_8193 = vec![0x01];
    n_8193.extend([0xff; 1024]);
    for (n, bits) in [
        (n_2047, 2047),
        (n_8193, 8193),
        (Vec::new(), 0),
        (vec![0; 300], 0),
    ] {
        let result = Prepared::prepare(&rsa_material(n, e.clone()));
        assert!(
            matches!(result, Err(KeyError::RsaSize(b)) if b == bits),
            "{bits}"
        );
    }
    let mut even = rsa2048_n();
    if let Some(last) = even.last_mut() {
        *last &= 0xfe;
    }
    assert!(matches!(
        Prepared::prepare(&rsa_material(even, e)),
        Err(KeyError::Format(_))
    ));
}

#[test]
#[cfg(feature = "rsa")]
fn rsa_leading_zeros_are_ignored() {
    let mut n = vec![0, 0];
    n.extend(rsa2048_n());
    let key = Prepared::prepare(&rsa_material(n, vec![0, 1, 0, 1])).unwrap();
    let sig = sign(Algorithm::RS256, MESSAGE);
    assert!(key.verify(Algorithm::RS256, MESSAGE, &sig));
}

#[test]
#[cfg(feature = "rsa")]
fn rsa_exponent_limits() {
    let n = rsa2048_n();
    let two_pow_33 = vec![0x02, 0, 0, 0, 0];
    for e in [
        vec![],
        vec![0],
        vec![1],
        vec![2],
        vec![1, 0, 0],
        two_pow_33.clone(),
        vec![0x02, 0, 0, 0, 1],
        vec![1, 0, 0, 0, 0, 1],
    ] {
        assert!(
            matches!(
                Prepared::prepare(&rsa_material(n.clone(), e.clone())),
                Err(KeyError::RsaExponent)
            ),
            "{e:?}"
        );
    }
    for e in [vec![3], vec![1, 0, 1], vec![0x01, 0xff, 0xff, 0xff, 0xff]] {
        assert!(
            Prepared::prepare(&rsa_material(n.clone(), e.clone())).is_ok(),
            "{e:?}"
        );
    }
}

#[test]
#[cfg(feature = "ec")]
fn off_curve_ec_points_are_refused_at_prepare() {
    for (pem, curve) in [
        (P256_PUB, Curve::P256),
        (P384_PUB, Curve::P384),
        (P521_PUB, Curve::P521),
    ] {
        let KeyMaterial::Ec { x, mut y, .. } = decode_public_key_pem(pem).unwrap() else {
            panic!("not EC");
        };
        y[5] ^= 0x01;
        let result = Prepared::prepare(&KeyMaterial::Ec { curve, x, y });
        assert!(
            matches!(result, Err(KeyError::EcPoint(name)) if name == curve.jwk_name()),
            "{curve:?}"
        );
    }
}

#[test]
#[cfg(feature = "ec")]
fn ec_coordinates_of_the_wrong_length_are_refused() {
    let KeyMaterial::Ec { x, y, .. } = decode_public_key_pem(P256_PUB).unwrap() else {
        panic!("not EC");
    };
    // A P-256 point labelled P-384.
    let result = Prepared::prepare(&KeyMaterial::Ec {
        curve: Curve::P384,
        x,
        y,
    });
    assert!(matches!(result, Err(KeyError::EcPoint(_))));
    // A P-384 point labelled P-521 (48-byte coordinates where 66 are due).
    let KeyMaterial::Ec { x, y, .. } = decode_public_key_pem(P384_PUB).unwrap() else {
        panic!("not EC");
    };
    let result = Prepared::prepare(&KeyMaterial::Ec {
        curve: Curve::P521,
        x,
        y,
    });
    assert!(matches!(result, Err(KeyError::EcPoint("P-521"))));
}

#[test]
#[cfg(feature = "eddsa")]
fn ed25519_key_off_the_curve_never_verifies() {
    // y = 2 has no x on edwards25519, so these bytes decode to no point.
    let mut bytes = [0u8; 32];
    bytes[0] = 2;
    let sig = sign(Algorithm::EdDSA, MESSAGE);
    match Prepared::prepare(&KeyMaterial::Ed25519(bytes)) {
        // RustCrypto decodes the point at import; ring cannot, and fails every call instead.
        Err(KeyError::Ed25519) => assert_eq!(super::BACKEND, "rustcrypto"),
        Ok(key) => {
            assert_eq!(super::BACKEND, "ring");
            assert!(!key.verify(Algorithm::EdDSA, MESSAGE, &sig));
        }
        Err(other) => panic!("unexpected {other:?}"),
    }
}

/// RustCrypto honours the family features: a key of a family left out of the build is refused when
/// it is prepared, never half-supported. (ring's backend always has every family.)
#[test]
#[cfg(all(feature = "rustcrypto", not(feature = "ring")))]
fn families_left_out_are_refused_at_prepare() {
    let refused = [
        (
            cfg!(feature = "rsa"),
            rsa_material(vec![0xc5; 256], vec![1, 0, 1]),
            "RSA",
        ),
        (
            cfg!(feature = "ec"),
            KeyMaterial::Ec {
                curve: Curve::P256,
                x: vec![1; 32],
                y: vec![2; 32],
            },
            "EC P-256",
        ),
        (
            cfg!(feature = "eddsa"),
            KeyMaterial::Ed25519([9; 32]),
            "OKP Ed25519",
        ),
    ];
    for (_, material, label) in refused.into_iter().filter(|(on, ..)| !on) {
        assert!(
            matches!(Prepared::prepare(&material), Err(KeyError::Unsupported(l)) if l == label),
            "{label}"
        );
    }
}
