//! Call legs in the endpoint: outbound INVITEs through trunks (digest, 422, CANCEL at the ring
//! timeout, forks) and inbound INVITEs handed to the layers above, each reported as
//! [`LegEvent`]s on its own channel.

use super::{now, Endpoint};
use crate::config::MediaEncryption;
use crate::sip::auth::{with_credentials, ClientOutcome, DigestClient};
use crate::sip::dialog::{Body, DialogId, EndReason};
use crate::sip::leg::{self, Dial, Failure, Incoming, Leg, LegCommand, LegEnd, LegEvent, LegId};
use crate::sip::transaction::{make_response, TransactionKey};
use crate::sip::transport::{Peer, Transport};
use crate::sip::trunk::{number_rules, TrunkError};
use rsip::headers::UntypedHeader;
use std::time::Instant;
use tokio::sync::mpsc;

/// One leg the endpoint is keeping.
pub(super) struct LegState {
    /// Where its events go.
    events: mpsc::UnboundedSender<LegEvent>,
    /// The trunk or caller it talks to; in-dialog requests over TCP reuse this connection.
    pub(super) peer: Peer,
    /// The trunk it holds a slot on (outbound legs).
    trunk: Option<usize>,
    /// The confirmed dialog, once answered.
    dialog: Option<DialogId>,
    phase: Phase,
}

enum Phase {
    /// Our INVITE is out.
    Calling(Box<Calling>),
    /// An inbound INVITE waits for the layer above to answer it.
    Offered {
        key: TransactionKey,
        invite: Box<rsip::Request>,
        tag: String,
    },
    /// We sent 2xx; waiting for the ACK. `bye`: the layer above hung up meanwhile; the BYE
    /// goes once the ACK comes or the 2xx times out (RFC 3261 §15), with this end reason.
    Answering { bye: Option<LegEnd> },
    /// Confirmed.
    Up,
}

struct Calling {
    key: TransactionKey,
    digest: Option<DigestClient>,
    ring_deadline: Instant,
    /// CANCEL sent, and why: a 487 then means this failure.
    cancelled: Option<Failure>,
    /// Challenges answered; a third is refused (wrong credentials loop otherwise).
    challenges: u8,
    /// 422 retries; one is enough.
    retried_422: bool,
}

/// INVITE transactions of legs: the leg and, for ours, the INVITE (2xx from forks and
/// retransmitted 2xx need it until the transaction ends).
pub(super) type LegTxns = std::collections::HashMap<TransactionKey, (LegId, Option<rsip::Request>)>;

impl Endpoint {
    pub(super) fn on_leg_command(&mut self, cmd: LegCommand) {
        match cmd {
            LegCommand::Dial { id, dial, events } => self.dial(id, *dial, events),
            LegCommand::Answer { id, sdp } => self.answer(id, sdp),
            LegCommand::Progress { id, code, sdp } => self.progress(id, code, sdp),
            LegCommand::Reject { id, code } => self.reject_leg(id, code),
            LegCommand::HangUp { id } => self.hang_up_leg(id, LegEnd::LocalBye, Failure::Cancelled),
            // A crossing answer is reported, not hung up: the ring timeout's cancel does that.
            LegCommand::Cancel { id } => self.cancel_leg(id, Failure::NoAnswer),
        }
    }

    /// Places an outbound call: picks the trunk, applies its number rules, sends the INVITE.
    fn dial(&mut self, id: LegId, dial: Dial, events: mpsc::UnboundedSender<LegEvent>) {
        let now = now();
        let fail = |failure: Failure, reason: String| {
            let _ = events.send(LegEvent::Failed {
                failure,
                code: None,
                reason,
            });
        };
        if self.draining {
            return fail(Failure::Shutdown, "the daemon is stopping".into());
        }
        if let Some(account) = dial.account.clone() {
            return self.dial_registered(id, &account, dial, events);
        }
        let admitted = match (&dial.trunk, dial.even_if_down) {
            (Some(name), true) => self.trunks.admit_test_call(name, now),
            (name, _) => self.trunks.admit_call(name.as_deref(), now),
        };
        let trunk = match admitted {
            Ok(i) => i,
            Err(e @ TrunkError::RateLimited(_)) => {
                return fail(Failure::RateLimited, e.to_string())
            }
            Err(e) => return fail(Failure::Unavailable, e.to_string()),
        };
        self.publish_trunks();
        let t = self.trunks.get(trunk);
        let cfg = t.config.clone();
        let Some(dest) = t.addr else {
            self.trunks.call_ended(trunk);
            return fail(Failure::Unavailable, "the trunk has no address".into());
        };
        let transport = Transport::from(cfg.transport);
        let domain = if cfg.from_domain.is_empty() {
            &cfg.host
        } else {
            &cfg.from_domain
        };
        let (to, caller_id) = number_rules(&cfg, &dial.to, dial.caller_id.as_deref());
        let from_user = caller_id.as_deref().unwrap_or(if cfg.username.is_empty() {
            "dialerd"
        } else {
            &cfg.username
        });
        let display = dial
            .display_name
            .as_deref()
            .map(|n| format!("\"{}\" ", n.replace(['"', '\\'], "")))
            .unwrap_or_default();
        let invite = self.dialogs.uac_invite(
            transport,
            &format!("sip:{to}@{}", cfg.hostport()),
            &format!("{display}<sip:{from_user}@{domain}>"),
            &format!("<sip:{to}@{domain}>"),
            dial.sdp.map(Body::sdp),
        );
        let mut invite = match invite {
            Ok(r) => r,
            Err(e) => {
                self.trunks.call_ended(trunk);
                return fail(Failure::Rejected, format!("cannot build the INVITE: {e}"));
            }
        };
        if let (true, Some(cid)) = (cfg.send_pai, &caller_id) {
            let pai = format!("{display}<sip:{cid}@{domain}>");
            push_header(&mut invite, "P-Asserted-Identity", pai);
            push_header(&mut invite, "Privacy", "none".into());
        }
        for (name, value) in dial.headers {
            push_header(&mut invite, &name, value);
        }
        let digest = (!cfg.username.is_empty()).then(|| {
            let client = DigestClient::new(cfg.username.clone(), cfg.password.expose().to_string());
            if cfg.realm.is_empty() {
                client
            } else {
                client.with_realm(cfg.realm.clone())
            }
        });
        let ring_deadline = now + dial.ring_timeout;
        let peer = Peer {
            addr: dest,
            transport,
        };
        let Ok(key) = self.send_leg_invite(id, invite, peer) else {
            self.trunks.call_ended(trunk);
            self.publish_trunks();
            return fail(
                Failure::TransportError,
                "the trunk cannot be reached".into(),
            );
        };
        self.ring_deadlines.insert((ring_deadline, id));
        self.legs.insert(
            id,
            LegState {
                events,
                peer,
                trunk: Some(trunk),
                dialog: None,
                phase: Phase::Calling(Box::new(Calling {
                    key,
                    digest,
                    ring_deadline,
                    cancelled: None,
                    challenges: 0,
                    retried_422: false,
                })),
            },
        );
    }

    /// Calls the phone registered for `account` (its latest binding): no trunk, no digest.
    fn dial_registered(
        &mut self,
        id: LegId,
        account: &str,
        dial: Dial,
        events: mpsc::UnboundedSender<LegEvent>,
    ) {
        let fail = |reason: String| {
            let _ = events.send(LegEvent::Failed {
                failure: Failure::Unavailable,
                code: None,
                reason,
            });
        };
        let binding = self
            .server
            .registrar_mut()
            .lookup(account)
            .last()
            .map(|b| (b.contact.clone(), b.path.clone()));
        let Some((contact, path)) = binding else {
            return fail(format!("no phone is registered for {account}"));
        };
        let Some(uri) = crate::sip::wire::parse_uri(&contact) else {
            return fail(format!("the registered contact {contact} is not a SIP URI"));
        };
        let Some(mut peer) = super::uri_peer(&uri) else {
            return fail(format!(
                "the registered contact {contact} names no IP address"
            ));
        };
        peer.transport = transport_named(&contact).unwrap_or(peer.transport);
        // Registered through proxies (Path): the INVITE goes to the first of them, with the
        // path as its Route set, and reaches the contact from the last one.
        if let Some(first) = path.first() {
            let hop = crate::sip::wire::parse_uri(
                first
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or(""),
            );
            let Some(mut hop_peer) = hop.as_ref().and_then(super::uri_peer) else {
                return fail(format!("the registered path {first} names no IP address"));
            };
            hop_peer.transport = transport_named(first).unwrap_or(hop_peer.transport);
            peer = hop_peer;
        }
        let host = uri.host_with_port.to_string();
        let display = dial
            .display_name
            .as_deref()
            .map(|n| format!("\"{}\" ", n.replace(['"', '\\'], "")))
            .unwrap_or_default();
        let invite = self.dialogs.uac_invite(
            peer.transport,
            &contact,
            &format!("{display}<sip:dialerd@{host}>"),
            &format!("<sip:{account}@{host}>"),
            dial.sdp.map(Body::sdp),
        );
        let mut invite = match invite {
            Ok(r) => r,
            Err(e) => return fail(format!("cannot build the INVITE: {e}")),
        };
        for hop in path {
            push_header(&mut invite, "Route", hop);
        }
        for (name, value) in dial.headers {
            push_header(&mut invite, &name, value);
        }
        let Ok(key) = self.send_leg_invite(id, invite, peer) else {
            let _ = events.send(LegEvent::Failed {
                failure: Failure::TransportError,
                code: None,
                reason: "the phone cannot be reached".into(),
            });
            return;
        };
        let ring_deadline = now() + dial.ring_timeout;
        self.ring_deadlines.insert((ring_deadline, id));
        self.legs.insert(
            id,
            LegState {
                events,
                peer,
                trunk: None,
                dialog: None,
                phase: Phase::Calling(Box::new(Calling {
                    key,
                    digest: None,
                    ring_deadline,
                    cancelled: None,
                    challenges: 0,
                    retried_422: false,
                })),
            },
        );
    }

    fn send_leg_invite(
        &mut self,
        id: LegId,
        invite: rsip::Request,
        peer: Peer,
    ) -> Result<TransactionKey, ()> {
        match self.layer.send_request(now(), invite.clone(), peer) {
            Ok(key) => {
                self.leg_txns.insert(key.clone(), (id, Some(invite)));
                Ok(key)
            }
            Err(e) => {
                tracing::debug!(leg = %id, error = %e, "cannot send INVITE");
                Err(())
            }
        }
    }

    /// A response to a leg's INVITE.
    pub(super) fn leg_response(&mut self, key: TransactionKey, resp: rsip::Response) {
        let now = now();
        // Borrowed, not cloned: this runs for every response, retransmitted 2xx included.
        let Some((id, Some(invite))) = self.leg_txns.get(&key) else {
            return;
        };
        let id = *id;
        let code = resp.status_code.code();
        let dialog = self.dialogs.uac_response(now, invite, &resp);
        if (200..300).contains(&code) {
            return self.leg_answered(id, dialog, &resp);
        }
        let (cancelled, current) = match self.legs.get(&id).map(|l| &l.phase) {
            Some(Phase::Calling(c)) => (c.cancelled, c.key == key),
            _ => return,
        };
        if !current {
            return; // a late response to an INVITE we already re-sent with credentials
        }
        if code < 200 {
            if let Some(leg) = self.legs.get(&id) {
                let _ = leg.events.send(LegEvent::Progress {
                    code,
                    sdp: sdp_of(&resp.headers, &resp.body),
                });
            }
            return;
        }
        if cancelled.is_none() && matches!(code, 401 | 407 | 422) {
            // Only a retry needs the INVITE of its own.
            let Some((_, Some(invite))) = self.leg_txns.get(&key).cloned() else {
                return;
            };
            if let Some(retry) = self.leg_retry(id, &invite, &resp) {
                let peer = self.legs[&id].peer;
                let Ok(new_key) = self.send_leg_invite(id, retry, peer) else {
                    return self.end_leg(
                        id,
                        Some(LegEvent::Failed {
                            failure: Failure::TransportError,
                            code: None,
                            reason: "the trunk cannot be reached".into(),
                        }),
                    );
                };
                if let Some(Phase::Calling(c)) = self.legs.get_mut(&id).map(|l| &mut l.phase) {
                    c.key = new_key;
                }
                return;
            }
        }
        let (failure, reason) = match (cancelled, code) {
            (Some(f), 487) => (f, resp.status_code.to_string()),
            (_, 401 | 407) => (
                Failure::AuthFailed,
                self.legs
                    .get(&id)
                    .map(|l| auth_reason(l, &resp))
                    .unwrap_or_default(),
            ),
            _ => (Failure::Rejected, resp.status_code.to_string()),
        };
        self.end_leg(
            id,
            Some(LegEvent::Failed {
                failure,
                code: Some(code),
                reason,
            }),
        );
    }

    /// The INVITE again after a digest challenge or a 422, when one is due.
    fn leg_retry(
        &mut self,
        id: LegId,
        invite: &rsip::Request,
        resp: &rsip::Response,
    ) -> Option<rsip::Request> {
        let branch = self.layer.new_branch();
        let leg = self.legs.get_mut(&id)?;
        let Phase::Calling(calling) = &mut leg.phase else {
            return None;
        };
        let code = resp.status_code.code();
        match code {
            401 | 407 if calling.challenges < 2 => {
                let ClientOutcome::Retry(headers) =
                    calling.digest.as_mut()?.on_challenge(resp, invite)
                else {
                    return None;
                };
                calling.challenges += 1;
                let _ = leg.events.send(LegEvent::Challenged { code });
                Some(with_credentials(invite, &headers, &branch))
            }
            422 if !calling.retried_422 => {
                calling.retried_422 = true;
                self.dialogs.uac_retry_422(invite, resp)
            }
            _ => None,
        }
    }

    /// A 2xx to a leg's INVITE (first, retransmitted, or from another fork): ACK it, and
    /// either confirm the leg or hang up what nobody wants.
    fn leg_answered(&mut self, id: LegId, dialog: Option<DialogId>, resp: &rsip::Response) {
        let Some(dialog) = dialog else { return };
        let fallback = self.legs.get(&id).map(|l| l.peer);
        let Some(fallback) = fallback.or_else(|| self.dialog_peer_guess(&dialog)) else {
            return;
        };
        let peer = self.dialog_peer(&dialog, fallback);
        if let Ok(ack) = self.dialogs.build_ack(&dialog) {
            self.layer
                .send_stateless(rsip::SipMessage::Request(ack), peer);
        }
        let Some(leg) = self.legs.get_mut(&id) else {
            // The leg ended before this 2xx: nobody wants the call.
            return self.send_in_dialog(&dialog, rsip::Method::Bye, peer);
        };
        match (&leg.phase, &leg.dialog) {
            (Phase::Calling(c), _) => {
                let cancelled = c.cancelled;
                let ring_deadline = c.ring_deadline;
                self.ring_deadlines.remove(&(ring_deadline, id));
                leg.dialog = Some(dialog.clone());
                leg.phase = Phase::Up;
                self.leg_of_dialog.insert(dialog.clone(), id);
                if cancelled == Some(Failure::Cancelled) {
                    // We hung up while it rang and the answer crossed our CANCEL.
                    self.send_in_dialog(&dialog, rsip::Method::Bye, peer);
                    self.end_leg(
                        id,
                        Some(LegEvent::Failed {
                            failure: Failure::Cancelled,
                            code: Some(resp.status_code.code()),
                            reason: "answered after we hung up; BYE sent".into(),
                        }),
                    );
                } else {
                    let sdp = sdp_of(&resp.headers, &resp.body);
                    let behind_nat = leg.trunk.is_some_and(|t| self.trunks.get(t).config.nat);
                    let _ = leg.events.send(LegEvent::Answered { sdp, behind_nat });
                }
            }
            (_, Some(d)) if *d != dialog => {
                // A second fork answered: RFC 3261 §13.2.2.4, ACK then BYE.
                self.send_in_dialog(&dialog, rsip::Method::Bye, peer);
            }
            _ => {} // a retransmitted 2xx: the ACK above was all it needed
        }
    }

    /// The leg's INVITE got no final response, or could not be sent.
    pub(super) fn leg_invite_failed(&mut self, key: &TransactionKey, failure: Failure) {
        let Some((id, true)) = self.leg_txns.get(key).map(|(id, inv)| (*id, inv.is_some())) else {
            return;
        };
        let current = matches!(self.legs.get(&id).map(|l| &l.phase), Some(Phase::Calling(c)) if c.key == *key);
        if current {
            let reason = match failure {
                Failure::Timeout => "no final response (Timer B)",
                _ => "the trunk cannot be reached",
            };
            self.end_leg(
                id,
                Some(LegEvent::Failed {
                    failure,
                    code: None,
                    reason: reason.into(),
                }),
            );
        }
    }

    /// CANCELs legs that rang past their ring timeout.
    pub(super) fn cancel_unanswered(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.ring_deadlines.first() {
            if at > now {
                break;
            }
            self.ring_deadlines.pop_first();
            self.cancel_leg(id, Failure::NoAnswer);
        }
    }

    fn cancel_leg(&mut self, id: LegId, why: Failure) {
        let Some(Phase::Calling(c)) = self.legs.get_mut(&id).map(|l| &mut l.phase) else {
            return;
        };
        if c.cancelled.is_some() {
            return;
        }
        c.cancelled = Some(why);
        let key = c.key.clone();
        if let Err(e) = self.layer.cancel(now(), &key) {
            // No provisional yet: §9.1 forbids CANCEL before one; Timer B or the answer ends it.
            tracing::debug!(leg = %id, error = %e, "cannot cancel yet");
        }
    }

    /// A new INVITE that passed the server's checks: offer it to the layer above.
    pub(super) fn offer_incoming(
        &mut self,
        key: TransactionKey,
        invite: rsip::Request,
        peer: Peer,
        tag: String,
    ) {
        let Some(incoming) = self.incoming.clone() else {
            return self.respond(&key, make_response(&invite, 404, Some(&tag)));
        };
        let id = leg::next_id(&self.handle);
        let (tx, rx) = mpsc::unbounded_channel();
        // rsip types none of these, so only `Other` headers are read (no per-header strings).
        let header = |names: &[&str]| -> Vec<(String, String)> {
            invite
                .headers
                .iter()
                .filter_map(|h| match h {
                    rsip::Header::Other(n, v)
                        if names.iter().any(|w| w.eq_ignore_ascii_case(n.trim())) =>
                    {
                        Some((n.trim().to_string(), v.trim().to_string()))
                    }
                    _ => None,
                })
                .collect()
        };
        let from = invite
            .headers
            .iter()
            .find_map(|h| match h {
                rsip::Header::From(f) => Some(f.value().to_string()),
                _ => None,
            })
            .unwrap_or_default();
        let trunk = self.trunks.by_source(peer.addr);
        let mut routing = header(&[
            "Diversion",
            "History-Info",
            "P-Asserted-Identity",
            "Remote-Party-ID",
            "Privacy",
            leg::LAST_RESORT_HEADER,
        ]);
        if let Some(to) = invite.headers.iter().find_map(|h| match h {
            rsip::Header::To(t) => Some(t.value().to_string()),
            _ => None,
        }) {
            routing.push(("To".into(), to));
        }
        let offer = Incoming {
            leg: Leg { id, events: rx },
            to_user: invite.uri.user().unwrap_or_default().to_string(),
            from_user: crate::sip::wire::parse_uri(
                from.split(['<', '>'])
                    .find(|p| p.contains("sip:"))
                    .unwrap_or(&from),
            )
            .and_then(|u| u.user().map(str::to_string))
            .unwrap_or_default(),
            from,
            headers: routing,
            sdp: invite.body.clone(),
            source: peer.addr,
            local_ip: self.transports.local_for(peer.addr).ip(),
            trunk: trunk.map(|c| c.name.clone()),
            behind_nat: trunk.is_some_and(|c| c.nat),
            from_cluster_proxy: trunk.is_some_and(|c| c.cluster_proxy),
            media_encryption: match peer.transport {
                Transport::Tls => trunk.map_or(MediaEncryption::Optional, |c| c.media_encryption),
                Transport::Udp | Transport::Tcp => MediaEncryption::None,
            },
        };
        if let Err(e) = incoming.try_send(offer) {
            tracing::warn!(error = %e, "call layer not keeping up; refusing a call");
            let mut r = make_response(&invite, 503, Some(&tag));
            r.headers
                .push(rsip::Header::Other("Retry-After".into(), "5".into()));
            return self.respond(&key, r);
        }
        self.leg_txns.insert(key.clone(), (id, None));
        self.legs.insert(
            id,
            LegState {
                events: tx,
                peer,
                trunk: None,
                dialog: None,
                phase: Phase::Offered {
                    key,
                    invite: Box::new(invite),
                    tag,
                },
            },
        );
    }

    fn answer(&mut self, id: LegId, sdp: Vec<u8>) {
        let Some(Phase::Offered { key, invite, tag }) = self.legs.get(&id).map(|l| &l.phase) else {
            return;
        };
        let (key, invite, tag) = (key.clone(), invite.clone(), tag.clone());
        // Checked only now: a call we route to 404 needs no Contact (RFC 2543 callers).
        if let Some(resp) = self.dialogs.uas_check(&invite) {
            let code = resp.status_code.code();
            self.respond(&key, resp);
            return self.end_leg(
                id,
                Some(LegEvent::Failed {
                    failure: Failure::Rejected,
                    code: Some(code),
                    reason: "the INVITE cannot make a dialog".into(),
                }),
            );
        }
        let mut ok = make_response(&invite, 200, Some(tag.as_str()));
        if !sdp.is_empty() {
            ok.headers
                .push(rsip::Header::ContentType(rsip::headers::ContentType::new(
                    "application/sdp",
                )));
            ok.body = sdp;
        }
        let answered = self
            .dialogs
            .uas_respond(now(), &invite, ok)
            .ok()
            .and_then(|ok| DialogId::of_answer(&ok).map(|d| (ok, d)));
        let Some((ok, dialog)) = answered else {
            self.respond(&key, make_response(&invite, 500, Some(tag.as_str())));
            return self.end_leg(id, None);
        };
        if let Some(leg) = self.legs.get_mut(&id) {
            leg.phase = Phase::Answering { bye: None };
            leg.dialog = Some(dialog.clone());
        }
        self.leg_of_dialog.insert(dialog, id);
        self.respond(&key, ok);
    }

    fn progress(&mut self, id: LegId, code: u16, sdp: Option<Vec<u8>>) {
        let Some(Phase::Offered { key, invite, tag }) = self.legs.get(&id).map(|l| &l.phase) else {
            return;
        };
        let (key, invite) = (key.clone(), invite.clone());
        let mut r = make_response(&invite, code.clamp(180, 199), Some(tag.as_str()));
        if let Some(sdp) = sdp {
            r.headers
                .push(rsip::Header::ContentType(rsip::headers::ContentType::new(
                    "application/sdp",
                )));
            r.body = sdp;
        }
        if let Ok(r) = self.dialogs.uas_respond(now(), &invite, r) {
            self.respond(&key, r);
        }
    }

    fn reject_leg(&mut self, id: LegId, code: u16) {
        let Some(Phase::Offered { key, invite, tag }) = self.legs.get(&id).map(|l| &l.phase) else {
            return;
        };
        let (key, invite) = (key.clone(), invite.clone());
        let r = make_response(&invite, code.clamp(300, 699), Some(tag.as_str()));
        let r = self
            .dialogs
            .uas_respond(now(), &invite, r)
            .unwrap_or_else(|e| {
                tracing::debug!(leg = %id, error = %e, "reject outside the dialog layer");
                make_response(&invite, code.clamp(300, 699), Some(tag.as_str()))
            });
        self.respond(&key, r);
        self.end_leg(id, None);
    }

    /// Ends a leg whatever its state: CANCEL, 480, or BYE. `answered` / `ringing` say which
    /// event the layer above gets.
    pub(super) fn hang_up_leg(&mut self, id: LegId, answered: LegEnd, ringing: Failure) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        match &leg.phase {
            Phase::Calling(_) => self.cancel_leg(id, ringing),
            Phase::Offered { key, invite, tag } => {
                let code = if ringing == Failure::Shutdown {
                    503
                } else {
                    480
                };
                let r = make_response(invite.as_ref(), code, Some(tag.as_str()));
                let key = key.clone();
                self.respond(&key, r);
                self.end_leg(
                    id,
                    Some(LegEvent::Failed {
                        failure: ringing,
                        code: Some(code),
                        reason: "refused by us".into(),
                    }),
                );
            }
            // No BYE before our 2xx is ACKed (RFC 3261 §15): it could overtake a lost 2xx and
            // leave the caller with a call it never saw answered. Only the ACK timeout and
            // shutdown do not wait.
            Phase::Answering { .. } if !matches!(answered, LegEnd::NoAck | LegEnd::Shutdown) => {
                if let Some(leg) = self.legs.get_mut(&id) {
                    leg.phase = Phase::Answering {
                        bye: Some(answered),
                    };
                }
            }
            Phase::Answering { .. } | Phase::Up => {
                let peer = leg.peer;
                if let Some(dialog) = leg.dialog.clone() {
                    let peer = self.dialog_peer(&dialog, peer);
                    self.send_in_dialog(&dialog, rsip::Method::Bye, peer);
                }
                self.end_leg(id, Some(LegEvent::Ended { reason: answered }));
            }
        }
    }

    /// The caller CANCELled an inbound leg we had not answered.
    pub(super) fn leg_cancelled_by_caller(&mut self, key: &TransactionKey) {
        let Some(&(id, None)) = self.leg_txns.get(key) else {
            return;
        };
        if let Some(Phase::Offered { invite, tag, .. }) = self.legs.get(&id).map(|l| &l.phase) {
            let r = make_response(invite.as_ref(), 487, Some(tag.as_str()));
            self.respond(key, r);
            self.end_leg(
                id,
                Some(LegEvent::Failed {
                    failure: Failure::CallerCancelled,
                    code: Some(487),
                    reason: "the caller hung up".into(),
                }),
            );
        }
    }

    /// The ACK for our 2xx: the inbound leg is up.
    pub(super) fn leg_acked(&mut self, dialog: &DialogId) {
        let Some(&id) = self.leg_of_dialog.get(dialog) else {
            return;
        };
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if let Phase::Answering { bye } = leg.phase {
            leg.phase = Phase::Up;
            match bye {
                Some(reason) => self.hang_up_leg(id, reason, Failure::Cancelled),
                None => {
                    let behind_nat = self.trunks.by_source(leg.peer.addr).is_some_and(|c| c.nat);
                    let _ = leg.events.send(LegEvent::Answered {
                        sdp: None,
                        behind_nat,
                    });
                }
            }
        }
    }

    /// Our 2xx was never ACKed.
    pub(super) fn leg_ack_timeout(&mut self, key: &TransactionKey) {
        let Some(&(id, None)) = self.leg_txns.get(key) else {
            return;
        };
        if matches!(
            self.legs.get(&id).map(|l| &l.phase),
            Some(Phase::Answering { .. })
        ) {
            tracing::info!(leg = %id, "no ACK for our 200; hanging up");
            self.hang_up_leg(id, LegEnd::NoAck, Failure::Cancelled);
        }
    }

    /// Tells the leg of `dialog` something (re-offer, INFO).
    pub(super) fn leg_notify(&mut self, dialog: &DialogId, event: LegEvent) {
        if let Some(leg) = self
            .leg_of_dialog
            .get(dialog)
            .and_then(|id| self.legs.get(id))
        {
            let _ = leg.events.send(event);
        }
    }

    /// The dialog of a leg ended (BYE either way, failed refresh).
    pub(super) fn leg_dialog_ended(&mut self, dialog: &DialogId, reason: EndReason) {
        let Some(&id) = self.leg_of_dialog.get(dialog) else {
            return;
        };
        let end = match reason {
            EndReason::ByeReceived => LegEnd::RemoteBye,
            EndReason::ByeSent => LegEnd::LocalBye,
            EndReason::RequestFailed(c) => LegEnd::Lost(c),
            EndReason::Rejected(_) | EndReason::ForkLost => return,
        };
        self.end_leg(id, Some(LegEvent::Ended { reason: end }));
    }

    /// The session of a leg expired (RFC 4028): BYE.
    pub(super) fn leg_session_expired(&mut self, dialog: &DialogId) {
        if let Some(&id) = self.leg_of_dialog.get(dialog) {
            tracing::info!(leg = %id, "session expired without refresh; hanging up");
            self.hang_up_leg(id, LegEnd::SessionExpired, Failure::Cancelled);
        }
    }

    /// Every leg, ended because the daemon stops.
    pub(super) fn hang_up_all(&mut self) {
        let ids: Vec<LegId> = self.legs.keys().copied().collect();
        for id in ids {
            self.hang_up_leg(id, LegEnd::Shutdown, Failure::Shutdown);
        }
    }

    /// Forgets a leg (idempotent), releasing its trunk slot; `last` is its final event.
    pub(super) fn end_leg(&mut self, id: LegId, last: Option<LegEvent>) {
        let Some(leg) = self.legs.remove(&id) else {
            return;
        };
        if let Phase::Calling(c) = &leg.phase {
            self.ring_deadlines.remove(&(c.ring_deadline, id));
        }
        if let Some(d) = &leg.dialog {
            self.leg_of_dialog.remove(d);
        }
        if let Some(t) = leg.trunk {
            self.trunks.call_ended(t);
            self.publish_trunks();
        }
        if let Some(event) = last {
            let _ = leg.events.send(event);
        }
    }

    /// The leg a dialog belongs to, by its dialog or its INVITE transaction.
    pub(super) fn leg_peer_of_dialog(&self, dialog: &DialogId) -> Option<Peer> {
        self.leg_of_dialog
            .get(dialog)
            .and_then(|id| self.legs.get(id))
            .map(|l| l.peer)
    }

    fn dialog_peer_guess(&self, dialog: &DialogId) -> Option<Peer> {
        self.dialogs
            .get(dialog)
            .and_then(|d| super::uri_peer(&d.next_hop()))
    }
}

/// Why a challenge ended the call.
fn auth_reason(leg: &LegState, resp: &rsip::Response) -> String {
    match &leg.phase {
        Phase::Calling(c) if c.digest.is_none() => {
            "the trunk asks for credentials; none configured".into()
        }
        Phase::Calling(c) if c.challenges >= 2 => {
            format!("{}: credentials refused", resp.status_code)
        }
        _ => resp.status_code.to_string(),
    }
}

/// The SDP body of a message, when it has one.
fn sdp_of(headers: &rsip::Headers, body: &[u8]) -> Option<Vec<u8>> {
    let is_sdp = headers.iter().any(|h| match h {
        rsip::Header::ContentType(c) => c.value().trim().eq_ignore_ascii_case("application/sdp"),
        _ => false,
    });
    (is_sdp && !body.is_empty()).then(|| body.to_vec())
}

fn push_header(req: &mut rsip::Request, name: &str, value: String) {
    req.headers
        .push(rsip::Header::Other(name.to_string(), value));
}

/// The transport a SIP URI or name-addr asks for: TLS for `sips:` or `transport=tls`, TCP for
/// `transport=tcp`, else `None`.
fn transport_named(uri: &str) -> Option<Transport> {
    let lower = uri.to_ascii_lowercase();
    if lower.contains("transport=tls") || lower.starts_with("sips:") || lower.contains("<sips:") {
        Some(Transport::Tls)
    } else if lower.contains("transport=tcp") {
        Some(Transport::Tcp)
    } else {
        None
    }
}
