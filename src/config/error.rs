//! Configuration errors: each names the file (or environment variable) and the key.

/// What went wrong while loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {file}: {source}")]
    Read {
        /// The path as given.
        file: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {file} is not valid TOML: {message}")]
    Syntax {
        /// The path as given.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A key is unknown or its value is wrong.
    #[error("{origin}: key `{key}`: {message}")]
    Value {
        /// The file, or the environment variable that set the key.
        origin: String,
        /// Dotted path of the key, e.g. `sip.listen[0]`.
        key: String,
        /// What is wrong and what is wanted.
        message: String,
    },
}
