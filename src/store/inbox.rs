//! Drop-folder imports, the store's side: a campaign's saved import settings (what its folder's
//! files are imported with) and the record of every file taken from a folder, by name, size,
//! modification time and SHA-256, so that no file is imported twice, also across restarts.

use super::imports::{ImportMode, ImportOptions};
use super::{now_ms, rfc3339, Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// How a campaign's drop-folder files are imported (body of `PUT …/import-settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportSettings {
    /// Append to the contacts, or replace those without results.
    pub mode: ImportMode,
    /// Whether the first line names the columns.
    pub header: bool,
    /// Columns holding phone numbers (names with a header, else 1-based numbers).
    pub phone_columns: Vec<String>,
    /// Task the contacts go to; the campaign's first when absent.
    pub task_id: Option<i64>,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            mode: ImportMode::Append,
            header: true,
            phone_columns: vec!["phone".into()],
            task_id: None,
        }
    }
}

impl ImportSettings {
    /// The options of an import run by `user` with these settings.
    pub fn options(&self, user: &str) -> ImportOptions {
        ImportOptions {
            mode: self.mode,
            header: self.header,
            phone_columns: self.phone_columns.clone(),
            task_id: self.task_id,
            user: user.to_string(),
        }
    }
}

/// A campaign's import settings as stored.
#[derive(Debug, Clone, Serialize)]
pub struct SavedImportSettings {
    /// Campaign.
    pub campaign_id: i64,
    /// The settings (the defaults while never set).
    #[serde(flatten)]
    pub settings: ImportSettings,
    /// Who changed them last; null while never set.
    pub updated_by: Option<String>,
    /// When (RFC 3339); null while never set.
    pub updated_at: Option<String>,
}

/// A file of a drop folder, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxFile {
    /// Campaign whose folder it is in.
    pub campaign_id: i64,
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Modification time, epoch milliseconds.
    pub mtime_ms: i64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

impl Store {
    /// A campaign's import settings (the defaults while never set).
    pub async fn import_settings(&self, campaign_id: i64) -> Result<SavedImportSettings> {
        self.campaign(campaign_id).await?;
        let row = sqlx::query(
            "SELECT settings, updated_by, updated_ms FROM import_settings WHERE campaign_id = $1",
        )
        .bind(campaign_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(match row {
            Some(r) => SavedImportSettings {
                campaign_id,
                settings: serde_json::from_str(&r.try_get::<String, _>("settings")?)
                    .unwrap_or_default(),
                updated_by: Some(r.try_get("updated_by")?),
                updated_at: Some(rfc3339(r.try_get("updated_ms")?)),
            },
            None => SavedImportSettings {
                campaign_id,
                settings: ImportSettings::default(),
                updated_by: None,
                updated_at: None,
            },
        })
    }

    /// Saves a campaign's import settings: at least one phone column, a task of the campaign.
    pub async fn put_import_settings(
        &self,
        campaign_id: i64,
        settings: ImportSettings,
        actor: &str,
    ) -> Result<SavedImportSettings> {
        self.campaign(campaign_id).await?;
        if settings.phone_columns.is_empty()
            || settings.phone_columns.iter().any(|c| c.trim().is_empty())
        {
            return Err(StoreError::invalid(
                "phone_columns",
                "wanted at least one column name (or 1-based number without a header)",
            ));
        }
        if !settings.header {
            if let Some(c) = settings
                .phone_columns
                .iter()
                .find(|c| !matches!(c.parse::<usize>(), Ok(1..)))
            {
                return Err(StoreError::invalid(
                    "phone_columns",
                    format!("without a header columns are numbered from 1; got {c:?}"),
                ));
            }
        }
        if let Some(t) = settings.task_id {
            self.task(campaign_id, t).await.map_err(|_| {
                StoreError::invalid("task_id", format!("the campaign has no task {t}"))
            })?;
        }
        sqlx::query(
            "INSERT INTO import_settings (campaign_id, settings, updated_by, updated_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (campaign_id) DO UPDATE SET \
             settings = excluded.settings, updated_by = excluded.updated_by, \
             updated_ms = excluded.updated_ms",
        )
        .bind(campaign_id)
        .bind(serde_json::to_string(&settings).unwrap_or_default())
        .bind(actor)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        self.import_settings(campaign_id).await
    }

    /// How an earlier take of the same file (name, size, time and bytes) ended: its outcome,
    /// import and reason; `None` when the file is new.
    pub async fn inbox_seen(
        &self,
        file: &InboxFile,
    ) -> Result<Option<(String, Option<i64>, Option<String>)>> {
        let row = sqlx::query(
            "SELECT outcome, import_id, reason FROM inbox_files WHERE campaign_id = $1 \
             AND sha256 = $2 AND name = $3 AND size = $4 AND mtime_ms = $5 ORDER BY id LIMIT 1",
        )
        .bind(file.campaign_id)
        .bind(&file.sha256)
        .bind(&file.name)
        .bind(file.size)
        .bind(file.mtime_ms)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .transpose()
    }

    /// Records that a file is being imported, before the import starts (a crash leaves it
    /// `importing`, and it is not tried again); its id.
    pub async fn inbox_taking(&self, file: &InboxFile) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO inbox_files (campaign_id, name, size, mtime_ms, sha256, outcome, taken_ms) \
             VALUES ($1, $2, $3, $4, $5, 'importing', $6) RETURNING id",
        )
        .bind(file.campaign_id)
        .bind(&file.name)
        .bind(file.size)
        .bind(file.mtime_ms)
        .bind(&file.sha256)
        .bind(now_ms())
        .fetch_one(&self.writer)
        .await?)
    }

    /// Records how a take ended: `done` with its import, or `failed` with the reason.
    pub async fn inbox_taken(
        &self,
        id: i64,
        outcome: std::result::Result<i64, String>,
    ) -> Result<()> {
        let (state, import, reason) = match outcome {
            Ok(import) => ("done", Some(import), None),
            Err(reason) => ("failed", None, Some(reason)),
        };
        sqlx::query(
            "UPDATE inbox_files SET outcome = $1, import_id = $2, reason = $3 WHERE id = $4",
        )
        .bind(state)
        .bind(import)
        .bind(reason)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Forgets a take that did not start (the campaign was busy importing): tried again later.
    pub async fn inbox_untake(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM inbox_files WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
