//! Key sources (secrets, JWKS documents, PEM public keys) turned into verifier keys.
//!
//! Errors are returned as plain messages; the front end that knows where the value came from (a
//! variable, a file field) adds that.

use jwtv_verifier::{
    Algorithm, Family, Key, KeyError, KeyMaterial, KeyParams, KeySet, Origin, Policy,
    decode_public_key_pem, read_jwks,
};

use super::{HmacSecret, RemoteLocation};

/// An imported HMAC secret: the verifier key, the secret itself (for minting), and a warning when it
/// was accepted only thanks to the weak-secret override.
pub(crate) struct ImportedSecret {
    pub key: Key,
    pub secret: HmacSecret,
    pub weak: Option<String>,
}

/// An imported JWKS: its keys, the `oct` secrets among them (for minting), and a warning when it was
/// accepted only thanks to the weak-secret override.
pub(crate) struct ImportedSet {
    pub set: KeySet,
    pub secrets: Vec<HmacSecret>,
    pub weak: Option<String>,
}

/// An HMAC secret, checked against the algorithms it would serve.
///
/// `allow_list` is the issuer's (possibly empty) algorithm allow-list. Without the override, a secret
/// too short for every HS algorithm it could serve is refused; with it, the secret serves them all and
/// the shortfall is reported as a warning.
pub(crate) fn secret(
    secret: Vec<u8>,
    allow_list: &[Algorithm],
    allow_weak: bool,
) -> Result<ImportedSecret, SecretError> {
    if secret.is_empty() {
        return Err(SecretError::Key(KeyError::EmptySecret.to_string()));
    }
    let candidates: Vec<Algorithm> = if allow_list.is_empty() {
        Algorithm::for_family(Family::Hmac).collect()
    } else {
        allow_list
            .iter()
            .copied()
            .filter(|a| a.family() == Family::Hmac)
            .collect()
    };
    // Candidates come in hash-size order, so the first one a secret is too short for is the one to name.
    let Some(&weakest) = candidates.first() else {
        return Err(SecretError::NoHmacAlgorithm);
    };
    let shortfall = candidates
        .iter()
        .copied()
        .find(|a| secret.len() < a.hash_len())
        .map(|alg| {
            KeyError::WeakSecret {
                alg,
                len: secret.len(),
                min: alg.hash_len(),
            }
            .to_string()
        });
    let too_short_for_all = secret.len() < weakest.hash_len();
    if too_short_for_all && !allow_weak {
        return Err(SecretError::Weak(shortfall.unwrap_or_default()));
    }
    // The override is only used when needed: a secret long enough for HS256 keeps the strict binding.
    let use_override = allow_weak && shortfall.is_some();
    let params = KeyParams {
        allow_weak_secret: use_override,
        ..KeyParams::default()
    };
    let key = Key::new(KeyMaterial::Hmac(secret.clone()), params)
        .map_err(|e| SecretError::Key(e.to_string()))?;
    Ok(ImportedSecret {
        key,
        secret: HmacSecret {
            issuer: 0,
            kid: None,
            alg: None,
            secret,
        },
        weak: if use_override { shortfall } else { None },
    })
}

#[derive(Debug)]
pub(crate) enum SecretError {
    /// Shorter than the hash output and no override: the front end adds how to override.
    Weak(String),
    /// An HMAC secret, but the allow-list names no HS algorithm.
    NoHmacAlgorithm,
    Key(String),
}

/// A JWKS document (or a single JWK) written by the operator: any key we cannot use is an error.
pub(crate) fn jwks(document: &[u8], allow_weak: bool) -> Result<ImportedSet, String> {
    let strict = Origin::Configured {
        allow_weak_secret: false,
    };
    let (read, weak) = match read_jwks(document, strict) {
        Ok(read) => (read, None),
        // Retried with the override only when the strict read failed, so strong keys keep their
        // strict binding and the warning names exactly what the override let through.
        Err(strict) if allow_weak => {
            let weak = Origin::Configured {
                allow_weak_secret: true,
            };
            match read_jwks(document, weak) {
                Ok(read) => (read, Some(strict.to_string())),
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(e) => return Err(e.to_string()),
    };
    if read.set.is_empty() {
        return Err("the key set holds no key".to_owned());
    }
    let secrets = read
        .secrets
        .into_iter()
        .map(|s| HmacSecret {
            issuer: 0,
            kid: s.kid,
            alg: s.alg,
            secret: s.secret,
        })
        .collect();
    Ok(ImportedSet {
        set: read.set,
        secrets,
        weak,
    })
}

/// A PEM public key (SPKI or PKCS#1), optionally named and bound to one algorithm.
pub(crate) fn pem(text: &[u8], kid: Option<String>, alg: Option<Algorithm>) -> Result<Key, String> {
    let text =
        std::str::from_utf8(text).map_err(|_| "not a PEM document (not UTF-8 text)".to_owned())?;
    let material = decode_public_key_pem(text).map_err(|e| match e {
        // Only a build without the PEM decoder says so: name the feature that brings it back.
        KeyError::Unsupported(_) => format!(
            "{e} (the component reads PEM when built with `--features pem`); give the key as a JWK \
             (JWKS) instead"
        ),
        e => e.to_string(),
    })?;
    Key::new(
        material,
        KeyParams {
            kid,
            alg,
            ..KeyParams::default()
        },
    )
    .map_err(|e| e.to_string())
}

/// `HS256, HS384` (or `nothing`).
pub(crate) fn alg_list(algs: &[Algorithm]) -> String {
    if algs.is_empty() {
        return "nothing".to_owned();
    }
    algs.iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Hmac => "HMAC secret",
        Family::Rsa => "RSA key",
        Family::Ec(_) => "EC key",
        Family::Okp(_) => "Ed25519 key",
    }
}

/// How summary lines and warnings name an issuer.
pub(crate) fn issuer_name(policy: &Policy) -> String {
    match &policy.issuer {
        Some(iss) => format!("issuer {iss:?}"),
        None => "default issuer (tokens whose iss no other issuer claims)".to_owned(),
    }
}

/// One summary line for an issuer: who, which keys, which algorithms, which policy. Never key bytes.
pub(crate) fn describe_issuer(policy: &Policy, keys: &KeySet) -> String {
    let who = issuer_name(policy);
    let key_words: Vec<String> = keys
        .keys()
        .iter()
        .map(|k| {
            let kid = k
                .kid()
                .map(|kid| format!(" kid {kid:?}"))
                .unwrap_or_default();
            format!(
                "{}{kid} ({})",
                family_name(k.family()),
                alg_list(k.algorithms())
            )
        })
        .collect();
    let algorithms = if policy.algorithms.is_empty() {
        format!("any the keys serve ({})", alg_list(&keys.algorithms()))
    } else {
        alg_list(&policy.algorithms)
    };
    let mut line = format!(
        "{who}: {} key(s): {}; algorithms: {algorithms}",
        keys.keys().len(),
        key_words.join(", ")
    );
    line.push_str(&describe_policy(policy));
    line
}

/// The summary line of an issuer whose keys are fetched: where from, and its policy.
pub(crate) fn describe_remote_issuer(policy: &Policy, location: &RemoteLocation) -> String {
    let who = issuer_name(policy);
    let source = match location {
        RemoteLocation::JwksUri(url) => format!("keys fetched from {url}"),
        RemoteLocation::Discovery { url, .. } => {
            format!("keys fetched through OIDC discovery ({url})")
        }
    };
    let algorithms = if policy.algorithms.is_empty() {
        "any the fetched keys serve".to_owned()
    } else {
        alg_list(&policy.algorithms)
    };
    format!(
        "{who}: {source}; algorithms: {algorithms}{}",
        describe_policy(policy)
    )
}

/// `; audiences: …; leeway …` for a summary line.
fn describe_policy(policy: &Policy) -> String {
    let mut line = String::new();
    if !policy.audiences.is_empty() {
        line.push_str(&format!("; audiences: {}", policy.audiences.join(", ")));
    }
    line.push_str(&format!(
        "; leeway {}s; exp {}",
        policy.leeway_secs,
        if policy.require_exp {
            "required"
        } else {
            "optional"
        }
    ));
    if let Some(max_age) = policy.max_age_secs {
        line.push_str(&format!("; max age {max_age}s"));
    }
    if !policy.required_claims.is_empty() {
        line.push_str(&format!(
            "; required claims: {}",
            policy.required_claims.join(", ")
        ));
    }
    if let Some(sub) = &policy.subject {
        line.push_str(&format!("; subject {sub:?}"));
    }
    if !policy.required_scopes.is_empty() {
        line.push_str(&format!(
            "; required scopes: {}",
            policy.required_scopes.join(" ")
        ));
    }
    line.push_str(&format!("; typ: {}", policy.types.join(", ")));
    line
}
