//! This daemon's node name in the store ([`crate::store::nodes`]): taken at start before
//! anything is dialled, renewed every [`HEARTBEAT`], given up at a clean stop. Two daemons of
//! one name would share its task and contact leases and "recover" each other's calls, so a
//! daemon whose name another running instance holds refuses to start.
//!
//! A daemon that was killed leaves its row behind until it expires ([`EXPIRY`]). Its successor
//! on the same state directory need not wait: the state directory's lock file
//! ([`LOCK_FILE`]) is held (`flock`) while a daemon runs and names its instance, so a daemon
//! that gets the lock knows the instance the file names has ended, and takes that instance's
//! row at once. This is what lets a single node (SQLite or PostgreSQL) restart right after a
//! crash; a daemon of the same name elsewhere (another state directory) waits for the expiry.
//!
//! A daemon that stalled past the expiry (stopped, swapped out, its store unreachable) may
//! find at its next renewal that another instance has taken the name meanwhile. The task and
//! contact leases are keyed by the name, so they are that instance's now: the stalled daemon
//! is fenced ([`Node::fenced`], [`Store::fence`]). It stops renewing and dialling, hangs up its
//! calls and writes nothing more on those leases (not even to release them: deleting them
//! would free tasks the other instance dials); the other instance's start already turned the
//! contacts it had in flight into `$interrupted` attempts.

use crate::store::nodes::{NameClaim, NodeRow};
use crate::store::{now_ms, rfc3339, Store, StoreError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the node's row is renewed.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// How long a node's row holds its name without a renewal.
pub const EXPIRY: Duration = Duration::from_secs(15);

/// A renewal is taken to hold the name this much less than [`EXPIRY`]: the nodes' clocks may
/// differ by less.
pub const MARGIN: Duration = Duration::from_secs(4);

/// Until when a renewal written at `now` holds the name, for [`Store::name_held_until`].
fn held_until(now: i64) -> i64 {
    now + ms(EXPIRY) - ms(MARGIN)
}

/// The lock file in the state directory: locked while a daemon runs on it, naming its instance.
pub const LOCK_FILE: &str = "node.lock";

const fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// Errors of taking this daemon's node name.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Another running daemon holds the name.
    #[error(
        "node.name {name:?} is held by another running dialerd ({holder}); give each node its \
         own node.name, or, if that dialerd has stopped, start this one after {expires}"
    )]
    NameTaken {
        /// The name.
        name: String,
        /// The holder: its instance id, start and last heartbeat.
        holder: String,
        /// When its row expires (RFC 3339).
        expires: String,
    },
    /// Another daemon runs on this state directory.
    #[error(
        "the state directory {dir} is in use by another running dialerd ({LOCK_FILE} is locked)"
    )]
    StateDirInUse {
        /// The state directory.
        dir: PathBuf,
    },
    /// The lock file cannot be opened, read or written.
    #[error("cannot use {path}: {source}")]
    LockFile {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl NodeError {
    fn taken(row: NodeRow, now_ms: i64) -> Self {
        Self::NameTaken {
            holder: format!(
                "instance {}, started {}, last heartbeat {}, {:.1} s ago",
                row.instance,
                rfc3339(row.started_ms),
                rfc3339(row.heartbeat_ms),
                (now_ms - row.heartbeat_ms) as f64 / 1000.0
            ),
            name: row.name,
            expires: rfc3339(row.expires_ms),
        }
    }
}

/// The state directory's lock, held for the daemon's life: taken before the store is opened
/// (opening it marks running imports interrupted, which must not happen under a running
/// daemon of the same directory).
pub struct StateLock {
    file: File,
    path: PathBuf,
    /// The instance of the daemon that held the lock before, now ended.
    previous: Option<String>,
}

impl StateLock {
    /// Locks `state_dir` (its [`LOCK_FILE`]); refused while another daemon holds it.
    pub fn acquire(state_dir: &Path) -> Result<Self, NodeError> {
        let path = state_dir.join(LOCK_FILE);
        let file_err = |source| NodeError::LockFile {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(file_err)?;
        // flock(2) rather than File::try_lock, which is newer than the crate's rust-version.
        // SAFETY: flock on a descriptor this function owns; it touches no memory.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(NodeError::StateDirInUse {
                    dir: state_dir.to_path_buf(),
                });
            }
            return Err(file_err(e));
        }
        let mut previous = String::new();
        file.read_to_string(&mut previous).map_err(file_err)?;
        let previous = Some(previous.trim().to_string()).filter(|p| !p.is_empty());
        Ok(Self {
            file,
            path,
            previous,
        })
    }

    /// Names `instance` as the lock holder's.
    fn write(&mut self, instance: &str) -> Result<(), NodeError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.rewind())
            .and_then(|()| self.file.write_all(instance.as_bytes()))
            .and_then(|()| self.file.sync_data())
            .map_err(|source| NodeError::LockFile {
                path: self.path.clone(),
                source,
            })
    }
}

/// This daemon's hold on its node name.
#[derive(Clone)]
pub struct Node {
    store: Store,
    name: String,
    instance: String,
    /// The SIP URI published in the row (written again when the name is reclaimed).
    sip_uri: Arc<std::sync::Mutex<String>>,
    /// Held for the daemon's life (the flock goes with the file).
    _lock: Arc<StateLock>,
    /// Cancelled once another instance holds the name.
    fenced: CancellationToken,
}

impl Node {
    /// Takes `name` in the store for a new instance of this daemon, the state directory
    /// locked, publishing `sip_uri` (empty until [`Node::publish_sip_uri`]).
    pub async fn claim(
        store: Store,
        name: String,
        sip_uri: String,
        mut lock: StateLock,
    ) -> Result<Self, NodeError> {
        let instance = new_instance();
        let now = now_ms();
        match store
            .claim_node(
                &name,
                &instance,
                &sip_uri,
                lock.previous.as_deref(),
                now,
                ms(EXPIRY),
            )
            .await?
        {
            NameClaim::Held => store.name_held_until(held_until(now)),
            // The file keeps naming the predecessor, so that a later start still knows it.
            NameClaim::Taken(row) => return Err(NodeError::taken(row, now)),
        }
        lock.write(&instance)?;
        tracing::info!(node = %name, instance = %instance, "node name taken");
        match store.interrupted_imports(Some(&name), now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(imports = n, "imports left running marked interrupted"),
            Err(e) => tracing::warn!(error = %e, "imports left running not marked interrupted"),
        }
        Ok(Self {
            store,
            name,
            instance,
            sip_uri: Arc::new(std::sync::Mutex::new(sip_uri)),
            _lock: Arc::new(lock),
            fenced: CancellationToken::new(),
        })
    }

    /// Publishes the node's SIP URI (known once the SIP listeners are bound).
    pub async fn publish_sip_uri(&self, sip_uri: String) -> Result<(), NodeError> {
        *self.sip_uri.lock().expect("not poisoned") = sip_uri.clone();
        self.store
            .set_node_sip_uri(&self.name, &self.instance, &sip_uri)
            .await?;
        tracing::info!(node = %self.name, %sip_uri, "node SIP address published");
        Ok(())
    }

    /// This daemon's instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Cancelled once this daemon is fenced: another instance holds its name. Whoever runs
    /// its drivers stops them then (without releasing their leases).
    pub fn fenced(&self) -> CancellationToken {
        self.fenced.clone()
    }

    /// Renews the name every [`HEARTBEAT`] until `stop`, or until this daemon is fenced.
    pub async fn heartbeat(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.tick().await;
        while stop.run_until_cancelled(tick.tick()).await.is_some() {
            let now = now_ms();
            match self
                .store
                .renew_node(&self.name, &self.instance, now, ms(EXPIRY))
                .await
            {
                Ok(true) => self.store.name_held_until(held_until(now)),
                Ok(false) => {
                    if self.reclaim(now).await {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "node heartbeat not written"),
            }
            // A node that died mid-import and is not started again: its imports end here.
            match self.store.interrupted_imports(None, now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    imports = n,
                    "imports of a node no longer up marked interrupted"
                ),
                Err(e) => tracing::warn!(error = %e, "imports of nodes no longer up not checked"),
            }
        }
    }

    /// The row was gone or another instance's at a renewal (this daemon stalled past the
    /// expiry): take the name again if it is free, else fence this daemon; true when fenced.
    async fn reclaim(&self, now: i64) -> bool {
        let sip_uri = self.sip_uri.lock().expect("not poisoned").clone();
        match self
            .store
            .claim_node(&self.name, &self.instance, &sip_uri, None, now, ms(EXPIRY))
            .await
        {
            Ok(NameClaim::Held) => {
                self.store.name_held_until(held_until(now));
                tracing::warn!(node = %self.name, "node name had lapsed; taken again");
                false
            }
            Ok(NameClaim::Taken(row)) => {
                // Before anyone hears of it: from here on no write lands on the leases.
                self.store.fence();
                self.fenced.cancel();
                tracing::error!(
                    node = %self.name,
                    instance = %self.instance,
                    holder = %row.instance.clone(),
                    error = %NodeError::taken(row, now),
                    "node name lost to another instance: this node is fenced and dials no more"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "node heartbeat not written");
                false
            }
        }
    }

    /// Gives the name up (a clean stop), so that it may be taken at once.
    pub async fn release(&self) {
        if let Err(e) = self.store.release_node(&self.name, &self.instance).await {
            // It expires by itself.
            tracing::warn!(error = %e, "node name not released");
        }
    }
}

/// A random instance id: 16 hex digits.
fn new_instance() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
