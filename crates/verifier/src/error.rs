//! Stable reason codes (the machine-readable half of every rejection) and the rejection type.

use std::borrow::Cow;
use std::fmt;

/// Every reason a request can be turned away, as the stable snake_case code of `design/api.md` §4.
/// Clients match on these strings, so a variant's name never changes once shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    InvalidRequest,
    MissingToken,
    MalformedToken,
    TokenTooLarge,
    AlgNotAllowed,
    UnknownKid,
    InvalidSignature,
    TokenExpired,
    TokenNotYetValid,
    TokenTooOld,
    InvalidIssuer,
    InvalidAudience,
    InvalidType,
    MissingClaim,
    UnsupportedCrit,
    InsufficientScope,
    /// A valid token that the policy's CEL rule refuses (or could not evaluate).
    RuleFailed,
    /// A DPoP proof (RFC 9449 §4.3) that is missing, malformed, fails a check or was used before.
    InvalidDpopProof,
    /// A token whose `cnf` binding (RFC 9449 `jkt`, RFC 8705 `x5t#S256`) is not met by the request:
    /// a bound token sent as a plain bearer token, an unbound token where binding is required, a key
    /// or certificate that is not the one the token names.
    InvalidTokenBinding,
    TemporarilyUnavailable,
    /// The store of used DPoP proof ids could not record this one (unreachable, or full): the proof
    /// cannot be shown to be fresh, so the request is refused (fail closed) and may be retried.
    ReplayStoreUnavailable,
    /// Never a verdict of the verifier: the answer of a shell whose configuration cannot be served
    /// (every request, fail closed), and of a route naming a policy the configuration lacks.
    ServerMisconfigured,
}

impl Code {
    pub const ALL: [Code; 22] = [
        Code::InvalidRequest,
        Code::MissingToken,
        Code::MalformedToken,
        Code::TokenTooLarge,
        Code::AlgNotAllowed,
        Code::UnknownKid,
        Code::InvalidSignature,
        Code::TokenExpired,
        Code::TokenNotYetValid,
        Code::TokenTooOld,
        Code::InvalidIssuer,
        Code::InvalidAudience,
        Code::InvalidType,
        Code::MissingClaim,
        Code::UnsupportedCrit,
        Code::InsufficientScope,
        Code::RuleFailed,
        Code::InvalidDpopProof,
        Code::InvalidTokenBinding,
        Code::TemporarilyUnavailable,
        Code::ReplayStoreUnavailable,
        Code::ServerMisconfigured,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidRequest => "invalid_request",
            Code::MissingToken => "missing_token",
            Code::MalformedToken => "malformed_token",
            Code::TokenTooLarge => "token_too_large",
            Code::AlgNotAllowed => "alg_not_allowed",
            Code::UnknownKid => "unknown_kid",
            Code::InvalidSignature => "invalid_signature",
            Code::TokenExpired => "token_expired",
            Code::TokenNotYetValid => "token_not_yet_valid",
            Code::TokenTooOld => "token_too_old",
            Code::InvalidIssuer => "invalid_issuer",
            Code::InvalidAudience => "invalid_audience",
            Code::InvalidType => "invalid_type",
            Code::MissingClaim => "missing_claim",
            Code::UnsupportedCrit => "unsupported_crit",
            Code::InsufficientScope => "insufficient_scope",
            Code::RuleFailed => "rule_failed",
            Code::InvalidDpopProof => "invalid_dpop_proof",
            Code::InvalidTokenBinding => "invalid_token_binding",
            Code::ReplayStoreUnavailable => "replay_store_unavailable",
            Code::TemporarilyUnavailable => "temporarily_unavailable",
            Code::ServerMisconfigured => "server_misconfigured",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token was refused: a stable [`Code`] plus a human description.
///
/// The description never contains the token, a secret or key material; it may name a claim, an
/// algorithm or a `kid`, which are already visible to whoever holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct Rejection {
    pub code: Code,
    pub description: Cow<'static, str>,
}

impl Rejection {
    pub fn new(code: Code, description: impl Into<Cow<'static, str>>) -> Self {
        Rejection {
            code,
            description: description.into(),
        }
    }

    pub(crate) fn malformed(description: impl Into<Cow<'static, str>>) -> Self {
        Rejection::new(Code::MalformedToken, description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(seen.insert(s), "duplicate {s}");
        }
    }
}
