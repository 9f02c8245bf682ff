//! Server transactions: INVITE (§17.2.1 with RFC 6026 Accepted) and non-INVITE (§17.2.2),
//! CANCEL handling (§9.2), merged requests (§8.2.2.2) and the ACK of a 2xx.

use super::key::{self, DialogIds, RequestIds, TopVia};
use super::{
    encode_response, make_response, response_destination, Ctx, Event, Kind, Peer, State, Timer,
    Transaction, TransactionError, TransactionKey, TransactionLayer,
};
use std::time::{Duration, Instant};

impl TransactionLayer {
    /// Sends the TU's response on a server transaction.
    ///
    /// INVITE: provisionals any number of times, then one final; after a 2xx only further 2xx
    /// (the layer already retransmits it). Non-INVITE: provisionals, then one final.
    pub fn send_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        response: rsip::Response,
    ) -> Result<(), TransactionError> {
        let code = response.status_code.code();
        if !(100..700).contains(&code) {
            return Err(TransactionError::InvalidStatus(code));
        }
        let txn = self
            .txns
            .get_mut(key)
            .ok_or_else(|| TransactionError::NotFound(key.clone()))?;
        if !matches!(txn.kind, Kind::InviteServer | Kind::NonInviteServer) {
            return Err(TransactionError::WrongRole(key.clone()));
        }
        respond(&mut self.ctx, txn, key, response, now)?;
        self.reap(key);
        Ok(())
    }

    pub(super) fn handle_request(&mut self, now: Instant, mut request: rsip::Request, peer: Peer) {
        if key::cseq_of(&request.headers).is_none() || key::call_id_of(&request.headers).is_none() {
            self.dropped += 1;
            return;
        }
        key::stamp_top_via(&mut request.headers, peer.addr);
        let (Some(key), Some(via)) = (
            TransactionKey::for_server(&request),
            TopVia::of(&request.headers),
        ) else {
            self.dropped += 1;
            return;
        };
        if request.method == rsip::Method::Ack {
            self.handle_ack(now, key, request, peer);
            return;
        }
        if let Some(txn) = self.txns.get_mut(&key) {
            on_retransmission(&mut self.ctx, txn, &key);
            return;
        }
        let dest = response_destination(&via, peer);
        if request.method == rsip::Method::Cancel {
            self.handle_cancel(now, key, request, dest);
            return;
        }
        let ids = DialogIds::of(&request).map(|ids| RequestIds {
            ids,
            method: key.method().to_string(),
        });
        // A retry of a request this layer refused takes its place in the index.
        let mut retry = false;
        if key::tag_of(&request.headers, false).is_none() {
            if let Some(other) = ids.as_ref().and_then(|ids| self.ids.get(ids)) {
                retry = self.txns.get(other).is_some_and(refused);
                if *other != key && !retry {
                    // §8.2.2.2: the same request reached us by another path.
                    let tag = self.new_tag();
                    let resp = make_response(&request, 482, Some(&tag));
                    self.ctx.send(dest, encode_response(&resp), None);
                    return;
                }
            }
        }
        let invite = key.is_invite();
        let mut txn = new_server(&self.ctx, invite, dest);
        if let Some(ids) = ids {
            if retry {
                self.ids.insert(ids.clone(), key.clone());
            } else {
                self.ids.entry(ids.clone()).or_insert_with(|| key.clone());
            }
            txn.ids = Some(ids);
        }
        if invite {
            // 100 Trying at once: it stops the caller's Timer A without waiting on the TU.
            let trying = make_response(&request, 100, None);
            let bytes = encode_response(&trying);
            self.ctx.send(dest, bytes.clone(), Some(&key));
            txn.last_response = Some((100, bytes));
        }
        self.txns.insert(key.clone(), txn);
        self.servers += 1;
        self.ctx
            .events
            .push_back(Event::Request { key, request, peer });
    }

    fn handle_ack(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: rsip::Request,
        peer: Peer,
    ) {
        if let Some(txn) = self.txns.get_mut(&key) {
            if txn.kind == Kind::InviteServer {
                match txn.state {
                    State::Completed => {
                        self.ctx.disarm(txn, Timer::G);
                        self.ctx.disarm(txn, Timer::H);
                        txn.state = State::Confirmed;
                        let i = if txn.reliable() {
                            Duration::ZERO
                        } else {
                            self.ctx.cfg.t4
                        };
                        self.ctx.linger(txn, &key, Timer::I, now, i);
                        self.reap(&key);
                        return;
                    }
                    State::Confirmed => return,
                    // Some UAs reuse the INVITE's branch for the ACK of a 2xx.
                    State::Accepted => {
                        txn.acked = true;
                        self.ctx.disarm(txn, Timer::G);
                        self.ctx.events.push_back(Event::Ack { request, peer });
                        return;
                    }
                    _ => {
                        self.dropped += 1;
                        return;
                    }
                }
            }
        }
        // The ACK of a 2xx has its own branch: find its INVITE by Call-ID, From tag and CSeq
        // to stop retransmitting the 2xx.
        if let Some(ids) = DialogIds::of(&request) {
            let rid = RequestIds {
                ids,
                method: "INVITE".to_string(),
            };
            if let Some(txn) = self.ids.get(&rid).and_then(|k| self.txns.get_mut(k)) {
                if txn.state == State::Accepted {
                    txn.acked = true;
                    self.ctx.disarm(txn, Timer::G);
                }
            }
        }
        self.ctx.events.push_back(Event::Ack { request, peer });
    }

    /// §9.2: answers the CANCEL itself (200 if the INVITE is known, else 481) in a non-INVITE
    /// server transaction of its own, and tells the TU when the INVITE is still pending.
    fn handle_cancel(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: rsip::Request,
        dest: Peer,
    ) {
        let invite_key = key.with_method("INVITE");
        let (code, tag, pending) = match self.txns.get(&invite_key) {
            Some(inv) if inv.kind == Kind::InviteServer => {
                (200, inv.to_tag.clone(), inv.state == State::Proceeding)
            }
            _ => (481, None, false),
        };
        let tag = tag.unwrap_or_else(|| self.new_tag());
        let resp = make_response(&request, code, Some(&tag));
        let mut txn = new_server(&self.ctx, false, dest);
        // Cannot fail: a fresh non-INVITE server transaction accepts a final response.
        let _ = respond(&mut self.ctx, &mut txn, &key, resp, now);
        self.txns.insert(key.clone(), txn);
        self.servers += 1;
        self.reap(&key);
        if pending {
            self.ctx
                .events
                .push_back(Event::Cancelled { invite: invite_key });
        }
    }
}

fn new_server(ctx: &Ctx, invite: bool, dest: Peer) -> Transaction {
    Transaction {
        kind: if invite {
            Kind::InviteServer
        } else {
            Kind::NonInviteServer
        },
        state: if invite {
            State::Proceeding
        } else {
            State::Trying
        },
        peer: dest,
        request: None,
        request_bytes: Vec::new(),
        last_response: None,
        to_tag: None,
        ack_bytes: None,
        interval: ctx.cfg.t1,
        timers: Vec::new(),
        cancel_pending: false,
        acked: false,
        ids: None,
    }
}

/// A retransmitted request: answer with the last response, if there is one.
fn on_retransmission(ctx: &mut Ctx, txn: &mut Transaction, key: &TransactionKey) {
    let resend = matches!(
        (txn.kind, txn.state),
        (
            Kind::InviteServer,
            State::Proceeding | State::Completed | State::Accepted
        ) | (Kind::NonInviteServer, State::Proceeding | State::Completed)
    );
    if resend {
        if let Some((_, bytes)) = &txn.last_response {
            ctx.resend(txn.peer, bytes.clone(), key);
        }
    }
}

fn respond(
    ctx: &mut Ctx,
    txn: &mut Transaction,
    key: &TransactionKey,
    response: rsip::Response,
    now: Instant,
) -> Result<(), TransactionError> {
    let code = response.status_code.code();
    let allowed = match (txn.kind, txn.state) {
        (Kind::InviteServer, State::Proceeding) => true,
        (Kind::InviteServer, State::Accepted) => (200..300).contains(&code),
        (Kind::NonInviteServer, State::Trying | State::Proceeding) => true,
        _ => false,
    };
    if !allowed {
        return Err(TransactionError::InvalidState {
            key: key.clone(),
            state: txn.state,
        });
    }
    if let Some(tag) = key::tag_of(&response.headers, false) {
        txn.to_tag = Some(tag);
    }
    let bytes = encode_response(&response);
    ctx.send(txn.peer, bytes.clone(), Some(key));
    txn.last_response = Some((code, bytes));
    let t1 = ctx.cfg.t1;
    let t1x64 = ctx.cfg.t1x64();
    match txn.kind {
        Kind::InviteServer if code >= 200 && txn.state == State::Proceeding => {
            txn.state = if code < 300 {
                State::Accepted
            } else {
                State::Completed
            };
            txn.interval = t1;
            if !txn.reliable() {
                ctx.arm(txn, key, Timer::G, now, t1);
            }
            let wait = if code < 300 { Timer::L } else { Timer::H };
            ctx.arm(txn, key, wait, now, t1x64);
        }
        Kind::NonInviteServer if code < 200 => txn.state = State::Proceeding,
        Kind::NonInviteServer => {
            txn.state = State::Completed;
            let j = if txn.reliable() {
                Duration::ZERO
            } else {
                t1x64
            };
            ctx.linger(txn, key, Timer::J, now, j);
        }
        _ => {}
    }
    Ok(())
}

pub(super) fn on_timer(
    ctx: &mut Ctx,
    txn: &mut Transaction,
    key: &TransactionKey,
    timer: Timer,
    now: Instant,
) {
    match (timer, txn.state) {
        (Timer::G, State::Completed) | (Timer::G, State::Accepted) if !txn.acked => {
            if let Some((_, bytes)) = &txn.last_response {
                ctx.resend(txn.peer, bytes.clone(), key);
            }
            txn.interval = (txn.interval * 2).min(ctx.cfg.t2);
            let next = txn.interval;
            ctx.arm(txn, key, Timer::G, now, next);
        }
        (Timer::H, State::Completed) => {
            ctx.events.push_back(Event::AckTimeout { key: key.clone() });
            txn.state = State::Terminated;
        }
        (Timer::L, State::Accepted) => {
            if !txn.acked {
                ctx.events.push_back(Event::AckTimeout { key: key.clone() });
            }
            txn.state = State::Terminated;
        }
        (Timer::I, State::Confirmed) | (Timer::J, State::Completed) => {
            txn.state = State::Terminated;
        }
        _ => {}
    }
}

/// An INVITE server transaction that has sent a final non-2xx response: the request is done
/// with here, so the same request again (a proxy trying this UAS once more after it refused,
/// serial forking, RFC 3261 §16.6) is no merged request (§8.2.2.2) but a new one. A merged
/// request arrives by another path while the first is still being answered, or after a 2xx
/// made a dialog of it.
fn refused(txn: &Transaction) -> bool {
    txn.kind == Kind::InviteServer && matches!(txn.state, State::Completed | State::Confirmed)
}
