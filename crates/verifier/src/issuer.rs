//! Whether a token's `iss` names a configured issuer: an exact string, or an issuer template of a
//! multi-tenant identity provider with an explicit list of tenants.
//!
//! Microsoft Entra ID signs the tokens of every tenant with the same keys, and each tenant's tokens
//! carry `iss` = `https://login.microsoftonline.com/{tenant id}/v2.0` and `tid` = the tenant id. An
//! application open to several organisations configures the template with `{tenantid}` and the
//! tenants it serves. A token matches when its `iss` is the template with `{tenantid}` replaced by its
//! own `tid`, and that tenant is listed: accepting any tenant would let anyone with an Entra tenant of
//! their own mint a token this service accepts, so an empty list is refused at configuration.

use serde_json::Value;

use crate::claims::Claims;
use crate::error::{Code, Rejection};
use crate::policy::Policy;

/// What stands for the tenant in an issuer template (as in Entra's common discovery document).
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// Why a policy's issuer and tenant list cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "issuer {0:?} is a template ({{tenantid}}) but no tenants are allowed; list the tenant ids \
         to accept"
    )]
    NoTenants(String),
    #[error(
        "allowed tenants need an issuer template with {{tenantid}}, such as https://login.microsoftonline.com/{{tenantid}}/v2.0"
    )]
    NotATemplate,
    #[error("issuer template {0:?} must hold {{tenantid}} exactly once")]
    Placeholders(String),
    #[error("allowed tenant {0:?} is empty or holds '/'")]
    BadTenant(String),
}

/// Checks the issuer template and the tenant list of `policy` go together.
pub fn check_template(policy: &Policy) -> Result<(), TemplateError> {
    let placeholders = policy
        .issuer
        .as_deref()
        .map_or(0, |iss| iss.matches(TENANT_PLACEHOLDER).count());
    match (placeholders, policy.allowed_tenants.is_empty()) {
        (0, true) => Ok(()),
        (0, false) => Err(TemplateError::NotATemplate),
        (1, true) => Err(TemplateError::NoTenants(
            policy.issuer.clone().unwrap_or_default(),
        )),
        (1, false) => match policy
            .allowed_tenants
            .iter()
            .find(|t| t.is_empty() || t.contains('/'))
        {
            Some(bad) => Err(TemplateError::BadTenant(bad.clone())),
            None => Ok(()),
        },
        _ => Err(TemplateError::Placeholders(
            policy.issuer.clone().unwrap_or_default(),
        )),
    }
}

/// Whether `iss` is this policy's issuer, or of its template's shape (the tenant not checked): for
/// tools that pick the issuer a token is meant for, such as `mint`.
pub fn names(policy: &Policy, iss: &str) -> bool {
    match policy.issuer.as_deref() {
        Some(configured) if policy.allowed_tenants.is_empty() => configured == iss,
        Some(configured) => configured
            .split_once(TENANT_PLACEHOLDER)
            .and_then(|(prefix, suffix)| iss.strip_prefix(prefix)?.strip_suffix(suffix))
            .is_some_and(|t| !t.is_empty() && !t.contains('/')),
        None => false,
    }
}

/// How `iss` relates to one policy.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Match {
    /// Not this issuer (another may be).
    No,
    Yes,
    /// This issuer's shape, but not a token it accepts (a tenant not listed, `iss`/`tid` disagree).
    Refused(Rejection),
}

/// Whether the token's `iss` names this policy's issuer. An exact issuer matches only itself; a
/// template matches an `iss` of its shape, which is then held to the token's `tid` and the tenant
/// list.
pub(crate) fn matches(policy: &Policy, iss: &str, claims: &Claims) -> Match {
    let Some(configured) = policy.issuer.as_deref() else {
        return Match::No;
    };
    if policy.allowed_tenants.is_empty() {
        return if iss == configured {
            Match::Yes
        } else {
            Match::No
        };
    }
    let Some((prefix, suffix)) = configured.split_once(TENANT_PLACEHOLDER) else {
        return Match::No;
    };
    let tenant = match iss
        .strip_prefix(prefix)
        .and_then(|t| t.strip_suffix(suffix))
    {
        Some(t) if !t.is_empty() && !t.contains('/') => t,
        _ => return Match::No,
    };
    match claims.get("tid") {
        Some(Value::String(tid)) if tid == tenant => {}
        Some(Value::String(_)) => {
            return Match::Refused(Rejection::new(
                Code::InvalidIssuer,
                "iss names another tenant than tid",
            ));
        }
        Some(_) => return Match::Refused(Rejection::malformed("tid must be a string")),
        None => {
            return Match::Refused(Rejection::new(
                Code::MissingClaim,
                "required claim \"tid\" is missing",
            ));
        }
    }
    if policy.allowed_tenants.iter().any(|t| t == tenant) {
        Match::Yes
    } else {
        Match::Refused(Rejection::new(
            Code::InvalidIssuer,
            "tenant is not accepted",
        ))
    }
}
