//! Logging: tracing-subscriber with a reloadable level, text or JSON, journald-friendly.

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::{layer::SubscriberExt, reload, util::SubscriberInitExt, EnvFilter, Layer};

/// Errors from setting up or changing logging.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The level/filter string does not parse.
    #[error("bad log filter \"{filter}\": {message}")]
    Filter {
        /// The filter as given.
        filter: String,
        /// The parser's message.
        message: String,
    },
    /// A global subscriber was already installed.
    #[error("logging already initialised")]
    AlreadyInit,
    /// The reload handle is gone.
    #[error("cannot change the log level: {0}")]
    Reload(String),
}

/// Changes the active log filter at run time.
pub struct LogHandle {
    handle: reload::Handle<EnvFilter, tracing_subscriber::Registry>,
    /// `RUST_LOG` was set at start; it pins the level and config changes are ignored.
    pinned_by_env: bool,
}

fn parse_filter(filter: &str) -> Result<EnvFilter, LogError> {
    EnvFilter::builder()
        .parse(filter)
        .map_err(|e| LogError::Filter {
            filter: filter.to_string(),
            message: e.to_string(),
        })
}

/// Installs the global subscriber. `RUST_LOG`, when set, takes precedence over `log.level`.
pub fn init(cfg: &LogConfig) -> Result<LogHandle, LogError> {
    let env_filter = std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty());
    let filter = parse_filter(env_filter.as_deref().unwrap_or(&cfg.level))?;
    let (filter_layer, handle) = reload::Layer::new(filter);

    // journald stamps each line itself; JOURNAL_STREAM tells us stderr goes there.
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let ansi = std::io::stderr().is_terminal();
    let fmt_layer = match (cfg.format, under_journal) {
        (LogFormat::Json, _) => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        (LogFormat::Text, true) => tracing_subscriber::fmt::layer()
            .without_time()
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .boxed(),
        (LogFormat::Text, false) => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(fmt_layer)
        .try_init()
        .map_err(|_| LogError::AlreadyInit)?;
    Ok(LogHandle {
        handle,
        pinned_by_env: env_filter.is_some(),
    })
}

impl LogHandle {
    /// Applies a new level from the configuration; returns false when `RUST_LOG` pins it.
    pub fn set_level(&self, level: &str) -> Result<bool, LogError> {
        if self.pinned_by_env {
            return Ok(false);
        }
        let filter = parse_filter(level)?;
        self.handle
            .reload(filter)
            .map_err(|e| LogError::Reload(e.to_string()))?;
        Ok(true)
    }
}
