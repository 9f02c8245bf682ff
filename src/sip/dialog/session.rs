//! RFC 4028 session timers: reading Session-Expires / Min-SE / option tags, choosing interval and
//! refresher, and the two deadlines of §10. Pure: the layer owns the clock and the timer queue.

use rsip::headers::untyped::UntypedHeader;
use rsip::Header;
use std::time::{Duration, Instant};

use crate::sip::transaction::header_param;

/// The option tag of RFC 4028.
pub(super) const TIMER_TAG: &str = "timer";

/// Who sends the session refreshes of a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// We refresh: [`super::DialogEvent::RefreshDue`] at half the interval.
    Local,
    /// The peer refreshes: [`super::DialogEvent::SessionExpired`] if it does not in time.
    Remote,
}

/// The negotiated session timer of one dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// The session interval (Session-Expires).
    pub interval: Duration,
    /// Who refreshes.
    pub refresher: Refresher,
    /// When the last refresh (or the session itself) was accepted with a 2xx.
    pub refreshed_at: Instant,
}

impl SessionTimer {
    /// When the refresher sends its refresh: half the interval (§10).
    pub fn refresh_at(&self) -> Instant {
        self.refreshed_at + self.interval / 2
    }

    /// When the session is over without a refresh: interval − min(32 s, interval/3) (§10), so a
    /// refresh that is late by one transaction timeout still counts.
    pub fn expires_at(&self) -> Instant {
        self.refreshed_at + self.interval - (self.interval / 3).min(Duration::from_secs(32))
    }
}

/// The `refresher` parameter, which names a side of the transaction that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Uac,
    Uas,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Uac => "uac",
            Side::Uas => "uas",
        }
    }
}

/// What one request or response says about session timers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Offer {
    /// Session-Expires delta-seconds; a garbled value counts as absent.
    pub expires: Option<u32>,
    /// Its `refresher` parameter.
    pub refresher: Option<Side>,
    /// Min-SE delta-seconds.
    pub min_se: Option<u32>,
    /// `timer` in Supported or Require: the sender can refresh.
    pub supported: bool,
}

impl Offer {
    /// Reads the session-timer headers of a message.
    pub(super) fn read(headers: &rsip::Headers) -> Offer {
        let mut o = Offer::default();
        for h in headers.iter() {
            match h {
                Header::Supported(v) => o.supported |= has_tag(v.value()),
                Header::Require(v) => o.supported |= has_tag(v.value()),
                Header::Other(n, v) if n.eq_ignore_ascii_case("Session-Expires") => {
                    o.expires = delta(v);
                    o.refresher = match header_param(v, "refresher") {
                        Some(r) if r.eq_ignore_ascii_case("uac") => Some(Side::Uac),
                        Some(r) if r.eq_ignore_ascii_case("uas") => Some(Side::Uas),
                        _ => None,
                    };
                }
                Header::Other(n, v) if n.eq_ignore_ascii_case("Min-SE") => o.min_se = delta(v),
                _ => {}
            }
        }
        o
    }
}

fn has_tag(list: &str) -> bool {
    list.split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(TIMER_TAG))
}

/// `delta-seconds *(;param)`.
fn delta(v: &str) -> Option<u32> {
    v.split(';').next()?.trim().parse().ok()
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// What the UAS of an INVITE or UPDATE does about session timers (RFC 4028 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UasDecision {
    /// No session timer for this dialog.
    Off,
    /// Reject with 422 and our Min-SE.
    TooSmall,
    /// Answer with this interval and refresher; `require` adds `Require: timer`.
    Timer {
        interval: u32,
        refresher: Side,
        require: bool,
    },
}

/// Decides as UAS. `expires` zero means we do not do session timers.
pub(super) fn uas_negotiate(offer: &Offer, expires: Duration, min_se: Duration) -> UasDecision {
    if expires.is_zero() {
        return UasDecision::Off;
    }
    let ours = secs(expires);
    let our_min = secs(min_se);
    let floor = offer.min_se.unwrap_or(0).max(our_min);
    let interval = match offer.expires {
        Some(se) if se < our_min => return UasDecision::TooSmall,
        // we may shorten the offered interval, never below either Min-SE
        Some(se) => se.min(ours).max(floor),
        None if offer.supported => ours.max(floor),
        // the UAC knows nothing of timers and no proxy asked for one
        None => return UasDecision::Off,
    };
    // a UAC that does not support timers cannot refresh, whatever a proxy wrote
    let refresher = match (offer.supported, offer.refresher) {
        (false, _) => Side::Uas,
        (true, Some(side)) => side,
        (true, None) => Side::Uac,
    };
    UasDecision::Timer {
        interval,
        refresher,
        require: offer.supported,
    }
}

/// The timer a 2xx we received as UAC of an INVITE/UPDATE sets; `None` when it carries no
/// Session-Expires, which means no session expiration (§7.2).
pub(super) fn uac_result(offer: &Offer, now: Instant) -> Option<SessionTimer> {
    let interval = offer.expires.filter(|&s| s > 0)?;
    let refresher = match offer.refresher {
        Some(Side::Uas) => Refresher::Remote,
        Some(Side::Uac) | None => Refresher::Local,
    };
    Some(SessionTimer {
        interval: Duration::from_secs(interval.into()),
        refresher,
        refreshed_at: now,
    })
}

/// The timer a 2xx we sent as UAS sets.
pub(super) fn uas_result(interval: u32, refresher: Side, now: Instant) -> SessionTimer {
    SessionTimer {
        interval: Duration::from_secs(interval.into()),
        refresher: match refresher {
            Side::Uas => Refresher::Local,
            Side::Uac => Refresher::Remote,
        },
        refreshed_at: now,
    }
}

/// `Session-Expires: N[;refresher=x]`.
pub(super) fn session_expires(interval: u32, refresher: Option<Side>) -> Header {
    let v = match refresher {
        Some(r) => format!("{interval};refresher={}", r.name()),
        None => interval.to_string(),
    };
    Header::Other("Session-Expires".into(), v)
}

/// `Min-SE: N`.
pub(super) fn min_se_header(min_se: Duration) -> Header {
    Header::Other("Min-SE".into(), secs(min_se).to_string())
}

/// Session-timer headers of a request we send as UAC: the initial INVITE offers our interval
/// and lets the UAS pick the refresher; a refresh keeps the current interval and refresher.
pub(super) fn request_headers(
    expires: Duration,
    min_se: Duration,
    current: Option<&SessionTimer>,
) -> Vec<Header> {
    if expires.is_zero() {
        return Vec::new();
    }
    let se = match current {
        Some(t) => session_expires(
            secs(t.interval),
            Some(match t.refresher {
                Refresher::Local => Side::Uac,
                Refresher::Remote => Side::Uas,
            }),
        ),
        None => session_expires(secs(expires), None),
    };
    vec![
        Header::Supported(rsip::headers::Supported::new(TIMER_TAG)),
        se,
        min_se_header(min_se),
    ]
}
