//! Command line: subcommands, flags and the help text that documents every environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Validates JSON Web Tokens over HTTP: POST /validate {\"token\": \"...\"}.";

const LONG_ABOUT: &str = "\
Validates JSON Web Tokens (compact JWS) over HTTP.

  POST /validate  {\"token\": \"<jwt>\"}  ->  200 {\"valid\":true,...} | 401 {\"valid\":false,\"error\":\"<code>\"} | 400
  GET  /healthz   the process is alive
  GET  /readyz    every issuer has usable keys
  GET  /metrics   Prometheus text format

The configuration comes from JWT_* environment variables (one issuer) or from a TOML file named by
--config / JWT_CONFIG (any number of issuers). There is no built-in secret: with no key configured the
service refuses to start. Try it in one line with --demo.";

const SHORT_AFTER: &str =
    "Run with --help for the environment variables and the configuration file format.";

const LONG_AFTER: &str = r#"ENVIRONMENT (single issuer; ignored, with a warning, when a configuration file is used)
  JWT_SECRET             HMAC secret (its UTF-8 bytes), as in the service this one replaces
  JWT_SECRET_FILE        file holding the HMAC secret (one final newline is dropped)
  JWT_JWKS               inline JWK set (or single JWK) as JSON
  JWT_JWKS_FILE          file holding a JWK set
  JWT_PUBLIC_KEY_FILE    PEM public key (SPKI "PUBLIC KEY" or PKCS#1 "RSA PUBLIC KEY")
                         At least one key source is required. Key sources combine (e.g. a secret and a
                         JWK set), but JWT_SECRET/JWT_SECRET_FILE and JWT_JWKS/JWT_JWKS_FILE exclude
                         each other.
  JWT_ISSUER             required "iss" value (exact match), or a multi-tenant template with
                         {tenantid}: https://login.microsoftonline.com/{tenantid}/v2.0
  JWT_ALLOWED_TENANTS    with a template: the tenant ids accepted, comma-separated (required); iss
                         must be the template filled with the token's own "tid"
  JWT_AUDIENCE           accepted audiences, comma-separated; a token must carry one of them
  JWT_ALGORITHMS         allow-list, comma-separated, case-sensitive (HS256 HS384 HS512 RS256 RS384
                         RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA; "none" never). Default:
                         whatever the configured keys are bound to.
  JWT_LEEWAY             clock skew tolerance in seconds for exp, nbf and iat (default 60)
  JWT_MAX_AGE            maximum token age in seconds, from iat (iat then required)
  JWT_REQUIRED_CLAIMS    claims that must be present, comma-separated
  JWT_REQUIRED_SCOPES    scopes every token must grant (scope / scp), space- or comma-separated (else 403)
  JWT_TYPES              accepted "typ" header values, comma-separated (default JWT,at+jwt: the generic
                         type, none, and RFC 9068 access tokens). Without JWT, "typ" is required:
                         at+jwt alone is RFC 9068's strict check
  JWT_REQUIRE_EXP        true|false: "exp" required (default true)
  JWT_ALLOW_WEAK_SECRET  1|true: accept an HMAC secret shorter than the hash output (32 bytes for
                         HS256). Insecure; logged as a warning at every start.
  JWT_MAX_BODY_BYTES     largest request body (default 16384); larger gets 413
  JWT_MAX_TOKEN_BYTES    largest token (default 8192)
  JWT_EXPOSE_ERRORS      true|false: include human error_description texts (default true)
  JWT_REALM              realm of WWW-Authenticate challenges (default jwt-validator)
  JWT_TOKEN_CACHE_SIZE   verified tokens remembered, so a repeated token skips the signature check
                         (default 10000; 0 disables). Keyed by the whole token (SHA-256); never used
                         at or past the token's exp, nor after a fetched key set changed; the claim
                         rules (exp, nbf, max age) are applied again on every hit. Tokens without exp
                         are not cached.
  JWT_REQUEST_TIMEOUT    seconds a client may take to send one request, headers and body (default 10)
  JWT_FIRST_BYTE_TIMEOUT seconds a connection may stay open without a request in progress: before the
                         first byte of a request, and between requests on a kept-alive connection
                         (default 5, at most the request timeout)
  JWT_MAX_CONNECTIONS    connections open at once (default: sized from the file-descriptor limit,
                         which is raised to the hard limit at start; at most 65536). At the limit, the
                         connection longest without a request in progress is closed to make room.
  JWT_LOG_DECISIONS      all|refusals|none: which decisions get a log line (default refusals; every
                         decision is counted in /metrics whatever this says)
  JWT_LOG_SAMPLE         0.0 to 1.0: the share of those logged, every n-th one (default 1.0)
  JWT_LOG_REFUSALS_PER_SEC
                         refusal lines a second per reason code, as many in a burst (default 10; 0:
                         no bound); the rest are counted in one summary line a second
  JWT_TLS_CERT_FILE      PEM certificate chain (leaf first): the listener speaks TLS 1.2/1.3 only,
  JWT_TLS_KEY_FILE       with this key (PEM); ALPN h2 and http/1.1. Honoured with a config file too;
                         rotated files are served to new connections after a reload
  JWT_TLS_CLIENT_CA_FILE PEM CA certificates: every client must present a certificate one of them
                         signed (mTLS), else the handshake is refused

REMOTE KEY SETS (the native server fetches them; the WebAssembly component refuses them)
  JWT_JWKS_URI           fetch the issuer's keys from this JWK Set URL (https; replaces the key sources
                         above, which cannot be combined with it)
  JWT_OIDC_DISCOVERY     true: read JWT_ISSUER/.well-known/openid-configuration, whose "issuer" must be
                         exactly JWT_ISSUER, and fetch its jwks_uri
                         Keys are fetched in the background at start: until the first success tokens of
                         the issuer get 503 temporarily_unavailable and /readyz is 503. A failed
                         refresh keeps the last good key set (retried with backoff). A token naming an
                         unknown kid triggers one refetch at most per cooldown, shared by all requests.
                         Encryption keys, symmetric (oct) keys and unsupported algorithms are skipped; a
                         set with no usable key is a failed fetch. Redirects are not followed.
  JWT_JWKS_SEED_FILE     a JWK Set file served beside JWT_JWKS_URI / discovery until the first successful
                         fetch (ready, no 503 while the provider is down); the first fetched set
                         replaces it, never merged. Make it with: curl $JWKS_URI > seed.json
  JWT_ALLOW_HTTP_LOOPBACK
                         true: accept plain http:// key-set and discovery URLs, for loopback hosts only
                         (127.0.0.0/8, ::1, localhost); otherwise https is required
  JWT_FETCH_TIMEOUT      seconds for one fetch: connect, TLS, request and whole response (default 5)
  JWT_FETCH_MAX_BYTES    largest key-set or discovery document; reading stops past it (default 262144)
  JWT_JWKS_DEFAULT_TTL   seconds a key set is used before a background refresh, when the response has
                         no Cache-Control max-age (default 600)
  JWT_JWKS_MIN_TTL       max-age is clamped to [MIN, MAX] seconds (defaults 60 and 86400);
  JWT_JWKS_MAX_TTL       no-cache / no-store count as 0, so MIN
  JWT_JWKS_REFETCH_COOLDOWN
                         seconds between two refetches caused by unknown kids (default 30)
  JWT_JWKS_REFETCH_WAIT_MS
                         longest a request with an unknown kid waits on that refetch, in ms (default
                         1000; 0 never waits); past it the answer is 401 and the fetch goes on
  JWT_FETCH_CA_FILE      PEM file of CA certificates trusted for key-set fetches beside the compiled-in
                         Mozilla roots (an internal identity provider's CA); a bad file stops the start
  HTTPS_PROXY (else ALL_PROXY), NO_PROXY (or lower case)
                         https fetches go through this http:// proxy in a CONNECT tunnel, as with curl;
                         NO_PROXY lists hosts, domains (with their subdomains), IPs or CIDRs reached
                         directly, or * for all. Plain http (loopback only) is never proxied

FORWARD AUTH (ANY /auth[/...], ANY /policy/NAME/auth[/...]: 200 + X-Auth-* headers, or 401/403)
  JWT_CLAIM_HEADERS      extra claim headers on allow: Header=claim.path,... (arrays joined with ",")
  JWT_POLICIES           named policies, comma-separated; for each NAME (upper case, '-' as '_'):
    JWT_POLICY_<NAME>_ISSUERS, _AUDIENCES   accepted iss / aud values (any of)
    JWT_POLICY_<NAME>_SCOPES                required scopes (else 403 insufficient_scope)
    JWT_POLICY_<NAME>_CLAIMS                claim=value,...: value required (repeat a claim for any-of;
                                            a bare claim only has to be present; else 403)

ENVIRONMENT (always)
  JWT_CONFIG             TOML configuration file (same as --config)
  JWT_LISTEN             host:port to listen on (wins over PORT; a file's server.listen wins over both)
  PORT                   port to listen on, on all interfaces (default 3000)
  JWT_LOG_FORMAT         text|json (same as --log-format)
  RUST_LOG               log filter (default info), e.g. RUST_LOG=debug

Empty variables count as unset. Booleans accept true/false, 1/0, yes/no, on/off.

CONFIGURATION FILE (TOML; unknown keys are errors; relative paths are relative to the file)
  [server]
  listen = "0.0.0.0:3000"
  max_body_bytes = 16384
  max_token_bytes = 8192
  max_json_depth = 16
  expose_error_descriptions = true
  realm = "jwt-validator"
  allow_weak_secrets = false
  request_timeout_secs = 10           # whole request, headers and body
  first_byte_timeout_secs = 5         # no request in progress (new or kept-alive connection)
  max_connections = 1024              # default: sized from the file-descriptor limit
  token_cache_size = 10000            # verified tokens remembered; 0 disables
  log_decisions = "refusals"          # all | refusals | none
  log_sample = 1.0                    # share of those decisions logged
  log_refusals_per_sec = 10           # refusal lines a second per code; 0: no bound

  [fetch]                             # remote key sets (jwks_uri, discovery)
  allow_http_loopback = false         # http:// only for 127.0.0.0/8, ::1, localhost, and only if true
  timeout_secs = 5
  max_bytes = 262144
  default_ttl_secs = 600              # without Cache-Control max-age
  min_ttl_secs = 60                   # max-age is clamped to [min, max]
  max_ttl_secs = 86400
  refetch_cooldown_secs = 30          # unknown kid: at most one refetch per cooldown
  refetch_wait_ms = 1000              # ... and a request waits on it at most this long

  [[issuers]]
  issuer = "https://login.example.com"
  audiences = ["api"]
  algorithms = ["RS256", "ES256"]
  leeway = 60
  require_exp = true
  max_age = 86400
  required_claims = ["sub"]
  subject = "service-a"                # exact "sub", optional
  # allowed_tenants = ["…"]           # with issuer = "https://login.microsoftonline.com/{tenantid}/v2.0"
  types = ["at+jwt"]                   # RFC 9068 strictly (default: JWT, at+jwt or no typ)
  required_scopes = ["read"]           # all required, from "scope" or "scp"
  jwks_file = "keys/login.json"        # or jwks = '{"keys":[...]}'
  public_keys = [{ file = "keys/old.pem", kid = "2023", alg = "RS256" }]

  [[issuers]]                          # no issuer = the default for tokens no other issuer claims
  secret_env = "INTERNAL_JWT_SECRET"   # or secret = "..." or secret_file = "..."

  [[issuers]]                          # keys fetched from the identity provider
  issuer = "https://idp.example.com/realms/main"
  discovery = true                     # issuer + /.well-known/openid-configuration; or:
  # jwks_uri = "https://idp.example.com/realms/main/protocol/openid-connect/certs"

  [gateway]                            # forward auth
  claim_headers = { "X-Auth-Email" = "email", "X-Auth-Roles" = "realm_access.roles" }
  max_header_value_bytes = 1024

  [policies.admin]                     # served at /policy/admin/auth
  issuers = ["https://login.example.com"]
  audiences = ["admin-api"]
  scopes = ["admin"]                   # missing scope or claim: 403 insufficient_scope
  claims = { email_verified = true, "realm_access.roles" = ["ops", "sre"] }

  Each issuer needs at least one key source (jwks_uri and discovery exclude the others); a token is
  only ever checked against the keys of the issuer it claims. Errors name the place: file:line:column, or the field as issuers[N].field
  (N counts from 0).

RELOAD (native server; the component reads its configuration per instance)
  The configuration is read again, without a restart, on SIGHUP and when a file it read changes (the
  TOML file, JWT_SECRET_FILE, JWT_JWKS_FILE, PEM and key files), checked every --reload-interval
  seconds (default 2; 0: SIGHUP only). Paths are followed through symlinks, so a Kubernetes Secret or
  ConfigMap updated in place (its ..data symlink swapped) is picked up. Environment variables cannot
  change; everything read from files can.
  A new configuration is built completely, then swapped in: requests in flight finish on the old one,
  the token cache starts empty, remote key sets configured as before keep their keys and refresh, new
  ones are fetched before the swap. A configuration that does not load (unparsable, a weak secret, a
  missing or half-written file, a key set that cannot be fetched) never replaces the active one: it is
  logged as one line and counted, and the old one keeps serving (/readyz stays 200). The listen
  address, request timeout, connection limit and token size limit take effect at the next restart.
  /metrics: jwtv_config_reloads_total{result="applied|unchanged|failed"}, jwtv_config_info{digest=...}
  (SHA-256 of everything read, as check-config prints it) and jwtv_config_age_seconds.
  Rotating a key with no token refused: publish the new key beside the old one, each with a kid (a
  JWK set of both, or issuers[N].public_keys); sign with the new one; remove the old one once the
  last token it signed has expired.

EXPLAIN
  jwt-validator explain [TOKEN|-] [--json] loads the configuration as the service does (remote key sets
  are fetched once) and prints the decoded header and claims (never the signature), the issuer and
  policy the token falls under, the key that verifies it, every check in order with its verdict (exp,
  nbf and iat relative to now, with the leeway), and the answers of POST /validate and GET /auth. The
  checks are the verifier's own, traced as it runs; the answers are the service's.
  Exit status: 0 valid, 1 refused, 2 configuration or usage error.

EXAMPLES
  jwt-validator --demo                               demo configuration and a ready-to-paste curl
  JWT_SECRET=$(openssl rand -hex 32) jwt-validator   seed-compatible start on port 3000
  jwt-validator mint --sub alice --aud api           a test token signed with the configured secret
  jwt-validator check-config --config jwtv.toml      validate a configuration and describe it
  kill -HUP $(pidof jwt-validator)                   reload the configuration now
  jwt-validator explain "$TOKEN"                     why this token is accepted or refused
  jwt-validator probe http://127.0.0.1:3000/readyz   exit 0 when the server answers 2xx (health checks)

EXIT STATUS
  0 clean shutdown (SIGTERM/SIGINT) or success, 1 runtime failure (e.g. cannot listen, or a probe
  that got no 2xx answer),
  2 configuration or usage error (one line on stderr)."#;

#[derive(Debug, Parser)]
#[command(
    name = "jwt-validator",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = SHORT_AFTER,
    after_long_help = LONG_AFTER
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Serve flags given without naming `serve`, so `jwt-validator --demo` works.
    #[command(flatten)]
    pub serve: ServeArgs,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (else JWT_CONFIG, else the JWT_* environment variables).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "JWT_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve(ServeArgs),
    /// Print a signed test token for the configured issuer (only the token, on stdout).
    Mint(MintArgs),
    /// Load the configuration, describe it and exit: 0 when usable, 2 with the error otherwise.
    CheckConfig,
    /// Explain why a token is accepted or refused with the configuration: exit 0 valid, 1 refused,
    /// 2 configuration error.
    Explain(ExplainArgs),
    /// GET a URL of a running server and exit 0 on a 2xx answer, 1 otherwise (for container
    /// HEALTHCHECKs and exec probes in an image without curl).
    Probe(ProbeArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct ExplainArgs {
    /// The token; `-` or nothing: read it from stdin.
    #[arg(value_name = "TOKEN|-")]
    pub token: Option<String>,

    /// Print the explanation as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// http:// or https:// URL to GET (over TLS whenever JWT_TLS_CERT_FILE is set, as for the server).
    #[arg(default_value = "http://127.0.0.1:3000/readyz")]
    pub url: String,

    /// Seconds for the whole probe: connect, request and status line.
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Listen address host:port, overriding the configuration (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Run a demo configuration with a random secret (issuer jwt-validator-demo, audience demo) on
    /// 127.0.0.1:3000 and print a curl command with a valid token. Ignores the environment.
    #[arg(long, conflicts_with = "config")]
    pub demo: bool,

    /// Seconds between two checks of the files the configuration was read from (0: reload on SIGHUP
    /// only). A change reloads the configuration.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_RELOAD_INTERVAL, value_parser = reload_interval)]
    pub reload_interval: f64,
}

const DEFAULT_RELOAD_INTERVAL: f64 = 2.0;

fn reload_interval(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(secs) if (0.0..=86_400.0).contains(&secs) => Ok(secs),
        _ => Err("expected seconds between 0 and 86400, e.g. 2 or 0.5".to_owned()),
    }
}

impl ServeArgs {
    /// These flags, completed by those given before the `serve` word.
    pub fn or(self, outer: ServeArgs) -> ServeArgs {
        // A default interval defers to one given before the `serve` word.
        let reload_interval = if self.reload_interval == DEFAULT_RELOAD_INTERVAL {
            outer.reload_interval
        } else {
            self.reload_interval
        };
        ServeArgs {
            listen: self.listen.or(outer.listen),
            demo: self.demo || outer.demo,
            reload_interval,
        }
    }
}

#[derive(Debug, Clone, Default, Args)]
pub struct MintArgs {
    /// "sub" claim (default: the issuer's configured subject, if any).
    #[arg(long)]
    pub sub: Option<String>,

    /// "aud" claim; repeat for several (default: the issuer's first configured audience).
    #[arg(long = "aud", value_name = "AUD")]
    pub aud: Vec<String>,

    /// "iss" claim and the issuer whose keys sign (default: the only configured issuer).
    #[arg(long)]
    pub iss: Option<String>,

    /// Lifetime in seconds ("exp" = now + TTL).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub ttl: u64,

    /// Extra claim; VALUE is JSON when it parses as JSON, else a string. Repeatable.
    #[arg(long = "claim", value_name = "KEY=VALUE")]
    pub claims: Vec<String>,

    /// "scope" claim, space-separated (default: the issuer's required scopes).
    #[arg(long)]
    pub scope: Option<String>,

    /// "kid" header (default: the kid of the configured secret, if it has one).
    #[arg(long)]
    pub kid: Option<String>,

    /// Signing algorithm (default: the first HS algorithm the secret serves, or inferred from
    /// --private-key: RS256, ES256, ES384, ES512 or EdDSA).
    #[arg(long)]
    pub alg: Option<String>,

    /// Sign with this PKCS#8 private key (PEM "PRIVATE KEY" or DER) instead of the configured HMAC
    /// secret.
    #[arg(long, value_name = "FILE.pem")]
    pub private_key: Option<PathBuf>,

    /// "typ" header (default: JWT, or the issuer's first accepted type).
    #[arg(long)]
    pub typ: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bare_flags_mean_serve() {
        let cli = Cli::try_parse_from(["jwt-validator", "--demo", "--listen", "127.0.0.1:0"])
            .expect("parses");
        assert!(cli.command.is_none());
        assert!(cli.serve.demo);
        assert_eq!(cli.serve.listen.as_deref(), Some("127.0.0.1:0"));
    }

    #[test]
    fn mint_flags_parse() {
        let cli = Cli::try_parse_from([
            "jwt-validator",
            "mint",
            "--sub",
            "a",
            "--aud",
            "x",
            "--aud",
            "y",
            "--claim",
            "n=1",
            "--config",
            "c.toml",
        ])
        .expect("parses");
        let Some(Command::Mint(m)) = cli.command else {
            panic!("not mint")
        };
        assert_eq!(m.aud, ["x", "y"]);
        assert_eq!(m.ttl, 3600);
        assert_eq!(cli.global.config, Some(PathBuf::from("c.toml")));
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        for args in [
            ["jwt-validator", "--config", "c.toml", "check-config"],
            ["jwt-validator", "check-config", "--config", "c.toml"],
        ] {
            let cli = Cli::try_parse_from(args).expect("parses");
            assert!(matches!(cli.command, Some(Command::CheckConfig)));
            assert_eq!(cli.global.config, Some(PathBuf::from("c.toml")));
        }
    }

    #[test]
    fn help_documents_every_environment_variable() {
        for name in jwtv_config::ENV_VARS
            .iter()
            .chain(&jwtv_config::TLS_ENV_VARS)
            .chain(&[
                "JWT_CONFIG",
                "JWT_LISTEN",
                "PORT",
                "JWT_LOG_FORMAT",
                "RUST_LOG",
            ])
        {
            assert!(
                LONG_AFTER.contains(name),
                "{name} is not documented in --help"
            );
        }
    }
}
