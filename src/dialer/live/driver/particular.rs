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
    /// Asks the store for the particular callbacks due for the task's logged-in agents, at
    /// most every [`PARTICULAR_EVERY`]; they come back to [`Driver::hold_for_owners`].
    pub(super) fn take_particular(&mut self) {
        if self.draining
            || !self.task.dials_now()
            || self
                .particular_checked
                .is_some_and(|t| t.elapsed() < PARTICULAR_EVERY)
        {
            return;
        }
        self.particular_checked = Some(Instant::now());
        let agents = &self.ctx.calls.agents;
        let names: Vec<String> = self
            .roster
            .ids
            .keys()
            .filter_map(|user| {
                let v = agents.view(*user)?;
                (v.state != AgentStateKind::LoggedOut).then_some(v.name)
            })
            .collect();
        if !names.is_empty() {
            self.lease_for_owners(names, PARTICULAR_BATCH);
        }
    }

    /// Hands each particular callback leased to the core, kept for its owner until the
    /// task's grace after its follow-up ends.
    pub(super) fn hold_for_owners(&mut self, due: Vec<Contact>) {
        let at = now_ms();
        let grace = i64::from(self.task.settings.particular_grace_seconds) * 1000;
        for c in due {
            let id = ContactId(c.id);
            let due_ms = c
                .spec
                .follow_up_at
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or(at, |t| t.timestamp_millis());
            let left = Duration::from_millis((due_ms + grace - at).max(0) as u64);
            let Some(owner) = self.agent_named(c.spec.owner.as_deref()) else {
                // Logged out meanwhile: the contact goes to anyone after the grace.
                self.release(id);
                continue;
            };
            self.hopper.give(c);
            let now = now();
            match self.core.hold_for_owner(id, owner, now + left, now) {
                Ok(()) => {
                    tracing::info!(
                        task = self.task.id,
                        contact = id.0,
                        "particular callback kept for its owner"
                    )
                }
                Err(e) => {
                    tracing::warn!(task = self.task.id, contact = id.0, error = %e, "particular callback not held");
                    self.hopper.unlease(id);
                    self.release(id);
                }
            }
        }
    }
}
