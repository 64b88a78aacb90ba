//! Remote key sources (`jwks_uri`, OIDC discovery), fetch bounds and the token-cache size, from both
//! front ends. Nothing is fetched here: the configuration only names and checks what the shell fetches.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwtv_verifier::{Code, KeyStore};

use super::tests::Fixture;
use jwtv_keyset::{RemoteLocation, check_remote_url, is_loopback_host};

const SECRET: &str = "0123456789abcdef0123456789abcdef-and-a-bit";

fn env() -> Fixture {
    Fixture::default()
}

#[test]
fn jwks_uri_from_the_environment_makes_a_remote_issuer_without_keys_yet() {
    let loaded = env()
        .env("JWT_JWKS_URI", "https://idp.example.com/keys")
        .env("JWT_ISSUER", "https://idp.example.com")
        .ok();
    assert_eq!(loaded.remote.len(), 1);
    assert_eq!(loaded.remote[0].issuer, 0);
    assert_eq!(
        loaded.remote[0].location,
        RemoteLocation::JwksUri("https://idp.example.com/keys".into())
    );
    assert_eq!(loaded.remote[0].configured_at, "JWT_JWKS_URI");
    // No key set until the shell fetches one: the service answers 503, never a verdict.
    assert!(loaded.keys.key_set(0).is_none());
    let service = loaded.into_service();
    assert!(!service.is_ready());
    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let token = format!(
        "{}.{}.c2ln",
        b64(r#"{"alg":"RS256","kid":"k"}"#),
        b64(r#"{"iss":"https://idp.example.com","exp":1}"#)
    );
    let r = service
        .verifier()
        .verify(token.as_bytes(), 0, &jwtv_keyset::Store::new(vec![None]))
        .unwrap_err();
    assert_eq!(r.rejection.code, Code::TemporarilyUnavailable);
}

// An identity provider signs every application's tokens with the same keys: with no audience, one made
// for another application passes. Allowed (some deployments check `aud` upstream), never silently.
#[test]
fn remote_issuer_without_audience_is_warned_about() {
    let loaded = env()
        .env("JWT_OIDC_DISCOVERY", "true")
        .env("JWT_ISSUER", "https://idp.example.com")
        .ok();
    assert_eq!(
        loaded.warnings,
        ["issuer \"https://idp.example.com\": keys fetched from \
             https://idp.example.com/.well-known/openid-configuration but no audience configured: a \
             token this issuer made for any other application is accepted; set JWT_AUDIENCE (or \
             `audiences` in the file)"]
    );
    let loaded = env()
        .env("JWT_OIDC_DISCOVERY", "true")
        .env("JWT_ISSUER", "https://idp.example.com")
        .env("JWT_AUDIENCE", "api")
        .ok();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // Configured keys are the operator's own: no warning.
    let loaded = env().env("JWT_SECRET", SECRET).ok();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn oidc_discovery_needs_the_issuer_and_derives_the_well_known_url() {
    let loaded = env()
        .env("JWT_OIDC_DISCOVERY", "true")
        .env("JWT_ISSUER", "https://idp.example.com/realms/main/")
        .ok();
    assert_eq!(
        loaded.remote[0].location,
        RemoteLocation::Discovery {
            issuer: "https://idp.example.com/realms/main/".into(),
            url: "https://idp.example.com/realms/main/.well-known/openid-configuration".into(),
        }
    );
    let e = env().env("JWT_OIDC_DISCOVERY", "true").err();
    assert!(
        e.starts_with("JWT_OIDC_DISCOVERY: OIDC discovery needs the issuer URL: set JWT_ISSUER"),
        "{e}"
    );
    let e = env()
        .env("JWT_OIDC_DISCOVERY", "true")
        .env("JWT_ISSUER", "my-service")
        .err();
    assert!(
        e.starts_with("JWT_OIDC_DISCOVERY: the issuer is not a usable discovery URL"),
        "{e}"
    );
    let e = env()
        .env("JWT_OIDC_DISCOVERY", "true")
        .env("JWT_JWKS_URI", "https://idp.example.com/keys")
        .env("JWT_ISSUER", "https://idp.example.com")
        .err();
    assert!(
        e.starts_with("JWT_OIDC_DISCOVERY: set either JWT_JWKS_URI or"),
        "{e}"
    );
}

#[test]
fn plain_http_needs_the_override_and_a_loopback_host() {
    let e = env()
        .env("JWT_JWKS_URI", "http://127.0.0.1:8080/keys")
        .err();
    assert!(e.starts_with("JWT_JWKS_URI: "), "{e}");
    assert!(e.contains("plain http is refused"), "{e}");
    let e = env()
        .env("JWT_JWKS_URI", "http://idp.example.com/keys")
        .env("JWT_ALLOW_HTTP_LOOPBACK", "true")
        .err();
    assert!(e.contains("only for a loopback host"), "{e}");
    for url in [
        "http://127.0.0.1:8080/keys",
        "http://127.1.2.3/keys",
        "http://[::1]:9/keys",
        "http://localhost:9/keys",
    ] {
        let loaded = env()
            .env("JWT_JWKS_URI", url)
            .env("JWT_ALLOW_HTTP_LOOPBACK", "1")
            .ok();
        assert!(loaded.server.fetch.allow_http_loopback, "{url}");
    }
}

#[test]
fn urls_are_checked() {
    for (url, why) in [
        ("idp.example.com/keys", "URL"),
        ("/keys", "not an absolute URL"),
        ("ftp://idp.example.com/keys", "scheme \"ftp\""),
        ("https://user:pw@idp.example.com/keys", "user information"),
        ("https://exa mple.com/", "not a URL"),
    ] {
        let e = check_remote_url(url, true).unwrap_err();
        assert!(e.contains(why), "{url}: {e}");
    }
    assert!(check_remote_url(&format!("https://a/{}", "x".repeat(3000)), false).is_err());
    assert!(check_remote_url("https://idp.example.com:8443/k?x=1", false).is_ok());
    assert!(
        is_loopback_host("127.0.0.1") && is_loopback_host("[::1]") && is_loopback_host("LOCALHOST")
    );
    // A name that resolves to loopback today is not a loopback host.
    assert!(!is_loopback_host("localhost.example.com") && !is_loopback_host("10.0.0.1"));
}

#[test]
fn a_remote_issuer_takes_no_configured_keys() {
    let e = env()
        .env("JWT_JWKS_URI", "https://idp.example.com/keys")
        .env("JWT_SECRET", SECRET)
        .err();
    assert!(
        e.starts_with("JWT_SECRET: cannot be combined with JWT_JWKS_URI"),
        "{e}"
    );
}

#[test]
fn fetch_bounds_and_cache_size_from_the_environment() {
    let loaded = env()
        .env("JWT_JWKS_URI", "https://idp.example.com/keys")
        .env("JWT_FETCH_TIMEOUT", "2")
        .env("JWT_FETCH_MAX_BYTES", "4096")
        .env("JWT_JWKS_MIN_TTL", "1")
        .env("JWT_JWKS_MAX_TTL", "120")
        .env("JWT_JWKS_DEFAULT_TTL", "5")
        .env("JWT_JWKS_REFETCH_COOLDOWN", "2")
        .env("JWT_JWKS_REFETCH_WAIT_MS", "250")
        .env("JWT_TOKEN_CACHE_SIZE", "0")
        .ok();
    let f = &loaded.server.fetch;
    assert_eq!(f.timeout, Duration::from_secs(2));
    assert_eq!(f.max_bytes, 4096);
    assert_eq!(
        (f.min_ttl, f.max_ttl, f.default_ttl),
        (
            Duration::from_secs(1),
            Duration::from_secs(120),
            Duration::from_secs(5)
        )
    );
    assert_eq!(f.refetch_cooldown, Duration::from_secs(2));
    assert_eq!(f.refetch_wait, Duration::from_millis(250));
    assert_eq!(loaded.server.token_cache_size, 0);
    assert!(loaded.summary().iter().any(|l| l == "token cache: off"));

    let defaults = env().env("JWT_SECRET", SECRET).ok();
    assert_eq!(defaults.server.token_cache_size, 10_000);
    assert_eq!(defaults.server.fetch, jwtv_keyset::FetchSettings::default());
    assert!(defaults.remote.is_empty());

    // The built-in default TTL follows bounds that were moved; an explicit one must fit them.
    let moved = env()
        .env("JWT_SECRET", SECRET)
        .env("JWT_JWKS_MIN_TTL", "1200")
        .ok();
    assert_eq!(moved.server.fetch.default_ttl, Duration::from_secs(1200));

    for (var, value, why) in [
        ("JWT_FETCH_TIMEOUT", "0", "out of range"),
        ("JWT_FETCH_TIMEOUT", "5s", "not a whole number of seconds"),
        ("JWT_FETCH_MAX_BYTES", "100", "out of range"),
        ("JWT_JWKS_MAX_TTL", "30", "inverted"),
        ("JWT_JWKS_DEFAULT_TTL", "30", "outside the TTL bounds"),
        ("JWT_JWKS_REFETCH_COOLDOWN", "0", "out of range"),
        ("JWT_JWKS_REFETCH_WAIT_MS", "10001", "out of range"),
        (
            "JWT_JWKS_REFETCH_WAIT_MS",
            "1s",
            "not a whole number of milliseconds",
        ),
        (
            "JWT_TOKEN_CACHE_SIZE",
            "-1",
            "not a whole number of entries",
        ),
        ("JWT_TOKEN_CACHE_SIZE", "99999999999", "out of range"),
        ("JWT_ALLOW_HTTP_LOOPBACK", "maybe", "not true or false"),
    ] {
        let e = env().env("JWT_SECRET", SECRET).env(var, value).err();
        assert!(e.starts_with(&format!("{var}: ")), "{var}={value}: {e}");
        assert!(e.contains(why), "{var}={value}: {e}");
    }
}

#[test]
fn a_ca_file_is_read_with_the_configuration_and_an_unreadable_one_refused() {
    let loaded = env()
        .env("JWT_JWKS_URI", "https://idp.internal/keys")
        .env("JWT_FETCH_CA_FILE", "/etc/ssl/internal-ca.pem")
        .file("/etc/ssl/internal-ca.pem", "-----BEGIN CERTIFICATE-----\n")
        .ok();
    assert!(
        loaded
            .summary()
            .iter()
            .any(|l| l.contains("internal-ca.pem"))
    );
    let ca = loaded.server.fetch.ca_bundle.expect("CA bundle");
    assert_eq!(
        (ca.setting.as_str(), ca.path.as_str()),
        ("JWT_FETCH_CA_FILE", "/etc/ssl/internal-ca.pem")
    );
    assert_eq!(ca.pem, b"-----BEGIN CERTIFICATE-----\n");
    let e = env()
        .env("JWT_JWKS_URI", "https://idp.internal/keys")
        .env("JWT_FETCH_CA_FILE", "/nowhere/ca.pem")
        .err();
    assert!(
        e.starts_with("JWT_FETCH_CA_FILE: cannot read \"/nowhere/ca.pem\""),
        "{e}"
    );
}

mod seed {
    use super::*;

    const SEED: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"seed","alg":"ES256","x":"wvhwFCIic8_m92NIyh1NI3dmU9UVEY2udytFhKWVMVs","y":"Dran8KX9g5_J-dHqN4TFCDPIWWFikjzPvn54IjPD8sc"}]}"#;

    #[test]
    fn a_seed_file_beside_a_jwks_uri_fills_the_slot_and_makes_the_service_ready() {
        let loaded = env()
            .env("JWT_JWKS_URI", "https://idp.example.com/keys")
            .env("JWT_JWKS_SEED_FILE", "/etc/jwtv/seed.json")
            .file("/etc/jwtv/seed.json", SEED)
            .ok();
        let seed = loaded.remote[0].seed.as_ref().expect("seed");
        let slot = loaded
            .keys
            .key_set(0)
            .expect("the slot starts with the seed");
        assert!(std::sync::Arc::ptr_eq(&slot, seed.key_set()));
        assert!(
            loaded
                .summary()
                .iter()
                .any(|l| l.contains("seed: 1 key(s)"))
        );
        assert!(loaded.into_service().is_ready());
    }

    #[test]
    fn a_seed_file_without_a_remote_source_is_refused() {
        let e = env()
            .env("JWT_SECRET", SECRET)
            .env("JWT_JWKS_SEED_FILE", "/etc/jwtv/seed.json")
            .file("/etc/jwtv/seed.json", SEED)
            .err();
        assert!(e.starts_with("JWT_JWKS_SEED_FILE: "), "{e}");
        assert!(e.contains("JWT_JWKS_URI"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_bad_or_unreadable_seed_file_is_refused() {
        for (content, why) in [
            ("not json", "not a usable seed key set"),
            (r#"{"keys":[]}"#, "not a usable seed key set"),
            // A seed holds what a provider publishes: public keys, never a secret.
            (
                r#"{"keys":[{"kty":"oct","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#,
                "not a usable seed key set",
            ),
        ] {
            let e = env()
                .env("JWT_JWKS_URI", "https://idp.example.com/keys")
                .env("JWT_JWKS_SEED_FILE", "/etc/jwtv/seed.json")
                .file("/etc/jwtv/seed.json", content)
                .err();
            assert!(e.starts_with("JWT_JWKS_SEED_FILE: "), "{content}: {e}");
            assert!(e.contains(why), "{content}: {e}");
        }
        let e = env()
            .env("JWT_OIDC_DISCOVERY", "true")
            .env("JWT_ISSUER", "https://idp.example.com")
            .env("JWT_JWKS_SEED_FILE", "/nowhere/seed.json")
            .err();
        assert!(
            e.starts_with("JWT_JWKS_SEED_FILE: cannot read \"/nowhere/seed.json\""),
            "{e}"
        );
    }

    #[cfg(feature = "toml")]
    mod file {
        use super::*;

        #[test]
        fn a_seed_file_per_issuer_is_relative_to_the_file() {
            let loaded = env()
            .config(
                "[[issuers]]\nissuer = \"https://a\"\ndiscovery = true\njwks_seed_file = \"seeds/a.json\"\n\
                 [[issuers]]\nissuer = \"https://b\"\njwks_uri = \"https://b/k\"\n",
            )
            .file("/etc/jwtv/seeds/a.json", SEED)
            .ok();
            assert!(loaded.remote[0].seed.is_some());
            assert!(loaded.remote[1].seed.is_none());
            assert!(loaded.keys.key_set(0).is_some());
            assert!(loaded.keys.key_set(1).is_none());
        }

        #[test]
        fn a_seed_file_on_an_issuer_with_configured_keys_or_a_bad_seed_is_refused() {
            let e = env()
                .config("[[issuers]]\njwks_file = \"k.json\"\njwks_seed_file = \"seed.json\"\n")
                .file("/etc/jwtv/k.json", SEED)
                .file("/etc/jwtv/seed.json", SEED)
                .err();
            assert!(
                e.starts_with("/etc/jwtv/jwtv.toml: issuers[0].jwks_seed_file: "),
                "{e}"
            );
            assert!(e.contains("jwks_uri"), "{e}");
            let e = env()
                .config("[[issuers]]\njwks_uri = \"https://a/k\"\njwks_seed_file = \"seed.json\"\n")
                .file("/etc/jwtv/seed.json", "{}")
                .err();
            assert!(
                e.starts_with("/etc/jwtv/jwtv.toml: issuers[0].jwks_seed_file: not a usable seed"),
                "{e}"
            );
        }

        // The proxy-wasm filter reads no files: its seed is the JWK set itself.
        #[test]
        fn an_inline_seed_fills_the_slot_as_a_seed_file_does() {
            let loaded = env()
                .config(&format!(
                    "[[issuers]]\nissuer = \"https://a\"\njwks_uri = \"https://a/k\"\njwks_seed = '{SEED}'\n"
                ))
                .ok();
            let seed = loaded.remote[0].seed.as_ref().expect("seed");
            assert_eq!(seed.key_set().keys().len(), 1);
            assert!(loaded.into_service().is_ready());
        }

        #[test]
        fn an_inline_seed_that_is_bad_alone_or_beside_a_seed_file_is_refused() {
            for (toml, field, why) in [
                (
                    "jwks_uri = \"https://a/k\"\njwks_seed = '{}'\n",
                    "jwks_seed",
                    "not a usable seed",
                ),
                ("jwks = '{}'\njwks_seed = '{}'\n", "jwks_seed", "jwks_uri"),
                (
                    "jwks_uri = \"https://a/k\"\njwks_seed = '{}'\njwks_seed_file = \"s.json\"\n",
                    "jwks_seed_file",
                    "either jwks_seed or jwks_seed_file",
                ),
            ] {
                let e = env()
                    .config(&format!("[[issuers]]\n{toml}"))
                    .file("/etc/jwtv/s.json", SEED)
                    .err();
                assert!(
                    e.starts_with(&format!("/etc/jwtv/jwtv.toml: issuers[0].{field}: ")),
                    "{toml}: {e}"
                );
                assert!(e.contains(why), "{toml}: {e}");
            }
        }
    }
}

#[cfg(feature = "toml")]
mod file {
    use super::*;

    #[test]
    fn a_ca_file_in_the_fetch_table_is_relative_to_the_file() {
        let loaded = env()
            .config(
                "[fetch]\nca_file = \"ca/internal.pem\"\n[[issuers]]\njwks_uri = \"https://a/k\"\n",
            )
            .file("/etc/jwtv/ca/internal.pem", "PEM")
            .ok();
        let ca = loaded.server.fetch.ca_bundle.expect("CA bundle");
        assert_eq!(ca.setting, "fetch.ca_file in /etc/jwtv/jwtv.toml");
        assert_eq!(ca.path, "/etc/jwtv/ca/internal.pem");
        let e = env()
            .config("[fetch]\nca_file = \"missing.pem\"\n[[issuers]]\njwks_uri = \"https://a/k\"\n")
            .err();
        assert!(
            e.starts_with("/etc/jwtv/jwtv.toml: fetch.ca_file: cannot read \"missing.pem\""),
            "{e}"
        );
    }

    #[test]
    fn remote_and_static_issuers_in_one_file() {
        let loaded = env()
            .config(&format!(
                r#"
[fetch]
allow_http_loopback = true
timeout_secs = 3
refetch_cooldown_secs = 7
refetch_wait_ms = 0

[server]
token_cache_size = 5
log_decisions = "none"
log_sample = 0.25
log_refusals_per_sec = 3

[[issuers]]
issuer = "https://idp.example.com"
jwks_uri = "https://idp.example.com/keys"

[[issuers]]
issuer = "http://127.0.0.1:9000/realms/a"
discovery = true

[[issuers]]
issuer = "internal"
secret = "{SECRET}"
"#
            ))
            .ok();
        assert_eq!(loaded.remote.len(), 2);
        assert_eq!(loaded.remote[0].issuer, 0);
        assert_eq!(
            loaded.remote[0].configured_at,
            "/etc/jwtv/jwtv.toml: issuers[0].jwks_uri"
        );
        assert_eq!(loaded.remote[1].issuer, 1);
        assert_eq!(
            loaded.remote[1].location.url(),
            "http://127.0.0.1:9000/realms/a/.well-known/openid-configuration"
        );
        assert!(loaded.keys.key_set(0).is_none() && loaded.keys.key_set(1).is_none());
        assert!(loaded.keys.key_set(2).is_some());
        assert_eq!(loaded.server.token_cache_size, 5);
        assert_eq!(
            loaded.server.decision_log,
            crate::DecisionLog {
                which: crate::LoggedDecisions::None,
                sample_per_million: 250_000,
                refusals_per_sec: 3,
            }
        );
        assert_eq!(loaded.server.fetch.timeout, Duration::from_secs(3));
        assert_eq!(loaded.server.fetch.refetch_cooldown, Duration::from_secs(7));
        assert_eq!(loaded.server.fetch.refetch_wait, Duration::ZERO);
        assert!(
            loaded
                .summary()
                .iter()
                .any(|l| l.contains("keys fetched through OIDC discovery")),
            "{:?}",
            loaded.summary()
        );
    }

    #[test]
    fn remote_mistakes_name_the_field() {
        let cases = [
            (
                "[[issuers]]\njwks_uri = \"http://idp.example.com/k\"\n",
                "issuers[0].jwks_uri: ",
                "plain http is refused",
            ),
            (
                "[fetch]\nallow_http_loopback = true\n[[issuers]]\njwks_uri = \"http://10.1.2.3/k\"\n",
                "issuers[0].jwks_uri: ",
                "only for a loopback host",
            ),
            (
                "[[issuers]]\ndiscovery = true\n",
                "issuers[0].discovery: ",
                "set issuer",
            ),
            (
                "[[issuers]]\nissuer = \"https://a\"\ndiscovery = true\njwks_uri = \"https://a/k\"\n",
                "issuers[0].discovery: ",
                "not both",
            ),
            (
                "[[issuers]]\njwks_uri = \"https://a/k\"\njwks_file = \"k.json\"\n",
                "issuers[0].jwks_file: ",
                "cannot be combined with jwks_uri",
            ),
            (
                "[fetch]\nmax_ttl_secs = 0\n[[issuers]]\njwks_uri = \"https://a/k\"\n",
                "fetch.max_ttl_secs: ",
                "out of range",
            ),
            (
                "[fetch]\nretries = 3\n[[issuers]]\njwks_uri = \"https://a/k\"\n",
                "/etc/jwtv/jwtv.toml:2:1: ",
                "unknown field",
            ),
            (
                "[server]\ntoken_cache_size = 99999999999\n[[issuers]]\njwks_uri = \"https://a/k\"\n",
                "server.token_cache_size: ",
                "out of range",
            ),
        ];
        for (toml, place, why) in cases {
            let e = env().config(toml).err();
            assert!(e.contains(place) && e.contains(why), "{toml}\n=> {e}");
        }
    }

    #[test]
    fn remote_variables_are_reported_as_ignored_with_a_file() {
        let loaded = env()
            .config("[[issuers]]\njwks_uri = \"https://a/k\"\n")
            .env("JWT_JWKS_URI", "https://b/k")
            .env("JWT_TOKEN_CACHE_SIZE", "3")
            .ok();
        for var in ["JWT_JWKS_URI", "JWT_TOKEN_CACHE_SIZE"] {
            assert!(
                loaded.warnings.iter().any(|w| w.starts_with(var)),
                "{var}: {:?}",
                loaded.warnings
            );
        }
        assert_eq!(loaded.server.token_cache_size, 10_000);
    }
}

// Multi-tenant Entra ID: an issuer template with an explicit tenant list, keys from the common set.
mod tenants {
    use super::*;

    const TEMPLATE: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
    const COMMON_KEYS: &str = "https://login.microsoftonline.com/common/discovery/v2.0/keys";

    #[test]
    fn an_issuer_template_with_tenants_loads_from_the_environment() {
        let loaded = env()
            .env("JWT_ISSUER", TEMPLATE)
            .env("JWT_ALLOWED_TENANTS", "t1, t2")
            .env("JWT_JWKS_URI", COMMON_KEYS)
            .env("JWT_AUDIENCE", "api://app")
            .ok();
        let p = &loaded.verifier.policies()[0];
        assert_eq!(p.issuer.as_deref(), Some(TEMPLATE));
        assert_eq!(p.allowed_tenants, ["t1", "t2"]);
    }

    #[test]
    fn an_issuer_template_without_tenants_is_refused_naming_the_setting() {
        let e = env()
            .env("JWT_ISSUER", TEMPLATE)
            .env("JWT_JWKS_URI", COMMON_KEYS)
            .err();
        assert!(
            e.starts_with("JWT_ALLOWED_TENANTS: is not set but JWT_ISSUER ") && !e.contains('\n'),
            "{e}"
        );
        let e = env()
            .env("JWT_ISSUER", "https://login.microsoftonline.com/t1/v2.0")
            .env("JWT_ALLOWED_TENANTS", "t1")
            .env("JWT_JWKS_URI", COMMON_KEYS)
            .err();
        assert!(
            e.starts_with("JWT_ALLOWED_TENANTS: needs JWT_ISSUER to be a template"),
            "{e}"
        );
        // The template names no discovery document: the common key set is configured explicitly.
        let e = env()
            .env("JWT_ISSUER", TEMPLATE)
            .env("JWT_ALLOWED_TENANTS", "t1")
            .env("JWT_OIDC_DISCOVERY", "true")
            .err();
        assert!(
            e.starts_with("JWT_OIDC_DISCOVERY: an issuer template has no discovery document"),
            "{e}"
        );
    }

    #[cfg(feature = "toml")]
    #[test]
    fn an_issuer_template_in_the_file_needs_its_tenants() {
        let loaded = env()
            .config(&format!(
                "[[issuers]]\nissuer = \"{TEMPLATE}\"\nallowed_tenants = [\"t1\"]\n\
                 jwks_uri = \"{COMMON_KEYS}\"\naudiences = [\"api://app\"]\n"
            ))
            .ok();
        assert_eq!(loaded.verifier.policies()[0].allowed_tenants, ["t1"]);
        let e = env()
            .config(&format!(
                "[[issuers]]\nissuer = \"{TEMPLATE}\"\njwks_uri = \"{COMMON_KEYS}\"\n"
            ))
            .err();
        assert!(
            e.contains("issuers[0].allowed_tenants: is not set but issuer "),
            "{e}"
        );
    }
}
