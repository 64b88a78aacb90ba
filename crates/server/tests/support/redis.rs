//! A real `redis-server` (Debian's, `scripts/setup debian`) on a free loopback port, for the shared
//! DPoP replay store: started per test with no persistence, stopped and restarted on the same port to
//! show what the service does while its store is away. Ended by its PID when dropped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::free_port;

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    password: Option<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(None)
    }

    /// With `requirepass`: the default user needs `AUTH <password>`.
    pub fn start_with(password: Option<&str>) -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            password: password.map(str::to_owned),
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: u32) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// Kills the server (its data goes with it: no persistence), leaving the port free.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The port is closed once the process is gone; wait until a connect says so.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// (Re)starts on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ]);
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/setup debian installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + super::START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on 127.0.0.1:{}",
                self.port
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis-cli` against this server (its password, database `db`): the reply as it prints it.
    pub fn cli(&self, db: u32, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-n",
            &db.to_string(),
        ]);
        if let Some(password) = &self.password {
            command.env("REDISCLI_AUTH", password);
        }
        let out = command
            .args(args)
            .output()
            .expect("run redis-cli (Debian's redis-tools)");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The keys matching `pattern` in database `db`.
    pub fn keys(&self, db: u32, pattern: &str) -> Vec<String> {
        self.cli(db, &["--scan", "--pattern", pattern])
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
