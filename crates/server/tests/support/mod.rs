//! Shared harness of the HTTP integration suites: start the real service on 127.0.0.1, speak HTTP/1.1
//! to it over a plain `TcpStream`, and mint tokens whose every byte the test controls.
//!
//! One suite, two targets, chosen by `JWTV_TEST_TARGET`:
//! - `native` (default): the `jwt-validator` binary built by this package;
//! - `wasm`: the component (`target/wasm32-wasip2/wasm/jwtv_component.wasm`, or `JWTV_COMPONENT`)
//!   under `wasmtime serve` (`JWTV_WASMTIME`, default `wasmtime` from `PATH` or `~/.cargo/bin`);
//!   `JWTV_COMPONENT_PEM=1` says it was built with its `pem` feature, `JWTV_COMPONENT_P3=1` that it
//!   exports WASI 0.3 (`scripts/component-p3`; served with `-S p3 -W component-model-async`),
//!   `JWTV_COMPONENT_WIDE=1` that it is the wide-arithmetic build (`scripts/component-wide`; served with
//!   `-W wide-arithmetic=y`), `JWTV_COMPONENT_RULES=1` that it was built with its `rules` feature (CEL
//!   rules), `JWTV_COMPONENT_KV=1` that it is the key-value build for `wasmtime serve`
//!   (`scripts/component-kv --wasmtime`; served with `-S keyvalue`), and `JWTV_COMPONENT_BAKE=1` that
//!   each server's configuration is baked into it (`scripts/bake`) and the baked component served with
//!   no environment and no directory.
//!
//! Every wait is bounded; every process started here is ended by its PID when its handle drops.

// Each test crate includes this module and uses a different part of it.
#![allow(dead_code)]

pub mod contract;
pub mod dpop;
pub mod failover;
pub mod gateway;
pub mod h2;
pub mod jwt;
pub mod keyserver;
pub mod redis;
pub mod tls;
pub mod upstream;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to print its listening line (or accept connections, for Wasm).
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Read timeout of the test client.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Placeholder, in environment values, for the directory holding the [`TestConfig::files`] as the
/// server sees it (a host path natively, the mount point inside the component).
pub const FILES: &str = "{files}";
/// Where the files directory is mounted inside the component.
pub const WASM_FILES_DIR: &str = "/files";

/// Fails once with every collected problem, so one run shows all of them.
pub fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Polls `check` every 50 ms until it holds (true) or `timeout` passes (false).
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The workspace root (two levels above this package).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

// ---------------------------------------------------------------------------------------------------
// Targets

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Native,
    Wasm,
}

impl Target {
    /// The target chosen by `JWTV_TEST_TARGET` (`native` when unset).
    pub fn from_env() -> Target {
        match std::env::var("JWTV_TEST_TARGET").as_deref() {
            Err(_) | Ok("") | Ok("native") => Target::Native,
            Ok("wasm") => Target::Wasm,
            Ok(other) => panic!("JWTV_TEST_TARGET={other:?}: expected `native` or `wasm`"),
        }
    }
}

/// Whether the component under test is the WASI 0.3 build (`JWTV_COMPONENT_P3=1`).
pub fn wasi_p3() -> bool {
    Target::from_env() == Target::Wasm && std::env::var("JWTV_COMPONENT_P3").as_deref() == Ok("1")
}

/// Whether the component under test is the key-value build (`JWTV_COMPONENT_KV=1`), which imports
/// `wasi:keyvalue` and so is served with `-S keyvalue`.
pub fn keyvalue() -> bool {
    Target::from_env() == Target::Wasm && std::env::var("JWTV_COMPONENT_KV").as_deref() == Ok("1")
}

/// Whether each component under test is baked for its configuration (`JWTV_COMPONENT_BAKE=1`).
pub fn baked() -> bool {
    Target::from_env() == Target::Wasm && std::env::var("JWTV_COMPONENT_BAKE").as_deref() == Ok("1")
}

/// Whether the component under test is the wide-arithmetic build (`JWTV_COMPONENT_WIDE=1`), which
/// wasmtime loads only with `-W wide-arithmetic=y`.
pub fn wide_arithmetic() -> bool {
    Target::from_env() == Target::Wasm && std::env::var("JWTV_COMPONENT_WIDE").as_deref() == Ok("1")
}

/// Whether the server under test reads PEM public keys: the native binary does; the component only when
/// built with its `pem` feature, which `JWTV_COMPONENT_PEM=1` declares (scripts/test runs the PEM tests
/// once more against that build).
pub fn pem_keys_supported() -> bool {
    match Target::from_env() {
        Target::Native => true,
        Target::Wasm => std::env::var("JWTV_COMPONENT_PEM").as_deref() == Ok("1"),
    }
}

/// Whether the server under test evaluates CEL rules: the native binary does; the component only when
/// built with its `rules` feature, which `JWTV_COMPONENT_RULES=1` declares.
pub fn rules_supported() -> bool {
    match Target::from_env() {
        Target::Native => true,
        Target::Wasm => std::env::var("JWTV_COMPONENT_RULES").as_deref() == Ok("1"),
    }
}

/// Whether the server under test checks DPoP proofs: the native binary does; the component only when
/// built with its `dpop` feature, which `JWTV_COMPONENT_DPOP=1` declares.
pub fn dpop_supported() -> bool {
    match Target::from_env() {
        Target::Native => true,
        Target::Wasm => std::env::var("JWTV_COMPONENT_DPOP").as_deref() == Ok("1"),
    }
}

/// The native binary under test: this package's, or `JWTV_BINARY` (another build, for measurements
/// that compare two versions).
pub fn binary() -> PathBuf {
    std::env::var_os("JWTV_BINARY").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_jwt-validator")),
        PathBuf::from,
    )
}

pub fn wasmtime() -> PathBuf {
    if let Some(path) = std::env::var_os("JWTV_WASMTIME") {
        return PathBuf::from(path);
    }
    let in_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("wasmtime"))
            .find(|p| p.is_file())
    });
    in_path.unwrap_or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .unwrap_or_default();
        home.join("bin/wasmtime")
    })
}

/// The component under test (`JWTV_COMPONENT`, or the default build in the target dir).
pub fn component() -> PathBuf {
    if let Some(path) = std::env::var_os("JWTV_COMPONENT") {
        return PathBuf::from(path);
    }
    target_dir().join("wasm32-wasip2/wasm/jwtv_component.wasm")
}

/// Cargo's target directory as the build scripts see it: `CARGO_TARGET_DIR` (relative to the
/// workspace, as cargo reads it there), else `target/`.
pub fn target_dir() -> PathBuf {
    let dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    workspace_root().join(dir)
}

/// What `wasmtime serve` and `scripts/bake` are both given: the Wasm features the build needs, and
/// the configuration's environment and files (in `dir`, mounted where the component reads them).
fn configuration_args(command: &mut Command, config: &TestConfig, dir: &TempDir) {
    if wide_arithmetic() {
        command.args(["-W", "wide-arithmetic=y"]);
    }
    if keyvalue() {
        command.args(["-S", "keyvalue"]);
    }
    for (k, v) in config.resolved_env(WASM_FILES_DIR) {
        command.arg("--env").arg(format!("{k}={v}"));
    }
    if !config.files.is_empty() {
        command
            .arg("--dir")
            .arg(format!("{}::{WASM_FILES_DIR}", dir.path().display()));
    }
}

/// Bakes the component under test for `config` (`scripts/bake`, its files written to `dir` and mounted
/// as for `wasmtime serve`): the baked component's path, or the bake's stderr when it refuses.
pub fn bake(config: &TestConfig, dir: &TempDir) -> Result<PathBuf, String> {
    for (name, bytes) in &config.files {
        dir.write(name, bytes);
    }
    let out = dir.path().join("baked.wasm");
    let mut command = Command::new(workspace_root().join("scripts/bake"));
    command.arg(component()).arg(&out);
    configuration_args(&mut command, config, dir);
    let mut child = command
        .env("JWTV_WASMTIME", wasmtime())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn scripts/bake: {e}"));
    let stderr = Captured::default();
    let drained = stderr.drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scripts/bake did not finish within {START_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = drained.join();
    if status.success() {
        Ok(out)
    } else {
        Err(stderr.text())
    }
}

// ---------------------------------------------------------------------------------------------------
// Configuration and temporary files

/// What a test server is started with: its whole environment (nothing is inherited), files written to
/// a fresh directory (refer to them as `{files}/NAME` in `env` values), extra command-line
/// arguments (native only), and how `wasmtime serve` makes instances (Wasm only).
#[derive(Debug, Clone, Default)]
pub struct TestConfig {
    pub env: Vec<(String, String)>,
    pub files: Vec<(String, Vec<u8>)>,
    pub args: Vec<String>,
    /// Requests per instance (`--max-instance-reuse-count`); 64 unless set. 1 makes an instance per
    /// request, as Spin does for WASI 0.2 components.
    pub instance_reuse: Option<u32>,
    /// Entries the in-memory key-value store of each instance starts with
    /// (`-S keyvalue-in-memory-data=KEY=VALUE`; the key-value build only).
    pub keyvalue_data: Vec<(String, String)>,
}

impl TestConfig {
    pub fn new() -> TestConfig {
        TestConfig::default()
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> TestConfig {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    pub fn file(mut self, name: &str, bytes: impl Into<Vec<u8>>) -> TestConfig {
        self.files.push((name.to_owned(), bytes.into()));
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> TestConfig {
        self.args.push(arg.into());
        self
    }

    pub fn instance_reuse(mut self, requests: u32) -> TestConfig {
        self.instance_reuse = Some(requests);
        self
    }

    pub fn keyvalue_entry(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> TestConfig {
        self.keyvalue_data.push((key.into(), value.into()));
        self
    }

    fn resolved_env(&self, files_dir: &str) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), v.replace(FILES, files_dir)))
            .collect()
    }
}

/// A directory under the system temp dir, unique per process and call, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("jwtv-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write test file");
        path
    }
}

impl Default for TempDir {
    fn default() -> TempDir {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------------
// Output capture

/// Bytes a child wrote to one of its pipes, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits (bounded) until the captured text contains `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.text().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn drain(&self, pipe: impl Read + Send + 'static) -> thread::JoinHandle<()> {
        let sink = self.0.clone();
        thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------------
// A running server

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub target: Target,
    stdout: Captured,
    stderr: Captured,
    _dir: TempDir,
}

impl Server {
    /// Starts the service of the target chosen by `JWTV_TEST_TARGET`; panics (with its stderr) when it
    /// does not come up within [`START_TIMEOUT`].
    pub fn start(config: TestConfig) -> Server {
        Server::start_on(Target::from_env(), config)
    }

    pub fn start_on(target: Target, config: TestConfig) -> Server {
        match target {
            Target::Native => Server::start_native(config),
            Target::Wasm => Server::start_wasm(config),
        }
    }

    fn start_native(config: TestConfig) -> Server {
        let dir = TempDir::new();
        for (name, bytes) in &config.files {
            dir.write(name, bytes);
        }
        let env = config.resolved_env(&dir.path().to_string_lossy());
        let mut command = Command::new(binary());
        command.args(&config.args);
        // An ephemeral port on loopback, unless the test sets the address itself.
        let listen_given = config.args.iter().any(|a| a == "--listen")
            || config.env.iter().any(|(k, _)| k == "JWT_LISTEN");
        if !listen_given {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn jwt-validator");
        let stderr = Captured::default();
        let stderr_thread = stderr.drain(child.stderr.take().unwrap());

        // Read stdout line by line until the listening line; keep draining (and recording) afterwards
        // so the child never blocks on a full pipe.
        let stdout = Captured::default();
        let (tx, rx) = mpsc::channel::<String>();
        let out_sink = stdout.clone();
        let pipe = child.stdout.take().unwrap();
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        out_sink
                            .0
                            .lock()
                            .unwrap()
                            .extend_from_slice(line.as_bytes());
                        if let Some(rest) = line
                            .trim_end()
                            .strip_prefix("jwt-validator listening on ")
                            .and_then(|url| {
                                url.strip_prefix("http://")
                                    .or_else(|| url.strip_prefix("https://"))
                            })
                        {
                            let _ = tx.send(rest.to_owned());
                        }
                    }
                }
            }
        });

        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("did not print its listening line within {START_TIMEOUT:?}")
                    }
                    mpsc::RecvTimeoutError::Disconnected => {
                        format!("exited before listening ({status:?})")
                    }
                };
                // The child is gone, so its stderr pipe closes: collect the last bytes.
                let _ = stderr_thread.join();
                panic!(
                    "jwt-validator {why}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    stdout.text(),
                    stderr.text()
                );
            }
        };
        let addr: SocketAddr = addr
            .parse()
            .unwrap_or_else(|_| panic!("listening line names no socket address: {addr:?}"));
        assert!(
            addr.ip().is_loopback(),
            "listening on {addr}, expected 127.0.0.1"
        );
        Server {
            child,
            addr,
            target: Target::Native,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    fn start_wasm(config: TestConfig) -> Server {
        if baked() {
            return Server::start_baked(config, TestConfig::new());
        }
        let dir = TempDir::new();
        Server::serve_wasm(&component(), config, dir)
    }

    /// Bakes the component under test for `baked` (`scripts/bake`), then serves the baked component
    /// with `serving`'s environment and files; panics with the bake's error if it refuses.
    pub fn start_baked(baked: TestConfig, serving: TestConfig) -> Server {
        let dir = TempDir::new();
        match bake(&baked, &dir) {
            Ok(component) => Server::serve_wasm(&component, serving, dir),
            Err(refusal) => panic!("scripts/bake refused the configuration: {refusal}"),
        }
    }

    fn serve_wasm(component: &Path, config: TestConfig, dir: TempDir) -> Server {
        assert!(
            component.is_file(),
            "JWTV_TEST_TARGET=wasm but the component {} is missing: build it with \
             `cargo build -p jwtv-component --target wasm32-wasip2 --profile wasm` (scripts/test does)",
            component.display()
        );
        assert!(
            config.args.is_empty(),
            "command-line arguments are native only: {:?}",
            config.args
        );
        for (name, bytes) in &config.files {
            dir.write(name, bytes);
        }
        // `wasmtime serve` needs a port up front. Another test may draw the same free port before our
        // wasmtime binds it; then ours exits and is retried on another port. Only our own process's
        // "Serving HTTP on <addr>" counts as ready: a connection could reach the other test's server.
        let mut attempts = 0;
        let (child, addr, stdout, stderr) = loop {
            attempts += 1;
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let mut command = Command::new(wasmtime());
            // Instances are reused, as docs/wasm.md recommends: each instance then serves many
            // requests, so anything one request left behind would show in the next.
            let reuse = config.instance_reuse.unwrap_or(64).to_string();
            command.args(["serve", "-S", "cli", "--max-instance-reuse-count", &reuse]);
            if wasi_p3() {
                command.args(["-S", "p3", "-W", "component-model-async"]);
            }
            if keyvalue() {
                for (key, value) in &config.keyvalue_data {
                    command
                        .arg("-S")
                        .arg(format!("keyvalue-in-memory-data={key}={value}"));
                }
            }
            command.args(["--addr", &addr.to_string()]);
            configuration_args(&mut command, &config, &dir);
            command
                .arg(component)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", std::env::var_os("HOME").unwrap_or_default())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = command.spawn().unwrap_or_else(|e| {
                panic!("spawn {}: {e} (run scripts/setup)", wasmtime().display())
            });
            let stdout = Captured::default();
            stdout.drain(child.stdout.take().unwrap());
            let stderr = Captured::default();
            stderr.drain(child.stderr.take().unwrap());

            let ready = format!("Serving HTTP on http://{addr}/");
            let deadline = Instant::now() + START_TIMEOUT;
            let exited = loop {
                if stderr.text().contains(&ready) {
                    break None;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    break Some(status);
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "wasmtime serve did not listen on {addr} within {START_TIMEOUT:?}\n--- stderr ---\n{}",
                        stderr.text()
                    );
                }
                thread::sleep(Duration::from_millis(20));
            };
            match exited {
                None => break (child, addr, stdout, stderr),
                Some(_) if attempts < 5 => continue,
                Some(status) => panic!(
                    "wasmtime serve exited before listening ({status})\n--- stderr ---\n{}",
                    stderr.text()
                ),
            }
        };
        Server {
            child,
            addr,
            target: Target::Wasm,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout_text(&self) -> String {
        self.stdout.text()
    }

    pub fn stdout(&self) -> &Captured {
        &self.stdout
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    pub fn stderr(&self) -> &Captured {
        &self.stderr
    }

    /// Sends SIGTERM (through the `kill` command, by PID) and waits up to `timeout` for the exit.
    pub fn terminate(mut self, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        wait_timeout(&mut self.child, timeout)
    }

    /// The server writes `needle` to stderr within a few seconds. Waited for, not read at once: another
    /// thread drains the pipe, so a line already written may not have arrived yet.
    pub fn assert_logged(&self, needle: &str) {
        assert!(
            self.stderr.wait_for(needle, Duration::from_secs(5)),
            "stderr lacks {needle:?}:\n{}",
            self.stderr_text()
        );
    }

    /// The server's logs must never hold a token (security.md, Service).
    pub fn assert_not_logged(&self, secret: &str) {
        let logs = self.stderr_text() + &self.stdout_text();
        assert!(
            !logs.contains(secret),
            "the server logged a token or secret ({} bytes)",
            secret.len()
        );
    }

    // ---- HTTP

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(self.addr, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    /// `POST path` with `Content-Type: application/json`.
    pub fn post_json(&self, path: &str, body: &[u8]) -> Response {
        self.request("POST", path, &[("Content-Type", "application/json")], body)
    }

    /// `POST /validate {"token": token}`.
    pub fn validate(&self, token: &str) -> Response {
        let body = serde_json::to_vec(&serde_json::json!({ "token": token })).unwrap();
        self.post_json("/validate", &body)
    }

    /// Sends raw bytes and returns every byte answered until the server closes (or [`IO_TIMEOUT`]).
    pub fn send_raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut stream = self.connect();
        // The server may answer and close before taking every byte (oversized input): what it
        // answered still counts.
        let _ = stream.write_all(bytes);
        read_to_close(&mut stream)
    }

    pub fn connect(&self) -> TcpStream {
        let stream =
            TcpStream::connect_timeout(&self.addr, IO_TIMEOUT).expect("connect to the server");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // `Child::kill` signals exactly this child's PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago on 127.0.0.1 (for hosts that cannot report the port they bound).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// Polls `child` until it exits or `timeout` passes (then returns `None`, leaving it running).
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The outcome of running the native binary to completion.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the native binary with `args`, exactly the environment of `config` and its files, and waits
/// up to `timeout` for it to exit. Panics, after killing it, if it is still running (for example
/// because it started serving a configuration it should have refused).
pub fn run_to_exit(config: &TestConfig, args: &[&str], timeout: Duration) -> Exited {
    let dir = TempDir::new();
    for (name, bytes) in &config.files {
        dir.write(name, bytes);
    }
    let files = dir.path().to_string_lossy().into_owned();
    let args: Vec<String> = config
        .args
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
        .map(|a| a.replace(FILES, &files))
        .collect();
    let mut child = Command::new(binary())
        .args(&args)
        .env_clear()
        .envs(config.resolved_env(&files))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jwt-validator");
    let stdout = Captured::default();
    let out_thread = stdout.drain(child.stdout.take().unwrap());
    let stderr = Captured::default();
    let err_thread = stderr.drain(child.stderr.take().unwrap());
    let Some(status) = wait_timeout(&mut child, timeout) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "jwt-validator {args:?} was still running after {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            stdout.text(),
            stderr.text()
        );
    };
    let _ = out_thread.join();
    let _ = err_thread.join();
    Exited {
        status,
        stdout: stdout.text(),
        stderr: stderr.text(),
    }
}

// ---------------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                self.text()
            )
        })
    }

    /// `error` of a JSON error body.
    pub fn error_code(&self) -> Option<String> {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()?
            .get("error")?
            .as_str()
            .map(str::to_owned)
    }

    pub fn header_map(&self) -> HashMap<String, String> {
        self.headers.iter().cloned().collect()
    }
}

/// One request on a fresh connection with `Connection: close`; reads the answer until the server
/// closes. `Host` and `Content-Length` are added unless given.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("host") {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has("content-length")
        && !has("transfer-encoding")
        && (!body.is_empty() || method == "POST" || method == "PUT")
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("Connection: close\r\n\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);

    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    // A server may answer (413) and close before reading all of a large body: a failed write is fine
    // as long as an answer arrives.
    let _ = stream.write_all(&bytes);
    let raw = read_to_close(&mut stream);
    parse_response(&raw).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: {e}; raw answer: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// Reads until EOF, a reset, or [`IO_TIMEOUT`] without data.
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    raw
}

/// Parses one HTTP/1.1 response (Content-Length, chunked, or delimited by close).
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let head_end = find(raw, b"\r\n\r\n").ok_or("no complete response head")?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let rest = &raw[head_end + 4..];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len:?}"))?;
        if rest.len() < len {
            return Err(format!(
                "body shorter ({}) than content-length {len}",
                rest.len()
            ));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
