//! Which call tasks this node dials, when several nodes share one store: a task's driver runs
//! only while this node holds the task's lease ([`crate::store::task_leases`]). The lease is
//! taken when the supervisor wants the task, renewed every [`RENEW_EVERY`] while its driver
//! runs (draining included), and released once the driver has ended. A node that cannot
//! renew gives the task up [`MARGIN`] before its lease expires, so that its calls have ended
//! before another node may take the task over.
//!
//! The timing lives here: [`LEASE`], [`RENEW_EVERY`], [`MARGIN`]. A node that dies loses its
//! tasks after at most [`LEASE`]; the others look every second, so a task moves within
//! `LEASE` plus a second or two.

use crate::agents::session::TaskId;
use crate::store::task_leases::Claim;
use crate::store::Store;
use std::collections::HashMap;
use std::time::Duration;

/// How long a task lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(15);

/// How often a held lease is renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// A lease not renewed by this long before its expiry is given up (its driver stopped): the
/// nodes' clocks may differ by less.
pub const MARGIN: Duration = Duration::from_secs(4);

const fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// Whether this node may dial a task now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// This node holds the task's lease. `fresh`: it did not before this call (a driver may
    /// start, after the leases other nodes left on the task are recovered); `from`: the node
    /// whose expired lease it took over.
    Held {
        /// Newly held.
        fresh: bool,
        /// The previous holder, another node.
        from: Option<String>,
    },
    /// Another node holds it.
    Elsewhere(String),
    /// This node held it but could not renew it in time (the store did not answer).
    Lapsed,
}

/// A lease this node holds, as last written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    renewed_ms: i64,
    expires_ms: i64,
}

impl Held {
    fn renew_due(&self, now_ms: i64) -> bool {
        now_ms - self.renewed_ms >= ms(RENEW_EVERY)
    }

    fn lapsed(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_ms - ms(MARGIN)
    }
}

/// This node's task leases.
pub struct Ownership {
    store: Store,
    node: String,
    held: HashMap<TaskId, Held>,
    /// The other node last seen holding a task this node wanted (logged once per change).
    elsewhere: HashMap<TaskId, String>,
}

impl Ownership {
    /// No leases held yet, for `node`.
    pub fn new(store: Store, node: String) -> Self {
        Self {
            store,
            node,
            held: HashMap::new(),
            elsewhere: HashMap::new(),
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether this node holds `task`'s lease (as last written).
    pub fn holds(&self, task: TaskId) -> bool {
        self.held.contains_key(&task)
    }

    /// The tasks whose lease this node holds.
    pub fn held(&self) -> Vec<TaskId> {
        self.held.keys().copied().collect()
    }

    /// Takes `task`'s lease, or renews it when due; says whether this node may dial it.
    pub async fn hold(&mut self, task: TaskId, now_ms: i64) -> Hold {
        let was = self.held.get(&task).copied();
        if was.is_some_and(|h| !h.renew_due(now_ms)) {
            return Hold::Held {
                fresh: false,
                from: None,
            };
        }
        match self
            .store
            .claim_task(task, &self.node, now_ms, ms(LEASE))
            .await
        {
            Ok(Claim::Held { from }) => {
                self.elsewhere.remove(&task);
                self.held.insert(
                    task,
                    Held {
                        renewed_ms: now_ms,
                        expires_ms: now_ms + ms(LEASE),
                    },
                );
                if let Some(from) = &from {
                    tracing::info!(task, from = %from, node = %self.node, "call task taken over");
                }
                Hold::Held {
                    fresh: was.is_none(),
                    from,
                }
            }
            Ok(Claim::Elsewhere(node)) => {
                if was.is_some() {
                    tracing::warn!(task, holder = %node, "call task lease lost to another node");
                } else if self.elsewhere.get(&task) != Some(&node) {
                    // Agents logged in here for it wait: say where the task is dialled.
                    tracing::info!(task, holder = %node, "call task dialled by another node; its agents here wait");
                }
                self.elsewhere.insert(task, node.clone());
                self.held.remove(&task);
                Hold::Elsewhere(node)
            }
            Err(e) => {
                tracing::warn!(task, error = %e, "call task lease not renewed");
                match was {
                    Some(h) if !h.lapsed(now_ms) => Hold::Held {
                        fresh: false,
                        from: None,
                    },
                    Some(_) => {
                        self.held.remove(&task);
                        Hold::Lapsed
                    }
                    None => Hold::Lapsed,
                }
            }
        }
    }

    /// Forgets the tasks no longer wanted nor held (for the log of where tasks are dialled).
    pub fn forget_others(&mut self, keep: &[TaskId]) {
        self.elsewhere.retain(|t, _| keep.contains(t));
    }

    /// Gives up `task`'s lease (its driver has ended).
    pub async fn release(&mut self, task: TaskId) {
        if self.held.remove(&task).is_some() {
            if let Err(e) = self.store.release_task(task, &self.node).await {
                // It expires by itself.
                tracing::warn!(task, error = %e, "call task lease not released");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_renewed_every_few_seconds_and_given_up_before_it_expires() {
        let h = Held {
            renewed_ms: 0,
            expires_ms: ms(LEASE),
        };
        assert!(!h.renew_due(ms(RENEW_EVERY) - 1));
        assert!(h.renew_due(ms(RENEW_EVERY)));
        // Two renewals may fail before the lease is given up, and it is given up before
        // another node may take it.
        assert!(!h.lapsed(2 * ms(RENEW_EVERY)));
        assert!(h.lapsed(ms(LEASE) - ms(MARGIN)));
        const { assert!(2 * RENEW_EVERY.as_secs() + MARGIN.as_secs() < LEASE.as_secs()) };
    }
}
