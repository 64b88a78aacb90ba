//! A real OpenID provider (issue 23): npm `oidc-provider`, started on 127.0.0.1 by `tests/idp/idp.mjs`,
//! issuing RFC 9068 JWT access tokens by the client-credentials grant. The validator finds its keys by
//! OIDC discovery, with the default `typ` policy, as a new user would configure it: every algorithm
//! the provider signs with, a rotation to a new key set, the provider down and back, another issuer.
//!
//! And tokens shaped like a CI OIDC issuer's (GitHub Actions, GitLab CI), held to one repository and
//! branch by a named policy, as `docs/identity-providers.md` shows.
//!
//! Both targets (`JWTV_TEST_TARGET`): the native server and the component under `wasmtime serve`. The
//! component fetches per instance and only while serving, so what may differ there is said where it is
//! checked (a 503 where an instance never had a key set, a withdrawn key still known to an instance
//! that has not refetched); a refused token is never 200 on either.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::keyserver::{TestJwk, jwks};
use support::{Captured, Server, Target, TempDir, TestConfig, eventually, free_port, now};

/// The audience `idp.mjs` puts in every access token.
const AUDIENCE: &str = "https://api.test";
const ALGORITHMS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];
const IDP_START: Duration = Duration::from_secs(30);
const IDP_ATTEMPTS: usize = 3;

// ---------------------------------------------------------------------------------------------------
// The provider

/// `node tests/idp/idp.mjs` on a port of its own; its keys live in a file of `dir`, so a restart serves
/// the same ones.
struct Idp {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    stdout: Captured,
    stderr: Captured,
}

impl Idp {
    fn start() -> Idp {
        let mut idp = Idp {
            child: None,
            port: free_port(),
            dir: TempDir::new(),
            stdout: Captured::default(),
            stderr: Captured::default(),
        };
        // A port from `free_port` is free when it is handed out, not when node binds it half a second
        // later, and a start once took the whole wait with no word from the process (CI, stop 28).
        // The provider's start is the fixture, not what these tests check: a start that fails is tried
        // again on a new port, and the failures are shown if none succeeds.
        let mut failures = Vec::new();
        for _ in 0..IDP_ATTEMPTS {
            match idp.try_run() {
                Ok(()) => return idp,
                Err(failure) => {
                    failures.push(failure);
                    idp.port = free_port();
                }
            }
        }
        panic!(
            "the provider did not start in {IDP_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// Starts the provider again on its own port (the issuer names the port): the IdP back after an
    /// outage. A failed start is tried again on the same port.
    fn run(&mut self) {
        let mut failures = Vec::new();
        for _ in 0..IDP_ATTEMPTS {
            match self.try_run() {
                Ok(()) => return,
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "the provider did not restart in {IDP_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    fn script() -> PathBuf {
        let dir = support::workspace_root().join("tests/idp");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "tests/idp/node_modules is missing: run scripts/setup npm"
        );
        dir.join("idp.mjs")
    }

    /// One start: `Err` with what the process printed when it exits or stays silent past [`IDP_START`]
    /// (then it is ended, by its PID).
    fn try_run(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the provider is already running");
        self.stdout = Captured::default();
        self.stderr = Captured::default();
        let mut child = Command::new("node")
            .arg(Idp::script())
            .env("IDP_PORT", self.port.to_string())
            .env("IDP_STATE", self.dir.path().join("keys.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node (Node.js 20 or later)");
        let stdout = self.stdout.drain(child.stdout.take().unwrap());
        let stderr = self.stderr.drain(child.stderr.take().unwrap());
        let line = format!("idp listening on {}", self.issuer());
        let deadline = Instant::now() + IDP_START;
        let outcome = loop {
            if self.stdout.text().contains(&line) {
                self.child = Some(child);
                return Ok(());
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                break format!("exited ({status})");
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break format!("silent for {IDP_START:?}, ended");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let _ = (stdout.join(), stderr.join());
        Err(format!(
            "port {}: {outcome}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.port,
            self.stdout.text(),
            self.stderr.text()
        ))
    }

    /// Ends the provider's process (by its PID): the identity provider is down.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// An access token for [`AUDIENCE`] signed with `alg`, by the client-credentials grant.
    fn token(&self, alg: &str) -> String {
        let body = format!(
            "grant_type=client_credentials&client_id=svc&client_secret=svc-secret&scope=read\
             &resource=https%3A%2F%2Fapi.test%2F{alg}"
        );
        let r = support::request(
            self.addr(),
            "POST",
            "/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "token endpoint: {}", r.text());
        r.json()["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {}", r.text()))
            .to_owned()
    }

    /// A DPoP-bound access token (ES256-signed, `cnf.jkt`) the test client of `idp.mjs` obtained with a
    /// proof of its own key (panva jose): `(access_token, client id)`.
    fn dpop_token(&self) -> (String, String) {
        let r = support::request(
            self.addr(),
            "POST",
            "/_test/client/dpop-token",
            &[("Content-Type", "application/json")],
            br#"{"alg":"ES256"}"#,
        );
        assert_eq!(r.status, 200, "dpop-token: {}", r.text());
        let body = r.json();
        assert_eq!(body["token_type"], "DPoP", "{body}");
        let field = |name: &str| body[name].as_str().expect(name).to_owned();
        (field("access_token"), field("client"))
    }

    /// A fresh proof by the test client `client` for `method url`, bound to `token` (`ath`).
    fn proof(&self, client: &str, token: &str, method: &str, url: &str) -> String {
        let body = json!({"client": client, "htm": method, "htu": url, "access_token": token});
        let r = support::request(
            self.addr(),
            "POST",
            "/_test/client/proof",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "proof: {}", r.text());
        r.json()["proof"].as_str().expect("proof").to_owned()
    }

    /// Replaces every signing key with a new one; answers the new kids.
    fn rotate(&self) -> Vec<String> {
        let r = support::request(self.addr(), "POST", "/_test/rotate", &[], b"");
        assert_eq!(r.status, 200, "rotate: {}", r.text());
        serde_json::from_value(r.json()["kids"].clone()).expect("kids")
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------------
// Helpers

/// What a user sets for this provider: discovery from the issuer, the audience, and nothing about
/// `typ` (the default must take real access tokens). Short bounds so the tests run in seconds.
fn idp_config(idp: &Idp) -> TestConfig {
    idp_config_for(idp, AUDIENCE)
}

/// [`idp_config`] for another audience. (A variable is set once: `wasmtime serve --env` keeps the
/// first of two values, the native environment the last.)
fn idp_config_for(idp: &Idp, audience: &str) -> TestConfig {
    TestConfig::new()
        .env("JWT_ISSUER", idp.issuer())
        .env("JWT_OIDC_DISCOVERY", "true")
        .env("JWT_ALLOW_HTTP_LOOPBACK", "true")
        .env("JWT_AUDIENCE", audience)
        .env("JWT_FETCH_TIMEOUT", "1")
        .env("JWT_JWKS_REFETCH_COOLDOWN", "1")
}

fn start(config: TestConfig) -> Server {
    let server = Server::start(config);
    assert!(
        eventually(Duration::from_secs(15), || server.get("/readyz").status
            == 200),
        "not ready\n--- stderr ---\n{}",
        server.stderr_text()
    );
    server
}

/// `(status, error code)` of `POST /validate`.
fn validate(server: &Server, token: &str) -> (u16, Option<String>) {
    let r = server.validate(token);
    (r.status, r.error_code())
}

fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("three segments");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// `token` with its header's `kid` replaced: an unknown kid, which makes the validator refetch.
fn with_kid(token: &str, kid: &str) -> String {
    let mut header = segment(token, 0);
    header["kid"] = json!(kid);
    let (_, rest) = token.split_once('.').unwrap();
    format!(
        "{}.{rest}",
        URL_SAFE_NO_PAD.encode(header.to_string().as_bytes())
    )
}

// ---------------------------------------------------------------------------------------------------
// The provider's access tokens

/// RFC 9068 §2.1: the provider types its access tokens `at+jwt`; the default `typ` policy takes them
/// in every algorithm it signs with, on `/validate` and `/auth`.
#[test]
fn idp_access_tokens_in_every_algorithm_are_accepted_by_default() {
    let idp = Idp::start();
    let server = start(idp_config(&idp));
    for alg in ALGORITHMS {
        let token = idp.token(alg);
        let header = segment(&token, 0);
        assert_eq!(header["typ"], "at+jwt", "{alg}: {header}");
        assert_eq!(header["alg"], alg, "{header}");
        let r = server.validate(&token);
        assert_eq!(r.status, 200, "{alg}: {}", r.text());
        let claims = &r.json()["claims"];
        assert_eq!(claims["iss"], idp.issuer().as_str(), "{claims}");
        assert_eq!(claims["sub"], "svc", "{claims}");
        assert_eq!(claims["client_id"], "svc", "{claims}");
        let bearer = format!("Bearer {token}");
        let auth = server.request("GET", "/auth", &[("Authorization", &bearer)], b"");
        assert_eq!(auth.status, 200, "{alg} /auth: {:?}", auth.header_map());
        assert_eq!(auth.header("x-auth-subject"), Some("svc"));
        assert_eq!(auth.header("x-auth-scopes"), Some("read"));
    }
}

/// RFC 9449 with a real provider: oidc-provider binds the token to the key of the proof the client
/// sent to its token endpoint (`cnf.jkt`), and the client's proofs (panva jose) for the protected
/// request pass once, on `/validate` and through `/auth` as a gateway reports the request.
#[test]
fn idp_dpop_bound_tokens_pass_with_a_fresh_proof_once() {
    if !support::dpop_supported() {
        return; // the default component refuses bound tokens (tests/dpop.rs checks it)
    }
    let idp = Idp::start();
    let server = start(idp_config(&idp));
    let (token, client) = idp.dpop_token();
    let claims = segment(&token, 1);
    assert!(claims["cnf"]["jkt"].is_string(), "{claims}");
    let url = "https://api.test/orders";
    let proof = idp.proof(&client, &token, "GET", url);
    let body = json!({"token": token, "dpop": proof, "method": "GET", "url": url});
    let r = server.post_json("/validate", body.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["claims"]["sub"], "svc");
    // The replay, where one store answers: a component instance remembers only the proofs it
    // served, and which instance serves a request is the host's choice (docs/dpop.md).
    let one_store = Target::from_env() == Target::Native;
    if one_store {
        let r = server.post_json("/validate", body.to_string().as_bytes());
        assert_eq!(
            (r.status, r.error_code().as_deref()),
            (401, Some("invalid_dpop_proof")),
            "replay: {}",
            r.text()
        );
    }
    // As a gateway asks: Authorization: DPoP, the proof in its header, the request in X-Forwarded-*.
    let authorization = format!("DPoP {token}");
    let proof = idp.proof(&client, &token, "POST", url);
    let headers = [
        ("Authorization", authorization.as_str()),
        ("DPoP", proof.as_str()),
        ("X-Forwarded-Method", "POST"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "api.test"),
        ("X-Forwarded-Uri", "/orders?page=1"),
    ];
    let r = server.request("GET", "/auth", &headers, b"");
    assert_eq!(r.status, 200, "/auth: {:?}", r.header_map());
    assert_eq!(r.header("x-auth-subject"), Some("svc"));
    if one_store {
        let r = server.request("GET", "/auth", &headers, b"");
        assert_eq!(r.status, 401, "/auth replay");
        assert_eq!(r.header("x-auth-error"), Some("invalid_dpop_proof"));
    }
    // The provider's bound token without its proof.
    let r = server.validate(&token);
    assert_eq!(r.status, 401, "{}", r.text());
}

/// RFC 9068 §4 strictly (`JWT_TYPES=at+jwt`): the provider's tokens pass; the narrowing itself is
/// proven in the verifier's tests and the HTTP contract.
#[test]
fn idp_access_tokens_pass_the_strict_access_token_type() {
    let idp = Idp::start();
    let server = start(idp_config(&idp).env("JWT_TYPES", "at+jwt"));
    for alg in ["RS256", "ES256"] {
        assert_eq!(validate(&server, &idp.token(alg)), (200, None), "{alg}");
    }
}

/// The audience is the only thing that tells tokens this provider made for other applications apart.
#[test]
fn idp_access_tokens_for_another_audience_are_refused() {
    let idp = Idp::start();
    let server = start(idp_config_for(&idp, "https://billing.test"));
    assert_eq!(
        validate(&server, &idp.token("ES256")),
        (401, Some("invalid_audience".into()))
    );
}

/// security.md, keys belong to an issuer: a second provider, with keys of its own and the same
/// audience, is refused `invalid_issuer`.
#[test]
fn another_idp_tokens_are_refused_as_another_issuer() {
    let idp = Idp::start();
    let other = Idp::start();
    let server = start(idp_config(&idp));
    assert_eq!(validate(&server, &idp.token("ES256")), (200, None));
    for alg in ["RS256", "ES256"] {
        assert_eq!(
            validate(&server, &other.token(alg)),
            (401, Some("invalid_issuer".into())),
            "{alg}"
        );
    }
}

/// A rotation to a wholly new key set: the new kids are found by an unknown-kid refetch of the
/// discovered JWKS, and a withdrawn key stops working once the provider has been heard.
#[test]
fn idp_key_rotation_is_picked_up_and_withdrawn_keys_are_refused() {
    let idp = Idp::start();
    let server = start(idp_config(&idp));
    let old = idp.token("ES256");
    assert_eq!(validate(&server, &old), (200, None));

    let kids = idp.rotate();
    let new = idp.token("ES256");
    let kid = segment(&new, 0)["kid"].as_str().unwrap().to_owned();
    assert!(kids.contains(&kid), "{kid} in {kids:?}");
    // The refetch cooldown (1 s) counts from the start fetch.
    thread::sleep(Duration::from_millis(1200));
    assert!(
        eventually(Duration::from_secs(10), || validate(&server, &new)
            == (200, None)),
        "the rotated key was never picked up: {:?}\n--- stderr ---\n{}",
        validate(&server, &new),
        server.stderr_text()
    );
    for alg in ALGORITHMS {
        assert_eq!(validate(&server, &idp.token(alg)), (200, None), "{alg}");
    }
    let withdrawn = validate(&server, &old);
    match server.target {
        Target::Native => assert_eq!(withdrawn, (401, Some("unknown_kid".into()))),
        // An instance that fetched before the rotation keeps its set until its TTL or an unknown kid
        // of its own; the instance that refetched refuses. Never any other refusal.
        Target::Wasm => assert!(
            withdrawn == (401, Some("unknown_kid".into())) || withdrawn == (200, None),
            "{withdrawn:?}"
        ),
    }
}

/// security.md, remote key sets: with the provider down, the last good keys keep serving (an unknown
/// kid's refetch fails and is a 401, never a 503 or a 200); once it is back, new tokens validate.
#[test]
fn idp_down_last_good_keys_keep_serving_until_it_is_back() {
    let mut idp = Idp::start();
    let server = start(idp_config(&idp));
    let before = idp.token("ES256");
    let during = idp.token("RS256");
    assert_eq!(validate(&server, &before), (200, None));

    idp.stop();
    thread::sleep(Duration::from_millis(1200)); // past the refetch cooldown
    let unknown = with_kid(&during, "withdrawn-or-forged");
    // Natively one key set serves every request. A component instance started during the outage never
    // had one: 503 there, never 401 for a good token and never 200 (README, remote keys per host
    // mode; a seed key set is issue 23 item 3).
    let last_good: &[u16] = match server.target {
        Target::Native => &[200],
        Target::Wasm => &[200, 503],
    };
    let (status, code) = validate(&server, &unknown);
    assert!(
        status == 401 && code.as_deref() == Some("unknown_kid")
            || server.target == Target::Wasm && status == 503,
        "{status} {code:?}"
    );
    for token in [&during, &before] {
        let (status, code) = validate(&server, token);
        assert!(last_good.contains(&status), "IdP down: {status} {code:?}");
    }

    idp.run();
    let after = idp.token("EdDSA");
    assert!(
        eventually(Duration::from_secs(10), || validate(&server, &after)
            == (200, None)),
        "IdP back: {:?}",
        validate(&server, &after)
    );
}

// ---------------------------------------------------------------------------------------------------
// CI OIDC issuers: GitHub Actions and GitLab CI (docs/identity-providers.md)

const GITHUB: &str = "https://token.actions.githubusercontent.com";
const GITLAB: &str = "https://gitlab.com";

/// A GitHub Actions job's token as GitHub issues it: `aud` chosen by the job, `sub` naming the
/// repository and ref, repository claims beside it.
fn github_claims(repository: &str, git_ref: &str, aud: &str) -> Value {
    let owner = repository.split('/').next().unwrap();
    json!({
        "iss": GITHUB,
        "aud": aud,
        "sub": format!("repo:{repository}:ref:{git_ref}"),
        "repository": repository,
        "repository_owner": owner,
        "repository_id": "123456",
        "ref": git_ref,
        "ref_type": "branch",
        "workflow": "deploy",
        "job_workflow_ref": format!("{repository}/.github/workflows/deploy.yml@{git_ref}"),
        "event_name": "push",
        "runner_environment": "github-hosted",
        "iat": now(),
        "nbf": now(),
        "exp": now() + 300,
        "jti": format!("{repository}-{git_ref}-{aud}"),
    })
}

/// A GitLab CI job's `id_tokens` entry: `ref_protected` is a string there.
fn gitlab_claims(project: &str, git_ref: &str, protected: &str, aud: &str) -> Value {
    json!({
        "iss": GITLAB,
        "aud": aud,
        "sub": format!("project_path:{project}:ref_type:branch:ref:{git_ref}"),
        "project_path": project,
        "namespace_path": project.split('/').next().unwrap(),
        "ref": git_ref,
        "ref_type": "branch",
        "ref_protected": protected,
        "pipeline_source": "push",
        "iat": now(),
        "nbf": now(),
        "exp": now() + 300,
        "jti": format!("{project}-{git_ref}-{protected}-{aud}"),
    })
}

fn auth_at(server: &Server, path: &str, token: &str) -> (u16, Option<String>) {
    let bearer = format!("Bearer {token}");
    let r = server.request("GET", path, &[("Authorization", &bearer)], b"");
    (r.status, r.header("x-auth-error").map(str::to_owned))
}

/// The recipe: the issuer, an audience of your own (each job asks for it), the claims the recipe
/// relies on required, and a named policy holding deployments to one repository's main branch. The
/// keys are a JWKS here (the recipe fetches them by discovery).
#[test]
fn ci_oidc_tokens_are_held_to_one_repository_and_branch() {
    let key = TestJwk::rs256("ci-key");
    let github = start(
        TestConfig::new()
            .env("JWT_ISSUER", GITHUB)
            .env("JWT_AUDIENCE", "https://deploy.example.com")
            .env("JWT_JWKS_FILE", "{files}/jwks.json")
            .env("JWT_REQUIRED_CLAIMS", "sub,repository,ref")
            .env("JWT_POLICIES", "deploy")
            .env(
                "JWT_POLICY_DEPLOY_CLAIMS",
                "sub=repo:my-org/app:ref:refs/heads/main",
            )
            .file("jwks.json", jwks(&[&key])),
    );
    let aud = "https://deploy.example.com";
    let main = key.token(&github_claims("my-org/app", "refs/heads/main", aud));
    assert_eq!(validate(&github, &main), (200, None));
    assert_eq!(auth_at(&github, "/policy/deploy/auth", &main), (200, None));
    let refused = [
        (
            "another repository of the same owner",
            github_claims("my-org/other", "refs/heads/main", aud),
            403,
            "insufficient_scope",
        ),
        (
            "a pull request's ref",
            github_claims("my-org/app", "refs/pull/7/merge", aud),
            403,
            "insufficient_scope",
        ),
        (
            "a job that asked for another audience",
            github_claims("my-org/app", "refs/heads/main", "https://github.com/my-org"),
            401,
            "invalid_audience",
        ),
    ];
    for (why, claims, status, code) in refused {
        let token = key.token(&claims);
        assert_eq!(
            auth_at(&github, "/policy/deploy/auth", &token),
            (status, Some(code.to_owned())),
            "{why}"
        );
    }
    let mut no_repository = github_claims("my-org/app", "refs/heads/main", aud);
    no_repository.as_object_mut().unwrap().remove("repository");
    assert_eq!(
        validate(&github, &key.token(&no_repository)),
        (401, Some("missing_claim".into()))
    );

    // GitLab CI: protected refs of one project; `ref_protected` is the string "true".
    let gitlab = start(
        TestConfig::new()
            .env("JWT_ISSUER", GITLAB)
            .env("JWT_AUDIENCE", "https://deploy.example.com")
            .env("JWT_JWKS_FILE", "{files}/jwks.json")
            .env("JWT_REQUIRED_CLAIMS", "sub,project_path,ref_protected")
            .env("JWT_POLICIES", "deploy")
            .env(
                "JWT_POLICY_DEPLOY_CLAIMS",
                "project_path=my-group/app,ref_protected=\"true\"",
            )
            .file("jwks.json", jwks(&[&key])),
    );
    let protected = key.token(&gitlab_claims("my-group/app", "main", "true", aud));
    assert_eq!(
        auth_at(&gitlab, "/policy/deploy/auth", &protected),
        (200, None)
    );
    for (why, claims) in [
        (
            "unprotected ref",
            gitlab_claims("my-group/app", "wip", "false", aud),
        ),
        (
            "another project",
            gitlab_claims("my-group/other", "main", "true", aud),
        ),
    ] {
        assert_eq!(
            auth_at(&gitlab, "/policy/deploy/auth", &key.token(&claims)),
            (403, Some("insufficient_scope".into())),
            "{why}"
        );
    }
    // GitHub's tokens are another issuer's here.
    assert_eq!(
        validate(&gitlab, &main),
        (401, Some("invalid_issuer".into()))
    );
}

// ---------------------------------------------------------------------------------------------------
// Issue 26: the provider's certificate-bound access tokens (RFC 8705 §3)

/// nginx's `$ssl_client_escaped_cert`: PEM, URL-escaped.
fn escaped_pem(pem: &str) -> String {
    pem.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The provider binds the token of a client registered with
/// `tls_client_certificate_bound_access_tokens` to the certificate it presented; its thumbprint is
/// ours, and the validator accepts the token only with that certificate.
#[test]
fn idp_certificate_bound_tokens_pass_only_with_their_certificate() {
    let idp = Idp::start();
    let ca = support::tls::Ca::new("idp-suite CA");
    let (alice, bob) = (ca.client("alice"), ca.client("bob"));
    let alice_header = escaped_pem(&alice.cert_pem);
    let body = "grant_type=client_credentials&client_id=svc-mtls&client_secret=svc-mtls-secret\
                &scope=read&resource=https%3A%2F%2Fapi.test%2FES256";
    let r = support::request(
        idp.addr(),
        "POST",
        "/token",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-SSL-Client-Cert", &alice_header),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "token endpoint: {}", r.text());
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        segment(&token, 1)["cnf"]["x5t#S256"],
        json!(alice.thumbprint())
    );

    // The component checks certificate bindings only in its dpop build (JWTV_COMPONENT_DPOP=1): the
    // default one refuses every bound token, so this runs on the native binary then.
    let config = idp_config(&idp).env("JWT_CLIENT_CERT_SOURCE", "header:X-SSL-Client-Cert:pem");
    let server = match support::dpop_supported() {
        true => start(config),
        false => {
            let server = Server::start_on(Target::Native, config);
            assert!(eventually(Duration::from_secs(15), || server
                .get("/readyz")
                .status
                == 200));
            server
        }
    };
    let bearer = format!("Bearer {token}");
    let validate_with = |cert: Option<&str>| {
        let mut headers = vec![("Authorization", bearer.as_str())];
        headers.extend(cert.map(|c| ("X-SSL-Client-Cert", c)));
        let r = support::request(server.addr, "POST", "/validate", &headers, b"");
        (r.status, r.error_code())
    };
    assert_eq!(validate_with(Some(&alice_header)), (200, None));
    let bob_header = escaped_pem(&bob.cert_pem);
    let refused = (401, Some("invalid_token_binding".to_owned()));
    assert_eq!(validate_with(Some(&bob_header)), refused);
    assert_eq!(validate_with(None), refused);
}
