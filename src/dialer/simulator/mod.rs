//! The pacing simulator: runs a call-centre day on virtual time with the real [`Queue`] (and
//! so the real agent state machines and answer rule), the real [`Pacer`], [`CallStats`] and
//! [`AbandonLedger`], against the synthetic call centre of a [`Scenario`].
//!
//! It plays the driver's part: it places the calls the pacer asks for, decides with the
//! scenario's random draws (seeded, so a run is reproducible) whether and when each call is
//! answered, how long talks and wrap-ups last, and feeds what happened back to the queue and
//! to the statistics exactly as the SIP driver will. It is a discrete-event loop: time jumps
//! from one event (or pacer check, or queue timeout) to the next.
//!
//! When the pacer hangs up a ringing call, the simulator voids that call's drawn future, as a
//! real dialer cannot know whether the person would have answered; the statistics learn only
//! that it was cut short at its age, and weight the later outcomes of the calls that were not
//! ([`CallStats::record_hung_up`]).

pub mod scenario;

use super::abandon::{AbandonLedger, Counts, DAY};
use super::agent::{AgentEvent, AgentState, AgentStateKind, AgentTimers};
use super::outcome::{self, CallEnd, Detail};
use super::pacing::{DialMode, Pacer, PacerConfig, PowerRatios, Rule, Snapshot};
use super::predictive::PredictiveConfig;
use super::queue::{Input, Output, Queue, QueueConfig};
use super::rng::Rng;
use super::stats::{CallStats, StatsConfig};
use super::{AgentId, CallId, DialerError, Time};
pub use scenario::Scenario;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::time::Duration;

/// The worst clock hour of the day for abandons.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct WorstHour {
    /// Hour of the day (0 = the first hour).
    pub hour: u32,
    /// Live answers in it.
    pub live: u64,
    /// Abandoned in it.
    pub abandoned: u64,
    /// abandoned ÷ live.
    pub ratio: f64,
}

/// What one simulated day gave in one mode.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// Dial mode.
    pub mode: &'static str,
    /// Scenario name.
    pub scenario: String,
    /// Seed of the run.
    pub seed: u64,
    /// Agents logged in.
    pub agents: u32,
    /// Simulated hours.
    pub hours: f64,
    /// Outbound calls placed.
    pub calls_placed: u64,
    /// Calls answered by a person (connected or abandoned).
    pub live_answers: u64,
    /// Answered calls put through to an agent.
    pub connected: u64,
    /// Answered calls no agent took within 2 s.
    pub abandoned: u64,
    /// abandoned ÷ live answers over the day.
    pub abandon_ratio: f64,
    /// (talk + wrap-up) ÷ logged-in time, over all agents.
    pub occupancy: f64,
    /// Talk minutes per logged-in agent-hour.
    pub talk_minutes_per_agent_hour: f64,
    /// Mean time an agent waited between the end of one call's work and the next call (s).
    pub idle_mean_s: f64,
    /// 95th percentile of that wait (s).
    pub idle_p95_s: f64,
    /// Highest rolling-24 h abandon rate the campaign saw during the day, once at least 100
    /// live answers were counted.
    pub highest_24h_abandon_ratio: f64,
    /// The worst clock hour.
    pub worst_hour: Option<WorstHour>,
    /// Live answers and abandons in each clock hour of the day.
    pub hourly: Vec<Counts>,
    /// Calls still ringing or waiting when the day ended.
    pub in_flight_at_end: u64,
    /// Attempts that ended without a person, by contact detail.
    pub not_answered: BTreeMap<&'static str, u64>,
    /// Of those, calls the pacer hung up after they had rung at least its `cancel_after`
    /// (counted as `$no_answer`).
    pub hung_up_ringing: u64,
    /// Of those, calls a person would have answered later (the simulator knows what it drew;
    /// a dialer cannot): the people whose phone stopped ringing.
    pub hung_up_would_have_answered: u64,
    /// Pacer decisions that fell back to progressive (warming up / abandon cap).
    pub fallback_decisions: BTreeMap<&'static str, u64>,
}

/// One run's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// Dial mode.
    pub mode: DialMode,
    /// Seed.
    pub seed: u64,
}

/// The modes a scenario is reported in by default: preview, progressive, power (with the
/// scenario's ratios), predictive.
pub fn default_modes() -> Vec<DialMode> {
    DialMode::ALL.to_vec()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A preview agent accepts the contact: place the call.
    Accept(CallId),
    /// A person answers.
    Answer(CallId),
    /// The attempt ends without a person.
    End(CallId, u16),
    /// The talk ends.
    TalkEnd(CallId),
    /// The agent records the result.
    Result(AgentId, CallId),
}

/// `End` codes: SIP status, or these for the dialer's own endings.
const RING_TIMEOUT: u16 = 0;

#[derive(Debug, Clone, Copy)]
struct SimCall {
    placed: Time,
    agent: Option<AgentId>,
    talk_started: Option<Time>,
}

/// Runs one day of `scenario` in `run.mode`.
pub fn simulate(scenario: &Scenario, run: Run) -> Report {
    Sim::new(scenario, run).day()
}

struct Sim<'a> {
    sc: &'a Scenario,
    run: Run,
    rng: Rng,
    queue: Queue,
    pacer: Pacer,
    stats: CallStats,
    ledger: AbandonLedger,
    events: BinaryHeap<Reverse<(Time, u64, Event)>>,
    seq: u64,
    calls: HashMap<CallId, SimCall>,
    next_call: u64,
    snap: Snapshot,
    // Accounting.
    free_since: Vec<Option<Time>>,
    idle: Vec<f64>,
    hourly: Vec<Counts>,
    highest_24h: f64,
    not_answered: BTreeMap<&'static str, u64>,
    fallbacks: BTreeMap<&'static str, u64>,
    hung_up_ringing: u64,
    hung_up_would_have_answered: u64,
    /// Calls the pacer hung up while ringing: their drawn answer or end is void.
    hung_up: HashSet<CallId>,
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario, run: Run) -> Sim<'a> {
        let timers = AgentTimers {
            wrap_up: Duration::from_secs_f64(sc.wrap_up_limit),
            ..AgentTimers::default()
        };
        let mut queue = Queue::new(QueueConfig {
            timers,
            ..QueueConfig::default()
        });
        for _ in 0..sc.agents {
            let a = queue.add_agent(Time::ZERO);
            queue
                .handle(Input::Agent(a, AgentEvent::LogIn), Time::ZERO)
                .expect("a new agent logs in");
        }
        let pacer = Pacer::new(PacerConfig {
            mode: run.mode,
            power: PowerRatios {
                r_ready: sc.power.r_ready,
                r_wrap: sc.power.r_wrap,
            },
            max_lines_per_agent: sc.max_lines_per_agent,
            predictive: if sc.hang_up_ringing_after > 0.0 {
                PredictiveConfig {
                    cancel_after: Some(Duration::from_secs_f64(sc.hang_up_ringing_after)),
                    ..PredictiveConfig::with_target(sc.abandon_target)
                }
            } else {
                PredictiveConfig::with_target(sc.abandon_target).never_hanging_up()
            },
            ..PacerConfig::default()
        });
        Sim {
            sc,
            run,
            rng: Rng::new(run.seed),
            queue,
            pacer,
            stats: CallStats::new(StatsConfig::default()),
            ledger: AbandonLedger::new(),
            events: BinaryHeap::new(),
            seq: 0,
            calls: HashMap::new(),
            next_call: 1,
            snap: Snapshot::default(),
            free_since: vec![Some(Time::ZERO); sc.agents as usize],
            idle: Vec::new(),
            hourly: vec![Counts::default(); sc.hours.ceil() as usize],
            highest_24h: 0.0,
            not_answered: BTreeMap::new(),
            fallbacks: BTreeMap::new(),
            hung_up: HashSet::new(),
            hung_up_ringing: 0,
            hung_up_would_have_answered: 0,
        }
    }

    fn at(&mut self, t: Time, e: Event) {
        self.seq += 1;
        self.events.push(Reverse((t, self.seq, e)));
    }

    fn day(mut self) -> Report {
        let end = Time::from_secs_f64(self.sc.hours * 3600.0);
        let mut now = Time::ZERO;
        let mut next_check = Time::ZERO;
        loop {
            let next_event = self.events.peek().map(|Reverse((t, _, _))| *t);
            let next = [next_event, self.queue.poll_timeout(), Some(next_check)]
                .into_iter()
                .flatten()
                .min()
                .expect("next_check is always set");
            if next >= end {
                break;
            }
            now = next.max(now);
            let mut changed = false;
            while let Some(Reverse((t, _, e))) = self.events.peek().copied() {
                if t > now {
                    break;
                }
                self.events.pop();
                self.event(e, now);
                changed = true;
            }
            if self.queue.poll_timeout().is_some_and(|t| t <= now) {
                self.queue
                    .handle_timeout(now)
                    .expect("timeouts of a consistent queue");
                changed = true;
            }
            self.outputs(now);
            if changed || now >= next_check {
                next_check = self.pace(now);
            }
        }
        self.report(end)
    }

    /// Asks the pacer and places (or, in preview, offers) what it says.
    fn pace(&mut self, now: Time) -> Time {
        self.queue.snapshot(now, &mut self.snap);
        let d = self
            .pacer
            .decide(&self.snap, &self.stats, &self.ledger, self.sc.max_cps, now);
        match d.rule {
            Rule::Mode => {}
            Rule::WarmingUp => *self.fallbacks.entry("warming_up").or_default() += 1,
            Rule::AbandonCap => *self.fallbacks.entry("abandon_cap").or_default() += 1,
        }
        for call in self
            .queue
            .oldest_ringing(d.cancel_after, d.cancel as usize, now)
        {
            self.hang_up_ringing(call, now);
        }
        for _ in 0..d.place {
            let call = CallId(self.next_call);
            self.next_call += 1;
            if self.run.mode == DialMode::Preview {
                let Ok(Some(agent)) = self.queue.offer(call, now) else {
                    break;
                };
                self.calls.insert(
                    call,
                    SimCall {
                        placed: now,
                        agent: Some(agent),
                        talk_started: None,
                    },
                );
                let look = self.sc.preview_decision.sample(&mut self.rng);
                self.at(now + Duration::from_secs_f64(look), Event::Accept(call));
            } else {
                self.place(call, None, now);
            }
        }
        d.next_check
    }

    /// Places a call and draws its fate from the scenario.
    fn place(&mut self, call: CallId, agent: Option<AgentId>, now: Time) {
        self.queue
            .handle(Input::Placed { call, agent }, now)
            .expect("a fresh call id");
        self.calls.insert(
            call,
            SimCall {
                placed: now,
                agent,
                talk_started: None,
            },
        );
        let hour = now.as_secs_f64() / 3600.0;
        let give_up = self.sc.give_up;
        let secs = |s: f64| now + Duration::from_secs_f64(s);
        if self.rng.chance(self.sc.live_answer.at(hour)) {
            let ring = self.sc.ring_to_answer.sample(&mut self.rng);
            if ring < give_up {
                self.at(secs(ring), Event::Answer(call));
                return;
            }
        }
        let u = self.rng.next_f64();
        let (code, after) = if u < self.sc.busy {
            (486, self.rng.uniform(2.0, 8.0))
        } else if u < self.sc.busy + self.sc.invalid {
            (404, self.rng.uniform(0.5, 2.0))
        } else if u < self.sc.busy + self.sc.invalid + self.sc.network_error {
            (503, self.rng.uniform(0.5, 5.0))
        } else {
            (RING_TIMEOUT, give_up)
        };
        self.at(secs(after.min(give_up)), Event::End(call, code));
    }

    /// Hangs up a ringing call as the pacer asked. What it would have become is not known
    /// to the dialer: the statistics only learn that it was cut short at its age.
    fn hang_up_ringing(&mut self, call: CallId, now: Time) {
        if let Some(c) = self.calls.remove(&call) {
            self.stats.record_hung_up(now.since(c.placed));
        }
        self.hung_up.insert(call);
        self.hung_up_ringing += 1;
        *self
            .not_answered
            .entry(outcome::detail(CallEnd::RingTimeout).as_str())
            .or_default() += 1;
        self.queue
            .handle(Input::NotAnswered(call, CallEnd::RingTimeout), now)
            .expect("a ringing call");
    }

    fn event(&mut self, e: Event, now: Time) {
        match e {
            Event::Answer(call) if self.hung_up.remove(&call) => {
                self.hung_up_would_have_answered += 1;
            }
            Event::End(call, _) if self.hung_up.remove(&call) => {}
            Event::Accept(call) => {
                let agent = self.calls[&call].agent;
                self.place(call, agent, now);
            }
            Event::Answer(call) => {
                let placed = self.calls[&call].placed;
                self.stats.record_live_answer(now.since(placed));
                self.queue
                    .handle(Input::Answered(call), now)
                    .expect("a ringing call");
            }
            Event::End(call, code) => {
                let c = self.calls.remove(&call).expect("a ringing call");
                self.stats.record_not_live(now.since(c.placed));
                let end = if code == RING_TIMEOUT {
                    CallEnd::RingTimeout
                } else {
                    CallEnd::Rejected(code)
                };
                *self
                    .not_answered
                    .entry(outcome::detail(end).as_str())
                    .or_default() += 1;
                self.queue
                    .handle(Input::NotAnswered(call, end), now)
                    .expect("a ringing call");
            }
            Event::TalkEnd(call) => {
                let Some(c) = self.calls.remove(&call) else {
                    return; // hung up by max_talk already
                };
                let agent = c.agent.expect("a connected call has an agent");
                let started = c.talk_started.expect("a connected call has started");
                self.stats.record_talk(now.since(started));
                self.queue
                    .handle(Input::HungUp(call), now)
                    .expect("a connected call");
                let wrap = self.sc.wrap_up.sample(&mut self.rng);
                self.at(
                    now + Duration::from_secs_f64(wrap),
                    Event::Result(agent, call),
                );
            }
            Event::Result(agent, call) => {
                let a = &self.queue.agents()[agent.0 as usize];
                // The wrap-up limit may have ended it already.
                if a.state() == &AgentState::WrapUp(call) {
                    self.stats.record_wrap_up(now.since(a.since()));
                    self.queue
                        .handle(Input::Agent(agent, AgentEvent::RecordResult(call)), now)
                        .expect("an agent in wrap-up");
                    self.free_since[agent.0 as usize] = Some(now);
                }
            }
        }
    }

    /// Carries out what the queue asked for.
    fn outputs(&mut self, now: Time) {
        let outputs: Vec<Output> = self.queue.drain_outputs().collect();
        for o in outputs {
            match o {
                Output::Connect { call, agent } => {
                    self.queue
                        .handle(Input::Bridged(call), now)
                        .expect("a call being bridged");
                    self.record_answer(now, false);
                    if let Some(since) = self.free_since[agent.0 as usize].take() {
                        self.idle.push(now.since(since).as_secs_f64());
                    }
                    let talk = self.sc.talk.sample(&mut self.rng);
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.agent = Some(agent);
                        c.talk_started = Some(now);
                    }
                    self.at(now + Duration::from_secs_f64(talk), Event::TalkEnd(call));
                }
                Output::Abandon(call) => {
                    self.calls.remove(&call);
                    self.record_answer(now, true);
                    *self
                        .not_answered
                        .entry(Detail::Abandoned.as_str())
                        .or_default() += 1;
                }
                Output::WrapUpExpired { agent, .. } => {
                    self.stats
                        .record_wrap_up(Duration::from_secs_f64(self.sc.wrap_up_limit));
                    self.free_since[agent.0 as usize] = Some(now);
                }
                Output::HangUp(call) => {
                    self.calls.remove(&call);
                }
                Output::OfferExpired(call) | Output::InboundTimedOut(call) => {
                    self.calls.remove(&call);
                }
            }
        }
    }

    fn record_answer(&mut self, now: Time, abandoned: bool) {
        self.ledger.record(now, abandoned);
        let hour = ((now.as_secs_f64() / 3600.0) as usize).min(self.hourly.len() - 1);
        self.hourly[hour].live += 1;
        self.hourly[hour].abandoned += u64::from(abandoned);
        let day = self.ledger.last_24h(now);
        if day.live >= 100 {
            self.highest_24h = self.highest_24h.max(day.ratio());
        }
    }

    fn report(self, end: Time) -> Report {
        let k = self.queue.counters();
        let mut logged_in = 0.0;
        let mut busy = 0.0;
        let mut talk = 0.0;
        for a in self.queue.agents() {
            let t = |kind| a.time_in(kind, end).as_secs_f64();
            logged_in += end.as_secs_f64() - t(AgentStateKind::LoggedOut);
            busy += t(AgentStateKind::Talking) + t(AgentStateKind::WrapUp);
            talk += t(AgentStateKind::Talking);
        }
        let mut idle = self.idle;
        idle.sort_by(f64::total_cmp);
        let idle_mean = if idle.is_empty() {
            0.0
        } else {
            idle.iter().sum::<f64>() / idle.len() as f64
        };
        let idle_p95 = idle
            .get(((idle.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0);
        let worst_hour = self
            .hourly
            .iter()
            .enumerate()
            .filter(|(_, c)| c.live > 0)
            .max_by(|a, b| a.1.ratio().total_cmp(&b.1.ratio()))
            .map(|(h, c)| WorstHour {
                hour: h as u32,
                live: c.live,
                abandoned: c.abandoned,
                ratio: c.ratio(),
            });
        // The whole day is inside one rolling 24 h window: its end is the 24 h figure too.
        let day = self.ledger.window(end, DAY);
        Report {
            mode: self.run.mode.name(),
            scenario: self.sc.name.clone(),
            seed: self.run.seed,
            agents: self.sc.agents,
            hours: self.sc.hours,
            calls_placed: k.placed,
            live_answers: k.answered,
            connected: k.connected,
            abandoned: k.abandoned,
            abandon_ratio: Counts {
                live: k.answered,
                abandoned: k.abandoned,
            }
            .ratio(),
            occupancy: if logged_in > 0.0 {
                busy / logged_in
            } else {
                0.0
            },
            talk_minutes_per_agent_hour: if logged_in > 0.0 {
                (talk / 60.0) / (logged_in / 3600.0)
            } else {
                0.0
            },
            idle_mean_s: idle_mean,
            idle_p95_s: idle_p95,
            highest_24h_abandon_ratio: self.highest_24h.max(if day.live >= 100 {
                day.ratio()
            } else {
                0.0
            }),
            worst_hour,
            hourly: self.hourly,
            in_flight_at_end: self.queue.in_flight(),
            not_answered: self.not_answered,
            hung_up_ringing: self.hung_up_ringing,
            hung_up_would_have_answered: self.hung_up_would_have_answered,
            fallback_decisions: self.fallbacks,
        }
    }
}

/// Loads a scenario and runs it in each of `modes`.
pub fn run_file(
    path: &std::path::Path,
    modes: Option<&str>,
    seed: u64,
) -> Result<Vec<Report>, DialerError> {
    let sc = Scenario::load(path)?;
    let modes = match modes {
        None => default_modes(),
        Some(name) => vec![
            DialMode::by_name(name).ok_or_else(|| DialerError::Scenario {
                path: path.display().to_string(),
                message: format!(
                    "unknown mode `{name}`; expected preview, progressive, power or predictive"
                ),
            })?,
        ],
    };
    Ok(modes
        .into_iter()
        .map(|mode| simulate(&sc, Run { mode, seed }))
        .collect())
}
