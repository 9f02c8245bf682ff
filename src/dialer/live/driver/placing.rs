//! Placing calls: the contact shown to its agent, the INVITE sent by the call's own task, and
//! the driver's commands to a call.

use super::*;

impl Driver {
    /// Shows the agent the contact: `preview.offer` before a preview call is placed
    /// (`direction` `None`), `call.offered` when the answered customer is being put through.
    pub(super) fn offered(
        &self,
        user: i64,
        call: CallId,
        contact: ContactId,
        direction: Option<&str>,
    ) {
        let c = self
            .calls
            .get(&call)
            .map(|c| &c.contact)
            .or_else(|| self.hopper.given(contact));
        let Some(c) = c else { return };
        let (fields, phones) = (c.spec.fields.clone(), c.spec.phones.clone());
        let kind = match direction {
            None => EventKind::PreviewOffer {
                call: call.0,
                task: self.task.id,
                contact: c.id,
                fields,
                phones,
            },
            Some(direction) => EventKind::CallOffered {
                call: call.0,
                task: self.task.id,
                contact: c.id,
                fields,
                phones,
                direction: direction.into(),
            },
        };
        self.ctx.calls.agents.publish(user, kind);
    }

    pub(super) fn command(&self, call: CallId, cmd: CallCmd) {
        if let Some(tx) = self.calls.get(&call).and_then(|c| c.cmd.as_ref()) {
            let _ = tx.send(cmd);
        }
    }

    pub(super) async fn place(&mut self, call: CallId, contact: ContactId, agent: Option<AgentId>) {
        if !self.task.dials_now() {
            // Its lease ran out while this node stalled: another node may be dialling the
            // contact now. The core hears of a call not placed.
            tracing::warn!(task = self.task.id, %call, contact = contact.0, "call task lease past its term; call not placed");
            return self.feed(Input::Failed(call, CallEnd::Unavailable));
        }
        let Some(c) = self.hopper.place(contact) else {
            tracing::warn!(task = self.task.id, %call, "placing a contact not leased");
            return self.feed(Input::Failed(call, CallEnd::Unavailable));
        };
        let number = c.spec.phones.first().cloned().unwrap_or_default();
        self.figures.placed += 1;
        let started_at = now_ms();
        let rec = CallRecord {
            id: record::new_call_id(),
            route: "campaign".into(),
            contact_id: Some(contact.0),
            a_number: number.clone(),
            b_number: String::new(),
            started_at,
            answered_at: None,
            ended_at: started_at,
            end_reason: String::new(),
            recording_path: None,
            a_quality: None,
            b_quality: None,
            ..CallRecord::default()
        };
        let recording = self
            .task
            .recording
            .then(|| self.ctx.calls.log.recording_path(&rec.id, started_at));
        let mut live = LiveCall {
            record_id: rec.id.clone(),
            contact: c,
            number: number.clone(),
            cmd: None,
            sip_code: None,
            answered: None,
            agent_was_ready: false,
            agent: agent.and_then(|a| self.roster.users.get(&a).copied()),
            bridged: false,
            ended: false,
            heard: false,
            inbound: None,
        };
        if number.is_empty() {
            self.calls.insert(call, live);
            return self.feed(Input::Failed(call, CallEnd::Rejected(404)));
        }
        // A particular callback placed for its owner: the owner's session is held for it
        // (a preview agent's was at the offer). If that fails the answer finds another agent.
        if let Some(user) = live.agent {
            let agents = &self.ctx.calls.agents;
            let reserved = agents
                .call_of(user)
                .is_some_and(|(_, c)| c.call == call && c.task == self.task.id);
            let reserve = SessionInput::Reserved {
                task: self.task.id,
                call,
            };
            if !reserved {
                if let Err(e) = agents.act(user, reserve) {
                    tracing::info!(task = self.task.id, %call, agent = user, error = %e, "owner not reserved for the callback");
                }
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        live.cmd = Some(tx);
        // A particular callback: its owner takes the answer when ready.
        if let Some(owner) = self.agent_named(live.contact.spec.owner.as_deref()) {
            self.core.prefer(call, owner);
        }
        self.calls.insert(call, live);
        tracing::info!(task = self.task.id, %call, contact = contact.0, %number, "placing campaign call");
        // The call's own task gets the campaign, line and task settings for its INVITE, so
        // the driver goes on serving answers meanwhile; a failure comes back as its end.
        let task = self.task.id;
        let (ctx, events, plan) = (
            self.ctx.calls.clone(),
            self.events.clone(),
            self.task.dial_plan.clone(),
        );
        tokio::spawn(async move {
            match plan.dial(&number).await {
                Ok(dial) => call::run(ctx, call, rec, recording, dial, rx, events).await,
                Err(e) => {
                    tracing::warn!(task, %call, error = %e, "campaign call not placed");
                    let _ = events.send((call, CallEvent::Failed(CallEnd::Unavailable, None)));
                }
            }
        });
    }
}
