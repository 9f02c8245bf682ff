//! RTCP (RFC 3550): compound SR/RR/SDES packets built and read, receiver statistics per source
//! (Appendix A.1, A.3, A.8), sender statistics for our SRs, round-trip time from LSR/DLSR
//! (§6.4.1), and a call-quality estimate (MOS from a simplified ITU-T G.107 E-model).
//!
//! Sans-IO: arrival and send times come in as `Instant`s and the wallclock for the NTP stamp of
//! an SR as a `SystemTime` argument; nothing here reads a clock or touches a socket.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Packet type of a sender report.
pub const PT_SR: u8 = 200;
/// Packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// Packet type of a source description.
pub const PT_SDES: u8 = 202;

const VERSION: u8 = 2;
/// The 5-bit count field caps report blocks and SDES chunks per packet.
const MAX_COUNT: usize = 31;
const HEADER_LEN: usize = 4;
const SENDER_INFO_LEN: usize = 20;
const REPORT_BLOCK_LEN: usize = 24;
const SDES_END: u8 = 0;
const SDES_CNAME: u8 = 1;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Why an RTCP datagram could not be read or written.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RtcpError {
    /// The datagram holds no bytes.
    #[error("empty RTCP datagram")]
    Empty,
    /// A header, block or SDES item ends before its data does.
    #[error("RTCP packet truncated at byte {0}")]
    Truncated(usize),
    /// The version field is not 2.
    #[error("RTCP version {0}, expected 2")]
    Version(u8),
    /// A packet's length field points past the end of the datagram.
    #[error("RTCP length field at byte {0} runs past the end of the datagram")]
    LengthPastEnd(usize),
    /// The padding count is zero or larger than the packet.
    #[error("RTCP padding count {0} does not fit the packet")]
    Padding(u8),
    /// A CNAME must fit the 8-bit SDES item length.
    #[error("CNAME of {0} bytes is longer than 255")]
    CnameTooLong(usize),
}

/// A 64-bit NTP timestamp: seconds since 1900 in the high half, binary fraction in the low half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// Converts a wallclock time (the era wraps in 2036, as NTP's does).
    pub fn from_system_time(t: SystemTime) -> Self {
        let since_1900 = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Duration::from_secs(NTP_UNIX_OFFSET)
                .checked_add(d)
                .unwrap_or(Duration::MAX),
            Err(e) => Duration::from_secs(NTP_UNIX_OFFSET).saturating_sub(e.duration()),
        };
        let secs = since_1900.as_secs() & 0xffff_ffff;
        let frac = (u64::from(since_1900.subsec_nanos()) << 32) / 1_000_000_000;
        NtpTime((secs << 32) | frac)
    }

    /// The middle 32 bits, as carried in LSR (16.16 fixed-point seconds).
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// Converts a duration to the 16.16 fixed-point seconds of LSR/DLSR, saturating.
pub fn duration_to_compact(d: Duration) -> u32 {
    if d.as_secs() > 0xffff {
        return u32::MAX;
    }
    let frac = (u64::from(d.subsec_nanos()) << 16) / 1_000_000_000;
    ((d.as_secs() as u32) << 16) | frac as u32
}

/// Converts 16.16 fixed-point seconds to a duration.
pub fn compact_to_duration(c: u32) -> Duration {
    Duration::from_secs(u64::from(c >> 16))
        + Duration::from_nanos((u64::from(c & 0xffff) * 1_000_000_000) >> 16)
}

/// One reception report block: what a receiver saw of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start (24-bit signed; duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received: wrap count in the high 16 bits.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP stamp of the last SR from that source, 0 if none.
    pub lsr: u32,
    /// Delay since that SR was received, in 1/65536 s, 0 if none.
    pub dlsr: u32,
}

/// The sender-info section of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// Wallclock time at which `rtp_timestamp` applies.
    pub ntp: NtpTime,
    /// RTP timestamp matching `ntp`.
    pub rtp_timestamp: u32,
    /// RTP packets sent since the start (wraps).
    pub packet_count: u32,
    /// RTP payload octets sent since the start (wraps).
    pub octet_count: u32,
}

/// A sender report (PT 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderReport {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// What it has sent.
    pub info: SenderInfo,
    /// What it has received.
    pub reports: Vec<ReportBlock>,
}

/// A receiver report (PT 201).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverReport {
    /// SSRC of the reporter.
    pub ssrc: u32,
    /// What it has received.
    pub reports: Vec<ReportBlock>,
}

/// One SDES chunk; only CNAME is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    /// The source described.
    pub ssrc: u32,
    /// Its canonical name, if the chunk carries one.
    pub cname: Option<String>,
}

/// A packet of a compound RTCP datagram we understand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// SR (PT 200).
    SenderReport(SenderReport),
    /// RR (PT 201).
    ReceiverReport(ReceiverReport),
    /// SDES (PT 202).
    SourceDescription(Vec<SdesChunk>),
}

/// Bounds-checked big-endian reads; offsets in errors are from the datagram start.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], RtcpError> {
        let b = self
            .buf
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or(RtcpError::Truncated(self.base + self.pos))?;
        self.pos += n;
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, RtcpError> {
        Ok(self.bytes(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, RtcpError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn report_blocks(&mut self, count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let ssrc = self.u32()?;
            let lost = self.u32()?;
            out.push(ReportBlock {
                ssrc,
                fraction_lost: (lost >> 24) as u8,
                // Sign-extend the 24-bit field.
                cumulative_lost: ((lost << 8) as i32) >> 8,
                highest_seq: self.u32()?,
                jitter: self.u32()?,
                lsr: self.u32()?,
                dlsr: self.u32()?,
            });
        }
        Ok(out)
    }
}

/// Whether a datagram is RTCP in clear: version-2 RTCP packets whose lengths end exactly at its
/// end. An SRTCP packet carries its index and tag past its (encrypted) packets, so it is not.
pub fn is_clear_compound(buf: &[u8]) -> bool {
    let mut pos = 0;
    while pos + HEADER_LEN <= buf.len() {
        let rest = &buf[pos..];
        if rest[0] >> 6 != VERSION || !(192..=223).contains(&rest[1]) {
            return false;
        }
        pos += (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
    }
    pos == buf.len() && !buf.is_empty()
}

/// Reads a compound RTCP datagram. SR, RR and SDES are returned in order; other packet types
/// (BYE, APP, XR, feedback…) are skipped. Any malformed header or known packet is an error.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    if buf.is_empty() {
        return Err(RtcpError::Empty);
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let rest = &buf[pos..];
        if rest.len() < HEADER_LEN {
            return Err(RtcpError::Truncated(pos));
        }
        let version = rest[0] >> 6;
        if version != VERSION {
            return Err(RtcpError::Version(version));
        }
        let padded = rest[0] & 0x20 != 0;
        let count = usize::from(rest[0] & 0x1f);
        let packet_type = rest[1];
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        let packet = rest.get(..len).ok_or(RtcpError::LengthPastEnd(pos))?;
        let mut body = &packet[HEADER_LEN..];
        if padded {
            let pad = packet[len - 1];
            if pad == 0 || usize::from(pad) > body.len() {
                return Err(RtcpError::Padding(pad));
            }
            body = &body[..body.len() - usize::from(pad)];
        }
        let mut r = Reader {
            buf: body,
            pos: 0,
            base: pos + HEADER_LEN,
        };
        // Bytes left after the blocks are profile extensions; ignored.
        match packet_type {
            PT_SR => {
                let ssrc = r.u32()?;
                let ntp_hi = r.u32()?;
                let ntp_lo = r.u32()?;
                let info = SenderInfo {
                    ntp: NtpTime((u64::from(ntp_hi) << 32) | u64::from(ntp_lo)),
                    rtp_timestamp: r.u32()?,
                    packet_count: r.u32()?,
                    octet_count: r.u32()?,
                };
                let reports = r.report_blocks(count)?;
                out.push(RtcpPacket::SenderReport(SenderReport {
                    ssrc,
                    info,
                    reports,
                }));
            }
            PT_RR => {
                let ssrc = r.u32()?;
                let reports = r.report_blocks(count)?;
                out.push(RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports }));
            }
            PT_SDES => out.push(RtcpPacket::SourceDescription(parse_sdes(&mut r, count)?)),
            _ => {}
        }
        pos += len;
    }
    Ok(out)
}

fn parse_sdes(r: &mut Reader<'_>, count: usize) -> Result<Vec<SdesChunk>, RtcpError> {
    let mut chunks = Vec::with_capacity(count);
    for _ in 0..count {
        let ssrc = r.u32()?;
        let mut cname = None;
        loop {
            let kind = r.u8()?;
            if kind == SDES_END {
                // The item list ends with nulls up to the next 32-bit boundary.
                let aligned = r.pos.div_ceil(4) * 4;
                r.bytes(aligned - r.pos)?;
                break;
            }
            let len = usize::from(r.u8()?);
            let text = r.bytes(len)?;
            if kind == SDES_CNAME {
                cname = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
        chunks.push(SdesChunk { ssrc, cname });
    }
    Ok(chunks)
}

fn put_header(out: &mut Vec<u8>, count: usize, packet_type: u8, body_len: usize) {
    debug_assert!(count <= MAX_COUNT && body_len.is_multiple_of(4));
    out.push((VERSION << 6) | count as u8);
    out.push(packet_type);
    out.extend_from_slice(&((body_len / 4) as u16).to_be_bytes());
}

fn put_blocks(out: &mut Vec<u8>, blocks: &[ReportBlock]) {
    for b in blocks {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&b.highest_seq.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.lsr.to_be_bytes());
        out.extend_from_slice(&b.dlsr.to_be_bytes());
    }
}

/// Builds our compound RTCP datagram: an SR when `sender` is given (we sent RTP since the last
/// report), else an RR; report blocks beyond 31 go into further RRs (RFC 3550 §6.4); then the
/// SDES CNAME that every compound packet must carry.
pub fn build_compound(
    ssrc: u32,
    sender: Option<&SenderInfo>,
    blocks: &[ReportBlock],
    cname: &str,
) -> Result<Vec<u8>, RtcpError> {
    if cname.len() > 255 {
        return Err(RtcpError::CnameTooLong(cname.len()));
    }
    let mut out = Vec::with_capacity(64 + blocks.len() * REPORT_BLOCK_LEN + cname.len());
    let first_len = blocks.len().min(MAX_COUNT);
    let (first, rest) = blocks.split_at(first_len);
    match sender {
        Some(info) => {
            put_header(
                &mut out,
                first.len(),
                PT_SR,
                4 + SENDER_INFO_LEN + first.len() * REPORT_BLOCK_LEN,
            );
            out.extend_from_slice(&ssrc.to_be_bytes());
            out.extend_from_slice(&info.ntp.0.to_be_bytes());
            out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
            out.extend_from_slice(&info.packet_count.to_be_bytes());
            out.extend_from_slice(&info.octet_count.to_be_bytes());
        }
        None => {
            put_header(
                &mut out,
                first.len(),
                PT_RR,
                4 + first.len() * REPORT_BLOCK_LEN,
            );
            out.extend_from_slice(&ssrc.to_be_bytes());
        }
    }
    put_blocks(&mut out, first);
    for more in rest.chunks(MAX_COUNT) {
        put_header(
            &mut out,
            more.len(),
            PT_RR,
            4 + more.len() * REPORT_BLOCK_LEN,
        );
        out.extend_from_slice(&ssrc.to_be_bytes());
        put_blocks(&mut out, more);
    }
    // One chunk: SSRC, CNAME item, END, nulls to a 32-bit boundary (at least one END octet).
    let items = 2 + cname.len() + 1;
    let chunk_len = (4 + items).div_ceil(4) * 4;
    put_header(&mut out, 1, PT_SDES, chunk_len);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname.as_bytes());
    out.resize(out.len() + chunk_len - 4 - 2 - cname.len(), SDES_END);
    Ok(out)
}

/// A source is declared valid after this many packets in sequence (A.1).
const MIN_SEQUENTIAL: u32 = 2;
/// A forward jump below this counts as loss, not a restart (A.1).
const MAX_DROPOUT: u16 = 3000;
/// A backward jump below this is a late packet, not a restart (A.1).
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;

/// What we received from one source: sequence tracking, loss and jitter (RFC 3550 A.1/A.3/A.8).
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    ssrc: u32,
    max_seq: u16,
    /// Times the sequence number has wrapped.
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// False until the first packet.
    seen: bool,
    /// Interarrival jitter estimate in timestamp units (A.8, kept as a float instead of ×16).
    jitter: f64,
    clock_rate: u32,
    /// Arrival and RTP timestamp of the previous counted packet, for the transit difference.
    prev: Option<(Instant, u32)>,
    /// Middle 32 bits of the last SR from this source, and when it arrived.
    last_sr: Option<(u32, Instant)>,
}

impl ReceiverStats {
    /// Starts tracking source `ssrc`; nothing is known until its packets come.
    pub fn new(ssrc: u32) -> Self {
        ReceiverStats {
            ssrc,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            seen: false,
            jitter: 0.0,
            clock_rate: 0,
            prev: None,
            last_sr: None,
        }
    }

    /// The source reported on.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Counts one received RTP packet. Returns false when it is not counted: the source is
    /// still on probation, or the sequence jumped and may be a restart (A.1).
    pub fn on_packet(
        &mut self,
        seq: u16,
        rtp_timestamp: u32,
        arrival: Instant,
        clock_rate: u32,
    ) -> bool {
        if !self.seen {
            self.seen = true;
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        if !self.update_seq(seq) {
            return false;
        }
        if clock_rate > 0 {
            if let Some((prev_arrival, prev_ts)) = self.prev {
                // D(i,j) = (Rj - Ri) - (Sj - Si) in timestamp units (A.8).
                let secs = match arrival.checked_duration_since(prev_arrival) {
                    Some(d) => d.as_secs_f64(),
                    None => -prev_arrival.duration_since(arrival).as_secs_f64(),
                };
                let sent = f64::from(rtp_timestamp.wrapping_sub(prev_ts) as i32);
                let d = (secs * f64::from(clock_rate) - sent).abs();
                self.jitter += (d - self.jitter) / 16.0;
            }
            self.clock_rate = clock_rate;
        }
        self.prev = Some((arrival, rtp_timestamp));
        true
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(1);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(seq) == self.bad_seq {
                // Two packets in sequence after a big jump: the sender restarted.
                self.init_seq(seq);
                self.prev = None;
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return false;
            }
        }
        // Else a duplicate or reordered packet: counted, as A.1 does.
        self.received = self.received.wrapping_add(1);
        true
    }

    /// Notes an SR from this source so our next report block carries LSR/DLSR.
    pub fn on_sender_report(&mut self, ntp: NtpTime, arrival: Instant) {
        self.last_sr = Some((ntp.middle32(), arrival));
    }

    /// True once the source has passed probation.
    pub fn is_valid(&self) -> bool {
        self.seen && self.probation == 0
    }

    /// Times the sequence number has wrapped.
    pub fn cycles(&self) -> u32 {
        self.cycles
    }

    /// Extended highest sequence number: wraps in the high 16 bits.
    pub fn extended_highest_seq(&self) -> u32 {
        (self.cycles << 16) | u32::from(self.max_seq)
    }

    /// Packets expected since the source became valid.
    pub fn expected(&self) -> u32 {
        if !self.is_valid() {
            return 0;
        }
        self.extended_highest_seq()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Packets counted, duplicates included (A.1).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Packets lost since the start; negative when duplicates outnumber losses.
    pub fn cumulative_lost(&self) -> i64 {
        i64::from(self.expected().wrapping_sub(self.received) as i32)
    }

    /// Cumulative loss over expected packets, in [0, 1].
    pub fn loss_ratio(&self) -> f64 {
        let expected = self.expected();
        if expected == 0 {
            return 0.0;
        }
        (self.cumulative_lost().max(0) as f64 / f64::from(expected)).min(1.0)
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Interarrival jitter in seconds (0 before a clock rate is known).
    pub fn jitter_seconds(&self) -> f64 {
        if self.clock_rate == 0 {
            return 0.0;
        }
        self.jitter / f64::from(self.clock_rate)
    }

    /// The report block for our next SR/RR, or `None` while the source is not yet valid.
    /// Starts a new interval for the fraction lost (A.3).
    pub fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        if !self.is_valid() {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => (lsr, duration_to_compact(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.extended_highest_seq(),
            jitter: self.jitter.round().min(f64::from(u32::MAX)) as u32,
            lsr,
            dlsr,
        })
    }
}

/// How many of our recent SRs are remembered to match LSR in reports that cross a newer SR.
const SR_HISTORY: usize = 4;

/// What we sent as one source: counts for the SR and the NTP/RTP mapping, and our recent SRs
/// for round-trip time.
#[derive(Debug, Clone)]
pub struct SenderStats {
    ssrc: u32,
    clock_rate: u32,
    packets: u32,
    octets: u32,
    /// RTP timestamp of the last packet sent and when.
    last: Option<(u32, Instant)>,
    /// Middle 32 bits of our recent SRs' NTP stamps and when each was made, oldest first.
    recent_srs: Vec<(u32, Instant)>,
}

impl SenderStats {
    /// Starts counting for our source `ssrc` whose timestamps run at `clock_rate` Hz.
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        SenderStats {
            ssrc,
            clock_rate,
            packets: 0,
            octets: 0,
            last: None,
            recent_srs: Vec::with_capacity(SR_HISTORY),
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Counts one RTP packet sent with `payload_len` payload octets (header and padding excluded).
    pub fn on_sent(&mut self, rtp_timestamp: u32, payload_len: usize, now: Instant) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        self.last = Some((rtp_timestamp, now));
    }

    /// Packets sent (wraps).
    pub fn packets(&self) -> u32 {
        self.packets
    }

    /// Payload octets sent (wraps).
    pub fn octets(&self) -> u32 {
        self.octets
    }

    /// Sender info for an SR made at `now` (wallclock `wallclock`), the RTP timestamp carried
    /// forward from the last packet at the clock rate; `None` if nothing was sent yet (send an
    /// RR then). Remembers the SR for [`SenderStats::round_trip`].
    pub fn sender_info(&mut self, wallclock: SystemTime, now: Instant) -> Option<SenderInfo> {
        let (ts, at) = self.last?;
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        // Truncation to u32 is the wrap of RTP timestamps.
        let advance = (elapsed * f64::from(self.clock_rate)) as u64 as u32;
        let ntp = NtpTime::from_system_time(wallclock);
        if self.recent_srs.len() == SR_HISTORY {
            self.recent_srs.remove(0);
        }
        self.recent_srs.push((ntp.middle32(), now));
        Some(SenderInfo {
            ntp,
            rtp_timestamp: ts.wrapping_add(advance),
            packet_count: self.packets,
            octet_count: self.octets,
        })
    }

    /// Round-trip time from a report block about us that arrived at `arrival`: time since the
    /// SR it names by LSR, minus the peer's DLSR (RFC 3550 §6.4.1, measured on our monotonic
    /// clock rather than the wallclock). `None` if it names no SR of ours.
    pub fn round_trip(&self, block: &ReportBlock, arrival: Instant) -> Option<Duration> {
        if block.lsr == 0 {
            return None;
        }
        let &(_, sent) = self
            .recent_srs
            .iter()
            .rev()
            .find(|(m, _)| *m == block.lsr)?;
        let elapsed = arrival.checked_duration_since(sent)?;
        let dlsr = compact_to_duration(block.dlsr);
        match elapsed.checked_sub(dlsr) {
            Some(rtt) => Some(rtt),
            // DLSR is truncated to 1/65536 s; a hair over the elapsed time is a zero RTT.
            None if dlsr - elapsed < Duration::from_millis(1) => Some(Duration::ZERO),
            None => None,
        }
    }
}

/// Round-trip time by the RFC 3550 §6.4.1 formula A − LSR − DLSR, all in 16.16 fixed-point
/// seconds, `arrival` being the compact NTP wallclock when the report arrived. `None` when the
/// peer has no SR of ours (LSR 0) or the result is negative.
pub fn round_trip_time(arrival: u32, lsr: u32, dlsr: u32) -> Option<Duration> {
    if lsr == 0 {
        return None;
    }
    let rtt = arrival.wrapping_sub(lsr).wrapping_sub(dlsr);
    if (rtt as i32) < 0 {
        return None;
    }
    Some(compact_to_duration(rtt))
}

/// G.711 packet-loss robustness with packet-loss concealment (G.113 Appendix I). Chosen over
/// 4.3 (no PLC) because the phones and carriers that play the audio conceal loss.
pub const BPL_G711_PLC: f64 = 25.1;
/// Default R with no impairments (G.107 defaults).
const R0: f64 = 93.2;
/// Codec and packetisation delay assumed on top of network and jitter-buffer delay, in ms.
const CODEC_DELAY_MS: f64 = 20.0;

/// Call quality from RTCP figures, with an estimated MOS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallQuality {
    /// Packets lost over packets expected, in [0, 1].
    pub loss_ratio: f64,
    /// Interarrival jitter in seconds.
    pub jitter_seconds: f64,
    /// Round-trip time in seconds, if known.
    pub rtt_seconds: Option<f64>,
    /// Estimated mean opinion score, 1 to 4.5.
    pub mos: f64,
}

fn finite_non_negative(x: f64) -> f64 {
    if x.is_finite() {
        x.max(0.0)
    } else {
        0.0
    }
}

impl CallQuality {
    /// Estimates MOS for a G.711 call. One-way delay is half the RTT (0 if unknown) plus a
    /// jitter buffer of twice the jitter plus 20 ms of codec delay.
    pub fn estimate(loss_ratio: f64, jitter_seconds: f64, rtt_seconds: Option<f64>) -> Self {
        let loss_ratio = finite_non_negative(loss_ratio).min(1.0);
        let jitter_seconds = finite_non_negative(jitter_seconds);
        let rtt_seconds = rtt_seconds.map(finite_non_negative);
        let delay_ms =
            rtt_seconds.unwrap_or(0.0) * 500.0 + jitter_seconds * 2000.0 + CODEC_DELAY_MS;
        let r = r_factor(loss_ratio, delay_ms);
        CallQuality {
            loss_ratio,
            jitter_seconds,
            rtt_seconds,
            mos: mos_from_r(r),
        }
    }

    /// Estimates from a report block about a stream at `clock_rate` Hz, using its fraction lost.
    pub fn from_report(block: &ReportBlock, clock_rate: u32, rtt: Option<Duration>) -> Self {
        let jitter = if clock_rate == 0 {
            0.0
        } else {
            f64::from(block.jitter) / f64::from(clock_rate)
        };
        Self::estimate(
            f64::from(block.fraction_lost) / 256.0,
            jitter,
            rtt.map(|d| d.as_secs_f64()),
        )
    }
}

/// Simplified G.107 R factor for G.711 with PLC: R = R0 − Id − Ie_eff, with `loss_ratio` in
/// [0, 1] and one-way `delay_ms`.
pub fn r_factor(loss_ratio: f64, delay_ms: f64) -> f64 {
    let d = finite_non_negative(delay_ms);
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let ppl = finite_non_negative(loss_ratio).min(1.0) * 100.0;
    // Ie = 0 for G.711.
    let ie_eff = 95.0 * ppl / (ppl + BPL_G711_PLC);
    R0 - id - ie_eff
}

/// MOS from R (G.107 Annex B), 1 below R = 0 and 4.5 above R = 100.
pub fn mos_from_r(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        return 1.0;
    }
    if r >= 100.0 {
        return 4.5;
    }
    (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests;
