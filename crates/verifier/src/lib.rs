//! Pure verification of JSON Web Tokens in compact JWS form.
//!
//! Takes token bytes, the current time and the configured keys as arguments and returns verified
//! claims or a stable reason [`Code`]. It follows every rule of `design/security.md`: strict parsing
//! before any crypto, keys bound to one algorithm family, no key ever taken from the token, explicit
//! claim policy with secure defaults.
//!
//! What it must not do: any I/O, read a clock, hold global state, or implement a cryptographic
//! primitive. Fetching key sets, reading files and telling the time belong to the shells.

pub mod alg;
pub mod claims;
pub mod compact;
pub mod crypto;
pub mod error;
pub mod header;
pub mod issuer;
pub mod json;
pub mod jwk;
pub mod key;
pub mod pem;
pub mod policy;
pub mod trace;
pub mod verify;

pub use alg::{Algorithm, Curve, Family};
pub use claims::Claims;
pub use error::{Code, Rejection};
pub use jwk::{JwkSecret, Jwks, Origin, read_jwks};
pub use key::{Key, KeyError, KeyMaterial, KeyParams, KeySet};
pub use pem::decode_public_key_pem;
pub use policy::Policy;
pub use trace::{Check, NoTrace, Trace};
pub use verify::{ConfigError, KeyStore, Limits, Rejected, StaticKeys, Verified, Verifier};

#[cfg(test)]
mod tests;
