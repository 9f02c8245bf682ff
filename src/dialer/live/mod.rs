//! The live campaign driver: the very campaign core the simulator runs ([`super::campaign`]),
//! driven on real time (Unix milliseconds) with real calls, agents and contacts.
//!
//! [`supervisor`] starts a [`driver`] for each call task whose campaign dials (`enabled`, or
//! `automatic` inside one of its windows) and has agents logged in for it, and drains it when
//! that stops being so. A driver leases contacts ([`crate::store::leases`]), places each call
//! as a [`call`] task, bridges answered customers to the agents' nailed-up legs, plays the
//! safe-harbour message to those it abandons, and records every attempt.

pub mod attempt;
pub mod attempt_log;
pub mod call;
pub mod driver;
pub mod hopper;
pub mod inbound;
pub mod inbound_call;
pub mod metrics;
pub mod ownership;
pub mod supervisor;
pub mod trunks;

pub use supervisor::{Live, Supervisor};

use crate::store::StoreError;

/// Errors of the live driver.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The agent is not wrapping up a call of a running driver.
    #[error("the agent is not in wrap-up")]
    NotInWrapUp,
    /// The agent has no preview offer waiting.
    #[error("the agent has no preview offer")]
    NoOffer,
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The dialer metrics cannot be registered.
    #[error("cannot register dialer metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// An agent's result for the call it wraps up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentResult {
    /// The contact's status after it (`open`, `success`, `declined`, `failed`).
    pub status: String,
    /// The status detail (the disposition).
    pub detail: String,
    /// When to call again (Unix ms), for an `open` contact; `None`: the task's retry delay.
    pub follow_up_ms: Option<i64>,
    /// Contact fields the agent set (checked against the campaign's form).
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Who, for the contact's history.
    pub actor: String,
    /// The agent who owns the callback (a `particular` follow-up): offered to them first.
    pub owner: Option<String>,
}

/// The live figures of one call task's driver.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Figures {
    /// The call task.
    pub task_id: i64,
    /// The dial mode.
    pub mode: String,
    /// Whether the driver is draining (its campaign stopped dialing or its agents left).
    pub draining: bool,
    /// Agents known to the driver, logged in or not.
    pub agents: usize,
    /// Calls placed and not yet recorded.
    pub calls_in_flight: u64,
    /// Calls placed since the driver started.
    pub placed: u64,
    /// Of those, answered by a person.
    pub answered: u64,
    /// Of those, abandoned.
    pub abandoned: u64,
    /// The campaign's abandon ratio over 24 hours (from the persisted ledger).
    pub abandon_ratio_24h: f64,
    /// The campaign's abandon ratio over 30 days.
    pub abandon_ratio_30d: f64,
    /// Callers waiting for an agent (callbacks), longest-waiting first.
    pub waiting_callers: Vec<WaitingCaller>,
    /// The task's agents by state (`ready`, `talking`, …), as the campaign core sees them.
    pub agents_by_state: std::collections::BTreeMap<String, usize>,
    /// Outbound calls in flight per agent at work (logged in, not paused): the dial level.
    pub dial_level: f64,
    /// The learned share of calls a person answers.
    pub answer_rate: f64,
    /// How many pacing decisions each rule took since the driver started (the mode's own,
    /// warming up, the abandon cap).
    pub decisions: crate::dialer::campaign::Decisions,
}

/// A caller waiting for an agent of a call task.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WaitingCaller {
    /// The call (as agents' events name it).
    pub call: u64,
    /// The contact.
    pub contact_id: i64,
    /// The caller's number.
    pub number: String,
    /// The line they called.
    pub line_id: i64,
    /// Seconds waited so far.
    pub waited_seconds: f64,
}
