//! The settings every issuer shares (limits, answers, the native server's listener, cache and logs,
//! remote fetches), checked once whichever reader they came from.
//!
//! A reader ([`Reader`]) only finds a row's raw value and says where it was ([`Place`]): the
//! environment reader parses a variable's text, the file reader takes the TOML value. Ranges come from
//! the row; every message names the place, so the same check blames the variable or
//! `fetch.timeout_secs` in the file.

use std::fmt;
use std::time::Duration;

use jwtv_keyset::{CaBundle, FetchSettings};
use jwtv_service::mtls::CertSource;

use crate::table::{self, Kind, Setting};
use crate::{
    ConfigError, DEFAULT_FIRST_BYTE_TIMEOUT, LoggedDecisions, Shared, check_listen, check_realm,
};

/// Where a raw value was found.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    Env(&'static str),
    /// `field` is the TOML path (`server.listen`); `path` is the file.
    #[cfg_attr(not(feature = "toml"), allow(dead_code))]
    File {
        path: String,
        field: String,
    },
}

impl Place {
    pub(crate) fn err(&self, message: impl fmt::Display) -> ConfigError {
        match self {
            Place::Env(var) => ConfigError::env(*var, message),
            Place::File { path, field } => {
                ConfigError::file(path.as_str(), format!("{field}: {message}"))
            }
        }
    }

    /// How a setting is named where an operator reads about it (a TLS error about a CA file).
    pub(crate) fn name(&self) -> String {
        match self {
            Place::Env(var) => (*var).to_owned(),
            Place::File { path, field } => format!("{field} in {path}"),
        }
    }
}

/// A value as read, and where.
pub(crate) struct Raw<T> {
    pub value: T,
    pub place: Place,
}

/// Raw values by row. Parse errors (not a number, not a boolean) are the reader's; range and
/// consistency checks are not.
pub(crate) trait Reader {
    /// Text, with an empty variable counting as unset.
    fn text(&self, row: &Setting) -> Result<Option<Raw<String>>, ConfigError>;
    /// Text as given (whitespace kept); only an empty variable counts as unset.
    fn verbatim(&self, row: &Setting) -> Result<Option<Raw<String>>, ConfigError>;
    fn int(&self, row: &Setting) -> Result<Option<Raw<u64>>, ConfigError>;
    fn flag(&self, row: &Setting) -> Result<Option<Raw<bool>>, ConfigError>;
    /// A number and its text as given, for messages: printing an `f64` would link core's float
    /// formatting (~12 KB) into the size-budgeted component for one error line.
    fn fraction(&self, row: &Setting) -> Result<Option<Raw<(f64, String)>>, ConfigError>;
    /// A list: comma-separated in a variable, an array of strings in the file; `None` when unset.
    // Only the DPoP allow-list reads one so far; the component's default build leaves it out.
    #[cfg(feature = "bindings")]
    fn list(&self, row: &Setting) -> Result<Option<Raw<Vec<String>>>, ConfigError>;
    /// Reads the file a path setting names: its shown path and its bytes.
    fn read(&self, raw: &Raw<String>) -> Result<(String, Vec<u8>), ConfigError>;
}

/// A whole number in the row's range.
pub(crate) fn bounded(r: &dyn Reader, row: &Setting) -> Result<Option<Raw<u64>>, ConfigError> {
    let Some(raw) = r.int(row)? else {
        return Ok(None);
    };
    match row.kind {
        Kind::Int(int) => int.check(raw.value).map_err(|m| raw.place.err(m))?,
        _ => raw.value,
    };
    Ok(Some(raw))
}

/// The value of a bounded row, or the message (for values read outside a [`Reader`]).
#[cfg_attr(not(feature = "toml"), allow(dead_code))]
pub(crate) fn check(row: &Setting, n: u64) -> Result<u64, String> {
    match row.kind {
        Kind::Int(int) => int.check(n),
        _ => Ok(n),
    }
}

fn secs(r: &dyn Reader, row: &Setting) -> Result<Option<Duration>, ConfigError> {
    Ok(bounded(r, row)?.map(|raw| Duration::from_secs(raw.value)))
}

/// `usize` from a bounded row (every bound fits a `usize` on the targets we build for).
fn count(r: &dyn Reader, row: &Setting) -> Result<Option<usize>, ConfigError> {
    Ok(bounded(r, row)?.map(|raw| usize::try_from(raw.value).unwrap_or(usize::MAX)))
}

/// Every shared setting. `env` gives the listen address when `r` (a file) has none: the platform's
/// listen address or port variable still applies then. Also returns whether weak secrets are allowed.
pub(crate) fn shared(r: &dyn Reader, env: &dyn Reader) -> Result<(Shared, bool), ConfigError> {
    let mut shared = Shared::default();
    let listen = match r.text(&table::LISTEN)? {
        Some(raw) => Some(raw),
        None => env.text(&table::LISTEN)?,
    };
    if let Some(raw) = listen {
        shared.server.listen = check_listen(&raw.value).map_err(|m| raw.place.err(m))?;
    } else if let Some(raw) = env.text(&table::PORT)? {
        let port = raw.value.trim().parse::<u16>().map_err(|_| {
            raw.place
                .err(format!("{:?} is not a port number (0 to 65535)", raw.value))
        })?;
        shared.server.listen = format!("0.0.0.0:{port}");
    }
    // Deployment, like the listener: the file's value, else the environment's. Only in builds that
    // check bindings: the component's default build refuses every bound token whatever the source
    // (its size budget leaves no room to read one), so a source there changes nothing.
    if jwtv_service::dpop::BUILT {
        let cert_source = match r.text(&table::CLIENT_CERT_SOURCE)? {
            Some(raw) => Some(raw),
            None => env.text(&table::CLIENT_CERT_SOURCE)?,
        };
        if let Some(raw) = cert_source {
            let source = CertSource::parse(&raw.value).map_err(|m| raw.place.err(m))?;
            shared.options.set_client_cert(source);
        }
    }
    if let Some(n) = count(r, &table::MAX_BODY_BYTES)? {
        shared.options.max_body_bytes = n;
    }
    if let Some(n) = count(r, &table::MAX_TOKEN_BYTES)? {
        shared.limits.max_token_bytes = n;
    }
    if let Some(n) = count(r, &table::MAX_JSON_DEPTH)? {
        shared.limits.max_json_depth = n;
    }
    if let Some(raw) = r.flag(&table::EXPOSE_ERRORS)? {
        shared.options.expose_descriptions = raw.value;
    }
    if let Some(raw) = r.verbatim(&table::REALM)? {
        shared.options.realm = check_realm(&raw.value).map_err(|m| raw.place.err(m))?;
    }
    #[cfg(feature = "bindings")]
    {
        if let Some(raw) = bounded(r, &table::DPOP_WINDOW)? {
            shared.options.dpop.window_secs = raw.value;
        }
        if let Some(n) = count(r, &table::DPOP_REPLAY_MAX_ENTRIES)? {
            shared.options.dpop.replay_max_entries = n;
        }
        if let Some(raw) = r.list(&table::DPOP_ALGORITHMS)? {
            shared.options.dpop.algorithms =
                dpop_algorithms(&raw.value).map_err(|m| raw.place.err(m))?;
        }
    }
    let allow_weak = r
        .flag(&table::ALLOW_WEAK_SECRET)?
        .is_some_and(|raw| raw.value);

    let server = &mut shared.server;
    if let Some(n) = count(r, &table::TOKEN_CACHE_SIZE)? {
        server.token_cache_size = n;
    }
    if let Some(timeout) = secs(r, &table::REQUEST_TIMEOUT)? {
        server.request_timeout = timeout;
    }
    // Waiting for a first byte is part of a request's time, so it cannot be the longer of the two;
    // the default follows a shorter request timeout.
    server.first_byte_timeout = DEFAULT_FIRST_BYTE_TIMEOUT.min(server.request_timeout);
    if let Some(raw) = bounded(r, &table::FIRST_BYTE_TIMEOUT)? {
        if raw.value > server.request_timeout.as_secs() {
            return Err(raw.place.err(format!(
                "{}s is longer than the request timeout ({}s): use at most that",
                raw.value,
                server.request_timeout.as_secs()
            )));
        }
        server.first_byte_timeout = Duration::from_secs(raw.value);
    }
    if let Some(n) = count(r, &table::MAX_CONNECTIONS)? {
        server.max_connections = Some(n);
    }
    if let Some(raw) = r.text(&table::LOG_DECISIONS)? {
        server.decision_log.which = match raw.value.trim().to_ascii_lowercase().as_str() {
            "all" => LoggedDecisions::All,
            "refusals" => LoggedDecisions::Refusals,
            "none" => LoggedDecisions::None,
            _ => {
                return Err(raw
                    .place
                    .err(format!("{:?} is not one of all, refusals, none", raw.value)));
            }
        };
    }
    if let Some(raw) = r.fraction(&table::LOG_SAMPLE)? {
        let (rate, text) = &raw.value;
        let rate = *rate;
        if !(0.0..=1.0).contains(&rate) {
            return Err(raw
                .place
                .err(format!("{text} is out of range: use 0.0 to 1.0")));
        }
        // In range, so the product fits.
        server.decision_log.sample_per_million = (rate * 1_000_000.0).round() as u32;
    }
    if let Some(raw) = bounded(r, &table::LOG_REFUSALS_PER_SEC)? {
        server.decision_log.refusals_per_sec = u32::try_from(raw.value).unwrap_or(u32::MAX);
    }
    server.fetch = fetch(r)?;
    #[cfg(feature = "replay-store")]
    {
        server.dpop_replay = crate::replay_store::read(r)?;
    }
    Ok((shared, allow_weak))
}

/// How remote key sets are fetched.
fn fetch(r: &dyn Reader) -> Result<FetchSettings, ConfigError> {
    let defaults = FetchSettings::default();
    let min_ttl = bounded(r, &table::JWKS_MIN_TTL)?;
    let max_ttl = bounded(r, &table::JWKS_MAX_TTL)?;
    let (min, max) = (
        min_ttl
            .as_ref()
            .map_or(defaults.min_ttl, |raw| Duration::from_secs(raw.value)),
        max_ttl
            .as_ref()
            .map_or(defaults.max_ttl, |raw| Duration::from_secs(raw.value)),
    );
    if min > max {
        // Blame the maximum when it was given, else the minimum that passed the default maximum.
        if let Some(raw) = max_ttl.as_ref().or(min_ttl.as_ref()) {
            return Err(raw.place.err(format!(
                "the TTL bounds are inverted: minimum {}s is above maximum {}s",
                min.as_secs(),
                max.as_secs()
            )));
        }
    }
    // An explicit default outside the bounds is a mistake worth naming; the built-in default just
    // follows bounds that were moved.
    let default_ttl = match bounded(r, &table::JWKS_DEFAULT_TTL)? {
        None => defaults.default_ttl.clamp(min, max),
        Some(raw) if (min.as_secs()..=max.as_secs()).contains(&raw.value) => {
            Duration::from_secs(raw.value)
        }
        Some(raw) => {
            return Err(raw.place.err(format!(
                "{} is outside the TTL bounds: use {} to {} seconds",
                raw.value,
                min.as_secs(),
                max.as_secs()
            )));
        }
    };
    let ca_bundle = match r.text(&table::FETCH_CA_FILE)? {
        None => None,
        Some(raw) => {
            let (path, pem) = r.read(&raw)?;
            Some(CaBundle {
                setting: raw.place.name(),
                path,
                pem,
            })
        }
    };
    Ok(FetchSettings {
        allow_http_loopback: r
            .flag(&table::ALLOW_HTTP_LOOPBACK)?
            .is_some_and(|raw| raw.value),
        timeout: secs(r, &table::FETCH_TIMEOUT)?.unwrap_or(defaults.timeout),
        max_bytes: count(r, &table::FETCH_MAX_BYTES)?.unwrap_or(defaults.max_bytes),
        min_ttl: min,
        max_ttl: max,
        default_ttl,
        refetch_cooldown: secs(r, &table::JWKS_REFETCH_COOLDOWN)?
            .unwrap_or(defaults.refetch_cooldown),
        refetch_wait: bounded(r, &table::JWKS_REFETCH_WAIT_MS)?
            .map_or(defaults.refetch_wait, |raw| {
                Duration::from_millis(raw.value)
            }),
        ca_bundle,
    })
}

/// A DPoP allow-list: known names, asymmetric (a proof is signed with the client's private key and
/// checked with the public one it carries), verified by this build, at least one.
#[cfg(feature = "bindings")]
fn dpop_algorithms(names: &[String]) -> Result<Vec<jwtv_verifier::Algorithm>, String> {
    let built = jwtv_service::dpop::supported_algorithms();
    let mut algorithms = Vec::new();
    for name in names {
        let alg = crate::parse_algorithm(name)?;
        if built.is_empty() {
            return Err(
                "this build verifies HMAC only: it can check no DPoP proof (leave it unset)"
                    .to_owned(),
            );
        }
        if !built.contains(&alg) {
            let built = crate::keys::alg_list(&built);
            return Err(match alg.family() {
                jwtv_verifier::Family::Hmac => format!(
                    "{alg} is symmetric: a DPoP proof is signed with the client's own private key; use {built}"
                ),
                _ => format!("{alg} is not verified by this build; use {built}"),
            });
        }
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    if algorithms.is_empty() {
        return Err("lists no algorithm: leave it unset for every asymmetric one".to_owned());
    }
    Ok(algorithms)
}
