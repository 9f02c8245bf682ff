//! The two databases the store runs on, where the store is (`store.url`), and every piece of
//! SQL that must be spelt differently per database (the list is in the store's module docs).

use super::builder::QueryBuilder;
use std::fmt;
use std::path::PathBuf;

/// The database behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file (the default).
    Sqlite,
    /// A PostgreSQL database (several nodes may share it).
    Postgres,
}

/// Where the store is: a SQLite file or a PostgreSQL URL.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// The SQLite database file.
    Sqlite(PathBuf),
    /// `postgres://user:password@host:port/database?…`, as libpq writes it.
    Postgres(String),
}

impl Location {
    /// Reads a `store.url`: `sqlite://PATH` (the daemon takes a relative path as relative to
    /// the state directory; `sqlite:///abs/path` is absolute) or `postgres://…`.
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err("wanted sqlite://PATH with the database file's path".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
            if parsed.path().trim_start_matches('/').is_empty() {
                return Err(
                    "wanted postgres://USER:PASSWORD@HOST:PORT/DATABASE, with the database".into(),
                );
            }
            return Ok(Self::Postgres(url.to_string()));
        }
        Err("wanted a URL starting with sqlite:// or postgres://".into())
    }

    /// The database this location is on.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }
}

/// The location for messages and logs: a PostgreSQL URL without its password.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("********"));
                    }
                    write!(f, "{u}")
                }
                Err(_) => f.write_str("postgres://…"),
            },
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

/// Settings every new connection gets: SQLite's journal, durability and lock wait (its foreign
/// keys are on through sqlx already); PostgreSQL needs none.
pub(crate) async fn prepare_connection(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
) -> Result<(), sqlx::Error> {
    use sqlx::Executor;
    if backend == Backend::Sqlite {
        // A read-only connection cannot change the journal mode; the writer made it WAL.
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        if mode != "wal" {
            conn.execute("PRAGMA journal_mode = WAL").await?;
        }
        // FULL: a commit the API acknowledges survives a power cut, not just a crash.
        conn.execute("PRAGMA synchronous = FULL").await?;
        conn.execute("PRAGMA busy_timeout = 10000").await?;
        conn.execute("PRAGMA foreign_keys = ON").await?;
    }
    Ok(())
}

impl Backend {
    /// PostgreSQL: warns when the database does not sort text byte-wise as SQLite does (lists
    /// ordered by name, `order` on text fields would come out in another order).
    pub(crate) async fn check_collation(self, pool: &sqlx::AnyPool) -> Result<(), sqlx::Error> {
        if self == Self::Postgres {
            let collation: String = sqlx::query_scalar(
                "SELECT datcollate::text FROM pg_database WHERE datname = current_database()",
            )
            .fetch_one(pool)
            .await?;
            if collation != "C" && collation != "POSIX" {
                tracing::warn!(
                    collation,
                    "the database does not sort text byte-wise; create it with LC_COLLATE 'C' so that text sorts as on SQLite"
                );
            }
        }
        Ok(())
    }

    /// PostgreSQL: refreshes the planner's statistics of the tables an import grows, so that
    /// its duplicate checks keep using the number index (SQLite plans without them).
    pub(crate) async fn refresh_statistics(self, pool: &sqlx::AnyPool) -> Result<(), sqlx::Error> {
        if self == Self::Postgres {
            use sqlx::Executor;
            pool.execute("ANALYZE contacts, contact_phones").await?;
        }
        Ok(())
    }

    /// SQL for member `key` (a literal the caller controls) of the JSON text in `column`, as
    /// SQL text; NULL when absent.
    pub(crate) fn json_member(self, column: &str, key: &str) -> String {
        match self {
            Self::Sqlite => format!("json_extract({column}, '$.\"{key}\"')"),
            Self::Postgres => format!("({column}::jsonb ->> '{key}')"),
        }
    }

    /// Appends member `key` (bound, not trusted) of the JSON text in `column` as text.
    pub(crate) fn push_json_text<'a>(self, q: &mut QueryBuilder<'a>, column: &str, key: &str) {
        match self {
            Self::Sqlite => {
                // json_extract reads a JSON boolean as 1 or 0; PostgreSQL's ->> as its text.
                let path = format!("$.\"{key}\"");
                q.push(format!("CASE json_type({column}, "))
                    .push_bind(path.clone())
                    .push(format!(
                        ") WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(json_extract({column}, "
                    ))
                    .push_bind(path)
                    .push(") AS TEXT) END");
            }
            Self::Postgres => {
                q.push(format!("({column}::jsonb ->> "))
                    .push_bind(key.to_string())
                    .push(")");
            }
        }
    }

    /// Appends member `key` (bound) of the JSON text in `column` as a number (NULL when absent
    /// or empty).
    pub(crate) fn push_json_number<'a>(self, q: &mut QueryBuilder<'a>, column: &str, key: &str) {
        match self {
            Self::Sqlite => {
                q.push(format!("CAST(json_extract({column}, "))
                    .push_bind(format!("$.\"{key}\""))
                    .push(") AS REAL)");
            }
            Self::Postgres => {
                q.push(format!("CAST(NULLIF({column}::jsonb ->> "))
                    .push_bind(key.to_string())
                    .push(", '') AS DOUBLE PRECISION)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_masks_store_urls() {
        assert_eq!(
            Location::parse("sqlite:///var/lib/dialerd/dialerd.db").unwrap(),
            Location::Sqlite("/var/lib/dialerd/dialerd.db".into())
        );
        let pg = Location::parse("postgres://dialerd:s3cret@db:5432/dialerd").unwrap();
        assert_eq!(pg.backend(), Backend::Postgres);
        assert!(!pg.to_string().contains("s3cret"), "{pg}");
        assert!(Location::parse("mysql://x/y").is_err());
        assert!(Location::parse("postgres://db:5432").is_err());
        assert!(Location::parse("sqlite://").is_err());
    }
}
