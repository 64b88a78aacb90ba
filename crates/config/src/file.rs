//! The TOML configuration file: server settings and any number of issuers, each with its keys and policy.
//!
//! ```toml
//! [server]
//! listen = "0.0.0.0:3000"
//!
//! [[issuers]]
//! issuer = "https://login.example.com"
//! audiences = ["api"]
//! algorithms = ["RS256"]
//! jwks_file = "keys/login.json"      # relative to this file's directory
//!
//! [[issuers]]
//! issuer = "internal"
//! secret_env = "INTERNAL_JWT_SECRET"
//!
//! [[issuers]]
//! issuer = "https://idp.example.com/realms/main"
//! discovery = true                   # or jwks_uri = "https://idp.example.com/keys"
//!
//! [fetch]                            # remote key sets
//! timeout_secs = 5
//! refetch_cooldown_secs = 30
//! refetch_wait_ms = 1000
//! ca_file = "internal-ca.pem"        # PEM CA certificates trusted beside the Mozilla roots
//!
//! [gateway]                          # forward-auth mode (/auth)
//! claim_headers = { "X-Auth-Email" = "email", "X-Auth-Roles" = "realm_access.roles" }
//!
//! [policies.admin]                   # served at /policy/admin/auth
//! audiences = ["api"]
//! scopes = ["admin"]
//! claims = { email_verified = true }
//! ```

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use jwtv_service::gateway::{ClaimHeader, ClaimRequirement, Gateway, NamedPolicy, Requirements};
use jwtv_verifier::{KeySet, Policy};
use serde::Deserialize;

use super::env::{Vars, check_size, strip_final_newline};
use super::keys::{self, SecretError};
use super::{
    CaBundle, ConfigError, ENV_VARS, EnvFn, FetchField, FetchInput, IssuerConfig, IssuerKeys,
    Loaded, ReadFileFn, RemoteField, RemoteLocation, SEED_WITHOUT_REMOTE, Shared, assemble,
    check_allow_list, check_listen, check_log_refusals_per_sec, check_log_sample,
    check_max_connections, check_policy_name, check_realm, check_timeout_secs,
    check_token_cache_size, io_reason, one_line, parse_algorithm, parse_logged_decisions,
    read_error, read_seed, remote_location, settle_first_byte_timeout,
};

/// Deepest JSON nesting an operator may allow; far beyond any real token.
const MAX_JSON_DEPTH: usize = 128;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    issuers: Vec<IssuerSection>,
    #[serde(default)]
    gateway: GatewaySection,
    #[serde(default)]
    policies: BTreeMap<String, PolicySection>,
    #[serde(default)]
    fetch: FetchSection,
}

/// How remote key sets (`jwks_uri`, `discovery`) are fetched.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchSection {
    allow_http_loopback: Option<bool>,
    timeout_secs: Option<u64>,
    max_bytes: Option<usize>,
    min_ttl_secs: Option<u64>,
    max_ttl_secs: Option<u64>,
    default_ttl_secs: Option<u64>,
    refetch_cooldown_secs: Option<u64>,
    refetch_wait_ms: Option<u64>,
    /// PEM CA certificates trusted beside the Mozilla roots; relative to this file.
    ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewaySection {
    #[serde(default)]
    claim_headers: BTreeMap<String, String>,
    max_header_value_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySection {
    #[serde(default)]
    issuers: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// `claim = value` or `claim = [values]` (any of), or `claim = []` for presence only.
    #[serde(default)]
    claims: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<String>,
    max_body_bytes: Option<usize>,
    max_token_bytes: Option<usize>,
    max_json_depth: Option<usize>,
    expose_error_descriptions: Option<bool>,
    realm: Option<String>,
    allow_weak_secrets: Option<bool>,
    request_timeout_secs: Option<u64>,
    first_byte_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    token_cache_size: Option<usize>,
    log_decisions: Option<String>,
    log_sample: Option<f64>,
    log_refusals_per_sec: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerSection {
    issuer: Option<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    algorithms: Vec<String>,
    leeway: Option<u64>,
    require_exp: Option<bool>,
    max_age: Option<u64>,
    #[serde(default)]
    required_claims: Vec<String>,
    subject: Option<String>,
    types: Option<Vec<String>>,
    #[serde(default)]
    required_scopes: Vec<String>,
    /// With an issuer template (`{tenantid}`): the tenant ids accepted.
    #[serde(default)]
    allowed_tenants: Vec<String>,
    secret: Option<String>,
    secret_file: Option<String>,
    secret_env: Option<String>,
    jwks: Option<String>,
    jwks_file: Option<String>,
    #[serde(default)]
    public_keys: Vec<PublicKeySection>,
    jwks_uri: Option<String>,
    discovery: Option<bool>,
    jwks_seed_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeySection {
    file: String,
    kid: Option<String>,
    alg: Option<String>,
}

/// Errors about the file's content: `path: field: message`.
struct At<'a> {
    path: &'a str,
}

impl At<'_> {
    fn err(&self, field: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError::file(
            self.path,
            format!("{field}: {}", one_line(&message.to_string())),
        )
    }
}

pub(super) fn load(
    path: &str,
    env: EnvFn<'_>,
    read_file: ReadFileFn<'_>,
) -> Result<Loaded, ConfigError> {
    let bytes = read_file(Path::new(path)).map_err(|e| {
        ConfigError::file(
            path,
            format!("cannot read the configuration file: {}", io_reason(&e)),
        )
    })?;
    load_text(path, &bytes, env, read_file)
}

/// A configuration whose text is already in hand (the proxy-wasm filter's plugin configuration);
/// `path` names it in errors and anchors relative key file paths.
pub(super) fn load_text(
    path: &str,
    bytes: &[u8],
    env: EnvFn<'_>,
    read_file: ReadFileFn<'_>,
) -> Result<Loaded, ConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ConfigError::file(path, format!("not UTF-8 text (byte {})", e.valid_up_to()))
    })?;
    let config: FileConfig = toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!("{path}:{line}:{column}")
            }
            None => path.to_owned(),
        };
        ConfigError::file(location, e.message())
    })?;

    let at = At { path };
    let vars = Vars::new(env);
    let base = Path::new(path)
        .parent()
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let (mut shared, allow_weak) = shared(&config.server, &vars, &at)?;
    shared.server.fetch = fetch_settings(&config.fetch, &at)?;
    if let Some(file) = &config.fetch.ca_file {
        let pem = read_file(&base.join(file))
            .map_err(|e| at.err("fetch.ca_file", read_error(file, &e)))?;
        shared.server.fetch.ca_bundle = Some(CaBundle {
            setting: format!("fetch.ca_file in {path}"),
            path: base.join(file).display().to_string(),
            pem,
        });
    }
    shared.options.gateway = gateway(&config.gateway, &config.policies, &at)?;
    if config.issuers.is_empty() {
        return Err(ConfigError::file(
            path,
            "no [[issuers]] table: configure at least one issuer with its keys",
        ));
    }

    let mut warnings = ignored_variables(&vars, &config.issuers);
    let mut issuers = Vec::with_capacity(config.issuers.len());
    for (i, section) in config.issuers.iter().enumerate() {
        let sources = Sources {
            at: &at,
            prefix: format!("issuers[{i}]"),
            base: &base,
            vars: &vars,
            read_file,
            allow_weak,
            allow_http_loopback: shared.server.fetch.allow_http_loopback,
        };
        issuers.push(sources.issuer(section, &mut warnings)?);
    }
    assemble(issuers, shared, warnings, path, |m| {
        ConfigError::file(path, m)
    })
}

fn gateway(
    section: &GatewaySection,
    policies: &BTreeMap<String, PolicySection>,
    at: &At<'_>,
) -> Result<Gateway, ConfigError> {
    let mut gateway = Gateway::default();
    for (header, claim) in &section.claim_headers {
        let mapping = ClaimHeader::new(header, claim)
            .map_err(|m| at.err(&format!("gateway.claim_headers.{header}"), m))?;
        gateway.claim_headers.push(mapping);
    }
    if let Some(n) = section.max_header_value_bytes {
        gateway.max_header_value_bytes =
            check_size(n).map_err(|m| at.err("gateway.max_header_value_bytes", m))?;
    }
    for (name, p) in policies {
        let field = format!("policies.{name}");
        check_policy_name(name).map_err(|m| at.err(&field, m))?;
        let mut claims = Vec::with_capacity(p.claims.len());
        for (claim, value) in &p.claims {
            let values = match value {
                toml::Value::Array(items) => items.iter().map(json_value).collect::<Result<_, _>>(),
                other => json_value(other).map(|v| vec![v]),
            }
            .map_err(|m| at.err(&format!("{field}.claims.{claim}"), m))?;
            claims.push(ClaimRequirement {
                claim: claim.clone(),
                values,
            });
        }
        let requirements = Requirements {
            issuers: p.issuers.clone(),
            audiences: p.audiences.clone(),
            scopes: p.scopes.clone(),
            claims,
        };
        gateway.policies.push(NamedPolicy {
            name: name.clone(),
            requirements,
        });
    }
    Ok(gateway)
}

/// A claim value to compare with: TOML strings, integers and booleans (what tokens carry).
fn json_value(value: &toml::Value) -> Result<serde_json::Value, String> {
    match value {
        toml::Value::String(s) => Ok(serde_json::Value::from(s.as_str())),
        toml::Value::Integer(i) => Ok(serde_json::Value::from(*i)),
        toml::Value::Boolean(b) => Ok(serde_json::Value::from(*b)),
        other => Err(format!(
            "{} values cannot be compared with claims; use a string, integer or boolean",
            other.type_str()
        )),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn shared(
    server: &ServerSection,
    vars: &Vars<'_>,
    at: &At<'_>,
) -> Result<(Shared, bool), ConfigError> {
    let mut shared = Shared::default();
    // The file's address wins; without one, the platform's JWT_LISTEN or PORT still applies.
    match &server.listen {
        Some(listen) => {
            shared.server.listen = check_listen(listen).map_err(|m| at.err("server.listen", m))?
        }
        None => {
            if let Some(listen) = vars.listen()? {
                shared.server.listen = listen;
            }
        }
    }
    if let Some(n) = server.max_body_bytes {
        shared.options.max_body_bytes =
            check_size(n).map_err(|m| at.err("server.max_body_bytes", m))?;
    }
    if let Some(n) = server.max_token_bytes {
        shared.limits.max_token_bytes =
            check_size(n).map_err(|m| at.err("server.max_token_bytes", m))?;
    }
    if let Some(depth) = server.max_json_depth {
        if !(1..=MAX_JSON_DEPTH).contains(&depth) {
            return Err(at.err(
                "server.max_json_depth",
                format!("{depth} is out of range: use 1 to {MAX_JSON_DEPTH}"),
            ));
        }
        shared.limits.max_json_depth = depth;
    }
    if let Some(expose) = server.expose_error_descriptions {
        shared.options.expose_descriptions = expose;
    }
    if let Some(realm) = &server.realm {
        shared.options.realm = check_realm(realm).map_err(|m| at.err("server.realm", m))?;
    }
    if let Some(secs) = server.request_timeout_secs {
        shared.server.request_timeout =
            check_timeout_secs(secs).map_err(|m| at.err("server.request_timeout_secs", m))?;
    }
    settle_first_byte_timeout(&mut shared.server, server.first_byte_timeout_secs)
        .map_err(|m| at.err("server.first_byte_timeout_secs", m))?;
    if let Some(n) = server.max_connections {
        shared.server.max_connections =
            Some(check_max_connections(n).map_err(|m| at.err("server.max_connections", m))?);
    }
    if let Some(n) = server.token_cache_size {
        shared.server.token_cache_size =
            check_token_cache_size(n).map_err(|m| at.err("server.token_cache_size", m))?;
    }
    if let Some(value) = &server.log_decisions {
        shared.server.decision_log.which =
            parse_logged_decisions(value).map_err(|m| at.err("server.log_decisions", m))?;
    }
    if let Some(rate) = server.log_sample {
        shared.server.decision_log.sample_per_million =
            check_log_sample(rate).map_err(|m| at.err("server.log_sample", m))?;
    }
    if let Some(n) = server.log_refusals_per_sec {
        shared.server.decision_log.refusals_per_sec =
            check_log_refusals_per_sec(n).map_err(|m| at.err("server.log_refusals_per_sec", m))?;
    }
    Ok((shared, server.allow_weak_secrets.unwrap_or(false)))
}

fn fetch_settings(
    section: &FetchSection,
    at: &At<'_>,
) -> Result<super::FetchSettings, ConfigError> {
    let input = FetchInput {
        allow_http_loopback: section.allow_http_loopback,
        timeout_secs: section.timeout_secs,
        max_bytes: section.max_bytes,
        min_ttl_secs: section.min_ttl_secs,
        max_ttl_secs: section.max_ttl_secs,
        default_ttl_secs: section.default_ttl_secs,
        refetch_cooldown_secs: section.refetch_cooldown_secs,
        refetch_wait_ms: section.refetch_wait_ms,
    };
    input.settings().map_err(|(field, m)| {
        let name = match field {
            FetchField::Timeout => "fetch.timeout_secs",
            FetchField::MaxBytes => "fetch.max_bytes",
            FetchField::MinTtl => "fetch.min_ttl_secs",
            FetchField::MaxTtl => "fetch.max_ttl_secs",
            FetchField::DefaultTtl => "fetch.default_ttl_secs",
            FetchField::RefetchCooldown => "fetch.refetch_cooldown_secs",
            FetchField::RefetchWait => "fetch.refetch_wait_ms",
        };
        at.err(name, m)
    })
}

/// The file is the whole configuration; a `JWT_*` variable left in the environment would silently do
/// nothing, so say so at every start. A variable the file reads through `secret_env` is not ignored.
fn ignored_variables(vars: &Vars<'_>, issuers: &[IssuerSection]) -> Vec<String> {
    ENV_VARS
        .iter()
        .filter(|name| vars.string(name).is_some())
        .filter(|name| {
            !issuers
                .iter()
                .any(|i| i.secret_env.as_deref() == Some(**name))
        })
        .map(|name| {
            format!("{name} is set but ignored: the configuration file is the whole configuration")
        })
        .collect()
}

/// Everything needed to read one issuer's key sources.
struct Sources<'a> {
    at: &'a At<'a>,
    prefix: String,
    base: &'a Path,
    vars: &'a Vars<'a>,
    read_file: ReadFileFn<'a>,
    allow_weak: bool,
    allow_http_loopback: bool,
}

impl Sources<'_> {
    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    fn err(&self, field: &str, message: impl std::fmt::Display) -> ConfigError {
        self.at.err(&self.field(field), message)
    }

    /// Paths are relative to the configuration file, so a config directory can move as a whole.
    fn read(&self, field: &str, file: &str) -> Result<Vec<u8>, ConfigError> {
        let full: PathBuf = self.base.join(file);
        (self.read_file)(&full).map_err(|e| self.err(field, read_error(file, &e)))
    }

    fn issuer(
        &self,
        s: &IssuerSection,
        warnings: &mut Vec<String>,
    ) -> Result<IssuerConfig, ConfigError> {
        let policy = self.policy(s)?;
        if let Some(remote) = self.remote(s, &policy)? {
            return Ok(remote);
        }
        let mut secrets = Vec::new();

        let mut set = match (&s.jwks, &s.jwks_file) {
            (Some(_), Some(_)) => {
                return Err(self.err("jwks_file", "set either jwks or jwks_file, not both"));
            }
            (Some(inline), None) => Some(("jwks", inline.as_bytes().to_vec())),
            (None, Some(file)) => Some(("jwks_file", self.read("jwks_file", file)?)),
            (None, None) => None,
        }
        .map(|(field, document)| {
            let imported =
                keys::jwks(&document, self.allow_weak).map_err(|m| self.err(field, m))?;
            if let Some(weak) = imported.weak {
                warnings.push(self.weak_warning(field, &weak));
            }
            secrets.extend(imported.secrets);
            Ok::<KeySet, ConfigError>(imported.set)
        })
        .transpose()?
        .unwrap_or_default();

        let secret = match (&s.secret, &s.secret_file, &s.secret_env) {
            (None, None, None) => None,
            (Some(secret), None, None) => Some(("secret", secret.as_bytes().to_vec())),
            (None, Some(file), None) => Some((
                "secret_file",
                strip_final_newline(self.read("secret_file", file)?),
            )),
            (None, None, Some(name)) => match self.vars.raw(name) {
                Some(value) => Some(("secret_env", value.into_bytes())),
                None => {
                    return Err(self.err(
                        "secret_env",
                        format!("environment variable {name:?} is not set"),
                    ));
                }
            },
            _ => {
                return Err(self.err(
                    "secret",
                    "set only one of secret, secret_file and secret_env",
                ));
            }
        };
        if let Some((field, bytes)) = secret {
            let imported =
                keys::secret(bytes, &policy.algorithms, self.allow_weak).map_err(|e| match e {
                    SecretError::Weak(m) => self.err(
                        field,
                        format!(
                            "{m}; use a longer secret or set allow_weak_secrets = true in [server]"
                        ),
                    ),
                    SecretError::NoHmacAlgorithm => self.err(
                        field,
                        format!(
                            "an HMAC secret is configured but {} lists no HS algorithm",
                            self.field("algorithms")
                        ),
                    ),
                    SecretError::Key(m) => self.err(field, m),
                })?;
            if let Some(weak) = imported.weak {
                warnings.push(self.weak_warning(field, &weak));
            }
            set.push(imported.key);
            secrets.push(imported.secret);
        }

        for (k, public) in s.public_keys.iter().enumerate() {
            let field = format!("public_keys[{k}]");
            let alg = public
                .alg
                .as_deref()
                .map(parse_algorithm)
                .transpose()
                .map_err(|m| self.err(&format!("{field}.alg"), m))?;
            let pem = self.read(&format!("{field}.file"), &public.file)?;
            let key = keys::pem(&pem, public.kid.clone(), alg).map_err(|m| self.err(&field, m))?;
            set.push(key);
        }

        if set.is_empty() {
            return Err(self.at.err(
                &self.prefix,
                "no key configured: set secret, secret_file, secret_env, jwks, jwks_file, public_keys, \
                 jwks_uri or discovery = true",
            ));
        }
        let unserved = check_allow_list(&policy, &set).map_err(|m| self.err("algorithms", m))?;
        for alg in unserved {
            warnings.push(format!(
                "{}: {}: no configured key can verify {alg}; tokens signed with it will be refused",
                self.at.path,
                self.field("algorithms")
            ));
        }
        Ok(IssuerConfig {
            policy,
            keys: IssuerKeys::Static(set),
            secrets,
        })
    }

    /// The issuer, when its keys are fetched (`jwks_uri` or `discovery = true`).
    fn remote(
        &self,
        s: &IssuerSection,
        policy: &Policy,
    ) -> Result<Option<IssuerConfig>, ConfigError> {
        let location = remote_location(
            s.jwks_uri.as_deref(),
            s.discovery.unwrap_or(false),
            policy.issuer.as_deref(),
            self.allow_http_loopback,
            ("jwks_uri", "discovery = true", "issuer"),
        )
        .map_err(|(field, m)| match field {
            RemoteField::JwksUri => self.err("jwks_uri", m),
            RemoteField::Discovery => self.err("discovery", m),
        })?;
        let Some(location) = location else {
            if s.jwks_seed_file.is_some() {
                return Err(self.err("jwks_seed_file", SEED_WITHOUT_REMOTE));
            }
            return Ok(None);
        };
        let seed = match &s.jwks_seed_file {
            Some(file) => Some(
                read_seed(&self.read("jwks_seed_file", file)?)
                    .map_err(|m| self.err("jwks_seed_file", m))?,
            ),
            None => None,
        };
        let field = match location {
            RemoteLocation::JwksUri(_) => "jwks_uri",
            RemoteLocation::Discovery { .. } => "discovery",
        };
        // One source of truth per issuer: mixing a fetched set with configured keys would keep
        // accepting a configured key after the provider rotated it out.
        let configured = [
            ("secret", s.secret.is_some()),
            ("secret_file", s.secret_file.is_some()),
            ("secret_env", s.secret_env.is_some()),
            ("jwks", s.jwks.is_some()),
            ("jwks_file", s.jwks_file.is_some()),
            ("public_keys", !s.public_keys.is_empty()),
        ];
        if let Some((other, _)) = configured.iter().find(|(_, set)| *set) {
            return Err(self.err(
                other,
                format!(
                    "cannot be combined with {field}: a remote issuer's keys all come from its key \
                     set (configure another [[issuers]] entry for other keys)"
                ),
            ));
        }
        Ok(Some(IssuerConfig {
            policy: policy.clone(),
            keys: IssuerKeys::Remote {
                location,
                configured_at: format!("{}: {}", self.at.path, self.field(field)),
                seed,
            },
            secrets: Vec::new(),
        }))
    }

    fn weak_warning(&self, field: &str, shortfall: &str) -> String {
        format!(
            "{}: {}: {shortfall}; accepted only because allow_weak_secrets is set \
             (anyone who guesses the secret can mint tokens: use a longer one)",
            self.at.path,
            self.field(field)
        )
    }

    fn policy(&self, s: &IssuerSection) -> Result<Policy, ConfigError> {
        if s.issuer.as_deref().is_some_and(str::is_empty) {
            return Err(self.err(
                "issuer",
                "is empty; omit it to make this the default issuer",
            ));
        }
        let algorithms = s
            .algorithms
            .iter()
            .map(|a| parse_algorithm(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| self.err("algorithms", m))?;
        let defaults = Policy::default();
        let types = match &s.types {
            Some(types) if types.is_empty() => {
                return Err(self.err("types", "is empty; omit it to accept JWT, at+jwt or no typ"));
            }
            Some(types) => types.clone(),
            None => defaults.types.clone(),
        };
        let policy = Policy {
            issuer: s.issuer.clone(),
            allowed_tenants: s.allowed_tenants.clone(),
            audiences: s.audiences.clone(),
            algorithms,
            leeway_secs: s.leeway.unwrap_or(defaults.leeway_secs),
            require_exp: s.require_exp.unwrap_or(defaults.require_exp),
            max_age_secs: s.max_age,
            required_claims: s.required_claims.clone(),
            subject: s.subject.clone(),
            types,
            required_scopes: s.required_scopes.clone(),
        };
        super::check_template(&policy, ("issuer", "allowed_tenants"))
            .map_err(|(field, m)| self.err(field, m))?;
        Ok(policy)
    }
}
