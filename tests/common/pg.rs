//! A throwaway PostgreSQL cluster for the tests: one per test binary, started on first use
//! with Debian's `initdb` and `pg_ctl` in a temporary directory on a free loopback port, as
//! an unprivileged user (`nobody` when the tests run as root, since PostgreSQL refuses root),
//! and each test gets its own database. A watcher process stops the cluster and removes its
//! directory when the test binary exits, however it exits; no system cluster is touched.
//!
//! The store's own unit tests include this file too (`src/store/mod.rs`, `test_support`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The store backends a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the test's directory.
    Sqlite,
    /// A fresh database in the shared throwaway cluster.
    Postgres,
}

/// The running cluster.
pub struct Cluster {
    port: u16,
    password: String,
    bin: PathBuf,
    dir: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The directory holding `initdb`, `pg_ctl` and `psql`: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL's initdb not found in /usr/lib/postgresql/*/bin (apt-get install postgresql, \
         or set PG_BIN): the store tests run on PostgreSQL too",
    )
}

fn is_root() -> bool {
    // The owner of /proc/self is the effective user.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `program` run as the cluster's user: `nobody` under root, else the current user.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn start() -> Cluster {
        let bin = bin_dir();
        // Not a TempDir: the watcher removes it after this process has gone.
        let dir = tempfile::Builder::new()
            .prefix("dialerd-pg-")
            .tempdir()
            .unwrap()
            .keep();
        let data = dir.join("data");
        let password = format!("t{:x}", std::process::id() ^ 0x5eed_1234);
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, &password).unwrap();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "nobody"]).arg(&dir);
                    c
                },
                "chown the cluster directory to nobody",
            );
        }
        let mut initdb = as_owner(&bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        run(initdb, "initdb");
        // A port can be taken between the probe and the start: try a few.
        for attempt in 0.. {
            let port = free_port();
            let mut ctl = as_owner(&bin.join("pg_ctl"));
            ctl.arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("log"))
                .arg("-o")
                .arg(format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                     -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                    dir.display()
                ))
                .args(["-w", "-t", "60", "start"]);
            let ok = ctl
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                watch(&bin, &dir);
                return Cluster {
                    port,
                    password,
                    bin,
                    dir,
                };
            }
            assert!(
                attempt < 5,
                "pg_ctl start failed: {}",
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
        }
        unreachable!()
    }

    /// The URL of database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// Runs `sql` in database `postgres` with psql.
    pub fn psql(&self, sql: &str) {
        let mut c = Command::new(self.bin.join("psql"));
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(self.url("postgres"));
        run(c, &format!("psql {sql}"));
    }
}

/// Stops the cluster and removes `dir` once this process has exited.
fn watch(bin: &Path, dir: &Path) {
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         {runas}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        runas = if is_root() {
            "runuser -u nobody -- "
        } else {
            ""
        },
        pg_ctl = bin.join("pg_ctl").display(),
        data = dir.join("data").display(),
        dir = dir.display(),
    );
    // `setsid -f` forks the watcher into a session of its own and returns at once.
    let started = Command::new("setsid")
        .args(["-f", "sh", "-c", &stop])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("cannot start the cluster's watcher");
    assert!(started.success(), "cannot start the cluster's watcher");
}

/// The shared cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(Cluster::start)
}

/// A new, empty database in the shared cluster: its URL.
pub fn database() -> String {
    let c = cluster();
    let name = format!("t{}", DATABASES.fetch_add(1, Ordering::Relaxed));
    c.psql(&format!("CREATE DATABASE {name}"));
    c.url(&name)
}

thread_local! {
    static CURRENT: std::cell::Cell<Backend> = const { std::cell::Cell::new(Backend::Sqlite) };
}

/// The backend the test on this thread runs on (SQLite unless [`on`] says otherwise).
pub fn current() -> Backend {
    CURRENT.with(|c| c.get())
}

/// Runs `test` with `backend` as this thread's backend.
pub fn on<R>(backend: Backend, test: impl FnOnce() -> R) -> R {
    CURRENT.with(|c| c.set(backend));
    test()
}

/// Makes `backend` this thread's backend.
pub fn set(backend: Backend) {
    CURRENT.with(|c| c.set(backend));
}

/// Runs each test once per store backend, as `name::sqlite` and `name::postgres`; the daemon
/// kit (`Daemon::start…`) and [`store_location`] follow the test's backend.
#[macro_export]
macro_rules! both_stores {
    ($($(#[$attr:meta])* fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(#[$attr])*
            #[test]
            fn sqlite() {
                $crate::common::pg::on($crate::common::pg::Backend::Sqlite, || $body)
            }
            $(#[$attr])*
            #[test]
            fn postgres() {
                $crate::common::pg::on($crate::common::pg::Backend::Postgres, || $body)
            }
        }
    )*};
}

/// The `store.url` a daemon in `dir` uses on this thread's backend: none on SQLite (the file in
/// its state directory), else a database of its own, the same one each time for the same
/// `dir` (a restarted daemon finds its data).
pub fn store_url(dir: &Path) -> Option<String> {
    match current() {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let file = dir.join("store.url");
            if let Ok(url) = std::fs::read_to_string(&file) {
                return Some(url);
            }
            let url = database();
            std::fs::write(&file, &url).unwrap();
            Some(url)
        }
    }
}

/// [`both_stores!`] for `async` tests (each on a tokio runtime).
#[macro_export]
macro_rules! both_stores_async {
    ($($(#[$attr:meta])* async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(#[$attr])*
            #[tokio::test]
            async fn sqlite() {
                $crate::common::pg::set($crate::common::pg::Backend::Sqlite);
                $body
            }
            $(#[$attr])*
            #[tokio::test]
            async fn postgres() {
                $crate::common::pg::set($crate::common::pg::Backend::Postgres);
                $body
            }
        }
    )*};
}
