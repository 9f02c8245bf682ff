//! SDP (RFC 4566) and the offer/answer model (RFC 3264), sans-IO: text in, text and decisions
//! out.
//!
//! [`SessionDescription::parse`] reads what carriers send into a model and its `Display` writes
//! it back as SDP text with CRLF. [`negotiate`] makes and answers offers for one audio stream and
//! reads answers (also those of a 183). The four free functions at the end are the older
//! one-call API the SIP endpoint uses; they are thin wrappers over the rest.

pub mod negotiate;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use super::srtp::Suite;
pub use negotiate::{Answer, CodecPref, LocalMedia, Negotiated, SdpSession};

/// Why an SDP body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not UTF-8 text.
    #[error("SDP is not UTF-8")]
    NotUtf8,
    /// The first line is not `v=`.
    #[error("SDP does not start with v=")]
    NoVersion,
    /// `v=` is not 0.
    #[error("unsupported SDP version {0:?}")]
    BadVersion(String),
    /// An `o=` line without its six fields.
    #[error("bad o= line {0:?}")]
    BadOrigin(String),
    /// A `c=` line without an IP address.
    #[error("bad c= line {0:?}")]
    BadConnection(String),
    /// An `m=` line without media, port and protocol.
    #[error("bad m= line {0:?}")]
    BadMedia(String),
    /// An `m=` line whose port (or port count) is not a number up to 65535.
    #[error("bad port in m= line {0:?}")]
    BadPort(String),
    /// No audio stream we can use (none offered, all refused with port 0, or not plain RTP).
    #[error("no audio")]
    NoAudio,
    /// Audio offered, but no codec of ours in it.
    #[error("no codec in common")]
    NoCommonCodec,
    /// The audio stream has no `c=` address, neither its own nor the session's.
    #[error("no connection address for the audio stream")]
    NoAddress,
    /// The answer picked a payload type that was not in our offer.
    #[error("answer uses payload type {0} that was not offered")]
    NotOffered(String),
    /// A codec preference that is not `NAME[/RATE[/CHANNELS]]`.
    #[error("bad codec preference {0:?}")]
    BadCodecPref(String),
    /// Encrypted media is required (or the stream is RTP/SAVP) but no `a=crypto` line offers a
    /// suite and key we can use.
    #[error("no usable a=crypto")]
    NoCrypto,
}

/// Which way media flows on a stream, as seen by the side that wrote the SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Both ways (the default when no attribute says otherwise).
    #[default]
    SendRecv,
    /// The writer sends only.
    SendOnly,
    /// The writer receives only.
    RecvOnly,
    /// Neither way.
    Inactive,
}

impl Direction {
    /// The direction that sends and/or receives as given.
    pub fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether the writer sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the writer receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The attribute name: `sendrecv`, `sendonly`, `recvonly` or `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction named by an attribute, if it is one.
    pub fn from_attribute(name: &str) -> Option<Self> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str() == name)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name, `-` when there is none.
    pub username: String,
    /// sess-id: the same for the whole call.
    pub session_id: u64,
    /// sess-version: goes up by one each time the SDP changes (RFC 3264 §8).
    pub session_version: u64,
    /// unicast-address as written (an IP address or a host name); IP6 when it parses as one.
    pub address: String,
}

impl Default for Origin {
    fn default() -> Self {
        Origin {
            username: "-".into(),
            session_id: 0,
            session_version: 0,
            address: "0.0.0.0".into(),
        }
    }
}

/// A `b=` line, e.g. `AS:64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// bwtype: `AS`, `CT`, `TIAS`, …
    pub kind: String,
    /// The value (kbit/s for AS and CT, bit/s for TIAS).
    pub value: u64,
}

/// An `a=rtpmap` line, or what a static payload type stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written, e.g. `PCMU`, `telephone-event`, `opus`.
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count when given (audio only; absent means one).
    pub channels: Option<u8>,
}

impl RtpMap {
    /// Whether this is the named encoding (case-insensitive, as RFC 4566 says).
    pub fn is(&self, encoding: &str) -> bool {
        self.encoding.eq_ignore_ascii_case(encoding)
    }
}

impl fmt::Display for RtpMap {
    /// `ENCODING/RATE[/CHANNELS]`, as in the rtpmap attribute.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.encoding, self.clock_rate)?;
        if let Some(c) = self.channels {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

/// An `a=fmtp` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// The format (payload type) it is for.
    pub format: String,
    /// Parameters as written, e.g. `0-16` or `annexb=no`.
    pub params: String,
}

/// An `a=rtcp` line (RFC 3605): where the writer wants RTCP when not at RTP port + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtcp {
    /// RTCP port.
    pub port: u16,
    /// RTCP address when it differs from the stream's `c=`.
    pub addr: Option<IpAddr>,
}

/// An `a=crypto` line (RFC 4568 §9.1): `tag suite key-params [session-params…]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Crypto {
    /// Tag: names the line, so the answer can say which one it took.
    pub tag: u32,
    /// Crypto suite as written, e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub suite: String,
    /// Key parameters as written: `inline:KEY||SALT-base64[|lifetime][|MKI:length]`.
    pub key_params: String,
    /// Session parameters as written (`KDR=`, `UNENCRYPTED_SRTP`, `WSH=`, …).
    pub session_params: Vec<String>,
}

impl Crypto {
    /// A line offering or answering `suite` with `key` (master key then salt), no lifetime or
    /// MKI.
    pub fn inline(tag: u32, suite: Suite, key: &[u8]) -> Self {
        use base64::Engine;
        Crypto {
            tag,
            suite: suite.name().into(),
            key_params: format!(
                "inline:{}",
                base64::engine::general_purpose::STANDARD.encode(key)
            ),
            session_params: Vec::new(),
        }
    }

    /// The suite and its master key and salt, when we can run this line: a suite we know, one
    /// `inline:` key of the suite's length without an MKI, and no session parameter that
    /// weakens or changes the transform (only `WSH=` and `KDR=0` are taken).
    pub fn usable(&self) -> Option<(Suite, Vec<u8>)> {
        use base64::Engine;
        let suite = Suite::from_name(&self.suite)?;
        if !self
            .session_params
            .iter()
            .all(|p| p.starts_with("WSH=") || p == "KDR=0")
        {
            return None;
        }
        let inline = self.key_params.strip_prefix("inline:")?;
        if inline.contains(';') {
            return None; // Several keys, told apart by MKI.
        }
        let mut parts = inline.split('|');
        let b64 = parts.next()?;
        // A lifetime is fine (no call lives that long); an MKI (`n:len`) is not supported.
        if parts.any(|p| p.contains(':')) {
            return None;
        }
        let e = &base64::engine::general_purpose::STANDARD;
        let key = e
            .decode(b64)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64))
            .ok()?;
        (key.len() == suite.key_salt_len()).then_some((suite, key))
    }
}

impl fmt::Debug for Crypto {
    /// The key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crypto")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Crypto {
    /// The attribute value, after `a=crypto:`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.tag, self.suite, self.key_params)?;
        for p in &self.session_params {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

/// Any other `a=` line, kept as written: `a=name` or `a=name:value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The part before the colon.
    pub name: String,
    /// The part after the colon, if there is a colon.
    pub value: Option<String>,
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application`, …
    pub media: String,
    /// Transport port; 0 means the stream is refused or disabled.
    pub port: u16,
    /// The `/N` after the port, when given.
    pub port_count: Option<u16>,
    /// Transport protocol, e.g. `RTP/AVP`.
    pub proto: String,
    /// Formats (payload types for RTP) in the writer's order of preference.
    pub formats: Vec<String>,
    /// The stream's own `c=` address; the session's applies when `None`.
    pub connection: Option<IpAddr>,
    /// `b=` lines of the stream.
    pub bandwidths: Vec<Bandwidth>,
    /// `a=rtpmap` lines in the order written.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines in the order written.
    pub fmtp: Vec<Fmtp>,
    /// The stream's direction: its own attribute, else the session's, else sendrecv.
    pub direction: Direction,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u32>,
    /// `a=maxptime` in milliseconds.
    pub maxptime: Option<u32>,
    /// `a=rtcp`.
    pub rtcp: Option<Rtcp>,
    /// `a=rtcp-mux` (RFC 5761): RTCP on the RTP port.
    pub rtcp_mux: bool,
    /// `a=crypto` lines (RFC 4568) in the order written.
    pub crypto: Vec<Crypto>,
    /// Every other attribute, in order.
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    /// A stream with no attributes: the caller fills in what it needs.
    pub fn new(media: &str, port: u16, proto: &str) -> Self {
        MediaDescription {
            media: media.into(),
            port,
            port_count: None,
            proto: proto.into(),
            formats: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            rtpmaps: Vec::new(),
            fmtp: Vec::new(),
            direction: Direction::SendRecv,
            ptime: None,
            maxptime: None,
            rtcp: None,
            rtcp_mux: false,
            crypto: Vec::new(),
            attributes: Vec::new(),
        }
    }

    /// The formats that are RTP payload type numbers, in order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse().ok())
    }

    /// What payload type `pt` stands for: its rtpmap, else the static assignment (RFC 3551).
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        self.rtpmaps
            .iter()
            .find(|r| r.pt == pt)
            .cloned()
            .or_else(|| static_payload(pt))
    }

    /// The fmtp parameters of a format.
    pub fn fmtp_of(&self, format: &str) -> Option<&str> {
        self.fmtp
            .iter()
            .find(|f| f.format == format)
            .map(|f| f.params.as_str())
    }

    /// Whether the transport is plain RTP (`RTP/AVP`, or `RTP/AVPF` whose feedback is optional).
    pub fn is_plain_rtp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/AVP") || self.proto.eq_ignore_ascii_case("RTP/AVPF")
    }

    /// Whether the transport is SRTP (`RTP/SAVP`, or `RTP/SAVPF` whose feedback is optional).
    pub fn is_srtp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/SAVP") || self.proto.eq_ignore_ascii_case("RTP/SAVPF")
    }

    /// The payload type of telephone-event at `clock_rate` (RFC 4733), if listed.
    pub fn telephone_event(&self, clock_rate: u32) -> Option<u8> {
        self.payload_types().find(|&pt| {
            self.rtpmap(pt)
                .is_some_and(|r| r.is("telephone-event") && r.clock_rate == clock_rate)
        })
    }
}

/// A whole SDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`; defaults when the body has none.
    pub origin: Origin,
    /// `s=`.
    pub session_name: String,
    /// Session-level `c=`, for streams without their own.
    pub connection: Option<IpAddr>,
    /// Session-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` as written (`0 0` for the calls SIP sets up).
    pub timing: String,
    /// Session-level direction attribute, the default of every stream.
    pub direction: Option<Direction>,
    /// Other session-level attributes, in order.
    pub attributes: Vec<Attribute>,
    /// `m=` sections in order; answers keep the offer's order.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// Where a stream's media goes: its own `c=`, else the session's.
    pub fn connection_of(&self, m: &MediaDescription) -> Option<IpAddr> {
        m.connection.or(self.connection)
    }
}

/// What the static payload types of RFC 3551 stand for.
const STATIC_PAYLOADS: &[(u8, &str, u32, Option<u8>)] = &[
    (0, "PCMU", 8000, None),
    (3, "GSM", 8000, None),
    (4, "G723", 8000, None),
    (5, "DVI4", 8000, None),
    (6, "DVI4", 16000, None),
    (7, "LPC", 8000, None),
    (8, "PCMA", 8000, None),
    (9, "G722", 8000, None),
    (10, "L16", 44100, Some(2)),
    (11, "L16", 44100, None),
    (12, "QCELP", 8000, None),
    (13, "CN", 8000, None),
    (14, "MPA", 90000, None),
    (15, "G728", 8000, None),
    (16, "DVI4", 11025, None),
    (17, "DVI4", 22050, None),
    (18, "G729", 8000, None),
    (25, "CelB", 90000, None),
    (26, "JPEG", 90000, None),
    (28, "nv", 90000, None),
    (31, "H261", 90000, None),
    (32, "MPV", 90000, None),
    (33, "MP2T", 90000, None),
    (34, "H263", 90000, None),
];

/// What a static payload type stands for, so offers may leave out its rtpmap.
pub fn static_payload(pt: u8) -> Option<RtpMap> {
    STATIC_PAYLOADS
        .iter()
        .find(|(p, ..)| *p == pt)
        .map(|&(pt, encoding, clock_rate, channels)| RtpMap {
            pt,
            encoding: encoding.into(),
            clock_rate,
            channels,
        })
}

// The older one-call API, kept so callers written against it keep working.

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
    /// The whole offer, for [`answer`].
    pub sdp: SessionDescription,
}

/// Reads the first audio stream of an offer; `None` when there is none we can use.
pub fn parse_offer(body: &[u8]) -> Option<AudioOffer> {
    let sdp = SessionDescription::parse(body).ok()?;
    let m = sdp.media.iter().find(|m| negotiate::is_usable_audio(m))?;
    let (addr, port) = (sdp.connection_of(m)?, m.port);
    let formats = m.payload_types().collect();
    let telephone_event = m.telephone_event(8000);
    Some(AudioOffer {
        addr,
        port,
        formats,
        telephone_event,
        sdp,
    })
}

/// Our codec for an offer: the first of ours (PCMU, PCMA) that the offer lists.
pub fn choose_codec(offer: &AudioOffer) -> Option<(u8, &'static str)> {
    let local = LocalMedia::new(IpAddr::from([0, 0, 0, 0]), 0);
    let answer = negotiate::answer(&offer.sdp, &local, &CodecPref::defaults()).ok()?;
    let codec = answer.negotiated.codec;
    // The defaults are PCMU and PCMA only, both at 8000 Hz.
    let name = if codec.is("PCMU") {
        "PCMU/8000"
    } else {
        "PCMA/8000"
    };
    Some((codec.pt, name))
}

/// An offer of one audio stream at `addr:port`: PCMU, PCMA and telephone-event.
pub fn offer(addr: IpAddr, port: u16, session_id: u64) -> String {
    let local = LocalMedia {
        session_id,
        ..LocalMedia::new(addr, port)
    };
    negotiate::offer(&local, &CodecPref::defaults()).to_string()
}

/// An answer with one audio stream at `addr:port` using `codec` (as from [`choose_codec`]),
/// plus telephone-event when offered; every other stream refused with port 0.
pub fn answer(
    addr: IpAddr,
    port: u16,
    session_id: u64,
    codec: (u8, &str),
    offer: &AudioOffer,
) -> String {
    let local = LocalMedia {
        session_id,
        ..LocalMedia::new(addr, port)
    };
    let prefs: Vec<CodecPref> = codec.1.parse().into_iter().collect();
    match negotiate::answer(&offer.sdp, &local, &prefs) {
        Ok(a) => a.sdp.to_string(),
        // Only reached when `codec` did not come from this offer: refuse every stream.
        Err(_) => negotiate::refuse_all(&offer.sdp, &local).to_string(),
    }
}
