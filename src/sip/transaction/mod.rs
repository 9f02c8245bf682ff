//! RFC 3261 §17 transactions with the RFC 6026 Accepted state, sans-IO.
//!
//! [`TransactionLayer`] owns every client and server transaction. A thin tokio task drives it
//! the way quinn-proto's `Connection` is driven: feed it messages ([`handle_message`]), send
//! failures and the clock ([`handle_timeout`]); drain what it wants sent ([`poll_transmit`]) and
//! what the transaction user must hear ([`poll_event`]); sleep until [`poll_timeout`]. It never
//! opens a socket, reads a clock or spawns, so tests run Timer B on virtual time.
//!
//! Choices worth knowing:
//! - An INVITE server transaction answers `100 Trying` at once (§17.2.1 allows it; carriers
//!   expect it and it stops their Timer A immediately).
//! - After a 2xx the INVITE server transaction enters Accepted (RFC 6026) and retransmits the
//!   2xx itself (§13.3.1.4) on unreliable transports until the ACK arrives or Timer L ends it.
//! - The ACK of a non-2xx is built and sent by the INVITE client transaction (§17.1.1.3); the
//!   ACK of a 2xx belongs to the dialog and goes out through [`send_stateless`].
//! - CANCEL is answered by the layer (200 or 481); the TU then answers the INVITE with 487.
//! - 2xx retransmission in Accepted happens on UDP only, like every other retransmission here.
//! - A sent CANCEL re-arms Timer B on its INVITE: with no final 64*T1 later the INVITE times
//!   out (§9.1), so a silent peer cannot pin the transaction.
//! - RFC 3261 gives server transactions in Trying/Proceeding no timer: the TU must answer every
//!   `Event::Request`, or the transaction stays.
//!
//! Driving it (the tokio task, in outline):
//!
//! ```text
//! loop {
//!     while let Some(t) = layer.poll_transmit() { send(t) or layer.handle_transport_error(now, &key) }
//!     while let Some(e) = layer.poll_event() { hand e to the dialog layer }
//!     select! { msg = socket => layer.handle_message(now, msg, peer),
//!               _ = sleep_until(layer.poll_timeout()) => layer.handle_timeout(now) }
//! }
//! ```
//!
//! [`handle_message`]: TransactionLayer::handle_message
//! [`handle_timeout`]: TransactionLayer::handle_timeout
//! [`poll_transmit`]: TransactionLayer::poll_transmit
//! [`poll_event`]: TransactionLayer::poll_event
//! [`poll_timeout`]: TransactionLayer::poll_timeout
//! [`send_stateless`]: TransactionLayer::send_stateless

mod client;
mod key;
mod server;
mod timer;

#[cfg(test)]
mod tests;

pub use key::{
    cseq_of, edit_top_via, header_param, response_destination, tag_of, Role, TopVia,
    TransactionKey, MAGIC_COOKIE,
};
pub use timer::{Timer, TimerConfig};

use key::RequestIds;
use rsip::headers::untyped::UntypedHeader;
use rsip::Header;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use timer::{TimerHandleList, TimerQueue};

pub use crate::sip::transport::{Peer, Transport};

/// One message for the driver to put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub peer: Peer,
    /// The serialized message.
    pub bytes: Vec<u8>,
    /// The transaction that sent it, so a send failure can be reported back; `None` if stateless.
    pub key: Option<TransactionKey>,
}

/// What the transaction user (dialog / server core) must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new server transaction: the TU must answer it with `send_response`.
    Request {
        /// The new server transaction.
        key: TransactionKey,
        /// The request, top Via stamped with `received`/`rport`.
        request: rsip::Request,
        /// Where it came from.
        peer: Peer,
    },
    /// An ACK for a 2xx (it has no transaction of its own): for the dialog.
    Ack {
        /// The ACK.
        request: rsip::Request,
        /// Where it came from.
        peer: Peer,
    },
    /// A response on a client transaction: provisionals, the first final, and in Accepted
    /// every 2xx (retransmissions and forks) so the dialog can re-ACK.
    Response {
        /// The client transaction.
        key: TransactionKey,
        /// The response.
        response: rsip::Response,
    },
    /// A CANCEL matched this pending INVITE server transaction; the CANCEL got its 200 already.
    /// The TU must now answer the INVITE with 487.
    Cancelled {
        /// The INVITE server transaction.
        invite: TransactionKey,
    },
    /// Timer B or F: no final response in time (the TU treats it as 408).
    Timeout {
        /// The client transaction.
        key: TransactionKey,
    },
    /// A final response was sent but no ACK came within 64*T1 (Timer H or L). After a 2xx the
    /// TU should send BYE.
    AckTimeout {
        /// The INVITE server transaction.
        key: TransactionKey,
    },
    /// The driver could not send a message of this transaction; it is terminated.
    TransportError {
        /// The transaction.
        key: TransactionKey,
    },
    /// The transaction is gone from the layer.
    Terminated {
        /// The transaction.
        key: TransactionKey,
    },
}

/// Misuse of the layer by the TU; the wire never causes these (bad input is dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// No transaction with this key (never existed or already terminated).
    #[error("no such transaction: {0}")]
    NotFound(TransactionKey),
    /// The key names a client transaction where a server one is needed, or the reverse.
    #[error("wrong transaction role for {0}")]
    WrongRole(TransactionKey),
    /// The operation is not allowed in the transaction's current state.
    #[error("transaction {key} is in state {state:?}")]
    InvalidState {
        /// The transaction.
        key: TransactionKey,
        /// Its state.
        state: State,
    },
    /// A message to send lacks a header the transaction needs.
    #[error("message lacks a usable {0} header")]
    MissingHeader(&'static str),
    /// ACK is never a client transaction: send the ACK of a 2xx with `send_stateless`.
    #[error("ACK does not start a transaction; use send_stateless")]
    AckNotTransactional,
    /// A transaction with this branch already exists.
    #[error("transaction already exists: {0}")]
    AlreadyExists(TransactionKey),
    /// Only INVITE transactions can be cancelled.
    #[error("not an INVITE transaction: {0}")]
    NotInvite(TransactionKey),
    /// Status code outside 100–699.
    #[error("invalid status code {0}")]
    InvalidStatus(u16),
}

/// Transaction states of RFC 3261 §17 plus Accepted from RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// INVITE client: request sent, nothing heard.
    Calling,
    /// Non-INVITE client or server: request sent / received, no response yet.
    Trying,
    /// A provisional was received / sent.
    Proceeding,
    /// A final (non-2xx for INVITE) was received / sent; absorbing retransmissions.
    Completed,
    /// INVITE server: the ACK of a non-2xx arrived.
    Confirmed,
    /// RFC 6026: a 2xx was received / sent for an INVITE.
    Accepted,
    /// Done; removed from the layer at once.
    Terminated,
}

/// Which of the four machines a transaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

/// One transaction's state.
#[derive(Debug)]
pub(crate) struct Transaction {
    pub(crate) kind: Kind,
    pub(crate) state: State,
    /// Client: where requests go. Server: where responses go (§18.2.2).
    pub(crate) peer: Peer,
    /// Client: the request sent, to build its ACK and CANCEL. Server: `None`, nothing needs it
    /// after the TU got it, and tens of thousands of copies add up.
    pub(crate) request: Option<rsip::Request>,
    /// Client: the encoded request, kept for retransmission.
    pub(crate) request_bytes: Vec<u8>,
    /// Server: the last response sent (encoded) and its status, for retransmission.
    pub(crate) last_response: Option<(u16, Vec<u8>)>,
    /// Server: To tag of the TU's responses, reused in our 200 to a CANCEL.
    pub(crate) to_tag: Option<String>,
    /// INVITE client: the ACK we sent for a non-2xx, resent on a retransmitted final.
    pub(crate) ack_bytes: Option<Vec<u8>>,
    /// Current retransmission interval of timer A, E or G.
    pub(crate) interval: Duration,
    /// Armed timers, at most one per kind.
    pub(crate) timers: TimerHandleList,
    /// INVITE client: the TU asked to cancel before any provisional arrived (§9.1).
    pub(crate) cancel_pending: bool,
    /// INVITE server in Accepted: the ACK has arrived.
    pub(crate) acked: bool,
    /// Server: entry in the merged-request / ACK index.
    pub(crate) ids: Option<RequestIds>,
}

impl Transaction {
    fn reliable(&self) -> bool {
        self.peer.transport.is_reliable()
    }
}

/// What handlers write to: everything of the layer except the transaction map, so a handler
/// can hold `&mut Transaction` and `&mut Ctx` at once.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) cfg: TimerConfig,
    pub(crate) timers: TimerQueue,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) retransmissions: u64,
}

impl Ctx {
    fn send(&mut self, peer: Peer, bytes: Vec<u8>, key: Option<&TransactionKey>) {
        self.transmits.push_back(Transmit {
            peer,
            bytes,
            key: key.cloned(),
        });
    }

    fn resend(&mut self, peer: Peer, bytes: Vec<u8>, key: &TransactionKey) {
        self.retransmissions += 1;
        self.send(peer, bytes, Some(key));
    }

    /// Arms `timer` after `after`, replacing an armed timer of the same kind.
    fn arm(
        &mut self,
        txn: &mut Transaction,
        key: &TransactionKey,
        timer: Timer,
        now: Instant,
        after: Duration,
    ) {
        self.disarm(txn, timer);
        let handle = self.timers.insert(now + after, key.clone(), timer);
        txn.timers.push((timer, handle));
    }

    fn disarm(&mut self, txn: &mut Transaction, timer: Timer) {
        txn.timers.retain(|(t, h)| {
            if *t == timer {
                self.timers.remove(*h);
                false
            } else {
                true
            }
        });
    }

    fn disarm_all(&mut self, txn: &mut Transaction) {
        for (_, h) in txn.timers.drain(..) {
            self.timers.remove(h);
        }
    }

    /// Arms a linger timer, or ends the transaction now when the duration is zero (reliable).
    fn linger(
        &mut self,
        txn: &mut Transaction,
        key: &TransactionKey,
        timer: Timer,
        now: Instant,
        after: Duration,
    ) {
        if after.is_zero() {
            txn.state = State::Terminated;
        } else {
            self.arm(txn, key, timer, now, after);
        }
    }
}

use crate::sip::id::IdGen;

/// All transactions of one SIP endpoint, driven by `handle_*` and drained by `poll_*`.
#[derive(Debug)]
pub struct TransactionLayer {
    txns: HashMap<TransactionKey, Transaction>,
    /// Server transactions by (Call-ID, From tag, CSeq, method): merged requests and 2xx ACKs.
    ids: HashMap<RequestIds, TransactionKey>,
    ctx: Ctx,
    id_gen: IdGen,
    stray_responses: u64,
    dropped: u64,
    /// Server transactions among `txns` (the endpoint caps them).
    servers: usize,
}

impl TransactionLayer {
    /// A layer with no transactions.
    pub fn new(cfg: TimerConfig) -> Self {
        TransactionLayer {
            txns: HashMap::new(),
            ids: HashMap::new(),
            ctx: Ctx {
                cfg,
                timers: TimerQueue::default(),
                transmits: VecDeque::new(),
                events: VecDeque::new(),
                retransmissions: 0,
            },
            id_gen: IdGen::new(),
            stray_responses: 0,
            dropped: 0,
            servers: 0,
        }
    }

    /// The timer configuration in use.
    pub fn config(&self) -> TimerConfig {
        self.ctx.cfg
    }

    /// A fresh branch with the RFC 3261 magic cookie, for TUs building requests.
    pub fn new_branch(&mut self) -> String {
        format!("{MAGIC_COOKIE}{}", self.id_gen.next_id())
    }

    /// A fresh tag for From / To.
    pub fn new_tag(&mut self) -> String {
        self.id_gen.next_id()
    }

    /// Queues a message outside any transaction (ACK of a 2xx, stateless responses).
    pub fn send_stateless(&mut self, msg: rsip::SipMessage, peer: Peer) {
        self.ctx.send(peer, encode(&msg), None);
    }

    /// A message from the transport.
    pub fn handle_message(&mut self, now: Instant, msg: rsip::SipMessage, peer: Peer) {
        match msg {
            rsip::SipMessage::Request(req) => self.handle_request(now, req, peer),
            rsip::SipMessage::Response(resp) => self.handle_response(now, resp),
        }
    }

    /// The driver failed to send a message of this transaction: it ends.
    pub fn handle_transport_error(&mut self, _now: Instant, key: &TransactionKey) {
        if let Some(txn) = self.txns.get_mut(key) {
            txn.state = State::Terminated;
            self.ctx
                .events
                .push_back(Event::TransportError { key: key.clone() });
            self.reap(key);
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((key, timer)) = self.ctx.timers.pop_due(now) {
            let Some(txn) = self.txns.get_mut(&key) else {
                continue;
            };
            // The queue entry is gone; forget its handle too.
            txn.timers.retain(|(t, _)| *t != timer);
            match txn.kind {
                Kind::InviteClient | Kind::NonInviteClient => {
                    client::on_timer(&mut self.ctx, txn, &key, timer, now)
                }
                Kind::InviteServer | Kind::NonInviteServer => {
                    server::on_timer(&mut self.ctx, txn, &key, timer, now)
                }
            }
            self.reap(&key);
        }
    }

    /// When `handle_timeout` must next be called; `None` when no timer is armed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ctx.timers.next_deadline()
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ctx.transmits.pop_front()
    }

    /// Next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.ctx.events.pop_front()
    }

    /// Live transactions (for a gauge).
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// Live server transactions, the ones peers can create: what a cap on them counts.
    pub fn server_transactions(&self) -> usize {
        self.servers
    }

    /// Stamps `request`'s top Via as a server transaction would (`received`, `rport`) and says
    /// where its response goes (§18.2.2), for requests the TU answers without a transaction;
    /// `None` when it has no usable Via.
    pub fn stateless_destination(&self, request: &mut rsip::Request, peer: Peer) -> Option<Peer> {
        key::stamp_top_via(&mut request.headers, peer.addr);
        TopVia::of(&request.headers).map(|via| response_destination(&via, peer))
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// Armed timers (for leak checks).
    pub fn timers_armed(&self) -> usize {
        self.ctx.timers.len()
    }

    /// Messages sent again: timer retransmissions and answers to retransmitted messages.
    pub fn retransmissions(&self) -> u64 {
        self.ctx.retransmissions
    }

    /// Responses that matched no client transaction.
    pub fn stray_responses(&self) -> u64 {
        self.stray_responses
    }

    /// Messages dropped as unusable (no Via, no CSeq, several Vias on a response, …).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// State of a transaction, if it exists.
    pub fn state(&self, key: &TransactionKey) -> Option<State> {
        self.txns.get(key).map(|t| t.state)
    }

    /// Gives back memory the tables kept from a busy spell; call when traffic has drained.
    pub fn shrink_to_fit(&mut self) {
        self.txns.shrink_to_fit();
        self.ids.shrink_to_fit();
        self.ctx.transmits.shrink_to_fit();
        self.ctx.events.shrink_to_fit();
    }

    /// Server transactions still waiting for our final response: the work a drain must let
    /// finish (Completed ones only linger to absorb retransmissions).
    pub fn awaiting_final(&self) -> usize {
        // Our own requests (keepalives, registrations) are not work a peer waits on.
        self.txns
            .iter()
            .filter(|(k, t)| {
                k.role() == Role::Server && matches!(t.state, State::Trying | State::Proceeding)
            })
            .count()
    }

    /// Removes the transaction if it reached Terminated, with its timers and index entry.
    fn reap(&mut self, key: &TransactionKey) {
        let done = matches!(self.txns.get(key), Some(t) if t.state == State::Terminated);
        if !done {
            return;
        }
        if let Some(mut txn) = self.txns.remove(key) {
            if matches!(txn.kind, Kind::InviteServer | Kind::NonInviteServer) {
                self.servers -= 1;
            }
            self.ctx.disarm_all(&mut txn);
            if let Some(ids) = txn.ids.take() {
                if self.ids.get(&ids) == Some(key) {
                    self.ids.remove(&ids);
                }
            }
            self.ctx
                .events
                .push_back(Event::Terminated { key: key.clone() });
        }
    }
}

/// Serializes a message for the wire. One function so the wire layer's encoder can replace it.
pub fn encode(msg: &rsip::SipMessage) -> Vec<u8> {
    crate::sip::wire::serialize(msg)
}

/// [`encode`] for a request we keep (avoids cloning it into a `SipMessage`).
fn encode_request(req: &rsip::Request) -> Vec<u8> {
    crate::sip::wire::serialize_request(req)
}

/// [`encode`] for a response we keep.
fn encode_response(resp: &rsip::Response) -> Vec<u8> {
    crate::sip::wire::serialize_response(resp)
}

/// Builds a response to `req` per §8.2.6: Via, From, To, Call-ID and CSeq copied; `to_tag`
/// added to To when it has none.
pub fn make_response(req: &rsip::Request, code: u16, to_tag: Option<&str>) -> rsip::Response {
    let mut headers = rsip::Headers::default();
    for h in req.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            Header::To(t) => {
                let mut value = t.value().to_string();
                if let Some(tag) = to_tag {
                    if key::header_param(&value, "tag").is_none() {
                        value.push_str(";tag=");
                        value.push_str(tag);
                    }
                }
                headers.push(Header::To(rsip::headers::To::new(value)));
            }
            Header::Timestamp(_) if code == 100 => headers.push(h.clone()),
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    rsip::Response {
        status_code: rsip::StatusCode::from(code),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}
