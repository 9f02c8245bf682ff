//! A small jitter buffer for recording: decoded 8 kHz PCM packets in, PCM out in timestamp
//! order with silence where audio is missing.
//!
//! Sans-IO and clockless: release is driven by how many packets are held, not by time. A packet
//! that continues the output is released at once; when the next one is missing the buffer waits
//! until it holds `depth` packets, then gives up on the missing audio and fills the gap with
//! silence. One timestamp unit is one sample (8 kHz audio at 8 kHz RTP clock).
//!
//! Timestamps are unwrapped to a 64-bit timeline, so 32-bit wraparound is seamless. A jump of
//! more than [`RESYNC_SAMPLES`] (10 s) either way is not written as silence: it is taken as a new
//! stream (the far end restarted, or a re-INVITE switched sources). Because a single corrupt or
//! stray packet must not throw the timeline away, a far packet is only held as a candidate; the
//! next packet confirms the new stream if it lies near the candidate in timestamp and sequence
//! number. On resync everything held from the old stream is released first, then the new stream
//! continues the output without a gap; the first frame of a stream has `new_stream` set so a
//! caller that cares about wall-clock alignment (the recorder) can place it.

use std::collections::{BTreeMap, VecDeque};

/// Timestamp distance beyond which a packet starts a new stream instead of a gap: 10 s at 8 kHz.
pub const RESYNC_SAMPLES: i64 = 10 * 8000;
/// Largest sequence distance between a resync candidate and the packet confirming it.
const RESYNC_MAX_SEQ_GAP: u16 = 100;
/// Hard cap on packets held, so a far end sending garbage cannot grow memory without bound.
const MAX_HELD: usize = 1000;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Received audio.
    Audio,
    /// Silence standing in for audio that never came (loss or a timestamp jump).
    Gap,
}

/// A run of output PCM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// RTP timestamp of the first sample.
    pub timestamp: u32,
    /// 8 kHz mono samples.
    pub samples: Vec<i16>,
    /// Whether they were received or filled in.
    pub kind: FrameKind,
    /// First frame of a stream: after the first packets, or after a resync.
    pub new_stream: bool,
}

/// Counters for what the buffer did with its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets pushed.
    pub pushed: u64,
    /// Dropped because their audio was already output.
    pub late: u64,
    /// Dropped because the same timestamp was already held.
    pub duplicates: u64,
    /// Dropped because the buffer was full.
    pub overflow: u64,
    /// Far packets dropped as strays (no second packet confirmed them).
    pub strays: u64,
    /// New streams started after a timestamp jump.
    pub resyncs: u64,
    /// Silence samples filled in for missing audio.
    pub filled_samples: u64,
}

/// A far packet waiting for a second one to confirm a new stream.
#[derive(Debug)]
struct Candidate {
    seq: u16,
    timestamp: u32,
    samples: Vec<i16>,
}

/// Orders decoded packets by timestamp and fills gaps with silence.
#[derive(Debug)]
pub struct JitterBuffer {
    depth: usize,
    /// Held packets by unwrapped timestamp.
    held: BTreeMap<i64, Vec<i16>>,
    /// Unwrapped timestamp of the next sample to output, once output has started.
    next: Option<i64>,
    /// Highest packet timestamp seen in this stream, wrapped and unwrapped: the unwrap anchor.
    anchor: Option<(u32, i64)>,
    candidate: Option<Candidate>,
    /// Frames already released (the old stream's tail at a resync).
    ready: VecDeque<Frame>,
    new_stream: bool,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer that waits for up to `depth` packets (at least 1) before skipping missing audio.
    pub fn new(depth: usize) -> Self {
        JitterBuffer {
            depth: depth.max(1),
            held: BTreeMap::new(),
            next: None,
            anchor: None,
            candidate: None,
            ready: VecDeque::new(),
            new_stream: true,
            stats: JitterStats::default(),
        }
    }

    /// What happened to the input so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Packets held, not yet output.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes one decoded packet. Late, duplicate and stray packets are dropped (and counted).
    pub fn push(&mut self, seq: u16, timestamp: u32, samples: &[i16]) {
        self.stats.pushed += 1;
        if samples.is_empty() {
            return;
        }
        let Some((anchor_ts, anchor_ext)) = self.anchor else {
            self.start_stream(timestamp, samples);
            return;
        };
        let ext = anchor_ext + i64::from(timestamp.wrapping_sub(anchor_ts) as i32);
        if (ext - anchor_ext).abs() > RESYNC_SAMPLES {
            self.far_packet(seq, timestamp, samples);
            return;
        }
        if self.candidate.take().is_some() {
            // The old stream goes on: the candidate was a stray.
            self.stats.strays += 1;
        }
        self.insert(ext, timestamp, samples);
    }

    fn insert(&mut self, ext: i64, timestamp: u32, samples: &[i16]) {
        let end = ext + samples.len() as i64;
        if self.next.is_some_and(|next| end <= next) {
            self.stats.late += 1;
        } else if self.held.contains_key(&ext) {
            self.stats.duplicates += 1;
        } else if self.held.len() >= MAX_HELD {
            self.stats.overflow += 1;
        } else {
            self.held.insert(ext, samples.to_vec());
            if self.anchor.is_none_or(|(_, a)| ext > a) {
                self.anchor = Some((timestamp, ext));
            }
        }
    }

    fn start_stream(&mut self, timestamp: u32, samples: &[i16]) {
        let ext = i64::from(timestamp);
        self.anchor = Some((timestamp, ext));
        self.held.insert(ext, samples.to_vec());
    }

    fn far_packet(&mut self, seq: u16, timestamp: u32, samples: &[i16]) {
        let confirms = self.candidate.as_ref().is_some_and(|c| {
            let ts_gap = i64::from(timestamp.wrapping_sub(c.timestamp) as i32).abs();
            let seq_gap = seq.wrapping_sub(c.seq).min(c.seq.wrapping_sub(seq));
            ts_gap <= RESYNC_SAMPLES && seq_gap <= RESYNC_MAX_SEQ_GAP
        });
        if !confirms {
            if self.candidate.is_some() {
                self.stats.strays += 1;
            }
            self.candidate = Some(Candidate {
                seq,
                timestamp,
                samples: samples.to_vec(),
            });
            return;
        }
        let Some(c) = self.candidate.take() else {
            return;
        };
        // Release the old stream's tail, then start the new one from the candidate. Collected
        // apart: `take_frame` hands out `ready` first, so pushing onto it here would loop.
        let mut tail = Vec::new();
        while let Some(frame) = self.take_frame(true) {
            tail.push(frame);
        }
        self.ready.extend(tail);
        self.stats.resyncs += 1;
        self.held.clear();
        self.next = None;
        self.new_stream = true;
        self.start_stream(c.timestamp, &c.samples);
        let Some((anchor_ts, anchor_ext)) = self.anchor else {
            return;
        };
        let ext = anchor_ext + i64::from(timestamp.wrapping_sub(anchor_ts) as i32);
        self.insert(ext, timestamp, samples);
    }

    /// The next frame whose audio is settled: the packet that continues the output, or once
    /// `depth` packets are held, silence up to the earliest of them.
    pub fn pop_ready(&mut self) -> Option<Frame> {
        self.take_frame(false)
    }

    /// Everything held, in order with gaps filled: for the end of the call. A lone unconfirmed
    /// resync candidate is dropped.
    pub fn drain(&mut self) -> Vec<Frame> {
        if self.candidate.take().is_some() {
            self.stats.strays += 1;
        }
        let mut out = Vec::new();
        while let Some(frame) = self.take_frame(true) {
            out.push(frame);
        }
        out
    }

    fn take_frame(&mut self, force: bool) -> Option<Frame> {
        if let Some(frame) = self.ready.pop_front() {
            return Some(frame);
        }
        loop {
            let settled = force || self.held.len() >= self.depth;
            let (&start, _) = self.held.first_key_value()?;
            let next = match self.next {
                Some(next) => next,
                // Wait for `depth` packets before starting, so early reordering is absorbed.
                None if settled => start,
                None => return None,
            };
            if start > next {
                if !settled {
                    return None;
                }
                let len = start - next;
                self.stats.filled_samples += len as u64;
                self.next = Some(start);
                return Some(self.frame(next, vec![0; len as usize], FrameKind::Gap));
            }
            let (_, mut samples) = self.held.pop_first()?;
            // Overlap with audio already output is cut off.
            let skip = (next - start) as usize;
            if skip >= samples.len() {
                self.stats.late += 1;
                continue;
            }
            samples.drain(..skip);
            self.next = Some(next + samples.len() as i64);
            return Some(self.frame(next, samples, FrameKind::Audio));
        }
    }

    fn frame(&mut self, at: i64, samples: Vec<i16>, kind: FrameKind) -> Frame {
        let new_stream = std::mem::take(&mut self.new_stream);
        Frame {
            // The low 32 bits of the unwrapped timeline are the RTP timestamp.
            timestamp: at as u32,
            samples,
            kind,
            new_stream,
        }
    }
}

#[cfg(test)]
mod tests;
