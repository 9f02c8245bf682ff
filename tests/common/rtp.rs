//! RTP seen from a test phone: header fields, and the checks that a stream is one continuous
//! stream (what a listener hears without clicks or jumps).

use std::time::Instant;

/// A packet as received, with its arrival time.
pub type Timed = (Instant, Vec<u8>);

/// A big-endian header field of an RTP packet.
pub fn field(p: &[u8], at: usize, len: usize) -> u64 {
    p[at..at + len]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// SSRC of an RTP packet.
pub fn ssrc(p: &[u8]) -> u32 {
    field(p, 8, 4) as u32
}

/// Sequence number of an RTP packet.
pub fn seq(p: &[u8]) -> u16 {
    field(p, 2, 2) as u16
}

/// Timestamp of an RTP packet.
pub fn ts(p: &[u8]) -> u32 {
    field(p, 4, 4) as u32
}

/// Payload of an RTP packet (12-byte header, no CSRC or extension: what dialerd sends).
pub fn payload(p: &[u8]) -> &[u8] {
    &p[12..]
}

/// An RTP packet with a 12-byte header.
pub fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt & 0x7f];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Asserts `packets` are one stream: one SSRC, sequence numbers +1 each (no gap, no jump, no
/// step back), timestamps always moving forward and never further than the wall clock moved
/// between the two arrivals (plus 60 ms of scheduling slack), and at least 90 % of the steps
/// exactly 160 (20 ms of 8 kHz audio per packet).
pub fn assert_one_continuous_stream(packets: &[Timed]) {
    assert!(packets.len() > 10, "only {} packets", packets.len());
    let mut steps_of_160 = 0;
    for (i, w) in packets.windows(2).enumerate() {
        let ((ta, a), (tb, b)) = (&w[0], &w[1]);
        assert_eq!(ssrc(a), ssrc(b), "SSRC changed at packet {i}");
        assert_eq!(seq(a).wrapping_add(1), seq(b), "sequence gap at packet {i}");
        let d_ts = ts(b).wrapping_sub(ts(a)) as i32;
        assert!(
            d_ts > 0,
            "timestamp went back or stood still at packet {i}: {d_ts}"
        );
        let wall_ms = tb.saturating_duration_since(*ta).as_secs_f64() * 1000.0;
        let ts_ms = f64::from(d_ts) / 8.0;
        assert!(
            ts_ms <= wall_ms + 60.0,
            "timestamp jumped {ts_ms} ms in {wall_ms:.1} ms of wall time at packet {i}"
        );
        if d_ts == 160 {
            steps_of_160 += 1;
        }
    }
    let steps = packets.len() - 1;
    assert!(
        steps_of_160 * 10 >= steps * 9,
        "only {steps_of_160} of {steps} timestamp steps were 160"
    );
}

/// μ-law byte → 16-bit sample (ITU-T G.711).
pub fn ulaw(b: u8) -> i32 {
    let b = !b;
    let t = ((i32::from(b & 0x0f) << 3) + 0x84) << ((b & 0x70) >> 4);
    if b & 0x80 != 0 {
        0x84 - t
    } else {
        t - 0x84
    }
}

/// 16-bit sample → μ-law byte (ITU-T G.711).
pub fn to_ulaw(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    s = s.abs().min(32635) + 0x84;
    let exponent = (7 - (s.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// PCMU payloads of 20 ms each: `frames` frames of a `hz` tone.
pub fn pcmu_tone(hz: f64, frames: usize) -> Vec<Vec<u8>> {
    (0..frames)
        .map(|f| {
            (0..160)
                .map(|i| {
                    let t = (f * 160 + i) as f64 / 8000.0;
                    to_ulaw((8000.0 * (std::f64::consts::TAU * hz * t).sin()) as i16)
                })
                .collect()
        })
        .collect()
}

/// The share of a PCMU frame's energy at `hz` (Goertzel), 0 to about 1.
pub fn tone_share(payload: &[u8], hz: f64) -> f64 {
    let samples: Vec<i16> = payload.iter().map(|b| ulaw(*b) as i16).collect();
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    if energy < 1e6 {
        return 0.0;
    }
    share_at(&samples, hz)
}

/// The power of `pcm` (8 kHz) at `hz` (Goertzel) as a share of its whole power; 0 for
/// near-silence (under 1,000 of power a sample).
pub fn share_at(pcm: &[i16], hz: f64) -> f64 {
    let w = std::f64::consts::TAU * hz / 8000.0;
    let (mut s1, mut s2, mut total) = (0.0f64, 0.0f64, 0.0f64);
    for &x in pcm {
        let x = f64::from(x);
        total += x * x;
        let s = x + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    if total < 1e3 * pcm.len() as f64 {
        return 0.0;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    power / (total * pcm.len() as f64 / 2.0)
}
