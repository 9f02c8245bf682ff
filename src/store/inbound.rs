//! What inbound callbacks need of the store: the call tasks that show a line, the contacts a
//! caller's number belongs to, a contact made for an unknown caller, a contact leased to an
//! inbound call, and how an inbound call is written on its contact (no dialling attempt: a
//! call the contact made does not count against the task's `max_attempts`).

use super::contacts::{CallWrite, Contact, ContactSpec};
use super::{rfc3339, Result, Store};
use sqlx::Row;

/// The contact's detail for a caller who hung up before an agent took the call.
pub const MISSED_CALL: &str = "$missed_call";
/// The contact's detail for a caller who waited the line's `max_wait` and was told they would
/// be called back.
pub const MISSED_CALLBACK: &str = "$missed_callback";
/// The detail of a contact made for a caller the task did not know.
pub const INBOUND_UNKNOWN: &str = "$inbound_unknown";

/// A call task that shows a line as its caller ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTask {
    /// The campaign.
    pub campaign_id: i64,
    /// The call task.
    pub task_id: i64,
    /// The campaign's default region, for callers' national numbers.
    pub default_region: Option<String>,
}

/// How an inbound call is written on its contact.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundCall {
    /// The caller's number (E.164).
    pub number: String,
    /// The line called.
    pub line_id: i64,
    /// The result: the agent's disposition, or `$missed_call`, `$missed_callback` …
    pub result: String,
    /// The contact's status after it; `None` leaves the contact as it is (a closed contact
    /// whose call the line's policy answered): only the history entry is written.
    pub status: Option<String>,
    /// When to call the contact (epoch ms); for a missed call, the earlier of this and a
    /// follow-up it already had.
    pub follow_up_ms: Option<i64>,
    /// The call record's id.
    pub call_id: Option<String>,
    /// How long the caller waited for an agent (ms).
    pub waited_ms: i64,
    /// The agent who took it (user name), if one did.
    pub agent: Option<String>,
    /// When the call ended (epoch ms).
    pub at_ms: i64,
}

impl Store {
    /// The call tasks of the campaigns that show `line_id`, by campaign and task id.
    pub async fn tasks_showing_line(&self, line_id: i64) -> Result<Vec<LineTask>> {
        let rows = sqlx::query(
            "SELECT c.id AS campaign_id, t.id AS task_id, c.default_region AS region \
             FROM campaigns c JOIN tasks t ON t.campaign_id = c.id \
             WHERE c.line_id = $1 AND t.kind = 'call' ORDER BY c.id, t.id",
        )
        .bind(line_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LineTask {
                    campaign_id: r.try_get("campaign_id")?,
                    task_id: r.try_get("task_id")?,
                    default_region: r.try_get("region")?,
                })
            })
            .collect()
    }

    /// The campaign of call task `task_id`, if it is one.
    pub async fn campaign_of_task(&self, task_id: i64) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT campaign_id FROM tasks WHERE id = $1 AND kind = 'call'")
                .bind(task_id)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    /// The contacts of `task_ids` that have `number` (E.164), open ones first.
    pub async fn contacts_with_number(
        &self,
        task_ids: &[i64],
        number: &str,
    ) -> Result<Vec<Contact>> {
        let rows = sqlx::query(
            "SELECT c.campaign_id, c.id, c.task_id, c.status FROM contacts c \
             JOIN contact_phones p ON p.contact_id = c.id WHERE p.phone = $1 ORDER BY c.id",
        )
        .bind(number)
        .fetch_all(&self.reader)
        .await?;
        let mut found = Vec::new();
        for r in rows {
            let task: Option<i64> = r.try_get("task_id")?;
            if !task.is_some_and(|t| task_ids.contains(&t)) {
                continue;
            }
            let open = r.try_get::<String, _>("status")? == "open";
            found.push((
                !open,
                r.try_get::<i64, _>("campaign_id")?,
                r.try_get::<i64, _>("id")?,
            ));
        }
        found.sort_unstable();
        let mut out = Vec::with_capacity(found.len());
        for (_, campaign, id) in found {
            out.push(self.contact(campaign, id).await?);
        }
        Ok(out)
    }

    /// A new open contact in `task_id` for an unknown caller's `number`, marked
    /// `$inbound_unknown` and due at once (so it is called back if the call is missed).
    pub async fn inbound_contact(
        &self,
        campaign_id: i64,
        task_id: i64,
        number: &str,
        now_ms: i64,
    ) -> Result<Contact> {
        let spec = ContactSpec {
            task_id: Some(task_id),
            fields: serde_json::Map::new(),
            phones: vec![number.to_string()],
            time_zone: None,
            status: "open".into(),
            detail: INBOUND_UNKNOWN.into(),
            follow_up_at: Some(rfc3339(now_ms)),
            owner: None,
            attempts: 0,
        };
        self.create_contact(campaign_id, &spec, "inbound").await
    }

    /// Leases `contact` to an inbound call (as [`Store::lease_callable`] leases to an outbound
    /// one); false when a call holds it already.
    pub async fn lease_contact(
        &self,
        contact: &Contact,
        task_id: i64,
        owner: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO contact_leases (contact_id, campaign_id, task_id, owner, leased_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (contact_id) DO NOTHING",
        )
        .bind(contact.id)
        .bind(contact.campaign_id)
        .bind(task_id)
        .bind(owner)
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes an inbound call on contact `id`: its status, detail and follow-up, and a history
    /// entry (`op` `inbound`) with the line, number, result, waiting time and agent — in one
    /// transaction — then the task-flow rule that matches a changed status or detail. The
    /// contact's attempt count stays.
    pub async fn record_inbound(
        &self,
        campaign_id: i64,
        id: i64,
        call: &InboundCall,
        actor: &str,
    ) -> Result<Contact> {
        let old = self.contact(campaign_id, id).await?;
        let missed = call.result == MISSED_CALL || call.result == MISSED_CALLBACK;
        let before = old
            .spec
            .follow_up_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis());
        // Repeated missed calls make one callback: the earliest one stays.
        let follow_up_ms = match (missed, before, call.follow_up_ms) {
            (true, Some(b), Some(n)) if old.spec.status == "open" => Some(b.min(n)),
            _ => call.follow_up_ms,
        };
        let status = call.status.as_deref().unwrap_or(&old.spec.status);
        let history = serde_json::json!({
            "op": "inbound",
            "line_id": call.line_id,
            "number": call.number,
            "result": call.result,
            "call_id": call.call_id,
            "waited_ms": call.waited_ms,
            "agent": call.agent,
            "status": status,
            "follow_up_at": follow_up_ms.map(rfc3339),
        });
        let write = CallWrite {
            result: &call.result,
            status: call.status.as_deref(),
            follow_up_ms,
            attempt: false,
            at_ms: call.at_ms,
        };
        self.write_call(&old, &write, history, actor).await
    }
}
