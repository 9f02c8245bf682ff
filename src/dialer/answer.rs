//! What to do when a person answers an outbound call, as a pure decision, and the 72-hour
//! no-recall rule for calls that were abandoned.
//!
//! On a live answer the call goes to a ready agent of the queue if there is one; else it may
//! wait for one up to [`MAX_WAIT`] after the answer; after that it is *abandoned*: the driver
//! plays the short safe-harbour message (who called, a number to call back) and hangs up.

use super::{AgentId, Time};
use std::time::Duration;

/// How long an answered person may wait for an agent before the call counts as abandoned.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// An abandoned contact may not be called again within this time, unless an agent is reserved
/// for the call before it is placed.
pub const NO_RECALL: Duration = Duration::from_secs(72 * 3600);

/// The decision for an answered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerDecision {
    /// Put the call through to this agent (reserve, then connect).
    Connect(AgentId),
    /// No agent yet: hold the call (silently) and decide again by `until` at the latest.
    Wait {
        /// The last moment an agent may still take the call.
        until: Time,
    },
    /// Nobody within the wait: play the safe-harbour message and hang up.
    Abandon,
}

/// Decides for a call answered at `answered_at`, at `now`, given a ready agent if any.
pub fn on_answer(
    ready_agent: Option<AgentId>,
    answered_at: Time,
    now: Time,
    max_wait: Duration,
) -> AnswerDecision {
    let until = answered_at + max_wait;
    match ready_agent {
        // An agent freed exactly at the deadline still takes the call: the person is still there.
        Some(agent) if now <= until => AnswerDecision::Connect(agent),
        _ if now < until => AnswerDecision::Wait { until },
        _ => AnswerDecision::Abandon,
    }
}

/// Whether a contact whose last call was abandoned at `last_abandoned` may be called at `now`.
/// With `agent_reserved`, an agent is reserved for the call before it is placed (preview, or
/// a progressive call bound to an agent), so the person cannot be abandoned again.
pub fn may_recall(last_abandoned: Option<Time>, now: Time, agent_reserved: bool) -> bool {
    match last_abandoned {
        None => true,
        Some(_) if agent_reserved => true,
        Some(at) => now >= at + NO_RECALL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: AgentId = AgentId(3);

    #[test]
    fn a_ready_agent_takes_the_call_at_once() {
        assert_eq!(
            on_answer(Some(A), Time(1000), Time(1000), MAX_WAIT),
            AnswerDecision::Connect(A)
        );
    }

    #[test]
    fn without_an_agent_the_call_waits_two_seconds_then_is_abandoned() {
        assert_eq!(
            on_answer(None, Time(1000), Time(1000), MAX_WAIT),
            AnswerDecision::Wait { until: Time(3000) }
        );
        assert_eq!(
            on_answer(None, Time(1000), Time(2999), MAX_WAIT),
            AnswerDecision::Wait { until: Time(3000) }
        );
        assert_eq!(
            on_answer(None, Time(1000), Time(3000), MAX_WAIT),
            AnswerDecision::Abandon
        );
    }

    #[test]
    fn an_agent_freed_within_the_wait_takes_the_call_but_not_after() {
        assert_eq!(
            on_answer(Some(A), Time(1000), Time(3000), MAX_WAIT),
            AnswerDecision::Connect(A)
        );
        assert_eq!(
            on_answer(Some(A), Time(1000), Time(3001), MAX_WAIT),
            AnswerDecision::Abandon
        );
    }

    #[test]
    fn abandoned_contacts_are_not_recalled_within_72_hours_unless_an_agent_is_reserved() {
        let at = Time(5_000);
        let h = |hours: u64| at + Duration::from_secs(hours * 3600);
        assert!(may_recall(None, at, false));
        assert!(!may_recall(Some(at), h(1), false));
        assert!(!may_recall(Some(at), h(71), false));
        assert!(may_recall(Some(at), h(72), false));
        assert!(may_recall(Some(at), h(1), true));
    }
}
