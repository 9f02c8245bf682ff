//! Export files of `export` tasks: contacts reaching the task are kept as rows of the task's
//! open file (in the database, in the transaction that moves them); downloading the file
//! closes it and writes it under `<state_dir>/exports/`, where it stays downloadable; the next
//! contacts open a new file.

use super::builder::QueryBuilder;
use super::contacts::contact_of;
use super::contacts::COLUMNS;
use super::forms::{FieldType, Form};
use super::formula::neutralise;
use super::pdf_zip::{self, Letter};
use super::questionnaires::answer_text;
use super::tasks::{ExportFormat, ExportSettings, Task, TaskKind};
use super::template;
use super::xlsx::{self, ColumnType};
use super::{now_ms, push_in_list, rfc3339, Result, Store, StoreError, ID_CHUNK};
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sqlx::Row;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Directory of export files inside the state directory.
pub const EXPORTS_DIR: &str = "exports";

/// An export file as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ExportFile {
    /// Id.
    pub id: i64,
    /// Task.
    pub task_id: i64,
    /// File name.
    pub name: String,
    /// `tsv`, `csv`, `xlsx` or `pdf_zip`.
    pub format: String,
    /// Contacts in it.
    pub rows: i64,
    /// Opened.
    pub created_at: String,
    /// Closed by its first download; null while contacts still go into it.
    pub closed_at: Option<String>,
    /// Never downloaded.
    pub new: bool,
    /// Times downloaded.
    pub downloads: i64,
}

/// A closed file ready to send.
#[derive(Debug, Clone)]
pub struct ExportDownload {
    /// Where it is.
    pub path: PathBuf,
    /// Its name.
    pub name: String,
    /// Its format.
    pub format: ExportFormat,
}

fn file_name(campaign: i64, task: i64, id: i64, format: &str) -> String {
    let ext = ExportFormat::by_name(format).extension();
    format!("campaign-{campaign}-task-{task}-file-{id}.{ext}")
}

/// Columns first, then every field name (in the order first seen).
const FIXED: [&str; 9] = [
    "contact_id",
    "phones",
    "time_zone",
    "status",
    "detail",
    "last_result",
    "attempts",
    "from_task",
    "exported_at",
];

/// The header: the fixed columns, then the field names.
fn header_of(fields: &[String]) -> Vec<String> {
    FIXED
        .iter()
        .map(|s| s.to_string())
        .chain(fields.iter().cloned())
        .collect()
}

/// Column name prefix of a questionnaire answer: `answer.QUESTION_ID`.
const ANSWER: &str = "answer.";

/// Adds the names of `row`'s fields not yet in `fields`, in the order first seen, and of its
/// questionnaire answers as `answer.ID`.
fn add_fields(fields: &mut Vec<String>, row: &Value) {
    if let Some(f) = row["fields"].as_object() {
        for k in f.keys() {
            if !fields.contains(k) {
                fields.push(k.clone());
            }
        }
    }
    if let Some(a) = row["answers"].as_object() {
        for k in a.keys() {
            let name = format!("{ANSWER}{k}");
            if !fields.contains(&name) {
                fields.push(name);
            }
        }
    }
}

/// A column's value in a stored row: a field, or a questionnaire answer (`answer.ID`).
fn column<'a>(r: &'a Value, name: &str) -> &'a Value {
    match name.strip_prefix(ANSWER) {
        Some(id) if r["fields"].get(name).is_none() => &r["answers"][id],
        _ => &r["fields"][name],
    }
}

/// A value as one cell: arrays (phone numbers) joined by spaces.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// Writes export rows (the JSON kept per contact) as TSV or CSV into memory, one at a time:
/// the fixed columns, then the given field names. The bytes are taken out as they pile up.
struct ExportWriter {
    builder: csv::WriterBuilder,
    out: csv::Writer<Vec<u8>>,
    format: ExportFormat,
    fields: Vec<String>,
}

impl ExportWriter {
    /// A writer that has written the header line.
    fn new(format: ExportFormat, fields: Vec<String>) -> Result<Self> {
        let mut builder = csv::WriterBuilder::new();
        if format == ExportFormat::Tsv {
            // TSV has no quoting: tabs and line breaks inside values become spaces.
            builder.delimiter(b'\t').quote_style(csv::QuoteStyle::Never);
        }
        let mut w = Self {
            out: builder.from_writer(Vec::new()),
            builder,
            format,
            fields,
        };
        let header = header_of(&w.fields);
        w.record(header)?;
        Ok(w)
    }

    /// Writes one contact's row.
    fn row(&mut self, r: &Value) -> Result<()> {
        let record = cells_of(r, &self.fields);
        self.record(record)
    }

    fn record(&mut self, cells: Vec<String>) -> Result<()> {
        let tsv = self.format == ExportFormat::Tsv;
        let cells = cells.into_iter().map(|s| {
            let s = neutralise(&s).into_owned();
            if tsv {
                s.replace(['\t', '\r', '\n'], " ")
            } else {
                s
            }
        });
        self.out.write_record(cells).map_err(write_err)
    }

    /// The bytes written so far, taken out (the next rows go to a fresh buffer).
    fn take(&mut self) -> Result<Vec<u8>> {
        let full = std::mem::replace(&mut self.out, self.builder.from_writer(Vec::new()));
        full.into_inner()
            .map_err(|e| StoreError::Conflict(format!("cannot write the export: {e}")))
    }

    /// Bytes waiting to be taken (about: the writer's own buffer is not counted).
    fn waiting(&self) -> usize {
        self.out.get_ref().len()
    }
}

fn write_err(e: csv::Error) -> StoreError {
    StoreError::Conflict(format!("cannot write the export: {e}"))
}

/// One contact's cells: the fixed columns, then the given fields.
fn cells_of(r: &Value, fields: &[String]) -> Vec<String> {
    FIXED
        .iter()
        .map(|k| cell(&r[*k]))
        .chain(fields.iter().map(|f| cell(column(r, f))))
        .collect()
}

/// How an XLSX file types the fixed columns, then each field (by the campaign's form).
fn column_types(fields: &[String], form: &Form) -> Vec<ColumnType> {
    let fixed = FIXED.iter().map(|k| match *k {
        "contact_id" | "attempts" | "from_task" => ColumnType::Number,
        "exported_at" => ColumnType::DateTime,
        _ => ColumnType::Text,
    });
    let typed =
        fields.iter().map(
            |f| match form.fields.iter().find(|x| &x.key == f).map(|x| x.kind) {
                Some(FieldType::Number) => ColumnType::Number,
                Some(FieldType::Date) => ColumnType::Date,
                Some(FieldType::Datetime) => ColumnType::DateTime,
                Some(FieldType::Bool) => ColumnType::Bool,
                _ => ColumnType::Text,
            },
        );
    fixed.chain(typed).collect()
}

/// A stored row's JSON (an unreadable one as an empty row rather than a lost file).
fn row_of(data: &str) -> Value {
    serde_json::from_str(data).unwrap_or(Value::Object(Map::new()))
}

impl Store {
    /// Directory export files are written to.
    pub fn exports_dir(&self) -> PathBuf {
        self.files_dir.join(EXPORTS_DIR)
    }

    /// The questionnaire answers of these contacts, each as text by question id.
    async fn answer_texts(
        conn: &mut sqlx::AnyConnection,
        contact_ids: &[i64],
    ) -> Result<HashMap<i64, Map<String, Value>>> {
        let mut q =
            QueryBuilder::new("SELECT contact_id, answers FROM answers WHERE contact_id IN ");
        push_in_list(&mut q, contact_ids);
        let mut out = HashMap::new();
        for row in q.build().fetch_all(&mut *conn).await? {
            let id: i64 = row.try_get(0)?;
            let raw: String = row.try_get(1)?;
            let given: Map<String, Value> = serde_json::from_str(&raw).unwrap_or_default();
            let texts = given
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(answer_text(v))))
                .collect();
            out.insert(id, texts);
        }
        Ok(out)
    }

    /// Adds contacts as they are now (their status and detail from the task they leave), in
    /// the order given, to the open file of `task`, opening one when there is none.
    pub(crate) async fn export_contacts(
        conn: &mut sqlx::AnyConnection,
        contact_ids: &[i64],
        task: &Task,
        now: i64,
    ) -> Result<()> {
        if contact_ids.is_empty() {
            return Ok(());
        }
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM export_files WHERE task_id = $1 AND closed_ms IS NULL",
        )
        .bind(task.id)
        .fetch_optional(&mut *conn)
        .await?;
        let file = match open {
            Some(f) => f,
            None => {
                let settings: ExportSettings =
                    serde_json::from_value(task.spec.settings.clone()).unwrap_or_default();
                let format = settings.format.as_str();
                sqlx::query_scalar(
                    "INSERT INTO export_files (task_id, format, created_ms) VALUES ($1, $2, $3) RETURNING id",
                )
                .bind(task.id)
                .bind(format)
                .bind(now)
                .fetch_one(&mut *conn)
                .await?
            }
        };
        let exported_at = rfc3339(now);
        for chunk in contact_ids.chunks(ID_CHUNK) {
            let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM contacts WHERE id IN "));
            push_in_list(&mut q, chunk);
            let mut answers = Self::answer_texts(conn, chunk).await?;
            let mut data: HashMap<i64, String> = HashMap::with_capacity(chunk.len());
            for row in q.build().fetch_all(&mut *conn).await? {
                let c = contact_of(&row)?;
                let d = json!({
                    "contact_id": c.id,
                    "phones": c.spec.phones,
                    "time_zone": c.spec.time_zone,
                    "status": c.spec.status,
                    "detail": c.spec.detail,
                    "last_result": c.last_result,
                    "attempts": c.spec.attempts,
                    "from_task": c.spec.task_id,
                    "exported_at": exported_at,
                    "fields": Value::Object(c.spec.fields),
                    "answers": answers.remove(&c.id).unwrap_or_default(),
                });
                data.insert(c.id, d.to_string());
            }
            let rows = chunk
                .iter()
                .map(|id| {
                    data.remove(id).ok_or(StoreError::NotFound {
                        what: "contact",
                        id: *id,
                    })
                })
                .collect::<Result<Vec<String>>>()?;
            let mut q = QueryBuilder::new("INSERT INTO export_rows (file_id, data) ");
            q.push_values(rows, |mut b, d| {
                b.push_bind(file).push_bind(d);
            });
            q.build().execute(&mut *conn).await?;
        }
        sqlx::query("UPDATE export_files SET rows_count = rows_count + $1 WHERE id = $2")
            .bind(contact_ids.len() as i64)
            .bind(file)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn export_task(&self, campaign_id: i64, task_id: i64) -> Result<Task> {
        let task = self.task(campaign_id, task_id).await?;
        if task.spec.kind != TaskKind::Export {
            return Err(StoreError::NotFound {
                what: "export task",
                id: task_id,
            });
        }
        Ok(task)
    }

    /// The files of an export task, newest first.
    pub async fn export_files(&self, campaign_id: i64, task_id: i64) -> Result<Vec<ExportFile>> {
        self.export_task(campaign_id, task_id).await?;
        let rows = sqlx::query(
            "SELECT id, format, rows_count, created_ms, closed_ms, downloads FROM export_files \
             WHERE task_id = $1 ORDER BY id DESC",
        )
        .bind(task_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                let format: String = r.try_get("format")?;
                let downloads: i64 = r.try_get("downloads")?;
                Ok(ExportFile {
                    id,
                    task_id,
                    name: file_name(campaign_id, task_id, id, &format),
                    format,
                    rows: r.try_get("rows_count")?,
                    created_at: rfc3339(r.try_get("created_ms")?),
                    closed_at: r.try_get::<Option<i64>, _>("closed_ms")?.map(rfc3339),
                    new: downloads == 0,
                    downloads,
                })
            })
            .collect()
    }

    /// A file to download: an open one is closed and written out first (the next contacts go
    /// to a new file); a closed one whose file is missing is written again from its rows.
    pub async fn download_export(
        &self,
        campaign_id: i64,
        task_id: i64,
        file_id: i64,
    ) -> Result<ExportDownload> {
        self.export_task(campaign_id, task_id).await?;
        let row = sqlx::query(
            "SELECT format, closed_ms FROM export_files WHERE id = $1 AND task_id = $2",
        )
        .bind(file_id)
        .bind(task_id)
        .fetch_optional(&self.writer)
        .await?
        .ok_or(StoreError::NotFound {
            what: "export file",
            id: file_id,
        })?;
        let format_text: String = row.try_get(0)?;
        let closed: Option<i64> = row.try_get(1)?;
        let name = file_name(campaign_id, task_id, file_id, &format_text);
        let path = self.exports_dir().join(&name);
        if closed.is_none() {
            // Closed first, on its own: no row is added to it after this, so it can be written
            // out from the readers while calls go on writing results.
            sqlx::query(
                "UPDATE export_files SET closed_ms = COALESCE(closed_ms, $1) WHERE id = $2",
            )
            .bind(now_ms())
            .bind(file_id)
            .execute(&self.writer)
            .await?;
        }
        let format = ExportFormat::by_name(&format_text);
        if closed.is_none() || !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            self.write_export(campaign_id, task_id, file_id, format, &path)
                .await?;
        }
        sqlx::query("UPDATE export_files SET downloads = downloads + 1 WHERE id = $1")
            .bind(file_id)
            .execute(&self.writer)
            .await?;
        Ok(ExportDownload { path, name, format })
    }

    /// Writes a closed file's rows to `path`, streaming them twice (field names, then rows) so
    /// memory does not grow with the file; into a temporary file renamed at the end, so a
    /// reader never sees half a file and two downloads at once do not mix.
    async fn write_export(
        &self,
        campaign_id: i64,
        task_id: i64,
        file_id: i64,
        format: ExportFormat,
        path: &Path,
    ) -> Result<()> {
        let dir = path
            .parent()
            .map_or_else(|| self.exports_dir(), Path::to_path_buf);
        let io = |source| StoreError::File {
            path: path.to_path_buf(),
            source,
        };
        let rows = || {
            sqlx::query_scalar::<_, String>(
                "SELECT data FROM export_rows WHERE file_id = $1 ORDER BY id",
            )
            .bind(file_id)
            .fetch(&self.reader)
        };
        let mut fields = Vec::new();
        let mut stream = rows();
        while let Some(data) = stream.try_next().await? {
            add_fields(&mut fields, &row_of(&data));
        }
        drop(stream);
        // Answers after the fields, each group in the order first seen.
        fields.sort_by_key(|f| f.starts_with(ANSWER));
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let part = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || tempfile::NamedTempFile::new_in(dir))
                .await
                .map_err(|e| io(std::io::Error::other(e)))?
                .map_err(io)?
        };
        if format == ExportFormat::Xlsx {
            let form = self.form(campaign_id).await?;
            let types = column_types(&fields, &form);
            let header = header_of(&fields);
            let out = part.as_file().try_clone().map_err(io)?;
            let cells = rows().map(
                move |data: std::result::Result<String, sqlx::Error>| -> Result<Vec<String>> {
                    Ok(cells_of(&row_of(&data?), &fields))
                },
            );
            xlsx::write(dir.clone(), header, types, Box::pin(cells), out).await?;
        } else if format == ExportFormat::PdfZip {
            let out = part.as_file().try_clone().map_err(io)?;
            let letter = serde_json::from_value::<ExportSettings>(
                self.task(campaign_id, task_id).await?.spec.settings,
            )
            .unwrap_or_default()
            .letter;
            let letters = self.letters(campaign_id, fields, letter, rows()).await?;
            pdf_zip::write(path.to_path_buf(), letters, out).await?;
        } else {
            self.write_text(format, fields, &part, rows(), path).await?;
        }
        let target = path.to_path_buf();
        tokio::task::spawn_blocking(move || part.persist(target))
            .await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(|e| io(e.error))?;
        Ok(())
    }

    /// One letter per export row: its columns and fields (titled as the form titles them),
    /// then the contact's questionnaire answers, if any.
    async fn letters<'a, S>(
        &'a self,
        campaign_id: i64,
        fields: Vec<String>,
        letter: Option<String>,
        rows: S,
    ) -> Result<impl futures_util::Stream<Item = Result<Letter>> + Unpin + 'a>
    where
        S: futures_util::Stream<Item = std::result::Result<String, sqlx::Error>> + Unpin + 'a,
    {
        let campaign = self.campaign(campaign_id).await?.spec.name;
        let form = self.form(campaign_id).await?;
        let questions = self.questionnaire(campaign_id).await?.questions;
        let title_of = move |key: &str| {
            form.fields
                .iter()
                .find(|f| f.key == key && !f.title.is_empty())
                .map_or_else(|| key.to_string(), |f| f.title.clone())
        };
        let letters = rows.then(move |data| {
            let (fields, questions, campaign) =
                (fields.clone(), questions.clone(), campaign.clone());
            let letter = letter.clone();
            let title_of = title_of.clone();
            async move {
                let row = row_of(&data?);
                let id = row["contact_id"].as_i64().unwrap_or_default();
                let mut lines: Vec<(String, Option<String>)> = FIXED
                    .iter()
                    .map(|k| (k.to_string(), Some(cell(&row[*k]))))
                    .collect();
                lines.push(("Fields".into(), None));
                // Answers follow under their questions' texts, from the questionnaire.
                lines.extend(
                    fields
                        .iter()
                        .filter(|f| !f.starts_with(ANSWER))
                        .map(|f| (title_of(f), Some(cell(&row["fields"][f])))),
                );
                if let Ok(a) = self.answers(campaign_id, id).await {
                    lines.push(("Answers".into(), None));
                    lines.extend(questions.iter().filter_map(|q| {
                        let v = a.answers.get(&q.id)?;
                        Some((q.text.clone(), Some(answer_text(v))))
                    }));
                }
                let body = letter.as_deref().map_or_else(String::new, |t| {
                    let phones: Vec<String> = row["phones"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|p| p.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    let empty = Map::new();
                    let values = row["fields"].as_object().unwrap_or(&empty);
                    template::render(t, values, &phones, &campaign, false)
                });
                Ok(Letter {
                    name: format!("contact-{id}.pdf"),
                    title: format!("{campaign}: contact {id}"),
                    body,
                    lines,
                })
            }
        });
        Ok(Box::pin(letters))
    }

    /// Writes TSV or CSV rows into `part`, through tokio (its blocking pool), a chunk at a time.
    async fn write_text<S>(
        &self,
        format: ExportFormat,
        fields: Vec<String>,
        part: &tempfile::NamedTempFile,
        mut stream: S,
        path: &Path,
    ) -> Result<()>
    where
        S: futures_util::Stream<Item = std::result::Result<String, sqlx::Error>> + Unpin,
    {
        let io = |source| StoreError::File {
            path: path.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::from_std(part.as_file().try_clone().map_err(io)?);
        let mut w = ExportWriter::new(format, fields)?;
        while let Some(data) = stream.try_next().await? {
            w.row(&row_of(&data))?;
            if w.waiting() >= 256 * 1024 {
                file.write_all(&w.take()?).await.map_err(io)?;
            }
        }
        file.write_all(&w.take()?).await.map_err(io)?;
        file.flush().await.map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(rows: &[Value], format: ExportFormat) -> Result<Vec<u8>> {
        let mut fields = Vec::new();
        for r in rows {
            add_fields(&mut fields, r);
        }
        let mut w = ExportWriter::new(format, fields)?;
        for r in rows {
            w.row(r)?;
        }
        w.take()
    }

    #[test]
    fn renders_every_field_and_keeps_tsv_one_line_per_contact() {
        let rows = [
            json!({"contact_id": 1, "phones": ["+491", "+492"], "status": "success", "detail": "sale",
                   "fields": {"name": "Ann\tB", "city": "Köln"}}),
            json!({"contact_id": 2, "phones": ["+493"], "status": "failed", "detail": "$busy",
                   "fields": {"name": "Bob, Jr.", "note": "x\ny"}}),
        ];
        let tsv = String::from_utf8(render(&rows, ExportFormat::Tsv).unwrap()).unwrap();
        let lines: Vec<&str> = tsv.lines().collect();
        assert_eq!(lines.len(), 3, "{tsv}");
        // Field columns in name order (fields are kept as a sorted JSON object).
        assert!(lines[0].ends_with("exported_at\tcity\tname\tnote"), "{tsv}");
        // Two numbers read as a sum by a spreadsheet: neutralised; one stays a number.
        assert!(
            lines[1].starts_with("1\t'+491 +492\t\tsuccess\tsale\t"),
            "{tsv}"
        );
        assert!(lines[2].starts_with("2\t+493\t"), "{tsv}");
        assert!(lines[1].ends_with("\tKöln\tAnn B\t"), "{tsv}");
        assert!(lines[2].ends_with("\t\tBob, Jr.\tx y"), "{tsv}");
        let csv = String::from_utf8(render(&rows, ExportFormat::Csv).unwrap()).unwrap();
        assert!(csv.contains("\"Bob, Jr.\""), "{csv}");
    }
}
