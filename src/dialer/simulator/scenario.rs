//! A synthetic call centre, read from TOML: its agents, how people answer, how long calls last.
//! Unknown keys are refused and named.

use super::super::rng::Rng;
use super::super::DialerError;
use serde::Deserialize;
use std::path::Path;

/// A random duration in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Dist {
    /// Always `value`.
    Fixed {
        /// Seconds.
        value: f64,
    },
    /// Uniform between `min` and `max`.
    Uniform {
        /// Seconds.
        min: f64,
        /// Seconds.
        max: f64,
    },
    /// Log-normal with this mean and standard deviation (of the duration itself).
    Lognormal {
        /// Seconds.
        mean: f64,
        /// Seconds.
        sd: f64,
    },
    /// Exponential with this mean.
    Exponential {
        /// Seconds.
        mean: f64,
    },
}

impl Dist {
    /// Draws a duration in seconds (never negative).
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        let x = match *self {
            Dist::Fixed { value } => value,
            Dist::Uniform { min, max } => rng.uniform(min, max),
            Dist::Lognormal { mean, sd } => rng.lognormal(mean, sd),
            Dist::Exponential { mean } => rng.exponential(mean),
        };
        x.max(0.0)
    }

    fn check(&self, name: &str) -> Result<(), String> {
        let ok = match *self {
            Dist::Fixed { value } => value >= 0.0,
            Dist::Uniform { min, max } => min >= 0.0 && max >= min,
            Dist::Lognormal { mean, sd } => mean > 0.0 && sd >= 0.0,
            Dist::Exponential { mean } => mean > 0.0,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "`{name}`: durations must be non-negative, with min ≤ max and means > 0"
            ))
        }
    }
}

/// The live-answer probability at one hour of the day.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerPoint {
    /// Hours since the start of the day.
    pub hour: f64,
    /// Probability that a person answers.
    pub p: f64,
}

/// The live-answer probability: constant, or a curve over the day (linear between points).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum LiveAnswer {
    /// The same all day.
    Constant(f64),
    /// Linear between the points, flat before the first and after the last.
    Curve(Vec<AnswerPoint>),
}

impl LiveAnswer {
    /// The probability at `hour`.
    pub fn at(&self, hour: f64) -> f64 {
        match self {
            LiveAnswer::Constant(p) => *p,
            LiveAnswer::Curve(points) => {
                let Some(first) = points.first() else {
                    return 0.0;
                };
                if hour <= first.hour {
                    return first.p;
                }
                for w in points.windows(2) {
                    if hour <= w[1].hour {
                        let f = (hour - w[0].hour) / (w[1].hour - w[0].hour).max(1e-9);
                        return w[0].p + f * (w[1].p - w[0].p);
                    }
                }
                points.last().map_or(0.0, |p| p.p)
            }
        }
    }
}

/// Power-mode settings.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerSettings {
    /// Calls per ready agent.
    pub r_ready: f64,
    /// Calls per agent in wrap-up.
    pub r_wrap: f64,
}

impl Default for PowerSettings {
    fn default() -> Self {
        PowerSettings {
            r_ready: 1.7,
            r_wrap: 0.1,
        }
    }
}

fn default_max_cps() -> f64 {
    20.0
}
fn default_max_lines() -> f64 {
    6.0
}
fn default_target() -> f64 {
    0.03
}
fn default_hang_up_after() -> f64 {
    super::super::outcome::MIN_RING_TIMEOUT.as_secs_f64()
}
fn default_planned_wait() -> f64 {
    super::super::answer::MAX_WAIT.as_secs_f64()
}
fn default_wrap_up_limit() -> f64 {
    120.0
}
fn default_preview() -> Dist {
    Dist::Uniform {
        min: 3.0,
        max: 10.0,
    }
}

/// A synthetic call centre and its day.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name for reports.
    pub name: String,
    /// What it models.
    #[serde(default)]
    pub description: String,
    /// Agents, all logged in for the whole day.
    pub agents: u32,
    /// Length of the day in hours.
    pub hours: f64,
    /// Probability that a person answers an attempt.
    pub live_answer: LiveAnswer,
    /// Ringing before a person answers (s).
    pub ring_to_answer: Dist,
    /// The dialer's ring timeout: unanswered attempts are given up after this long (s).
    pub give_up: f64,
    /// Talk time (s).
    pub talk: Dist,
    /// Wrap-up time an agent takes before recording the result (s).
    pub wrap_up: Dist,
    /// The task's wrap-up limit: wrap-up ends by itself after this long (s).
    #[serde(default = "default_wrap_up_limit")]
    pub wrap_up_limit: f64,
    /// Of the attempts nobody answers, the share that are busy (486 after 2–8 s).
    #[serde(default)]
    pub busy: f64,
    /// Of those, the share that are invalid numbers (404 after 0.5–2 s).
    #[serde(default)]
    pub invalid: f64,
    /// Of those, the share that fail in the network (503 after 0.5–5 s).
    #[serde(default)]
    pub network_error: f64,
    /// How long an agent looks at a preview contact before the call is placed (s).
    #[serde(default = "default_preview")]
    pub preview_decision: Dist,
    /// Calls-per-second cap passed to the pacer.
    #[serde(default = "default_max_cps")]
    pub max_cps: f64,
    /// Lines per agent cap.
    #[serde(default = "default_max_lines")]
    pub max_lines_per_agent: f64,
    /// The campaign's abandon target.
    #[serde(default = "default_target")]
    pub abandon_target: f64,
    /// Predictive may hang up calls that have rung this long when more answers are coming
    /// than agents (s; 0: never; else at least 15).
    #[serde(default = "default_hang_up_after")]
    pub hang_up_ringing_after: f64,
    /// Predictive: the longest wait for an agent the pacer plans for an answered person (s,
    /// 0 to 2), as a task's `planned_wait_ms`.
    #[serde(default = "default_planned_wait")]
    pub planned_wait: f64,
    /// Power-mode ratios.
    #[serde(default)]
    pub power: PowerSettings,
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, DialerError> {
        let text = std::fs::read_to_string(path).map_err(|source| DialerError::ScenarioRead {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::parse(&text).map_err(|message| DialerError::Scenario {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and checks a scenario.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.message().to_string())?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), String> {
        for (name, d) in [
            ("ring_to_answer", &self.ring_to_answer),
            ("talk", &self.talk),
            ("wrap_up", &self.wrap_up),
            ("preview_decision", &self.preview_decision),
        ] {
            d.check(name)?;
        }
        let p_ok = |p: f64| (0.0..=1.0).contains(&p);
        let curve_ok = match &self.live_answer {
            LiveAnswer::Constant(p) => p_ok(*p),
            LiveAnswer::Curve(points) => {
                !points.is_empty()
                    && points.iter().all(|pt| p_ok(pt.p))
                    && points.windows(2).all(|w| w[0].hour < w[1].hour)
            }
        };
        if !curve_ok {
            return Err("`live_answer`: probabilities in 0..1, curve hours increasing".into());
        }
        if !(p_ok(self.busy) && p_ok(self.invalid) && p_ok(self.network_error))
            || self.busy + self.invalid + self.network_error > 1.0
        {
            return Err(
                "`busy` + `invalid` + `network_error` must be shares adding up to ≤ 1".into(),
            );
        }
        let h = self.hang_up_ringing_after;
        if h != 0.0 && (h.is_nan() || h < default_hang_up_after()) {
            return Err("`hang_up_ringing_after`: 0 (never) or at least 15 seconds".into());
        }
        if !(0.0..=default_planned_wait()).contains(&self.planned_wait) {
            return Err("`planned_wait`: 0 to 2 seconds".into());
        }
        if self.agents == 0 || self.hours <= 0.0 || self.give_up <= 0.0 || self.max_cps <= 0.0 {
            return Err("`agents`, `hours`, `give_up` and `max_cps` must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "t"
        agents = 2
        hours = 1
        live_answer = 0.2
        ring_to_answer = { kind = "uniform", min = 5, max = 25 }
        give_up = 25
        talk = { kind = "lognormal", mean = 90, sd = 60 }
        wrap_up = { kind = "fixed", value = 10 }
    "#;

    #[test]
    fn a_minimal_scenario_gets_defaults() {
        let s = Scenario::parse(MINIMAL).unwrap();
        assert_eq!(s.power, PowerSettings::default());
        assert_eq!(s.abandon_target, 0.03);
        assert_eq!(s.live_answer.at(3.0), 0.2);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Scenario::parse(&format!("{MINIMAL}\nagnets = 3")).unwrap_err();
        assert!(e.contains("agnets"), "{e}");
        let e = Scenario::parse(&MINIMAL.replace("min = 5, max = 25", "min = 25, max = 5"))
            .unwrap_err();
        assert!(e.contains("ring_to_answer"), "{e}");
        let e = Scenario::parse(&format!("{MINIMAL}\nhang_up_ringing_after = 10")).unwrap_err();
        assert!(e.contains("hang_up_ringing_after"), "{e}");
        assert!(Scenario::parse(&format!("{MINIMAL}\nhang_up_ringing_after = 0")).is_ok());
        let e = Scenario::parse(&format!("{MINIMAL}\nplanned_wait = 3")).unwrap_err();
        assert!(e.contains("planned_wait"), "{e}");
    }

    #[test]
    fn answer_curve_is_linear_between_points() {
        let s = Scenario::parse(&MINIMAL.replace(
            "live_answer = 0.2",
            "live_answer = [{ hour = 0, p = 0.35 }, { hour = 8, p = 0.10 }]",
        ))
        .unwrap();
        assert!((s.live_answer.at(0.0) - 0.35).abs() < 1e-9);
        assert!((s.live_answer.at(4.0) - 0.225).abs() < 1e-9);
        assert!((s.live_answer.at(9.0) - 0.10).abs() < 1e-9);
    }
}
