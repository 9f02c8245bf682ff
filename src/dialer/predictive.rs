//! Predictive pacing: how many calls to place now so that agents are kept busy while the share
//! of answered people left without an agent stays under the target.
//!
//! # The method
//!
//! A call placed now is answered by a person, if at all, within the ring window `H` (the
//! longest ring-to-answer time seen). Over that window the pacer compares, at a grid of times
//! `t` in `(0, H]`:
//!
//! - **supply** `S(t + w)`: agents free by `t + w` (`w` = the 2 s an answered person may wait):
//!   the ready agents now, plus each talking agent with probability
//!   `P(talk ≤ e + t + w − wrap̄ | talk > e)` from the learned talk distribution and the time `e`
//!   it has been talking (so an agent 3 minutes into a call counts more than one who just
//!   started), plus each agent in wrap-up with `P(wrap ≤ e + t + w | wrap > e)`;
//! - **demand** `D(t)`: people waiting now, plus each call already ringing with the chance it is
//!   answered by `t` given its age (Bayes over "will be live" and "will end unanswered",
//!   [`CallStats::answer_within`]), plus the other new calls, each answered by `t` with chance
//!   `p · F_ring(t)`.
//!
//! Both are sums of independent Bernoulli variables; `D(t) − S(t + w)` is taken as normal with
//! the summed mean and variance. The n-th new call, if answered at `t` (chance
//! `p · dF_ring(t)`), finds no agent when the demand before it is at least the supply:
//! `risk(n) = Σ_t P(answer in slot t | live) · P(D_{n−1}(t) − S(t + w) ≥ −½)`. The pacer places
//! calls while the last one's risk stays under the allowed risk.
//!
//! # Feedback
//!
//! Each call's risk is judged alone, while calls placed later (and chance in talk times) add
//! to it, so the realised abandon share is a few times the allowed risk, by a factor that
//! depends on the queue. Rather than guess that factor, the allowed risk is set by feedback
//! from what the campaign measured over the last hour (the abandon ledger):
//! `allowed = base_risk · e^(gain · (setpoint − rate) / setpoint)`, the error clamped to
//! ±1, the rate smoothed with `prior_answers` answers at the setpoint. A lucky hour lets the
//! pacer dial harder, an unlucky one makes it careful at once, and because the last hour is
//! held near the setpoint (4/5 of the target by default), every clock hour, and so every 24 h
//! and 30 days, stays under the target. The hard cap of [`super::abandon::AbandonGuard`] backs
//! it: at the cap the queue dials progressive.
//!
//! The decision is re-made every second and whenever the queue changes, so each decision only
//! needs to be right for the calls it adds; later decisions see those calls as ringing.
//!
//! Until enough answers and talk times are known, the pacer dials progressive. The statistics
//! are windows over recent calls ([`super::stats`]), so the forecast follows an answer rate
//! that drifts over the day.

use super::abandon::AbandonLedger;
use super::agent::AgentStateKind;
use super::pacing::Snapshot;
use super::stats::CallStats;
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
    /// A new call's chance of finding no agent that is allowed when the last hour is exactly
    /// at the setpoint; the feedback scales it (see the module docs).
    pub base_risk: f64,
    /// How hard the feedback pulls: the allowed risk is multiplied by `e^gain` when the last
    /// hour has no abandons, by `e^-gain` when it is at twice the setpoint.
    pub gain: f64,
    /// Live answers at the setpoint assumed before the last hour's own (so the first answers
    /// of a day do not swing it).
    pub prior_answers: f64,
    /// How long an answered person may wait for an agent.
    pub wait: Duration,
    /// Live answers to see before leaving progressive.
    pub min_answers: usize,
    /// Talk times to see before leaving progressive.
    pub min_talks: usize,
    /// Points of the ring window compared.
    pub grid: usize,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        PredictiveConfig {
            target: 0.03,
            setpoint: 0.024,
            base_risk: 0.01,
            gain: 2.0,
            prior_answers: 100.0,
            wait: super::answer::MAX_WAIT,
            min_answers: 50,
            min_talks: 30,
            grid: 12,
        }
    }
}

impl PredictiveConfig {
    /// This config with the setpoint at four fifths of `target`.
    pub fn with_target(target: f64) -> PredictiveConfig {
        PredictiveConfig {
            target,
            setpoint: 0.8 * target,
            ..PredictiveConfig::default()
        }
    }
}

/// The chance of finding no agent a new call may have now: `base_risk` scaled by how the
/// campaign's last hour compares with the setpoint.
pub fn allowed_risk(config: &PredictiveConfig, ledger: &AbandonLedger, now: Time) -> f64 {
    let hour = ledger.window(now, Duration::from_secs(3600));
    let prior = config.prior_answers;
    let rate = (hour.abandoned as f64 + config.setpoint * prior) / (hour.live as f64 + prior);
    let error = ((config.setpoint - rate) / config.setpoint).clamp(-1.0, 1.0);
    config.base_risk * (config.gain * error).exp()
}

/// Whether enough has been learned to dial predictively.
pub fn warmed_up(stats: &CallStats, config: &PredictiveConfig) -> bool {
    stats.answers_known() >= config.min_answers && stats.talks_known() >= config.min_talks
}

/// Largest number of new calls of which the last placed has at most `allowed_risk` chance of
/// finding no agent when answered.
pub fn calls_to_place(
    snap: &Snapshot,
    stats: &CallStats,
    config: &PredictiveConfig,
    allowed_risk: f64,
) -> usize {
    let p = stats.live_probability().max(0.005);
    let horizon = stats.ring_to_answer().max().max(1.0);
    let wait = config.wait.as_secs_f64();
    let wrap_mean = stats.wrap_up().mean();
    let k = config.grid.max(1);

    let waiting = (snap.waiting_outbound + snap.waiting_inbound) as f64;
    let ready = snap.count(AgentStateKind::Ready) as f64;

    // Per grid point: mean and variance of D(t) − S(t + w) without new calls, and the chance
    // g that one new call is answered by t.
    let mut base_mean = vec![waiting - ready; k];
    let mut base_var = vec![0.0; k];
    let mut new_by = vec![0.0; k];
    let times: Vec<f64> = (1..=k).map(|i| horizon * i as f64 / k as f64).collect();

    for a in &snap.agents {
        let e = a.elapsed.as_secs_f64();
        for (i, &t) in times.iter().enumerate() {
            let q = match a.state {
                AgentStateKind::Talking => {
                    let within = t + wait - wrap_mean;
                    if within > 0.0 {
                        stats.talk().residual_cdf(e, within)
                    } else {
                        0.0
                    }
                }
                // A reservation turns into a call at once: a call that has just started.
                AgentStateKind::Reserved => {
                    let within = t + wait - wrap_mean;
                    if within > 0.0 {
                        stats.talk().cdf(within)
                    } else {
                        0.0
                    }
                }
                AgentStateKind::WrapUp => stats.wrap_up().residual_cdf(e, t + wait),
                _ => continue,
            };
            base_mean[i] -= q;
            base_var[i] += q * (1.0 - q);
        }
    }
    for age in &snap.ringing {
        let age = age.as_secs_f64();
        for (i, &t) in times.iter().enumerate() {
            let a = stats.answer_within(age, t);
            base_mean[i] += a;
            base_var[i] += a * (1.0 - a);
        }
    }
    for (i, &t) in times.iter().enumerate() {
        new_by[i] = stats.answer_within(0.0, t);
    }

    // Chance that the n-th new call, answered in slot i, finds no agent: the others' demand
    // by then (the n − 1 other new calls included) is at least the supply.
    let risk_of_last = |n: f64| {
        let mut risk = 0.0;
        let mut prev = 0.0;
        for i in 0..k {
            let g = new_by[i];
            let slot = g - prev;
            prev = g;
            let others = n - 1.0;
            let mean = base_mean[i] + others * g + 0.5;
            let var = base_var[i] + others * g * (1.0 - g);
            risk += slot
                * if var <= 1e-12 {
                    f64::from(u8::from(mean > 0.0))
                } else {
                    normal_cdf(mean / var.sqrt())
                };
        }
        risk / p
    };
    // More calls than twice the agents per ring window would never be answered usefully.
    let limit = 2 * snap.agents.len() + 2 * (1.0 / p).ceil() as usize * snap.agents.len();
    let mut n = 0;
    while n < limit {
        let next = (n + 1) as f64;
        if risk_of_last(next) > allowed_risk {
            break;
        }
        n += 1;
    }
    n
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialer::pacing::AgentView;
    use crate::dialer::stats::StatsConfig;

    const RISK: f64 = 0.01;

    /// 20 % live answers at 5–25 s, the rest ending at 25 s; talks of 60–120 s; 10 s wrap-up.
    fn learned() -> CallStats {
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
    fn normal_helpers_are_accurate() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-1.96) - 0.025).abs() < 1e-4);
    }

    #[test]
    fn ready_agents_get_more_than_one_call_each_at_a_low_answer_rate() {
        let stats = learned();
        let snap = Snapshot {
            agents: agents(AgentStateKind::Ready, 10, 1),
            ..Snapshot::default()
        };
        let n = calls_to_place(&snap, &stats, &PredictiveConfig::default(), RISK);
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
        let n_ready = calls_to_place(&ready, &stats, &cfg, RISK);
        assert_eq!(calls_to_place(&ending, &stats, &cfg, RISK), n_ready);
        assert_eq!(calls_to_place(&started, &stats, &cfg, RISK), 0);
    }

    #[test]
    fn allowed_risk_follows_the_last_hour() {
        let cfg = PredictiveConfig::default();
        let now = Time(3_600_000);
        let mut ledger = AbandonLedger::new();
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
        // The error is clamped: never more than e^gain either way.
        assert!(stormy >= cfg.base_risk * (-cfg.gain).exp() - 1e-12);
    }

    #[test]
    fn calls_already_ringing_reduce_the_calls_placed() {
        let stats = learned();
        let mut snap = Snapshot {
            agents: agents(AgentStateKind::Ready, 10, 1),
            ..Snapshot::default()
        };
        let cfg = PredictiveConfig::default();
        let none = calls_to_place(&snap, &stats, &cfg, RISK);
        snap.ringing = vec![Duration::from_secs(2); 20];
        let some = calls_to_place(&snap, &stats, &cfg, RISK);
        assert!(some + 15 <= none, "{some} vs {none}");
        snap.waiting_outbound = 10;
        assert_eq!(calls_to_place(&snap, &stats, &cfg, RISK), 0);
    }
}
