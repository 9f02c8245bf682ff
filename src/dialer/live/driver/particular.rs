//! Particular callbacks on outbound calls: a contact an agent of the task owns whose
//! follow-up fell due is leased for that agent and kept by the core until the owner is ready
//! (then placed with the owner reserved) or the task's grace ends (then any agent may get it
//! through the task's general selection).

use super::*;

/// How often the store is asked for particular callbacks due.
pub const PARTICULAR_EVERY: Duration = Duration::from_secs(2);

/// Most particular callbacks taken in one look.
const PARTICULAR_BATCH: u32 = 20;

impl Driver {
    /// Leases the particular callbacks due for the task's logged-in agents and hands each to
    /// the core, kept for its owner until the grace ends; at most every [`PARTICULAR_EVERY`].
    pub(super) async fn take_particular(&mut self) {
        if self.draining
            || self
                .particular_checked
                .is_some_and(|t| t.elapsed() < PARTICULAR_EVERY)
        {
            return;
        }
        self.particular_checked = Some(Instant::now());
        let agents = &self.ctx.calls.agents;
        let owners: Vec<(String, AgentId)> = self
            .ids
            .iter()
            .filter_map(|(user, id)| {
                let v = agents.view(*user)?;
                (v.state != AgentStateKind::LoggedOut).then_some((v.name, *id))
            })
            .collect();
        if owners.is_empty() {
            return;
        }
        let names: Vec<String> = owners.iter().map(|(n, _)| n.clone()).collect();
        let at = now_ms();
        let due = match self
            .ctx
            .store
            .lease_owned_due(
                self.campaign_id,
                self.task_id,
                &names,
                at,
                PARTICULAR_BATCH,
                &self.ctx.owner,
            )
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(task = self.task_id, error = %e, "cannot lease particular callbacks");
                return;
            }
        };
        let grace = i64::from(self.settings.particular_grace_seconds) * 1000;
        for c in due {
            let id = ContactId(c.id);
            let owner = owners
                .iter()
                .find(|(n, _)| Some(n.as_str()) == c.spec.owner.as_deref())
                .map(|(_, a)| *a);
            let due_ms = c
                .spec
                .follow_up_at
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or(at, |t| t.timestamp_millis());
            let left = Duration::from_millis((due_ms + grace - at).max(0) as u64);
            let Some(owner) = owner else {
                // Logged out meanwhile: the contact goes to anyone after the grace.
                self.release(id).await;
                continue;
            };
            self.leased.insert(id, c);
            let now = now();
            match self.core.hold_for_owner(id, owner, now + left, now) {
                Ok(()) => {
                    tracing::info!(
                        task = self.task_id,
                        contact = id.0,
                        "particular callback kept for its owner"
                    )
                }
                Err(e) => {
                    tracing::warn!(task = self.task_id, contact = id.0, error = %e, "particular callback not held");
                    self.leased.remove(&id);
                    self.release(id).await;
                }
            }
        }
    }
}
