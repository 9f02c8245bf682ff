//! Caller-ID lines: the numbers campaigns show, their verification state, the pending code
//! (salted hash only) and every verification attempt.

use super::{now_ms, phone, rfc3339, Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// Who handles calls back to a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackMode {
    /// The owner's own phone or PBX; verified by a call that speaks a code.
    External,
    /// Forwarded to dialerd's access number; verified by a call that comes back.
    Forward,
}

impl CallbackMode {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::External => "external",
            Self::Forward => "forward",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "forward" {
            Self::Forward
        } else {
            Self::External
        }
    }
}

/// Where a line stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LineStatus {
    /// Never verified, or its number changed.
    Unverified,
    /// A verification is under way (a call placed, a code waiting to be typed in).
    Verifying,
    /// Proven to belong to the caller.
    Verified,
    /// The last verification failed (no answer, busy, code burned …).
    Failed,
}

impl LineStatus {
    /// Every status, for the metric.
    pub const ALL: [LineStatus; 4] = [
        Self::Unverified,
        Self::Verifying,
        Self::Verified,
        Self::Failed,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unverified => "unverified",
            Self::Verifying => "verifying",
            Self::Verified => "verified",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .unwrap_or(Self::Unverified)
    }
}

fn default_language() -> String {
    "en".into()
}

fn default_mode() -> CallbackMode {
    CallbackMode::External
}

/// What a line does with a caller who is no open contact of a running call task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InboundPolicy {
    /// To the task's agents as an unknown caller (a new contact is made for the number).
    #[default]
    Route,
    /// Play the line's message, then hang up.
    Message,
    /// Refuse the call (480).
    Reject,
}

impl InboundPolicy {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Route => "route",
            Self::Message => "message",
            Self::Reject => "reject",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "message" => Self::Message,
            "reject" => Self::Reject,
            _ => Self::Route,
        }
    }
}

/// What a caller waiting for an agent hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitingAudio {
    /// Ringing (the call is answered only when an agent takes it).
    #[default]
    Ringback,
    /// The call is answered at once and hears hold music.
    HoldMusic,
}

impl WaitingAudio {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ringback => "ringback",
            Self::HoldMusic => "hold_music",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "hold_music" {
            Self::HoldMusic
        } else {
            Self::Ringback
        }
    }
}

fn default_max_wait() -> u32 {
    60
}

/// What an API user sets on a line.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LineSpec {
    /// The number, normalised to E.164 (write it with its country code).
    pub number: String,
    /// A name for people.
    #[serde(default)]
    pub title: String,
    /// Language of the verification prompts (`en`, `fr`, …).
    #[serde(default = "default_language")]
    pub language: String,
    /// `external` or `forward`.
    #[serde(default = "default_mode")]
    pub callback_mode: CallbackMode,
    /// What callers who are no open contact get: `route`, `message` or `reject`.
    #[serde(default)]
    pub inbound_policy: InboundPolicy,
    /// How long a caller waits for an agent before hearing that they will be called back.
    #[serde(default = "default_max_wait")]
    pub max_wait_seconds: u32,
    /// What a waiting caller hears: `ringback` or `hold_music`.
    #[serde(default)]
    pub waiting_audio: WaitingAudio,
    /// The call task missed calls go to (default: the task of the contact, or the first
    /// running task that shows the line).
    #[serde(default)]
    pub missed_calls_task: Option<i64>,
}

impl LineSpec {
    /// Checks the fields and writes the number as E.164.
    pub fn normalise(&mut self) -> Result<()> {
        self.number = phone::normalise(&self.number, None).map_err(|e| {
            StoreError::invalid("number", format!("{e}; write it with its country code, +…"))
        })?;
        if !(5..=3600).contains(&self.max_wait_seconds) {
            return Err(StoreError::invalid(
                "max_wait_seconds",
                "wanted 5 to 3600 seconds",
            ));
        }
        if self.title.chars().count() > 200 {
            return Err(StoreError::invalid("title", "at most 200 characters"));
        }
        let lang_ok = (2..=3).contains(&self.language.len())
            && self.language.bytes().all(|b| b.is_ascii_lowercase());
        if !lang_ok {
            return Err(StoreError::invalid(
                "language",
                format!(
                    "wanted a language code like \"en\" or \"fr\", got {:?}",
                    self.language
                ),
            ));
        }
        Ok(())
    }
}

/// A line as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// Its id.
    pub id: i64,
    /// What the user set.
    #[serde(flatten)]
    pub spec: LineSpec,
    /// Where it stands.
    pub status: LineStatus,
    /// The last attempt's outcome (`code_spoken`, `no_answer`, `busy`, `rejected`, `short`,
    /// `forwarded`, `not_forwarded`, `code_accepted`, `code_burned`, `code_expired` …).
    pub last_outcome: Option<String>,
    /// The last attempt's final SIP status, when one came.
    pub last_sip_code: Option<i64>,
    /// When the last attempt started.
    pub last_attempt_at: Option<String>,
    /// When it was verified.
    pub verified_at: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

/// The pending code of a line: salted hash, expiry and wrong tries so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    /// Hex SHA-256 of salt and code.
    pub hash: String,
    /// Hex salt.
    pub salt: String,
    /// When it stops being accepted.
    pub expires_ms: i64,
    /// Wrong tries so far.
    pub tries: i64,
}

/// One verification attempt (the audit trail).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// Its id.
    pub id: i64,
    /// The line (none once the line is deleted).
    pub line_id: Option<i64>,
    /// The number called.
    pub number: String,
    /// `external` or `forward`.
    pub mode: String,
    /// The user who asked.
    pub requested_by: String,
    /// When.
    pub requested_at: String,
    /// How it ended, when it has.
    pub outcome: Option<String>,
    /// The call's final SIP status, when one came.
    pub sip_code: Option<i64>,
    /// When it ended.
    pub finished_at: Option<String>,
}

const COLUMNS: &str = "id, number, title, language, callback_mode, inbound_policy, \
    max_wait_seconds, waiting_audio, missed_calls_task, status, last_outcome, last_sip_code, \
    last_attempt_ms, verified_ms, created_ms, updated_ms";

fn line_of(row: &sqlx::any::AnyRow) -> Result<Line> {
    let time = |col: &str| -> Result<Option<String>> {
        Ok(row.try_get::<Option<i64>, _>(col)?.map(rfc3339))
    };
    Ok(Line {
        id: row.try_get("id")?,
        spec: LineSpec {
            number: row.try_get("number")?,
            title: row.try_get("title")?,
            language: row.try_get("language")?,
            callback_mode: CallbackMode::parse(row.try_get("callback_mode")?),
            inbound_policy: InboundPolicy::parse(row.try_get("inbound_policy")?),
            max_wait_seconds: row.try_get::<i64, _>("max_wait_seconds")?.clamp(0, 3600) as u32,
            waiting_audio: WaitingAudio::parse(row.try_get("waiting_audio")?),
            missed_calls_task: row.try_get("missed_calls_task")?,
        },
        status: LineStatus::parse(row.try_get("status")?),
        last_outcome: row.try_get("last_outcome")?,
        last_sip_code: row.try_get("last_sip_code")?,
        last_attempt_at: time("last_attempt_ms")?,
        verified_at: time("verified_ms")?,
        created_at: rfc3339(row.try_get("created_ms")?),
        updated_at: rfc3339(row.try_get("updated_ms")?),
    })
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound { what: "line", id }
}

fn number_taken(number: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a line for {number} exists")),
        e => e,
    }
}

impl Store {
    /// Creates a line (unverified).
    pub async fn create_line(&self, spec: &LineSpec) -> Result<Line> {
        let mut spec = spec.clone();
        spec.normalise()?;
        self.check_missed_calls_task(&spec).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO lines (number, title, language, callback_mode, inbound_policy, \
             max_wait_seconds, waiting_audio, missed_calls_task, status, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $6, $7, $8, $9, 'unverified', $5, $5) RETURNING {COLUMNS}"
        ))
        .bind(&spec.number)
        .bind(&spec.title)
        .bind(&spec.language)
        .bind(spec.callback_mode.as_str())
        .bind(now_ms())
        .bind(spec.inbound_policy.as_str())
        .bind(i64::from(spec.max_wait_seconds))
        .bind(spec.waiting_audio.as_str())
        .bind(spec.missed_calls_task)
        .fetch_one(&self.writer)
        .await
        .map_err(number_taken(&spec.number))?;
        line_of(&row)
    }

    /// A line's `missed_calls_task` must be a call task.
    async fn check_missed_calls_task(&self, spec: &LineSpec) -> Result<()> {
        let Some(task) = spec.missed_calls_task else {
            return Ok(());
        };
        let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM tasks WHERE id = $1")
            .bind(task)
            .fetch_optional(&self.reader)
            .await?;
        if kind.as_deref() != Some("call") {
            return Err(StoreError::invalid(
                "missed_calls_task",
                format!("{task} is no call task"),
            ));
        }
        Ok(())
    }

    /// The verified line a call to `numbers` (Request-URI, To, Diversion, History-Info …)
    /// reaches: a number names a line when the line's digits end with its digits (at least
    /// six, leading zeros and `+` left out) — `+4930555123`, `004930555123` and `030555123`
    /// all reach `+4930555123`. With `forward_only`, only lines in forward mode count.
    pub async fn line_called(
        &self,
        numbers: &[String],
        forward_only: bool,
    ) -> Result<Option<Line>> {
        let lines = self.lines().await?;
        let digits = |s: &str| -> String {
            let d: String = s.chars().filter(char::is_ascii_digit).collect();
            d.trim_start_matches('0').to_string()
        };
        for n in numbers {
            let want = digits(n);
            if want.len() < 6 {
                continue;
            }
            let found = lines.iter().find(|l| {
                l.status == LineStatus::Verified
                    && (!forward_only || l.spec.callback_mode == CallbackMode::Forward)
                    && digits(&l.spec.number).ends_with(&want)
            });
            if let Some(l) = found {
                return Ok(Some(l.clone()));
            }
        }
        Ok(None)
    }

    /// Every line, by id.
    pub async fn lines(&self) -> Result<Vec<Line>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM lines ORDER BY id"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(line_of).collect()
    }

    /// One line.
    pub async fn line(&self, id: i64) -> Result<Line> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM lines WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .ok_or_else(|| not_found(id))?;
        line_of(&row)
    }

    /// Changes a line; a new number or callback mode makes it unverified again.
    pub async fn update_line(&self, id: i64, spec: &LineSpec) -> Result<Line> {
        let mut spec = spec.clone();
        spec.normalise()?;
        self.check_missed_calls_task(&spec).await?;
        let row = sqlx::query(&format!(
            "UPDATE lines SET title = $1, language = $2, \
             status = CASE WHEN number = $3 AND callback_mode = $4 THEN status ELSE 'unverified' END, \
             verified_ms = CASE WHEN number = $3 AND callback_mode = $4 THEN verified_ms ELSE NULL END, \
             code_hash = CASE WHEN number = $3 THEN code_hash ELSE NULL END, \
             number = $3, callback_mode = $4, updated_ms = $5, inbound_policy = $7, \
             max_wait_seconds = $8, waiting_audio = $9, missed_calls_task = $10 \
             WHERE id = $6 RETURNING {COLUMNS}"
        ))
        .bind(&spec.title)
        .bind(&spec.language)
        .bind(&spec.number)
        .bind(spec.callback_mode.as_str())
        .bind(now_ms())
        .bind(id)
        .bind(spec.inbound_policy.as_str())
        .bind(i64::from(spec.max_wait_seconds))
        .bind(spec.waiting_audio.as_str())
        .bind(spec.missed_calls_task)
        .fetch_optional(&self.writer)
        .await
        .map_err(number_taken(&spec.number))?
        .ok_or_else(|| not_found(id))?;
        line_of(&row)
    }

    /// Deletes a line; its verification attempts stay in the audit trail.
    pub async fn delete_line(&self, id: i64) -> Result<()> {
        let done = sqlx::query("DELETE FROM lines WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// Starts a verification attempt of `line` unless its number already had `max` attempts
    /// since `since_ms` (then `None`): records it, marks the line `verifying`, and stores the
    /// new code (or clears the old one). One transaction, so two requests cannot both pass
    /// the limit.
    pub async fn begin_verification(
        &self,
        line: &Line,
        requested_by: &str,
        code: Option<&StoredCode>,
        max: u32,
        since_ms: i64,
    ) -> Result<Option<i64>> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM line_verifications WHERE number = $1 AND requested_ms >= $2",
        )
        .bind(&line.spec.number)
        .bind(since_ms)
        .fetch_one(&mut *tx)
        .await?;
        if recent >= i64::from(max) {
            return Ok(None);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO line_verifications (line_id, number, mode, requested_by, requested_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(line.id)
        .bind(&line.spec.number)
        .bind(line.spec.callback_mode.as_str())
        .bind(requested_by)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE lines SET status = 'verifying', last_outcome = 'calling', last_sip_code = NULL, \
             last_attempt_ms = $1, code_hash = $2, code_salt = $3, code_expires_ms = $4, \
             code_tries = 0, updated_ms = $1 WHERE id = $5",
        )
        .bind(now)
        .bind(code.map(|c| c.hash.as_str()))
        .bind(code.map(|c| c.salt.as_str()))
        .bind(code.map(|c| c.expires_ms))
        .bind(line.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Records how an attempt ended and sets the line's status and last outcome.
    pub async fn finish_verification(
        &self,
        attempt: i64,
        line_id: i64,
        outcome: &str,
        sip_code: Option<u16>,
        status: LineStatus,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "UPDATE line_verifications SET outcome = $1, sip_code = $2, finished_ms = $3 \
             WHERE id = $4",
        )
        .bind(outcome)
        .bind(sip_code.map(i64::from))
        .bind(now)
        .bind(attempt)
        .execute(&mut *tx)
        .await?;
        self.set_line_state(&mut tx, line_id, status, outcome, sip_code, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_line_state(
        &self,
        tx: &mut sqlx::AnyConnection,
        line_id: i64,
        status: LineStatus,
        outcome: &str,
        sip_code: Option<u16>,
        now: i64,
    ) -> Result<()> {
        let verified = status == LineStatus::Verified;
        sqlx::query(
            "UPDATE lines SET status = $1, last_outcome = $2, \
             last_sip_code = COALESCE($3, last_sip_code), \
             verified_ms = CASE WHEN $4 = 1 THEN $5 ELSE verified_ms END, \
             code_hash = CASE WHEN $4 = 1 OR $1 = 'failed' THEN NULL ELSE code_hash END, \
             updated_ms = $5 WHERE id = $6",
        )
        .bind(status.as_str())
        .bind(outcome)
        .bind(sip_code.map(i64::from))
        .bind(verified as i64)
        .bind(now)
        .bind(line_id)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// The line's pending code, if any.
    pub async fn line_code(&self, line_id: i64) -> Result<Option<StoredCode>> {
        let row = sqlx::query(
            "SELECT code_hash, code_salt, code_expires_ms, code_tries FROM lines WHERE id = $1",
        )
        .bind(line_id)
        .fetch_optional(&self.writer)
        .await?
        .ok_or_else(|| not_found(line_id))?;
        let hash: Option<String> = row.try_get("code_hash")?;
        Ok(match hash {
            Some(hash) => Some(StoredCode {
                hash,
                salt: row
                    .try_get::<Option<String>, _>("code_salt")?
                    .unwrap_or_default(),
                expires_ms: row
                    .try_get::<Option<i64>, _>("code_expires_ms")?
                    .unwrap_or(0),
                tries: row.try_get("code_tries")?,
            }),
            None => None,
        })
    }

    /// Records a typed-in code's result: a wrong try counted, or the line's new status and
    /// outcome (verified, or failed with the code burned or expired).
    pub async fn record_code_entry(
        &self,
        line_id: i64,
        tries: i64,
        end: Option<(LineStatus, &str)>,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        sqlx::query("UPDATE lines SET code_tries = $1, updated_ms = $2 WHERE id = $3")
            .bind(tries)
            .bind(now)
            .bind(line_id)
            .execute(&mut *tx)
            .await?;
        if let Some((status, outcome)) = end {
            self.set_line_state(&mut tx, line_id, status, outcome, None, now)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A line's verification attempts, newest first.
    pub async fn verifications(&self, line_id: i64) -> Result<Vec<Verification>> {
        let rows = sqlx::query(
            "SELECT id, line_id, number, mode, requested_by, requested_ms, outcome, sip_code, \
             finished_ms FROM line_verifications WHERE line_id = $1 ORDER BY id DESC",
        )
        .bind(line_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Verification {
                    id: row.try_get("id")?,
                    line_id: row.try_get("line_id")?,
                    number: row.try_get("number")?,
                    mode: row.try_get("mode")?,
                    requested_by: row.try_get("requested_by")?,
                    requested_at: rfc3339(row.try_get("requested_ms")?),
                    outcome: row.try_get("outcome")?,
                    sip_code: row.try_get("sip_code")?,
                    finished_at: row.try_get::<Option<i64>, _>("finished_ms")?.map(rfc3339),
                })
            })
            .collect()
    }

    /// Lines whose spoken code ran out before anyone typed it in become `failed` with
    /// `code_expired` (else they would show `verifying` for good). Returns how many.
    pub async fn expire_codes(&self, now_ms: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE lines SET status = 'failed', last_outcome = 'code_expired', code_hash = NULL, \
             updated_ms = $1 WHERE status = 'verifying' AND last_outcome = 'code_spoken' \
             AND code_hash IS NOT NULL AND code_expires_ms < $1",
        )
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    /// Lines per status, for the `dialerd_lines` gauge.
    pub async fn line_counts(&self) -> Result<Vec<(LineStatus, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM lines GROUP BY status")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| Ok((LineStatus::parse(r.try_get("status")?), r.try_get("n")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store::both_backends! {
        async fn a_spoken_code_left_untyped_expires_the_verification() {
            let (_dir, store) = crate::store::test_support::store().await;
            let line = store
                .create_line(&LineSpec {
                    number: "+4930123456".into(),
                    title: String::new(),
                    language: "en".into(),
                    callback_mode: CallbackMode::External,
                    inbound_policy: InboundPolicy::Route,
                    max_wait_seconds: 60,
                    waiting_audio: WaitingAudio::Ringback,
                    missed_calls_task: None,
                })
                .await
                .unwrap();
            let now = now_ms();
            let code = StoredCode {
                hash: "h".into(),
                salt: "s".into(),
                expires_ms: now + 1_000,
                tries: 0,
            };
            let attempt = store
                .begin_verification(&line, "admin", Some(&code), 3, now - 3_600_000)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(store.expire_codes(now).await.unwrap(), 0, "still calling");
            store
                .finish_verification(
                    attempt,
                    line.id,
                    "code_spoken",
                    Some(200),
                    LineStatus::Verifying,
                )
                .await
                .unwrap();
            assert_eq!(store.expire_codes(now).await.unwrap(), 0, "not yet expired");
            assert_eq!(store.expire_codes(now + 2_000).await.unwrap(), 1);
            let after = store.line(line.id).await.unwrap();
            assert_eq!(after.status, LineStatus::Failed);
            assert_eq!(after.last_outcome.as_deref(), Some("code_expired"));
            assert_eq!(store.line_code(line.id).await.unwrap(), None);
            assert_eq!(store.expire_codes(now + 3_000).await.unwrap(), 0, "once");
        }
    }
}
