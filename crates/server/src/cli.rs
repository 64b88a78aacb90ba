//! Command line: subcommands, flags and the help text that documents every environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use jwtv_config::table;

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

/// The long help's closing sections: every environment variable and every file key, rendered from
/// the settings table, then what is not a setting.
fn long_after() -> String {
    format!(
        "{}\n{}\n{}",
        jwtv_config::reference::help_environment(),
        jwtv_config::reference::help_file(),
        LONG_AFTER_PROSE.replace("{secret}", table::SECRET.var())
    )
}

const LONG_AFTER_PROSE: &str = r#"  Each issuer needs at least one key source (jwks_uri and discovery exclude the others); a token is
  only ever checked against the keys of the issuer it claims. Errors name the place: file:line:column,
  or the field as issuers[N].field (N counts from 0). Every setting in one table:
  jwt-validator config-reference (docs/configuration.md).

REMOTE KEY SETS (native server, component and filter)
  Keys are fetched in the background at start: until the first success tokens of the issuer get 503
  temporarily_unavailable and /readyz is 503. A failed refresh keeps the last good key set (retried
  with backoff). A token naming an unknown kid triggers one refetch at most per cooldown, shared by
  all requests. Encryption keys, symmetric (oct) keys and unsupported algorithms are skipped; a set
  with no usable key is a failed fetch. Redirects are not followed.

RELOAD (native server; the component reads its configuration per instance)
  The configuration is read again, without a restart, on SIGHUP and when a file it read changes (the
  TOML file, secret, JWK set, PEM and CA files), checked every --reload-interval
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
  checks are the verifier's own, traced as it runs; the answers are the service's. It also says what
  the token is bound to (cnf) and what that needs; with --dpop PROOF --url URL [--method M], every
  DPoP proof check in order and the answer to the token sent with that proof (no proof is remembered).
  Exit status: 0 valid, 1 refused, 2 configuration or usage error.

EXAMPLES
  jwt-validator --demo                               demo configuration and a ready-to-paste curl
  {secret}=$(openssl rand -hex 32) jwt-validator   seed-compatible start on port 3000
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
    after_long_help = long_after()
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
        env = table::LOG_FORMAT.var(),
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
    /// Print the reference of every setting (variable, TOML key, kind and range, default, shells) as
    /// Markdown: docs/configuration.md.
    ConfigReference,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ExplainArgs {
    /// The token; `-` or nothing: read it from stdin.
    #[arg(value_name = "TOKEN|-")]
    pub token: Option<String>,

    /// Print the explanation as one JSON document.
    #[arg(long)]
    pub json: bool,

    /// A DPoP proof (RFC 9449) sent with the token: its checks are shown, and the answers are those
    /// of a request carrying it (needs --url).
    #[arg(long, value_name = "PROOF", requires = "url")]
    pub dpop: Option<String>,

    /// The method of the request the DPoP proof is for.
    #[arg(long, value_name = "METHOD", default_value = "GET")]
    pub method: String,

    /// The URL of the request the DPoP proof is for.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
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
        let help = long_after();
        for row in table::SETTINGS {
            if let Some(name) = row.env {
                assert!(help.contains(name), "{name} is not documented in --help");
            }
        }
    }
}
