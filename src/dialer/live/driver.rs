//! One call task's driver: feeds the campaign core what agents, calls and the clock do, and
//! carries out what it asks — leases from the store, calls placed and bridged, the
//! safe-harbour message, attempts recorded, the core's state saved (at most every
//! [`PERSIST_EVERY`], and at the end).

use super::attempt::disposition;
use super::call::{self, CallCmd, CallCtx, CallEvent};
use super::hopper::Hopper;
use super::inbound::InboundOffer;
use super::inbound_call::{self, Sounds};
use super::metrics::LiveMetrics;
use super::ownership::Term;
use super::trunks::TrunkRoom;
use super::{AgentResult, Figures, LiveError, WaitingCaller};
use crate::agents::events::EventKind;
use crate::agents::session::Input as SessionInput;
use crate::agents::AgentView;
use crate::call::campaign_call::DialPlan;
use crate::call::record;
use crate::dialer::agent::AgentStateKind;
use crate::dialer::campaign::{AttemptOutcome, Campaign, CampaignConfig, ContactId, Input, Output};
use crate::dialer::outcome::CallEnd;
use crate::dialer::pacing::PacerConfig;
use crate::dialer::queue::QueueConfig;
use crate::dialer::{AgentId, CallId, Time};
use crate::media::prompt::Clip;
use crate::store::calls::CallRecord;
use crate::store::contacts::{Attempt, Contact};
use crate::store::tasks::{CallSettings, DialMode};
use crate::store::{now_ms, rfc3339, Store};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

mod callers;
mod particular;
mod placing;
mod records;
mod store_tasks;

use callers::InboundInfo;

/// The live figures and gauges are refreshed at most this often.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// The core's state is saved at most this often while it changes.
pub const PERSIST_EVERY: Duration = Duration::from_secs(5);

/// The pause reason of an agent whose time another call task holds.
pub const BUSY: &str = "busy";

/// What a driver is told.
#[derive(Debug)]
pub enum Msg {
    /// An agent session's input (its agent named by user id).
    Agent(Input),
    /// An agent's result for the call it wraps up; answered once recorded.
    Result {
        /// The agent (user id).
        agent: i64,
        /// The call.
        call: CallId,
        /// The result.
        result: AgentResult,
        /// Told whether it was taken.
        reply: oneshot::Sender<Result<(), LiveError>>,
    },
    /// The agent accepts (places) or skips the preview offer `call`; answered at once.
    Preview {
        /// The agent (user id).
        agent: i64,
        /// The call offered.
        call: CallId,
        /// Place it (else skip it).
        accept: bool,
        /// Told whether the offer was the agent's.
        reply: oneshot::Sender<Result<(), LiveError>>,
    },
    /// A caller who called one of the task's lines back, to be put through to an agent.
    Inbound(Box<InboundOffer>),
    /// Stop placing calls; end once no call is left.
    Drain,
    /// Hang up every call and end now (the daemon stops).
    Stop,
}

/// What every driver shares.
#[derive(Clone)]
pub struct Ctx {
    /// The store.
    pub store: Store,
    /// SIP, media and agents for the calls.
    pub calls: CallCtx,
    /// The series.
    pub metrics: LiveMetrics,
    /// This run's lease owner name.
    pub owner: String,
    /// Every driver's figures, by task.
    pub figures: Arc<Mutex<HashMap<i64, Figures>>>,
    /// What the trunks can take.
    pub trunks: TrunkRoom,
    /// Where ended calls are written on their contacts.
    pub attempts: super::attempt_log::AttemptLog,
}

struct LiveCall {
    /// The call record's id (the attempt's `call_id`).
    record_id: String,
    contact: Contact,
    number: String,
    cmd: Option<mpsc::UnboundedSender<CallCmd>>,
    sip_code: Option<u16>,
    answered: Option<Instant>,
    /// An agent was put to it in the core step that took its answer: none had to free up.
    agent_was_ready: bool,
    /// The agent (user id) it is put through to.
    agent: Option<i64>,
    bridged: bool,
    /// The customer's leg ended after the bridge: the agent wraps up.
    ended: bool,
    /// The call reported something: the trunk took it (and counts it).
    heard: bool,
    /// The contact called us (a callback).
    inbound: Option<InboundInfo>,
}

impl LiveCall {
    fn wrapping_up(&self) -> bool {
        self.bridged && self.ended
    }
}

/// What a driver knows of its call task, read once at its start.
struct TaskInfo {
    id: i64,
    campaign_id: i64,
    campaign_name: String,
    settings: CallSettings,
    /// What the task's calls show and how long they ring.
    dial_plan: Arc<DialPlan>,
    safe_harbour: Vec<Clip>,
    /// The campaign records its calls.
    recording: bool,
    /// Until when this node's lease of the task lets it dial.
    term: Term,
}

impl TaskInfo {
    /// Whether this node may lease and place calls for the task now: its lease, as last
    /// renewed, has not run out (a node that stalled past it waits for the next renewal).
    fn dials_now(&self) -> bool {
        self.term.dials_at(now_ms())
    }
}

/// The task's agents: their ids in the core, and who is busy elsewhere.
#[derive(Default)]
struct Roster {
    /// The core's id for each agent (user id).
    ids: HashMap<i64, AgentId>,
    /// The user id of each of the core's agents.
    users: HashMap<AgentId, i64>,
    /// Agents (user ids) busy with another task's call, paused here until free.
    busy: HashSet<i64>,
}

/// What the driver writes to the store in tasks of its own.
struct Saving {
    /// The core's state changed since it was last saved.
    dirty: bool,
    /// When the core's state was last saved.
    saved: Instant,
    /// Contact writes and saves under way ([`Driver::write`]).
    writes: Vec<tokio::task::JoinHandle<()>>,
}

/// One call task's driver.
pub struct Driver {
    ctx: Ctx,
    task: TaskInfo,
    core: Campaign,
    roster: Roster,
    /// The contacts the driver holds leases on, not yet placed.
    hopper: Hopper,
    calls: HashMap<CallId, LiveCall>,
    /// Calls answered since the last settle: an agent put to one of them was ready.
    just_answered: Vec<CallId>,
    /// Agents' results taken, and who waits to hear that their call is written.
    results: HashMap<CallId, (AgentResult, Option<store_tasks::Reply>)>,
    /// Preview offers waiting for their agent: (agent's user id, contact).
    offers: HashMap<CallId, (i64, ContactId)>,
    events: mpsc::UnboundedSender<(CallId, CallEvent)>,
    draining: bool,
    saving: Saving,
    figures: Figures,
    /// When the figures were last refreshed.
    published: Option<Instant>,
    /// When the store was last asked for particular callbacks due.
    particular_checked: Option<Instant>,
    /// Store work under way in tasks of its own.
    store_tasks: store_tasks::StoreTasks,
}

fn now() -> Time {
    Time(now_ms().max(0) as u64)
}

/// The core's settings for a call task, paced to the trunks' `max_cps` together when given
/// (the core's default of 10 calls per second when not).
pub fn config(settings: &CallSettings, max_cps: Option<f64>) -> CampaignConfig {
    let mut queue = QueueConfig::default();
    queue.timers.wrap_up = Duration::from_secs(settings.wrap_up_seconds.into());
    let mut config = CampaignConfig {
        queue,
        pacer: PacerConfig::for_task(settings),
        ..CampaignConfig::default()
    };
    if let Some(cps) = max_cps {
        config.max_cps = cps;
    }
    config
}

impl Driver {
    /// A driver for `task_id` of `campaign_id`, its core restored from the saved state, with
    /// the agents of `views` that serve the task already logged in, dialling within `term`.
    pub async fn start(
        ctx: Ctx,
        campaign_id: i64,
        task_id: i64,
        views: &[AgentView],
        term: Term,
    ) -> Result<(Self, mpsc::UnboundedReceiver<(CallId, CallEvent)>), LiveError> {
        let campaign = ctx.store.campaign(campaign_id).await?;
        let task = ctx.store.task(campaign_id, task_id).await?;
        let settings = task.spec.call_settings().unwrap_or_default();
        let persisted = match ctx.store.dialer_state(task_id).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(task = task_id, error = %e, "saved dialer state unreadable; starting cold");
                None
            }
        };
        let core = match Campaign::new(config(&settings, ctx.trunks.max_cps()), persisted.as_ref())
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(task = task_id, error = %e, "saved dialer state refused; starting cold");
                Campaign::new(config(&settings, ctx.trunks.max_cps()), None)
                    .expect("a cold core starts")
            }
        };
        let safe_harbour = ctx
            .store
            .campaign_prompt(campaign_id, "safe_harbour")
            .await?
            .map(|s| vec![Clip::Audio(s.into())])
            .unwrap_or_default();
        let (events, rx) = mpsc::unbounded_channel();
        let dial_plan = Arc::new(DialPlan::new(ctx.store.clone(), campaign_id, task_id));
        let mut d = Driver {
            figures: Figures {
                task_id,
                mode: settings.dial_mode.name().to_string(),
                ..Figures::default()
            },
            ctx,
            task: TaskInfo {
                id: task_id,
                campaign_id,
                campaign_name: campaign.spec.name.clone(),
                settings,
                dial_plan,
                safe_harbour,
                recording: campaign.spec.recording,
                term,
            },
            core,
            roster: Roster::default(),
            hopper: Hopper::new(),
            calls: HashMap::new(),
            just_answered: Vec::new(),
            results: HashMap::new(),
            offers: HashMap::new(),
            events,
            draining: false,
            saving: Saving {
                dirty: false,
                saved: Instant::now(),
                writes: Vec::new(),
            },
            published: None,
            particular_checked: None,
            store_tasks: store_tasks::StoreTasks::new(),
        };
        for v in views.iter().filter(|v| v.tasks.contains(&task_id)) {
            let agent = AgentId(v.id as u32);
            let seed = match v.state {
                AgentStateKind::LoggedOut => continue,
                AgentStateKind::Ready => vec![Input::AgentLoggedIn(agent)],
                AgentStateKind::Paused => vec![
                    Input::AgentLoggedIn(agent),
                    Input::AgentPaused(agent, v.reason.clone().unwrap_or_default()),
                ],
                // Busy with another task's call: paused here until its session is ready.
                _ => {
                    d.roster.busy.insert(v.id);
                    vec![
                        Input::AgentLoggedIn(agent),
                        Input::AgentPaused(agent, BUSY.into()),
                    ]
                }
            };
            for input in seed {
                d.agent_input(input, now());
            }
        }
        Ok((d, rx))
    }

    /// Runs until drained or stopped; saves the core's state at the end.
    pub async fn run(
        mut self,
        mut msgs: mpsc::UnboundedReceiver<Msg>,
        mut calls: mpsc::UnboundedReceiver<(CallId, CallEvent)>,
    ) {
        tracing::info!(task = self.task.id, campaign = %self.task.campaign_name, mode = %self.figures.mode, "campaign driver started");
        let Some(mut done) = self.store_tasks.rx.take() else {
            return;
        };
        loop {
            self.settle().await;
            if self.draining
                && self.calls.is_empty()
                && self.hopper.is_empty()
                && self.store_tasks.out == 0
            {
                break;
            }
            let wait = self
                .core
                .poll_timeout()
                .map(|t| t.since(now()))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            // Messages and call events before the timer: answers are served first.
            tokio::select! {
                biased;
                msg = msgs.recv() => match msg {
                    Some(Msg::Stop) | None => {
                        self.stop().await;
                        self.settle_store_tasks(&mut done).await;
                        break;
                    }
                    Some(msg) => self.on_msg(msg).await,
                },
                Some((call, ev)) = calls.recv() => self.on_call(call, ev),
                Some(d) = done.recv() => self.on_store_done(d).await,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // Earlier saves first, so none lands after the last.
        self.flush().await;
        self.save();
        self.flush().await;
        self.ctx.calls.agents.drop_claims(self.task.id);
        self.ctx
            .metrics
            .in_flight
            .with_label_values(&[&self.task.id.to_string()])
            .set(0);
        self.ctx
            .metrics
            .inbound_waiting
            .with_label_values(&[&self.task.id.to_string()])
            .set(0);
        self.ctx
            .figures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.task.id);
        tracing::info!(task = self.task.id, "campaign driver stopped");
    }

    /// Keeps the core's ready agents to those this task may offer calls now: an agent bound to
    /// another task's call, or whose claim another task holds ([`crate::agents::Agents::claim`]),
    /// is paused here (reason `busy`) and made ready again once the claim is this task's.
    fn arbitrate(&mut self) {
        let users: Vec<(i64, AgentId)> = self.roster.ids.iter().map(|(u, id)| (*u, *id)).collect();
        let ids: Vec<i64> = users.iter().map(|(u, _)| *u).collect();
        let sessions = self.ctx.calls.agents.claim_ready(&ids, self.task.id);
        for ((user, id), (session, may)) in users.into_iter().zip(sessions) {
            if matches!(session, Some(AgentStateKind::LoggedOut) | None) {
                self.roster.busy.remove(&user);
                continue;
            }
            let Some(core) = self
                .core
                .agents()
                .get(id.0 as usize)
                .map(|a| a.state().kind())
            else {
                continue;
            };
            if core == AgentStateKind::Ready && !may {
                self.roster.busy.insert(user);
                self.feed(Input::AgentPaused(id, BUSY.into()));
            } else if core == AgentStateKind::Paused && may && self.roster.busy.remove(&user) {
                self.feed(Input::AgentReady(id));
            }
        }
    }

    /// Runs the core's timeout if it is due, then carries out its outputs until it asks for
    /// nothing more. One timeout per call: when carrying out takes longer than the pacing
    /// interval, another timeout is always due, and taking it here would keep the driver from
    /// ever reading its call events (answers would wait, unbridged).
    async fn settle(&mut self) {
        self.arbitrate();
        self.take_particular();
        for id in self.hopper.stale(Instant::now()) {
            self.release(id);
        }
        let now = now();
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            if let Err(e) = self.core.handle_timeout(now) {
                tracing::warn!(task = self.task.id, error = %e, "campaign core timeout");
            }
        }
        loop {
            let outputs: Vec<Output> = self.core.drain_outputs().collect();
            if outputs.is_empty() {
                break;
            }
            for o in outputs {
                self.carry_out(o).await;
            }
            self.arbitrate();
        }
        self.just_answered.clear();
        // A result whose call the core ended without an attempt to write: taken as it is.
        let unwritten: Vec<CallId> = self
            .results
            .keys()
            .filter(|c| !self.calls.contains_key(c))
            .copied()
            .collect();
        for call in unwritten {
            if let Some((_, Some(reply))) = self.results.remove(&call) {
                let _ = reply.send(Ok(()));
            }
        }
        if self.saving.dirty && self.saving.saved.elapsed() >= PERSIST_EVERY {
            self.save();
        }
        self.publish();
    }

    /// Saves the core's state if it changed, in a task of its own (awaited with the writes),
    /// as the store may be slow to answer.
    fn save(&mut self) {
        if !self.saving.dirty {
            return;
        }
        self.saving.dirty = false;
        self.saving.saved = Instant::now();
        let (store, task, state) = (self.ctx.store.clone(), self.task.id, self.core.persisted());
        self.saving.writes.retain(|w| !w.is_finished());
        self.saving.writes.push(tokio::spawn(async move {
            if let Err(e) = store.save_dialer_state(task, &state).await {
                tracing::warn!(task, error = %e, "dialer state not saved");
            }
        }));
    }

    /// Refreshes the figures and gauges. Those that walk every agent and waiting caller (too
    /// much for each call event at a thousand agents) at most every [`PUBLISH_EVERY`].
    fn publish(&mut self) {
        let now = now();
        let ledger = self.core.ledger();
        let (day, month) = (ledger.last_24h(now).ratio(), ledger.last_30d(now).ratio());
        let campaign = self.task.campaign_id.to_string();
        let m = &self.ctx.metrics;
        m.abandon_ratio
            .with_label_values(&[&campaign, "24h"])
            .set(day);
        m.abandon_ratio
            .with_label_values(&[&campaign, "30d"])
            .set(month);
        m.in_flight
            .with_label_values(&[&self.task.id.to_string()])
            .set(self.calls.len() as i64);
        self.figures.draining = self.draining;
        self.figures.agents = self.roster.ids.len();
        self.figures.calls_in_flight = self.calls.len() as u64;
        self.figures.abandon_ratio_24h = day;
        self.figures.abandon_ratio_30d = month;
        if self
            .published
            .is_none_or(|at| at.elapsed() >= PUBLISH_EVERY)
        {
            self.published = Some(Instant::now());
            self.publish_walks();
        }
        self.ctx
            .figures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.task.id, self.figures.clone());
    }

    /// The figures that walk the agents and the waiting callers.
    fn publish_walks(&mut self) {
        let mut by_state = std::collections::BTreeMap::new();
        for a in self.core.agents() {
            *by_state
                .entry(a.state().kind().name().to_string())
                .or_insert(0) += 1;
        }
        let working: usize = by_state
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "logged_out" | "paused"))
            .map(|(_, n)| *n)
            .sum();
        self.figures.dial_level = if working == 0 {
            0.0
        } else {
            self.core.queue().in_flight() as f64 / working as f64
        };
        self.figures.agents_by_state = by_state;
        self.figures.answer_rate = self.core.stats().live_probability();
        self.figures.decisions = self.core.decisions();
        self.figures.waiting_callers = self
            .core
            .waiting_inbound()
            .into_iter()
            .filter_map(|(call, contact, _)| {
                let c = self.calls.get(&call)?;
                let i = c.inbound.as_ref()?;
                Some(WaitingCaller {
                    call: call.0,
                    contact_id: contact.0,
                    number: c.number.clone(),
                    line_id: i.line_id,
                    waited_seconds: i.since.elapsed().as_secs_f64(),
                })
            })
            .collect();
        self.ctx
            .metrics
            .inbound_waiting
            .with_label_values(&[&self.task.id.to_string()])
            .set(self.figures.waiting_callers.len() as i64);
    }

    fn feed(&mut self, input: Input) {
        if let Err(e) = self.core.handle(input, now()) {
            tracing::debug!(task = self.task.id, error = %e, "campaign core refused an input");
        }
    }

    /// Takes an agent's result for the call they wrap up (its fields written): the core ends
    /// the wrap-up and the call is written; `reply` hears once it is.
    fn take_result(
        &mut self,
        agent: i64,
        call: CallId,
        result: AgentResult,
        reply: store_tasks::Reply,
    ) {
        let wrapping_up = self
            .calls
            .get(&call)
            .is_some_and(|c| c.agent == Some(agent) && c.wrapping_up());
        let Some(id) = self.roster.ids.get(&agent).copied().filter(|_| wrapping_up) else {
            // The wrap-up ran out while the fields were written.
            let _ = reply.send(Err(LiveError::NotInWrapUp));
            return;
        };
        let input = Input::WrapUpEnded {
            agent: id,
            call,
            result: result.detail.clone(),
        };
        self.results.insert(call, (result, Some(reply)));
        if let Err(e) = self.core.handle(input, now()) {
            tracing::debug!(task = self.task.id, error = %e, "result refused");
            if let Some((_, Some(reply))) = self.results.remove(&call) {
                let _ = reply.send(Err(LiveError::NotInWrapUp));
            }
        }
    }

    /// An agent's input, its agent named by user id, fed with the core's id for it.
    fn agent_input(&mut self, input: Input, now: Time) {
        let user_of = |a: AgentId| i64::from(a.0);
        let user = match &input {
            Input::AgentLoggedIn(a)
            | Input::AgentReady(a)
            | Input::AgentPaused(a, _)
            | Input::AgentLoggedOut(a)
            | Input::AgentLegLost(a) => user_of(*a),
            other => {
                tracing::debug!(?other, "not an agent input");
                return;
            }
        };
        let id = match (self.roster.ids.get(&user), &input) {
            (Some(id), _) => *id,
            (None, Input::AgentLoggedIn(_)) => {
                let id = self.core.add_agent(now);
                self.roster.ids.insert(user, id);
                self.roster.users.insert(id, user);
                id
            }
            (None, _) => return,
        };
        let input = match input {
            Input::AgentLoggedIn(_) => Input::AgentLoggedIn(id),
            Input::AgentReady(_) => Input::AgentReady(id),
            Input::AgentPaused(_, why) => Input::AgentPaused(id, why),
            Input::AgentLoggedOut(_) => Input::AgentLoggedOut(id),
            Input::AgentLegLost(_) => Input::AgentLegLost(id),
            _ => return,
        };
        self.feed(input);
    }

    async fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Agent(input) => self.agent_input(input, now()),
            Msg::Result {
                agent,
                call,
                result,
                reply,
            } => {
                // Taken once its fields are written, in a task of its own; the agent hears
                // back once the call is written too.
                let contact = match self.calls.get(&call) {
                    Some(c) if c.agent == Some(agent) && c.wrapping_up() => c.contact.id,
                    _ => {
                        let _ = reply.send(Err(LiveError::NotInWrapUp));
                        return;
                    }
                };
                if result.fields.is_empty() {
                    self.take_result(agent, call, result, reply);
                } else {
                    self.write_fields_then_take(agent, call, contact, result, reply);
                }
            }
            Msg::Preview {
                agent,
                call,
                accept,
                reply,
            } => {
                let taken = match self.offers.get(&call) {
                    Some((user, _)) if *user == agent => {
                        if accept {
                            self.offers.remove(&call);
                            self.feed(Input::PreviewAccepted(call));
                        } else {
                            // The contact's Unlease releases the agent.
                            self.feed(Input::PreviewSkipped(call));
                        }
                        Ok(())
                    }
                    _ => Err(LiveError::NoOffer),
                };
                self.settle().await;
                let _ = reply.send(taken);
            }
            Msg::Inbound(offer) => self.inbound(*offer).await,
            Msg::Drain => {
                if !self.draining {
                    tracing::info!(task = self.task.id, "campaign driver draining");
                }
                self.draining = true;
                for id in self.hopper.empty_ahead() {
                    self.release(id);
                }
            }
            Msg::Stop => self.stop().await,
        }
    }

    fn on_call(&mut self, call: CallId, ev: CallEvent) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.heard = true;
        match ev {
            CallEvent::Ringing => self.feed(Input::Ringing(call)),
            CallEvent::Answered(at) => {
                c.answered = Some(at);
                self.ctx
                    .metrics
                    .answer_read_lag
                    .observe(at.elapsed().as_secs_f64());
                c.sip_code = Some(200);
                self.just_answered.push(call);
                self.figures.answered += 1;
                self.feed(Input::Answered(call));
            }
            CallEvent::Failed(end, code) => {
                c.sip_code = code;
                c.cmd = None;
                self.feed(Input::Failed(call, end));
            }
            CallEvent::Bridged(joined) => {
                c.bridged = true;
                // Timed where they happened (the 200 OK taken, the audio joined), not when the
                // driver heard of them: what the customer lives through.
                if let Some(at) = c.answered {
                    let agent = if c.agent_was_ready {
                        "ready"
                    } else {
                        "awaited"
                    };
                    self.ctx
                        .metrics
                        .answer_to_agent
                        .with_label_values(&[agent])
                        .observe(joined.saturating_duration_since(at).as_secs_f64());
                }
                if let Some(i) = c.inbound.as_mut() {
                    let waited = joined.saturating_duration_since(i.since);
                    i.waited = Some(waited);
                    self.ctx.metrics.inbound_wait.observe(waited.as_secs_f64());
                }
                let agent = c.agent;
                self.feed(Input::Bridged(call));
                if let Some(agent) = agent {
                    let _ = self
                        .ctx
                        .calls
                        .agents
                        .act(agent, SessionInput::Connected(call));
                    self.ctx
                        .calls
                        .agents
                        .publish(agent, EventKind::CallConnected { call: call.0 });
                }
            }
            CallEvent::BridgeFailed => {
                tracing::info!(task = self.task.id, %call, "agent's leg gone before the bridge");
            }
            CallEvent::Gone { by_customer } => {
                c.cmd = None;
                c.ended = true;
                let (agent, bridged) = (c.agent, c.bridged);
                if bridged {
                    if let Some(agent) = agent {
                        let agents = &self.ctx.calls.agents;
                        if by_customer {
                            let _ = agents.act(agent, SessionInput::CustomerHungUp(call));
                            agents.publish(agent, EventKind::CallCustomerHangup { call: call.0 });
                        }
                        agents.publish(agent, EventKind::CallEnded { call: call.0 });
                        let deadline =
                            now() + Duration::from_secs(self.task.settings.wrap_up_seconds.into());
                        agents.publish(
                            agent,
                            EventKind::WrapUp {
                                call: call.0,
                                deadline: rfc3339(deadline.0 as i64),
                            },
                        );
                    }
                }
                // Refused (and harmless) when the core already ended the call itself.
                self.feed(Input::CustomerHungUp(call));
            }
        }
    }

    async fn carry_out(&mut self, o: Output) {
        match o {
            Output::Lease(n) => {
                // No more than the trunks can take now: none while every trunk is down.
                // Calls placed and not heard of yet may not be counted on their trunk yet.
                let unheard = self
                    .calls
                    .values()
                    .filter(|c| c.cmd.is_some() && !c.heard)
                    .count();
                let free = self.ctx.trunks.free_lines();
                let n = n.min(free.saturating_sub(u32::try_from(unheard).unwrap_or(u32::MAX)));
                if self.draining || n == 0 || !self.task.dials_now() {
                    self.give_core(Vec::new());
                } else {
                    if let Some(ids) = self.hopper.take_for_core(n, Instant::now()) {
                        self.give_core(ids);
                    }
                    self.refill();
                }
            }
            Output::Unlease(ids) => {
                for id in ids {
                    self.hopper.unlease(id);
                    // A preview offer skipped or lapsed: its agent is free again.
                    let lapsed: Vec<CallId> = self
                        .offers
                        .iter()
                        .filter(|(_, o)| o.1 == id)
                        .map(|(c, _)| *c)
                        .collect();
                    for call in lapsed {
                        if let Some((user, _)) = self.offers.remove(&call) {
                            let _ = self
                                .ctx
                                .calls
                                .agents
                                .act(user, SessionInput::Released(call));
                        }
                    }
                    self.release(id);
                }
            }
            Output::Offer {
                call,
                agent,
                contact,
            } => {
                // Preview: the offer is the agent's reservation; the agent accepts or skips.
                let Some(user) = self.roster.users.get(&agent).copied() else {
                    return self.feed(Input::PreviewSkipped(call));
                };
                let reserve = SessionInput::Reserved {
                    task: self.task.id,
                    call,
                };
                if let Err(e) = self.ctx.calls.agents.act(user, reserve) {
                    tracing::warn!(task = self.task.id, %call, agent = user, error = %e, "agent not reserved; offer skipped");
                    return self.feed(Input::PreviewSkipped(call));
                }
                self.offers.insert(call, (user, contact));
                self.offered(user, call, contact, None);
            }
            Output::Place {
                call,
                contact,
                agent,
            } => self.place(call, contact, agent).await,
            Output::Cancel(call) => self.command(call, CallCmd::Cancel),
            Output::Bridge { call, agent } => {
                let Some(user) = self.roster.users.get(&agent).copied() else {
                    return;
                };
                if let Some(c) = self.calls.get_mut(&call) {
                    c.agent = Some(user);
                    c.agent_was_ready = self.just_answered.contains(&call);
                }
                let agents = &self.ctx.calls.agents;
                // A preview agent is reserved for the call already.
                let reserved = agents
                    .call_of(user)
                    .is_some_and(|(_, c)| c.call == call && c.task == self.task.id);
                if reserved {
                    // Reserved before the answer: a preview, or a particular callback placed
                    // for its owner.
                    let direction = match self.task.settings.dial_mode {
                        DialMode::Preview => "preview",
                        _ => "outbound",
                    };
                    if let Some(contact) = self.calls.get(&call).map(|c| ContactId(c.contact.id)) {
                        self.offered(user, call, contact, Some(direction));
                    }
                } else {
                    let reserve = SessionInput::Reserved {
                        task: self.task.id,
                        call,
                    };
                    if let Err(e) = agents.act(user, reserve) {
                        // Taken meanwhile (another task's call, a pause): the customer waits
                        // for another agent here, and the agent is busy until free again.
                        tracing::info!(task = self.task.id, %call, agent = user, error = %e, "agent not reserved; the call waits for another");
                        if let Some(c) = self.calls.get_mut(&call) {
                            c.agent = None;
                        }
                        self.feed(Input::AgentLegLost(agent));
                        self.feed(Input::AgentLoggedIn(agent));
                        self.feed(Input::AgentPaused(agent, BUSY.into()));
                        self.roster.busy.insert(user);
                        return;
                    }
                    if let Some(c) = self.calls.get(&call) {
                        let direction = if c.inbound.is_some() {
                            "callback"
                        } else {
                            "outbound"
                        };
                        self.offered(user, call, ContactId(c.contact.id), Some(direction));
                    }
                }
                self.command(call, CallCmd::Bridge(user));
            }
            Output::Abandon(call) => {
                self.command(call, CallCmd::Abandon(self.task.safe_harbour.clone()));
            }
            Output::CallBackLater(call) => {
                let clips = self
                    .calls
                    .get(&call)
                    .and_then(|c| c.inbound.as_ref())
                    .map(|i| i.call_back_later.clone())
                    .unwrap_or_default();
                self.command(call, CallCmd::Abandon(clips));
            }
            Output::HangUp(call) => self.command(call, CallCmd::HangUp),
            Output::RecordAttempt {
                call,
                contact,
                outcome,
            } => self.record(call, contact, outcome).await,
            Output::AgentState { agent, state } => {
                tracing::debug!(task = self.task.id, %agent, state = state.name(), "core agent state");
            }
            Output::Persist => self.saving.dirty = true,
        }
    }

    /// The daemon stops: every call is hung up, every lease left is released (a call whose
    /// end is not recorded in time is an `$interrupted` attempt at the next start).
    async fn stop(&mut self) {
        for c in self.calls.values() {
            if let Some(tx) = &c.cmd {
                let _ = tx.send(CallCmd::HangUp);
            }
        }
        let (given, ahead) = (self.hopper.empty_given(), self.hopper.empty_ahead());
        for id in given.into_iter().chain(ahead) {
            self.release(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_is_paced_to_the_trunks_calls_per_second() {
        let settings = CallSettings::default();
        assert_eq!(config(&settings, Some(200.0)).max_cps, 200.0);
        assert_eq!(config(&settings, Some(2.5)).max_cps, 2.5);
        assert_eq!(
            config(&settings, None).max_cps,
            CampaignConfig::default().max_cps
        );
    }
}
