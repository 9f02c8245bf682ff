//! Typed daemon configuration: a TOML file plus `DIALERD__SECTION__KEY` environment overrides.
//!
//! Loading goes through the `config` crate so file and environment merge into one tree; that tree
//! is deserialised with `serde_path_to_error` so every error names the key, and the key's origin
//! (the file or the environment) is looked up so the message names where it came from.

mod env;
mod error;
mod secret;
mod types;

pub use env::list_keys;
pub use error::ConfigError;
pub use secret::Secret;
pub use types::*;

use std::path::{Path, PathBuf};

/// Prefix of environment overrides; `DIALERD__SIP__LISTEN` sets `sip.listen`.
pub const ENV_PREFIX: &str = "DIALERD";

/// The config file used when none is given: `conf/dialerd.toml` in the working directory when it
/// exists (a checkout), else the system path.
pub fn default_path() -> PathBuf {
    let local = PathBuf::from("conf/dialerd.toml");
    if local.is_file() {
        local
    } else {
        PathBuf::from("/etc/dialerd/dialerd.toml")
    }
}

/// Reads `path`, applies environment overrides, and returns a validated configuration.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, std::env::vars())
}

/// Like [`load`], with the environment given explicitly (tests use this to stay hermetic).
pub fn load_with_env(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    from_toml_str(&text, &file, env)
}

/// Parses configuration text that came from `file` (used in messages) plus overrides from `env`.
pub fn from_toml_str(
    text: &str,
    file: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let tree = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(env::EnvOverrides::new(env))
        .build()
        .map_err(|e| ConfigError::Syntax {
            file: file.to_string(),
            message: one_line(&e.to_string()),
        })?;

    let cfg: Config = serde_path_to_error::deserialize(tree.clone()).map_err(|e| {
        let key = e.path().to_string();
        let origin = origin_of(&tree, &key, file);
        ConfigError::Value {
            origin,
            key,
            message: clean_message(&e.into_inner().to_string()),
        }
    })?;
    cfg.validate().map_err(|(key, want)| ConfigError::Value {
        origin: origin_of(&tree, &key, file),
        key,
        message: want,
    })?;
    Ok(cfg)
}

/// Where a key's value came from: the file, or the environment variable that set it.
fn origin_of(tree: &config::Config, key: &str, file: &str) -> String {
    // `Config::get` re-deserialises and loses origins, so walk the collected tree instead. An
    // error inside a value reports the path to it; the deepest node found on the way decides.
    let Ok(root) = config::Source::collect(tree) else {
        return file.to_string();
    };
    let mut origin = None;
    let mut node: Option<&config::Value> = None;
    for segment in key.split('.') {
        let (name, indices) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        node = match node {
            None => root.get(name),
            Some(v) => match &v.kind {
                config::ValueKind::Table(t) => t.get(name),
                _ => None,
            },
        };
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            node = match (node, idx.parse::<usize>()) {
                (
                    Some(config::Value {
                        kind: config::ValueKind::Array(a),
                        ..
                    }),
                    Ok(i),
                ) => a.get(i),
                _ => None,
            };
        }
        match node {
            Some(v) => origin = v.origin().map(str::to_string).or(origin),
            None => break,
        }
    }
    match origin {
        Some(o) if !o.contains(file) && o.contains("environment") => {
            format!("environment variable {}", env_name(key))
        }
        _ => file.to_string(),
    }
}

/// The environment variable that sets `key`.
pub fn env_name(key: &str) -> String {
    let key = key.split('[').next().unwrap_or(key);
    format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_uppercase())
}

/// Drops the `config` crate's own location suffixes so the message reads once, cleanly.
fn clean_message(msg: &str) -> String {
    let msg = msg.split(" for key `").next().unwrap_or(msg);
    let msg = msg
        .split(" in the environment")
        .next()
        .unwrap_or(msg)
        .trim();
    // Say what is wanted where serde's own words do not.
    if msg.contains("socket address") {
        format!("{msg}; wanted IP:PORT such as \"127.0.0.1:5060\" or \"[::1]:5060\"")
    } else if msg.ends_with("expected a duration") {
        format!("{msg} such as \"30s\", \"500ms\" or \"5m\"")
    } else {
        msg.to_string()
    }
}

/// The TOML parser's multi-line report, as one line: where, then what.
fn one_line(msg: &str) -> String {
    let lines: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match (lines.first(), lines.last()) {
        (Some(first), Some(last)) if lines.len() > 1 => format!("{first}: {last}"),
        _ => msg.trim().to_string(),
    }
}

#[cfg(test)]
mod tests;
