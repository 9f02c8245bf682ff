//! Admission of requests before the transaction layer keeps any state for them. Floods of
//! requests outside dialogs must neither grow memory nor draw retransmitted answers, so:
//! requests in known dialogs and retransmissions go straight on; every other request from a
//! source that is no trunk is dropped while the inbound queue is backlogged, and counts
//! against its source's rate ([`Pike`]) and is dropped over it; OPTIONS and
//! INVITEs from sources that are no trunk are answered once without a transaction (403, or a
//! 407 challenge for a registered agent's phone), unless they carry credentials of a phone
//! registered from that source; and past
//! `sip.max_server_transactions` the rest get a stateless 503.

use super::{now, Endpoint};
use crate::config::SipConfig;
use crate::sip::dialog::DialogId;
use crate::sip::pike::{Pike, PikeConfig, Refusal};
use crate::sip::server::Outcome;
use crate::sip::transaction::{make_response, tag_of, TransactionKey};
use crate::sip::transport::Peer;
use rsip::Method;

/// Most sources the rate limiter tracks at once (about 3 MB of table).
const MAX_SOURCES: usize = 65_536;

/// The limits admission applies.
pub(super) struct Admission {
    pike: Pike,
    max_server_transactions: usize,
}

impl Admission {
    /// Limits from `[sip]`.
    pub(super) fn new(cfg: &SipConfig) -> Self {
        Self {
            pike: Pike::new(PikeConfig {
                requests: cfg.rate_limit_requests,
                interval: cfg.rate_limit_interval,
                block: cfg.rate_limit_block,
                max_sources: MAX_SOURCES,
            }),
            max_server_transactions: cfg.max_server_transactions,
        }
    }
}

impl Endpoint {
    /// A request from the transports: to its transaction, answered without one, or dropped.
    pub(super) fn admit(&mut self, req: rsip::Request, peer: Peer) {
        let now = now();
        if req.method == Method::Ack || self.in_known_dialog(&req) {
            return self
                .layer
                .handle_message(now, rsip::SipMessage::Request(req), peer);
        }
        let trunk = self.server.is_trusted(peer.addr);
        // Behind a backlog the queue holds the calls' own requests too (a BYE, a re-INVITE):
        // strangers' new requests are dropped unread so the queue drains at parsing speed.
        if !trunk && self.rx.len() > super::BACKLOG_LIMIT {
            self.metrics
                .requests_shed
                .with_label_values(&["backlog"])
                .inc();
            return;
        }
        if !trunk {
            if let Err(why) = self.admission.pike.check(now, peer.addr.ip()) {
                let reason = match why {
                    Refusal::Blocked => "rate_limit",
                    Refusal::TableFull => "sources_full",
                };
                self.metrics
                    .requests_shed
                    .with_label_values(&[reason])
                    .inc();
                return;
            }
        }
        let retransmission =
            TransactionKey::for_server(&req).is_some_and(|key| self.layer.state(&key).is_some());
        if retransmission {
            return self
                .layer
                .handle_message(now, rsip::SipMessage::Request(req), peer);
        }
        let out_of_dialog = tag_of(&req.headers, false).is_none();
        // OPTIONS needs no state (RFC 3261 §11), and an INVITE that is refused or challenged
        // for its source gets one answer: no 100 Trying, no retransmissions to a forged
        // address. Only an agent's phone answering a challenge gets a transaction.
        let stranger_invite = req.method == Method::Invite
            && !trunk
            && !self.server.may_authenticate_invite(&req, peer.addr);
        let stateless = out_of_dialog && (req.method == Method::Options || stranger_invite);
        if stateless {
            return self.answer_statelessly(req, peer, false);
        }
        if self.layer.server_transactions() >= self.admission.max_server_transactions {
            self.metrics
                .requests_shed
                .with_label_values(&["transactions"])
                .inc();
            return self.answer_statelessly(req, peer, true);
        }
        self.layer
            .handle_message(now, rsip::SipMessage::Request(req), peer)
    }

    /// True when `req` carries a To tag naming a dialog we hold.
    fn in_known_dialog(&self, req: &rsip::Request) -> bool {
        DialogId::of_received(req).is_some_and(|id| self.dialogs.get(&id).is_some())
    }

    /// Answers `req` once, keeping no state: the server core's answer, or 503 when `overloaded`.
    fn answer_statelessly(&mut self, mut req: rsip::Request, peer: Peer, overloaded: bool) {
        let Some(dest) = self.layer.stateless_destination(&mut req, peer) else {
            return;
        };
        let tag = self.layer.new_tag();
        let resp = if overloaded {
            let mut r = make_response(&req, 503, Some(&tag));
            let retry = self.server.policy().retry_after_secs.to_string();
            r.headers
                .push(rsip::Header::Other("Retry-After".into(), retry));
            r
        } else {
            match self.server.route(now(), &req, peer.addr, &tag) {
                Some(Outcome::Respond(r)) => r,
                // A stranger's INVITE never routes (credentials go statefully); nothing to answer.
                Some(Outcome::Incoming) | None => return,
            }
        };
        self.layer
            .send_stateless(rsip::SipMessage::Response(resp), dest);
    }
}
