//! The verification pipeline: bytes in, verified claims or a reason code out.

use crate::alg::Algorithm;
use crate::claims::{self, Claims};
use crate::compact;
use crate::error::{Code, Rejection};
use crate::header::{self, Header};
use crate::json;
use crate::key::KeySet;
use crate::policy::Policy;
use serde_json::Value;
use std::sync::Arc;

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
        let segments = compact::split(token, self.limits.max_token_bytes)?;
        let header_bytes = compact::decode_segment(segments.header, "header")?;
        let header_json = json::parse_object(&header_bytes, self.limits.max_json_depth)
            .map_err(|e| Rejection::malformed(format!("header is not a JSON object: {e}")))?;
        let header = Header::from_json(&header_json)?;
        let payload = compact::decode_segment(segments.payload, "payload")?;
        let claims = json::parse_object(&payload, self.limits.max_json_depth)
            .map_err(|e| Rejection::malformed(format!("payload is not a JSON object: {e}")))?;
        let signature = compact::decode_segment(segments.signature, "signature")?;

        let iss = match claims.get("iss") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(Rejection::malformed("iss must be a string").into()),
        };
        let rejected = |rejection: Rejection, issuer: Option<usize>| Rejected {
            rejection,
            iss: iss.map(|s| s.chars().take(256).collect()),
            kid: header.kid.clone(),
            issuer,
        };

        let issuer = self.select_issuer(iss).map_err(|r| rejected(r, None))?;
        let context = |rejection: Rejection| rejected(rejection, Some(issuer));
        let policy = &self.policies[issuer];
        check_type(&header, policy).map_err(context)?;
        if !policy.allows(header.alg) {
            return Err(context(Rejection::new(
                Code::AlgNotAllowed,
                format!("alg {} is not allowed", header.alg),
            )));
        }
        // Keys are those of the issuer the token claims, never another issuer's.
        let key_set = keys.key_set(issuer).ok_or_else(|| {
            context(Rejection::new(
                Code::TemporarilyUnavailable,
                "the issuer's keys are not available yet",
            ))
        })?;
        let key = key_set
            .select(header.alg, header.kid.as_deref())
            .map_err(context)?;
        if !key.verify(header.alg, segments.signing_input, &signature) {
            return Err(context(Rejection::new(
                Code::InvalidSignature,
                "signature does not verify",
            )));
        }
        claims::check(&claims, policy, now).map_err(context)?;

        let expires_at = claims::numeric_date(&claims, "exp").map_err(context)?;
        Ok(Verified {
            claims,
            issuer,
            alg: header.alg,
            kid: header.kid,
            expires_at,
        })
    }

    /// The issuer a token claims, or the default issuer (the one configured without `issuer`) when the
    /// token claims none or one we do not know.
    fn select_issuer(&self, iss: Option<&str>) -> Result<usize, Rejection> {
        let named = iss.and_then(|iss| {
            self.policies
                .iter()
                .position(|p| p.issuer.as_deref() == Some(iss))
        });
        if let Some(i) = named {
            return Ok(i);
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

fn check_type(header: &Header, policy: &Policy) -> Result<(), Rejection> {
    match &header.typ {
        Some(typ) if !policy.types.iter().any(|t| header::type_matches(typ, t)) => {
            let shown: String = typ.chars().take(32).collect();
            Err(Rejection::new(
                Code::InvalidType,
                format!("typ {shown:?} is not accepted"),
            ))
        }
        _ => Ok(()),
    }
}
