//! Verification keys and key sets: what a key may verify, and how a token's header picks one.

use crate::alg::{Algorithm, Curve, Family};
use crate::crypto::{self, VerifyingKey};
use crate::error::{Code, Rejection};

/// Longest `kid` we look up. It is an opaque lookup key, never a path or a query.
pub const MAX_KID_LEN: usize = 256;

/// Smallest and largest RSA moduli accepted (RFC 7518 §3.3 requires at least 2048 bits).
pub const RSA_MIN_BITS: usize = 2048;
pub const RSA_MAX_BITS: usize = 8192;

/// Raw public key material, already decoded from JWK or PEM, before the crypto backend prepares it.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// An HMAC secret.
    Hmac(Vec<u8>),
    /// RSA modulus and public exponent, big-endian, without leading zero bytes.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An EC public point, coordinates big-endian and exactly `curve.coordinate_len()` bytes each.
    Ec {
        curve: Curve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    /// An Ed25519 public key.
    Ed25519([u8; 32]),
}

impl std::fmt::Debug for KeyMaterial {
    // Never print key bytes: logs and error messages must not carry secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyMaterial::Hmac(k) => write!(f, "Hmac({} bytes)", k.len()),
            KeyMaterial::Rsa { n, .. } => write!(f, "Rsa({} bits)", n.len() * 8),
            KeyMaterial::Ec { curve, .. } => write!(f, "Ec({})", curve.jwk_name()),
            KeyMaterial::Ed25519(_) => f.write_str("Ed25519"),
        }
    }
}

impl KeyMaterial {
    /// The key type as a JWK would name it, for messages.
    pub fn family_label(&self) -> &'static str {
        family_name(self.family())
    }

    pub fn family(&self) -> Family {
        match self {
            KeyMaterial::Hmac(_) => Family::Hmac,
            KeyMaterial::Rsa { .. } => Family::Rsa,
            KeyMaterial::Ec { curve, .. } => Family::Ec(*curve),
            KeyMaterial::Ed25519(_) => Family::Okp(Curve::Ed25519),
        }
    }
}

/// Why a key could not be imported. Reported at configuration time, so it names the problem
/// precisely but never echoes key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("HMAC secret is {len} bytes, shorter than the {min}-byte output of {alg}")]
    WeakSecret {
        alg: Algorithm,
        len: usize,
        min: usize,
    },
    #[error("HMAC secret is empty")]
    EmptySecret,
    #[error("RSA modulus is {0} bits; accepted: {RSA_MIN_BITS} to {RSA_MAX_BITS}")]
    RsaSize(usize),
    #[error("RSA public exponent is invalid")]
    RsaExponent,
    #[error("EC public key is not a valid point on {0}")]
    EcPoint(&'static str),
    #[error("Ed25519 public key is invalid")]
    Ed25519,
    #[error("key of type {family} cannot be used with alg {alg}")]
    AlgorithmMismatch {
        family: &'static str,
        alg: Algorithm,
    },
    #[error("{0} keys are not supported by this build")]
    Unsupported(&'static str),
    #[error("{0}")]
    Format(String),
}

/// Attributes a key carries besides its material (from the JWK, or from configuration for PEM keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyParams {
    pub kid: Option<String>,
    /// The one algorithm this key is for, when its source says so (JWK `alg`).
    pub alg: Option<Algorithm>,
    /// JWK `use`; when present it must be `sig` for the key to verify anything.
    pub usage: Option<String>,
    /// JWK `key_ops`; when present it must contain `verify`.
    pub key_ops: Option<Vec<String>>,
    /// Accept an HMAC secret shorter than the hash output. Only ever set by an explicit operator override.
    pub allow_weak_secret: bool,
}

/// One verification key, bound to one family (and curve) and the algorithms it may verify.
pub struct Key {
    params: KeyParams,
    family: Family,
    algorithms: Vec<Algorithm>,
    prepared: crypto::Prepared,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.params.kid)
            .field("family", &self.family)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl Key {
    pub fn new(material: KeyMaterial, params: KeyParams) -> Result<Key, KeyError> {
        let family = material.family();
        let algorithms: Vec<Algorithm> = match params.alg {
            Some(alg) if alg.family() != family => {
                return Err(KeyError::AlgorithmMismatch {
                    family: family_name(family),
                    alg,
                });
            }
            Some(alg) => vec![alg],
            None => Algorithm::for_family(family).collect(),
        };
        let algorithms = match &material {
            KeyMaterial::Hmac(secret) => hmac_algorithms(secret, algorithms, &params)?,
            _ => algorithms,
        };
        let prepared = crypto::Prepared::prepare(&material)?;
        Ok(Key {
            params,
            family,
            algorithms,
            prepared,
        })
    }

    pub fn kid(&self) -> Option<&str> {
        self.params.kid.as_deref()
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// The algorithms this key may verify.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// Whether the secret is shorter than some hash it is allowed for (only with the override).
    pub fn is_weak_secret(&self) -> bool {
        self.params.allow_weak_secret
    }

    fn usable_for_signatures(&self) -> bool {
        let use_ok = self.params.usage.as_deref().is_none_or(|u| u == "sig");
        let ops_ok = self
            .params
            .key_ops
            .as_ref()
            .is_none_or(|ops| ops.iter().any(|o| o == "verify"));
        use_ok && ops_ok
    }

    fn fits(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg) && self.usable_for_signatures()
    }

    /// The signature layer alone: whether `signature` over `message` verifies under this key for
    /// `alg`, with the same checks a token gets (the key fits `alg`, the signature's shape, the
    /// backend). For conformance suites (Wycheproof, `tests/wycheproof.rs`) that feed raw vectors;
    /// tokens go through [`crate::Verifier`], which parses and picks the key first.
    pub fn verify_signature(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.verify(alg, message, signature)
    }

    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        // Defence in depth: selection already checked this, but a key must never verify an
        // algorithm of another family whatever the caller did.
        self.fits(alg) && self.prepared.verify(alg, message, signature)
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::Hmac => "oct",
        Family::Rsa => "RSA",
        Family::Ec(Curve::P256) => "EC P-256",
        Family::Ec(Curve::P384) => "EC P-384",
        Family::Ec(Curve::P521) => "EC P-521",
        Family::Ec(Curve::Ed25519) | Family::Okp(_) => "OKP Ed25519",
    }
}

/// A secret shorter than a hash's output is refused for that hash (RFC 7518 §3.2), unless the
/// operator explicitly overrode it. Without an explicit `alg`, the secret keeps the HS algorithms it is
/// long enough for.
fn hmac_algorithms(
    secret: &[u8],
    candidates: Vec<Algorithm>,
    params: &KeyParams,
) -> Result<Vec<Algorithm>, KeyError> {
    if secret.is_empty() {
        return Err(KeyError::EmptySecret);
    }
    if params.allow_weak_secret {
        return Ok(candidates);
    }
    let strong: Vec<Algorithm> = candidates
        .iter()
        .copied()
        .filter(|a| secret.len() >= a.hash_len())
        .collect();
    if strong.is_empty() {
        let alg = candidates[0];
        return Err(KeyError::WeakSecret {
            alg,
            len: secret.len(),
            min: alg.hash_len(),
        });
    }
    Ok(strong)
}

/// The keys of one issuer.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    pub fn new(keys: Vec<Key>) -> KeySet {
        KeySet { keys }
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn push(&mut self, key: Key) {
        self.keys.push(key);
    }

    /// Every algorithm some key of this set may verify.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut algs: Vec<Algorithm> = self
            .keys
            .iter()
            .flat_map(|k| k.algorithms.iter().copied())
            .collect();
        algs.sort();
        algs.dedup();
        algs
    }

    /// Picks the key for a token's `alg` and `kid`.
    ///
    /// `kid` is only compared for equality. A token without `kid` (or naming none of the keys) is
    /// accepted only when exactly one key without a kid fits its algorithm (any key, for a token without
    /// kid), so an attacker cannot steer verification towards a key of their choice.
    pub fn select(&self, alg: Algorithm, kid: Option<&str>) -> Result<&Key, Rejection> {
        match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid() == Some(kid)).peekable();
                if named.peek().is_none() {
                    // Keys configured without a kid (a bare secret, a PEM file) cannot be named, and the
                    // service being replaced ignored kid: one such key fitting the alg still verifies.
                    let mut unnamed = self
                        .keys
                        .iter()
                        .filter(|k| k.kid().is_none() && k.fits(alg));
                    if let (Some(key), None) = (unnamed.next(), unnamed.next()) {
                        return Ok(key);
                    }
                    return Err(Rejection::new(
                        Code::UnknownKid,
                        format!("no key with kid {kid:?}"),
                    ));
                }
                named.find(|k| k.fits(alg)).ok_or_else(|| {
                    Rejection::new(
                        Code::AlgNotAllowed,
                        format!("key {kid:?} cannot verify alg {alg}"),
                    )
                })
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Ok(key),
                    (None, _) => Err(Rejection::new(
                        Code::AlgNotAllowed,
                        format!("no configured key can verify alg {alg}"),
                    )),
                    (Some(_), Some(_)) => Err(Rejection::new(
                        Code::UnknownKid,
                        format!("token has no kid and several keys fit alg {alg}"),
                    )),
                }
            }
        }
    }
}
