//! What calls write on their contacts: the agent's field edits, and how ended calls are written
//! — in tasks of their own, so the driver goes on serving calls — then the lease released.

use super::store_tasks::Reply;
use super::*;
use crate::store::attempts::AttemptWrite;

/// How an ended call is written on its contact.
pub(super) enum Written {
    /// A dialling attempt.
    Attempt(Attempt),
    /// A call the contact made.
    Inbound(crate::store::inbound::InboundCall),
}

impl Driver {
    /// Gives the contact's lease back, in a task of its own (awaited with the writes).
    pub(super) fn release(&mut self, contact: ContactId) {
        let (store, task) = (self.ctx.store.clone(), self.task.id);
        self.saving.writes.retain(|w| !w.is_finished());
        self.saving.writes.push(tokio::spawn(async move {
            if let Err(e) = store.release_lease(contact.0).await {
                tracing::warn!(task, contact = contact.0, error = %e, "lease not released");
            }
        }));
    }

    pub(super) async fn record(
        &mut self,
        call: CallId,
        contact: ContactId,
        outcome: AttemptOutcome,
    ) {
        let live = self.calls.remove(&call);
        let (result, reply) = match self.results.remove(&call) {
            Some((r, reply)) => (Some(r), reply),
            None => (None, None),
        };
        let (number, sip_code, attempts, record_id) = match &live {
            Some(c) => (
                c.number.clone(),
                c.sip_code,
                c.contact.spec.attempts,
                Some(c.record_id.clone()),
            ),
            None => (String::new(), None, 0, None),
        };
        let now = now();
        // The agent's turn for this task is over: another task waiting for it comes first.
        if let Some(user) = live.as_ref().and_then(|c| c.agent) {
            self.ctx.calls.agents.yield_claim(user, self.task.id);
        }
        // An agent reserved for a call that never reached it is free again.
        if let (Some(user), false) = (
            live.as_ref().and_then(|c| c.agent),
            matches!(outcome, AttemptOutcome::Connected { .. }),
        ) {
            let _ = self
                .ctx
                .calls
                .agents
                .act(user, SessionInput::Released(call));
        }
        if let AttemptOutcome::Connected { agent, .. } = &outcome {
            if let Some(user) = self.roster.users.get(agent).copied() {
                let _ = self
                    .ctx
                    .calls
                    .agents
                    .act(user, SessionInput::WrapUpEnded(call));
            }
        }
        if let Some(c) = live.as_ref().filter(|c| c.inbound.is_some()) {
            return self
                .record_inbound(c, contact, &outcome, result.as_ref(), reply, now)
                .await;
        }
        let d = disposition(
            &outcome,
            result.as_ref(),
            &self.task.settings,
            attempts,
            now,
        );
        if matches!(outcome, AttemptOutcome::Abandoned) {
            self.figures.abandoned += 1;
        }
        let attempt = Attempt {
            number,
            result: d.result,
            sip_code,
            call_id: record_id,
            status: d.status,
            follow_up_ms: d.follow_up_ms,
            at_ms: now.0 as i64,
        };
        self.ctx
            .metrics
            .calls
            .with_label_values(&[&self.task.campaign_id.to_string(), &d.label])
            .inc();
        tracing::info!(task = self.task.id, %call, contact = contact.0, result = %attempt.result, "attempt recorded");
        self.write(contact, Written::Attempt(attempt), result.as_ref(), reply);
    }

    /// Writes an ended call on its contact in a task of its own (the driver goes on serving
    /// calls), then sets a particular callback's owner and releases the contact's lease.
    /// [`Driver::flush`] waits for the writes under way.
    pub(super) fn write(
        &mut self,
        contact: ContactId,
        what: Written,
        result: Option<&AgentResult>,
        reply: Option<Reply>,
    ) {
        let store = self.ctx.store.clone();
        let (campaign, task) = (self.task.campaign_id, self.task.id);
        let owner = result.and_then(|r| Some((r.owner.clone()?, r.actor.clone())));
        self.saving.writes.retain(|w| !w.is_finished());
        let what = match (what, &owner) {
            // Most ended calls: batched with the others' by the attempt log.
            (Written::Attempt(attempt), None) => {
                let written = self.ctx.attempts.write(AttemptWrite {
                    campaign_id: campaign,
                    contact_id: contact.0,
                    attempt,
                });
                self.saving.writes.push(tokio::spawn(async move {
                    let _ = written.await;
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                }));
                return;
            }
            (what, _) => what,
        };
        self.saving.writes.push(tokio::spawn(async move {
            let written = match &what {
                Written::Attempt(a) => store
                    .record_attempt(campaign, contact.0, a, "dialer")
                    .await
                    .map(|_| ()),
                Written::Inbound(i) => store
                    .record_inbound(campaign, contact.0, i, "dialer")
                    .await
                    .map(|_| ()),
            };
            if let Err(e) = written {
                tracing::warn!(task, contact = contact.0, error = %e, "call not written on its contact");
            }
            if let Some((owner, actor)) = owner {
                let owned = async {
                    let mut c = store.contact(campaign, contact.0).await?;
                    c.spec.owner = Some(owner);
                    store.update_contact(campaign, contact.0, &c.spec, &actor).await
                };
                if let Err(e) = owned.await {
                    tracing::warn!(task, contact = contact.0, error = %e, "callback's owner not set");
                }
            }
            if let Err(e) = store.release_lease(contact.0).await {
                tracing::warn!(task, contact = contact.0, error = %e, "lease not released");
            }
            // The agent whose result this was hears back now it is written.
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
        }));
    }

    /// Waits for the contact writes under way.
    pub(super) async fn flush(&mut self) {
        for w in self.saving.writes.drain(..) {
            let _ = w.await;
        }
    }

    /// Writes how an inbound call ended on its contact (no dialling attempt), counts it, and
    /// releases the contact.
    pub(super) async fn record_inbound(
        &mut self,
        c: &LiveCall,
        contact: ContactId,
        outcome: &AttemptOutcome,
        result: Option<&AgentResult>,
        reply: Option<Reply>,
        now: Time,
    ) {
        use crate::store::inbound::{InboundCall, MISSED_CALL, MISSED_CALLBACK};
        let Some(info) = c.inbound.as_ref() else {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        };
        let waited = info.waited.unwrap_or_else(|| info.since.elapsed());
        let due = Some(now.0 as i64);
        let (status, detail, follow_up_ms, label) = match outcome {
            AttemptOutcome::Connected { .. } => {
                let d = disposition(outcome, result, &self.task.settings, 0, now);
                (d.status, d.result, d.follow_up_ms, info.label)
            }
            AttemptOutcome::MissedCallback => {
                ("open".into(), MISSED_CALLBACK.to_string(), due, "missed")
            }
            // A caller who left before an agent (or whom no agent could take).
            _ => ("open".into(), MISSED_CALL.to_string(), due, "missed"),
        };
        if info.waited.is_none() {
            self.ctx.metrics.inbound_wait.observe(waited.as_secs_f64());
        }
        let agent = c
            .agent
            .filter(|_| matches!(outcome, AttemptOutcome::Connected { .. }))
            .and_then(|u| self.ctx.calls.agents.view(u))
            .map(|v| v.name);
        let call = InboundCall {
            number: c.number.clone(),
            line_id: info.line_id,
            result: detail,
            status: Some(status),
            follow_up_ms,
            call_id: Some(c.record_id.clone()),
            waited_ms: waited.as_millis() as i64,
            agent,
            at_ms: now.0 as i64,
        };
        let result_text = call.result.clone();
        self.ctx
            .metrics
            .inbound_calls
            .with_label_values(&[&info.line_id.to_string(), label])
            .inc();
        tracing::info!(task = self.task.id, contact = contact.0, result = %result_text, label, "inbound call recorded");
        self.write(contact, Written::Inbound(call), result, reply);
    }
}
