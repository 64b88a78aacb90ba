//! Where the native server remembers the `jti`s of DPoP proofs (RFC 9449 §11.1): in its own memory,
//! or in a Redis shared by every replica, so that a proof used on one replica is refused on another.
//!
//! Only the settings: the URL is parsed and checked here (a bad one stops the start with one line
//! naming the variable or field), the store itself is the native shell's (`server/src/replay_redis.rs`).

use std::fmt;
use std::time::Duration;

use crate::ConfigError;
use crate::shared::{Reader, bounded};
use crate::table;

pub const DEFAULT_REDIS_PORT: u16 = 6379;
/// A connection to a store on the same network answers in well under a millisecond; a second covers
/// a slow TCP handshake and a busy machine without holding a request for long.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// `SET NX PX` is one round trip: 250 ms is far above it and still below a client's patience.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(250);

/// The replay store and what happens when it cannot answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayStoreSettings {
    pub store: ReplayStore,
    pub on_error: OnStoreError,
    /// The longest a new connection to the store may take (TCP, `AUTH`, `SELECT`).
    pub connect_timeout: Duration,
    /// The longest one command may take, from writing it to reading its reply.
    pub command_timeout: Duration,
}

impl Default for ReplayStoreSettings {
    fn default() -> ReplayStoreSettings {
        ReplayStoreSettings {
            store: ReplayStore::Memory,
            on_error: OnStoreError::Refuse,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayStore {
    /// Per process: enough for one replica, or replicas behind a load balancer that pins a client.
    Memory,
    Redis(RedisTarget),
}

/// What a request whose proof cannot be checked against the store gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// Refused (fail closed): a proof that cannot be shown fresh is treated as a replay.
    Refuse,
    /// Accepted when every other check passed: a replayed proof gets through while the store is down.
    Allow,
}

/// A Redis server (or Valkey, which speaks the same protocol) and how to log in to it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// A host name, an IPv4 address, or an IPv6 address without brackets.
    pub host: String,
    pub port: u16,
    /// The logical database (`SELECT`); 0 when the URL names none.
    pub db: u32,
    /// An ACL user (Redis 6+); `None`: the default user.
    pub username: Option<String>,
    password: Option<Vec<u8>>,
}

impl RedisTarget {
    /// The password for `AUTH`, from the password file. Never in the URL, so never in a log line.
    pub fn password(&self) -> Option<&[u8]> {
        self.password.as_deref()
    }

    /// The same target logging in with `password` (for tests and tools that hold one).
    pub fn with_password(self, password: Vec<u8>) -> RedisTarget {
        RedisTarget {
            password: Some(password),
            ..self
        }
    }
}

/// The URL without the password (it is never part of it): safe for logs and messages.
impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redis://")?;
        if let Some(user) = &self.username {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        write!(f, ":{}/{}", self.port, self.db)
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTarget")
            .field("url", &self.to_string())
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Parses `memory` or `redis://[user@]host[:port][/db]`. The message says what is wrong; the caller
/// names the place.
pub fn parse_store(text: &str) -> Result<ReplayStore, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("memory") {
        return Ok(ReplayStore::Memory);
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "{text:?} is neither memory nor a redis:// URL (redis://host:port/db)"
        ));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "redis" => {}
        "rediss" => {
            return Err(
                "rediss:// (Redis over TLS) is not supported: reach the store over a private network, or through a local TLS tunnel at a redis:// address".to_owned(),
            );
        }
        other => {
            return Err(format!(
                "the scheme {other:?} is not redis (redis://host:port/db)"
            ));
        }
    }
    if rest.contains(['?', '#']) {
        return Err("a query or fragment is not understood: use redis://host:port/db".to_owned());
    }
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (rest, ""),
    };
    let (username, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            if userinfo.contains(':') {
                return Err(format!(
                    "a password in the URL would be logged with it: put it in {} and keep only the user name in the URL",
                    table::DPOP_REPLAY_STORE_PASSWORD_FILE
                        .env
                        .unwrap_or("the password file")
                ));
            }
            if userinfo.is_empty() {
                return Err("an empty user name before '@'".to_owned());
            }
            (Some(userinfo.to_owned()), hostport)
        }
        None => (None, authority),
    };
    let (host, port) = host_port(hostport)?;
    let db = match path {
        "" => 0,
        db => db
            .parse::<u32>()
            .map_err(|_| format!("the database {db:?} is not a number (redis://host:port/0)"))?,
    };
    Ok(ReplayStore::Redis(RedisTarget {
        host,
        port,
        db,
        username,
        password: None,
    }))
}

fn host_port(hostport: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{hostport:?}: an IPv6 address without its closing ']'"))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("{hostport:?}: expected ':port' after ']'")),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("the URL names no host (redis://host:port/db)".to_owned());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err(format!("{host:?} is not a host name or IP address"));
    }
    let port = match port {
        None => DEFAULT_REDIS_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("{port:?} is not a port number (1 to 65535)")),
        },
    };
    Ok((host.to_owned(), port))
}

/// The replay-store rows, checked.
pub(crate) fn read(r: &dyn Reader) -> Result<ReplayStoreSettings, ConfigError> {
    let mut settings = ReplayStoreSettings::default();
    if let Some(raw) = r.text(&table::DPOP_REPLAY_STORE)? {
        settings.store = parse_store(&raw.value).map_err(|m| raw.place.err(m))?;
    }
    if let Some(raw) = r.text(&table::DPOP_REPLAY_ON_STORE_ERROR)? {
        settings.on_error = match raw.value.trim().to_ascii_lowercase().as_str() {
            "refuse" => OnStoreError::Refuse,
            "allow" => OnStoreError::Allow,
            _ => {
                return Err(raw
                    .place
                    .err(format!("{:?} is not one of refuse, allow", raw.value)));
            }
        };
    }
    if let Some(raw) = bounded(r, &table::DPOP_REPLAY_STORE_CONNECT_TIMEOUT_MS)? {
        settings.connect_timeout = Duration::from_millis(raw.value);
    }
    if let Some(raw) = bounded(r, &table::DPOP_REPLAY_STORE_TIMEOUT_MS)? {
        settings.command_timeout = Duration::from_millis(raw.value);
    }
    if let Some(raw) = r.text(&table::DPOP_REPLAY_STORE_PASSWORD_FILE)? {
        let ReplayStore::Redis(target) = &mut settings.store else {
            return Err(raw.place.err(format!(
                "a password for no store: set {} to a redis:// URL, or remove this",
                table::DPOP_REPLAY_STORE.env.unwrap_or("the replay store")
            )));
        };
        let (_, mut bytes) = r.read(&raw)?;
        // As with the HMAC secret file: an editor's final newline is not part of the password.
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(raw.place.err("the password file is empty"));
        }
        target.password = Some(bytes);
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(text: &str) -> RedisTarget {
        match parse_store(text) {
            Ok(ReplayStore::Redis(target)) => target,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn redis_urls_name_host_port_db_and_user() {
        let t = redis("redis://127.0.0.1:6390/2");
        assert_eq!((t.host.as_str(), t.port, t.db), ("127.0.0.1", 6390, 2));
        assert_eq!(t.username, None);
        let t = redis("redis://replay@cache.internal");
        assert_eq!((t.host.as_str(), t.port, t.db), ("cache.internal", 6379, 0));
        assert_eq!(t.username.as_deref(), Some("replay"));
        let t = redis("redis://[::1]:7000/");
        assert_eq!((t.host.as_str(), t.port, t.db), ("::1", 7000, 0));
        assert_eq!(t.to_string(), "redis://[::1]:7000/0");
        assert_eq!(parse_store(" Memory "), Ok(ReplayStore::Memory));
    }

    #[test]
    fn passwords_in_the_url_are_refused() {
        let err = parse_store("redis://user:hunter2@host/0").unwrap_err();
        assert!(err.contains("JWT_DPOP_REPLAY_STORE_PASSWORD_FILE"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn other_schemes_and_bad_parts_are_refused() {
        for (text, says) in [
            ("rediss://host", "not supported"),
            ("http://host", "is not redis"),
            ("redis-host:6379", "neither memory"),
            ("redis://host:0", "port number"),
            ("redis://host:99999", "port number"),
            ("redis://host/zero", "not a number"),
            ("redis://", "no host"),
            ("redis://host?db=1", "query"),
            ("redis://ho st", "not a host name"),
            ("redis://[::1", "closing"),
        ] {
            let err = parse_store(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    use crate::tests::Fixture;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-and-a-bit";

    fn base() -> Fixture {
        Fixture::new().env("JWT_SECRET", SECRET)
    }

    #[test]
    fn memory_is_the_default_and_refuse_the_failure_mode() {
        let loaded = base().ok();
        assert_eq!(loaded.server.dpop_replay, ReplayStoreSettings::default());
        assert_eq!(loaded.server.dpop_replay.on_error, OnStoreError::Refuse);
    }

    #[test]
    fn a_redis_store_is_read_from_the_environment_with_its_password_file() {
        let loaded = base()
            .env("JWT_DPOP_REPLAY_STORE", "redis://replay@127.0.0.1:6390/3")
            .env("JWT_DPOP_REPLAY_ON_STORE_ERROR", "allow")
            .env("JWT_DPOP_REPLAY_STORE_TIMEOUT_MS", "40")
            .env("JWT_DPOP_REPLAY_STORE_CONNECT_TIMEOUT_MS", "300")
            .env("JWT_DPOP_REPLAY_STORE_PASSWORD_FILE", "/run/secrets/redis")
            .file("/run/secrets/redis", "s3cret-pass\n")
            .ok();
        let replay = &loaded.server.dpop_replay;
        let ReplayStore::Redis(target) = &replay.store else {
            panic!("{replay:?}");
        };
        assert_eq!(target.to_string(), "redis://replay@127.0.0.1:6390/3");
        assert_eq!(target.password(), Some(&b"s3cret-pass"[..]));
        assert_eq!(replay.on_error, OnStoreError::Allow);
        assert_eq!(replay.command_timeout, Duration::from_millis(40));
        assert_eq!(replay.connect_timeout, Duration::from_millis(300));
        // The summary and Debug name the store, never the password.
        let shown = format!("{:?} {}", loaded, loaded.summary().join(" "));
        assert!(shown.contains("redis://replay@127.0.0.1:6390/3"), "{shown}");
        assert!(!shown.contains("s3cret-pass"), "{shown}");
    }

    #[test]
    fn bad_replay_store_settings_stop_the_start_naming_the_variable() {
        let e = base()
            .env("JWT_DPOP_REPLAY_STORE", "rediss://cache:6380")
            .err();
        assert!(e.starts_with("JWT_DPOP_REPLAY_STORE: rediss://"), "{e}");
        let e = base().env("JWT_DPOP_REPLAY_ON_STORE_ERROR", "ignore").err();
        assert!(
            e.starts_with("JWT_DPOP_REPLAY_ON_STORE_ERROR: \"ignore\""),
            "{e}"
        );
        let e = base().env("JWT_DPOP_REPLAY_STORE_TIMEOUT_MS", "0").err();
        assert!(
            e.starts_with("JWT_DPOP_REPLAY_STORE_TIMEOUT_MS: 0 is out of range"),
            "{e}"
        );
        let e = base()
            .env("JWT_DPOP_REPLAY_STORE_PASSWORD_FILE", "/run/secrets/redis")
            .file("/run/secrets/redis", "pw")
            .err();
        assert!(e.contains("a password for no store"), "{e}");
        let e = base()
            .env("JWT_DPOP_REPLAY_STORE", "redis://127.0.0.1/0")
            .env("JWT_DPOP_REPLAY_STORE_PASSWORD_FILE", "/run/secrets/none")
            .err();
        assert!(e.starts_with("JWT_DPOP_REPLAY_STORE_PASSWORD_FILE"), "{e}");
    }

    #[cfg(feature = "toml")]
    #[test]
    fn a_redis_store_is_read_from_the_file_and_located_when_bad() {
        let issuer = format!("[[issuers]]\nsecret = \"{SECRET}\"\n");
        let loaded = Fixture::new()
            .config(&format!(
                "{issuer}[server]\ndpop_replay_store = \"redis://cache.internal:6380/1\"\n"
            ))
            .ok();
        let ReplayStore::Redis(target) = &loaded.server.dpop_replay.store else {
            panic!("{:?}", loaded.server.dpop_replay);
        };
        assert_eq!(target.to_string(), "redis://cache.internal:6380/1");
        let e = Fixture::new()
            .config(&format!(
                "{issuer}[server]\ndpop_replay_store = \"redis://u:p@cache/1\"\n"
            ))
            .err();
        assert!(
            e.starts_with("/etc/jwtv/jwtv.toml: server.dpop_replay_store: a password in the URL"),
            "{e}"
        );
    }
}
