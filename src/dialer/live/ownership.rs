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
//!
//! A node that stalls (stopped, swapped out) past its lease may wake with its driver's timers
//! due before the next renewal tells it the task is gone. Each driver therefore reads the
//! lease's [`Term`]: the time the last renewal holds good until ([`MARGIN`] before its expiry);
//! past it the driver leases and places nothing until a renewal extends it.

use crate::agents::session::TaskId;
use crate::store::task_leases::Claim;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a task lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(15);

/// How often a held lease is renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// A lease not renewed by this long before its expiry is given up (its driver stopped): the
/// nodes' clocks may differ by less (the margin a node name's renewal is held to as well).
pub const MARGIN: Duration = crate::node::MARGIN;

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

/// Until when a task's lease, as last renewed by this node, lets its driver dial (epoch ms):
/// shared between [`Ownership`], which extends it, and the task's driver, which reads it.
#[derive(Debug, Clone, Default)]
pub struct Term(Arc<AtomicI64>);

impl Term {
    /// Whether the lease still lets this node dial at `now_ms` (false before the first claim
    /// and once the lease is lost).
    pub fn dials_at(&self, now_ms: i64) -> bool {
        now_ms < self.0.load(Ordering::Acquire)
    }

    fn set(&self, until_ms: i64) {
        self.0.store(until_ms, Ordering::Release);
    }
}

/// This node's task leases.
pub struct Ownership {
    store: Store,
    node: String,
    held: HashMap<TaskId, Held>,
    /// Each task's term, as its driver reads it (kept while the task is wanted or held).
    terms: HashMap<TaskId, Term>,
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
            terms: HashMap::new(),
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

    /// The term of `task`'s lease, for its driver.
    pub fn term(&mut self, task: TaskId) -> Term {
        self.terms.entry(task).or_default().clone()
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
                let held = Held {
                    renewed_ms: now_ms,
                    expires_ms: now_ms + ms(LEASE),
                };
                self.held.insert(task, held);
                self.term(task).set(held.expires_ms - ms(MARGIN));
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
                self.term(task).set(0);
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
                        self.term(task).set(0);
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
        self.terms.retain(|t, _| keep.contains(t));
    }

    /// Gives up `task`'s lease (its driver has ended).
    pub async fn release(&mut self, task: TaskId) {
        if let Some(term) = self.terms.get(&task) {
            term.set(0);
        }
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

    #[tokio::test]
    async fn a_driver_may_dial_until_its_lease_nears_expiry_and_not_once_another_node_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::test_support::store_in(dir.path()).await;
        let spec = serde_json::from_value(serde_json::json!({"name": "c"})).unwrap();
        let c = store.create_campaign(&spec).await.unwrap();
        let t = serde_json::json!({"name": "dial", "kind": "call"});
        let task = store
            .create_task(c.id, serde_json::from_value(t).unwrap())
            .await
            .unwrap()
            .id;
        let mut n1 = Ownership::new(store.clone(), "n1".into());
        let term = n1.term(task);
        assert!(!term.dials_at(0), "no driver dials before the first claim");
        let t0 = 1_000_000;
        assert!(matches!(
            n1.hold(task, t0).await,
            Hold::Held { fresh: true, .. }
        ));
        assert!(term.dials_at(t0 + ms(LEASE) - ms(MARGIN) - 1));
        // Stalled past its lease, n1 wakes: its driver may not dial before a renewal says
        // the task is still its own.
        let woke = t0 + ms(LEASE) + 1_000;
        assert!(!term.dials_at(woke));
        let mut n2 = Ownership::new(store, "n2".into());
        assert!(matches!(n2.hold(task, woke - 500).await, Hold::Held { .. }));
        assert_eq!(n1.hold(task, woke).await, Hold::Elsewhere("n2".into()));
        assert!(!term.dials_at(woke));
        // Had n1 renewed in time instead, the term moves on with each renewal.
        assert!(n2.term(task).dials_at(woke));
        assert!(matches!(
            n2.hold(task, woke + ms(RENEW_EVERY)).await,
            Hold::Held { fresh: false, .. }
        ));
        assert!(n2.term(task).dials_at(woke + ms(LEASE)));
    }
}
