//! Audio codecs behind one trait, so the RTP engine and bridging code do not care which one a
//! leg uses. G.711 µ-law and A-law today; Opus plugs in as another `Codec` (its state lives in
//! the value, hence `&mut self`).

pub mod g711;

#[cfg(test)]
mod tests;

/// An audio codec for one direction of one leg: linear 16-bit PCM ⇄ RTP payload.
pub trait Codec {
    /// RTP payload type used on the wire (static or negotiated).
    fn payload_type(&self) -> u8;
    /// Encoding name as written in `a=rtpmap` (e.g. "PCMU").
    fn name(&self) -> &'static str;
    /// RTP clock rate in Hz.
    fn clock_rate(&self) -> u32;
    /// Encodes `pcm` (mono, at the clock rate) and appends the payload bytes to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>);
    /// Decodes one RTP payload and appends the samples to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>);
}

/// The codecs dialerd can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// G.711 µ-law, payload type 0.
    Pcmu,
    /// G.711 A-law, payload type 8.
    Pcma,
}

impl CodecKind {
    /// Every supported codec, in our default preference order.
    pub const ALL: [CodecKind; 2] = [CodecKind::Pcmu, CodecKind::Pcma];

    /// The codec with this static payload type (RFC 3551), if we support it.
    pub fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            _ => None,
        }
    }

    /// The codec with this rtpmap encoding name, compared case-insensitively (RFC 4566).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// Static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    /// Encoding name for `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }

    /// RTP clock rate in Hz.
    pub fn clock_rate(self) -> u32 {
        8000
    }

    /// A fresh encoder/decoder for one leg.
    pub fn new_codec(self) -> Box<dyn Codec + Send> {
        match self {
            Self::Pcmu => Box::new(g711::Pcmu),
            Self::Pcma => Box::new(g711::Pcma),
        }
    }
}

/// Converts one payload from `from` to `to` and appends it to `out`; a plain copy when the two
/// are the same. G.711 pairs go through the direct byte tables ([`g711::ULAW_TO_ALAW`],
/// [`g711::ALAW_TO_ULAW`]), built from G.711's conversion Tables 3 and 4.
pub fn transcode(from: CodecKind, to: CodecKind, payload: &[u8], out: &mut Vec<u8>) {
    match (from, to) {
        (CodecKind::Pcmu, CodecKind::Pcma) => g711::ulaw_to_alaw_slice(payload, out),
        (CodecKind::Pcma, CodecKind::Pcmu) => g711::alaw_to_ulaw_slice(payload, out),
        _ => out.extend_from_slice(payload),
    }
}
