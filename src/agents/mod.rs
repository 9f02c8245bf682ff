//! Agent sessions: an agent logs in on a phone that dialerd calls (or from its browser, whose
//! WebRTC offer comes with the login) and keeps on one nailed-up leg, goes ready, pauses, logs
//! out; its state changes are numbered events for its screen and the supervisors' queue views.
//!
//! [`session`] is the sans-IO state machine of one agent; [`driver`] owns the sessions, places
//! and ends their legs ([`phone`]) and publishes their [`events`]; [`login_call`] logs agents
//! in on their own call to `sip.agent_login_number`; [`occupancy`] keeps each task's
//! occupancy per 5 minutes for the supervisors.

pub mod driver;
pub mod events;
pub mod login_call;
pub mod occupancy;
pub mod phone;
pub mod session;

pub use driver::{AgentView, Agents, AgentsConfig};

/// Errors of the agent layer.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The agent's state does not allow this.
    #[error("cannot {action} while {state}")]
    NotAllowed {
        /// What was asked.
        action: &'static str,
        /// The state the agent is in.
        state: &'static str,
    },
    /// A login while a session runs.
    #[error("the agent is already logged in; log out first")]
    AlreadyLoggedIn,
    /// The agent has no session to act on.
    #[error("the agent is not logged in")]
    NotLoggedIn,
    /// `phone: "sip"` for an agent without a SIP account.
    #[error(
        "agent {0} has no SIP login: give it sip_username and sip_password (PATCH /api/v1/users/ID), or name an [[agents]] account after it"
    )]
    NoSipAccount(String),
    /// The session call was not answered.
    #[error("the agent's phone did not answer the session call: {0}")]
    PhoneFailed(String),
    /// The browser's audio leg cannot be set up.
    #[error(transparent)]
    WebRtc(#[from] crate::webrtc::WebRtcError),
    /// The agent-metrics gauge cannot be registered.
    #[error("cannot register agent metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}
