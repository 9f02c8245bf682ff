//! The agent state machine, sans-IO: `logged_out`, `paused(reason)`, `ready`, `reserved`,
//! `talking`, `wrap_up`.
//!
//! Every transition is one arm of [`Agent::handle`]; anything else is refused with
//! [`DialerError::InvalidTransition`]. Every state has a way out, so no agent can be stuck:
//!
//! | state | left by event | left by timeout |
//! |---|---|---|
//! | `logged_out` | `LogIn` → ready | — (it is the resting state) |
//! | `paused` | `Resume` → ready, `LogOut`, `Pause` (new reason) | `max_pause` → logged_out |
//! | `ready` | `Reserve` → reserved, `Pause`, `LogOut` | — (it is waiting for work) |
//! | `reserved` | `Connect` → talking, `Release` → ready | the reservation's own timeout → ready |
//! | `talking` | `HangUp` → wrap_up | `max_talk` → wrap_up (the driver hangs up) |
//! | `wrap_up` | `RecordResult` → ready | `wrap_up` time → ready |
//!
//! `Pause` and `LogOut` asked for while the agent is on a call (reserved, talking or wrapping
//! up) are kept and applied when that call's work ends, instead of cutting the call.

use super::{AgentId, CallId, DialerError, Time};
use std::time::Duration;

/// Where an agent is, with the call it is bound to if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Not working.
    LoggedOut,
    /// Logged in but taking no calls, for the given reason.
    Paused(String),
    /// Waiting for a call.
    Ready,
    /// A call is being put through to the agent (or offered, in preview).
    Reserved(CallId),
    /// On a call.
    Talking(CallId),
    /// After-call work until a result is recorded or the wrap-up time runs out.
    WrapUp(CallId),
}

/// An [`AgentState`] without its data, for snapshots and accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStateKind {
    /// See [`AgentState::LoggedOut`].
    LoggedOut,
    /// See [`AgentState::Paused`].
    Paused,
    /// See [`AgentState::Ready`].
    Ready,
    /// See [`AgentState::Reserved`].
    Reserved,
    /// See [`AgentState::Talking`].
    Talking,
    /// See [`AgentState::WrapUp`].
    WrapUp,
}

impl AgentStateKind {
    /// Every kind, in accounting order.
    pub const ALL: [AgentStateKind; 6] = [
        AgentStateKind::LoggedOut,
        AgentStateKind::Paused,
        AgentStateKind::Ready,
        AgentStateKind::Reserved,
        AgentStateKind::Talking,
        AgentStateKind::WrapUp,
    ];

    /// The state's name as the issue and the API spell it.
    pub fn name(self) -> &'static str {
        match self {
            AgentStateKind::LoggedOut => "logged_out",
            AgentStateKind::Paused => "paused",
            AgentStateKind::Ready => "ready",
            AgentStateKind::Reserved => "reserved",
            AgentStateKind::Talking => "talking",
            AgentStateKind::WrapUp => "wrap_up",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl AgentState {
    /// The state without its data.
    pub fn kind(&self) -> AgentStateKind {
        match self {
            AgentState::LoggedOut => AgentStateKind::LoggedOut,
            AgentState::Paused(_) => AgentStateKind::Paused,
            AgentState::Ready => AgentStateKind::Ready,
            AgentState::Reserved(_) => AgentStateKind::Reserved,
            AgentState::Talking(_) => AgentStateKind::Talking,
            AgentState::WrapUp(_) => AgentStateKind::WrapUp,
        }
    }

    /// The call the agent is bound to, if any.
    pub fn call(&self) -> Option<CallId> {
        match self {
            AgentState::Reserved(c) | AgentState::Talking(c) | AgentState::WrapUp(c) => Some(*c),
            _ => None,
        }
    }
}

/// What can happen to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// The agent logs in and is ready.
    LogIn,
    /// The agent pauses (or changes pause reason); deferred while on a call.
    Pause(String),
    /// The agent comes back from a pause (or cancels a deferred pause).
    Resume,
    /// The agent logs out; deferred while on a call.
    LogOut,
    /// A call is put through (or offered) to a ready agent; it must connect within `timeout`.
    Reserve {
        /// The call.
        call: CallId,
        /// How long the reservation may last before it lapses.
        timeout: Duration,
    },
    /// The reserved call is connected to the agent.
    Connect(CallId),
    /// The reserved call went away before it was connected (caller hung up, preview skipped).
    Release(CallId),
    /// The call ended; after-call work starts.
    HangUp(CallId),
    /// The agent recorded the call's result; wrap-up ends.
    RecordResult(CallId),
}

impl AgentEvent {
    fn name(&self) -> &'static str {
        match self {
            AgentEvent::LogIn => "log_in",
            AgentEvent::Pause(_) => "pause",
            AgentEvent::Resume => "resume",
            AgentEvent::LogOut => "log_out",
            AgentEvent::Reserve { .. } => "reserve",
            AgentEvent::Connect(_) => "connect",
            AgentEvent::Release(_) => "release",
            AgentEvent::HangUp(_) => "hang_up",
            AgentEvent::RecordResult(_) => "record_result",
        }
    }
}

/// What the driver must do after a timeout moved an agent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAction {
    /// The reservation lapsed: the call was not connected in time and is no longer this agent's.
    ReservationExpired(CallId),
    /// The call ran past `max_talk`: hang it up (the agent is now in wrap-up).
    HangUp(CallId),
    /// Wrap-up time ran out without a result: record the default result for the call.
    WrapUpExpired(CallId),
    /// The pause ran past `max_pause`: the agent was logged out.
    PauseExpired,
}

/// Time limits of an agent's states (per queue / task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentTimers {
    /// After-call work ends by itself after this long.
    pub wrap_up: Duration,
    /// A call longer than this is hung up (a stuck call must not hold an agent forever).
    pub max_talk: Duration,
    /// A pause longer than this logs the agent out.
    pub max_pause: Duration,
}

impl Default for AgentTimers {
    fn default() -> Self {
        AgentTimers {
            wrap_up: Duration::from_secs(60),
            max_talk: Duration::from_secs(4 * 3600),
            max_pause: Duration::from_secs(2 * 3600),
        }
    }
}

/// What a deferred request turns into once the agent's call work ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum After {
    Pause(String),
    LogOut,
}

/// One agent's state machine.
#[derive(Debug, Clone)]
pub struct Agent {
    id: AgentId,
    state: AgentState,
    since: Time,
    deadline: Option<Time>,
    after: Option<After>,
    timers: AgentTimers,
    totals: [Duration; 6],
}

impl Agent {
    /// A logged-out agent.
    pub fn new(id: AgentId, timers: AgentTimers, now: Time) -> Agent {
        Agent {
            id,
            state: AgentState::LoggedOut,
            since: now,
            deadline: None,
            after: None,
            timers,
            totals: [Duration::ZERO; 6],
        }
    }

    /// The agent's id.
    pub fn id(&self) -> AgentId {
        self.id
    }

    /// The current state.
    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// When the current state was entered.
    pub fn since(&self) -> Time {
        self.since
    }

    /// Whether a pause or log-out waits for the current call's work to end.
    pub fn has_deferred(&self) -> bool {
        self.after.is_some()
    }

    /// Total time spent in `kind` up to `now`.
    pub fn time_in(&self, kind: AgentStateKind, now: Time) -> Duration {
        let mut t = self.totals[kind.index()];
        if self.state.kind() == kind {
            t += now.since(self.since);
        }
        t
    }

    /// When [`Agent::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.deadline
    }

    /// Applies an event; refuses what the current state does not allow.
    pub fn handle(&mut self, event: AgentEvent, now: Time) -> Result<(), DialerError> {
        use AgentState as S;
        match (&self.state, event) {
            (S::LoggedOut, AgentEvent::LogIn) => self.enter(S::Ready, now),
            (S::Ready | S::Paused(_), AgentEvent::Pause(reason)) => {
                self.enter(S::Paused(reason), now)
            }
            (S::Paused(_), AgentEvent::Resume) => self.enter(S::Ready, now),
            (S::Ready | S::Paused(_), AgentEvent::LogOut) => self.enter(S::LoggedOut, now),
            (S::Reserved(_) | S::Talking(_) | S::WrapUp(_), AgentEvent::Pause(reason)) => {
                self.after = Some(After::Pause(reason));
            }
            (S::Reserved(_) | S::Talking(_) | S::WrapUp(_), AgentEvent::LogOut) => {
                self.after = Some(After::LogOut);
            }
            (S::Reserved(_) | S::Talking(_) | S::WrapUp(_), AgentEvent::Resume)
                if self.after.is_some() =>
            {
                self.after = None;
            }
            (S::Ready, AgentEvent::Reserve { call, timeout }) => {
                self.enter(S::Reserved(call), now);
                self.deadline = Some(now + timeout);
            }
            (S::Reserved(c), AgentEvent::Connect(call)) if *c == call => {
                self.enter(S::Talking(call), now)
            }
            (S::Reserved(c), AgentEvent::Release(call)) if *c == call => self.finish(now),
            (S::Talking(c), AgentEvent::HangUp(call)) if *c == call => {
                self.enter(S::WrapUp(call), now)
            }
            (S::WrapUp(c), AgentEvent::RecordResult(call)) if *c == call => self.finish(now),
            (state, event) => {
                return Err(DialerError::InvalidTransition {
                    agent: self.id,
                    state: state.kind().name(),
                    event: event.name(),
                })
            }
        }
        Ok(())
    }

    /// Moves a reserved agent's deadline (a preview offer that became a ringing call).
    pub fn extend_reservation(&mut self, until: Time) {
        if matches!(self.state, AgentState::Reserved(_)) {
            self.deadline = Some(until);
        }
    }

    /// Moves the agent on if its state's time ran out; says what the driver must do.
    pub fn handle_timeout(&mut self, now: Time) -> Option<AgentAction> {
        if !matches!(self.deadline, Some(d) if now >= d) {
            return None;
        }
        let action = match self.state.clone() {
            AgentState::Paused(_) => {
                self.after = None;
                self.enter(AgentState::LoggedOut, now);
                AgentAction::PauseExpired
            }
            AgentState::Reserved(call) => {
                self.finish(now);
                AgentAction::ReservationExpired(call)
            }
            AgentState::Talking(call) => {
                self.enter(AgentState::WrapUp(call), now);
                AgentAction::HangUp(call)
            }
            AgentState::WrapUp(call) => {
                self.finish(now);
                AgentAction::WrapUpExpired(call)
            }
            // These states set no deadline.
            AgentState::LoggedOut | AgentState::Ready => return None,
        };
        Some(action)
    }

    /// The call's work is over: apply a deferred pause or log-out, else ready.
    fn finish(&mut self, now: Time) {
        let next = match self.after.take() {
            None => AgentState::Ready,
            Some(After::Pause(reason)) => AgentState::Paused(reason),
            Some(After::LogOut) => AgentState::LoggedOut,
        };
        self.enter(next, now);
    }

    fn enter(&mut self, state: AgentState, now: Time) {
        self.totals[self.state.kind().index()] += now.since(self.since);
        self.deadline = match state {
            AgentState::Paused(_) => Some(now + self.timers.max_pause),
            AgentState::Talking(_) => Some(now + self.timers.max_talk),
            AgentState::WrapUp(_) => Some(now + self.timers.wrap_up),
            // Reserved sets its own deadline from the event.
            _ => None,
        };
        if matches!(state, AgentState::LoggedOut) {
            self.after = None;
        }
        self.state = state;
        self.since = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: CallId = CallId(7);

    fn secs(s: u64) -> Time {
        Time(s * 1000)
    }

    fn agent() -> Agent {
        Agent::new(
            AgentId(1),
            AgentTimers {
                wrap_up: Duration::from_secs(30),
                max_talk: Duration::from_secs(600),
                max_pause: Duration::from_secs(900),
            },
            secs(0),
        )
    }

    fn ready() -> Agent {
        let mut a = agent();
        a.handle(AgentEvent::LogIn, secs(0)).unwrap();
        a
    }

    fn reserved() -> Agent {
        let mut a = ready();
        a.handle(
            AgentEvent::Reserve {
                call: C,
                timeout: Duration::from_secs(5),
            },
            secs(10),
        )
        .unwrap();
        a
    }

    fn talking() -> Agent {
        let mut a = reserved();
        a.handle(AgentEvent::Connect(C), secs(11)).unwrap();
        a
    }

    fn wrapping() -> Agent {
        let mut a = talking();
        a.handle(AgentEvent::HangUp(C), secs(100)).unwrap();
        a
    }

    fn refused(a: &mut Agent, e: AgentEvent) {
        let before = a.state().clone();
        assert!(matches!(
            a.handle(e, secs(1000)),
            Err(DialerError::InvalidTransition { .. })
        ));
        assert_eq!(
            a.state(),
            &before,
            "a refused event must not move the agent"
        );
    }

    #[test]
    fn logged_out_logs_in_to_ready_and_has_no_timeout() {
        let mut a = agent();
        assert_eq!(a.poll_timeout(), None);
        refused(&mut a, AgentEvent::Resume);
        refused(&mut a, AgentEvent::Connect(C));
        a.handle(AgentEvent::LogIn, secs(3)).unwrap();
        assert_eq!(a.state(), &AgentState::Ready);
        assert_eq!(a.since(), secs(3));
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn ready_pauses_resumes_and_logs_out() {
        let mut a = ready();
        a.handle(AgentEvent::Pause("lunch".into()), secs(5))
            .unwrap();
        assert_eq!(a.state(), &AgentState::Paused("lunch".into()));
        assert_eq!(a.poll_timeout(), Some(secs(905)));
        a.handle(AgentEvent::Pause("training".into()), secs(6))
            .unwrap();
        assert_eq!(a.state(), &AgentState::Paused("training".into()));
        a.handle(AgentEvent::Resume, secs(7)).unwrap();
        assert_eq!(a.state(), &AgentState::Ready);
        a.handle(AgentEvent::LogOut, secs(8)).unwrap();
        assert_eq!(a.state(), &AgentState::LoggedOut);
        let mut p = ready();
        p.handle(AgentEvent::Pause("x".into()), secs(1)).unwrap();
        p.handle(AgentEvent::LogOut, secs(2)).unwrap();
        assert_eq!(p.state(), &AgentState::LoggedOut);
    }

    #[test]
    fn pause_times_out_to_logged_out() {
        let mut a = ready();
        a.handle(AgentEvent::Pause("away".into()), secs(5)).unwrap();
        assert_eq!(a.handle_timeout(secs(904)), None);
        assert_eq!(a.handle_timeout(secs(905)), Some(AgentAction::PauseExpired));
        assert_eq!(a.state(), &AgentState::LoggedOut);
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn ready_refuses_call_events_without_a_reservation() {
        let mut a = ready();
        refused(&mut a, AgentEvent::Connect(C));
        refused(&mut a, AgentEvent::HangUp(C));
        refused(&mut a, AgentEvent::RecordResult(C));
        refused(&mut a, AgentEvent::Release(C));
        refused(&mut a, AgentEvent::LogIn);
        refused(&mut a, AgentEvent::Resume);
    }

    #[test]
    fn reserved_connects_to_talking_only_for_its_call() {
        let mut a = reserved();
        assert_eq!(a.state(), &AgentState::Reserved(C));
        assert_eq!(a.poll_timeout(), Some(secs(15)));
        refused(&mut a, AgentEvent::Connect(CallId(8)));
        refused(
            &mut a,
            AgentEvent::Reserve {
                call: CallId(8),
                timeout: Duration::from_secs(1),
            },
        );
        a.handle(AgentEvent::Connect(C), secs(11)).unwrap();
        assert_eq!(a.state(), &AgentState::Talking(C));
        assert_eq!(a.poll_timeout(), Some(secs(611)));
    }

    #[test]
    fn reserved_released_is_ready_again() {
        let mut a = reserved();
        a.handle(AgentEvent::Release(C), secs(12)).unwrap();
        assert_eq!(a.state(), &AgentState::Ready);
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn reservation_times_out_to_ready() {
        let mut a = reserved();
        assert_eq!(a.handle_timeout(secs(14)), None);
        assert_eq!(
            a.handle_timeout(secs(15)),
            Some(AgentAction::ReservationExpired(C))
        );
        assert_eq!(a.state(), &AgentState::Ready);
    }

    #[test]
    fn talking_hangs_up_to_wrap_up() {
        let mut a = talking();
        refused(&mut a, AgentEvent::HangUp(CallId(8)));
        refused(&mut a, AgentEvent::RecordResult(C));
        a.handle(AgentEvent::HangUp(C), secs(100)).unwrap();
        assert_eq!(a.state(), &AgentState::WrapUp(C));
        assert_eq!(a.poll_timeout(), Some(secs(130)));
    }

    #[test]
    fn talking_past_max_talk_is_hung_up() {
        let mut a = talking();
        assert_eq!(a.handle_timeout(secs(611)), Some(AgentAction::HangUp(C)));
        assert_eq!(a.state(), &AgentState::WrapUp(C));
    }

    #[test]
    fn wrap_up_ends_by_result() {
        let mut a = wrapping();
        refused(&mut a, AgentEvent::RecordResult(CallId(8)));
        a.handle(AgentEvent::RecordResult(C), secs(110)).unwrap();
        assert_eq!(a.state(), &AgentState::Ready);
    }

    #[test]
    fn wrap_up_ends_by_wrap_up_time() {
        let mut a = wrapping();
        assert_eq!(a.handle_timeout(secs(129)), None);
        assert_eq!(
            a.handle_timeout(secs(130)),
            Some(AgentAction::WrapUpExpired(C))
        );
        assert_eq!(a.state(), &AgentState::Ready);
    }

    #[test]
    fn pause_during_a_call_waits_for_the_end_of_wrap_up() {
        let mut a = talking();
        a.handle(AgentEvent::Pause("break".into()), secs(50))
            .unwrap();
        assert_eq!(a.state(), &AgentState::Talking(C));
        assert!(a.has_deferred());
        a.handle(AgentEvent::HangUp(C), secs(60)).unwrap();
        a.handle(AgentEvent::RecordResult(C), secs(70)).unwrap();
        assert_eq!(a.state(), &AgentState::Paused("break".into()));
    }

    #[test]
    fn logout_while_reserved_applies_on_release_or_timeout() {
        let mut a = reserved();
        a.handle(AgentEvent::LogOut, secs(11)).unwrap();
        a.handle(AgentEvent::Release(C), secs(12)).unwrap();
        assert_eq!(a.state(), &AgentState::LoggedOut);
        let mut b = reserved();
        b.handle(AgentEvent::LogOut, secs(11)).unwrap();
        b.handle_timeout(secs(15));
        assert_eq!(b.state(), &AgentState::LoggedOut);
    }

    #[test]
    fn logout_during_wrap_up_applies_on_wrap_up_timeout() {
        let mut a = wrapping();
        a.handle(AgentEvent::LogOut, secs(101)).unwrap();
        a.handle_timeout(secs(130));
        assert_eq!(a.state(), &AgentState::LoggedOut);
        assert!(!a.has_deferred());
    }

    #[test]
    fn resume_cancels_a_deferred_pause() {
        let mut a = talking();
        a.handle(AgentEvent::Pause("break".into()), secs(50))
            .unwrap();
        a.handle(AgentEvent::Resume, secs(51)).unwrap();
        a.handle(AgentEvent::HangUp(C), secs(60)).unwrap();
        a.handle(AgentEvent::RecordResult(C), secs(70)).unwrap();
        assert_eq!(a.state(), &AgentState::Ready);
        // With nothing deferred, Resume on a call is refused.
        let mut b = talking();
        refused(&mut b, AgentEvent::Resume);
    }

    #[test]
    fn time_in_each_state_is_accounted() {
        let mut a = wrapping(); // ready 0..10, reserved 10..11, talking 11..100, wrap 100..
        a.handle(AgentEvent::RecordResult(C), secs(110)).unwrap();
        let t = secs(120);
        assert_eq!(a.time_in(AgentStateKind::Ready, t), Duration::from_secs(20));
        assert_eq!(
            a.time_in(AgentStateKind::Reserved, t),
            Duration::from_secs(1)
        );
        assert_eq!(
            a.time_in(AgentStateKind::Talking, t),
            Duration::from_secs(89)
        );
        assert_eq!(
            a.time_in(AgentStateKind::WrapUp, t),
            Duration::from_secs(10)
        );
    }
}
