//! Trunk upkeep in the endpoint: OPTIONS keepalives and outbound registrations.

use super::{now, Endpoint};
use crate::sip::auth::{apply, with_credentials, ClientOutcome};
use crate::sip::transaction::{header_param, TransactionKey};
use crate::sip::transport::{Peer, Transport};
use crate::sip::trunk::REGISTER_EXPIRES;
use crate::sip::wire;
use rsip::headers::UntypedHeader;
use std::time::Duration;

impl Endpoint {
    /// Sends an OPTIONS to every trunk whose keepalive is due.
    pub(super) fn send_keepalives(&mut self) {
        let now = now();
        for (i, dest) in self.trunks.due_keepalives(now) {
            let trunk = &self.trunks.get(i).config;
            let transport = Transport::from(trunk.transport);
            let local = self.transports.local_for_transport(dest, transport);
            let text = format!(
                "OPTIONS sip:{hostport} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:dialerd@{local}>;tag={tag}\r\nTo: <sip:{hostport}>\r\n\
                 Call-ID: {call_id}@dialerd\r\nCSeq: 1 OPTIONS\r\nUser-Agent: dialerd/{v}\r\nContent-Length: 0\r\n\r\n",
                hostport = trunk.hostport(),
                t = transport.via_name(),
                branch = self.layer.new_branch(),
                tag = self.layer.new_tag(),
                call_id = self.layer.new_tag(),
                v = env!("CARGO_PKG_VERSION"),
            );
            let sent = match wire::parse(text.as_bytes()) {
                Ok(rsip::SipMessage::Request(req)) => self
                    .layer
                    .send_request(
                        now,
                        req,
                        Peer {
                            addr: dest,
                            transport,
                        },
                    )
                    .map_err(|e| e.to_string()),
                other => Err(format!("keepalive did not build: {other:?}")),
            };
            match sent {
                Ok(key) => {
                    self.keepalives.insert(key, i);
                }
                Err(e) => {
                    tracing::warn!(trunk = %trunk.name, error = %e, "cannot send keepalive");
                    self.keepalive_done(i, false);
                }
            }
        }
    }

    /// A trunk's host resolved again: the address in use changes only when it is no longer
    /// listed, and INVITEs are taken from the new addresses.
    pub(super) fn trunk_resolved(&mut self, update: super::trunk_dns::TrunkTargets) {
        if self.trunks.set_targets(update.index, update.targets, now()) {
            let status = self.trunks.status();
            let t = &status[update.index];
            tracing::warn!(trunk = %t.name, addr = ?t.address, "trunk address changed in dns");
        }
        self.server.policy_mut().trusted = self.trunks.trusted_sources();
        self.publish_trunks();
    }

    pub(super) fn keepalive_done(&mut self, trunk: usize, answered: bool) {
        if self.trunks.keepalive_result(trunk, answered, now()) {
            let status = self.trunks.status();
            let t = &status[trunk];
            tracing::warn!(trunk = %t.name, state = t.state, "trunk state changed");
        }
        self.publish_trunks();
    }

    /// Sends a REGISTER for every trunk whose registration is due (none while draining).
    pub(super) fn send_registrations(&mut self) {
        if self.draining {
            return;
        }
        for i in self.trunks.due_registrations(now()) {
            self.send_register_for(i, REGISTER_EXPIRES);
        }
    }

    /// Removes our bindings from every trunk we are registered with (`Expires: 0`), so the
    /// carrier stops sending calls to a daemon that is going away.
    pub(super) fn send_unregistrations(&mut self) {
        let registered: Vec<usize> = (0..self.trunks.len())
            .filter(|&i| {
                let reg = self.trunks.get(i).registration.as_ref();
                reg.is_some_and(|r| r.until.is_some())
            })
            .collect();
        for i in registered {
            self.send_register_for(i, Duration::ZERO);
        }
    }

    /// One REGISTER to trunk `i` asking for `expires`.
    fn send_register_for(&mut self, i: usize, expires: Duration) {
        let now = now();
        {
            let trunk = self.trunks.get(i);
            let cfg = trunk.config.clone();
            let Some(dest) = trunk.addr else { return };
            let transport = Transport::from(cfg.transport);
            let local = self.transports.local_for_transport(dest, transport);
            let domain = if cfg.from_domain.is_empty() {
                cfg.host.clone()
            } else {
                cfg.from_domain.clone()
            };
            let branch = self.layer.new_branch();
            let tag = self.layer.new_tag();
            let fresh_call_id = self.layer.new_tag();
            let reg = self
                .trunks
                .get_mut(i)
                .registration
                .as_mut()
                .expect("registering trunks have registration state");
            if reg.call_id.is_empty() {
                reg.call_id = format!("{fresh_call_id}@dialerd");
            }
            reg.cseq += 1;
            let text = format!(
                "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@{domain}>;tag={tag}\r\nTo: <sip:{user}@{domain}>\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>\r\n\
                 Expires: {expires}\r\nUser-Agent: dialerd/{v}\r\nContent-Length: 0\r\n\r\n",
                t = transport.via_name(),
                user = cfg.username,
                call_id = reg.call_id,
                cseq = reg.cseq,
                expires = expires.as_secs(),
                v = env!("CARGO_PKG_VERSION"),
            );
            let Ok(rsip::SipMessage::Request(mut req)) = wire::parse(text.as_bytes()) else {
                tracing::warn!(trunk = %cfg.name, "REGISTER did not build");
                self.trunks.registration_result(i, None, now);
                return;
            };
            // Reuse the last nonce (nc + 1) and save the 401 round trip on refreshes.
            let auth = reg.digest.preemptive(&req);
            apply(&mut req, &auth);
            self.send_register(
                i,
                req,
                Peer {
                    addr: dest,
                    transport,
                },
            );
        }
    }

    fn send_register(&mut self, trunk: usize, req: rsip::Request, peer: Peer) {
        match self.layer.send_request(now(), req.clone(), peer) {
            Ok(key) => {
                self.registers.insert(key, (trunk, req, peer));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot send REGISTER");
                self.trunks.registration_result(trunk, None, now());
            }
        }
    }

    /// A final response to a trunk REGISTER.
    pub(super) fn register_response(&mut self, key: TransactionKey, resp: rsip::Response) {
        let now = now();
        let code = resp.status_code.code();
        if code < 200 {
            return;
        }
        let Some((trunk, req, peer)) = self.registers.remove(&key) else {
            return;
        };
        let name = self.trunks.get(trunk).config.name.clone();
        match code {
            200..=299 if self.draining => {
                tracing::info!(trunk = %name, "unregistered from trunk");
                self.trunks.registration_result(trunk, None, now);
            }
            200..=299 => {
                let granted = granted_expires(&resp).unwrap_or(REGISTER_EXPIRES);
                tracing::info!(trunk = %name, expires = granted.as_secs(), "registered to trunk");
                self.trunks.registration_result(trunk, Some(granted), now);
            }
            401 | 407 => {
                let Some(reg) = self.trunks.get_mut(trunk).registration.as_mut() else {
                    return;
                };
                match reg.digest.on_challenge(&resp, &req) {
                    ClientOutcome::Retry(headers) => {
                        reg.cseq += 1;
                        let branch = self.layer.new_branch();
                        let retry = with_credentials(&req, &headers, &branch);
                        self.send_register(trunk, retry, peer);
                    }
                    ClientOutcome::GiveUp(e) => {
                        tracing::warn!(trunk = %name, error = %e, "trunk registration refused");
                        self.trunks.registration_result(trunk, None, now);
                    }
                }
            }
            _ => {
                tracing::warn!(trunk = %name, code, "trunk registration failed");
                self.trunks.registration_result(trunk, None, now);
            }
        }
        self.publish_trunks();
    }

    /// A trunk REGISTER got no answer or could not be sent.
    pub(super) fn register_failed(&mut self, key: &TransactionKey) {
        if let Some((trunk, _, _)) = self.registers.remove(key) {
            tracing::warn!(trunk = %self.trunks.get(trunk).config.name, "trunk registration got no answer");
            self.trunks.registration_result(trunk, None, now());
            self.publish_trunks();
        }
    }
}

/// The lifetime a registrar granted: the smallest `expires` among the Contacts of its 200
/// (ours is the one it kept), else the Expires header.
fn granted_expires(resp: &rsip::Response) -> Option<Duration> {
    let from_contacts = resp
        .headers
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Contact(c) => header_param(c.value(), "expires")?.parse::<u64>().ok(),
            _ => None,
        })
        .min();
    let from_header = resp.headers.iter().find_map(|h| match h {
        rsip::Header::Expires(e) => e.value().trim().parse::<u64>().ok(),
        _ => None,
    });
    from_contacts.or(from_header).map(Duration::from_secs)
}
