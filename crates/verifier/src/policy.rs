//! What an issuer's tokens must satisfy beyond a valid signature: plain data with secure defaults.

use crate::alg::Algorithm;

/// Default clock skew tolerance, applied to `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// The `typ` values accepted when none are configured: the generic type (or none at all), and RFC 9068
/// access tokens (`at+jwt`, also as `application/at+jwt`), which is what identity providers issue.
pub const DEFAULT_TYPES: [&str; 2] = ["JWT", "at+jwt"];

/// The claim policy of one issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Exact `iss` value, or an issuer template holding `{tenantid}` (see [`crate::issuer`]). `None`
    /// makes this the issuer for tokens no other configured issuer claims.
    pub issuer: Option<String>,
    /// With an issuer template: the tenant ids accepted (the token's `tid`, which its `iss` must name).
    /// Required with a template, refused without one.
    pub allowed_tenants: Vec<String>,
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
    /// Accepted `typ` header values, compared as RFC 7515 §4.1.9 says (case-insensitive, the
    /// `application/` prefix optional). A token without `typ` is a generic JWT (RFC 7519 §5.1), so it
    /// is accepted only when `JWT` is in the list: a list without it (`["at+jwt"]`) is explicit typing,
    /// RFC 9068 §4's "MUST verify typ" for access tokens. The default, [`DEFAULT_TYPES`], takes what
    /// real access tokens carry and still refuses the other kinds an issuer signs with the same keys
    /// (`logout+jwt`, `secevent+jwt`, `dpop+jwt`, …).
    pub types: Vec<String>,
    /// Scopes that must all be granted (`scope` space-delimited or `scp` array).
    pub required_scopes: Vec<String>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            issuer: None,
            allowed_tenants: Vec::new(),
            audiences: Vec::new(),
            algorithms: Vec::new(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            require_exp: true,
            max_age_secs: None,
            required_claims: Vec::new(),
            subject: None,
            types: DEFAULT_TYPES.map(str::to_owned).to_vec(),
            required_scopes: Vec::new(),
        }
    }
}

impl Policy {
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.is_empty() || self.algorithms.contains(&alg)
    }

    /// Whether a token may leave `typ` out: only when the generic type `JWT` is accepted.
    pub fn accepts_untyped(&self) -> bool {
        self.types
            .iter()
            .any(|t| crate::header::type_matches("JWT", t))
    }
}
