//! Task flow: what happens to a contact when it enters a task (by kind) and when it reaches a
//! final status (the task's flow rules schedule a move), and the background work that comes
//! due (moves, waits ending, webhook deliveries). Every function takes `now`.

use super::builder::QueryBuilder;
use super::contacts::{contact_of, Contact, COLUMNS};
use super::tasks::{EmailSettings, FlowRule, Task, TaskKind, WaitSettings, WebhookSettings};
use super::{push_in_list, Result, Store, StoreError, ID_CHUNK};
use serde_json::json;
use sqlx::Row;

/// Rounds of due work one `apply_due` call runs (a flow loop with no delay stops here).
const MAX_ROUNDS: usize = 20;

/// Contacts moving to one task, each with the task it leaves.
type Movers = Vec<(i64, i64)>;

/// A webhook delivery that is due.
#[derive(Debug, Clone)]
pub struct WebhookJob {
    /// The contact as it will be posted.
    pub contact: Contact,
    /// Its webhook task.
    pub task_id: i64,
    /// The task's settings.
    pub settings: WebhookSettings,
    /// Deliveries tried so far.
    pub tries: u32,
}

/// An e-mail that is due.
#[derive(Debug, Clone)]
pub struct EmailJob {
    /// The contact it goes to.
    pub contact: Contact,
    /// Its e-mail task.
    pub task_id: i64,
    /// The task's settings.
    pub settings: EmailSettings,
    /// The campaign's name (for `{{campaign.name}}`).
    pub campaign_name: String,
    /// Sendings tried so far.
    pub tries: u32,
}

/// How one try of a delivery (webhook or e-mail) ended.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Delivered; the value goes into the history entry.
    Done(serde_json::Value),
    /// Failed; retried after the back-off while retries are left.
    Failed(String),
    /// Failed in a way no retry mends (a bad address): the contact fails now.
    Refused(String),
}

/// The first rule of `flow` that a contact with `status` and `detail` matches.
pub fn matching_rule<'a>(flow: &'a [FlowRule], status: &str, detail: &str) -> Option<&'a FlowRule> {
    flow.iter()
        .find(|r| r.status == status && r.detail.as_deref().is_none_or(|d| d == detail))
}

/// Seconds before retry number `tries` (1-based) of a webhook: `backoff`, doubled each time.
pub fn backoff_seconds(backoff: u32, tries: u32) -> u64 {
    (backoff as u64).saturating_mul(1u64 << tries.saturating_sub(1).min(20))
}

impl Store {
    /// Puts contacts into `task` as its kind wants: open with `$none` (call), open until the
    /// wait ends (wait), open with a delivery due now (webhook), or written to the task's open
    /// export file and `success`/`$exported` (export). A few statements for the whole list,
    /// not per contact: each statement is a round trip to the database thread.
    pub(crate) async fn enter_task(
        conn: &mut sqlx::AnyConnection,
        contact_ids: &[i64],
        task: &Task,
        now: i64,
    ) -> Result<()> {
        let (status, detail, action_ms) = match task.spec.kind {
            TaskKind::Call => ("open", "$none", None),
            TaskKind::Wait => {
                let w: WaitSettings = serde_json::from_value(task.spec.settings.clone())
                    .map_err(|e| StoreError::Conflict(format!("task {}: {e}", task.id)))?;
                ("open", "$none", Some(now + w.seconds as i64 * 1000))
            }
            TaskKind::Webhook | TaskKind::Email => ("open", "$none", Some(now)),
            TaskKind::Export => {
                Self::export_contacts(conn, contact_ids, task, now).await?;
                ("success", "$exported", None)
            }
        };
        for chunk in contact_ids.chunks(ID_CHUNK) {
            let mut q = QueryBuilder::new("UPDATE contacts SET task_id = ");
            q.push_bind(task.id)
                .push(", status = ")
                .push_bind(status)
                .push(", detail = ")
                .push_bind(detail)
                .push(", follow_up_ms = NULL, action_ms = ")
                .push_bind(action_ms)
                .push(", move_to = NULL, action_tries = 0, updated_ms = ")
                .push_bind(now);
            q.push(" WHERE id IN ");
            push_in_list(&mut q, chunk);
            q.build().execute(&mut *conn).await?;
        }
        if task.spec.kind == TaskKind::Export {
            Self::schedule_flow(conn, contact_ids, task, status, detail, now).await?;
        }
        Ok(())
    }

    /// After contacts' status changed in `task` (to the same status and detail): a final status
    /// matching a flow rule schedules the move; anything else cancels a scheduled one (call
    /// tasks only: wait and webhook tasks keep their own due work while open). Returns whether
    /// the move is due at once.
    pub(crate) async fn schedule_flow(
        conn: &mut sqlx::AnyConnection,
        contact_ids: &[i64],
        task: &Task,
        status: &str,
        detail: &str,
        now: i64,
    ) -> Result<bool> {
        let rule = matching_rule(&task.spec.flow, status, detail);
        if rule.is_none() && status == "open" && task.spec.kind != TaskKind::Call {
            return Ok(false);
        }
        for chunk in contact_ids.chunks(ID_CHUNK) {
            let mut q = QueryBuilder::new("UPDATE contacts SET action_ms = ");
            q.push_bind(rule.map(|r| now + r.delay_seconds as i64 * 1000))
                .push(", move_to = ")
                .push_bind(rule.map(|r| r.next_task));
            q.push(" WHERE id IN ");
            push_in_list(&mut q, chunk);
            q.build().execute(&mut *conn).await?;
        }
        Ok(rule.is_some_and(|r| r.delay_seconds == 0))
    }

    /// Applies the moves and wait ends due at `now`; returns how many contacts moved on.
    pub async fn apply_due(&self, now: i64) -> Result<u64> {
        let mut done = 0;
        for _ in 0..MAX_ROUNDS {
            // Read inside the write transaction: a due move read outside it could be applied by
            // a concurrent caller (the worker and an API change) in between, and then twice.
            let mut tx = self.writer.begin().await?;
            let rows = sqlx::query(
                "SELECT c.id, c.campaign_id, c.task_id, c.move_to FROM contacts c JOIN tasks t ON t.id = c.task_id \
                 WHERE c.action_ms IS NOT NULL AND c.action_ms <= $1 AND (c.move_to IS NOT NULL OR t.kind = 'wait') \
                 ORDER BY c.action_ms LIMIT 500",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                break;
            }
            // Moves and wait ends go task by task, a few statements each.
            let mut moves: Vec<((i64, i64), Movers)> = Vec::new();
            let mut waits: Vec<((i64, i64), Vec<i64>)> = Vec::new();
            for row in &rows {
                let (id, campaign, from): (i64, i64, i64) =
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                let to: Option<i64> = row.try_get(3)?;
                match to {
                    Some(to) => match moves.iter_mut().find(|(at, _)| *at == (campaign, to)) {
                        Some((_, list)) => list.push((id, from)),
                        None => moves.push(((campaign, to), vec![(id, from)])),
                    },
                    // A wait task's delay is over.
                    None => match waits.iter_mut().find(|(at, _)| *at == (campaign, from)) {
                        Some((_, ids)) => ids.push(id),
                        None => waits.push(((campaign, from), vec![id])),
                    },
                }
                done += 1;
            }
            for ((campaign, from), ids) in waits {
                let task = self.task(campaign, from).await?;
                Self::finish(&mut tx, &ids, &task, "success", "$waited", json!({}), now).await?;
            }
            for ((campaign, to), list) in moves {
                let task = self.task(campaign, to).await?;
                let ids: Vec<i64> = list.iter().map(|(id, _)| *id).collect();
                Self::enter_task(&mut tx, &ids, &task, now).await?;
                let history: Vec<(i64, serde_json::Value)> = list
                    .iter()
                    .map(|(id, from)| {
                        (*id, json!({"op": "move", "from_task": from, "to_task": to}))
                    })
                    .collect();
                Self::record_many(&mut tx, "flow", now, &history).await?;
            }
            tx.commit().await?;
        }
        Ok(done)
    }

    /// Sets a final status reached by background work on contacts of `task`, records it (with
    /// `extra` in each history entry), and schedules the flow.
    async fn finish(
        conn: &mut sqlx::AnyConnection,
        ids: &[i64],
        task: &Task,
        status: &str,
        detail: &str,
        extra: serde_json::Value,
        now: i64,
    ) -> Result<()> {
        for chunk in ids.chunks(ID_CHUNK) {
            let mut q = QueryBuilder::new("UPDATE contacts SET status = ");
            q.push_bind(status)
                .push(", detail = ")
                .push_bind(detail)
                .push(", action_ms = NULL, updated_ms = ")
                .push_bind(now)
                .push(" WHERE id IN ");
            push_in_list(&mut q, chunk);
            q.build().execute(&mut *conn).await?;
        }
        let mut change = json!({"op": task.spec.kind, "status": status, "detail": detail});
        if let (Some(c), Some(e)) = (change.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let history: Vec<(i64, serde_json::Value)> =
            ids.iter().map(|id| (*id, change.clone())).collect();
        Self::record_many(conn, "flow", now, &history).await?;
        Self::schedule_flow(conn, ids, task, status, detail, now).await?;
        Ok(())
    }

    /// Contacts per (campaign, task, status).
    pub async fn contact_counts(&self) -> Result<Vec<(i64, i64, String, i64)>> {
        let rows = sqlx::query(
            "SELECT t.campaign_id, c.task_id, c.status, COUNT(*) FROM contacts c JOIN tasks t ON t.id = c.task_id \
             GROUP BY t.campaign_id, c.task_id, c.status",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }

    /// Contacts of `kind` tasks (webhook, email) whose delivery is due at `now`, oldest
    /// first, at most `limit`: each with its task's settings and the tries so far.
    async fn due_deliveries(
        &self,
        kind: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(Contact, String, u32)>> {
        let rows = sqlx::query(&format!(
            "SELECT {cols}, c.action_tries, t.settings FROM contacts c JOIN tasks t ON t.id = c.task_id \
             WHERE c.action_ms IS NOT NULL AND c.action_ms <= $1 AND c.move_to IS NULL AND t.kind = $3 \
             ORDER BY c.action_ms LIMIT $2",
            cols = COLUMNS
                .split(", ")
                .map(|c| format!("c.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(now)
        .bind(limit)
        .bind(kind)
        .fetch_all(&self.reader)
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in rows {
            let contact = contact_of(&row)?;
            let tries = row.try_get::<i64, _>("action_tries")? as u32;
            due.push((contact, row.try_get("settings")?, tries));
        }
        Ok(due)
    }

    /// Webhook deliveries due at `now`, oldest first, at most `limit`.
    pub async fn due_webhooks(&self, now: i64, limit: i64) -> Result<Vec<WebhookJob>> {
        let mut jobs = Vec::new();
        for (contact, settings, tries) in self.due_deliveries("webhook", now, limit).await? {
            let Ok(settings) = serde_json::from_str::<WebhookSettings>(&settings) else {
                continue;
            };
            jobs.push(WebhookJob {
                task_id: contact.spec.task_id.unwrap_or_default(),
                contact,
                settings,
                tries,
            });
        }
        Ok(jobs)
    }

    /// E-mails due at `now`, oldest first, at most `limit`.
    pub async fn due_emails(&self, now: i64, limit: i64) -> Result<Vec<EmailJob>> {
        let mut jobs = Vec::new();
        for (contact, settings, tries) in self.due_deliveries("email", now, limit).await? {
            let Ok(settings) = serde_json::from_str::<EmailSettings>(&settings) else {
                continue;
            };
            let campaign_name = self.campaign(contact.campaign_id).await?.spec.name;
            jobs.push(EmailJob {
                task_id: contact.spec.task_id.unwrap_or_default(),
                contact,
                settings,
                campaign_name,
                tries,
            });
        }
        Ok(jobs)
    }

    /// Records a webhook delivery: success moves the contact on (`success`/`$delivered`); a
    /// failure retries after the backoff, or after the last retry fails the contact
    /// (`failed`/`$webhook_failed`). Ignored when the contact left the task meanwhile.
    pub async fn webhook_result(
        &self,
        job: &WebhookJob,
        outcome: Delivery,
        now: i64,
    ) -> Result<()> {
        let s = &job.settings;
        self.delivery_result(
            &job.contact,
            job.task_id,
            (job.tries, s.retries, s.backoff_seconds),
            outcome,
            ("webhook", "$delivered", "$webhook_failed"),
            now,
        )
        .await
    }

    /// Records an e-mail sending: sent moves the contact on (`success`/`$sent`); a failure
    /// retries after the backoff, or after the last retry (or at once when refused for good)
    /// fails the contact (`failed`/`$email_failed`). Each try is in the contact's history.
    pub async fn email_result(&self, job: &EmailJob, outcome: Delivery, now: i64) -> Result<()> {
        let s = &job.settings;
        self.delivery_result(
            &job.contact,
            job.task_id,
            (job.tries, s.retries, s.backoff_seconds),
            outcome,
            ("email", "$sent", "$email_failed"),
            now,
        )
        .await
    }

    /// Records one try of a delivery; `(tries so far, retries, backoff)`, `(op, detail when
    /// done, detail when failed)`. Ignored when the contact left the task meanwhile.
    async fn delivery_result(
        &self,
        contact: &Contact,
        task_id: i64,
        (tried, retries, backoff): (u32, u32, u32),
        outcome: Delivery,
        (op, done, failed): (&str, &str, &str),
        now: i64,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let still: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM contacts WHERE id = $1 AND task_id = $2 AND move_to IS NULL AND action_ms IS NOT NULL",
        )
        .bind(contact.id)
        .bind(task_id)
        .fetch_optional(&mut *tx)
        .await?;
        if still.is_none() {
            return Ok(());
        }
        let task = self.task(contact.campaign_id, task_id).await?;
        let tries = tried + 1;
        match outcome {
            Delivery::Done(mut extra) => {
                extra["tries"] = tries.into();
                Self::finish(&mut tx, &[contact.id], &task, "success", done, extra, now).await?
            }
            Delivery::Refused(error) => {
                Self::finish(
                    &mut tx,
                    &[contact.id],
                    &task,
                    "failed",
                    failed,
                    json!({"error": error, "tries": tries}),
                    now,
                )
                .await?
            }
            Delivery::Failed(error) if tries > retries => {
                Self::finish(
                    &mut tx,
                    &[contact.id],
                    &task,
                    "failed",
                    failed,
                    json!({"error": error, "tries": tries}),
                    now,
                )
                .await?
            }
            Delivery::Failed(error) => {
                let wait = backoff_seconds(backoff, tries) as i64 * 1000;
                sqlx::query("UPDATE contacts SET action_ms = $1, action_tries = $2 WHERE id = $3")
                    .bind(now + wait)
                    .bind(tries as i64)
                    .bind(contact.id)
                    .execute(&mut *tx)
                    .await?;
                Self::record(
                    &mut tx,
                    contact.id,
                    "flow",
                    json!({"op": op, "error": error, "tries": tries, "retry_in_seconds": wait / 1000}),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(status: &str, detail: Option<&str>, next: i64) -> FlowRule {
        FlowRule {
            status: status.into(),
            detail: detail.map(str::to_string),
            next_task: next,
            delay_seconds: 0,
        }
    }

    #[test]
    fn first_matching_rule_wins_and_detail_is_optional() {
        let flow = [
            rule("success", Some("sale"), 1),
            rule("success", None, 2),
            rule("failed", None, 3),
        ];
        assert_eq!(
            matching_rule(&flow, "success", "sale").unwrap().next_task,
            1
        );
        assert_eq!(
            matching_rule(&flow, "success", "other").unwrap().next_task,
            2
        );
        assert_eq!(
            matching_rule(&flow, "failed", "$busy").unwrap().next_task,
            3
        );
        assert!(matching_rule(&flow, "declined", "x").is_none());
    }

    #[test]
    fn backoff_doubles() {
        assert_eq!(
            (1..=4).map(|t| backoff_seconds(30, t)).collect::<Vec<_>>(),
            [30, 60, 120, 240]
        );
        assert_eq!(backoff_seconds(u32::MAX, 64), u32::MAX as u64 * (1 << 20));
    }
}

#[cfg(test)]
mod race_tests {
    use super::*;
    use crate::store::now_ms;
    use serde_json::from_value;

    /// The flow worker and an API change both apply due moves: each contact moves once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_due_move_is_applied_once_when_two_callers_race_sqlite() {
        a_due_move_is_applied_once_when_two_callers_race(crate::store::test_pg::Backend::Sqlite)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_due_move_is_applied_once_when_two_callers_race_postgres() {
        a_due_move_is_applied_once_when_two_callers_race(crate::store::test_pg::Backend::Postgres)
            .await;
    }

    async fn a_due_move_is_applied_once_when_two_callers_race(
        backend: crate::store::test_pg::Backend,
    ) {
        crate::store::test_pg::set(backend);
        let (_dir, store) = crate::store::test_support::store().await;
        let c = store
            .create_campaign(&from_value(json!({"name": "c", "default_region": "DE"})).unwrap())
            .await
            .unwrap();
        let call = store
            .create_task(
                c.id,
                from_value(json!({"name": "dial", "kind": "call"})).unwrap(),
            )
            .await
            .unwrap();
        let wait = store
            .create_task(
                c.id,
                from_value(json!({"name": "later", "kind": "wait", "settings": {"seconds": 3600}}))
                    .unwrap(),
            )
            .await
            .unwrap();
        for i in 0..300 {
            let spec =
                from_value(json!({"task_id": call.id, "phones": [format!("+4930123{i:04}")]}))
                    .unwrap();
            store.create_contact(c.id, &spec, "test").await.unwrap();
        }
        sqlx::query("UPDATE contacts SET action_ms = 1, move_to = $1")
            .bind(wait.id)
            .execute(&store.writer)
            .await
            .unwrap();
        let now = now_ms();
        let (a, b) = tokio::join!(store.apply_due(now), store.apply_due(now));
        assert_eq!(a.unwrap() + b.unwrap(), 300);
        let moves: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM contact_history WHERE change LIKE '%\"op\":\"move\"%'",
        )
        .fetch_one(&store.reader)
        .await
        .unwrap();
        assert_eq!(moves, 300);
    }
}
