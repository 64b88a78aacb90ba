//! Public keys given as PEM: SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`).
//!
//! Only decoding happens here; size, exponent and on-curve checks are the crypto backend's job when the
//! key is prepared, so PEM and JWK keys go through the same gate.
//!
//! A public key is only of use with an asymmetric family (`rsa`, `ec`, `eddsa`): without one, what is
//! decoded here is refused when the key is prepared, like a JWK of that family. The decoder is behind
//! the `pem` feature: JWKS carries the same keys, and the PEM/DER readers weigh ~40 KB in the
//! WebAssembly component, whose size is budgeted. Without them [`decode_public_key_pem`] refuses
//! every document, so callers compile unchanged.

use crate::key::{KeyError, KeyMaterial};

#[cfg(feature = "pem")]
pub use self::decoder::decode_public_key_pem;

/// Decodes one PEM public key into raw key material: never, in a build without the PEM decoder.
#[cfg(not(feature = "pem"))]
pub fn decode_public_key_pem(_pem: &str) -> Result<KeyMaterial, KeyError> {
    Err(KeyError::Unsupported("PEM public"))
}

#[cfg(feature = "pem")]
mod decoder {
    use spki::ObjectIdentifier;
    use spki::der::Decode;

    use super::{KeyError, KeyMaterial};
    use crate::alg::Curve;
    #[cfg(feature = "rsa")]
    use crate::crypto::strip_leading_zeros;

    // Evaluated at compile time, so a typo fails the build rather than panicking at run time.
    const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
    const SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
    const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

    /// Decodes one PEM public key into raw key material.
    ///
    /// Private keys are refused outright: a verifier never needs one, and accepting it would invite
    /// operators to spread signing keys across every verifying host.
    pub fn decode_public_key_pem(pem: &str) -> Result<KeyMaterial, KeyError> {
        let pem = pem.trim();
        let label = match pem_rfc7468::decode_label(pem.as_bytes()) {
            Ok(label) => label,
            // Legacy encrypted keys carry headers that strict RFC 7468 parsing rejects; still name the problem.
            Err(_) if pem.contains("PRIVATE KEY-----") => {
                return Err(format_error(
                    "PEM document holds a private key; give the public key".to_owned(),
                ));
            }
            Err(e) => return Err(format_error(format!("not a PEM document: {e}"))),
        };
        match label {
            "PUBLIC KEY" | "RSA PUBLIC KEY" => {}
            label if label.contains("PRIVATE KEY") => {
                return Err(format_error(format!(
                    "PEM label {label:?} is not a public key; give the public key"
                )));
            }
            "CERTIFICATE" => {
                return Err(format_error(
                    "PEM label \"CERTIFICATE\" is a certificate, not a public key; \
                     extract it with `openssl x509 -pubkey -noout`"
                        .to_owned(),
                ));
            }
            label => {
                return Err(format_error(format!(
                    "unsupported PEM label {label:?}; expected \"PUBLIC KEY\" or \"RSA PUBLIC KEY\""
                )));
            }
        }
        let (label, der) = pem_rfc7468::decode_vec(pem.as_bytes())
            .map_err(|e| format_error(format!("invalid PEM: {e}")))?;
        if label == "RSA PUBLIC KEY" {
            decode_pkcs1(&der)
        } else {
            decode_spki(&der)
        }
    }

    fn decode_spki(der: &[u8]) -> Result<KeyMaterial, KeyError> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| format_error(format!("invalid SubjectPublicKeyInfo: {e}")))?;
        let key = spki.subject_public_key.as_bytes().ok_or_else(|| {
            format_error("SubjectPublicKeyInfo key is not a whole number of bytes".to_owned())
        })?;
        let algorithm = &spki.algorithm;
        match algorithm.oid {
            RSA_ENCRYPTION => {
                // RFC 3279 §2.3.1 says NULL; absent parameters are a common, harmless deviation.
                if algorithm.parameters.is_some_and(|p| !p.is_null()) {
                    return Err(format_error(
                        "rsaEncryption parameters must be NULL".to_owned(),
                    ));
                }
                decode_pkcs1(key)
            }
            EC_PUBLIC_KEY => {
                let curve = match algorithm.parameters_oid() {
                    Ok(PRIME256V1) => Curve::P256,
                    Ok(SECP384R1) => Curve::P384,
                    Ok(SECP521R1) => Curve::P521,
                    Ok(other) => {
                        return Err(format_error(format!(
                            "unsupported EC curve OID {other}; accepted: P-256, P-384, P-521"
                        )));
                    }
                    Err(_) => {
                        return Err(format_error(
                            "EC key parameters must name a curve (namedCurve OID)".to_owned(),
                        ));
                    }
                };
                decode_ec_point(curve, key)
            }
            ED25519 => {
                // RFC 8410 §3: parameters MUST be absent.
                if algorithm.parameters.is_some() {
                    return Err(format_error(
                        "Ed25519 key must have no algorithm parameters".to_owned(),
                    ));
                }
                let bytes = <[u8; 32]>::try_from(key)
                    .map_err(|_| format_error("Ed25519 public key must be 32 bytes".to_owned()))?;
                Ok(KeyMaterial::Ed25519(bytes))
            }
            other => Err(format_error(format!(
                "unsupported key algorithm OID {other}"
            ))),
        }
    }

    #[cfg(feature = "rsa")]
    fn decode_pkcs1(der: &[u8]) -> Result<KeyMaterial, KeyError> {
        let key = pkcs1::RsaPublicKeyRef::from_der(der)
            .map_err(|e| format_error(format!("invalid PKCS#1 RSAPublicKey: {e}")))?;
        Ok(KeyMaterial::Rsa {
            n: strip_leading_zeros(key.modulus.as_bytes()).to_vec(),
            e: strip_leading_zeros(key.public_exponent.as_bytes()).to_vec(),
        })
    }

    /// Without the `rsa` family the PKCS#1 decoder is left out; the key is refused as the backend
    /// would refuse it.
    #[cfg(not(feature = "rsa"))]
    fn decode_pkcs1(_: &[u8]) -> Result<KeyMaterial, KeyError> {
        Err(KeyError::Unsupported("RSA"))
    }

    fn decode_ec_point(curve: Curve, point: &[u8]) -> Result<KeyMaterial, KeyError> {
        let len = curve.coordinate_len();
        match point.first() {
            Some(0x04) if point.len() == 1 + 2 * len => {
                let (x, y) = point[1..].split_at(len);
                Ok(KeyMaterial::Ec {
                    curve,
                    x: x.to_vec(),
                    y: y.to_vec(),
                })
            }
            Some(0x02 | 0x03) => Err(format_error(format!(
                "compressed {} points are not supported; give the uncompressed point",
                curve.jwk_name()
            ))),
            _ => Err(format_error(format!(
                "{} public key is not an uncompressed point of {} bytes",
                curve.jwk_name(),
                1 + 2 * len
            ))),
        }
    }

    fn format_error(message: String) -> KeyError {
        KeyError::Format(message)
    }
}

#[cfg(all(test, not(feature = "pem")))]
mod without_decoder_tests {
    use super::*;

    #[test]
    fn every_pem_key_is_refused() {
        let pem = include_str!("../testdata/p256.pub.pem");
        assert_eq!(
            decode_public_key_pem(pem),
            Err(KeyError::Unsupported("PEM public"))
        );
        assert_eq!(
            decode_public_key_pem("").map_err(|e| e.to_string()),
            Err("PEM public keys are not supported by this build".to_owned())
        );
    }
}

#[cfg(all(test, feature = "pem"))]
mod tests {
    use super::*;

    const RSA2048: &str = include_str!("../testdata/rsa2048.pub.pem");
    const RSA2048_PKCS1: &str = include_str!("../testdata/rsa2048.pkcs1.pub.pem");
    #[cfg(feature = "rsa")]
    const RSA1024: &str = include_str!("../testdata/rsa1024.pub.pem");
    const P256: &str = include_str!("../testdata/p256.pub.pem");
    #[cfg(feature = "ec")]
    const P384: &str = include_str!("../testdata/p384.pub.pem");
    #[cfg(feature = "ec")]
    const P521: &str = include_str!("../testdata/p521.pub.pem");
    const ED25519_PUB: &str = include_str!("../testdata/ed25519.pub.pem");
    const PRIVATE_KEYS: [&str; 6] = [
        include_str!("../testdata/rsa2048.pk8.pem"),
        include_str!("../testdata/rsa1024.pk8.pem"),
        include_str!("../testdata/p256.pk8.pem"),
        include_str!("../testdata/p384.pk8.pem"),
        include_str!("../testdata/p521.pk8.pem"),
        include_str!("../testdata/ed25519.pk8.pem"),
    ];

    fn message(result: Result<KeyMaterial, KeyError>) -> String {
        match result {
            Err(KeyError::Format(m)) => m,
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    fn spki_pem(der: &[u8]) -> String {
        pem_rfc7468::encode_string("PUBLIC KEY", pem_rfc7468::LineEnding::LF, der).unwrap()
    }

    #[test]
    #[cfg(feature = "rsa")]
    fn rsa_spki_and_pkcs1_give_the_same_key() {
        let spki = decode_public_key_pem(RSA2048).unwrap();
        let pkcs1 = decode_public_key_pem(RSA2048_PKCS1).unwrap();
        assert_eq!(spki, pkcs1);
        let KeyMaterial::Rsa { n, e } = spki else {
            panic!("not RSA");
        };
        assert_eq!(n.len(), 256);
        assert_ne!(n[0], 0, "leading zero stripped");
        assert_eq!(e, [1, 0, 1]);
    }

    #[test]
    #[cfg(feature = "rsa")]
    fn small_rsa_keys_decode_and_are_left_to_prepare() {
        let KeyMaterial::Rsa { n, .. } = decode_public_key_pem(RSA1024).unwrap() else {
            panic!("not RSA");
        };
        assert_eq!(n.len(), 128);
    }

    #[test]
    #[cfg(feature = "ec")]
    fn ec_points_are_split_into_coordinates() {
        use crate::alg::Curve;
        for (pem, curve) in [
            (P256, Curve::P256),
            (P384, Curve::P384),
            (P521, Curve::P521),
        ] {
            let KeyMaterial::Ec { curve: c, x, y } = decode_public_key_pem(pem).unwrap() else {
                panic!("not EC");
            };
            assert_eq!(c, curve);
            assert_eq!(x.len(), curve.coordinate_len());
            assert_eq!(y.len(), curve.coordinate_len());
            crate::crypto::validate_ec_point(curve, &x, &y).unwrap();
        }
    }

    #[test]
    fn ed25519_spki() {
        assert!(matches!(
            decode_public_key_pem(ED25519_PUB),
            Ok(KeyMaterial::Ed25519(_))
        ));
    }

    #[test]
    fn surrounding_whitespace_is_tolerated() {
        let padded = format!("\n  {P256}\n\n");
        assert!(decode_public_key_pem(&padded).is_ok());
    }

    #[test]
    fn private_keys_are_refused_with_a_clear_message() {
        for pem in PRIVATE_KEYS {
            let m = message(decode_public_key_pem(pem));
            assert_eq!(
                m,
                "PEM label \"PRIVATE KEY\" is not a public key; give the public key"
            );
        }
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(message(decode_public_key_pem(legacy)).contains("is not a public key"));
        let garbled = "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----";
        assert!(message(decode_public_key_pem(garbled)).contains("is not a public key"));
        let sec1 = PRIVATE_KEYS[2].replace("PRIVATE KEY", "EC PRIVATE KEY");
        assert!(
            message(decode_public_key_pem(&sec1))
                .contains("\"EC PRIVATE KEY\" is not a public key")
        );
    }

    #[test]
    fn other_labels_and_garbage_are_refused() {
        let cert = P256.replace("PUBLIC KEY", "CERTIFICATE");
        assert!(message(decode_public_key_pem(&cert)).contains("certificate"));
        let other = P256.replace("PUBLIC KEY", "FOO");
        assert!(message(decode_public_key_pem(&other)).contains("unsupported PEM label \"FOO\""));
        assert!(message(decode_public_key_pem("not a key")).starts_with("not a PEM document"));
        assert!(message(decode_public_key_pem("")).starts_with("not a PEM document"));
        // SPKI content under the PKCS#1 label.
        #[cfg(feature = "rsa")]
        {
            let mislabelled = RSA2048.replace("PUBLIC KEY", "RSA PUBLIC KEY");
            assert!(message(decode_public_key_pem(&mislabelled)).starts_with("invalid PKCS#1"));
        }
    }

    #[test]
    fn unsupported_algorithms_name_the_oid() {
        // Ed448 SPKI (RFC 8410): algorithm 1.3.101.113, 57-byte key.
        let mut der = vec![
            0x30, 0x43, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x71, 0x03, 0x3a, 0x00,
        ];
        der.extend([0x11; 57]);
        let m = message(decode_public_key_pem(&spki_pem(&der)));
        assert_eq!(m, "unsupported key algorithm OID 1.3.101.113");
    }

    #[test]
    fn unsupported_curves_name_the_oid() {
        // id-ecPublicKey on secp256k1 (1.3.132.0.10), which JOSE names ES256K and we do not serve.
        let mut der = vec![
            0x30, 0x1c, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a, 0x03, 0x08, 0x00, 0x04,
        ];
        der.extend([0x11; 6]);
        let m = message(decode_public_key_pem(&spki_pem(&der)));
        assert!(m.contains("unsupported EC curve OID 1.3.132.0.10"), "{m}");
    }

    #[test]
    fn compressed_points_are_refused() {
        let KeyMaterial::Ec { x, .. } = decode_public_key_pem(P256).unwrap() else {
            panic!("not EC");
        };
        let mut der = vec![
            0x30, 0x39, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x22, 0x00, 0x02,
        ];
        der.extend(&x);
        let m = message(decode_public_key_pem(&spki_pem(&der)));
        assert!(
            m.contains("compressed P-256 points are not supported"),
            "{m}"
        );
    }

    #[test]
    fn messages_never_carry_key_bytes() {
        // Corrupt the DER (truncate the body) so the error path runs on real key content.
        let lines: Vec<&str> = RSA2048.lines().collect();
        let truncated = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[lines.len() - 1]);
        let m = message(decode_public_key_pem(&truncated));
        assert!(!m.contains(&lines[1][..16]), "{m}");
        assert!(m.len() < 160, "{m}");
    }

    #[test]
    #[cfg(not(feature = "rsa"))]
    fn rsa_keys_are_refused_without_the_rsa_family() {
        for pem in [RSA2048, RSA2048_PKCS1] {
            assert_eq!(
                decode_public_key_pem(pem),
                Err(KeyError::Unsupported("RSA"))
            );
        }
    }
}
