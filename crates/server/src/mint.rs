//! `mint`: a signed test token from the same configuration the service runs with, so a new user has a
//! working token within a minute. Signing is for tests and demos; the service itself never signs.

use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtv_config::Loaded;
use jwtv_service::verifier::{Algorithm, Family, Policy};
use jwtv_signer::SigningKey;
use serde_json::{Map, Value};

use crate::cli::MintArgs;

/// A minted token, and why the configured validator would refuse it, if it would.
pub struct Minted {
    pub token: String,
    pub refused: Option<String>,
}

pub fn mint(loaded: &Loaded, args: &MintArgs, now: u64) -> anyhow::Result<Minted> {
    let policies = loaded.verifier.policies();
    let issuer = choose_issuer(policies, args.iss.as_deref())?;
    let policy = &policies[issuer];

    let (signer, alg, default_kid) = match &args.private_key {
        Some(path) => {
            let alg = args.alg.as_deref().map(parse_alg).transpose()?;
            let (signer, alg) = private_key_signer(path, alg)?;
            (signer, alg, None)
        }
        None => hmac_signer(loaded, issuer, policy, args)?,
    };

    let mut header = Map::new();
    header.insert("alg".into(), alg.as_str().into());
    header.insert(
        "typ".into(),
        args.typ
            .clone()
            .unwrap_or_else(|| default_type(policy))
            .into(),
    );
    if let Some(kid) = args.kid.clone().or(default_kid) {
        header.insert("kid".into(), kid.into());
    }

    let mut claims = Map::new();
    if let Some(iss) = args.iss.clone().or_else(|| policy.issuer.clone()) {
        claims.insert("iss".into(), iss.into());
    }
    if let Some(sub) = args.sub.clone().or_else(|| policy.subject.clone()) {
        claims.insert("sub".into(), sub.into());
    }
    let audiences: Vec<String> = if args.aud.is_empty() {
        policy.audiences.iter().take(1).cloned().collect()
    } else {
        args.aud.clone()
    };
    match audiences.as_slice() {
        [] => {}
        [one] => {
            claims.insert("aud".into(), one.clone().into());
        }
        many => {
            claims.insert("aud".into(), many.to_vec().into());
        }
    }
    let scope = args
        .scope
        .clone()
        .or_else(|| (!policy.required_scopes.is_empty()).then(|| policy.required_scopes.join(" ")));
    if let Some(scope) = scope {
        claims.insert("scope".into(), scope.into());
    }
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(args.ttl).into());
    for claim in &args.claims {
        let (key, value) = claim
            .split_once('=')
            .ok_or_else(|| anyhow!("--claim {claim:?}: expected KEY=VALUE"))?;
        let value = serde_json::from_str::<Value>(value)
            .unwrap_or_else(|_| Value::String(value.to_owned()));
        claims.insert(key.to_owned(), value);
    }

    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?)
    );
    let signature = signer
        .sign(alg.as_str(), input.as_bytes())
        .map_err(|e| anyhow!("cannot sign: {e}"))?;
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));

    // Checked with the very verifier the service would use, so the user learns at once when the
    // configuration needs more (a required claim, another audience…). An issuer whose keys are fetched
    // cannot be checked offline: saying "would refuse: temporarily_unavailable" would mislead.
    let remote = loaded.remote.iter().any(|r| r.issuer == issuer);
    let refused = loaded
        .verifier
        .verify(token.as_bytes(), now, &loaded.keys)
        .err()
        .filter(|_| !remote)
        .map(|r| format!("{}: {}", r.rejection.code, r.rejection.description));
    Ok(Minted { token, refused })
}

fn choose_issuer(policies: &[Policy], iss: Option<&str>) -> anyhow::Result<usize> {
    let named = |p: &Policy| {
        p.issuer
            .as_deref()
            .map(|i| format!("{i:?}"))
            .unwrap_or_else(|| "(default)".into())
    };
    match iss {
        Some(iss) => policies
            .iter()
            .position(|p| jwtv_service::verifier::issuer::names(p, iss))
            .or_else(|| policies.iter().position(|p| p.issuer.is_none()))
            .ok_or_else(|| {
                let known: Vec<String> = policies.iter().map(named).collect();
                anyhow!(
                    "--iss {iss:?} is not a configured issuer (configured: {})",
                    known.join(", ")
                )
            }),
        None if policies.len() == 1 => Ok(0),
        None => {
            let known: Vec<String> = policies.iter().map(named).collect();
            bail!(
                "several issuers are configured ({}); choose one with --iss",
                known.join(", ")
            )
        }
    }
}

fn default_type(policy: &Policy) -> String {
    if policy.types.iter().any(|t| t.eq_ignore_ascii_case("JWT")) {
        "JWT".to_owned()
    } else {
        policy
            .types
            .first()
            .cloned()
            .unwrap_or_else(|| "JWT".to_owned())
    }
}

fn parse_alg(name: &str) -> anyhow::Result<Algorithm> {
    name.parse::<Algorithm>()
        .map_err(|_| anyhow!("--alg {name:?} is not a supported algorithm"))
}

/// Signs with the issuer's configured HMAC secret (the one named by `--kid`, if given).
fn hmac_signer(
    loaded: &Loaded,
    issuer: usize,
    policy: &Policy,
    args: &MintArgs,
) -> anyhow::Result<(SigningKey, Algorithm, Option<String>)> {
    let secrets: Vec<_> = loaded
        .hmac_secrets
        .iter()
        .filter(|s| s.issuer == issuer)
        .collect();
    let secret = match &args.kid {
        Some(kid) => secrets
            .iter()
            .find(|s| s.kid.as_deref() == Some(kid))
            .or_else(|| secrets.iter().find(|s| s.kid.is_none())),
        None => secrets.first(),
    }
    .ok_or_else(|| {
        anyhow!(
            "the issuer has no HMAC secret in the configuration; sign with an asymmetric key: \
             --private-key FILE.pem"
        )
    })?;
    let servable: Vec<Algorithm> = jwtv_service::verifier::KeyStore::key_set(&loaded.keys, issuer)
        .map(|set| set.algorithms())
        .unwrap_or_default();
    let alg = match (&args.alg, secret.alg) {
        (Some(name), _) => parse_alg(name)?,
        (None, Some(alg)) => alg,
        (None, None) => servable
            .iter()
            .copied()
            .find(|a| a.family() == Family::Hmac && policy.allows(*a))
            .unwrap_or(Algorithm::HS256),
    };
    if alg.family() != Family::Hmac {
        bail!("--alg {alg} needs --private-key; the configured secret signs HS256, HS384 or HS512");
    }
    Ok((SigningKey::hmac(secret.secret()), alg, secret.kid.clone()))
}

/// The PKCS#8 DER of a private key file, PEM or DER, with a hint for the formats ring cannot read.
fn private_key_der(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok().map(str::trim);
    let Some(pem) = text.filter(|t| t.starts_with("-----BEGIN")) else {
        return Ok(bytes.to_vec());
    };
    let (label, der) = pem_rfc7468::decode_vec(pem.as_bytes())
        .map_err(|e| anyhow!("not a valid PEM document: {e}"))?;
    match label {
        "PRIVATE KEY" => Ok(der),
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" => bail!(
            "{label:?} is not PKCS#8; convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out key.pk8.pem`"
        ),
        "ENCRYPTED PRIVATE KEY" => {
            bail!("the private key is encrypted; decrypt it with `openssl pkcs8 -in KEY`")
        }
        other => bail!("PEM label {other:?} is not a private key"),
    }
}

/// Loads `--private-key`; without `--alg`, the key's type decides: Ed25519 → EdDSA, P-256 → ES256,
/// P-384 → ES384, P-521 → ES512, RSA → RS256.
fn private_key_signer(
    path: &Path,
    alg: Option<Algorithm>,
) -> anyhow::Result<(SigningKey, Algorithm)> {
    let shown = path.display();
    let bytes =
        std::fs::read(path).with_context(|| format!("--private-key: cannot read {shown}"))?;
    let der = private_key_der(&bytes).with_context(|| format!("--private-key {shown}"))?;
    match alg {
        Some(alg) if alg.family() == Family::Hmac => {
            bail!("--alg {alg} signs with the configured secret; leave out --private-key")
        }
        Some(alg) => SigningKey::from_pkcs8_der(alg.as_str(), &der)
            .map(|key| (key, alg))
            .map_err(|e| anyhow!("--private-key {shown}: {e}")),
        None => [
            Algorithm::EdDSA,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::ES512,
            Algorithm::RS256,
        ]
        .into_iter()
            .find_map(|alg| SigningKey::from_pkcs8_der(alg.as_str(), &der).ok().map(|key| (key, alg)))
            .ok_or_else(|| {
                anyhow!(
                    "--private-key {shown}: not a PKCS#8 Ed25519, P-256, P-384, P-521 or RSA (2048 to 8192 bits) \
                     private key"
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NOW: u64 = 1_700_000_000;

    fn loaded(vars: &[(&str, &str)]) -> Loaded {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = |name: &str| vars.get(name).cloned();
        let read = |p: &Path| std::fs::read(p);
        jwtv_config::load(&env, &read).expect("valid configuration")
    }

    fn claims(token: &str) -> Map<String, Value> {
        let payload = token.split('.').nth(1).expect("three segments");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
    }

    #[test]
    fn a_p521_private_key_signs_es512_without_alg() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../verifier/testdata/p521.pk8.pem");
        let (key, alg) = private_key_signer(&path, None).expect("a P-521 PKCS#8 key");
        assert_eq!(alg, Algorithm::ES512);
        assert_eq!(key.sign("ES512", b"x").expect("signs").len(), 132);
    }

    #[test]
    fn minted_token_passes_the_configured_validator() {
        let l = loaded(&[
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("JWT_ISSUER", "me"),
            ("JWT_AUDIENCE", "api,web"),
            ("JWT_REQUIRED_CLAIMS", "role"),
        ]);
        let args = MintArgs {
            sub: Some("alice".into()),
            claims: vec!["role=admin".into(), "n=3".into(), "obj={\"a\":[1]}".into()],
            ttl: 60,
            ..MintArgs::default()
        };
        let minted = mint(&l, &args, NOW).expect("mints");
        assert_eq!(minted.refused, None);
        let c = claims(&minted.token);
        assert_eq!(c["iss"], "me");
        assert_eq!(c["sub"], "alice");
        assert_eq!(c["aud"], "api");
        assert_eq!(c["role"], "admin");
        assert_eq!(c["n"], 3);
        assert_eq!(c["obj"]["a"][0], 1);
        assert_eq!(c["exp"], NOW + 60);
        assert_eq!(c["iat"], NOW);
    }

    #[test]
    fn a_token_the_validator_would_refuse_is_reported() {
        let l = loaded(&[
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("JWT_AUDIENCE", "api"),
        ]);
        let args = MintArgs {
            aud: vec!["other".into()],
            ttl: 60,
            ..MintArgs::default()
        };
        let minted = mint(&l, &args, NOW).expect("mints");
        assert!(
            minted
                .refused
                .as_deref()
                .is_some_and(|r| r.starts_with("invalid_audience"))
        );
    }

    #[test]
    fn explicit_hs_alg_and_bad_claims() {
        let l = loaded(&[("JWT_SECRET", &"k".repeat(64))]);
        let args = MintArgs {
            alg: Some("HS512".into()),
            ttl: 60,
            ..MintArgs::default()
        };
        let minted = mint(&l, &args, NOW).expect("mints");
        assert_eq!(minted.refused, None);
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(minted.token.split('.').next().unwrap_or_default())
                .expect("b64"),
        )
        .expect("json");
        assert_eq!(header["alg"], "HS512");
        let bad = MintArgs {
            claims: vec!["novalue".into()],
            ..MintArgs::default()
        };
        assert!(mint(&l, &bad, NOW).is_err());
        let rs = MintArgs {
            alg: Some("RS256".into()),
            ..MintArgs::default()
        };
        assert!(mint(&l, &rs, NOW).is_err());
    }

    #[test]
    fn several_issuers_need_iss() {
        assert!(choose_issuer(&[Policy::default()], None).is_ok());
        let two = [
            Policy {
                issuer: Some("a".into()),
                ..Policy::default()
            },
            Policy {
                issuer: Some("b".into()),
                ..Policy::default()
            },
        ];
        assert!(choose_issuer(&two, None).is_err());
        assert_eq!(choose_issuer(&two, Some("b")).ok(), Some(1));
        assert!(choose_issuer(&two, Some("c")).is_err());
    }
}
