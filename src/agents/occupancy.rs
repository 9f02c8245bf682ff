//! A call task's occupancy over the last hours, in the abandon ledger's 5-minute buckets: the
//! agent time busy with a call (reserved, talking, wrap-up) and logged in, integrated from
//! every change of the task's agent counts. Sans-IO: the caller gives the time.

use crate::dialer::abandon::BUCKET;
use crate::dialer::time::Time;
use std::collections::VecDeque;
use std::time::Duration;

/// How far back buckets are kept.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);

/// One 5-minute bucket.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct OccupancyBucket {
    /// Start of the bucket, epoch milliseconds.
    pub start_ms: u64,
    /// Agent-seconds busy with a call.
    pub busy_seconds: f64,
    /// Agent-seconds logged in.
    pub present_seconds: f64,
}

impl OccupancyBucket {
    /// Busy over logged-in time; `None` when nobody was logged in.
    pub fn occupancy(&self) -> Option<f64> {
        (self.present_seconds > 0.0).then(|| self.busy_seconds / self.present_seconds)
    }
}

/// The buckets of one task, oldest first.
#[derive(Debug, Clone, Default)]
pub struct OccupancyHistory {
    buckets: VecDeque<OccupancyBucket>,
    /// The counts in force since the last change: (since, busy, logged in).
    last: Option<(Time, usize, usize)>,
}

fn bucket_ms() -> u64 {
    BUCKET.as_millis() as u64
}

impl OccupancyHistory {
    /// The task has `busy` agents with a call and `present` logged in from `now` on.
    pub fn observe(&mut self, now: Time, busy: usize, present: usize) {
        self.advance(now);
        self.last = Some((now, busy, present));
    }

    /// The buckets of the last [`KEEP`] up to `now` (the current one partly filled).
    pub fn buckets(&self, now: Time) -> Vec<OccupancyBucket> {
        let mut copy = self.clone();
        copy.advance(now);
        copy.buckets.into()
    }

    /// Adds the time from the last change to `now` at the counts then in force.
    fn advance(&mut self, now: Time) {
        let Some((mut at, busy, present)) = self.last else {
            return;
        };
        while at.0 < now.0 {
            let start = at.0 - at.0 % bucket_ms();
            let end = (start + bucket_ms()).min(now.0);
            let secs = (end - at.0) as f64 / 1000.0;
            if self.buckets.back().is_none_or(|b| b.start_ms != start) {
                self.buckets.push_back(OccupancyBucket {
                    start_ms: start,
                    busy_seconds: 0.0,
                    present_seconds: 0.0,
                });
            }
            let b = self.buckets.back_mut().expect("pushed above");
            b.busy_seconds += secs * busy as f64;
            b.present_seconds += secs * present as f64;
            at = Time(end);
        }
        self.last = Some((at.max(now), busy, present));
        let oldest = now.0.saturating_sub(KEEP.as_millis() as u64);
        while self.buckets.front().is_some_and(|b| b.start_ms < oldest) {
            self.buckets.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: f64) -> Time {
        // A day boundary plus `minutes`, so buckets start on whole 5 minutes.
        Time(1_800_000_000_000 + (minutes * 60_000.0) as u64)
    }

    #[test]
    fn time_is_split_at_bucket_edges_at_the_counts_in_force() {
        let mut h = OccupancyHistory::default();
        assert!(
            h.buckets(at(1.0)).is_empty(),
            "nothing before the first count"
        );
        h.observe(at(1.0), 1, 4); // 4 logged in, 1 busy
        h.observe(at(4.0), 3, 4); // 3 busy from minute 4
        let b = h.buckets(at(7.0));
        assert_eq!(b.len(), 2);
        // Minutes 1-4 at 1/4, 4-5 at 3/4: 180 + 180 busy seconds of 960 logged in.
        assert_eq!(b[0].busy_seconds, 360.0);
        assert_eq!(b[0].present_seconds, 960.0);
        assert_eq!(b[0].occupancy(), Some(0.375));
        // Minutes 5-7 at 3/4.
        assert_eq!((b[1].busy_seconds, b[1].present_seconds), (360.0, 480.0));
        assert_eq!(b[1].start_ms - b[0].start_ms, 300_000);
        // Reading does not move the history on; the next change does.
        h.observe(at(8.0), 0, 0);
        let b = h.buckets(at(20.0));
        assert_eq!(b[1].present_seconds, 720.0);
        assert_eq!(b.last().unwrap().occupancy(), None, "nobody logged in");
    }

    #[test]
    fn a_day_is_kept() {
        let mut h = OccupancyHistory::default();
        h.observe(at(0.0), 1, 1);
        let b = h.buckets(at(26.0 * 60.0));
        assert_eq!(b.len(), 288, "24 h of buckets");
        assert!(b.iter().all(|b| b.occupancy() == Some(1.0)));
    }
}
