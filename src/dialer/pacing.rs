//! The pacer, sans-IO: given a snapshot of a queue, the learned statistics, the campaign's
//! abandon ledger and `now`, how many calls to place now and when to ask again.
//!
//! Modes (per queue):
//! - `preview`: agent first. The number returned is how many ready agents to offer a contact
//!   to; the call is placed when the agent accepts.
//! - `progressive`: one call per ready agent: `ready − waiting inbound − in flight`.
//! - `power`: `floor(r_ready × ready + r_wrap × wrap_up) − in flight`.
//! - `predictive`: the number [`super::predictive`] finds from the learned statistics; it may
//!   also ask to hang up some of the calls that have rung at least 15 s, when more answers are
//!   coming than agents to take them.
//!
//! Caps, whatever the mode: calls in flight never exceed `max_lines_per_agent` × the agents at
//! work (logged in and not paused), and calls are spaced to at most the calls-per-second the
//! driver passes in (a token bucket holding one second's worth).
//!
//! Guards: predictive starts as progressive until enough calls were seen to trust the
//! statistics; predictive and power fall back to progressive while the campaign's measured
//! abandon rate (24 h or 30 days) is at the hard cap, until it is back under.

use super::abandon::{AbandonGuard, AbandonLedger};
use super::agent::AgentStateKind;
use super::predictive::{self, Forecaster, PredictiveConfig};
use super::stats::CallStats;
use super::Time;
use std::time::Duration;

use crate::store::tasks::CallSettings;
pub use crate::store::tasks::DialMode;

/// `power` mode's ratios.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerRatios {
    /// Calls per ready agent (`calls_per_ready_agent`).
    pub r_ready: f64,
    /// Calls per agent in wrap-up (`calls_per_wrap_up_agent`).
    pub r_wrap: f64,
}

impl Default for PowerRatios {
    fn default() -> Self {
        let c = CallSettings::default();
        PowerRatios {
            r_ready: c.calls_per_ready_agent,
            r_wrap: c.calls_per_wrap_up_agent,
        }
    }
}

/// One agent as the pacer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentView {
    /// Its state.
    pub state: AgentStateKind,
    /// Time spent in that state so far.
    pub elapsed: Duration,
}

/// A queue at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Every agent of the queue.
    pub agents: Vec<AgentView>,
    /// Ages of the outbound calls ringing that have no agent reserved.
    pub ringing: Vec<Duration>,
    /// Answered outbound calls waiting for an agent.
    pub waiting_outbound: usize,
    /// Inbound callers waiting for an agent (served first).
    pub waiting_inbound: usize,
}

impl Snapshot {
    /// Agents in `kind`.
    pub fn count(&self, kind: AgentStateKind) -> usize {
        self.agents.iter().filter(|a| a.state == kind).count()
    }

    /// Agents at work: logged in and not paused.
    pub fn working(&self) -> usize {
        self.agents
            .iter()
            .filter(|a| !matches!(a.state, AgentStateKind::LoggedOut | AgentStateKind::Paused))
            .count()
    }

    /// Outbound calls not yet with an agent: ringing or answered and waiting.
    pub fn in_flight(&self) -> usize {
        self.ringing.len() + self.waiting_outbound
    }
}

/// A queue's pacing settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacerConfig {
    /// The dial mode.
    pub mode: DialMode,
    /// Ratios of `power` mode.
    pub power: PowerRatios,
    /// At most this many outbound calls in flight per agent at work.
    pub max_lines_per_agent: f64,
    /// Predictive settings (target abandon share, warm-up).
    pub predictive: PredictiveConfig,
    /// Hard cap on the campaign's abandon rate.
    pub guard: AbandonGuard,
}

impl PacerConfig {
    /// A call task's pacing: its dial mode, power ratios and abandon target; the rest default.
    pub fn for_task(settings: &CallSettings) -> PacerConfig {
        PacerConfig {
            mode: settings.dial_mode,
            power: PowerRatios {
                r_ready: settings.calls_per_ready_agent,
                r_wrap: settings.calls_per_wrap_up_agent,
            },
            predictive: PredictiveConfig {
                wait: Duration::from_millis(settings.planned_wait_ms.into()),
                ..PredictiveConfig::with_target(settings.abandon_target)
            },
            ..PacerConfig::default()
        }
    }
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            mode: DialMode::default(),
            power: PowerRatios::default(),
            max_lines_per_agent: 6.0,
            predictive: PredictiveConfig::default(),
            guard: AbandonGuard::default(),
        }
    }
}

/// Which rule produced a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The configured mode.
    Mode,
    /// Predictive still learning: progressive.
    WarmingUp,
    /// The abandon rate is at the hard cap: progressive.
    AbandonCap,
}

/// The pacer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Calls to place now (preview: contacts to offer to ready agents).
    pub place: u32,
    /// Ringing calls to hang up now: this many of the oldest without an agent that have rung
    /// at least `cancel_after` (the driver asks [`super::queue::Queue::oldest_ringing`]).
    pub cancel: u32,
    /// How long the calls to hang up have rung at least (the predictive `cancel_after`;
    /// zero when nothing is to be hung up).
    pub cancel_after: Duration,
    /// Ask again at this time at the latest (sooner if the queue changes).
    pub next_check: Time,
    /// Which rule decided.
    pub rule: Rule,
}

/// How often to ask again when nothing else happens: forecasts move as calls age.
const RECHECK: Duration = Duration::from_secs(1);

/// A queue's pacer.
#[derive(Debug, Clone)]
pub struct Pacer {
    config: PacerConfig,
    tokens: f64,
    last: Option<Time>,
    forecaster: Forecaster,
}

impl Pacer {
    /// A pacer with the given settings.
    pub fn new(config: PacerConfig) -> Pacer {
        Pacer {
            config,
            tokens: 0.0,
            last: None,
            forecaster: Forecaster::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &PacerConfig {
        &self.config
    }

    /// Decides how many calls to place now; the driver places them (or fewer, when it runs
    /// out of contacts) and asks again at `next_check` or when the queue changes.
    pub fn decide(
        &mut self,
        snap: &Snapshot,
        stats: &CallStats,
        ledger: &AbandonLedger,
        max_cps: f64,
        now: Time,
    ) -> Decision {
        let ready = snap.count(AgentStateKind::Ready);
        let free = ready.saturating_sub(snap.waiting_inbound);
        let in_flight = snap.in_flight();
        let progressive = free.saturating_sub(in_flight);
        let over_cap = || self.config.guard.over_cap(ledger, now);
        let mut cancel = 0;
        let (wanted, rule) = match self.config.mode {
            DialMode::Preview => (free, Rule::Mode),
            DialMode::Progressive => (progressive, Rule::Mode),
            DialMode::Power | DialMode::Predictive if over_cap() => (progressive, Rule::AbandonCap),
            DialMode::Power => {
                let PowerRatios { r_ready, r_wrap } = self.config.power;
                let wrap = snap.count(AgentStateKind::WrapUp);
                let lines = (r_ready * free as f64 + r_wrap * wrap as f64).floor() as usize;
                (lines.saturating_sub(in_flight), Rule::Mode)
            }
            DialMode::Predictive if !predictive::warmed_up(stats, &self.config.predictive) => {
                (progressive, Rule::WarmingUp)
            }
            DialMode::Predictive => {
                let cfg = &self.config.predictive;
                let risk = predictive::allowed_risk(cfg, ledger, now);
                let plan = predictive::calls_to_place(snap, stats, cfg, risk, &mut self.forecaster);
                cancel = plan.cancel;
                (plan.place, Rule::Mode)
            }
        };
        // Callers waiting come first: while one waits, no call is placed on the strength of
        // agents who are not free now (wrap-up, the forecast), only for free agents the
        // waiting callers cannot have (kept for their owner).
        let wanted = if snap.waiting_inbound > 0 {
            wanted.min(progressive)
        } else {
            wanted
        };
        // Preview offers go to agents, not lines: the line cap does not apply to them.
        let capped = if self.config.mode == DialMode::Preview {
            wanted
        } else {
            let lines = (self.config.max_lines_per_agent * snap.working() as f64).floor() as usize;
            wanted.min(lines.saturating_sub(in_flight))
        };
        let (place, next_check) = self.spend_tokens(capped, max_cps, now);
        Decision {
            place,
            cancel: u32::try_from(cancel).unwrap_or(u32::MAX),
            cancel_after: match cancel {
                0 => Duration::ZERO,
                _ => self.config.predictive.cancel_after.unwrap_or_default(),
            },
            next_check,
            rule,
        }
    }

    /// Calls-per-second cap: a bucket refilled at `max_cps`, holding at most one second's
    /// worth (and at least one call).
    fn spend_tokens(&mut self, wanted: usize, max_cps: f64, now: Time) -> (u32, Time) {
        let cap = max_cps.max(1.0);
        let since = self
            .last
            .map_or(cap, |t| now.since(t).as_secs_f64() * max_cps);
        self.tokens = (self.tokens + since).min(cap);
        self.last = Some(now);
        let place = (wanted as f64).min(self.tokens.floor()).max(0.0);
        self.tokens -= place;
        let mut next = now + RECHECK;
        if (place as usize) < wanted && max_cps > 0.0 {
            // Held back by the cap: ask again when the next token is in.
            let wait = ((1.0 - self.tokens).max(0.0) / max_cps).max(0.001);
            next = next.min(now + Duration::from_secs_f64(wait));
        }
        (place as u32, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialer::stats::StatsConfig;

    fn snap(states: &[(AgentStateKind, u64)], ringing: usize) -> Snapshot {
        Snapshot {
            agents: states
                .iter()
                .map(|&(state, s)| AgentView {
                    state,
                    elapsed: Duration::from_secs(s),
                })
                .collect(),
            ringing: vec![Duration::from_secs(3); ringing],
            waiting_outbound: 0,
            waiting_inbound: 0,
        }
    }

    fn decide(mode: DialMode, s: &Snapshot) -> Decision {
        let mut p = Pacer::new(PacerConfig {
            mode,
            power: PowerRatios {
                r_ready: 1.7,
                r_wrap: 0.1,
            },
            ..PacerConfig::default()
        });
        p.decide(
            s,
            &CallStats::new(StatsConfig::default()),
            &AbandonLedger::new(),
            100.0,
            Time(0),
        )
    }

    use AgentStateKind::*;

    #[test]
    fn progressive_places_one_call_per_ready_agent_not_yet_served() {
        let s = snap(&[(Ready, 1), (Ready, 1), (Ready, 1), (Talking, 9)], 1);
        assert_eq!(decide(DialMode::Progressive, &s).place, 2);
        let mut s = s;
        s.waiting_inbound = 1;
        assert_eq!(decide(DialMode::Progressive, &s).place, 1);
    }

    #[test]
    fn power_follows_its_formula() {
        // floor(1.7 × 3 + 0.1 × 2) − 1 = floor(5.3) − 1 = 4
        let s = snap(
            &[
                (Ready, 1),
                (Ready, 1),
                (Ready, 1),
                (WrapUp, 1),
                (WrapUp, 1),
                (Talking, 1),
            ],
            1,
        );
        assert_eq!(decide(DialMode::Power, &s).place, 4);
    }

    #[test]
    fn a_waiting_caller_stops_calls_for_agents_who_are_not_free() {
        // Power would place floor(0.1 × 2) + … for agents in wrap-up; a caller waits for the
        // next agent, so nothing is placed.
        let mut s = snap(&[(WrapUp, 1), (WrapUp, 1), (Talking, 1)], 0);
        for mode in [DialMode::Power, DialMode::Predictive, DialMode::Progressive] {
            let mut p = s.clone();
            p.waiting_inbound = 0;
            let before = decide(mode, &p).place;
            p.waiting_inbound = 1;
            assert_eq!(
                decide(mode, &p).place,
                0,
                "{mode:?} placed {before} without a caller"
            );
        }
        s.agents.push(AgentView {
            state: Ready,
            elapsed: Duration::from_secs(1),
        });
        s.agents.push(AgentView {
            state: Ready,
            elapsed: Duration::from_secs(1),
        });
        s.waiting_inbound = 1;
        assert_eq!(decide(DialMode::Power, &s).place, 1);
    }

    #[test]
    fn preview_offers_one_contact_per_ready_agent() {
        let s = snap(&[(Ready, 1), (Ready, 1), (Talking, 9), (Paused, 9)], 0);
        assert_eq!(decide(DialMode::Preview, &s).place, 2);
    }

    #[test]
    fn a_hang_up_names_how_long_the_calls_have_rung() {
        let mut p = Pacer::new(PacerConfig {
            mode: DialMode::Predictive,
            ..PacerConfig::default()
        });
        let stats = crate::dialer::predictive::tests::learned();
        let mut s = snap(&[(Ready, 1), (Talking, 5), (Talking, 5), (Talking, 5)], 0);
        s.ringing = vec![Duration::from_secs(16); 12];
        let d = p.decide(&s, &stats, &AbandonLedger::new(), 100.0, Time(0));
        assert!(d.cancel > 0, "{d:?}");
        assert_eq!(d.cancel_after, Duration::from_secs(15));
        s.ringing.clear();
        let d = p.decide(&s, &stats, &AbandonLedger::new(), 100.0, Time(1_000_000));
        assert_eq!((d.cancel, d.cancel_after), (0, Duration::ZERO));
    }

    #[test]
    fn a_task_planning_shorter_waits_places_fewer_calls_for_busy_agents() {
        let stats = crate::dialer::predictive::tests::learned();
        // Wrap-ups end at 10 s: these agents are free 5-7 s from now, as people answered
        // now come in (5 s and later).
        let mut s = snap(&[(WrapUp, 3); 10], 0);
        s.agents.extend(snap(&[(WrapUp, 5); 10], 0).agents);
        let place = |planned_wait_ms| {
            let settings = CallSettings {
                dial_mode: DialMode::Predictive,
                planned_wait_ms,
                ..CallSettings::default()
            };
            let mut p = Pacer::new(PacerConfig::for_task(&settings));
            p.decide(&s, &stats, &AbandonLedger::new(), 100.0, Time(0))
                .place
        };
        let (two_s, none) = (place(2000), place(0));
        assert!(two_s > none, "2 s planned: {two_s} calls, none: {none}");
    }

    #[test]
    fn predictive_is_progressive_until_it_has_learned() {
        let s = snap(&[(Ready, 1), (Ready, 1), (Talking, 9)], 0);
        let d = decide(DialMode::Predictive, &s);
        assert_eq!((d.place, d.rule), (2, Rule::WarmingUp));
    }

    #[test]
    fn lines_per_agent_cap_the_calls_in_flight() {
        let s = snap(&[(Ready, 1), (Ready, 1)], 3);
        let mut p = Pacer::new(PacerConfig {
            mode: DialMode::Power,
            power: PowerRatios {
                r_ready: 10.0,
                r_wrap: 0.0,
            },
            max_lines_per_agent: 2.0,
            ..PacerConfig::default()
        });
        let stats = CallStats::new(StatsConfig::default());
        let d = p.decide(&s, &stats, &AbandonLedger::new(), 100.0, Time(0));
        assert_eq!(d.place, 1); // 2 agents × 2 lines − 3 in flight
    }

    #[test]
    fn calls_per_second_cap_spaces_the_calls() {
        let s = snap(&[(Ready, 0); 10], 0);
        let mut p = Pacer::new(PacerConfig {
            mode: DialMode::Progressive,
            ..PacerConfig::default()
        });
        let stats = CallStats::new(StatsConfig::default());
        let ledger = AbandonLedger::new();
        let d = p.decide(&s, &stats, &ledger, 2.0, Time(0));
        assert_eq!(d.place, 2);
        assert_eq!(d.next_check, Time(500));
        let d = p.decide(&s, &stats, &ledger, 2.0, Time(500));
        assert_eq!(d.place, 1);
        let d = p.decide(&s, &stats, &ledger, 2.0, Time(500));
        assert_eq!(d.place, 0);
    }

    #[test]
    fn over_the_abandon_cap_power_falls_back_to_progressive_until_under() {
        let s = snap(&[(Ready, 1), (Ready, 1)], 0);
        let mut ledger = AbandonLedger::new();
        for i in 0..100 {
            ledger.record(Time(0), i < 3);
        }
        let mut p = Pacer::new(PacerConfig {
            mode: DialMode::Power,
            power: PowerRatios {
                r_ready: 3.0,
                r_wrap: 0.0,
            },
            ..PacerConfig::default()
        });
        let stats = CallStats::new(StatsConfig::default());
        let d = p.decide(&s, &stats, &ledger, 100.0, Time(0));
        assert_eq!((d.place, d.rule), (2, Rule::AbandonCap));
        for _ in 0..10 {
            ledger.record(Time(0), false);
        }
        let d = p.decide(&s, &stats, &ledger, 100.0, Time(0));
        assert_eq!((d.place, d.rule), (6, Rule::Mode));
    }
}
