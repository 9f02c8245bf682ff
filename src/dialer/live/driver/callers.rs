//! Callers who call a task's line back: queued in the core ahead of outbound calls, kept for
//! their contact's owner for a grace, and served by an inbound call task.

use super::*;

/// What the driver keeps of an inbound call.
pub(super) struct InboundInfo {
    pub(super) line_id: i64,
    /// `dialerd_inbound_calls_total`'s result when an agent takes the call: `connected`, or
    /// `unknown` / `closed_contact` for callers the task did not have open.
    pub(super) label: &'static str,
    /// When the caller started waiting.
    pub(super) since: Instant,
    /// How long they waited, once an agent took them.
    pub(super) waited: Option<Duration>,
    /// What they hear when they waited too long.
    pub(super) call_back_later: Vec<Clip>,
}

impl Driver {
    /// The core's id of the agent of this task named `name`, if logged in here.
    pub(super) fn agent_named(&self, name: Option<&str>) -> Option<AgentId> {
        let name = name?;
        let agents = &self.ctx.calls.agents;
        self.roster
            .ids
            .iter()
            .find(|(user, _)| agents.view(**user).is_some_and(|v| v.name == name))
            .map(|(_, id)| *id)
    }

    /// Queues a caller who called the task's line back: the contact is held for the call, the
    /// core puts it ahead of outbound calls (kept for the contact's owner for the task's
    /// grace), and the call's task waits with the caller.
    pub(super) async fn inbound(&mut self, offer: InboundOffer) {
        let InboundOffer {
            call: incoming,
            contact,
            line,
            number,
            label,
        } = offer;
        let at = now_ms();
        match self
            .ctx
            .store
            .lease_contact(&contact, self.task.id, &self.ctx.owner, at)
            .await
        {
            Ok(true) => {}
            // Held ahead for a call not placed yet: its lease now holds the caller's call.
            Ok(false) if self.hopper.withdraw(ContactId(contact.id)) => {}
            // An outbound call to the contact is under way: the caller is taken all the same.
            Ok(false) => tracing::info!(
                task = self.task.id,
                contact = contact.id,
                "callback from a contact already held by a call"
            ),
            Err(e) => {
                tracing::warn!(task = self.task.id, error = %e, "callback's contact not leased")
            }
        }
        let owner = self.agent_named(contact.spec.owner.as_deref());
        let grace = Duration::from_secs(self.task.settings.particular_grace_seconds.into());
        let max_wait = Duration::from_secs(line.spec.max_wait_seconds.into());
        let id = match self.core.inbound(
            ContactId(contact.id),
            max_wait,
            owner.map(|a| (a, grace)),
            now(),
        ) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(task = self.task.id, error = %e, "callback refused by the campaign core");
                self.ctx.calls.sip.reject(incoming.leg.id, 503).await;
                self.release(ContactId(contact.id));
                return;
            }
        };
        let prompts = self.ctx.calls.media.prompts();
        let clip = |name: &str| {
            prompts
                .get(&line.spec.language, name)
                .map(Clip::Audio)
                .into_iter()
                .collect::<Vec<_>>()
        };
        let mut call_back_later = clip("we_will_call_you_back");
        call_back_later.push(Clip::silence_ms(300));
        call_back_later.extend(clip("goodbye"));
        let sounds = Sounds {
            waiting: line.spec.waiting_audio,
            hold_music: clip("hold_music"),
            callback_tone: clip("callback_tone"),
        };
        let rec = CallRecord {
            id: record::new_call_id(),
            route: "inbound".into(),
            a_number: number.clone(),
            b_number: line.spec.number.clone(),
            started_at: at,
            ended_at: at,
            line_id: Some(line.id),
            contact_id: Some(contact.id),
            ..CallRecord::default()
        };
        let recording = self
            .task
            .recording
            .then(|| self.ctx.calls.log.recording_path(&rec.id, at));
        let (tx, rx) = mpsc::unbounded_channel();
        tracing::info!(task = self.task.id, call = %id, contact = contact.id, %number, line = line.id, "callback queued");
        self.calls.insert(
            id,
            LiveCall {
                record_id: rec.id.clone(),
                contact,
                number,
                cmd: Some(tx),
                sip_code: None,
                answered: None,
                agent_was_ready: false,
                agent: None,
                bridged: false,
                ended: false,
                heard: true,
                inbound: Some(InboundInfo {
                    line_id: line.id,
                    label,
                    since: Instant::now(),
                    waited: None,
                    call_back_later,
                }),
            },
        );
        tokio::spawn(inbound_call::run(
            self.ctx.calls.clone(),
            id,
            rec,
            recording,
            incoming,
            sounds,
            rx,
            self.events.clone(),
        ));
    }
}
