//! Every error path of the configuration, and the success cases of both front ends, over an in-memory
//! environment and file system.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtv_verifier::{Algorithm, Code, KeyStore};

use super::{ConfigError, Loaded, load};

const SECRET: &str = "0123456789abcdef0123456789abcdef-and-a-bit";
const NOW: u64 = 1_700_000_000;

const RSA_PUB: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu5tB/nZIk4Tlg4p8ctjp
ph4r6i0R4FUuS3RWJN6OFU2ttlxm0cYm8Ee+bO1hpmOCtvJ5J7v1/jyfjLFsV3iv
IiimxT8fIVTAIP00okaD4wmyq9TevNB8+VbPl4jZ2rlTS7IWhOIGvzth208PsJ+W
ULjFRbwrwDChu/jMXYfJWsUdMMPzZRwz0DegZrm+lPUyOZPprxI80MhZfeql46F6
Jz+tGoZBM8QSmU9eoS2BJY7SAH6u6BqZXHTOt4x928nfIcJqF9YziikEzJe4tKSS
CT20q49Oi+s2w3UnYcTIXO0kM531mHxIN+C7400VeMzAKWuugQ9vtPTY+fNEcGTo
8QIDAQAB
-----END PUBLIC KEY-----
";

const EC_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEwvhwFCIic8/m92NIyh1NI3dmU9UV
EY2udytFhKWVMVsOtqfwpf2Dn8n50eo3hMUIM8hZYWKSPM++fngiM8Pyxw==
-----END PUBLIC KEY-----
";

const ED_PUB: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAOLmUGnhYUrD4YkdTB0PxwV/GMl9qWsY3y29ds3OgmIs=
-----END PUBLIC KEY-----
";

const EC_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"ec1","alg":"ES256","use":"sig","x":"wvhwFCIic8_m92NIyh1NI3dmU9UVEY2udytFhKWVMVs","y":"Dran8KX9g5_J-dHqN4TFCDPIWWFikjzPvn54IjPD8sc"}]}"#;

/// `{"kty":"oct","kid":"hs","k":<SECRET>}`
fn oct_jwks(secret: &str, alg: Option<&str>) -> String {
    let alg = alg.map(|a| format!(r#","alg":"{a}""#)).unwrap_or_default();
    format!(
        r#"{{"keys":[{{"kty":"oct","kid":"hs"{alg},"k":"{}"}}]}}"#,
        URL_SAFE_NO_PAD.encode(secret)
    )
}

#[derive(Default)]
pub(super) struct Fixture {
    env: HashMap<String, String>,
    files: HashMap<PathBuf, Vec<u8>>,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        Fixture::default()
    }

    pub(super) fn env(mut self, name: &str, value: &str) -> Fixture {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    pub(super) fn file(mut self, path: &str, content: &str) -> Fixture {
        self.files
            .insert(PathBuf::from(path), content.as_bytes().to_vec());
        self
    }

    pub(super) fn config(self, toml: &str) -> Fixture {
        self.env("JWT_CONFIG", "/etc/jwtv/jwtv.toml")
            .file("/etc/jwtv/jwtv.toml", toml)
    }

    pub(super) fn load(&self) -> Result<Loaded, ConfigError> {
        let env = |name: &str| self.env.get(name).cloned();
        let read = |path: &Path| {
            self.files
                .get(path)
                .cloned()
                // ENOENT, so the message is the one an operator would really see.
                .ok_or_else(|| io::Error::from_raw_os_error(2))
        };
        load(&env, &read)
    }

    pub(super) fn ok(&self) -> Loaded {
        match self.load() {
            Ok(loaded) => loaded,
            Err(e) => panic!("unexpected configuration error: {e}"),
        }
    }

    /// The error's one line (asserting it is one line).
    pub(super) fn err(&self) -> String {
        let message = match self.load() {
            Ok(loaded) => panic!("configuration unexpectedly accepted: {loaded:?}"),
            Err(e) => e.to_string(),
        };
        assert!(
            !message.contains('\n') && !message.contains('\r'),
            "not one line: {message}"
        );
        message
    }
}

fn hs_token(alg: &str, secret: &str, claims: &str) -> String {
    let hash = match alg {
        "HS256" => ring::hmac::HMAC_SHA256,
        "HS384" => ring::hmac::HMAC_SHA384,
        _ => ring::hmac::HMAC_SHA512,
    };
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
    let payload = URL_SAFE_NO_PAD.encode(claims);
    let input = format!("{header}.{payload}");
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(hash, secret.as_bytes()),
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn verify(loaded: &Loaded, token: &str) -> Result<usize, Code> {
    loaded
        .verifier
        .verify(token.as_bytes(), NOW, &loaded.keys)
        .map(|v| v.issuer)
        .map_err(|r| r.rejection.code)
}

fn exp() -> u64 {
    NOW + 600
}

// ---------------------------------------------------------------- environment: success

#[test]
fn seed_compatible_secret_alone_is_a_working_configuration() {
    let loaded = Fixture::new().env("JWT_SECRET", SECRET).ok();
    assert_eq!(loaded.server.listen, "0.0.0.0:3000");
    assert_eq!(loaded.server.request_timeout, Duration::from_secs(10));
    assert_eq!(loaded.server.first_byte_timeout, Duration::from_secs(5));
    assert_eq!(loaded.server.max_connections, None);
    assert_eq!(loaded.options, jwtv_service::Options::default());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let policy = &loaded.verifier.policies()[0];
    assert_eq!(policy.issuer, None);
    assert!(
        policy.algorithms.is_empty(),
        "no allow-list: whatever the key is bound to"
    );
    assert_eq!(policy.leeway_secs, 60);
    assert!(policy.require_exp);
    let token = hs_token(
        "HS256",
        SECRET,
        &format!(r#"{{"sub":"a","exp":{}}}"#, exp()),
    );
    assert_eq!(verify(&loaded, &token), Ok(0));
    let forged = hs_token(
        "HS256",
        "another-secret-that-is-long-enough!!",
        &format!(r#"{{"exp":{}}}"#, exp()),
    );
    assert_eq!(verify(&loaded, &forged), Err(Code::InvalidSignature));
}

#[test]
fn port_sets_all_interfaces_and_jwt_listen_wins() {
    let f = Fixture::new().env("JWT_SECRET", SECRET).env("PORT", "8080");
    assert_eq!(f.ok().server.listen, "0.0.0.0:8080");
    let f = f.env("JWT_LISTEN", "127.0.0.1:9000");
    assert_eq!(f.ok().server.listen, "127.0.0.1:9000");
    let f = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_LISTEN", "[::1]:0");
    assert_eq!(f.ok().server.listen, "[::1]:0");
}

#[test]
fn every_policy_and_limit_variable_is_applied() {
    let loaded = Fixture::new()
        // Long enough for HS384 too, or the allow-list entry would be unservable.
        .env("JWT_SECRET", &"s".repeat(48))
        .env("JWT_ISSUER", "https://issuer.example")
        .env("JWT_AUDIENCE", "api, web,,")
        .env("JWT_ALGORITHMS", "HS256,HS384")
        .env("JWT_LEEWAY", "5")
        .env("JWT_MAX_AGE", "3600")
        .env("JWT_REQUIRED_CLAIMS", "sub,jti")
        .env("JWT_TYPES", "at+jwt")
        .env("JWT_REQUIRE_EXP", "false")
        .env("JWT_MAX_BODY_BYTES", "2048")
        .env("JWT_MAX_TOKEN_BYTES", "1024")
        .env("JWT_EXPOSE_ERRORS", "no")
        .env("JWT_REALM", "payments")
        .ok();
    let p = &loaded.verifier.policies()[0];
    assert_eq!(p.issuer.as_deref(), Some("https://issuer.example"));
    assert_eq!(p.audiences, ["api", "web"]);
    assert_eq!(p.algorithms, [Algorithm::HS256, Algorithm::HS384]);
    assert_eq!(p.leeway_secs, 5);
    assert_eq!(p.max_age_secs, Some(3600));
    assert_eq!(p.required_claims, ["sub", "jti"]);
    assert_eq!(p.types, ["at+jwt"]);
    assert!(!p.require_exp);
    assert_eq!(loaded.options.max_body_bytes, 2048);
    assert!(!loaded.options.expose_descriptions);
    assert_eq!(loaded.options.realm, "payments");
    assert_eq!(loaded.verifier.limits().max_token_bytes, 1024);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn empty_variables_count_as_unset() {
    let loaded = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_ISSUER", "")
        .env("JWT_LEEWAY", "")
        .env("PORT", "")
        .env("JWT_ALGORITHMS", " ")
        .ok();
    assert_eq!(loaded.verifier.policies()[0].issuer, None);
    assert_eq!(loaded.verifier.policies()[0].leeway_secs, 60);
    assert_eq!(loaded.server.listen, "0.0.0.0:3000");
}

#[test]
fn secret_file_loses_one_final_newline_only() {
    let loaded = Fixture::new()
        .env("JWT_SECRET_FILE", "/run/secrets/jwt")
        .file("/run/secrets/jwt", &format!("{SECRET}\n"))
        .ok();
    assert_eq!(loaded.hmac_secrets[0].secret(), SECRET.as_bytes());
    let token = hs_token("HS256", SECRET, &format!(r#"{{"exp":{}}}"#, exp()));
    assert_eq!(verify(&loaded, &token), Ok(0));

    let loaded = Fixture::new()
        .env("JWT_SECRET_FILE", "/s")
        .file("/s", &format!("{SECRET}\r\n"))
        .ok();
    assert_eq!(loaded.hmac_secrets[0].secret(), SECRET.as_bytes());
}

#[test]
fn key_sources_combine_into_one_issuer() {
    let loaded = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_JWKS", EC_JWKS)
        .env("JWT_PUBLIC_KEY_FILE", "/keys/rsa.pem")
        .file("/keys/rsa.pem", RSA_PUB)
        .ok();
    let set = loaded.keys.key_set(0).expect("issuer 0 has keys");
    assert_eq!(set.keys().len(), 3);
    assert!(set.algorithms().contains(&Algorithm::ES256));
    assert!(set.algorithms().contains(&Algorithm::RS256));
    assert!(set.algorithms().contains(&Algorithm::HS256));
}

#[test]
fn jwks_file_and_ed25519_pem_load() {
    let loaded = Fixture::new()
        .env("JWT_JWKS_FILE", "/keys/jwks.json")
        .file("/keys/jwks.json", EC_JWKS)
        .ok();
    assert_eq!(
        loaded.keys.key_set(0).map(|s| s.algorithms()),
        Some(vec![Algorithm::ES256])
    );
    let loaded = Fixture::new()
        .env("JWT_PUBLIC_KEY_FILE", "/ed.pem")
        .file("/ed.pem", ED_PUB)
        .env("JWT_ALGORITHMS", "EdDSA")
        .ok();
    assert_eq!(loaded.verifier.policies()[0].algorithms, [Algorithm::EdDSA]);
    let loaded = Fixture::new()
        .env("JWT_PUBLIC_KEY_FILE", "/ec.pem")
        .file("/ec.pem", EC_PUB)
        .ok();
    assert_eq!(
        loaded.keys.key_set(0).map(|s| s.algorithms()),
        Some(vec![Algorithm::ES256])
    );
}

#[test]
fn oct_jwks_secrets_are_kept_for_minting() {
    let loaded = Fixture::new()
        .env("JWT_JWKS", &oct_jwks(SECRET, Some("HS256")))
        .ok();
    assert_eq!(loaded.hmac_secrets.len(), 1);
    let s = &loaded.hmac_secrets[0];
    assert_eq!(
        (s.issuer, s.kid.as_deref(), s.alg),
        (0, Some("hs"), Some(Algorithm::HS256))
    );
    assert_eq!(s.secret(), SECRET.as_bytes());
    let shown = format!("{s:?} {loaded:?}");
    assert!(
        !shown.contains(SECRET),
        "Debug must not show the secret: {shown}"
    );
}

#[test]
fn weak_secret_override_starts_with_a_warning_every_time() {
    let loaded = Fixture::new()
        .env("JWT_SECRET", "short-one")
        .env("JWT_ALLOW_WEAK_SECRET", "1")
        .ok();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = &loaded.warnings[0];
    assert!(
        warning.starts_with("JWT_SECRET: HMAC secret is 9 bytes"),
        "{warning}"
    );
    assert!(
        !warning.contains("short-one"),
        "a warning must never show the secret"
    );
    let token = hs_token("HS256", "short-one", &format!(r#"{{"exp":{}}}"#, exp()));
    assert_eq!(verify(&loaded, &token), Ok(0));
}

#[test]
fn override_is_not_used_when_the_secret_is_long_enough() {
    let loaded = Fixture::new()
        .env("JWT_SECRET", &"x".repeat(64))
        .env("JWT_ALLOW_WEAK_SECRET", "true")
        .ok();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn an_allow_list_entry_no_key_serves_is_a_warning() {
    let loaded = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_ALGORITHMS", "HS256,RS256")
        .ok();
    assert_eq!(
        loaded.warnings,
        [
            "JWT_ALGORITHMS: no configured key can verify RS256; tokens signed with it will be refused"
        ]
    );
}

#[test]
fn summary_describes_keys_without_their_bytes() {
    let loaded = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_ISSUER", "iss-a")
        .env("JWT_AUDIENCE", "api")
        .ok();
    let summary = loaded.summary().join("\n");
    assert!(summary.contains("issuer \"iss-a\""), "{summary}");
    assert!(summary.contains("HMAC secret"), "{summary}");
    assert!(summary.contains("audiences: api"), "{summary}");
    assert!(!summary.contains(SECRET), "{summary}");
}

// ---------------------------------------------------------------- environment: errors

#[test]
fn no_key_refuses_to_start() {
    assert_eq!(
        Fixture::new().env("JWT_ISSUER", "x").err(),
        "no key configured: set JWT_SECRET, JWT_SECRET_FILE, JWT_JWKS, JWT_JWKS_FILE or \
         JWT_PUBLIC_KEY_FILE, or a config file with JWT_CONFIG"
    );
    assert_eq!(Fixture::new().load().unwrap_err(), ConfigError::NoKey);
}

#[test]
fn empty_secret_is_named() {
    assert_eq!(
        Fixture::new().env("JWT_SECRET", "").err(),
        "JWT_SECRET: is set but empty; give a secret of at least 32 bytes"
    );
}

#[test]
fn weak_secret_is_refused_without_the_override() {
    assert_eq!(
        Fixture::new().env("JWT_SECRET", "short-one").err(),
        "JWT_SECRET: HMAC secret is 9 bytes, shorter than the 32-byte output of HS256; \
         use a longer secret or set JWT_ALLOW_WEAK_SECRET=1"
    );
    // Explicitly off is off.
    let e = Fixture::new()
        .env("JWT_SECRET", "short-one")
        .env("JWT_ALLOW_WEAK_SECRET", "0")
        .err();
    assert!(e.starts_with("JWT_SECRET: HMAC secret is 9 bytes"), "{e}");
}

#[test]
fn weak_secret_is_measured_against_the_allow_list() {
    let e = Fixture::new()
        .env("JWT_SECRET", &"x".repeat(40))
        .env("JWT_ALGORITHMS", "HS512")
        .err();
    assert_eq!(
        e,
        "JWT_SECRET: HMAC secret is 40 bytes, shorter than the 64-byte output of HS512; \
         use a longer secret or set JWT_ALLOW_WEAK_SECRET=1"
    );
    let e = Fixture::new()
        .env("JWT_SECRET_FILE", "/s")
        .file("/s", "tiny")
        .err();
    assert!(
        e.starts_with("JWT_SECRET_FILE: HMAC secret is 4 bytes"),
        "{e}"
    );
}

#[test]
fn secret_with_an_allow_list_without_hs_is_refused() {
    assert_eq!(
        Fixture::new()
            .env("JWT_SECRET", SECRET)
            .env("JWT_ALGORITHMS", "RS256")
            .err(),
        "JWT_SECRET: an HMAC secret is configured but JWT_ALGORITHMS lists no HS algorithm"
    );
}

#[test]
fn allow_list_no_key_can_serve_is_refused() {
    assert_eq!(
        Fixture::new()
            .env("JWT_PUBLIC_KEY_FILE", "/rsa.pem")
            .file("/rsa.pem", RSA_PUB)
            .env("JWT_ALGORITHMS", "ES256")
            .err(),
        "JWT_ALGORITHMS: no configured key can verify ES256; the configured keys can verify \
         RS256, RS384, RS512, PS256, PS384, PS512"
    );
}

#[test]
fn algorithm_names_are_checked() {
    let with = |algs: &str| {
        Fixture::new()
            .env("JWT_SECRET", SECRET)
            .env("JWT_ALGORITHMS", algs)
            .err()
    };
    assert_eq!(
        with("HS256,none"),
        "JWT_ALGORITHMS: \"none\" can never be enabled: unsigned tokens are always refused"
    );
    assert!(with("NONE").contains("can never be enabled"));
    assert_eq!(
        with("hs256"),
        "JWT_ALGORITHMS: \"hs256\" is not an algorithm (names are case-sensitive): did you mean HS256?"
    );
    let e = with("HS999");
    assert!(
        e.starts_with("JWT_ALGORITHMS: \"HS999\" is not a supported algorithm; supported: HS256,"),
        "{e}"
    );
}

#[test]
fn numbers_are_checked() {
    let with = |name: &str, value: &str| {
        Fixture::new()
            .env("JWT_SECRET", SECRET)
            .env(name, value)
            .err()
    };
    assert_eq!(
        with("JWT_LEEWAY", "abc"),
        "JWT_LEEWAY: \"abc\" is not a whole number of seconds"
    );
    assert_eq!(
        with("JWT_LEEWAY", "-1"),
        "JWT_LEEWAY: \"-1\" is not a whole number of seconds"
    );
    assert_eq!(
        with("JWT_MAX_AGE", "1h"),
        "JWT_MAX_AGE: \"1h\" is not a whole number of seconds"
    );
    assert_eq!(
        with("JWT_MAX_BODY_BYTES", "16k"),
        "JWT_MAX_BODY_BYTES: \"16k\" is not a whole number of bytes"
    );
    assert_eq!(
        with("JWT_MAX_BODY_BYTES", "0"),
        "JWT_MAX_BODY_BYTES: 0 is out of range: use 1 to 67108864 bytes"
    );
    assert_eq!(
        with("JWT_MAX_TOKEN_BYTES", "99999999999"),
        "JWT_MAX_TOKEN_BYTES: 99999999999 is out of range: use 1 to 67108864 bytes"
    );
    assert_eq!(
        with("PORT", "http"),
        "PORT: \"http\" is not a port number (0 to 65535)"
    );
    assert_eq!(
        with("PORT", "70000"),
        "PORT: \"70000\" is not a port number (0 to 65535)"
    );
}

#[test]
fn booleans_are_checked() {
    for name in [
        "JWT_REQUIRE_EXP",
        "JWT_ALLOW_WEAK_SECRET",
        "JWT_EXPOSE_ERRORS",
    ] {
        let e = Fixture::new()
            .env("JWT_SECRET", SECRET)
            .env(name, "maybe")
            .err();
        assert_eq!(e, format!("{name}: \"maybe\" is not true or false"));
    }
}

#[test]
fn listen_and_realm_are_checked() {
    let e = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_LISTEN", "3000")
        .err();
    assert_eq!(
        e,
        "JWT_LISTEN: \"3000\" is not a host:port address (e.g. 0.0.0.0:3000)"
    );
    let e = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_LISTEN", ":3000")
        .err();
    assert!(e.starts_with("JWT_LISTEN: "), "{e}");
    let e = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_REALM", "a\", error=\"x")
        .err();
    assert!(
        e.starts_with("JWT_REALM: ") && e.contains("is not a usable realm"),
        "{e}"
    );
}

#[test]
fn conflicting_sources_are_refused() {
    assert_eq!(
        Fixture::new()
            .env("JWT_SECRET", SECRET)
            .env("JWT_SECRET_FILE", "/s")
            .err(),
        "JWT_SECRET_FILE: set either JWT_SECRET or JWT_SECRET_FILE, not both"
    );
    assert_eq!(
        Fixture::new()
            .env("JWT_JWKS", EC_JWKS)
            .env("JWT_JWKS_FILE", "/j")
            .err(),
        "JWT_JWKS_FILE: set either JWT_JWKS or JWT_JWKS_FILE, not both"
    );
}

#[test]
fn unreadable_files_are_named() {
    assert_eq!(
        Fixture::new()
            .env("JWT_SECRET_FILE", "/run/secrets/jwt")
            .err(),
        "JWT_SECRET_FILE: cannot read \"/run/secrets/jwt\": No such file or directory"
    );
    assert_eq!(
        Fixture::new().env("JWT_JWKS_FILE", "keys.json").err(),
        "JWT_JWKS_FILE: cannot read \"keys.json\": No such file or directory"
    );
    assert_eq!(
        Fixture::new().env("JWT_PUBLIC_KEY_FILE", "/k.pem").err(),
        "JWT_PUBLIC_KEY_FILE: cannot read \"/k.pem\": No such file or directory"
    );
}

#[test]
fn bad_key_documents_are_named() {
    let e = Fixture::new().env("JWT_JWKS", "{not json").err();
    assert!(
        e.starts_with("JWT_JWKS: key set is not a JSON object"),
        "{e}"
    );
    let e = Fixture::new().env("JWT_JWKS", r#"{"keys":[]}"#).err();
    assert_eq!(e, "JWT_JWKS: the key set holds no key");
    let e = Fixture::new()
        .env(
            "JWT_JWKS",
            r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}"#,
        )
        .err();
    assert!(
        e.starts_with("JWT_JWKS: keys[0]: private key member"),
        "{e}"
    );
    let e = Fixture::new()
        .env("JWT_JWKS", &oct_jwks("short-one", None))
        .err();
    assert!(
        e.starts_with("JWT_JWKS: keys[0] (kid \"hs\"): HMAC secret is 9 bytes"),
        "{e}"
    );
    let e = Fixture::new()
        .env("JWT_PUBLIC_KEY_FILE", "/k.pem")
        .file(
            "/k.pem",
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
        )
        .err();
    assert!(
        e.starts_with("JWT_PUBLIC_KEY_FILE: ") && e.contains("public key"),
        "{e}"
    );
    let e = Fixture::new()
        .env("JWT_PUBLIC_KEY_FILE", "/k.pem")
        .file("/k.pem", "hello")
        .err();
    assert!(
        e.starts_with("JWT_PUBLIC_KEY_FILE: not a PEM document"),
        "{e}"
    );
}

#[test]
fn weak_oct_key_in_jwks_is_accepted_only_with_the_override() {
    let loaded = Fixture::new()
        .env("JWT_JWKS", &oct_jwks("short-one", None))
        .env("JWT_ALLOW_WEAK_SECRET", "yes")
        .ok();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].starts_with("JWT_JWKS: keys[0] (kid \"hs\"): HMAC secret is 9 bytes")
    );
}

// ---------------------------------------------------------------- connection settings

#[test]
fn connection_settings_come_from_the_environment() {
    let loaded = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_REQUEST_TIMEOUT", "20")
        .env("JWT_FIRST_BYTE_TIMEOUT", "3")
        .env("JWT_MAX_CONNECTIONS", "500")
        .ok();
    assert_eq!(loaded.server.request_timeout, Duration::from_secs(20));
    assert_eq!(loaded.server.first_byte_timeout, Duration::from_secs(3));
    assert_eq!(loaded.server.max_connections, Some(500));
}

#[test]
fn a_short_request_timeout_shortens_the_default_first_byte_timeout() {
    let loaded = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_REQUEST_TIMEOUT", "2")
        .ok();
    assert_eq!(loaded.server.first_byte_timeout, Duration::from_secs(2));
}

#[test]
fn bad_connection_settings_name_their_variable() {
    let with = |var: &str, value: &str| {
        Fixture::new()
            .env("JWT_SECRET", SECRET)
            .env(var, value)
            .err()
    };
    assert_eq!(
        with("JWT_FIRST_BYTE_TIMEOUT", "11"),
        "JWT_FIRST_BYTE_TIMEOUT: 11s is longer than the request timeout (10s): use at most that"
    );
    assert_eq!(
        with("JWT_FIRST_BYTE_TIMEOUT", "0"),
        "JWT_FIRST_BYTE_TIMEOUT: 0 is out of range: use 1 to 3600 seconds"
    );
    assert_eq!(
        with("JWT_REQUEST_TIMEOUT", "4000"),
        "JWT_REQUEST_TIMEOUT: 4000 is out of range: use 1 to 3600 seconds"
    );
    assert_eq!(
        with("JWT_MAX_CONNECTIONS", "many"),
        "JWT_MAX_CONNECTIONS: \"many\" is not a whole number of connections"
    );
    assert_eq!(
        with("JWT_MAX_CONNECTIONS", "0"),
        "JWT_MAX_CONNECTIONS: 0 is out of range: use 1 to 1000000"
    );
}

// ---------------------------------------------------------------- TOML file: success

#[cfg(feature = "toml")]
mod toml_file {
    use super::*;

    const FULL: &str = r#"
[server]
listen = "127.0.0.1:8443"
max_body_bytes = 4096
max_token_bytes = 2048
max_json_depth = 8
expose_error_descriptions = false
realm = "corp"
request_timeout_secs = 3
max_connections = 64

[[issuers]]
issuer = "https://a.example"
audiences = ["api"]
algorithms = ["HS256"]
leeway = 10
require_exp = true
max_age = 600
required_claims = ["sub"]
subject = "svc"
types = ["JWT", "at+jwt"]
required_scopes = ["read"]
secret_env = "A_SECRET"

[[issuers]]
issuer = "https://b.example"
jwks_file = "keys/b.json"
public_keys = [{ file = "keys/rsa.pem", kid = "r1", alg = "RS256" }]

[[issuers]]
secret = "a-default-secret-for-tokens-without-a-known-issuer"
"#;

    fn full() -> Fixture {
        Fixture::new()
            .config(FULL)
            .env("A_SECRET", SECRET)
            .file("/etc/jwtv/keys/b.json", EC_JWKS)
            .file("/etc/jwtv/keys/rsa.pem", RSA_PUB)
    }

    #[test]
    fn full_file_is_applied() {
        let loaded = full().ok();
        assert_eq!(loaded.server.listen, "127.0.0.1:8443");
        assert_eq!(loaded.server.request_timeout, Duration::from_secs(3));
        assert_eq!(loaded.server.max_connections, Some(64));
        assert_eq!(loaded.options.max_body_bytes, 4096);
        assert!(!loaded.options.expose_descriptions);
        assert_eq!(loaded.options.realm, "corp");
        assert_eq!(loaded.verifier.limits().max_token_bytes, 2048);
        assert_eq!(loaded.verifier.limits().max_json_depth, 8);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

        let policies = loaded.verifier.policies();
        assert_eq!(policies.len(), 3);
        let a = &policies[0];
        assert_eq!(a.issuer.as_deref(), Some("https://a.example"));
        assert_eq!(a.audiences, ["api"]);
        assert_eq!(a.algorithms, [Algorithm::HS256]);
        assert_eq!((a.leeway_secs, a.max_age_secs), (10, Some(600)));
        assert_eq!(a.required_claims, ["sub"]);
        assert_eq!(a.subject.as_deref(), Some("svc"));
        assert_eq!(a.types, ["JWT", "at+jwt"]);
        assert_eq!(a.required_scopes, ["read"]);
        assert_eq!(policies[2].issuer, None);

        let b = loaded.keys.key_set(1).expect("issuer b keys");
        assert_eq!(b.keys().len(), 2);
        assert_eq!(b.keys()[1].kid(), Some("r1"));
        assert_eq!(b.keys()[1].algorithms(), [Algorithm::RS256]);
        assert_eq!(
            loaded
                .hmac_secrets
                .iter()
                .map(|s| s.issuer)
                .collect::<Vec<_>>(),
            [0, 2]
        );
    }

    #[test]
    fn tokens_are_checked_against_their_own_issuers_keys() {
        let loaded = full().ok();
        let claims = |iss: &str| {
            format!(
                r#"{{"iss":"{iss}","aud":"api","sub":"svc","scope":"read","iat":{NOW},"exp":{}}}"#,
                exp()
            )
        };
        assert_eq!(
            verify(
                &loaded,
                &hs_token("HS256", SECRET, &claims("https://a.example"))
            ),
            Ok(0)
        );
        // Issuer b has no HMAC key: a's secret must not be tried for it.
        assert_eq!(
            verify(
                &loaded,
                &hs_token("HS256", SECRET, &claims("https://b.example"))
            ),
            Err(Code::AlgNotAllowed)
        );
        let default_secret = "a-default-secret-for-tokens-without-a-known-issuer";
        let other = format!(r#"{{"iss":"https://elsewhere","exp":{}}}"#, exp());
        assert_eq!(
            verify(&loaded, &hs_token("HS256", default_secret, &other)),
            Ok(2)
        );
        // The default issuer's secret does not open issuer a.
        assert_eq!(
            verify(
                &loaded,
                &hs_token("HS256", default_secret, &claims("https://a.example"))
            ),
            Err(Code::InvalidSignature)
        );
    }

    #[test]
    fn listen_falls_back_to_the_environment() {
        let toml = "[[issuers]]\nsecret_file = \"secret\"\n";
        let f = Fixture::new()
            .config(toml)
            .file("/etc/jwtv/secret", SECRET)
            .env("PORT", "8081");
        assert_eq!(f.ok().server.listen, "0.0.0.0:8081");
        let f = f.env("JWT_LISTEN", "127.0.0.1:1");
        assert_eq!(f.ok().server.listen, "127.0.0.1:1");
        let f = Fixture::new()
            .config(&format!("[server]\nlisten = \"127.0.0.1:2\"\n{toml}"))
            .file("/etc/jwtv/secret", SECRET)
            .env("JWT_LISTEN", "127.0.0.1:1");
        assert_eq!(f.ok().server.listen, "127.0.0.1:2");
    }

    #[test]
    fn environment_variables_ignored_by_a_file_are_reported() {
        let toml = "[[issuers]]\nsecret_env = \"JWT_SECRET\"\n";
        let loaded = Fixture::new()
            .config(toml)
            .env("JWT_SECRET", SECRET)
            .env("JWT_AUDIENCE", "api")
            .ok();
        assert_eq!(
            loaded.warnings,
            ["JWT_AUDIENCE is set but ignored: the configuration file is the whole configuration"]
        );
        assert!(loaded.verifier.policies()[0].audiences.is_empty());
    }

    #[test]
    fn weak_secret_override_in_file_warns() {
        let toml = "[server]\nallow_weak_secrets = true\n[[issuers]]\nsecret = \"short-one\"\n";
        let loaded = Fixture::new().config(toml).ok();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0]
                .starts_with("/etc/jwtv/jwtv.toml: issuers[0].secret: HMAC secret is 9 bytes"),
            "{}",
            loaded.warnings[0]
        );
    }

    // ------------------------------------------------------------ TOML file: errors

    fn toml_err(toml: &str) -> String {
        Fixture::new().config(toml).err()
    }

    #[test]
    fn unknown_field_is_located_by_line_and_column() {
        let e = toml_err("[server]\nlisten = \"127.0.0.1:1\"\n\n[[issuers]]\nsecrt = \"x\"\n");
        assert!(
            e.starts_with("/etc/jwtv/jwtv.toml:5:1: unknown field `secrt`, expected one of"),
            "{e}"
        );
        let e = toml_err("[sever]\n");
        assert!(e.starts_with("/etc/jwtv/jwtv.toml:1:"), "{e}");
        assert!(e.contains("unknown field `sever`"), "{e}");
        let e =
            toml_err("[[issuers]]\nsecret = \"x\"\npublic_keys = [{ file = \"a\", kd = \"1\" }]\n");
        assert!(e.starts_with("/etc/jwtv/jwtv.toml:3:"), "{e}");
        assert!(e.contains("unknown field `kd`"), "{e}");
    }

    #[test]
    fn syntax_and_type_errors_are_located() {
        let e = toml_err("[[issuers]]\nsecret = \"unterminated\n");
        assert!(e.starts_with("/etc/jwtv/jwtv.toml:2:"), "{e}");
        let e = toml_err("[[issuers]]\nsecret = \"x\"\nleeway = \"sixty\"\n");
        assert!(e.starts_with("/etc/jwtv/jwtv.toml:3:10: "), "{e}");
        let e = toml_err("[server]\nmax_body_bytes = -1\n");
        assert!(e.starts_with("/etc/jwtv/jwtv.toml:2:18: "), "{e}");
    }

    #[test]
    fn missing_and_unreadable_files_are_named() {
        let e = Fixture::new().env("JWT_CONFIG", "/etc/nope.toml").err();
        assert_eq!(
            e,
            "/etc/nope.toml: cannot read the configuration file: No such file or directory"
        );
        let e = Fixture::new()
            .env("JWT_CONFIG", "/c.toml")
            .files_raw("/c.toml", vec![0xff, 0xfe])
            .err();
        assert_eq!(e, "/c.toml: not UTF-8 text (byte 0)");
        let e = toml_err(
            "[[issuers]]\nissuer = \"a\"\njwks = \"{}\"\n[[issuers]]\nissuer = \"b\"\njwks_file = \"keys.json\"\n",
        );
        assert!(
            e.starts_with("/etc/jwtv/jwtv.toml: issuers[0].jwks: "),
            "{e}"
        );
        let e = toml_err(
            "[[issuers]]\nissuer = \"a\"\nsecret_file = \"s\"\n[[issuers]]\nissuer = \"b\"\njwks_file = \"keys.json\"\n",
        );
        assert_eq!(
            e,
            "/etc/jwtv/jwtv.toml: issuers[0].secret_file: cannot read \"s\": No such file or directory"
        );
        let e = Fixture::new()
            .config("[[issuers]]\nissuer = \"a\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n[[issuers]]\nissuer = \"b\"\njwks_file = \"keys.json\"\n")
            .err();
        assert_eq!(
            e,
            "/etc/jwtv/jwtv.toml: issuers[1].jwks_file: cannot read \"keys.json\": No such file or directory"
        );
        let e = toml_err("[[issuers]]\npublic_keys = [{ file = \"k.pem\" }]\n");
        assert_eq!(
            e,
            "/etc/jwtv/jwtv.toml: issuers[0].public_keys[0].file: cannot read \"k.pem\": No such file or directory"
        );
    }

    #[test]
    fn issuers_are_required_and_need_keys() {
        assert_eq!(
            toml_err("[server]\nlisten = \"127.0.0.1:1\"\n"),
            "/etc/jwtv/jwtv.toml: no [[issuers]] table: configure at least one issuer with its keys"
        );
        assert_eq!(
            toml_err("[[issuers]]\nissuer = \"a\"\n"),
            "/etc/jwtv/jwtv.toml: issuers[0]: no key configured: set secret, secret_file, secret_env, \
             jwks, jwks_file, public_keys, jwks_uri or discovery = true"
        );
        assert_eq!(
            toml_err(&format!(
                "[[issuers]]\nsecret = \"{SECRET}\"\nsecret_env = \"X\"\n"
            )),
            "/etc/jwtv/jwtv.toml: issuers[0].secret: set only one of secret, secret_file and secret_env"
        );
        assert_eq!(
            toml_err("[[issuers]]\njwks = \"{}\"\njwks_file = \"k\"\n"),
            "/etc/jwtv/jwtv.toml: issuers[0].jwks_file: set either jwks or jwks_file, not both"
        );
        assert_eq!(
            toml_err("[[issuers]]\nsecret_env = \"NOT_SET\"\n"),
            "/etc/jwtv/jwtv.toml: issuers[0].secret_env: environment variable \"NOT_SET\" is not set"
        );
    }

    #[test]
    fn issuer_set_is_checked_as_a_whole() {
        let one = format!("[[issuers]]\nissuer = \"a\"\nsecret = \"{SECRET}\"\n");
        assert_eq!(
            toml_err(&format!("{one}{one}")),
            "/etc/jwtv/jwtv.toml: issuer \"a\" is configured twice"
        );
        let default = format!("[[issuers]]\nsecret = \"{SECRET}\"\n");
        let e = toml_err(&format!("{default}{default}"));
        assert!(
            e.starts_with("/etc/jwtv/jwtv.toml: more than one issuer without an `issuer` value"),
            "{e}"
        );
        assert_eq!(
            toml_err(&format!(
                "[[issuers]]\nissuer = \"\"\nsecret = \"{SECRET}\"\n"
            )),
            "/etc/jwtv/jwtv.toml: issuers[0].issuer: is empty; omit it to make this the default issuer"
        );
        assert_eq!(
            toml_err(&format!("[[issuers]]\ntypes = []\nsecret = \"{SECRET}\"\n")),
            "/etc/jwtv/jwtv.toml: issuers[0].types: is empty; omit it to accept JWT, at+jwt or no typ"
        );
    }

    #[test]
    fn issuer_keys_and_algorithms_are_checked() {
        assert_eq!(
            toml_err(&format!(
                "[[issuers]]\nalgorithms = [\"none\"]\nsecret = \"{SECRET}\"\n"
            )),
            "/etc/jwtv/jwtv.toml: issuers[0].algorithms: \"none\" can never be enabled: unsigned tokens \
             are always refused"
        );
        assert_eq!(
            toml_err("[[issuers]]\nsecret = \"short-one\"\n"),
            "/etc/jwtv/jwtv.toml: issuers[0].secret: HMAC secret is 9 bytes, shorter than the 32-byte \
             output of HS256; use a longer secret or set allow_weak_secrets = true in [server]"
        );
        assert_eq!(
            toml_err(&format!(
                "[[issuers]]\nalgorithms = [\"ES256\"]\nsecret = \"{SECRET}\"\n"
            )),
            "/etc/jwtv/jwtv.toml: issuers[0].secret: an HMAC secret is configured but issuers[0].algorithms \
             lists no HS algorithm"
        );
        let f = Fixture::new()
            .config("[[issuers]]\npublic_keys = [{ file = \"ec.pem\", alg = \"RS256\" }]\n")
            .file("/etc/jwtv/ec.pem", EC_PUB);
        assert_eq!(
            f.err(),
            "/etc/jwtv/jwtv.toml: issuers[0].public_keys[0]: key of type EC P-256 cannot be used with alg RS256"
        );
        let f = Fixture::new()
            .config("[[issuers]]\npublic_keys = [{ file = \"ec.pem\", alg = \"es256\" }]\n")
            .file("/etc/jwtv/ec.pem", EC_PUB);
        assert!(
            f.err()
                .starts_with("/etc/jwtv/jwtv.toml: issuers[0].public_keys[0].alg: \"es256\"")
        );
        let f = Fixture::new()
            .config(
                "[[issuers]]\nalgorithms = [\"EdDSA\"]\npublic_keys = [{ file = \"ec.pem\" }]\n",
            )
            .file("/etc/jwtv/ec.pem", EC_PUB);
        assert_eq!(
            f.err(),
            "/etc/jwtv/jwtv.toml: issuers[0].algorithms: no configured key can verify EdDSA; the configured \
             keys can verify ES256"
        );
        let e = toml_err("[[issuers]]\njwks = \"[]\"\n");
        assert!(
            e.starts_with("/etc/jwtv/jwtv.toml: issuers[0].jwks: key set is not a JSON object"),
            "{e}"
        );
    }

    #[test]
    fn server_values_are_checked() {
        let with = |server: &str| {
            toml_err(&format!(
                "[server]\n{server}\n[[issuers]]\nsecret = \"{SECRET}\"\n"
            ))
        };
        assert_eq!(
            with("listen = \"nowhere\""),
            "/etc/jwtv/jwtv.toml: server.listen: \"nowhere\" is not a host:port address (e.g. 0.0.0.0:3000)"
        );
        assert_eq!(
            with("max_body_bytes = 0"),
            "/etc/jwtv/jwtv.toml: server.max_body_bytes: 0 is out of range: use 1 to 67108864 bytes"
        );
        assert_eq!(
            with("max_token_bytes = 0"),
            "/etc/jwtv/jwtv.toml: server.max_token_bytes: 0 is out of range: use 1 to 67108864 bytes"
        );
        assert_eq!(
            with("max_json_depth = 0"),
            "/etc/jwtv/jwtv.toml: server.max_json_depth: 0 is out of range: use 1 to 128"
        );
        assert_eq!(
            with("request_timeout_secs = 0"),
            "/etc/jwtv/jwtv.toml: server.request_timeout_secs: 0 is out of range: use 1 to 3600 seconds"
        );
        assert_eq!(
            with("first_byte_timeout_secs = 20"),
            "/etc/jwtv/jwtv.toml: server.first_byte_timeout_secs: 20s is longer than the request timeout (10s): use at most that"
        );
        assert_eq!(
            with("max_connections = 0"),
            "/etc/jwtv/jwtv.toml: server.max_connections: 0 is out of range: use 1 to 1000000"
        );
        assert!(with("realm = \"a\\\"b\"").starts_with("/etc/jwtv/jwtv.toml: server.realm: "));
    }
}

#[cfg(not(feature = "toml"))]
#[test]
fn toml_file_is_refused_when_the_feature_is_off() {
    let e = Fixture::new().config("[[issuers]]\n").err();
    assert!(
        e.starts_with("/etc/jwtv/jwtv.toml: this build cannot read TOML"),
        "{e}"
    );
}

impl Fixture {
    #[cfg_attr(not(feature = "toml"), allow(dead_code))]
    fn files_raw(mut self, path: &str, content: Vec<u8>) -> Fixture {
        self.files.insert(PathBuf::from(path), content);
        self
    }
}

mod gateway_config {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn claim_headers_from_the_environment() {
        let loaded = Fixture::new()
            .env("JWT_SECRET", SECRET)
            .env(
                "JWT_CLAIM_HEADERS",
                "X-Email=email, X-Roles=realm_access.roles",
            )
            .ok();
        let names: Vec<&str> = loaded
            .options
            .gateway
            .claim_headers
            .iter()
            .map(|h| h.header.as_str())
            .collect();
        assert_eq!(names, ["x-email", "x-roles"]);
        let e = Fixture::new()
            .env("JWT_SECRET", SECRET)
            .env("JWT_CLAIM_HEADERS", "Host=sub")
            .err();
        assert!(
            e.starts_with("JWT_CLAIM_HEADERS: \"Host\" is reserved"),
            "{e}"
        );
    }

    #[test]
    fn named_policies_and_required_scopes_from_the_environment() {
        let loaded = Fixture::new()
            .env("JWT_SECRET", SECRET)
            .env("JWT_REQUIRED_SCOPES", "read")
            .env("JWT_POLICIES", "admin, ops-team")
            .env("JWT_POLICY_ADMIN_SCOPES", "admin write")
            .env(
                "JWT_POLICY_OPS_TEAM_CLAIMS",
                "email_verified=true,roles=ops,roles=sre,tenant",
            )
            .ok();
        assert_eq!(loaded.verifier.policies()[0].required_scopes, ["read"]);
        let policies = &loaded.options.gateway.policies;
        assert_eq!(policies[0].name, "admin");
        assert_eq!(policies[0].requirements.scopes, ["admin", "write"]);
        let claims = &policies[1].requirements.claims;
        assert_eq!(policies[1].name, "ops-team");
        assert_eq!(claims[0].values, [serde_json::json!(true)]);
        assert_eq!(
            claims[1].values,
            [serde_json::json!("ops"), serde_json::json!("sre")]
        );
        assert!(claims[2].values.is_empty());
        let e = Fixture::new()
            .env("JWT_SECRET", SECRET)
            .env("JWT_POLICIES", "a/b")
            .err();
        assert!(e.starts_with("JWT_POLICIES: \"a/b\": a policy name"), "{e}");
    }

    #[cfg(feature = "toml")]
    #[test]
    fn gateway_and_named_policies_from_the_file() {
        let toml = format!(
            "[[issuers]]\nsecret = \"{SECRET}\"\n[gateway]\nclaim_headers = {{ \"X-Email\" = \"email\" }}\nmax_header_value_bytes = 64\n\
             [policies.admin]\nscopes = [\"admin\"]\nclaims = {{ email_verified = true, \"realm_access.roles\" = [\"ops\", \"sre\"] }}\n"
        );
        let loaded = Fixture::new().config(&toml).ok();
        let gateway = &loaded.options.gateway;
        assert_eq!(gateway.max_header_value_bytes, 64);
        assert_eq!(gateway.claim_headers[0].claim, "email");
        let admin = &gateway.policies[0];
        assert_eq!(admin.name, "admin");
        assert_eq!(admin.requirements.scopes, ["admin"]);
        assert_eq!(admin.requirements.claims.len(), 2);
        assert_eq!(
            admin.requirements.claims[1].values,
            [serde_json::json!("ops"), serde_json::json!("sre")]
        );
    }

    #[cfg(feature = "toml")]
    #[test]
    fn bad_gateway_settings_are_located() {
        let base = format!("[[issuers]]\nsecret = \"{SECRET}\"\n");
        let e = Fixture::new()
            .config(&format!("{base}[policies.\"a/b\"]\nscopes = [\"x\"]\n"))
            .err();
        assert!(
            e.starts_with("/etc/jwtv/jwtv.toml: policies.a/b: \"a/b\": a policy name"),
            "{e}"
        );
        let e = Fixture::new()
            .config(&format!("{base}[policies.p]\nclaims = {{ n = 1.5 }}\n"))
            .err();
        assert!(
            e.starts_with("/etc/jwtv/jwtv.toml: policies.p.claims.n: float values"),
            "{e}"
        );
        let e = Fixture::new()
            .config(&format!(
                "{base}[gateway]\nclaim_headers = {{ \"X-Auth-Issuer\" = \"iss\" }}\n"
            ))
            .err();
        assert!(
            e.contains("gateway.claim_headers.X-Auth-Issuer: \"X-Auth-Issuer\" is reserved"),
            "{e}"
        );
    }
}
