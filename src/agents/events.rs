//! Agent events for screens: each agent's events carry a sequence number of their own, and the
//! last [`BUFFER`] are kept so that a client that reconnects gets what it missed.

use crate::dialer::agent::AgentStateKind;
use serde::Serialize;
use std::collections::VecDeque;

/// Events kept per agent for clients that reconnect.
pub const BUFFER: usize = 256;

/// What happened, by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The agent's state changed.
    State {
        /// The new state.
        state: AgentStateKind,
        /// Why: the pause reason, or for `logged_out` what ended the session.
        reason: Option<String>,
    },
    /// Preview: a contact offered to the agent before any call is placed; the agent dials it
    /// (`POST /api/v1/agent/preview/dial`) or skips it (`…/skip`).
    #[serde(rename = "preview.offer")]
    PreviewOffer {
        /// The call it becomes when dialled.
        call: u64,
        /// Its call task.
        task: i64,
        /// The contact offered.
        contact: i64,
        /// The contact's fields.
        fields: serde_json::Map<String, serde_json::Value>,
        /// The contact's numbers (the first is the one dialled).
        phones: Vec<String>,
    },
    /// A customer is being put through to the agent (sent before the audio joins).
    #[serde(rename = "call.offered")]
    CallOffered {
        /// The call.
        call: u64,
        /// Its call task.
        task: i64,
        /// The contact called.
        contact: i64,
        /// The contact's fields.
        fields: serde_json::Map<String, serde_json::Value>,
        /// The contact's numbers (the first is the one called).
        phones: Vec<String>,
        /// `outbound` (power, progressive, predictive) or `preview`.
        direction: String,
    },
    /// The customer's audio is joined to the agent's leg.
    #[serde(rename = "call.connected")]
    CallConnected {
        /// The call.
        call: u64,
    },
    /// The customer hung up.
    #[serde(rename = "call.customer_hangup")]
    CallCustomerHangup {
        /// The call.
        call: u64,
    },
    /// The customer's leg is gone (whoever hung up).
    #[serde(rename = "call.ended")]
    CallEnded {
        /// The call.
        call: u64,
    },
    /// Wrap-up started: post the result before the deadline, else `$no_result` is recorded.
    WrapUp {
        /// The call.
        call: u64,
        /// When it ends by itself (RFC 3339).
        deadline: String,
    },
}

/// One event of one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The agent's own sequence number, from 1, without gaps.
    pub seq: u64,
    /// The agent (user id).
    pub agent: i64,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// One agent's numbered events, the last [`BUFFER`] of them kept.
#[derive(Debug, Default, Clone)]
pub struct EventLog {
    last_seq: u64,
    kept: VecDeque<Event>,
}

impl EventLog {
    /// Numbers and keeps an event; returns it as numbered.
    pub fn push(&mut self, agent: i64, at: String, kind: EventKind) -> Event {
        self.last_seq += 1;
        let event = Event {
            seq: self.last_seq,
            agent,
            at,
            kind,
        };
        if self.kept.len() == BUFFER {
            self.kept.pop_front();
        }
        self.kept.push_back(event.clone());
        event
    }

    /// The sequence number of the latest event (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The kept events after `seq`, oldest first (those older than the buffer are lost).
    pub fn since(&self, seq: u64) -> Vec<Event> {
        self.kept.iter().filter(|e| e.seq > seq).cloned().collect()
    }

    /// The latest event, if any.
    pub fn last(&self) -> Option<&Event> {
        self.kept.back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(s: AgentStateKind) -> EventKind {
        EventKind::State {
            state: s,
            reason: None,
        }
    }

    #[test]
    fn numbers_events_and_answers_what_came_since() {
        let mut log = EventLog::default();
        assert!(log.since(0).is_empty());
        let e = log.push(3, "t".into(), state(AgentStateKind::Ready));
        assert_eq!(e.seq, 1);
        log.push(3, "t".into(), state(AgentStateKind::Paused));
        let seqs: Vec<u64> = log.since(1).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2]);
        assert_eq!(log.last_seq(), 2);
        let json = serde_json::to_value(log.last().unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"seq": 2, "agent": 3, "at": "t", "type": "state", "state": "paused", "reason": null})
        );
    }

    #[test]
    fn keeps_only_the_last_buffer_events() {
        let mut log = EventLog::default();
        for _ in 0..BUFFER + 10 {
            log.push(1, "t".into(), state(AgentStateKind::Ready));
        }
        let kept = log.since(0);
        assert_eq!(kept.len(), BUFFER);
        assert_eq!(kept[0].seq, 11);
        assert_eq!(kept.last().unwrap().seq, (BUFFER + 10) as u64);
    }
}
