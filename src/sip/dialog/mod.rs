//! RFC 3261 §12 dialogs with RFC 4028 session timers, sans-IO.
//!
//! [`DialogLayer`] sits on the transaction layer the way pjsip's dialog module sits on its
//! transaction module: it never sends anything itself. It builds and finishes messages (INVITE,
//! in-dialog requests, the ACK of a 2xx, Contact / Record-Route / Session-Expires on responses),
//! keeps dialog state (tags, remote target, route set, CSeq numbers, session timer) and reports
//! what the transaction user must hear as [`DialogEvent`]s. Time comes in as `now`; the one
//! timer per dialog is the session timer.
//!
//! Driving it (the endpoint, in outline; `txn` is the `TransactionLayer`):
//!
//! ```text
//! Event::Request { key, request }:
//!     no To tag, INVITE  → if let Some(r) = dialogs.uas_check(&request) { txn.send_response(r) }
//!                          else the TU decides; every response it sends to the INVITE goes
//!                          through dialogs.uas_respond(now, &request, resp) first.
//!     To tag             → match dialogs.on_request(now, &request):
//!                          NoDialog/BadCSeq/IntervalTooSmall/Pending/Invalid/Bye carry the
//!                          response: send it. ReInvite/Update/Other: the TU answers through
//!                          uas_respond (or answer_with_last_sdp).
//! Event::Ack { request }  → dialogs.on_request(now, &request) (Ack or NoDialog without answer).
//! Event::Response { key, response } for a request `req` the TU sent:
//!     out-of-dialog INVITE → if let Some(id) = dialogs.uac_response(now, &req, &response)
//!                              { on 2xx: txn.send_stateless(dialogs.build_ack(&id)?, next hop) }
//!                            (every 2xx, retransmissions included: build_ack returns the same ACK)
//!     in-dialog request    → dialogs.on_request_response(now, &req, &response), and on a 2xx to a
//!                            re-INVITE the ACK as above.
//! Event::Timeout { key }  → the same call with make_response(&req, 408, None): an INVITE's early
//!                           dialogs or a dialog whose BYE went unanswered end there.
//! Event::AckTimeout       → no ACK for our 2xx: dialogs.request(&id, BYE, None).
//! TU wants to send        → dialogs.request(&id, method, body) (BYE, re-INVITE, UPDATE, INFO …),
//!                           to Dialog::next_hop(), via txn.send_request.
//! timers                  → sleep until min(txn.poll_timeout(), dialogs.poll_timeout());
//!                           dialogs.handle_timeout(now); drain dialogs.poll_event():
//!                           RefreshDue → request(UPDATE or INVITE); SessionExpired → request(BYE).
//! ```
//!
//! Choices worth knowing:
//! - A dialog ends (leaves the map, with its timer) at once: on BYE received (answered 200), on
//!   the final response to our BYE (any code, or the 408 the driver feeds on timeout), on 481 or
//!   408 to any in-dialog request (§12.2.1.2), on a non-2xx final to the INVITE (early dialogs),
//!   and for early dialogs of other forks when one fork answers 2xx.
//! - BYE glare: after we sent BYE, a BYE from the peer still gets 200 and ends the dialog; the
//!   response to ours then matches nothing and is ignored.
//! - The remote target is replaced from the Contact of a received re-INVITE/UPDATE on receipt
//!   (RFC 3261 §12.2.2) and from the Contact of a 2xx to ours.
//! - A second 2xx from another fork creates its own confirmed dialog and reports
//!   [`DialogEvent::ExtraAnswer`]: ACK it, then BYE it (§13.2.2.4).
//! - Session timers (RFC 4028): as UAS we accept the offered interval down to our Min-SE
//!   (smaller → 422), shorten it to our `session_expires`, and let the UAC refresh when it
//!   supports `timer`. Any 2xx to a re-INVITE/UPDATE, sent or received, restarts the timer.

pub mod direction;
mod session;
#[cfg(test)]
mod tests;

pub use session::{Refresher, SessionTimer};

use crate::sip::transaction::{cseq_of, edit_top_via, make_response, tag_of, TopVia, MAGIC_COOKIE};
use crate::sip::transport::Transport;
use crate::sip::wire;
use rsip::headers::untyped::UntypedHeader;
use rsip::prelude::HeadersExt;
use rsip::{headers as h, Header, Method};
use session::{Offer, Side, UasDecision};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Errors from misuse or from messages too broken to hold a dialog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// No such dialog (never existed or already ended).
    #[error("no such dialog: {0}")]
    NotFound(DialogId),
    /// A message lacks a header the dialog needs, or it cannot be read.
    #[error("message lacks a usable {0} header")]
    MissingHeader(&'static str),
    /// A URI given to us does not parse.
    #[error("invalid SIP URI: {0}")]
    BadUri(String),
    /// The request is not allowed in the dialog's state (e.g. after our BYE).
    #[error("{method} not allowed in dialog {id} ({state:?})")]
    InvalidState {
        /// The dialog.
        id: DialogId,
        /// Its state.
        state: DialogState,
        /// The method refused.
        method: Method,
    },
    /// ACK and CANCEL are not new in-dialog requests: use `build_ack` / the transaction's cancel.
    #[error("{0} is not sent with DialogLayer::request")]
    NotARequest(Method),
}

/// Identifies a dialog (§12): Call-ID, our tag, the peer's tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag: the To tag we generated as UAS, our From tag as UAC.
    pub local_tag: String,
    /// The peer's tag (empty for an RFC 2543 peer that sent no From tag).
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog an incoming request belongs to; `None` without Call-ID or To tag.
    pub fn of_received(req: &rsip::Request) -> Option<DialogId> {
        Some(DialogId {
            call_id: call_id(req)?,
            local_tag: tag_of(&req.headers, false)?,
            remote_tag: tag_of(&req.headers, true).unwrap_or_default(),
        })
    }

    /// The dialog a response we send as UAS belongs to (our To tag, their From tag).
    pub fn of_answer(resp: &rsip::Response) -> Option<DialogId> {
        Some(DialogId {
            call_id: call_id(resp)?,
            local_tag: tag_of(&resp.headers, false)?,
            remote_tag: tag_of(&resp.headers, true).unwrap_or_default(),
        })
    }

    /// The dialog a response to our request belongs to; `None` without Call-ID, From or To tag.
    pub fn of_response(resp: &rsip::Response) -> Option<DialogId> {
        Some(DialogId {
            call_id: call_id(resp)?,
            local_tag: tag_of(&resp.headers, true)?,
            remote_tag: tag_of(&resp.headers, false)?,
        })
    }

    /// The dialog a request we sent inside a dialog belongs to.
    fn of_sent(req: &rsip::Request) -> Option<DialogId> {
        Some(DialogId {
            call_id: call_id(req)?,
            local_tag: tag_of(&req.headers, true)?,
            remote_tag: tag_of(&req.headers, false)?,
        })
    }
}

impl std::fmt::Display for DialogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{};local={};remote={}",
            self.call_id, self.local_tag, self.remote_tag
        )
    }
}

/// Dialog states; a dialog that ends is removed at once, so there is no Terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a 1xx with a To tag.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
    /// We sent BYE and wait for its final response.
    Terminating,
}

/// Which side of the initial INVITE we were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogRole {
    /// We sent the INVITE.
    Uac,
    /// We received it.
    Uas,
}

/// Why a dialog ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The peer sent BYE; it was answered 200.
    ByeReceived,
    /// Our BYE got its final response (or the driver's 408 on timeout).
    ByeSent,
    /// The INVITE got this non-2xx final response: its early dialogs end (§12.3).
    Rejected(u16),
    /// Another fork answered the INVITE with a 2xx.
    ForkLost,
    /// An in-dialog request got 481 or 408 (§12.2.1.2).
    RequestFailed(u16),
}

/// What the transaction user must hear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogEvent {
    /// A 2xx created or confirmed the dialog (sent as UAS, received as UAC).
    Confirmed {
        /// The dialog.
        id: DialogId,
    },
    /// A 2xx from a second fork after another fork answered: ACK it, then send BYE.
    ExtraAnswer {
        /// The extra dialog.
        id: DialogId,
    },
    /// The dialog ended and is gone.
    Terminated {
        /// The dialog.
        id: DialogId,
        /// Why.
        reason: EndReason,
    },
    /// We are the refresher and half the session interval passed: send re-INVITE or UPDATE.
    RefreshDue {
        /// The dialog.
        id: DialogId,
    },
    /// No refresh within the session interval (RFC 4028 §10): send BYE.
    SessionExpired {
        /// The dialog.
        id: DialogId,
    },
}

/// What an in-dialog request (one with a To tag) asks the TU to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InDialog {
    /// It matches no dialog: send `response` (481; `None` for ACK, which is never answered).
    NoDialog {
        /// The 481.
        response: Option<rsip::Response>,
    },
    /// Lacks a readable CSeq or Call-ID: send `response` (400; `None` for ACK).
    Invalid {
        /// The 400.
        response: Option<rsip::Response>,
    },
    /// CSeq lower than the last one from the peer (§12.2.2): send `response` (500).
    BadCSeq {
        /// The dialog.
        id: DialogId,
        /// The 500.
        response: rsip::Response,
    },
    /// A re-INVITE while ours is pending (§14.2): send `response` (491).
    Pending {
        /// The dialog.
        id: DialogId,
        /// The 491.
        response: rsip::Response,
    },
    /// Session-Expires below our Min-SE: send `response` (422 with Min-SE).
    IntervalTooSmall {
        /// The dialog.
        id: DialogId,
        /// The 422.
        response: rsip::Response,
    },
    /// BYE: send `response` (200); the dialog is gone and `Terminated` is queued.
    Bye {
        /// The dialog that ended.
        id: DialogId,
        /// The 200.
        response: rsip::Response,
    },
    /// A re-INVITE (target and session refresh): the TU answers via `uas_respond`.
    ReInvite {
        /// The dialog.
        id: DialogId,
        /// The body (an SDP offer, or empty when the offer must go in our 2xx).
        offer: Vec<u8>,
    },
    /// An UPDATE (RFC 3311): the TU answers via `uas_respond`.
    Update {
        /// The dialog.
        id: DialogId,
        /// The body (SDP offer or empty).
        offer: Vec<u8>,
    },
    /// The ACK of our 2xx.
    Ack {
        /// The dialog.
        id: DialogId,
        /// Its body (an SDP answer when our 2xx carried the offer).
        body: Vec<u8>,
    },
    /// Any other in-dialog request (INFO, NOTIFY, …): the TU answers it.
    Other {
        /// The dialog.
        id: DialogId,
    },
}

/// A message body with its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// Content-Type, e.g. `application/sdp`.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Body {
    /// An SDP body.
    pub fn sdp(bytes: impl Into<Vec<u8>>) -> Body {
        Body {
            content_type: "application/sdp".into(),
            bytes: bytes.into(),
        }
    }
}

/// Settings of the dialog layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogConfig {
    /// Our Contact URI, e.g. `sip:dialerd@192.0.2.10:5060`.
    pub local_contact: String,
    /// Via sent-by of requests we build, e.g. `192.0.2.10:5060`.
    pub sent_by: String,
    /// Session interval we offer and the longest we accept (RFC 4028); zero turns timers off.
    pub session_expires: Duration,
    /// The shortest session interval we accept (Min-SE; RFC 4028 floor is 90 s).
    pub min_se: Duration,
    /// Over TLS: our Contact URI (`sips:` on the TLS port) and Via sent-by; `None`: no TLS.
    pub tls: Option<(String, String)>,
}

impl DialogConfig {
    /// A config with RFC 4028's usual values: 1800 s session interval, 90 s Min-SE.
    pub fn new(local_contact: impl Into<String>, sent_by: impl Into<String>) -> Self {
        DialogConfig {
            local_contact: local_contact.into(),
            sent_by: sent_by.into(),
            session_expires: Duration::from_secs(1800),
            min_se: Duration::from_secs(90),
            tls: None,
        }
    }
}

/// One dialog's state (§12.1).
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Its identifier.
    pub id: DialogId,
    /// Early, confirmed, or terminating.
    pub state: DialogState,
    /// Which side of the INVITE we were.
    pub role: DialogRole,
    /// Our From (UAC) / To (UAS) value, tag included.
    pub local_uri: String,
    /// The peer's value, tag included.
    pub remote_uri: String,
    /// Where in-dialog requests go: the peer's Contact URI.
    pub remote_target: rsip::Uri,
    /// Route set, each a name-addr, in the order the Route headers take.
    pub route_set: Vec<String>,
    /// CSeq of our last request (0 before the first).
    pub local_cseq: u32,
    /// CSeq of the peer's last request.
    pub remote_cseq: Option<u32>,
    /// Created over a SIPS Request-URI.
    pub secure: bool,
    /// Negotiated session timer, if any.
    pub session: Option<SessionTimer>,
    /// The last SDP we sent (offer or answer), for re-answering a refresh unchanged.
    pub local_sdp: Option<Vec<u8>>,
    /// Transport the dialog was set up on; the Via of requests we send in it names it.
    pub transport: Transport,
    /// CSeq of our last INVITE (0 for UAS dialogs until we re-INVITE): the ACK's number.
    invite_cseq: u32,
    /// The ACK sent for `invite_cseq`, resent unchanged on a retransmitted 2xx.
    ack: Option<rsip::Request>,
    /// Our re-INVITE awaits its final response.
    invite_pending: bool,
    /// Armed session timer entry.
    timer: Option<TimerSlot>,
}

impl Dialog {
    /// Where the next request goes: the first route, or the remote target without routes.
    pub fn next_hop(&self) -> rsip::Uri {
        self.route_set
            .first()
            .and_then(|r| addr_uri(r))
            .unwrap_or_else(|| self.remote_target.clone())
    }

    /// Request-URI and Route headers of a request (§12.2.1.1).
    fn routing(&self) -> (rsip::Uri, Vec<String>) {
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        match addr_uri(first) {
            Some(mut uri) if !uri.params.iter().any(|p| matches!(p, rsip::Param::Lr)) => {
                // strict router (RFC 2543): it takes the Request-URI, the target goes last
                uri.params
                    .retain(|p| !matches!(p, rsip::Param::Method(_) | rsip::Param::Maddr(_)));
                let mut routes = self.route_set[1..].to_vec();
                // targets come from `wire`, whose URIs Display in wire form (IPv6 bracketed)
                routes.push(format!("<{}>", self.remote_target));
                (uri, routes)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        }
    }
}

/// Which session deadline an armed timer stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    Refresh,
    Expire,
}

/// Deadline plus a sequence number so equal deadlines stay distinct.
type TimerSlot = (Instant, u64);

use crate::sip::id::IdGen;

/// Every dialog of one endpoint, driven by calls and drained by `poll_event`.
#[derive(Debug)]
pub struct DialogLayer {
    cfg: DialogConfig,
    dialogs: HashMap<DialogId, Dialog>,
    /// UAC dialogs by (Call-ID, our tag): the forks of one INVITE, remote tags listed.
    forks: HashMap<(String, String), Vec<String>>,
    timers: BTreeMap<TimerSlot, (DialogId, TimerKind)>,
    timer_seq: u64,
    events: VecDeque<DialogEvent>,
    ids: IdGen,
}

impl DialogLayer {
    /// Gives back memory the tables kept from a busy spell; call when traffic has drained.
    pub fn shrink_to_fit(&mut self) {
        self.dialogs.shrink_to_fit();
        self.forks.shrink_to_fit();
        self.events.shrink_to_fit();
    }

    /// A layer with no dialogs.
    pub fn new(cfg: DialogConfig) -> Self {
        DialogLayer {
            cfg,
            dialogs: HashMap::new(),
            forks: HashMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            events: VecDeque::new(),
            ids: IdGen::new(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &DialogConfig {
        &self.cfg
    }

    /// A dialog, if it exists.
    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.get(id)
    }

    /// Live dialogs (early, confirmed, terminating), for `dialerd_sip_dialogs_active`.
    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    /// True when no dialog is live.
    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }

    /// Armed timers (for leak checks).
    pub fn timers_armed(&self) -> usize {
        self.timers.len()
    }

    /// Ends a dialog without any message (the TU gave up on it); no event is queued.
    pub fn terminate(&mut self, id: &DialogId) {
        self.remove(id, None);
    }

    /// Next event for the TU.
    pub fn poll_event(&mut self) -> Option<DialogEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called; `None` when no timer is armed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first_key_value().map(|((at, _), _)| *at)
    }

    /// Fires every session timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (id, kind) = entry.remove();
            let Some(d) = self.dialogs.get_mut(&id) else {
                continue;
            };
            d.timer = None;
            match kind {
                TimerKind::Refresh => {
                    // if the refresh never gets its 2xx, the session still expires on time
                    let expire = d.session.map(|s| s.expires_at());
                    self.events
                        .push_back(DialogEvent::RefreshDue { id: id.clone() });
                    if let Some(at) = expire {
                        self.arm(&id, at, TimerKind::Expire);
                    }
                }
                TimerKind::Expire => self.events.push_back(DialogEvent::SessionExpired { id }),
            }
        }
    }

    // ---- UAS ----

    /// Checks a new INVITE before the TU sees it: `Some(response)` to send instead (400 without
    /// a usable Contact, 422 with Min-SE when Session-Expires is below ours).
    pub fn uas_check(&mut self, invite: &rsip::Request) -> Option<rsip::Response> {
        let tag = self.ids.next_id();
        if contact_uri(&invite.headers).is_none() {
            return Some(make_response(invite, 400, Some(&tag)));
        }
        self.check_interval(invite, Some(&tag))
    }

    /// 422 with our Min-SE when the request's Session-Expires is below it (RFC 4028 §9).
    fn check_interval(&self, req: &rsip::Request, tag: Option<&str>) -> Option<rsip::Response> {
        let offer = Offer::read(&req.headers);
        match session::uas_negotiate(&offer, self.cfg.session_expires, self.cfg.min_se) {
            UasDecision::TooSmall => {
                let mut r = make_response(req, 422, tag);
                r.headers.push(session::min_se_header(self.cfg.min_se));
                Some(r)
            }
            _ => None,
        }
    }

    /// Finishes the TU's response to a request we received and updates dialogs: for an INVITE
    /// out of dialog a 1xx with To tag makes an early dialog, a 2xx a confirmed one (Contact
    /// and Record-Route added, Session-Expires / Require: timer on the 2xx when negotiated), a
    /// final non-2xx ends the early dialog. In a dialog, a 2xx to re-INVITE/UPDATE gets Contact
    /// and session headers and restarts the session timer. Other responses pass unchanged.
    pub fn uas_respond(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        resp: rsip::Response,
    ) -> Result<rsip::Response, DialogError> {
        let code = resp.status_code.code();
        if code <= 100 {
            return Ok(resp);
        }
        if tag_of(&req.headers, false).is_some() {
            return self.respond_in_dialog(now, req, resp);
        }
        if req.method != Method::Invite {
            return Ok(resp);
        }
        let call_id = call_id(req).ok_or(DialogError::MissingHeader("Call-ID"))?;
        let remote_tag = tag_of(&req.headers, true).unwrap_or_default();
        let local_tag = tag_of(&resp.headers, false);
        if code >= 300 {
            if let Some(local_tag) = local_tag {
                let id = DialogId {
                    call_id,
                    local_tag,
                    remote_tag,
                };
                self.remove(&id, Some(EndReason::Rejected(code)));
            }
            return Ok(resp);
        }
        let id = DialogId {
            call_id,
            local_tag: local_tag.ok_or(DialogError::MissingHeader("To tag"))?,
            remote_tag,
        };
        let mut resp = resp;
        self.response_contact(&mut resp.headers, req);
        if !resp
            .headers
            .iter()
            .any(|h| matches!(h, Header::RecordRoute(_)))
        {
            for rr in req
                .headers
                .iter()
                .filter(|h| matches!(h, Header::RecordRoute(_)))
            {
                resp.headers.push(rr.clone());
            }
        }
        if !self.dialogs.contains_key(&id) {
            let d = self.new_uas_dialog(id.clone(), req, &resp)?;
            self.dialogs.insert(id.clone(), d);
        }
        if code >= 200 {
            self.negotiate_as_uas(now, &id, req, &mut resp);
            let d = self
                .dialogs
                .get_mut(&id)
                .ok_or(DialogError::NotFound(id.clone()))?;
            if !resp.body.is_empty() {
                d.local_sdp = Some(resp.body.clone());
            }
            if d.state == DialogState::Early {
                d.state = DialogState::Confirmed;
                self.events.push_back(DialogEvent::Confirmed { id });
            }
        }
        Ok(resp)
    }

    fn new_uas_dialog(
        &self,
        id: DialogId,
        invite: &rsip::Request,
        resp: &rsip::Response,
    ) -> Result<Dialog, DialogError> {
        let target = contact_uri(&invite.headers).ok_or(DialogError::MissingHeader("Contact"))?;
        let remote_cseq = cseq_of(&invite.headers).ok_or(DialogError::MissingHeader("CSeq"))?;
        Ok(Dialog {
            id,
            state: DialogState::Early,
            role: DialogRole::Uas,
            local_uri: resp
                .to_header()
                .map(|t| t.value().to_string())
                .map_err(|_| DialogError::MissingHeader("To"))?,
            remote_uri: invite
                .from_header()
                .map(|f| f.value().to_string())
                .map_err(|_| DialogError::MissingHeader("From"))?,
            remote_target: target,
            route_set: record_routes(&invite.headers),
            local_cseq: 0,
            remote_cseq: Some(remote_cseq.0),
            secure: invite.uri.scheme == Some(rsip::Scheme::Sips),
            session: None,
            local_sdp: None,
            transport: via_transport(&invite.headers),
            invite_cseq: 0,
            ack: None,
            invite_pending: false,
            timer: None,
        })
    }

    fn respond_in_dialog(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        mut resp: rsip::Response,
    ) -> Result<rsip::Response, DialogError> {
        let id = DialogId::of_received(req).ok_or(DialogError::MissingHeader("Call-ID"))?;
        if !self.dialogs.contains_key(&id) {
            return Err(DialogError::NotFound(id));
        }
        let code = resp.status_code.code();
        if matches!(req.method, Method::Invite | Method::Update) && (200..300).contains(&code) {
            self.response_contact(&mut resp.headers, req);
            self.negotiate_as_uas(now, &id, req, &mut resp);
            if let (false, Some(d)) = (resp.body.is_empty(), self.dialogs.get_mut(&id)) {
                d.local_sdp = Some(resp.body.clone());
            }
        }
        Ok(resp)
    }

    /// Session timer of a 2xx we send to an INVITE/UPDATE: headers added, timer (re)armed.
    fn negotiate_as_uas(
        &mut self,
        now: Instant,
        id: &DialogId,
        req: &rsip::Request,
        resp: &mut rsip::Response,
    ) {
        let offer = Offer::read(&req.headers);
        // too small was refused by uas_check/on_request; a TU answering anyway gets our floor
        let session =
            match session::uas_negotiate(&offer, self.cfg.session_expires, self.cfg.min_se) {
                UasDecision::Timer {
                    interval,
                    refresher,
                    require,
                } => {
                    resp.headers
                        .push(session::session_expires(interval, Some(refresher)));
                    if require {
                        resp.headers
                            .push(Header::Require(h::Require::new(session::TIMER_TAG)));
                    }
                    Some(session::uas_result(interval, refresher, now))
                }
                UasDecision::TooSmall => {
                    let interval = u32::try_from(self.cfg.min_se.as_secs()).unwrap_or(u32::MAX);
                    resp.headers
                        .push(session::session_expires(interval, Some(Side::Uas)));
                    Some(session::uas_result(interval, Side::Uas, now))
                }
                UasDecision::Off => None,
            };
        self.set_session(id, session);
    }

    /// Our answer to a refresh (re-INVITE/UPDATE): 200 with our last SDP — its direction the
    /// mirror of the offer's ([`direction::answer`]: hold is answered `recvonly`) — finished by
    /// `uas_respond` (Contact, session headers, timer restarted).
    pub fn answer_with_last_sdp(
        &mut self,
        now: Instant,
        req: &rsip::Request,
    ) -> Result<rsip::Response, DialogError> {
        let id = DialogId::of_received(req).ok_or(DialogError::MissingHeader("To tag"))?;
        let d = self
            .dialogs
            .get_mut(&id)
            .ok_or_else(|| DialogError::NotFound(id.clone()))?;
        let sdp = d
            .local_sdp
            .as_deref()
            .map(|ours| direction::answer(&req.body, ours));
        if let Some(sdp) = &sdp {
            d.local_sdp = Some(sdp.clone());
        }
        let mut resp = make_response(req, 200, None);
        if let Some(sdp) = sdp {
            set_body(&mut resp.headers, &mut resp.body, Body::sdp(sdp));
        }
        self.uas_respond(now, req, resp)
    }

    // ---- in-dialog requests received ----

    /// Matches a received request with a To tag (or an ACK) to its dialog and says what to do.
    pub fn on_request(&mut self, _now: Instant, req: &rsip::Request) -> InDialog {
        let is_ack = req.method == Method::Ack;
        let reply = |code: u16| (!is_ack).then(|| make_response(req, code, None));
        let Some(id) = DialogId::of_received(req) else {
            return InDialog::NoDialog {
                response: reply(481),
            };
        };
        let Some(cseq) = cseq_of(&req.headers).map(|c| c.0) else {
            return InDialog::Invalid {
                response: reply(400),
            };
        };
        let Some(d) = self.dialogs.get_mut(&id) else {
            return InDialog::NoDialog {
                response: reply(481),
            };
        };
        if is_ack {
            return InDialog::Ack {
                id,
                body: req.body.clone(),
            };
        }
        if d.remote_cseq.is_some_and(|r| cseq < r) {
            return InDialog::BadCSeq {
                id,
                response: make_response(req, 500, None),
            };
        }
        d.remote_cseq = Some(cseq);
        match req.method {
            Method::Bye => {
                // also the BYE glare case: our own BYE's answer will find nothing
                self.remove(&id, Some(EndReason::ByeReceived));
                InDialog::Bye {
                    id,
                    response: make_response(req, 200, None),
                }
            }
            Method::Invite if d.invite_pending => InDialog::Pending {
                id,
                response: make_response(req, 491, None),
            },
            Method::Invite | Method::Update => {
                if let Some(response) = self.check_interval(req, None) {
                    return InDialog::IntervalTooSmall { id, response };
                }
                if let (Some(d), Some(uri)) = (self.dialogs.get_mut(&id), contact_uri(&req.headers))
                {
                    d.remote_target = uri;
                }
                let offer = req.body.clone();
                if req.method == Method::Invite {
                    InDialog::ReInvite { id, offer }
                } else {
                    InDialog::Update { id, offer }
                }
            }
            _ => InDialog::Other { id },
        }
    }

    // ---- UAC ----

    /// A new out-of-dialog INVITE: From with a fresh tag, new Call-ID, CSeq 1, our Contact,
    /// session-timer offer, Max-Forwards 70, Via with a fresh branch. `from`/`to` are name-addr
    /// or addr-spec values without tag. No state is kept until a response arrives.
    pub fn uac_invite(
        &mut self,
        transport: Transport,
        uri: &str,
        from: &str,
        to: &str,
        body: Option<Body>,
    ) -> Result<rsip::Request, DialogError> {
        let ruri = wire::parse_uri(uri).ok_or_else(|| DialogError::BadUri(uri.into()))?;
        for v in [from, to] {
            addr_uri(v).ok_or_else(|| DialogError::BadUri(v.into()))?;
        }
        let from = format!("{};tag={}", name_addr(from), self.ids.next_id());
        let call_id = format!("{}{}", self.ids.next_id(), self.ids.next_id());
        let mut headers = rsip::Headers::default();
        headers.push(self.via(transport));
        headers.push(h::MaxForwards::new("70").into());
        headers.push(h::From::new(from).into());
        headers.push(h::To::new(name_addr(to)).into());
        headers.push(h::CallId::new(call_id).into());
        headers.push(h::CSeq::new("1 INVITE").into());
        self.add_contact(&mut headers, transport);
        headers.extend(session::request_headers(
            self.cfg.session_expires,
            self.cfg.min_se,
            None,
        ));
        let mut req = rsip::Request {
            method: Method::Invite,
            uri: ruri,
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        };
        if let Some(b) = body {
            set_body(&mut req.headers, &mut req.body, b);
        }
        Ok(req)
    }

    /// The INVITE again after a 422 (RFC 4028 §7.4): CSeq + 1, a fresh branch, and
    /// Session-Expires / Min-SE raised to the 422's Min-SE. `None` when the 422 names none.
    pub fn uac_retry_422(
        &mut self,
        invite: &rsip::Request,
        resp: &rsip::Response,
    ) -> Option<rsip::Request> {
        let min = Offer::read(&resp.headers).min_se?;
        let (n, _) = cseq_of(&invite.headers)?;
        let mut req = invite.clone();
        req.headers.retain(|h| match h {
            Header::CSeq(_) => false,
            Header::Other(n, _) => {
                !n.eq_ignore_ascii_case("Session-Expires") && !n.eq_ignore_ascii_case("Min-SE")
            }
            _ => true,
        });
        req.headers
            .push(h::CSeq::new(format!("{} INVITE", n.checked_add(1)?)).into());
        req.headers.push(session::session_expires(min, None));
        req.headers
            .push(session::min_se_header(Duration::from_secs(min.into())));
        let branch = self.branch();
        edit_top_via(&mut req.headers, |via| {
            via.params
                .retain(|(n, _)| !n.eq_ignore_ascii_case("branch"));
            via.params.push(("branch".into(), Some(branch)));
            true
        });
        Some(req)
    }

    /// A response to our out-of-dialog INVITE: a 1xx with To tag makes an early dialog, a 2xx
    /// confirms one (route set = Record-Route reversed, remote target = Contact), a non-2xx
    /// final ends its early dialogs. Returns the dialog the response belongs to; on a 2xx
    /// (first or retransmitted) the driver sends `build_ack`.
    pub fn uac_response(
        &mut self,
        now: Instant,
        invite: &rsip::Request,
        resp: &rsip::Response,
    ) -> Option<DialogId> {
        let code = resp.status_code.code();
        if code <= 100 {
            return None;
        }
        let call_id = call_id(invite)?;
        let local_tag = tag_of(&invite.headers, true)?;
        if code >= 300 {
            let key = (call_id, local_tag);
            for remote_tag in self.forks.get(&key).cloned().unwrap_or_default() {
                let id = DialogId {
                    call_id: key.0.clone(),
                    local_tag: key.1.clone(),
                    remote_tag,
                };
                if self.dialogs.get(&id).map(|d| d.state) == Some(DialogState::Early) {
                    self.remove(&id, Some(EndReason::Rejected(code)));
                }
            }
            return None;
        }
        let id = DialogId {
            call_id,
            local_tag,
            remote_tag: tag_of(&resp.headers, false)?,
        };
        if !self.dialogs.contains_key(&id) {
            // a late 1xx from another fork after a 2xx: nothing would ever end that dialog
            let answered = self
                .forks
                .get(&(id.call_id.clone(), id.local_tag.clone()))
                .is_some_and(|tags| {
                    tags.iter().any(|t| {
                        let other = DialogId {
                            remote_tag: t.clone(),
                            ..id.clone()
                        };
                        self.dialogs
                            .get(&other)
                            .is_some_and(|d| d.state != DialogState::Early)
                    })
                });
            if code < 200 && answered {
                return None;
            }
            let d = new_uac_dialog(id.clone(), invite, resp)?;
            self.dialogs.insert(id.clone(), d);
            self.forks
                .entry((id.call_id.clone(), id.local_tag.clone()))
                .or_default()
                .push(id.remote_tag.clone());
        }
        let d = self.dialogs.get_mut(&id)?;
        if let Some(uri) = contact_uri(&resp.headers) {
            d.remote_target = uri;
        }
        if code >= 200 && d.state == DialogState::Early {
            // §13.2.2.4: the route set is recomputed from the 2xx
            d.route_set = record_routes(&resp.headers);
            d.route_set.reverse();
            d.state = DialogState::Confirmed;
            let session = session::uac_result(&Offer::read(&resp.headers), now);
            self.set_session(&id, session);
            let mut extra = false;
            let siblings = self
                .forks
                .get(&(id.call_id.clone(), id.local_tag.clone()))
                .cloned()
                .unwrap_or_default();
            for remote_tag in siblings.into_iter().filter(|t| *t != id.remote_tag) {
                let other = DialogId {
                    remote_tag,
                    ..id.clone()
                };
                match self.dialogs.get(&other).map(|d| d.state) {
                    Some(DialogState::Early) => self.remove(&other, Some(EndReason::ForkLost)),
                    Some(_) => extra = true,
                    None => {}
                }
            }
            self.events.push_back(if extra {
                DialogEvent::ExtraAnswer { id: id.clone() }
            } else {
                DialogEvent::Confirmed { id: id.clone() }
            });
        }
        Some(id)
    }

    /// The ACK of the 2xx to our last INVITE (§13.2.2.4): Request-URI = remote target, Route =
    /// route set, CSeq number of the INVITE, a new branch. The same ACK every time for the same
    /// INVITE, so retransmitted 2xx are re-ACKed identically.
    pub fn build_ack(&mut self, id: &DialogId) -> Result<rsip::Request, DialogError> {
        let d = self
            .dialogs
            .get(id)
            .ok_or_else(|| DialogError::NotFound(id.clone()))?;
        if d.invite_cseq == 0 || d.state == DialogState::Early {
            return Err(DialogError::InvalidState {
                id: id.clone(),
                state: d.state,
                method: Method::Ack,
            });
        }
        if let Some(ack) = &d.ack {
            return Ok(ack.clone());
        }
        let transport = d.transport;
        let via = self.via(transport);
        let Some(d) = self.dialogs.get_mut(id) else {
            return Err(DialogError::NotFound(id.clone()));
        };
        let ack = base_request(d, Method::Ack, d.invite_cseq, via);
        d.ack = Some(ack.clone());
        Ok(ack)
    }

    /// A new request inside a dialog (§12.2.1.1): BYE, re-INVITE or UPDATE (session refresh,
    /// hold), INFO …; CSeq = last + 1, Request-URI and Route from remote target and route set.
    /// After BYE the dialog is Terminating and takes no more requests.
    pub fn request(
        &mut self,
        id: &DialogId,
        method: Method,
        body: Option<Body>,
    ) -> Result<rsip::Request, DialogError> {
        if matches!(method, Method::Ack | Method::Cancel) {
            return Err(DialogError::NotARequest(method));
        }
        let transport = self
            .dialogs
            .get(id)
            .ok_or_else(|| DialogError::NotFound(id.clone()))?
            .transport;
        let branch = self.branch();
        let via = self.via_with(&branch, transport);
        let contact = self.contact(transport);
        let cfg = &self.cfg;
        let d = self
            .dialogs
            .get_mut(id)
            .ok_or_else(|| DialogError::NotFound(id.clone()))?;
        let refused = match d.state {
            DialogState::Terminating => true,
            // the callee must not BYE an early dialog (§15) and re-INVITE needs a confirmed one
            DialogState::Early => {
                method == Method::Invite || (method == Method::Bye && d.role == DialogRole::Uas)
            }
            DialogState::Confirmed => method == Method::Invite && d.invite_pending,
        };
        if refused {
            return Err(DialogError::InvalidState {
                id: id.clone(),
                state: d.state,
                method,
            });
        }
        d.local_cseq = d.local_cseq.wrapping_add(1).max(1);
        let mut req = base_request(d, method, d.local_cseq, via);
        if matches!(method, Method::Invite | Method::Update) {
            req.headers.push(contact);
            req.headers.extend(session::request_headers(
                cfg.session_expires,
                cfg.min_se,
                d.session.as_ref(),
            ));
        }
        if let Some(b) = body {
            if matches!(method, Method::Invite | Method::Update) {
                d.local_sdp = Some(b.bytes.clone());
            }
            set_body(&mut req.headers, &mut req.body, b);
        }
        match method {
            Method::Invite => {
                d.invite_cseq = d.local_cseq;
                d.ack = None;
                d.invite_pending = true;
            }
            Method::Bye => {
                d.state = DialogState::Terminating;
                // no refresh or expiry matters any more
                if let Some(slot) = d.timer.take() {
                    self.timers.remove(&slot);
                }
            }
            _ => {}
        }
        Ok(req)
    }

    /// A final response to a request we sent in a dialog: our BYE's ends the dialog, 481/408
    /// to anything ends it (§12.2.1.2), a 2xx to re-INVITE/UPDATE refreshes the remote target
    /// and restarts the session timer. Returns the dialog if it still exists (on a 2xx to a
    /// re-INVITE the driver sends `build_ack`).
    pub fn on_request_response(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        resp: &rsip::Response,
    ) -> Option<DialogId> {
        let code = resp.status_code.code();
        if code < 200 {
            return None;
        }
        let id = DialogId::of_sent(req)?;
        let d = self.dialogs.get_mut(&id)?;
        if req.method == Method::Bye {
            self.remove(&id, Some(EndReason::ByeSent));
            return None;
        }
        if code == 481 || code == 408 {
            self.remove(&id, Some(EndReason::RequestFailed(code)));
            return None;
        }
        if req.method == Method::Invite {
            d.invite_pending = false;
        }
        if matches!(req.method, Method::Invite | Method::Update) && (200..300).contains(&code) {
            if let Some(uri) = contact_uri(&resp.headers) {
                d.remote_target = uri;
            }
            let session = session::uac_result(&Offer::read(&resp.headers), now);
            self.set_session(&id, session);
        }
        Some(id)
    }

    // ---- internals ----

    /// Installs a session timer (or none) and arms its first deadline.
    fn set_session(&mut self, id: &DialogId, session: Option<SessionTimer>) {
        let Some(d) = self.dialogs.get_mut(id) else {
            return;
        };
        d.session = session;
        if let Some(slot) = d.timer.take() {
            self.timers.remove(&slot);
        }
        if let Some(s) = session {
            match s.refresher {
                Refresher::Local => self.arm(id, s.refresh_at(), TimerKind::Refresh),
                Refresher::Remote => self.arm(id, s.expires_at(), TimerKind::Expire),
            }
        }
    }

    fn arm(&mut self, id: &DialogId, at: Instant, kind: TimerKind) {
        let Some(d) = self.dialogs.get_mut(id) else {
            return;
        };
        if let Some(slot) = d.timer.take() {
            self.timers.remove(&slot);
        }
        self.timer_seq += 1;
        let slot = (at, self.timer_seq);
        d.timer = Some(slot);
        self.timers.insert(slot, (id.clone(), kind));
    }

    /// Drops a dialog with its timer and fork entry; queues `Terminated` when `reason` is given.
    fn remove(&mut self, id: &DialogId, reason: Option<EndReason>) {
        let Some(d) = self.dialogs.remove(id) else {
            return;
        };
        if let Some(slot) = d.timer {
            self.timers.remove(&slot);
        }
        let key = (id.call_id.clone(), id.local_tag.clone());
        if let (DialogRole::Uac, Some(tags)) = (d.role, self.forks.get_mut(&key)) {
            tags.retain(|t| *t != id.remote_tag);
            if tags.is_empty() {
                self.forks.remove(&key);
            }
        }
        if let Some(reason) = reason {
            self.events.push_back(DialogEvent::Terminated {
                id: id.clone(),
                reason,
            });
        }
    }

    fn branch(&mut self) -> String {
        format!("{MAGIC_COOKIE}{}", self.ids.next_id())
    }

    fn via_with(&self, branch: &str, transport: Transport) -> Header {
        let sent_by = match (&self.cfg.tls, transport) {
            (Some((_, sent_by)), Transport::Tls) => sent_by,
            _ => &self.cfg.sent_by,
        };
        h::Via::new(format!(
            "SIP/2.0/{} {sent_by};branch={branch}",
            transport.via_name(),
        ))
        .into()
    }

    fn via(&mut self, transport: Transport) -> Header {
        let branch = self.branch();
        self.via_with(&branch, transport)
    }

    fn contact(&self, transport: Transport) -> Header {
        let uri = match (&self.cfg.tls, transport) {
            (Some((contact, _)), Transport::Tls) => contact,
            _ => &self.cfg.local_contact,
        };
        h::Contact::new(format!("<{uri}>")).into()
    }

    /// Our Contact for a response to `req`: over TLS, `sips:` when the request was for a
    /// `sips:` URI (RFC 3261 §8.1.1.8), else `sip:` with `transport=tls`.
    fn response_contact(&self, headers: &mut rsip::Headers, req: &rsip::Request) {
        let transport = via_transport(&req.headers);
        if headers.iter().any(|h| matches!(h, Header::Contact(_))) {
            return;
        }
        match (&self.cfg.tls, transport) {
            (Some((contact, _)), Transport::Tls) if req.uri.scheme == Some(rsip::Scheme::Sips) => {
                let sips = contact
                    .replacen("sip:", "sips:", 1)
                    .replace(";transport=tls", "");
                headers.push(h::Contact::new(format!("<{sips}>")).into());
            }
            _ => headers.push(self.contact(transport)),
        }
    }

    fn add_contact(&self, headers: &mut rsip::Headers, transport: Transport) {
        if !headers.iter().any(|h| matches!(h, Header::Contact(_))) {
            headers.push(self.contact(transport));
        }
    }
}

fn new_uac_dialog(id: DialogId, invite: &rsip::Request, resp: &rsip::Response) -> Option<Dialog> {
    let (cseq, _) = cseq_of(&invite.headers)?;
    // a 1xx without Contact still makes an early dialog; the 2xx's Contact replaces the target
    let target = contact_uri(&resp.headers).unwrap_or_else(|| invite.uri.clone());
    let mut route_set = record_routes(&resp.headers);
    route_set.reverse();
    Some(Dialog {
        id,
        state: DialogState::Early,
        role: DialogRole::Uac,
        local_uri: invite.from_header().ok()?.value().to_string(),
        remote_uri: resp.to_header().ok()?.value().to_string(),
        remote_target: target,
        route_set,
        local_cseq: cseq,
        remote_cseq: None,
        secure: invite.uri.scheme == Some(rsip::Scheme::Sips),
        session: None,
        local_sdp: (!invite.body.is_empty()).then(|| invite.body.clone()),
        transport: via_transport(&invite.headers),
        invite_cseq: cseq,
        ack: None,
        invite_pending: false,
        timer: None,
    })
}

/// Request skeleton of a dialog: Request-URI, Via, Max-Forwards, Route, From, To, Call-ID, CSeq.
fn base_request(d: &Dialog, method: Method, cseq: u32, via: Header) -> rsip::Request {
    let (uri, routes) = d.routing();
    let mut headers = rsip::Headers::default();
    headers.push(via);
    headers.push(h::MaxForwards::new("70").into());
    for r in routes {
        headers.push(h::Route::new(r).into());
    }
    headers.push(h::From::new(d.local_uri.clone()).into());
    headers.push(h::To::new(d.remote_uri.clone()).into());
    headers.push(h::CallId::new(d.id.call_id.clone()).into());
    headers.push(h::CSeq::new(format!("{cseq} {method}")).into());
    rsip::Request {
        method,
        uri,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Puts `body` in a message with its Content-Type (Content-Length is written by `wire`).
fn set_body(headers: &mut rsip::Headers, dst: &mut Vec<u8>, body: Body) {
    headers.retain(|h| !matches!(h, Header::ContentType(_) | Header::ContentLength(_)));
    headers.push(h::ContentType::new(body.content_type).into());
    *dst = body.bytes;
}

fn call_id(msg: &impl HeadersExt) -> Option<String> {
    msg.call_id_header()
        .ok()
        .map(|c| c.value().trim().to_string())
}

/// Every Record-Route value in message order (wire gives one header per value).
fn record_routes(headers: &rsip::Headers) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| match h {
            Header::RecordRoute(r) => Some(r.value().trim().to_string()),
            _ => None,
        })
        .collect()
}

/// The first Contact's URI; `None` when absent, `*` or unreadable.
fn contact_uri(headers: &rsip::Headers) -> Option<rsip::Uri> {
    headers.iter().find_map(|h| match h {
        Header::Contact(c) => addr_uri(c.value()),
        _ => None,
    })
}

/// The URI of a name-addr / addr-spec value, parsed with `wire::parse_uri`.
fn addr_uri(v: &str) -> Option<rsip::Uri> {
    wire::parse_uri(addr_spec(v)?)
}

/// The addr-spec inside a name-addr (`"Name" <uri>;p` → `uri`) or a bare one (`uri;p` → `uri`).
fn addr_spec(v: &str) -> Option<&str> {
    let v = v.trim();
    // skip a quoted display name: it may contain '<'
    let mut start = 0;
    if let Some(quoted) = v.strip_prefix('"') {
        let mut esc = false;
        let close = quoted.char_indices().find_map(|(i, c)| match (esc, c) {
            (true, _) => {
                esc = false;
                None
            }
            (false, '\\') => {
                esc = true;
                None
            }
            (false, '"') => Some(i + 1),
            _ => None,
        })?;
        start = close + 1;
    }
    let rest = &v[start..];
    match rest.find('<') {
        Some(open) => {
            let inner = &rest[open + 1..];
            Some(inner[..inner.find('>')?].trim())
        }
        None if start > 0 => None,
        None => Some(rest.split(';').next()?.trim()).filter(|s| !s.is_empty()),
    }
}

/// A From/To value that can take a `;tag=`: bare addr-specs are bracketed so their URI
/// parameters are not read as header parameters.
fn name_addr(v: &str) -> String {
    let v = v.trim();
    if v.contains('<') {
        v.to_string()
    } else {
        format!("<{v}>")
    }
}

/// The transport named in the top Via (what a dialog's requests must use too).
fn via_transport(headers: &rsip::Headers) -> Transport {
    match TopVia::of(headers).map(|v| v.transport.to_ascii_uppercase()) {
        Some(t) if t == "TCP" => Transport::Tcp,
        Some(t) if t == "TLS" => Transport::Tls,
        _ => Transport::Udp,
    }
}
