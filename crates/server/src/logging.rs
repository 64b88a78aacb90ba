//! Structured logs on stderr (stdout is reserved for the `listening on` line, the demo curl line and
//! minted tokens, which scripts read).

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

pub fn init(format: LogFormat, default_level: &str) {
    let (filter, bad_filter) = match std::env::var(jwtv_config::table::RUST_LOG.var()) {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(default_level), Some(e.to_string())),
        },
        _ => (EnvFilter::new(default_level), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second initialisation (tests) is harmless, so its error is ignored.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    if let Some(error) = bad_filter {
        tracing::warn!(%error, "{} is not a valid filter; logging at {default_level}", jwtv_config::table::RUST_LOG.var());
    }
}
