//! The SQL store: by default one SQLite file in the state directory (WAL, foreign keys on),
//! or a PostgreSQL database (`store.url`); migrations embedded in the binary and applied at
//! open, and a repository module per concept.
//!
//! Both backends go through sqlx's `Any` driver, so every repository function is written
//! once. SQL is kept portable: `$n` placeholders (also in [`builder::QueryBuilder`]), `ON
//! CONFLICT`, `RETURNING`, epoch milliseconds for times, booleans as 0/1 integers, JSON
//! documents as TEXT, and `CAST(… AS BIGINT)` around sums (PostgreSQL sums to NUMERIC, which
//! `Any` cannot read). What must differ is split in [`backend`], in one place:
//!
//! - the migrations: `migrations/` (SQLite) and `migrations/postgres/`, same versions; the
//!   PostgreSQL set differs in spelling (identity keys, `BIGINT` for every integer,
//!   `DOUBLE PRECISION`, `BYTEA`) and, from 0021, in the contacts' keys: one composite key
//!   onto the task and a trigger that takes a deleted contact's numbers, where SQLite keeps
//!   a key per column (PostgreSQL checks each key with a query per row);
//! - writing an import's batch: on PostgreSQL one statement from one JSON parameter
//!   (`Store::insert_contacts_pg`), on SQLite multi-row `VALUES` lists;
//! - connection set-up: SQLite's `PRAGMA`s (WAL, synchronous FULL, busy timeout);
//! - reading a JSON member of a TEXT document: `json_extract` vs `::jsonb ->>` (a numeric
//!   member: `CAST(… AS REAL)` vs `CAST(NULLIF(…, '') AS DOUBLE PRECISION)`; a boolean reads
//!   as `true`/`false` on both, through `json_type` on SQLite);
//! - nullable floats are bound as text and cast in SQL (`calls.rs`): through `Any`, sqlx 0.8
//!   declares a NULL f64 as float4, and PostgreSQL then refuses a real f64 on the same
//!   prepared statement;
//! - statistics: PostgreSQL's planner needs `ANALYZE` while an import grows the contacts from
//!   nothing (its duplicate check would otherwise scan the campaign's numbers).
//!
//! Portable, but only because the SQL says so: every `GROUP BY` names every selected column,
//! text compares byte-wise (a PostgreSQL database for dialerd is created with `LC_COLLATE
//! 'C'`), and `LIKE` patterns are matched against `LOWER(…)` with lowercased patterns.

pub mod agents;
pub mod attempts;
pub mod backend;
pub mod builder;
pub mod callable;
pub mod calling_rules;
pub mod calls;
pub mod campaigns;
pub mod contacts;
mod country_zones;
pub mod csv_strict;
pub mod dialer_state;
pub mod dnc;
pub mod exports;
pub mod flow;
pub mod forms;
pub mod formula;
pub mod imports;
pub mod inbound;
pub mod inbox;
pub mod leases;
pub mod lines;
pub mod nodes;
pub mod pdf_zip;
pub mod permissions;
pub mod phone;
pub mod prompts;
pub mod questionnaires;
pub mod task_leases;
pub mod tasks;
pub mod template;
pub mod timings;
pub mod users;
pub mod xlsx;

pub use backend::{Backend, Location};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::AnyPool;
use sqlx::ConnectOptions;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "dialerd.db";

/// The migrations, embedded: (version, description, SQLite SQL, PostgreSQL SQL).
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "store",
        include_str!("../../migrations/0001_store.sql"),
        include_str!("../../migrations/postgres/0001_store.sql"),
    ),
    (
        2,
        "dialing",
        include_str!("../../migrations/0002_dialing.sql"),
        include_str!("../../migrations/postgres/0002_dialing.sql"),
    ),
    (
        3,
        "calls",
        include_str!("../../migrations/0003_calls.sql"),
        include_str!("../../migrations/postgres/0003_calls.sql"),
    ),
    (
        5,
        "lines",
        include_str!("../../migrations/0005_lines.sql"),
        include_str!("../../migrations/postgres/0005_lines.sql"),
    ),
    (
        6,
        "forms",
        include_str!("../../migrations/0006_forms.sql"),
        include_str!("../../migrations/postgres/0006_forms.sql"),
    ),
    (
        7,
        "inbox",
        include_str!("../../migrations/0007_inbox.sql"),
        include_str!("../../migrations/postgres/0007_inbox.sql"),
    ),
    (
        8,
        "dialer_state",
        include_str!("../../migrations/0008_dialer_state.sql"),
        include_str!("../../migrations/postgres/0008_dialer_state.sql"),
    ),
    (
        9,
        "agent_sip",
        include_str!("../../migrations/0009_agent_sip.sql"),
        include_str!("../../migrations/postgres/0009_agent_sip.sql"),
    ),
    (
        11,
        "campaign_prompts",
        include_str!("../../migrations/0011_campaign_prompts.sql"),
        include_str!("../../migrations/postgres/0011_campaign_prompts.sql"),
    ),
    (
        12,
        "contact_leases",
        include_str!("../../migrations/0012_contact_leases.sql"),
        include_str!("../../migrations/postgres/0012_contact_leases.sql"),
    ),
    (
        13,
        "inbound",
        include_str!("../../migrations/0013_inbound.sql"),
        include_str!("../../migrations/postgres/0013_inbound.sql"),
    ),
    (
        14,
        "callable_fresh",
        include_str!("../../migrations/0014_callable_fresh.sql"),
        include_str!("../../migrations/postgres/0014_callable_fresh.sql"),
    ),
    (
        15,
        "task_leases",
        include_str!("../../migrations/0015_task_leases.sql"),
        include_str!("../../migrations/postgres/0015_task_leases.sql"),
    ),
    (
        16,
        "nodes",
        include_str!("../../migrations/0016_nodes.sql"),
        include_str!("../../migrations/postgres/0016_nodes.sql"),
    ),
    (
        17,
        "node_sip_uri",
        include_str!("../../migrations/0017_node_sip_uri.sql"),
        include_str!("../../migrations/postgres/0017_node_sip_uri.sql"),
    ),
    (
        18,
        "import_nodes",
        include_str!("../../migrations/0018_import_nodes.sql"),
        include_str!("../../migrations/postgres/0018_import_nodes.sql"),
    ),
    (
        19,
        "import_indexes",
        include_str!("../../migrations/0019_import_indexes.sql"),
        include_str!("../../migrations/postgres/0019_import_indexes.sql"),
    ),
    (
        20,
        "phones_campaign_check",
        include_str!("../../migrations/0020_phones_campaign_check.sql"),
        include_str!("../../migrations/postgres/0020_phones_campaign_check.sql"),
    ),
    (
        21,
        "contacts_keys",
        include_str!("../../migrations/0021_contacts_keys.sql"),
        include_str!("../../migrations/postgres/0021_contacts_keys.sql"),
    ),
];

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file cannot be opened or created.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("cannot migrate the database {path}: {source}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// What failed.
        source: sqlx::migrate::MigrateError,
    },
    /// A file beside the database (the admin token) cannot be written.
    #[error("cannot write {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No such row.
    #[error("no {what} {id}")]
    NotFound {
        /// What was looked for ("campaign", "task", …).
        what: &'static str,
        /// Its id.
        id: i64,
    },
    /// The change clashes with what is stored (a name taken, a row still in use).
    #[error("{0}")]
    Conflict(String),
    /// A value is not acceptable; `field` names it as the API user wrote it.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, as a JSON path (`windows[0].to`) or query parameter.
        field: String,
        /// Why.
        reason: String,
    },
    /// The password hashing task did not finish (the runtime is shutting down).
    #[error("the password hashing task failed")]
    Hashing,
    /// This daemon's node name is held by another instance: it writes nothing under it.
    #[error(
        "not written: this node is fenced (another running dialerd holds its node.name and \
         the leases named after it)"
    )]
    Fenced,
    /// This daemon's node name was not renewed in time (it stalled, or the store did not
    /// answer): another instance may hold it by now, so it writes nothing under it until the
    /// next renewal says it is still its own.
    #[error(
        "not written: this node's name was not renewed in time; writes on its leases wait \
         for the next heartbeat"
    )]
    NameUnrenewed,
    /// Any other database failure.
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &e {
            sqlx::Error::Database(d) => match d.kind() {
                ErrorKind::UniqueViolation => {
                    Self::Conflict(format!("already exists: {}", d.message()))
                }
                ErrorKind::ForeignKeyViolation => Self::Conflict(
                    "still in use, or refers to something that does not exist".into(),
                ),
                _ => Self::Db(e),
            },
            _ => Self::Db(e),
        }
    }
}

impl StoreError {
    /// An `Invalid` error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Ids per `IN (…)` list: well under SQLite's limit on bound values.
pub(crate) const ID_CHUNK: usize = 500;

/// Appends `(v1, v2, …)` for an `IN`, each value bound.
pub(crate) fn push_in_list<'a, T>(q: &mut builder::QueryBuilder<'a>, values: &[T])
where
    T: Clone + 'a + sqlx::Encode<'a, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    q.push("(");
    let mut list = q.separated(", ");
    for v in values {
        list.push_bind(v.clone());
    }
    q.push(")");
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The open database: one connection that writes (SQLite has one writer; queuing writes here
/// avoids busy errors, and PostgreSQL gets the same order of writes) and a few that read
/// beside it (WAL on SQLite).
#[derive(Clone)]
pub struct Store {
    writer: AnyPool,
    reader: AnyPool,
    backend: Backend,
    location: Location,
    files_dir: PathBuf,
    import_locks: imports::ImportLocks,
    import_limits: crate::config::ImportConfig,
    calling_rules: std::sync::Arc<calling_rules::CallingRules>,
    timings: timings::Timings,
    /// The node name of the daemon using the store, written on the imports it runs.
    node: Option<std::sync::Arc<str>>,
    /// Set once another instance holds this daemon's node name ([`Store::fence`]).
    fenced: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Until when this daemon's node name, as last renewed, is surely its own (epoch ms;
    /// 0: no node, nothing checked) ([`Store::name_held_until`]).
    name_until: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Store {
    /// Opens (creating if needed) the SQLite file `path` and applies the migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::open_at(&Location::Sqlite(path.to_path_buf()), &dir).await
    }

    /// Opens the store at `location` (a SQLite file, created if needed, or a PostgreSQL
    /// database) and applies the migrations; the files it writes (exports, CSV spools) go to
    /// `files_dir`.
    pub async fn open_at(location: &Location, files_dir: &Path) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let open_err = |source| StoreError::Open {
            path: PathBuf::from(location.to_string()),
            source,
        };
        let backend = location.backend();
        let (writer_url, reader_url) = match location {
            Location::Sqlite(path) => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true);
                (
                    options.to_url_lossy(),
                    options.read_only(true).to_url_lossy(),
                )
            }
            Location::Postgres(url) => {
                let url: url::Url = url.parse().map_err(|e| {
                    open_err(sqlx::Error::Configuration(format!("not a URL: {e}").into()))
                })?;
                (url.clone(), url)
            }
        };
        let pool = |url: url::Url, connections: u32| async move {
            let options = AnyConnectOptions::from_url(&url)?
                .log_statements(tracing::log::LevelFilter::Debug)
                .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
            AnyPoolOptions::new()
                .max_connections(connections)
                .after_connect(move |conn, _| {
                    Box::pin(async move { backend::prepare_connection(backend, conn).await })
                })
                .connect_with(options)
                .await
        };
        let writer = pool(writer_url, 1).await.map_err(open_err)?;
        let migrator = Migrator {
            migrations: Cow::Owned(
                MIGRATIONS
                    .iter()
                    .map(|(version, description, sqlite, postgres)| {
                        Migration::new(
                            *version,
                            Cow::Borrowed(*description),
                            MigrationType::Simple,
                            Cow::Borrowed(match backend {
                                Backend::Sqlite => *sqlite,
                                Backend::Postgres => *postgres,
                            }),
                            false,
                        )
                    })
                    .collect(),
            ),
            ignore_missing: false,
            locking: true,
            no_tx: false,
        };
        migrator
            .run(&writer)
            .await
            .map_err(|source| StoreError::Migrate {
                path: PathBuf::from(location.to_string()),
                source,
            })?;
        backend.check_collation(&writer).await.map_err(open_err)?;
        let reader = pool(reader_url, 4).await.map_err(open_err)?;
        let store = Self {
            writer,
            reader,
            backend,
            location: location.clone(),
            files_dir: files_dir.to_path_buf(),
            import_locks: imports::ImportLocks::default(),
            import_limits: crate::config::ImportConfig::default(),
            calling_rules: std::sync::Arc::new(calling_rules::CallingRules::builtin()),
            timings: timings::Timings::default(),
            node: None,
            fenced: Default::default(),
            name_until: Default::default(),
        };
        Ok(store)
    }

    /// The store with these limits on CSV imports (the defaults until set).
    pub fn with_import_limits(self, limits: crate::config::ImportConfig) -> Self {
        Self {
            import_limits: limits,
            ..self
        }
    }

    /// The store with these country calling rules (the built-in ones until set).
    pub fn with_calling_rules(self, rules: calling_rules::CallingRules) -> Self {
        Self {
            calling_rules: std::sync::Arc::new(rules),
            ..self
        }
    }

    /// The store timing its calls into `timings` (nothing is timed until set).
    pub fn with_timings(self, timings: timings::Timings) -> Self {
        Self { timings, ..self }
    }

    /// The store as node `name` uses it: the imports it starts are its own.
    pub fn with_node(self, name: &str) -> Self {
        Self {
            node: Some(name.into()),
            ..self
        }
    }

    /// Where the store is (a PostgreSQL URL shows without its password).
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The database behind the store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes both pools, waiting for queries in flight.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An epoch-millisecond time as RFC 3339 (UTC), for API answers.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 time into epoch milliseconds, naming `field` when it is not one.
pub fn parse_time(field: &str, text: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            StoreError::invalid(
                field,
                format!("wanted an RFC 3339 time like 2025-01-31T09:30:00Z, got {text:?}"),
            )
        })
}

/// The field a serde error is about: its path, plus the name serde quotes for an unknown or
/// missing field.
pub fn field_of(path: &str, message: &str, prefix: &str) -> String {
    let mut field = prefix.to_string();
    if path != "." && !path.is_empty() {
        field = if prefix.is_empty() {
            path.to_string()
        } else {
            format!("{prefix}.{path}")
        };
    }
    if let Some(name) = message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"))
    {
        if !field.ends_with(name) {
            field = if field.is_empty() {
                name.to_string()
            } else {
                format!("{field}.{name}")
            };
        }
    }
    field
}

/// The throwaway PostgreSQL cluster of the integration tests, shared with the unit tests.
#[cfg(test)]
#[path = "../../tests/common/pg.rs"]
pub(crate) mod test_pg;

/// Runs async store tests once per backend, as `name::sqlite` and `name::postgres`; inside,
/// [`test_support::store`] opens a store on that backend.
#[cfg(test)]
macro_rules! both_backends {
    ($($(#[$attr:meta])* async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(#[$attr])*
            #[tokio::test]
            async fn sqlite() {
                $crate::store::test_pg::set($crate::store::test_pg::Backend::Sqlite);
                $body
            }
            $(#[$attr])*
            #[tokio::test]
            async fn postgres() {
                $crate::store::test_pg::set($crate::store::test_pg::Backend::Postgres);
                $body
            }
        }
    )*};
}
#[cfg(test)]
pub(crate) use both_backends;

/// Shared set-up of the store's unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::test_pg::{self, Backend};
    use super::{Location, Store};

    /// A store in a fresh directory (kept alive by the returned guard), on the backend of the
    /// running test (see `both_backends!`).
    pub async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        (dir, store)
    }

    /// Like [`store`], its files (and SQLite database) in `dir`.
    pub async fn store_in(dir: &std::path::Path) -> Store {
        let location = match test_pg::current() {
            Backend::Sqlite => Location::Sqlite(dir.join("dialerd.db")),
            Backend::Postgres => Location::Postgres(
                tokio::task::spawn_blocking(test_pg::database)
                    .await
                    .unwrap(),
            ),
        };
        Store::open_at(&location, dir).await.unwrap()
    }

    /// The same database opened again (as after a restart).
    pub async fn reopen(store: &Store) -> Store {
        Store::open_at(store.location(), &store.files_dir)
            .await
            .unwrap()
    }

    /// A campaign from `campaign` (JSON of a `CampaignSpec`) with one call task named `dial`:
    /// (campaign id, task id).
    pub async fn campaign_with_call_task(store: &Store, campaign: serde_json::Value) -> (i64, i64) {
        let c = store
            .create_campaign(&serde_json::from_value(campaign).unwrap())
            .await
            .unwrap();
        let spec =
            serde_json::from_value(serde_json::json!({"name": "dial", "kind": "call"})).unwrap();
        let t = store.create_task(c.id, spec).await.unwrap();
        (c.id, t.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let store = Store::open(&path).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        store.close().await;
        // Applying the same migrations again is a no-op.
        Store::open(&path).await.unwrap().close().await;
    }

    #[tokio::test]
    async fn open_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/dir").join(DB_FILE);
        let err = Store::open(&path).await.err().unwrap().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    crate::store::both_backends! {
        async fn every_migration_is_applied_once() {
            let (_dir, store) = test_support::store().await;
            let versions = |store: Store| async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
                )
                .fetch_all(&store.reader)
                .await
                .unwrap()
            };
            let all: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
            assert_eq!(versions(store.clone()).await, all);
            store.close().await;
            // Opened again (a restart, or a second node): nothing is applied twice.
            let again = test_support::reopen(&store).await;
            assert_eq!(versions(again).await, all);
        }
    }

    /// Migrations of PostgreSQL's own (a no-op on SQLite): the contacts' keys.
    const POSTGRES_ONLY: &[i64] = &[21];

    /// The PostgreSQL migrations say what the SQLite ones say, in PostgreSQL's spelling
    /// (but for [`POSTGRES_ONLY`]).
    #[test]
    fn postgres_migrations_are_the_sqlite_ones_respelt() {
        let statements = |sql: &str| -> String {
            sql.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        for (version, _, sqlite, postgres) in MIGRATIONS {
            if POSTGRES_ONLY.contains(version) {
                assert_eq!(statements(sqlite).trim(), "SELECT 1;");
                continue;
            }
            let respelt = statements(sqlite)
                .replace(
                    "INTEGER PRIMARY KEY",
                    "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                )
                .replace("INTEGER", "BIGINT")
                .replace("REAL", "DOUBLE PRECISION")
                .replace("BLOB", "BYTEA");
            assert_eq!(
                respelt,
                statements(postgres),
                "migration {version} differs between the two sets"
            );
        }
    }
}
