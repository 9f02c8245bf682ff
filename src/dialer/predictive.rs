//! Predictive pacing: how many calls to place now so that agents are kept busy while the share
//! of answered people left without an agent stays under the target.
//!
//! # The forecast
//!
//! A call placed now is answered by a person, if at all, within the ring window `H` (the
//! longest ring-to-answer time seen). The pacer cuts that window into steps `t₁ < … < t_K`
//! ([`PredictiveConfig::step`]) and computes, at each step, two exact count distributions
//! (Poisson-binomial, built one independent 0/1 variable at a time):
//!
//! - **supply** `S(t)`: agents free by `t − Δ + w` (`w` = the 2 s an answered person may
//!   wait, `Δ` the step: the people answered in the step `(t − Δ, t]` wait from its start on,
//!   so only agents free by then are there for all of them):
//!   the ready agents now, plus each talking agent with chance
//!   `P(talk ≤ e + t − Δ + w − wrap̄ | talk > e)` from the learned talk times and the time `e`
//!   it has been talking (an agent 3 minutes into a call counts more than one who just
//!   started), plus each agent in wrap-up with `P(wrap ≤ e + t − Δ + w | wrap > e)`. Counting
//!   agents free by `t + w` instead counted up to a step of agents who come too late for the
//!   step's early answers: harmless with 20 agents, but 1,000 agents answered after 1 s of
//!   ringing (70 agents freed a second) were over-dialled to 4 % abandoned. The talk-time law is
//!   a Kaplan–Meier estimate ([`super::stats::Survival`]) from the finished talks **and the
//!   talks in progress**, each of those known only to last longer than its `e`: early in a
//!   day the finished talks are the short ones, and without the censored ones the talks
//!   looked 30 % shorter than they are (64 s instead of 90 s nine minutes into scenario A,
//!   seed 11, which then abandoned 6 of its next 29 answers),
//!   so agents looked about to be free and the first predictive minutes abandoned in bursts;
//! - **demand** `D(t)`: people waiting now, plus each call already ringing with the chance a
//!   person answers it by `t` given its age (Bayes over "will be live" and "will end without a
//!   person", [`CallStats::answer_within`]), plus the new calls already decided on, each
//!   answered by `t` with chance `p · F_ring(t)`. `p` is the measured live-answer share
//!   plus one standard error ([`CallStats::live_probability`]): a cautious figure (see
//!   "Drift and noise" below).
//!
//! With agents taking answered people in order, the people left without an agent over the
//! window are `max_t (D(t) − S(t))⁺`: a shortage at any step. One more call, answered in step
//! `s`, adds an abandon when the others already reach the supply at `s` **or at any later
//! step**: either it finds nobody, or it takes the agent a later answer needed. Its expected
//! added abandons are therefore
//!
//! `ΔA(n) = Σ_s P(answered in s) · max_{t ≥ s} P(D_{n−1}(t) ≥ S(t))`
//!
//! (the largest single-step shortage standing in for the shortage anywhere later, a lower
//! bound that is close because later steps' shortages are strongly correlated). The pacer
//! places calls while `ΔA(n) ÷ p` — abandons added per live answer the call brings — stays
//! under the allowed risk. The previous method looked only at the call's own answer step; it
//! missed the knock-on abandons, so its realised rate was several times its allowed risk,
//! whereas this one's realised rate is close to the allowed risk (scenario A seed 1, 1 s
//! steps, no feedback, no hanging up: allowed 0.5 % → 0.5 % realised, 1 % → 1.1 %, 2 % → 2.3 %), so feedback
//! has less to do. Treating the later steps' shortages as independent
//! (`1 − Π (1 − P(D ≥ S))`) instead of taking the largest was tried: it is more cautious
//! for the same allowed risk but reaches the same occupancy at the same abandon rate.
//!
//! A short-horizon Monte Carlo of the same window (drawing each agent's free time and each
//! call's answer from the learned distributions, 100–200 futures a decision) was tried first:
//! at the abandon rates allowed (a new call's added risk is a few tenths of a percent) the
//! shortage is a rare event in a few hundred futures, so the estimate was noise, the pacer
//! dialled on lucky draws, and a day took 2–6 s. The exact distributions are smooth and
//! cheaper.
//!
//! The decision is re-made every second and whenever the queue changes, so each decision only
//! needs to be right for the calls it adds; later decisions see those calls as ringing.
//!
//! # Hanging up calls that have rung long enough
//!
//! A call placed now is answered, if at all, anywhere in the next 5–25 s; by the time the
//! agents' plans change (a talk ends early, another runs long, three people answer at once)
//! the calls already ringing are the surplus, and each one a person picks up then is an
//! abandon. So calls that have rung for at least [`PredictiveConfig::cancel_after`] (15 s by
//! default, the shortest ring timeout allowed: everyone gets that long to reach the phone)
//! are weighed again at every decision, before any new call: youngest first, each is kept
//! while the abandons it would still add, per live answer it may still bring (computed as for
//! a new call, from its own chance of being answered given its age), stay under
//! [`PredictiveConfig::cancel_factor`] (4) × the allowed risk; the first that does not, and
//! every older one, is hung up (the driver sends CANCEL; the contact gets `$no_answer` and
//! its retry, as after any ring timeout).
//!
//! This is what lets the pacer dial harder: the answers it fears most, the late ones of a
//! crowded window, can be withdrawn once the crowd is visible. Measured with the simulator
//! (scenario A, seeds 1–20): occupancy 84.9 % at 2.4 % abandoned without it, 88.0 % at 1.75 %
//! with it, for about 26 % of the calls ending at 15–25 s of ringing (13 % more calls placed).
//! The statistics weight what the calls not hung up show so that the cut ones bias nothing
//! (see `stats.rs`).
//! The pacer sees only what a driver sees: an experiment that told it each talk's true end
//! (so the supply side was known exactly) gained only 0.3 points, which is how we know the
//! remaining idle time comes from the answers' randomness, and only hanging up can act on it.
//!
//! # Control
//!
//! The allowed risk starts at [`PredictiveConfig::base_risk`] and is corrected by what the
//! campaign measured (the abandon ledger), never by anything the pacer cannot see:
//!
//! - **last hour**: `× e^(g · (setpoint − rate) / setpoint)`, the error clamped to ±1, the
//!   rate smoothed with `prior_answers` answers at the setpoint, the setpoint at 70 % of the
//!   target; `g` is [`PredictiveConfig::gain`] (1) while the hour is under the setpoint and
//!   [`PredictiveConfig::gain_above`] (2) while it is over: a run of abandons is cut short
//!   at once, a quiet hour only slowly earns more risk (the swing up is what made the next
//!   hour bad). Both gentle, because swinging the risk costs occupancy (occupancy is concave
//!   in the risk): a last-hour budget that cut the risk to nothing near 3 % per rolling hour
//!   was tried and kept every hour under 3 % but cost 2–5 points of occupancy;
//! - **headroom under the cap**: the abandons the rolling 24 h can still take before the hard
//!   cap `target × max(live, 100)` trips; with fewer than [`PredictiveConfig::headroom`] of
//!   them left the risk is scaled down linearly, to nothing one abandon short of the cap. Early
//!   in the day (a few hundred answers) this is what keeps the 24 h rate under the cap while a
//!   single abandon moves it by a percent; later the headroom is large and it stops acting.
//!
//! The hard cap of [`super::abandon::AbandonGuard`] backs both: at the cap the queue dials
//! progressive.
//!
//! Until 10 answers and 10 finished talks are known, the pacer dials progressive. That is
//! short (a minute or two of a 20-agent queue) because the two estimates above are built to
//! err on the safe side while data is thin: before any talk has finished no talking agent is
//! counted as ever becoming free, and the answer share's standard error is large.
//!
//! # Drift and noise in the answer rate
//!
//! The live-answer share is an exponentially weighted mean whose memory is a number of live
//! answers ([`super::stats::StatsConfig::answer_memory`], 300), not of attempts: at 10 % live
//! that spans 3,000 attempts, at 35 % about 860, so the estimate is as steady at a low answer
//! rate as at a high one. It used to be 400 attempts, which at 10 % live (the end of
//! scenario C) was only 40 answers: the estimate wandered by ±16 % from minute to minute,
//! and each time it wandered low the pacer over-dialled. That noise, not lag, made C's bad
//! hours: with the answer rate *falling*, a lagging estimate is too high and dials fewer
//! calls, the safe side, and scenario A (no drift at all) had worst hours just as bad
//! (2.8–3.2 %). Against drift the other way (answers becoming more frequent, the unsafe
//! side for a lagging estimate) the pacer has the last-hour feedback and the standard error
//! it adds to `p`, about 5 % of `p` at this memory.
//!
//! Measured with the simulator (`dialerd simulate`, README "Pacing and the simulator"), seeds
//! 1–20, against the pacer before these changes: clock hours at or over 3 % abandoned fell
//! from 16 of 160 to none in scenario C; in A they stayed at 16 of 160 while occupancy rose
//! (mean 84.6 → 84.9 %); the highest rolling 24 h fell from 6 % (A) and 4 % (C) to under
//! 2.8 %, as the early-day caution above now holds.

use super::abandon::AbandonLedger;
use super::agent::AgentStateKind;
use super::pacing::Snapshot;
use super::stats::{CallStats, Survival};
use super::Time;
use std::time::Duration;

/// Predictive settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictiveConfig {
    /// The campaign's abandon target (abandoned ÷ live answers).
    pub target: f64,
    /// The abandon share the feedback holds the last hour at, below `target` so that chance
    /// swings stay under it.
    pub setpoint: f64,
    /// Abandons per live answer a new call may add when the last hour is at the setpoint
    /// (the last-hour feedback brings the realised rate to the setpoint; this is where it
    /// starts).
    pub base_risk: f64,
    /// How hard the last-hour feedback pulls while the last hour is under the setpoint: the
    /// allowed risk is multiplied by up to `e^gain` when it has no abandons.
    pub gain: f64,
    /// How hard it pulls while the last hour is over the setpoint: the allowed risk is
    /// multiplied by down to `e^-gain_above` when it is at twice the setpoint.
    pub gain_above: f64,
    /// Live answers at the setpoint assumed before the last hour's own (so the first answers
    /// of a day do not swing it).
    pub prior_answers: f64,
    /// Abandons left under the 24 h cap below which the allowed risk is scaled down.
    pub headroom: f64,
    /// How long an answered person may wait for an agent.
    pub wait: Duration,
    /// Live answers to see before leaving progressive.
    pub min_answers: usize,
    /// Talk times to see before leaving progressive.
    pub min_talks: usize,
    /// Width of one step of the ring window.
    pub step: Duration,
    /// Calls ringing at least this long may be hung up when more answers are coming than
    /// agents to take them (`None`: never). Default: the shortest ring timeout allowed
    /// ([`super::outcome::MIN_RING_TIMEOUT`], 15 s), so a person always gets that long.
    pub cancel_after: Option<Duration>,
    /// Such a call is hung up when the abandons it would still add, per live answer it may
    /// still bring, exceed this many times the allowed risk.
    pub cancel_factor: f64,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        PredictiveConfig {
            target: 0.03,
            setpoint: SETPOINT_SHARE * 0.03,
            base_risk: BASE_RISK_HANGING_UP,
            gain: 1.0,
            gain_above: 2.0,
            prior_answers: 100.0,
            headroom: 8.0,
            wait: super::answer::MAX_WAIT,
            min_answers: 10,
            min_talks: 10,
            step: Duration::from_secs(2),
            cancel_after: Some(super::outcome::MIN_RING_TIMEOUT),
            cancel_factor: 4.0,
        }
    }
}

/// The setpoint as a share of the target.
const SETPOINT_SHARE: f64 = 0.7;

/// Base risk while old ringing calls may be hung up: much of a call's risk is withdrawn later
/// by hanging it up, so it may take more (0.06 keeps every clock hour of A, C and D under
/// 2.9 % over seeds 1–20; 0.07 and more let a few of D's reach 2.9–3.1 %).
const BASE_RISK_HANGING_UP: f64 = 0.06;

/// Base risk when ringing calls are never hung up: each call's risk is final (allowed
/// 1 % → about 1.1 % realised).
const BASE_RISK_NEVER_HANGING_UP: f64 = 0.036;

impl PredictiveConfig {
    /// This config with the setpoint at [`SETPOINT_SHARE`] of `target`.
    pub fn with_target(target: f64) -> PredictiveConfig {
        PredictiveConfig {
            target,
            setpoint: SETPOINT_SHARE * target,
            ..PredictiveConfig::default()
        }
    }

    /// This config with ringing calls never hung up (and the lower base risk that needs).
    pub fn never_hanging_up(self) -> PredictiveConfig {
        PredictiveConfig {
            cancel_after: None,
            base_risk: BASE_RISK_NEVER_HANGING_UP,
            ..self
        }
    }
}

/// The abandons per live answer a new call may add now: `base_risk` corrected by the
/// campaign's last hour and its headroom under the 24 h cap (see the module docs).
pub fn allowed_risk(config: &PredictiveConfig, ledger: &AbandonLedger, now: Time) -> f64 {
    let hour = ledger.window(now, Duration::from_secs(3600));
    let prior = config.prior_answers;
    let rate = (hour.abandoned as f64 + config.setpoint * prior) / (hour.live as f64 + prior);
    let error = ((config.setpoint - rate) / config.setpoint).clamp(-1.0, 1.0);
    // Over the setpoint it pulls harder than under it: a run of abandons is cut short, while
    // a quiet hour only slowly earns more risk (a swing up is what makes the next bad hour).
    let gain = if error < 0.0 {
        config.gain_above
    } else {
        config.gain
    };
    let day = ledger.last_24h(now);
    // The guard counts at least 100 answers (AbandonGuard::min_live).
    let left = config.target * day.live.max(100) as f64 - day.abandoned as f64;
    let ramp = if config.headroom > 0.0 {
        ((left - 1.0) / config.headroom).clamp(0.0, 1.0)
    } else {
        1.0
    };
    config.base_risk * (gain * error).exp() * ramp
}

/// Whether enough has been learned to dial predictively.
pub fn warmed_up(stats: &CallStats, config: &PredictiveConfig) -> bool {
    stats.answers_known() >= config.min_answers && stats.talks_known() >= config.min_talks
}

/// Reusable buffers of the forecast (one per pacer, so a decision allocates nothing).
#[derive(Debug, Clone, Default)]
pub struct Forecaster {
    /// Per step, the distribution of the number of agents free by then (+ the wait).
    supply: Vec<f64>,
    /// Per step, the distribution of the number of people answered by then.
    demand: Vec<f64>,
    /// Per step, the chance that a new call is answered by a person by then.
    new_by: Vec<f64>,
    /// The same for a call that has rung a while (one of those that may be hung up).
    old_by: Vec<f64>,
    /// Per step, the chance that answered people are at least the free agents.
    short: Vec<f64>,
    /// Talk times, the talks in progress counted as censored.
    talk: Survival,
}

/// Adds one independent 0/1 variable of chance `q` to the count distribution `d` (the last
/// cell holds "this many or more").
fn add_bernoulli(d: &mut [f64], q: f64) {
    let last = d.len() - 1;
    d[last] += d[last - 1] * q;
    for k in (1..last).rev() {
        d[k] = d[k] * (1.0 - q) + d[k - 1] * q;
    }
    d[0] *= 1.0 - q;
}

/// What the forecast asks for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    /// New calls to place.
    pub place: usize,
    /// Ringing calls to hang up: this many of the oldest that have rung at least
    /// [`PredictiveConfig::cancel_after`].
    pub cancel: usize,
}

/// Fills `fc.short`: per step, the chance that the people answered by then are at least the
/// agents free by then, so that one more answer finds nobody.
fn shortage(fc: &mut Forecaster, steps: usize, cells: usize) {
    fc.short.resize(steps, 0.0);
    for i in 0..steps {
        let supply = &fc.supply[i * cells..(i + 1) * cells];
        let demand = &fc.demand[i * cells..(i + 1) * cells];
        let mut at_least = 0.0; // P(demand ≥ k)
        let mut short = 0.0;
        for k in (0..cells).rev() {
            at_least += demand[k];
            short += supply[k] * at_least;
        }
        fc.short[i] = short.min(1.0);
    }
}

/// Expected abandons one more call adds, given `by[s]`, the chance it is answered by step `s`:
/// answered in step `s`, it adds one when people outnumber agents at `s` or at any later step
/// (it took an agent a later answer needed), so take the worst.
fn added_abandons(short: &[f64], by: &[f64]) -> f64 {
    let mut worst_later = 0.0f64;
    let mut added = 0.0;
    for s in (0..short.len()).rev() {
        worst_later = worst_later.max(short[s]);
        let before = if s == 0 { 0.0 } else { by[s - 1] };
        added += (by[s] - before) * worst_later;
    }
    added
}

/// Adds a call answered by step `i` with chance `by[i]` to the demand of every step.
fn add_call(fc: &mut Forecaster, by: &[f64], cells: usize) {
    for (i, &g) in by.iter().enumerate() {
        add_bernoulli(&mut fc.demand[i * cells..(i + 1) * cells], g);
    }
}

/// Largest number of new calls of which the last placed adds at most `allowed_risk` expected
/// abandons per expected live answer over the ring window, and how many of the calls ringing
/// past [`PredictiveConfig::cancel_after`] to hang up (see the module docs).
pub fn calls_to_place(
    snap: &Snapshot,
    stats: &CallStats,
    config: &PredictiveConfig,
    allowed_risk: f64,
    fc: &mut Forecaster,
) -> Plan {
    let p = stats.live_probability();
    if p <= 0.0 {
        return Plan::default();
    }
    let step = config.step.as_secs_f64().max(0.05);
    let horizon = stats.ring_to_answer().max().max(step);
    let steps = (horizon / step).ceil() as usize;
    let wait = config.wait.as_secs_f64();
    let wrap_mean = stats.wrap_up().mean();
    let times: Vec<f64> = (1..=steps).map(|i| i as f64 * step).collect();

    let ready = snap.count(AgentStateKind::Ready);
    // Talks in progress are censored samples of the talk time (see the module docs).
    fc.talk.rebuild(
        stats.talk(),
        snap.agents
            .iter()
            .filter(|a| a.state == AgentStateKind::Talking)
            .map(|a| a.elapsed.as_secs_f64()),
    );
    let busy: Vec<(AgentStateKind, f64)> = snap
        .agents
        .iter()
        .filter(|a| {
            matches!(
                a.state,
                AgentStateKind::Talking | AgentStateKind::Reserved | AgentStateKind::WrapUp
            )
        })
        .map(|a| (a.state, a.elapsed.as_secs_f64()))
        .collect();
    // Counts above every agent who could be free do not change the answer: lump them.
    let cells = ready + busy.len() + 2;
    let waiting = (snap.waiting_outbound + snap.waiting_inbound).min(cells - 1);
    // Calls old enough to hang up are weighed one by one below, youngest first.
    let cancel_after = config.cancel_after.map(|d| d.as_secs_f64());
    let can_cancel = |age: f64| cancel_after.is_some_and(|c| age >= c);
    let mut candidates: Vec<f64> = snap
        .ringing
        .iter()
        .map(Duration::as_secs_f64)
        .filter(|&a| can_cancel(a))
        .collect();
    candidates.sort_by(f64::total_cmp);

    fc.supply.clear();
    fc.supply.resize(steps * cells, 0.0);
    fc.demand.clear();
    fc.demand.resize(steps * cells, 0.0);
    fc.new_by.clear();
    for (i, &t) in times.iter().enumerate() {
        // Agents free by the step's start + the wait (see the module docs).
        let by = t - step + wait;
        let supply = &mut fc.supply[i * cells..(i + 1) * cells];
        supply[ready] = 1.0;
        for &(state, e) in &busy {
            let q = match state {
                AgentStateKind::Talking | AgentStateKind::Reserved => {
                    let within = by - wrap_mean;
                    if within <= 0.0 {
                        0.0
                    } else if state == AgentStateKind::Talking {
                        fc.talk.residual_cdf(e, within)
                    } else {
                        // A reservation turns into a call at once: a call just started.
                        fc.talk.cdf(within)
                    }
                }
                _ => stats.wrap_up().residual_cdf(e, by),
            };
            if q > 0.0 {
                add_bernoulli(supply, q);
            }
        }
        let demand = &mut fc.demand[i * cells..(i + 1) * cells];
        demand[waiting] = 1.0;
        for age in snap.ringing.iter().map(Duration::as_secs_f64) {
            if can_cancel(age) {
                continue;
            }
            let q = stats.answer_within(age, t);
            if q > 0.0 {
                add_bernoulli(demand, q);
            }
        }
        fc.new_by.push(stats.answer_within(0.0, t));
    }

    // Old ringing calls: keep the youngest while each adds at most `cancel_factor` × the
    // allowed risk per live answer it may still bring; hang up that one and every older one.
    let mut plan = Plan::default();
    for (kept, &age) in candidates.iter().enumerate() {
        shortage(fc, steps, cells);
        let mut by = std::mem::take(&mut fc.old_by);
        by.clear();
        by.extend(times.iter().map(|&t| stats.answer_within(age, t)));
        let live = by.last().copied().unwrap_or(0.0);
        let cut = live > 0.0
            && added_abandons(&fc.short, &by) > config.cancel_factor * allowed_risk * live;
        if !cut {
            add_call(fc, &by, cells);
        }
        fc.old_by = by;
        if cut {
            plan.cancel = candidates.len() - kept;
            break;
        }
    }

    // More calls than twice the agents per ring window would never be answered usefully.
    let limit = 2 * snap.agents.len() + 2 * (1.0 / p).ceil() as usize * snap.agents.len();
    let new_by = std::mem::take(&mut fc.new_by);
    while plan.place < limit {
        shortage(fc, steps, cells);
        if added_abandons(&fc.short, &new_by) > allowed_risk * p {
            break;
        }
        plan.place += 1;
        add_call(fc, &new_by, cells);
    }
    fc.new_by = new_by;
    plan
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dialer::pacing::AgentView;
    use crate::dialer::stats::StatsConfig;

    const RISK: f64 = 0.01;

    /// 20 % live answers at 5–25 s, the rest ending at 25 s; talks of 60–120 s; 10 s wrap-up.
    /// Statistics as learned from 300 calls: 20 % live, answered at 5–25 s, talks 60–120 s.
    pub(crate) fn learned() -> CallStats {
        let mut s = CallStats::new(StatsConfig::default());
        for i in 0..300 {
            if i % 5 == 0 {
                s.record_live_answer(Duration::from_secs(5 + (i / 5) % 21));
            } else {
                s.record_not_live(Duration::from_secs(25));
            }
            s.record_talk(Duration::from_secs(60 + i % 61));
            s.record_wrap_up(Duration::from_secs(10));
        }
        s
    }

    fn agents(state: AgentStateKind, n: usize, elapsed: u64) -> Vec<AgentView> {
        vec![
            AgentView {
                state,
                elapsed: Duration::from_secs(elapsed),
            };
            n
        ]
    }

    #[test]
    fn counts_of_independent_events_are_exact_and_lump_the_top() {
        let mut d = vec![1.0, 0.0, 0.0];
        add_bernoulli(&mut d, 0.5);
        add_bernoulli(&mut d, 0.5);
        assert_eq!(d, [0.25, 0.5, 0.25]);
        // A third event: "2 or more" holds P(2) + P(3).
        add_bernoulli(&mut d, 0.5);
        assert_eq!(d, [0.125, 0.375, 0.5]);
    }

    #[test]
    fn ready_agents_get_more_than_one_call_each_at_a_low_answer_rate() {
        let stats = learned();
        let snap = Snapshot {
            agents: agents(AgentStateKind::Ready, 10, 1),
            ..Snapshot::default()
        };
        let n = calls_to_place(
            &snap,
            &stats,
            &PredictiveConfig::default(),
            RISK,
            &mut Forecaster::default(),
        )
        .place;
        // At 20 % live, ten ready agents are worth well over ten calls, yet fewer than the
        // fifty that would on average bring ten answers.
        assert!(n > 10 && n < 50, "{n}");
    }

    #[test]
    fn agents_about_to_be_free_count_and_agents_who_just_started_do_not() {
        let stats = learned();
        let cfg = PredictiveConfig::default();
        let ready = Snapshot {
            agents: agents(AgentStateKind::Ready, 10, 1),
            ..Snapshot::default()
        };
        // Wrap-up is 10 s: 9 s in, they are free before any call can be answered (5 s).
        let ending = Snapshot {
            agents: agents(AgentStateKind::WrapUp, 10, 9),
            ..Snapshot::default()
        };
        // 5 s into a 60–120 s call: nobody frees within the ring window.
        let started = Snapshot {
            agents: agents(AgentStateKind::Talking, 10, 5),
            ..Snapshot::default()
        };
        let n_ready = calls_to_place(&ready, &stats, &cfg, RISK, &mut Forecaster::default()).place;
        assert_eq!(
            calls_to_place(&ending, &stats, &cfg, RISK, &mut Forecaster::default()).place,
            n_ready
        );
        assert_eq!(
            calls_to_place(&started, &stats, &cfg, RISK, &mut Forecaster::default()).place,
            0
        );
    }

    #[test]
    fn allowed_risk_follows_the_last_hour() {
        let cfg = PredictiveConfig::default();
        let now = Time(3 * 3_600_000);
        let mut ledger = AbandonLedger::new();
        // Two hours ago, 5,000 answers, 2 % abandoned: plenty of headroom, last hour empty.
        for i in 0..5000 {
            ledger.record(Time(3_600_000), i % 50 == 0);
        }
        assert!((allowed_risk(&cfg, &ledger, now) - cfg.base_risk).abs() < 1e-12);
        for _ in 0..400 {
            ledger.record(now, false);
        }
        let calm = allowed_risk(&cfg, &ledger, now);
        for _ in 0..40 {
            ledger.record(now, true);
        }
        let stormy = allowed_risk(&cfg, &ledger, now);
        assert!(
            calm > cfg.base_risk && stormy < cfg.base_risk,
            "{calm} {stormy}"
        );
        // Over the setpoint it pulls harder than under it, and the error is clamped.
        assert!((stormy - cfg.base_risk * (-cfg.gain_above).exp()).abs() < 1e-12);
        assert!(calm <= cfg.base_risk * cfg.gain.exp() + 1e-12);
    }

    #[test]
    fn allowed_risk_shrinks_near_the_24h_cap() {
        let cfg = PredictiveConfig::default();
        let now = Time(3_600_000);
        let mut ledger = AbandonLedger::new();
        // Start of the day: the cap counts at least 100 answers, so 3 abandons would trip
        // it; with none yet, 2 of the 8 abandons of headroom are left to use.
        let fresh = allowed_risk(&cfg, &ledger, now);
        assert!((fresh - 0.25 * cfg.base_risk).abs() < 1e-12, "{fresh}");
        // 2 abandons in 100 answers: one more trips the cap, so nothing may be risked.
        for i in 0..100 {
            ledger.record(now, i < 2);
        }
        assert_eq!(allowed_risk(&cfg, &ledger, now), 0.0);
    }

    #[test]
    fn calls_already_ringing_reduce_the_calls_placed() {
        let stats = learned();
        let mut snap = Snapshot {
            agents: agents(AgentStateKind::Ready, 10, 1),
            ..Snapshot::default()
        };
        let cfg = PredictiveConfig::default();
        let none = calls_to_place(&snap, &stats, &cfg, RISK, &mut Forecaster::default()).place;
        snap.ringing = vec![Duration::from_secs(2); 20];
        let some = calls_to_place(&snap, &stats, &cfg, RISK, &mut Forecaster::default()).place;
        assert!(some + 15 <= none, "{some} vs {none}");
        snap.waiting_outbound = 10;
        assert_eq!(
            calls_to_place(&snap, &stats, &cfg, RISK, &mut Forecaster::default()).place,
            0
        );
    }

    #[test]
    fn old_ringing_calls_are_hung_up_only_when_agents_are_short() {
        let stats = learned();
        let cfg = PredictiveConfig::default();
        let mut fc = Forecaster::default();
        // One agent ready, the rest just started talking; twelve calls ringing for 16 s: at
        // 20 % live, more answers are coming than the one agent can take.
        let mut agents_now = agents(AgentStateKind::Talking, 9, 5);
        agents_now.extend(agents(AgentStateKind::Ready, 1, 1));
        let mut snap = Snapshot {
            agents: agents_now,
            ringing: vec![Duration::from_secs(16); 12],
            ..Snapshot::default()
        };
        let plan = calls_to_place(&snap, &stats, &cfg, RISK, &mut fc);
        assert!(plan.cancel > 0 && plan.cancel < 12, "{plan:?}");
        assert_eq!(plan.place, 0);
        // Younger than the 15 s every person is owed: never hung up.
        snap.ringing = vec![Duration::from_secs(14); 12];
        assert_eq!(calls_to_place(&snap, &stats, &cfg, RISK, &mut fc).cancel, 0);
        // Switched off.
        snap.ringing = vec![Duration::from_secs(16); 12];
        let off = PredictiveConfig {
            cancel_after: None,
            ..cfg
        };
        assert_eq!(calls_to_place(&snap, &stats, &off, RISK, &mut fc).cancel, 0);
        // Ten agents ready: every answer finds one, nothing to hang up.
        snap.agents = agents(AgentStateKind::Ready, 10, 1);
        assert_eq!(calls_to_place(&snap, &stats, &cfg, RISK, &mut fc).cancel, 0);
    }
}
