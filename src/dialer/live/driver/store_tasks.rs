//! The driver's store work that must come back to it, in tasks of their own: leasing the
//! contacts the core asked for ([`Output::Lease`]) and the particular callbacks due for the
//! task's agents, and writing an agent's field edits before their result is taken. The store
//! may take seconds to answer when its writer is busy (every ended call writes an attempt);
//! the driver goes on reading answers and bridging them meanwhile, and takes what comes back
//! in [`Driver::on_store_done`].

use super::*;

/// The answer to an agent's result: whether it was taken, once its call is written.
pub type Reply = oneshot::Sender<Result<(), LiveError>>;

/// What a store task of the driver's brings back.
pub enum StoreDone {
    /// Contacts leased for the hopper (and the core waiting on it): those leased, and how
    /// many were asked for.
    ForCore(Vec<Contact>, u32),
    /// Particular callbacks due, leased for their owners.
    ForOwners(Vec<Contact>),
    /// An agent's field edits were checked and written (or refused): their result may be
    /// taken.
    Fields(Box<FieldsWritten>),
}

/// An agent's result whose field edits a store task wrote (or refused).
pub struct FieldsWritten {
    /// The agent (user id).
    agent: i64,
    /// The call wrapped up.
    call: CallId,
    /// The result.
    result: AgentResult,
    /// Whether the fields were written.
    written: Result<(), LiveError>,
    /// The agent's answer.
    reply: Reply,
}

/// The driver's store tasks under way, and where they come back.
pub(super) struct StoreTasks {
    tx: mpsc::UnboundedSender<StoreDone>,
    /// Taken by [`Driver::run`], which selects on it.
    pub(super) rx: Option<mpsc::UnboundedReceiver<StoreDone>>,
    /// Store tasks under way.
    pub(super) out: usize,
}

impl StoreTasks {
    pub(super) fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Some(rx),
            out: 0,
        }
    }
}

impl Driver {
    /// Leases what the hopper wants, if anything, in a task of its own.
    pub(super) fn refill(&mut self) {
        if let Some(n) = self.hopper.refill(Instant::now()) {
            self.lease_for_core(n);
        }
    }

    /// Leases up to `n` callable contacts for the hopper in a task of its own.
    fn lease_for_core(&mut self, n: u32) {
        let store = self.ctx.store.clone();
        let (campaign, task, owner) = (self.task.campaign_id, self.task.id, self.ctx.owner.clone());
        let tx = self.store_tasks.tx.clone();
        self.store_tasks.out += 1;
        tokio::spawn(async move {
            let contacts = match store
                .lease_callable(campaign, task, n, now_ms(), &owner)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(task, error = %e, "cannot lease contacts");
                    Vec::new()
                }
            };
            let _ = tx.send(StoreDone::ForCore(contacts, n));
        });
    }

    /// Leases, in a task of its own, the particular callbacks due for the agents named.
    pub(super) fn lease_for_owners(&mut self, owners: Vec<String>, batch: u32) {
        let store = self.ctx.store.clone();
        let (campaign, task, lessee) =
            (self.task.campaign_id, self.task.id, self.ctx.owner.clone());
        let tx = self.store_tasks.tx.clone();
        self.store_tasks.out += 1;
        tokio::spawn(async move {
            let contacts = match store
                .lease_owned_due(campaign, task, &owners, now_ms(), batch, &lessee)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(task, error = %e, "cannot lease particular callbacks");
                    Vec::new()
                }
            };
            let _ = tx.send(StoreDone::ForOwners(contacts));
        });
    }

    /// Writes an agent's field edits in a task of its own; the result is taken when they are
    /// written ([`StoreDone::Fields`]).
    pub(super) fn write_fields_then_take(
        &mut self,
        agent: i64,
        call: CallId,
        contact: i64,
        result: AgentResult,
        reply: Reply,
    ) {
        let store = self.ctx.store.clone();
        let campaign = self.task.campaign_id;
        let tx = self.store_tasks.tx.clone();
        self.store_tasks.out += 1;
        tokio::spawn(async move {
            let written = write_fields(&store, campaign, contact, &result).await;
            let _ = tx.send(StoreDone::Fields(Box::new(FieldsWritten {
                agent,
                call,
                result,
                written,
                reply,
            })));
        });
    }

    /// Takes what a store task brought back: contacts to the core (or back to the store
    /// when the driver no longer dials), an agent's result once its fields are written.
    pub(super) async fn on_store_done(&mut self, done: StoreDone) {
        self.store_tasks.out = self.store_tasks.out.saturating_sub(1);
        match done {
            StoreDone::ForCore(contacts, asked) if self.draining => {
                for c in contacts {
                    self.release(ContactId(c.id));
                }
                if self
                    .hopper
                    .filled(Vec::new(), asked, Instant::now())
                    .is_some()
                {
                    self.feed(Input::Leased(Vec::new()));
                }
            }
            StoreDone::ForCore(contacts, asked) => {
                if let Some(ids) = self.hopper.filled(contacts, asked, Instant::now()) {
                    self.give_core(ids);
                }
                self.refill();
            }
            StoreDone::ForOwners(contacts) if self.draining => {
                for c in contacts {
                    self.release(ContactId(c.id));
                }
            }
            StoreDone::ForOwners(contacts) => self.hold_for_owners(contacts),
            StoreDone::Fields(f) => match f.written {
                Err(e) => {
                    let _ = f.reply.send(Err(e));
                }
                Ok(()) => self.take_result(f.agent, f.call, f.result, f.reply),
            },
        }
    }

    /// Answers the core's last lease with these contacts of the hopper's (maybe none).
    pub(super) fn give_core(&mut self, ids: Vec<ContactId>) {
        let ringing = self.calls.values().any(|c| c.answered.is_none());
        if ids.is_empty() && !ringing {
            // Nothing to call here: agents shared with other tasks may serve those.
            for (user, id) in &self.roster.ids {
                let ready = self
                    .core
                    .agents()
                    .get(id.0 as usize)
                    .is_some_and(|a| a.state().kind() == AgentStateKind::Ready);
                if ready {
                    self.ctx.calls.agents.yield_claim(*user, self.task.id);
                }
            }
        }
        self.feed(Input::Leased(ids));
    }

    /// At a stop: waits for the store tasks under way, gives their contacts back and
    /// answers results still waiting.
    pub(super) async fn settle_store_tasks(&mut self, rx: &mut mpsc::UnboundedReceiver<StoreDone>) {
        while self.store_tasks.out > 0 {
            let Some(done) = rx.recv().await else {
                break;
            };
            self.store_tasks.out -= 1;
            match done {
                StoreDone::ForCore(contacts, _) | StoreDone::ForOwners(contacts) => {
                    for c in contacts {
                        self.release(ContactId(c.id));
                    }
                }
                StoreDone::Fields(f) => {
                    let _ = f.reply.send(Err(LiveError::NotInWrapUp));
                }
            }
        }
    }
}

/// Checks the agent's fields against the campaign's form and writes them to the contact.
async fn write_fields(
    store: &Store,
    campaign: i64,
    contact: i64,
    result: &AgentResult,
) -> Result<(), LiveError> {
    if result.fields.is_empty() {
        return Ok(());
    }
    let mut c = store.contact(campaign, contact).await?;
    let mut after = c.spec.fields.clone();
    for (k, v) in &result.fields {
        after.insert(k.clone(), v.clone());
    }
    store.check_result(campaign, &c.spec.fields, &after).await?;
    c.spec.fields = after;
    store
        .update_contact(campaign, contact, &c.spec, &result.actor)
        .await?;
    Ok(())
}
