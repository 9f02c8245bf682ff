//! Per-source rate limit for requests outside dialogs, sans-IO, after Kamailio's `pike`
//! module: a source that sends more than `requests` in one `interval` is blocked — its
//! requests dropped unanswered, so a forged source draws no reflected traffic — until it has
//! been quiet below the rate for `block`.
//!
//! Sources are IP addresses; IPv6 ones are counted per /64, the block one subscriber gets. The
//! table is bounded: when it holds `max_sources`, idle entries are swept, and if it is still
//! full new sources are refused until room frees up (a flood from forged addresses must not
//! grow it without end).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Limits of the rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PikeConfig {
    /// Requests one source may send per interval; 0 turns the limiter off.
    pub requests: u32,
    /// Length of one counting window.
    pub interval: Duration,
    /// How long a source stays blocked after going over the rate.
    pub block: Duration,
    /// Most sources tracked at once.
    pub max_sources: usize,
}

/// One source's window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source went over the rate and is blocked.
    Blocked,
    /// The table of sources is full of active ones.
    TableFull,
}

/// The rate limiter.
#[derive(Debug)]
pub struct Pike {
    cfg: PikeConfig,
    sources: HashMap<IpAddr, Window>,
    /// Last full sweep, so a full table is swept at most once per interval.
    swept: Option<Instant>,
}

impl Pike {
    /// A limiter with no sources yet.
    pub fn new(cfg: PikeConfig) -> Self {
        Self {
            cfg,
            sources: HashMap::new(),
            swept: None,
        }
    }

    /// Counts one request from `source` at `now`; `Err` when it must be dropped.
    pub fn check(&mut self, now: Instant, source: IpAddr) -> Result<(), Refusal> {
        if self.cfg.requests == 0 {
            return Ok(());
        }
        let key = bucket(source);
        if !self.sources.contains_key(&key) && self.sources.len() >= self.cfg.max_sources {
            self.sweep(now);
            if self.sources.len() >= self.cfg.max_sources {
                return Err(Refusal::TableFull);
            }
        }
        let cfg = self.cfg;
        let w = self.sources.entry(key).or_insert(Window {
            start: now,
            count: 0,
            blocked_until: None,
        });
        if now.saturating_duration_since(w.start) >= cfg.interval {
            w.start = now;
            w.count = 0;
        }
        w.count = w.count.saturating_add(1);
        if w.count > cfg.requests {
            // Still flooding: the block runs on from now, as with pike.
            w.blocked_until = Some(now + cfg.block);
        }
        match w.blocked_until {
            Some(until) if until > now => Err(Refusal::Blocked),
            _ => {
                w.blocked_until = None;
                Ok(())
            }
        }
    }

    /// Sources tracked (for tests and a gauge).
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// True when no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Forgets sources whose window ended and that are not blocked.
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < self.cfg.interval)
        {
            return;
        }
        self.swept = Some(now);
        let interval = self.cfg.interval;
        self.sources.retain(|_, w| {
            w.blocked_until.is_some_and(|u| u > now)
                || now.saturating_duration_since(w.start) < interval
        });
        self.sources.shrink_to(self.cfg.max_sources);
    }
}

/// The key a source is counted under: IPv4 address, or the IPv6 /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PikeConfig {
        PikeConfig {
            requests: 3,
            interval: Duration::from_secs(1),
            block: Duration::from_secs(10),
            max_sources: 4,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_over_the_rate_is_blocked_for_the_block_time() {
        let t0 = Instant::now();
        let mut p = Pike::new(cfg());
        for _ in 0..3 {
            assert_eq!(p.check(t0, ip("192.0.2.1")), Ok(()));
        }
        assert_eq!(p.check(t0, ip("192.0.2.1")), Err(Refusal::Blocked));
        // Another source is unaffected.
        assert_eq!(p.check(t0, ip("192.0.2.2")), Ok(()));
        // A new window does not lift the block…
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(p.check(t1, ip("192.0.2.1")), Err(Refusal::Blocked));
        // …the block time without flooding does.
        let t2 = t0 + Duration::from_secs(11);
        assert_eq!(p.check(t2, ip("192.0.2.1")), Ok(()));
    }

    #[test]
    fn flooding_while_blocked_extends_the_block() {
        let t0 = Instant::now();
        let mut p = Pike::new(cfg());
        let mut t = t0;
        // Ten requests a second for 30 s: over the rate all along.
        while t < t0 + Duration::from_secs(30) {
            let _ = p.check(t, ip("192.0.2.1"));
            t += Duration::from_millis(100);
        }
        assert_eq!(p.check(t, ip("192.0.2.1")), Err(Refusal::Blocked));
        assert_eq!(
            p.check(t + Duration::from_secs(11), ip("192.0.2.1")),
            Ok(())
        );
    }

    #[test]
    fn the_rate_is_per_window() {
        let t0 = Instant::now();
        let mut p = Pike::new(cfg());
        for s in 0..20 {
            let t = t0 + Duration::from_millis(400 * s);
            assert_eq!(p.check(t, ip("192.0.2.1")), Ok(()), "at {s}");
        }
    }

    #[test]
    fn ipv6_sources_count_per_64() {
        let t0 = Instant::now();
        let mut p = Pike::new(cfg());
        for i in 1..=3 {
            assert_eq!(p.check(t0, ip(&format!("2001:db8::{i}"))), Ok(()));
        }
        assert_eq!(
            p.check(t0, ip("2001:db8::ffff:1")),
            Err(Refusal::Blocked),
            "the same /64"
        );
        assert_eq!(p.check(t0, ip("2001:db8:0:1::1")), Ok(()));
    }

    #[test]
    fn the_table_is_bounded_and_idle_sources_make_room() {
        let t0 = Instant::now();
        let mut p = Pike::new(cfg());
        for i in 1..=4 {
            assert_eq!(p.check(t0, ip(&format!("192.0.2.{i}"))), Ok(()));
        }
        assert_eq!(p.check(t0, ip("192.0.2.9")), Err(Refusal::TableFull));
        assert_eq!(p.len(), 4);
        // Known sources still get through.
        assert_eq!(p.check(t0, ip("192.0.2.1")), Ok(()));
        // Once their windows end, idle sources are swept for new ones.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(p.check(t1, ip("192.0.2.9")), Ok(()));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn zero_requests_turns_it_off() {
        let t0 = Instant::now();
        let mut p = Pike::new(PikeConfig {
            requests: 0,
            ..cfg()
        });
        for _ in 0..100 {
            assert_eq!(p.check(t0, ip("192.0.2.1")), Ok(()));
        }
        assert!(p.is_empty());
    }
}
