//! Our outbound RTP stream: one SSRC for the life of the leg, and sequence numbers and timestamps
//! kept continuous whatever feeds it.
//!
//! A leg is fed by one thing at a time: our own frames (prompts, hold music), packets relayed
//! from one source on another leg, or a DTMF digit. The rules:
//!
//! - Sequence numbers go up by one per packet built, whatever the feed; no jump and no step
//!   back when the feed changes.
//! - Timestamps: our own frames follow each other (`ts + samples`). When the feed changes, or
//!   our own frames resume after a pause longer than [`TALKSPURT_GAP`], the next timestamp is
//!   the last one plus the wall time elapsed since it was sent, in samples rounded to the frame,
//!   and at least the last packet's length: never backwards, never overlapping.
//! - The first packet after a change (and the very first packet) carries the marker bit.
//! - While relaying one source (one SSRC), its packets are mapped by fixed offsets set at the
//!   change: its sequence gaps (loss) and timestamp spacing (silence suppression, DTMF events)
//!   reach the far end unchanged, and a reordered packet stays reordered. A packet that would
//!   map before the first one of the mapping is not sent: its numbers belong to the previous
//!   feed. A jump in the source's sequence (beyond 3000 ahead or 100 behind) or timestamp
//!   (beyond 60 s) is taken as a restart of the source: a change.

use std::time::{Duration, Instant};

/// Packets a relayed packet may lag the newest and still be sent (late, reordered).
const RELAY_FLOOR_LAG: u16 = 0x4000;

use rtp_rs::{RtpPacketBuilder, Seq};

use super::{duration_to_samples, samples_to_duration, MediaPacket};
use crate::media::dtmf::DtmfSender;
use crate::media::rtcp::SenderStats;

/// A pause in our own frames longer than this (beyond the last frame's length) starts a new
/// talkspurt: the timestamp follows the wall clock and the marker is set.
pub const TALKSPURT_GAP: Duration = Duration::from_millis(200);
/// A relayed source's sequence may jump this far ahead and still be the same run (RFC 3550 A.1).
const MAX_DROPOUT: i16 = 3000;
/// A relayed source's packet may be this far behind and still be a late packet (RFC 3550 A.1).
const MAX_MISORDER: i16 = 100;
/// A relayed source's timestamp may move this many seconds either way within one run.
const MAX_TS_JUMP_SECS: i64 = 60;

/// The packet with the highest timestamp sent so far.
#[derive(Debug, Clone, Copy)]
struct Last {
    ts: u32,
    /// How much audio it carried (for a DTMF digit: the whole tone).
    samples: u32,
    at: Instant,
}

/// How packets of the relayed source map onto our stream.
#[derive(Debug, Clone, Copy)]
struct RelayMap {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
    /// Our sequence number for the first packet of this mapping.
    first_seq: u16,
    /// Highest source sequence number seen, and its timestamp.
    high_seq: u16,
    high_ts: u32,
}

impl RelayMap {
    /// Whether `src` belongs to the run this mapping was made for.
    fn continues(&self, src: &MediaPacket, clock_rate: u32) -> bool {
        let d_seq = src.seq.wrapping_sub(self.high_seq) as i16;
        let d_ts = i64::from(src.timestamp.wrapping_sub(self.high_ts) as i32);
        self.ssrc == src.ssrc
            && (-MAX_MISORDER..=MAX_DROPOUT).contains(&d_seq)
            && d_ts.abs() <= MAX_TS_JUMP_SECS * i64::from(clock_rate)
    }
}

/// What fed the last packet.
#[derive(Debug, Clone, Copy)]
enum Feed {
    Nothing,
    Own,
    Dtmf,
    Relay(RelayMap),
}

/// Header fields of one packet to write.
#[derive(Debug, Clone, Copy)]
struct Header {
    pt: u8,
    seq: u16,
    ts: u32,
    marker: bool,
}

/// The outbound stream of one leg.
#[derive(Debug, Clone)]
pub(super) struct Outbound {
    ssrc: u32,
    clock_rate: u32,
    ptime_ms: u32,
    /// Samples per packet time.
    frame: u32,
    /// Sequence number of the next packet after a change (highest sent + 1).
    next_seq: u16,
    /// Timestamp of the very first packet.
    initial_ts: u32,
    last: Option<Last>,
    feed: Feed,
    /// Counts for our SRs and the SR history for round-trip times.
    pub(super) stats: SenderStats,
    sent_since_report: bool,
}

impl Outbound {
    /// A stream with SSRC `ssrc`; the first sequence number and timestamp are drawn from `seed`
    /// (RFC 3550 wants them random).
    pub(super) fn new(ssrc: u32, clock_rate: u32, ptime_ms: u32, seed: u64) -> Self {
        let frame = (u64::from(clock_rate) * u64::from(ptime_ms) / 1000).clamp(1, 1 << 20) as u32;
        Outbound {
            ssrc,
            clock_rate,
            ptime_ms,
            frame,
            next_seq: seed as u16,
            initial_ts: (seed >> 32) as u32,
            last: None,
            feed: Feed::Nothing,
            stats: SenderStats::new(ssrc, clock_rate),
            sent_since_report: false,
        }
    }

    /// Our SSRC.
    pub(super) fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Samples per packet time.
    pub(super) fn frame(&self) -> u32 {
        self.frame
    }

    /// True once, if a packet was sent since the last call (SR rather than RR).
    pub(super) fn take_sent_since_report(&mut self) -> bool {
        std::mem::take(&mut self.sent_since_report)
    }

    /// Timestamp for the first packet after a change at `now`.
    fn change_ts(&self, now: Instant) -> u32 {
        let Some(last) = self.last else {
            return self.initial_ts;
        };
        let elapsed = u64::from(duration_to_samples(
            now.saturating_duration_since(last.at),
            self.clock_rate,
        ));
        let frame = u64::from(self.frame);
        let rounded = ((elapsed + frame / 2) / frame * frame) as u32;
        last.ts.wrapping_add(rounded.max(last.samples))
    }

    /// Takes the next sequence number in order.
    fn take_seq(&mut self) -> u16 {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        seq
    }

    /// Remembers a packet sent at `now` if it is the newest in timestamp order.
    fn note(&mut self, ts: u32, samples: u32, now: Instant) {
        let newer = match self.last {
            None => true,
            Some(l) => {
                let d = ts.wrapping_sub(l.ts) as i32;
                d > 0 || (d == 0 && samples >= l.samples)
            }
        };
        if newer {
            self.last = Some(Last {
                ts,
                samples,
                at: now,
            });
        }
    }

    /// Writes one packet into `out` (cleared first) and counts it.
    fn write(&mut self, h: Header, payload: &[u8], now: Instant, out: &mut Vec<u8>) {
        out.clear();
        let builder = RtpPacketBuilder::new()
            .payload_type(h.pt)
            .sequence(Seq::from(h.seq))
            .timestamp(h.ts)
            .ssrc(self.ssrc)
            .marked(h.marker)
            .payload(payload);
        out.resize(builder.target_length(), 0);
        match builder.build_into(out) {
            Ok(n) => out.truncate(n),
            // Only an invalid payload type fails, and callers check it first.
            Err(_) => out.clear(),
        }
        self.stats.on_sent(h.ts, payload.len(), now);
        self.sent_since_report = true;
    }

    /// Our own frame: `payload` worth `samples` samples. False (and `out` empty) if `pt` is not
    /// a valid payload type.
    pub(super) fn voice(
        &mut self,
        now: Instant,
        pt: u8,
        payload: &[u8],
        samples: u32,
        out: &mut Vec<u8>,
    ) -> bool {
        if pt > 127 {
            out.clear();
            return false;
        }
        let (ts, marker) = match (self.feed, self.last) {
            (Feed::Own, Some(l)) if !self.paused(now, l) => (l.ts.wrapping_add(l.samples), false),
            _ => (self.change_ts(now), true),
        };
        let seq = self.take_seq();
        self.feed = Feed::Own;
        self.note(ts, samples, now);
        self.write(
            Header {
                pt,
                seq,
                ts,
                marker,
            },
            payload,
            now,
            out,
        );
        true
    }

    /// Whether our own frames paused since `last` long enough to start a new talkspurt.
    fn paused(&self, now: Instant, last: Last) -> bool {
        let expected = samples_to_duration(last.samples, self.clock_rate);
        now.saturating_duration_since(last.at) > expected.saturating_add(TALKSPURT_GAP)
    }

    /// A packet relayed from `src`, sent as payload type `pt` with `samples` of audio. False
    /// (and `out` empty) when it is not to be sent: it maps before the first packet of the
    /// current mapping, or `pt` is invalid.
    pub(super) fn relayed(
        &mut self,
        now: Instant,
        pt: u8,
        src: &MediaPacket,
        payload: &[u8],
        samples: u32,
        out: &mut Vec<u8>,
    ) -> bool {
        if pt > 127 {
            out.clear();
            return false;
        }
        let clock_rate = self.clock_rate;
        let header = match &mut self.feed {
            Feed::Relay(map) if map.continues(src, clock_rate) => {
                let seq = src.seq.wrapping_add(map.seq_offset);
                if (seq.wrapping_sub(map.first_seq) as i16) < 0 {
                    out.clear();
                    return false;
                }
                if (src.seq.wrapping_sub(map.high_seq) as i16) > 0 {
                    map.high_seq = src.seq;
                    map.high_ts = src.timestamp;
                    // The floor trails the newest packet by at most a quarter of the sequence
                    // space, so a stream of over 32,768 packets never wraps round past it.
                    if seq.wrapping_sub(map.first_seq) > RELAY_FLOOR_LAG {
                        map.first_seq = seq.wrapping_sub(RELAY_FLOOR_LAG);
                    }
                }
                Header {
                    pt,
                    seq,
                    ts: src.timestamp.wrapping_add(map.ts_offset),
                    marker: src.marker,
                }
            }
            _ => {
                let seq = self.next_seq;
                let ts = self.change_ts(now);
                self.feed = Feed::Relay(RelayMap {
                    ssrc: src.ssrc,
                    seq_offset: seq.wrapping_sub(src.seq),
                    ts_offset: ts.wrapping_sub(src.timestamp),
                    first_seq: seq,
                    high_seq: src.seq,
                    high_ts: src.timestamp,
                });
                Header {
                    pt,
                    seq,
                    ts,
                    marker: true,
                }
            }
        };
        if (header.seq.wrapping_sub(self.next_seq) as i16) >= 0 {
            self.next_seq = header.seq.wrapping_add(1);
        }
        self.note(header.ts, samples, now);
        self.write(header, payload, now, out);
        true
    }

    /// The packets for one DTMF digit as payload type `pt`, with their send offsets from `now`;
    /// empty if `pt` is invalid or the digit or duration are refused by [`DtmfSender`].
    pub(super) fn dtmf(
        &mut self,
        now: Instant,
        pt: u8,
        digit: char,
        duration_ms: u32,
    ) -> Vec<(Duration, Vec<u8>)> {
        if pt > 127 {
            return Vec::new();
        }
        let start = self.change_ts(now);
        let sender = DtmfSender::new(self.clock_rate, self.ptime_ms);
        let Ok(packets) = sender.packets(digit, start, duration_ms) else {
            return Vec::new();
        };
        let mut result = Vec::with_capacity(packets.len());
        for p in packets {
            let seq = self.take_seq();
            let mut buf = Vec::new();
            let header = Header {
                pt,
                seq,
                ts: p.timestamp,
                marker: p.marker,
            };
            self.write(header, &p.payload, now, &mut buf);
            result.push((Duration::from_millis(u64::from(p.offset_ms)), buf));
        }
        // The tone occupies the stream from `start` for its whole length: audio resumes after it.
        let tone =
            (u64::from(self.clock_rate) * u64::from(duration_ms) / 1000).max(u64::from(self.frame));
        self.last = Some(Last {
            ts: start,
            samples: tone.min(u64::from(u32::MAX)) as u32,
            at: now,
        });
        self.feed = Feed::Dtmf;
        result
    }
}
