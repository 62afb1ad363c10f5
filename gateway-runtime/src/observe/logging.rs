//! Logging set-up: `tracing` to stderr, as text or JSON lines.
//!
//! The filter comes from `GATEWAY_LOG`, else `RUST_LOG`, else `info`. Nothing is logged here per request at
//! `info`: the access log is separate ([`crate::observe::access_log`], written off the hot path by its own thread).

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. Does nothing if one is already installed (e.g. by a test).
pub fn init(format: LogFormat) {
    let filter = filter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // An already-installed subscriber is not an error worth reporting: the first one wins.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn filter() -> EnvFilter {
    let configured = ["GATEWAY_LOG", "RUST_LOG"].into_iter().find_map(|var| {
        std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (var, v))
    });
    match configured {
        Some((var, directives)) => EnvFilter::try_new(&directives).unwrap_or_else(|err| {
            // Logging is not up yet, so this one goes to stderr directly.
            eprintln!("warning: ignoring {var}={directives:?}: {err}; logging at info");
            EnvFilter::new("info")
        }),
        None => EnvFilter::new("info"),
    }
}
