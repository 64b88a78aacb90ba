//! Watching a verification decide: each check reports when it passed, in the order the verifier applies
//! them, so a tool can show why a token was refused with the verifier's own rules rather than a second
//! copy of them.
//!
//! A refusal stops at the first failing check: it is the first of [`Check::ORDER`] not reported as
//! passed, and the [`crate::Rejection`] returned says why. Checks a policy does not configure (no
//! audience, no maximum age) pass.
//!
//! [`Verifier::verify`](crate::Verifier::verify) traces into [`NoTrace`], whose methods are empty and
//! inlined: the optimiser removes every call, so verification costs the same as without tracing.

use crate::key::Key;

/// One rule the verifier applies, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// Compact serialization, base64url, JSON header and payload, size and depth limits.
    Format,
    /// The token's `iss` names a configured issuer (or the default issuer applies).
    Issuer,
    /// Header `typ` is accepted.
    Type,
    /// Header `alg` is on the issuer's allow-list.
    Algorithm,
    /// The issuer has a key set.
    KeySet,
    /// One key of the set fits `alg` and `kid`.
    Key,
    Signature,
    /// `exp`, with the leeway.
    Expiry,
    /// `nbf`, with the leeway.
    NotBefore,
    /// `iat` not in the future, with the leeway.
    IssuedAt,
    /// Age from `iat`, when a maximum age is configured.
    MaxAge,
    /// `iss` equals the configured issuer.
    IssuerClaim,
    Audience,
    /// `sub` equals the configured subject.
    Subject,
    RequiredClaims,
    Scopes,
}

impl Check {
    /// The order in which the verifier applies the checks.
    pub const ORDER: [Check; 16] = [
        Check::Format,
        Check::Issuer,
        Check::Type,
        Check::Algorithm,
        Check::KeySet,
        Check::Key,
        Check::Signature,
        Check::Expiry,
        Check::NotBefore,
        Check::IssuedAt,
        Check::MaxAge,
        Check::IssuerClaim,
        Check::Audience,
        Check::Subject,
        Check::RequiredClaims,
        Check::Scopes,
    ];

    /// A stable name, for humans and `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Format => "format",
            Check::Issuer => "issuer",
            Check::Type => "typ",
            Check::Algorithm => "alg",
            Check::KeySet => "key_set",
            Check::Key => "key",
            Check::Signature => "signature",
            Check::Expiry => "exp",
            Check::NotBefore => "nbf",
            Check::IssuedAt => "iat",
            Check::MaxAge => "max_age",
            Check::IssuerClaim => "iss",
            Check::Audience => "aud",
            Check::Subject => "sub",
            Check::RequiredClaims => "required_claims",
            Check::Scopes => "scopes",
        }
    }
}

/// Told what the verifier decided, as it decides.
pub trait Trace {
    /// `check` passed.
    fn passed(&mut self, check: Check);
    /// The issuer whose policy and keys apply (index in [`crate::Verifier::policies`]).
    #[inline(always)]
    fn issuer(&mut self, _index: usize) {}
    /// The key that verifies the signature.
    #[inline(always)]
    fn key(&mut self, _key: &Key) {}
}

/// Observes nothing, at no cost.
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn passed(&mut self, _: Check) {}
}
