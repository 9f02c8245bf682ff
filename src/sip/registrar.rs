//! Registrar for agent phones (RFC 3261 §10.3), sans-IO: digest-authenticated REGISTER,
//! bindings with expiry, several contacts per address of record, `Expires: 0` and `*`.
//!
//! Password guessing is slowed down three ways: a nonce serves only a few wrong answers, the
//! sources and accounts that keep failing are answered 503 with Retry-After without any
//! password being checked (an [`AuthLimiter`]), and every failure is logged with its source
//! address so a log watcher such as fail2ban can block it at the firewall.

use crate::sip::auth::{AuthKind, AuthLimiter, DigestServer, LimiterConfig, Secret, Verdict};
use crate::sip::transaction::{cseq_of, header_param, make_response};
use rsip::headers::untyped::UntypedHeader;
use rsip::Header;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a nonce stays usable.
const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Registrar limits.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Digest realm.
    pub realm: String,
    /// Algorithms offered, preferred first.
    pub algorithms: Vec<crate::sip::auth::Algorithm>,
    /// Shortest registration accepted.
    pub min_expires: Duration,
    /// Longest registration granted.
    pub max_expires: Duration,
}

/// One contact registered for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as registered.
    pub contact: String,
    /// When it lapses.
    pub expires_at: Instant,
    call_id: String,
    cseq: u32,
}

/// Agent accounts and their current bindings.
pub struct Registrar {
    cfg: RegistrarConfig,
    accounts: HashMap<String, String>,
    bindings: HashMap<String, Vec<Binding>>,
    digest: DigestServer,
    limiter: AuthLimiter,
    /// REGISTERs refused unchecked because their source or account failed too often.
    throttled: u64,
    /// Number of bindings and the next lapse, kept current on every change so the driver's
    /// per-message reads cost nothing.
    count: usize,
    next_expiry: Option<Instant>,
}

impl Registrar {
    /// A registrar for `accounts` (user name → password).
    pub fn new(cfg: RegistrarConfig, accounts: HashMap<String, String>, now: Instant) -> Self {
        let digest = DigestServer::new(cfg.realm.clone(), NONCE_LIFETIME, now)
            .with_algorithms(&cfg.algorithms);
        Self {
            cfg,
            accounts,
            bindings: HashMap::new(),
            digest,
            limiter: AuthLimiter::new(LimiterConfig::default()),
            throttled: 0,
            count: 0,
            next_expiry: None,
        }
    }

    /// Replaces the failure back-off (tests use short blocks).
    pub fn with_limiter(mut self, cfg: LimiterConfig) -> Self {
        self.limiter = AuthLimiter::new(cfg);
        self
    }

    /// Failed authentications so far (for `dialerd_sip_auth_failures_total`).
    pub fn auth_failures(&self) -> u64 {
        self.digest.failures()
    }

    /// REGISTERs answered 503 unchecked so far (for `dialerd_sip_register_throttled_total`).
    pub fn throttled(&self) -> u64 {
        self.throttled
    }

    /// Registered contacts across all users.
    pub fn binding_count(&self) -> usize {
        self.count
    }

    /// The live contacts of `user`.
    pub fn lookup(&self, user: &str) -> &[Binding] {
        self.bindings.get(user).map(Vec::as_slice).unwrap_or(&[])
    }

    /// When the next binding lapses.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_expiry
    }

    /// Drops lapsed bindings.
    pub fn handle_timeout(&mut self, now: Instant) {
        for list in self.bindings.values_mut() {
            list.retain(|b| b.expires_at > now);
        }
        self.bindings.retain(|_, list| !list.is_empty());
        self.summarise();
    }

    /// Answers a REGISTER from `source`.
    pub fn handle(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        source: IpAddr,
        tag: &str,
    ) -> rsip::Response {
        let resp = self.register(now, req, source, tag);
        self.summarise();
        resp
    }

    fn summarise(&mut self) {
        self.count = self.bindings.values().map(Vec::len).sum();
        self.next_expiry = self.bindings.values().flatten().map(|b| b.expires_at).min();
    }

    fn register(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        source: IpAddr,
        tag: &str,
    ) -> rsip::Response {
        let reply = |code| make_response(req, code, Some(tag));
        let accounts = &self.accounts;
        // Only real accounts are tracked per account; other names count against the source.
        let claimed = self.digest.claimed_username(req, AuthKind::Www);
        let account = claimed.as_deref().filter(|u| accounts.contains_key(*u));
        if let Err(wait) = self.limiter.check(now, source, account) {
            self.throttled += 1;
            tracing::debug!(%source, user = ?claimed, "REGISTER throttled");
            let mut r = reply(503);
            r.headers.push(Header::Other(
                "Retry-After".into(),
                wait.as_secs_f64().ceil().max(1.0).to_string(),
            ));
            return r;
        }
        let user = match self.digest.verify_request(now, req, AuthKind::Www, |u| {
            accounts.get(u).map(|p| Secret::Password(p.clone()))
        }) {
            Verdict::Ok { username, .. } => username,
            Verdict::Missing => return self.challenge(now, req, tag, false),
            Verdict::Stale(_) => return self.challenge(now, req, tag, true),
            Verdict::Failed(e) => {
                let blocked = self.limiter.failed(now, source, account);
                // Fields in a fixed order, the source first and the user quoted, so a log
                // watcher's pattern cannot be steered by what the sender chose as user name.
                tracing::warn!(
                    source = %source,
                    user = ?claimed.unwrap_or_default(),
                    blocked_secs = blocked.map_or(0, |d| d.as_secs()),
                    error = %e,
                    "REGISTER authentication failed"
                );
                return reply(403);
            }
        };
        self.limiter.succeeded(source, &user);
        // One may only register one's own address of record.
        let aor_user = header_value(req, "To").and_then(|v| uri_user(&v));
        if aor_user.as_deref() != Some(user.as_str()) {
            return reply(403);
        }
        let Some((cseq, _)) = cseq_of(&req.headers) else {
            return reply(400);
        };
        let call_id = header_value(req, "Call-ID").unwrap_or_default();
        let default_expires = header_value(req, "Expires")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let contacts: Vec<String> = req
            .headers
            .iter()
            .filter_map(|h| match h {
                Header::Contact(c) => Some(c.value().trim().to_string()),
                _ => None,
            })
            .collect();

        if contacts.iter().any(|c| c == "*") {
            // §10.3 step 6: `*` only alone and with Expires: 0.
            if contacts.len() != 1 || default_expires != Some(Duration::ZERO) {
                return reply(400);
            }
            self.bindings.remove(&user);
            return self.ok(now, req, tag, &user);
        }

        let mut changes = Vec::new();
        for contact in &contacts {
            let uri = contact_uri(contact);
            let expires = header_param(contact, "expires")
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs)
                .or(default_expires)
                .unwrap_or(self.cfg.max_expires);
            if !expires.is_zero() && expires < self.cfg.min_expires {
                let mut r = reply(423);
                r.headers.push(Header::Other(
                    "Min-Expires".into(),
                    self.cfg.min_expires.as_secs().to_string(),
                ));
                return r;
            }
            changes.push((uri, expires.min(self.cfg.max_expires)));
        }
        let list = self.bindings.entry(user.clone()).or_default();
        for (uri, expires) in changes {
            let existing = list.iter().position(|b| b.contact == uri);
            // §10.3 step 7: an older request of the same Call-ID must not undo a newer one.
            if let Some(i) = existing {
                if list[i].call_id == call_id && list[i].cseq >= cseq {
                    continue;
                }
            }
            match (existing, expires.is_zero()) {
                (Some(i), true) => {
                    list.remove(i);
                }
                (Some(i), false) => {
                    list[i] = Binding {
                        contact: uri,
                        expires_at: now + expires,
                        call_id: call_id.clone(),
                        cseq,
                    };
                }
                (None, true) => {}
                (None, false) => list.push(Binding {
                    contact: uri,
                    expires_at: now + expires,
                    call_id: call_id.clone(),
                    cseq,
                }),
            }
        }
        if list.is_empty() {
            self.bindings.remove(&user);
        }
        self.ok(now, req, tag, &user)
    }

    fn challenge(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        tag: &str,
        stale: bool,
    ) -> rsip::Response {
        let mut r = make_response(req, 401, Some(tag));
        for h in self.digest.challenge_headers(now, stale, AuthKind::Www) {
            r.headers.push(h);
        }
        r
    }

    /// 200 listing every current binding of `user` with its remaining time (§10.3 step 8).
    fn ok(&self, now: Instant, req: &rsip::Request, tag: &str, user: &str) -> rsip::Response {
        let mut r = make_response(req, 200, Some(tag));
        for b in self.lookup(user) {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            r.headers
                .push(Header::Contact(rsip::headers::Contact::new(format!(
                    "<{}>;expires={left}",
                    b.contact
                ))));
        }
        r
    }
}

fn header_value(req: &rsip::Request, name: &str) -> Option<String> {
    req.headers.iter().find_map(|h| match (h, name) {
        (Header::To(v), "To") => Some(v.value().to_string()),
        (Header::CallId(v), "Call-ID") => Some(v.value().to_string()),
        (Header::Expires(v), "Expires") => Some(v.value().to_string()),
        _ => None,
    })
}

/// The URI of a Contact value: inside `<>` when present, else up to the first `;`.
fn contact_uri(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].trim().to_string(),
        _ => value.split(';').next().unwrap_or("").trim().to_string(),
    }
}

/// The user part of a name-addr or addr-spec (`"Bob" <sip:bob@host>;tag=1` → `bob`).
fn uri_user(value: &str) -> Option<String> {
    let uri = contact_uri(value);
    let rest = uri.split_once(':')?.1;
    let (user, _) = rest.split_once('@')?;
    Some(user.split(';').next().unwrap_or(user).to_string())
}

#[cfg(test)]
mod tests;
