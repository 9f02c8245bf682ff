//! Drop-folder imports: every `poll_interval` the worker looks into `<inbox dir>/<campaign
//! id>/` (made for every campaign, so an SFTP user can write there). A file counts as complete
//! when it is not hidden, not `*.part`, and its size and modification time are the same on two
//! polls in a row ([`Settling`], the sans-IO part); it is then imported with the campaign's
//! saved import settings and moved to `done/` with its report beside it
//! (`NAME.report.json`), or to `failed/` with the reason (`NAME.reason.txt`). The store
//! records each file by name, size, time and SHA-256 before its import starts, so no file is
//! imported twice, also across restarts (a file seen again goes to `failed/`, saying so).

use crate::store::inbox::InboxFile;
use crate::store::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Folder of imported files inside a campaign's folder.
pub const DONE: &str = "done";
/// Folder of files that could not be imported.
pub const FAILED: &str = "failed";
/// Who the import history names.
pub const ACTOR: &str = "inbox";

/// What one poll saw of a file: (size, modification time in ms).
pub type Seen = (u64, i64);

/// Which files have stopped changing: a file is ready when a poll sees the same size and time
/// as the poll before. Files gone from a poll are forgotten.
#[derive(Debug, Default)]
pub struct Settling {
    last: HashMap<PathBuf, Seen>,
}

impl Settling {
    /// Takes one poll's files; returns those that are ready, in name order.
    pub fn poll(&mut self, files: Vec<(PathBuf, Seen)>) -> Vec<PathBuf> {
        let mut ready = Vec::new();
        let mut now = HashMap::with_capacity(files.len());
        for (path, seen) in files {
            if self.last.get(&path) == Some(&seen) {
                ready.push(path.clone());
            }
            now.insert(path, seen);
        }
        self.last = now;
        ready.sort();
        ready
    }

    /// Forgets a file (taken, or moved away).
    pub fn forget(&mut self, path: &Path) {
        self.last.remove(path);
    }
}

/// Whether a file name is one to import: not hidden, not still being written (`*.part`),
/// not a report or reason this worker wrote.
pub fn wanted(name: &str) -> bool {
    !(name.starts_with('.') || name.ends_with(".part"))
}

/// Runs until `stop` is cancelled.
pub async fn run(store: Store, dir: PathBuf, every: Duration, stop: CancellationToken) {
    let mut settling = Settling::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while stop.run_until_cancelled(tick.tick()).await.is_some() {
        let files = match scan(&store, &dir).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "inbox: cannot read the drop folders");
                continue;
            }
        };
        for path in settling.poll(files) {
            if stop.is_cancelled() {
                return;
            }
            settling.forget(&path);
            if let Err(e) = take(&store, &path).await {
                tracing::warn!(file = %path.display(), error = %e, "inbox: cannot take a file");
            }
        }
    }
}

/// Makes a folder per campaign and lists the candidate files of each, with size and time.
async fn scan(store: &Store, dir: &Path) -> Result<Vec<(PathBuf, Seen)>, StoreError> {
    let campaigns: Vec<i64> = store.campaigns().await?.iter().map(|c| c.id).collect();
    let dir = dir.to_path_buf();
    let io = |path: &Path, source| StoreError::File {
        path: path.to_path_buf(),
        source,
    };
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for id in campaigns {
            let folder = dir.join(id.to_string());
            std::fs::create_dir_all(&folder).map_err(|e| io(&folder, e))?;
            for entry in std::fs::read_dir(&folder).map_err(|e| io(&folder, e))? {
                let entry = entry.map_err(|e| io(&folder, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() || !wanted(&name) {
                    continue;
                }
                out.push((entry.path(), (meta.len(), mtime_ms(&meta))));
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| io(Path::new("inbox"), std::io::Error::other(e)))?
}

fn mtime_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// The file as the store records it: its campaign (the folder's name), size, time, SHA-256.
fn identify(path: &Path) -> std::io::Result<InboxFile> {
    let campaign_id = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| std::io::Error::other("not in a campaign's folder"))?;
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(InboxFile {
        campaign_id,
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size: meta.len() as i64,
        mtime_ms: mtime_ms(&meta),
        sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// Imports one ready file and moves it to `done/` or `failed/`.
async fn take(store: &Store, path: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::File {
        path: path.to_path_buf(),
        source,
    };
    let p = path.to_path_buf();
    let file = tokio::task::spawn_blocking(move || identify(&p))
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
    if let Some((outcome, import, reason)) = store.inbox_seen(&file).await? {
        let why = match (outcome.as_str(), import) {
            ("done", Some(i)) => format!("already imported (import {i}); not imported again"),
            ("importing", _) => {
                "its import was cut short by a restart; not imported again: see the campaign's \
                 imports"
                    .to_string()
            }
            _ => format!(
                "already taken and failed: {}",
                reason.unwrap_or_else(|| "no reason kept".into())
            ),
        };
        tracing::info!(file = %path.display(), reason = %why, "inbox: file seen before");
        return settle(path, FAILED, "reason.txt", why.into_bytes()).await;
    }
    let id = store.inbox_taking(&file).await?;
    let settings = match store.import_settings(file.campaign_id).await {
        Ok(s) => s.settings,
        Err(e) => {
            store.inbox_taken(id, Err(e.to_string())).await?;
            return settle(path, FAILED, "reason.txt", e.to_string().into_bytes()).await;
        }
    };
    let input = std::fs::File::open(path).map_err(io)?;
    match store
        .import_csv(file.campaign_id, settings.options(ACTOR), input)
        .await
    {
        Ok(report) => {
            store.inbox_taken(id, Ok(report.id)).await?;
            tracing::info!(file = %path.display(), import = report.id, inserted = report.inserted, bad = report.bad, "inbox: file imported");
            let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
            settle(path, DONE, "report.json", json).await
        }
        Err(StoreError::Conflict(reason)) if reason.contains("is running") => {
            // Another import holds the campaign: nothing was written; tried on a later poll.
            store.inbox_untake(id).await
        }
        Err(e) => {
            store.inbox_taken(id, Err(e.to_string())).await?;
            tracing::info!(file = %path.display(), error = %e, "inbox: file not imported");
            settle(path, FAILED, "reason.txt", e.to_string().into_bytes()).await
        }
    }
}

/// Moves `path` into the `folder` beside it (a free name: `NAME`, else `NAME.2`, …) and writes
/// `note` next to it as `NAME.<suffix>`.
async fn settle(path: &Path, folder: &str, suffix: &str, note: Vec<u8>) -> Result<(), StoreError> {
    let path = path.to_path_buf();
    let folder = folder.to_string();
    let suffix = suffix.to_string();
    let at = path.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let parent = path.parent().unwrap_or(Path::new("."));
        let target_dir = parent.join(&folder);
        std::fs::create_dir_all(&target_dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut target = target_dir.join(&name);
        let mut n = 2;
        while target.exists() {
            target = target_dir.join(format!("{name}.{n}"));
            n += 1;
        }
        std::fs::rename(&path, &target)?;
        let mut note_path = target.into_os_string();
        note_path.push(format!(".{suffix}"));
        std::fs::write(note_path, note)
    })
    .await
    .map_err(|e| StoreError::File {
        path: at.clone(),
        source: std::io::Error::other(e),
    })?
    .map_err(|source| StoreError::File { path: at, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_ready_when_two_polls_see_it_unchanged() {
        let a = PathBuf::from("1/a.csv");
        let b = PathBuf::from("1/b.csv");
        let mut s = Settling::default();
        assert!(s.poll(vec![(a.clone(), (10, 1))]).is_empty());
        // Still growing: not ready.
        assert!(s
            .poll(vec![(a.clone(), (20, 2)), (b.clone(), (5, 1))])
            .is_empty());
        assert_eq!(
            s.poll(vec![(a.clone(), (20, 2)), (b.clone(), (5, 1))]),
            [a.clone(), b.clone()]
        );
        s.forget(&a);
        assert_eq!(
            s.poll(vec![(a.clone(), (20, 2)), (b.clone(), (5, 1))]),
            vec![b.clone()]
        );
        // Touched without growing: waits again.
        assert!(s.poll(vec![(b.clone(), (5, 9))]).is_empty());
        // Gone, then back: starts over.
        assert!(s.poll(vec![]).is_empty());
        assert!(s.poll(vec![(b.clone(), (5, 9))]).is_empty());
    }

    #[test]
    fn part_and_hidden_files_wait() {
        assert!(wanted("list.csv"));
        assert!(!wanted("list.csv.part"));
        assert!(!wanted(".list.csv.swp"));
    }
}
