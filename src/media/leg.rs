//! One media leg: the thin tokio driver around a sans-IO [`RtpSession`] — its RTP and RTCP
//! sockets from the pool, SDP negotiation, and the timer for RTCP and dead-call detection.
//! When the far end offers `a=rtcp-mux` (RFC 5761) the RTCP socket is closed and RTCP shares
//! the RTP socket, so such a call holds one file descriptor instead of two.
//! On a leg with SRTP (keys from `a=crypto`, see [`MediaLeg::set_encryption`]) packets are
//! decrypted as they are read and encrypted as they are sent, RTCP as SRTCP likewise, so the
//! session, the relay, the bridge and the recorder only ever see clear RTP.
//! A leg fed by a driver in this process (a browser leg's WebRTC stack) takes and gives its
//! packets over a [`pipe`](super::pipe) instead of sockets, and holds no port.
//! The call layer owns legs (one task per call) and moves packets between them.

use super::codec::CodecKind;
use super::engine::MediaEngine;
use super::pipe::{self, PipeEnd};
use super::ports::{PortLease, PortPair};
use super::rtp::{RtpSession, SessionConfig};
use super::sdp::negotiate::{self, LocalMedia, MediaEncryption, Negotiated, SdpSession};
use super::sdp::SessionDescription;
use super::srtp::{SrtpKeys, SrtpSession};
use super::MediaError;
use crate::sip::id::random_u32;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::UdpSocket;

/// Largest RTP or RTCP datagram read: an Ethernet MTU's worth; longer ones are cut short (and
/// then fail to parse), which no G.711 or Opus packet comes near. Receive buffers of this size
/// live on the stack only while a datagram is read, never in a held call's task.
pub const MAX_DATAGRAM: usize = 1500;

/// What woke a leg up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The RTP socket is readable: read with [`MediaLeg::recv_rtp`] until it says `None`.
    Rtp,
    /// Something the leg dealt with itself: RTCP handed to the session, or a receive error
    /// (ICMP port unreachable from an earlier send shows up so on Linux).
    Handled,
    /// The session's timer: RTCP was sent if due; check [`MediaLeg::is_dead`].
    Timer,
}

/// Where a leg's packets come from and go to.
enum Wire {
    /// Sockets from the pool; `rtcp` is `None` once RTCP is multiplexed on the RTP socket.
    Udp {
        rtp: UdpSocket,
        rtcp: Option<UdpSocket>,
    },
    /// The in-process link to the driver feeding the leg; RTCP is that driver's business, so
    /// the session's reports are not sent.
    Pipe(PipeEnd),
}

impl Wire {
    async fn rtp_readable(&self) -> std::io::Result<()> {
        match self {
            Wire::Udp { rtp, .. } => rtp.readable().await,
            Wire::Pipe(p) => {
                p.readable().await;
                Ok(())
            }
        }
    }

    async fn rtcp_readable(&self) -> std::io::Result<()> {
        match self {
            Wire::Udp {
                rtcp: Some(rtcp), ..
            } => rtcp.readable().await,
            _ => std::future::pending().await,
        }
    }

    /// Whether RTCP comes in on the RTP path (multiplexed).
    fn rtcp_muxed(&self) -> bool {
        matches!(self, Wire::Udp { rtcp: None, .. })
    }

    fn try_recv_rtp(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        match self {
            Wire::Udp { rtp, .. } => rtp.try_recv_from(buf),
            Wire::Pipe(p) => p
                .try_recv(buf)
                .map(|n| (n, pipe::ADDR))
                .ok_or_else(|| std::io::ErrorKind::WouldBlock.into()),
        }
    }

    fn send_rtp(&self, datagram: &[u8], to: SocketAddr) {
        match self {
            Wire::Udp { rtp, .. } => {
                let _ = rtp.try_send_to(datagram, to);
            }
            Wire::Pipe(p) => p.send(datagram),
        }
    }

    fn send_rtcp(&self, datagram: &[u8], to: SocketAddr) {
        if let Wire::Udp { rtp, rtcp } = self {
            let _ = rtcp.as_ref().unwrap_or(rtp).try_send_to(datagram, to);
        }
    }
}

/// A leg's media: sockets (or a pipe), negotiated session, statistics.
pub struct MediaLeg {
    engine: MediaEngine,
    wire: Wire,
    lease: Option<PortLease>,
    local: SocketAddr,
    sdp: SdpSession,
    offer: Option<SessionDescription>,
    session: Option<RtpSession>,
    negotiated: Option<Negotiated>,
    /// The negotiated voice codec, set with the session (read per relayed packet).
    codec: Option<CodecKind>,
    /// The far end is known to be behind NAT (see [`MediaLeg::set_behind_nat`]).
    behind_nat: bool,
    /// SRTP contexts, when the stream is encrypted.
    srtp: Option<SrtpSession>,
    /// Packets dropped on an encrypted leg since the last flush to the metrics.
    srtp_dropped: SrtpDrops,
    counted: (u64, u64),
    /// The session's timer, kept across [`MediaLeg::input`] calls and moved when its deadline
    /// moves: a new one per call cost a timer-wheel insertion and removal per packet.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The driver's clock; tokio's so paused-time tests drive it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl MediaLeg {
    pub(super) fn new(engine: MediaEngine, pair: PortPair) -> Result<Self, MediaError> {
        let local = pair.rtp.local_addr()?;
        let wire = Wire::Udp {
            rtp: UdpSocket::from_std(pair.rtp)?,
            rtcp: Some(UdpSocket::from_std(pair.rtcp)?),
        };
        Self::with_wire(engine, wire, Some(pair.lease), local)
    }

    /// A leg on an in-process link: no socket and no port; the far end of its SDP is
    /// [`pipe::ADDR`], and what it sends goes to `driver`'s end.
    pub(super) fn piped(engine: MediaEngine) -> Result<(Self, PipeEnd), MediaError> {
        let (leg, driver) = pipe::pair();
        let leg = Self::with_wire(engine, Wire::Pipe(leg), None, pipe::ADDR)?;
        Ok((leg, driver))
    }

    fn with_wire(
        engine: MediaEngine,
        wire: Wire,
        lease: Option<PortLease>,
        local: SocketAddr,
    ) -> Result<Self, MediaError> {
        let mut media = LocalMedia::new(local.ip(), local.port());
        media.session_id = random_u32() as u64;
        getrandom::fill(&mut media.srtp_key)
            .map_err(|e| MediaError::Io(std::io::Error::other(e.to_string())))?;
        engine.metrics().sessions_active.inc();
        Ok(Self {
            engine,
            wire,
            lease,
            local,
            sdp: SdpSession::new(media),
            offer: None,
            session: None,
            negotiated: None,
            codec: None,
            behind_nat: false,
            srtp: None,
            srtp_dropped: SrtpDrops::default(),
            counted: (0, 0),
            timer: None,
        })
    }

    /// Our RTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The far end is (`on`) or is not known to be behind NAT (its trunk's `nat`): whether its
    /// media may come from another address than its SDP names. Off (the default), RTP is taken
    /// only from the SDP's address. Set it before the session starts, or at any time.
    pub fn set_behind_nat(&mut self, on: bool) {
        self.behind_nat = on;
        if let Some(s) = self.session.as_mut() {
            s.set_behind_nat(on);
        }
    }

    /// Whether this leg offers and takes SRTP (SDES keys in the SDP). Anything but `None` only
    /// on a leg signalled over TLS: over UDP or TCP the keys would travel in clear. Set it
    /// before [`MediaLeg::offer`] or [`MediaLeg::answer`].
    pub fn set_encryption(&mut self, encryption: MediaEncryption) {
        self.sdp.local.encryption = encryption;
    }

    /// Answers the far end's offer: our SDP body, and the session starts.
    pub fn answer(&mut self, offer: &[u8]) -> Result<Vec<u8>, MediaError> {
        let offer = SessionDescription::parse(offer)?;
        let answer = self.sdp.answer(&offer, self.engine.prefs())?;
        let body = answer.sdp.to_string().into_bytes();
        self.start(answer.negotiated);
        Ok(body)
    }

    /// Our offer for an outbound INVITE.
    pub fn offer(&mut self) -> Vec<u8> {
        let offer = self.sdp.offer(self.engine.prefs());
        let body = offer.to_string().into_bytes();
        self.offer = Some(offer);
        body
    }

    /// The far end's answer to our offer (in a 183 or the 2xx): the session starts.
    pub fn accept_answer(&mut self, answer: &[u8]) -> Result<(), MediaError> {
        let offer = self.offer.as_ref().ok_or(MediaError::NoOffer)?;
        let negotiated = negotiate::read_answer(offer, answer)?;
        self.start(negotiated);
        Ok(())
    }

    /// A new offer in a re-INVITE or UPDATE: new remote address, hold or resume.
    pub fn reoffer(&mut self, offer: &[u8]) -> Result<(), MediaError> {
        let offer = SessionDescription::parse(offer)?;
        let answer = self.sdp.answer(&offer, self.engine.prefs())?;
        let n = answer.negotiated;
        if let Some(s) = self.session.as_mut() {
            s.update(Some(n.remote_rtp), Some(n.remote_rtcp), n.hold, now());
        }
        self.rekey(n.srtp.clone());
        self.negotiated = Some(n);
        Ok(())
    }

    /// Starts, keeps or ends SRTP as the latest negotiation says. Same keys: the contexts (and
    /// their rollover counters and replay windows) go on.
    fn rekey(&mut self, keys: Option<SrtpKeys>) {
        if self.srtp.as_ref().map(|s| s.keys()) == keys.as_ref() {
            return;
        }
        if let Some(k) = &keys {
            tracing::debug!(local = %self.local, suite = %k.suite, "SRTP keys set");
        }
        // Negotiation only yields keys of the suite's length, which the contexts take.
        self.srtp = keys.and_then(|k| SrtpSession::new(k).ok());
    }

    fn start(&mut self, n: Negotiated) {
        self.rekey(n.srtp.clone());
        if let (true, Wire::Udp { rtcp, .. }) = (n.rtcp_mux, &mut self.wire) {
            // The port stays leased; only the descriptor goes.
            *rtcp = None;
        }
        if let Some(s) = self.session.as_mut() {
            // An answer again (183 then 200): same stream, maybe a new address.
            s.update(Some(n.remote_rtp), Some(n.remote_rtcp), n.hold, now());
            self.negotiated = Some(n);
            return;
        }
        let Some(codec) = CodecKind::from_name(&n.codec.encoding) else {
            // Negotiation only picks from media.codecs, all of which are CodecKinds.
            return;
        };
        self.codec = Some(codec);
        let known = |a: SocketAddr| (!a.ip().is_unspecified() && a.port() != 0).then_some(a);
        let mut session = RtpSession::new(
            SessionConfig {
                codec,
                payload_type: n.codec.pt,
                telephone_event: n.telephone_event,
                remote_rtp: known(n.remote_rtp),
                remote_rtcp: known(n.remote_rtcp),
                behind_nat: self.behind_nat,
                ptime_ms: n.ptime.clamp(10, 60),
                rtp_timeout: self.rtp_timeout(),
                ssrc: random_u32(),
                cname: format!("dialerd@{}", self.local),
            },
            now(),
        );
        if n.rtcp_mux {
            session.set_rtcp_mux();
        }
        self.session = Some(session);
        self.negotiated = Some(n);
    }

    fn rtp_timeout(&self) -> Duration {
        match self.engine.rtp_timeout() {
            d if d.is_zero() => Duration::from_secs(100 * 365 * 24 * 3600),
            d => d,
        }
    }

    /// The negotiated voice codec, once there is a session.
    pub fn codec(&self) -> Option<CodecKind> {
        self.codec
    }

    /// The sans-IO session, once negotiated.
    pub fn session(&mut self) -> Option<&mut RtpSession> {
        self.session.as_mut()
    }

    /// Waits for the next datagram or timer. RTCP is read and handled here; for RTP the
    /// caller reads with [`MediaLeg::recv_rtp`], so no receive buffer is kept while waiting.
    pub async fn input(&mut self) -> Input {
        let wake = self
            .session
            .as_ref()
            .and_then(|s| s.poll_timeout())
            .map(tokio::time::Instant::from_std);
        let timer = wake.map(|at| {
            let t = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if t.deadline() != at {
                t.as_mut().reset(at);
            }
            t.as_mut()
        });
        let timer = async move {
            match timer {
                Some(t) => t.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = self.wire.rtp_readable() => match r {
                Ok(()) => Input::Rtp,
                Err(_) => Input::Handled,
            },
            r = self.wire.rtcp_readable() => {
                if r.is_ok() {
                    self.recv_rtcp();
                }
                Input::Handled
            }
            _ = timer => {
                let now = now();
                if let Some(s) = self.session.as_mut() {
                    if let (Some(pkt), Some(to)) = (s.poll_rtcp(now, SystemTime::now()), s.remote_rtcp()) {
                        let pkt = match self.srtp.as_mut() {
                            Some(srtp) => srtp.protect_rtcp(&pkt).ok(),
                            None => Some(pkt),
                        };
                        if let Some(pkt) = pkt {
                            self.wire.send_rtcp(&pkt, to);
                        }
                    }
                }
                self.flush_counters();
                Input::Timer
            }
        }
    }

    /// Reads one waiting RTP datagram into `buf`: its length and source, or `None` when no
    /// more is waiting. Receive errors (ICMP port unreachable) are skipped; multiplexed RTCP
    /// is handed to the session here.
    pub fn recv_rtp(&mut self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        loop {
            match self.wire.try_recv_rtp(buf) {
                Ok((n, from)) if self.wire.rtcp_muxed() && is_rtcp(&buf[..n]) => {
                    self.on_rtcp(from, &buf[..n]);
                }
                Ok((n, from)) => match self.srtp.as_mut() {
                    None => return Some((n, from)),
                    Some(srtp) => match srtp.unprotect_rtp(&buf[..n]) {
                        Ok(clear) => {
                            buf[..clear.len()].copy_from_slice(&clear);
                            return Some((clear.len(), from));
                        }
                        Err(e) => self.count_srtp_drop(&e),
                    },
                },
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(_) => continue,
            }
        }
    }

    fn recv_rtcp(&mut self) {
        let mut buf = [0u8; MAX_DATAGRAM];
        loop {
            let Wire::Udp {
                rtcp: Some(rtcp), ..
            } = &self.wire
            else {
                return;
            };
            match rtcp.try_recv_from(&mut buf) {
                Ok((n, from)) => self.on_rtcp(from, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {}
            }
        }
    }

    /// Counts a packet that failed its SRTP check; the first of a run is logged.
    fn count_srtp_drop(&mut self, e: &super::srtp::SrtpError) {
        if self.srtp_dropped.rtp == 0 {
            tracing::debug!(local = %self.local, error = %e, "SRTP packet dropped");
        }
        self.srtp_dropped.rtp += 1;
    }

    /// Hands one RTCP datagram to the session, checked and decrypted first on an SRTP leg.
    fn on_rtcp(&mut self, from: SocketAddr, datagram: &[u8]) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        match self.srtp.as_mut() {
            None => s.on_rtcp(now(), from, datagram),
            Some(srtp) => match srtp.unprotect_rtcp(datagram) {
                Ok(clear) => s.on_rtcp(now(), from, &clear),
                // Some phones send an RTCP packet in clear beside their SRTCP (baresip's APP
                // "PING" at call start): dropped too, but counted apart from failed checks.
                Err(e) if super::rtcp::is_clear_compound(datagram) => {
                    if self.srtp_dropped.rtcp_clear == 0 {
                        tracing::debug!(local = %self.local, error = %e, "clear RTCP dropped");
                    }
                    self.srtp_dropped.rtcp_clear += 1;
                }
                Err(e) => {
                    if self.srtp_dropped.rtcp == 0 {
                        tracing::debug!(local = %self.local, error = %e, "SRTCP packet dropped");
                    }
                    self.srtp_dropped.rtcp += 1;
                }
            },
        }
    }

    /// Sends an RTP datagram to the far end (latched address, else the SDP's), encrypted on an
    /// SRTP leg.
    pub fn send_rtp(&mut self, datagram: &[u8]) {
        let Some(to) = self.session.as_ref().and_then(|s| s.remote_rtp()) else {
            return;
        };
        match self.srtp.as_mut() {
            None => self.wire.send_rtp(datagram, to),
            Some(srtp) => {
                if let Ok(protected) = srtp.protect_rtp(datagram) {
                    self.wire.send_rtp(&protected, to);
                }
            }
        }
    }

    /// True when the far end sent no RTP for `media.rtp_timeout` (never while on hold).
    pub fn is_dead(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.is_dead(now()))
    }

    fn flush_counters(&mut self) {
        if let Some(s) = &self.session {
            let c = s.counters();
            let m = self.engine.metrics();
            m.packets_in
                .inc_by(c.packets_in.saturating_sub(self.counted.0));
            m.packets_out
                .inc_by(c.packets_out.saturating_sub(self.counted.1));
            self.counted = (c.packets_in, c.packets_out);
        }
        if self.srtp_dropped != SrtpDrops::default() {
            let m = self.engine.metrics();
            m.srtp_dropped.inc_by(self.srtp_dropped.rtp);
            m.srtcp_dropped.inc_by(self.srtp_dropped.rtcp);
            m.srtcp_clear_dropped.inc_by(self.srtp_dropped.rtcp_clear);
            self.srtp_dropped = SrtpDrops::default();
        }
    }
}

/// Packets an encrypted leg dropped, by kind, not yet added to the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct SrtpDrops {
    rtp: u64,
    rtcp: u64,
    rtcp_clear: u64,
}

/// Whether a datagram on a multiplexed port is RTCP: its second octet is an RTCP packet type
/// (192–223), which no RTP payload type we negotiate can produce (RFC 5761 §4).
fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && (192..=223).contains(&datagram[1])
}

impl Drop for MediaLeg {
    fn drop(&mut self) {
        self.flush_counters();
        let m = self.engine.metrics();
        m.sessions_active.dec();
        if let Some(s) = &self.session {
            if s.counters().packets_in > 0 {
                let q = s.quality();
                m.loss_ratio.observe(q.loss_ratio);
                m.jitter.observe(q.jitter_seconds);
                m.mos.observe(q.mos);
            }
        }
        drop(self.lease.take());
        self.engine.update_free_ports();
    }
}
