//! Trunk health and admission, sans-IO: OPTIONS keepalive bookkeeping (up/down), a token bucket
//! for new calls per second, concurrent-call counts, and the choice of trunk for a new call.

use crate::config::TrunkConfig;
use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Unanswered keepalives in a row that mark a trunk down.
const DOWN_AFTER: u32 = 2;
/// Registration lifetime asked for; the registrar may grant less.
pub const REGISTER_EXPIRES: Duration = Duration::from_secs(3600);
/// First retry after a failed registration; doubles up to [`REGISTER_BACKOFF_MAX`].
const REGISTER_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait between registration attempts.
const REGISTER_BACKOFF_MAX: Duration = Duration::from_secs(600);

/// Registration bookkeeping of a trunk with `register = true`.
#[derive(Debug)]
pub struct Registration {
    /// A REGISTER is in flight.
    pub in_flight: bool,
    /// Registered until then (`None`: not registered).
    pub until: Option<Instant>,
    /// When to send the next REGISTER.
    pub next: Instant,
    /// Failures in a row (for backoff).
    pub failures: u32,
    /// Call-ID kept across refreshes (RFC 3261 §10.2.4).
    pub call_id: String,
    /// Last CSeq used.
    pub cseq: u32,
    /// Digest state for the trunk's credentials.
    pub digest: crate::sip::auth::DigestClient,
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, now: Instant) -> Self {
        // One second's worth may go out at once, but at least one call.
        let burst = rate.max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes a token if one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be there.
    pub fn next_token_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

/// What the API shows of a trunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrunkStatus {
    /// Configured name.
    pub name: String,
    /// `host:port` as configured.
    pub proxy: String,
    /// The resolved address, when resolution worked.
    pub address: Option<SocketAddr>,
    /// `up` or `down`.
    pub state: &'static str,
    /// Registered to the trunk (`register = true` and the last REGISTER succeeded).
    pub registered: bool,
    /// Calls in progress through the trunk.
    pub active_calls: u32,
    /// Most calls at once.
    pub max_calls: u32,
    /// Unanswered keepalives in a row.
    pub failed_keepalives: u32,
}

/// One trunk's live state.
#[derive(Debug)]
pub struct Trunk {
    /// Its configuration.
    pub config: TrunkConfig,
    /// The address in use, one of `targets` (None: the name did not resolve; the trunk is down).
    pub addr: Option<SocketAddr>,
    /// Every address the host resolved to, in RFC 3263 order: on failure the next is tried.
    targets: Vec<SocketAddr>,
    up: bool,
    failures: u32,
    next_ping: Instant,
    ping_in_flight: bool,
    active_calls: u32,
    bucket: TokenBucket,
    /// Registration, for trunks with `register = true`.
    pub registration: Option<Registration>,
}

impl Trunk {
    /// The target after the one in use, wrapping round; `None` with fewer than two.
    fn next_target(&self) -> Option<SocketAddr> {
        if self.targets.len() < 2 {
            return None;
        }
        let at = self
            .addr
            .and_then(|a| self.targets.iter().position(|&t| t == a))
            .unwrap_or(0);
        Some(self.targets[(at + 1) % self.targets.len()])
    }

    /// Uses `addr` from now on: probed at once, and registered with again when registering.
    fn move_to(&mut self, addr: SocketAddr, now: Instant) {
        self.addr = Some(addr);
        self.failures = 0;
        self.next_ping = now;
        if let Some(r) = &mut self.registration {
            if !r.in_flight {
                r.next = now;
            }
            r.until = None;
        }
    }

    /// True when `source` is this trunk: its address and port exactly (UDP source addresses
    /// are easily forged, so the port must match too), or inside an `inbound_from` network.
    fn sends_from(&self, source: SocketAddr) -> bool {
        self.targets.contains(&source)
            || self
                .config
                .inbound_from
                .iter()
                .any(|c| c.0.contains(&source.ip()))
    }
}

/// The sources whose INVITEs are taken as trunk calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedSources {
    /// Trunk addresses: address and port must both match.
    pub addrs: Vec<SocketAddr>,
    /// `inbound_from` networks: any port.
    pub nets: Vec<ipnet::IpNet>,
}

impl TrustedSources {
    /// True when `source` is a trunk's address or inside an `inbound_from` network.
    pub fn contains(&self, source: SocketAddr) -> bool {
        self.addrs.contains(&source) || self.nets.iter().any(|n| n.contains(&source.ip()))
    }
}

/// Why no trunk could take a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrunkError {
    /// No trunk of that name.
    #[error("no trunk named {0}")]
    Unknown(String),
    /// Every candidate is down.
    #[error("no trunk is up")]
    AllDown,
    /// Every candidate that is up is at `max_calls`.
    #[error("every trunk that is up is at max_calls")]
    Full,
    /// Every candidate is over `max_cps`; retry at the instant given.
    #[error("every trunk is at its max_cps")]
    RateLimited(Instant),
}

/// All trunks, in config order.
#[derive(Debug, Default)]
pub struct Trunks {
    trunks: Vec<Trunk>,
}

impl Trunks {
    /// Trunks from config with their resolved addresses (in the order to try them; empty when
    /// the host did not resolve); all start up and are probed at once.
    pub fn new(configs: &[TrunkConfig], targets: Vec<Vec<SocketAddr>>, now: Instant) -> Self {
        let trunks = configs
            .iter()
            .zip(targets)
            .map(|(c, targets)| {
                let addr = targets.first().copied();
                Trunk {
                    config: c.clone(),
                    addr,
                    targets,
                    up: addr.is_some(),
                    failures: 0,
                    next_ping: now,
                    ping_in_flight: false,
                    active_calls: 0,
                    bucket: TokenBucket::new(c.max_cps, now),
                    registration: c.register.then(|| Registration {
                        in_flight: false,
                        until: None,
                        next: now,
                        failures: 0,
                        call_id: String::new(),
                        cseq: 0,
                        digest: {
                            let d = crate::sip::auth::DigestClient::new(
                                c.username.clone(),
                                c.password.expose().to_string(),
                            );
                            if c.realm.is_empty() {
                                d
                            } else {
                                d.with_realm(c.realm.clone())
                            }
                        },
                    }),
                }
            })
            .collect();
        Self { trunks }
    }

    /// Number of trunks.
    pub fn len(&self) -> usize {
        self.trunks.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.trunks.is_empty()
    }

    /// The trunk at `i`.
    pub fn get(&self, i: usize) -> &Trunk {
        &self.trunks[i]
    }

    /// Earliest moment a keepalive or a registration is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let reg = self
            .trunks
            .iter()
            .filter(|t| t.addr.is_some())
            .filter_map(|t| t.registration.as_ref())
            .filter(|r| !r.in_flight)
            .map(|r| r.next)
            .min();
        let ping = self
            .trunks
            .iter()
            .filter(|t| t.addr.is_some() && !t.ping_in_flight && !t.config.keepalive.is_zero())
            .map(|t| t.next_ping)
            .min();
        [reg, ping].into_iter().flatten().min()
    }

    /// Trunks whose registration is due now, marked in flight.
    pub fn due_registrations(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        for (i, t) in self.trunks.iter_mut().enumerate() {
            if t.addr.is_none() {
                continue;
            }
            if let Some(r) = &mut t.registration {
                if !r.in_flight && r.next <= now {
                    r.in_flight = true;
                    due.push(i);
                }
            }
        }
        due
    }

    /// A registration attempt ended: `granted` is the lifetime the registrar gave, or `None`
    /// on failure. Refreshes at half the lifetime; failures back off 5 s, 10 s … 10 min.
    pub fn registration_result(&mut self, i: usize, granted: Option<Duration>, now: Instant) {
        let Some(r) = self.trunks.get_mut(i).and_then(|t| t.registration.as_mut()) else {
            return;
        };
        r.in_flight = false;
        match granted {
            Some(life) if !life.is_zero() => {
                r.failures = 0;
                r.until = Some(now + life);
                r.next = now + life / 2;
            }
            _ => {
                let backoff = REGISTER_BACKOFF
                    .saturating_mul(1 << r.failures.min(10))
                    .min(REGISTER_BACKOFF_MAX);
                r.failures += 1;
                // A failed refresh leaves the binding alive until it lapses.
                r.until = r.until.filter(|&until| until > now);
                r.next = now + backoff;
            }
        }
    }

    /// The trunk at `i`, mutably (its registration state).
    pub fn get_mut(&mut self, i: usize) -> &mut Trunk {
        &mut self.trunks[i]
    }

    /// Trunks whose keepalive is due now, marked in flight; the driver sends an OPTIONS to each.
    pub fn due_keepalives(&mut self, now: Instant) -> Vec<(usize, SocketAddr)> {
        let mut due = Vec::new();
        for (i, t) in self.trunks.iter_mut().enumerate() {
            if let (Some(addr), false, false) =
                (t.addr, t.ping_in_flight, t.config.keepalive.is_zero())
            {
                if t.next_ping <= now {
                    t.ping_in_flight = true;
                    due.push((i, addr));
                }
            }
        }
        due
    }

    /// A keepalive finished: `answered` is true for any response except 503 (a trunk that
    /// answers at all is reachable; 503 means it will not take calls). Returns true when the
    /// trunk's state changed.
    pub fn keepalive_result(&mut self, i: usize, answered: bool, now: Instant) -> bool {
        let Some(t) = self.trunks.get_mut(i) else {
            return false;
        };
        t.ping_in_flight = false;
        t.next_ping = now + t.config.keepalive;
        let was_up = t.up;
        if answered {
            t.failures = 0;
            t.up = true;
        } else {
            t.failures += 1;
            if t.failures >= DOWN_AFTER {
                t.up = false;
                if let Some(next) = t.next_target() {
                    tracing::warn!(trunk = %t.config.name, addr = %next, "trunk target not answering; trying the next one");
                    t.move_to(next, now);
                }
            }
        }
        was_up != t.up
    }

    /// New addresses for trunk `i` from a fresh resolution. The address in use stays when it is
    /// still listed; otherwise the first new one is used and probed at once. An empty list (the
    /// name no longer resolves) keeps the old addresses. Returns true when the address in use
    /// changed.
    pub fn set_targets(&mut self, i: usize, targets: Vec<SocketAddr>, now: Instant) -> bool {
        let Some(t) = self.trunks.get_mut(i) else {
            return false;
        };
        if targets.is_empty() {
            return false;
        }
        let keep = t.addr.filter(|a| targets.contains(a));
        t.targets = targets;
        match keep {
            Some(_) => false,
            None => {
                let first = t.targets[0];
                t.move_to(first, now);
                true
            }
        }
    }

    /// Every address trunk `i` resolved to, in the order they are tried.
    pub fn targets(&self, i: usize) -> &[SocketAddr] {
        self.trunks.get(i).map_or(&[], |t| &t.targets)
    }

    /// Picks a trunk for a new call — the named one, or the least loaded one that is up — and
    /// counts the call on it. Release it with [`Trunks::call_ended`].
    pub fn admit_call(&mut self, name: Option<&str>, now: Instant) -> Result<usize, TrunkError> {
        self.admit(name, now, false)
    }

    /// Like [`Trunks::admit_call`] for a test call: a trunk that is down is tried anyway (that is
    /// what a test call is for), but its limits still hold.
    pub fn admit_test_call(&mut self, name: &str, now: Instant) -> Result<usize, TrunkError> {
        self.admit(Some(name), now, true)
    }

    fn admit(
        &mut self,
        name: Option<&str>,
        now: Instant,
        even_if_down: bool,
    ) -> Result<usize, TrunkError> {
        let candidates: Vec<usize> = match name {
            Some(n) => vec![self
                .trunks
                .iter()
                .position(|t| t.config.name == n)
                .ok_or_else(|| TrunkError::Unknown(n.to_string()))?],
            None => (0..self.trunks.len()).collect(),
        };
        let mut up: Vec<usize> = candidates
            .into_iter()
            .filter(|&i| self.trunks[i].addr.is_some() && (even_if_down || self.trunks[i].up))
            .collect();
        if up.is_empty() {
            return Err(TrunkError::AllDown);
        }
        up.retain(|&i| self.trunks[i].active_calls < self.trunks[i].config.max_calls);
        if up.is_empty() {
            return Err(TrunkError::Full);
        }
        // Least loaded first, by share of capacity in use.
        up.sort_by(|&a, &b| {
            let load = |i: usize| {
                self.trunks[i].active_calls as f64 / self.trunks[i].config.max_calls as f64
            };
            load(a).total_cmp(&load(b))
        });
        let mut retry_at: Option<Instant> = None;
        for i in up {
            let t = &mut self.trunks[i];
            if t.bucket.try_take(now) {
                t.active_calls += 1;
                return Ok(i);
            }
            let at = t.bucket.next_token_at(now);
            retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
        }
        Err(TrunkError::RateLimited(retry_at.unwrap_or(now)))
    }

    /// The config of the trunk `source` belongs to: its resolved address (address and port),
    /// or one of its `inbound_from` networks (any port).
    pub fn by_source(&self, source: SocketAddr) -> Option<&TrunkConfig> {
        self.trunks
            .iter()
            .find(|t| t.sends_from(source))
            .map(|t| &t.config)
    }

    /// The name of the trunk `source` belongs to (see [`Trunks::by_source`]).
    pub fn named_by_source(&self, source: SocketAddr) -> Option<String> {
        self.by_source(source).map(|c| c.name.clone())
    }

    /// Every source INVITEs are taken from: the trunks' addresses and `inbound_from` networks.
    pub fn trusted_sources(&self) -> TrustedSources {
        TrustedSources {
            addrs: self
                .trunks
                .iter()
                .flat_map(|t| t.targets.iter().copied())
                .collect(),
            nets: self
                .trunks
                .iter()
                .flat_map(|t| t.config.inbound_from.iter().map(|c| c.0))
                .collect(),
        }
    }

    /// A call admitted on trunk `i` ended.
    pub fn call_ended(&mut self, i: usize) {
        if let Some(t) = self.trunks.get_mut(i) {
            t.active_calls = t.active_calls.saturating_sub(1);
        }
    }

    /// What the API and metrics show.
    pub fn status(&self) -> Vec<TrunkStatus> {
        self.trunks
            .iter()
            .map(|t| TrunkStatus {
                name: t.config.name.clone(),
                proxy: t.config.hostport(),
                address: t.addr,
                state: if t.up { "up" } else { "down" },
                registered: t.registration.as_ref().is_some_and(|r| r.until.is_some()),
                active_calls: t.active_calls,
                max_calls: t.config.max_calls,
                failed_keepalives: t.failures,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;

/// A trunk's number rules: the called number as the trunk wants it (`strip_plus`, then
/// `dial_prefix`), and the caller ID to send (the call's, else the trunk's `caller_id`, with
/// `strip_plus`); `None` when neither names one.
pub fn number_rules(
    cfg: &TrunkConfig,
    to: &str,
    caller_id: Option<&str>,
) -> (String, Option<String>) {
    let strip = |n: &str| {
        let n = n.trim();
        if cfg.strip_plus {
            n.trim_start_matches('+').to_string()
        } else {
            n.to_string()
        }
    };
    let to = format!("{}{}", cfg.dial_prefix, strip(to));
    let caller = caller_id
        .filter(|c| !c.trim().is_empty())
        .or((!cfg.caller_id.is_empty()).then_some(cfg.caller_id.as_str()))
        .map(strip);
    (to, caller)
}
