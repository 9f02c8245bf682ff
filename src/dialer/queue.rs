//! One queue, sans-IO: its agents' state machines and its calls, joined by the answer rule.
//!
//! The driver (the simulator now, the SIP layer later) tells the queue what happened — a call
//! was placed, rang out, was answered, hung up; an agent logged in, paused, recorded a result —
//! and the queue answers with what to do: connect this call to that agent, abandon that call.
//! It also keeps the counters the abandon rule and the reports are built on, and gives the
//! pacer its [`Snapshot`].
//!
//! Who gets a free agent first: inbound callers (callbacks) ahead of answered outbound calls,
//! then the outbound call that has waited longest (it is closest to being abandoned). Which
//! agent takes a call: the one who has been ready longest.

use super::agent::{Agent, AgentAction, AgentEvent, AgentState, AgentTimers};
use super::answer::{self, AnswerDecision};
use super::outcome::CallEnd;
use super::pacing::{AgentView, Snapshot};
use super::{AgentId, CallId, DialerError, Time};
use std::collections::HashMap;
use std::time::Duration;

/// Time limits of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// The agents' state time limits.
    pub timers: AgentTimers,
    /// How long an answered person may wait for an agent (2 s).
    pub max_wait: Duration,
    /// How long the driver has to bridge an answered call to its reserved agent.
    pub connect_timeout: Duration,
    /// How long an agent may look at a preview contact before the offer lapses.
    pub offer_timeout: Duration,
    /// How long the agent of a preview call stays reserved while it rings.
    pub preview_ring_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            timers: AgentTimers::default(),
            max_wait: answer::MAX_WAIT,
            connect_timeout: Duration::from_secs(5),
            offer_timeout: Duration::from_secs(60),
            preview_ring_timeout: Duration::from_secs(120),
        }
    }
}

/// What the driver tells the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// An agent event (log in, pause, resume, log out, record result).
    Agent(AgentId, AgentEvent),
    /// An outbound call was placed (for the agent it was offered to, in preview).
    Placed {
        /// The call.
        call: CallId,
        /// The agent already reserved for it (preview), if any.
        agent: Option<AgentId>,
    },
    /// The agent skipped a preview contact: no call is placed.
    Skipped(CallId),
    /// A person answered an outbound call.
    Answered(CallId),
    /// An outbound call ended without a person (busy, no answer, failure).
    NotAnswered(CallId, CallEnd),
    /// The driver bridged the call to the agent the queue named in [`Output::Connect`].
    Bridged(CallId),
    /// A connected call ended (either side hung up); the agent goes to wrap-up.
    HungUp(CallId),
    /// An answered person hung up while waiting for an agent.
    CallerLeft(CallId),
    /// Someone called back; they wait for an agent ahead of outbound calls, at most
    /// `max_wait`. With `owner`, only that agent may take the call until the given time (the
    /// owner of a particular callback); then any agent.
    Inbound {
        /// The call.
        call: CallId,
        /// How long the caller waits at most.
        max_wait: Duration,
        /// The agent the call is kept for, and until when.
        owner: Option<(AgentId, Time)>,
    },
    /// The driver is hanging up a ringing call the pacer named ([`Queue::oldest_ringing`]):
    /// it no longer counts as ringing for the pacer, but may still be answered (a 200 OK
    /// crossing the CANCEL), then it is served like any answer; it ends with
    /// [`Input::NotAnswered`] or [`Input::Answered`].
    Cancelling(CallId),
    /// The agent's phone leg is gone: the agent is logged out, a call being put through to
    /// them waits for another agent, a call they were talking on is hung up.
    AgentGone(AgentId),
}

/// What the queue asks the driver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Bridge the call to the agent (the agent is reserved for it); confirm with
    /// [`Input::Bridged`].
    Connect {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// Nobody took the answered call in time: play the safe-harbour message and hang up.
    Abandon(CallId),
    /// An inbound caller waited too long for an agent: play a message and hang up.
    InboundTimedOut(CallId),
    /// Hang the call up: it ran past the agent's `max_talk`, its agent's leg is gone, or a
    /// preview call rang past its agent's reservation.
    HangUp(CallId),
    /// The agent did not record a result within the wrap-up time: record the default.
    WrapUpExpired {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// A preview offer lapsed without the agent accepting or skipping.
    OfferExpired(CallId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Preview: offered to the agent, not placed yet.
    Offered(AgentId),
    /// Placed and ringing, maybe with an agent already reserved (preview).
    Ringing(Option<AgentId>),
    /// Being hung up while ringing; an answer may still cross the CANCEL.
    Cancelling,
    /// Answered, waiting for an agent until the deadline.
    Waiting(Time),
    /// Answered, agent reserved, waiting for the driver to bridge.
    Bridging(AgentId),
    /// Connected to the agent.
    Connected(AgentId),
}

#[derive(Debug, Clone, Copy)]
struct Call {
    phase: Phase,
    since: Time,
    inbound: bool,
    /// An inbound call kept for this agent until the given time.
    owner: Option<(AgentId, Time)>,
    /// How long its caller may wait for an agent (from `since` while waiting).
    wait: Duration,
}

/// How many calls went where; outbound and inbound kept apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Outbound calls placed.
    pub placed: u64,
    /// Outbound calls answered by a person whose fate is decided (connected or abandoned).
    pub answered: u64,
    /// Outbound calls that ended without a person.
    pub not_answered: u64,
    /// Answered outbound calls put through to an agent.
    pub connected: u64,
    /// Answered outbound calls no agent took in time (or whose person left first).
    pub abandoned: u64,
    /// Inbound callers.
    pub inbound: u64,
    /// Inbound callers put through to an agent.
    pub inbound_connected: u64,
    /// Inbound callers who left or timed out before an agent.
    pub inbound_lost: u64,
}

/// A queue's agents and calls.
#[derive(Debug, Clone)]
pub struct Queue {
    config: QueueConfig,
    agents: Vec<Agent>,
    calls: HashMap<CallId, Call>,
    counters: Counters,
    outputs: Vec<Output>,
}

impl Queue {
    /// An empty queue.
    pub fn new(config: QueueConfig) -> Queue {
        Queue {
            config,
            agents: Vec::new(),
            calls: HashMap::new(),
            counters: Counters::default(),
            outputs: Vec::new(),
        }
    }

    /// Adds a (logged-out) agent.
    pub fn add_agent(&mut self, now: Time) -> AgentId {
        let id = AgentId(self.agents.len() as u32);
        self.agents.push(Agent::new(id, self.config.timers, now));
        id
    }

    /// The agents.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Outbound calls placed and not yet decided (ringing, waiting or being bridged).
    pub fn in_flight(&self) -> u64 {
        self.calls
            .values()
            .filter(|c| {
                !c.inbound
                    && matches!(
                        c.phase,
                        Phase::Ringing(_)
                            | Phase::Cancelling
                            | Phase::Waiting(_)
                            | Phase::Bridging(_)
                    )
            })
            .count() as u64
    }

    /// Whether `call` is one of the queue's calls (offered, ringing, waiting or connected).
    pub fn in_flight_call(&self, call: CallId) -> bool {
        self.calls.contains_key(&call)
    }

    /// How many calls the queue holds, in any phase.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Takes the actions produced since the last call.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.outputs.drain(..)
    }

    /// Offers a preview contact (as `call`) to the longest-ready agent, who is reserved for
    /// it; `None` when no agent is ready.
    pub fn offer(&mut self, call: CallId, now: Time) -> Result<Option<AgentId>, DialerError> {
        match self.longest_ready() {
            Some(agent) => self.offer_to(call, agent, now),
            None if self.in_use(call) => Err(DialerError::DuplicateCall(call)),
            None => Ok(None),
        }
    }

    /// Reserves `agent` for `call` (a preview offer, or a particular callback about to be
    /// placed for its owner) when the agent is ready; `None` when not.
    pub fn offer_to(
        &mut self,
        call: CallId,
        agent: AgentId,
        now: Time,
    ) -> Result<Option<AgentId>, DialerError> {
        if self.in_use(call) {
            return Err(DialerError::DuplicateCall(call));
        }
        let ready = self
            .agents
            .get(agent.0 as usize)
            .is_some_and(|a| a.state() == &AgentState::Ready);
        if !ready {
            return Ok(None);
        }
        self.agent_event(
            agent,
            AgentEvent::Reserve {
                call,
                timeout: self.config.offer_timeout,
            },
            now,
        )?;
        self.calls.insert(
            call,
            Call {
                phase: Phase::Offered(agent),
                since: now,
                inbound: false,
                owner: None,
                wait: self.config.max_wait,
            },
        );
        Ok(Some(agent))
    }

    /// A placed outbound call to a contact `agent` owns (a particular callback): when it is
    /// answered and the agent is ready, the agent takes it rather than the longest-ready one.
    pub fn prefer(&mut self, call: CallId, agent: AgentId) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.owner = Some((agent, c.since));
        }
    }

    /// Applies what the driver saw; actions come out of [`Queue::drain_outputs`].
    pub fn handle(&mut self, input: Input, now: Time) -> Result<(), DialerError> {
        match input {
            Input::Agent(agent, event) => {
                self.agent_event(agent, event, now)?;
                self.serve_waiting(now)?;
            }
            Input::Placed { call, agent } => self.placed(call, agent, now)?,
            Input::Skipped(call) => {
                let Phase::Offered(agent) = self.phase(call, "skip")? else {
                    return Err(DialerError::UnknownCall(call, "skip"));
                };
                self.calls.remove(&call);
                self.agent_event(agent, AgentEvent::Release(call), now)?;
                self.serve_waiting(now)?;
            }
            Input::Answered(call) => self.answered(call, now)?,
            Input::NotAnswered(call, _end) => {
                let agent = match self.phase(call, "not answered")? {
                    Phase::Ringing(agent) => agent,
                    Phase::Cancelling => None,
                    _ => return Err(DialerError::UnknownCall(call, "not answered")),
                };
                self.calls.remove(&call);
                self.counters.not_answered += 1;
                if let Some(agent) = agent {
                    self.agent_event(agent, AgentEvent::Release(call), now)?;
                    self.serve_waiting(now)?;
                }
            }
            Input::Bridged(call) => {
                let Phase::Bridging(agent) = self.phase(call, "bridged")? else {
                    return Err(DialerError::UnknownCall(call, "bridged"));
                };
                self.agent_event(agent, AgentEvent::Connect(call), now)?;
                self.set_phase(call, Phase::Connected(agent), now);
                if self.calls[&call].inbound {
                    self.counters.inbound_connected += 1;
                } else {
                    self.counters.answered += 1;
                    self.counters.connected += 1;
                }
            }
            Input::HungUp(call) => {
                let Phase::Connected(agent) = self.phase(call, "hang up")? else {
                    return Err(DialerError::UnknownCall(call, "hang up"));
                };
                self.calls.remove(&call);
                self.agent_event(agent, AgentEvent::HangUp(call), now)?;
            }
            Input::CallerLeft(call) => {
                let phase = self.phase(call, "caller left")?;
                let c = self.calls.remove(&call).expect("phase found it");
                match phase {
                    Phase::Waiting(_) => {}
                    Phase::Bridging(agent) => {
                        self.agent_event(agent, AgentEvent::Release(call), now)?;
                        self.serve_waiting(now)?;
                    }
                    _ => {
                        self.calls.insert(call, c);
                        return Err(DialerError::UnknownCall(call, "caller left"));
                    }
                }
                self.count_lost(c.inbound);
            }
            Input::Inbound {
                call,
                max_wait,
                owner,
            } => {
                if self.in_use(call) {
                    return Err(DialerError::DuplicateCall(call));
                }
                self.counters.inbound += 1;
                let until = now + max_wait;
                self.calls.insert(
                    call,
                    Call {
                        phase: Phase::Waiting(until),
                        since: now,
                        inbound: true,
                        owner,
                        wait: max_wait,
                    },
                );
                self.serve_waiting(now)?;
            }
            Input::Cancelling(call) => {
                let Phase::Ringing(None) = self.phase(call, "cancel")? else {
                    return Err(DialerError::UnknownCall(call, "cancel"));
                };
                self.set_phase(call, Phase::Cancelling, now);
            }
            Input::AgentGone(agent) => self.agent_gone(agent, now)?,
        }
        Ok(())
    }

    /// Logs out an agent whose leg is gone, whatever it was doing (see [`Input::AgentGone`]).
    fn agent_gone(&mut self, agent: AgentId, now: Time) -> Result<(), DialerError> {
        let state = self
            .agents
            .get(agent.0 as usize)
            .ok_or(DialerError::UnknownAgent(agent))?
            .state()
            .clone();
        if state == AgentState::LoggedOut {
            return Ok(());
        }
        // Logged out as soon as the work in hand is dropped.
        self.agent_event(agent, AgentEvent::LogOut, now)?;
        match state {
            AgentState::Reserved(call) => {
                if let Some(c) = self.calls.get_mut(&call) {
                    match c.phase {
                        Phase::Offered(_) => {
                            self.calls.remove(&call);
                            self.outputs.push(Output::OfferExpired(call));
                        }
                        // A preview call still ringing: whoever is free takes it if answered.
                        Phase::Ringing(_) => c.phase = Phase::Ringing(None),
                        // Answered at `since`: it waits for another agent within its wait.
                        // An inbound caller keeps their place at the front.
                        Phase::Bridging(_) => c.phase = Phase::Waiting(c.since + c.wait),
                        _ => {}
                    }
                }
                self.agent_event(agent, AgentEvent::Release(call), now)?;
            }
            AgentState::Talking(call) => {
                self.calls.remove(&call);
                self.outputs.push(Output::HangUp(call));
                self.agent_event(agent, AgentEvent::HangUp(call), now)?;
                self.agent_event(agent, AgentEvent::RecordResult(call), now)?;
                self.outputs.push(Output::WrapUpExpired { call, agent });
            }
            AgentState::WrapUp(call) => {
                self.agent_event(agent, AgentEvent::RecordResult(call), now)?;
                self.outputs.push(Output::WrapUpExpired { call, agent });
            }
            AgentState::LoggedOut | AgentState::Paused(_) | AgentState::Ready => {}
        }
        self.serve_waiting(now)?;
        Ok(())
    }

    /// When [`Queue::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        let agents = self.agents.iter().filter_map(Agent::poll_timeout);
        let waits = self.calls.values().filter_map(|c| match c.phase {
            Phase::Waiting(until) => Some(until + Duration::from_millis(1)),
            _ => None,
        });
        // A call kept for its owner goes to any agent when the grace ends.
        let graces = self
            .calls
            .values()
            .filter_map(|c| match (c.phase, c.owner) {
                (Phase::Waiting(_), Some((_, until))) => Some(until),
                _ => None,
            });
        agents.chain(waits).chain(graces).min()
    }

    /// Runs what is due at `now`: agent timeouts and callers who waited too long.
    pub fn handle_timeout(&mut self, now: Time) -> Result<(), DialerError> {
        for i in 0..self.agents.len() {
            let Some(action) = self.agents[i].handle_timeout(now) else {
                continue;
            };
            let agent = AgentId(i as u32);
            match action {
                AgentAction::ReservationExpired(call) => self.reservation_lapsed(call, now),
                AgentAction::HangUp(call) => {
                    self.calls.remove(&call);
                    self.outputs.push(Output::HangUp(call));
                }
                AgentAction::WrapUpExpired(call) => {
                    self.outputs.push(Output::WrapUpExpired { call, agent })
                }
                AgentAction::PauseExpired => {}
            }
        }
        self.serve_waiting(now)?;
        let expired: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Waiting(until) if now > until))
            .map(|(id, _)| *id)
            .collect();
        for call in expired {
            let c = self.calls.remove(&call).expect("listed above");
            self.count_lost(c.inbound);
            self.outputs.push(if c.inbound {
                Output::InboundTimedOut(call)
            } else {
                Output::Abandon(call)
            });
        }
        Ok(())
    }

    /// Fills `snap` with the queue as the pacer needs it (reusing its buffers).
    pub fn snapshot(&self, now: Time, snap: &mut Snapshot) {
        snap.agents.clear();
        snap.ringing.clear();
        snap.waiting_outbound = 0;
        snap.waiting_inbound = 0;
        for a in &self.agents {
            snap.agents.push(AgentView {
                state: a.state().kind(),
                elapsed: now.since(a.since()),
            });
        }
        for c in self.calls.values() {
            match c.phase {
                Phase::Ringing(None) => snap.ringing.push(now.since(c.since)),
                Phase::Waiting(_) if c.inbound => snap.waiting_inbound += 1,
                Phase::Waiting(_) => snap.waiting_outbound += 1,
                _ => {}
            }
        }
    }

    /// The `n` oldest outbound calls ringing without an agent that have rung at least
    /// `min_age`, oldest first: the ones a pacer's [`crate::dialer::pacing::Decision::cancel`]
    /// means. The driver hangs them up and reports each as [`Input::NotAnswered`].
    pub fn oldest_ringing(&self, min_age: Duration, n: usize, now: Time) -> Vec<CallId> {
        let mut old: Vec<(Time, CallId)> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                matches!(c.phase, Phase::Ringing(None)) && now.since(c.since) >= min_age
            })
            .map(|(id, c)| (c.since, *id))
            .collect();
        old.sort_unstable();
        old.into_iter().take(n).map(|(_, id)| id).collect()
    }

    /// Checks that agents and calls agree: no agent in two calls, no call with two agents,
    /// and the counters add up. Returns what is wrong.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut bound: HashMap<CallId, AgentId> = HashMap::new();
        for a in &self.agents {
            if let Some(call) = a.state().call() {
                if let Some(other) = bound.insert(call, a.id()) {
                    return Err(format!("call {call} held by agents {other} and {}", a.id()));
                }
            }
        }
        for (id, c) in &self.calls {
            let agent = match c.phase {
                Phase::Offered(a) | Phase::Bridging(a) | Phase::Connected(a) => Some(a),
                Phase::Ringing(a) => a,
                Phase::Cancelling | Phase::Waiting(_) => None,
            };
            match (agent, bound.get(id)) {
                (Some(a), Some(b)) if a == *b => {}
                (None, None) => {}
                (a, b) => return Err(format!("call {id} names agent {a:?}, agents say {b:?}")),
            }
        }
        let k = self.counters;
        if k.placed != k.answered + k.not_answered + self.in_flight() {
            return Err(format!(
                "placed ≠ answered + not answered + in flight: {k:?}"
            ));
        }
        if k.answered != k.connected + k.abandoned {
            return Err(format!("answered ≠ connected + abandoned: {k:?}"));
        }
        Ok(())
    }

    fn placed(
        &mut self,
        call: CallId,
        agent: Option<AgentId>,
        now: Time,
    ) -> Result<(), DialerError> {
        match (agent, self.calls.get(&call).map(|c| c.phase)) {
            (None, None) if !self.in_use(call) => {}
            (Some(a), Some(Phase::Offered(b))) if a == b => {
                // The offer becomes a ringing call; the agent stays reserved while it rings.
                self.agents[a.0 as usize]
                    .extend_reservation(now + self.config.preview_ring_timeout);
            }
            (None, _) => return Err(DialerError::DuplicateCall(call)),
            (Some(_), _) => return Err(DialerError::UnknownCall(call, "placed for an agent")),
        }
        self.counters.placed += 1;
        self.calls.insert(
            call,
            Call {
                phase: Phase::Ringing(agent),
                since: now,
                inbound: false,
                owner: None,
                wait: self.config.max_wait,
            },
        );
        Ok(())
    }

    fn answered(&mut self, call: CallId, now: Time) -> Result<(), DialerError> {
        let agent = match self.phase(call, "answer")? {
            Phase::Ringing(agent) => agent,
            // A 200 OK that crossed the CANCEL: a person is there and is served.
            Phase::Cancelling => None,
            _ => return Err(DialerError::UnknownCall(call, "answer")),
        };
        if let Some(agent) = agent {
            // Preview: the agent was reserved before the call was placed.
            self.set_phase(call, Phase::Bridging(agent), now);
            self.outputs.push(Output::Connect { call, agent });
            return Ok(());
        }
        let owner = self.calls[&call].owner.map(|o| o.0).filter(|a| {
            self.agents
                .get(a.0 as usize)
                .is_some_and(|x| x.state() == &AgentState::Ready)
        });
        let decision = answer::on_answer(
            owner.or(self.longest_ready()),
            now,
            now,
            self.config.max_wait,
        );
        match decision {
            AnswerDecision::Connect(agent) => self.reserve_for(call, agent, now)?,
            AnswerDecision::Wait { until } => self.set_phase(call, Phase::Waiting(until), now),
            AnswerDecision::Abandon => {
                self.calls.remove(&call);
                self.count_lost(false);
                self.outputs.push(Output::Abandon(call));
            }
        }
        Ok(())
    }

    /// Gives free agents to waiting callers: inbound first, then the longest-waiting. A call
    /// kept for its owner goes only to that agent until its grace ends.
    fn serve_waiting(&mut self, now: Time) -> Result<(), DialerError> {
        loop {
            let mut waiting: Vec<(bool, Time, CallId, Option<AgentId>)> = self
                .calls
                .iter()
                .filter_map(|(id, c)| match c.phase {
                    Phase::Waiting(until) if now <= until => {
                        let owner = c.owner.filter(|(_, grace)| now < *grace).map(|o| o.0);
                        Some((!c.inbound, c.since, *id, owner))
                    }
                    _ => None,
                })
                .collect();
            waiting.sort_unstable();
            let ready = |a: AgentId| {
                self.agents
                    .get(a.0 as usize)
                    .is_some_and(|x| x.state() == &AgentState::Ready)
            };
            let next = waiting
                .into_iter()
                .find_map(|(_, _, call, owner)| match owner {
                    Some(a) if ready(a) => Some((call, a)),
                    Some(_) => None,
                    None => self.longest_ready().map(|a| (call, a)),
                });
            let Some((call, agent)) = next else {
                return Ok(());
            };
            self.reserve_for(call, agent, now)?;
        }
    }

    fn reserve_for(&mut self, call: CallId, agent: AgentId, now: Time) -> Result<(), DialerError> {
        self.agent_event(
            agent,
            AgentEvent::Reserve {
                call,
                timeout: self.config.connect_timeout,
            },
            now,
        )?;
        self.set_phase(call, Phase::Bridging(agent), now);
        self.outputs.push(Output::Connect { call, agent });
        Ok(())
    }

    fn reservation_lapsed(&mut self, call: CallId, _now: Time) {
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        match c.phase {
            Phase::Offered(_) => self.outputs.push(Output::OfferExpired(call)),
            // A preview call still ringing when its agent's reservation ran out: nobody can
            // take it any more; count it as not answered and hang it up.
            Phase::Ringing(_) => {
                self.counters.not_answered += 1;
                self.outputs.push(Output::HangUp(call));
            }
            // The driver never bridged it: the person was left alone.
            Phase::Bridging(_) => {
                self.count_lost(c.inbound);
                self.outputs.push(if c.inbound {
                    Output::InboundTimedOut(call)
                } else {
                    Output::Abandon(call)
                });
            }
            Phase::Cancelling | Phase::Waiting(_) | Phase::Connected(_) => {
                self.calls.insert(call, c);
            }
        }
    }

    /// Whether a call id is taken: a call of the queue, or an agent still wrapping it up.
    fn in_use(&self, call: CallId) -> bool {
        self.calls.contains_key(&call) || self.agents.iter().any(|a| a.state().call() == Some(call))
    }

    fn count_lost(&mut self, inbound: bool) {
        if inbound {
            self.counters.inbound_lost += 1;
        } else {
            self.counters.answered += 1;
            self.counters.abandoned += 1;
        }
    }

    fn longest_ready(&self) -> Option<AgentId> {
        self.agents
            .iter()
            .filter(|a| a.state() == &AgentState::Ready)
            .min_by_key(|a| (a.since(), a.id()))
            .map(Agent::id)
    }

    fn agent_event(
        &mut self,
        agent: AgentId,
        event: AgentEvent,
        now: Time,
    ) -> Result<(), DialerError> {
        self.agents
            .get_mut(agent.0 as usize)
            .ok_or(DialerError::UnknownAgent(agent))?
            .handle(event, now)
    }

    fn phase(&self, call: CallId, what: &'static str) -> Result<Phase, DialerError> {
        self.calls
            .get(&call)
            .map(|c| c.phase)
            .ok_or(DialerError::UnknownCall(call, what))
    }

    fn set_phase(&mut self, call: CallId, phase: Phase, now: Time) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.phase = phase;
            if !matches!(phase, Phase::Bridging(_)) {
                c.since = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: f64) -> Time {
        Time::from_secs_f64(s)
    }

    /// A queue with `n` agents logged in at 0.
    fn queue(n: usize) -> Queue {
        let mut q = Queue::new(QueueConfig::default());
        for _ in 0..n {
            let a = q.add_agent(Time(0));
            q.handle(Input::Agent(a, AgentEvent::LogIn), Time(0))
                .unwrap();
        }
        q
    }

    fn outputs(q: &mut Queue) -> Vec<Output> {
        q.drain_outputs().collect()
    }

    fn place(q: &mut Queue, call: u64, at: f64) {
        q.handle(
            Input::Placed {
                call: CallId(call),
                agent: None,
            },
            secs(at),
        )
        .unwrap();
    }

    #[test]
    fn an_answer_goes_to_the_longest_ready_agent() {
        let mut q = queue(2);
        // Agent 1 became ready again later than agent 0.
        q.handle(
            Input::Agent(AgentId(1), AgentEvent::Pause("x".into())),
            secs(1.0),
        )
        .unwrap();
        q.handle(Input::Agent(AgentId(1), AgentEvent::Resume), secs(2.0))
            .unwrap();
        place(&mut q, 1, 3.0);
        q.handle(Input::Answered(CallId(1)), secs(10.0)).unwrap();
        assert_eq!(
            outputs(&mut q),
            vec![Output::Connect {
                call: CallId(1),
                agent: AgentId(0)
            }]
        );
        q.handle(Input::Bridged(CallId(1)), secs(10.1)).unwrap();
        assert_eq!(q.agents()[0].state(), &AgentState::Talking(CallId(1)));
        q.handle(Input::HungUp(CallId(1)), secs(100.0)).unwrap();
        assert_eq!(q.agents()[0].state(), &AgentState::WrapUp(CallId(1)));
        let k = q.counters();
        assert_eq!(
            (k.placed, k.answered, k.connected, k.abandoned),
            (1, 1, 1, 0)
        );
        q.check_invariants().unwrap();
    }

    #[test]
    fn an_answer_waits_two_seconds_for_an_agent_then_is_abandoned() {
        let mut q = queue(1);
        place(&mut q, 1, 0.0);
        place(&mut q, 2, 0.0);
        place(&mut q, 3, 0.0);
        q.handle(Input::Answered(CallId(1)), secs(5.0)).unwrap();
        q.handle(Input::Bridged(CallId(1)), secs(5.0)).unwrap();
        q.handle(Input::Answered(CallId(2)), secs(6.0)).unwrap();
        q.handle(Input::Answered(CallId(3)), secs(7.0)).unwrap();
        outputs(&mut q);
        assert_eq!(q.poll_timeout(), Some(secs(8.001)));
        // The agent frees at 7.5 s: call 2 (waiting since 6 s) is within its 2 s and goes first.
        q.handle(Input::HungUp(CallId(1)), secs(7.0)).unwrap();
        q.handle(
            Input::Agent(AgentId(0), AgentEvent::RecordResult(CallId(1))),
            secs(7.5),
        )
        .unwrap();
        assert_eq!(
            outputs(&mut q),
            vec![Output::Connect {
                call: CallId(2),
                agent: AgentId(0)
            }]
        );
        q.handle(Input::Bridged(CallId(2)), secs(7.5)).unwrap();
        q.handle_timeout(secs(9.0)).unwrap();
        assert_eq!(q.poll_timeout(), Some(secs(9.001)));
        q.handle_timeout(secs(9.001)).unwrap();
        assert_eq!(outputs(&mut q), vec![Output::Abandon(CallId(3))]);
        let k = q.counters();
        assert_eq!((k.answered, k.connected, k.abandoned), (3, 2, 1));
        q.check_invariants().unwrap();
    }

    #[test]
    fn inbound_callers_are_served_before_answered_outbound_calls() {
        let mut q = queue(1);
        q.handle(
            Input::Agent(AgentId(0), AgentEvent::Pause("p".into())),
            secs(0.0),
        )
        .unwrap();
        place(&mut q, 1, 0.0);
        q.handle(Input::Answered(CallId(1)), secs(1.0)).unwrap();
        q.handle(
            Input::Inbound {
                call: CallId(9),
                max_wait: Duration::from_secs(120),
                owner: None,
            },
            secs(1.5),
        )
        .unwrap();
        q.handle(Input::Agent(AgentId(0), AgentEvent::Resume), secs(2.0))
            .unwrap();
        assert_eq!(
            outputs(&mut q),
            vec![Output::Connect {
                call: CallId(9),
                agent: AgentId(0)
            }]
        );
    }

    #[test]
    fn a_preview_call_keeps_its_agent_from_offer_to_answer() {
        let mut q = queue(1);
        assert_eq!(q.offer(CallId(1), secs(0.0)).unwrap(), Some(AgentId(0)));
        assert_eq!(q.offer(CallId(2), secs(0.0)).unwrap(), None);
        q.handle(
            Input::Placed {
                call: CallId(1),
                agent: Some(AgentId(0)),
            },
            secs(10.0),
        )
        .unwrap();
        q.handle(Input::Answered(CallId(1)), secs(20.0)).unwrap();
        assert_eq!(
            outputs(&mut q),
            vec![Output::Connect {
                call: CallId(1),
                agent: AgentId(0)
            }]
        );
        q.check_invariants().unwrap();
        // A skipped preview frees the agent; an unanswered one too.
        let mut q = queue(1);
        q.offer(CallId(1), secs(0.0)).unwrap();
        q.handle(Input::Skipped(CallId(1)), secs(1.0)).unwrap();
        assert_eq!(q.agents()[0].state(), &AgentState::Ready);
        q.offer(CallId(2), secs(2.0)).unwrap();
        q.handle(
            Input::Placed {
                call: CallId(2),
                agent: Some(AgentId(0)),
            },
            secs(3.0),
        )
        .unwrap();
        q.handle(
            Input::NotAnswered(CallId(2), CallEnd::Rejected(486)),
            secs(5.0),
        )
        .unwrap();
        assert_eq!(q.agents()[0].state(), &AgentState::Ready);
        assert_eq!(q.counters().not_answered, 1);
    }

    #[test]
    fn a_preview_offer_lapses() {
        let mut q = queue(1);
        q.offer(CallId(1), secs(0.0)).unwrap();
        q.handle_timeout(secs(60.0)).unwrap();
        assert_eq!(outputs(&mut q), vec![Output::OfferExpired(CallId(1))]);
        assert_eq!(q.agents()[0].state(), &AgentState::Ready);
    }

    #[test]
    fn an_unbridged_call_is_abandoned_when_the_reservation_lapses() {
        let mut q = queue(1);
        place(&mut q, 1, 0.0);
        q.handle(Input::Answered(CallId(1)), secs(1.0)).unwrap();
        outputs(&mut q);
        q.handle_timeout(secs(6.0)).unwrap();
        assert_eq!(outputs(&mut q), vec![Output::Abandon(CallId(1))]);
        assert_eq!(q.agents()[0].state(), &AgentState::Ready);
        q.check_invariants().unwrap();
    }

    #[test]
    fn snapshot_shows_agents_ringing_and_waiting_calls() {
        let mut q = queue(1);
        place(&mut q, 1, 0.0);
        place(&mut q, 2, 1.0);
        q.handle(Input::Answered(CallId(1)), secs(2.0)).unwrap();
        q.handle(Input::Answered(CallId(2)), secs(3.0)).unwrap();
        let mut s = Snapshot::default();
        q.snapshot(secs(3.5), &mut s);
        assert_eq!(
            s.agents[0].state,
            crate::dialer::agent::AgentStateKind::Reserved
        );
        assert_eq!(s.waiting_outbound, 1);
        assert!(s.ringing.is_empty());
        assert_eq!(q.in_flight(), 2);
    }

    #[derive(Debug, Clone)]
    enum Op {
        LogIn(u8),
        Pause(u8),
        Resume(u8),
        LogOut(u8),
        Result(u8),
        Place(u8),
        Offer(u8),
        PlaceOffered(u8),
        Skip(u8),
        Answer(u8),
        NotAnswer(u8),
        Bridge(u8),
        HangUp(u8),
        CallerLeft(u8),
        Inbound,
        Cancel(u8),
        Gone(u8),
        Wait(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        let id = 0u8..12;
        prop_oneof![
            id.clone().prop_map(Op::LogIn),
            id.clone().prop_map(Op::Pause),
            id.clone().prop_map(Op::Resume),
            id.clone().prop_map(Op::LogOut),
            id.clone().prop_map(Op::Result),
            id.clone().prop_map(Op::Place),
            id.clone().prop_map(Op::Offer),
            id.clone().prop_map(Op::PlaceOffered),
            id.clone().prop_map(Op::Skip),
            id.clone().prop_map(Op::Answer),
            id.clone().prop_map(Op::NotAnswer),
            id.clone().prop_map(Op::Bridge),
            id.clone().prop_map(Op::HangUp),
            id.clone().prop_map(Op::CallerLeft),
            id.clone().prop_map(Op::Skip),
            Just(Op::Inbound),
            id.clone().prop_map(Op::Cancel),
            id.prop_map(Op::Gone),
            (0u16..8000).prop_map(Op::Wait),
        ]
    }

    #[test]
    fn oldest_ringing_lists_calls_without_an_agent_by_age() {
        let mut q = queue(1);
        place(&mut q, 1, 0.0);
        place(&mut q, 2, 1.0);
        place(&mut q, 3, 2.0);
        place(&mut q, 4, 10.0);
        q.handle(Input::Answered(CallId(1)), secs(16.0)).unwrap();
        let old = |n| q.oldest_ringing(Duration::from_secs(15), n, secs(17.5));
        // 1 is answered, 4 too young: 2 then 3.
        assert_eq!(old(5), [CallId(2), CallId(3)]);
        assert_eq!(old(1), [CallId(2)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever happens, in whatever order, no agent holds two calls, no call has two
        /// agents, and placed = answered + not answered + in flight, answered = connected +
        /// abandoned.
        #[test]
        fn agents_and_calls_stay_consistent(ops in proptest::collection::vec(op(), 1..200)) {
            let mut q = Queue::new(QueueConfig {
                timers: AgentTimers {
                    wrap_up: Duration::from_secs(5),
                    max_talk: Duration::from_secs(30),
                    max_pause: Duration::from_secs(20),
                },
                offer_timeout: Duration::from_secs(4),
                preview_ring_timeout: Duration::from_secs(6),
                ..QueueConfig::default()
            });
            let n_agents = 4u8;
            for _ in 0..n_agents {
                q.add_agent(Time(0));
            }
            let mut now = Time(0);
            let mut next_call = 1000u64;
            for op in ops {
                let agent = |i: u8| AgentId(u32::from(i % n_agents));
                let call = |i: u8| CallId(u64::from(i));
                // Refused inputs are fine; they must leave the queue consistent.
                let _ = match op {
                    Op::LogIn(a) => q.handle(Input::Agent(agent(a), AgentEvent::LogIn), now),
                    Op::Pause(a) => q.handle(Input::Agent(agent(a), AgentEvent::Pause("p".into())), now),
                    Op::Resume(a) => q.handle(Input::Agent(agent(a), AgentEvent::Resume), now),
                    Op::LogOut(a) => q.handle(Input::Agent(agent(a), AgentEvent::LogOut), now),
                    Op::Result(a) => {
                        let c = q.agents()[agent(a).0 as usize].state().call().unwrap_or(CallId(0));
                        q.handle(Input::Agent(agent(a), AgentEvent::RecordResult(c)), now)
                    }
                    Op::Place(c) => q.handle(Input::Placed { call: call(c), agent: None }, now),
                    Op::Offer(c) => q.offer(call(c), now).map(|_| ()),
                    Op::PlaceOffered(a) => {
                        let c = q.agents()[agent(a).0 as usize].state().call().unwrap_or(CallId(0));
                        q.handle(Input::Placed { call: c, agent: Some(agent(a)) }, now)
                    }
                    Op::Skip(c) => q.handle(Input::Skipped(call(c)), now),
                    Op::Answer(c) => q.handle(Input::Answered(call(c)), now),
                    Op::NotAnswer(c) => q.handle(Input::NotAnswered(call(c), CallEnd::RingTimeout), now),
                    Op::Bridge(c) => q.handle(Input::Bridged(call(c)), now),
                    Op::HangUp(c) => q.handle(Input::HungUp(call(c)), now),
                    Op::CallerLeft(c) => q.handle(Input::CallerLeft(call(c)), now),
                    Op::Cancel(c) => q.handle(Input::Cancelling(call(c)), now),
                    Op::Gone(a) => q.handle(Input::AgentGone(agent(a)), now),
                    Op::Inbound => {
                        next_call += 1;
                        q.handle(
                            Input::Inbound {
                                call: CallId(next_call),
                                max_wait: Duration::from_secs(5),
                                owner: None,
                            },
                            now,
                        )
                    }
                    Op::Wait(ms) => {
                        now = now + Duration::from_millis(u64::from(ms));
                        q.handle_timeout(now)
                    }
                };
                q.drain_outputs().for_each(drop);
                if let Err(e) = q.check_invariants() {
                    prop_assert!(false, "{e}");
                }
            }
        }
    }
}
