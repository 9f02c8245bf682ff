//! Limits on `POST /api/v1/login`, so password guessing is slow and a login flood cannot
//! queue up argon2 work: per source address at most `PER_SOURCE` attempts in `WINDOW`, per
//! user name at most `PER_USER` failures in `WINDOW` (counted alike for names that do not
//! exist, so a 429 tells nothing about which do), and at most `MAX_PENDING` logins waiting for
//! the hashing pool at once. Sans-IO: the caller passes `now`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The span the counts below apply to.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Login attempts per source address in `WINDOW`.
pub const PER_SOURCE: usize = 10;
/// Failed logins per user name in `WINDOW`.
pub const PER_USER: usize = 5;
/// Logins waiting for the password hashing pool at once; more are refused at once.
pub const MAX_PENDING: usize = 8;
/// Keys remembered at most (each map); the oldest go first, so memory stays bounded.
const MAX_KEYS: usize = 10_000;

/// Recent events per key, pruned to `WINDOW`.
#[derive(Debug)]
struct Log<K> {
    times: HashMap<K, VecDeque<Instant>>,
}

impl<K> Default for Log<K> {
    fn default() -> Self {
        Self {
            times: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> Log<K> {
    /// How long until `key` is under `max` again; `None` when it is now.
    fn wait(&mut self, key: &K, max: usize, now: Instant) -> Option<Duration> {
        let times = self.times.get_mut(key)?;
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            times.pop_front();
        }
        if times.is_empty() {
            self.times.remove(key);
            return None;
        }
        (times.len() >= max).then(|| WINDOW - now.duration_since(times[times.len() - max]))
    }

    fn record(&mut self, key: K, now: Instant) {
        if self.times.len() >= MAX_KEYS && !self.times.contains_key(&key) {
            self.prune(now);
            if self.times.len() >= MAX_KEYS {
                let oldest = self
                    .times
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.times.remove(&k);
                }
            }
        }
        self.times.entry(key).or_default().push_back(now);
    }

    fn prune(&mut self, now: Instant) {
        self.times
            .retain(|_, t| t.back().is_some_and(|b| now.duration_since(*b) < WINDOW));
    }
}

/// The counts behind the limits.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    sources: Log<IpAddr>,
    failures: Log<String>,
}

impl LoginLimiter {
    /// Admits an attempt from `source` for `user` at `now` (and counts it), or says how long
    /// to wait.
    pub fn admit(&mut self, source: IpAddr, user: &str, now: Instant) -> Result<(), Duration> {
        let user = user.to_string();
        let wait = self
            .sources
            .wait(&source, PER_SOURCE, now)
            .into_iter()
            .chain(self.failures.wait(&user, PER_USER, now))
            .max();
        if let Some(w) = wait {
            return Err(w);
        }
        self.sources.record(source, now);
        Ok(())
    }

    /// Counts a failed attempt for `user` (known or not).
    pub fn failed(&mut self, user: &str, now: Instant) {
        self.failures.record(user.to_string(), now);
    }
}

/// The limiter shared by the login handler, with the count of logins in progress.
#[derive(Debug, Clone, Default)]
pub struct LoginGuard {
    limiter: Arc<Mutex<LoginLimiter>>,
    pending: Arc<AtomicUsize>,
}

/// A login in progress; dropping it frees its place.
pub struct Pending(Arc<AtomicUsize>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl LoginGuard {
    /// Admits an attempt (see `LoginLimiter::admit`), or says how long to wait.
    pub fn admit(&self, source: IpAddr, user: &str) -> Result<Pending, Duration> {
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        if self.pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(Duration::from_secs(1));
        }
        let pending = Pending(self.pending.clone());
        limiter.admit(source, user, Instant::now())?;
        Ok(pending)
    }

    /// Counts a failed attempt for `user`.
    pub fn failed(&self, user: &str) {
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        limiter.failed(user, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_failing_names_wait_until_the_window_frees_them() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..PER_SOURCE {
            l.admit(a, &format!("u{i}"), t0).unwrap();
        }
        assert_eq!(l.admit(a, "x", t0), Err(WINDOW));
        let later = t0 + Duration::from_secs(15);
        assert_eq!(
            l.admit(a, "x", later),
            Err(WINDOW - Duration::from_secs(15))
        );
        l.admit(a, "x", t0 + WINDOW).unwrap();

        for _ in 0..PER_USER {
            l.admit(b, "ann", t0).unwrap();
            l.failed("ann", t0);
        }
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        assert_eq!(
            l.admit(c, "ann", t0),
            Err(WINDOW),
            "another source, same name"
        );
        l.admit(c, "bob", t0).unwrap();
        l.admit(c, "ann", t0 + WINDOW).unwrap();
    }

    #[test]
    fn memory_stays_bounded_under_many_sources() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::default();
        for i in 0..(MAX_KEYS as u32 + 500) {
            let ip = IpAddr::from(i.to_be_bytes());
            l.admit(ip, "x", t0 + Duration::from_millis(i.into()))
                .unwrap();
        }
        assert!(l.sources.times.len() <= MAX_KEYS);
    }
}
