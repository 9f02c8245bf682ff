//! The campaign core, sans-IO: one call task's queue, pacer, learned statistics and abandon
//! ledger, tied together. `dialerd simulate` and the live driver both run it, so what the
//! simulator measures is what the daemon does.
//!
//! The driver tells it what happened ([`Input`]) and carries out what it asks ([`Output`]):
//!
//! ```text
//! loop {
//!     wait for the next SIP / agent / store event, or until campaign.poll_timeout();
//!     campaign.handle(input, now)            // for each event
//!     campaign.handle_timeout(now)           // when poll_timeout() <= now
//!     for o in campaign.drain_outputs() { lease contacts, place, CANCEL, bridge, … }
//! }
//! ```
//!
//! Pacing decisions are taken in [`Campaign::handle_timeout`] once the outputs asked for so
//! far have been drained (decisions are made on a settled queue), when something changed
//! since the last one or its `next_check` came. The numbers of a decision become a
//! [`Output::Lease`] (answered with [`Input::Leased`]: the calls are placed, or offered to
//! agents in preview, as contacts come back) and [`Output::Cancel`]s for the oldest calls
//! ringing that the pacer wants hung up. A cancelled call stays in flight until the driver
//! reports its end: [`Input::Failed`] (the CANCEL won) or [`Input::Answered`] (a 200 OK
//! crossed it: the person is put through or abandoned with the safe-harbour message, never
//! dropped unheard).
//!
//! Every attempt ends in exactly one [`Output::RecordAttempt`]: when it fails, is abandoned,
//! or when the agent's wrap-up ends. [`Output::Persist`] says the statistics or the ledger
//! changed: the driver saves [`Campaign::persisted`] (debounced as it likes) and a restarted
//! daemon starts from it ([`Campaign::new`]), so a cold start does not over-dial. Time is
//! whatever epoch the driver uses, the same across restarts (the daemon: Unix milliseconds).

use super::abandon::AbandonLedger;
use super::agent::{Agent, AgentEvent, AgentStateKind};
use super::outcome::{self, CallEnd, Detail};
use super::pacing::{Decision, DialMode, Pacer, PacerConfig, Rule, Snapshot};
use super::queue::{self, Queue, QueueConfig};
use super::stats::{CallStats, StatsConfig, StatsSnapshot};
use super::{AgentId, CallId, DialerError, Time};
use std::collections::HashMap;
use std::time::Duration;

/// A contact of the call task, as the store names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ContactId(pub i64);

/// A campaign core's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignConfig {
    /// The queue's time limits.
    pub queue: QueueConfig,
    /// The pacer's mode and limits.
    pub pacer: PacerConfig,
    /// What the statistics remember.
    pub stats: StatsConfig,
    /// Calls per second at most (the trunks' share for this task).
    pub max_cps: f64,
    /// How long to wait before asking for contacts again after a lease came back empty.
    pub empty_lease_backoff: Duration,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            queue: QueueConfig::default(),
            pacer: PacerConfig::default(),
            stats: StatsConfig::default(),
            max_cps: 10.0,
            empty_lease_backoff: Duration::from_secs(5),
        }
    }
}

/// What the driver tells the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The agent logged in and is ready.
    AgentLoggedIn(AgentId),
    /// The agent is ready again after a pause (or drops a pause asked for during a call).
    AgentReady(AgentId),
    /// The agent pauses, with a reason (after the call in hand, if any).
    AgentPaused(AgentId, String),
    /// The agent logs out (after the call in hand, if any).
    AgentLoggedOut(AgentId),
    /// The agent recorded the result of `call`: wrap-up ends.
    WrapUpEnded {
        /// The agent.
        agent: AgentId,
        /// The call wrapped up.
        call: CallId,
        /// The agent's disposition.
        result: String,
    },
    /// The agent's phone leg dropped: the session ends (the agent is logged out; a customer
    /// they were talking to is hung up, one being put through waits for another agent).
    AgentLegLost(AgentId),
    /// Contacts leased for the last [`Output::Lease`]; empty when none is available.
    Leased(Vec<ContactId>),
    /// Preview: the agent accepted the contact offered as `call`; it is placed.
    PreviewAccepted(CallId),
    /// Preview: the agent skipped the contact offered as `call`.
    PreviewSkipped(CallId),
    /// The far end is ringing (180/183); the attempt's age counts from its placing.
    Ringing(CallId),
    /// A person answered (200 OK), also when the 200 crossed our CANCEL.
    Answered(CallId),
    /// The attempt ended without a person (see [`outcome::call_end`] for SIP failures); for
    /// a cancelled call, the CANCEL's own end.
    Failed(CallId, CallEnd),
    /// The driver bridged the customer to the agent named by [`Output::Bridge`].
    Bridged(CallId),
    /// The customer hung up: during the talk (the agent goes to wrap-up), or while waiting
    /// for an agent (counted as abandoned).
    CustomerHungUp(CallId),
}

/// How an attempt ended, for the contact's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// No person: busy, no answer (also when the pacer hung it up), invalid, failure.
    NotAnswered(CallEnd),
    /// A person answered and no agent took them in time (or they left first).
    Abandoned,
    /// An inbound caller hung up before an agent took the call.
    MissedCall,
    /// An inbound caller waited as long as the line lets them: they were told they will be
    /// called back.
    MissedCallback,
    /// Put through to `agent`; `result` is their disposition, `None` when the wrap-up time
    /// ran out or their leg was lost (the task's default result applies).
    Connected {
        /// The agent.
        agent: AgentId,
        /// The disposition.
        result: Option<String>,
    },
}

impl AttemptOutcome {
    /// The contact's status detail for a failed attempt (`None` when a person was put
    /// through: the agent's result is the detail).
    pub fn detail(&self) -> Option<Detail> {
        match self {
            AttemptOutcome::NotAnswered(end) => Some(outcome::detail(*end)),
            AttemptOutcome::Abandoned => Some(Detail::Abandoned),
            AttemptOutcome::MissedCall
            | AttemptOutcome::MissedCallback
            | AttemptOutcome::Connected { .. } => None,
        }
    }
}

/// What the core asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Lease up to this many callable contacts; answer with [`Input::Leased`].
    Lease(u32),
    /// Give these leased contacts back unused.
    Unlease(Vec<ContactId>),
    /// Preview: show the contact to the agent (reserved for it); answer with
    /// [`Input::PreviewAccepted`] or [`Input::PreviewSkipped`].
    Offer {
        /// The call it becomes.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// The contact.
        contact: ContactId,
    },
    /// Place the call (INVITE); it counts as ringing from now.
    Place {
        /// The call.
        call: CallId,
        /// Whom to call.
        contact: ContactId,
        /// The agent already reserved for it (preview).
        agent: Option<AgentId>,
    },
    /// Hang up the ringing call (CANCEL); its end still comes as [`Input::Failed`], or as
    /// [`Input::Answered`] when a 200 OK crossed the CANCEL.
    Cancel(CallId),
    /// Bridge the customer to the agent (reserved for it); confirm with [`Input::Bridged`].
    Bridge {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// Nobody took the answered person in time: play the safe-harbour message, hang up.
    Abandon(CallId),
    /// An inbound caller waited as long as they may: tell them they will be called back,
    /// hang up.
    CallBackLater(CallId),
    /// Hang up the connected call (its agent's leg is gone, or it ran past `max_talk`).
    HangUp(CallId),
    /// Record the attempt on the contact (its retry follows [`outcome::RetryPolicy`]).
    RecordAttempt {
        /// The call.
        call: CallId,
        /// The contact.
        contact: ContactId,
        /// How it ended.
        outcome: AttemptOutcome,
    },
    /// The agent's state changed (for the agent's screen, events and metrics).
    AgentState {
        /// The agent.
        agent: AgentId,
        /// Its new state.
        state: AgentStateKind,
    },
    /// The statistics or the abandon ledger changed: save [`Campaign::persisted`].
    Persist,
}

/// What a campaign core keeps across restarts (serde), one per call task.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Persisted {
    /// The campaign's abandon counts, 24 h and 30 days.
    pub ledger: AbandonLedger,
    /// The learned statistics.
    pub stats: StatsSnapshot,
}

/// How many pacing decisions each rule took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Decisions {
    /// The configured mode.
    pub mode: u64,
    /// Predictive still learning: progressive.
    pub warming_up: u64,
    /// The abandon rate at the hard cap: progressive.
    pub abandon_cap: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Preview: shown to the agent, not placed.
    Offered,
    /// Placed, no final answer yet.
    Ringing,
    /// CANCEL sent after ringing this long.
    Cancelling(Duration),
    /// Answered, being served (waiting, bridging).
    Answered,
    /// With its agent, from the bridge on.
    Talking(Time),
    /// Hung up; the agent wraps up.
    WrapUp,
}

#[derive(Debug, Clone, Copy)]
struct Call {
    contact: ContactId,
    placed: Time,
    agent: Option<AgentId>,
    phase: Phase,
    /// The contact called in (a callback), no attempt of ours.
    inbound: bool,
}

/// One call task's dialing: queue, pacer, statistics and ledger.
#[derive(Debug, Clone)]
pub struct Campaign {
    config: CampaignConfig,
    queue: Queue,
    pacer: Pacer,
    stats: CallStats,
    ledger: AbandonLedger,
    calls: HashMap<CallId, Call>,
    next_call: u64,
    snap: Snapshot,
    outputs: Vec<Output>,
    /// Something changed at this time: decide again.
    changed: Option<Time>,
    next_check: Time,
    /// Calls the last decision asked for, while its lease is out.
    leasing: Option<Lease>,
    /// No contacts: do not ask again before this.
    lease_after: Time,
    decisions: Decisions,
    persist: bool,
    /// Each agent's state as last reported.
    reported: Vec<AgentStateKind>,
    /// The queue's outputs being absorbed come from an agent's lost leg.
    agent_lost: bool,
    /// Particular callbacks due, kept for their owners.
    held: Vec<Held>,
}

/// A particular callback due, leased and kept for its owner until `until`.
#[derive(Debug, Clone, Copy)]
struct Held {
    contact: ContactId,
    owner: AgentId,
    until: Time,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    wanted: u32,
    preview: bool,
}

impl Campaign {
    /// A core with no agents, starting from what a previous run persisted (if any).
    pub fn new(config: CampaignConfig, persisted: Option<&Persisted>) -> Result<Self, DialerError> {
        let (stats, ledger) = match persisted {
            None => (CallStats::new(config.stats), AbandonLedger::new()),
            Some(p) => (
                CallStats::restore(config.stats, &p.stats).map_err(DialerError::Snapshot)?,
                p.ledger.clone(),
            ),
        };
        Ok(Campaign {
            queue: Queue::new(config.queue),
            pacer: Pacer::new(config.pacer),
            config,
            stats,
            ledger,
            calls: HashMap::new(),
            next_call: 1,
            snap: Snapshot::default(),
            outputs: Vec::new(),
            changed: None,
            next_check: Time::ZERO,
            leasing: None,
            lease_after: Time::ZERO,
            decisions: Decisions::default(),
            persist: false,
            reported: Vec::new(),
            agent_lost: false,
            held: Vec::new(),
        })
    }

    /// Adds a logged-out agent to the queue.
    pub fn add_agent(&mut self, now: Time) -> AgentId {
        self.reported.push(AgentStateKind::LoggedOut);
        self.queue.add_agent(now)
    }

    /// The queue's agents.
    pub fn agents(&self) -> &[Agent] {
        self.queue.agents()
    }

    /// The queue (its counters, calls in flight, invariants).
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// The learned statistics.
    pub fn stats(&self) -> &CallStats {
        &self.stats
    }

    /// The campaign's abandon ledger.
    pub fn ledger(&self) -> &AbandonLedger {
        &self.ledger
    }

    /// How many decisions each pacing rule took so far.
    pub fn decisions(&self) -> Decisions {
        self.decisions
    }

    /// What to save so a restart starts from here.
    pub fn persisted(&self) -> Persisted {
        Persisted {
            ledger: self.ledger.clone(),
            stats: self.stats.snapshot(),
        }
    }

    /// Takes the actions asked for since the last call.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.persist = false;
        self.outputs.drain(..)
    }

    /// When [`Campaign::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        // While a lease is out, the next decision waits for its answer.
        let decide = match (self.leasing, self.changed) {
            (Some(_), _) => None,
            (None, Some(t)) => Some(t),
            (None, None) => Some(self.next_check.max(self.lease_after)),
        };
        let held = self.held.iter().map(|h| h.until).min();
        [self.queue.poll_timeout(), decide, held]
            .into_iter()
            .flatten()
            .min()
    }

    /// Applies what the driver saw; refused inputs (unknown calls, events an agent's state
    /// does not allow) change nothing and say why.
    pub fn handle(&mut self, input: Input, now: Time) -> Result<(), DialerError> {
        let result = self.apply(input, now);
        self.absorb(now);
        self.serve_held(now);
        result
    }

    fn apply(&mut self, input: Input, now: Time) -> Result<(), DialerError> {
        use queue::Input as Q;
        let mut changed = true;
        match input {
            Input::AgentLoggedIn(a) => self.queue.handle(Q::Agent(a, AgentEvent::LogIn), now)?,
            Input::AgentReady(a) => self.queue.handle(Q::Agent(a, AgentEvent::Resume), now)?,
            Input::AgentPaused(a, why) => self
                .queue
                .handle(Q::Agent(a, AgentEvent::Pause(why)), now)?,
            Input::AgentLoggedOut(a) => self.queue.handle(Q::Agent(a, AgentEvent::LogOut), now)?,
            Input::WrapUpEnded {
                agent,
                call,
                result,
            } => {
                let since = self.agent(agent)?.since();
                self.queue
                    .handle(Q::Agent(agent, AgentEvent::RecordResult(call)), now)?;
                self.stats.record_wrap_up(now.since(since));
                self.persist();
                self.wrapped_up(call, agent, Some(result));
            }
            Input::AgentLegLost(a) => {
                self.agent(a)?;
                self.queue.handle(Q::AgentGone(a), now)?;
                self.agent_lost = true;
            }
            Input::Leased(contacts) => {
                self.leased(contacts, now)?;
                // The decision already counted these calls.
                changed = false;
            }
            Input::PreviewAccepted(call) => {
                let c = self.call(call, Phase::Offered)?;
                self.queue.handle(
                    Q::Placed {
                        call,
                        agent: c.agent,
                    },
                    now,
                )?;
                self.set(call, Phase::Ringing, now);
                self.outputs.push(Output::Place {
                    call,
                    contact: c.contact,
                    agent: c.agent,
                });
            }
            Input::PreviewSkipped(call) => {
                let c = self.call(call, Phase::Offered)?;
                self.queue.handle(Q::Skipped(call), now)?;
                self.calls.remove(&call);
                self.outputs.push(Output::Unlease(vec![c.contact]));
            }
            Input::Ringing(call) => {
                self.call(call, Phase::Ringing)?;
                changed = false;
            }
            Input::Answered(call) => {
                let c = self.ringing(call)?;
                self.queue.handle(Q::Answered(call), now)?;
                self.stats.record_live_answer(now.since(c.placed));
                self.persist();
                self.set(call, Phase::Answered, now);
            }
            Input::Failed(call, end) => {
                let c = self.ringing(call)?;
                self.queue.handle(Q::NotAnswered(call, end), now)?;
                match c.phase {
                    Phase::Cancelling(age) => {
                        // The pacer's own hang-up: it already stopped counting the call.
                        self.stats.record_hung_up(age);
                        changed = false;
                    }
                    _ if end.teaches_answer_rate() => {
                        self.stats.record_not_live(now.since(c.placed))
                    }
                    _ => {}
                }
                self.persist();
                self.calls.remove(&call);
                let end = match c.phase {
                    Phase::Cancelling(_) => CallEnd::RingTimeout,
                    _ => end,
                };
                self.record(call, c.contact, AttemptOutcome::NotAnswered(end));
            }
            Input::Bridged(call) => {
                let c = self.call(call, Phase::Answered)?;
                self.queue.handle(Q::Bridged(call), now)?;
                // Callers who called us are no answers to our dialling.
                if !c.inbound {
                    self.ledger.record(now, false);
                    self.persist();
                }
                self.set(call, Phase::Talking(now), now);
            }
            Input::CustomerHungUp(call) => {
                let c = self.calls.get(&call).copied();
                match c.map(|c| c.phase) {
                    Some(Phase::Talking(since)) => {
                        self.queue.handle(Q::HungUp(call), now)?;
                        self.stats.record_talk(now.since(since));
                        self.persist();
                        self.set(call, Phase::WrapUp, now);
                    }
                    Some(Phase::Answered) if c.is_some_and(|c| c.inbound) => {
                        self.queue.handle(Q::CallerLeft(call), now)?;
                        if let Some(c) = self.calls.remove(&call) {
                            self.record(call, c.contact, AttemptOutcome::MissedCall);
                        }
                    }
                    Some(Phase::Answered) => {
                        self.queue.handle(Q::CallerLeft(call), now)?;
                        self.abandoned(call, now);
                    }
                    _ => return Err(DialerError::UnknownCall(call, "customer hung up")),
                }
            }
        }
        if changed {
            self.changed = Some(self.changed.map_or(now, |t| t.min(now)));
        }
        Ok(())
    }

    /// A contact called in (`contact`, already answered or ringing on our side): the call
    /// waits for an agent ahead of outbound calls, at most `max_wait`; with `owner`, it is
    /// kept for that agent for the given grace first. Its id, for the inputs that follow
    /// (`Bridged`, `CustomerHungUp`, `WrapUpEnded`).
    pub fn inbound(
        &mut self,
        contact: ContactId,
        max_wait: Duration,
        owner: Option<(AgentId, Duration)>,
        now: Time,
    ) -> Result<CallId, DialerError> {
        let call = CallId(self.next_call);
        self.next_call += 1;
        self.calls.insert(
            call,
            Call {
                contact,
                placed: now,
                agent: None,
                phase: Phase::Answered,
                inbound: true,
            },
        );
        let input = queue::Input::Inbound {
            call,
            max_wait,
            owner: owner.map(|(a, grace)| (a, now + grace)),
        };
        if let Err(e) = self.queue.handle(input, now) {
            self.calls.remove(&call);
            return Err(e);
        }
        self.absorb(now);
        self.changed = Some(self.changed.map_or(now, |t| t.min(now)));
        Ok(call)
    }

    /// The outbound `call` is to a contact `agent` owns: answered while the agent is ready,
    /// it goes to them.
    pub fn prefer(&mut self, call: CallId, agent: AgentId) {
        self.queue.prefer(call, agent);
    }

    /// `contact` (leased) is a particular callback due now, kept for `owner` until `until`:
    /// placed with the owner reserved for it as soon as they are ready (offered to them in
    /// preview), so no answered contact waits; given back unused ([`Output::Unlease`]) at
    /// `until`, when any agent may take it.
    pub fn hold_for_owner(
        &mut self,
        contact: ContactId,
        owner: AgentId,
        until: Time,
        now: Time,
    ) -> Result<(), DialerError> {
        self.agent(owner)?;
        self.held.push(Held {
            contact,
            owner,
            until,
        });
        self.serve_held(now);
        Ok(())
    }

    /// The particular callbacks held: `(contact, owner)`.
    pub fn held(&self) -> Vec<(ContactId, AgentId)> {
        self.held.iter().map(|h| (h.contact, h.owner)).collect()
    }

    /// Places (or offers) each held callback whose owner is ready; gives back those whose
    /// grace ended.
    fn serve_held(&mut self, now: Time) {
        // Runs after every input: nothing to do, nothing to absorb, in the usual case.
        if self.held.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.held.len() {
            let h = self.held[i];
            if now >= h.until {
                self.held.remove(i);
                self.outputs.push(Output::Unlease(vec![h.contact]));
                continue;
            }
            let call = CallId(self.next_call);
            match self.queue.offer_to(call, h.owner, now) {
                Ok(Some(agent)) => {
                    self.next_call += 1;
                    self.held.remove(i);
                    self.take_held(call, h.contact, agent, now);
                }
                Ok(None) => i += 1,
                Err(_) => {
                    // Cannot happen (a fresh id); the contact goes back rather than stay held.
                    self.held.remove(i);
                    self.outputs.push(Output::Unlease(vec![h.contact]));
                }
            }
        }
        self.absorb(now);
    }

    /// The owner is reserved for `call`: in preview they see it first, else it is placed.
    fn take_held(&mut self, call: CallId, contact: ContactId, agent: AgentId, now: Time) {
        let preview = self.pacer.config().mode == DialMode::Preview;
        let phase = if preview {
            Phase::Offered
        } else {
            Phase::Ringing
        };
        self.track(call, contact, Some(agent), phase, now);
        if preview {
            self.outputs.push(Output::Offer {
                call,
                agent,
                contact,
            });
            return;
        }
        let placed = queue::Input::Placed {
            call,
            agent: Some(agent),
        };
        if self.queue.handle(placed, now).is_err() {
            self.calls.remove(&call);
            self.outputs.push(Output::Unlease(vec![contact]));
            return;
        }
        self.outputs.push(Output::Place {
            call,
            contact,
            agent: Some(agent),
        });
    }

    /// Callers waiting for an agent now.
    pub fn waiting_inbound(&self) -> Vec<(CallId, ContactId, Time)> {
        let mut w: Vec<(CallId, ContactId, Time)> = self
            .calls
            .iter()
            .filter(|(_, c)| c.inbound && c.phase == Phase::Answered)
            .map(|(id, c)| (*id, c.contact, c.placed))
            .collect();
        w.sort_unstable_by_key(|x| (x.2, x.0));
        w
    }

    /// Runs what is due at `now`: the queue's timeouts, then (once the outputs asked for so far
    /// were drained) a pacing decision if something changed or its time came.
    pub fn handle_timeout(&mut self, now: Time) -> Result<(), DialerError> {
        if self.queue.poll_timeout().is_some_and(|t| t <= now) {
            self.queue.handle_timeout(now)?;
            self.absorb(now);
            self.changed = Some(self.changed.map_or(now, |t| t.min(now)));
        }
        // Owners first: the pacer then sees them reserved.
        self.serve_held(now);
        if !self.outputs.is_empty() || self.leasing.is_some() {
            return Ok(());
        }
        let due = self.changed.is_some() || now >= self.next_check;
        if due {
            self.decide(now)?;
        }
        Ok(())
    }

    fn decide(&mut self, now: Time) -> Result<(), DialerError> {
        self.changed = None;
        self.queue.snapshot(now, &mut self.snap);
        let d: Decision = self.pacer.decide(
            &self.snap,
            &self.stats,
            &self.ledger,
            self.config.max_cps,
            now,
        );
        match d.rule {
            Rule::Mode => self.decisions.mode += 1,
            Rule::WarmingUp => self.decisions.warming_up += 1,
            Rule::AbandonCap => self.decisions.abandon_cap += 1,
        }
        self.next_check = d.next_check;
        for call in self
            .queue
            .oldest_ringing(d.cancel_after, d.cancel as usize, now)
        {
            let Some(c) = self.calls.get_mut(&call) else {
                continue;
            };
            self.queue.handle(queue::Input::Cancelling(call), now)?;
            c.phase = Phase::Cancelling(now.since(c.placed));
            self.outputs.push(Output::Cancel(call));
        }
        if d.place > 0 && now >= self.lease_after {
            self.leasing = Some(Lease {
                wanted: d.place,
                preview: self.pacer.config().mode == DialMode::Preview,
            });
            self.outputs.push(Output::Lease(d.place));
        }
        Ok(())
    }

    fn leased(&mut self, contacts: Vec<ContactId>, now: Time) -> Result<(), DialerError> {
        let Some(lease) = self.leasing.take() else {
            if !contacts.is_empty() {
                self.outputs.push(Output::Unlease(contacts));
            }
            return Err(DialerError::UnexpectedLease);
        };
        if contacts.is_empty() {
            self.lease_after = now + self.config.empty_lease_backoff;
            return Ok(());
        }
        let mut unused = Vec::new();
        for (i, contact) in contacts.into_iter().enumerate() {
            if i as u32 >= lease.wanted {
                unused.push(contact);
                continue;
            }
            let call = CallId(self.next_call);
            self.next_call += 1;
            if lease.preview {
                match self.queue.offer(call, now)? {
                    Some(agent) => {
                        self.track(call, contact, Some(agent), Phase::Offered, now);
                        self.outputs.push(Output::Offer {
                            call,
                            agent,
                            contact,
                        });
                    }
                    None => unused.push(contact),
                }
            } else {
                self.queue
                    .handle(queue::Input::Placed { call, agent: None }, now)?;
                self.track(call, contact, None, Phase::Ringing, now);
                self.outputs.push(Output::Place {
                    call,
                    contact,
                    agent: None,
                });
            }
        }
        if !unused.is_empty() {
            self.outputs.push(Output::Unlease(unused));
        }
        Ok(())
    }

    /// Starts following an outbound `call` to `contact`, placed (or offered) now.
    fn track(
        &mut self,
        call: CallId,
        contact: ContactId,
        agent: Option<AgentId>,
        phase: Phase,
        now: Time,
    ) {
        let c = Call {
            contact,
            placed: now,
            agent,
            phase,
            inbound: false,
        };
        self.calls.insert(call, c);
    }

    /// Turns the queue's outputs into the driver's, and reports agents whose state changed.
    fn absorb(&mut self, now: Time) {
        let outs: Vec<queue::Output> = self.queue.drain_outputs().collect();
        for o in outs {
            match o {
                queue::Output::Connect { call, agent } => {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.agent = Some(agent);
                    }
                    self.outputs.push(Output::Bridge { call, agent });
                }
                queue::Output::Abandon(call) => {
                    self.outputs.push(Output::Abandon(call));
                    self.abandoned(call, now);
                }
                queue::Output::HangUp(call) => match self.calls.get(&call).map(|c| c.phase) {
                    // A preview call that rang past its agent's reservation.
                    Some(Phase::Ringing) => {
                        let c = self.calls.remove(&call).expect("just found");
                        self.outputs.push(Output::Cancel(call));
                        self.record(
                            call,
                            c.contact,
                            AttemptOutcome::NotAnswered(CallEnd::RingTimeout),
                        );
                    }
                    Some(_) => {
                        self.set(call, Phase::WrapUp, now);
                        self.outputs.push(Output::HangUp(call));
                    }
                    None => {}
                },
                queue::Output::WrapUpExpired { call, agent } => {
                    // The full wrap-up time (not an agent lost mid-call) is what was learned.
                    if !self.agent_lost {
                        self.stats.record_wrap_up(self.config.queue.timers.wrap_up);
                        self.persist();
                    }
                    self.wrapped_up(call, agent, None);
                }
                queue::Output::OfferExpired(call) => {
                    if let Some(c) = self.calls.remove(&call) {
                        self.outputs.push(Output::Unlease(vec![c.contact]));
                    }
                }
                queue::Output::InboundTimedOut(call) => {
                    self.outputs.push(Output::CallBackLater(call));
                    if let Some(c) = self.calls.remove(&call) {
                        self.record(call, c.contact, AttemptOutcome::MissedCallback);
                    }
                }
            }
        }
        self.agent_lost = false;
        for (i, a) in self.queue.agents().iter().enumerate() {
            let kind = a.state().kind();
            if self.reported[i] != kind {
                self.reported[i] = kind;
                self.outputs.push(Output::AgentState {
                    agent: a.id(),
                    state: kind,
                });
            }
        }
    }

    fn abandoned(&mut self, call: CallId, now: Time) {
        self.ledger.record(now, true);
        self.persist();
        if let Some(c) = self.calls.remove(&call) {
            self.record(call, c.contact, AttemptOutcome::Abandoned);
        }
    }

    fn wrapped_up(&mut self, call: CallId, agent: AgentId, result: Option<String>) {
        if let Some(c) = self.calls.remove(&call) {
            self.record(call, c.contact, AttemptOutcome::Connected { agent, result });
        }
    }

    fn record(&mut self, call: CallId, contact: ContactId, outcome: AttemptOutcome) {
        self.outputs.push(Output::RecordAttempt {
            call,
            contact,
            outcome,
        });
    }

    fn persist(&mut self) {
        if !self.persist {
            self.persist = true;
            self.outputs.push(Output::Persist);
        }
    }

    fn agent(&self, agent: AgentId) -> Result<&Agent, DialerError> {
        self.queue
            .agents()
            .get(agent.0 as usize)
            .ok_or(DialerError::UnknownAgent(agent))
    }

    fn call(&self, call: CallId, phase: Phase) -> Result<Call, DialerError> {
        match self.calls.get(&call) {
            Some(c) if c.phase == phase => Ok(*c),
            _ => Err(DialerError::UnknownCall(call, "this event")),
        }
    }

    /// A call placed and not answered yet (ringing or being cancelled).
    fn ringing(&self, call: CallId) -> Result<Call, DialerError> {
        match self.calls.get(&call) {
            Some(c) if matches!(c.phase, Phase::Ringing | Phase::Cancelling(_)) => Ok(*c),
            _ => Err(DialerError::UnknownCall(call, "an answer or an end")),
        }
    }

    fn set(&mut self, call: CallId, phase: Phase, _now: Time) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.phase = phase;
        }
    }

    /// Checks that the core and its queue agree: every call the queue holds is the core's,
    /// every call the core holds is in the queue or with an agent wrapping it up, and the
    /// queue's own invariants hold. Returns what is wrong.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.queue.check_invariants()?;
        for (id, c) in &self.calls {
            let held_by_agent = self
                .queue
                .agents()
                .iter()
                .any(|a| a.state().call() == Some(*id));
            let ok = match c.phase {
                Phase::Offered => held_by_agent,
                Phase::Ringing | Phase::Cancelling(_) | Phase::Answered => {
                    self.queue.in_flight_call(*id) || held_by_agent
                }
                Phase::Talking(_) | Phase::WrapUp => held_by_agent,
            };
            if !ok {
                return Err(format!(
                    "call {id} ({:?}) is lost: neither in the queue nor with an agent",
                    c.phase
                ));
            }
        }
        if self.queue.call_count() > self.calls.len() {
            return Err(format!(
                "the queue holds {} calls, the core {}",
                self.queue.call_count(),
                self.calls.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialer::agent::{AgentState, AgentTimers};
    use proptest::prelude::*;

    fn secs(s: f64) -> Time {
        Time::from_secs_f64(s)
    }

    /// A predictive core that has learned a 20 % answer rate, with `n` agents logged in.
    fn learned_core(n: usize) -> Campaign {
        let persisted = Persisted {
            ledger: AbandonLedger::new(),
            stats: crate::dialer::predictive::tests::learned().snapshot(),
        };
        let config = CampaignConfig {
            pacer: PacerConfig {
                mode: DialMode::Predictive,
                ..PacerConfig::default()
            },
            max_cps: 100.0,
            ..CampaignConfig::default()
        };
        let mut core = Campaign::new(config, Some(&persisted)).unwrap();
        for _ in 0..n {
            let a = core.add_agent(Time::ZERO);
            core.handle(Input::AgentLoggedIn(a), Time::ZERO).unwrap();
        }
        core
    }

    /// Runs what is due and answers leases; returns the other outputs.
    fn settle(core: &mut Campaign, now: Time, next_contact: &mut i64) -> Vec<Output> {
        let mut seen = Vec::new();
        loop {
            if core.poll_timeout().is_some_and(|t| t <= now) {
                core.handle_timeout(now).unwrap();
            }
            let outs: Vec<Output> = core.drain_outputs().collect();
            if outs.is_empty() {
                return seen;
            }
            for o in outs {
                if let Output::Lease(n) = o {
                    let contacts = (0..n)
                        .map(|_| {
                            *next_contact += 1;
                            ContactId(*next_contact)
                        })
                        .collect();
                    core.handle(Input::Leased(contacts), now).unwrap();
                } else {
                    seen.push(o);
                }
            }
        }
    }

    fn placed(outs: &[Output]) -> Vec<CallId> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Place { call, .. } => Some(*call),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_answer_crossing_the_cancel_is_put_through_not_dropped() {
        let mut core = learned_core(4);
        let mut contact = 0;
        let calls = placed(&settle(&mut core, secs(0.0), &mut contact));
        assert!(calls.len() >= 5, "{calls:?}");
        // Three people answer at once and take three agents; the rest keep ringing.
        for (i, call) in calls.iter().take(3).enumerate() {
            core.handle(Input::Answered(*call), secs(5.0)).unwrap();
            let outs = settle(&mut core, secs(5.0), &mut contact);
            assert!(
                outs.contains(&Output::Bridge {
                    call: *call,
                    agent: AgentId(i as u32)
                }),
                "{outs:?}"
            );
            core.handle(Input::Bridged(*call), secs(5.0)).unwrap();
        }
        // After 16 s of ringing, more answers are coming than one agent can take: the pacer
        // hangs some of the oldest up.
        let outs = settle(&mut core, secs(16.0), &mut contact);
        let cancelled: Vec<CallId> = outs
            .iter()
            .filter_map(|o| match o {
                Output::Cancel(c) => Some(*c),
                _ => None,
            })
            .collect();
        assert!(!cancelled.is_empty(), "{outs:?}");
        // The 200 OK crosses the CANCEL: the person is put through to the free agent.
        let crossed = cancelled[0];
        core.handle(Input::Answered(crossed), secs(16.1)).unwrap();
        let outs = settle(&mut core, secs(16.1), &mut contact);
        assert!(
            outs.contains(&Output::Bridge {
                call: crossed,
                agent: AgentId(3)
            }),
            "{outs:?}"
        );
        core.handle(Input::Bridged(crossed), secs(16.1)).unwrap();
        // A second crossing answer finds no agent: abandoned with the message after 2 s and
        // recorded, not lost.
        if let Some(&second) = cancelled.get(1) {
            core.handle(Input::Answered(second), secs(16.2)).unwrap();
            settle(&mut core, secs(16.2), &mut contact);
            let outs = settle(&mut core, secs(18.3), &mut contact);
            assert!(outs.contains(&Output::Abandon(second)), "{outs:?}");
            assert!(outs.contains(&Output::RecordAttempt {
                call: second,
                contact: core_contact(&outs, second),
                outcome: AttemptOutcome::Abandoned
            }));
        }
        // The other cancelled calls end as the CANCEL's 487: `$no_answer`, no new decision.
        for &c in cancelled.iter().skip(2) {
            core.handle(Input::Failed(c, CallEnd::Rejected(487)), secs(18.4))
                .unwrap();
            let outs: Vec<Output> = core.drain_outputs().collect();
            assert!(outs.iter().any(|o| matches!(o,
                Output::RecordAttempt { call, outcome: AttemptOutcome::NotAnswered(CallEnd::RingTimeout), .. } if *call == c)));
        }
        let k = core.queue().counters();
        assert_eq!(k.connected, 4);
        core.check_invariants().unwrap();
    }

    fn core_contact(outs: &[Output], call: CallId) -> ContactId {
        outs.iter()
            .find_map(|o| match o {
                Output::RecordAttempt {
                    call: c, contact, ..
                } if *c == call => Some(*contact),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn a_lost_agent_leg_hangs_up_the_customer_and_logs_the_agent_out() {
        let mut core = Campaign::new(CampaignConfig::default(), None).unwrap();
        let a = core.add_agent(Time::ZERO);
        core.handle(Input::AgentLoggedIn(a), Time::ZERO).unwrap();
        let mut contact = 0;
        let outs = settle(&mut core, secs(0.0), &mut contact);
        let call = placed(&outs)[0];
        core.handle(Input::Answered(call), secs(3.0)).unwrap();
        settle(&mut core, secs(3.0), &mut contact);
        core.handle(Input::Bridged(call), secs(3.0)).unwrap();
        core.handle(Input::AgentLegLost(a), secs(30.0)).unwrap();
        let outs: Vec<Output> = core.drain_outputs().collect();
        assert!(outs.contains(&Output::HangUp(call)), "{outs:?}");
        assert!(outs.contains(&Output::RecordAttempt {
            call,
            contact: ContactId(1),
            outcome: AttemptOutcome::Connected {
                agent: a,
                result: None
            }
        }));
        assert!(outs.contains(&Output::AgentState {
            agent: a,
            state: AgentStateKind::LoggedOut
        }));
        // Nobody to call for: nothing more is placed.
        assert!(placed(&settle(&mut core, secs(31.0), &mut contact)).is_empty());
        core.check_invariants().unwrap();
    }

    #[test]
    fn an_empty_lease_waits_before_asking_again() {
        let mut core = Campaign::new(CampaignConfig::default(), None).unwrap();
        let a = core.add_agent(Time::ZERO);
        core.handle(Input::AgentLoggedIn(a), Time::ZERO).unwrap();
        // Decisions wait until what was asked so far is drained.
        core.handle_timeout(Time::ZERO).unwrap();
        let outs: Vec<Output> = core.drain_outputs().collect();
        assert!(!outs.contains(&Output::Lease(1)), "{outs:?}");
        core.handle_timeout(Time::ZERO).unwrap();
        let outs: Vec<Output> = core.drain_outputs().collect();
        assert_eq!(outs, [Output::Lease(1)]);
        core.handle(Input::Leased(vec![]), Time::ZERO).unwrap();
        assert_eq!(core.poll_timeout(), Some(secs(5.0)));
        core.handle_timeout(secs(5.0)).unwrap();
        let outs: Vec<Output> = core.drain_outputs().collect();
        assert_eq!(outs, [Output::Lease(1)]);
        // A lease answered twice gives the extra contacts back.
        core.handle(Input::Leased(vec![ContactId(7), ContactId(8)]), secs(5.0))
            .unwrap();
        let outs: Vec<Output> = core.drain_outputs().collect();
        assert!(
            outs.contains(&Output::Unlease(vec![ContactId(8)])),
            "{outs:?}"
        );
        assert!(core
            .handle(Input::Leased(vec![ContactId(9)]), secs(5.0))
            .is_err());
        assert_eq!(
            core.drain_outputs().collect::<Vec<_>>(),
            [Output::Unlease(vec![ContactId(9)])]
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        LogIn(u8),
        Ready(u8),
        Pause(u8),
        LogOut(u8),
        Result(u8),
        LegLost(u8),
        Answer(u8),
        Fail(u8),
        CustomerHangUp(u8),
        Bridge(u8),
        Accept(u8),
        Skip(u8),
        EmptyLease,
        Wait(u16),
        /// A particular callback due for this agent.
        Hold(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let id = 0u8..16;
        prop_oneof![
            id.clone().prop_map(Op::LogIn),
            id.clone().prop_map(Op::Ready),
            id.clone().prop_map(Op::Pause),
            id.clone().prop_map(Op::LogOut),
            id.clone().prop_map(Op::Result),
            id.clone().prop_map(Op::LegLost),
            id.clone().prop_map(Op::Answer),
            id.clone().prop_map(Op::Answer),
            id.clone().prop_map(Op::Fail),
            id.clone().prop_map(Op::CustomerHangUp),
            id.clone().prop_map(Op::Bridge),
            id.clone().prop_map(Op::Hold),
            id.clone().prop_map(Op::Bridge),
            id.clone().prop_map(Op::Accept),
            id.prop_map(Op::Skip),
            Just(Op::EmptyLease),
            (0u16..20_000).prop_map(Op::Wait),
        ]
    }

    /// The driver's view in the property test: what it was asked and has not answered.
    #[derive(Default)]
    struct Driver {
        contact: i64,
        empty_next: bool,
        /// Calls placed and not ended, in order.
        live: Vec<CallId>,
        offered: Vec<CallId>,
        bridging: Vec<CallId>,
        placed: u64,
        recorded: std::collections::HashSet<CallId>,
        /// Particular callbacks held and neither placed, offered nor given back yet.
        held: std::collections::HashSet<ContactId>,
    }

    impl Driver {
        fn settle(&mut self, core: &mut Campaign, now: Time) -> Result<(), String> {
            loop {
                if core.poll_timeout().is_some_and(|t| t <= now) {
                    core.handle_timeout(now).map_err(|e| e.to_string())?;
                }
                let outs: Vec<Output> = core.drain_outputs().collect();
                if outs.is_empty() {
                    return Ok(());
                }
                for o in outs {
                    match o {
                        Output::Lease(n) => {
                            let contacts = if std::mem::take(&mut self.empty_next) {
                                vec![]
                            } else {
                                (0..n)
                                    .map(|_| {
                                        self.contact += 1;
                                        ContactId(self.contact)
                                    })
                                    .collect()
                            };
                            core.handle(Input::Leased(contacts), now)
                                .map_err(|e| e.to_string())?;
                        }
                        Output::Place { call, contact, .. } => {
                            self.placed += 1;
                            self.held.remove(&contact);
                            self.offered.retain(|c| *c != call);
                            self.live.push(call);
                        }
                        Output::Offer { call, contact, .. } => {
                            self.held.remove(&contact);
                            self.offered.push(call);
                        }
                        Output::Unlease(contacts) => {
                            for c in contacts {
                                self.held.remove(&c);
                            }
                        }
                        Output::Bridge { call, .. } => self.bridging.push(call),
                        Output::RecordAttempt { call, .. } => {
                            if !self.recorded.insert(call) {
                                return Err(format!("call {call} recorded twice"));
                            }
                            self.live.retain(|c| *c != call);
                        }
                        // A cancelled call stays live until its end or a crossing answer.
                        Output::Cancel(_)
                        | Output::Abandon(_)
                        | Output::CallBackLater(_)
                        | Output::HangUp(_)
                        | Output::AgentState { .. }
                        | Output::Persist => {}
                    }
                }
            }
        }
    }

    /// A progressive core with `n` agents logged in and nobody to call: only callers.
    fn callers_core(n: usize) -> (Campaign, Vec<AgentId>) {
        let mut core = Campaign::new(CampaignConfig::default(), None).unwrap();
        let agents = (0..n)
            .map(|_| {
                let a = core.add_agent(Time::ZERO);
                core.handle(Input::AgentLoggedIn(a), Time::ZERO).unwrap();
                a
            })
            .collect();
        (core, agents)
    }

    /// Runs what is due, answering every lease with no contacts; the other outputs.
    fn callers_settle(core: &mut Campaign, now: Time) -> Vec<Output> {
        let mut seen = Vec::new();
        loop {
            if core.poll_timeout().is_some_and(|t| t <= now) {
                core.handle_timeout(now).unwrap();
            }
            let outs: Vec<Output> = core.drain_outputs().collect();
            if outs.is_empty() {
                return seen;
            }
            for o in outs {
                match o {
                    Output::Lease(_) => core.handle(Input::Leased(Vec::new()), now).unwrap(),
                    Output::AgentState { .. } | Output::Persist => {}
                    o => seen.push(o),
                }
            }
        }
    }

    #[test]
    fn a_caller_goes_to_a_ready_agent_and_is_no_answer_in_the_abandon_ledger() {
        let (mut core, agents) = callers_core(1);
        callers_settle(&mut core, secs(0.0));
        let call = core
            .inbound(ContactId(7), Duration::from_secs(30), None, secs(1.0))
            .unwrap();
        let outs = callers_settle(&mut core, secs(1.0));
        assert_eq!(
            outs,
            [Output::Bridge {
                call,
                agent: agents[0]
            }]
        );
        core.handle(Input::Bridged(call), secs(1.1)).unwrap();
        core.handle(Input::CustomerHungUp(call), secs(20.0))
            .unwrap();
        let wrap = Input::WrapUpEnded {
            agent: agents[0],
            call,
            result: "sale".into(),
        };
        core.handle(wrap, secs(22.0)).unwrap();
        let outs = callers_settle(&mut core, secs(22.0));
        assert!(outs.contains(&Output::RecordAttempt {
            call,
            contact: ContactId(7),
            outcome: AttemptOutcome::Connected {
                agent: agents[0],
                result: Some("sale".into())
            }
        }));
        assert_eq!(core.ledger().last_24h(secs(22.0)).live, 0);
        core.check_invariants().unwrap();
    }

    #[test]
    fn a_caller_nobody_takes_is_told_to_expect_a_call_back_and_one_who_leaves_is_a_missed_call() {
        let (mut core, agents) = callers_core(1);
        core.handle(Input::AgentPaused(agents[0], "break".into()), secs(0.0))
            .unwrap();
        callers_settle(&mut core, secs(0.0));
        let waits = core
            .inbound(ContactId(1), Duration::from_secs(10), None, secs(1.0))
            .unwrap();
        let leaves = core
            .inbound(ContactId(2), Duration::from_secs(10), None, secs(2.0))
            .unwrap();
        assert_eq!(core.waiting_inbound().len(), 2);
        assert!(callers_settle(&mut core, secs(5.0)).is_empty());
        core.handle(Input::CustomerHungUp(leaves), secs(6.0))
            .unwrap();
        let outs = callers_settle(&mut core, secs(6.0));
        assert_eq!(
            outs,
            [Output::RecordAttempt {
                call: leaves,
                contact: ContactId(2),
                outcome: AttemptOutcome::MissedCall
            }]
        );
        let outs = callers_settle(&mut core, secs(11.1));
        assert_eq!(
            outs,
            [
                Output::CallBackLater(waits),
                Output::RecordAttempt {
                    call: waits,
                    contact: ContactId(1),
                    outcome: AttemptOutcome::MissedCallback
                }
            ]
        );
        assert!(core.waiting_inbound().is_empty());
        assert_eq!(core.ledger().last_24h(secs(12.0)).abandoned, 0);
        core.check_invariants().unwrap();
    }

    #[test]
    fn an_answered_call_to_a_contact_an_agent_owns_goes_to_that_agent_when_ready() {
        let config = CampaignConfig {
            max_cps: 100.0,
            ..CampaignConfig::default()
        };
        let mut core = Campaign::new(config, None).unwrap();
        let agents: Vec<AgentId> = (0..2)
            .map(|_| {
                let a = core.add_agent(Time::ZERO);
                core.handle(Input::AgentLoggedIn(a), Time::ZERO).unwrap();
                a
            })
            .collect();
        let mut next = 0;
        let placed: Vec<CallId> = settle(&mut core, secs(1.0), &mut next)
            .into_iter()
            .filter_map(|o| match o {
                Output::Place { call, .. } => Some(call),
                _ => None,
            })
            .collect();
        assert_eq!(placed.len(), 2);
        // The second agent (not the longest-ready) owns the first call's contact.
        core.prefer(placed[0], agents[1]);
        core.handle(Input::Answered(placed[0]), secs(3.0)).unwrap();
        let outs = settle(&mut core, secs(3.0), &mut next);
        assert!(
            outs.contains(&Output::Bridge {
                call: placed[0],
                agent: agents[1]
            }),
            "{outs:?}"
        );
    }

    #[test]
    fn a_callback_whose_agent_leg_is_lost_before_the_bridge_goes_to_the_next_agent() {
        let (mut core, agents) = callers_core(2);
        core.handle(Input::AgentPaused(agents[1], "break".into()), secs(0.0))
            .unwrap();
        callers_settle(&mut core, secs(0.0));
        let call = core
            .inbound(ContactId(5), Duration::from_secs(60), None, secs(1.0))
            .unwrap();
        assert_eq!(
            callers_settle(&mut core, secs(1.0)),
            [Output::Bridge {
                call,
                agent: agents[0]
            }]
        );
        // The first agent's phone is gone before the bridge: the caller keeps their place.
        core.handle(Input::AgentLegLost(agents[0]), secs(1.5))
            .unwrap();
        assert!(callers_settle(&mut core, secs(1.5)).is_empty());
        assert_eq!(core.waiting_inbound().len(), 1);
        core.handle(Input::AgentReady(agents[1]), secs(30.0))
            .unwrap();
        assert_eq!(
            callers_settle(&mut core, secs(30.0)),
            [Output::Bridge {
                call,
                agent: agents[1]
            }]
        );
        core.check_invariants().unwrap();
    }

    #[test]
    fn a_particular_callback_waits_for_its_owner_during_the_grace_then_goes_to_anyone() {
        // Two agents, the owner paused; a call kept for the owner for 10 s arrives at 1 s.
        let kept = || {
            let (mut core, agents) = callers_core(2);
            core.handle(Input::AgentPaused(agents[0], "break".into()), secs(0.0))
                .unwrap();
            callers_settle(&mut core, secs(0.0));
            let owner = Some((agents[0], Duration::from_secs(10)));
            let call = core
                .inbound(ContactId(3), Duration::from_secs(60), owner, secs(1.0))
                .unwrap();
            (core, agents[0], agents[1], call)
        };
        // The other agent is ready, but the call is kept for its owner.
        let (mut core, owner, _, call) = kept();
        assert!(callers_settle(&mut core, secs(5.0)).is_empty());
        core.handle(Input::AgentReady(owner), secs(6.0)).unwrap();
        assert_eq!(
            callers_settle(&mut core, secs(6.0)),
            [Output::Bridge { call, agent: owner }]
        );
        // An owner who stays away: the other agent takes it when the grace ends.
        let (mut core, owner, other, call) = kept();
        assert_ne!(owner, other);
        assert!(callers_settle(&mut core, secs(10.9)).is_empty());
        assert_eq!(
            callers_settle(&mut core, secs(11.0)),
            [Output::Bridge { call, agent: other }]
        );
    }

    #[test]
    fn a_particular_callback_is_placed_for_its_owner_once_ready_and_given_back_after_the_grace() {
        let (mut core, agents) = callers_core(2);
        let (owner, other) = (agents[1], agents[0]);
        core.handle(Input::AgentPaused(owner, "break".into()), secs(0.0))
            .unwrap();
        callers_settle(&mut core, secs(0.0));
        core.hold_for_owner(ContactId(5), owner, secs(60.0), secs(1.0))
            .unwrap();
        // The other agent is ready, the owner is not: nothing is placed for the contact.
        assert!(callers_settle(&mut core, secs(2.0)).is_empty());
        assert_eq!(core.held(), [(ContactId(5), owner)]);
        core.handle(Input::AgentReady(owner), secs(5.0)).unwrap();
        let outs = callers_settle(&mut core, secs(5.0));
        let [Output::Place {
            call,
            contact: ContactId(5),
            agent: Some(a),
        }] = outs[..]
        else {
            panic!("{outs:?}")
        };
        assert_eq!(a, owner);
        assert!(core.held().is_empty());
        // Answered: straight to the owner, reserved since the placing.
        core.handle(Input::Answered(call), secs(9.0)).unwrap();
        assert_eq!(
            callers_settle(&mut core, secs(9.0)),
            [Output::Bridge { call, agent: owner }]
        );
        core.check_invariants().unwrap();

        // An owner who stays away: the contact is given back when the grace ends.
        core.handle(Input::AgentPaused(other, "break".into()), secs(10.0))
            .unwrap();
        core.hold_for_owner(ContactId(6), other, secs(30.0), secs(10.0))
            .unwrap();
        let outs = callers_settle(&mut core, secs(10.0));
        assert!(
            outs.iter().all(|o| !matches!(o, Output::Unlease(_))),
            "{outs:?}"
        );
        assert_eq!(
            callers_settle(&mut core, secs(30.0)),
            [Output::Unlease(vec![ContactId(6)])]
        );
        assert!(core.held().is_empty());
    }

    fn pick(v: &[CallId], i: u8) -> CallId {
        if v.is_empty() {
            CallId(999_999)
        } else {
            v[usize::from(i) % v.len()]
        }
    }

    fn run_ops(mode: DialMode, ops: Vec<Op>) -> Result<(), String> {
        let persisted = Persisted {
            ledger: AbandonLedger::new(),
            stats: crate::dialer::predictive::tests::learned().snapshot(),
        };
        let timers = AgentTimers {
            wrap_up: Duration::from_secs(5),
            max_talk: Duration::from_secs(60),
            max_pause: Duration::from_secs(30),
        };
        let config = CampaignConfig {
            queue: QueueConfig {
                timers,
                offer_timeout: Duration::from_secs(4),
                preview_ring_timeout: Duration::from_secs(8),
                ..QueueConfig::default()
            },
            pacer: PacerConfig {
                mode,
                ..PacerConfig::default()
            },
            max_cps: 50.0,
            ..CampaignConfig::default()
        };
        let mut core = Campaign::new(config, Some(&persisted)).map_err(|e| e.to_string())?;
        let n_agents = 4u8;
        for _ in 0..n_agents {
            core.add_agent(Time::ZERO);
        }
        let mut d = Driver::default();
        let mut now = Time::ZERO;
        for op in ops {
            let agent = |i: u8| AgentId(u32::from(i % n_agents));
            // Refused inputs are fine; they must leave the core consistent.
            let _ = match op {
                Op::LogIn(a) => core.handle(Input::AgentLoggedIn(agent(a)), now),
                Op::Ready(a) => core.handle(Input::AgentReady(agent(a)), now),
                Op::Pause(a) => core.handle(Input::AgentPaused(agent(a), "p".into()), now),
                Op::LogOut(a) => core.handle(Input::AgentLoggedOut(agent(a)), now),
                Op::Result(a) => {
                    let call = core.agents()[agent(a).0 as usize]
                        .state()
                        .call()
                        .unwrap_or(CallId(0));
                    let result = "ok".to_string();
                    core.handle(
                        Input::WrapUpEnded {
                            agent: agent(a),
                            call,
                            result,
                        },
                        now,
                    )
                }
                Op::LegLost(a) => core.handle(Input::AgentLegLost(agent(a)), now),
                Op::Answer(i) => core.handle(Input::Answered(pick(&d.live, i)), now),
                Op::Fail(i) => {
                    core.handle(Input::Failed(pick(&d.live, i), CallEnd::Rejected(486)), now)
                }
                Op::CustomerHangUp(i) => core.handle(Input::CustomerHungUp(pick(&d.live, i)), now),
                Op::Bridge(i) => {
                    let call = pick(&d.bridging, i);
                    d.bridging.retain(|c| *c != call);
                    core.handle(Input::Bridged(call), now)
                }
                Op::Accept(i) => core.handle(Input::PreviewAccepted(pick(&d.offered, i)), now),
                Op::Skip(i) => {
                    let call = pick(&d.offered, i);
                    d.offered.retain(|c| *c != call);
                    core.handle(Input::PreviewSkipped(call), now)
                }
                Op::EmptyLease => {
                    d.empty_next = true;
                    Ok(())
                }
                Op::Wait(ms) => {
                    now = now + Duration::from_millis(u64::from(ms));
                    Ok(())
                }
                Op::Hold(a) => {
                    d.contact += 1;
                    let contact = ContactId(d.contact);
                    d.held.insert(contact);
                    let until = now + Duration::from_secs(20);
                    core.hold_for_owner(contact, agent(a), until, now)
                }
            };
            d.settle(&mut core, now)?;
            core.check_invariants()?;
        }
        // Every state has an exit: the calls end, the customers hang up, time passes; then
        // no agent is held by a call and every call placed was recorded once.
        for _ in 0..4 {
            for call in d.live.clone() {
                let _ = core.handle(Input::Failed(call, CallEnd::RingTimeout), now);
                let _ = core.handle(Input::CustomerHungUp(call), now);
            }
            for call in std::mem::take(&mut d.bridging) {
                let _ = core.handle(Input::Bridged(call), now);
            }
            for a in 0..n_agents {
                let _ = core.handle(Input::AgentLoggedOut(AgentId(a.into())), now);
            }
            d.settle(&mut core, now)?;
            now = now + Duration::from_secs(3600);
            d.settle(&mut core, now)?;
            core.check_invariants()?;
        }
        for a in core.agents() {
            if a.state() != &AgentState::LoggedOut {
                return Err(format!("agent {} stuck in {:?}", a.id(), a.state()));
            }
        }
        if !d.held.is_empty() || !core.held().is_empty() {
            return Err(format!("callbacks still held: {:?}", d.held));
        }
        if !d.live.is_empty() || d.recorded.len() as u64 != d.placed {
            return Err(format!(
                "placed {}, recorded {}, still live {:?}",
                d.placed,
                d.recorded.len(),
                d.live
            ));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever agents, customers and carriers do, in whatever order (answers after a
        /// CANCEL included), the core and its queue agree, no agent stays stuck and every
        /// call placed is recorded exactly once.
        #[test]
        fn no_agent_stuck_and_no_call_unaccounted(
            predictive in any::<bool>(),
            ops in proptest::collection::vec(op(), 1..150),
        ) {
            let mode = if predictive { DialMode::Predictive } else { DialMode::Power };
            if let Err(e) = run_ops(mode, ops) {
                prop_assert!(false, "{e}");
            }
        }

        /// The same in preview: offers accepted, skipped or left to lapse.
        #[test]
        fn preview_offers_end_too(ops in proptest::collection::vec(op(), 1..150)) {
            if let Err(e) = run_ops(DialMode::Preview, ops) {
                prop_assert!(false, "{e}");
            }
        }
    }
}
