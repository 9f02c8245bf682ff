//! The `DIALERD__SECTION__KEY` environment overrides, as a source for the `config` crate.
//!
//! Every value stays a string: the typed deserialisation parses numbers, booleans and durations
//! itself, and a phone number such as `0049…` or `+49…` keeps its zeros and its plus. (The
//! crate's own environment source guesses types first, so `DIALERD__LINES__ACCESS_NUMBER=030…`
//! lost its zero and a one-number list became a number, not a list.) The value of a list key
//! is split on commas.

use super::{Config, ENV_PREFIX};
use config::{Map, Source, Value, ValueKind};

/// Where overridden values say they came from (`origin_of` looks for it).
const ORIGIN: &str = "the environment";

/// Arrays of tables: a file gives them (`[[trunks]]`), a single variable cannot.
const TABLE_ARRAYS: &[&str] = &["trunks", "agents", "calling_rules"];

/// The overrides among `vars`, ready to merge over the file.
#[derive(Debug, Clone)]
pub(super) struct EnvOverrides {
    vars: Vec<(String, String)>,
    lists: Vec<String>,
}

impl EnvOverrides {
    /// The `DIALERD__` variables among `vars`.
    pub(super) fn new(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let prefix = format!("{ENV_PREFIX}__");
        Self {
            vars: vars
                .into_iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .collect(),
            lists: list_keys(),
        }
    }
}

impl Source for EnvOverrides {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        let prefix = format!("{ENV_PREFIX}__");
        let origin = ORIGIN.to_string();
        let text = |s: &str| Value::new(Some(&origin), ValueKind::String(s.to_string()));
        let mut out = Map::new();
        for (name, value) in &self.vars {
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            let key = rest.to_lowercase().replace("__", ".");
            let kind = if self.lists.contains(&key) {
                // An empty value is an empty list; spaces after the commas are forgiven.
                ValueKind::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(text)
                        .collect(),
                )
            } else {
                ValueKind::String(value.clone())
            };
            out.insert(key, Value::new(Some(&origin), kind));
        }
        Ok(out)
    }
}

/// Keys whose environment value is a comma-separated list: every list in the configuration
/// (found in the defaults, so a new list key is one too) but the arrays of tables.
pub fn list_keys() -> Vec<String> {
    fn walk(path: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Array(_) if !TABLE_ARRAYS.contains(&path) => {
                out.push(path.to_string())
            }
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    // Serialising the defaults cannot fail: plain structs, strings, numbers and lists.
    if let Ok(v) = serde_json::to_value(Config::default()) {
        walk("", &v, &mut out);
    }
    out.sort();
    out
}
