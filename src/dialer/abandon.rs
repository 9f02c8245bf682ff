//! Abandon accounting per campaign: abandoned ÷ live answers over a rolling 24 h (UK rule) and
//! a rolling 30 days (US rule), and the guard that sends a queue back to progressive dialing
//! when the measured rate reaches the hard cap.
//!
//! The ledger keeps counts in 5-minute buckets (at most 8,640 for 30 days, only non-empty
//! ones stored) and serialises with serde, so the store can persist it as one value per
//! campaign and a restart loses nothing.

use super::Time;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// Width of one bucket.
pub const BUCKET: Duration = Duration::from_secs(300);
/// The UK window.
pub const DAY: Duration = Duration::from_secs(24 * 3600);
/// The US window (and how long buckets are kept).
pub const THIRTY_DAYS: Duration = Duration::from_secs(30 * 24 * 3600);

/// Live answers and how many of them were abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Calls answered by a person.
    pub live: u64,
    /// Of those, calls no agent took within the wait.
    pub abandoned: u64,
}

impl Counts {
    /// abandoned ÷ live, 0 when nothing was answered.
    pub fn ratio(self) -> f64 {
        if self.live == 0 {
            0.0
        } else {
            self.abandoned as f64 / self.live as f64
        }
    }

    fn add(&mut self, other: Counts) {
        self.live += other.live;
        self.abandoned += other.abandoned;
    }

    fn sub(&mut self, other: Counts) {
        self.live -= other.live;
        self.abandoned -= other.abandoned;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Bucket {
    /// Bucket number: start time ÷ [`BUCKET`].
    n: u64,
    counts: Counts,
}

/// One campaign's abandon counts over the last 30 days. Read back from the store it is
/// checked (buckets in order, abandons within live answers, the total their sum), so a
/// damaged row is refused instead of breaking the arithmetic later.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "LedgerRepr")]
pub struct AbandonLedger {
    buckets: VecDeque<Bucket>,
    /// Sum of all kept buckets (so the 30-day figure costs nothing to read).
    total: Counts,
}

/// An [`AbandonLedger`] as stored, before it is checked.
#[derive(Deserialize)]
struct LedgerRepr {
    buckets: VecDeque<Bucket>,
    total: Counts,
}

impl TryFrom<LedgerRepr> for AbandonLedger {
    type Error = String;

    fn try_from(r: LedgerRepr) -> Result<Self, String> {
        let mut total = Counts::default();
        let mut last = None;
        for b in &r.buckets {
            if last.is_some_and(|n| b.n <= n) || b.counts.abandoned > b.counts.live {
                return Err(format!(
                    "abandon ledger bucket {} is out of order or damaged",
                    b.n
                ));
            }
            last = Some(b.n);
            total.live = total
                .live
                .checked_add(b.counts.live)
                .ok_or("too many answers")?;
            total.abandoned += b.counts.abandoned;
        }
        if total != r.total {
            return Err("abandon ledger total is not the sum of its buckets".into());
        }
        Ok(AbandonLedger {
            buckets: r.buckets,
            total,
        })
    }
}

fn bucket_of(t: Time) -> u64 {
    t.0 / BUCKET.as_millis() as u64
}

fn buckets_in(span: Duration) -> u64 {
    span.as_millis() as u64 / BUCKET.as_millis() as u64
}

impl AbandonLedger {
    /// An empty ledger.
    pub fn new() -> AbandonLedger {
        AbandonLedger::default()
    }

    /// Counts one live answer at `now`, abandoned or not.
    pub fn record(&mut self, now: Time, abandoned: bool) {
        let n = bucket_of(now);
        let one = Counts {
            live: 1,
            abandoned: u64::from(abandoned),
        };
        match self.buckets.back_mut() {
            Some(b) if b.n == n => b.counts.add(one),
            // Time never runs backwards for a campaign; a late event lands in the last bucket.
            Some(b) if b.n > n => b.counts.add(one),
            _ => self.buckets.push_back(Bucket { n, counts: one }),
        }
        self.total.add(one);
        self.prune(now);
    }

    /// Counts over the `span` up to `now` (in whole buckets, the current one included).
    pub fn window(&self, now: Time, span: Duration) -> Counts {
        let first = (bucket_of(now) + 1).saturating_sub(buckets_in(span));
        if self.buckets.front().is_some_and(|b| b.n >= first) {
            return self.total;
        }
        let mut c = Counts::default();
        for b in self.buckets.iter().rev() {
            if b.n < first {
                break;
            }
            c.add(b.counts);
        }
        c
    }

    /// The 5-minute buckets that start at or after `from`, oldest first: (start, counts).
    /// Buckets without answers are not listed.
    pub fn buckets_since(&self, from: Time) -> impl Iterator<Item = (Time, Counts)> + '_ {
        let first = bucket_of(from);
        self.buckets
            .iter()
            .filter(move |b| b.n >= first)
            .map(|b| (Time(b.n * BUCKET.as_millis() as u64), b.counts))
    }

    /// Counts over the rolling 24 hours.
    pub fn last_24h(&self, now: Time) -> Counts {
        self.window(now, DAY)
    }

    /// Counts over the rolling 30 days.
    pub fn last_30d(&self, now: Time) -> Counts {
        self.window(now, THIRTY_DAYS)
    }

    /// The worst rolling `span` seen in the kept history, as the campaign saw it: for each
    /// bucket, the `span` ending with it; windows with fewer than `min_live` answers are left
    /// out (the first answers of a day swing the rate). Returns the window's end and counts.
    pub fn worst_window(&self, span: Duration, min_live: u64) -> Option<(Time, Counts)> {
        let width = buckets_in(span).max(1);
        let mut best: Option<(Time, Counts)> = None;
        let mut c = Counts::default();
        let mut head = 0; // oldest bucket still inside the window
        for b in &self.buckets {
            c.add(b.counts);
            while self.buckets[head].n + width <= b.n {
                c.sub(self.buckets[head].counts);
                head += 1;
            }
            let better = match best {
                None => true,
                Some((_, w)) => c.ratio() > w.ratio(),
            };
            if c.live >= min_live.max(1) && better {
                best = Some((Time((b.n + 1) * BUCKET.as_millis() as u64), c));
            }
        }
        best
    }

    fn prune(&mut self, now: Time) {
        let first = (bucket_of(now) + 1).saturating_sub(buckets_in(THIRTY_DAYS));
        while let Some(b) = self.buckets.front() {
            if b.n >= first {
                break;
            }
            self.total.sub(b.counts);
            self.buckets.pop_front();
        }
    }
}

/// Sends a queue back to progressive while a campaign's abandon rate is at its hard cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AbandonGuard {
    /// The rate (abandoned ÷ live) at which predictive and power dialing stop.
    pub hard_cap: f64,
    /// The rate is computed over at least this many live answers, so the first calls of a day
    /// (one abandon in ten answers) do not swing it; abandons are never left out.
    pub min_live: u64,
}

impl Default for AbandonGuard {
    fn default() -> Self {
        AbandonGuard {
            hard_cap: 0.03,
            min_live: 100,
        }
    }
}

impl AbandonGuard {
    /// Whether the campaign is at or over the cap, over 24 h or over 30 days.
    pub fn over_cap(&self, ledger: &AbandonLedger, now: Time) -> bool {
        [ledger.last_24h(now), ledger.last_30d(now)]
            .iter()
            .any(|c| c.abandoned as f64 >= self.hard_cap * c.live.max(self.min_live) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_hours(h: f64) -> Time {
        Time::from_secs_f64(h * 3600.0)
    }

    fn answers(ledger: &mut AbandonLedger, at: Time, live: u64, abandoned: u64) {
        for i in 0..live {
            ledger.record(at, i < abandoned);
        }
    }

    #[test]
    fn rates_over_24_hours_and_30_days() {
        let mut l = AbandonLedger::new();
        answers(&mut l, at_hours(0.0), 100, 10); // day 1: 10 %
        answers(&mut l, at_hours(30.0), 100, 0); // day 2: 0 %
        let now = at_hours(31.0);
        assert_eq!(
            l.last_24h(now),
            Counts {
                live: 100,
                abandoned: 0
            }
        );
        assert_eq!(
            l.last_30d(now),
            Counts {
                live: 200,
                abandoned: 10
            }
        );
        assert!((l.last_30d(now).ratio() - 0.05).abs() < 1e-9);
        // 31 days after day 1 it has left the 30-day window too.
        answers(&mut l, at_hours(31.0 * 24.0), 1, 0);
        assert_eq!(
            l.last_30d(at_hours(31.0 * 24.0)),
            Counts {
                live: 101,
                abandoned: 0
            }
        );
    }

    #[test]
    fn ledger_round_trips_through_serde() {
        let mut l = AbandonLedger::new();
        answers(&mut l, at_hours(1.0), 50, 2);
        answers(&mut l, at_hours(2.0), 10, 1);
        let json = serde_json::to_string(&l).unwrap();
        let back: AbandonLedger = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
        assert_eq!(
            back.last_24h(at_hours(2.0)),
            Counts {
                live: 60,
                abandoned: 3
            }
        );
    }

    #[test]
    fn worst_window_finds_the_bad_hour() {
        let mut l = AbandonLedger::new();
        for h in 0..8 {
            let bad = h == 5;
            answers(
                &mut l,
                at_hours(h as f64 + 0.5),
                100,
                if bad { 9 } else { 1 },
            );
        }
        let (end, c) = l.worst_window(Duration::from_secs(3600), 50).unwrap();
        assert_eq!(
            c,
            Counts {
                live: 100,
                abandoned: 9
            }
        );
        assert!(end > at_hours(5.5) && end <= at_hours(6.5));
        // Rolling 24 h as the campaign saw it: worst just after the bad hour (14 of 600).
        let (end, day) = l.worst_window(DAY, 1).unwrap();
        assert_eq!(
            day,
            Counts {
                live: 600,
                abandoned: 14
            }
        );
        assert!(end > at_hours(5.5) && end <= at_hours(6.5));
    }

    #[test]
    fn guard_trips_at_the_cap_and_clears_below_it() {
        let g = AbandonGuard::default();
        let mut l = AbandonLedger::new();
        let now = at_hours(1.0);
        answers(&mut l, now, 10, 2); // 20 % of 10, but counted over at least 100: 2 %
        assert!(!g.over_cap(&l, now));
        answers(&mut l, now, 90, 1); // 3 of 100
        assert!(g.over_cap(&l, now));
        answers(&mut l, now, 10, 0); // 3 of 110
        assert!(!g.over_cap(&l, now));
    }
}
