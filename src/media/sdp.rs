//! SDP (RFC 4566) just far enough for offer/answer on one audio stream (RFC 3264).

use std::fmt::Write;
use std::net::IpAddr;

/// The audio part of an SDP offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioOffer {
    /// Where the offerer wants RTP sent (media-level `c=` or else session-level).
    pub addr: IpAddr,
    /// RTP port.
    pub port: u16,
    /// Payload types in the offerer's order.
    pub formats: Vec<u8>,
    /// Payload type of telephone-event/8000, if offered.
    pub telephone_event: Option<u8>,
}

/// Codecs we answer with, in preference order: (payload type, rtpmap).
const CODECS: &[(u8, &str)] = &[(0, "PCMU/8000"), (8, "PCMA/8000")];

/// Reads the first audio stream of an offer; `None` when there is none we can use.
pub fn parse_offer(body: &[u8]) -> Option<AudioOffer> {
    let text = std::str::from_utf8(body).ok()?;
    let mut session_addr = None;
    let mut media: Option<(u16, Vec<u8>, Option<IpAddr>)> = None;
    let mut telephone_event = None;
    let mut in_audio = false;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            if media.is_some() {
                break; // Only the first audio stream is used.
            }
            let mut it = rest.split_whitespace();
            in_audio = it.next() == Some("audio");
            if in_audio {
                let port = it.next()?.split('/').next()?.parse().ok()?;
                let _proto = it.next()?;
                let formats = it.filter_map(|f| f.parse().ok()).collect();
                media = Some((port, formats, None));
            }
        } else if let Some(rest) = line.strip_prefix("c=") {
            let addr = rest
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next()?.parse().ok());
            match (&mut media, in_audio) {
                (Some(m), true) => m.2 = addr,
                (None, _) => session_addr = addr,
                _ => {}
            }
        } else if let (Some(rest), true) = (line.strip_prefix("a=rtpmap:"), in_audio) {
            let (pt, enc) = rest.split_once(' ')?;
            if enc.to_ascii_lowercase().starts_with("telephone-event/8000") {
                telephone_event = pt.trim().parse().ok();
            }
        }
    }
    let (port, formats, addr) = media?;
    Some(AudioOffer {
        addr: addr.or(session_addr)?,
        port,
        formats,
        telephone_event,
    })
}

/// Our codec for an offer: the first of ours (PCMU, PCMA) that the offer lists.
pub fn choose_codec(offer: &AudioOffer) -> Option<(u8, &'static str)> {
    // Static payload types 0 and 8 need no rtpmap, so matching by number is right.
    CODECS
        .iter()
        .copied()
        .find(|(pt, _)| offer.formats.contains(pt))
}

/// An offer of one audio stream at `addr:port`: PCMU, PCMA and telephone-event.
pub fn offer(addr: IpAddr, port: u16, session_id: u64) -> String {
    let ip = if addr.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=dialerd {session_id} 1 IN {ip} {addr}\r\ns=dialerd\r\nc=IN {ip} {addr}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// An answer with one audio stream at `addr:port` using `codec`, plus telephone-event when
/// offered.
pub fn answer(
    addr: IpAddr,
    port: u16,
    session_id: u64,
    codec: (u8, &str),
    offer: &AudioOffer,
) -> String {
    let ip = if addr.is_ipv4() { "IP4" } else { "IP6" };
    let mut formats = codec.0.to_string();
    if let Some(te) = offer.telephone_event {
        let _ = write!(formats, " {te}");
    }
    let mut s = format!(
        "v=0\r\no=dialerd {session_id} 1 IN {ip} {addr}\r\ns=dialerd\r\nc=IN {ip} {addr}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\na=rtpmap:{} {}\r\n",
        codec.0, codec.1
    );
    if let Some(te) = offer.telephone_event {
        let _ = write!(
            s,
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        );
    }
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 203.0.113.7\r\ns=-\r\nc=IN IP4 203.0.113.7\r\nt=0 0\r\n\
        m=audio 30000 RTP/AVP 8 0 18 101\r\nb=AS:64\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=rtcp:30001\r\na=sendrecv\r\n\
        m=video 40000 RTP/AVP 96\r\nc=IN IP4 198.51.100.1\r\n";

    #[test]
    fn reads_the_audio_stream_of_a_carrier_offer() {
        let o = parse_offer(OFFER.as_bytes()).unwrap();
        assert_eq!(o.addr, "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(o.port, 30000);
        assert_eq!(o.formats, vec![8, 0, 18, 101]);
        assert_eq!(o.telephone_event, Some(101));
        assert_eq!(choose_codec(&o), Some((0, "PCMU/8000")));
    }

    #[test]
    fn media_level_connection_wins() {
        let o = parse_offer(
            b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 8\r\nc=IN IP4 192.0.2.2\r\n",
        )
        .unwrap();
        assert_eq!(o.addr, "192.0.2.2".parse::<IpAddr>().unwrap());
        assert_eq!(choose_codec(&o), Some((8, "PCMA/8000")));
    }

    #[test]
    fn offers_without_usable_audio_are_refused() {
        assert_eq!(
            parse_offer(b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=video 4000 RTP/AVP 96\r\n"),
            None
        );
        assert_eq!(parse_offer(b"\xff\xfe"), None);
        let g729 =
            parse_offer(b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 18\r\n").unwrap();
        assert_eq!(choose_codec(&g729), None);
    }

    #[test]
    fn answer_names_our_address_codec_and_dtmf() {
        let o = parse_offer(OFFER.as_bytes()).unwrap();
        let a = answer(
            "192.0.2.10".parse().unwrap(),
            20000,
            42,
            (0, "PCMU/8000"),
            &o,
        );
        assert!(a.contains("c=IN IP4 192.0.2.10\r\n"), "{a}");
        assert!(a.contains("m=audio 20000 RTP/AVP 0 101\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:101 telephone-event/8000\r\n"), "{a}");
        assert_eq!(parse_offer(a.as_bytes()).unwrap().formats, vec![0, 101]);
    }
}
