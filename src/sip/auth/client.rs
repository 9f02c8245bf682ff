//! The client half: answering a trunk's 401/407 challenges.
//!
//! Loop safety comes from looking at what the challenged request carried: if it already held
//! our answer to a nonce the server issued for that very request chain and the server
//! challenges again without `stale=true`, the credentials are wrong and we give up. A nonce
//! reused pre-emptively (nc > 1) may legitimately have expired at a server that does not set
//! `stale`, so that case earns one fresh retry.

use super::digest::{ha1, response, ResponseInput};
use super::{AuthError, AuthKind, Challenge, Credentials, Qop, RequestParts};
use rsip::Header;
use std::hash::{BuildHasher, Hasher};

/// How many realms' nonces one client remembers; a hostile peer cannot make it grow further.
const MAX_REALMS: usize = 8;

/// A header to add to the request being resent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    /// `Authorization` or `Proxy-Authorization`.
    pub kind: AuthKind,
    /// The header value.
    pub value: String,
}

impl AuthHeader {
    /// Header name.
    pub fn name(&self) -> &'static str {
        self.kind.credentials_name()
    }

    /// As an rsip header.
    pub fn to_header(&self) -> Header {
        self.kind.credentials_header(self.value.clone())
    }
}

/// What to do after a 401/407.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutcome {
    /// Resend the request (new CSeq) with exactly these credentials headers, replacing any
    /// it carried (see [`apply`]).
    Retry(Vec<AuthHeader>),
    /// Do not resend: report the final 401/407 upwards.
    GiveUp(AuthError),
}

/// Replaces every `Authorization`/`Proxy-Authorization` of `req` with `headers`.
pub fn apply(req: &mut rsip::Request, headers: &[AuthHeader]) {
    req.headers
        .retain(|h| !matches!(h, Header::Authorization(_) | Header::ProxyAuthorization(_)));
    for h in headers {
        req.headers.push(h.to_header());
    }
}

/// The nonce we hold for one realm.
#[derive(Debug, Clone)]
struct RealmState {
    kind: AuthKind,
    challenge: Challenge,
    qop: Option<Qop>,
    /// Last nonce count used with this nonce (0 before the first use).
    nc: u32,
    /// The nonce came with `stale=true`: a second stale for its first use means a loop.
    from_stale: bool,
}

/// Digest credentials of one trunk and the nonces it was last given, per realm.
pub struct DigestClient {
    username: String,
    password: String,
    realm: Option<String>,
    states: Vec<RealmState>,
    cnonce: Box<dyn FnMut() -> String + Send>,
}

impl std::fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("DigestClient")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("states", &self.states)
            .finish_non_exhaustive()
    }
}

impl DigestClient {
    /// A client answering any realm with `username`/`password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            realm: None,
            states: Vec::new(),
            cnonce: Box::new(random_cnonce()),
        }
    }

    /// Only answer challenges for `realm` (so the password is not offered to anyone who asks).
    pub fn with_realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Uses `gen` for client nonces (tests pass a fixed sequence).
    pub fn with_cnonce(mut self, gen: impl FnMut() -> String + Send + 'static) -> Self {
        self.cnonce = Box::new(gen);
        self
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Forgets every nonce (e.g. after the trunk's configuration changed).
    pub fn forget(&mut self) {
        self.states.clear();
    }

    /// Answers the challenges of `response` (a 401 or 407) to `request`.
    pub fn on_challenge(
        &mut self,
        response: &rsip::Response,
        request: &rsip::Request,
    ) -> ClientOutcome {
        let challenges = AuthKind::challenges_in(&response.headers);
        let sent = AuthKind::credentials_in(&request.headers);
        let method = request.method.to_string();
        let uri = request.uri.to_string();
        let ch: Vec<(AuthKind, &str)> = challenges.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let st: Vec<(AuthKind, &str)> = sent.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.on_challenge_values(
            &ch,
            &st,
            RequestParts {
                method: &method,
                uri: &uri,
                body: &request.body,
            },
        )
    }

    /// As [`on_challenge`](Self::on_challenge), on raw values: `challenges` from the response,
    /// `sent` the credentials headers the challenged request carried, `req` the request to send.
    pub fn on_challenge_values(
        &mut self,
        challenges: &[(AuthKind, &str)],
        sent: &[(AuthKind, &str)],
        req: RequestParts<'_>,
    ) -> ClientOutcome {
        // The strongest usable challenge per (kind, realm).
        let mut best: Vec<(AuthKind, Challenge, Option<Qop>)> = Vec::new();
        for (kind, value) in challenges {
            for c in Challenge::parse_all(value).into_iter().flatten() {
                if self.realm.as_ref().is_some_and(|r| *r != c.realm) {
                    continue;
                }
                let Ok(qop) = c.pick_qop() else { continue };
                match best
                    .iter_mut()
                    .find(|(k, b, _)| k == kind && b.realm == c.realm)
                {
                    Some(slot) if c.algorithm.strength() > slot.1.algorithm.strength() => {
                        *slot = (*kind, c, qop)
                    }
                    Some(_) => {}
                    None => best.push((*kind, c, qop)),
                }
            }
        }
        if best.is_empty() {
            return ClientOutcome::GiveUp(AuthError::NoUsableChallenge);
        }

        // Decide for every challenged realm before changing any state.
        for (kind, c, _) in &best {
            if let Err(e) = self.check_retry(*kind, c, sent) {
                self.states.retain(|s| s.challenge.realm != c.realm);
                tracing::debug!(realm = %c.realm, error = %e, "digest: giving up");
                return ClientOutcome::GiveUp(e);
            }
        }
        for (kind, c, qop) in best {
            self.states
                .retain(|s| !(s.kind == kind && s.challenge.realm == c.realm));
            if self.states.len() >= MAX_REALMS {
                self.states.remove(0);
            }
            self.states.push(RealmState {
                kind,
                from_stale: c.stale,
                challenge: c,
                qop,
                nc: 0,
            });
        }
        ClientOutcome::Retry(self.headers_for(req))
    }

    /// Whether a fresh challenge for `c.realm` may be answered, given what the request carried.
    fn check_retry(
        &self,
        kind: AuthKind,
        c: &Challenge,
        sent: &[(AuthKind, &str)],
    ) -> Result<(), AuthError> {
        let carried = sent
            .iter()
            .filter(|(k, _)| *k == kind)
            .filter_map(|(_, v)| Credentials::parse(v).ok())
            .find(|cr| cr.realm == c.realm && cr.username == self.username);
        let Some(carried) = carried else {
            return Ok(());
        };
        let state = self
            .states
            .iter()
            .find(|s| s.kind == kind && s.challenge.realm == c.realm);
        // First use of a nonce = a direct answer to a challenge, not a pre-emptive reuse.
        let first_use = match carried.nc {
            Some(nc) => nc <= 1,
            None => match state {
                None => true,
                Some(s) => s.challenge.nonce != carried.nonce || s.nc <= 1,
            },
        };
        if c.stale {
            let carried_from_stale =
                state.is_some_and(|s| s.challenge.nonce == carried.nonce && s.from_stale);
            if carried_from_stale && first_use {
                return Err(AuthError::StaleLoop(c.realm.clone()));
            }
            return Ok(());
        }
        if c.nonce == carried.nonce || first_use {
            return Err(AuthError::Rejected(c.realm.clone()));
        }
        Ok(())
    }

    /// Credentials for the next request, reusing the nonces held (nc + 1); empty when none is
    /// held yet. Saves the challenge round trip on REGISTER refreshes.
    pub fn preemptive(&mut self, request: &rsip::Request) -> Vec<AuthHeader> {
        let method = request.method.to_string();
        let uri = request.uri.to_string();
        self.headers_for(RequestParts {
            method: &method,
            uri: &uri,
            body: &request.body,
        })
    }

    /// As [`preemptive`](Self::preemptive), on raw request parts.
    pub fn preemptive_values(&mut self, req: RequestParts<'_>) -> Vec<AuthHeader> {
        self.headers_for(req)
    }

    fn headers_for(&mut self, req: RequestParts<'_>) -> Vec<AuthHeader> {
        let mut out = Vec::with_capacity(self.states.len());
        for i in 0..self.states.len() {
            let cnonce = (self.cnonce)();
            let s = &mut self.states[i];
            s.nc = s.nc.saturating_add(1);
            let c = &s.challenge;
            let key = ha1(c.algorithm.base(), &self.username, &c.realm, &self.password);
            // Without qop only -sess needs a cnonce; RFC 2069 style sends none.
            let use_cnonce = s.qop.is_some() || c.algorithm.is_sess();
            let resp = response(&ResponseInput {
                algorithm: c.algorithm,
                ha1: &key,
                nonce: &c.nonce,
                cnonce: if use_cnonce { &cnonce } else { "" },
                nc: s.nc,
                qop: s.qop,
                method: req.method,
                uri: req.uri,
                body: req.body,
            });
            let creds = Credentials {
                username: self.username.clone(),
                realm: c.realm.clone(),
                nonce: c.nonce.clone(),
                uri: req.uri.to_string(),
                response: resp,
                algorithm: c.algorithm,
                cnonce: use_cnonce.then_some(cnonce),
                nc: s.qop.map(|_| s.nc),
                qop: s.qop,
                opaque: c.opaque.clone(),
            };
            out.push(AuthHeader {
                kind: s.kind,
                value: creds.to_header_value(),
            });
        }
        out
    }
}

/// Client nonces from std's randomly keyed SipHash: unpredictable enough for a cnonce, whose
/// job is to stop chosen-plaintext tricks by a server, not to be secret.
fn random_cnonce() -> impl FnMut() -> String + Send {
    let key = std::hash::RandomState::new();
    let mut n = 0u64;
    move || {
        n = n.wrapping_add(1);
        let mut a = key.build_hasher();
        a.write_u64(n);
        let mut b = key.build_hasher();
        b.write_u64(!n);
        format!("{:016x}{:016x}", a.finish(), b.finish())
    }
}

/// A request again with credentials, CSeq + 1 and a new branch (RFC 3261 §22.2).
pub fn with_credentials(
    request: &rsip::Request,
    headers: &[AuthHeader],
    branch: &str,
) -> rsip::Request {
    use rsip::headers::UntypedHeader;
    let mut req = request.clone();
    apply(&mut req, headers);
    for h in req.headers.iter_mut() {
        if let rsip::Header::CSeq(c) = h {
            let n: u32 = c
                .value()
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            *h = rsip::Header::CSeq(rsip::headers::CSeq::new(format!(
                "{} {}",
                n + 1,
                request.method
            )));
        }
    }
    crate::sip::transaction::edit_top_via(&mut req.headers, |via| {
        for (name, value) in via.params.iter_mut() {
            if name.eq_ignore_ascii_case("branch") {
                *value = Some(branch.to_string());
            }
        }
        true
    });
    req
}
