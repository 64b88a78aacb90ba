//! Token sources, anonymous routes and rules (issue 24) from either reader: each setting lands on its
//! policy, and each bad value stops the load with one line naming the setting (and, for a rule, the
//! policy and the column).

use super::tests::Fixture;
use jwtv_service::sources::TokenSource;

const SECRET: &str = "0123456789abcdef0123456789abcdef-and-a-bit";

fn env() -> Fixture {
    Fixture::new().env("JWT_SECRET", SECRET)
}

#[test]
fn access_settings_from_the_environment() {
    let loaded = env()
        .env("JWT_TOKEN_SOURCES", "cookie:session, bearer")
        .env("JWT_ANONYMOUS", "allow")
        .env("JWT_RULE", "claims.email_verified")
        .env("JWT_POLICIES", "admin")
        .env("JWT_POLICY_ADMIN_TOKEN_SOURCES", "header:x-jwt")
        .env("JWT_POLICY_ADMIN_RULE", "'admin' in claims.groups")
        .ok();
    let access = &loaded.options.gateway.access;
    assert_eq!(
        access.token_sources,
        [TokenSource::Cookie("session".into()), TokenSource::Bearer]
    );
    assert!(access.anonymous);
    assert_eq!(
        access.rule.as_ref().unwrap().source(),
        "claims.email_verified"
    );
    let admin = &loaded.options.gateway.policies[0].access;
    assert!(!admin.anonymous);
    assert_eq!(
        admin.rule.as_ref().unwrap().source(),
        "'admin' in claims.groups"
    );
}

#[test]
fn defaults_are_bearer_only_not_anonymous_no_rule() {
    let loaded = env().ok();
    let access = &loaded.options.gateway.access;
    assert_eq!(access.token_sources, [TokenSource::Bearer]);
    assert!(!access.anonymous && access.rule.is_none());
}

#[test]
fn bad_access_settings_stop_the_load_with_one_line() {
    let e = env().env("JWT_TOKEN_SOURCES", "bearer,form:x").err();
    assert!(
        e.starts_with("JWT_TOKEN_SOURCES: \"form\" is not a kind"),
        "{e}"
    );
    let e = env().env("JWT_ANONYMOUS", "yes").err();
    assert!(e.starts_with("JWT_ANONYMOUS: \"yes\" is neither"), "{e}");
    let e = env()
        .env("JWT_POLICIES", "admin")
        .env("JWT_POLICY_ADMIN_RULE", "claims.sub == ")
        .err();
    assert!(
        e.starts_with("JWT_POLICY_ADMIN_RULE: policy \"admin\"'s rule, column 14:"),
        "{e}"
    );
    let e = env().env("JWT_RULE", "user.admin").err();
    assert!(
        e.starts_with("JWT_RULE: the default policy's rule, column 1: unknown name \"user\""),
        "{e}"
    );
    // Type-checked at load (issue 24): a rule that parses but can never hold stops the start too.
    let e = env()
        .env("JWT_POLICIES", "admin")
        .env("JWT_POLICY_ADMIN_RULE", "request.method == 1")
        .err();
    assert_eq!(
        e,
        "JWT_POLICY_ADMIN_RULE: policy \"admin\"'s rule, column 16: `==` compares a string with an \
         int, which can never be equal"
    );
}

#[cfg(feature = "toml")]
#[test]
fn access_settings_from_the_file() {
    let toml = format!(
        "[[issuers]]\nsecret = \"{SECRET}\"\n[gateway]\ntoken_sources = [\"bearer\", \"query:t\"]\nrule = \"claims.level > 1\"\n\
         [policies.public]\nanonymous = \"allow\"\ntoken_sources = [\"cookie:id\"]\n"
    );
    let loaded = Fixture::new().config(&toml).ok();
    let gateway = &loaded.options.gateway;
    assert_eq!(
        gateway.access.token_sources,
        [TokenSource::Bearer, TokenSource::Query("t".into())]
    );
    assert!(gateway.access.rule.is_some());
    assert!(gateway.policies[0].access.anonymous);
    let bad = format!(
        "[[issuers]]\nsecret = \"{SECRET}\"\n[policies.admin]\nrule = \"size(claims.groups) >\"\n"
    );
    let e = Fixture::new().config(&bad).err();
    assert!(
        e.starts_with("/etc/jwtv/jwtv.toml: policies.admin.rule: policy \"admin\"'s rule, column"),
        "{e}"
    );
}

// Issue 26: where a request's client certificate is read (RFC 8705 bound tokens).
#[test]
fn client_cert_source_from_either_reader_and_none_by_default() {
    use jwtv_service::mtls::CertSource;
    assert_eq!(env().ok().options.client_cert(), CertSource::None);
    let loaded = env().env("JWT_CLIENT_CERT_SOURCE", "xfcc").ok();
    assert_eq!(loaded.options.client_cert(), CertSource::Xfcc);
    let toml = format!(
        "[server]\nclient_cert_source = \"header:X-SSL-Client-Cert:pem\"\n[[issuers]]\nsecret = \"{SECRET}\"\n"
    );
    let loaded = Fixture::new()
        .env("JWT_CLIENT_CERT_SOURCE", "tls")
        .config(&toml)
        .ok();
    assert_eq!(
        loaded.options.client_cert().to_string(),
        "header:x-ssl-client-cert:pem"
    );
    // A file without it keeps the deployment's variable, as the listener does.
    let toml = format!("[[issuers]]\nsecret = \"{SECRET}\"\n");
    let loaded = Fixture::new()
        .env("JWT_CLIENT_CERT_SOURCE", "tls")
        .config(&toml)
        .ok();
    assert_eq!(loaded.options.client_cert(), CertSource::Tls);
}

#[test]
fn bad_client_cert_source_stops_the_load_with_one_line() {
    let e = env().env("JWT_CLIENT_CERT_SOURCE", "envoy").err();
    assert!(
        e.starts_with("JWT_CLIENT_CERT_SOURCE: \"envoy\" is not a client certificate source"),
        "{e}"
    );
    let toml = format!(
        "[server]\nclient_cert_source = \"header:X-Cert:x509\"\n[[issuers]]\nsecret = \"{SECRET}\"\n"
    );
    let e = Fixture::new().config(&toml).err();
    assert!(e.contains("server.client_cert_source"), "{e}");
}

#[test]
fn client_cert_source_is_stated_and_tls_without_client_ca_is_warned() {
    let loaded = env().ok();
    assert!(
        loaded
            .summary()
            .iter()
            .any(|l| l.starts_with("certificate-bound tokens (cnf.x5t#S256): refused")),
        "{:?}",
        loaded.summary()
    );
    let loaded = env().env("JWT_CLIENT_CERT_SOURCE", "tls").ok();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.starts_with("JWT_CLIENT_CERT_SOURCE is tls but the listener asks no client")),
        "{:?}",
        loaded.warnings
    );
    let loaded = env().env("JWT_CLIENT_CERT_SOURCE", "xfcc").ok();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

// DPoP (issue 26): the mode per policy, the window and the replay bound, from either reader.
#[test]
fn dpop_settings_from_the_environment() {
    use jwtv_service::dpop::Mode;
    let loaded = env()
        .env("JWT_DPOP", "required")
        .env("JWT_DPOP_WINDOW", "30")
        .env("JWT_DPOP_REPLAY_MAX_ENTRIES", "500")
        .env("JWT_POLICIES", "legacy")
        .env("JWT_POLICY_LEGACY_DPOP", "off")
        .ok();
    assert_eq!(loaded.options.gateway.access.dpop, Mode::Required);
    assert_eq!(loaded.options.gateway.policies[0].access.dpop, Mode::Off);
    assert_eq!(loaded.options.dpop.window_secs, 30);
    assert_eq!(loaded.options.dpop.replay_max_entries, 500);
    assert_eq!(env().ok().options.gateway.access.dpop, Mode::Allowed);
    let e = env().env("JWT_DPOP", "on").err();
    assert!(e.starts_with("JWT_DPOP: \"on\" is not a DPoP mode"), "{e}");
    let e = env().env("JWT_DPOP_WINDOW", "0").err();
    assert!(e.starts_with("JWT_DPOP_WINDOW: 0 is out of range"), "{e}");
}

#[test]
fn dpop_settings_from_the_file() {
    use jwtv_service::dpop::Mode;
    let toml = format!(
        "[[issuers]]\nsecret = \"{SECRET}\"\n[server]\ndpop_window_secs = 20\n[gateway]\ndpop = \"off\"\n\
         [policies.api]\ndpop = \"required\"\n"
    );
    let loaded = Fixture::new().config(&toml).ok();
    assert_eq!(loaded.options.gateway.access.dpop, Mode::Off);
    assert_eq!(
        loaded.options.gateway.policies[0].access.dpop,
        Mode::Required
    );
    assert_eq!(loaded.options.dpop.window_secs, 20);
    let bad = format!("[[issuers]]\nsecret = \"{SECRET}\"\n[policies.api]\ndpop = \"yes\"\n");
    let e = Fixture::new().config(&bad).err();
    assert!(
        e.starts_with("/etc/jwtv/jwtv.toml: policies.api.dpop: \"yes\" is not a DPoP mode"),
        "{e}"
    );
}

// The DPoP allow-list (issue 26: "an asymmetric alg from the allow-list"): narrows what proofs may be
// signed with, from either reader; a symmetric, unknown or unbuilt algorithm stops the start.
#[test]
fn dpop_algorithms_narrow_the_allow_list() {
    use jwtv_verifier::Algorithm;
    let all = env().ok().options.dpop.algorithms;
    assert!(
        all.contains(&Algorithm::ES256) && all.contains(&Algorithm::RS256),
        "{all:?}"
    );
    assert!(!all.contains(&Algorithm::HS256), "{all:?}");

    let loaded = env().env("JWT_DPOP_ALGORITHMS", "ES256, EdDSA,ES256").ok();
    assert_eq!(
        loaded.options.dpop.algorithms,
        [Algorithm::ES256, Algorithm::EdDSA]
    );
    assert_eq!(loaded.options.dpop.algs(), "ES256 EdDSA");
    assert!(
        loaded.summary().iter().any(|l| l
            == "DPoP proofs (RFC 9449): signed with ES256, EdDSA; iat at most 60s old, plus the issuer's leeway"),
        "{:?}",
        loaded.summary()
    );

    let toml =
        format!("[[issuers]]\nsecret = \"{SECRET}\"\n[server]\ndpop_algorithms = [\"PS256\"]\n");
    let loaded = Fixture::new().config(&toml).ok();
    assert_eq!(loaded.options.dpop.algorithms, [Algorithm::PS256]);

    for (value, expected) in [
        (
            "HS256",
            "JWT_DPOP_ALGORITHMS: HS256 is symmetric: a DPoP proof is signed with the client's own private key",
        ),
        ("none", "JWT_DPOP_ALGORITHMS: \"none\" can never be enabled"),
        (
            "es256",
            "JWT_DPOP_ALGORITHMS: \"es256\" is not an algorithm (names are case-sensitive): did you mean ES256?",
        ),
        (" , ", "JWT_DPOP_ALGORITHMS: lists no algorithm"),
    ] {
        let e = env().env("JWT_DPOP_ALGORITHMS", value).err();
        assert!(e.starts_with(expected), "{value:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    let bad =
        format!("[[issuers]]\nsecret = \"{SECRET}\"\n[server]\ndpop_algorithms = \"ES256\"\n");
    let e = Fixture::new().config(&bad).err();
    assert!(
        e.starts_with("/etc/jwtv/jwtv.toml:4:19: invalid value: string \"ES256\", expected an array of strings"),
        "{e}"
    );
}
