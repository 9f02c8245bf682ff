//! Dialing logic, pure: agent states, the answer rule, abandon accounting, learned statistics,
//! the pacer (preview, progressive, power, predictive), SIP outcome mapping, the campaign core
//! that ties them together, and a simulator that runs a call-centre day on virtual time
//! through the very same core.
//!
//! Nothing but [`live`] opens a socket or reads a clock: time comes in as [`Time`], decisions
//! go out as values. [`live`] is the driver that wires the core to SIP, agents and the store.

pub mod abandon;
pub mod agent;
pub mod answer;
pub mod campaign;
pub mod live;
pub mod outcome;
pub mod pacing;
pub mod predictive;
pub mod queue;
pub mod rng;
pub mod simulator;
pub mod stats;
pub mod time;

pub use time::Time;

/// One agent of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct AgentId(pub u32);

/// One call (outbound attempt or inbound caller) handled by a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct CallId(pub u64);

impl std::fmt::Display for AgentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Errors of the dialer layer.
#[derive(Debug, thiserror::Error)]
pub enum DialerError {
    /// An agent event that its current state does not allow.
    #[error("agent {agent}: {event} is not allowed while {state}")]
    InvalidTransition {
        /// The agent.
        agent: AgentId,
        /// The state it is in.
        state: &'static str,
        /// The event refused.
        event: &'static str,
    },
    /// An event named an agent the queue does not know.
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    /// An event named a call the queue does not know (or no longer in the state it needs).
    #[error("call {0} is unknown or not in a state for {1}")]
    UnknownCall(CallId, &'static str),
    /// A call id was used twice.
    #[error("call {0} already exists")]
    DuplicateCall(CallId),
    /// A persisted ledger or statistics snapshot makes no sense.
    #[error("persisted dialer state refused: {0}")]
    Snapshot(String),
    /// Contacts came back for a lease the core did not ask for (they were given back).
    #[error("contacts leased while no lease was asked for")]
    UnexpectedLease,
    /// A simulator scenario file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    ScenarioRead {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A simulator scenario is not valid TOML for a scenario, or its values make no sense.
    #[error("scenario {path}: {message}")]
    Scenario {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}
