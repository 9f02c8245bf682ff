//! Contacts: fields, numbers, place in the task flow, and the history of every change.

use super::builder::QueryBuilder;
use super::{
    now_ms, parse_time, phone, push_in_list, rfc3339, Result, Store, StoreError, ID_CHUNK,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;
use std::collections::HashMap;

/// Statuses a contact can have inside its task.
pub const STATUSES: [&str; 4] = ["open", "success", "declined", "failed"];

/// What a call writes on its contact ([`Store::write_call`]).
pub(crate) struct CallWrite<'a> {
    /// The contact's `last_result` and detail.
    pub result: &'a str,
    /// Its status after the call; `None` leaves the contact as it is.
    pub status: Option<&'a str>,
    /// When to call it next (epoch ms).
    pub follow_up_ms: Option<i64>,
    /// A dialling attempt (counted in `attempts`), not a call the contact made.
    pub attempt: bool,
    /// When the call ended (epoch ms).
    pub at_ms: i64,
}

/// One call attempt on a contact, as the dialer records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The number called (E.164).
    pub number: String,
    /// The result as a status detail (`$busy`, `$no_answer`, `$invalid_number`, an agent's
    /// disposition …); also kept as the contact's `last_result`.
    pub result: String,
    /// The call's final SIP status, when one came.
    pub sip_code: Option<u16>,
    /// The dialer's call id (the call record's).
    pub call_id: Option<String>,
    /// The contact's status after it (`open` to call again, or a final one).
    pub status: String,
    /// When to call again (epoch ms), for an `open` contact.
    pub follow_up_ms: Option<i64>,
    /// When the attempt ended (epoch ms).
    pub at_ms: i64,
}

impl Attempt {
    /// The contact's history entry for it.
    pub(crate) fn history(&self) -> Value {
        serde_json::json!({
            "op": "attempt",
            "number": self.number,
            "result": self.result,
            "sip_code": self.sip_code,
            "call_id": self.call_id,
            "status": self.status,
            "follow_up_at": self.follow_up_ms.map(rfc3339),
        })
    }
}

/// A stored contact.
#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    /// Id.
    pub id: i64,
    /// Campaign.
    pub campaign_id: i64,
    /// What an API user can set.
    #[serde(flatten)]
    pub spec: ContactSpec,
    /// Import it came from, if any.
    pub import_id: Option<i64>,
    /// Its numbers that are on a do-not-call list (global or the campaign's); never dialled.
    pub dnc_numbers: Vec<String>,
    /// Result of its last call, when the call layer has set one.
    pub last_result: Option<String>,
    /// 0: no number on a do-not-call list, 1: some, 2: all.
    #[serde(skip)]
    pub(crate) dnc: i64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// The settable part of a contact (create body; PATCH merges into it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactSpec {
    /// Task it sits in; the campaign's first task when absent at creation.
    #[serde(default)]
    pub task_id: Option<i64>,
    /// Columns from the import, or anything else.
    #[serde(default)]
    pub fields: Map<String, Value>,
    /// Numbers, normalised to E.164 on the way in.
    pub phones: Vec<String>,
    /// IANA zone; from the first number's country when absent.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// open, success, declined or failed.
    #[serde(default = "open")]
    pub status: String,
    /// Status detail.
    #[serde(default = "none")]
    pub detail: String,
    /// When to call again (RFC 3339).
    #[serde(default)]
    pub follow_up_at: Option<String>,
    /// User who owns the follow-up.
    #[serde(default)]
    pub owner: Option<String>,
    /// Calls made so far.
    #[serde(default)]
    pub attempts: i64,
}

fn open() -> String {
    "open".into()
}

fn none() -> String {
    "$none".into()
}

/// One entry in a contact's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// When.
    pub at: String,
    /// Who (user name, or `import N`).
    pub actor: String,
    /// What: `{"op": ..., "changes": {"field": [old, new]}}`.
    pub change: Value,
}

/// Which contacts a listing, bulk edit or move applies to.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactFilter {
    /// In this task.
    #[serde(default)]
    pub task: Option<i64>,
    /// With this status.
    #[serde(default)]
    pub status: Option<String>,
    /// With this status detail.
    #[serde(default)]
    pub detail: Option<String>,
    /// Whose fields or numbers contain this text (case-insensitive).
    #[serde(default)]
    pub text: Option<String>,
    /// true: follow-up due now; false: not due.
    #[serde(default)]
    pub due: Option<bool>,
}

/// Listing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// By id.
    #[default]
    Id,
    /// Due work first: overdue follow-ups, never-called, then future follow-ups.
    Due,
}

/// One page of contacts and the cursor of the next.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// The contacts.
    pub items: Vec<Contact>,
    /// Cursor for the next page; null at the end.
    pub next: Option<String>,
}

/// A contact ready to insert (numbers normalised, zone known).
#[derive(Debug, Clone)]
pub struct NewContact {
    /// Fields.
    pub fields: Map<String, Value>,
    /// E.164 numbers, no repeats.
    pub phones: Vec<String>,
    /// IANA zone.
    pub time_zone: String,
    /// CSV line it came from (imports).
    pub line: Option<u64>,
}

pub(crate) const COLUMNS: &str = "id, campaign_id, task_id, fields, phones, time_zone, status, detail, \
                       follow_up_ms, owner, attempts, import_id, dnc, last_result, created_ms, updated_ms";

pub(crate) fn contact_of(row: &sqlx::any::AnyRow) -> Result<Contact> {
    let fields: String = row.try_get("fields")?;
    let phones: String = row.try_get("phones")?;
    Ok(Contact {
        id: row.try_get("id")?,
        campaign_id: row.try_get("campaign_id")?,
        spec: ContactSpec {
            task_id: Some(row.try_get("task_id")?),
            fields: serde_json::from_str(&fields).unwrap_or_default(),
            phones: serde_json::from_str(&phones).unwrap_or_default(),
            time_zone: Some(row.try_get("time_zone")?),
            status: row.try_get("status")?,
            detail: row.try_get("detail")?,
            follow_up_at: row.try_get::<Option<i64>, _>("follow_up_ms")?.map(rfc3339),
            owner: row.try_get("owner")?,
            attempts: row.try_get("attempts")?,
        },
        import_id: row.try_get("import_id")?,
        dnc_numbers: Vec::new(),
        last_result: row.try_get("last_result")?,
        dnc: row.try_get("dnc")?,
        created_at: rfc3339(row.try_get("created_ms")?),
        updated_at: rfc3339(row.try_get("updated_ms")?),
    })
}

/// Contacts a bulk edit reads and writes per transaction.
const BULK_BATCH: i64 = 500;

/// The field a bulk edit sets and its value, checked once for every contact.
enum BulkField {
    Status(String),
    Detail(String),
    Owner(Option<String>),
    /// Epoch ms.
    FollowUp(Option<i64>),
    /// `None`: from each contact's first number, else the campaign's zone.
    TimeZone(Option<String>),
    /// `fields.NAME`: the name and any JSON value.
    Field(String, Value),
}

impl BulkField {
    fn parse(field: &str, value: &Value) -> Result<Self> {
        let bad = |want: &str| {
            Err(StoreError::invalid(
                "value",
                format!("not a value for {field}: wanted {want}"),
            ))
        };
        if let Some(name) = field.strip_prefix("fields.").filter(|n| !n.is_empty()) {
            return Ok(Self::Field(name.to_string(), value.clone()));
        }
        match (field, value) {
            ("status", Value::String(s)) if STATUSES.contains(&s.as_str()) => {
                Ok(Self::Status(s.clone()))
            }
            ("status", _) => bad("open, success, declined or failed"),
            ("detail", Value::String(s)) if !s.is_empty() && s.len() <= 100 => {
                Ok(Self::Detail(s.clone()))
            }
            ("detail", _) => bad("a text of 1 to 100 characters"),
            ("owner", Value::String(s)) => Ok(Self::Owner(Some(s.clone()))),
            ("owner", Value::Null) => Ok(Self::Owner(None)),
            ("owner", _) => bad("a user name or null"),
            ("follow_up_at", Value::String(s)) => Ok(Self::FollowUp(Some(parse_time("value", s)?))),
            ("follow_up_at", Value::Null) => Ok(Self::FollowUp(None)),
            ("follow_up_at", _) => bad("an RFC 3339 time or null"),
            ("time_zone", Value::String(s)) if s.parse::<chrono_tz::Tz>().is_ok() => {
                Ok(Self::TimeZone(Some(s.clone())))
            }
            ("time_zone", Value::Null) => Ok(Self::TimeZone(None)),
            ("time_zone", _) => bad("an IANA time zone such as Europe/Berlin, or null"),
            _ => Err(StoreError::invalid(
                "field",
                format!(
                    "{field:?} cannot be bulk-edited; wanted one of status, detail, owner, \
                     follow_up_at, time_zone, or fields.NAME"
                ),
            )),
        }
    }
}

/// JSON of an optional value (null when absent).
fn json_of<T: Into<Value>>(v: Option<T>) -> Value {
    v.map_or(Value::Null, Into::into)
}

/// A checked spec as column values.
struct Checked {
    task_id: i64,
    fields: String,
    phones: Vec<String>,
    time_zone: String,
    follow_up_ms: Option<i64>,
}

/// Top-level fields whose values differ: `{"field": [old, new]}`.
fn diff(old: &Value, new: &Value) -> Map<String, Value> {
    let empty = Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut changes = Map::new();
    for key in o.keys().chain(n.keys()) {
        let (a, b) = (
            o.get(key).unwrap_or(&Value::Null),
            n.get(key).unwrap_or(&Value::Null),
        );
        if a != b && !changes.contains_key(key) {
            changes.insert(key.clone(), Value::Array(vec![a.clone(), b.clone()]));
        }
    }
    changes
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Appends `AND …` conditions for `filter` (after a `WHERE campaign_id = …`).
fn push_filter(q: &mut QueryBuilder<'_>, filter: &ContactFilter, now: i64) {
    if let Some(t) = filter.task {
        q.push(" AND task_id = ").push_bind(t);
    }
    if let Some(s) = &filter.status {
        q.push(" AND status = ").push_bind(s.clone());
    }
    if let Some(d) = &filter.detail {
        q.push(" AND detail = ").push_bind(d.clone());
    }
    if let Some(text) = filter.text.as_ref().filter(|t| !t.is_empty()) {
        let p = like_pattern(text);
        q.push(" AND (LOWER(fields) LIKE ")
            .push_bind(p.clone())
            .push(" ESCAPE '\\' OR phones LIKE ")
            .push_bind(p)
            .push(" ESCAPE '\\')");
    }
    match filter.due {
        Some(true) => {
            q.push(" AND follow_up_ms <= ").push_bind(now);
        }
        Some(false) => {
            q.push(" AND (follow_up_ms IS NULL OR follow_up_ms > ")
                .push_bind(now)
                .push(")");
        }
        None => {}
    }
}

fn other_order() -> StoreError {
    StoreError::invalid("cursor", "the cursor belongs to another order")
}

/// A listing cursor: the position after the last item of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Id(i64),
    Due {
        now: i64,
        bucket: i64,
        ts: i64,
        id: i64,
    },
}

impl Cursor {
    fn encode(self) -> String {
        match self {
            Cursor::Id(id) => format!("i{id}"),
            Cursor::Due {
                now,
                bucket,
                ts,
                id,
            } => format!("d{now}.{bucket}.{ts}.{id}"),
        }
    }

    fn decode(text: &str) -> Option<Cursor> {
        if let Some(id) = text.strip_prefix('i') {
            return id.parse().ok().map(Cursor::Id);
        }
        let mut parts = text
            .strip_prefix('d')?
            .split('.')
            .map(|p| p.parse::<i64>().ok());
        let mut next = || parts.next().flatten();
        Some(Cursor::Due {
            now: next()?,
            bucket: next()?,
            ts: next()?,
            id: next()?,
        })
    }
}

impl ContactSpec {
    /// Checks the spec against its campaign (numbers, zone, status, task), naming bad fields.
    async fn check(&self, store: &Store, campaign_id: i64) -> Result<Checked> {
        let campaign = store.campaign(campaign_id).await?;
        let region = campaign
            .spec
            .default_region
            .as_deref()
            .and_then(phone::region);
        if self.phones.is_empty() {
            return Err(StoreError::invalid(
                "phones",
                "wanted at least one phone number",
            ));
        }
        let mut phones = Vec::new();
        for (i, p) in self.phones.iter().enumerate() {
            let e164 = phone::normalise(p, region)
                .map_err(|r| StoreError::invalid(format!("phones[{i}]"), r))?;
            if !phones.contains(&e164) {
                phones.push(e164);
            }
        }
        let time_zone = match &self.time_zone {
            Some(tz) if tz.parse::<chrono_tz::Tz>().is_err() => {
                return Err(StoreError::invalid(
                    "time_zone",
                    format!("{tz:?} is not an IANA time zone"),
                ))
            }
            Some(tz) => tz.clone(),
            None => phone::time_zone_of(&phones[0])
                .unwrap_or(&campaign.spec.time_zone)
                .to_string(),
        };
        if !STATUSES.contains(&self.status.as_str()) {
            return Err(StoreError::invalid(
                "status",
                "wanted open, success, declined or failed",
            ));
        }
        if self.detail.is_empty() || self.detail.len() > 100 {
            return Err(StoreError::invalid("detail", "wanted 1 to 100 characters"));
        }
        if self.attempts < 0 {
            return Err(StoreError::invalid("attempts", "wanted 0 or more"));
        }
        let task_id = match self.task_id {
            Some(t) => {
                store.task(campaign_id, t).await.map_err(|_| {
                    StoreError::invalid("task_id", format!("the campaign has no task {t}"))
                })?;
                t
            }
            None => store.first_task(campaign_id).await?,
        };
        let follow_up_ms = self
            .follow_up_at
            .as_deref()
            .map(|t| parse_time("follow_up_at", t))
            .transpose()?;
        Ok(Checked {
            task_id,
            fields: Value::Object(self.fields.clone()).to_string(),
            phones,
            time_zone,
            follow_up_ms,
        })
    }
}

impl Store {
    /// The task new contacts go to when none is named: the campaign's first.
    pub async fn first_task(&self, campaign_id: i64) -> Result<i64> {
        sqlx::query_scalar::<_, Option<i64>>("SELECT MIN(id) FROM tasks WHERE campaign_id = $1")
            .bind(campaign_id)
            .fetch_one(&self.reader)
            .await?
            .ok_or_else(|| {
                StoreError::invalid("task_id", "the campaign has no task yet; create one first")
            })
    }

    /// Numbers among `phones` that other contacts of the campaign hold: (number, contact).
    pub(super) async fn taken_numbers(
        conn: &mut sqlx::AnyConnection,
        campaign_id: i64,
        phones: &[String],
        except: Option<i64>,
    ) -> Result<Vec<(String, i64)>> {
        let mut taken = Vec::new();
        for chunk in phones.chunks(500) {
            let mut q = QueryBuilder::new(
                "SELECT phone, contact_id FROM contact_phones WHERE campaign_id = ",
            );
            q.push_bind(campaign_id).push(" AND phone IN ");
            push_in_list(&mut q, chunk);
            if let Some(id) = except {
                q.push(" AND contact_id <> ").push_bind(id);
            }
            for row in q.build().fetch_all(&mut *conn).await? {
                taken.push((row.try_get(0)?, row.try_get(1)?));
            }
        }
        Ok(taken)
    }

    /// Inserts contacts and their numbers in one statement each (chunked); returns their ids in
    /// the order given. Callers have made sure no number is taken.
    pub(crate) async fn insert_contacts(
        conn: &mut sqlx::AnyConnection,
        campaign_id: i64,
        task_id: i64,
        import_id: Option<i64>,
        contacts: &[NewContact],
    ) -> Result<Vec<i64>> {
        let now = now_ms();
        let mut ids = Vec::with_capacity(contacts.len());
        for chunk in contacts.chunks(500) {
            let mut q = QueryBuilder::new(
                "INSERT INTO contacts (campaign_id, task_id, fields, phones, time_zone, status, detail, \
                 attempts, import_id, import_line, created_ms, updated_ms) ",
            );
            q.push_values(chunk.iter().enumerate(), |mut b, (i, c)| {
                b.push_bind(campaign_id)
                    .push_bind(task_id)
                    .push_bind(serde_json::to_string(&c.fields).unwrap_or_default())
                    .push_bind(serde_json::to_string(&c.phones).unwrap_or_default())
                    .push_bind(c.time_zone.clone())
                    .push("'open', '$none', 0")
                    .push_bind(import_id)
                    // The position in the chunk maps RETURNING rows back to their input.
                    .push_bind(c.line.map(|l| l as i64).unwrap_or(i as i64))
                    .push_bind(now)
                    .push_bind(now);
            });
            q.push(" RETURNING id, import_line");
            let rows = q.build().fetch_all(&mut *conn).await?;
            let mut by_key: std::collections::HashMap<i64, i64> =
                std::collections::HashMap::with_capacity(rows.len());
            for row in rows {
                by_key.insert(row.try_get(1)?, row.try_get(0)?);
            }
            let chunk_ids: Vec<i64> = chunk
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    by_key
                        .get(&c.line.map(|l| l as i64).unwrap_or(i as i64))
                        .copied()
                })
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    StoreError::Conflict("two contacts of one insert share a line".into())
                })?;
            if import_id.is_none() {
                // Only imports keep a line number.
                let mut q =
                    QueryBuilder::new("UPDATE contacts SET import_line = NULL WHERE id IN ");
                push_in_list(&mut q, &chunk_ids);
                q.build().execute(&mut *conn).await?;
            }
            let phones: Vec<(i64, &String)> = chunk_ids
                .iter()
                .zip(chunk)
                .flat_map(|(id, c)| c.phones.iter().map(move |p| (*id, p)))
                .collect();
            for part in phones.chunks(1000) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO contact_phones (campaign_id, phone, contact_id) ",
                );
                q.push_values(part, |mut b, (id, p)| {
                    b.push_bind(campaign_id)
                        .push_bind((*p).clone())
                        .push_bind(*id);
                });
                q.build().execute(&mut *conn).await?;
            }
            ids.extend(chunk_ids);
        }
        Ok(ids)
    }

    /// PostgreSQL's way of [`Store::insert_contacts`] for an import's batch: the rows go as one
    /// JSON parameter and one statement writes the contacts and their numbers (a multi-row
    /// VALUES list costs the client a bound parameter per cell and a round trip per table).
    /// Returns the lowest and highest id inserted (none for no rows).
    pub(crate) async fn insert_contacts_pg(
        conn: &mut sqlx::AnyConnection,
        campaign_id: i64,
        task_id: i64,
        import_id: i64,
        contacts: &[NewContact],
    ) -> Result<Option<(i64, i64)>> {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            f: &'a Map<String, Value>,
            p: &'a [String],
            z: &'a str,
            l: i64,
        }
        if contacts.is_empty() {
            return Ok(None);
        }
        let rows: Vec<Row> = contacts
            .iter()
            .enumerate()
            .map(|(i, c)| Row {
                f: &c.fields,
                p: &c.phones,
                z: &c.time_zone,
                l: c.line.map_or(i as i64, |l| l as i64),
            })
            .collect();
        let json = serde_json::to_string(&rows)
            .map_err(|e| StoreError::invalid("contacts", e.to_string()))?;
        // Each contact's numbers are written by the same statement, from its RETURNING row.
        let row = sqlx::query(
            "WITH input AS (SELECT * FROM json_to_recordset($4::json) AS x(f json, p json, z text, l bigint)), \
             ins AS (INSERT INTO contacts (campaign_id, task_id, fields, phones, time_zone, status, \
             detail, attempts, import_id, import_line, created_ms, updated_ms) \
             SELECT $1, $2, f::text, p::text, z, 'open', '$none', 0, $3, l, $5, $5 FROM input \
             RETURNING id, phones), \
             numbers AS (INSERT INTO contact_phones (campaign_id, phone, contact_id) \
             SELECT $1, n, ins.id FROM ins, json_array_elements_text(ins.phones::json) AS n) \
             SELECT MIN(id), MAX(id) FROM ins",
        )
        .bind(campaign_id)
        .bind(task_id)
        .bind(import_id)
        .bind(json)
        .bind(now_ms())
        .fetch_one(&mut *conn)
        .await?;
        let (lo, hi): (Option<i64>, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
        Ok(lo.zip(hi))
    }

    pub(crate) async fn record(
        conn: &mut sqlx::AnyConnection,
        contact_id: i64,
        actor: &str,
        change: Value,
    ) -> Result<()> {
        Self::record_many(conn, actor, now_ms(), &[(contact_id, change)]).await
    }

    /// Adds one history entry per `(contact, change)`, all at `at`, in few statements.
    pub(crate) async fn record_many(
        conn: &mut sqlx::AnyConnection,
        actor: &str,
        at: i64,
        entries: &[(i64, Value)],
    ) -> Result<()> {
        let timed: Vec<(i64, i64, &Value)> = entries
            .iter()
            .map(|(id, change)| (*id, at, change))
            .collect();
        Self::record_timed(conn, actor, &timed).await
    }

    /// Adds one history entry per `(contact, at, change)`, in few statements.
    pub(crate) async fn record_timed(
        conn: &mut sqlx::AnyConnection,
        actor: &str,
        entries: &[(i64, i64, &Value)],
    ) -> Result<()> {
        for chunk in entries.chunks(ID_CHUNK) {
            let mut q = QueryBuilder::new(
                "INSERT INTO contact_history (contact_id, at_ms, actor, change) ",
            );
            q.push_values(chunk, |mut b, (id, at, change)| {
                b.push_bind(*id)
                    .push_bind(*at)
                    .push_bind(actor)
                    .push_bind(change.to_string());
            });
            q.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Creates one contact; a number the campaign already has is a conflict.
    pub async fn create_contact(
        &self,
        campaign_id: i64,
        spec: &ContactSpec,
        actor: &str,
    ) -> Result<Contact> {
        let c = spec.check(self, campaign_id).await?;
        let mut tx = self.writer.begin().await?;
        if let Some((p, id)) = Self::taken_numbers(&mut tx, campaign_id, &c.phones, None)
            .await?
            .first()
        {
            return Err(StoreError::Conflict(format!(
                "contact {id} of the campaign has the number {p}"
            )));
        }
        let new = NewContact {
            fields: spec.fields.clone(),
            phones: c.phones.clone(),
            time_zone: c.time_zone,
            line: None,
        };
        let id = Self::insert_contacts(&mut tx, campaign_id, c.task_id, None, &[new]).await?[0];
        sqlx::query(
            "UPDATE contacts SET status = $1, detail = $2, follow_up_ms = $3, owner = $4, attempts = $5 WHERE id = $6",
        )
        .bind(&spec.status)
        .bind(&spec.detail)
        .bind(c.follow_up_ms)
        .bind(&spec.owner)
        .bind(spec.attempts)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Self::mark_new_numbers(&mut tx, campaign_id, &c.phones).await?;
        Self::record(&mut tx, id, actor, serde_json::json!({"op": "create"})).await?;
        tx.commit().await?;
        self.contact(campaign_id, id).await
    }

    /// One contact of a campaign.
    pub async fn contact(&self, campaign_id: i64, id: i64) -> Result<Contact> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM contacts WHERE id = $1 AND campaign_id = $2"
        ))
        .bind(id)
        .bind(campaign_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound {
            what: "contact",
            id,
        })?;
        let mut c = [contact_of(&row)?];
        self.mark_dnc(&mut c).await?;
        let [c] = c;
        Ok(c)
    }

    /// A contact's history, oldest first.
    pub async fn history(&self, contact_id: i64) -> Result<Vec<HistoryEntry>> {
        let rows = sqlx::query(
            "SELECT at_ms, actor, change FROM contact_history WHERE contact_id = $1 ORDER BY id",
        )
        .bind(contact_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let change: String = r.try_get("change")?;
                Ok(HistoryEntry {
                    at: rfc3339(r.try_get("at_ms")?),
                    actor: r.try_get("actor")?,
                    change: serde_json::from_str(&change).unwrap_or(Value::Null),
                })
            })
            .collect()
    }

    /// Replaces a contact's settable part (callers merge a PATCH into the current spec).
    pub async fn update_contact(
        &self,
        campaign_id: i64,
        id: i64,
        spec: &ContactSpec,
        actor: &str,
    ) -> Result<Contact> {
        let old = self.contact(campaign_id, id).await?;
        let c = spec.check(self, campaign_id).await?;
        let mut tx = self.writer.begin().await?;
        if let Some((p, other)) = Self::taken_numbers(&mut tx, campaign_id, &c.phones, Some(id))
            .await?
            .first()
        {
            return Err(StoreError::Conflict(format!(
                "contact {other} of the campaign has the number {p}"
            )));
        }
        sqlx::query(
            "UPDATE contacts SET task_id = $1, fields = $2, phones = $3, time_zone = $4, status = $5, detail = $6, \
             follow_up_ms = $7, owner = $8, attempts = $9, updated_ms = $10 WHERE id = $11",
        )
        .bind(c.task_id)
        .bind(&c.fields)
        .bind(serde_json::to_string(&c.phones).unwrap_or_default())
        .bind(&c.time_zone)
        .bind(&spec.status)
        .bind(&spec.detail)
        .bind(c.follow_up_ms)
        .bind(&spec.owner)
        .bind(spec.attempts)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if c.phones != old.spec.phones {
            sqlx::query("DELETE FROM contact_phones WHERE contact_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let mut q =
                QueryBuilder::new("INSERT INTO contact_phones (campaign_id, phone, contact_id) ");
            q.push_values(&c.phones, |mut b, p| {
                b.push_bind(campaign_id).push_bind(p.clone()).push_bind(id);
            });
            q.build().execute(&mut *tx).await?;
            // Numbers that left may have been the blocked ones: recount from scratch.
            sqlx::query("UPDATE contacts SET dnc = 0 WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Self::mark_new_numbers(&mut tx, campaign_id, &c.phones).await?;
        }
        let mut flow_now = false;
        if (spec.status != old.spec.status || spec.detail != old.spec.detail)
            && Some(c.task_id) == old.spec.task_id
        {
            let task = self.task(campaign_id, c.task_id).await?;
            flow_now =
                Self::schedule_flow(&mut tx, &[id], &task, &spec.status, &spec.detail, now_ms())
                    .await?;
        }
        let new = Contact {
            spec: ContactSpec {
                task_id: Some(c.task_id),
                phones: c.phones.clone(),
                time_zone: Some(c.time_zone.clone()),
                follow_up_at: c.follow_up_ms.map(rfc3339),
                ..spec.clone()
            },
            ..old.clone()
        };
        let changes = diff(
            &serde_json::to_value(&old.spec).unwrap_or_default(),
            &serde_json::to_value(&new.spec).unwrap_or_default(),
        );
        if !changes.is_empty() {
            Self::record(
                &mut tx,
                id,
                actor,
                serde_json::json!({"op": "update", "changes": changes}),
            )
            .await?;
        }
        tx.commit().await?;
        if flow_now {
            self.apply_due(now_ms()).await?;
        }
        self.contact(campaign_id, id).await
    }

    /// Records one call attempt on a contact: the attempt count, the result (`last_result`,
    /// a status detail such as `$busy`), the new status, detail and follow-up time, a history
    /// entry with the number, result and SIP code — all in one transaction — and, when the
    /// status or detail changed, the task-flow rule that matches it.
    pub async fn record_attempt(
        &self,
        campaign_id: i64,
        id: i64,
        attempt: &Attempt,
        actor: &str,
    ) -> Result<Contact> {
        let old = self.contact(campaign_id, id).await?;
        let call = CallWrite {
            result: &attempt.result,
            status: Some(&attempt.status),
            follow_up_ms: attempt.follow_up_ms,
            attempt: true,
            at_ms: attempt.at_ms,
        };
        // At the attempt's own time: the calling rules count attempts in the last 30 days.
        self.write_call(&old, &call, attempt.history(), actor).await
    }

    /// Writes a call on contact `old` in one transaction: its result as `last_result` and
    /// detail, status and follow-up (unless `status` is `None`: then the contact stays as it
    /// is), the attempt count when it was a dialling attempt, and the `history` entry; then
    /// the task-flow rule that matches a changed status or detail.
    pub(crate) async fn write_call(
        &self,
        old: &Contact,
        call: &CallWrite<'_>,
        history: Value,
        actor: &str,
    ) -> Result<Contact> {
        let (campaign_id, id) = (old.campaign_id, old.id);
        let task_id = old.spec.task_id.ok_or(StoreError::NotFound {
            what: "task of contact",
            id,
        })?;
        let now = call.at_ms;
        let mut tx = self.writer.begin().await?;
        if let Some(status) = call.status {
            sqlx::query(
                "UPDATE contacts SET attempts = attempts + $1, last_result = $2, status = $3, \
                 detail = $2, follow_up_ms = $4, updated_ms = $5 WHERE id = $6",
            )
            .bind(i64::from(call.attempt))
            .bind(call.result)
            .bind(status)
            .bind(call.follow_up_ms)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        Self::record_many(&mut tx, actor, now, &[(id, history)]).await?;
        let mut flow_now = false;
        if let Some(status) = call.status {
            if status != old.spec.status || call.result != old.spec.detail {
                let task = self.task(campaign_id, task_id).await?;
                flow_now =
                    Self::schedule_flow(&mut tx, &[id], &task, status, call.result, now).await?;
            }
        }
        tx.commit().await?;
        if flow_now {
            self.apply_due(now).await?;
        }
        self.contact(campaign_id, id).await
    }

    /// Deletes a contact (numbers and history go with it).
    pub async fn delete_contact(&self, campaign_id: i64, id: i64) -> Result<()> {
        let done = sqlx::query("DELETE FROM contacts WHERE id = $1 AND campaign_id = $2")
            .bind(id)
            .bind(campaign_id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "contact",
                id,
            });
        }
        Ok(())
    }

    /// One page of a campaign's contacts matching `filter`, at most `limit`, after `cursor`.
    pub async fn list_contacts(
        &self,
        campaign_id: i64,
        filter: &ContactFilter,
        order: Order,
        cursor: Option<&str>,
        limit: u32,
        now: i64,
    ) -> Result<Page> {
        self.campaign(campaign_id).await?;
        let cursor = cursor
            .map(|c| {
                Cursor::decode(c)
                    .ok_or_else(|| StoreError::invalid("cursor", "not a cursor this API gave out"))
            })
            .transpose()?;
        // A due-order cursor keeps the `now` of its first page, so pages do not shift.
        let now = match cursor {
            Some(Cursor::Due { now, .. }) => now,
            _ => now,
        };
        let want = limit as usize + 1;
        // (row, cursor position) of up to limit + 1 contacts in the asked order.
        let mut found: Vec<(Contact, Cursor)> = Vec::with_capacity(want);
        match (order, cursor) {
            (Order::Id, after) => {
                let after = match after {
                    None => 0,
                    Some(Cursor::Id(id)) => id,
                    Some(_) => return Err(other_order()),
                };
                let mut q = QueryBuilder::new(format!(
                    "SELECT {COLUMNS} FROM contacts WHERE campaign_id = "
                ));
                q.push_bind(campaign_id);
                push_filter(&mut q, filter, now);
                q.push(" AND id > ")
                    .push_bind(after)
                    .push(" ORDER BY id LIMIT ")
                    .push_bind(want as i64);
                for row in q.build().fetch_all(&self.reader).await? {
                    let c = contact_of(&row)?;
                    let id = c.id;
                    found.push((c, Cursor::Id(id)));
                }
            }
            (Order::Due, after) => {
                let (first, after) = match after {
                    None => (0, None),
                    Some(Cursor::Due { bucket, ts, id, .. }) => (bucket, Some((ts, id))),
                    Some(_) => return Err(other_order()),
                };
                // One indexed query per bucket instead of sorting the campaign by a CASE.
                for bucket in first.clamp(0, 3)..=3 {
                    if found.len() >= want {
                        break;
                    }
                    let mut q = QueryBuilder::new(format!(
                        "SELECT {COLUMNS} FROM contacts WHERE campaign_id = "
                    ));
                    q.push_bind(campaign_id);
                    push_filter(&mut q, filter, now);
                    let by_time = bucket == 0 || bucket == 2;
                    match bucket {
                        // Buckets by time name `follow_up_ms IS NOT NULL`, the condition of
                        // contacts_due (migration 0019), for either database to match it.
                        0 => q
                            .push(" AND follow_up_ms IS NOT NULL AND follow_up_ms <= ")
                            .push_bind(now),
                        1 => q.push(" AND follow_up_ms IS NULL AND attempts = 0"),
                        2 => q
                            .push(" AND follow_up_ms IS NOT NULL AND follow_up_ms > ")
                            .push_bind(now),
                        _ => q.push(" AND follow_up_ms IS NULL AND attempts > 0"),
                    };
                    match after.filter(|_| bucket == first) {
                        Some((ts, id)) if by_time => {
                            q.push(" AND (follow_up_ms > ")
                                .push_bind(ts)
                                .push(" OR (follow_up_ms = ")
                                .push_bind(ts)
                                .push(" AND id > ")
                                .push_bind(id)
                                .push("))");
                        }
                        Some((_, id)) => {
                            q.push(" AND id > ").push_bind(id);
                        }
                        None => {}
                    }
                    q.push(if by_time {
                        " ORDER BY follow_up_ms, id LIMIT "
                    } else {
                        " ORDER BY id LIMIT "
                    })
                    .push_bind((want - found.len()) as i64);
                    for row in q.build().fetch_all(&self.reader).await? {
                        let c = contact_of(&row)?;
                        let ts = row.try_get::<Option<i64>, _>("follow_up_ms")?.unwrap_or(0);
                        let id = c.id;
                        found.push((
                            c,
                            Cursor::Due {
                                now,
                                bucket,
                                ts,
                                id,
                            },
                        ));
                    }
                }
            }
        }
        let more = found.len() > limit as usize;
        found.truncate(limit as usize);
        let next = found.last().map(|(_, c)| *c).filter(|_| more);
        let mut items: Vec<Contact> = found.into_iter().map(|(c, _)| c).collect();
        self.mark_dnc(&mut items).await?;
        Ok(Page {
            items,
            next: next.map(Cursor::encode),
        })
    }

    /// Ids of a campaign's contacts matching `filter` after `after`, at most `limit`.
    async fn matching_ids(
        &self,
        campaign_id: i64,
        filter: &ContactFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<i64>> {
        let mut q = QueryBuilder::new("SELECT id FROM contacts WHERE campaign_id = ");
        q.push_bind(campaign_id);
        push_filter(&mut q, filter, now_ms());
        q.push(" AND id > ")
            .push_bind(after)
            .push(" ORDER BY id LIMIT ")
            .push_bind(limit);
        Ok(q.build_query_scalar().fetch_all(&self.reader).await?)
    }

    /// Sets one field on every contact matching `filter` (`status`, `detail`, `owner`,
    /// `follow_up_at`, `time_zone` or `fields.NAME`); returns how many changed.
    ///
    /// The value is checked once; then the matching contacts are read, changed and given a
    /// history entry (`{"op": "bulk_edit", "changes": {FIELD: [old, new]}}`) 500 at a time,
    /// each batch in one transaction. A status or detail change schedules the task flow.
    pub async fn bulk_edit(
        &self,
        campaign_id: i64,
        filter: &ContactFilter,
        field: &str,
        value: &Value,
        actor: &str,
    ) -> Result<u64> {
        let campaign = self.campaign(campaign_id).await?;
        let edit = BulkField::parse(field, value)?;
        let mut tasks: std::collections::HashMap<i64, super::tasks::Task> = Default::default();
        let (mut changed, mut after, mut flow_now) = (0, 0, false);
        loop {
            let now = now_ms();
            let mut tx = self.writer.begin().await?;
            let mut q = QueryBuilder::new(
                "SELECT id, task_id, fields, phones, time_zone, status, detail, follow_up_ms, owner \
                 FROM contacts WHERE campaign_id = ",
            );
            q.push_bind(campaign_id);
            push_filter(&mut q, filter, now);
            q.push(" AND id > ")
                .push_bind(after)
                .push(" ORDER BY id LIMIT ")
                .push_bind(BULK_BATCH);
            let rows = q.build().fetch_all(&mut *tx).await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("id")?;
            // (id, new column value for per-row columns, history entry)
            let mut updates: Vec<(i64, Option<String>, Value)> = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: i64 = row.try_get("id")?;
                let (old, new, column) = match &edit {
                    BulkField::Status(v) => {
                        let old: String = row.try_get("status")?;
                        (Value::String(old), Value::String(v.clone()), None)
                    }
                    BulkField::Detail(v) => {
                        let old: String = row.try_get("detail")?;
                        (Value::String(old), Value::String(v.clone()), None)
                    }
                    BulkField::Owner(v) => {
                        let old: Option<String> = row.try_get("owner")?;
                        (json_of(old), json_of(v.clone()), None)
                    }
                    BulkField::FollowUp(v) => {
                        let old: Option<i64> = row.try_get("follow_up_ms")?;
                        (json_of(old.map(rfc3339)), json_of(v.map(rfc3339)), None)
                    }
                    BulkField::TimeZone(v) => {
                        let old: String = row.try_get("time_zone")?;
                        let zone = match v {
                            Some(z) => z.clone(),
                            None => {
                                let phones: String = row.try_get("phones")?;
                                let phones: Vec<String> =
                                    serde_json::from_str(&phones).unwrap_or_default();
                                phones
                                    .first()
                                    .and_then(|p| phone::time_zone_of(p))
                                    .unwrap_or(&campaign.spec.time_zone)
                                    .to_string()
                            }
                        };
                        (Value::String(old), Value::String(zone.clone()), Some(zone))
                    }
                    BulkField::Field(name, v) => {
                        let text: String = row.try_get("fields")?;
                        let mut fields: Map<String, Value> =
                            serde_json::from_str(&text).unwrap_or_default();
                        let old = fields
                            .insert(name.clone(), v.clone())
                            .unwrap_or(Value::Null);
                        let column = Value::Object(fields).to_string();
                        (old, v.clone(), Some(column))
                    }
                };
                if old == new {
                    continue;
                }
                let change = serde_json::json!({"op": "bulk_edit", "changes": {field: [old, new]}});
                updates.push((id, column, change));
            }
            let ids: Vec<i64> = updates.iter().map(|u| u.0).collect();
            let changed_ids: std::collections::HashSet<i64> = ids.iter().copied().collect();
            match &edit {
                BulkField::Field(..) | BulkField::TimeZone(_) => {
                    let column = match edit {
                        BulkField::Field(..) => "fields",
                        _ => "time_zone",
                    };
                    let sql =
                        format!("UPDATE contacts SET {column} = $1, updated_ms = $2 WHERE id = $3");
                    for (id, value, _) in &updates {
                        sqlx::query(&sql)
                            .bind(value)
                            .bind(now)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                _ if ids.is_empty() => {}
                other => {
                    let column = match other {
                        BulkField::Status(_) => "status",
                        BulkField::Detail(_) => "detail",
                        BulkField::Owner(_) => "owner",
                        _ => "follow_up_ms",
                    };
                    let mut q = QueryBuilder::new(format!("UPDATE contacts SET {column} = "));
                    match other {
                        BulkField::Status(v) | BulkField::Detail(v) => q.push_bind(v.clone()),
                        BulkField::Owner(v) => q.push_bind(v.clone()),
                        BulkField::FollowUp(v) => q.push_bind(*v),
                        _ => unreachable!("handled above"),
                    };
                    q.push(", updated_ms = ")
                        .push_bind(now)
                        .push(" WHERE id IN ");
                    push_in_list(&mut q, &ids);
                    q.build().execute(&mut *tx).await?;
                }
            }
            if matches!(edit, BulkField::Status(_) | BulkField::Detail(_)) {
                // One flow step per (task, status, detail) the batch ends up in.
                let mut groups: Vec<((i64, String, String), Vec<i64>)> = Vec::new();
                for row in &rows {
                    let id: i64 = row.try_get("id")?;
                    if !changed_ids.contains(&id) {
                        continue;
                    }
                    let (mut status, mut detail): (String, String) =
                        (row.try_get("status")?, row.try_get("detail")?);
                    match &edit {
                        BulkField::Status(v) => status = v.clone(),
                        BulkField::Detail(v) => detail = v.clone(),
                        _ => {}
                    }
                    let key = (row.try_get("task_id")?, status, detail);
                    match groups.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, ids)) => ids.push(id),
                        None => groups.push((key, vec![id])),
                    }
                }
                for ((task_id, status, detail), ids) in groups {
                    let task = match tasks.get(&task_id) {
                        Some(t) => t,
                        None => {
                            let t = self.task(campaign_id, task_id).await?;
                            tasks.entry(task_id).or_insert(t)
                        }
                    };
                    flow_now |=
                        Self::schedule_flow(&mut tx, &ids, task, &status, &detail, now).await?;
                }
            }
            let history: Vec<(i64, Value)> = updates
                .into_iter()
                .map(|(id, _, change)| (id, change))
                .collect();
            Self::record_many(&mut tx, actor, now, &history).await?;
            tx.commit().await?;
            changed += history.len() as u64;
        }
        if flow_now {
            self.apply_due(now_ms()).await?;
        }
        Ok(changed)
    }

    /// Moves matching contacts (or the listed ones) to `task_id`, open with detail `$none`.
    pub async fn move_contacts(
        &self,
        campaign_id: i64,
        filter: &ContactFilter,
        ids: Option<&[i64]>,
        task_id: i64,
        actor: &str,
    ) -> Result<u64> {
        let task = self.task(campaign_id, task_id).await.map_err(|_| {
            StoreError::invalid("task_id", format!("the campaign has no task {task_id}"))
        })?;
        let mut moved = 0;
        let mut after = 0;
        loop {
            let batch = match ids {
                Some(list) => {
                    if after > 0 {
                        break;
                    }
                    after = 1;
                    // Each contact once, in the order listed.
                    let mut seen = std::collections::HashSet::new();
                    list.iter().copied().filter(|id| seen.insert(*id)).collect()
                }
                None => {
                    let b = self.matching_ids(campaign_id, filter, after, 500).await?;
                    match b.last() {
                        Some(&l) => after = l,
                        None => break,
                    }
                    b
                }
            };
            let mut tx = self.writer.begin().await?;
            let mut from: HashMap<i64, i64> = HashMap::with_capacity(batch.len());
            for chunk in batch.chunks(ID_CHUNK) {
                let mut q =
                    QueryBuilder::new("SELECT id, task_id FROM contacts WHERE campaign_id = ");
                q.push_bind(campaign_id).push(" AND id IN ");
                push_in_list(&mut q, chunk);
                for row in q.build().fetch_all(&mut *tx).await? {
                    from.insert(row.try_get(0)?, row.try_get(1)?);
                }
            }
            if let Some(&id) = batch.iter().find(|id| !from.contains_key(id)) {
                return Err(StoreError::NotFound {
                    what: "contact",
                    id,
                });
            }
            Self::enter_task(&mut tx, &batch, &task, now_ms()).await?;
            let history: Vec<(i64, Value)> = batch
                .iter()
                .map(|id| {
                    let change = serde_json::json!({"op": "move", "from_task": from[id], "to_task": task_id});
                    (*id, change)
                })
                .collect();
            Self::record_many(&mut tx, actor, now_ms(), &history).await?;
            moved += batch.len() as u64;
            tx.commit().await?;
        }
        // An export task with an undelayed rule passes its contacts on at once.
        self.apply_due(now_ms()).await?;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for c in [
            Cursor::Id(7),
            Cursor::Due {
                now: 5,
                bucket: 1,
                ts: 0,
                id: 9,
            },
        ] {
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        assert_eq!(Cursor::decode("x1"), None);
        assert_eq!(Cursor::decode("d1.2"), None);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("A_b%"), "%a\\_b\\%%");
    }

    #[test]
    fn diff_names_changed_fields_only() {
        let d = diff(
            &serde_json::json!({"a": 1, "b": 2}),
            &serde_json::json!({"a": 1, "b": 3, "c": 4}),
        );
        assert_eq!(
            Value::Object(d),
            serde_json::json!({"b": [2, 3], "c": [null, 4]})
        );
    }
}
