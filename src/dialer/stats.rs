//! What the predictive pacer learns online about a queue's calls: the live-answer probability,
//! how long calls ring before a person answers, how long calls that nobody answers last (the
//! give-up time: busy and invalid numbers end early, unanswered ones at the ring timeout), and
//! the talk and wrap-up times.
//!
//! Rates drift over a day (people answer more in the morning than in the afternoon), so
//! nothing is averaged over all time: the answer probability is an exponentially weighted mean
//! over about the last [`StatsConfig::answer_memory`] live answers (the attempts that spans
//! grow as the answer rate falls, so the estimate is equally steady at 10 % and at 35 %), read
//! with one standard error added ([`CallStats::live_probability`]); each distribution is the
//! exact empirical distribution of its last [`StatsConfig::sample_window`] samples, kept sorted
//! so a quantile or tail probability costs one binary search. Talk times also come as a
//! [`Survival`] that counts the talks still in progress.

use std::collections::VecDeque;
use std::time::Duration;

/// The last `capacity` samples of a quantity, in arrival order and sorted.
#[derive(Debug, Clone)]
pub struct SampleWindow {
    capacity: usize,
    order: VecDeque<f64>,
    sorted: Vec<f64>,
    sum: f64,
}

impl SampleWindow {
    /// An empty window keeping at most `capacity` samples.
    pub fn new(capacity: usize) -> SampleWindow {
        let capacity = capacity.max(1);
        SampleWindow {
            capacity,
            order: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
            sum: 0.0,
        }
    }

    /// Adds a sample, dropping the oldest when full.
    pub fn push(&mut self, x: f64) {
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                let i = self.sorted.partition_point(|&v| v < old);
                self.sorted.remove(i);
                self.sum -= old;
            }
        }
        let i = self.sorted.partition_point(|&v| v <= x);
        self.sorted.insert(i, x);
        self.order.push_back(x);
        self.sum += x;
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Mean of the samples (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.sum / self.len() as f64
        }
    }

    /// Share of samples ≤ `x` (0 when empty).
    pub fn cdf(&self, x: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        self.sorted.partition_point(|&v| v <= x) as f64 / self.len() as f64
    }

    /// The `q` quantile (0 ≤ q ≤ 1) by nearest rank (0 when empty).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.len() - 1) as f64).round() as usize;
        self.sorted[rank]
    }

    /// The samples, in ascending order.
    pub fn sorted(&self) -> &[f64] {
        &self.sorted
    }

    /// The largest sample (0 when empty).
    pub fn max(&self) -> f64 {
        self.sorted.last().copied().unwrap_or(0.0)
    }

    /// P(X ≤ elapsed + t | X > elapsed): the chance that something already `elapsed` long ends
    /// within `t` more. Past the longest sample seen, falls back to a memoryless tail with the
    /// window's mean, so a very long call is still expected to end some time.
    pub fn residual_cdf(&self, elapsed: f64, t: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let n = self.len();
        let alive = n - self.sorted.partition_point(|&v| v <= elapsed);
        if alive == 0 {
            return 1.0 - (-t / self.mean().max(1.0)).exp();
        }
        let ended = self.sorted.partition_point(|&v| v <= elapsed + t) - (n - alive);
        ended as f64 / alive as f64
    }
}

/// Pushes `x` into `window` as `w` samples: whole copies now, the fraction carried in `owed`
/// until it adds up to one (so weights hold on average without drawing lots).
fn push_weighted(window: &mut SampleWindow, owed: &mut f64, x: f64, w: f64) {
    *owed += w.max(1.0);
    while *owed >= 1.0 {
        window.push(x);
        *owed -= 1.0;
    }
}

/// A duration's survival function `S(x) = P(X > x)` by Kaplan–Meier, from the finished
/// samples of a [`SampleWindow`] and the elapsed times of those still running (right-censored:
/// each is known only to last longer than its elapsed time).
///
/// Early in a day the finished talks are the short ones (the long ones have not ended yet),
/// so their plain distribution makes talks look shorter than they are and agents look about
/// to be free; counting the talks in progress as censored corrects that. Past the longest
/// duration seen, the tail is memoryless with a mean of at least that longest duration.
#[derive(Debug, Clone, Default)]
pub struct Survival {
    /// Distinct finished durations, ascending.
    times: Vec<f64>,
    /// `S` just after each of `times`.
    surv: Vec<f64>,
    /// The longest duration seen, finished or running.
    last: f64,
    /// `S(last)`.
    surv_last: f64,
    /// Mean of the finished samples (a floor for the tail's mean).
    mean: f64,
    /// Scratch: the censored times, sorted.
    censored: Vec<f64>,
}

impl Survival {
    /// Rebuilds the estimate from `finished` and the `running` elapsed times.
    pub fn rebuild(&mut self, finished: &SampleWindow, running: impl Iterator<Item = f64>) {
        self.times.clear();
        self.surv.clear();
        self.censored.clear();
        self.censored.extend(running);
        self.censored.sort_by(f64::total_cmp);
        self.mean = finished.mean();
        let events = finished.sorted();
        let mut at_risk = (events.len() + self.censored.len()) as f64;
        let (mut i, mut j) = (0, 0);
        let mut s = 1.0;
        while i < events.len() {
            let t = events[i];
            // Censored strictly before t leave the risk set first; one censored at the very
            // time of an event is taken to outlast it, the usual convention.
            while j < self.censored.len() && self.censored[j] < t {
                at_risk -= 1.0;
                j += 1;
            }
            let mut d = 0.0;
            while i < events.len() && events[i] == t {
                d += 1.0;
                i += 1;
            }
            s *= 1.0 - d / at_risk;
            at_risk -= d;
            self.times.push(t);
            self.surv.push(s);
        }
        let longest_running = self.censored.last().copied().unwrap_or(0.0);
        self.last = finished.max().max(longest_running);
        self.surv_last = s;
    }

    /// Whether nothing has finished yet.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// `P(X > x)`.
    pub fn survival(&self, x: f64) -> f64 {
        if x > self.last {
            return self.surv_last * (-(x - self.last) / self.tail_mean()).exp();
        }
        let k = self.times.partition_point(|&v| v <= x);
        if k == 0 {
            1.0
        } else {
            self.surv[k - 1]
        }
    }

    /// `P(X ≤ x)` (0 while nothing has finished: nothing is assumed to end).
    pub fn cdf(&self, x: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        1.0 - self.survival(x)
    }

    /// `P(X ≤ elapsed + t | X > elapsed)`.
    pub fn residual_cdf(&self, elapsed: f64, t: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let alive = self.survival(elapsed);
        if alive <= 0.0 {
            // Longer than every finished one and none still running that long: memoryless.
            return 1.0 - (-t / self.tail_mean()).exp();
        }
        (1.0 - self.survival(elapsed + t) / alive).clamp(0.0, 1.0)
    }

    /// Mean of the memoryless tail: at least the longest duration seen, since something that
    /// outlasted everything seen is not expected to end sooner than an average one (and
    /// early in a day the finished ones are the short ones).
    fn tail_mean(&self) -> f64 {
        self.mean.max(self.last).max(1.0)
    }
}

/// An exponentially weighted mean of a 0/1 (or any) signal that is the plain mean until
/// `window` samples have been seen, so it starts right and then follows drift.
#[derive(Debug, Clone, Copy)]
pub struct Ewma {
    value: f64,
    count: u64,
    window: u64,
}

impl Ewma {
    /// An empty mean with an effective memory of about `window` samples.
    pub fn new(window: u64) -> Ewma {
        Ewma {
            value: 0.0,
            count: 0,
            window: window.max(1),
        }
    }

    /// Sets the effective memory, in samples, from the next sample on.
    pub fn set_window(&mut self, window: u64) {
        self.window = window.max(1);
    }

    /// Samples the mean currently rests on: all of them while fewer than the window, then
    /// about the window.
    pub fn effective_count(&self) -> u64 {
        self.count.min(self.window)
    }

    /// Adds a sample.
    pub fn push(&mut self, x: f64) {
        self.push_weighted(x, 1.0);
    }

    /// Adds a sample that stands for `w` samples (`w` ≥ 1; weight of the mean's own step
    /// compounded `w` times).
    pub fn push_weighted(&mut self, x: f64, w: f64) {
        self.count += 1;
        let alpha = 1.0 / self.count.min(self.window) as f64;
        let step = 1.0 - (1.0 - alpha).powf(w.max(1.0));
        self.value += step * (x - self.value);
    }

    /// The current mean (0 before any sample).
    pub fn value(&self) -> f64 {
        self.value
    }

    /// Samples seen.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// How likely a call still ringing at each age is to be hung up by the pacer then, so that
/// what the calls that were not hung up show can be weighted back up (inverse probability of
/// censoring weighting): an answer at `t` s stands for `1 ÷ K(t)` answers, `K(t)` being the
/// chance of not having been hung up before `t`.
#[derive(Debug, Clone, Default)]
struct HangUps {
    /// Per whole second of age: calls that reached it still ringing (decayed).
    at_risk: Vec<f64>,
    /// Per whole second of age: calls hung up in it (decayed).
    hung_up: Vec<f64>,
}

impl HangUps {
    /// Longest age tracked (s): hang-ups happen well within a ring timeout.
    const AGES: usize = 300;

    /// One finished attempt that lasted `age` s, hung up by the pacer or not; older ones
    /// count `1 − 1/memory` less each time.
    fn record(&mut self, age: f64, hung_up: bool, memory: f64) {
        if self.at_risk.is_empty() {
            if !hung_up {
                return; // nothing hung up yet: K is 1 everywhere
            }
            self.at_risk = vec![0.0; Self::AGES];
            self.hung_up = vec![0.0; Self::AGES];
        }
        let keep = 1.0 - 1.0 / memory.max(1.0);
        let last = (age.max(0.0) as usize).min(Self::AGES - 1);
        for a in 0..Self::AGES {
            self.at_risk[a] *= keep;
            self.hung_up[a] *= keep;
            if a <= last {
                self.at_risk[a] += 1.0;
            }
        }
        if hung_up {
            self.hung_up[last] += 1.0;
        }
    }

    /// `K(age)`: the chance of a call still ringing not to have been hung up before `age`.
    fn not_hung_up_before(&self, age: f64) -> f64 {
        let end = (age.max(0.0) as usize).min(self.at_risk.len());
        self.at_risk[..end]
            .iter()
            .zip(&self.hung_up)
            .filter(|(n, _)| **n > 0.0)
            .map(|(n, h)| 1.0 - (h / n).min(1.0))
            .product()
    }
}

/// Window sizes for [`CallStats`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsConfig {
    /// Effective memory of the live-answer probability, in live answers (the attempts it
    /// spans are this ÷ the answer rate).
    pub answer_memory: f64,
    /// Standard errors added to the measured live-answer probability (see
    /// [`CallStats::live_probability`]).
    pub answer_caution: f64,
    /// Samples kept per distribution.
    pub sample_window: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        // 300 answers: at 20 % live, 1,500 attempts, about half an hour of a 20-agent
        // queue's traffic; the estimate's standard error is then about 5 % of itself.
        StatsConfig {
            answer_memory: 300.0,
            answer_caution: 1.0,
            sample_window: 300,
        }
    }
}

/// A queue's learned call statistics.
#[derive(Debug, Clone)]
pub struct CallStats {
    config: StatsConfig,
    live: Ewma,
    ring_to_answer: SampleWindow,
    give_up: SampleWindow,
    talk: SampleWindow,
    wrap_up: SampleWindow,
    hang_ups: HangUps,
    /// Fractions of a sample owed to `ring_to_answer` and `give_up` by weighted samples.
    owed: (f64, f64),
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl CallStats {
    /// Nothing learned yet.
    pub fn new(config: StatsConfig) -> CallStats {
        CallStats {
            config,
            live: Ewma::new(config.answer_memory as u64),
            ring_to_answer: SampleWindow::new(config.sample_window),
            give_up: SampleWindow::new(config.sample_window),
            talk: SampleWindow::new(config.sample_window),
            wrap_up: SampleWindow::new(config.sample_window),
            hang_ups: HangUps::default(),
            owed: (0.0, 0.0),
        }
    }

    /// An attempt was answered by a person after ringing for `ring`.
    pub fn record_live_answer(&mut self, ring: Duration) {
        let w = self.weight(secs(ring), false);
        self.adapt_answer_window();
        self.live.push_weighted(1.0, w);
        push_weighted(&mut self.ring_to_answer, &mut self.owed.0, secs(ring), w);
    }

    /// An attempt ended without a person after `duration` (busy, no answer, failure).
    pub fn record_not_live(&mut self, duration: Duration) {
        let w = self.weight(secs(duration), false);
        self.adapt_answer_window();
        self.live.push_weighted(0.0, w);
        push_weighted(&mut self.give_up, &mut self.owed.1, secs(duration), w);
    }

    /// The pacer hung up an attempt still ringing after `ring`: what it would have become is
    /// unknown, but from now on answers and endings at that age or later stand for more
    /// attempts, as some like them were cut short (see [`HangUps`]).
    pub fn record_hung_up(&mut self, ring: Duration) {
        self.weight(secs(ring), true);
    }

    /// Records an attempt of `age` s in the hang-up law and returns the weight an outcome at
    /// that age carries.
    fn weight(&mut self, age: f64, hung_up: bool) -> f64 {
        let memory = self.config.answer_memory / self.live.value().max(0.01);
        self.hang_ups.record(age, hung_up, memory);
        if self.hang_ups.at_risk.is_empty() {
            return 1.0;
        }
        1.0 / self.hang_ups.not_hung_up_before(age).max(0.2)
    }

    /// Keeps the answer-rate memory at about `answer_memory` live answers: at 10 % live
    /// answers that is ten times as many attempts as at 100 %, so the estimate is as steady
    /// at a low answer rate as at a high one.
    fn adapt_answer_window(&mut self) {
        let k = self.config.answer_memory.max(1.0);
        if self.live.count() > 0 {
            let p = self.live.value().max(0.01);
            self.live.set_window((k / p).clamp(k, 100.0 * k) as u64);
        }
    }

    /// A connected call lasted `talk`.
    pub fn record_talk(&mut self, talk: Duration) {
        self.talk.push(secs(talk));
    }

    /// An agent's after-call work lasted `wrap_up`.
    pub fn record_wrap_up(&mut self, wrap_up: Duration) {
        self.wrap_up.push(secs(wrap_up));
    }

    /// Probability that an attempt is answered by a person, erring high: the measured share
    /// plus `answer_caution` standard errors of it. Over-estimating it places fewer calls, so
    /// the error a short sample makes (early in a day) is on the side of fewer abandons.
    pub fn live_probability(&self) -> f64 {
        let p = self.live.value();
        let n = self.live.effective_count().max(1) as f64;
        (p + self.config.answer_caution * (p * (1.0 - p) / n).sqrt()).min(1.0)
    }

    /// Attempts finished so far.
    pub fn attempts(&self) -> u64 {
        self.live.count()
    }

    /// Live answers in the ring-time window (up to its size).
    pub fn answers_known(&self) -> usize {
        self.ring_to_answer.len()
    }

    /// Talk times in the window (up to its size).
    pub fn talks_known(&self) -> usize {
        self.talk.len()
    }

    /// Ring time (s) before a live answer.
    pub fn ring_to_answer(&self) -> &SampleWindow {
        &self.ring_to_answer
    }

    /// Duration (s) of attempts nobody answered.
    pub fn give_up(&self) -> &SampleWindow {
        &self.give_up
    }

    /// Talk time (s).
    pub fn talk(&self) -> &SampleWindow {
        &self.talk
    }

    /// Wrap-up time (s).
    pub fn wrap_up(&self) -> &SampleWindow {
        &self.wrap_up
    }

    /// For an attempt still ringing at `age` s: the chance a person answers it within `t` more
    /// seconds. Bayes over "will be live" and "will end without a person", each weighted by
    /// the chance it would still be ringing at this age.
    pub fn answer_within(&self, age: f64, t: f64) -> f64 {
        let p = self.live_probability();
        let r = &self.ring_to_answer;
        let live_still = p * (1.0 - r.cdf(age));
        let dead_still = (1.0 - p) * (1.0 - self.give_up.cdf(age));
        let still = live_still + dead_still;
        if still <= 0.0 || live_still <= 0.0 {
            return 0.0;
        }
        p * (r.cdf(age + t) - r.cdf(age)) / still
    }
}

/// One [`SampleWindow`] in a [`StatsSnapshot`]: its samples oldest first and their sum, as
/// IEEE-754 bits so a restart gives back the very same numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct WindowSnapshot {
    samples: Vec<u64>,
    sum: u64,
}

impl SampleWindow {
    fn snapshot(&self) -> WindowSnapshot {
        WindowSnapshot {
            samples: self.order.iter().map(|x| x.to_bits()).collect(),
            sum: self.sum.to_bits(),
        }
    }

    /// The window `snap` describes, keeping at most `capacity` of its newest samples.
    fn restore(capacity: usize, snap: &WindowSnapshot) -> Result<SampleWindow, String> {
        let samples: Vec<f64> = snap.samples.iter().map(|b| f64::from_bits(*b)).collect();
        if let Some(bad) = samples.iter().find(|x| !x.is_finite() || **x < 0.0) {
            return Err(format!("a duration sample is {bad}"));
        }
        let mut w = SampleWindow::new(capacity);
        let skip = samples.len().saturating_sub(w.capacity);
        w.order.extend(&samples[skip..]);
        w.sorted.extend(&samples[skip..]);
        w.sorted.sort_by(f64::total_cmp);
        let sum = f64::from_bits(snap.sum);
        // The running sum is kept as it was (it carries its own rounding), unless samples
        // were dropped to fit a smaller window.
        w.sum = if skip == 0 && sum.is_finite() {
            sum
        } else {
            w.order.iter().sum()
        };
        Ok(w)
    }
}

/// What a [`CallStats`] has learned, serialisable (serde) so the store can keep it per task
/// and a restart starts from it instead of from nothing (a cold start dials progressively and
/// forgets the answer rate, ring, talk and wrap-up times). Numbers are kept as IEEE-754 bits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    live_value: u64,
    live_count: u64,
    live_window: u64,
    ring_to_answer: WindowSnapshot,
    give_up: WindowSnapshot,
    talk: WindowSnapshot,
    wrap_up: WindowSnapshot,
    hang_ups_at_risk: Vec<u64>,
    hang_ups_hung_up: Vec<u64>,
    owed: [u64; 2],
}

fn from_bits(v: &[u64]) -> Vec<f64> {
    v.iter().map(|b| f64::from_bits(*b)).collect()
}

fn to_bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

impl CallStats {
    /// What has been learned, to persist.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            live_value: self.live.value.to_bits(),
            live_count: self.live.count,
            live_window: self.live.window,
            ring_to_answer: self.ring_to_answer.snapshot(),
            give_up: self.give_up.snapshot(),
            talk: self.talk.snapshot(),
            wrap_up: self.wrap_up.snapshot(),
            hang_ups_at_risk: to_bits(&self.hang_ups.at_risk),
            hang_ups_hung_up: to_bits(&self.hang_ups.hung_up),
            owed: [self.owed.0.to_bits(), self.owed.1.to_bits()],
        }
    }

    /// Statistics with `config` that start from what `snap` had learned; a snapshot that
    /// makes no sense (negative or infinite values, a broken hang-up law) is refused.
    pub fn restore(config: StatsConfig, snap: &StatsSnapshot) -> Result<CallStats, String> {
        let mut stats = CallStats::new(config);
        let value = f64::from_bits(snap.live_value);
        if !(0.0..=1.0).contains(&value) {
            return Err(format!("the answer rate is {value}"));
        }
        stats.live = Ewma {
            value,
            count: snap.live_count,
            window: snap.live_window.max(1),
        };
        let n = config.sample_window;
        stats.ring_to_answer = SampleWindow::restore(n, &snap.ring_to_answer)?;
        stats.give_up = SampleWindow::restore(n, &snap.give_up)?;
        stats.talk = SampleWindow::restore(n, &snap.talk)?;
        stats.wrap_up = SampleWindow::restore(n, &snap.wrap_up)?;
        let at_risk = from_bits(&snap.hang_ups_at_risk);
        let hung_up = from_bits(&snap.hang_ups_hung_up);
        let sane = |v: &[f64]| v.iter().all(|x| x.is_finite() && *x >= 0.0);
        let sizes_ok = (at_risk.is_empty() && hung_up.is_empty())
            || (at_risk.len() == HangUps::AGES && hung_up.len() == HangUps::AGES);
        if !sizes_ok || !sane(&at_risk) || !sane(&hung_up) {
            return Err("the hang-up law is not valid".into());
        }
        stats.hang_ups = HangUps { at_risk, hung_up };
        let owed = snap.owed.map(f64::from_bits);
        if !owed.iter().all(|x| (0.0..1.0).contains(x)) {
            return Err("a weighted sample is owed out of range".into());
        }
        stats.owed = (owed[0], owed[1]);
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_the_last_samples_sorted() {
        let mut w = SampleWindow::new(3);
        for x in [5.0, 1.0, 3.0, 4.0] {
            w.push(x);
        }
        // 5 fell out.
        assert_eq!(w.len(), 3);
        assert!((w.mean() - 8.0 / 3.0).abs() < 1e-9);
        assert_eq!(w.max(), 4.0);
        assert_eq!(w.cdf(3.0), 2.0 / 3.0);
        assert_eq!(w.quantile(0.0), 1.0);
        assert_eq!(w.quantile(1.0), 4.0);
    }

    #[test]
    fn residual_cdf_conditions_on_elapsed_time() {
        let mut w = SampleWindow::new(10);
        for x in [10.0, 20.0, 30.0, 40.0] {
            w.push(x);
        }
        // Past 15 s, three remain (20, 30, 40); one of them ends within 10 s more.
        assert!((w.residual_cdf(15.0, 10.0) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(w.residual_cdf(0.0, 100.0), 1.0);
        // Longer than anything seen: still expected to end, memoryless with the mean (25 s).
        let tail = w.residual_cdf(50.0, 25.0);
        assert!((tail - (1.0 - (-1.0f64).exp())).abs() < 1e-9);
    }

    #[test]
    fn ewma_is_the_mean_at_first_then_follows_drift() {
        let mut e = Ewma::new(100);
        for i in 0..100 {
            e.push(if i % 5 == 0 { 1.0 } else { 0.0 });
        }
        assert!((e.value() - 0.2).abs() < 1e-9);
        for i in 0..1000 {
            e.push(if i % 10 == 0 { 1.0 } else { 0.0 });
        }
        assert!((e.value() - 0.1).abs() < 0.02, "{}", e.value());
    }

    #[test]
    fn talks_in_progress_are_censored_samples() {
        let mut w = SampleWindow::new(10);
        for x in [10.0, 20.0] {
            w.push(x);
        }
        let mut plain = Survival::default();
        plain.rebuild(&w, std::iter::empty());
        // Only the finished talks: everything is over by 20 s.
        assert_eq!(plain.cdf(20.0), 1.0);
        // Two more are 30 s in and still talking: four at risk at 10 s, three at 20 s.
        let mut km = Survival::default();
        km.rebuild(&w, [30.0, 30.0].into_iter());
        assert!((km.survival(10.0) - 0.75).abs() < 1e-12);
        assert!((km.survival(20.0) - 0.5).abs() < 1e-12);
        // Past everything seen: memoryless with a mean of at least the longest seen (30 s).
        let tail = km.residual_cdf(30.0, 30.0);
        assert!((tail - (1.0 - (-1.0f64).exp())).abs() < 1e-9, "{tail}");
        // Nothing finished yet: nobody is expected to end.
        let mut none = Survival::default();
        none.rebuild(&SampleWindow::new(10), [5.0].into_iter());
        assert_eq!(none.cdf(100.0), 0.0);
        assert_eq!(none.residual_cdf(5.0, 100.0), 0.0);
    }

    #[test]
    fn live_probability_errs_high_by_one_standard_error() {
        let mut s = CallStats::new(StatsConfig::default());
        for i in 0..100 {
            if i % 5 == 0 {
                s.record_live_answer(Duration::from_secs(10));
            } else {
                s.record_not_live(Duration::from_secs(25));
            }
        }
        // 20 % measured over 100 attempts: standard error 4 %.
        assert!(
            (s.live_probability() - 0.24).abs() < 1e-9,
            "{}",
            s.live_probability()
        );
    }

    #[test]
    fn answer_memory_is_counted_in_answers_not_attempts() {
        // At 10 % live, 300 answers of memory are 3,000 attempts: after 6,000 attempts the
        // standard error added is √(0.1 · 0.9 / 3,000) ≈ 0.55 %, not the 1.5 % that a memory
        // of 400 attempts would leave.
        let mut s = CallStats::new(StatsConfig::default());
        for i in 0..6000 {
            if i % 10 == 0 {
                s.record_live_answer(Duration::from_secs(10));
            } else {
                s.record_not_live(Duration::from_secs(25));
            }
        }
        let caution = s.live_probability() - 0.1;
        assert!((caution - 0.0055).abs() < 0.001, "{caution}");
    }

    #[test]
    fn answer_within_uses_the_age_of_the_call() {
        let mut s = CallStats::new(StatsConfig {
            answer_caution: 0.0,
            ..StatsConfig::default()
        });
        // Half the attempts answered, at 10 s; the rest end at 30 s.
        for _ in 0..50 {
            s.record_live_answer(Duration::from_secs(10));
            s.record_not_live(Duration::from_secs(30));
        }
        assert!((s.live_probability() - 0.5).abs() < 0.05);
        let fresh = s.answer_within(0.0, 15.0);
        assert!((fresh - s.live_probability()).abs() < 1e-9);
        // Still ringing at 12 s: it is one of the unanswered ones.
        assert_eq!(s.answer_within(12.0, 15.0), 0.0);
        // At 5 s nothing has been decided, but the answer is 5 s away.
        assert_eq!(s.answer_within(5.0, 4.0), 0.0);
        assert!(s.answer_within(5.0, 6.0) > 0.4);
    }

    #[test]
    fn hung_up_calls_do_not_bias_the_answer_rate_or_ring_times() {
        // 20 % live, answered at 5–25 s (evenly), the rest ringing out at 25 s; every other
        // call still ringing at 16 s is hung up. Left out without weighting, half the late
        // answers and endings would go missing: the live share would read 0.2 × 0.775 ÷
        // (0.2 × 0.775 + 0.8 × 0.5) ≈ 0.28 and the ring times' median 12.75 s instead of 15 s.
        let mut s = CallStats::new(StatsConfig {
            answer_caution: 0.0,
            answer_memory: 100_000.0,
            sample_window: 100_000,
        });
        let mut ringing_at_16 = 0u64;
        for i in 0..50_000u64 {
            let live = i % 5 == 0;
            let at = if live {
                5.0 + ((i / 5) % 200) as f64 * 0.1
            } else {
                25.0
            };
            if at > 16.0 {
                ringing_at_16 += 1;
                if ringing_at_16.is_multiple_of(2) {
                    s.record_hung_up(Duration::from_secs(16));
                    continue;
                }
            }
            if live {
                s.record_live_answer(Duration::from_secs_f64(at));
            } else {
                s.record_not_live(Duration::from_secs_f64(at));
            }
        }
        let p = s.live_probability();
        assert!((p - 0.2).abs() < 0.01, "live share {p}");
        let median = s.ring_to_answer().quantile(0.5);
        assert!((median - 15.0).abs() < 0.6, "median ring time {median}");
        let early = s.answer_within(0.0, 10.0);
        assert!((early - 0.05).abs() < 0.006, "answered within 10 s {early}");
    }
}
