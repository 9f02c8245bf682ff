//! Tasks inside a campaign (call, export, webhook, wait) and their task-flow rules.

use super::{now_ms, rfc3339, Result, Store, StoreError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

/// What a task does with the contacts in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Outbound dialing.
    Call,
    /// Results to a file.
    Export,
    /// POST the contact to a URL.
    Webhook,
    /// A delay.
    Wait,
    /// Send the contact an e-mail.
    Email,
}

impl TaskKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Export => "export",
            Self::Webhook => "webhook",
            Self::Wait => "wait",
            Self::Email => "email",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "export" => Self::Export,
            "webhook" => Self::Webhook,
            "wait" => Self::Wait,
            "email" => Self::Email,
            _ => Self::Call,
        }
    }
}

/// How a call task's queue paces its calls: the one dial mode of the store, the API and the
/// dialer's pacer (`power` takes its ratios from [`CallSettings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DialMode {
    /// Agent sees the contact first, then the call is placed.
    Preview,
    /// One call per ready agent.
    #[default]
    Progressive,
    /// `floor(calls_per_ready_agent × ready + calls_per_wrap_up_agent × wrap_up) − in flight`.
    Power,
    /// Measured rates, abandon target.
    Predictive,
}

impl DialMode {
    /// Every mode, in the order reports list them.
    pub const ALL: [DialMode; 4] = [
        DialMode::Preview,
        DialMode::Progressive,
        DialMode::Power,
        DialMode::Predictive,
    ];

    /// The mode's name (`preview`, `progressive`, `power`, `predictive`).
    pub fn name(self) -> &'static str {
        match self {
            DialMode::Preview => "preview",
            DialMode::Progressive => "progressive",
            DialMode::Power => "power",
            DialMode::Predictive => "predictive",
        }
    }

    /// The mode named `name`, if any.
    pub fn by_name(name: &str) -> Option<DialMode> {
        DialMode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Seconds to wait before calling again, per outcome. An abandoned contact waits at least
/// 72 h whatever is configured (the no-recall rule); a task saved with less is stored with 72 h.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryDelays {
    /// After no answer.
    pub no_answer: u32,
    /// After busy.
    pub busy: u32,
    /// After an abandoned call (at least [`ABANDONED_RETRY_FLOOR`]).
    pub abandoned: u32,
    /// After a failed call (network, carrier).
    pub failed: u32,
}

/// The shortest wait before an abandoned contact is called again: 72 h, in seconds.
pub const ABANDONED_RETRY_FLOOR: u32 = 72 * 3600;

impl Default for RetryDelays {
    fn default() -> Self {
        Self {
            no_answer: 3600,
            busy: 600,
            abandoned: ABANDONED_RETRY_FLOOR,
            failed: 1800,
        }
    }
}

/// Settings of a `call` task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallSettings {
    /// Queue (set of agents) serving the task.
    pub queue: String,
    /// Dial mode.
    pub dial_mode: DialMode,
    /// Power mode: calls per ready agent.
    pub calls_per_ready_agent: f64,
    /// Power mode: calls per agent in wrap-up.
    pub calls_per_wrap_up_agent: f64,
    /// Predictive mode: highest share of abandoned calls.
    pub abandon_target: f64,
    /// Predictive mode: the longest the pacer plans for an answered person to wait for an
    /// agent, milliseconds (0 to the 2 s after which the call is abandoned). Shorter waits
    /// put people through sooner and keep agents less busy.
    pub planned_wait_ms: u32,
    /// After-call work allowed, seconds.
    pub wrap_up_seconds: u32,
    /// How long a call rings before giving up, seconds (at least 15).
    pub ring_timeout_seconds: u32,
    /// Most call attempts per contact.
    pub max_attempts: u32,
    /// Delays before the next attempt, per outcome.
    pub retry_delays_seconds: RetryDelays,
    /// Which contacts are dialled at all; all when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<CallFilter>,
    /// The order never-called contacts are dialled in, after due callbacks; by id when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<CallOrder>,
    /// How long a particular callback (a contact with an owner) waits for its owner to be
    /// ready before any agent of the task may take it, seconds.
    pub particular_grace_seconds: u32,
}

/// Which contacts a call task dials (`settings.filter`), as the contacts listing filters them:
/// every condition given must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CallFilter {
    /// Only contacts with this status detail (`$none`, `$no_answer`, a disposition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Only contacts whose fields or numbers contain this text (case-insensitive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Field conditions: the field (`fields.KEY`) equals the value, or one of a list's values.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub fields: serde_json::Map<String, Value>,
}

/// The order a call task dials never-called contacts in (`settings.order`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallOrder {
    /// The contact field (`fields.KEY`) to sort by; compared as numbers when the form types it
    /// `number`, else as text; contacts without it come last.
    pub field: String,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    pub direction: Direction,
}

/// A sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// The longest wait the predictive pacer may plan for an answered person, in milliseconds:
/// the wait after which a person no agent took is abandoned.
fn planned_wait_max_ms() -> u32 {
    crate::dialer::answer::MAX_WAIT.as_millis() as u32
}

/// Checks a field key used in a filter or order: it goes into a JSON path.
fn check_key(at: &str, key: &str) -> Result<()> {
    if key.is_empty()
        || key.len() > 200
        || key.contains(['"', '\\'])
        || key.chars().any(char::is_control)
    {
        return Err(StoreError::invalid(
            at,
            "wanted a field name of 1 to 200 characters without quotes or backslashes",
        ));
    }
    Ok(())
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            queue: String::new(),
            dial_mode: DialMode::default(),
            calls_per_ready_agent: 1.0,
            calls_per_wrap_up_agent: 0.0,
            abandon_target: 0.03,
            planned_wait_ms: planned_wait_max_ms(),
            wrap_up_seconds: 30,
            ring_timeout_seconds: 25,
            max_attempts: 5,
            retry_delays_seconds: RetryDelays::default(),
            filter: None,
            order: None,
            particular_grace_seconds: 60,
        }
    }
}

/// File format of an `export` task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Tab-separated.
    #[default]
    Tsv,
    /// Comma-separated.
    Csv,
    /// An Excel workbook with typed cells.
    Xlsx,
    /// A ZIP archive of one PDF letter per contact.
    #[serde(rename = "pdf_zip")]
    PdfZip,
}

impl ExportFormat {
    /// The name used in the API and stored with each file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tsv => "tsv",
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
            Self::PdfZip => "pdf_zip",
        }
    }

    /// The format named `name`; TSV for anything unknown (the default of older files).
    pub fn by_name(name: &str) -> Self {
        match name {
            "csv" => Self::Csv,
            "xlsx" => Self::Xlsx,
            "pdf_zip" => Self::PdfZip,
            _ => Self::Tsv,
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::PdfZip => "zip",
            other => other.as_str(),
        }
    }

    /// The media type a download is sent with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Tsv => "text/tab-separated-values; charset=utf-8",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::PdfZip => "application/zip",
        }
    }
}

/// Settings of an `export` task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ExportSettings {
    /// File format.
    pub format: ExportFormat,
    /// `pdf_zip` only: the text each letter starts with, placeholders as e-mail tasks fill
    /// them (`{{fields.NAME}}`, `{{phones.0}}`, `{{campaign.name}}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub letter: Option<String>,
}

/// Settings of a `webhook` task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `http://` or `https://` URL the contact is POSTed to.
    pub url: String,
    /// Retries after a failure.
    #[serde(default = "five")]
    pub retries: u32,
    /// First retry delay, doubled on each retry, seconds.
    #[serde(default = "thirty")]
    pub backoff_seconds: u32,
}

/// Settings of an `email` task: the message is built from templates whose placeholders
/// (`{{fields.NAME}}`, `{{phones.N}}`, `{{campaign.name}}`) take the contact's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// The contact field holding the address the e-mail goes to.
    pub to_field: String,
    /// Subject template.
    pub subject: String,
    /// Plain-text body template.
    pub text: String,
    /// HTML body template (values HTML-escaped); the message is text only when absent.
    #[serde(default)]
    pub html: Option<String>,
    /// Retries after a refused or unreachable relay.
    #[serde(default = "five")]
    pub retries: u32,
    /// First retry delay, doubled on each retry, seconds.
    #[serde(default = "thirty")]
    pub backoff_seconds: u32,
}

/// Settings of a `wait` task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitSettings {
    /// How long a contact waits before it counts as `success`, seconds.
    pub seconds: u32,
}

fn five() -> u32 {
    5
}

fn thirty() -> u32 {
    30
}

/// A task-flow rule: a contact reaching `status` (and `detail`, when given) moves to
/// `next_task` after `delay_seconds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowRule {
    /// Final status: success, declined or failed.
    pub status: String,
    /// Status detail to match; any when absent.
    #[serde(default)]
    pub detail: Option<String>,
    /// Task (same campaign) the contact moves to.
    pub next_task: i64,
    /// Delay before the move.
    #[serde(default)]
    pub delay_seconds: u32,
}

/// What an API user writes to create or change a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Name, unique in the campaign.
    pub name: String,
    /// Kind.
    pub kind: TaskKind,
    /// Kind-specific settings (see the `*Settings` types).
    #[serde(default = "empty_object")]
    pub settings: Value,
    /// Task-flow rules, first match wins.
    #[serde(default)]
    pub flow: Vec<FlowRule>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A stored task.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    /// Id.
    pub id: i64,
    /// Campaign.
    pub campaign_id: i64,
    /// Its settings, defaults filled in.
    #[serde(flatten)]
    pub spec: TaskSpec,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Reads `value` as `T`, naming the bad field under `prefix`.
fn typed<T: DeserializeOwned + Serialize>(prefix: &str, value: &Value) -> Result<Value> {
    let parsed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.inner().to_string();
        StoreError::invalid(
            super::field_of(&e.path().to_string(), &inner, prefix),
            inner,
        )
    })?;
    Ok(serde_json::to_value(parsed).unwrap_or_default())
}

impl TaskSpec {
    /// A call task's settings; `None` for other kinds.
    pub fn call_settings(&self) -> Option<CallSettings> {
        (self.kind == TaskKind::Call)
            .then(|| serde_json::from_value(self.settings.clone()).unwrap_or_default())
    }

    /// Checks the spec and fills in setting defaults (flow targets are checked by the store).
    pub fn validate(mut self) -> Result<Self> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(StoreError::invalid("name", "wanted 1 to 200 characters"));
        }
        self.settings = match self.kind {
            TaskKind::Call => {
                let v = typed::<CallSettings>("settings", &self.settings)?;
                let c: CallSettings = serde_json::from_value(v.clone()).unwrap_or_default();
                if c.ring_timeout_seconds < 15 || c.ring_timeout_seconds > 300 {
                    return Err(StoreError::invalid(
                        "settings.ring_timeout_seconds",
                        "wanted 15 to 300 seconds (regulators ask for at least 15 s of ringing)",
                    ));
                }
                if !(0.0..=1.0).contains(&c.abandon_target) {
                    return Err(StoreError::invalid(
                        "settings.abandon_target",
                        "wanted a share from 0 to 1",
                    ));
                }
                if c.planned_wait_ms > planned_wait_max_ms() {
                    return Err(StoreError::invalid(
                        "settings.planned_wait_ms",
                        "wanted 0 to 2000 milliseconds (a person no agent took within 2 s is abandoned)",
                    ));
                }
                if !(c.calls_per_ready_agent >= 0.0 && c.calls_per_wrap_up_agent >= 0.0) {
                    return Err(StoreError::invalid(
                        "settings.calls_per_ready_agent",
                        "wanted a number of at least 0",
                    ));
                }
                if c.particular_grace_seconds > 3600 {
                    return Err(StoreError::invalid(
                        "settings.particular_grace_seconds",
                        "wanted 0 to 3600 seconds",
                    ));
                }
                if c.max_attempts == 0 {
                    return Err(StoreError::invalid(
                        "settings.max_attempts",
                        "wanted at least 1",
                    ));
                }
                if let Some(f) = &c.filter {
                    for (key, v) in &f.fields {
                        let at = format!("settings.filter.fields.{key}");
                        check_key(&at, key)?;
                        let scalar = |v: &Value| v.is_string() || v.is_number() || v.is_boolean();
                        let fits = match v {
                            Value::Array(a) => !a.is_empty() && a.iter().all(scalar),
                            v => scalar(v),
                        };
                        if !fits {
                            return Err(StoreError::invalid(
                                at,
                                "wanted a value, or a non-empty list of values",
                            ));
                        }
                    }
                }
                if let Some(o) = &c.order {
                    check_key("settings.order.field", &o.field)?;
                }
                let mut v = v;
                // The no-recall rule wins over a shorter configured delay; the stored task
                // shows the delay that applies.
                v["retry_delays_seconds"]["abandoned"] = c
                    .retry_delays_seconds
                    .abandoned
                    .max(ABANDONED_RETRY_FLOOR)
                    .into();
                v
            }
            TaskKind::Export => {
                let v = typed::<ExportSettings>("settings", &self.settings)?;
                if v.get("letter").is_some() && v["format"] != "pdf_zip" {
                    return Err(StoreError::invalid(
                        "settings.letter",
                        "only with format pdf_zip",
                    ));
                }
                v
            }
            TaskKind::Webhook => {
                let v = typed::<WebhookSettings>("settings", &self.settings)?;
                let url = v["url"].as_str().unwrap_or_default();
                crate::http_url::split_url(url)
                    .map_err(|e| StoreError::invalid("settings.url", e.to_string()))?;
                v
            }
            TaskKind::Wait => typed::<WaitSettings>("settings", &self.settings)?,
            TaskKind::Email => {
                let v = typed::<EmailSettings>("settings", &self.settings)?;
                for key in ["to_field", "subject"] {
                    let text = v[key].as_str().unwrap_or_default();
                    if text.trim().is_empty() {
                        return Err(StoreError::invalid(
                            format!("settings.{key}"),
                            "wanted a non-empty value",
                        ));
                    }
                    if text.contains(['\r', '\n']) {
                        return Err(StoreError::invalid(
                            format!("settings.{key}"),
                            "a line break does not belong in a header",
                        ));
                    }
                }
                v
            }
        };
        for (i, rule) in self.flow.iter().enumerate() {
            if !["success", "declined", "failed"].contains(&rule.status.as_str()) {
                return Err(StoreError::invalid(
                    format!("flow[{i}].status"),
                    "wanted a final status: success, declined or failed",
                ));
            }
        }
        Ok(self)
    }
}

const COLUMNS: &str = "id, campaign_id, name, kind, settings, flow, created_ms, updated_ms";

fn task_of(row: &sqlx::any::AnyRow) -> Result<Task> {
    let settings: String = row.try_get("settings")?;
    let flow: String = row.try_get("flow")?;
    Ok(Task {
        id: row.try_get("id")?,
        campaign_id: row.try_get("campaign_id")?,
        spec: TaskSpec {
            name: row.try_get("name")?,
            kind: TaskKind::parse(row.try_get("kind")?),
            settings: serde_json::from_str(&settings).unwrap_or_else(|_| empty_object()),
            flow: serde_json::from_str(&flow).unwrap_or_default(),
        },
        created_at: rfc3339(row.try_get("created_ms")?),
        updated_at: rfc3339(row.try_get("updated_ms")?),
    })
}

fn name_taken(name: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match StoreError::from(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("the campaign has a task named {name:?}"))
        }
        e => e,
    }
}

impl Store {
    /// Flow targets must be tasks of the same campaign (`this` is the task itself, if stored).
    async fn check_flow(&self, campaign_id: i64, spec: &TaskSpec) -> Result<()> {
        for (i, rule) in spec.flow.iter().enumerate() {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT id FROM tasks WHERE id = $1 AND campaign_id = $2")
                    .bind(rule.next_task)
                    .bind(campaign_id)
                    .fetch_optional(&self.reader)
                    .await?;
            if found.is_none() {
                return Err(StoreError::invalid(
                    format!("flow[{i}].next_task"),
                    format!("the campaign has no task {}", rule.next_task),
                ));
            }
        }
        Ok(())
    }

    /// Creates a task in a campaign.
    pub async fn create_task(&self, campaign_id: i64, spec: TaskSpec) -> Result<Task> {
        let campaign = self.campaign(campaign_id).await?;
        let spec = spec.validate()?;
        self.check_flow(campaign_id, &spec).await?;
        self.check_safe_harbour(campaign_id, campaign.spec.status, Some((None, &spec)))
            .await?;
        let now = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO tasks (campaign_id, name, kind, settings, flow, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {COLUMNS}"
        ))
        .bind(campaign_id)
        .bind(&spec.name)
        .bind(spec.kind.as_str())
        .bind(spec.settings.to_string())
        .bind(serde_json::to_string(&spec.flow).unwrap_or_default())
        .bind(now)
        .fetch_one(&self.writer)
        .await
        .map_err(name_taken(&spec.name))?;
        task_of(&row)
    }

    /// A campaign's tasks, by id.
    pub async fn tasks(&self, campaign_id: i64) -> Result<Vec<Task>> {
        self.campaign(campaign_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE campaign_id = $1 ORDER BY id"
        ))
        .bind(campaign_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(task_of).collect()
    }

    /// One task of a campaign.
    pub async fn task(&self, campaign_id: i64, id: i64) -> Result<Task> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE id = $1 AND campaign_id = $2"
        ))
        .bind(id)
        .bind(campaign_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound { what: "task", id })?;
        task_of(&row)
    }

    /// Replaces a task's settings; its kind may not change while contacts are in it.
    pub async fn update_task(&self, campaign_id: i64, id: i64, spec: TaskSpec) -> Result<Task> {
        let old = self.task(campaign_id, id).await?;
        let spec = spec.validate()?;
        self.check_flow(campaign_id, &spec).await?;
        let status = self.campaign(campaign_id).await?.spec.status;
        self.check_safe_harbour(campaign_id, status, Some((Some(id), &spec)))
            .await?;
        if old.spec.kind != spec.kind && self.count_in_task(id).await? > 0 {
            return Err(StoreError::Conflict(format!(
                "task {id} holds contacts; its kind cannot change"
            )));
        }
        let row = sqlx::query(&format!(
            "UPDATE tasks SET name = $1, kind = $2, settings = $3, flow = $4, updated_ms = $5 \
             WHERE id = $6 RETURNING {COLUMNS}"
        ))
        .bind(&spec.name)
        .bind(spec.kind.as_str())
        .bind(spec.settings.to_string())
        .bind(serde_json::to_string(&spec.flow).unwrap_or_default())
        .bind(now_ms())
        .bind(id)
        .fetch_one(&self.writer)
        .await
        .map_err(name_taken(&spec.name))?;
        task_of(&row)
    }

    /// Deletes a task that holds no contacts.
    pub async fn delete_task(&self, campaign_id: i64, id: i64) -> Result<()> {
        self.task(campaign_id, id).await?;
        let held = self.count_in_task(id).await?;
        if held > 0 {
            return Err(StoreError::Conflict(format!(
                "task {id} holds {held} contacts; move or delete them first"
            )));
        }
        sqlx::query("DELETE FROM tasks WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn count_in_task(&self, task_id: i64) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM contacts WHERE task_id = $1")
                .bind(task_id)
                .fetch_one(&self.reader)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> TaskSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn call_defaults_fill_in_and_bad_settings_are_named() {
        let t = spec(json!({"name": "dial", "kind": "call", "settings": {"queue": "sales"}}))
            .validate()
            .unwrap();
        assert_eq!(t.settings["max_attempts"], 5);
        assert_eq!(t.settings["retry_delays_seconds"]["busy"], 600);
        let err =
            spec(json!({"name": "d", "kind": "call", "settings": {"queue": "s", "colour": 1}}))
                .validate()
                .unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid { field, .. } if field == "settings.colour"),
            "{err}"
        );
        let err = spec(json!({"name": "d", "kind": "call", "settings": {"retry_delays_seconds": {"busy": "x"}}}))
            .validate()
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid { field, .. } if field == "settings.retry_delays_seconds.busy"),
            "{err}"
        );
        let err = spec(json!({"name": "w", "kind": "webhook", "settings": {}}))
            .validate()
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid { field, .. } if field == "settings.url"),
            "{err}"
        );
        let err = spec(
            json!({"name": "d", "kind": "wait", "settings": {"seconds": 5},
            "flow": [{"status": "open", "next_task": 1}]}),
        )
        .validate()
        .unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid { field, .. } if field == "flow[0].status"),
            "{err}"
        );
    }

    #[test]
    fn an_abandoned_contact_waits_72_hours_by_default_and_never_less() {
        let delay = |settings: Value| {
            spec(json!({"name": "d", "kind": "call", "settings": settings}))
                .validate()
                .unwrap()
                .settings["retry_delays_seconds"]["abandoned"]
                .clone()
        };
        assert_eq!(delay(json!({})), 259_200);
        assert_eq!(
            delay(json!({"retry_delays_seconds": {"abandoned": 3600}})),
            259_200
        );
        assert_eq!(
            delay(json!({"retry_delays_seconds": {"abandoned": 300_000}})),
            300_000
        );
    }
}
