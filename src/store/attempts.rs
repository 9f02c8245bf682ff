//! Dialling attempts written many at a time. Every commit waits for the disk (SQLite runs with
//! `synchronous = FULL`), so a dialer writing each ended call in a transaction of its own, and
//! releasing its lease in another, is capped by the disk's flush rate; here a batch of ended
//! calls is written, and their leases released, in one transaction.

use super::builder::QueryBuilder;
use super::contacts::Attempt;
use super::{push_in_list, Result, Store, ID_CHUNK};
use serde_json::Value;
use sqlx::Row;
use std::collections::HashMap;

/// An attempt to write on a contact of a campaign.
#[derive(Debug, Clone)]
pub struct AttemptWrite {
    /// The contact's campaign.
    pub campaign_id: i64,
    /// The contact.
    pub contact_id: i64,
    /// The attempt.
    pub attempt: Attempt,
}

/// Where a contact's flow step goes from: (campaign, task, status, detail).
type FlowKey = (i64, i64, String, String);

/// What a contact was before a batch: its task, status and detail.
struct Before {
    campaign_id: i64,
    task_id: Option<i64>,
    status: String,
    detail: String,
}

impl Store {
    /// Writes each attempt on its contact as [`Store::record_attempt`] does (result, status,
    /// follow-up, attempt count, history entry, task flow) and releases the contacts' leases,
    /// all in one transaction. A contact deleted meanwhile (or not of the campaign named) is
    /// left out; its lease goes all the same.
    pub async fn record_attempts(&self, writes: &[AttemptWrite], actor: &str) -> Result<()> {
        self.unfenced()?;
        if writes.is_empty() {
            return Ok(());
        }
        let _timer = self.timings.start("write_attempts");
        let ids: Vec<i64> = writes.iter().map(|w| w.contact_id).collect();
        let mut tx = self.writer.begin().await?;
        let mut before: HashMap<i64, Before> = HashMap::with_capacity(writes.len());
        for chunk in ids.chunks(ID_CHUNK) {
            let mut q = QueryBuilder::new(
                "SELECT id, campaign_id, task_id, status, detail FROM contacts WHERE id IN ",
            );
            push_in_list(&mut q, chunk);
            for row in q.build().fetch_all(&mut *tx).await? {
                before.insert(
                    row.try_get("id")?,
                    Before {
                        campaign_id: row.try_get("campaign_id")?,
                        task_id: row.try_get("task_id")?,
                        status: row.try_get("status")?,
                        detail: row.try_get("detail")?,
                    },
                );
            }
        }
        let mut history: Vec<(i64, i64, Value)> = Vec::with_capacity(writes.len());
        // One flow step per (campaign, task, status, detail) the batch ends up in.
        let mut flows: Vec<(FlowKey, Vec<i64>)> = Vec::new();
        for w in writes {
            let (id, a) = (w.contact_id, &w.attempt);
            let Some(old) = before
                .get_mut(&id)
                .filter(|b| b.campaign_id == w.campaign_id)
            else {
                tracing::warn!(contact = id, "attempt not written: the contact is gone");
                continue;
            };
            sqlx::query(
                "UPDATE contacts SET attempts = attempts + 1, last_result = $1, status = $2, \
                 detail = $1, follow_up_ms = $3, updated_ms = $4 WHERE id = $5",
            )
            .bind(&a.result)
            .bind(&a.status)
            .bind(a.follow_up_ms)
            .bind(a.at_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            history.push((id, a.at_ms, a.history()));
            let changed = a.status != old.status || a.result != old.detail;
            old.status.clone_from(&a.status);
            old.detail.clone_from(&a.result);
            let Some(task_id) = old.task_id.filter(|_| changed) else {
                continue;
            };
            let key = (w.campaign_id, task_id, a.status.clone(), a.result.clone());
            match flows.iter_mut().find(|(k, _)| *k == key) {
                Some((_, ids)) => ids.push(id),
                None => flows.push((key, vec![id])),
            }
        }
        let timed: Vec<(i64, i64, &Value)> = history.iter().map(|(i, t, c)| (*i, *t, c)).collect();
        Self::record_timed(&mut tx, actor, &timed).await?;
        // The flow runs at the attempts' time, as for one attempt: the batch's latest.
        let now = writes.iter().map(|w| w.attempt.at_ms).max().unwrap_or(0);
        let mut flow_now = false;
        for ((campaign_id, task_id, status, detail), ids) in flows {
            let task = self.task(campaign_id, task_id).await?;
            flow_now |= Self::schedule_flow(&mut tx, &ids, &task, &status, &detail, now).await?;
        }
        for chunk in ids.chunks(ID_CHUNK) {
            let mut q = QueryBuilder::new("DELETE FROM contact_leases WHERE contact_id IN ");
            push_in_list(&mut q, chunk);
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        if flow_now {
            self.apply_due(now).await?;
        }
        Ok(())
    }
}
