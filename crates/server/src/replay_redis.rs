//! The shared DPoP replay store on Redis 7 (or Valkey, which speaks the same protocol): one
//! `SET jwtv:dpop:<sha256> 1 NX PX <window>` per proof. `OK` means the `jti` is new; a nil reply means
//! a replica (this one or another) has seen it within the window (RFC 9449 §11.1).
//!
//! Why a few lines of RESP rather than the `redis` crate: the store sends three commands (`AUTH`,
//! `SELECT`, `SET`) and reads four kinds of reply. The `redis` crate (0.32, `tokio-comp` and
//! `connection-manager`) adds 36 crates to the binary's graph (`cargo tree`): url with idna and 20
//! ICU crates, which the key-set fetcher's choice of client avoided on purpose, combine, arc-swap,
//! backon, num-bigint…, all built on two shared cores; and its connection manager has a retry policy
//! of its own: it may resend a command on a new connection, and a resent `SET NX` that the server
//! had applied turns a first use into a refusal. Here the policy is ours and short (below); the
//! protocol part is tested against the real `redis-server`.
//!
//! Connections: up to [`MAX_IDLE`] are kept for reuse, at most [`MAX_OPEN`] are open at once (a
//! request waits for one within the command timeout). A connection that failed in any way is closed,
//! never reused. After a store restart every kept connection is dead: the first command on one fails,
//! the kept ones are dropped, and the command is sent once more on a new connection. Only then: a
//! command sent on a new connection that fails is not resent, since the server may have applied it.
//!
//! What it must not do: decide about a proof (the service does, with the answer), log the password
//! (it is only ever written to the socket), or let a key be chosen by the client: the key is the
//! service's hash of the proof's key thumbprint and `jti` ([`jwtv_service::replay::FirstUse`]), so a
//! `jti` of any bytes makes a fixed-size, printable key.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use jwtv_config::replay_store::{OnStoreError, RedisTarget, ReplayStore, ReplayStoreSettings};
use jwtv_config::table;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// Every key this service writes starts with this, so that the store can be shared with other uses.
pub const KEY_PREFIX: &str = "jwtv:dpop:";
/// Connections kept for the next request.
const MAX_IDLE: usize = 16;
/// Connections open at once: a burst beyond this waits rather than opening hundreds of sockets.
const MAX_OPEN: usize = 64;
/// Longest reply line read: the replies expected are a few bytes; an error line is a sentence.
const MAX_LINE: u64 = 4096;

/// Why the store could not say whether a proof is new. Never carries the password.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("cannot connect to {target}: {source}")]
    Connect { target: String, source: io::Error },
    #[error("no answer from {target} within {after:?}")]
    Timeout { target: String, after: Duration },
    #[error("connection to {target} lost: {source}")]
    Io { target: String, source: io::Error },
    /// An error reply (`-WRONGPASS …`, `-READONLY …`, `-ERR …`), as the server worded it.
    #[error("{target} answered: {message}")]
    Server { target: String, message: String },
    #[error("{target} sent an unexpected reply: {what}")]
    Protocol { target: String, what: String },
}

/// The store: a target, its timeouts and the connections kept.
pub struct RedisStore {
    target: RedisTarget,
    /// The target as logs and errors show it (no password).
    shown: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    idle: Mutex<Vec<Conn>>,
    open: Semaphore,
}

impl RedisStore {
    pub fn new(
        target: RedisTarget,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> RedisStore {
        RedisStore {
            shown: target.to_string(),
            target,
            connect_timeout,
            command_timeout,
            idle: Mutex::new(Vec::new()),
            open: Semaphore::new(MAX_OPEN),
        }
    }

    /// The target as logs show it.
    pub fn target(&self) -> &str {
        &self.shown
    }

    /// Records `key_hex` (the service's hash of the proof, in hex) for `window` unless it is there
    /// already: `Ok(true)` the first time within the window, `Ok(false)` after (a replay).
    pub async fn first_use(&self, key_hex: &str, window: Duration) -> Result<bool, RedisError> {
        let key = format!("{KEY_PREFIX}{key_hex}");
        // PX 0 is an error to Redis; a proof whose window has run out is refused before it gets here.
        let px = window.as_millis().max(1).to_string();
        let command: [&[u8]; 6] = [b"SET", key.as_bytes(), b"1", b"NX", b"PX", px.as_bytes()];
        let reply = self.run(&command).await?;
        match reply {
            Reply::Simple(ok) if ok == "OK" => Ok(true),
            Reply::Nil => Ok(false),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Connects (with `AUTH` and `SELECT`) and sends `PING`: whether the store can be used now.
    pub async fn ping(&self) -> Result<(), RedisError> {
        match self.run(&[b"PING"]).await? {
            Reply::Simple(pong) if pong == "PONG" => Ok(()),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn run(&self, command: &[&[u8]]) -> Result<Reply, RedisError> {
        let _permit = timeout(self.command_timeout, self.open.acquire())
            .await
            .map_err(|_| self.timeout(self.command_timeout))?
            // The semaphore is never closed.
            .map_err(|_| self.timeout(self.command_timeout))?;
        let kept = self.take_idle();
        let reused = kept.is_some();
        let mut conn = match kept {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        match self.send(&mut conn, command).await {
            Ok(reply) => {
                self.keep(conn);
                Ok(reply)
            }
            // A kept connection that fails on the wire was most likely closed by a restart of the
            // store: so were the other kept ones. One more try, on a new connection.
            Err(RedisError::Io { .. }) if reused => {
                self.drop_idle();
                let mut conn = self.connect().await?;
                let reply = self.send(&mut conn, command).await?;
                self.keep(conn);
                Ok(reply)
            }
            Err(e) => Err(e),
        }
    }

    /// One command and its reply within the command timeout. An error reply is an error.
    async fn send(&self, conn: &mut Conn, command: &[&[u8]]) -> Result<Reply, RedisError> {
        let reply = timeout(self.command_timeout, conn.command(command))
            .await
            .map_err(|_| self.timeout(self.command_timeout))?
            .map_err(|e| self.wire(e))?;
        match reply {
            Reply::Error(message) => Err(RedisError::Server {
                target: self.shown.clone(),
                message,
            }),
            reply => Ok(reply),
        }
    }

    async fn connect(&self) -> Result<Conn, RedisError> {
        let started = timeout(self.connect_timeout, async {
            let stream = TcpStream::connect((self.target.host.as_str(), self.target.port))
                .await
                .map_err(|source| RedisError::Connect {
                    target: self.shown.clone(),
                    source,
                })?;
            // One small command per request: do not hold it back for a bigger segment.
            stream.set_nodelay(true).map_err(|e| self.wire(e.into()))?;
            let mut conn = Conn {
                io: BufReader::new(stream),
            };
            if let Some(password) = self.target.password() {
                let reply = match &self.target.username {
                    Some(user) => conn.command(&[b"AUTH", user.as_bytes(), password]).await,
                    None => conn.command(&[b"AUTH", password]).await,
                };
                self.expect_ok(reply.map_err(|e| self.wire(e))?)?;
            }
            if self.target.db != 0 {
                let db = self.target.db.to_string();
                let reply = conn.command(&[b"SELECT", db.as_bytes()]).await;
                self.expect_ok(reply.map_err(|e| self.wire(e))?)?;
            }
            Ok(conn)
        })
        .await;
        started.map_err(|_| self.timeout(self.connect_timeout))?
    }

    fn expect_ok(&self, reply: Reply) -> Result<(), RedisError> {
        match reply {
            Reply::Simple(ok) if ok == "OK" => Ok(()),
            Reply::Error(message) => Err(RedisError::Server {
                target: self.shown.clone(),
                message,
            }),
            other => Err(self.unexpected(&other)),
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle.lock().ok()?.pop()
    }

    fn keep(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
    }

    fn drop_idle(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    fn timeout(&self, after: Duration) -> RedisError {
        RedisError::Timeout {
            target: self.shown.clone(),
            after,
        }
    }

    fn wire(&self, e: WireError) -> RedisError {
        match e {
            WireError::Io(source) => RedisError::Io {
                target: self.shown.clone(),
                source,
            },
            WireError::Protocol(what) => RedisError::Protocol {
                target: self.shown.clone(),
                what,
            },
        }
    }

    fn unexpected(&self, reply: &Reply) -> RedisError {
        RedisError::Protocol {
            target: self.shown.clone(),
            what: format!("{reply:?}"),
        }
    }
}

/// The store the settings name, checked with a `PING` before the listener opens. An unreachable
/// store stops the start when its errors refuse proofs (a replica that could only refuse DPoP requests
/// should not join the load balancer; its supervisor retries with a backoff), and is a warning when
/// they are allowed (the operator chose availability). `None`: the in-memory store.
pub async fn open(settings: &ReplayStoreSettings) -> anyhow::Result<Option<RedisStore>> {
    let ReplayStore::Redis(target) = &settings.store else {
        return Ok(None);
    };
    let store = RedisStore::new(
        target.clone(),
        settings.connect_timeout,
        settings.command_timeout,
    );
    match (store.ping().await, settings.on_error) {
        (Ok(()), _) => tracing::info!(store = store.target(), "DPoP replay store reachable"),
        (Err(e), OnStoreError::Refuse) => {
            anyhow::bail!(
                "the DPoP replay store cannot be used: {e} ({}=allow starts anyway, letting replays pass while it is down)",
                table::DPOP_REPLAY_ON_STORE_ERROR.var()
            );
        }
        (Err(e), OnStoreError::Allow) => tracing::warn!(
            store = store.target(),
            "the DPoP replay store cannot be used: {e}; starting anyway ({}=allow): proofs are not checked for replay until it answers",
            table::DPOP_REPLAY_ON_STORE_ERROR.var()
        ),
    }
    Ok(Some(store))
}

/// A reply of RESP2 (what Redis speaks until a client asks for RESP3 with `HELLO 3`).
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR …`
    Error(String),
    /// `:1`
    Integer(i64),
    /// `$3 abc`
    Bulk(Vec<u8>),
    /// `$-1` (or `_` in RESP3)
    Nil,
}

#[derive(Debug)]
enum WireError {
    Io(io::Error),
    Protocol(String),
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> WireError {
        WireError::Io(e)
    }
}

struct Conn {
    io: BufReader<TcpStream>,
}

impl Conn {
    async fn command(&mut self, args: &[&[u8]]) -> Result<Reply, WireError> {
        let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
        encode(args, &mut out);
        self.io.get_mut().write_all(&out).await?;
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> Result<Reply, WireError> {
        let line = self.read_line().await?;
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| WireError::Protocol("an empty line".to_owned()))?;
        let text = || String::from_utf8_lossy(rest).into_owned();
        match kind {
            b'+' => Ok(Reply::Simple(text())),
            b'-' => Ok(Reply::Error(text())),
            b':' => text()
                .parse()
                .map(Reply::Integer)
                .map_err(|_| WireError::Protocol(format!("integer {:?}", text()))),
            b'_' => Ok(Reply::Nil),
            b'$' => {
                let len: i64 = text()
                    .parse()
                    .map_err(|_| WireError::Protocol(format!("bulk length {:?}", text())))?;
                if len < 0 {
                    return Ok(Reply::Nil);
                }
                if len as u64 > MAX_LINE {
                    return Err(WireError::Protocol(format!("a bulk reply of {len} bytes")));
                }
                let mut data = vec![0; len as usize + 2];
                self.io.read_exact(&mut data).await?;
                if !data.ends_with(b"\r\n") {
                    return Err(WireError::Protocol("a bulk reply without CRLF".to_owned()));
                }
                data.truncate(len as usize);
                Ok(Reply::Bulk(data))
            }
            other => Err(WireError::Protocol(format!(
                "a reply of type {:?}",
                char::from(*other)
            ))),
        }
    }

    /// One line without its CRLF; EOF before it is an error (the server closed the connection).
    async fn read_line(&mut self) -> Result<Vec<u8>, WireError> {
        let mut line = Vec::new();
        let n = (&mut self.io)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Err(WireError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        if !line.ends_with(b"\r\n") {
            return Err(WireError::Protocol(
                "a reply line without CRLF, or too long".to_owned(),
            ));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }
}

/// A command as an array of bulk strings, the one form a client sends.
fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&[b"SET", b"k", b"1", b"NX", b"PX", b"60000"], &mut out);
        assert_eq!(
            out,
            b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$2\r\nNX\r\n$2\r\nPX\r\n$5\r\n60000\r\n"
        );
    }

    /// A `redis-server` of its own on a free loopback port, ended when dropped.
    struct Server {
        child: std::process::Child,
        port: u16,
    }

    impl Server {
        fn start(port: Option<u16>, extra: &[&str]) -> Server {
            let port = port.unwrap_or_else(|| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
                    .expect("a free port")
            });
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(extra)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server (scripts/setup debian installs it)");
            // Owned by the guard from here on, so a failed wait still ends it.
            let server = Server { child, port };
            for _ in 0..200 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("redis-server did not listen on {port}");
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn store(url: &str, password: Option<&str>) -> RedisStore {
        let mut fixture = jwtv_config::replay_store::parse_store(url).expect("url");
        if let (Some(pw), jwtv_config::replay_store::ReplayStore::Redis(t)) =
            (password, &mut fixture)
        {
            *t = t.clone().with_password(pw.as_bytes().to_vec());
        }
        let jwtv_config::replay_store::ReplayStore::Redis(target) = fixture else {
            panic!("not redis");
        };
        RedisStore::new(target, Duration::from_secs(1), Duration::from_millis(500))
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    // RFC 9449 §11.1: a proof's jti is accepted once within the window.
    #[test]
    fn second_use_within_the_window_is_a_replay() {
        let server = Server::start(None, &[]);
        let store = store(&format!("redis://127.0.0.1:{}/0", server.port), None);
        rt().block_on(async {
            assert!(
                store
                    .first_use("jkt|jti-1", Duration::from_secs(60))
                    .await
                    .unwrap()
            );
            assert!(
                !store
                    .first_use("jkt|jti-1", Duration::from_secs(60))
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .first_use("jkt|jti-2", Duration::from_secs(60))
                    .await
                    .unwrap()
            );
        });
    }

    #[test]
    fn a_key_expires_with_its_window() {
        let server = Server::start(None, &[]);
        let store = store(&format!("redis://127.0.0.1:{}/0", server.port), None);
        rt().block_on(async {
            assert!(
                store
                    .first_use("short", Duration::from_millis(1))
                    .await
                    .unwrap()
            );
            // Redis treats a key past its PX as absent on the next access.
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert!(
                store
                    .first_use("short", Duration::from_secs(60))
                    .await
                    .unwrap()
            );
        });
    }

    #[test]
    fn databases_are_selected_and_passwords_sent() {
        let server = Server::start(None, &["--requirepass", "pa ss"]);
        let url = format!("redis://127.0.0.1:{}/5", server.port);
        rt().block_on(async {
            let good = store(&url, Some("pa ss"));
            assert!(good.first_use("k", Duration::from_secs(60)).await.unwrap());
            // Database 5 holds it, database 0 does not.
            let other_db = store(
                &format!("redis://127.0.0.1:{}/0", server.port),
                Some("pa ss"),
            );
            assert!(
                other_db
                    .first_use("k", Duration::from_secs(60))
                    .await
                    .unwrap()
            );
            let wrong = store(&url, Some("wrong"));
            let e = wrong.ping().await.unwrap_err().to_string();
            assert!(e.contains("WRONGPASS"), "{e}");
            assert!(!e.contains("wrong\""), "{e}");
            let none = store(&url, None);
            let e = none
                .first_use("k2", Duration::from_secs(60))
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("NOAUTH"), "{e}");
        });
    }

    // Redis 6 ACL: a user allowed only what the store sends, on its own keys.
    #[test]
    fn an_acl_user_limited_to_the_store_commands_and_keys_suffices() {
        let server = Server::start(
            None,
            &[
                "--user",
                "default",
                "off",
                "--user",
                "replay",
                "on",
                ">replay-pw",
                "~jwtv:dpop:*",
                "+set",
                "+ping",
                "+select",
                "+auth",
            ],
        );
        let url = format!("redis://replay@127.0.0.1:{}/0", server.port);
        rt().block_on(async {
            let store = store(&url, Some("replay-pw"));
            store.ping().await.unwrap();
            assert!(store.first_use("k", Duration::from_secs(60)).await.unwrap());
            assert!(!store.first_use("k", Duration::from_secs(60)).await.unwrap());
        });
    }

    #[test]
    fn a_restarted_store_is_used_again_without_a_restart_of_ours() {
        let server = Server::start(None, &[]);
        let port = server.port;
        let store = store(&format!("redis://127.0.0.1:{port}/0"), None);
        rt().block_on(async {
            assert!(store.first_use("a", Duration::from_secs(60)).await.unwrap());
            drop(server);
            let e = store
                .first_use("b", Duration::from_secs(60))
                .await
                .unwrap_err();
            assert!(matches!(e, RedisError::Connect { .. }), "{e}");
            let _again = Server::start(Some(port), &[]);
            assert!(store.first_use("c", Duration::from_secs(60)).await.unwrap());
        });
    }

    #[test]
    fn kept_connections_closed_by_a_restart_are_replaced_at_once() {
        let server = Server::start(None, &[]);
        let port = server.port;
        let store = store(&format!("redis://127.0.0.1:{port}/0"), None);
        rt().block_on(async {
            assert!(store.first_use("a", Duration::from_secs(60)).await.unwrap());
            drop(server);
            // Restarted before any request noticed: the kept connection is dead, the request passes.
            let _again = Server::start(Some(port), &[]);
            assert!(store.first_use("b", Duration::from_secs(60)).await.unwrap());
        });
    }

    #[test]
    fn a_store_that_does_not_answer_times_out() {
        // A listener that accepts (the kernel does) and never replies.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let store = store(&format!("redis://127.0.0.1:{port}/0"), None);
        rt().block_on(async {
            let e = store
                .first_use("a", Duration::from_secs(60))
                .await
                .unwrap_err();
            assert!(matches!(e, RedisError::Timeout { .. }), "{e}");
        });
    }
}
