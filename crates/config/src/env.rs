//! The single-issuer configuration from environment variables: each read by its row of the settings
//! table ([`crate::table`]), which alone spells the names (the seed-compatible secret and port
//! variables included).

use std::path::Path;

use jwtv_verifier::{Algorithm, KeySet, Policy};

use crate::AccessField;
use jwtv_service::gateway::{Access, ClaimHeader, ClaimRequirement, NamedPolicy, Requirements};

use super::check_policy_name;
use super::keys::{self, SecretError};
use super::shared::{self, Place, Raw, Reader};
use super::table::{self, Setting};
use super::{
    ConfigError, EnvFn, IssuerConfig, IssuerKeys, Loaded, ReadFileFn, RemoteField, Shared,
    assemble, check_allow_list, non_empty, parse_algorithm, read_error, read_seed, remote_location,
    seed_without_remote,
};

/// Typed access to environment variables by row; every error names the variable.
pub(crate) struct Vars<'a> {
    get: EnvFn<'a>,
    read_file: Option<ReadFileFn<'a>>,
}

impl<'a> Vars<'a> {
    #[cfg_attr(not(feature = "toml"), allow(dead_code))]
    pub(crate) fn new(get: EnvFn<'a>) -> Vars<'a> {
        Vars {
            get,
            read_file: None,
        }
    }

    fn with_files(get: EnvFn<'a>, read_file: ReadFileFn<'a>) -> Vars<'a> {
        Vars {
            get,
            read_file: Some(read_file),
        }
    }

    /// The raw value of any variable (`secret_env` names one), `Some("")` included.
    pub(crate) fn raw(&self, name: &str) -> Option<String> {
        (self.get)(name)
    }

    /// A row's value, with empty counted as unset.
    pub(crate) fn string(&self, row: &Setting) -> Option<String> {
        self.named(row.var())
    }

    fn named(&self, name: &str) -> Option<String> {
        non_empty((self.get)(name))
    }

    /// A comma-separated list; blanks around items and empty items are dropped.
    fn list(&self, name: &str) -> Vec<String> {
        self.named(name).map(|v| split_list(&v)).unwrap_or_default()
    }

    /// Scopes are space-delimited in OAuth; commas are accepted too.
    fn scopes(&self, name: &str) -> Vec<String> {
        self.list(name)
            .iter()
            .flat_map(|s| s.split_whitespace().map(str::to_owned))
            .collect()
    }

    fn algorithms(&self, row: &Setting) -> Result<Vec<Algorithm>, ConfigError> {
        self.list(row.var())
            .iter()
            .map(|a| parse_algorithm(a).map_err(|m| ConfigError::env(row.var(), m)))
            .collect()
    }

    fn raw_of(&self, row: &Setting, value: Option<String>) -> Option<Raw<String>> {
        value.map(|value| Raw {
            value,
            place: Place::Env(row.var()),
        })
    }
}

impl Reader for Vars<'_> {
    fn text(&self, row: &Setting) -> Result<Option<Raw<String>>, ConfigError> {
        Ok(self.raw_of(row, self.string(row)))
    }

    fn verbatim(&self, row: &Setting) -> Result<Option<Raw<String>>, ConfigError> {
        Ok(self.raw_of(row, self.raw(row.var()).filter(|v| !v.is_empty())))
    }

    fn int(&self, row: &Setting) -> Result<Option<Raw<u64>>, ConfigError> {
        let what = match row.kind {
            table::Kind::Int(int) => int.what,
            _ => "units",
        };
        self.text(row)?
            .map(|raw| match raw.value.trim().parse::<u64>() {
                Ok(value) => Ok(Raw {
                    value,
                    place: raw.place,
                }),
                Err(_) => Err(raw
                    .place
                    .err(format!("{:?} is not a whole number of {what}", raw.value))),
            })
            .transpose()
    }

    fn flag(&self, row: &Setting) -> Result<Option<Raw<bool>>, ConfigError> {
        self.text(row)?
            .map(|raw| match parse_bool(&raw.value) {
                Some(value) => Ok(Raw {
                    value,
                    place: raw.place,
                }),
                None => Err(raw
                    .place
                    .err(format!("{:?} is not true or false", raw.value))),
            })
            .transpose()
    }

    fn fraction(&self, row: &Setting) -> Result<Option<Raw<(f64, String)>>, ConfigError> {
        self.text(row)?
            .map(|raw| match raw.value.trim().parse::<f64>() {
                Ok(value) => Ok(Raw {
                    value: (value, raw.value.trim().to_owned()),
                    place: raw.place,
                }),
                Err(_) => Err(raw.place.err(format!("{:?} is not a number", raw.value))),
            })
            .transpose()
    }

    #[cfg(feature = "bindings")]
    fn list(&self, row: &Setting) -> Result<Option<Raw<Vec<String>>>, ConfigError> {
        Ok(self.text(row)?.map(|raw| Raw {
            value: split_list(&raw.value),
            place: raw.place,
        }))
    }

    fn read(&self, raw: &Raw<String>) -> Result<(String, Vec<u8>), ConfigError> {
        let path = raw.value.clone();
        match self.read_file {
            Some(read_file) => read_file(Path::new(&path))
                .map(|bytes| (path.clone(), bytes))
                .map_err(|e| raw.place.err(read_error(&path, &e))),
            None => Err(raw.place.err("files cannot be read here")),
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
    let vars = Vars::with_files(env, read_file);
    let (mut shared, allow_weak) = shared::shared(&vars, &vars)?;
    gateway(&vars, &mut shared)?;
    let policy = policy(&vars)?;
    let read = |row: &Setting, path: String| {
        read_file(Path::new(&path)).map_err(|e| ConfigError::env(row.var(), read_error(&path, &e)))
    };

    let location = remote_location(
        vars.string(&table::JWKS_URI).as_deref(),
        vars.flag(&table::OIDC_DISCOVERY)?
            .is_some_and(|raw| raw.value),
        policy.issuer.as_deref(),
        shared.server.fetch.allow_http_loopback,
        (
            table::JWKS_URI.var(),
            &format!("{}=true", table::OIDC_DISCOVERY.var()),
            table::ISSUER.var(),
        ),
    )
    .map_err(|(field, m)| match field {
        RemoteField::JwksUri => ConfigError::env(table::JWKS_URI.var(), m),
        RemoteField::Discovery => ConfigError::env(table::OIDC_DISCOVERY.var(), m),
    })?;
    let seed_path = vars.string(&table::JWKS_SEED_FILE);
    if location.is_none() && seed_path.is_some() {
        return Err(ConfigError::env(
            table::JWKS_SEED_FILE.var(),
            seed_without_remote(),
        ));
    }
    if let Some(location) = location {
        let seed = match seed_path {
            Some(path) => Some(
                read_seed(&read(&table::JWKS_SEED_FILE, path)?)
                    .map_err(|m| ConfigError::env(table::JWKS_SEED_FILE.var(), m))?,
            ),
            None => None,
        };
        let remote_var = match location {
            super::RemoteLocation::JwksUri(_) => table::JWKS_URI.var(),
            super::RemoteLocation::Discovery { .. } => table::OIDC_DISCOVERY.var(),
        };
        // One source of truth per issuer: mixing a fetched set with configured keys would keep
        // accepting a configured key after the provider rotated it out.
        for row in STATIC_KEYS {
            if vars.string(&row).is_some() {
                return Err(ConfigError::env(
                    row.var(),
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
            |m| ConfigError::env(table::ISSUER.var(), m),
        );
    }

    let mut warnings = Vec::new();
    let mut secrets = Vec::new();
    let mut set = KeySet::default();

    let jwks = match (vars.string(&table::JWKS), vars.string(&table::JWKS_FILE)) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::env(
                table::JWKS_FILE.var(),
                format!(
                    "set either {} or {}, not both",
                    table::JWKS.var(),
                    table::JWKS_FILE.var()
                ),
            ));
        }
        (Some(inline), None) => Some((&table::JWKS, inline.into_bytes())),
        (None, Some(path)) => Some((&table::JWKS_FILE, read(&table::JWKS_FILE, path)?)),
        (None, None) => None,
    };
    if let Some((row, document)) = jwks {
        let imported =
            keys::jwks(&document, allow_weak).map_err(|m| ConfigError::env(row.var(), m))?;
        if let Some(weak) = imported.weak {
            warnings.push(weak_warning(row.var(), &weak));
        }
        set = imported.set;
        secrets.extend(imported.secrets);
    }

    let secret = match (
        vars.string(&table::SECRET),
        vars.string(&table::SECRET_FILE),
    ) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::env(
                table::SECRET_FILE.var(),
                format!(
                    "set either {} or {}, not both",
                    table::SECRET.var(),
                    table::SECRET_FILE.var()
                ),
            ));
        }
        // The exact bytes, as the replaced service used them.
        (Some(_), None) => vars
            .raw(table::SECRET.var())
            .map(|s| (&table::SECRET, s.into_bytes())),
        (None, Some(path)) => Some((
            &table::SECRET_FILE,
            strip_final_newline(read(&table::SECRET_FILE, path)?),
        )),
        (None, None) => None,
    };
    if let Some((row, bytes)) = secret {
        let var = row.var();
        let imported =
            keys::secret(bytes, &policy.algorithms, allow_weak).map_err(|e| match e {
                SecretError::Weak(m) => ConfigError::env(
                    var,
                    format!(
                        "{m}; use a longer secret or set {}=1",
                        table::ALLOW_WEAK_SECRET.var()
                    ),
                ),
                SecretError::NoHmacAlgorithm => ConfigError::env(
                    var,
                    format!(
                        "an HMAC secret is configured but {} lists no HS algorithm",
                        table::ALGORITHMS.var()
                    ),
                ),
                SecretError::Key(m) => ConfigError::env(var, m),
            })?;
        if let Some(weak) = imported.weak {
            warnings.push(weak_warning(var, &weak));
        }
        set.push(imported.key);
        secrets.push(imported.secret);
    }

    if let Some(path) = vars.string(&table::PUBLIC_KEY_FILE) {
        let pem = read(&table::PUBLIC_KEY_FILE, path)?;
        let key = keys::pem(&pem, None, None)
            .map_err(|m| ConfigError::env(table::PUBLIC_KEY_FILE.var(), m))?;
        set.push(key);
    }

    if set.is_empty() {
        if vars.raw(table::SECRET.var()).is_some() {
            return Err(ConfigError::env(
                table::SECRET.var(),
                "is set but empty; give a secret of at least 32 bytes",
            ));
        }
        return Err(ConfigError::NoKey);
    }
    let unserved = check_allow_list(&policy, &set)
        .map_err(|m| ConfigError::env(table::ALGORITHMS.var(), m))?;
    for alg in unserved {
        warnings.push(format!(
            "{}: no configured key can verify {alg}; tokens signed with it will be refused",
            table::ALGORITHMS.var()
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
        |m| ConfigError::env(table::ISSUER.var(), m),
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
        issuer: vars.string(&table::ISSUER).map(|s| s.trim().to_owned()),
        allowed_tenants: vars.list(table::ALLOWED_TENANTS.var()),
        audiences: vars.list(table::AUDIENCE.var()),
        algorithms: vars.algorithms(&table::ALGORITHMS)?,
        max_age_secs: shared::bounded(vars, &table::MAX_AGE)?.map(|raw| raw.value),
        required_claims: vars.list(table::REQUIRED_CLAIMS.var()),
        required_scopes: vars.scopes(table::REQUIRED_SCOPES.var()),
        ..Policy::default()
    };
    if let Some(raw) = shared::bounded(vars, &table::LEEWAY)? {
        policy.leeway_secs = raw.value;
    }
    let types = vars.list(table::TYPES.var());
    if !types.is_empty() {
        policy.types = types;
    }
    if let Some(raw) = vars.flag(&table::REQUIRE_EXP)? {
        policy.require_exp = raw.value;
    }
    super::check_template(&policy, (table::ISSUER.var(), table::ALLOWED_TENANTS.var()))
        .map_err(|(var, m)| ConfigError::env(var, m))?;
    Ok(policy)
}

/// Identity headers and named policies (forward auth).
fn gateway(vars: &Vars<'_>, shared: &mut Shared) -> Result<(), ConfigError> {
    if let Some(spec) = vars.string(&table::CLAIM_HEADERS) {
        shared.options.gateway.claim_headers = ClaimHeader::parse_list(&spec)
            .map_err(|m| ConfigError::env(table::CLAIM_HEADERS.var(), m))?;
    }
    shared.options.gateway.access = access(vars, None)?;
    for name in vars.list(table::POLICIES.var()) {
        shared
            .options
            .gateway
            .policies
            .push(named_policy(vars, &name)?);
    }
    Ok(())
}

/// The rows that configure keys directly (as opposed to fetching them).
const STATIC_KEYS: [Setting; 5] = [
    table::SECRET,
    table::SECRET_FILE,
    table::JWKS,
    table::JWKS_FILE,
    table::PUBLIC_KEY_FILE,
];

/// A named policy from its templated rows (`JWT_POLICY_<NAME>_SCOPES`…), so the component, which has
/// no configuration file, can serve `/policy/{name}/auth` too.
fn named_policy(vars: &Vars<'_>, name: &str) -> Result<NamedPolicy, ConfigError> {
    check_policy_name(name).map_err(|m| ConfigError::env(table::POLICIES.var(), m))?;
    let claims_var = table::POLICY_CLAIMS.for_policy(name);
    let claims = ClaimRequirement::parse_list(&vars.named(&claims_var).unwrap_or_default())
        .map_err(|m| ConfigError::env(&claims_var, m))?;
    Ok(NamedPolicy {
        name: name.to_owned(),
        requirements: Requirements {
            issuers: vars.list(&table::POLICY_ISSUERS.for_policy(name)),
            audiences: vars.list(&table::POLICY_AUDIENCES.for_policy(name)),
            scopes: vars.scopes(&table::POLICY_SCOPES.for_policy(name)),
            claims,
        },
        access: access(vars, Some(name))?,
    })
}

/// A policy's token sources, anonymous switch and rule: the `JWT_*` rows for the default policy, the
/// `JWT_POLICY_<NAME>_*` ones for a named policy.
fn access(vars: &Vars<'_>, policy: Option<&str>) -> Result<Access, ConfigError> {
    let var = |default: &Setting, named: &Setting| match policy {
        Some(name) => named.for_policy(name),
        None => default.var().to_owned(),
    };
    let sources = var(&table::TOKEN_SOURCES, &table::POLICY_TOKEN_SOURCES);
    let anonymous = var(&table::ANONYMOUS, &table::POLICY_ANONYMOUS);
    let dpop = var(&table::DPOP, &table::POLICY_DPOP);
    let rule = var(&table::RULE, &table::POLICY_RULE);
    crate::access(
        policy,
        vars.named(&sources).as_deref(),
        vars.named(&anonymous).as_deref(),
        vars.named(&dpop).as_deref(),
        vars.raw(&rule).as_deref(),
    )
    .map_err(|(field, m)| {
        let name = match field {
            AccessField::TokenSources => sources.clone(),
            AccessField::Anonymous => anonymous.clone(),
            AccessField::Dpop => dpop.clone(),
            AccessField::Rule => rule.clone(),
        };
        ConfigError::env(name, m)
    })
}
