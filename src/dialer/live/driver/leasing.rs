//! Leasing contacts in store tasks of the driver's own: the contacts the core asked for
//! ([`Output::Lease`]) and the particular callbacks due for the task's agents. The store may
//! take seconds to answer when its writer is busy (every ended call writes an attempt); the
//! driver goes on reading answers and bridging them meanwhile, and takes the contacts when
//! they come ([`Driver::on_leased`]).

use super::*;

/// Contacts a store task leased for the driver.
pub enum Leased {
    /// For the core's last [`Output::Lease`].
    ForCore(Vec<Contact>),
    /// Particular callbacks due, for their owners.
    ForOwners(Vec<Contact>),
}

/// The driver's store tasks that lease contacts, and where their contacts come back.
pub(super) struct Leasing {
    tx: mpsc::UnboundedSender<Leased>,
    /// Taken by [`Driver::run`], which selects on it.
    pub(super) rx: Option<mpsc::UnboundedReceiver<Leased>>,
    /// Store tasks under way.
    pub(super) out: usize,
}

impl Leasing {
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
    /// Leases up to `n` callable contacts for the core in a task of its own.
    pub(super) fn lease_for_core(&mut self, n: u32) {
        let store = self.ctx.store.clone();
        let (campaign, task, owner) = (self.campaign_id, self.task_id, self.ctx.owner.clone());
        let tx = self.leasing.tx.clone();
        self.leasing.out += 1;
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
            let _ = tx.send(Leased::ForCore(contacts));
        });
    }

    /// Leases, in a task of its own, the particular callbacks due for the agents named.
    pub(super) fn lease_for_owners(&mut self, owners: Vec<String>, batch: u32) {
        let store = self.ctx.store.clone();
        let (campaign, task, lessee) = (self.campaign_id, self.task_id, self.ctx.owner.clone());
        let tx = self.leasing.tx.clone();
        self.leasing.out += 1;
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
            let _ = tx.send(Leased::ForOwners(contacts));
        });
    }

    /// Takes contacts a store task leased: to the core, or back to the store when the driver
    /// no longer dials.
    pub(super) async fn on_leased(&mut self, leased: Leased) {
        self.leasing.out = self.leasing.out.saturating_sub(1);
        match leased {
            Leased::ForCore(contacts) if self.draining => {
                for c in contacts {
                    self.release(ContactId(c.id));
                }
                self.feed(Input::Leased(Vec::new()));
            }
            Leased::ForCore(contacts) => self.give_core(contacts),
            Leased::ForOwners(contacts) if self.draining => {
                for c in contacts {
                    self.release(ContactId(c.id));
                }
            }
            Leased::ForOwners(contacts) => self.hold_for_owners(contacts).await,
        }
    }

    /// Hands the core the contacts leased for its last lease (maybe none).
    pub(super) fn give_core(&mut self, contacts: Vec<Contact>) {
        let ringing = self.calls.values().any(|c| c.answered.is_none());
        if contacts.is_empty() && !ringing {
            // Nothing to call here: agents shared with other tasks may serve those.
            for (user, id) in &self.ids {
                let ready = self
                    .core
                    .agents()
                    .get(id.0 as usize)
                    .is_some_and(|a| a.state().kind() == AgentStateKind::Ready);
                if ready {
                    self.ctx.calls.agents.yield_claim(*user, self.task_id);
                }
            }
        }
        let ids = contacts.iter().map(|c| ContactId(c.id)).collect();
        for c in contacts {
            self.leased.insert(ContactId(c.id), c);
        }
        self.feed(Input::Leased(ids));
    }

    /// At a stop: waits for the store tasks under way and gives their contacts back.
    pub(super) async fn settle_leasing(&mut self, rx: &mut mpsc::UnboundedReceiver<Leased>) {
        while self.leasing.out > 0 {
            let Some(leased) = rx.recv().await else {
                break;
            };
            self.leasing.out -= 1;
            let (Leased::ForCore(contacts) | Leased::ForOwners(contacts)) = leased;
            for c in contacts {
                self.release(ContactId(c.id));
            }
        }
    }
}
