//! The verification pipeline: bytes in, verified claims or a reason code out.

use crate::alg::Algorithm;
use crate::claims::{self, Claims};
use crate::compact;
use crate::error::{Code, Rejection};
use crate::header;
use crate::issuer::{self, Match, TemplateError};
use crate::key::KeySet;
use crate::policy::Policy;
use crate::trace::{Check, NoTrace, Trace};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

/// Stack room for the decoded header, payload and signature of a usual token; a segment that does not
/// fit in what is left is decoded on the heap instead. Zeroing it is part of every verification, so it
/// is sized for the cheap algorithms (an HMAC token of up to about 1 KiB); for RSA, where one heap
/// allocation more is noise, a large signature simply spills.
const SCRATCH_BYTES: usize = 1024;

/// Size and shape limits, all checked before any signature work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_token_bytes: usize,
    pub max_json_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_token_bytes: 8 * 1024,
            max_json_depth: 16,
        }
    }
}

/// Where an issuer's keys come from at the moment of verification. Static configurations hold them
/// forever; a shell that fetches remote key sets swaps them. `None` means no usable key set yet.
pub trait KeyStore {
    fn key_set(&self, issuer: usize) -> Option<Arc<KeySet>>;
}

/// Key sets fixed at start-up, one per issuer, in issuer order.
#[derive(Debug, Default)]
pub struct StaticKeys(pub Vec<Arc<KeySet>>);

impl KeyStore for StaticKeys {
    fn key_set(&self, issuer: usize) -> Option<Arc<KeySet>> {
        self.0.get(issuer).cloned()
    }
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub claims: Claims,
    /// Index of the issuer whose keys and policy accepted it.
    pub issuer: usize,
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// `exp`, when present, in seconds since the epoch.
    pub expires_at: Option<f64>,
}

/// A refused token, with what could be read of it for logs (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub rejection: Rejection,
    pub iss: Option<String>,
    pub kid: Option<String>,
    /// Index of the issuer whose keys and policy were applied, once one was selected: a shell that
    /// fetches key sets needs it to refresh the right one after an `unknown_kid`.
    pub issuer: Option<usize>,
}

impl From<Rejection> for Rejected {
    fn from(rejection: Rejection) -> Rejected {
        Rejected {
            rejection,
            iss: None,
            kid: None,
            issuer: None,
        }
    }
}

/// Why a set of issuers cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no issuer configured")]
    NoIssuer,
    #[error("issuer {0:?} is configured twice")]
    DuplicateIssuer(String),
    #[error("more than one issuer without an `issuer` value; only one can be the default")]
    SeveralDefaults,
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// Verifies compact JWS tokens for a fixed list of issuers.
#[derive(Debug, Clone)]
pub struct Verifier {
    policies: Vec<Policy>,
    limits: Limits,
}

impl Verifier {
    pub fn new(policies: Vec<Policy>, limits: Limits) -> Result<Verifier, ConfigError> {
        if policies.is_empty() {
            return Err(ConfigError::NoIssuer);
        }
        for (i, p) in policies.iter().enumerate() {
            issuer::check_template(p)?;
            let earlier = &policies[..i];
            match &p.issuer {
                Some(iss) if earlier.iter().any(|q| q.issuer.as_ref() == Some(iss)) => {
                    return Err(ConfigError::DuplicateIssuer(iss.clone()));
                }
                None if earlier.iter().any(|q| q.issuer.is_none()) => {
                    return Err(ConfigError::SeveralDefaults);
                }
                _ => {}
            }
        }
        Ok(Verifier { policies, limits })
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Verifies `token` at time `now` (seconds since the Unix epoch) with the keys of `keys`.
    pub fn verify(
        &self,
        token: &[u8],
        now: u64,
        keys: &dyn KeyStore,
    ) -> Result<Verified, Rejected> {
        self.verify_traced(token, now, keys, &mut NoTrace)
    }

    /// [`Verifier::verify`], telling `trace` each check that passed (see [`crate::trace`]).
    pub fn verify_traced<T: Trace>(
        &self,
        token: &[u8],
        now: u64,
        keys: &dyn KeyStore,
        trace: &mut T,
    ) -> Result<Verified, Rejected> {
        let segments = compact::split(token, self.limits.max_token_bytes)?;
        // The decoded segments of a usual token fit here, so decoding them allocates nothing; a larger
        // one spills to the heap.
        let mut buffer = [0u8; SCRATCH_BYTES];
        let mut scratch = &mut buffer[..];
        let mut spill = [Vec::new(), Vec::new(), Vec::new()];
        let [header_spill, payload_spill, signature_spill] = &mut spill;
        let header_bytes =
            compact::decode_segment_into(segments.header, "header", &mut scratch, header_spill)?;
        let header = header::parse(header_bytes, self.limits.max_json_depth)?;
        let payload =
            compact::decode_segment_into(segments.payload, "payload", &mut scratch, payload_spill)?;
        let (claims, dates) = claims::parse(payload, self.limits.max_json_depth)
            .map_err(|e| Rejection::malformed(format!("payload is not a JSON object: {e}")))?;
        let signature = compact::decode_segment_into(
            segments.signature,
            "signature",
            &mut scratch,
            signature_spill,
        )?;

        let iss = match claims.get("iss") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(Rejection::malformed("iss must be a string").into()),
        };
        trace.passed(Check::Format);
        // Only a refusal pays for copying what it reports.
        let rejected = |rejection: Rejection, issuer: Option<usize>| Rejected {
            rejection,
            iss: iss.map(|s| s.chars().take(256).collect()),
            kid: header.kid.as_deref().map(str::to_owned),
            issuer,
        };

        let issuer = self
            .select_issuer(iss, &claims)
            .map_err(|r| rejected(r, None))?;
        trace.issuer(issuer);
        trace.passed(Check::Issuer);
        let context = |rejection: Rejection| rejected(rejection, Some(issuer));
        let policy = &self.policies[issuer];
        check_type(header.typ.as_deref(), policy).map_err(context)?;
        trace.passed(Check::Type);
        if !policy.allows(header.alg) {
            return Err(context(Rejection::new(
                Code::AlgNotAllowed,
                format!("alg {} is not allowed", header.alg),
            )));
        }
        trace.passed(Check::Algorithm);
        // Keys are those of the issuer the token claims, never another issuer's.
        let key_set = keys.key_set(issuer).ok_or_else(|| {
            context(Rejection::new(
                Code::TemporarilyUnavailable,
                "the issuer's keys are not available yet",
            ))
        })?;
        trace.passed(Check::KeySet);
        let key = key_set
            .select(header.alg, header.kid.as_deref())
            .map_err(context)?;
        trace.key(key);
        trace.passed(Check::Key);
        if !key.verify(header.alg, segments.signing_input, signature) {
            return Err(context(Rejection::new(
                Code::InvalidSignature,
                "signature does not verify",
            )));
        }
        trace.passed(Check::Signature);
        let expires_at =
            claims::check_with_dates(&claims, dates, policy, now, trace).map_err(context)?;
        Ok(Verified {
            issuer,
            alg: header.alg,
            kid: header.kid.map(Cow::into_owned),
            expires_at,
            claims,
        })
    }

    /// The issuer a token claims, or the default issuer (the one configured without `issuer`) when the
    /// token claims none or one we do not know. An exact issuer wins over a template of the same shape;
    /// a template's refusal (a tenant not listed) is final, never handed to the default issuer.
    fn select_issuer(&self, iss: Option<&str>, claims: &Claims) -> Result<usize, Rejection> {
        if let Some(iss) = iss {
            let exact = self
                .policies
                .iter()
                .position(|p| p.allowed_tenants.is_empty() && p.issuer.as_deref() == Some(iss));
            if let Some(i) = exact {
                return Ok(i);
            }
            for (i, p) in self.policies.iter().enumerate() {
                if p.allowed_tenants.is_empty() {
                    continue;
                }
                match issuer::matches(p, iss, claims) {
                    Match::Yes => return Ok(i),
                    Match::Refused(rejection) => return Err(rejection),
                    Match::No => {}
                }
            }
        }
        if let Some(i) = self.policies.iter().position(|p| p.issuer.is_none()) {
            return Ok(i);
        }
        match iss {
            Some(_) => Err(Rejection::new(
                Code::InvalidIssuer,
                "issuer is not accepted",
            )),
            None => Err(Rejection::new(
                Code::MissingClaim,
                "required claim \"iss\" is missing",
            )),
        }
    }
}

fn check_type(typ: Option<&str>, policy: &Policy) -> Result<(), Rejection> {
    match typ {
        Some(typ) if !policy.types.iter().any(|t| header::type_matches(typ, t)) => {
            let shown: String = typ.chars().take(32).collect();
            Err(Rejection::new(
                Code::InvalidType,
                format!("typ {shown:?} is not accepted"),
            ))
        }
        None if !policy.accepts_untyped() => Err(Rejection::new(
            Code::InvalidType,
            "typ is missing; this issuer requires an explicit type",
        )),
        _ => Ok(()),
    }
}
