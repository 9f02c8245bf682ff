//! Client transactions: INVITE (§17.1.1 with RFC 6026 Accepted) and non-INVITE (§17.1.2),
//! plus building the ACK of a non-2xx (§17.1.1.3) and CANCEL (§9.1).

use super::key::{self, TopVia};
use super::{
    encode_request, Ctx, Event, Kind, Peer, State, Timer, Transaction, TransactionError,
    TransactionKey, TransactionLayer, MAGIC_COOKIE,
};
use rsip::headers::untyped::UntypedHeader;
use rsip::Header;
use std::time::Instant;

impl TransactionLayer {
    /// Starts a client transaction for `request` towards `peer` and returns its key.
    ///
    /// The top Via must name our sent-by; a branch with the magic cookie is added if missing.
    /// ACK is refused: the ACK of a non-2xx is sent by the transaction itself and the ACK of a
    /// 2xx is the dialog's, sent with `send_stateless`.
    pub fn send_request(
        &mut self,
        now: Instant,
        mut request: rsip::Request,
        peer: Peer,
    ) -> Result<TransactionKey, TransactionError> {
        if request.method == rsip::Method::Ack {
            return Err(TransactionError::AckNotTransactional);
        }
        if key::cseq_of(&request.headers).is_none() {
            return Err(TransactionError::MissingHeader("CSeq"));
        }
        if key::call_id_of(&request.headers).is_none() {
            return Err(TransactionError::MissingHeader("Call-ID"));
        }
        let via = TopVia::of(&request.headers).ok_or(TransactionError::MissingHeader("Via"))?;
        if !via.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE)) {
            let branch = self.new_branch();
            key::edit_top_via(&mut request.headers, |via| {
                via.params
                    .retain(|(n, _)| !n.eq_ignore_ascii_case("branch"));
                via.params.push(("branch".to_string(), Some(branch)));
                true
            });
        }
        let key = TransactionKey::for_client_request(&request)
            .ok_or(TransactionError::MissingHeader("Via"))?;
        if self.txns.contains_key(&key) {
            return Err(TransactionError::AlreadyExists(key));
        }
        self.start_client(now, key.clone(), request, peer);
        Ok(key)
    }

    /// Cancels a pending INVITE client transaction (§9.1) and returns the CANCEL's key.
    ///
    /// Before any provisional the CANCEL must not be sent; it is remembered and goes out with
    /// the first provisional. If a final response or Timer B comes first, it is never sent and
    /// the TU learns the outcome from the INVITE's own events.
    pub fn cancel(
        &mut self,
        now: Instant,
        invite: &TransactionKey,
    ) -> Result<TransactionKey, TransactionError> {
        let txn = self
            .txns
            .get_mut(invite)
            .ok_or_else(|| TransactionError::NotFound(invite.clone()))?;
        match txn.kind {
            Kind::InviteClient => {}
            Kind::NonInviteClient => return Err(TransactionError::NotInvite(invite.clone())),
            _ => return Err(TransactionError::WrongRole(invite.clone())),
        }
        let cancel_key = invite.with_method("CANCEL");
        if txn.cancel_pending {
            return Ok(cancel_key);
        }
        let state = txn.state;
        if self.txns.contains_key(&cancel_key) {
            return Ok(cancel_key);
        }
        match state {
            State::Calling => {
                if let Some(txn) = self.txns.get_mut(invite) {
                    txn.cancel_pending = true;
                }
                Ok(cancel_key)
            }
            State::Proceeding => Ok(self.start_cancel(now, invite).unwrap_or(cancel_key)),
            state => Err(TransactionError::InvalidState {
                key: invite.clone(),
                state,
            }),
        }
    }

    fn start_client(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: rsip::Request,
        peer: Peer,
    ) {
        let invite = key.is_invite();
        let bytes = encode_request(&request);
        let mut txn = Transaction {
            kind: if invite {
                Kind::InviteClient
            } else {
                Kind::NonInviteClient
            },
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            peer,
            request: Some(request),
            request_bytes: bytes.clone(),
            last_response: None,
            to_tag: None,
            ack_bytes: None,
            interval: self.ctx.cfg.t1,
            timers: Vec::new(),
            cancel_pending: false,
            acked: false,
            ids: None,
        };
        self.ctx.send(peer, bytes, Some(&key));
        let t1 = self.ctx.cfg.t1;
        let t1x64 = self.ctx.cfg.t1x64();
        let (retransmit, timeout) = if invite {
            (Timer::A, Timer::B)
        } else {
            (Timer::E, Timer::F)
        };
        if !txn.reliable() {
            self.ctx.arm(&mut txn, &key, retransmit, now, t1);
        }
        self.ctx.arm(&mut txn, &key, timeout, now, t1x64);
        self.txns.insert(key, txn);
    }

    /// Sends the CANCEL of a Proceeding INVITE client transaction.
    fn start_cancel(&mut self, now: Instant, invite: &TransactionKey) -> Option<TransactionKey> {
        let txn = self.txns.get_mut(invite)?;
        let cancel = build_cancel(txn.request.as_ref()?)?;
        let peer = txn.peer;
        // §9.1: if no final response comes within 64*T1 of the CANCEL, give the INVITE up.
        // Re-arming B does that and keeps a silent peer from leaking the transaction.
        let t1x64 = self.ctx.cfg.t1x64();
        self.ctx.arm(txn, invite, Timer::B, now, t1x64);
        let key = TransactionKey::for_client_request(&cancel)?;
        if self.txns.contains_key(&key) {
            return Some(key);
        }
        self.start_client(now, key.clone(), cancel, peer);
        Some(key)
    }

    pub(super) fn handle_response(&mut self, now: Instant, response: rsip::Response) {
        // §18.1.2: a response with more than one Via was not meant for us.
        if key::via_count(&response.headers) != 1 {
            self.dropped += 1;
            return;
        }
        let code = response.status_code.code();
        let Some(key) = TransactionKey::for_response(&response) else {
            self.dropped += 1;
            return;
        };
        if !(100..700).contains(&code) {
            self.dropped += 1;
            return;
        }
        let Some(txn) = self.txns.get_mut(&key) else {
            self.stray_responses += 1;
            tracing::debug!(%key, code, "stray response dropped");
            return;
        };
        on_response(&mut self.ctx, txn, &key, response, now);
        if txn.kind == Kind::InviteClient && txn.state == State::Proceeding && txn.cancel_pending {
            txn.cancel_pending = false;
            self.start_cancel(now, &key);
        }
        self.reap(&key);
    }
}

fn on_response(
    ctx: &mut Ctx,
    txn: &mut Transaction,
    key: &TransactionKey,
    response: rsip::Response,
    now: Instant,
) {
    let code = response.status_code.code();
    let t4 = if txn.reliable() {
        std::time::Duration::ZERO
    } else {
        ctx.cfg.t4
    };
    match (txn.kind, txn.state) {
        (Kind::InviteClient, State::Calling | State::Proceeding) => {
            ctx.disarm(txn, Timer::A);
            if code < 200 {
                if txn.state == State::Calling {
                    ctx.disarm(txn, Timer::B);
                }
                txn.state = State::Proceeding;
                emit(ctx, key, response);
            } else if code < 300 {
                ctx.disarm(txn, Timer::B);
                txn.state = State::Accepted;
                let t1x64 = ctx.cfg.t1x64();
                ctx.arm(txn, key, Timer::M, now, t1x64);
                emit(ctx, key, response);
            } else {
                ctx.disarm(txn, Timer::B);
                txn.state = State::Completed;
                if let Some(ack) = txn.request.as_ref().and_then(|r| build_ack(r, &response)) {
                    let bytes = encode_request(&ack);
                    ctx.send(txn.peer, bytes.clone(), Some(key));
                    txn.ack_bytes = Some(bytes);
                }
                emit(ctx, key, response);
                let d = if txn.reliable() {
                    std::time::Duration::ZERO
                } else {
                    ctx.cfg.timer_d()
                };
                ctx.linger(txn, key, Timer::D, now, d);
            }
        }
        // RFC 6026: every 2xx (retransmission or another fork) goes up so the dialog re-ACKs.
        (Kind::InviteClient, State::Accepted) if (200..300).contains(&code) => {
            emit(ctx, key, response)
        }
        // A retransmitted final: our ACK was lost, send it again.
        (Kind::InviteClient, State::Completed) if code >= 300 => {
            if let Some(ack) = txn.ack_bytes.clone() {
                ctx.resend(txn.peer, ack, key);
            }
        }
        (Kind::NonInviteClient, State::Trying | State::Proceeding) => {
            if code < 200 {
                txn.state = State::Proceeding;
            } else {
                ctx.disarm(txn, Timer::E);
                ctx.disarm(txn, Timer::F);
                txn.state = State::Completed;
                ctx.linger(txn, key, Timer::K, now, t4);
            }
            emit(ctx, key, response);
        }
        // Completed absorbs retransmitted finals; late provisionals are meaningless.
        _ => {}
    }
}

fn emit(ctx: &mut Ctx, key: &TransactionKey, response: rsip::Response) {
    ctx.events.push_back(Event::Response {
        key: key.clone(),
        response,
    });
}

pub(super) fn on_timer(
    ctx: &mut Ctx,
    txn: &mut Transaction,
    key: &TransactionKey,
    timer: Timer,
    now: Instant,
) {
    match (timer, txn.state) {
        (Timer::A, State::Calling) => {
            ctx.resend(txn.peer, txn.request_bytes.clone(), key);
            txn.interval *= 2;
            let next = txn.interval;
            ctx.arm(txn, key, Timer::A, now, next);
        }
        (Timer::E, State::Trying | State::Proceeding) => {
            ctx.resend(txn.peer, txn.request_bytes.clone(), key);
            txn.interval = if txn.state == State::Trying {
                (txn.interval * 2).min(ctx.cfg.t2)
            } else {
                ctx.cfg.t2
            };
            let next = txn.interval;
            ctx.arm(txn, key, Timer::E, now, next);
        }
        // B also covers Proceeding once a CANCEL went out (see `start_cancel`).
        (Timer::B, State::Calling | State::Proceeding)
        | (Timer::F, State::Trying | State::Proceeding) => {
            ctx.events.push_back(Event::Timeout { key: key.clone() });
            txn.state = State::Terminated;
        }
        (Timer::D | Timer::K, State::Completed) | (Timer::M, State::Accepted) => {
            txn.state = State::Terminated;
        }
        _ => {}
    }
}

/// The first Via value of a request as a header of its own.
fn top_via_header(req: &rsip::Request) -> Option<Header> {
    let via = TopVia::of(&req.headers)?;
    Some(Header::Via(rsip::headers::Via::new(via.raw)))
}

/// Headers of `req` matching `pick`, cloned in order.
fn copy_headers(req: &rsip::Request, pick: impl Fn(&Header) -> bool) -> Vec<Header> {
    req.headers.iter().filter(|h| pick(h)).cloned().collect()
}

fn cseq_header(req: &rsip::Request, method: &str) -> Option<Header> {
    let (n, _) = key::cseq_of(&req.headers)?;
    Some(Header::CSeq(rsip::headers::CSeq::new(format!(
        "{n} {method}"
    ))))
}

/// ACK for a non-2xx final (§17.1.1.3): same Request-URI, Call-ID, From, CSeq number and top
/// Via (so the same branch) as the INVITE, To from the response, Route copied.
pub(crate) fn build_ack(
    invite: &rsip::Request,
    response: &rsip::Response,
) -> Option<rsip::Request> {
    let mut headers = rsip::Headers::default();
    headers.push(top_via_header(invite)?);
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
    headers.extend(copy_headers(invite, |h| matches!(h, Header::From(_))));
    let to = response
        .headers
        .iter()
        .find(|h| matches!(h, Header::To(_)))?;
    headers.push(to.clone());
    headers.extend(copy_headers(invite, |h| matches!(h, Header::CallId(_))));
    headers.push(cseq_header(invite, "ACK")?);
    headers.extend(copy_headers(invite, |h| matches!(h, Header::Route(_))));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Some(rsip::Request {
        method: rsip::Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    })
}

/// CANCEL of an INVITE (§9.1): same Request-URI, Call-ID, To, From, CSeq number and top Via;
/// Route copied.
pub(crate) fn build_cancel(invite: &rsip::Request) -> Option<rsip::Request> {
    let mut headers = rsip::Headers::default();
    headers.push(top_via_header(invite)?);
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
    headers.extend(copy_headers(invite, |h| {
        matches!(h, Header::From(_) | Header::To(_) | Header::CallId(_))
    }));
    headers.push(cseq_header(invite, "CANCEL")?);
    headers.extend(copy_headers(invite, |h| matches!(h, Header::Route(_))));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Some(rsip::Request {
        method: rsip::Method::Cancel,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    })
}
