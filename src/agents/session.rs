//! One agent's session, sans-IO: from login to logout the agent's phone holds one nailed-up
//! leg, and the session says which state the agent shows (`logged_out`, `paused(reason)`,
//! `ready`, `reserved`, `talking`, `wrap_up`).
//!
//! The session owns the leg's life and the API's requests; the queue logic (which agent takes
//! which call, wrap-up time, deferred pauses) stays in the campaign core. The session turns
//! what the agent and the phone do into the core's agent inputs ([`Output::Campaign`]) and
//! mirrors the call states the core's driver reports back ([`Input::Reserved`] …).
//!
//! Every state has an exit, so no agent can be stuck:
//!
//! | state | left by |
//! |---|---|
//! | `logged_out` | `LogIn` → connecting |
//! | connecting (shown `logged_out`, reason `connecting`) | `LegAnswered` → paused(login), `LegFailed`, `LogOut`, the connect timeout |
//! | `paused` | `Ready`, `Pause` (new reason), `LogOut`, `LegLost` |
//! | `ready` | `Reserved`, `Pause`, `LogOut`, `LegLost` |
//! | `reserved` | `Connected`, `Released`, `LogOut`, `LegLost` |
//! | `talking` | `HangUp` or `CustomerHungUp` → wrap_up, `LogOut`, `LegLost` |
//! | `wrap_up` | `WrapUpEnded`, `LogOut`, `LegLost` |
//!
//! `LogOut` during a call ends the call first (the customer is hung up) and the leg with it;
//! a pause asked for during a call applies when its wrap-up ends, as the core does.

use super::SessionError;
use crate::dialer::agent::AgentStateKind;
use crate::dialer::campaign::Input as CampaignInput;
use crate::dialer::{AgentId, CallId, Time};
use std::time::Duration;

/// A call task (queue) the agent serves, as the store names it.
pub type TaskId = i64;

/// Reasons the daemon itself gives for a pause or a logout.
pub const SYSTEM_REASONS: [&str; 3] = ["login", "leg_lost", "missed_offer"];

/// Where the agent's leg goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phone {
    /// The phone registered for this SIP account.
    Sip(String),
    /// A number (E.164) through a trunk.
    Number(String),
    /// The browser the agent logs in from (WebRTC); its offer came with the login.
    WebRtc,
}

/// What the driver tells a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The agent logs in to serve `tasks` on `phone`: its leg is placed.
    LogIn {
        /// The call tasks served.
        tasks: Vec<TaskId>,
        /// The phone called.
        phone: Phone,
    },
    /// The phone answered the session call.
    LegAnswered,
    /// The session call was never answered (why, for the agent).
    LegFailed(String),
    /// The answered leg dropped (BYE from the phone, RTP timeout).
    LegLost,
    /// The agent is ready for calls.
    Ready,
    /// The agent pauses with a reason (after the call in hand, if any).
    Pause(String),
    /// The agent ends the call with the customer.
    HangUp,
    /// The agent logs out; a call in progress ends first.
    LogOut,
    /// The campaign core reserved the agent for `call` of `task`.
    Reserved {
        /// The call task.
        task: TaskId,
        /// The call.
        call: CallId,
    },
    /// The reserved call is connected to the agent.
    Connected(CallId),
    /// The customer of the call hung up; wrap-up starts.
    CustomerHungUp(CallId),
    /// The reservation went away before it was connected.
    Released(CallId),
    /// The call's wrap-up ended (result recorded or wrap-up time over).
    WrapUpEnded(CallId),
}

/// What a session asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Place the session call to the phone; answer with `LegAnswered` or `LegFailed`.
    Dial(Phone),
    /// Hang up the agent's leg.
    HangUpLeg,
    /// Hang up the customer of `call`.
    HangUpCustomer(CallId),
    /// Feed this input to the campaign core of `task`.
    Campaign {
        /// The call task.
        task: TaskId,
        /// The input, for the agent this session is.
        input: CampaignInput,
    },
    /// The state the agent shows changed.
    State {
        /// The new state.
        state: AgentStateKind,
        /// Why (the pause reason; for `logged_out`: `connecting`, `logout`, `leg_lost`,
        /// `leg_failed` or `timeout`).
        reason: Option<String>,
    },
}

/// A call the agent is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallRef {
    /// The call task it belongs to.
    pub task: TaskId,
    /// The call.
    pub call: CallId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    LoggedOut(Option<String>),
    Connecting(Time),
    Paused(String),
    Ready,
    Reserved(CallRef),
    Talking(CallRef),
    WrapUp(CallRef),
}

/// One agent's session.
#[derive(Debug, Clone)]
pub struct Session {
    agent: AgentId,
    connect_timeout: Duration,
    phase: Phase,
    since: Time,
    tasks: Vec<TaskId>,
    /// A pause asked for during a call, applied when the call's work ends.
    after: Option<String>,
    outputs: Vec<Output>,
}

impl Session {
    /// A logged-out session of `agent`; a leg not answered within `connect_timeout` is given up.
    pub fn new(agent: AgentId, connect_timeout: Duration, now: Time) -> Self {
        Self {
            agent,
            connect_timeout,
            phase: Phase::LoggedOut(None),
            since: now,
            tasks: Vec::new(),
            after: None,
            outputs: Vec::new(),
        }
    }

    /// The state the agent shows.
    pub fn state(&self) -> AgentStateKind {
        match self.phase {
            Phase::LoggedOut(_) | Phase::Connecting(_) => AgentStateKind::LoggedOut,
            Phase::Paused(_) => AgentStateKind::Paused,
            Phase::Ready => AgentStateKind::Ready,
            Phase::Reserved(_) => AgentStateKind::Reserved,
            Phase::Talking(_) => AgentStateKind::Talking,
            Phase::WrapUp(_) => AgentStateKind::WrapUp,
        }
    }

    /// Why the agent is in its state, when there is a reason.
    pub fn reason(&self) -> Option<&str> {
        match &self.phase {
            Phase::LoggedOut(r) => r.as_deref(),
            Phase::Connecting(_) => Some("connecting"),
            Phase::Paused(r) => Some(r),
            _ => None,
        }
    }

    /// When the current state was entered.
    pub fn since(&self) -> Time {
        self.since
    }

    /// The call tasks of the current (or last) session.
    pub fn tasks(&self) -> &[TaskId] {
        &self.tasks
    }

    /// The call the agent is bound to, if any.
    pub fn call(&self) -> Option<CallRef> {
        match self.phase {
            Phase::Reserved(c) | Phase::Talking(c) | Phase::WrapUp(c) => Some(c),
            _ => None,
        }
    }

    /// Whether the session holds (or is placing) a leg.
    pub fn has_leg(&self) -> bool {
        !matches!(self.phase, Phase::LoggedOut(_))
    }

    /// Whether the leg is being placed.
    pub fn is_connecting(&self) -> bool {
        matches!(self.phase, Phase::Connecting(_))
    }

    /// When [`Session::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Time> {
        match self.phase {
            Phase::Connecting(deadline) => Some(deadline),
            _ => None,
        }
    }

    /// Gives up a leg that was not answered in time.
    pub fn handle_timeout(&mut self, now: Time) {
        if matches!(self.phase, Phase::Connecting(d) if now >= d) {
            self.outputs.push(Output::HangUpLeg);
            self.enter(Phase::LoggedOut(Some("timeout".into())), now);
        }
    }

    /// Takes the actions asked for since the last call.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.outputs.drain(..)
    }

    /// Applies an input; refuses what the current state does not allow (changing nothing).
    pub fn handle(&mut self, input: Input, now: Time) -> Result<(), SessionError> {
        let refuse = |phase: &Phase, action: &'static str| SessionError::NotAllowed {
            action,
            state: phase_name(phase),
        };
        match (&self.phase, input) {
            (Phase::LoggedOut(_), Input::LogIn { tasks, phone }) => {
                self.tasks = tasks;
                self.after = None;
                self.outputs.push(Output::Dial(phone));
                self.enter(Phase::Connecting(now + self.connect_timeout), now);
            }
            (_, Input::LogIn { .. }) => return Err(SessionError::AlreadyLoggedIn),
            (Phase::Connecting(_), Input::LegAnswered) => {
                for task in self.tasks.clone() {
                    self.campaign(task, CampaignInput::AgentLoggedIn(self.agent));
                    let login = CampaignInput::AgentPaused(self.agent, "login".into());
                    self.campaign(task, login);
                }
                self.enter(Phase::Paused("login".into()), now);
            }
            (Phase::Connecting(_), Input::LegFailed(_)) => {
                self.enter(Phase::LoggedOut(Some("leg_failed".into())), now);
            }
            // A late word about a leg no longer wanted.
            (Phase::LoggedOut(_), Input::LegAnswered | Input::LegFailed(_) | Input::LegLost) => {}
            (Phase::Connecting(_), Input::LegLost) => {
                self.enter(Phase::LoggedOut(Some("leg_failed".into())), now);
            }
            (_, Input::LegLost) => {
                self.lose_leg();
                self.enter(Phase::LoggedOut(Some("leg_lost".into())), now);
            }
            (Phase::LoggedOut(_), Input::LogOut) => return Err(refuse(&self.phase, "log out")),
            (Phase::Connecting(_), Input::LogOut) => {
                self.outputs.push(Output::HangUpLeg);
                self.enter(Phase::LoggedOut(Some("logout".into())), now);
            }
            (Phase::Paused(_) | Phase::Ready, Input::LogOut) => {
                for task in self.tasks.clone() {
                    self.campaign(task, CampaignInput::AgentLoggedOut(self.agent));
                }
                self.outputs.push(Output::HangUpLeg);
                self.enter(Phase::LoggedOut(Some("logout".into())), now);
            }
            (Phase::Reserved(c) | Phase::Talking(c) | Phase::WrapUp(c), Input::LogOut) => {
                // The call ends first: the customer, then the leg.
                let c = *c;
                if !matches!(self.phase, Phase::WrapUp(_)) {
                    self.outputs.push(Output::HangUpCustomer(c.call));
                }
                self.lose_leg();
                self.enter(Phase::LoggedOut(Some("logout".into())), now);
            }
            (Phase::Paused(_), Input::Ready) => {
                for task in self.tasks.clone() {
                    self.campaign(task, CampaignInput::AgentReady(self.agent));
                }
                self.enter(Phase::Ready, now);
            }
            (Phase::Ready, Input::Ready) => {}
            (Phase::Reserved(_) | Phase::Talking(_) | Phase::WrapUp(_), Input::Ready) => {
                // Drops a pause asked for during the call; ready after it anyway.
                if self.after.take().is_some() {
                    for task in self.tasks.clone() {
                        self.campaign(task, CampaignInput::AgentReady(self.agent));
                    }
                }
            }
            (Phase::Paused(_) | Phase::Ready, Input::Pause(reason)) => {
                for task in self.tasks.clone() {
                    let input = CampaignInput::AgentPaused(self.agent, reason.clone());
                    self.campaign(task, input);
                }
                self.enter(Phase::Paused(reason), now);
            }
            (Phase::Reserved(_) | Phase::Talking(_) | Phase::WrapUp(_), Input::Pause(reason)) => {
                for task in self.tasks.clone() {
                    let input = CampaignInput::AgentPaused(self.agent, reason.clone());
                    self.campaign(task, input);
                }
                self.after = Some(reason);
            }
            (Phase::Talking(c), Input::HangUp) => {
                let c = *c;
                self.outputs.push(Output::HangUpCustomer(c.call));
                self.enter(Phase::WrapUp(c), now);
            }
            (Phase::Ready, Input::Reserved { task, call }) if self.tasks.contains(&task) => {
                self.enter(Phase::Reserved(CallRef { task, call }), now);
            }
            (Phase::Reserved(c), Input::Connected(call)) if c.call == call => {
                let c = *c;
                self.enter(Phase::Talking(c), now);
            }
            (Phase::Reserved(c), Input::Released(call)) if c.call == call => self.finish(now),
            (Phase::Talking(c), Input::CustomerHungUp(call)) if c.call == call => {
                let c = *c;
                self.enter(Phase::WrapUp(c), now);
            }
            // The customer's end after the agent hung up: already wrapping up.
            (Phase::WrapUp(c), Input::CustomerHungUp(call)) if c.call == call => {}
            (Phase::WrapUp(c), Input::WrapUpEnded(call)) if c.call == call => self.finish(now),
            (phase, input) => return Err(refuse(phase, input_name(&input))),
        }
        Ok(())
    }

    fn campaign(&mut self, task: TaskId, input: CampaignInput) {
        self.outputs.push(Output::Campaign { task, input });
    }

    /// The leg is gone (or going) while logged in: the core hears of it at once.
    fn lose_leg(&mut self) {
        for task in self.tasks.clone() {
            self.campaign(task, CampaignInput::AgentLegLost(self.agent));
        }
        self.outputs.push(Output::HangUpLeg);
    }

    /// The call's work is over: a pause asked for meanwhile, else ready.
    fn finish(&mut self, now: Time) {
        let next = match self.after.take() {
            Some(reason) => Phase::Paused(reason),
            None => Phase::Ready,
        };
        self.enter(next, now);
    }

    fn enter(&mut self, phase: Phase, now: Time) {
        let before = (self.state(), self.reason().map(str::to_string));
        if matches!(phase, Phase::LoggedOut(_)) {
            self.after = None;
        }
        self.phase = phase;
        self.since = now;
        let after = (self.state(), self.reason().map(str::to_string));
        if before != after {
            self.outputs.push(Output::State {
                state: after.0,
                reason: after.1,
            });
        }
    }
}

fn phase_name(phase: &Phase) -> &'static str {
    match phase {
        Phase::LoggedOut(_) => "logged_out",
        Phase::Connecting(_) => "connecting",
        Phase::Paused(_) => "paused",
        Phase::Ready => "ready",
        Phase::Reserved(_) => "reserved",
        Phase::Talking(_) => "talking",
        Phase::WrapUp(_) => "wrap_up",
    }
}

fn input_name(input: &Input) -> &'static str {
    match input {
        Input::LogIn { .. } => "log in",
        Input::LegAnswered => "leg answered",
        Input::LegFailed(_) => "leg failed",
        Input::LegLost => "leg lost",
        Input::Ready => "ready",
        Input::Pause(_) => "pause",
        Input::HangUp => "hang up",
        Input::LogOut => "log out",
        Input::Reserved { .. } => "reserve",
        Input::Connected(_) => "connect",
        Input::CustomerHungUp(_) => "customer hang-up",
        Input::Released(_) => "release",
        Input::WrapUpEnded(_) => "end wrap-up",
    }
}

#[cfg(test)]
mod tests;
