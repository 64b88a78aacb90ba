//! JSON Web Keys (RFC 7517/7518/8037): from a JWKS document to verification keys.

use crate::alg::{Algorithm, Curve};
use crate::crypto;
use crate::json;
use crate::key::{Key, KeyError, KeyMaterial, KeyParams, KeySet};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

/// Key documents are configuration, not attacker input, and some publishers pad: accept either.
const KEY_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Depth is irrelevant for keys but a bound keeps a hostile remote document cheap to refuse.
const JWKS_MAX_DEPTH: usize = 8;

/// Where a key document comes from, which decides what it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Written by the operator: a JWKS or a single JWK; a key we cannot use is an error; `oct`
    /// secrets are verification keys, and are also handed back ([`Jwks::secrets`]) for a test-token
    /// minter to sign with.
    Configured { allow_weak_secret: bool },
    /// Fetched from a URL: a JWK Set (`{"keys":[…]}`) only; keys we cannot use are skipped (providers
    /// also list encryption keys and algorithms we do not implement), and so are `oct` keys, since a
    /// secret published at a URL proves nothing.
    Published,
}

/// An `oct` key of a configured document, as written. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct JwkSecret {
    pub kid: Option<String>,
    pub alg: Option<Algorithm>,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for JwkSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwkSecret")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("len", &self.secret.len())
            .finish()
    }
}

/// What one read of a key document yields.
#[derive(Debug, Default)]
pub struct Jwks {
    pub set: KeySet,
    /// Keys the document lists, usable or not.
    pub published: usize,
    /// The `oct` secrets of a [`Origin::Configured`] document (none for a published one).
    pub secrets: Vec<JwkSecret>,
}

/// Reads a key document once, in the mode its origin calls for (see [`Origin`]).
pub fn read_jwks(document: &[u8], origin: Origin) -> Result<Jwks, KeyError> {
    let root = json::parse_object(document, JWKS_MAX_DEPTH)
        .map_err(|e| KeyError::Format(format!("key set is not a JSON object: {e}")))?;
    let jwks: Vec<&Map<String, Value>> = match root.get("keys") {
        Some(Value::Array(keys)) => keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                k.as_object()
                    .ok_or_else(|| KeyError::Format(format!("keys[{i}] is not an object")))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(KeyError::Format("\"keys\" is not an array".into())),
        None if origin == Origin::Published => {
            return Err(KeyError::Format("not a JWK Set (no \"keys\" array)".into()));
        }
        None if root.contains_key("kty") => vec![&root],
        None => {
            return Err(KeyError::Format(
                "neither a JWK set (\"keys\") nor a JWK (\"kty\")".into(),
            ));
        }
    };
    let mut read = Jwks {
        published: jwks.len(),
        ..Jwks::default()
    };
    let allow_weak_secret = match origin {
        Origin::Configured { allow_weak_secret } => allow_weak_secret,
        Origin::Published => false,
    };
    for (i, jwk) in jwks.into_iter().enumerate() {
        let oct = jwk.get("kty").and_then(Value::as_str) == Some("oct");
        if oct && origin == Origin::Published {
            continue;
        }
        match parse_jwk(jwk, allow_weak_secret) {
            Ok(key) => {
                if oct {
                    read.secrets.push(JwkSecret {
                        kid: key.kid().map(str::to_owned),
                        alg: jwk
                            .get("alg")
                            .and_then(Value::as_str)
                            .and_then(|a| a.parse().ok()),
                        secret: b64(jwk, "k")?,
                    });
                }
                read.set.push(key);
            }
            Err(_) if origin == Origin::Published => {}
            Err(e) => {
                let kid = jwk
                    .get("kid")
                    .and_then(Value::as_str)
                    .map(|k| format!(" (kid {k:?})"))
                    .unwrap_or_default();
                return Err(KeyError::Format(format!("keys[{i}]{kid}: {e}")));
            }
        }
    }
    Ok(read)
}

/// Parses one JWK into a verification key.
pub fn parse_jwk(jwk: &Map<String, Value>, allow_weak_secret: bool) -> Result<Key, KeyError> {
    let alg = match opt_str(jwk, "alg")? {
        None => None,
        Some(a) => Some(
            a.parse::<Algorithm>()
                .map_err(|e| KeyError::Format(e.to_string()))?,
        ),
    };
    let params = KeyParams {
        kid: opt_str(jwk, "kid")?.map(str::to_owned),
        alg,
        usage: opt_str(jwk, "use")?.map(str::to_owned),
        key_ops: match jwk.get("key_ops") {
            None => None,
            Some(Value::Array(ops)) => Some(
                ops.iter()
                    .map(|o| {
                        o.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| fmt_err("key_ops holds a non-string"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(_) => return Err(fmt_err("key_ops is not an array")),
        },
        allow_weak_secret,
    };
    let material = match req_str(jwk, "kty")? {
        "oct" => KeyMaterial::Hmac(b64(jwk, "k")?),
        "RSA" => {
            refuse_private(jwk, &["d", "p", "q", "dp", "dq", "qi"])?;
            KeyMaterial::Rsa {
                n: strip_zeros(b64(jwk, "n")?),
                e: strip_zeros(b64(jwk, "e")?),
            }
        }
        "EC" => {
            refuse_private(jwk, &["d"])?;
            let curve = match req_str(jwk, "crv")? {
                "P-256" => Curve::P256,
                "P-384" => Curve::P384,
                "P-521" => Curve::P521,
                other => return Err(fmt_err(format!("unsupported EC curve {other:?}"))),
            };
            let (x, y) = (b64(jwk, "x")?, b64(jwk, "y")?);
            crypto::validate_ec_point(curve, &x, &y)?;
            KeyMaterial::Ec { curve, x, y }
        }
        "OKP" => {
            refuse_private(jwk, &["d"])?;
            match req_str(jwk, "crv")? {
                "Ed25519" => {
                    let x: [u8; 32] = b64(jwk, "x")?.try_into().map_err(|_| KeyError::Ed25519)?;
                    KeyMaterial::Ed25519(x)
                }
                other => return Err(fmt_err(format!("unsupported OKP curve {other:?}"))),
            }
        }
        other => return Err(fmt_err(format!("unsupported key type {other:?}"))),
    };
    Key::new(material, params)
}

/// A key set is published for everyone to read; private members mean someone published the wrong file.
fn refuse_private(jwk: &Map<String, Value>, members: &[&str]) -> Result<(), KeyError> {
    match members.iter().find(|m| jwk.contains_key(**m)) {
        Some(m) => Err(fmt_err(format!(
            "private key member {m:?} present; configure the public key only"
        ))),
        None => Ok(()),
    }
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|&&b| b == 0).count();
    v.drain(..zeros);
    v
}

fn opt_str<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, KeyError> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(fmt_err(format!("{name:?} is not a string"))),
    }
}

fn req_str<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, KeyError> {
    opt_str(jwk, name)?.ok_or_else(|| fmt_err(format!("missing {name:?}")))
}

fn b64(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, KeyError> {
    KEY_B64
        .decode(req_str(jwk, name)?)
        .map_err(|_| fmt_err(format!("{name:?} is not base64url")))
}

fn fmt_err(msg: impl Into<String>) -> KeyError {
    KeyError::Format(msg.into())
}
