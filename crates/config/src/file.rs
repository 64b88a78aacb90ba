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

use crate::AccessField;
use jwtv_service::gateway::{
    Access, ClaimHeader, ClaimRequirement, Gateway, NamedPolicy, Requirements,
};
use jwtv_verifier::{KeySet, Policy};
use serde::Deserialize;
use toml::Spanned;

use super::env::{Vars, strip_final_newline};
use super::keys::{self, SecretError};
use super::shared::{self, Place, Raw, Reader};
use super::table::{self, Kind, Setting};
use super::{
    ConfigError, EnvFn, IssuerConfig, IssuerKeys, Loaded, ReadFileFn, RemoteField, RemoteLocation,
    assemble, check_allow_list, check_policy_name, io_reason, one_line, parse_algorithm,
    read_error, read_seed, remote_location, seed_without_remote,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: Section,
    #[serde(default)]
    issuers: Vec<IssuerSection>,
    #[serde(default)]
    gateway: GatewaySection,
    #[serde(default)]
    policies: BTreeMap<String, PolicySection>,
    #[serde(default)]
    fetch: Section,
}

/// A table whose keys are rows of the settings table (`[server]`, `[fetch]`), kept raw with their
/// places until a row asks for its value.
type Section = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// The tables read by row.
const ROW_TABLES: [&str; 2] = ["server", "fetch"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewaySection {
    #[serde(default)]
    claim_headers: BTreeMap<String, String>,
    max_header_value_bytes: Option<usize>,
    /// The default policy's access (`/auth`, `POST /validate`): ordered token sources,
    /// `anonymous = "allow"`, a CEL rule.
    token_sources: Option<Vec<String>>,
    anonymous: Option<String>,
    dpop: Option<String>,
    rule: Option<String>,
}

/// A policy's token sources, anonymous switch and rule (issue 24). Not a flattened section: serde's
/// `flatten` does not work with `deny_unknown_fields`.
struct AccessFields<'a> {
    token_sources: &'a Option<Vec<String>>,
    anonymous: &'a Option<String>,
    dpop: &'a Option<String>,
    rule: &'a Option<String>,
}

impl AccessFields<'_> {
    fn access(
        &self,
        policy: Option<&str>,
        field: &str,
        at: &At<'_>,
    ) -> Result<Access, ConfigError> {
        let sources = self.token_sources.as_ref().map(|list| list.join(","));
        crate::access(
            policy,
            sources.as_deref(),
            self.anonymous.as_deref(),
            self.dpop.as_deref(),
            self.rule.as_deref(),
        )
        .map_err(|(which, m)| {
            let name = match which {
                AccessField::TokenSources => "token_sources",
                AccessField::Anonymous => "anonymous",
                AccessField::Dpop => "dpop",
                AccessField::Rule => "rule",
            };
            at.err(&format!("{field}{name}"), m)
        })
    }
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
    token_sources: Option<Vec<String>>,
    anonymous: Option<String>,
    dpop: Option<String>,
    rule: Option<String>,
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
    jwks_seed: Option<String>,
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
    let rows = Rows {
        path,
        text,
        base: &base,
        read_file,
        sections: [&config.server, &config.fetch],
    };
    rows.check_keys()?;
    let (mut shared, allow_weak) = shared::shared(&rows, &vars)?;
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
    let mut gateway = Gateway {
        access: AccessFields {
            token_sources: &section.token_sources,
            anonymous: &section.anonymous,
            dpop: &section.dpop,
            rule: &section.rule,
        }
        .access(None, "gateway.", at)?,
        ..Gateway::default()
    };
    for (header, claim) in &section.claim_headers {
        let mapping = ClaimHeader::new(header, claim)
            .map_err(|m| at.err(&format!("gateway.claim_headers.{header}"), m))?;
        gateway.claim_headers.push(mapping);
    }
    if let Some(n) = section.max_header_value_bytes {
        gateway.max_header_value_bytes = shared::check(&table::MAX_HEADER_VALUE_BYTES, n as u64)
            .map_err(|m| at.err("gateway.max_header_value_bytes", m))?
            as usize;
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
            access: AccessFields {
                token_sources: &p.token_sources,
                anonymous: &p.anonymous,
                dpop: &p.dpop,
                rule: &p.rule,
            }
            .access(Some(name), &format!("{field}."), at)?,
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

/// The file is the whole configuration; a `JWT_*` variable left in the environment would silently do
/// nothing, so say so at every start. A variable the file reads through `secret_env` is not ignored.
fn ignored_variables(vars: &Vars<'_>, issuers: &[IssuerSection]) -> Vec<String> {
    table::replaced_by_file()
        .filter(|row| vars.string(row).is_some())
        .map(|row| row.var())
        .filter(|name| {
            !issuers
                .iter()
                .any(|i| i.secret_env.as_deref() == Some(*name))
        })
        .map(|name| {
            format!("{name} is set but ignored: the configuration file is the whole configuration")
        })
        .collect()
}

/// The file's tables read by row ([`Reader`]): a value's place is its TOML path, and a type error
/// is located by line and column as the parser's own errors are.
struct Rows<'a> {
    path: &'a str,
    text: &'a str,
    base: &'a Path,
    read_file: ReadFileFn<'a>,
    /// In the order of [`ROW_TABLES`].
    sections: [&'a Section; 2],
}

impl Rows<'_> {
    /// Every key of a table read by row must be a row: an unknown key is an error, as serde's
    /// `deny_unknown_fields` makes it for the other tables.
    fn check_keys(&self) -> Result<(), ConfigError> {
        for (table_name, section) in ROW_TABLES.iter().zip(self.sections) {
            for key in section.keys() {
                let known = table::SETTINGS.iter().any(|row| {
                    row.toml_table() == Some(*table_name) && row.toml_key() == Some(key.get_ref())
                });
                if !known {
                    let expected: Vec<String> = table::SETTINGS
                        .iter()
                        .filter(|row| row.toml_table() == Some(*table_name))
                        .filter_map(|row| row.toml_key())
                        .map(|k| format!("`{k}`"))
                        .collect();
                    return Err(self.located(
                        key.span().start,
                        format!(
                            "unknown field `{}`, expected one of {}",
                            key.get_ref(),
                            expected.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn located(&self, offset: usize, message: impl std::fmt::Display) -> ConfigError {
        let (line, column) = line_column(self.text, offset);
        ConfigError::file(format!("{}:{line}:{column}", self.path), message)
    }

    /// The row's value as written, and its place.
    fn value(&self, row: &Setting) -> Option<(&Spanned<toml::Value>, Place)> {
        let table_name = row.toml_table()?;
        let key = row.toml_key()?;
        let i = ROW_TABLES.iter().position(|t| *t == table_name)?;
        let value = self.sections[i]
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v)?;
        let place = Place::File {
            path: self.path.to_owned(),
            field: format!("{table_name}.{key}"),
        };
        Some((value, place))
    }

    fn typed<T>(
        &self,
        row: &Setting,
        expected: &str,
        convert: impl Fn(&toml::Value) -> Option<T>,
    ) -> Result<Option<Raw<T>>, ConfigError> {
        let Some((value, place)) = self.value(row) else {
            return Ok(None);
        };
        match convert(value.get_ref()) {
            Some(v) => Ok(Some(Raw { value: v, place })),
            None => Err(self.located(
                value.span().start,
                format!(
                    "invalid value: {}, expected {expected}",
                    describe(value.get_ref())
                ),
            )),
        }
    }
}

/// A value in an error, as serde would name it.
fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::Integer(i) => format!("integer `{i}`"),
        toml::Value::Float(f) => format!("floating point `{f}`"),
        toml::Value::Boolean(b) => format!("boolean `{b}`"),
        toml::Value::String(s) => format!("string {s:?}"),
        other => other.type_str().to_owned(),
    }
}

impl Reader for Rows<'_> {
    fn text(&self, row: &Setting) -> Result<Option<Raw<String>>, ConfigError> {
        self.typed(row, "a string", |v| v.as_str().map(str::to_owned))
    }

    fn verbatim(&self, row: &Setting) -> Result<Option<Raw<String>>, ConfigError> {
        self.text(row)
    }

    fn int(&self, row: &Setting) -> Result<Option<Raw<u64>>, ConfigError> {
        let expected = match row.kind {
            Kind::Int(int) => format!("a whole number of {}", int.what),
            _ => "a whole number".to_owned(),
        };
        self.typed(row, &expected, |v| {
            v.as_integer().and_then(|i| u64::try_from(i).ok())
        })
    }

    fn flag(&self, row: &Setting) -> Result<Option<Raw<bool>>, ConfigError> {
        self.typed(row, "true or false", toml::Value::as_bool)
    }

    fn fraction(&self, row: &Setting) -> Result<Option<Raw<(f64, String)>>, ConfigError> {
        self.typed(row, "a number", |v| match v {
            toml::Value::Float(f) => Some((*f, f.to_string())),
            toml::Value::Integer(i) => Some((*i as f64, i.to_string())),
            _ => None,
        })
    }

    #[cfg(feature = "bindings")]
    fn list(&self, row: &Setting) -> Result<Option<Raw<Vec<String>>>, ConfigError> {
        self.typed(row, "an array of strings", |v| {
            v.as_array()?
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
    }

    /// Paths are relative to the configuration file, so a config directory can move as a whole.
    fn read(&self, raw: &Raw<String>) -> Result<(String, Vec<u8>), ConfigError> {
        let full = self.base.join(&raw.value);
        (self.read_file)(&full)
            .map(|bytes| (full.display().to_string(), bytes))
            .map_err(|e| raw.place.err(read_error(&raw.value, &e)))
    }
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
        // Inline for the filter, which reads no files; a file everywhere else. One or the other.
        if s.jwks_seed.is_some() && s.jwks_seed_file.is_some() {
            return Err(self.err(
                "jwks_seed_file",
                "set either jwks_seed or jwks_seed_file, not both",
            ));
        }
        let Some(location) = location else {
            if s.jwks_seed.is_some() || s.jwks_seed_file.is_some() {
                let field = if s.jwks_seed.is_some() {
                    "jwks_seed"
                } else {
                    "jwks_seed_file"
                };
                return Err(self.err(field, seed_without_remote()));
            }
            return Ok(None);
        };
        let seed = match (&s.jwks_seed, &s.jwks_seed_file) {
            (Some(inline), _) => {
                Some(read_seed(inline.as_bytes()).map_err(|m| self.err("jwks_seed", m))?)
            }
            (None, Some(file)) => Some(
                read_seed(&self.read("jwks_seed_file", file)?)
                    .map_err(|m| self.err("jwks_seed_file", m))?,
            ),
            (None, None) => None,
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
