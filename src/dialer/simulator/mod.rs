//! The pacing simulator: runs a call-centre day on virtual time through the very
//! [`Campaign`] core the daemon runs (queue, agent state machines, answer rule, pacer,
//! statistics, abandon ledger), against the synthetic call centre of a [`Scenario`].
//!
//! It plays the driver's part: it leases contacts (it never runs out), places the calls the
//! core asks for, decides with the scenario's random draws (seeded, so a run is reproducible)
//! whether and when each call is answered, how long talks and wrap-ups last, and feeds what
//! happened back to the core exactly as the SIP driver will. It is a discrete-event loop: time
//! jumps from one event (or the core's next timeout) to the next.
//!
//! When the core hangs up a ringing call, the simulator confirms the CANCEL at once and voids
//! that call's drawn future, as a real dialer cannot know whether the person would have
//! answered; the statistics learn only that it was cut short at its age, and weight the later
//! outcomes of the calls that were not ([`super::stats::CallStats::record_hung_up`]).

pub mod scenario;

use super::abandon::{Counts, DAY};
use super::agent::{AgentState, AgentStateKind, AgentTimers};
use super::campaign::{
    AttemptOutcome, Campaign, CampaignConfig, ContactId, Decisions, Input, Output,
};
use super::outcome::CallEnd;
use super::pacing::{DialMode, PacerConfig, PowerRatios};
use super::predictive::PredictiveConfig;
use super::queue::QueueConfig;
use super::rng::Rng;
use super::stats::StatsConfig;
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
    agent: Option<AgentId>,
}

/// Runs one day of `scenario` in `run.mode`.
pub fn simulate(scenario: &Scenario, run: Run) -> Report {
    Sim::new(scenario, run).day()
}

struct Sim<'a> {
    sc: &'a Scenario,
    run: Run,
    rng: Rng,
    core: Campaign,
    events: BinaryHeap<Reverse<(Time, u64, Event)>>,
    seq: u64,
    calls: HashMap<CallId, SimCall>,
    next_contact: i64,
    // Accounting.
    free_since: Vec<Option<Time>>,
    idle: Vec<f64>,
    hourly: Vec<Counts>,
    highest_24h: f64,
    not_answered: BTreeMap<&'static str, u64>,
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
        let hanging_up = match sc.hang_up_ringing_after {
            h if h > 0.0 => PredictiveConfig {
                cancel_after: Some(Duration::from_secs_f64(h)),
                ..PredictiveConfig::with_target(sc.abandon_target)
            },
            _ => PredictiveConfig::with_target(sc.abandon_target).never_hanging_up(),
        };
        let predictive = PredictiveConfig {
            wait: Duration::from_secs_f64(sc.planned_wait),
            ..hanging_up
        };
        let pacer = PacerConfig {
            mode: run.mode,
            power: PowerRatios {
                r_ready: sc.power.r_ready,
                r_wrap: sc.power.r_wrap,
            },
            max_lines_per_agent: sc.max_lines_per_agent,
            predictive,
            ..PacerConfig::default()
        };
        let config = CampaignConfig {
            queue: QueueConfig {
                timers,
                ..QueueConfig::default()
            },
            pacer,
            stats: StatsConfig::default(),
            max_cps: sc.max_cps,
            ..CampaignConfig::default()
        };
        let mut core = Campaign::new(config, None).expect("no persisted state to refuse");
        for _ in 0..sc.agents {
            let a = core.add_agent(Time::ZERO);
            core.handle(Input::AgentLoggedIn(a), Time::ZERO)
                .expect("a new agent logs in");
        }
        Sim {
            sc,
            run,
            rng: Rng::new(run.seed),
            core,
            events: BinaryHeap::new(),
            seq: 0,
            calls: HashMap::new(),
            next_contact: 1,
            free_since: vec![Some(Time::ZERO); sc.agents as usize],
            idle: Vec::new(),
            hourly: vec![Counts::default(); sc.hours.ceil() as usize],
            highest_24h: 0.0,
            not_answered: BTreeMap::new(),
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
        loop {
            let next_event = self.events.peek().map(|Reverse((t, _, _))| *t);
            let Some(next) = [next_event, self.core.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            if next >= end {
                break;
            }
            now = next.max(now);
            while let Some(Reverse((t, _, e))) = self.events.peek().copied() {
                if t > now {
                    break;
                }
                self.events.pop();
                self.event(e, now);
            }
            // Run what is due and carry out what the core asks until it is settled.
            loop {
                if self.core.poll_timeout().is_some_and(|t| t <= now) {
                    self.core
                        .handle_timeout(now)
                        .expect("timeouts of a consistent core");
                }
                let outputs: Vec<Output> = self.core.drain_outputs().collect();
                if outputs.is_empty() {
                    break;
                }
                for o in outputs {
                    self.output(o, now);
                }
            }
        }
        self.report(end)
    }

    fn handle(&mut self, input: Input, now: Time) {
        self.core
            .handle(input, now)
            .expect("the synthetic call centre only reports what can happen");
    }

    /// Draws a placed call's fate from the scenario.
    fn place(&mut self, call: CallId, agent: Option<AgentId>, now: Time) {
        self.calls.insert(call, SimCall { agent });
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

    fn event(&mut self, e: Event, now: Time) {
        match e {
            Event::Answer(call) if self.hung_up.remove(&call) => {
                self.hung_up_would_have_answered += 1;
            }
            Event::End(call, _) if self.hung_up.remove(&call) => {}
            Event::Accept(call) => self.handle(Input::PreviewAccepted(call), now),
            Event::Answer(call) => self.handle(Input::Answered(call), now),
            Event::End(call, code) => {
                self.calls.remove(&call);
                let end = if code == RING_TIMEOUT {
                    CallEnd::RingTimeout
                } else {
                    CallEnd::Rejected(code)
                };
                self.handle(Input::Failed(call, end), now);
            }
            Event::TalkEnd(call) => {
                let Some(c) = self.calls.remove(&call) else {
                    return; // hung up by max_talk already
                };
                let agent = c.agent.expect("a connected call has an agent");
                self.handle(Input::CustomerHungUp(call), now);
                let wrap = self.sc.wrap_up.sample(&mut self.rng);
                self.at(
                    now + Duration::from_secs_f64(wrap),
                    Event::Result(agent, call),
                );
            }
            Event::Result(agent, call) => {
                // The wrap-up limit may have ended it already.
                if self.core.agents()[agent.0 as usize].state() == &AgentState::WrapUp(call) {
                    let result = "done".to_string();
                    self.handle(
                        Input::WrapUpEnded {
                            agent,
                            call,
                            result,
                        },
                        now,
                    );
                    self.free_since[agent.0 as usize] = Some(now);
                }
            }
        }
    }

    /// Carries out what the core asked for, as the synthetic call centre.
    fn output(&mut self, o: Output, now: Time) {
        match o {
            Output::Lease(n) => {
                // The synthetic campaign never runs out of contacts.
                let first = self.next_contact;
                self.next_contact += i64::from(n);
                let contacts = (first..self.next_contact).map(ContactId).collect();
                self.handle(Input::Leased(contacts), now);
            }
            Output::Offer { call, agent, .. } => {
                self.calls.insert(call, SimCall { agent: Some(agent) });
                let look = self.sc.preview_decision.sample(&mut self.rng);
                self.at(now + Duration::from_secs_f64(look), Event::Accept(call));
            }
            Output::Place { call, agent, .. } => self.place(call, agent, now),
            Output::Cancel(call) => {
                // What it would have become is not known to the dialer; the carrier confirms
                // the CANCEL at once.
                self.calls.remove(&call);
                self.hung_up.insert(call);
                self.hung_up_ringing += 1;
                self.handle(Input::Failed(call, CallEnd::RingTimeout), now);
            }
            Output::Bridge { call, agent } => {
                self.handle(Input::Bridged(call), now);
                self.record_answer(now, false);
                if let Some(since) = self.free_since[agent.0 as usize].take() {
                    self.idle.push(now.since(since).as_secs_f64());
                }
                let talk = self.sc.talk.sample(&mut self.rng);
                if let Some(c) = self.calls.get_mut(&call) {
                    c.agent = Some(agent);
                }
                self.at(now + Duration::from_secs_f64(talk), Event::TalkEnd(call));
            }
            Output::Abandon(call) => {
                self.calls.remove(&call);
                self.record_answer(now, true);
            }
            // The synthetic call centre has no callers calling in.
            Output::HangUp(call) | Output::CallBackLater(call) => {
                self.calls.remove(&call);
            }
            Output::RecordAttempt { outcome, .. } => match outcome {
                AttemptOutcome::Connected {
                    agent,
                    result: None,
                } => self.free_since[agent.0 as usize] = Some(now),
                AttemptOutcome::Connected { .. }
                | AttemptOutcome::MissedCall
                | AttemptOutcome::MissedCallback => {}
                o => {
                    let detail = o.detail().expect("a failed attempt has a detail");
                    *self.not_answered.entry(detail.as_str()).or_default() += 1;
                }
            },
            Output::Unlease(_) | Output::AgentState { .. } | Output::Persist => {}
        }
    }

    /// Hourly and rolling-24 h accounting of an answer the core just put in its ledger.
    fn record_answer(&mut self, now: Time, abandoned: bool) {
        let hour = ((now.as_secs_f64() / 3600.0) as usize).min(self.hourly.len() - 1);
        self.hourly[hour].live += 1;
        self.hourly[hour].abandoned += u64::from(abandoned);
        let day = self.core.ledger().last_24h(now);
        if day.live >= 100 {
            self.highest_24h = self.highest_24h.max(day.ratio());
        }
    }

    fn report(self, end: Time) -> Report {
        let k = self.core.queue().counters();
        let mut logged_in = 0.0;
        let mut busy = 0.0;
        let mut talk = 0.0;
        for a in self.core.agents() {
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
        let day = self.core.ledger().window(end, DAY);
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
            in_flight_at_end: self.core.queue().in_flight(),
            not_answered: self.not_answered,
            hung_up_ringing: self.hung_up_ringing,
            hung_up_would_have_answered: self.hung_up_would_have_answered,
            fallback_decisions: fallbacks(self.core.decisions()),
        }
    }
}

/// The decisions that fell back to progressive, by reason (reasons never taken left out).
fn fallbacks(d: Decisions) -> BTreeMap<&'static str, u64> {
    [("warming_up", d.warming_up), ("abandon_cap", d.abandon_cap)]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
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
