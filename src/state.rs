//! The state directory: where it is and whether it is usable.

use std::path::{Path, PathBuf};

/// Errors preparing the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory cannot be created or written.
    #[error("state directory {path} is not usable: {source}")]
    Unusable {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`, first entry) or the configured one.
pub fn resolve(configured: &Path) -> PathBuf {
    std::env::var_os("STATE_DIRECTORY")
        .and_then(|v| {
            v.to_str()
                .and_then(|s| s.split(':').next())
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| configured.to_path_buf())
}

/// Creates the directory if needed and proves it writable.
pub fn prepare(path: &Path) -> Result<PathBuf, StateError> {
    let unusable = |source| StateError::Unusable {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(unusable)?;
    let probe = path.join(".dialerd-write-probe");
    std::fs::write(&probe, b"ok").map_err(unusable)?;
    std::fs::remove_file(&probe).map_err(unusable)?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_creates_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/b");
        assert_eq!(prepare(&state).unwrap(), state);
        assert!(state.is_dir());
    }

    #[test]
    fn prepare_names_an_unusable_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = prepare(&file.join("sub")).unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
    }
}
