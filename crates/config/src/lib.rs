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
#[cfg(feature = "reference")]
pub mod reference;
#[cfg(feature = "replay-store")]
pub mod replay_store;
mod shared;
pub mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_access;
#[cfg(test)]
mod tests_remote;
#[cfg(test)]
mod tests_table;
mod tls;

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use jwtv_keyset::{
    FetchSettings, RemoteLocation, RemoteSource, Seed, Store, check_remote_url, discovery_url,
};
use jwtv_verifier::{Algorithm, KeySet, Limits, Policy, Verifier};

use jwtv_service::gateway::Access;
use jwtv_service::mtls::CertSource;
use jwtv_service::rule::{Rule, RuleError};
use jwtv_service::sources::TokenSource;
use jwtv_service::{Options, Service};

/// Reads one environment variable (`None` when unset).
pub use tls::{PemFile, TlsFiles, from_env as tls_from_env};

pub type EnvFn<'a> = &'a dyn Fn(&str) -> Option<String>;
/// Reads one whole file.
pub type ReadFileFn<'a> = &'a dyn Fn(&Path) -> io::Result<Vec<u8>>;

/// Where the server listens when nothing says otherwise (the replaced Express service used `PORT` or 3000).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:3000";
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// As Node's `keepAliveTimeout`, which the replaced Express service had: short enough that idle sockets
/// do not pile up, long enough for a client's next request on a kept-alive connection.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(5);
/// Verified tokens the native server remembers by default (each entry holds the token's claims).
pub const DEFAULT_TOKEN_CACHE_SIZE: usize = 10_000;

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
    /// Where DPoP proofs' `jti`s are remembered.
    #[cfg(feature = "replay-store")]
    pub dpop_replay: replay_store::ReplayStoreSettings,
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
            #[cfg(feature = "replay-store")]
            dpop_replay: replay_store::ReplayStoreSettings::default(),
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
    /// The issuers whose key sets are fetched (by every shell).
    pub remote: Vec<RemoteSource>,
    pub options: Options,
    pub server: ServerSettings,
    /// Things that work but deserve attention at every start (a weak-secret override, ignored variables).
    pub warnings: Vec<String>,
    /// The source and the issuers with their keys in words ([`Loaded::summary`]).
    issuers_summary: Vec<String>,
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
            .field("summary", &self.issuers_summary)
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
        "no key configured: set {}, {}, {}, {} or {}, or a config file with {}",
        table::SECRET.var(),
        table::SECRET_FILE.var(),
        table::JWKS.var(),
        table::JWKS_FILE.var(),
        table::PUBLIC_KEY_FILE.var(),
        table::CONFIG.var()
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

/// Loads the configuration: the TOML file named by [`table::CONFIG`] if set, otherwise the `JWT_*`
/// environment variables of the single-issuer case.
pub fn load(env: EnvFn<'_>, read_file: ReadFileFn<'_>) -> Result<Loaded, ConfigError> {
    let mut loaded = match non_empty(env(table::CONFIG.var())) {
        Some(path) => load_file(&path, env, read_file),
        None => env::load(env, read_file),
    }?;
    loaded.server.tls = tls::from_env(env, read_file)?;
    // Only where bindings are checked: elsewhere every bound token is refused whatever the source.
    if jwtv_service::dpop::BUILT
        && loaded.options.client_cert() == CertSource::Tls
        && loaded
            .server
            .tls
            .as_ref()
            .is_none_or(|t| t.client_ca.is_none())
    {
        loaded.warnings.push(format!(
            "{} is tls but the listener asks no client for a certificate (no {}): every certificate-bound token (cnf.x5t#S256) is refused",
            table::CLIENT_CERT_SOURCE.var(),
            table::TLS_CLIENT_CA_FILE.var()
        ));
    }
    Ok(loaded)
}

/// As [`load`], and one warning for every `JWT_*` variable among `names` (the environment's
/// variable names) that no setting knows, naming the nearest known one: a typo must not start the
/// service as if the setting were unset. A variable the configuration reads by a name it gives
/// (`secret_env`) is not unknown.
pub fn load_checked<'n>(
    env: EnvFn<'_>,
    names: impl IntoIterator<Item = &'n str>,
    read_file: ReadFileFn<'_>,
) -> Result<Loaded, ConfigError> {
    let asked = std::cell::RefCell::new(Vec::new());
    let recording = |name: &str| {
        asked.borrow_mut().push(name.to_owned());
        env(name)
    };
    let mut loaded = load(&recording, read_file)?;
    let asked = asked.into_inner();
    let unread = names
        .into_iter()
        .filter(|name| !asked.iter().any(|a| a == name));
    loaded.warnings.extend(table::unknown_variables(unread));
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
pub(crate) fn seed_without_remote() -> String {
    format!(
        "a seed key set is served only until the remote key set is fetched: set the remote source \
         too ({} or {}=true; jwks_uri or discovery = true in a file), or configure the keys \
         themselves ({}, jwks_file)",
        table::JWKS_URI.var(),
        table::OIDC_DISCOVERY.var(),
        table::JWKS_FILE.var()
    )
}

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
                         made for any other application is accepted; set {} (or `audiences` in \
                         the file)",
                        keys::issuer_name(&issuer.policy),
                        location.url(),
                        table::AUDIENCE.var(),
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
    Ok(Loaded {
        verifier,
        keys: Store::new(sets),
        remote,
        options: shared.options,
        server: shared.server,
        warnings,
        issuers_summary: summary,
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
/// Which setting of a policy's access an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessField {
    TokenSources,
    Anonymous,
    Dpop,
    Rule,
}

/// A policy's token sources, anonymous switch and CEL rule (issue 24), from the raw values either
/// reader found; `policy` is `None` for the default policy. A rule is compiled and checked here, so a
/// bad one stops the start or the reload with the policy and the column.
pub(crate) fn access(
    policy: Option<&str>,
    token_sources: Option<&str>,
    anonymous: Option<&str>,
    dpop: Option<&str>,
    rule: Option<&str>,
) -> Result<Access, (AccessField, String)> {
    let mut access = Access::default();
    if let Some(spec) = token_sources {
        access.token_sources =
            TokenSource::parse_list(spec).map_err(|m| (AccessField::TokenSources, m))?;
    }
    match anonymous.map(str::trim) {
        None | Some("") | Some("deny") => {}
        Some("allow") => access.anonymous = true,
        Some(other) => {
            return Err((
                AccessField::Anonymous,
                format!("{other:?} is neither \"allow\" nor \"deny\""),
            ));
        }
    }
    if let Some(mode) = dpop.filter(|m| !m.trim().is_empty()) {
        access.dpop = jwtv_service::dpop::Mode::parse(mode).map_err(|m| (AccessField::Dpop, m))?;
        if access.dpop == jwtv_service::dpop::Mode::Required && !jwtv_service::dpop::BUILT {
            return Err((
                AccessField::Dpop,
                "\"required\" needs DPoP proof checks, which this build leaves out (the component's dpop feature)".to_owned(),
            ));
        }
    }
    if let Some(rule) = rule.filter(|r| !r.trim().is_empty()) {
        let whose = match policy {
            Some(name) => format!("policy {name:?}"),
            None => "the default policy".to_owned(),
        };
        access.rule = Some(Rule::compile(rule).map_err(|e| {
            let message = match e {
                RuleError::Invalid { column, message } => {
                    format!("{whose}'s rule, column {column}: {message}")
                }
                RuleError::NotBuilt => format!("{whose} has a rule, but {e}"),
            };
            (AccessField::Rule, message)
        })?);
    }
    Ok(access)
}

pub(crate) fn check_policy_name(name: &str) -> Result<(), String> {
    if jwtv_service::gateway::is_policy_name(name) {
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

impl Loaded {
    /// The configuration in words, for start-up log lines: where it came from, the issuers and their
    /// keys, the limits and the server settings. Never holds key bytes.
    pub fn summary(&self) -> Vec<String> {
        self.summary_with(&self.server)
    }

    /// As [`Loaded::summary`], with the server settings in effect (a shell may override some, such
    /// as the listen address from a command-line flag): the summary says what is served.
    pub fn summary_with(&self, server: &ServerSettings) -> Vec<String> {
        let mut summary = self.issuers_summary.clone();
        let limits = self.verifier.limits();
        summary.push(format!(
            "limits: body {} bytes, token {} bytes, JSON depth {}; request timeout {}s, first byte within {}s, {}; listen {}",
            self.options.max_body_bytes,
            limits.max_token_bytes,
            limits.max_json_depth,
            server.request_timeout.as_secs(),
            server.first_byte_timeout.as_secs(),
            match server.max_connections {
                Some(n) => format!("{n} connections"),
                None => "connections sized from the file-descriptor limit".to_owned(),
            },
            server.listen,
        ));
        summary.push(match server.token_cache_size {
            0 => "token cache: off".to_owned(),
            n => format!("token cache: up to {n} verified tokens"),
        });
        summary.push(format!(
            "certificate-bound tokens (cnf.x5t#S256): {}",
            self.options.client_cert().description()
        ));
        #[cfg(feature = "bindings")]
        summary.push(format!(
            "DPoP proofs (RFC 9449): signed with {}; iat at most {}s old, plus the issuer's leeway",
            keys::alg_list(&self.options.dpop.algorithms),
            self.options.dpop.window_secs,
        ));
        let logged = server.decision_log;
        summary.push(format!(
            "decision logs: {}{}{}",
            match logged.which {
                LoggedDecisions::All => "every decision",
                LoggedDecisions::Refusals => "refusals only",
                LoggedDecisions::None => "none (counted in /metrics only)",
            },
            match logged.sample_per_million {
                1_000_000 => String::new(),
                n => format!(", {}% of them", percent_of_million(n)),
            },
            match (logged.which, logged.refusals_per_sec) {
                (LoggedDecisions::None, _) => String::new(),
                (_, 0) => ", refusal lines unbounded".to_owned(),
                (_, n) =>
                    format!(", at most {n} refusal lines a second per code (the rest summed up)"),
            }
        ));
        #[cfg(feature = "replay-store")]
        if let replay_store::ReplayStore::Redis(target) = &server.dpop_replay.store {
            let replay = &server.dpop_replay;
            summary.push(format!(
                "DPoP replay store: {target}{}, connect within {}ms, SET within {}ms; when it cannot answer, proofs are {}",
                if target.password().is_some() { " (with a password)" } else { "" },
                replay.connect_timeout.as_millis(),
                replay.command_timeout.as_millis(),
                match replay.on_error {
                    replay_store::OnStoreError::Refuse => "refused",
                    replay_store::OnStoreError::Allow => "allowed (replays pass meanwhile)",
                },
            ));
        }
        if !self.remote.is_empty() {
            let f = &server.fetch;
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
        summary
    }

    /// The service for a loaded configuration, with its static key sets.
    pub fn into_service(self) -> Service {
        Service::new(self.verifier, Arc::new(self.keys), self.options)
    }
}

/// `n` per million as a percentage in decimal (`250000` → `25`, `1234` → `0.1234`), the digits
/// `f64`'s `Display` would print, in integers: formatting an `f64` links core's float printing,
/// ~12 KB of the size-budgeted component for this one summary line.
fn percent_of_million(n: u32) -> String {
    let (whole, fraction) = (n / 10_000, n % 10_000);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:04}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod percent {
    #[test]
    fn a_share_per_million_prints_as_the_float_would() {
        for n in [
            0, 1, 10, 1_234, 2_500, 10_000, 250_000, 333_333, 999_999, 1_000_000,
        ] {
            assert_eq!(
                super::percent_of_million(n),
                format!("{}", f64::from(n) / 10_000.0),
                "{n}"
            );
        }
    }
}
