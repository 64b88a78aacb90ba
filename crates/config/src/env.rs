//! The single-issuer configuration from `JWT_*` environment variables (and the seed-compatible
//! `JWT_SECRET` and `PORT`).

use std::path::Path;

use jwtv_verifier::{Algorithm, KeySet, Policy};

use jwtv_service::gateway::{ClaimHeader, ClaimRequirement, NamedPolicy, Requirements};

use super::check_policy_name;
use super::keys::{self, SecretError};
use super::{
    CaBundle, ConfigError, EnvFn, FetchField, FetchInput, IssuerConfig, IssuerKeys, Loaded,
    ReadFileFn, RemoteField, SEED_WITHOUT_REMOTE, Shared, assemble, check_allow_list, check_listen,
    check_log_refusals_per_sec, check_log_sample, check_max_connections, check_realm,
    check_timeout_secs, check_token_cache_size, non_empty, parse_algorithm, parse_logged_decisions,
    read_error, read_seed, remote_location, settle_first_byte_timeout,
};

/// Largest body or token limit accepted: far above any real token, low enough that a typo cannot
/// let one request claim gigabytes.
pub(crate) const MAX_SIZE_LIMIT: usize = 64 * 1024 * 1024;

/// Typed access to environment variables; every error names the variable.
pub(crate) struct Vars<'a> {
    get: EnvFn<'a>,
}

impl<'a> Vars<'a> {
    pub(crate) fn new(get: EnvFn<'a>) -> Vars<'a> {
        Vars { get }
    }

    /// The raw value, `Some("")` included.
    pub(crate) fn raw(&self, name: &str) -> Option<String> {
        (self.get)(name)
    }

    /// The value, with empty counted as unset.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        non_empty((self.get)(name))
    }

    /// A comma-separated list; blanks around items and empty items are dropped.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.string(name)
            .map(|v| split_list(&v))
            .unwrap_or_default()
    }

    /// Scopes are space-delimited in OAuth; commas are accepted too.
    pub(crate) fn scopes(&self, name: &str) -> Vec<String> {
        self.list(name)
            .iter()
            .flat_map(|s| s.split_whitespace().map(str::to_owned))
            .collect()
    }

    pub(crate) fn seconds(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        self.string(name)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    ConfigError::env(name, format!("{v:?} is not a whole number of seconds"))
                })
            })
            .transpose()
    }

    /// A whole number of `what` (entries, connections), unchecked.
    pub(crate) fn count(&self, name: &str, what: &str) -> Result<Option<usize>, ConfigError> {
        self.string(name)
            .map(|v| {
                v.trim().parse::<usize>().map_err(|_| {
                    ConfigError::env(name, format!("{v:?} is not a whole number of {what}"))
                })
            })
            .transpose()
    }

    pub(crate) fn size(&self, name: &str) -> Result<Option<usize>, ConfigError> {
        self.string(name)
            .map(|v| {
                let n = v.trim().parse::<usize>().map_err(|_| {
                    ConfigError::env(name, format!("{v:?} is not a whole number of bytes"))
                })?;
                check_size(n).map_err(|m| ConfigError::env(name, m))
            })
            .transpose()
    }

    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        self.string(name)
            .map(|v| {
                parse_bool(&v)
                    .ok_or_else(|| ConfigError::env(name, format!("{v:?} is not true or false")))
            })
            .transpose()
    }

    pub(crate) fn algorithms(&self, name: &str) -> Result<Vec<Algorithm>, ConfigError> {
        self.list(name)
            .iter()
            .map(|a| parse_algorithm(a).map_err(|m| ConfigError::env(name, m)))
            .collect()
    }

    /// `JWT_LISTEN` (host:port) or else `PORT` (all interfaces), when either is set.
    pub(crate) fn listen(&self) -> Result<Option<String>, ConfigError> {
        if let Some(listen) = self.string("JWT_LISTEN") {
            return check_listen(&listen)
                .map(Some)
                .map_err(|m| ConfigError::env("JWT_LISTEN", m));
        }
        match self.string("PORT") {
            None => Ok(None),
            Some(port) => match port.trim().parse::<u16>() {
                Ok(port) => Ok(Some(format!("0.0.0.0:{port}"))),
                Err(_) => Err(ConfigError::env(
                    "PORT",
                    format!("{port:?} is not a port number (0 to 65535)"),
                )),
            },
        }
    }
}

pub(crate) fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub(crate) fn check_size(n: usize) -> Result<usize, String> {
    if (1..=MAX_SIZE_LIMIT).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} is out of range: use 1 to {MAX_SIZE_LIMIT} bytes"
        ))
    }
}

/// A secret file keeps its bytes, except one final line break: `echo secret > file` must mean `secret`.
pub(crate) fn strip_final_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    bytes
}

pub(super) fn load(env: EnvFn<'_>, read_file: ReadFileFn<'_>) -> Result<Loaded, ConfigError> {
    let vars = Vars::new(env);
    let mut shared = shared(&vars)?;
    let policy = policy(&vars)?;
    let allow_weak = vars.bool("JWT_ALLOW_WEAK_SECRET")?.unwrap_or(false);
    let read = |var: &str, path: String| {
        read_file(Path::new(&path)).map_err(|e| ConfigError::env(var, read_error(&path, &e)))
    };
    if let Some(path) = vars.string("JWT_FETCH_CA_FILE") {
        let pem = read("JWT_FETCH_CA_FILE", path.clone())?;
        shared.server.fetch.ca_bundle = Some(CaBundle {
            setting: "JWT_FETCH_CA_FILE".to_owned(),
            path,
            pem,
        });
    }

    let location = remote_location(
        vars.string("JWT_JWKS_URI").as_deref(),
        vars.bool("JWT_OIDC_DISCOVERY")?.unwrap_or(false),
        policy.issuer.as_deref(),
        shared.server.fetch.allow_http_loopback,
        ("JWT_JWKS_URI", "JWT_OIDC_DISCOVERY=true", "JWT_ISSUER"),
    )
    .map_err(|(field, m)| match field {
        RemoteField::JwksUri => ConfigError::env("JWT_JWKS_URI", m),
        RemoteField::Discovery => ConfigError::env("JWT_OIDC_DISCOVERY", m),
    })?;
    let seed_path = vars.string("JWT_JWKS_SEED_FILE");
    if location.is_none() && seed_path.is_some() {
        return Err(ConfigError::env("JWT_JWKS_SEED_FILE", SEED_WITHOUT_REMOTE));
    }
    if let Some(location) = location {
        let seed = match seed_path {
            Some(path) => Some(
                read_seed(&read("JWT_JWKS_SEED_FILE", path)?)
                    .map_err(|m| ConfigError::env("JWT_JWKS_SEED_FILE", m))?,
            ),
            None => None,
        };
        let remote_var = match location {
            super::RemoteLocation::JwksUri(_) => "JWT_JWKS_URI",
            super::RemoteLocation::Discovery { .. } => "JWT_OIDC_DISCOVERY",
        };
        // One source of truth per issuer: mixing a fetched set with configured keys would keep
        // accepting a configured key after the provider rotated it out.
        for var in STATIC_KEY_VARS {
            if vars.string(var).is_some() {
                return Err(ConfigError::env(
                    var,
                    format!(
                        "cannot be combined with {remote_var}: a remote issuer's keys all come from its \
                         key set (configure another issuer in a file for other keys)"
                    ),
                ));
            }
        }
        let issuer = IssuerConfig {
            policy,
            keys: IssuerKeys::Remote {
                location,
                configured_at: remote_var.to_owned(),
                seed,
            },
            secrets: Vec::new(),
        };
        return assemble(
            vec![issuer],
            shared,
            Vec::new(),
            "environment variables",
            |m| ConfigError::env("JWT_ISSUER", m),
        );
    }

    let mut warnings = Vec::new();
    let mut secrets = Vec::new();
    let mut set = KeySet::default();

    let jwks = match (vars.string("JWT_JWKS"), vars.string("JWT_JWKS_FILE")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::env(
                "JWT_JWKS_FILE",
                "set either JWT_JWKS or JWT_JWKS_FILE, not both",
            ));
        }
        (Some(inline), None) => Some(("JWT_JWKS", inline.into_bytes())),
        (None, Some(path)) => Some(("JWT_JWKS_FILE", read("JWT_JWKS_FILE", path)?)),
        (None, None) => None,
    };
    if let Some((var, document)) = jwks {
        let imported = keys::jwks(&document, allow_weak).map_err(|m| ConfigError::env(var, m))?;
        if let Some(weak) = imported.weak {
            warnings.push(weak_warning(var, &weak));
        }
        set = imported.set;
        secrets.extend(imported.secrets);
    }

    let secret = match (vars.string("JWT_SECRET"), vars.string("JWT_SECRET_FILE")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::env(
                "JWT_SECRET_FILE",
                "set either JWT_SECRET or JWT_SECRET_FILE, not both",
            ));
        }
        // The exact bytes, as the replaced service used them.
        (Some(_), None) => vars
            .raw("JWT_SECRET")
            .map(|s| ("JWT_SECRET", s.into_bytes())),
        (None, Some(path)) => Some((
            "JWT_SECRET_FILE",
            strip_final_newline(read("JWT_SECRET_FILE", path)?),
        )),
        (None, None) => None,
    };
    if let Some((var, bytes)) = secret {
        let imported =
            keys::secret(bytes, &policy.algorithms, allow_weak).map_err(|e| match e {
                SecretError::Weak(m) => ConfigError::env(
                    var,
                    format!("{m}; use a longer secret or set JWT_ALLOW_WEAK_SECRET=1"),
                ),
                SecretError::NoHmacAlgorithm => ConfigError::env(
                    var,
                    "an HMAC secret is configured but JWT_ALGORITHMS lists no HS algorithm",
                ),
                SecretError::Key(m) => ConfigError::env(var, m),
            })?;
        if let Some(weak) = imported.weak {
            warnings.push(weak_warning(var, &weak));
        }
        set.push(imported.key);
        secrets.push(imported.secret);
    }

    if let Some(path) = vars.string("JWT_PUBLIC_KEY_FILE") {
        let pem = read("JWT_PUBLIC_KEY_FILE", path)?;
        let key =
            keys::pem(&pem, None, None).map_err(|m| ConfigError::env("JWT_PUBLIC_KEY_FILE", m))?;
        set.push(key);
    }

    if set.is_empty() {
        if vars.raw("JWT_SECRET").is_some() {
            return Err(ConfigError::env(
                "JWT_SECRET",
                "is set but empty; give a secret of at least 32 bytes",
            ));
        }
        return Err(ConfigError::NoKey);
    }
    let unserved =
        check_allow_list(&policy, &set).map_err(|m| ConfigError::env("JWT_ALGORITHMS", m))?;
    for alg in unserved {
        warnings.push(format!(
            "JWT_ALGORITHMS: no configured key can verify {alg}; tokens signed with it will be refused"
        ));
    }
    let issuer = IssuerConfig {
        policy,
        keys: IssuerKeys::Static(set),
        secrets,
    };
    assemble(
        vec![issuer],
        shared,
        warnings,
        "environment variables",
        |m| ConfigError::env("JWT_ISSUER", m),
    )
}

fn weak_warning(var: &str, shortfall: &str) -> String {
    format!(
        "{var}: {shortfall}; accepted only because the weak-secret override is set \
         (anyone who guesses the secret can mint tokens: use a longer one)"
    )
}

fn policy(vars: &Vars<'_>) -> Result<Policy, ConfigError> {
    let mut policy = Policy {
        issuer: vars.string("JWT_ISSUER").map(|s| s.trim().to_owned()),
        allowed_tenants: vars.list("JWT_ALLOWED_TENANTS"),
        audiences: vars.list("JWT_AUDIENCE"),
        algorithms: vars.algorithms("JWT_ALGORITHMS")?,
        max_age_secs: vars.seconds("JWT_MAX_AGE")?,
        required_claims: vars.list("JWT_REQUIRED_CLAIMS"),
        required_scopes: vars.scopes("JWT_REQUIRED_SCOPES"),
        ..Policy::default()
    };
    if let Some(leeway) = vars.seconds("JWT_LEEWAY")? {
        policy.leeway_secs = leeway;
    }
    let types = vars.list("JWT_TYPES");
    if !types.is_empty() {
        policy.types = types;
    }
    if let Some(require) = vars.bool("JWT_REQUIRE_EXP")? {
        policy.require_exp = require;
    }
    super::check_template(&policy, ("JWT_ISSUER", "JWT_ALLOWED_TENANTS"))
        .map_err(|(var, m)| ConfigError::env(var, m))?;
    Ok(policy)
}

fn shared(vars: &Vars<'_>) -> Result<Shared, ConfigError> {
    let mut shared = Shared::default();
    if let Some(listen) = vars.listen()? {
        shared.server.listen = listen;
    }
    if let Some(n) = vars.size("JWT_MAX_BODY_BYTES")? {
        shared.options.max_body_bytes = n;
    }
    if let Some(n) = vars.size("JWT_MAX_TOKEN_BYTES")? {
        shared.limits.max_token_bytes = n;
    }
    if let Some(expose) = vars.bool("JWT_EXPOSE_ERRORS")? {
        shared.options.expose_descriptions = expose;
    }
    if let Some(realm) = vars.raw("JWT_REALM").filter(|r| !r.is_empty()) {
        shared.options.realm = check_realm(&realm).map_err(|m| ConfigError::env("JWT_REALM", m))?;
    }
    if let Some(spec) = vars.string("JWT_CLAIM_HEADERS") {
        shared.options.gateway.claim_headers =
            ClaimHeader::parse_list(&spec).map_err(|m| ConfigError::env("JWT_CLAIM_HEADERS", m))?;
    }
    for name in vars.list("JWT_POLICIES") {
        shared
            .options
            .gateway
            .policies
            .push(named_policy(vars, &name)?);
    }
    if let Some(n) = vars.count("JWT_TOKEN_CACHE_SIZE", "entries")? {
        shared.server.token_cache_size =
            check_token_cache_size(n).map_err(|m| ConfigError::env("JWT_TOKEN_CACHE_SIZE", m))?;
    }
    if let Some(secs) = vars.seconds("JWT_REQUEST_TIMEOUT")? {
        shared.server.request_timeout =
            check_timeout_secs(secs).map_err(|m| ConfigError::env("JWT_REQUEST_TIMEOUT", m))?;
    }
    settle_first_byte_timeout(&mut shared.server, vars.seconds("JWT_FIRST_BYTE_TIMEOUT")?)
        .map_err(|m| ConfigError::env("JWT_FIRST_BYTE_TIMEOUT", m))?;
    if let Some(n) = vars.count("JWT_MAX_CONNECTIONS", "connections")? {
        shared.server.max_connections =
            Some(check_max_connections(n).map_err(|m| ConfigError::env("JWT_MAX_CONNECTIONS", m))?);
    }
    if let Some(value) = vars.string("JWT_LOG_DECISIONS") {
        shared.server.decision_log.which =
            parse_logged_decisions(&value).map_err(|m| ConfigError::env("JWT_LOG_DECISIONS", m))?;
    }
    if let Some(value) = vars.string("JWT_LOG_SAMPLE") {
        let rate = value.trim().parse::<f64>().map_err(|_| {
            ConfigError::env("JWT_LOG_SAMPLE", format!("{value:?} is not a number"))
        })?;
        shared.server.decision_log.sample_per_million =
            check_log_sample(rate).map_err(|m| ConfigError::env("JWT_LOG_SAMPLE", m))?;
    }
    if let Some(n) = vars.count("JWT_LOG_REFUSALS_PER_SEC", "lines a second")? {
        shared.server.decision_log.refusals_per_sec = check_log_refusals_per_sec(n)
            .map_err(|m| ConfigError::env("JWT_LOG_REFUSALS_PER_SEC", m))?;
    }
    let fetch = FetchInput {
        allow_http_loopback: vars.bool("JWT_ALLOW_HTTP_LOOPBACK")?,
        timeout_secs: vars.seconds("JWT_FETCH_TIMEOUT")?,
        max_bytes: vars.size("JWT_FETCH_MAX_BYTES")?,
        min_ttl_secs: vars.seconds("JWT_JWKS_MIN_TTL")?,
        max_ttl_secs: vars.seconds("JWT_JWKS_MAX_TTL")?,
        default_ttl_secs: vars.seconds("JWT_JWKS_DEFAULT_TTL")?,
        refetch_cooldown_secs: vars.seconds("JWT_JWKS_REFETCH_COOLDOWN")?,
        refetch_wait_ms: vars
            .count("JWT_JWKS_REFETCH_WAIT_MS", "milliseconds")?
            .map(|ms| ms as u64),
    };
    shared.server.fetch = fetch.settings().map_err(|(field, m)| {
        let var = match field {
            FetchField::Timeout => "JWT_FETCH_TIMEOUT",
            FetchField::MaxBytes => "JWT_FETCH_MAX_BYTES",
            FetchField::MinTtl => "JWT_JWKS_MIN_TTL",
            FetchField::MaxTtl => "JWT_JWKS_MAX_TTL",
            FetchField::DefaultTtl => "JWT_JWKS_DEFAULT_TTL",
            FetchField::RefetchCooldown => "JWT_JWKS_REFETCH_COOLDOWN",
            FetchField::RefetchWait => "JWT_JWKS_REFETCH_WAIT_MS",
        };
        ConfigError::env(var, m)
    })?;
    Ok(shared)
}

/// The variables that configure keys directly (as opposed to fetching them).
const STATIC_KEY_VARS: [&str; 5] = [
    "JWT_SECRET",
    "JWT_SECRET_FILE",
    "JWT_JWKS",
    "JWT_JWKS_FILE",
    "JWT_PUBLIC_KEY_FILE",
];

/// A named policy from `JWT_POLICY_<NAME>_{ISSUERS,AUDIENCES,SCOPES,CLAIMS}`, so the component, which
/// has no configuration file, can serve `/policy/{name}/auth` too.
fn named_policy(vars: &Vars<'_>, name: &str) -> Result<NamedPolicy, ConfigError> {
    check_policy_name(name).map_err(|m| ConfigError::env("JWT_POLICIES", m))?;
    let prefix = format!("JWT_POLICY_{}", name.to_ascii_uppercase().replace('-', "_"));
    let var = |suffix: &str| format!("{prefix}_{suffix}");
    let claims_var = var("CLAIMS");
    let claims = ClaimRequirement::parse_list(&vars.string(&claims_var).unwrap_or_default())
        .map_err(|m| ConfigError::env(&claims_var, m))?;
    Ok(NamedPolicy {
        name: name.to_owned(),
        requirements: Requirements {
            issuers: vars.list(&var("ISSUERS")),
            audiences: vars.list(&var("AUDIENCES")),
            scopes: vars.scopes(&var("SCOPES")),
            claims,
        },
    })
}
