//! The effective policy of each issuer in plain sentences, for `check-config`: what a token must be
//! for this configuration to accept it, defaults included, so an operator reads what is enforced
//! rather than what was written.

use jwtv_config::Loaded;
use jwtv_keyset::RemoteLocation;
use jwtv_service::verifier::Policy;

/// A paragraph per issuer, in issuer order: a heading line, then one indented sentence per rule.
pub fn describe(loaded: &Loaded) -> Vec<String> {
    let policies = loaded.verifier.policies();
    let mut lines = Vec::new();
    for (index, policy) in policies.iter().enumerate() {
        let remote = loaded.remote.iter().find(|r| r.issuer == index);
        lines.push(match &policy.issuer {
            Some(iss) => format!("policy for tokens from {iss:?}:"),
            None => "policy for tokens whose iss no other issuer claims (the default issuer):"
                .to_owned(),
        });
        for sentence in sentences(policy, remote.map(|r| &r.location)) {
            lines.push(format!("  {sentence}"));
        }
    }
    lines
}

fn sentences(policy: &Policy, remote: Option<&RemoteLocation>) -> Vec<String> {
    let mut out = Vec::new();
    out.push(match &policy.issuer {
        Some(iss) if !policy.allowed_tenants.is_empty() => format!(
            "iss must be {iss:?} with {{tenantid}} replaced by the token's own tid, and tid one of \
             {} (no other tenant).",
            policy.allowed_tenants.join(", ")
        ),
        Some(iss) => format!("iss must be exactly {iss:?}."),
        None => "iss may be anything no other issuer claims, or absent.".to_owned(),
    });
    out.push(match remote {
        Some(RemoteLocation::Discovery { url, .. }) => format!(
            "Signatures are checked with the keys this issuer publishes (OIDC discovery: {url})."
        ),
        Some(RemoteLocation::JwksUri(url)) => {
            format!("Signatures are checked with the keys fetched from {url}.")
        }
        None => "Signatures are checked with the configured keys only.".to_owned(),
    });
    out.push(match policy.audiences.as_slice() {
        [] if remote.is_some() => "Any audience is accepted — warning: a token this identity \
             provider made for another application passes; set the audience."
            .to_owned(),
        [] => "Any audience is accepted (no audience configured).".to_owned(),
        [one] => format!("aud must be {one:?} (or an array holding it)."),
        many => format!(
            "aud must hold one of {} (any-of).",
            many.iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    let types = match policy.types.as_slice() {
        [one] => one.clone(),
        many => format!("one of {}", many.join(", ")),
    };
    out.push(if policy.accepts_untyped() {
        format!(
            "typ must be {types}, or absent (compared case-insensitively, \"application/\" \
             optional); any other kind of token is refused."
        )
    } else {
        format!(
            "typ must be {types} and is required (compared case-insensitively, \
             \"application/\" optional); a token without typ is refused."
        )
    });
    out.push(if policy.algorithms.is_empty() {
        "Algorithms: whichever each key is bound to (never none, never an RSA or EC key as an HMAC \
         secret)."
            .to_owned()
    } else {
        format!(
            "Algorithms: {} only.",
            policy
                .algorithms
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    out.push(format!(
        "exp is {}; exp, nbf and iat are checked with {} s of leeway.",
        if policy.require_exp {
            "required"
        } else {
            "optional"
        },
        policy.leeway_secs
    ));
    if let Some(max_age) = policy.max_age_secs {
        out.push(format!(
            "iat is required and must be at most {max_age} s old."
        ));
    }
    if !policy.required_claims.is_empty() {
        out.push(format!(
            "These claims must be present: {}.",
            policy.required_claims.join(", ")
        ));
    }
    if let Some(sub) = &policy.subject {
        out.push(format!("sub must be exactly {sub:?}."));
    }
    if !policy.required_scopes.is_empty() {
        out.push(format!(
            "These scopes must all be granted (scope or scp), else 403: {}.",
            policy.required_scopes.join(" ")
        ));
    }
    out
}
