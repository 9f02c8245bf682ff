//! The UAS core for requests outside dialogs (RFC 3261 §8.2), sans-IO: given a request, the
//! answer. Checks run in the RFC's order — method, URI scheme, Require, body type, Accept — so
//! the most fundamental problem is the one reported.

use crate::sip::registrar::{InviteAuth, Registrar};
use crate::sip::transaction::make_response;
use crate::sip::trunk::TrustedSources;
use rsip::headers::untyped::UntypedHeader;
use rsip::{Header, Method};
use std::time::Instant;

/// Methods this endpoint implements, in the Allow header's order.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO";
/// Body types understood.
pub const ACCEPT: &str = "application/sdp";
/// Option tags supported (RFC 3261 §19.2): session timers (RFC 4028).
pub const SUPPORTED: &[&str] = &["timer"];

/// What the server needs to know beyond the request.
#[derive(Debug, Clone)]
pub struct ServerPolicy {
    /// Value of the Server header.
    pub server: String,
    /// New calls are refused with 503 (draining, or over `sip.max_calls`).
    pub refuse_new_calls: bool,
    /// Seconds to put in Retry-After with a 503.
    pub retry_after_secs: u32,
    /// Sources INVITEs are taken from (the trunks); any other source gets 403.
    pub trusted: TrustedSources,
}

/// Where an out-of-dialog request goes.
#[derive(Debug)]
pub enum Outcome {
    /// Answer with this response.
    Respond(rsip::Response),
    /// A new call that passed every check: the layer above routes it (or answers 404).
    Incoming,
}

/// Answers out-of-dialog requests; REGISTER goes to the registrar it holds.
pub struct Server {
    policy: ServerPolicy,
    registrar: Registrar,
}

impl Server {
    /// A server with `policy`.
    pub fn new(policy: ServerPolicy, registrar: Registrar) -> Self {
        Self { policy, registrar }
    }

    /// The registrar (for its timers, metrics and lookups).
    pub fn registrar_mut(&mut self) -> &mut Registrar {
        &mut self.registrar
    }

    /// The policy in force.
    pub fn policy(&self) -> &ServerPolicy {
        &self.policy
    }

    /// Changes the policy (e.g. when draining starts).
    pub fn policy_mut(&mut self) -> &mut ServerPolicy {
        &mut self.policy
    }

    /// True when INVITEs from `source` are taken (a trunk's address and port, or an
    /// `inbound_from` network).
    pub fn is_trusted(&self, source: std::net::SocketAddr) -> bool {
        self.policy.trusted.contains(source)
    }

    /// True when an INVITE from `source`, which is no trunk, carries credentials of a phone
    /// registered from there: it gets a transaction; other such INVITEs are answered statelessly.
    pub fn may_authenticate_invite(
        &self,
        req: &rsip::Request,
        source: std::net::SocketAddr,
    ) -> bool {
        self.registrar.may_authenticate_invite(req, source.ip())
    }

    /// Where `req` from `source` goes: a response, or a route for INVITEs that pass every
    /// check. `None` for ACK (never answered). `to_tag` is used when the request has no To tag.
    pub fn route(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        source: std::net::SocketAddr,
        to_tag: &str,
    ) -> Option<Outcome> {
        if req.method == Method::Ack {
            return None;
        }
        let mut resp = match self.decide(now, req, source, to_tag) {
            Err(route) => return Some(route),
            Ok(resp) => resp,
        };
        resp.headers
            .push(Header::Other("Server".into(), self.policy.server.clone()));
        Some(Outcome::Respond(resp))
    }

    fn decide(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        source: std::net::SocketAddr,
        tag: &str,
    ) -> Result<rsip::Response, Outcome> {
        let reply = |code: u16| make_response(req, code, Some(tag));
        let with = |code: u16, extra: Vec<(&str, String)>| {
            let mut r = reply(code);
            for (name, value) in extra {
                r.headers.push(Header::Other(name.into(), value));
            }
            r
        };

        // §8.2.1: a method we know of but do not implement.
        if !matches!(
            req.method,
            Method::Invite | Method::Bye | Method::Cancel | Method::Options | Method::Register
        ) {
            return Ok(with(405, vec![("Allow", ALLOW.into())]));
        }
        // §8.2.2.1: only sip/sips Request-URIs (tel: and the like belong to a proxy).
        if !matches!(
            req.uri.scheme,
            None | Some(rsip::Scheme::Sip) | Some(rsip::Scheme::Sips)
        ) {
            return Ok(reply(416));
        }
        // §8.2.2.3: every Require option tag must be supported (CANCEL's are the INVITE's).
        if req.method != Method::Cancel {
            let unsupported: Vec<String> = header_values(req, "Require")
                .filter(|t| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
                .collect();
            if !unsupported.is_empty() {
                return Ok(with(420, vec![("Unsupported", unsupported.join(", "))]));
            }
        }
        // §8.2.3: a body we cannot read.
        if !req.body.is_empty() {
            let ctype = content_type(req);
            let understood = ctype
                .as_deref()
                .map(|t| t.eq_ignore_ascii_case(ACCEPT))
                .unwrap_or(false);
            if !understood {
                return Ok(with(415, vec![("Accept", ACCEPT.into())]));
            }
            if let Some(enc) =
                header_values(req, "Content-Encoding").find(|e| !e.eq_ignore_ascii_case("identity"))
            {
                tracing::debug!(encoding = enc, "unsupported content encoding");
                return Ok(with(415, vec![("Accept-Encoding", "identity".into())]));
            }
        }
        // An INVITE whose Accept excludes SDP cannot be answered with a session (§21.4.7).
        if req.method == Method::Invite && has_header(req, "Accept") {
            let accepts_sdp = header_values(req, "Accept").any(|a| {
                let media = a.split(';').next().unwrap_or("").trim();
                media.eq_ignore_ascii_case(ACCEPT)
                    || media == "*/*"
                    || media.eq_ignore_ascii_case("application/*")
            });
            if !accepts_sdp {
                return Ok(with(406, vec![("Accept", ACCEPT.into())]));
            }
        }

        let in_dialog = to_tag(req).is_some();
        Ok(match req.method {
            Method::Options => with(
                200,
                vec![
                    ("Allow", ALLOW.into()),
                    ("Accept", ACCEPT.into()),
                    ("Supported", SUPPORTED.join(", ")),
                ],
            ),
            // No dialogs are held here; the dialog layer takes in-dialog requests before us.
            Method::Bye => reply(481),
            Method::Invite if in_dialog => reply(481),
            // SIP scanners must never place a call through us; agents' phones must
            // authenticate as the account they registered from that address.
            Method::Invite if !self.is_trusted(source) => {
                match self.registrar.authorize_invite(now, req, source.ip(), tag) {
                    InviteAuth::Refuse(r) | InviteAuth::Challenge(r) => r,
                    InviteAuth::Authenticated { .. } if self.policy.refuse_new_calls => with(
                        503,
                        vec![("Retry-After", self.policy.retry_after_secs.to_string())],
                    ),
                    InviteAuth::Authenticated { user } => {
                        tracing::debug!(%source, %user, "INVITE from an agent's phone");
                        return Err(Outcome::Incoming);
                    }
                }
            }
            Method::Invite if self.policy.refuse_new_calls => with(
                503,
                vec![("Retry-After", self.policy.retry_after_secs.to_string())],
            ),
            Method::Invite => return Err(Outcome::Incoming),
            Method::Register => self.registrar.handle(now, req, source.ip(), tag),
            // CANCEL is answered by the transaction layer; one reaching us matched nothing.
            _ => reply(481),
        })
    }
}

fn to_tag(req: &rsip::Request) -> Option<String> {
    crate::sip::transaction::tag_of(&req.headers, false)
}

/// Comma-separated values of every header called `name` (case-insensitive), trimmed.
fn header_values<'a>(req: &'a rsip::Request, name: &'a str) -> impl Iterator<Item = String> + 'a {
    req.headers
        .iter()
        .filter_map(move |h| header_named(h, name))
        .flat_map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
}

fn has_header(req: &rsip::Request, name: &str) -> bool {
    req.headers.iter().any(|h| header_named(h, name).is_some())
}

/// The value of `h` if its name is `name`; rsip types some headers and leaves others `Other`.
fn header_named(h: &Header, name: &str) -> Option<String> {
    let (n, v) = match h {
        Header::Require(v) => ("Require", v.value().to_string()),
        Header::Accept(v) => ("Accept", v.value().to_string()),
        Header::ContentEncoding(v) => ("Content-Encoding", v.value().to_string()),
        Header::ContentType(v) => ("Content-Type", v.value().to_string()),
        Header::Other(n, v) => (n.as_str(), v.clone()),
        _ => return None,
    };
    n.eq_ignore_ascii_case(name).then_some(v)
}

fn content_type(req: &rsip::Request) -> Option<String> {
    req.headers
        .iter()
        .find_map(|h| header_named(h, "Content-Type"))
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
}

#[cfg(test)]
mod tests;
