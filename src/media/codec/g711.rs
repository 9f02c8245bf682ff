//! G.711 (ITU-T G.711) µ-law and A-law: the classic sign/segment/mantissa companding used by
//! the Sun/CCITT reference code, plus direct PCMU⇄PCMA byte tables.
//!
//! Encoders work on 16-bit linear samples with bit operations (a leading-zero count finds the
//! segment); decoders are 256-entry tables built at compile time from the same functions, so
//! tables and functions cannot drift apart. The PCMU⇄PCMA tables are built from G.711's own
//! conversion Tables 3 and 4.

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

/// G.711 Table 3, µ-law → A-law, by magnitude rank (0 = quietest of the 128 magnitudes of a
/// sign): entry `k` is the A-law rank, counted from 1, that µ-law rank `k` becomes. As printed
/// in the Recommendation; early software copies carried a misprint at rank 80 (81 for 80),
/// corrected at Aalborg University in 1994.
const G711_TABLE_3: [u8; 128] = [
    1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, //
    9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, //
    25, 27, 29, 31, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, //
    46, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, //
    64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, //
    80, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, //
    97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, //
    113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128,
];

/// G.711 Table 4, A-law → µ-law, by magnitude rank: entry `k` is the µ-law rank (0 = quietest)
/// that A-law rank `k` becomes. Same source and correction (rank 71: 80, misprinted 79).
const G711_TABLE_4: [u8; 128] = [
    1, 3, 5, 7, 9, 11, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23, //
    24, 25, 26, 27, 28, 29, 30, 31, 32, 32, 33, 33, 34, 34, 35, 35, //
    36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 48, 49, 49, //
    50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 64, //
    65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, //
    80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, //
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, //
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
];

/// µ-law byte → A-law byte, per G.711 Table 3 (direct conversion, not decode→encode: the
/// tables are what the Recommendation specifies for PCMU⇄PCMA at an international boundary,
/// and keep a µ→A→µ tandem transparent).
pub static ULAW_TO_ALAW: [u8; 256] = build_transcode_table(false);
/// A-law byte → µ-law byte, per G.711 Table 4.
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
        let code = i as u8;
        table[i] = if from_alaw {
            // A-law rank = code ^ 0x55 (negative) or ^ 0xD5 (positive, sign bit set on air).
            if code & 0x80 != 0 {
                0xFF ^ G711_TABLE_4[(code ^ 0xD5) as usize]
            } else {
                0x7F ^ G711_TABLE_4[(code ^ 0x55) as usize]
            }
        } else {
            // µ-law rank = inverted magnitude bits; sign bit set means positive.
            if code & 0x80 != 0 {
                0xD5 ^ (G711_TABLE_3[(0xFF ^ code) as usize] - 1)
            } else {
                0x55 ^ (G711_TABLE_3[(0x7F ^ code) as usize] - 1)
            }
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
