//! The JWS algorithms we verify and the key family each one needs.

use std::fmt;
use std::str::FromStr;

/// A JWS `alg` value we implement. `none` is deliberately absent: it can never be enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

/// Elliptic curves we accept, each bound to exactly one algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
    P521,
    Ed25519,
}

/// What kind of key an algorithm needs. A key belongs to exactly one family, so an RSA or EC public
/// key can never be fed to HMAC (the HS/RS confusion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Hmac,
    Rsa,
    Ec(Curve),
    Okp(Curve),
}

impl Algorithm {
    pub const ALL: [Algorithm; 13] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Family::Rsa,
            Algorithm::ES256 => Family::Ec(Curve::P256),
            Algorithm::ES384 => Family::Ec(Curve::P384),
            Algorithm::ES512 => Family::Ec(Curve::P521),
            Algorithm::EdDSA => Family::Okp(Curve::Ed25519),
        }
    }

    /// Output size of the hash, in bytes: the minimum HMAC secret length (RFC 7518 §3.2).
    pub fn hash_len(self) -> usize {
        match self {
            Algorithm::HS256 | Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 => 32,
            Algorithm::HS384 | Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => 48,
            Algorithm::HS512 | Algorithm::RS512 | Algorithm::PS512 | Algorithm::ES512 => 64,
            Algorithm::EdDSA => 64,
        }
    }

    /// Algorithms a key of this family may verify when the key itself names no `alg`.
    pub fn for_family(family: Family) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| a.family() == family)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an `alg` string we do not implement (or refuse, like `none`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported algorithm {0:?}")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Case-sensitive on purpose: `hs256` or `None` are not algorithms (RFC 7515 §4.1.1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // A `match` compiles to a few length and byte comparisons; searching `ALL` with `as_str`
        // called memcmp once per algorithm. `every_algorithm_round_trips` keeps the two lists equal.
        Ok(match s {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "ES512" => Algorithm::ES512,
            "EdDSA" => Algorithm::EdDSA,
            _ => return Err(UnknownAlgorithm(s.to_owned())),
        })
    }
}

impl Curve {
    pub fn jwk_name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::Ed25519 => "Ed25519",
        }
    }

    /// Length in bytes of one coordinate / scalar (and of `r` and `s` in a JWS ECDSA signature).
    pub fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 | Curve::Ed25519 => 32,
            Curve::P384 => 48,
            // 521 bits, rounded up to whole bytes (RFC 7518 §3.4).
            Curve::P521 => 66,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_can_never_be_parsed_as_an_algorithm() {
        for s in ["none", "None", "NONE", "nOnE", ""] {
            assert!(s.parse::<Algorithm>().is_err(), "{s}");
        }
    }

    #[test]
    fn algorithm_names_are_case_sensitive() {
        assert_eq!("HS256".parse::<Algorithm>(), Ok(Algorithm::HS256));
        for s in ["hs256", "Hs256", "rs256", "es256", "eddsa", "EDDSA"] {
            assert!(s.parse::<Algorithm>().is_err(), "{s}");
        }
    }

    #[test]
    fn every_algorithm_round_trips() {
        for a in Algorithm::ALL {
            assert_eq!(a.as_str().parse::<Algorithm>(), Ok(a));
        }
    }
}
