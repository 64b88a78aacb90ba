//! Configuration: environment variables or a TOML file, turned into a [`Verifier`], its keys and the
//! service [`Options`].
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

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use jwtv_verifier::{Algorithm, KeySet, Limits, Policy, StaticKeys, Verifier};

use crate::Options;

/// Reads one environment variable (`None` when unset).
pub type EnvFn<'a> = &'a dyn Fn(&str) -> Option<String>;
/// Reads one whole file.
pub type ReadFileFn<'a> = &'a dyn Fn(&Path) -> io::Result<Vec<u8>>;

/// Where the server listens when nothing says otherwise (the replaced Express service used `PORT` or 3000).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:3000";
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The names of every environment variable read in the single-issuer case. With a configuration file
/// they are ignored (and reported), except the listen address which the file may leave out.
pub const ENV_VARS: &[&str] = &[
    "JWT_SECRET",
    "JWT_SECRET_FILE",
    "JWT_JWKS",
    "JWT_JWKS_FILE",
    "JWT_PUBLIC_KEY_FILE",
    "JWT_ISSUER",
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
];

/// What the native shell needs besides the service: where to listen and how hard to protect itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// `host:port`.
    pub listen: String,
    /// The longest a client may take to send one request, headers and body.
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> ServerSettings {
        ServerSettings {
            listen: DEFAULT_LISTEN.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
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
    /// One key set per issuer, in the order of `verifier.policies()`.
    pub keys: StaticKeys,
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
    match non_empty(env("JWT_CONFIG")) {
        Some(path) => load_file(&path, env, read_file),
        None => env::load(env, read_file),
    }
}

#[cfg(feature = "toml")]
fn load_file(path: &str, env: EnvFn<'_>, read_file: ReadFileFn<'_>) -> Result<Loaded, ConfigError> {
    file::load(path, env, read_file)
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
    pub keys: KeySet,
    pub secrets: Vec<HmacSecret>,
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
    warnings: Vec<String>,
    source: &str,
    verifier_error: impl Fn(String) -> ConfigError,
) -> Result<Loaded, ConfigError> {
    let mut summary = vec![format!("configuration from {source}")];
    let mut policies = Vec::with_capacity(issuers.len());
    let mut sets = Vec::with_capacity(issuers.len());
    let mut hmac_secrets = Vec::new();
    for (index, issuer) in issuers.into_iter().enumerate() {
        summary.push(keys::describe_issuer(&issuer.policy, &issuer.keys));
        policies.push(issuer.policy);
        sets.push(std::sync::Arc::new(issuer.keys));
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
        "limits: body {} bytes, token {} bytes, JSON depth {}; request timeout {}s, {} connections; listen {}",
        shared.options.max_body_bytes,
        shared.limits.max_token_bytes,
        shared.limits.max_json_depth,
        shared.server.request_timeout.as_secs(),
        shared.server.max_connections,
        shared.server.listen,
    ));
    Ok(Loaded {
        verifier,
        keys: StaticKeys(sets),
        options: shared.options,
        server: shared.server,
        warnings,
        summary,
        hmac_secrets,
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
