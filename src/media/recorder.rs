//! Per-call stereo WAV recording: 8 kHz, 16-bit, customer on the left, agent on the right.
//!
//! Each side's decoded packets go through their own [`JitterBuffer`]; what comes out is queued
//! per side and written as interleaved frames as far as both sides have audio.
//!
//! Alignment of the two sides, with no clock read (each side is a sample counter):
//! - Both sides advance together: one sample of each per output frame.
//! - A side that sends nothing (one-way audio, hold, late answer) must not stall the file: when
//!   the other side is more than [`LAG_LIMIT_SAMPLES`] ahead, the silent side is padded with
//!   silence. That padding is remembered as credit: if the side comes back with a timestamp
//!   gap (RTP timestamps ran on while it was quiet), the jitter buffer's gap-filling silence is
//!   set against the credit, so the pause is not written twice.
//! - When a side's stream starts (first packets, or a resync in its jitter buffer), it is
//!   placed by arrival: the audio just released spans from its first packet to now, and the
//!   other side's count stands for now, so the stream starts that many samples before the other
//!   side's position. This needs packets pushed as they arrive; a file fed faster than real
//!   time cannot be aligned this way.
//!
//! Time when neither side sends anything is not recorded.

use crate::media::jitter::{Frame, FrameKind, JitterBuffer};
use hound::{SampleFormat, WavSpec, WavWriter};
use std::collections::VecDeque;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Sample rate of recordings.
pub const SAMPLE_RATE: u32 = 8000;
/// Packets each side's jitter buffer holds before giving up on a missing one (100 ms of 20 ms
/// packets).
pub const JITTER_DEPTH: usize = 5;
/// How far one side may run ahead of a silent other before that one is padded: twice the
/// jitter depth of 20 ms packets, so a side merely waiting in its jitter buffer is not padded.
pub const LAG_LIMIT_SAMPLES: usize = 2 * JITTER_DEPTH * 160;

/// Why a recording could not be written.
#[derive(Debug, Error)]
pub enum RecordError {
    /// The directory for the file could not be made.
    #[error("creating recording directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Creating, writing or finalising the WAV file failed.
    #[error("writing recording: {0}")]
    Wav(#[from] hound::Error),
}

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingInfo {
    /// The WAV file.
    pub path: PathBuf,
    /// Length in seconds.
    pub duration_seconds: f64,
    /// Length in samples per channel.
    pub samples: u64,
}

/// One channel's pipeline: jitter buffer, then samples waiting for the other side.
#[derive(Debug)]
struct Side {
    jitter: JitterBuffer,
    pending: VecDeque<i16>,
    /// Samples produced so far: written plus pending.
    total: u64,
    /// Silence padded for this side that a later timestamp gap may account for.
    credit: u64,
}

impl Side {
    fn new() -> Self {
        Side {
            jitter: JitterBuffer::new(JITTER_DEPTH),
            pending: VecDeque::new(),
            total: 0,
            credit: 0,
        }
    }

    fn pad(&mut self, n: u64) {
        self.pending.extend(std::iter::repeat_n(0, n as usize));
        self.total += n;
    }

    /// Queues frames just released by the jitter buffer; `other_total` is the other side's
    /// count, standing for "now".
    fn accept(&mut self, frames: Vec<Frame>, other_total: u64) {
        let mut burst: u64 = frames.iter().map(|f| f.samples.len() as u64).sum();
        for frame in frames {
            let len = frame.samples.len() as u64;
            if frame.new_stream {
                let start = other_total.saturating_sub(burst);
                if start > self.total {
                    self.pad(start - self.total);
                }
                self.credit = 0;
            }
            burst -= len;
            match frame.kind {
                FrameKind::Gap => {
                    let covered = self.credit.min(len);
                    self.credit -= covered;
                    self.pad(len - covered);
                }
                FrameKind::Audio => {
                    self.credit = 0;
                    self.pending.extend(frame.samples);
                    self.total += len;
                }
            }
        }
    }
}

/// Which channel a packet belongs to.
#[derive(Debug, Clone, Copy)]
enum Channel {
    Customer,
    Agent,
}

/// A stereo WAV recording of one call being written.
pub struct Recorder {
    path: PathBuf,
    /// `None` once finished.
    writer: Option<WavWriter<BufWriter<File>>>,
    customer: Side,
    agent: Side,
    written: u64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Creates the WAV file (and its parent directories).
    pub fn create(path: &Path) -> Result<Recorder, RecordError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| RecordError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let spec = WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        Ok(Recorder {
            path: path.to_path_buf(),
            writer: Some(WavWriter::create(path, spec)?),
            customer: Side::new(),
            agent: Side::new(),
            written: 0,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Samples per channel written to the file so far.
    pub fn samples_written(&self) -> u64 {
        self.written
    }

    /// Takes a decoded packet of the customer's audio (left channel).
    pub fn push_customer(
        &mut self,
        seq: u16,
        timestamp: u32,
        samples: &[i16],
    ) -> Result<(), RecordError> {
        self.push(Channel::Customer, seq, timestamp, samples)
    }

    /// Takes a decoded packet of the agent's audio (right channel).
    pub fn push_agent(
        &mut self,
        seq: u16,
        timestamp: u32,
        samples: &[i16],
    ) -> Result<(), RecordError> {
        self.push(Channel::Agent, seq, timestamp, samples)
    }

    fn push(
        &mut self,
        channel: Channel,
        seq: u16,
        timestamp: u32,
        samples: &[i16],
    ) -> Result<(), RecordError> {
        let (side, other) = self.sides(channel);
        side.jitter.push(seq, timestamp, samples);
        let frames: Vec<Frame> = std::iter::from_fn(|| side.jitter.pop_ready()).collect();
        if !frames.is_empty() {
            side.accept(frames, other.total);
        }
        self.write_ready(false)
    }

    fn sides(&mut self, channel: Channel) -> (&mut Side, &Side) {
        match channel {
            Channel::Customer => (&mut self.customer, &self.agent),
            Channel::Agent => (&mut self.agent, &self.customer),
        }
    }

    /// Writes the frames both sides have; pads a side left more than the lag limit behind, or
    /// at the end (`all`) any side that is behind at all.
    fn write_ready(&mut self, all: bool) -> Result<(), RecordError> {
        let limit = if all { 0 } else { LAG_LIMIT_SAMPLES };
        let (c, a) = (self.customer.pending.len(), self.agent.pending.len());
        if c > a + limit {
            let n = (c - a - limit) as u64;
            self.agent.pad(n);
            self.agent.credit += n;
        } else if a > c + limit {
            let n = (a - c - limit) as u64;
            self.customer.pad(n);
            self.customer.credit += n;
        }
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let n = self.customer.pending.len().min(self.agent.pending.len());
        for (left, right) in self
            .customer
            .pending
            .drain(..n)
            .zip(self.agent.pending.drain(..n))
        {
            writer.write_sample(left)?;
            writer.write_sample(right)?;
        }
        self.written += n as u64;
        Ok(())
    }

    /// Writes out what is buffered and updates the WAV header, so the file so far is playable
    /// even if the process dies.
    pub fn flush(&mut self) -> Result<(), RecordError> {
        if let Some(writer) = self.writer.as_mut() {
            writer.flush()?;
        }
        Ok(())
    }

    /// Drains both jitter buffers, writes everything (the shorter side padded with silence)
    /// and finalises the WAV header.
    pub fn finish(mut self) -> Result<RecordingInfo, RecordError> {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Result<RecordingInfo, RecordError> {
        let frames = self.customer.jitter.drain();
        self.customer.accept(frames, self.agent.total);
        let frames = self.agent.jitter.drain();
        self.agent.accept(frames, self.customer.total);
        let written = self.write_ready(true);
        // Finalise even when a write failed, so the header matches what is on disk.
        let finalized = match self.writer.take() {
            Some(writer) => writer.finalize(),
            None => Ok(()),
        };
        written?;
        finalized?;
        Ok(RecordingInfo {
            path: self.path.clone(),
            duration_seconds: self.written as f64 / f64::from(SAMPLE_RATE),
            samples: self.written,
        })
    }
}

impl Drop for Recorder {
    /// A recorder dropped without [`Recorder::finish`] (a task cancelled at hangup) still
    /// leaves a complete, valid file; errors have no one to go to here.
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.finish_inner();
        }
    }
}

#[cfg(test)]
mod tests;
