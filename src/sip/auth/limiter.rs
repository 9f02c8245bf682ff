//! Back-off for failed authentications, per source address and per account, sans-IO.
//!
//! Each key may fail a few times for free; every further failure blocks it for twice as long
//! as the one before, up to a ceiling. While either key of a request is blocked, the request is
//! refused before any password is checked, so hammering gains a guesser nothing. A key that
//! stays quiet for [`LimiterConfig::forget_after`] starts over.
//!
//! An account's block does not hold the sources that authenticated it before, so a phone keeps
//! registering while strangers guess its password. Memory is bounded: accounts are only tracked
//! for names the caller knows, sources up to [`LimiterConfig::max_sources`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How many failures are free and how the blocks grow.
#[derive(Debug, Clone)]
pub struct LimiterConfig {
    /// Failures one source may make before it is blocked.
    pub source_free: u32,
    /// Failures one account may suffer (from all sources) before it is blocked.
    pub account_free: u32,
    /// The first block; each further failure doubles it.
    pub first_block: Duration,
    /// The longest block.
    pub max_block: Duration,
    /// A key without failures for this long starts over (longer than `max_block`, so waiting
    /// out the blocks never resets them).
    pub forget_after: Duration,
    /// Most source addresses tracked.
    pub max_sources: usize,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            source_free: 5,
            account_free: 10,
            first_block: Duration::from_secs(1),
            max_block: Duration::from_secs(300),
            forget_after: Duration::from_secs(900),
            max_sources: 65_536,
        }
    }
}

/// Failures of one key.
#[derive(Debug, Clone)]
struct Record {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

impl Record {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            last_failure: now,
            blocked_until: None,
        }
    }

    fn blocked_for(&self, now: Instant) -> Option<Duration> {
        self.blocked_until
            .filter(|&until| until > now)
            .map(|until| until - now)
    }

    /// Counts a failure; the block it starts, if any.
    fn fail(&mut self, now: Instant, free: u32, cfg: &LimiterConfig) -> Option<Duration> {
        if now.saturating_duration_since(self.last_failure) >= cfg.forget_after {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure = now;
        let over = self.failures.checked_sub(free)?.checked_sub(1)?;
        let block = cfg
            .first_block
            .saturating_mul(1u32 << over.min(20))
            .min(cfg.max_block);
        self.blocked_until = Some(now + block);
        Some(block)
    }

    fn stale(&self, now: Instant, cfg: &LimiterConfig) -> bool {
        self.blocked_for(now).is_none()
            && now.saturating_duration_since(self.last_failure) >= cfg.forget_after
    }
}

/// Sources that authenticated an account recently, kept per account.
const GOOD_SOURCES: usize = 4;

#[derive(Debug, Clone)]
struct Account {
    record: Record,
    good_sources: Vec<IpAddr>,
}

/// Tracks failed authentications and says which requests to refuse unchecked.
#[derive(Debug)]
pub struct AuthLimiter {
    cfg: LimiterConfig,
    sources: HashMap<IpAddr, Record>,
    accounts: HashMap<String, Account>,
}

impl AuthLimiter {
    /// A limiter with `cfg`.
    pub fn new(cfg: LimiterConfig) -> Self {
        Self {
            cfg,
            sources: HashMap::new(),
            accounts: HashMap::new(),
        }
    }

    /// `Err(wait)` when a request from `source` for `account` must be refused unchecked, with
    /// how long until it may try again.
    pub fn check(
        &self,
        now: Instant,
        source: IpAddr,
        account: Option<&str>,
    ) -> Result<(), Duration> {
        let by_source = self.sources.get(&source).and_then(|r| r.blocked_for(now));
        let by_account = account
            .and_then(|a| self.accounts.get(a))
            .filter(|a| !a.good_sources.contains(&source))
            .and_then(|a| a.record.blocked_for(now));
        match by_source.max(by_account) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication; `account` only when it names a real account (unknown
    /// names would let a guesser grow the table). Returns the longest block it starts.
    pub fn failed(
        &mut self,
        now: Instant,
        source: IpAddr,
        account: Option<&str>,
    ) -> Option<Duration> {
        if !self.sources.contains_key(&source) && self.sources.len() >= self.cfg.max_sources {
            self.make_room(now);
        }
        let cfg = &self.cfg;
        let by_source = self
            .sources
            .entry(source)
            .or_insert_with(|| Record::new(now))
            .fail(now, cfg.source_free, cfg);
        let by_account = account.and_then(|a| {
            self.accounts
                .entry(a.to_string())
                .or_insert_with(|| Account {
                    record: Record::new(now),
                    good_sources: Vec::new(),
                })
                .record
                .fail(now, cfg.account_free, cfg)
        });
        by_source.max(by_account)
    }

    /// Notes that `source` authenticated `account`: the account's block no longer holds it.
    pub fn succeeded(&mut self, source: IpAddr, account: &str) {
        let Some(a) = self.accounts.get_mut(account) else {
            // Accounts are only tracked once they have failures.
            return;
        };
        if !a.good_sources.contains(&source) {
            if a.good_sources.len() >= GOOD_SOURCES {
                a.good_sources.remove(0);
            }
            a.good_sources.push(source);
        }
    }

    /// Source addresses tracked.
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// Drops forgotten sources; if none are, the eighth that failed longest ago (never one
    /// that is blocked while others are not).
    fn make_room(&mut self, now: Instant) {
        let cfg = &self.cfg;
        self.sources.retain(|_, r| !r.stale(now, cfg));
        self.accounts.retain(|_, a| !a.record.stale(now, cfg));
        if self.sources.len() < self.cfg.max_sources {
            return;
        }
        let mut order: Vec<(bool, Instant)> = self
            .sources
            .values()
            .map(|r| (r.blocked_for(now).is_some(), r.last_failure))
            .collect();
        let k = order.len() / 8;
        let (_, cutoff, _) = order.select_nth_unstable(k);
        let cutoff = *cutoff;
        self.sources
            .retain(|_, r| (r.blocked_for(now).is_some(), r.last_failure) > cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn limiter() -> AuthLimiter {
        AuthLimiter::new(LimiterConfig::default())
    }

    #[test]
    fn a_source_is_blocked_after_its_free_failures_with_doubling_blocks() {
        let t0 = Instant::now();
        let mut l = limiter();
        for _ in 0..5 {
            assert_eq!(l.check(t0, A, None), Ok(()));
            assert_eq!(l.failed(t0, A, None), None);
        }
        assert_eq!(l.failed(t0, A, None), Some(Duration::from_secs(1)));
        assert_eq!(l.check(t0, A, None), Err(Duration::from_secs(1)));
        // Another source is not held.
        assert_eq!(l.check(t0, B, None), Ok(()));
        // Waiting out each block buys one guess and a block twice as long.
        let mut now = t0;
        for want in [2, 4, 8, 16, 32, 64, 128, 256, 300, 300] {
            now += l.check(now, A, None).unwrap_err();
            assert_eq!(l.check(now, A, None), Ok(()));
            assert_eq!(l.failed(now, A, None), Some(Duration::from_secs(want)));
        }
    }

    #[test]
    fn an_account_is_blocked_for_strangers_but_not_for_its_phone() {
        let t0 = Instant::now();
        let mut l = limiter();
        l.failed(t0, A, Some("agent1"));
        l.succeeded(A, "agent1");
        // Ten sources guess twice each: no source is blocked, the account is.
        for i in 0..10u8 {
            let s = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, i));
            l.failed(t0, s, Some("agent1"));
        }
        let stranger = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));
        assert!(l.check(t0, stranger, Some("agent1")).is_err());
        assert_eq!(l.check(t0, stranger, Some("agent2")), Ok(()));
        assert_eq!(l.check(t0, A, Some("agent1")), Ok(()));
    }

    #[test]
    fn quiet_keys_start_over() {
        let t0 = Instant::now();
        let mut l = limiter();
        for _ in 0..5 {
            l.failed(t0, A, None);
        }
        let later = t0 + LimiterConfig::default().forget_after;
        assert_eq!(l.failed(later, A, None), None);
    }

    #[test]
    fn the_source_table_stays_bounded_and_keeps_blocked_sources() {
        let t0 = Instant::now();
        let mut l = AuthLimiter::new(LimiterConfig {
            max_sources: 64,
            ..LimiterConfig::default()
        });
        for _ in 0..20 {
            l.failed(t0, A, None);
        }
        for i in 0..10_000u32 {
            let s = IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i) + 1));
            l.failed(t0 + Duration::from_millis(u64::from(i)), s, None);
            assert!(l.tracked_sources() <= 64);
        }
        assert!(l.check(t0 + Duration::from_secs(10), A, None).is_err());
    }
}
