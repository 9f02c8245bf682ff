//! The state directory: where it is, whether it is usable, and that what the daemon keeps
//! there (database, WAL, recordings, exports, tokens) is not readable by other users.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Mode of a state directory the daemon creates: the group may read, others nothing.
pub const DIR_MODE: u32 = 0o750;
/// Bits always cleared from the modes of what the daemon creates: group write, all of others.
/// Files come out 0640 (SQLite's 0644, `File::create`'s 0666) and folders 0750.
const UMASK_BITS: libc::mode_t = 0o027;

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

/// Adds 0o027 to the process umask, keeping whatever it already masks: outside systemd (whose
/// unit sets `UMask=0027`) a login shell's 022 would leave the database and recordings
/// world-readable. Process-wide, so `main` calls it once, before anything is created.
pub fn restrict_umask() {
    // SAFETY: umask only swaps the process's mask; it touches no memory of ours.
    unsafe {
        let old = libc::umask(UMASK_BITS);
        libc::umask(old | UMASK_BITS);
    }
}

/// Creates the directory (and missing parents) with [`DIR_MODE`] if needed and proves it
/// writable. An existing directory keeps its mode: the admin (or systemd's
/// `StateDirectoryMode=`) chose it.
pub fn prepare(path: &Path) -> Result<PathBuf, StateError> {
    let unusable = |source| StateError::Unusable {
        path: path.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .map_err(unusable)?;
    let probe = path.join(".dialerd-write-probe");
    std::fs::write(&probe, b"ok").map_err(unusable)?;
    std::fs::remove_file(&probe).map_err(unusable)?;
    Ok(path.to_path_buf())
}

/// `dialerd_state_dir_available_bytes` and `dialerd_state_dir_capacity_bytes`: the file
/// system holding the state directory (database, recordings, exports), read at each scrape.
pub struct DiskCollector {
    dir: PathBuf,
    available: prometheus::IntGauge,
    capacity: prometheus::IntGauge,
}

impl DiskCollector {
    /// A collector for the file system of `dir`.
    pub fn new(dir: &Path) -> Result<Self, prometheus::Error> {
        Ok(Self {
            dir: dir.to_path_buf(),
            available: prometheus::IntGauge::new(
                "dialerd_state_dir_available_bytes",
                "Bytes an unprivileged user may still write on the state directory's file system.",
            )?,
            capacity: prometheus::IntGauge::new(
                "dialerd_state_dir_capacity_bytes",
                "Size of the state directory's file system in bytes.",
            )?,
        })
    }

    /// (available, capacity) in bytes, or `None` when the file system cannot be read.
    fn usage(&self) -> Option<(u64, u64)> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.dir.as_os_str().as_bytes()).ok()?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is NUL-terminated and `st` is a valid out-parameter.
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return None;
        }
        let unit = st.f_frsize as u64;
        Some((st.f_bavail as u64 * unit, st.f_blocks as u64 * unit))
    }
}

impl prometheus::core::Collector for DiskCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        let mut d = self.available.desc();
        d.extend(self.capacity.desc());
        d
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let Some((available, capacity)) = self.usage() else {
            return Vec::new();
        };
        self.available.set(available as i64);
        self.capacity.set(capacity as i64);
        let mut out = self.available.collect();
        out.extend(self.capacity.collect());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_creates_missing_directory_not_open_to_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/b");
        assert_eq!(prepare(&state).unwrap(), state);
        assert!(state.is_dir());
        // Whatever the test's umask, others get nothing (a umask could only take more away).
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !DIR_MODE, 0, "{mode:o}");
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
