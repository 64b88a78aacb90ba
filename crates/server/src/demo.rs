//! `--demo`: a working configuration with nothing to set up, and a token to try it with.
//!
//! The secret is random for every start (never a built-in default), so a demo instance left running
//! cannot be used with a token anyone else could mint.

use anyhow::{Context as _, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtv_config::{self as config, Loaded, table};
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::cli::MintArgs;

pub const ISSUER: &str = "jwt-validator-demo";
pub const AUDIENCE: &str = "demo";
pub const LISTEN: &str = "127.0.0.1:3000";

pub struct Demo {
    pub loaded: Loaded,
    /// Valid for one hour.
    pub token: String,
}

pub fn load() -> anyhow::Result<Demo> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow!("cannot draw a random demo secret"))?;
    // base64url keeps the secret printable for the env-style configuration; 43 bytes of it carry the
    // full 256 random bits.
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    // The process environment is deliberately not consulted: the demo must behave the same everywhere.
    let env = |name: &str| {
        [
            (table::SECRET, secret.as_str()),
            (table::ISSUER, ISSUER),
            (table::AUDIENCE, AUDIENCE),
            (table::LISTEN, LISTEN),
        ]
        .into_iter()
        .find(|(row, _)| row.var() == name)
        .map(|(_, value)| value.to_owned())
    };
    let no_files = |_: &std::path::Path| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
    let mut loaded = config::load(&env, &no_files).context("demo configuration")?;
    loaded
        .warnings
        .push("demo mode: random secret, for trying the service out only".to_owned());
    let args = MintArgs {
        sub: Some("demo-user".to_owned()),
        ttl: 3600,
        ..MintArgs::default()
    };
    let minted = crate::mint::mint(&loaded, &args, crate::now_secs())?;
    Ok(Demo {
        loaded,
        token: minted.token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_token_is_valid_and_secrets_differ_per_start() {
        let a = load().expect("demo loads");
        let b = load().expect("demo loads");
        assert_eq!(a.loaded.server.listen, LISTEN);
        let verified = a
            .loaded
            .verifier
            .verify(a.token.as_bytes(), crate::now_secs(), &a.loaded.keys)
            .expect("demo token verifies");
        assert_eq!(verified.claims["iss"], ISSUER);
        assert_eq!(verified.claims["aud"], AUDIENCE);
        assert!(
            b.loaded
                .verifier
                .verify(a.token.as_bytes(), crate::now_secs(), &b.loaded.keys)
                .is_err(),
            "each start must have its own secret"
        );
    }
}
