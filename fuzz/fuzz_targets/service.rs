//! `Service::handle` on arbitrary requests, built field by field with `arbitrary` (method, a path
//! among the routes or any, headers among those the service reads or any, a token signed with the
//! configured secret or any bytes, a body), against a configuration with an audience, a gateway claim
//! header, a named policy and Envoy's `x-forwarded-client-cert` as the source of client certificates
//! (certificate-bound tokens, whose thumbprint the input picks, reach its parser). Every answer must
//! be well formed: never a 500, any body JSON.
#![no_main]

use arbitrary::Arbitrary;
use jwtv_config as config;
use jwtv_fuzz::{NOW, SECRET};
use jwtv_service::Service;
use jwtv_signer::{SigningKey, b64};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::{Arc, LazyLock};

const CONFIG: &str = r#"
[server]
max_body_bytes = 4096
client_cert_source = "xfcc"

[[issuers]]
issuer = "https://issuer.example"
audiences = ["api"]
secret_env = "SECRET"

[gateway]
claim_headers = { "X-Auth-Email" = "email", "X-Auth-Roles" = "realm_access.roles" }

[policies.admin]
audiences = ["api"]
scopes = ["admin"]
claims = { email_verified = true }
"#;

static SERVICE: LazyLock<Service> = LazyLock::new(|| {
    let var = |name: &str| match name {
        "JWT_CONFIG" => Some("/fuzz/config.toml".to_owned()),
        "SECRET" => std::str::from_utf8(SECRET).ok().map(str::to_owned),
        _ => None,
    };
    let read = |_: &Path| Ok(CONFIG.as_bytes().to_vec());
    let loaded = config::load(&var, &read).expect("the fuzzing configuration loads");
    Service::new(loaded.verifier, Arc::new(loaded.keys), loaded.options)
});

#[derive(Arbitrary, Debug)]
enum Method<'a> {
    Get,
    Post,
    Head,
    Options,
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Route<'a> {
    Validate,
    Healthz,
    Readyz,
    Auth(&'a str),
    Policy(&'a str, &'a str),
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Name<'a> {
    Authorization,
    ContentType,
    ContentLength,
    Cookie,
    ForwardedClientCert,
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Token<'a> {
    /// Header and claims as JSON text, signed with the configured secret.
    Signed {
        header: &'a str,
        claims: &'a str,
    },
    Raw(&'a str),
    /// A valid token bound to a client certificate (RFC 8705) of this `cnf.x5t#S256`.
    Bound(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Value<'a> {
    Bearer(Token<'a>),
    Raw(&'a [u8]),
}

#[derive(Arbitrary, Debug)]
enum Body<'a> {
    /// `{"token": …}` as `/validate` reads it.
    Token(Token<'a>),
    Raw(&'a [u8]),
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: Method<'a>,
    route: Route<'a>,
    query: Option<&'a str>,
    headers: Vec<(Name<'a>, Value<'a>)>,
    body: Body<'a>,
}

fn token(t: &Token) -> String {
    let signed = |header: &str, claims: &str| {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let signature = SigningKey::hmac(SECRET)
            .sign("HS256", input.as_bytes())
            .expect("HS256 signs");
        format!("{input}.{}", b64(&signature))
    };
    match t {
        Token::Bound(thumbprint) => {
            let claims = serde_json::json!({
                "iss": "https://issuer.example", "aud": "api", "exp": NOW + 60,
                "cnf": {"x5t#S256": thumbprint},
            });
            signed(r#"{"alg":"HS256"}"#, &claims.to_string())
        }
        Token::Signed { header, claims } => {
            let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
            let signature = SigningKey::hmac(SECRET)
                .sign("HS256", input.as_bytes())
                .expect("HS256 signs");
            format!("{input}.{}", b64(&signature))
        }
        Token::Raw(raw) => (*raw).to_owned(),
    }
}

fn request(input: &Input) -> Option<http::Request<Vec<u8>>> {
    let method = match input.method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Head => "HEAD",
        Method::Options => "OPTIONS",
        Method::Other(m) => m,
    };
    let path = match input.route {
        Route::Validate => "/validate".to_owned(),
        Route::Healthz => "/healthz".to_owned(),
        Route::Readyz => "/readyz".to_owned(),
        Route::Auth(tail) => format!("/auth{tail}"),
        Route::Policy(name, tail) => format!("/policy/{name}/auth{tail}"),
        Route::Other(path) => path.to_owned(),
    };
    let uri = match input.query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in &input.headers {
        let name = match name {
            Name::Authorization => "authorization",
            Name::ContentType => "content-type",
            Name::ContentLength => "content-length",
            Name::Cookie => "cookie",
            Name::ForwardedClientCert => "x-forwarded-client-cert",
            Name::Other(n) => n,
        };
        let value = match value {
            Value::Bearer(t) => format!("Bearer {}", token(t)).into_bytes(),
            Value::Raw(v) => v.to_vec(),
        };
        builder = builder.header(name, value);
    }
    let body = match &input.body {
        Body::Token(t) => format!(r#"{{"token":"{}"}}"#, token(t)).into_bytes(),
        Body::Raw(b) => b.to_vec(),
    };
    // Requests the `http` crate refuses to build never reach a shell either.
    builder.body(body).ok()
}

fuzz_target!(|input: Input| {
    let Some(req) = request(&input) else {
        return;
    };
    let handled = SERVICE.handle(&req, NOW);
    let response = handled.response;
    assert_ne!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.body();
    if !body.is_empty() {
        assert!(
            serde_json::from_slice::<serde_json::Value>(body).is_ok(),
            "a body that is not JSON: {:?}",
            String::from_utf8_lossy(body)
        );
    }
});
