//! What a browser leg carries, sans-IO: the codec taken from a browser's offer (our
//! preference order among what it offers: G.711 end to end, or Opus transcoded at the
//! boundary), the plain SDP that hands the stream to an ordinary media leg, and the RTP header
//! work of the relay between the two (plain RTP on one side, str0m's packets on the other).

use crate::media::codec::CodecKind;
use std::fmt::Write;
use std::net::SocketAddr;

/// A codec a browser leg may carry (`webrtc.codecs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserCodec {
    /// Opus (RFC 7587): 48 kHz RTP clock, transcoded to the leg's G.711 at the boundary.
    Opus,
    /// A G.711 codec, carried end to end.
    G711(CodecKind),
}

impl BrowserCodec {
    /// From a `webrtc.codecs` name (`opus`, `PCMU`, `PCMA`; any case).
    pub fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("opus") {
            Some(Self::Opus)
        } else {
            CodecKind::from_name(&name.to_ascii_uppercase()).map(Self::G711)
        }
    }

    /// The RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::Opus => 48_000,
            Self::G711(c) => c.clock_rate(),
        }
    }

    /// The encoding name and clock as in an rtpmap (`opus/48000`, `PCMU/8000`).
    pub fn rtpmap(self) -> String {
        match self {
            Self::Opus => "opus/48000".into(),
            Self::G711(c) => format!("{}/{}", c.name(), c.clock_rate()),
        }
    }
}

/// The telephone-event payload type on the plain side of an Opus leg (the dynamic type most
/// SIP devices use).
pub const LEG_EVENT_PT: u8 = 101;

/// The stream a browser leg carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The browser's voice codec.
    pub codec: BrowserCodec,
    /// Its payload type in the browser's offer.
    pub pt: u8,
    /// The browser's telephone-event (RFC 4733) payload type at the codec's clock, if offered.
    pub event_pt: Option<u8>,
    /// The G.711 codec the ordinary media leg carries: the browser's own, or what Opus is
    /// transcoded to.
    pub leg: CodecKind,
}

impl Choice {
    /// The voice payload type on the plain side.
    pub fn leg_pt(&self) -> u8 {
        match self.codec {
            BrowserCodec::Opus => self.leg.payload_type(),
            BrowserCodec::G711(_) => self.pt,
        }
    }

    /// The telephone-event payload type (8 kHz) on the plain side.
    pub fn leg_event_pt(&self) -> Option<u8> {
        match self.codec {
            BrowserCodec::Opus => self.event_pt.map(|_| LEG_EVENT_PT),
            BrowserCodec::G711(_) => self.event_pt,
        }
    }
}

/// The codec of the browser's audio offer we take: the first of `prefs` it offers, with its
/// telephone-event at that codec's clock; G.711 ones only when in `leg_codecs` (what the
/// ordinary leg may speak), and Opus transcoded to the first of `leg_codecs`. `None` when it
/// offers none of them.
pub fn choose(offer: &str, prefs: &[BrowserCodec], leg_codecs: &[CodecKind]) -> Option<Choice> {
    let mut in_audio = false;
    let mut listed: Vec<u8> = Vec::new();
    let mut maps: Vec<(u8, String)> = Vec::new();
    for line in offer.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            if in_audio {
                // Only the first audio section is used.
                break;
            }
            in_audio = m.starts_with("audio ");
            if in_audio {
                listed = m
                    .split_whitespace()
                    .skip(3)
                    .filter_map(|p| p.parse().ok())
                    .collect();
            }
        } else if in_audio {
            if let Some(rest) = line.strip_prefix("a=rtpmap:") {
                let mut it = rest.splitn(2, ' ');
                if let (Some(Ok(pt)), Some(enc)) = (it.next().map(str::parse), it.next()) {
                    maps.push((pt, enc.to_ascii_lowercase()));
                }
            }
        }
    }
    let pt_of = |enc: &str, static_pt: Option<u8>| {
        listed
            .iter()
            .copied()
            .find(|pt| match maps.iter().find(|(p, _)| p == pt) {
                Some((_, e)) => e == enc || e.starts_with(&format!("{enc}/")),
                None => Some(*pt) == static_pt,
            })
    };
    let first_leg = *leg_codecs.first()?;
    let (codec, pt, leg) = prefs.iter().find_map(|c| {
        let (static_pt, leg) = match c {
            BrowserCodec::Opus => (None, first_leg),
            BrowserCodec::G711(k) if leg_codecs.contains(k) => (Some(k.payload_type()), *k),
            BrowserCodec::G711(_) => return None,
        };
        pt_of(&c.rtpmap().to_ascii_lowercase(), static_pt).map(|pt| (*c, pt, leg))
    })?;
    Some(Choice {
        codec,
        pt,
        event_pt: pt_of(&format!("telephone-event/{}", codec.clock_rate()), None),
        leg,
    })
}

/// The plain offer that opens the ordinary media leg of a browser leg: the chosen stream at
/// `relay` (the driver's end of the leg's pipe; G.711 and its 8 kHz events), rtcp-mux, so the leg
/// negotiates exactly it.
pub fn plain_offer(choice: Choice, relay: SocketAddr) -> String {
    let (ip4, ip) = match relay {
        SocketAddr::V4(a) => ("IP4", a.ip().to_string()),
        SocketAddr::V6(a) => ("IP6", a.ip().to_string()),
    };
    let mut s = format!(
        "v=0\r\no=- 1 1 IN {ip4} {ip}\r\ns=-\r\nc=IN {ip4} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {}",
        relay.port(),
        choice.leg_pt()
    );
    if let Some(e) = choice.leg_event_pt() {
        let _ = write!(s, " {e}");
    }
    let _ = write!(
        s,
        "\r\na=rtpmap:{} {}/8000\r\n",
        choice.leg_pt(),
        choice.leg.name()
    );
    if let Some(e) = choice.leg_event_pt() {
        let _ = write!(
            s,
            "a=rtpmap:{e} telephone-event/8000\r\na=fmtp:{e} 0-16\r\n"
        );
    }
    s.push_str("a=ptime:20\r\na=rtcp-mux\r\na=sendrecv\r\n");
    s
}

/// The fields of a plain RTP packet the relay carries over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The marker bit (start of a talk spurt, first packet of an event).
    pub marker: bool,
    /// The payload type.
    pub pt: u8,
    /// The sequence number.
    pub seq: u16,
    /// The timestamp.
    pub timestamp: u32,
}

/// Reads a plain RTP packet: its header fields and where its payload starts and ends
/// (CSRCs, extension and padding skipped); `None` for RTCP or anything malformed.
pub fn parse(datagram: &[u8]) -> Option<(Header, std::ops::Range<usize>)> {
    if datagram.len() < 12 || datagram[0] >> 6 != 2 || (192..=223).contains(&datagram[1]) {
        return None;
    }
    let csrcs = usize::from(datagram[0] & 0x0f);
    let mut start = 12 + 4 * csrcs;
    if datagram[0] & 0x10 != 0 {
        let ext = datagram.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = datagram.len();
    if datagram[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*datagram.last()?))?;
    }
    if start > end {
        return None;
    }
    Some((
        Header {
            marker: datagram[1] & 0x80 != 0,
            pt: datagram[1] & 0x7f,
            seq: u16::from_be_bytes([datagram[2], datagram[3]]),
            timestamp: u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]),
        },
        start..end,
    ))
}

/// Writes a plain RTP packet (no CSRC, no extension) into `out`.
pub fn write(h: Header, ssrc: u32, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(0x80);
    out.push(u8::from(h.marker) << 7 | (h.pt & 0x7f));
    out.extend_from_slice(&h.seq.to_be_bytes());
    out.extend_from_slice(&h.timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Extends 16-bit sequence numbers to the 64-bit count SRTP's rollover counter needs.
#[derive(Debug, Default, Clone)]
pub struct SeqExtender {
    last: Option<u64>,
}

impl SeqExtender {
    /// The extended number of `seq`: the one nearest the last seen.
    pub fn extend(&mut self, seq: u16) -> u64 {
        let ext = match self.last {
            None => u64::from(seq),
            Some(last) => {
                let base = last & !0xffff;
                let candidates = [
                    base.wrapping_sub(0x1_0000) | u64::from(seq),
                    base | u64::from(seq),
                    (base + 0x1_0000) | u64::from(seq),
                ];
                candidates
                    .into_iter()
                    .filter(|c| *c < 1 << 48)
                    .min_by_key(|c| c.abs_diff(last))
                    .unwrap_or(base | u64::from(seq))
            }
        };
        if self.last.is_none_or(|l| ext > l) {
            self.last = Some(ext);
        }
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
        a=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\na=rtpmap:9 G722/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\n\
        a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n";

    use BrowserCodec::{Opus, G711};
    const PCMU: BrowserCodec = G711(CodecKind::Pcmu);
    const PCMA: BrowserCodec = G711(CodecKind::Pcma);
    const G711S: [CodecKind; 2] = CodecKind::ALL;

    #[test]
    fn takes_our_first_preference_the_browser_offers_with_its_events_at_that_clock() {
        let c = choose(CHROME, &[PCMA, PCMU], &G711S).unwrap();
        assert_eq!((c.codec, c.pt, c.event_pt), (PCMA, 8, Some(126)));
        assert_eq!(
            (c.leg, c.leg_pt(), c.leg_event_pt()),
            (CodecKind::Pcma, 8, Some(126))
        );
        let c = choose(CHROME, &[PCMU], &G711S).unwrap();
        assert_eq!((c.codec, c.pt), (PCMU, 0));
        // Opus: its 48 kHz events; the leg carries the first G.711 of media.codecs.
        let c = choose(CHROME, &[Opus, PCMU], &[CodecKind::Pcma, CodecKind::Pcmu]).unwrap();
        assert_eq!((c.codec, c.pt, c.event_pt), (Opus, 111, Some(110)));
        assert_eq!(
            (c.leg, c.leg_pt(), c.leg_event_pt()),
            (CodecKind::Pcma, 8, Some(LEG_EVENT_PT))
        );
        // A G.711 the media legs do not speak is passed over.
        let c = choose(CHROME, &[PCMA, Opus], &[CodecKind::Pcmu]).unwrap();
        assert_eq!((c.codec, c.leg), (Opus, CodecKind::Pcmu));
        assert_eq!(choose(CHROME, &[PCMA], &[CodecKind::Pcmu]), None);
    }

    #[test]
    fn an_offer_without_our_codecs_or_audio_is_refused() {
        let opus = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(choose(opus, &[PCMU, PCMA], &G711S), None);
        let c = choose(opus, &[PCMU, PCMA, Opus], &G711S).unwrap();
        assert_eq!((c.codec, c.pt, c.event_pt), (Opus, 111, None));
        let video = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n";
        assert_eq!(choose(video, &[PCMU, Opus], &G711S), None);
        assert_eq!(choose("garbage", &[PCMU, Opus], &G711S), None);
        assert_eq!(choose(CHROME, &[Opus], &[]), None);
    }

    #[test]
    fn static_types_count_without_rtpmap() {
        let c = choose("m=audio 9 RTP/SAVPF 8 0\r\n", &[Opus, PCMU, PCMA], &G711S).unwrap();
        assert_eq!((c.codec, c.pt, c.event_pt), (PCMU, 0, None));
    }

    #[test]
    fn codec_names_are_read_in_any_case() {
        assert_eq!(BrowserCodec::from_name("OPUS"), Some(Opus));
        assert_eq!(BrowserCodec::from_name("pcmu"), Some(PCMU));
        assert_eq!(BrowserCodec::from_name("PCMA"), Some(PCMA));
        assert_eq!(BrowserCodec::from_name("G722"), None);
    }

    #[test]
    fn the_plain_offer_names_the_chosen_stream_with_rtcp_mux() {
        let choice = Choice {
            codec: PCMU,
            pt: 0,
            event_pt: Some(126),
            leg: CodecKind::Pcmu,
        };
        let s = plain_offer(choice, "127.0.0.1:4000".parse().unwrap());
        assert!(s.contains("m=audio 4000 RTP/AVP 0 126\r\n"), "{s}");
        assert!(s.contains("a=rtpmap:126 telephone-event/8000\r\n"));
        assert!(s.contains("a=rtcp-mux\r\n"));
        let parsed = crate::media::sdp::SessionDescription::parse(s.as_bytes());
        assert!(parsed.is_ok(), "{parsed:?}");
        // Opus from the browser: the leg gets the G.711 it is transcoded to, events at 8 kHz.
        let opus = Choice {
            codec: Opus,
            pt: 111,
            event_pt: Some(110),
            leg: CodecKind::Pcma,
        };
        let s = plain_offer(opus, "127.0.0.1:4000".parse().unwrap());
        assert!(s.contains("m=audio 4000 RTP/AVP 8 101\r\n"), "{s}");
        assert!(s.contains("a=rtpmap:8 PCMA/8000\r\n"), "{s}");
        assert!(s.contains("a=rtpmap:101 telephone-event/8000\r\n"), "{s}");
    }

    #[test]
    fn rtp_round_trips_and_rtcp_or_garbage_is_not_rtp() {
        let h = Header {
            marker: true,
            pt: 0,
            seq: 65535,
            timestamp: 0xdead_beef,
        };
        let mut out = Vec::new();
        write(h, 7, &[1, 2, 3], &mut out);
        let (got, range) = parse(&out).unwrap();
        assert_eq!(got, h);
        assert_eq!(&out[range], &[1, 2, 3]);
        assert_eq!(parse(&[0x80, 200, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(parse(&[0x80, 0, 0]), None);
        // Padding longer than the packet.
        let mut padded = out.clone();
        padded[0] |= 0x20;
        *padded.last_mut().unwrap() = 200;
        assert_eq!(parse(&padded), None);
        // An extension that runs past the end.
        let mut ext = out.clone();
        ext[0] |= 0x10;
        assert_eq!(parse(&ext[..13]), None);
    }

    #[test]
    fn sequence_numbers_extend_over_wraps_and_reordering() {
        let mut x = SeqExtender::default();
        assert_eq!(x.extend(65534), 65534);
        assert_eq!(x.extend(65535), 65535);
        assert_eq!(x.extend(0), 65536);
        assert_eq!(x.extend(65535), 65535);
        assert_eq!(x.extend(1), 65537);
    }
}
