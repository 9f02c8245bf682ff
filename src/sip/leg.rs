//! Call legs: the SIP layer's API for the layers above. A leg is one INVITE dialog, placed
//! through a trunk or received from one; `call/` and `dialer/` drive calls only through
//! [`SipHandle`] and the [`LegEvent`]s of each [`Leg`].

use crate::config::MediaEncryption;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Identifies one call leg; unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

impl std::fmt::Display for LegId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "leg-{}", self.0)
    }
}

/// An outbound call to place.
#[derive(Debug, Clone)]
pub struct Dial {
    /// Trunk by name; `None` picks the least loaded trunk that is up.
    pub trunk: Option<String>,
    /// Number to call (the Request-URI user part, before the trunk's rules).
    pub to: String,
    /// Number shown to the called party (From, and P-Asserted-Identity when the trunk sends
    /// it); `None` takes the trunk's default caller ID.
    pub caller_id: Option<String>,
    /// Display name in From.
    pub display_name: Option<String>,
    /// SDP offer for the INVITE.
    pub sdp: Option<Vec<u8>>,
    /// CANCEL when no answer after this long.
    pub ring_timeout: Duration,
    /// Extra headers for the INVITE.
    pub headers: Vec<(String, String)>,
    /// Try the named trunk even when its keepalive says it is down (test calls).
    pub even_if_down: bool,
    /// Call the phone registered for this SIP account (its latest binding) instead of a
    /// number through a trunk; `trunk` is then ignored.
    pub account: Option<String>,
}

impl Dial {
    /// A call to `to` through any trunk that is up, with the defaults.
    pub fn new(to: impl Into<String>) -> Self {
        Self {
            trunk: None,
            to: to.into(),
            caller_id: None,
            display_name: None,
            sdp: None,
            ring_timeout: Duration::from_secs(30),
            headers: Vec::new(),
            even_if_down: false,
            account: None,
        }
    }
}

/// Why an outbound leg was never answered (or an inbound one never answered by us).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No trunk could take it: unknown, down or full.
    Unavailable,
    /// Every trunk that could take it is at its `max_cps` now: a moment later it may.
    RateLimited,
    /// The far end answered with a final non-2xx response.
    Rejected,
    /// Cancelled at the ring timeout.
    NoAnswer,
    /// Hung up by us before the answer.
    Cancelled,
    /// No final response at all (Timer B).
    Timeout,
    /// The trunk could not be reached.
    TransportError,
    /// The trunk's digest challenge could not be met.
    AuthFailed,
    /// The caller gave up (CANCEL) before we answered an inbound leg.
    CallerCancelled,
    /// The daemon is stopping.
    Shutdown,
}

impl Failure {
    /// The snake_case name used in reports and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Unavailable => "unavailable",
            Failure::RateLimited => "rate_limited",
            Failure::Rejected => "rejected",
            Failure::NoAnswer => "no_answer",
            Failure::Cancelled => "cancelled",
            Failure::Timeout => "timeout",
            Failure::TransportError => "transport_error",
            Failure::AuthFailed => "auth_failed",
            Failure::CallerCancelled => "caller_cancelled",
            Failure::Shutdown => "shutdown",
        }
    }
}

/// Why an answered leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEnd {
    /// The far end sent BYE.
    RemoteBye,
    /// We hung up.
    LocalBye,
    /// RFC 4028: the session was not refreshed in time.
    SessionExpired,
    /// Our 2xx was never ACKed.
    NoAck,
    /// An in-dialog request got 481 or 408: the far end has forgotten the call.
    Lost(u16),
    /// The daemon is stopping.
    Shutdown,
}

impl LegEnd {
    /// The snake_case name used in call records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            LegEnd::RemoteBye => "remote_bye",
            LegEnd::LocalBye => "local_bye",
            LegEnd::SessionExpired => "session_expired",
            LegEnd::NoAck => "no_ack",
            LegEnd::Lost(_) => "lost",
            LegEnd::Shutdown => "shutdown",
        }
    }
}

/// What happens to a leg, in order. After `Failed` or `Ended` nothing more comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// A provisional response (100, 180, 183 …); `sdp` is early media's answer.
    Progress {
        /// Status code.
        code: u16,
        /// SDP body, when it carried one.
        sdp: Option<Vec<u8>>,
    },
    /// The trunk challenged the INVITE (401/407) and it was re-sent with credentials.
    Challenged {
        /// 401 or 407.
        code: u16,
    },
    /// Answered (outbound: the 2xx came and was ACKed; inbound: our 2xx was ACKed).
    Answered {
        /// The far end's SDP (outbound answer or, inbound, nothing new: `None`).
        sdp: Option<Vec<u8>>,
        /// The far end is known to be behind NAT (its trunk's `nat`): its media may come from
        /// another address than its SDP names.
        behind_nat: bool,
    },
    /// Never answered.
    Failed {
        /// What kind of failure.
        failure: Failure,
        /// The final SIP status, when one came.
        code: Option<u16>,
        /// Reason phrase or explanation.
        reason: String,
    },
    /// The far end sent a new offer in a re-INVITE or UPDATE; it was answered with our
    /// current SDP.
    Reoffer {
        /// The new SDP.
        sdp: Vec<u8>,
    },
    /// An INFO request (e.g. `application/dtmf-relay`); it was answered 200. Boxed: rare, and
    /// events are stored 32 to a block in every leg's channel.
    Info(Box<InfoRequest>),
    /// An answered leg ended.
    Ended {
        /// Why.
        reason: LegEnd,
    },
}

/// An INFO request's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoRequest {
    /// Its Content-Type.
    pub content_type: String,
    /// Its body.
    pub body: Vec<u8>,
}

/// A placed or received leg: its id and the stream of its events.
#[derive(Debug)]
pub struct Leg {
    /// The leg.
    pub id: LegId,
    /// Its events; `None` once the leg is gone.
    pub events: mpsc::UnboundedReceiver<LegEvent>,
}

/// An INVITE for someone above the SIP layer to answer or reject.
#[derive(Debug)]
pub struct Incoming {
    /// The leg.
    pub leg: Leg,
    /// Request-URI user part: the number called.
    pub to_user: String,
    /// From's user part: the caller's number.
    pub from_user: String,
    /// The From header as received.
    pub from: String,
    /// Headers the call layer may route on (Diversion, History-Info, P-Asserted-Identity …),
    /// as received: (name, value).
    pub headers: Vec<(String, String)>,
    /// The offer (empty when the INVITE had none).
    pub sdp: Vec<u8>,
    /// Where it came from.
    pub source: SocketAddr,
    /// The local IP address to put in our SDP.
    pub local_ip: IpAddr,
    /// The trunk it came from, when its address is one of a trunk's.
    pub trunk: Option<String>,
    /// The caller is known to be behind NAT (its trunk's `nat`): its media may come from
    /// another address than its SDP names.
    pub behind_nat: bool,
    /// It came from a trunk marked `cluster_proxy`: the proxy in front of the nodes, whose
    /// [`LAST_RESORT_HEADER`] is believed (a carrier's is not).
    pub from_cluster_proxy: bool,
    /// Whether its media may be SRTP: over TLS, its trunk's `media_encryption` (or `optional`
    /// for phones); never over UDP or TCP, where SDES keys would travel in clear.
    pub media_encryption: crate::config::MediaEncryption,
}

/// The header a proxy in front of several nodes (conf/kamailio/dialerd-cluster.cfg) adds, with
/// the value `1`, when it relays a call once more after every node refused it with 503: the
/// node is to take the call whatever it dials. Trusted only from a trunk marked
/// `cluster_proxy`.
pub const LAST_RESORT_HEADER: &str = "X-Dialerd-Last-Resort";

/// What the layers above ask of the SIP endpoint.
#[derive(Debug)]
pub enum LegCommand {
    /// Place an outbound call.
    Dial {
        /// The new leg's id.
        id: LegId,
        /// What to call.
        dial: Box<Dial>,
        /// Where its events go.
        events: mpsc::UnboundedSender<LegEvent>,
    },
    /// Answer an inbound leg with 200 and this SDP.
    Answer {
        /// The leg.
        id: LegId,
        /// Our SDP answer.
        sdp: Vec<u8>,
    },
    /// Send a provisional response (180, or 183 with early-media SDP) on an inbound leg.
    Progress {
        /// The leg.
        id: LegId,
        /// 180 or 183.
        code: u16,
        /// SDP for early media.
        sdp: Option<Vec<u8>>,
    },
    /// Reject an inbound leg.
    Reject {
        /// The leg.
        id: LegId,
        /// Final status (4xx–6xx).
        code: u16,
    },
    /// End a leg: CANCEL while ringing, BYE once answered, 480 for an unanswered inbound leg.
    HangUp {
        /// The leg.
        id: LegId,
    },
    /// CANCEL a ringing outbound leg; a 2xx that crosses the CANCEL is still reported as
    /// answered (a person is there), as after the ring timeout.
    Cancel {
        /// The leg.
        id: LegId,
    },
}

/// The layers above's handle on the SIP endpoint: cheap to clone.
#[derive(Clone)]
pub struct SipHandle {
    commands: mpsc::Sender<LegCommand>,
    next_id: Arc<AtomicU64>,
    local_addrs: Arc<[SocketAddr]>,
    trunk_addrs: Arc<[(String, SocketAddr)]>,
    /// Each trunk's `media_encryption`, by name.
    trunk_encryption: Arc<[(String, MediaEncryption)]>,
}

impl SipHandle {
    /// A handle sending into `commands`; `local_addrs` are the SIP listeners, `trunk_addrs`
    /// the trunks' resolved addresses by name.
    pub fn new(
        commands: mpsc::Sender<LegCommand>,
        local_addrs: Vec<SocketAddr>,
        trunk_addrs: Vec<(String, SocketAddr)>,
    ) -> Self {
        Self {
            commands,
            next_id: Arc::new(AtomicU64::new(1)),
            local_addrs: local_addrs.into(),
            trunk_addrs: trunk_addrs.into(),
            trunk_encryption: Arc::new([]),
        }
    }

    /// The same handle knowing each trunk's `media_encryption`, by name.
    pub fn with_media_encryption(mut self, trunks: Vec<(String, MediaEncryption)>) -> Self {
        self.trunk_encryption = trunks.into();
        self
    }

    /// Whether `dial` offers SRTP: its trunk's `media_encryption`; never for a call to an
    /// agent's phone, whose binding may not be TLS.
    pub fn media_encryption_for(&self, dial: &Dial) -> MediaEncryption {
        match dial.account {
            Some(_) => MediaEncryption::None,
            None => self.media_encryption_for_trunk(dial.trunk.as_deref()),
        }
    }

    /// Whether calls placed through `trunk` offer SRTP: its `media_encryption`. `None` (any
    /// trunk) gives the setting all trunks share, and plain RTP when they differ, since the
    /// offer is written before the endpoint picks the trunk.
    pub fn media_encryption_for_trunk(&self, trunk: Option<&str>) -> MediaEncryption {
        let mut of = self
            .trunk_encryption
            .iter()
            .filter(|(name, _)| trunk.is_none_or(|t| t == name))
            .map(|(_, e)| *e);
        let first = of.next().unwrap_or_default();
        if of.all(|e| e == first) {
            first
        } else {
            MediaEncryption::None
        }
    }

    /// Places a call. Its events tell how it goes; when the endpoint is gone the stream ends
    /// at once.
    pub async fn dial(&self, dial: Dial) -> Leg {
        let id = LegId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self
            .commands
            .send(LegCommand::Dial {
                id,
                dial: Box::new(dial),
                events: tx,
            })
            .await;
        Leg { id, events: rx }
    }

    /// Answers an inbound leg.
    pub async fn answer(&self, id: LegId, sdp: Vec<u8>) {
        let _ = self.commands.send(LegCommand::Answer { id, sdp }).await;
    }

    /// Sends 180 (ringing) or 183 with early-media SDP on an inbound leg.
    pub async fn progress(&self, id: LegId, code: u16, sdp: Option<Vec<u8>>) {
        let _ = self
            .commands
            .send(LegCommand::Progress { id, code, sdp })
            .await;
    }

    /// Rejects an inbound leg with a final status.
    pub async fn reject(&self, id: LegId, code: u16) {
        let _ = self.commands.send(LegCommand::Reject { id, code }).await;
    }

    /// Ends a leg whatever its state.
    pub async fn hang_up(&self, id: LegId) {
        let _ = self.commands.send(LegCommand::HangUp { id }).await;
    }

    /// CANCELs a ringing outbound leg; an answer that crosses it still comes as answered.
    pub async fn cancel(&self, id: LegId) {
        let _ = self.commands.send(LegCommand::Cancel { id }).await;
    }

    /// The local IP address for media of a call through `trunk` (the first trunk when `None`,
    /// or the first listener when there is no trunk).
    pub fn local_ip_for_trunk(&self, trunk: Option<&str>) -> IpAddr {
        let dest = self
            .trunk_addrs
            .iter()
            .find(|(name, _)| trunk.is_none_or(|t| t == name))
            .map(|(_, a)| *a);
        match dest {
            Some(d) => self.local_ip_toward(d),
            None => self
                .local_addrs
                .first()
                .map(|a| a.ip())
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
        }
    }

    /// The local IP address for media toward `dest` (the SIP listener of the same family, or
    /// the kernel's choice of source address when it listens on a wildcard).
    pub fn local_ip_toward(&self, dest: SocketAddr) -> IpAddr {
        super::transport::local_ip_toward(&self.local_addrs, dest)
    }
}

/// Allocates leg ids inside the endpoint for inbound legs, from the same counter as the handle.
pub(crate) fn next_id(handle: &SipHandle) -> LegId {
    LegId(handle.next_id.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(trunks: &[(&str, MediaEncryption)]) -> SipHandle {
        let (tx, _rx) = mpsc::channel(1);
        SipHandle::new(tx, Vec::new(), Vec::new())
            .with_media_encryption(trunks.iter().map(|(n, e)| (n.to_string(), *e)).collect())
    }

    #[test]
    fn offers_follow_the_named_trunk_and_any_trunk_only_when_all_agree() {
        use MediaEncryption::{None as Plain, Optional, Srtp};
        let mixed = handle(&[("udp", Plain), ("tls", Srtp)]);
        assert_eq!(mixed.media_encryption_for_trunk(Some("tls")), Srtp);
        assert_eq!(mixed.media_encryption_for_trunk(Some("udp")), Plain);
        assert_eq!(mixed.media_encryption_for_trunk(Some("gone")), Plain);
        // The endpoint may pick the UDP trunk: no keys in the offer.
        assert_eq!(mixed.media_encryption_for_trunk(None), Plain);
        let all = handle(&[("a", Optional), ("b", Optional)]);
        assert_eq!(all.media_encryption_for_trunk(None), Optional);
        assert_eq!(handle(&[]).media_encryption_for_trunk(None), Plain);
        // A call to an agent's phone never carries keys, whatever the trunks say.
        let to_phone = Dial {
            account: Some("agent1".into()),
            ..Dial::new("agent1")
        };
        assert_eq!(all.media_encryption_for(&to_phone), Plain);
        assert_eq!(all.media_encryption_for(&Dial::new("100")), Optional);
    }
}
