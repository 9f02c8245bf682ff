//! One leg's RTP session, sans-IO: the per-packet logic of the RTP engine.
//!
//! A thin tokio driver owns the leg's two UDP sockets (RTP, RTCP) and its timer, and calls an
//! [`RtpSession`] with each datagram and the current time; the session tells it what arrived
//! ([`Received`]), builds what to send, and says when to wake it next
//! ([`RtpSession::poll_timeout`]). Nothing here opens a socket or reads a clock.
//!
//! - Inbound: packets are parsed with rtp-rs, checked against the negotiated payload types and
//!   the far address the SDP names or, for a peer behind NAT, the one latched (symmetric RTP;
//!   the rule is in [`latch`]),
//!   de-duplicated, counted into RTCP receiver statistics, and returned as voice, DTMF digits
//!   (RFC 4733) or telephone-event packets to relay.
//! - Outbound: one SSRC for the life of the leg; sequence numbers and timestamps stay continuous
//!   whatever feeds the leg — our own frames (prompts), packets relayed from another leg, or
//!   DTMF — with the marker bit on the first packet after each change (the rules are in
//!   [`outbound`]).
//! - RTCP: SR/RR with SDES CNAME on a randomised ~5 s interval; received SR/RR give LSR/DLSR and
//!   the round-trip time; [`RtpSession::quality`] turns loss, jitter and RTT into a MOS.
//! - Dead calls: [`RtpSession::is_dead`] once no valid RTP came for the configured timeout,
//!   never while on hold.
//!
//! Driver loop, in short: on a datagram call `on_rtp`/`on_rtcp`; at
//! [`poll_timeout`](RtpSession::poll_timeout) call `poll_dtmf` until `None`, `poll_rtcp` (send
//! what it returns to [`remote_rtcp`](RtpSession::remote_rtcp)) and `is_dead`. Send RTP to
//! [`remote_rtp`](RtpSession::remote_rtp) as it is at the time of sending: latching changes it.

pub mod latch;
pub mod outbound;
mod session;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::codec::CodecKind;
use super::dtmf;

pub use latch::{
    CANDIDATE_GAP, MAX_DROPOUT, NAT_LATCH_PACKETS, RELATCH_PACKETS, RELATCH_SILENCE,
    RELATCH_SUSTAIN,
};
pub use outbound::TALKSPURT_GAP;
pub use session::RtpSession;

/// Static payload type of comfort noise (RFC 3389); accepted as media alongside the voice codec.
pub const PT_COMFORT_NOISE: u8 = 13;
/// Packet time used when the SDP gives none (or 0).
pub const DEFAULT_PTIME_MS: u32 = 20;
/// Default dead-call timeout (`media.rtp_timeout`).
pub const DEFAULT_RTP_TIMEOUT: Duration = Duration::from_secs(30);

/// What a session needs from the SDP negotiation and the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Negotiated voice codec (PCMU/PCMA).
    pub codec: CodecKind,
    /// Payload type negotiated for the voice codec, used both ways.
    pub payload_type: u8,
    /// Negotiated telephone-event payload type, if any.
    pub telephone_event: Option<u8>,
    /// Far RTP address from the SDP; `None`, `0.0.0.0` or port 0 mean unknown until latched.
    pub remote_rtp: Option<SocketAddr>,
    /// Far RTCP address from the SDP (`a=rtcp` or RTP port + 1).
    pub remote_rtcp: Option<SocketAddr>,
    /// The far end is known to be behind NAT (its trunk's `nat`): its media may come from
    /// another address than `remote_rtp`. Off, media is taken from `remote_rtp` only.
    pub behind_nat: bool,
    /// Packet time in ms (20 normally); 0 is read as [`DEFAULT_PTIME_MS`].
    pub ptime_ms: u32,
    /// No valid RTP for this long means a dead call; zero disables the check.
    pub rtp_timeout: Duration,
    /// Our SSRC (random, chosen by the driver).
    pub ssrc: u32,
    /// Our RTCP CNAME; cut to 255 bytes.
    pub cname: String,
}

impl SessionConfig {
    /// A config for `codec` at its static payload type, 20 ms, 30 s timeout, no telephone-event
    /// and no far address yet.
    pub fn new(codec: CodecKind, ssrc: u32, cname: impl Into<String>) -> Self {
        SessionConfig {
            codec,
            payload_type: codec.payload_type(),
            telephone_event: None,
            remote_rtp: None,
            remote_rtcp: None,
            behind_nat: false,
            ptime_ms: DEFAULT_PTIME_MS,
            rtp_timeout: DEFAULT_RTP_TIMEOUT,
            ssrc,
            cname: cname.into(),
        }
    }
}

/// Header fields of a received packet, enough to relay it or feed a jitter buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPacket {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Marker bit (start of a talkspurt, or of a telephone-event).
    pub marker: bool,
    /// Payload type as received: the voice PT, [`PT_COMFORT_NOISE`] or the telephone-event PT.
    pub payload_type: u8,
    /// When the datagram arrived.
    pub received_at: Instant,
}

/// What one datagram on the RTP socket turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received<'a> {
    /// Voice (or comfort noise, PT 13) in the negotiated codec, with its payload.
    Media(MediaPacket, &'a [u8]),
    /// A complete DTMF digit (once per digit), from RFC 4733 telephone-events.
    Dtmf(dtmf::DigitEvent),
    /// A telephone-event packet that did not complete a digit (relay it if bridging; else
    /// ignore). The packet that completes a digit comes out as [`Received::Dtmf`] instead; its
    /// redundant end copies still come out here, so a relayed event keeps its end.
    DtmfPacket(MediaPacket, &'a [u8]),
    /// Dropped, and why.
    Dropped(DropReason),
}

/// Why a datagram on the RTP socket was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// Not an RTP version 2 packet, or its header is truncated or its padding is bad.
    #[error("not an RTP packet")]
    NotRtp,
    /// A payload type that was not negotiated.
    #[error("payload type {0} not negotiated")]
    UnknownPayloadType(u8),
    /// From an address other than the latched source (see the latching rule).
    #[error("from an address that is not the latched source")]
    WrongSource,
    /// A sequence number already received from this source.
    #[error("duplicate packet")]
    Duplicate,
    /// A telephone-event payload shorter than 4 bytes.
    #[error("malformed telephone-event payload")]
    BadPayload,
}

/// Packet counters for metrics; bytes are whole UDP payloads (RTP header included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// RTP packets accepted.
    pub packets_in: u64,
    /// Bytes of the RTP packets accepted.
    pub bytes_in: u64,
    /// RTP packets built for sending.
    pub packets_out: u64,
    /// Bytes of the RTP packets built for sending.
    pub bytes_out: u64,
    /// RTP datagrams dropped, for any reason (the sum of the four below).
    pub dropped: u64,
    /// Dropped: not RTP, or a malformed telephone-event payload.
    pub dropped_malformed: u64,
    /// Dropped: payload type not negotiated.
    pub dropped_unknown_pt: u64,
    /// Dropped: not from the latched source.
    pub dropped_wrong_source: u64,
    /// Dropped: duplicate sequence number.
    pub dropped_duplicate: u64,
    /// DTMF digits received (reported once each).
    pub dtmf_in: u64,
    /// DTMF digits sent.
    pub dtmf_out: u64,
    /// RTCP datagrams read.
    pub rtcp_in: u64,
    /// RTCP datagrams that did not parse.
    pub rtcp_dropped: u64,
    /// RTCP compound packets built for sending.
    pub rtcp_out: u64,
    /// Times the far address was re-latched after the first latch.
    pub relatches: u64,
}

/// `None` for an address that says "unknown": absent, unspecified IP (old-style hold) or port 0.
fn known(addr: Option<SocketAddr>) -> Option<SocketAddr> {
    addr.filter(|a| !a.ip().is_unspecified() && a.port() != 0)
}

/// Samples of `clock_rate` in `d`, wrapping like RTP timestamps do.
fn duration_to_samples(d: Duration, clock_rate: u32) -> u32 {
    (d.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u32
}

/// How long `samples` last at `clock_rate`, rounded up so that converting back reaches
/// `samples` (a 0 Hz rate is read as 1 Hz rather than dividing by 0).
fn samples_to_duration(samples: u32, clock_rate: u32) -> Duration {
    let rate = u64::from(clock_rate.max(1));
    Duration::from_nanos((u64::from(samples) * 1_000_000_000).div_ceil(rate))
}
