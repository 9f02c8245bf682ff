//! CSV imports: read row by row from a stream, checked, inserted in batches of 1,000 rows that
//! each commit with the import's progress, and reported (the report is kept per campaign).

use super::backend::Backend;
use super::contacts::NewContact;
use super::csv_strict::{Next, StrictReader, Unclosed};
use super::{now_ms, phone, rfc3339, Result, Store, StoreError};
use crate::config::ImportConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, Write};
use std::sync::{Arc, Mutex};

/// Rows per batch (and per transaction).
pub const BATCH_ROWS: usize = 1000;

/// Bytes of rows (their cells and column names) per batch at most, besides [`BATCH_ROWS`]: wide
/// rows make smaller batches, so the rows held in memory stay bounded.
pub const BATCH_BYTES: usize = 4 << 20;

/// Problems kept in a report; past this only the counts grow.
pub const MAX_PROBLEMS: usize = 1000;

/// What to do with the campaign's contacts already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImportMode {
    /// Add to them.
    #[default]
    Append,
    /// Remove those without results first.
    Replace,
}

/// How to read the CSV.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Append or replace.
    pub mode: ImportMode,
    /// Whether the first line names the columns (else they are `1`, `2`, …).
    pub header: bool,
    /// Columns holding phone numbers (default `phone`, or `1` without a header).
    pub phone_columns: Vec<String>,
    /// Task the contacts go to (default: the campaign's first).
    pub task_id: Option<i64>,
    /// Who imports (for the history).
    pub user: String,
}

/// A row that did not go in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RowProblem {
    /// CSV line (1-based; a quoted field may span lines: the record's first).
    pub line: u64,
    /// `bad` or `duplicate`.
    pub kind: String,
    /// Why.
    pub reason: String,
}

/// The import report, as answered and as kept.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// Id.
    pub id: i64,
    /// Campaign.
    pub campaign_id: i64,
    /// Task the contacts went to.
    pub task_id: i64,
    /// append or replace.
    pub mode: String,
    /// running, done, failed, or interrupted (the daemon stopped during it).
    pub state: String,
    /// Who.
    pub started_by: String,
    /// Start.
    pub started_at: String,
    /// End.
    pub finished_at: Option<String>,
    /// Data rows read (header excluded).
    pub rows: i64,
    /// Contacts created.
    pub inserted: i64,
    /// Rows refused for bad content.
    pub bad: i64,
    /// Rows refused because a number is in the campaign already.
    pub duplicates: i64,
    /// Contacts removed by replace.
    pub removed: i64,
    /// Contacts replace kept because they have results.
    pub kept_with_results: i64,
    /// The first problems, by line.
    pub problems: Vec<RowProblem>,
    /// Whether problems were left out.
    pub problems_truncated: bool,
    /// Why the import failed, when it did.
    pub error: Option<String>,
    /// Contacts taken out again because the CSV turned out malformed (a quote never closed);
    /// absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<i64>,
}

/// Campaigns with an import running (one at a time each, so duplicate checks hold).
#[derive(Clone, Default)]
pub struct ImportLocks(Arc<Mutex<HashSet<i64>>>);

struct ImportGuard(ImportLocks, i64);

impl Drop for ImportGuard {
    fn drop(&mut self) {
        if let Ok(mut set) = (self.0).0.lock() {
            set.remove(&self.1);
        }
    }
}

impl ImportLocks {
    fn take(&self, campaign_id: i64) -> Result<ImportGuard> {
        let mut set = self
            .0
            .lock()
            .map_err(|_| StoreError::Conflict("import lock poisoned".into()))?;
        if !set.insert(campaign_id) {
            return Err(StoreError::Conflict(format!(
                "an import into campaign {campaign_id} is running; wait for it to finish"
            )));
        }
        Ok(ImportGuard(self.clone(), campaign_id))
    }
}

/// How one CSV row becomes a contact.
struct RowReader {
    names: Vec<String>,
    phones: Vec<usize>,
    zone: Option<usize>,
    region: Option<phonenumber::country::Id>,
    default_zone: String,
}

impl RowReader {
    fn new(
        names: Vec<String>,
        phone_columns: &[String],
        region: Option<&str>,
        default_zone: &str,
    ) -> Result<Self> {
        refuse_duplicate_names(&names)?;
        let mut phones = Vec::new();
        for col in phone_columns {
            let i = names.iter().position(|n| n == col).ok_or_else(|| {
                StoreError::invalid(
                    "phone",
                    format!(
                        "the CSV has no column {col:?}; its columns are {}",
                        names.join(", ")
                    ),
                )
            })?;
            phones.push(i);
        }
        let zone = names.iter().position(|n| is_zone_column(n));
        Ok(Self {
            names,
            phones,
            zone,
            region: region.and_then(phone::region),
            default_zone: default_zone.to_string(),
        })
    }

    fn read(&self, record: &csv::ByteRecord, line: u64) -> std::result::Result<NewContact, String> {
        if record.len() != self.names.len() {
            return Err(format!(
                "has {} fields, the header has {}",
                record.len(),
                self.names.len()
            ));
        }
        let mut cells = Vec::with_capacity(record.len());
        for (i, raw) in record.iter().enumerate() {
            let text = std::str::from_utf8(raw)
                .map_err(|_| format!("column {:?} is not UTF-8 text", self.names[i]))?;
            cells.push(text);
        }
        let mut phones = Vec::new();
        let mut country_zone = None;
        for &i in &self.phones {
            if cells[i].trim().is_empty() {
                continue;
            }
            let (e164, zone) = phone::normalise_with_zone(cells[i], self.region)
                .map_err(|r| format!("column {:?}: {r}", self.names[i]))?;
            if phones.is_empty() {
                country_zone = zone;
            }
            if !phones.contains(&e164) {
                phones.push(e164);
            }
        }
        if phones.is_empty() {
            return Err("no phone number".into());
        }
        let time_zone = match self.zone.map(|i| cells[i].trim()).filter(|z| !z.is_empty()) {
            Some(z) if z.parse::<chrono_tz::Tz>().is_ok() => z.to_string(),
            Some(z) => return Err(format!("{z:?} is not an IANA time zone")),
            None => country_zone.unwrap_or(&self.default_zone).to_string(),
        };
        let fields: Map<String, Value> = self
            .names
            .iter()
            .zip(&cells)
            .map(|(n, c)| (n.clone(), Value::String((*c).to_string())))
            .collect();
        Ok(NewContact {
            fields,
            phones,
            time_zone,
            line: Some(line),
        })
    }
}

/// Whether a column holds the contact's time zone.
fn is_zone_column(name: &str) -> bool {
    name.eq_ignore_ascii_case("time_zone") || name.eq_ignore_ascii_case("timezone")
}

/// Refuses a header that names a column twice: the contact's fields would keep one of the
/// cells and the other would be lost (or the number dialled differ from the one shown). Names
/// count as the same when they differ only in case (or are both a time-zone column), as a
/// person reading the file would take them for one.
fn refuse_duplicate_names(names: &[String]) -> Result<()> {
    let key = |n: &str| {
        if is_zone_column(n) {
            "time_zone".to_string()
        } else {
            n.to_lowercase()
        }
    };
    // Each name's columns (0-based), in order of first use.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut columns: Vec<Vec<usize>> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let at = *index.entry(key(n)).or_insert_with(|| {
            columns.push(Vec::new());
            columns.len() - 1
        });
        columns[at].push(i);
    }
    let twice: Vec<&Vec<usize>> = columns.iter().filter(|c| c.len() > 1).collect();
    if twice.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = twice
        .iter()
        .map(|cols| {
            let mut spelt: Vec<String> = Vec::new();
            for &c in cols.iter() {
                let n = format!("{:?}", names[c]);
                if !spelt.contains(&n) {
                    spelt.push(n);
                }
            }
            let cols: Vec<String> = cols.iter().map(|c| (c + 1).to_string()).collect();
            format!("{} (columns {})", spelt.join(" / "), cols.join(", "))
        })
        .collect();
    Err(StoreError::invalid(
        "body",
        format!(
            "the header names a column more than once: {}; give each column its own name \
             (case and spaces around names do not count); nothing was imported",
            listed.join("; ")
        ),
    ))
}

/// What the reading thread hands to the inserting side.
enum Chunk {
    /// Good rows and the problems met since the last batch.
    Batch {
        rows: Vec<NewContact>,
        problems: Vec<RowProblem>,
        read: u64,
    },
    /// The input failed (broken upload, bad header).
    Failed(StoreError),
    /// The CSV turned out malformed (a quote never closed): what went in is taken out again.
    Malformed(StoreError),
}

/// The message of an import that fails on a quote never closed.
fn unclosed_message(line: u64) -> String {
    format!(
        "line {line}: a quote opens a field that is never closed, so the rest of the file would \
         be one field; the import was undone (see its report)"
    )
}

/// Copies what is read through it into a file.
struct Tee<R> {
    input: R,
    copy: std::fs::File,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Reads `input` to its end into a temporary file in `dir`, record by record so that a quote
/// never closed is found; the file comes back rewound. Nothing is written to the database.
fn spool_checked(
    input: impl Read,
    dir: &std::path::Path,
    limits: ImportConfig,
) -> Result<std::fs::File> {
    let file_err = |source| StoreError::File {
        path: dir.to_path_buf(),
        source,
    };
    let copy = tempfile::tempfile_in(dir).map_err(file_err)?;
    let tee = Tee {
        input,
        copy: copy.try_clone().map_err(file_err)?,
    };
    let mut csv = StrictReader::new(std::io::BufReader::with_capacity(64 * 1024, tee), limits);
    let mut record = csv::ByteRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(Ok(Next::End)) => break,
            Ok(Ok(_)) => {}
            Ok(Err(Unclosed { line })) => {
                return Err(StoreError::invalid(
                    "body",
                    format!(
                        "line {line}: a quote opens a field that is never closed, so the rest of \
                         the file would be one field; nothing was removed or imported"
                    ),
                ))
            }
            Err(e) => {
                return Err(StoreError::invalid(
                    "body",
                    format!("the CSV could not be read: {e}; nothing was removed or imported"),
                ))
            }
        }
    }
    let mut copy = copy;
    copy.seek(std::io::SeekFrom::Start(0)).map_err(file_err)?;
    Ok(copy)
}

/// One data record: a contact, or a problem naming its line.
fn take_row(
    r: &RowReader,
    record: &csv::ByteRecord,
    line: u64,
    rows: &mut Vec<NewContact>,
    problems: &mut Vec<RowProblem>,
) {
    match r.read(record, line) {
        Ok(c) => rows.push(c),
        Err(reason) => problems.push(RowProblem {
            line,
            kind: "bad".into(),
            reason,
        }),
    }
}

/// Reads CSV records strictly (see [`super::csv_strict`]) and sends them in batches; runs on
/// a blocking thread.
fn read_csv(
    input: impl Read,
    header: bool,
    limits: ImportConfig,
    make: impl Fn(Vec<String>) -> Result<RowReader>,
    tx: tokio::sync::mpsc::Sender<Chunk>,
) {
    let mut csv = StrictReader::new(std::io::BufReader::with_capacity(64 * 1024, input), limits);
    let mut record = csv::ByteRecord::new();
    let mut reader = None;
    let (mut rows, mut problems, mut read) = (Vec::new(), Vec::new(), 0u64);
    // Bytes of the rows in `rows`, and what each row adds for its column names.
    let (mut bytes, mut names_bytes) = (0usize, 0usize);
    let fail = |e: StoreError| {
        let _ = tx.blocking_send(Chunk::Failed(e));
    };
    loop {
        let next = match csv.read_record(&mut record) {
            Ok(Ok(next)) => next,
            Ok(Err(Unclosed { line })) => {
                let e = StoreError::invalid("body", unclosed_message(line));
                let _ = tx.blocking_send(Chunk::Malformed(e));
                return;
            }
            Err(e) => {
                return fail(StoreError::invalid(
                    "body",
                    format!("the CSV could not be read: {e}"),
                ));
            }
        };
        let more = next != Next::End;
        match next {
            Next::Record { line } if reader.is_none() => {
                let names: Vec<String> = if header {
                    match record
                        .iter()
                        .map(|n| {
                            std::str::from_utf8(n)
                                .map(|n| n.trim_start_matches('\u{feff}').trim().to_string())
                        })
                        .collect()
                    {
                        Ok(names) => names,
                        Err(_) => {
                            return fail(StoreError::invalid(
                                "body",
                                "the header line is not UTF-8 text",
                            ))
                        }
                    }
                } else {
                    (1..=record.len()).map(|i| i.to_string()).collect()
                };
                names_bytes = names.iter().map(String::len).sum();
                match make(names) {
                    Ok(r) => reader = Some(r),
                    Err(e) => return fail(e),
                }
                if !header {
                    read += 1;
                    bytes += record.as_slice().len() + names_bytes;
                    if let Some(r) = &reader {
                        take_row(r, &record, line, &mut rows, &mut problems);
                    }
                }
            }
            Next::Record { line } => {
                read += 1;
                bytes += record.as_slice().len() + names_bytes;
                if let Some(r) = &reader {
                    take_row(r, &record, line, &mut rows, &mut problems);
                }
            }
            Next::OverLimit { line, reason } if header && reader.is_none() => {
                return fail(StoreError::invalid(
                    "body",
                    format!("line {line}: the header {reason}; nothing was imported"),
                ));
            }
            Next::BadQuoting { line, reason } if header && reader.is_none() => {
                return fail(StoreError::invalid(
                    "body",
                    format!("line {line}: the header line has {reason}"),
                ));
            }
            Next::BadQuoting { line, reason } | Next::OverLimit { line, reason } => {
                read += 1;
                problems.push(RowProblem {
                    line,
                    kind: "bad".into(),
                    reason,
                });
            }
            Next::End if reader.is_none() && problems.is_empty() => {
                return fail(StoreError::invalid("body", "the CSV is empty"));
            }
            Next::End => {}
        }
        if rows.len() >= BATCH_ROWS
            || bytes >= BATCH_BYTES
            || problems.len() >= BATCH_ROWS
            || (!more && read > 0)
        {
            let chunk = Chunk::Batch {
                rows: std::mem::take(&mut rows),
                problems: std::mem::take(&mut problems),
                read,
            };
            (read, bytes) = (0, 0);
            if tx.blocking_send(chunk).is_err() {
                return;
            }
        }
        if !more {
            return;
        }
    }
}

const COLUMNS: &str =
    "id, campaign_id, task_id, mode, state, started_by, started_ms, finished_ms, rows_read, \
                       inserted, bad, duplicates, removed, kept, problems";

fn report_of(row: &sqlx::any::AnyRow) -> Result<ImportReport> {
    let problems: String = row.try_get("problems")?;
    let problems: Value = serde_json::from_str(&problems).unwrap_or(Value::Null);
    Ok(ImportReport {
        id: row.try_get("id")?,
        campaign_id: row.try_get("campaign_id")?,
        task_id: row.try_get("task_id")?,
        mode: row.try_get("mode")?,
        state: row.try_get("state")?,
        started_by: row.try_get("started_by")?,
        started_at: rfc3339(row.try_get("started_ms")?),
        finished_at: row.try_get::<Option<i64>, _>("finished_ms")?.map(rfc3339),
        rows: row.try_get("rows_read")?,
        inserted: row.try_get("inserted")?,
        bad: row.try_get("bad")?,
        duplicates: row.try_get("duplicates")?,
        removed: row.try_get("removed")?,
        kept_with_results: row.try_get("kept")?,
        problems: serde_json::from_value(problems["items"].clone()).unwrap_or_default(),
        problems_truncated: problems["truncated"].as_bool().unwrap_or(false),
        error: problems["error"].as_str().map(str::to_string),
        rolled_back: problems["rolled_back"].as_i64(),
    })
}

/// Counts of one batch, added to the import row in the batch's transaction.
#[derive(Default)]
struct Tally {
    rows: i64,
    inserted: i64,
    bad: i64,
    duplicates: i64,
}

impl Store {
    /// Marks as interrupted (their committed batches stay) the imports left running by a node
    /// no longer up at `now_ms` (its name row expired or gone) and, when node `restarted`
    /// starts, by its earlier run or by no node; another running node's imports go on.
    /// Returns how many.
    pub async fn interrupted_imports(&self, restarted: Option<&str>, now_ms: i64) -> Result<u64> {
        const GONE: &str = "node NOT IN (SELECT name FROM nodes WHERE expires_ms > $1)";
        let query = match restarted {
            None => format!(
                "UPDATE imports SET state = 'interrupted' WHERE state = 'running' AND {GONE}"
            ),
            Some(_) => format!(
                "UPDATE imports SET state = 'interrupted' WHERE state = 'running' \
                 AND ({GONE} OR node IS NULL OR node = $2)"
            ),
        };
        let mut q = sqlx::query(&query).bind(now_ms);
        if let Some(node) = restarted {
            q = q.bind(node);
        }
        Ok(q.execute(&self.writer).await?.rows_affected())
    }

    /// A campaign's imports, newest first.
    pub async fn imports(&self, campaign_id: i64) -> Result<Vec<ImportReport>> {
        self.campaign(campaign_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM imports WHERE campaign_id = $1 ORDER BY id DESC"
        ))
        .bind(campaign_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(report_of).collect()
    }

    /// One import.
    pub async fn import(&self, campaign_id: i64, id: i64) -> Result<ImportReport> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM imports WHERE id = $1 AND campaign_id = $2"
        ))
        .bind(id)
        .bind(campaign_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound { what: "import", id })?;
        report_of(&row)
    }

    /// Imports a CSV read from `input` (on a blocking thread) into a campaign.
    ///
    /// Problems with the request itself (no such campaign, task or phone column, unreadable
    /// header) fail before anything is written. After that, every batch commits with the
    /// import's counts, so what the report (or, after a crash, the history) says went in is in.
    pub async fn import_csv(
        &self,
        campaign_id: i64,
        options: ImportOptions,
        input: impl Read + Send + 'static,
    ) -> Result<ImportReport> {
        let campaign = self.campaign(campaign_id).await?;
        let task_id = match options.task_id {
            Some(t) => {
                self.task(campaign_id, t).await.map_err(|_| {
                    StoreError::invalid("task", format!("the campaign has no task {t}"))
                })?;
                t
            }
            None => self.first_task(campaign_id).await.map_err(|_| {
                StoreError::invalid(
                    "task",
                    "the campaign has no task yet; create one to import into",
                )
            })?,
        };
        let _guard = self.import_locks.take(campaign_id)?;
        // Replace removes contacts before the first batch, so it must not start on a file that
        // turns out broken (a quote never closed, an upload cut off) after that: it receives the
        // whole file first and checks its quoting to the end.
        let input: Box<dyn Read + Send> = match options.mode {
            ImportMode::Append => Box::new(input),
            ImportMode::Replace => Box::new(self.spool(input).await?),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let phones = options.phone_columns.clone();
        let region = campaign.spec.default_region.clone();
        let zone = campaign.spec.time_zone.clone();
        let header = options.header;
        let limits = self.import_limits;
        // The column names, for the form: known once the first chunk has come.
        let columns = std::sync::Arc::new(std::sync::OnceLock::new());
        let seen = columns.clone();
        let reader = tokio::task::spawn_blocking(move || {
            read_csv(
                input,
                header,
                limits,
                |names| {
                    let _ = seen.set(names.clone());
                    RowReader::new(names, &phones, region.as_deref(), &zone)
                },
                tx,
            )
        });

        // The first chunk tells whether the header and options are usable; nothing is written
        // before it.
        let first = rx.recv().await;
        if let Some(Chunk::Failed(e) | Chunk::Malformed(e)) = first {
            return Err(e);
        }
        let mode = match options.mode {
            ImportMode::Append => "append",
            ImportMode::Replace => "replace",
        };
        let mut db = self.writer.begin().await?;
        let (mut removed, mut kept) = (0, 0);
        if options.mode == ImportMode::Replace {
            // Contacts with results (called, moved on, or questionnaire answers) stay: the
            // client's results must not vanish.
            let fresh =
                "campaign_id = $1 AND attempts = 0 AND status = 'open' AND detail = '$none' \
                 AND id NOT IN (SELECT contact_id FROM answers WHERE campaign_id = $1)";
            removed = sqlx::query(&format!("DELETE FROM contacts WHERE {fresh}"))
                .bind(campaign_id)
                .execute(&mut *db)
                .await?
                .rows_affected() as i64;
            kept = sqlx::query_scalar("SELECT COUNT(*) FROM contacts WHERE campaign_id = $1")
                .bind(campaign_id)
                .fetch_one(&mut *db)
                .await?;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO imports (campaign_id, task_id, mode, state, started_by, started_ms, rows_read, inserted, \
             bad, duplicates, removed, kept, problems, node) \
             VALUES ($1, $2, $3, 'running', $4, $5, 0, 0, 0, 0, $6, $7, '{}', $8) RETURNING id",
        )
        .bind(campaign_id)
        .bind(task_id)
        .bind(mode)
        .bind(&options.user)
        .bind(now_ms())
        .bind(removed)
        .bind(kept)
        .bind(self.node.as_deref())
        .fetch_one(&mut *db)
        .await?;
        if let Some(names) = columns.get() {
            Self::add_form_columns(&mut db, campaign_id, names, &format!("import {id}")).await?;
        }
        db.commit().await?;

        let mut kept_problems: Vec<RowProblem> = Vec::new();
        let mut truncated = false;
        let mut failure = None;
        let mut undone = None;
        // The lowest and highest id the import inserted: where its undo looks.
        let mut span: Option<(i64, i64)> = None;
        let mut next = first;
        let mut batches = 0u64;
        while let Some(chunk) = next {
            match chunk {
                Chunk::Failed(e) => {
                    failure = Some(e);
                    break;
                }
                Chunk::Malformed(e) => {
                    undone = Some(self.undo_import(id, task_id, span).await?);
                    failure = Some(e);
                    break;
                }
                Chunk::Batch {
                    rows,
                    problems,
                    read,
                } => {
                    let mut all = problems;
                    batches += 1;
                    if batches.is_power_of_two() && batches >= 2 {
                        // The duplicate check plans by the table's statistics; an import can
                        // grow a table from nothing faster than autovacuum notices.
                        self.backend.refresh_statistics(&self.writer).await?;
                    }
                    match self
                        .import_batch(campaign_id, task_id, id, rows, read, &mut all)
                        .await
                    {
                        Ok(ids) => {
                            span = match (span, ids) {
                                (Some((lo, hi)), Some((a, b))) => Some((lo.min(a), hi.max(b))),
                                (s, i) => s.or(i),
                            };
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                    for p in all {
                        if kept_problems.len() < MAX_PROBLEMS {
                            kept_problems.push(p);
                        } else {
                            truncated = true;
                        }
                    }
                }
            }
            next = rx.recv().await;
        }
        drop(rx);
        let _ = reader.await;
        kept_problems.sort_by_key(|p| p.line);
        let state = if failure.is_some() { "failed" } else { "done" };
        let problems = serde_json::json!({
            "items": kept_problems,
            "truncated": truncated,
            "error": failure.as_ref().map(|e| e.to_string()),
            "rolled_back": undone,
        });
        sqlx::query("UPDATE imports SET state = $1, finished_ms = $2, problems = $3 WHERE id = $4")
            .bind(state)
            .bind(now_ms())
            .bind(problems.to_string())
            .bind(id)
            .execute(&self.writer)
            .await?;
        match failure {
            Some(e) => Err(e),
            None => self.import(campaign_id, id).await,
        }
    }

    /// Receives a whole CSV into an unnamed temporary file beside the database (gone when
    /// closed, even after a crash), checking that every quote closes; returns it rewound.
    async fn spool(&self, input: impl Read + Send + 'static) -> Result<std::fs::File> {
        let dir = self.files_dir.clone();
        let limits = self.import_limits;
        tokio::task::spawn_blocking(move || spool_checked(input, &dir, limits))
            .await
            .map_err(|e| StoreError::invalid("body", format!("the CSV could not be read: {e}")))?
    }

    /// Takes out what an import put in, after its CSV turned out malformed: its contacts that
    /// are still as inserted (open, `$none`, never called, in the import's task) are deleted
    /// with their numbers and history, and its counts say so, in one transaction. Returns how
    /// many were taken out. Contacts that got results meanwhile stay (and the report's
    /// `inserted` still counts them). `ids` is the range of ids the import inserted (none:
    /// nothing to undo): the primary key finds them, other writers' contacts in the range are
    /// left by their `import_id`.
    async fn undo_import(
        &self,
        import_id: i64,
        task_id: i64,
        ids: Option<(i64, i64)>,
    ) -> Result<i64> {
        let Some((first, last)) = ids else {
            return Ok(0);
        };
        let mut db = self.writer.begin().await?;
        let undone = sqlx::query(
            "DELETE FROM contacts WHERE id >= $3 AND id <= $4 AND import_id = $1 AND task_id = $2 \
             AND attempts = 0 AND status = 'open' AND detail = '$none'",
        )
        .bind(import_id)
        .bind(task_id)
        .bind(first)
        .bind(last)
        .execute(&mut *db)
        .await?
        .rows_affected() as i64;
        sqlx::query("UPDATE imports SET inserted = inserted - $1 WHERE id = $2")
            .bind(undone)
            .bind(import_id)
            .execute(&mut *db)
            .await?;
        db.commit().await?;
        Ok(undone)
    }

    /// One batch in one transaction: drops rows whose numbers the campaign (or an earlier row
    /// of the batch) has, inserts the rest, and adds the counts to the import row. Returns the
    /// lowest and highest id inserted (none when every row was dropped).
    async fn import_batch(
        &self,
        campaign_id: i64,
        task_id: i64,
        import_id: i64,
        rows: Vec<NewContact>,
        read: u64,
        problems: &mut Vec<RowProblem>,
    ) -> Result<Option<(i64, i64)>> {
        let mut tally = Tally {
            rows: read as i64,
            bad: problems.len() as i64,
            ..Tally::default()
        };
        let mut db = self.writer.begin().await?;
        let numbers: Vec<String> = rows.iter().flat_map(|r| r.phones.iter().cloned()).collect();
        let taken: HashMap<String, i64> = Self::taken_numbers(&mut db, campaign_id, &numbers, None)
            .await?
            .into_iter()
            .collect();
        let mut seen: HashMap<&str, u64> = HashMap::new();
        // Rows kept, moved out once read (a clone of each row cost the writer time).
        let mut keep = Vec::with_capacity(rows.len());
        for row in &rows {
            let line = row.line.unwrap_or(0);
            let clash = row.phones.iter().find_map(|p| {
                taken
                    .get(p)
                    .map(|c| format!("{p} is already the number of contact {c}"))
                    .or_else(|| {
                        seen.get(p.as_str())
                            .map(|l| format!("{p} is already on line {l}"))
                    })
            });
            let kept = clash.is_none();
            match clash {
                Some(reason) => {
                    tally.duplicates += 1;
                    problems.push(RowProblem {
                        line,
                        kind: "duplicate".into(),
                        reason,
                    });
                }
                None => {
                    for p in &row.phones {
                        seen.insert(p, line);
                    }
                }
            }
            keep.push(kept);
        }
        drop(seen);
        let good: Vec<NewContact> = rows
            .into_iter()
            .zip(keep)
            .filter_map(|(row, kept)| kept.then_some(row))
            .collect();
        tally.inserted = good.len() as i64;
        let span = match self.backend {
            Backend::Postgres => {
                Self::insert_contacts_pg(&mut db, campaign_id, task_id, import_id, &good).await?
            }
            Backend::Sqlite => {
                let ids =
                    Self::insert_contacts(&mut db, campaign_id, task_id, Some(import_id), &good)
                        .await?;
                ids.iter()
                    .min()
                    .zip(ids.iter().max())
                    .map(|(a, b)| (*a, *b))
            }
        };
        let fresh: Vec<String> = good.iter().flat_map(|r| r.phones.iter().cloned()).collect();
        Self::mark_new_numbers(&mut db, campaign_id, &fresh).await?;
        sqlx::query(
            "UPDATE imports SET rows_read = rows_read + $1, inserted = inserted + $2, bad = bad + $3, \
             duplicates = duplicates + $4 WHERE id = $5",
        )
        .bind(tally.rows)
        .bind(tally.inserted)
        .bind(tally.bad)
        .bind(tally.duplicates)
        .bind(import_id)
        .execute(&mut *db)
        .await?;
        db.commit().await?;
        Ok(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::campaigns::CampaignSpec;
    use crate::store::tasks::TaskSpec;

    async fn setup(dir: &std::path::Path) -> (Store, i64) {
        let store = crate::store::test_support::store_in(dir).await;
        let spec: CampaignSpec =
            serde_json::from_value(serde_json::json!({"name": "c", "default_region": "DE"}))
                .unwrap();
        let c = store.create_campaign(&spec).await.unwrap();
        let t: TaskSpec =
            serde_json::from_value(serde_json::json!({"name": "dial", "kind": "call"})).unwrap();
        store.create_task(c.id, t).await.unwrap();
        (store, c.id)
    }

    fn options(mode: ImportMode) -> ImportOptions {
        ImportOptions {
            mode,
            header: true,
            phone_columns: vec!["phone".into(), "mobile".into()],
            task_id: None,
            user: "test".into(),
        }
    }

    crate::store::both_backends! {
        async fn imported_numbers_go_with_their_contacts_and_a_task_holding_contacts_stays() {
            let dir = tempfile::tempdir().unwrap();
            let (store, c) = setup(dir.path()).await;
            let csv = "name,phone,mobile\nAnn,030 1234567,0151 23456789\nBob,030 1234568,\n";
            let r = store
                .import_csv(c, options(ImportMode::Append), std::io::Cursor::new(csv))
                .await
                .unwrap();
            assert_eq!(r.inserted, 2, "{r:?}");
            let task = store.first_task(c).await.unwrap();
            assert!(matches!(
                store.delete_task(c, task).await.unwrap_err(),
                StoreError::Conflict(_)
            ));
            let numbers = |store: Store| async move {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM contact_phones")
                    .fetch_one(&store.reader)
                    .await
                    .unwrap()
            };
            assert_eq!(numbers(store.clone()).await, 3);
            // Ann deleted: her two numbers go with her, and may be imported again.
            let ann: i64 =
                sqlx::query_scalar("SELECT contact_id FROM contact_phones WHERE phone = $1")
                    .bind("+49301234567")
                    .fetch_one(&store.reader)
                    .await
                    .unwrap();
            store.delete_contact(c, ann).await.unwrap();
            assert_eq!(numbers(store.clone()).await, 1);
            let again = store
                .import_csv(c, options(ImportMode::Append), std::io::Cursor::new(csv))
                .await
                .unwrap();
            assert_eq!((again.inserted, again.duplicates), (1, 1), "{again:?}");
            // The campaign deleted: its contacts, numbers and task with it.
            store.delete_campaign(c).await.unwrap();
            assert_eq!(numbers(store.clone()).await, 0);
            assert!(store.task(c, task).await.is_err());
        }
    }

    crate::store::both_backends! {
        async fn reports_bad_and_duplicate_rows_by_line() {
            let dir = tempfile::tempdir().unwrap();
            let (store, c) = setup(dir.path()).await;
            let csv = "name,phone,mobile\nAnn,030 1234567,\nBob,030 CALLME,\nCid,,\nDan,+49 30 1234567,\nEve,0301234568,0151 23456789\nFay,1\n";
            let r = store
                .import_csv(c, options(ImportMode::Append), std::io::Cursor::new(csv))
                .await
                .unwrap();
            assert_eq!(
                (r.rows, r.inserted, r.bad, r.duplicates),
                (6, 2, 3, 1),
                "{r:?}"
            );
            let lines: Vec<(u64, &str)> = r
                .problems
                .iter()
                .map(|p| (p.line, p.kind.as_str()))
                .collect();
            assert_eq!(
                lines,
                [(3, "bad"), (4, "bad"), (5, "duplicate"), (7, "bad")]
            );
            assert!(
                r.problems[0].reason.contains("only digits"),
                "{:?}",
                r.problems[0]
            );
            assert!(
                r.problems[2].reason.contains("line 2"),
                "{:?}",
                r.problems[2]
            );
            // The same file again: every good row is now a duplicate of a stored contact.
            let again = store
                .import_csv(c, options(ImportMode::Append), std::io::Cursor::new(csv))
                .await
                .unwrap();
            assert_eq!((again.inserted, again.duplicates), (0, 3));
            assert!(again
                .problems
                .iter()
                .any(|p| p.reason.contains("already the number of contact")));
            assert_eq!(store.imports(c).await.unwrap().len(), 2);
        }
    }

    crate::store::both_backends! {
        async fn a_missing_phone_column_writes_nothing() {
            let dir = tempfile::tempdir().unwrap();
            let (store, c) = setup(dir.path()).await;
            let err = store
                .import_csv(
                    c,
                    options(ImportMode::Append),
                    std::io::Cursor::new("name,tel\nA,1\n"),
                )
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::Invalid { field, reason } if field == "phone" && reason.contains("tel")),
                "{err}"
            );
            assert!(store.imports(c).await.unwrap().is_empty());
        }
    }

    /// Yields `data`, then fails as an upload cut off would.
    struct CutOff(std::io::Cursor<String>);

    impl Read for CutOff {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::other("connection reset")),
                n => Ok(n),
            }
        }
    }

    async fn phones(store: &Store, c: i64) -> Vec<String> {
        sqlx::query_scalar("SELECT phone FROM contact_phones WHERE campaign_id = $1 ORDER BY phone")
            .bind(c)
            .fetch_all(&store.reader)
            .await
            .unwrap()
    }

    crate::store::both_backends! {
        async fn replace_changes_nothing_when_the_file_breaks_after_the_first_batches() {
            let dir = tempfile::tempdir().unwrap();
            let (store, c) = setup(dir.path()).await;
            let old = "name,phone,mobile\nAnn,030 1234567,\nBob,030 1234568,\n";
            store
                .import_csv(c, options(ImportMode::Append), std::io::Cursor::new(old))
                .await
                .unwrap();
            let before = phones(&store, c).await;
            assert_eq!(before.len(), 2);
            // More than two batches of new contacts, then a quote never closed.
            let mut new = String::from("name,phone,mobile\n");
            for n in 0..2500 {
                new.push_str(&format!("n{n},0151 {:08},\n", 40_000_000 + n));
            }
            let mut unclosed = new.clone();
            unclosed.push_str("Zed,\"0151 99999999,\nYul,0151 99999998,\n");
            let err = store
                .import_csv(
                    c,
                    options(ImportMode::Replace),
                    std::io::Cursor::new(unclosed),
                )
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::Invalid { field, reason }
                    if field == "body" && reason.contains("line 2502") && reason.contains("nothing was removed")),
                "{err}"
            );
            assert_eq!(phones(&store, c).await, before);
            // The same rows over an upload cut off before its end.
            let err = store
                .import_csv(
                    c,
                    options(ImportMode::Replace),
                    CutOff(std::io::Cursor::new(new.clone())),
                )
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::Invalid { field, reason }
                    if field == "body" && reason.contains("connection reset")),
                "{err}"
            );
            assert_eq!(phones(&store, c).await, before);
            assert_eq!(
                store.imports(c).await.unwrap().len(),
                1,
                "no import was started"
            );
            // Whole, the file replaces the old contacts.
            let r = store
                .import_csv(c, options(ImportMode::Replace), std::io::Cursor::new(new))
                .await
                .unwrap();
            assert_eq!((r.removed, r.inserted), (2, 2500), "{r:?}");
            let after = phones(&store, c).await;
            assert_eq!(after.len(), 2500);
            assert!(!after.iter().any(|p| before.contains(p)));
        }
    }
}
