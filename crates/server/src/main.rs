//! `jwt-validator`: the native JWT validation service.
//!
//! A thin shell around [`jwtv_service`]: it reads the configuration (environment, TOML file, CLI),
//! listens on TCP with hyper, protects itself (connection count, header size, request time, body size),
//! hands every request to [`jwtv_service::Service::handle`] and writes back the answer. It adds what only
//! a long-running native process needs: `/metrics`, structured logs, graceful shutdown, configuration
//! reload without a restart, and the `mint`, `check-config` and `explain` helpers.
//!
//! What it must not do: decide anything about a token or shape an answer to one. Every verdict, status
//! code and body comes from the service and the verifier, which the WebAssembly component shares, so
//! both shells behave identically. Logs never carry a token, a secret or a key.

mod cli;
mod connections;
mod decision_log;
mod demo;
mod explain;
mod fdlimit;
mod grpc;
mod keys;
mod logging;
mod metrics;
mod mint;
mod policy_text;
mod probe;
mod reload;
mod replay;
mod replay_redis;
mod serve;
mod tls;

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser as _;
use jwtv_config::{ConfigError, Loaded};

use crate::cli::{Cli, Command, ExplainArgs, GlobalArgs, MintArgs, ProbeArgs, ServeArgs};

/// A configuration or usage problem: one line on stderr, exit status 2.
const EXIT_CONFIG: u8 = 2;
/// A runtime failure (cannot listen, I/O): exit status 1.
const EXIT_RUNTIME: u8 = 1;
/// `explain`: the token is refused.
const EXIT_REFUSED: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.global.log_format, "info");
    match cli.command {
        None => serve(cli.serve, &cli.global),
        Some(Command::Serve(args)) => serve(args.or(cli.serve), &cli.global),
        Some(Command::Mint(args)) => mint(&args, &cli.global),
        Some(Command::CheckConfig) => check_config(&cli.global),
        Some(Command::Explain(args)) => explain(&args, &cli.global),
        Some(Command::Probe(args)) => probe(&args),
        Some(Command::ConfigReference) => config_reference(),
    }
}

/// Loads the configuration from the process environment, `--config` standing in for the variable.
fn load(global: &GlobalArgs) -> (Result<Loaded, ConfigError>, reload::Inputs) {
    reload::Source::new(global.config.as_deref()).load()
}

fn config_error(error: &ConfigError) -> ExitCode {
    eprintln!("jwt-validator: configuration error: {error}");
    ExitCode::from(EXIT_CONFIG)
}

fn fail(code: u8, error: &anyhow::Error) -> ExitCode {
    // `{:#}` keeps the context chain on one line; never the Debug form, which RUST_BACKTRACE would
    // extend with a backtrace.
    eprintln!("jwt-validator: {error:#}");
    ExitCode::from(code)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn serve(args: ServeArgs, global: &GlobalArgs) -> ExitCode {
    let (loaded, inputs, demo_token) = if args.demo {
        match demo::load() {
            Ok(demo) => (demo.loaded, reload::Inputs::none(), Some(demo.token)),
            Err(e) => return fail(EXIT_RUNTIME, &e),
        }
    } else {
        match load(global) {
            (Ok(loaded), inputs) => (loaded, inputs, None),
            (Err(e), _) => return config_error(&e),
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    // The flag wins over the configuration: the summary says what is in effect.
    let mut settings = loaded.server.clone();
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    for line in loaded.summary_with(&settings) {
        tracing::info!("{line}");
    }
    let max_token_bytes = loaded.verifier.limits().max_token_bytes;
    let active = match reload::Active::build(loaded, inputs.digest.clone(), None) {
        Ok(active) => active,
        Err(e) => return fail(EXIT_CONFIG, &e.context("configuration error")),
    };
    // The demo reads nothing, and a reload would only replace its secret.
    let reload = (!args.demo).then(|| reload::Plan {
        source: reload::Source::new(global.config.as_deref()),
        inputs,
        interval: (args.reload_interval > 0.0)
            .then(|| Duration::from_secs_f64(args.reload_interval)),
    });
    let announce = demo_token.map(|token| {
        Box::new(move |addr: std::net::SocketAddr| {
            format!(
                "curl -s -X POST http://{addr}/validate -H 'content-type: application/json' \
                 -d '{{\"token\":\"{token}\"}}'"
            )
        }) as Box<dyn FnOnce(std::net::SocketAddr) -> String + Send>
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return fail(
                EXIT_RUNTIME,
                &anyhow::Error::new(e).context("cannot start the runtime"),
            );
        }
    };
    // Before the listening line: a replica that answers must be able to check proofs for replay.
    let mut active = active;
    match runtime.block_on(replay_redis::open(&settings.dpop_replay)) {
        Ok(Some(store)) => {
            active.replay = Arc::new(replay::ReplayStore::redis(
                store,
                settings.dpop_replay.on_error,
            ));
        }
        Ok(None) => {}
        Err(e) => return fail(EXIT_RUNTIME, &e),
    }
    let setup = serve::Setup {
        current: Arc::new(reload::Current::new(active)),
        reload,
        settings,
        max_token_bytes,
        announce,
    };
    match runtime.block_on(serve::run(setup)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_RUNTIME, &e),
    }
}

fn mint(args: &MintArgs, global: &GlobalArgs) -> ExitCode {
    let loaded = match load(global).0 {
        Ok(loaded) => loaded,
        Err(e) => return config_error(&e),
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let minted = match mint::mint(&loaded, args, now_secs()) {
        Ok(minted) => minted,
        Err(e) => return fail(EXIT_CONFIG, &e.context("mint")),
    };
    if let Some(reason) = &minted.refused {
        eprintln!(
            "jwt-validator: warning: the configured validator would refuse this token: {reason}"
        );
    }
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", minted.token).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(
            EXIT_RUNTIME,
            &anyhow::Error::new(e).context("cannot write the token"),
        ),
    }
}

/// Prints `docs/configuration.md`, rendered from the settings table.
fn config_reference() -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(jwtv_config::reference::markdown().as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(
            EXIT_RUNTIME,
            &anyhow::Error::new(e).context("cannot write the reference"),
        ),
    }
}

fn check_config(global: &GlobalArgs) -> ExitCode {
    let (loaded, inputs) = load(global);
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return config_error(&e),
    };
    let mut out = String::new();
    for line in loaded
        .summary()
        .iter()
        .chain(&policy_text::describe(&loaded))
    {
        out.push_str(line);
        out.push('\n');
    }
    for warning in &loaded.warnings {
        out.push_str("warning: ");
        out.push_str(warning);
        out.push('\n');
    }
    out.push_str("configuration digest: sha256:");
    out.push_str(&inputs.digest);
    out.push('\n');
    out.push_str("configuration OK\n");
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(
            EXIT_RUNTIME,
            &anyhow::Error::new(e).context("cannot write the summary"),
        ),
    }
}

fn explain(args: &ExplainArgs, global: &GlobalArgs) -> ExitCode {
    let token = match args.token.as_deref() {
        Some(token) if token != "-" => token.to_owned(),
        _ => {
            let mut read = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut read) {
                let e = anyhow::Error::new(e).context("cannot read the token from stdin");
                return fail(EXIT_CONFIG, &e);
            }
            // Piped with its line end.
            let end = read.trim_end_matches(['\n', '\r']).len();
            read.truncate(end);
            read
        }
    };
    let loaded = match load(global).0 {
        Ok(loaded) => loaded,
        Err(e) => return config_error(&e),
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let proof = args.dpop.as_ref().map(|proof| explain::ProofArgs {
        proof: proof.clone(),
        method: args.method.clone(),
        url: args.url.clone().unwrap_or_default(),
    });
    let explanation = match explain::explain(loaded, &token, proof.as_ref(), now_secs()) {
        Ok(explanation) => explanation,
        Err(e) => return fail(EXIT_CONFIG, &e.context("cannot prepare the keys")),
    };
    let text = if args.json {
        format!("{}\n", explanation.report)
    } else {
        explain::render_text(&explanation.report)
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        let e = anyhow::Error::new(e).context("cannot write the explanation");
        return fail(EXIT_RUNTIME, &e);
    }
    if explanation.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REFUSED)
    }
}

fn probe(args: &ProbeArgs) -> ExitCode {
    // The listener's TLS files, read as the server reads them: the probe speaks TLS when it is on.
    let env = |name: &str| std::env::var(name).ok();
    let read = |path: &std::path::Path| std::fs::read(path);
    let tls = match jwtv_config::tls_from_env(&env, &read) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("jwt-validator: probe: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match probe::probe(&args.url, Duration::from_secs(args.timeout), tls.as_ref()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jwt-validator: probe: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
