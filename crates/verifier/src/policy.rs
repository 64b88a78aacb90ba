//! What an issuer's tokens must satisfy beyond a valid signature: plain data with secure defaults.

use crate::alg::Algorithm;

/// Default clock skew tolerance, applied to `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// The claim policy of one issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Exact `iss` value. `None` makes this the issuer for tokens no other configured issuer claims.
    pub issuer: Option<String>,
    /// Accepted audiences (any-of). When non-empty, `aud` is required.
    pub audiences: Vec<String>,
    /// The algorithm allow-list. Empty means: whatever this issuer's keys are bound to.
    pub algorithms: Vec<Algorithm>,
    pub leeway_secs: u64,
    /// `exp` must be present.
    pub require_exp: bool,
    /// Maximum age from `iat`; when set, `iat` is required.
    pub max_age_secs: Option<u64>,
    /// Claims that must be present, whatever their value.
    pub required_claims: Vec<String>,
    /// Exact `sub` value, when configured.
    pub subject: Option<String>,
    /// Accepted `typ` header values when one is present (RFC 9068 access tokens use `at+jwt`).
    pub types: Vec<String>,
    /// Scopes that must all be granted (`scope` space-delimited or `scp` array).
    pub required_scopes: Vec<String>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            issuer: None,
            audiences: Vec::new(),
            algorithms: Vec::new(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            require_exp: true,
            max_age_secs: None,
            required_claims: Vec::new(),
            subject: None,
            types: vec!["JWT".to_owned()],
            required_scopes: Vec::new(),
        }
    }
}

impl Policy {
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.is_empty() || self.algorithms.contains(&alg)
    }
}
