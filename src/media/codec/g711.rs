//! G.711 (ITU-T G.711) µ-law and A-law: the classic sign/segment/mantissa companding used by
//! the Sun/CCITT reference code, plus direct PCMU⇄PCMA byte tables.
//!
//! Encoders work on 16-bit linear samples with bit operations (a leading-zero count finds the
//! segment); decoders and the transcoding tables are 256-entry tables built at compile time
//! from the same functions, so tables and functions cannot drift apart.

use super::Codec;

/// Added to a µ-law magnitude so the segment is the position of its top bit.
const ULAW_BIAS: i32 = 0x84;
/// Largest µ-law magnitude before the bias; anything louder encodes as full scale.
const ULAW_CLIP: i32 = 32635;

/// Encodes one 16-bit linear sample as µ-law (PCMU).
///
/// Negative samples use their magnitude `-x`, so the quantiser is symmetric about zero and
/// small negatives land on "negative zero" (0x7F), which decodes to 0 like 0xFF.
#[inline]
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    let x = sample as i32;
    let (sign, mag) = if x < 0 { (0x80, -x) } else { (0x00, x) };
    let mag = if mag > ULAW_CLIP { ULAW_CLIP } else { mag };
    // 132 ..= 32767: the top bit is bit 7 ..= 14, i.e. segment 0 ..= 7.
    let biased = (mag + ULAW_BIAS) as u32;
    let segment = (31 - biased.leading_zeros()) - 7;
    let mantissa = (biased >> (segment + 3)) & 0x0F;
    // µ-law bytes go out inverted so that silence has many one bits (T1 ones density).
    !(sign | (segment << 4) as u8 | mantissa as u8)
}

/// Decodes one µ-law byte with the reference formula; the decode table is built from it.
const fn ulaw_to_linear_calc(code: u8) -> i16 {
    let u = !code;
    let segment = ((u & 0x70) >> 4) as i32;
    let t = ((((u & 0x0F) as i32) << 3) + ULAW_BIAS) << segment;
    // After the inversion a set sign bit means negative.
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

/// Encodes one 16-bit linear sample as A-law (PCMA).
///
/// A-law has no zero code: negatives use the one's complement `-x - 1` as magnitude, so
/// -8..=-1 encode as 0x55 (-8) and 0..=7 as 0xD5 (+8), as in the reference code.
#[inline]
pub const fn linear_to_alaw(sample: i16) -> u8 {
    let x = (sample >> 3) as i32; // 13-bit A-law input range
    let (mask, mag) = if x >= 0 {
        (0xD5u8, x)
    } else {
        (0x55u8, -x - 1)
    };
    let mag = mag as u32; // 0 ..= 4095, so the segment never overflows 7
                          // Segment = bit length of mag >> 5: 0..31 → 0, 32..63 → 1, 64..127 → 2, …
    let segment = 32 - (mag >> 5).leading_zeros();
    // Segments 0 and 1 share the same step size.
    let shift = if segment == 0 { 1 } else { segment };
    let code = ((segment << 4) | ((mag >> shift) & 0x0F)) as u8;
    // Even bits are inverted (0x55) for line density; the sign bit is set for positives.
    code ^ mask
}

/// Decodes one A-law byte with the reference formula; the decode table is built from it.
const fn alaw_to_linear_calc(code: u8) -> i16 {
    let a = code ^ 0x55;
    let segment = ((a & 0x70) >> 4) as i32;
    let mut t = ((a & 0x0F) as i32) << 4;
    if segment == 0 {
        t += 8;
    } else {
        t = (t + 0x108) << (segment - 1);
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

/// µ-law byte → linear sample.
pub static ULAW_TO_LINEAR: [i16; 256] = build_decode_table(false);
/// A-law byte → linear sample.
pub static ALAW_TO_LINEAR: [i16; 256] = build_decode_table(true);

/// µ-law byte → A-law byte: decode to linear, then A-law encode.
///
/// Semantics: decode→encode (each entry is the A-law code whose decision interval holds the
/// µ-law value), not a copy of the direct-conversion Tables 3/4 printed in G.711. Those differ
/// from decode→encode by one step in 44 µ→A and 32 A→µ entries, mostly µ-law segment 5
/// (±4092..±7932, a few units below A-law's decision values there); decode→encode is never
/// further from the source value for µ→A, and both are equally transparent in tandem.
pub static ULAW_TO_ALAW: [u8; 256] = build_transcode_table(false);
/// A-law byte → µ-law byte: decode to linear, then µ-law encode (same semantics as
/// [`ULAW_TO_ALAW`]).
pub static ALAW_TO_ULAW: [u8; 256] = build_transcode_table(true);

const fn build_decode_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_to_linear_calc(i as u8)
        } else {
            ulaw_to_linear_calc(i as u8)
        };
        i += 1;
    }
    table
}

const fn build_transcode_table(from_alaw: bool) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if from_alaw {
            linear_to_ulaw(alaw_to_linear_calc(i as u8))
        } else {
            linear_to_alaw(ulaw_to_linear_calc(i as u8))
        };
        i += 1;
    }
    table
}

/// Decodes one µ-law byte (table lookup).
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TO_LINEAR[code as usize]
}

/// Decodes one A-law byte (table lookup).
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TO_LINEAR[code as usize]
}

/// Converts one µ-law byte to A-law (table lookup; decode→encode semantics).
#[inline]
pub fn ulaw_to_alaw(code: u8) -> u8 {
    ULAW_TO_ALAW[code as usize]
}

/// Converts one A-law byte to µ-law (table lookup; decode→encode semantics).
#[inline]
pub fn alaw_to_ulaw(code: u8) -> u8 {
    ALAW_TO_ULAW[code as usize]
}

/// Appends the µ-law encoding of `pcm` to `out`.
pub fn encode_ulaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_ulaw(s)));
}

/// Appends the A-law encoding of `pcm` to `out`.
pub fn encode_alaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_alaw(s)));
}

/// Appends the linear samples of a µ-law payload to `out`.
pub fn decode_ulaw(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&b| ULAW_TO_LINEAR[b as usize]));
}

/// Appends the linear samples of an A-law payload to `out`.
pub fn decode_alaw(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&b| ALAW_TO_LINEAR[b as usize]));
}

/// Appends `payload` (µ-law) converted to A-law to `out`.
pub fn ulaw_to_alaw_slice(payload: &[u8], out: &mut Vec<u8>) {
    out.extend(payload.iter().map(|&b| ULAW_TO_ALAW[b as usize]));
}

/// Appends `payload` (A-law) converted to µ-law to `out`.
pub fn alaw_to_ulaw_slice(payload: &[u8], out: &mut Vec<u8>) {
    out.extend(payload.iter().map(|&b| ALAW_TO_ULAW[b as usize]));
}

/// G.711 µ-law, static payload type 0 (RFC 3551).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pcmu;

/// G.711 A-law, static payload type 8 (RFC 3551).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pcma;

impl Codec for Pcmu {
    fn payload_type(&self) -> u8 {
        0
    }
    fn name(&self) -> &'static str {
        "PCMU"
    }
    fn clock_rate(&self) -> u32 {
        8000
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        encode_ulaw(pcm, out);
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        decode_ulaw(payload, out);
    }
}

impl Codec for Pcma {
    fn payload_type(&self) -> u8 {
        8
    }
    fn name(&self) -> &'static str {
        "PCMA"
    }
    fn clock_rate(&self) -> u32 {
        8000
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        encode_alaw(pcm, out);
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        decode_alaw(payload, out);
    }
}
