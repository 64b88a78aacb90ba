//! jwt-validator's configuration: environment variables or a TOML file, turned into a [`Verifier`],
//! its keys, the service [`Options`] and the shells' own settings.
//!
//! What it must not do: serve requests (that is `jwtv-service`), fetch key sets (the shells do, driven
//! by `jwtv-keyset`), or read the environment or files itself.
//!
//! Pure: the environment and the file system come in as closures, so the WebAssembly component reads
//! them through WASI, the native server through `std`, and the tests through maps. Nothing here has a
//! default key: with no key configured, loading fails.
//!
//! Every [`ConfigError`] displays as one line that names what is wrong and where (the variable, or the
//! file with a line and column or a field path), because it is what an operator sees when a start is
//! refused.

mod env;
#[cfg(feature = "toml")]
mod file;
mod keys;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_remote;
mod tls;

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use jwtv_keyset::{
    CaBundle, FetchSettings, MAX_REFETCH_WAIT_MS, RemoteLocation, RemoteSource, Seed, Store,
    check_remote_url, discovery_url,
};
use jwtv_verifier::{Algorithm, KeySet, Limits, Policy, Verifier};

use jwtv_service::{Options, Service};

/// Reads one environment variable (`None` when unset).
pub use tls::{PemFile, TLS_ENV_VARS, TlsFiles, from_env as tls_from_env};

pub type EnvFn<'a> = &'a dyn Fn(&str) -> Option<String>;
/// Reads one whole file.
pub type ReadFileFn<'a> = &'a dyn Fn(&Path) -> io::Result<Vec<u8>>;

/// Where the server listens when nothing says otherwise (the replaced Express service used `PORT` or 3000).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:3000";
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// As Node's `keepAliveTimeout`, which the replaced Express service had: short enough that idle sockets
/// do not pile up, long enough for a client's next request on a kept-alive connection.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeouts in seconds are accepted in `1..=MAX_TIMEOUT_SECS`.
pub const MAX_TIMEOUT_SECS: u64 = 3600;
pub const MAX_CONNECTIONS: usize = 1_000_000;

/// The names of every environment variable read in the single-issuer case. With a configuration file
/// they are ignored (and reported), except the listen address which the file may leave out.
pub const ENV_VARS: &[&str] = &[
    "JWT_SECRET",
    "JWT_SECRET_FILE",
    "JWT_JWKS",
    "JWT_JWKS_FILE",
    "JWT_PUBLIC_KEY_FILE",
    "JWT_ISSUER",
    "JWT_ALLOWED_TENANTS",
    "JWT_AUDIENCE",
    "JWT_ALGORITHMS",
    "JWT_LEEWAY",
    "JWT_MAX_AGE",
    "JWT_REQUIRED_CLAIMS",
    "JWT_TYPES",
    "JWT_REQUIRE_EXP",
    "JWT_ALLOW_WEAK_SECRET",
    "JWT_MAX_BODY_BYTES",
    "JWT_MAX_TOKEN_BYTES",
    "JWT_EXPOSE_ERRORS",
    "JWT_REALM",
    "JWT_REQUIRED_SCOPES",
    "JWT_CLAIM_HEADERS",
    "JWT_POLICIES",
    "JWT_JWKS_URI",
    "JWT_JWKS_SEED_FILE",
    "JWT_OIDC_DISCOVERY",
    "JWT_ALLOW_HTTP_LOOPBACK",
    "JWT_FETCH_TIMEOUT",
    "JWT_FETCH_MAX_BYTES",
    "JWT_JWKS_MIN_TTL",
    "JWT_JWKS_MAX_TTL",
    "JWT_JWKS_DEFAULT_TTL",
    "JWT_JWKS_REFETCH_COOLDOWN",
    "JWT_JWKS_REFETCH_WAIT_MS",
    "JWT_FETCH_CA_FILE",
    "JWT_TOKEN_CACHE_SIZE",
    "JWT_REQUEST_TIMEOUT",
    "JWT_FIRST_BYTE_TIMEOUT",
    "JWT_MAX_CONNECTIONS",
    "JWT_LOG_DECISIONS",
    "JWT_LOG_SAMPLE",
    "JWT_LOG_REFUSALS_PER_SEC",
];

/// Verified tokens the native server remembers by default (each entry holds the token's claims).
pub const DEFAULT_TOKEN_CACHE_SIZE: usize = 10_000;
pub const MAX_TOKEN_CACHE_SIZE: usize = 10_000_000;

/// What the native shell needs besides the service: where to listen and how hard to protect itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// `host:port`.
    pub listen: String,
    /// The longest a client may take to send one request, headers and body.
    pub request_timeout: Duration,
    /// The longest a connection may stay open without a request in progress: before the first byte of
    /// its first request, and between requests on a kept-alive connection. At most `request_timeout`.
    pub first_byte_timeout: Duration,
    /// Connections open at once; at the limit, the connection idle the longest makes room for a new
    /// one. `None`: sized from the process's file-descriptor limit at start.
    pub max_connections: Option<usize>,
    /// Verified tokens remembered (0: no cache).
    pub token_cache_size: usize,
    /// How remote key sets are fetched.
    pub fetch: FetchSettings,
    /// Which decisions get a log line.
    pub decision_log: DecisionLog,
    /// TLS (and mTLS) on the listener; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// Which decisions the native server logs, one line each. Every decision is counted in `/metrics`
/// whatever this says; the lines are for looking into single requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionLog {
    pub which: LoggedDecisions,
    /// Of the decisions `which` selects, the share logged, in millionths (1,000,000: all of them).
    pub sample_per_million: u32,
    /// Of those, refusal lines written per reason code and second (as many in a burst), the rest
    /// counted in one summary line a second: bad tokens cost anyone nothing to send. 0: no bound.
    pub refusals_per_sec: u32,
}

/// Refusal lines a second per reason code by default: enough to see what is refused and by whom
/// (each line names `iss` and `kid`), few enough that a flood writes kilobytes, not megabytes.
pub const DEFAULT_LOG_REFUSALS_PER_SEC: u32 = 10;
pub const MAX_LOG_REFUSALS_PER_SEC: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggedDecisions {
    All,
    /// Refusals only: a busy gateway's traffic is mostly allowed requests, whose lines say nothing
    /// `/metrics` does not, while each refusal (with its reason code) may need looking into.
    Refusals,
    None,
}

impl Default for DecisionLog {
    fn default() -> DecisionLog {
        DecisionLog {
            which: LoggedDecisions::Refusals,
            sample_per_million: 1_000_000,
            refusals_per_sec: DEFAULT_LOG_REFUSALS_PER_SEC,
        }
    }
}

/// Refusal lines a second per code, 0 (no bound) to [`MAX_LOG_REFUSALS_PER_SEC`].
pub(crate) fn check_log_refusals_per_sec(n: usize) -> Result<u32, String> {
    u32::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_LOG_REFUSALS_PER_SEC)
        .ok_or_else(|| {
            format!("{n} is out of range: use 0 (no bound) to {MAX_LOG_REFUSALS_PER_SEC}")
        })
}

/// `all`, `refusals` or `none`.
pub(crate) fn parse_logged_decisions(value: &str) -> Result<LoggedDecisions, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "all" => Ok(LoggedDecisions::All),
        "refusals" => Ok(LoggedDecisions::Refusals),
        "none" => Ok(LoggedDecisions::None),
        _ => Err(format!("{value:?} is not one of all, refusals, none")),
    }
}

/// A sampling rate from 0 to 1, in millionths.
pub(crate) fn check_log_sample(rate: f64) -> Result<u32, String> {
    if (0.0..=1.0).contains(&rate) {
        // In range, so the product fits.
        Ok((rate * 1_000_000.0).round() as u32)
    } else {
        Err(format!("{rate} is out of range: use 0.0 to 1.0"))
    }
}

impl Default for ServerSettings {
    fn default() -> ServerSettings {
        ServerSettings {
            listen: DEFAULT_LISTEN.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            max_connections: None,
            token_cache_size: DEFAULT_TOKEN_CACHE_SIZE,
            fetch: FetchSettings::default(),
            decision_log: DecisionLog::default(),
            tls: None,
        }
    }
}

/// An HMAC secret from the configuration, kept so that a test-token minter can sign with the same
/// secret the verifier checks. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct HmacSecret {
    /// Index of the issuer (in [`Verifier::policies`] order) the secret belongs to.
    pub issuer: usize,
    pub kid: Option<String>,
    /// The one algorithm the secret is bound to, when its source says so (JWK `alg`).
    pub alg: Option<Algorithm>,
    secret: Vec<u8>,
}

impl HmacSecret {
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacSecret")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("len", &self.secret.len())
            .finish_non_exhaustive()
    }
}

/// A configuration ready to serve.
pub struct Loaded {
    pub verifier: Verifier,
    /// One key set per issuer, in the order of `verifier.policies()`; for remote issuers their seed,
    /// or none (until a shell installs what it fetched, their tokens get 503, never a verdict).
    pub keys: Store,
    /// The issuers whose key sets are fetched (by every shell; the WASI 0.3 component build refuses them).
    pub remote: Vec<RemoteSource>,
    pub options: Options,
    pub server: ServerSettings,
    /// Things that work but deserve attention at every start (a weak-secret override, ignored variables).
    pub warnings: Vec<String>,
    /// Issuers, keys and limits in words, for a start-up log line. Never holds key bytes.
    pub summary: Vec<String>,
    /// The HMAC secrets, for `mint`. Not for logging.
    pub hmac_secrets: Vec<HmacSecret>,
}

impl fmt::Debug for Loaded {
    // Summarised: the verifier and keys are large, and the secrets must never be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("remote", &self.remote)
            .field("server", &self.server)
            .field("warnings", &self.warnings)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// Why a configuration cannot be served. Displays as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// An environment variable holds a value that cannot be used.
    #[error("{var}: {message}")]
    Env { var: String, message: String },
    /// The configuration file cannot be read or parsed, or holds a value that cannot be used.
    /// `location` is the file's path, followed by `:line:column` when the TOML parser knows it.
    #[error("{location}: {message}")]
    File { location: String, message: String },
    /// Refusing to start rather than falling back to a built-in secret.
    #[error(
        "no key configured: set JWT_SECRET, JWT_SECRET_FILE, JWT_JWKS, JWT_JWKS_FILE or \
         JWT_PUBLIC_KEY_FILE, or a config file with JWT_CONFIG"
    )]
    NoKey,
    #[error(
        "{path}: this build cannot read TOML configuration files (cargo feature `toml` is off); \
         use the JWT_* environment variables instead"
    )]
    TomlUnsupported { path: String },
}

impl ConfigError {
    pub(crate) fn env(var: impl Into<String>, message: impl fmt::Display) -> ConfigError {
        ConfigError::Env {
            var: var.into(),
            message: one_line(&message.to_string()),
        }
    }

    #[cfg_attr(not(feature = "toml"), allow(dead_code))]
    pub(crate) fn file(location: impl Into<String>, message: impl fmt::Display) -> ConfigError {
        ConfigError::File {
            location: location.into(),
            message: one_line(&message.to_string()),
        }
    }
}

/// Loads the configuration: the TOML file named by `JWT_CONFIG` if set, otherwise the `JWT_*`
/// environment variables of the single-issuer case.
pub fn load(env: EnvFn<'_>, read_file: ReadFileFn<'_>) -> Result<Loaded, ConfigError> {
    let mut loaded = match non_empty(env("JWT_CONFIG")) {
        Some(path) => load_file(&path, env, read_file),
        None => env::load(env, read_file),
    }?;
    loaded.server.tls = tls::from_env(env, read_file)?;
    Ok(loaded)
}

#[cfg(feature = "toml")]
fn load_file(path: &str, env: EnvFn<'_>, read_file: ReadFileFn<'_>) -> Result<Loaded, ConfigError> {
    file::load(path, env, read_file)
}

/// Loads a configuration in the TOML file's schema from `text` already in hand (the proxy-wasm
/// filter's plugin configuration). `name` stands for the file in errors and relative paths.
#[cfg(feature = "toml")]
pub fn load_toml(
    name: &str,
    text: &[u8],
    env: EnvFn<'_>,
    read_file: ReadFileFn<'_>,
) -> Result<Loaded, ConfigError> {
    file::load_text(name, text, env, read_file)
}

#[cfg(not(feature = "toml"))]
fn load_file(path: &str, _: EnvFn<'_>, _: ReadFileFn<'_>) -> Result<Loaded, ConfigError> {
    Err(ConfigError::TomlUnsupported {
        path: path.to_owned(),
    })
}

/// One issuer as the front ends (environment, file) produce it.
pub(crate) struct IssuerConfig {
    pub policy: Policy,
    pub keys: IssuerKeys,
    pub secrets: Vec<HmacSecret>,
}

/// An issuer's keys: configured, or fetched from `location` (configured at `configured_at`).
pub(crate) enum IssuerKeys {
    Static(KeySet),
    Remote {
        location: RemoteLocation,
        configured_at: String,
        seed: Option<Seed>,
    },
}

/// A seed key set belongs beside a remote source: alone it would be a configured set that silently
/// never refreshes.
pub(crate) const SEED_WITHOUT_REMOTE: &str = "a seed key set is served only until the remote key \
     set is fetched: set the remote source too (JWT_JWKS_URI or JWT_OIDC_DISCOVERY=true; jwks_uri or \
     discovery = true in a file), or configure the keys themselves (JWT_JWKS_FILE, jwks_file)";

/// A seed file: a JWK Set as the provider publishes it (`curl $JWKS_URI > seed.json`), read by the
/// same rules as a fetched one.
pub(crate) fn read_seed(document: &[u8]) -> Result<Seed, String> {
    Seed::parse(document).map_err(|e| format!("not a usable seed key set: {e}"))
}

/// Settings shared by every issuer, with their defaults.
#[derive(Default)]
pub(crate) struct Shared {
    pub limits: Limits,
    pub options: Options,
    pub server: ServerSettings,
}

/// Builds the verifier from issuers already checked one by one. `source` names the configuration in the
/// summary; `verifier_error` places the errors only the whole set can reveal (duplicate issuers).
pub(crate) fn assemble(
    issuers: Vec<IssuerConfig>,
    shared: Shared,
    mut warnings: Vec<String>,
    source: &str,
    verifier_error: impl Fn(String) -> ConfigError,
) -> Result<Loaded, ConfigError> {
    let mut summary = vec![format!("configuration from {source}")];
    let mut policies = Vec::with_capacity(issuers.len());
    let mut sets = Vec::with_capacity(issuers.len());
    let mut remote = Vec::new();
    let mut hmac_secrets = Vec::new();
    for (index, issuer) in issuers.into_iter().enumerate() {
        match issuer.keys {
            IssuerKeys::Static(set) => {
                summary.push(keys::describe_issuer(&issuer.policy, &set));
                sets.push(Some(Arc::new(set)));
            }
            IssuerKeys::Remote {
                location,
                configured_at,
                seed,
            } => {
                // An identity provider signs tokens for every application it serves with the same
                // keys; only the audience says which were made for this one.
                if issuer.policy.audiences.is_empty() {
                    warnings.push(format!(
                        "{}: keys fetched from {} but no audience configured: a token this issuer \
                         made for any other application is accepted; set JWT_AUDIENCE (or \
                         `audiences` in the file)",
                        keys::issuer_name(&issuer.policy),
                        location.url(),
                    ));
                }
                let mut line = keys::describe_remote_issuer(&issuer.policy, &location);
                if let Some(seed) = &seed {
                    line.push_str(&format!(
                        "; seed: {} key(s), served until the first fetch",
                        seed.key_set().keys().len()
                    ));
                }
                summary.push(line);
                // The slot starts with the seed's own set: the source serves the same one, so handing
                // it on changes no generation.
                sets.push(seed.as_ref().map(|s| s.key_set().clone()));
                remote.push(RemoteSource {
                    issuer: index,
                    location,
                    configured_at,
                    seed,
                });
            }
        }
        policies.push(issuer.policy);
        hmac_secrets.extend(
            issuer
                .secrets
                .into_iter()
                .map(|s| HmacSecret { issuer: index, ..s }),
        );
    }
    let verifier =
        Verifier::new(policies, shared.limits).map_err(|e| verifier_error(e.to_string()))?;
    summary.push(format!(
        "limits: body {} bytes, token {} bytes, JSON depth {}; request timeout {}s, first byte within {}s, {}; listen {}",
        shared.options.max_body_bytes,
        shared.limits.max_token_bytes,
        shared.limits.max_json_depth,
        shared.server.request_timeout.as_secs(),
        shared.server.first_byte_timeout.as_secs(),
        match shared.server.max_connections {
            Some(n) => format!("{n} connections"),
            None => "connections sized from the file-descriptor limit".to_owned(),
        },
        shared.server.listen,
    ));
    summary.push(match shared.server.token_cache_size {
        0 => "token cache: off".to_owned(),
        n => format!("token cache: up to {n} verified tokens"),
    });
    let logged = shared.server.decision_log;
    summary.push(format!(
        "decision logs: {}{}{}",
        match logged.which {
            LoggedDecisions::All => "every decision",
            LoggedDecisions::Refusals => "refusals only",
            LoggedDecisions::None => "none (counted in /metrics only)",
        },
        match logged.sample_per_million {
            1_000_000 => String::new(),
            n => format!(", {}% of them", f64::from(n) / 10_000.0),
        },
        match (logged.which, logged.refusals_per_sec) {
            (LoggedDecisions::None, _) => String::new(),
            (_, 0) => ", refusal lines unbounded".to_owned(),
            (_, n) => format!(", at most {n} refusal lines a second per code (the rest summed up)"),
        }
    ));
    if !remote.is_empty() {
        let f = &shared.server.fetch;
        summary.push(format!(
            "remote key sets: timeout {}s, at most {} bytes, TTL {}s (Cache-Control max-age clamped to \
             {}s..{}s), unknown-kid refetch at most every {}s, waited on for at most {}ms{}",
            f.timeout.as_secs(),
            f.max_bytes,
            f.default_ttl.as_secs(),
            f.min_ttl.as_secs(),
            f.max_ttl.as_secs(),
            f.refetch_cooldown.as_secs(),
            f.refetch_wait.as_millis(),
            if f.allow_http_loopback {
                "; plain http allowed for loopback hosts"
            } else {
                ""
            },
        ));
        if let Some(ca) = &f.ca_bundle {
            summary.push(format!(
                "remote key sets: CA certificates from {:?} trusted beside the Mozilla roots",
                ca.path
            ));
        }
    }
    Ok(Loaded {
        verifier,
        keys: Store::new(sets),
        remote,
        options: shared.options,
        server: shared.server,
        warnings,
        summary,
        hmac_secrets,
    })
}

/// Where an issuer template and its tenant list disagree: the field to blame (`names` are the issuer's
/// and the tenant list's, as each front end spells them) and the line to show.
pub(crate) fn check_template<'n>(
    policy: &Policy,
    names: (&'n str, &'n str),
) -> Result<(), (&'n str, String)> {
    use jwtv_verifier::issuer::{self, TemplateError};
    let (issuer_name, tenants_name) = names;
    issuer::check_template(policy).map_err(|e| match e {
        TemplateError::NoTenants(iss) => (
            tenants_name,
            format!(
                "is not set but {issuer_name} {iss:?} is a template with {{tenantid}}: list the \
                 tenant ids (tid) to accept; any tenant would let anyone's own tenant mint tokens"
            ),
        ),
        TemplateError::NotATemplate => (
            tenants_name,
            format!(
                "needs {issuer_name} to be a template with {{tenantid}}, such as \
                 https://login.microsoftonline.com/{{tenantid}}/v2.0"
            ),
        ),
        e @ TemplateError::Placeholders(_) => (issuer_name, e.to_string()),
        e @ TemplateError::BadTenant(_) => (tenants_name, e.to_string()),
    })
}

/// Empty values count as unset: container tooling often renders a missing variable as `VAR=`.
pub(crate) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Keeps the first line only: a configuration error is printed as one line.
pub(crate) fn one_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim_end().to_owned()
}

/// `cannot read "keys.json": No such file or directory`, without the `(os error 2)` noise.
pub(crate) fn read_error(shown: &str, error: &io::Error) -> String {
    format!("cannot read {shown:?}: {}", io_reason(error))
}

/// An I/O error's text without the `(os error N)` suffix, which tells an operator nothing more.
pub(crate) fn io_reason(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}

/// Checks a `host:port` listen address without resolving the host (resolution is the shell's job).
pub(crate) fn check_listen(value: &str) -> Result<String, String> {
    let value = value.trim();
    let valid = value
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if valid {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a host:port address (e.g. 0.0.0.0:3000)"
        ))
    }
}

/// The realm is written into a quoted `WWW-Authenticate` parameter, so it must not be able to end the
/// quote or the header.
pub(crate) fn check_realm(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 256
        && value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a usable realm: use 1 to 256 printable ASCII characters without '\"' or '\\'"
        ))
    }
}

/// A policy name is a path segment of `/policy/{name}/auth`.
pub(crate) fn check_policy_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: a policy name may hold only letters, digits, '-' and '_'"
        ))
    }
}

/// Parses an algorithm allow-list entry. `none` is refused by name so the operator learns why.
pub(crate) fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    if let Ok(alg) = name.parse::<Algorithm>() {
        return Ok(alg);
    }
    if name.eq_ignore_ascii_case("none") {
        return Err(format!(
            "{name:?} can never be enabled: unsigned tokens are always refused"
        ));
    }
    let supported: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
    match Algorithm::ALL
        .iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(name))
    {
        Some(a) => Err(format!(
            "{name:?} is not an algorithm (names are case-sensitive): did you mean {a}?"
        )),
        None => Err(format!(
            "{name:?} is not a supported algorithm; supported: {}",
            supported.join(", ")
        )),
    }
}

/// Refuses an allow-list no configured key can serve; returns the listed algorithms that are not served,
/// which deserve a warning but do not stop the start.
pub(crate) fn check_allow_list(policy: &Policy, keys: &KeySet) -> Result<Vec<Algorithm>, String> {
    if policy.algorithms.is_empty() {
        return Ok(Vec::new());
    }
    let servable = keys.algorithms();
    let (served, unserved): (Vec<Algorithm>, Vec<Algorithm>) =
        policy.algorithms.iter().partition(|a| servable.contains(a));
    if served.is_empty() {
        return Err(format!(
            "no configured key can verify {}; the configured keys can verify {}",
            keys::alg_list(&policy.algorithms),
            keys::alg_list(&servable)
        ));
    }
    Ok(unserved)
}

/// The remote key source of an issuer from its `jwks_uri` and `discovery` settings, as a plain message
/// on error (with the field the front end should blame). `names` are how the front end calls the
/// `jwks_uri`, `discovery` and `issuer` settings.
pub(crate) fn remote_location(
    jwks_uri: Option<&str>,
    discovery: bool,
    issuer: Option<&str>,
    allow_http_loopback: bool,
    names: (&str, &str, &str),
) -> Result<Option<RemoteLocation>, (RemoteField, String)> {
    let (jwks_name, discovery_name, issuer_name) = names;
    match (jwks_uri.map(str::trim), discovery) {
        (Some(_), true) => Err((
            RemoteField::Discovery,
            format!("set either {jwks_name} or {discovery_name}, not both"),
        )),
        (Some(url), false) => {
            check_remote_url(url, allow_http_loopback).map_err(|m| (RemoteField::JwksUri, m))?;
            Ok(Some(RemoteLocation::JwksUri(url.to_owned())))
        }
        (None, true) => {
            let Some(issuer) = issuer else {
                return Err((
                    RemoteField::Discovery,
                    format!(
                        "OIDC discovery needs the issuer URL: set {issuer_name} (the discovery \
                         document is {{issuer}}/.well-known/openid-configuration)"
                    ),
                ));
            };
            if issuer.contains(jwtv_verifier::issuer::TENANT_PLACEHOLDER) {
                return Err((
                    RemoteField::Discovery,
                    format!(
                        "an issuer template has no discovery document of its own: set \
                         {jwks_name} to the provider's common key set (Entra ID: \
                         https://login.microsoftonline.com/common/discovery/v2.0/keys)"
                    ),
                ));
            }
            let url = discovery_url(issuer);
            check_remote_url(&url, allow_http_loopback).map_err(|m| {
                (
                    RemoteField::Discovery,
                    format!("the issuer is not a usable discovery URL: {m}"),
                )
            })?;
            Ok(Some(RemoteLocation::Discovery {
                issuer: issuer.to_owned(),
                url,
            }))
        }
        (None, false) => Ok(None),
    }
}

/// Which of the two remote settings an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemoteField {
    JwksUri,
    Discovery,
}

/// Fetch settings as the front ends read them; `None` keeps the default.
#[derive(Default)]
pub(crate) struct FetchInput {
    pub allow_http_loopback: Option<bool>,
    pub timeout_secs: Option<u64>,
    pub max_bytes: Option<usize>,
    pub min_ttl_secs: Option<u64>,
    pub max_ttl_secs: Option<u64>,
    pub default_ttl_secs: Option<u64>,
    pub refetch_cooldown_secs: Option<u64>,
    pub refetch_wait_ms: Option<u64>,
}

/// Which fetch setting a message is about, so each front end can name its variable or field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchField {
    Timeout,
    MaxBytes,
    MinTtl,
    MaxTtl,
    DefaultTtl,
    RefetchCooldown,
    RefetchWait,
}

const WEEK_SECS: u64 = 7 * 24 * 3600;

impl FetchInput {
    pub(crate) fn settings(&self) -> Result<FetchSettings, (FetchField, String)> {
        let defaults = FetchSettings::default();
        let secs = |field: FetchField, value: Option<u64>, hi: u64, default: Duration| match value {
            None => Ok(default),
            Some(v) if (1..=hi).contains(&v) => Ok(Duration::from_secs(v)),
            Some(v) => Err((field, format!("{v} is out of range: use 1 to {hi} seconds"))),
        };
        let timeout = secs(
            FetchField::Timeout,
            self.timeout_secs,
            120,
            defaults.timeout,
        )?;
        let max_bytes = match self.max_bytes {
            None => defaults.max_bytes,
            Some(n) if (1024..=16 * 1024 * 1024).contains(&n) => n,
            Some(n) => {
                return Err((
                    FetchField::MaxBytes,
                    format!("{n} is out of range: use 1024 to 16777216 bytes"),
                ));
            }
        };
        let min_ttl = secs(
            FetchField::MinTtl,
            self.min_ttl_secs,
            WEEK_SECS,
            defaults.min_ttl,
        )?;
        let max_ttl = secs(
            FetchField::MaxTtl,
            self.max_ttl_secs,
            WEEK_SECS,
            defaults.max_ttl,
        )?;
        if min_ttl > max_ttl {
            let field = match self.max_ttl_secs {
                Some(_) => FetchField::MaxTtl,
                None => FetchField::MinTtl,
            };
            return Err((
                field,
                format!(
                    "the TTL bounds are inverted: minimum {}s is above maximum {}s",
                    min_ttl.as_secs(),
                    max_ttl.as_secs()
                ),
            ));
        }
        // An explicit default outside the bounds is a mistake worth naming; the built-in default just
        // follows bounds that were moved.
        let default_ttl = match self.default_ttl_secs {
            None => defaults.default_ttl.clamp(min_ttl, max_ttl),
            Some(v) if (min_ttl.as_secs()..=max_ttl.as_secs()).contains(&v) => {
                Duration::from_secs(v)
            }
            Some(v) => {
                return Err((
                    FetchField::DefaultTtl,
                    format!(
                        "{v} is outside the TTL bounds: use {} to {} seconds",
                        min_ttl.as_secs(),
                        max_ttl.as_secs()
                    ),
                ));
            }
        };
        let refetch_cooldown = secs(
            FetchField::RefetchCooldown,
            self.refetch_cooldown_secs,
            3600,
            defaults.refetch_cooldown,
        )?;
        let refetch_wait = match self.refetch_wait_ms {
            None => defaults.refetch_wait,
            Some(ms) if ms <= MAX_REFETCH_WAIT_MS => Duration::from_millis(ms),
            Some(ms) => {
                return Err((
                    FetchField::RefetchWait,
                    format!(
                        "{ms} is out of range: use 0 (never wait) to {MAX_REFETCH_WAIT_MS} milliseconds"
                    ),
                ));
            }
        };
        Ok(FetchSettings {
            allow_http_loopback: self.allow_http_loopback.unwrap_or(false),
            timeout,
            max_bytes,
            min_ttl,
            max_ttl,
            default_ttl,
            refetch_cooldown,
            refetch_wait,
            ca_bundle: None,
        })
    }
}

/// The token-cache size, checked.
pub(crate) fn check_token_cache_size(n: usize) -> Result<usize, String> {
    if n <= MAX_TOKEN_CACHE_SIZE {
        Ok(n)
    } else {
        Err(format!(
            "{n} is out of range: use 0 (no cache) to {MAX_TOKEN_CACHE_SIZE} entries"
        ))
    }
}

/// A timeout in whole seconds, checked.
pub(crate) fn check_timeout_secs(secs: u64) -> Result<Duration, String> {
    if (1..=MAX_TIMEOUT_SECS).contains(&secs) {
        Ok(Duration::from_secs(secs))
    } else {
        Err(format!(
            "{secs} is out of range: use 1 to {MAX_TIMEOUT_SECS} seconds"
        ))
    }
}

/// The connection limit, checked.
pub(crate) fn check_max_connections(n: usize) -> Result<usize, String> {
    if (1..=MAX_CONNECTIONS).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is out of range: use 1 to {MAX_CONNECTIONS}"))
    }
}

/// Sets the first-byte timeout: the given one, or the default shortened to the request timeout. Waiting
/// for a first byte is part of a request's time, so it cannot be the longer of the two.
pub(crate) fn settle_first_byte_timeout(
    server: &mut ServerSettings,
    secs: Option<u64>,
) -> Result<(), String> {
    let Some(secs) = secs else {
        server.first_byte_timeout = DEFAULT_FIRST_BYTE_TIMEOUT.min(server.request_timeout);
        return Ok(());
    };
    let timeout = check_timeout_secs(secs)?;
    if timeout > server.request_timeout {
        return Err(format!(
            "{secs}s is longer than the request timeout ({}s): use at most that",
            server.request_timeout.as_secs()
        ));
    }
    server.first_byte_timeout = timeout;
    Ok(())
}

impl Loaded {
    /// The service for a loaded configuration, with its static key sets.
    pub fn into_service(self) -> Service {
        Service::new(self.verifier, Arc::new(self.keys), self.options)
    }
}
