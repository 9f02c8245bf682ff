//! Registrar for agent phones (RFC 3261 §10.3), sans-IO: digest-authenticated REGISTER,
//! bindings with expiry, several contacts per address of record, `Expires: 0` and `*`.
//!
//! Password guessing is slowed down three ways: a nonce serves only a few wrong answers, the
//! sources and accounts that keep failing are answered 503 with Retry-After without any
//! password being checked (an [`AuthLimiter`]), and every failure is logged with its source
//! address so a log watcher such as fail2ban can block it at the firewall.
//!
//! The same accounts authenticate INVITEs from agents' phones (407, [`Registrar::authorize_invite`]):
//! only a phone registered from the INVITE's source address is challenged at all; any other
//! source is refused at once, as before any account existed.

mod accounts;

pub use accounts::{AccountDigest, AccountSender, AccountUpdate, StoreAccount};

use crate::sip::auth::{AuthKind, AuthLimiter, DigestServer, LimiterConfig, Verdict};
use crate::sip::transaction::{cseq_of, header_param, make_response};
use accounts::{Accounts, Changed};
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
    /// The address the REGISTER came from: the phone's INVITEs must come from it too.
    source: IpAddr,
    /// The proxies the REGISTER passed (RFC 3327 Path, first hop first): requests to the
    /// contact are routed through them.
    pub path: Vec<String>,
}

/// What to do with an INVITE from a source that is no trunk.
#[derive(Debug)]
pub enum InviteAuth {
    /// Refused (403, or 503 while the source or account is throttled).
    Refuse(rsip::Response),
    /// A registered agent's phone without (fresh) credentials: this 407 challenges it.
    Challenge(rsip::Response),
    /// Authenticated as `user`, who is registered from this source: route the call.
    Authenticated {
        /// The account (also the INVITE's From user).
        user: String,
    },
}

/// Agent accounts and their current bindings.
pub struct Registrar {
    cfg: RegistrarConfig,
    accounts: Accounts,
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
    /// A registrar for the `[[agents]]` `accounts` (user name → password), challenged with
    /// `cfg.algorithms`; store accounts come later through [`update_account`](Self::update_account).
    pub fn new(cfg: RegistrarConfig, accounts: HashMap<String, String>, now: Instant) -> Self {
        let digest = DigestServer::new(cfg.realm.clone(), NONCE_LIFETIME, now)
            .with_algorithms(&cfg.algorithms);
        let accounts = Accounts::from_config(accounts, &cfg.algorithms);
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

    /// Applies a change to the store's accounts. An account removed, renamed or given another
    /// secret loses its bindings and authenticates no more from the next request on.
    pub fn update_account(&mut self, update: AccountUpdate) {
        if let Changed::Revoked(names) = self.accounts.apply(update, &self.cfg.realm) {
            for name in names {
                if self.bindings.remove(&name).is_some() {
                    tracing::info!(user = %name, "SIP login changed or removed; bindings dropped");
                }
            }
            self.summarise();
        }
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
        let account = claimed.as_deref().filter(|u| accounts.contains(u));
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
            accounts.get(u).map(|a| a.secret.clone())
        }) {
            Verdict::Ok { username, .. } => username,
            Verdict::Missing => return self.challenge(now, req, tag, false, AuthKind::Www),
            Verdict::Stale(_) => return self.challenge(now, req, tag, true, AuthKind::Www),
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

        let path = path_of(req);
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
                        source,
                        path: path.clone(),
                    };
                }
                (None, true) => {}
                (None, false) => list.push(Binding {
                    contact: uri,
                    expires_at: now + expires,
                    call_id: call_id.clone(),
                    cseq,
                    source,
                    path: path.clone(),
                }),
            }
        }
        if list.is_empty() {
            self.bindings.remove(&user);
        }
        self.ok(now, req, tag, &user)
    }

    /// A 401 (REGISTER, for the To user) or 407 (INVITE, for the From user) offering the
    /// algorithms of the account named; a name that is no account is offered what a new store
    /// account is (MD5), so that the offer tells nothing about which names exist.
    fn challenge(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        tag: &str,
        stale: bool,
        kind: AuthKind,
    ) -> rsip::Response {
        let header = match kind {
            AuthKind::Www => "To",
            AuthKind::Proxy => "From",
        };
        let algorithms = header_value(req, header)
            .and_then(|v| uri_user(&v))
            .and_then(|u| self.accounts.get(&u).map(|a| a.algorithms.clone()))
            .unwrap_or_else(|| vec![AccountDigest::default().algorithm()]);
        let code = match kind {
            AuthKind::Www => 401,
            AuthKind::Proxy => 407,
        };
        let mut r = make_response(req, code, Some(tag));
        for h in self
            .digest
            .challenge_headers_for(now, stale, kind, &algorithms)
        {
            r.headers.push(h);
        }
        r
    }

    /// True when `req` (an INVITE) carries proxy credentials and its From user is registered
    /// from `source`: only such INVITEs are worth a transaction; the rest are answered
    /// statelessly by [`authorize_invite`](Self::authorize_invite).
    pub fn may_authenticate_invite(&self, req: &rsip::Request, source: IpAddr) -> bool {
        let has_credentials = AuthKind::credentials_in(&req.headers)
            .iter()
            .any(|(k, _)| *k == AuthKind::Proxy);
        has_credentials
            && header_value(req, "From")
                .and_then(|v| uri_user(&v))
                .is_some_and(|u| self.registered_from(&u, source))
    }

    /// True when `user` has a live binding registered from `source`.
    fn registered_from(&self, user: &str, source: IpAddr) -> bool {
        self.lookup(user).iter().any(|b| b.source == source)
    }

    /// Decides on an INVITE from `source`, which is no trunk: an agent's phone registered from
    /// that address is challenged (407) and, with the right credentials for its own From user,
    /// let through; everyone else gets 403 without any password being looked at.
    pub fn authorize_invite(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        source: IpAddr,
        tag: &str,
    ) -> InviteAuth {
        let reply = |code| make_response(req, code, Some(tag));
        let from_user = header_value(req, "From").and_then(|v| uri_user(&v));
        let Some(from_user) = from_user.filter(|u| self.registered_from(u, source)) else {
            tracing::debug!(%source, "INVITE from an address that is no trunk and no registered phone");
            return InviteAuth::Refuse(reply(403));
        };
        // Throttled like its REGISTERs (not counted as one: the metric names REGISTERs).
        if let Err(wait) = self.limiter.check(now, source, Some(&from_user)) {
            let mut r = reply(503);
            r.headers.push(Header::Other(
                "Retry-After".into(),
                wait.as_secs_f64().ceil().max(1.0).to_string(),
            ));
            return InviteAuth::Refuse(r);
        }
        let accounts = &self.accounts;
        let verdict = self.digest.verify_request(now, req, AuthKind::Proxy, |u| {
            accounts.get(u).map(|a| a.secret.clone())
        });
        match verdict {
            Verdict::Ok { username, .. } if username == from_user => {
                self.limiter.succeeded(source, &username);
                InviteAuth::Authenticated { user: username }
            }
            Verdict::Ok { username, .. } => {
                tracing::warn!(source = %source, user = ?username, from = ?from_user, "INVITE authenticated as another user than its From");
                InviteAuth::Refuse(reply(403))
            }
            Verdict::Missing => {
                InviteAuth::Challenge(self.challenge(now, req, tag, false, AuthKind::Proxy))
            }
            Verdict::Stale(_) => {
                InviteAuth::Challenge(self.challenge(now, req, tag, true, AuthKind::Proxy))
            }
            Verdict::Failed(e) => {
                let blocked = self.limiter.failed(now, source, Some(&from_user));
                tracing::warn!(
                    source = %source,
                    user = ?from_user,
                    blocked_secs = blocked.map_or(0, |d| d.as_secs()),
                    error = %e,
                    "INVITE authentication failed"
                );
                InviteAuth::Refuse(reply(403))
            }
        }
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
        // RFC 3327 §5.3: the registrar returns the Path it stored.
        let path = path_of(req);
        if !path.is_empty() {
            r.headers
                .push(Header::Other("Path".into(), path.join(", ")));
        }
        r
    }
}

/// The Path header values of `req` (RFC 3327), one element each, in order.
fn path_of(req: &rsip::Request) -> Vec<String> {
    req.headers
        .iter()
        .filter_map(|h| match h {
            Header::Other(name, value) if name.eq_ignore_ascii_case("path") => Some(value),
            _ => None,
        })
        .flat_map(|v| crate::sip::wire::list_elements(v).unwrap_or_default())
        .map(str::to_string)
        .collect()
}

fn header_value(req: &rsip::Request, name: &str) -> Option<String> {
    req.headers.iter().find_map(|h| match (h, name) {
        (Header::To(v), "To") => Some(v.value().to_string()),
        (Header::CallId(v), "Call-ID") => Some(v.value().to_string()),
        (Header::Expires(v), "Expires") => Some(v.value().to_string()),
        (Header::From(v), "From") => Some(v.value().to_string()),
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
