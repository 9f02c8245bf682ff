//! The server half: challenging agent phones and checking their answers.
//!
//! A nonce is `hex(issued_ms) hex(counter) hex(mac)`, the MAC an HMAC-SHA-256 under a secret
//! over realm, issue time and counter. So any nonce can be checked for authenticity and age
//! without a table; the table only remembers, per nonce in use, the highest `nc` seen, to refuse
//! replays. Entries leave it when their nonce expires, and when it is full the oldest are
//! dropped and every nonce issued before them is treated as expired: a forgotten nonce must
//! never look unused again.
//!
//! The order of checks matters: the nonce is checked first, and a password is only judged
//! against a nonce that is ours, fresh, tracked, and has not yet served its share of failed
//! attempts. Any other nonce is answered `stale=true` whatever the password, so it tells a
//! guesser nothing: otherwise one made-up or expired nonce would be an unlimited oracle. A
//! phone with the right password retries silently on a fresh nonce, one with a wrong password
//! then meets a verdict.

use super::digest::{ct_eq, ha1, hmac_sha256, response, to_hex, ResponseInput};
use super::{Algorithm, AuthError, AuthKind, Challenge, Credentials, Qop, RequestParts};
use rsip::Header;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// Default bound of the replay table.
const DEFAULT_MAX_TRACKED: usize = 16_384;
/// Wrong answers one nonce may receive before it is spent: a guesser has to come back for a
/// fresh challenge, while a phone with a mistyped password fails once per nonce anyway.
pub const MAX_FAILURES_PER_NONCE: u32 = 3;

/// What the lookup knows about a user.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The plain password.
    Password(String),
    /// `H(username:realm:password)` made with `algorithm`'s base hash, hex.
    Ha1 {
        /// Hash the HA1 was made with.
        algorithm: Algorithm,
        /// The HA1, hex.
        hex: String,
    },
    /// HA1s made with several base hashes, hex: the one for the client's algorithm is used,
    /// and an algorithm without one is refused.
    Ha1s(Vec<(Algorithm, String)>),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret itself.
        match self {
            Secret::Password(_) => f.write_str("Password(..)"),
            Secret::Ha1 { algorithm, .. } => write!(f, "Ha1({algorithm}, ..)"),
            Secret::Ha1s(list) => {
                let names: Vec<&str> = list.iter().map(|(a, _)| a.as_str()).collect();
                write!(f, "Ha1s({}, ..)", names.join(", "))
            }
        }
    }
}

/// Why a right answer still has to be challenged again with `stale=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleReason {
    /// The nonce is older than the nonce lifetime.
    Expired,
    /// Not a nonce we issued (another secret, e.g. before a restart, or tampered).
    Unknown,
    /// `nc` did not increase: a replayed or duplicated request.
    Replayed,
    /// Its replay state was dropped to bound memory.
    Forgotten,
    /// It already received [`MAX_FAILURES_PER_NONCE`] wrong answers.
    Spent,
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated.
    Ok {
        /// Who.
        username: String,
        /// With which algorithm.
        algorithm: Algorithm,
    },
    /// No Digest credentials for our realm: challenge (401/407).
    Missing,
    /// The nonce cannot be used (no password was judged, except for a replay of a right
    /// answer): challenge again with `stale=true`.
    Stale(StaleReason),
    /// Refused (answer 403, or challenge again); counted in [`DigestServer::failures`].
    Failed(AuthError),
}

/// Replay state of one nonce in use.
#[derive(Debug, Clone, Copy)]
struct Seen {
    issued_ms: u64,
    /// Highest `nc` of a right answer (0: none yet).
    max_nc: u32,
    /// Wrong answers received.
    failures: u32,
}

/// Issues nonces for one realm and verifies credentials against them.
pub struct DigestServer {
    realm: String,
    nonce_lifetime: Duration,
    algorithms: Vec<Algorithm>,
    secret: [u8; 32],
    epoch: Instant,
    counter: u64,
    seen: HashMap<String, Seen>,
    max_tracked: usize,
    /// Nonces issued before this (ms since epoch) lost their replay state: refused as stale.
    floor_ms: u64,
    next_sweep_ms: u64,
    failures: u64,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("tracked", &self.seen.len())
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl DigestServer {
    /// A server for `realm` with a random secret (std's OS-seeded `RandomState`); `now` is the
    /// epoch nonce times are counted from.
    pub fn new(realm: impl Into<String>, nonce_lifetime: Duration, now: Instant) -> Self {
        Self::with_secret(realm, nonce_lifetime, random_secret(), now)
    }

    /// As [`new`](Self::new) with a given secret (deterministic tests). Nonce times count from
    /// `now`, so nonces are only meaningful to the instance that issued them.
    pub fn with_secret(
        realm: impl Into<String>,
        nonce_lifetime: Duration,
        secret: [u8; 32],
        now: Instant,
    ) -> Self {
        Self {
            realm: realm.into(),
            nonce_lifetime,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            secret,
            epoch: now,
            counter: 0,
            seen: HashMap::new(),
            max_tracked: DEFAULT_MAX_TRACKED,
            floor_ms: 0,
            next_sweep_ms: 0,
            failures: 0,
        }
    }

    /// Bounds the replay table to `n` nonces (at least 8).
    pub fn with_max_tracked(mut self, n: usize) -> Self {
        self.max_tracked = n.max(8);
        self
    }

    /// Offers these algorithms, in this order (default SHA-256 then MD5, RFC 8760 §2.4).
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        if !algorithms.is_empty() {
            self.algorithms = algorithms.to_vec();
        }
        self
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Requests refused since start (`dialerd_sip_auth_failures_total`).
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Nonces currently tracked for replay protection.
    pub fn tracked_nonces(&self) -> usize {
        self.seen.len()
    }

    /// Challenge values, one per offered algorithm, sharing one fresh nonce.
    pub fn challenge_values(&mut self, now: Instant, stale: bool) -> Vec<String> {
        let algorithms = self.algorithms.clone();
        self.challenge_values_for(now, stale, &algorithms)
    }

    /// Challenge values for `algorithms` (one account's choice) instead of the server's list;
    /// the server's list when `algorithms` is empty.
    pub fn challenge_values_for(
        &mut self,
        now: Instant,
        stale: bool,
        algorithms: &[Algorithm],
    ) -> Vec<String> {
        let nonce = self.issue_nonce(now);
        let algorithms = if algorithms.is_empty() {
            &self.algorithms
        } else {
            algorithms
        };
        algorithms
            .iter()
            .map(|&algorithm| {
                Challenge {
                    realm: self.realm.clone(),
                    nonce: nonce.clone(),
                    opaque: None,
                    algorithm,
                    qop: Some(vec![Qop::Auth]),
                    stale,
                    domain: None,
                }
                .to_header_value()
            })
            .collect()
    }

    /// Challenge headers (`WWW-Authenticate` for a 401, `Proxy-Authenticate` for a 407).
    pub fn challenge_headers(&mut self, now: Instant, stale: bool, kind: AuthKind) -> Vec<Header> {
        self.challenge_values(now, stale)
            .into_iter()
            .map(|v| kind.challenge_header(v))
            .collect()
    }

    /// Challenge headers of `kind` offering `algorithms` (see
    /// [`challenge_values_for`](Self::challenge_values_for)).
    pub fn challenge_headers_for(
        &mut self,
        now: Instant,
        stale: bool,
        kind: AuthKind,
        algorithms: &[Algorithm],
    ) -> Vec<Header> {
        self.challenge_values_for(now, stale, algorithms)
            .into_iter()
            .map(|v| kind.challenge_header(v))
            .collect()
    }

    /// Checks the credentials of `req` for our realm (`kind` picks `Authorization` or
    /// `Proxy-Authorization`).
    pub fn verify_request(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        kind: AuthKind,
        lookup: impl FnOnce(&str) -> Option<Secret>,
    ) -> Verdict {
        let Some(value) = self.credentials_value(req, kind) else {
            return Verdict::Missing;
        };
        let method = req.method.to_string();
        let uri = req.uri.to_string();
        let parts = RequestParts {
            method: &method,
            uri: &uri,
            body: &req.body,
        };
        self.verify(now, parts, &value, lookup)
    }

    /// The user name `req`'s credentials for our realm claim, before anything is checked (to
    /// rate-limit failures per account).
    pub fn claimed_username(&self, req: &rsip::Request, kind: AuthKind) -> Option<String> {
        let value = self.credentials_value(req, kind)?;
        Credentials::parse(&value).ok().map(|c| c.username)
    }

    /// The first credentials value of `kind` in `req` that is Digest for our realm.
    fn credentials_value(&self, req: &rsip::Request, kind: AuthKind) -> Option<String> {
        AuthKind::credentials_in(&req.headers)
            .into_iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, v)| v)
            .find(|v| Credentials::parse(v).is_ok_and(|c| c.realm == self.realm))
    }

    /// Checks one credentials value against `req`.
    ///
    /// The digest-uri is not compared with the Request-URI: proxies may rewrite the latter, the
    /// response already covers the former, and replays are caught by nonce and `nc`.
    pub fn verify(
        &mut self,
        now: Instant,
        req: RequestParts<'_>,
        value: &str,
        lookup: impl FnOnce(&str) -> Option<Secret>,
    ) -> Verdict {
        let now_ms = self.ms(now);
        self.sweep(now_ms);
        let creds = match Credentials::parse(value) {
            Ok(c) => c,
            Err(AuthError::NotDigest(_)) => return Verdict::Missing,
            Err(e) => return self.fail(e),
        };
        if creds.realm != self.realm {
            return Verdict::Missing;
        }

        // Only a usable nonce gets a password judged (see the module docs).
        let Some(issued_ms) = self.nonce_issued(&creds.nonce) else {
            return Verdict::Stale(StaleReason::Unknown);
        };
        let lifetime_ms = self.nonce_lifetime.as_millis() as u64;
        if issued_ms > now_ms || now_ms - issued_ms > lifetime_ms {
            return Verdict::Stale(StaleReason::Expired);
        }
        if issued_ms < self.floor_ms {
            return Verdict::Stale(StaleReason::Forgotten);
        }
        if self
            .seen
            .get(&creds.nonce)
            .is_some_and(|s| s.failures >= MAX_FAILURES_PER_NONCE)
        {
            return Verdict::Stale(StaleReason::Spent);
        }

        let Some(secret) = lookup(&creds.username) else {
            // Hash anyway so an unknown user answers as slowly as a wrong password.
            let _ = ha1(creds.algorithm.base(), &creds.username, &self.realm, "");
            let e = AuthError::UnknownUser(creds.username);
            return self.fail_on_nonce(now_ms, issued_ms, &creds.nonce, e);
        };
        let key = match secret {
            Secret::Password(p) => ha1(creds.algorithm.base(), &creds.username, &self.realm, &p),
            Secret::Ha1 { algorithm, hex } if algorithm.base() == creds.algorithm.base() => {
                hex.to_ascii_lowercase()
            }
            Secret::Ha1s(list) => {
                match list
                    .iter()
                    .find(|(a, _)| a.base() == creds.algorithm.base())
                {
                    Some((_, hex)) => hex.to_ascii_lowercase(),
                    None => {
                        return self.fail(AuthError::NoSecretFor(creds.username, creds.algorithm))
                    }
                }
            }
            Secret::Ha1 { .. } => {
                return self.fail(AuthError::NoSecretFor(creds.username, creds.algorithm))
            }
        };
        let expected = response(&ResponseInput {
            algorithm: creds.algorithm,
            ha1: &key,
            nonce: &creds.nonce,
            cnonce: creds.cnonce.as_deref().unwrap_or(""),
            nc: creds.nc.unwrap_or(0),
            qop: creds.qop,
            method: req.method,
            uri: &creds.uri,
            body: req.body,
        });
        let given = creds.response.trim().to_ascii_lowercase();
        if !ct_eq(expected.as_bytes(), given.as_bytes()) {
            return self.fail_on_nonce(
                now_ms,
                issued_ms,
                &creds.nonce,
                AuthError::WrongResponse(creds.username),
            );
        }

        // The password is right; what remains is whether this `nc` was used before.
        // Without qop there is no nc: such a nonce is good for one request only.
        let nc = creds.nc.filter(|_| creds.qop.is_some()).unwrap_or(1);
        match self.seen.get_mut(&creds.nonce) {
            Some(s) if nc <= s.max_nc => return Verdict::Stale(StaleReason::Replayed),
            Some(s) => s.max_nc = nc,
            None if nc == 0 => return Verdict::Stale(StaleReason::Replayed),
            None => {
                if !self.track(now_ms, issued_ms, &creds.nonce) {
                    return Verdict::Stale(StaleReason::Forgotten);
                }
                if let Some(s) = self.seen.get_mut(&creds.nonce) {
                    s.max_nc = nc;
                }
            }
        }
        Verdict::Ok {
            username: creds.username,
            algorithm: creds.algorithm,
        }
    }

    /// Starts tracking `nonce`, making room if needed; false when making room forgot it.
    fn track(&mut self, now_ms: u64, issued_ms: u64, nonce: &str) -> bool {
        if self.seen.len() >= self.max_tracked {
            self.evict(now_ms);
        }
        if issued_ms < self.floor_ms {
            return false;
        }
        self.seen.insert(
            nonce.to_string(),
            Seen {
                issued_ms,
                max_nc: 0,
                failures: 0,
            },
        );
        true
    }

    /// A wrong answer on a usable nonce: counted against the nonce as well.
    fn fail_on_nonce(&mut self, now_ms: u64, issued_ms: u64, nonce: &str, e: AuthError) -> Verdict {
        if self.seen.contains_key(nonce) || self.track(now_ms, issued_ms, nonce) {
            if let Some(s) = self.seen.get_mut(nonce) {
                s.failures += 1;
            }
        }
        self.fail(e)
    }

    fn fail(&mut self, e: AuthError) -> Verdict {
        self.failures += 1;
        tracing::debug!(realm = %self.realm, error = %e, "digest: authentication failed");
        Verdict::Failed(e)
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn mac(&self, issued_ms: u64, counter: u64) -> String {
        let mut msg = Vec::with_capacity(self.realm.len() + 16);
        msg.extend_from_slice(&issued_ms.to_be_bytes());
        msg.extend_from_slice(&counter.to_be_bytes());
        msg.extend_from_slice(self.realm.as_bytes());
        to_hex(&hmac_sha256(&self.secret, &msg)[..16])
    }

    fn issue_nonce(&mut self, now: Instant) -> String {
        self.counter = self.counter.wrapping_add(1);
        let issued = self.ms(now);
        format!(
            "{issued:016x}{:016x}{}",
            self.counter,
            self.mac(issued, self.counter)
        )
    }

    /// The issue time of a nonce we made; `None` for anything else.
    fn nonce_issued(&self, nonce: &str) -> Option<u64> {
        if nonce.len() != 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let issued = u64::from_str_radix(&nonce[..16], 16).ok()?;
        let counter = u64::from_str_radix(&nonce[16..32], 16).ok()?;
        let mac = self.mac(issued, counter);
        ct_eq(mac.as_bytes(), nonce[32..].to_ascii_lowercase().as_bytes()).then_some(issued)
    }

    /// Drops entries whose nonce has expired (they are refused on age alone), at most every
    /// quarter lifetime so the scan stays amortised.
    fn sweep(&mut self, now_ms: u64) {
        if now_ms < self.next_sweep_ms {
            return;
        }
        let lifetime_ms = self.nonce_lifetime.as_millis() as u64;
        self.seen
            .retain(|_, s| now_ms.saturating_sub(s.issued_ms) <= lifetime_ms);
        self.next_sweep_ms = now_ms + (lifetime_ms / 4).max(1000);
    }

    /// Makes room when the table is full: expired entries first, then the oldest eighth,
    /// raising the floor past them so their nonces cannot be replayed.
    fn evict(&mut self, now_ms: u64) {
        self.next_sweep_ms = 0;
        self.sweep(now_ms);
        if self.seen.len() < self.max_tracked {
            return;
        }
        let mut issued: Vec<u64> = self.seen.values().map(|s| s.issued_ms).collect();
        let k = issued.len() / 8;
        let (_, cutoff, _) = issued.select_nth_unstable(k);
        let cutoff = *cutoff;
        self.seen.retain(|_, s| s.issued_ms > cutoff);
        self.floor_ms = self.floor_ms.max(cutoff + 1);
        tracing::debug!(realm = %self.realm, floor_ms = self.floor_ms, "digest: nonce table full");
    }
}

/// 32 bytes from std's OS-seeded SipHash keys (at most 128 bits of entropy, enough for a MAC
/// key that lives as long as the process).
fn random_secret() -> [u8; 32] {
    let key = std::hash::RandomState::new();
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = key.build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}
