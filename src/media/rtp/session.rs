//! [`RtpSession`]: the receive path, RTCP, DTMF and timers of one leg; outbound packets are
//! built by [`Outbound`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rtp_rs::RtpReader;

use super::latch::{Latch, Verdict};
use super::outbound::Outbound;
use super::{
    duration_to_samples, known, samples_to_duration, Counters, DropReason, MediaPacket, Received,
    SessionConfig, DEFAULT_PTIME_MS, PT_COMFORT_NOISE,
};
use crate::media::codec::CodecKind;
use crate::media::dtmf::{DigitEvent, DtmfReceiver, TelephoneEvent};
use crate::media::rtcp::{self, CallQuality, ReceiverStats, ReportBlock, RtcpPacket};

/// Mean RTCP report interval (RFC 3550 §6.2 minimum); each interval is randomised ×[0.5, 1.5].
const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// Longest CNAME an SDES item can carry.
const MAX_CNAME: usize = 255;

/// What a negotiated payload type carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Voice,
    ComfortNoise,
    Event,
}

/// Recently received sequence numbers of the current stream, to drop duplicates.
#[derive(Debug, Clone, Copy, Default)]
struct SeqWindow {
    started: bool,
    highest: u16,
    /// Bit `i` set: `highest - i` was received.
    mask: u64,
}

impl SeqWindow {
    /// Records `seq`; false if it was already received. A packet more than 63 behind cannot be
    /// checked and restarts the window (a sender that reset its sequence looks like that too).
    fn insert(&mut self, seq: u16) -> bool {
        let d = seq.wrapping_sub(self.highest) as i16;
        if !self.started || d <= -64 {
            *self = SeqWindow {
                started: true,
                highest: seq,
                mask: 1,
            };
            return true;
        }
        if d > 0 {
            let shift = u32::from(d.unsigned_abs());
            self.mask = if shift >= 64 { 0 } else { self.mask << shift } | 1;
            self.highest = seq;
            return true;
        }
        let bit = 1u64 << d.unsigned_abs();
        let fresh = self.mask & bit == 0;
        self.mask |= bit;
        fresh
    }
}

/// One leg's RTP session: see the [module documentation](super).
#[derive(Debug)]
pub struct RtpSession {
    codec: CodecKind,
    payload_type: u8,
    telephone_event: Option<u8>,
    clock_rate: u32,
    rtp_timeout: Duration,
    cname: String,
    /// Far addresses from the SDP.
    sdp_rtp: Option<SocketAddr>,
    sdp_rtcp: Option<SocketAddr>,
    latch: Latch,
    /// Source of the peer's last RTCP, once it proved to be the peer's.
    rtcp_source: Option<SocketAddr>,
    /// RTCP shares the RTP port (RFC 5761): it goes where RTP goes.
    rtcp_mux: bool,
    hold: bool,
    /// Put on hold by us (a bridge's hold): its phone may stop sending, so no dead-call check.
    local_hold: bool,
    /// Start, last valid RTP packet, or end of a hold: what the dead-call timeout counts from.
    alive_at: Instant,
    /// Statistics of the far stream (its SSRC inside), from its first packet.
    rx: Option<ReceiverStats>,
    window: SeqWindow,
    /// Arrival time and media timestamp of the newest far packet: the far stream's clock.
    rx_clock: Option<(Instant, u32)>,
    dtmf_rx: DtmfReceiver,
    /// Digits flushed when the far stream changed, for `poll_dtmf`, and since when.
    pending_digits: VecDeque<DigitEvent>,
    pending_at: Option<Instant>,
    out: Outbound,
    rtcp_next: Instant,
    rng: u64,
    rtt: Option<Duration>,
    /// The peer's last report about our stream.
    remote_report: Option<ReportBlock>,
    counters: Counters,
}

/// SplitMix64: turns the SSRC into the seeds of our first sequence number, first timestamp and
/// RTCP jitter, without a random-number dependency or a clock read.
fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The first `max` bytes of `s` or fewer, cut at a character boundary.
fn truncate_utf8(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Samples in one payload of `codec` of `len` bytes.
fn payload_samples(codec: CodecKind, len: usize) -> u32 {
    match codec {
        // One byte per sample.
        CodecKind::Pcmu | CodecKind::Pcma => u32::try_from(len).unwrap_or(u32::MAX),
    }
}

impl RtpSession {
    /// A session starting at `now`: the dead-call timeout counts from here, the first RTCP
    /// report is due about 2.5 s later.
    pub fn new(cfg: SessionConfig, now: Instant) -> Self {
        let clock_rate = cfg.codec.clock_rate();
        let ptime_ms = if cfg.ptime_ms == 0 {
            DEFAULT_PTIME_MS
        } else {
            cfg.ptime_ms
        };
        let seed = mix64(u64::from(cfg.ssrc));
        let mut session = RtpSession {
            codec: cfg.codec,
            payload_type: cfg.payload_type,
            telephone_event: cfg.telephone_event,
            clock_rate,
            rtp_timeout: cfg.rtp_timeout,
            cname: truncate_utf8(cfg.cname, MAX_CNAME),
            sdp_rtp: known(cfg.remote_rtp),
            sdp_rtcp: known(cfg.remote_rtcp),
            latch: Latch::new(known(cfg.remote_rtp), cfg.behind_nat),
            rtcp_source: None,
            rtcp_mux: false,
            hold: false,
            local_hold: false,
            alive_at: now,
            rx: None,
            window: SeqWindow::default(),
            rx_clock: None,
            dtmf_rx: DtmfReceiver::new(clock_rate),
            pending_digits: VecDeque::new(),
            pending_at: None,
            out: Outbound::new(cfg.ssrc, clock_rate, ptime_ms, seed),
            rtcp_next: now,
            rng: mix64(seed) | 1,
            rtt: None,
            remote_report: None,
            counters: Counters::default(),
        };
        // RFC 3550 §6.2: the first report after half the interval.
        session.rtcp_next = now + session.rtcp_interval() / 2;
        session
    }

    /// A random RTCP interval: [`RTCP_INTERVAL`] × [0.5, 1.5) (xorshift64*).
    fn rtcp_interval(&mut self) -> Duration {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        let unit = r as f64 / (1u64 << 53) as f64;
        RTCP_INTERVAL.mul_f64(0.5 + unit)
    }

    /// What a payload type carries, if it was negotiated.
    fn classify(&self, pt: u8) -> Option<Kind> {
        if pt == self.payload_type {
            Some(Kind::Voice)
        } else if Some(pt) == self.telephone_event {
            Some(Kind::Event)
        } else if pt == PT_COMFORT_NOISE {
            Some(Kind::ComfortNoise)
        } else {
            None
        }
    }

    /// Counts a dropped datagram.
    fn dropped<'a>(&mut self, reason: DropReason) -> Received<'a> {
        let c = &mut self.counters;
        c.dropped += 1;
        match reason {
            DropReason::NotRtp | DropReason::BadPayload => c.dropped_malformed += 1,
            DropReason::UnknownPayloadType(_) => c.dropped_unknown_pt += 1,
            DropReason::WrongSource => c.dropped_wrong_source += 1,
            DropReason::Duplicate => c.dropped_duplicate += 1,
        }
        Received::Dropped(reason)
    }

    /// A datagram arrived on the RTP socket from `from`.
    pub fn on_rtp<'a>(&mut self, now: Instant, from: SocketAddr, data: &'a [u8]) -> Received<'a> {
        let Ok(rtp) = RtpReader::new(data) else {
            return self.dropped(DropReason::NotRtp);
        };
        let pt = rtp.payload_type();
        let Some(kind) = self.classify(pt) else {
            return self.dropped(DropReason::UnknownPayloadType(pt));
        };
        let payload = rtp.payload();
        // A bad event payload is refused before it can latch or count as life.
        let event = match kind {
            Kind::Event => match TelephoneEvent::parse(payload) {
                Ok(ev) => Some(ev),
                Err(_) => return self.dropped(DropReason::BadPayload),
            },
            Kind::Voice | Kind::ComfortNoise => None,
        };
        let ssrc = rtp.ssrc();
        let seq = u16::from(rtp.sequence_number());
        match self.latch.check(now, from, ssrc, seq) {
            Verdict::Reject => return self.dropped(DropReason::WrongSource),
            Verdict::Relatched => self.counters.relatches += 1,
            Verdict::Latched | Verdict::Accept => {}
        }
        self.alive_at = now;
        if self.rx.as_ref().map(ReceiverStats::ssrc) != Some(ssrc) {
            self.new_stream(ssrc, now);
        }
        if !self.window.insert(seq) {
            return self.dropped(DropReason::Duplicate);
        }
        let timestamp = rtp.timestamp();
        // Every packet of an event carries the event's start; start + duration is when it was
        // sent, which is what the jitter estimate and the far clock need.
        let media_ts = event.map_or(timestamp, |ev| {
            timestamp.wrapping_add(u32::from(ev.duration))
        });
        if let Some(rx) = self.rx.as_mut() {
            rx.on_packet(seq, media_ts, now, self.clock_rate);
        }
        let newer = self
            .rx_clock
            .is_none_or(|(_, ts)| media_ts.wrapping_sub(ts) as i32 >= 0);
        if newer {
            self.rx_clock = Some((now, media_ts));
        }
        self.counters.packets_in += 1;
        self.counters.bytes_in += data.len() as u64;
        let packet = MediaPacket {
            ssrc,
            seq,
            timestamp,
            marker: rtp.mark(),
            payload_type: pt,
            received_at: now,
        };
        if event.is_none() {
            return Received::Media(packet, payload);
        }
        match self.dtmf_rx.feed(timestamp, packet.marker, payload) {
            Ok(Some(digit)) => {
                self.counters.dtmf_in += 1;
                Received::Dtmf(digit)
            }
            // The payload parsed above, so the receiver cannot refuse it.
            Ok(None) | Err(_) => Received::DtmfPacket(packet, payload),
        }
    }

    /// A new far stream (first packet, or a new SSRC): fresh statistics, duplicate window and
    /// DTMF state; a digit the old stream left pending is kept for [`poll_dtmf`](Self::poll_dtmf).
    fn new_stream(&mut self, ssrc: u32, now: Instant) {
        if let Some(digit) = self.dtmf_rx.deadline().and_then(|d| self.dtmf_rx.poll(d)) {
            self.pending_digits.push_back(digit);
            self.pending_at.get_or_insert(now);
        }
        self.dtmf_rx.reset();
        self.rx = Some(ReceiverStats::new(ssrc));
        self.window = SeqWindow::default();
        self.rx_clock = None;
    }

    /// A digit whose end packets never came, once its timeout has passed (or one left over
    /// when the far stream changed). Call at [`poll_timeout`](Self::poll_timeout) until `None`.
    pub fn poll_dtmf(&mut self, now: Instant) -> Option<DigitEvent> {
        if let Some(digit) = self.pending_digits.pop_front() {
            if self.pending_digits.is_empty() {
                self.pending_at = None;
            }
            self.counters.dtmf_in += 1;
            return Some(digit);
        }
        let (at, ts) = self.rx_clock?;
        let elapsed = duration_to_samples(now.saturating_duration_since(at), self.clock_rate);
        let digit = self.dtmf_rx.poll(ts.wrapping_add(elapsed))?;
        self.counters.dtmf_in += 1;
        Some(digit)
    }

    /// When [`poll_dtmf`](Self::poll_dtmf) has a digit to give.
    fn dtmf_due(&self) -> Option<Instant> {
        if self.pending_at.is_some() {
            return self.pending_at;
        }
        let due = self.dtmf_rx.deadline()?;
        let (at, ts) = self.rx_clock?;
        let ahead = due.wrapping_sub(ts) as i32;
        if ahead <= 0 {
            return Some(at);
        }
        at.checked_add(samples_to_duration(ahead.unsigned_abs(), self.clock_rate))
    }

    /// A datagram arrived on the RTCP socket from `from`.
    pub fn on_rtcp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.counters.rtcp_in += 1;
        let Ok(packets) = rtcp::parse_compound(data) else {
            self.counters.rtcp_dropped += 1;
            return;
        };
        let far_ssrc = self.rx.as_ref().map(ReceiverStats::ssrc);
        let ours = self.out.ssrc();
        let mut from_peer = false;
        for packet in &packets {
            let (ssrc, blocks) = match packet {
                RtcpPacket::SenderReport(sr) => {
                    if Some(sr.ssrc) == far_ssrc {
                        if let Some(rx) = self.rx.as_mut() {
                            rx.on_sender_report(sr.info.ntp, now);
                        }
                    }
                    (sr.ssrc, &sr.reports)
                }
                RtcpPacket::ReceiverReport(rr) => (rr.ssrc, &rr.reports),
                RtcpPacket::SourceDescription(_) => continue,
            };
            from_peer |= Some(ssrc) == far_ssrc;
            for block in blocks.iter().filter(|b| b.ssrc == ours) {
                // Only the peer knows our (random) SSRC.
                from_peer = true;
                self.remote_report = Some(*block);
                if let Some(rtt) = self.out.stats.round_trip(block, now) {
                    self.rtt = Some(rtt);
                }
            }
        }
        if from_peer {
            self.rtcp_source = Some(from);
        }
    }

    /// Next outbound voice packet carrying `payload` (already encoded in our codec) worth
    /// `samples` samples; writes the datagram into `out` (cleared first). Sequence +1,
    /// timestamp continuous (a new talkspurt, with marker, after a feed change or a pause).
    /// `out` stays empty if the configured payload type is invalid (> 127).
    pub fn build_voice(&mut self, now: Instant, payload: &[u8], samples: u32, out: &mut Vec<u8>) {
        if self
            .out
            .voice(now, self.payload_type, payload, samples, out)
        {
            self.count_out(out.len());
        }
    }

    /// Relay: a packet received on another leg ([`Received::Media`]) re-stamped onto this
    /// leg's stream: our SSRC, our continuous sequence and timestamps, the source's sequence gaps
    /// and timestamp spacing kept while it stays the same source, the marker set when the
    /// source changes. The payload is copied as is: transcode it first if the codecs differ.
    /// Comfort noise (PT 13) keeps PT 13; anything else goes out with our voice payload type.
    ///
    /// `out` is left empty when there is nothing to send: the packet comes late from before
    /// the point where this source took over the stream.
    pub fn build_relayed(
        &mut self,
        now: Instant,
        src: &MediaPacket,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        let (pt, samples) = if src.payload_type == PT_COMFORT_NOISE {
            (PT_COMFORT_NOISE, self.out.frame())
        } else {
            (
                self.payload_type,
                payload_samples(self.codec, payload.len()),
            )
        };
        if self.out.relayed(now, pt, src, payload, samples, out) {
            self.count_out(out.len());
        }
    }

    /// Relay of a telephone-event packet ([`Received::DtmfPacket`]) from another leg, as
    /// [`build_relayed`](Self::build_relayed) does for voice, sent with our telephone-event
    /// payload type. `out` is left empty if this leg negotiated no telephone-event.
    pub fn build_relayed_event(
        &mut self,
        now: Instant,
        src: &MediaPacket,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        let Some(pt) = self.telephone_event else {
            out.clear();
            return;
        };
        let samples = TelephoneEvent::parse(payload).map_or(0, |ev| u32::from(ev.duration));
        if self.out.relayed(now, pt, src, payload, samples, out) {
            self.count_out(out.len());
        }
    }

    /// Outbound DTMF for a digit held `duration_ms`: the datagrams to send and when (offsets
    /// from `now`), on our stream's SSRC, sequence and timestamps (RFC 4733 via
    /// [`DtmfSender`](crate::media::dtmf::DtmfSender)). Hold other audio back until the last
    /// offset; it resumes at the timestamp after the tone. Empty when no telephone-event was
    /// negotiated, or for an unknown digit or a duration over 60 s.
    pub fn build_dtmf(
        &mut self,
        now: Instant,
        digit: char,
        duration_ms: u32,
    ) -> Vec<(Duration, Vec<u8>)> {
        let Some(pt) = self.telephone_event else {
            return Vec::new();
        };
        let packets = self.out.dtmf(now, pt, digit, duration_ms);
        if !packets.is_empty() {
            self.counters.dtmf_out += 1;
            for (_, p) in &packets {
                self.count_out(p.len());
            }
        }
        packets
    }

    fn count_out(&mut self, len: usize) {
        self.counters.packets_out += 1;
        self.counters.bytes_out += len as u64;
    }

    /// Where to send RTP now: the latched source if any, else the SDP address; `None` when
    /// unknown.
    pub fn remote_rtp(&self) -> Option<SocketAddr> {
        self.latch.addr().or(self.sdp_rtp)
    }

    /// Where to send RTCP now: where the peer's RTCP comes from; else, when RTP latched to
    /// another address than the SDP's (NAT), that address's port + 1; else the SDP's RTCP
    /// address, or its RTP port + 1.
    pub fn remote_rtcp(&self) -> Option<SocketAddr> {
        if self.rtcp_mux {
            return self.remote_rtp();
        }
        if self.rtcp_source.is_some() {
            return self.rtcp_source;
        }
        let next_port = |a: SocketAddr| {
            let port = a.port().checked_add(1)?;
            Some(SocketAddr::new(a.ip(), port))
        };
        match self.latch.addr() {
            Some(latched) if Some(latched) != self.sdp_rtp => next_port(latched),
            _ => self.sdp_rtcp.or_else(|| self.sdp_rtp.and_then(next_port)),
        }
    }

    /// RTCP multiplexed on the RTP port (RFC 5761) from now on: reports go to the RTP address.
    pub fn set_rtcp_mux(&mut self) {
        self.rtcp_mux = true;
    }

    /// The far end is (`on`) or is not known to be behind NAT: whether its media may come from
    /// another address than its SDP names (see [`latch`](super::latch)).
    pub fn set_behind_nat(&mut self, on: bool) {
        self.latch.set_nat(on);
    }

    /// The latched far RTP address, if latched.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latch.addr()
    }

    /// New SDP from a re-INVITE: far addresses and hold state. A different RTP address
    /// restarts latching on it (see [`latch`](super::latch)); the same one keeps the latch, so
    /// a session refresh does not reopen it. Leaving hold re-arms the dead-call
    /// timeout from `now`.
    pub fn update(
        &mut self,
        cfg_remote_rtp: Option<SocketAddr>,
        remote_rtcp: Option<SocketAddr>,
        hold: bool,
        now: Instant,
    ) {
        let rtp = known(cfg_remote_rtp);
        let rtcp = known(remote_rtcp);
        if rtp != self.sdp_rtp {
            self.latch.reset(rtp);
            self.rtcp_source = None;
        }
        if rtcp != self.sdp_rtcp {
            self.rtcp_source = None;
        }
        self.sdp_rtp = rtp;
        self.sdp_rtcp = rtcp;
        if self.hold && !hold && !self.local_hold {
            self.alive_at = now;
        }
        self.hold = hold;
    }

    /// New codec from a re-INVITE. Our stream keeps its SSRC, sequence and timestamps.
    pub fn set_codec(&mut self, codec: CodecKind, payload_type: u8, telephone_event: Option<u8>) {
        self.codec = codec;
        self.payload_type = payload_type;
        self.telephone_event = telephone_event;
    }

    /// An RTCP compound packet (SR if we sent RTP since the last report, else RR; one report
    /// block on the far stream once valid; SDES CNAME) to send to
    /// [`remote_rtcp`](Self::remote_rtcp), when one is due; else `None`. A report due while
    /// there is nowhere to send it is skipped.
    pub fn poll_rtcp(&mut self, now: Instant, wallclock: SystemTime) -> Option<Vec<u8>> {
        if now < self.rtcp_next {
            return None;
        }
        self.rtcp_next = now + self.rtcp_interval();
        self.remote_rtcp()?;
        let sender = if self.out.take_sent_since_report() {
            self.out.stats.sender_info(wallclock, now)
        } else {
            None
        };
        let block = self.rx.as_mut().and_then(|rx| rx.report_block(now));
        let packet = rtcp::build_compound(
            self.out.ssrc(),
            sender.as_ref(),
            block.as_slice(),
            &self.cname,
        )
        .ok()?;
        self.counters.rtcp_out += 1;
        Some(packet)
    }

    /// Earliest instant this session needs to be woken: next RTCP report, a DTMF digit due, or
    /// the dead-call timeout (not while on hold). Once [`is_dead`](Self::is_dead), the timeout
    /// stays in the past: end the leg.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dead_at = if self.on_hold() || self.rtp_timeout.is_zero() {
            None
        } else {
            self.alive_at.checked_add(self.rtp_timeout)
        };
        [Some(self.rtcp_next), dead_at, self.dtmf_due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// True once no valid RTP arrived for the timeout, counted from the start, the last valid
    /// packet or the end of a hold; never while on hold.
    pub fn is_dead(&self, now: Instant) -> bool {
        !self.on_hold()
            && !self.rtp_timeout.is_zero()
            && now.saturating_duration_since(self.alive_at) >= self.rtp_timeout
    }

    /// True while on hold (by the far end's SDP or by us).
    pub fn on_hold(&self) -> bool {
        self.hold || self.local_hold
    }

    /// We put this leg on hold (`on`) or took it off: while held the dead-call timeout is
    /// paused, and taking it off re-arms it from `now`.
    pub fn set_local_hold(&mut self, on: bool, now: Instant) {
        if self.local_hold && !on {
            self.alive_at = now;
        }
        self.local_hold = on;
    }

    /// Quality of what we receive: loss and jitter of the far stream, with the round-trip time
    /// from RTCP and the MOS estimated from them.
    pub fn quality(&self) -> CallQuality {
        let (loss, jitter) = self
            .rx
            .as_ref()
            .map_or((0.0, 0.0), |rx| (rx.loss_ratio(), rx.jitter_seconds()));
        CallQuality::estimate(loss, jitter, self.rtt.map(|d| d.as_secs_f64()))
    }

    /// Quality of what we send, as the peer last reported it in RTCP (fraction lost over its
    /// last interval), if it did.
    pub fn remote_quality(&self) -> Option<CallQuality> {
        let block = self.remote_report?;
        Some(CallQuality::from_report(&block, self.clock_rate, self.rtt))
    }

    /// Round-trip time from the last RTCP report that allowed one.
    pub fn round_trip(&self) -> Option<Duration> {
        self.rtt
    }

    /// Packet counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.out.ssrc()
    }

    /// SSRC of the far stream we currently receive.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.rx.as_ref().map(ReceiverStats::ssrc)
    }
}
