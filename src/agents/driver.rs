//! The agents' tokio driver: owns every agent's [`Session`], carries out what sessions ask
//! (legs placed and hung up, events published, the `dialerd_agents` gauge), wakes them at
//! their timeouts, and hands out single-use tickets for the event WebSockets.

use super::events::{Event, EventKind, EventLog};
use super::phone::{self, Control, Handover, Report};
use super::session::{Input, Output, Phone, Session, TaskId};
use super::SessionError;
use crate::dialer::agent::AgentStateKind;
use crate::dialer::campaign::Input as CampaignInput;
use crate::dialer::{AgentId, CallId, Time};
use crate::media::bridge::BridgeCommand;
use crate::media::engine::MediaEngine;
use crate::sip::leg::{Incoming, SipHandle};
use crate::store::users::{Role, User};
use crate::webrtc::peer::Peer;
use crate::webrtc::WebRtc;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// How long a ticket for the event WebSockets may wait to be used.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// Tickets outstanding at most (old ones are dropped first).
const MAX_TICKETS: usize = 10_000;
/// Events in flight to slow WebSocket clients; one that lags further is disconnected and
/// resumes with `since`.
const BROADCAST: usize = 1024;

/// What the agents' driver is configured with.
#[derive(Debug, Clone)]
pub struct AgentsConfig {
    /// Pause reasons agents may give, besides the system reasons.
    pub pause_reasons: Vec<String>,
    /// How long the agent's phone may ring for the session call.
    pub ring_timeout: Duration,
    /// The `[[agents]]` user names: an agent without a SIP login in the store may log in on
    /// `phone: "sip"` with the account named as it is.
    pub accounts: HashSet<String>,
}

/// One agent as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentView {
    /// The user id.
    pub id: i64,
    /// The user name.
    pub name: String,
    /// The state.
    pub state: AgentStateKind,
    /// The pause reason, or what ended the last session.
    pub reason: Option<String>,
    /// When the state was entered (RFC 3339); `None` when never logged in since the start.
    pub since: Option<String>,
    /// The call the agent is bound to.
    pub call_id: Option<u64>,
    /// That call's contact (once the campaign driver puts calls through).
    pub contact_id: Option<i64>,
    /// The call tasks of the session.
    pub tasks: Vec<TaskId>,
}

impl AgentView {
    /// A user never logged in since the daemon started.
    pub fn logged_out(user: &User) -> Self {
        Self {
            id: user.id,
            name: user.name.clone(),
            state: AgentStateKind::LoggedOut,
            reason: None,
            since: None,
            call_id: None,
            contact_id: None,
            tasks: Vec::new(),
        }
    }
}

/// Who a ticket was given to.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The user.
    pub user: User,
    expires: Instant,
}

struct Leg {
    generation: u64,
    control: mpsc::UnboundedSender<Control>,
}

struct Entry {
    name: String,
    session: Session,
    log: EventLog,
    leg: Option<Leg>,
    /// Why the last session call failed.
    failure: Option<String>,
    /// The agent's own call to the login number, to be answered as the session leg instead of
    /// placing one.
    inbound: Option<Incoming>,
    /// The agent's browser leg, answered with the login, to be kept as the session leg.
    browser: Option<Peer>,
    /// The bridge of the customer the agent talks to, to unbridge when the agent hangs up.
    bridge: Option<(CallId, mpsc::Sender<BridgeCommand>)>,
    /// The contact of the call last offered to the agent.
    contact: Option<(u64, i64)>,
}

#[derive(Default)]
struct Inner {
    agents: HashMap<i64, Entry>,
    tickets: HashMap<String, Ticket>,
    legs: u64,
    /// Tasks the gauge has shown, so a task whose agents all left reads zero.
    gauge_tasks: BTreeSet<TaskId>,
    /// Each task's occupancy per 5 minutes, for the supervisors' plot.
    occupancy: HashMap<TaskId, super::occupancy::OccupancyHistory>,
    /// Which call task may offer each agent calls now (see [`Agents::claim`]).
    claims: HashMap<i64, Claim>,
}

/// An agent's claim: the task that holds it, and the tasks that asked for it meanwhile.
#[derive(Default)]
struct Claim {
    holder: Option<TaskId>,
    waiting: BTreeSet<TaskId>,
}

/// The agents' sessions; cheap to clone.
#[derive(Clone)]
pub struct Agents {
    inner: Arc<Mutex<Inner>>,
    cfg: Arc<AgentsConfig>,
    sip: SipHandle,
    media: MediaEngine,
    events: broadcast::Sender<Event>,
    wake: Arc<Notify>,
    gauge: prometheus::IntGaugeVec,
    occupancy: prometheus::GaugeVec,
    campaign: Option<mpsc::UnboundedSender<(TaskId, CampaignInput)>>,
    /// Browser audio legs; without it `phone: "webrtc"` is refused.
    webrtc: Option<WebRtc>,
    /// The daemon's runtime: legs run there, not on the HTTP thread whose handler logs in.
    rt: tokio::runtime::Handle,
}

/// The driver's clock: Unix milliseconds.
fn now() -> Time {
    Time(crate::store::now_ms().max(0) as u64)
}

fn rfc3339(t: Time) -> String {
    crate::store::rfc3339(t.0 as i64)
}

impl Agents {
    /// The driver, its gauge registered in `registry`; called on the daemon's runtime, where
    /// the agents' legs will run.
    pub fn new(
        cfg: AgentsConfig,
        sip: SipHandle,
        media: MediaEngine,
        registry: &prometheus::Registry,
    ) -> Result<Self, SessionError> {
        let gauge = prometheus::IntGaugeVec::new(
            prometheus::Opts::new("dialerd_agents", "Agents by call task and state."),
            &["task", "state"],
        )?;
        registry.register(Box::new(gauge.clone()))?;
        let occupancy = prometheus::GaugeVec::new(
            prometheus::Opts::new(
                "dialerd_agent_occupancy_ratio",
                "Share of a call task's logged-in agents busy with a call now (reserved, talking or wrapping up); averaged over time it is the task's occupancy.",
            ),
            &["task"],
        )?;
        registry.register(Box::new(occupancy.clone()))?;
        Ok(Self {
            inner: Arc::default(),
            cfg: Arc::new(cfg),
            sip,
            media,
            events: broadcast::channel(BROADCAST).0,
            wake: Arc::default(),
            gauge,
            occupancy,
            campaign: None,
            webrtc: None,
            rt: tokio::runtime::Handle::current(),
        })
    }

    /// Sends the sessions' inputs for the campaign cores to `tx` (the campaign driver's);
    /// without it they are only logged. The campaign driver reports the calls it puts through
    /// back with [`Agents::act`] (`Reserved`, `Connected`, `CustomerHungUp` …).
    pub fn with_campaign_inputs(
        mut self,
        tx: mpsc::UnboundedSender<(TaskId, CampaignInput)>,
    ) -> Self {
        self.campaign = Some(tx);
        self
    }

    /// Lets agents log in with their browser's audio (`phone: "webrtc"`).
    pub fn with_webrtc(mut self, webrtc: WebRtc) -> Self {
        self.webrtc = Some(webrtc);
        self
    }

    /// The pause reasons agents may give (system reasons aside).
    pub fn pause_reasons(&self) -> &[String] {
        &self.cfg.pause_reasons
    }

    /// Wakes sessions at their timeouts until `stop`; then hangs up every leg.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            let next = self
                .lock()
                .agents
                .values()
                .filter_map(|e| e.session.poll_timeout())
                .min();
            let sleep = next.map(|t| t.since(now()));
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep.unwrap_or(Duration::from_secs(3600))), if sleep.is_some() => {}
            }
            let now = now();
            let mut inner = self.lock();
            let due: Vec<i64> = inner
                .agents
                .iter()
                .filter(|(_, e)| e.session.poll_timeout().is_some_and(|t| t <= now))
                .map(|(id, _)| *id)
                .collect();
            for id in due {
                if let Some(e) = inner.agents.get_mut(&id) {
                    e.session.handle_timeout(now);
                }
                self.apply(&mut inner, id, now);
            }
        }
        let mut inner = self.lock();
        for e in inner.agents.values_mut() {
            if let Some(leg) = e.leg.take() {
                let _ = leg.control.send(Control::HangUp);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `name` is an `[[agents]]` account.
    pub fn is_config_account(&self, name: &str) -> bool {
        self.cfg.accounts.contains(name)
    }

    /// Logs `user` in to serve `tasks` on `phone` and waits until the phone answers (the
    /// agent is then paused, reason `login`) or the session call fails.
    pub async fn log_in(
        &self,
        user: &User,
        tasks: Vec<TaskId>,
        phone: Phone,
    ) -> Result<AgentView, SessionError> {
        let connect = self.cfg.ring_timeout + Duration::from_secs(5);
        let mut events = self.events.subscribe();
        {
            let now = now();
            let mut inner = self.lock();
            let entry = entry_of(&mut inner, user, connect, now);
            entry.failure = None;
            entry.session.handle(Input::LogIn { tasks, phone }, now)?;
            self.apply(&mut inner, user.id, now);
        }
        self.wake.notify_one();
        let settled = async {
            loop {
                match events.recv().await {
                    Ok(Event {
                        agent,
                        kind: EventKind::State { reason, .. },
                        ..
                    }) if agent == user.id && reason.as_deref() != Some("connecting") => return,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        };
        // The session's own connect timeout ends the wait first.
        let _ = tokio::time::timeout(connect + Duration::from_secs(1), settled).await;
        let inner = self.lock();
        let entry = &inner.agents[&user.id];
        if entry.session.state() == AgentStateKind::LoggedOut {
            let why = entry
                .failure
                .clone()
                .or_else(|| entry.session.reason().map(str::to_string))
                .unwrap_or_default();
            return Err(SessionError::PhoneFailed(why));
        }
        Ok(view(user.id, entry))
    }

    /// Logs `user` in to serve `tasks` with the browser whose SDP `offer` came with the login:
    /// the SDP answer at once, and the agent's view (still connecting; it is paused, reason
    /// `login`, when the browser's ICE and DTLS are up, or logged out again when they do not
    /// come up within the connect timeout).
    pub fn log_in_webrtc(
        &self,
        user: &User,
        tasks: Vec<TaskId>,
        offer: &str,
    ) -> Result<(AgentView, String), SessionError> {
        let webrtc = self
            .webrtc
            .as_ref()
            .ok_or(crate::webrtc::WebRtcError::Off)?;
        let connect = self.cfg.ring_timeout + Duration::from_secs(5);
        let now = now();
        let mut inner = self.lock();
        if inner
            .agents
            .get(&user.id)
            .is_some_and(|e| e.session.has_leg())
        {
            return Err(SessionError::AlreadyLoggedIn);
        }
        let (answer, peer) = webrtc.accept(&self.media, offer)?;
        let entry = entry_of(&mut inner, user, connect, now);
        entry.session.handle(
            Input::LogIn {
                tasks,
                phone: Phone::WebRtc,
            },
            now,
        )?;
        entry.failure = None;
        entry.browser = Some(peer);
        self.apply(&mut inner, user.id, now);
        let view = view(user.id, &inner.agents[&user.id]);
        drop(inner);
        self.wake.notify_one();
        Ok((view, answer))
    }

    /// Logs `user` in to serve `tasks` on its own `call` to the login number from the phone
    /// of SIP account `account`: the call is answered as the session leg (the agent is then
    /// paused, reason `login`). When the session refuses (already logged in), the call is
    /// handed back.
    pub fn log_in_on_call(
        &self,
        user: &User,
        tasks: Vec<TaskId>,
        account: String,
        call: Incoming,
    ) -> Result<(), Box<(SessionError, Incoming)>> {
        let connect = self.cfg.ring_timeout + Duration::from_secs(5);
        let now = now();
        let mut inner = self.lock();
        let entry = entry_of(&mut inner, user, connect, now);
        let phone = Phone::Sip(account);
        if let Err(e) = entry.session.handle(Input::LogIn { tasks, phone }, now) {
            return Err(Box::new((e, call)));
        }
        entry.failure = None;
        entry.inbound = Some(call);
        self.apply(&mut inner, user.id, now);
        drop(inner);
        self.wake.notify_one();
        Ok(())
    }

    /// Applies an agent's request (ready, pause, hang up, log out), or a call event of the
    /// campaign driver, to the agent's session.
    pub fn act(&self, agent: i64, input: Input) -> Result<AgentView, SessionError> {
        let now = now();
        let mut inner = self.lock();
        let entry = inner
            .agents
            .get_mut(&agent)
            .ok_or(SessionError::NotLoggedIn)?;
        if !entry.session.has_leg() {
            return Err(SessionError::NotLoggedIn);
        }
        entry.session.handle(input, now)?;
        self.apply(&mut inner, agent, now);
        drop(inner);
        self.wake.notify_one();
        self.view(agent).ok_or(SessionError::NotLoggedIn)
    }

    /// Hands the answered customer of `call` to `agent`'s phone to be bridged to its leg; gives
    /// the customer back when the agent has no leg to bridge to.
    pub fn bridge(
        &self,
        agent: i64,
        call: CallId,
        customer: Box<Handover>,
    ) -> Result<(), Box<Handover>> {
        let mut inner = self.lock();
        let Some(entry) = inner.agents.get_mut(&agent) else {
            return Err(customer);
        };
        let Some(leg) = entry.leg.as_ref() else {
            return Err(customer);
        };
        let (tx, rx) = mpsc::channel(4);
        match leg.control.send(Control::Bridge(customer, rx)) {
            Ok(()) => {
                entry.bridge = Some((call, tx));
                Ok(())
            }
            Err(mpsc::error::SendError(Control::Bridge(customer, _))) => Err(customer),
            Err(_) => unreachable!("a bridge was sent"),
        }
    }

    /// Whether call task `task` may count `agent` as ready: an agent serving several tasks is
    /// ready in one task's core at a time, so that two drivers never put two customers through
    /// to it at once. The claim is granted when no other task of the agent's session holds it;
    /// a refused task waits its turn, which comes when the holder yields.
    pub fn claim(&self, agent: i64, task: TaskId) -> bool {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let tasks = inner
            .agents
            .get(&agent)
            .map_or(&[][..], |e| e.session.tasks());
        take_claim(&mut inner.claims, agent, tasks, task)
    }

    /// Each of `agents`' session state (`None`: never logged in) and, for those ready,
    /// whether `task` holds their claim now (taken as [`Agents::claim`] takes it): what a
    /// driver checks of all its agents at every turn, under one lock and copying nothing.
    pub fn claim_ready(&self, agents: &[i64], task: TaskId) -> Vec<(Option<AgentStateKind>, bool)> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        agents
            .iter()
            .map(|&agent| {
                let Some(e) = inner.agents.get(&agent) else {
                    return (None, false);
                };
                let state = e.session.state();
                let may = state == AgentStateKind::Ready
                    && take_claim(&mut inner.claims, agent, e.session.tasks(), task);
                (Some(state), may)
            })
            .collect()
    }

    /// `task` is done with `agent` for now (a call ended, no contact to call): the claim
    /// passes to the next task waiting for it, if any (in turn after `task`).
    pub fn yield_claim(&self, agent: i64, task: TaskId) {
        let mut inner = self.lock();
        if let Some(claim) = inner.claims.get_mut(&agent) {
            if claim.holder == Some(task) {
                let next = claim
                    .waiting
                    .range(task + 1..)
                    .next()
                    .or_else(|| claim.waiting.iter().next())
                    .copied();
                if let Some(next) = next {
                    claim.waiting.remove(&next);
                    claim.holder = Some(next);
                }
            }
        }
    }

    /// `task`'s driver ends: every claim it holds passes on, and it waits for none.
    pub fn drop_claims(&self, task: TaskId) {
        let agents: Vec<i64> = {
            let mut inner = self.lock();
            for claim in inner.claims.values_mut() {
                claim.waiting.remove(&task);
            }
            inner
                .claims
                .iter()
                .filter(|(_, c)| c.holder == Some(task))
                .map(|(a, _)| *a)
                .collect()
        };
        for agent in agents {
            self.yield_claim(agent, task);
            if let Some(claim) = self.lock().claims.get_mut(&agent) {
                if claim.holder == Some(task) {
                    claim.holder = None;
                }
            }
        }
    }

    /// Publishes a call event of `agent` (numbered and kept like its state events).
    pub fn publish(&self, agent: i64, kind: EventKind) {
        let mut inner = self.lock();
        let Some(entry) = inner.agents.get_mut(&agent) else {
            return;
        };
        if let EventKind::CallOffered { call, contact, .. }
        | EventKind::PreviewOffer { call, contact, .. } = &kind
        {
            entry.contact = Some((*call, *contact));
        }
        let event = entry.log.push(agent, rfc3339(now()), kind);
        let _ = self.events.send(event);
    }

    /// The call `agent` is bound to (reserved, talking or wrapping up), if any.
    pub fn call_of(&self, agent: i64) -> Option<(AgentStateKind, super::session::CallRef)> {
        let inner = self.lock();
        let s = &inner.agents.get(&agent)?.session;
        s.call().map(|c| (s.state(), c))
    }

    /// The agent's session as shown, if it ever logged in since the start.
    pub fn view(&self, agent: i64) -> Option<AgentView> {
        self.lock().agents.get(&agent).map(|e| view(agent, e))
    }

    /// Every agent that logged in since the start.
    pub fn views(&self) -> HashMap<i64, AgentView> {
        self.lock()
            .agents
            .iter()
            .map(|(id, e)| (*id, view(*id, e)))
            .collect()
    }

    /// New events of every agent, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The agent's kept events after `seq`.
    pub fn events_since(&self, agent: i64, seq: u64) -> Vec<Event> {
        self.lock()
            .agents
            .get(&agent)
            .map(|e| e.log.since(seq))
            .unwrap_or_default()
    }

    /// The latest event of every agent whose session serves `task`.
    pub fn task_states(&self, task: TaskId) -> Vec<Event> {
        let inner = self.lock();
        let mut v: Vec<Event> = inner
            .agents
            .values()
            .filter(|e| e.session.tasks().contains(&task))
            .filter_map(|e| e.log.last().cloned())
            .collect();
        v.sort_by_key(|e| e.agent);
        v
    }

    /// Whether `agent`'s current (or last) session serves `task`.
    pub fn serves(&self, agent: i64, task: TaskId) -> bool {
        self.lock()
            .agents
            .get(&agent)
            .is_some_and(|e| e.session.tasks().contains(&task))
    }

    /// A new single-use ticket for `user`'s event WebSocket, valid for [`TICKET_TTL`].
    pub fn ticket(&self, user: &User) -> String {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).expect("the OS random source works");
        let ticket: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut inner = self.lock();
        inner.tickets.retain(|_, t| t.expires > now);
        if inner.tickets.len() >= MAX_TICKETS {
            let oldest = inner
                .tickets
                .iter()
                .min_by_key(|(_, t)| t.expires)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                inner.tickets.remove(&k);
            }
        }
        inner.tickets.insert(
            ticket.clone(),
            Ticket {
                user: user.clone(),
                expires: now + TICKET_TTL,
            },
        );
        ticket
    }

    /// The user of a ticket, which is used up; `None` when unknown, used or expired.
    pub fn redeem(&self, ticket: &str) -> Option<User> {
        let t = self.lock().tickets.remove(ticket)?;
        (t.expires > Instant::now()).then_some(t.user)
    }

    /// What a leg of `agent` reports; reports of a leg the session no longer holds are stale.
    fn leg_report(&self, agent: i64, generation: u64, report: Report) {
        let now = now();
        let mut inner = self.lock();
        let Some(entry) = inner.agents.get_mut(&agent) else {
            return;
        };
        if entry.leg.as_ref().map(|l| l.generation) != Some(generation) {
            return;
        }
        let input = match report {
            Report::Answered => Input::LegAnswered,
            Report::Failed(why) => {
                tracing::info!(agent, reason = %why, "agent session call failed");
                entry.leg = None;
                entry.failure = Some(why.clone());
                Input::LegFailed(why)
            }
            Report::Lost => {
                entry.leg = None;
                Input::LegLost
            }
        };
        if let Err(e) = entry.session.handle(input, now) {
            tracing::debug!(agent, error = %e, "leg report not applied");
        }
        self.apply(&mut inner, agent, now);
        drop(inner);
        self.wake.notify_one();
    }

    /// Carries out what `agent`'s session asked for.
    fn apply(&self, inner: &mut Inner, agent: i64, now: Time) {
        let Some(entry) = inner.agents.get_mut(&agent) else {
            return;
        };
        let outputs: Vec<Output> = entry.session.drain_outputs().collect();
        let mut changed = false;
        for output in outputs {
            match output {
                Output::Dial(phone) => {
                    inner.legs += 1;
                    let generation = inner.legs;
                    let Some(entry) = inner.agents.get_mut(&agent) else {
                        return;
                    };
                    let (tx, rx) = mpsc::unbounded_channel();
                    entry.leg = Some(Leg {
                        generation,
                        control: tx,
                    });
                    if let Some(call) = entry.inbound.take() {
                        let me = self.clone();
                        tokio::spawn(phone::answer(
                            self.sip.clone(),
                            self.media.clone(),
                            call,
                            rx,
                            move |r| me.leg_report(agent, generation, r),
                        ));
                        continue;
                    }
                    if let Some(peer) = entry.browser.take() {
                        let me = self.clone();
                        self.rt.spawn(phone::run_webrtc(
                            self.sip.clone(),
                            self.media.clone(),
                            peer,
                            rx,
                            move |r| me.leg_report(agent, generation, r),
                        ));
                        continue;
                    }
                    let local_ip = self.sip.local_ip_for_trunk(None);
                    let Some(dial) = phone::dial(&phone, self.cfg.ring_timeout, local_ip) else {
                        // A browser login always brings its leg; without one there is none.
                        let me = self.clone();
                        let report = move |r| me.leg_report(agent, generation, r);
                        self.rt.spawn(async move {
                            report(Report::Failed("no browser offer".into()));
                        });
                        continue;
                    };
                    let me = self.clone();
                    self.rt.spawn(phone::run(
                        self.sip.clone(),
                        self.media.clone(),
                        dial,
                        local_ip,
                        rx,
                        move |r| me.leg_report(agent, generation, r),
                    ));
                }
                Output::HangUpLeg => {
                    if let Some(leg) = inner.agents.get_mut(&agent).and_then(|e| e.leg.take()) {
                        let _ = leg.control.send(Control::HangUp);
                    }
                }
                Output::HangUpCustomer(call) => {
                    let bridge = inner.agents.get_mut(&agent).and_then(|e| e.bridge.take());
                    match bridge {
                        Some((c, tx)) if c == call => {
                            let _ = tx.try_send(BridgeCommand::Unbridge);
                        }
                        // Not bridged yet: the campaign driver hears of the agent's leg.
                        _ => tracing::debug!(agent, %call, "customer hang-up asked; not bridged"),
                    }
                }
                Output::Campaign { task, input } => match &self.campaign {
                    Some(tx) => {
                        let _ = tx.send((task, input));
                    }
                    None => {
                        tracing::debug!(agent, task, ?input, "campaign input (no campaign driver)")
                    }
                },
                Output::State { state, reason } => {
                    let Some(entry) = inner.agents.get_mut(&agent) else {
                        return;
                    };
                    tracing::info!(agent, user = %entry.name, state = state.name(), reason = reason.as_deref().unwrap_or(""), "agent state");
                    let event =
                        entry
                            .log
                            .push(agent, rfc3339(now), EventKind::State { state, reason });
                    let _ = self.events.send(event);
                    changed = true;
                }
            }
        }
        if changed {
            self.count(inner);
        }
    }

    /// Task `task`'s occupancy per 5 minutes over the last day, oldest first.
    pub fn occupancy_history(&self, task: TaskId) -> Vec<super::occupancy::OccupancyBucket> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .occupancy
            .get(&task)
            .map(|h| h.buckets(now()))
            .unwrap_or_default()
    }

    /// Sets `dialerd_agents{task,state}` and `dialerd_agent_occupancy_ratio{task}` from every
    /// session, and feeds each task's occupancy history.
    fn count(&self, inner: &mut Inner) {
        let mut counts: HashMap<(TaskId, AgentStateKind), i64> = HashMap::new();
        for e in inner.agents.values() {
            for task in e.session.tasks() {
                inner.gauge_tasks.insert(*task);
                *counts.entry((*task, e.session.state())).or_default() += 1;
            }
        }
        let at = now();
        for task in &inner.gauge_tasks {
            let label = task.to_string();
            let (mut busy, mut present) = (0, 0);
            for state in AgentStateKind::ALL {
                let n = counts.get(&(*task, state)).copied().unwrap_or(0);
                self.gauge.with_label_values(&[&label, state.name()]).set(n);
                match state {
                    AgentStateKind::LoggedOut => {}
                    AgentStateKind::Reserved | AgentStateKind::Talking | AgentStateKind::WrapUp => {
                        busy += n;
                        present += n;
                    }
                    _ => present += n,
                }
            }
            let ratio = if present > 0 {
                busy as f64 / present as f64
            } else {
                0.0
            };
            self.occupancy.with_label_values(&[&label]).set(ratio);
            inner
                .occupancy
                .entry(*task)
                .or_default()
                .observe(at, busy as usize, present as usize);
        }
    }
}

/// The agent's entry, made on its first login, named as the user is now.
fn entry_of<'a>(inner: &'a mut Inner, user: &User, connect: Duration, now: Time) -> &'a mut Entry {
    let entry = inner.agents.entry(user.id).or_insert_with(|| Entry {
        name: user.name.clone(),
        session: Session::new(AgentId(user.id as u32), connect, now),
        log: EventLog::default(),
        leg: None,
        failure: None,
        inbound: None,
        browser: None,
        bridge: None,
        contact: None,
    });
    entry.name = user.name.clone();
    entry
}

/// `task` asks for `agent`'s claim ([`Agents::claim`]); `tasks` are the agent's session's.
fn take_claim(
    claims: &mut HashMap<i64, Claim>,
    agent: i64,
    tasks: &[TaskId],
    task: TaskId,
) -> bool {
    let claim = claims.entry(agent).or_default();
    match claim.holder {
        Some(h) if h != task && tasks.contains(&h) => {
            claim.waiting.insert(task);
            false
        }
        _ => {
            claim.holder = Some(task);
            claim.waiting.remove(&task);
            true
        }
    }
}

fn view(id: i64, e: &Entry) -> AgentView {
    let s = &e.session;
    AgentView {
        id,
        name: e.name.clone(),
        state: s.state(),
        reason: s.reason().map(str::to_string),
        since: Some(rfc3339(s.since())),
        call_id: s.call().map(|c| c.call.0),
        contact_id: s
            .call()
            .and_then(|c| e.contact.filter(|(call, _)| *call == c.call.0))
            .map(|(_, contact)| contact),
        tasks: s.tasks().to_vec(),
    }
}

/// Whether `role` may watch or steer other agents.
pub fn supervises(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Supervisor)
}
