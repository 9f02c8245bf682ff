//! Offer/answer for one audio stream (RFC 3264), both as answerer (UAS) and offerer (UAC).
//!
//! We take part in one audio stream: the first usable one of an offer. Every other stream is
//! refused with port 0 in its place (§6). The answer keeps the offerer's payload type numbers
//! and names one codec, picked by our preference list, plus telephone-event when offered.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::super::srtp::{SrtpKeys, Suite, MAX_KEY_SALT};
pub use crate::config::MediaEncryption;

use super::{
    static_payload, Crypto, Direction, Fmtp, MediaDescription, Origin, RtpMap, SdpError,
    SessionDescription,
};

/// Payload type we offer telephone-event on; dynamic codecs are numbered around it.
const TELEPHONE_EVENT_PT: u8 = 101;
/// Events we offer and answer with when the offer has no fmtp: DTMF 0-9, *, #, A-D, flash.
const TELEPHONE_EVENT_FMTP: &str = "0-16";
/// Packet time when nothing usable is asked for, in ms.
const DEFAULT_PTIME: u32 = 20;

/// Our side of the media: what goes into the SDP we write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Our RTP address.
    pub addr: IpAddr,
    /// Our RTP port (RTCP on the next one).
    pub port: u16,
    /// What we want; an answer narrows it to what the offer allows. Sendonly or inactive put
    /// the peer on hold.
    pub direction: Direction,
    /// Packet time we offer, in ms.
    pub ptime: u32,
    /// `o=` sess-id.
    pub session_id: u64,
    /// `o=` sess-version; [`SdpSession`] keeps it current across re-INVITEs.
    pub session_version: u64,
    /// Whether we offer and take SRTP. Only a leg signalled over TLS may have anything but
    /// `None`: the keys travel in the SDP.
    pub encryption: MediaEncryption,
    /// Our SRTP master key and salt (random, from the driver); each suite takes its length from
    /// the front.
    pub srtp_key: [u8; MAX_KEY_SALT],
}

impl LocalMedia {
    /// Sendrecv at `addr:port`, 20 ms packets, session id 0 version 1.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        LocalMedia {
            addr,
            port,
            direction: Direction::SendRecv,
            ptime: DEFAULT_PTIME,
            session_id: 0,
            session_version: 1,
            encryption: MediaEncryption::None,
            srtp_key: [0; MAX_KEY_SALT],
        }
    }

    /// Our key for `suite`.
    fn key_for(&self, suite: Suite) -> &[u8] {
        &self.srtp_key[..suite.key_salt_len()]
    }

    /// Our `o=` line.
    fn origin(&self) -> Origin {
        Origin {
            username: "dialerd".into(),
            session_id: self.session_id,
            session_version: self.session_version,
            address: self.addr.to_string(),
        }
    }

    /// A session with our `o=`, `s=` and `c=` and no streams yet.
    fn session(&self, timing: &str) -> SessionDescription {
        SessionDescription {
            origin: self.origin(),
            session_name: "dialerd".into(),
            connection: Some(self.addr),
            bandwidths: Vec::new(),
            timing: timing.into(),
            direction: None,
            attributes: Vec::new(),
            media: Vec::new(),
        }
    }
}

/// One entry of the configured codec list: `PCMU`, `PCMA`, `G729`, `opus/48000/2`, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecPref {
    /// Encoding name, matched case-insensitively.
    pub name: String,
    /// Clock rate; any when `None`.
    pub clock_rate: Option<u32>,
    /// Channel count; any when `None`.
    pub channels: Option<u8>,
}

impl CodecPref {
    /// A preference by name alone.
    pub fn new(name: &str) -> Self {
        CodecPref {
            name: name.into(),
            clock_rate: None,
            channels: None,
        }
    }

    /// PCMU then PCMA: what every carrier takes.
    pub fn defaults() -> Vec<CodecPref> {
        vec![CodecPref::new("PCMU"), CodecPref::new("PCMA")]
    }

    /// Whether an offered format is this codec.
    pub fn matches(&self, codec: &RtpMap) -> bool {
        codec.is(&self.name)
            && self.clock_rate.is_none_or(|r| r == codec.clock_rate)
            && self
                .channels
                .is_none_or(|c| c == codec.channels.unwrap_or(1))
    }

    /// How we describe this codec in an offer: its static payload type when it has one,
    /// else `dynamic_pt`. `None` when the clock rate is unknown.
    fn to_rtpmap(&self, dynamic_pt: u8) -> Option<RtpMap> {
        if let Some(r) = (0..=34)
            .filter_map(static_payload)
            .find(|r| self.matches(r))
        {
            return Some(r);
        }
        // Well-known dynamic codecs, so a bare name in the config is enough.
        let (rate, channels) = match self.name.to_ascii_lowercase().as_str() {
            "opus" => (48000, Some(2)),
            _ => (self.clock_rate?, None),
        };
        Some(RtpMap {
            pt: dynamic_pt,
            encoding: self.name.clone(),
            clock_rate: self.clock_rate.unwrap_or(rate),
            channels: self.channels.or(channels),
        })
    }
}

impl FromStr for CodecPref {
    type Err = SdpError;

    /// `NAME[/RATE[/CHANNELS]]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SdpError::BadCodecPref(s.into());
        let mut parts = s.trim().split('/');
        let name = parts.next().filter(|n| !n.is_empty()).ok_or_else(bad)?;
        let clock_rate = parts
            .next()
            .map(|r| r.parse().map_err(|_| bad()))
            .transpose()?;
        let channels = parts
            .next()
            .map(|c| c.parse().map_err(|_| bad()))
            .transpose()?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(CodecPref {
            name: name.into(),
            clock_rate,
            channels,
        })
    }
}

impl fmt::Display for CodecPref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(r) = self.clock_rate {
            write!(f, "/{r}")?;
            if let Some(c) = self.channels {
                write!(f, "/{c}")?;
            }
        }
        Ok(())
    }
}

/// What offer and answer agreed on for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The voice codec, with the payload type both sides use.
    pub codec: RtpMap,
    /// Payload type of telephone-event (RFC 4733) at the codec's rate, when both sides have it.
    pub telephone_event: Option<u8>,
    /// Where to send RTP.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP: the RTP address when multiplexed, else `a=rtcp`, else the RTP
    /// port + 1.
    pub remote_rtcp: SocketAddr,
    /// RTCP shares the RTP port (RFC 5761): both sides said `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// Packet time in ms.
    pub ptime: u32,
    /// What we do, as written in our SDP: whether we send and whether we expect to receive.
    pub direction: Direction,
    /// The peer wants no media from us (sendonly, inactive or `c=0.0.0.0`): a hold.
    pub hold: bool,
    /// SRTP suite and keys, when the stream is encrypted.
    pub srtp: Option<SrtpKeys>,
}

/// Our answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer SDP; `to_string()` gives the body.
    pub sdp: SessionDescription,
    /// What it agrees on.
    pub negotiated: Negotiated,
}

/// Whether we can take part in a stream: audio, not refused, over plain RTP.
pub fn is_usable_audio(m: &MediaDescription) -> bool {
    m.media.eq_ignore_ascii_case("audio") && m.port != 0 && m.is_plain_rtp()
}

/// Whether we may take part in a stream under `encryption`: audio, not refused, over plain RTP,
/// or over SRTP when encryption is allowed at all.
fn is_takeable_audio(m: &MediaDescription, encryption: MediaEncryption) -> bool {
    m.media.eq_ignore_ascii_case("audio")
        && m.port != 0
        && (m.is_plain_rtp() || (m.is_srtp() && encryption != MediaEncryption::None))
}

/// The first `a=crypto` line of an offered stream that we can run, answered under its tag with
/// our key, and the keys both sides then use.
fn pick_crypto(m: &MediaDescription, local: &LocalMedia) -> Option<(Crypto, SrtpKeys)> {
    if local.encryption == MediaEncryption::None {
        return None;
    }
    m.crypto.iter().find_map(|c| {
        let (suite, remote) = c.usable()?;
        let ours = local.key_for(suite);
        let keys = SrtpKeys {
            suite,
            local: ours.to_vec(),
            remote,
        };
        Some((Crypto::inline(c.tag, suite, ours), keys))
    })
}

/// The first format of `m`, in our order of preference, that is one of our codecs.
fn pick_codec(m: &MediaDescription, prefs: &[CodecPref]) -> Option<RtpMap> {
    let offered: Vec<RtpMap> = m
        .payload_types()
        .filter_map(|pt| m.rtpmap(pt))
        // Not voice: never the stream's codec, whatever the list says.
        .filter(|r| !r.is("telephone-event") && !r.is("CN"))
        .collect();
    prefs
        .iter()
        .find_map(|p| offered.iter().find(|r| p.matches(r)).cloned())
}

/// Packet time to use: the one asked for if it is 10..=60 ms in steps of 10, else 20 ms (or
/// less when maxptime says so).
fn choose_ptime(ptime: Option<u32>, maxptime: Option<u32>) -> u32 {
    match (ptime, maxptime) {
        (Some(p), _) if (10..=60).contains(&p) && p % 10 == 0 => p,
        (_, Some(max)) if (10..DEFAULT_PTIME).contains(&max) => 10,
        _ => DEFAULT_PTIME,
    }
}

/// Where RTCP goes: the RTP address when multiplexed (RFC 5761), else `a=rtcp` (with the stream's address when it names none or 0.0.0.0, as
/// WebRTC does), else RTP port + 1 (RFC 3550 §11).
fn rtcp_addr(m: &MediaDescription, rtp_ip: IpAddr, mux: bool) -> SocketAddr {
    if mux {
        return SocketAddr::new(rtp_ip, m.port);
    }
    match m.rtcp {
        Some(r) => {
            let ip = r.addr.filter(|a| !a.is_unspecified()).unwrap_or(rtp_ip);
            SocketAddr::new(ip, r.port)
        }
        None => SocketAddr::new(rtp_ip, m.port.saturating_add(1)),
    }
}

/// What the peer really does on a stream: `c=0.0.0.0` (the RFC 2543 hold) means send it
/// nothing (RFC 3264 §8.4), whatever the attribute says.
fn peer_direction(m: &MediaDescription, ip: IpAddr) -> Direction {
    Direction::from_flags(
        m.direction.sends(),
        m.direction.receives() && !ip.is_unspecified(),
    )
}

/// Our direction facing `peer`: we send only if they receive, receive only if they send, and
/// only as far as `wish` goes (RFC 3264 §6.1).
fn our_direction(peer: Direction, wish: Direction) -> Direction {
    Direction::from_flags(
        peer.receives() && wish.sends(),
        peer.sends() && wish.receives(),
    )
}

/// A stream refused in an answer: same media and protocol, port 0, one format (SDP needs one).
fn refused(m: &MediaDescription) -> MediaDescription {
    let mut r = MediaDescription::new(&m.media, 0, &m.proto);
    r.formats = vec![m.formats.first().cloned().unwrap_or_else(|| "0".into())];
    r.direction = Direction::Inactive;
    r
}

/// An answer refusing every stream of `offer`.
pub(super) fn refuse_all(offer: &SessionDescription, local: &LocalMedia) -> SessionDescription {
    let mut sd = local.session(&offer.timing);
    sd.media = offer.media.iter().map(refused).collect();
    sd
}

/// Answers `offer` as UAS: the first audio stream with a codec of ours is taken, every other
/// stream refused with port 0 in its place.
pub fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
    prefs: &[CodecPref],
) -> Result<Answer, SdpError> {
    let mut audio_seen = false;
    let mut codec_seen = false;
    let mut chosen = None;
    for (i, m) in offer.media.iter().enumerate() {
        if !is_takeable_audio(m, local.encryption) {
            continue;
        }
        audio_seen = true;
        let Some(codec) = pick_codec(m, prefs) else {
            continue;
        };
        codec_seen = true;
        let crypto = pick_crypto(m, local);
        // RTP/SAVP needs a key; so does every stream when encryption is required.
        if crypto.is_none() && (m.is_srtp() || local.encryption == MediaEncryption::Srtp) {
            continue;
        }
        chosen = Some((i, codec, crypto));
        break;
    }
    let Some((index, codec, crypto)) = chosen else {
        return Err(match (audio_seen, codec_seen) {
            (_, true) => SdpError::NoCrypto,
            (true, false) => SdpError::NoCommonCodec,
            (false, _) => SdpError::NoAudio,
        });
    };
    let m = &offer.media[index];
    let ip = offer.connection_of(m).ok_or(SdpError::NoAddress)?;
    let peer = peer_direction(m, ip);
    let direction = our_direction(peer, local.direction);
    let ptime = choose_ptime(m.ptime, m.maxptime);
    let telephone_event = m.telephone_event(codec.clock_rate);

    let mut ours = answered_stream(m, local.port, &codec, telephone_event, ptime, direction);
    // Offered multiplexing is always taken: one socket per call instead of two.
    ours.rtcp_mux = m.rtcp_mux;
    let (line, srtp) = crypto.unzip();
    ours.crypto.extend(line);

    let mut sdp = local.session(&offer.timing);
    sdp.media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| if i == index { ours.clone() } else { refused(m) })
        .collect();
    Ok(Answer {
        sdp,
        negotiated: Negotiated {
            codec,
            telephone_event,
            remote_rtp: SocketAddr::new(ip, m.port),
            remote_rtcp: rtcp_addr(m, ip, m.rtcp_mux),
            rtcp_mux: m.rtcp_mux,
            ptime,
            direction,
            hold: !peer.receives(),
            srtp,
        },
    })
}

/// Our side of the taken stream: the codec and telephone-event under the offerer's numbers,
/// with the offerer's fmtp for each (G729 annexb=no holds for what we send too; the events
/// are the ones they can take).
fn answered_stream(
    m: &MediaDescription,
    port: u16,
    codec: &RtpMap,
    telephone_event: Option<u8>,
    ptime: u32,
    direction: Direction,
) -> MediaDescription {
    let mut ours = MediaDescription::new("audio", port, &m.proto);
    let mut add = |map: RtpMap, default_fmtp: Option<&str>| {
        let format = map.pt.to_string();
        if let Some(params) = m.fmtp_of(&format).or(default_fmtp) {
            ours.fmtp.push(Fmtp {
                format: format.clone(),
                params: params.into(),
            });
        }
        ours.formats.push(format);
        ours.rtpmaps.push(map);
    };
    add(codec.clone(), None);
    if let Some(te) = telephone_event {
        add(
            telephone_event_map(te, codec.clock_rate),
            Some(TELEPHONE_EVENT_FMTP),
        );
    }
    ours.ptime = Some(ptime);
    ours.direction = direction;
    ours
}

fn telephone_event_map(pt: u8, clock_rate: u32) -> RtpMap {
    RtpMap {
        pt,
        encoding: "telephone-event".into(),
        clock_rate,
        channels: None,
    }
}

/// Our offer as UAC: one audio stream with `prefs` in order (static payload types where they
/// exist, dynamic ones from 96 up) and telephone-event. Preferences whose clock rate is not
/// known are left out; when none is left, PCMU and PCMA are offered.
pub fn offer(local: &LocalMedia, prefs: &[CodecPref]) -> SessionDescription {
    // Required: RTP/SAVP. Optional: RTP/AVP with keys, which a peer without SRTP reads past.
    let proto = match local.encryption {
        MediaEncryption::Srtp => "RTP/SAVP",
        MediaEncryption::Optional | MediaEncryption::None => "RTP/AVP",
    };
    let mut m = MediaDescription::new("audio", local.port, proto);
    if local.encryption != MediaEncryption::None {
        // AES-CM with 80- then 32-bit tags: what every SDES peer has (RFC 4568 §6.2).
        for (tag, suite) in [
            (1, Suite::AesCm128HmacSha1_80),
            (2, Suite::AesCm128HmacSha1_32),
        ] {
            m.crypto
                .push(Crypto::inline(tag, suite, local.key_for(suite)));
        }
    }
    let mut dynamic: u8 = 96;
    for p in prefs {
        if p.name.eq_ignore_ascii_case("telephone-event") {
            continue; // Always offered, below.
        }
        let Some(r) = p.to_rtpmap(dynamic) else {
            continue;
        };
        let same = |o: &RtpMap| {
            o.is(&r.encoding) && o.clock_rate == r.clock_rate && o.channels == r.channels
        };
        if r.pt > 127 || m.rtpmaps.iter().any(same) {
            continue; // Out of dynamic numbers, or listed twice in the config.
        }
        if r.pt == dynamic {
            dynamic = dynamic.saturating_add(1);
            if dynamic == TELEPHONE_EVENT_PT {
                dynamic += 1;
            }
        }
        m.formats.push(r.pt.to_string());
        m.rtpmaps.push(r);
    }
    if m.rtpmaps.is_empty() {
        return offer(local, &CodecPref::defaults());
    }
    let te = TELEPHONE_EVENT_PT;
    m.formats.push(te.to_string());
    m.rtpmaps.push(telephone_event_map(te, 8000));
    m.fmtp.push(Fmtp {
        format: te.to_string(),
        params: TELEPHONE_EVENT_FMTP.into(),
    });
    m.ptime = Some(local.ptime);
    m.direction = local.direction;
    let mut sd = local.session("0 0");
    sd.media.push(m);
    sd
}

/// Reads the peer's answer to our `offer` (from a 200, or a 183 for early media): the answer
/// must keep our audio stream and pick a codec from it.
pub fn read_answer(offer: &SessionDescription, body: &[u8]) -> Result<Negotiated, SdpError> {
    let answer = SessionDescription::parse(body)?;
    let index = offer
        .media
        .iter()
        .position(|m| is_takeable_audio(m, MediaEncryption::Optional))
        .ok_or(SdpError::NoAudio)?;
    let ours = &offer.media[index];
    let m = answer
        .media
        .get(index)
        .filter(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)
        .ok_or(SdpError::NoAudio)?;
    let ip = answer.connection_of(m).ok_or(SdpError::NoAddress)?;

    // The codec is the first voice format of the answer; we name it as our offer did.
    let mut stray = None;
    let mut codec = None;
    for format in &m.formats {
        let Some(r) = format.parse().ok().and_then(|pt| ours.rtpmap(pt)) else {
            stray.get_or_insert(format);
            continue;
        };
        if !ours.formats.contains(format) {
            stray.get_or_insert(format);
        } else if !r.is("telephone-event") && !r.is("CN") {
            codec = Some(r);
            break;
        }
    }
    let codec = match (codec, stray) {
        (Some(c), _) => c,
        (None, Some(f)) => return Err(SdpError::NotOffered(f.clone())),
        (None, None) => return Err(SdpError::NoCommonCodec),
    };
    let telephone_event = m
        .telephone_event(codec.clock_rate)
        .filter(|te| ours.telephone_event(codec.clock_rate) == Some(*te));
    let peer = peer_direction(m, ip);
    // Multiplexed only if we offered it too (RFC 5761 §5.1.1).
    let mux = m.rtcp_mux && ours.rtcp_mux;
    let srtp = answered_crypto(ours, m);
    if srtp.is_none() && ours.is_srtp() {
        return Err(SdpError::NoCrypto);
    }
    Ok(Negotiated {
        telephone_event,
        remote_rtp: SocketAddr::new(ip, m.port),
        remote_rtcp: rtcp_addr(m, ip, mux),
        rtcp_mux: mux,
        ptime: choose_ptime(m.ptime.or(ours.ptime), m.maxptime),
        direction: our_direction(peer, ours.direction),
        hold: !peer.receives(),
        codec,
        srtp,
    })
}

/// The keys of an answer's `a=crypto`: it must name one of our offered lines by tag and suite.
fn answered_crypto(ours: &MediaDescription, answer: &MediaDescription) -> Option<SrtpKeys> {
    answer.crypto.iter().find_map(|c| {
        let offered = ours
            .crypto
            .iter()
            .find(|o| o.tag == c.tag && o.suite == c.suite)?;
        let (suite, local) = offered.usable()?;
        let (_, remote) = c.usable()?;
        Some(SrtpKeys {
            suite,
            local,
            remote,
        })
    })
}

/// Our side of one call's SDP across re-INVITEs: keeps `o=` the same and raises its version by
/// one exactly when what we send changes (RFC 3264 §8).
#[derive(Debug, Clone)]
pub struct SdpSession {
    /// Our media; change `direction` to hold, `addr`/`port` to move, then offer again.
    pub local: LocalMedia,
    last: Option<SessionDescription>,
}

impl SdpSession {
    /// A session that has sent nothing yet.
    pub fn new(local: LocalMedia) -> Self {
        SdpSession { local, last: None }
    }

    /// An offer, initial or for a re-INVITE.
    pub fn offer(&mut self, prefs: &[CodecPref]) -> SessionDescription {
        let sd = offer(&self.local, prefs);
        self.settle(sd)
    }

    /// Answers an offer, initial or a re-offer from the peer (new address, hold, unhold…).
    pub fn answer(
        &mut self,
        offer: &SessionDescription,
        prefs: &[CodecPref],
    ) -> Result<Answer, SdpError> {
        let mut a = answer(offer, &self.local, prefs)?;
        a.sdp = self.settle(a.sdp);
        Ok(a)
    }

    /// The last SDP we sent.
    pub fn last(&self) -> Option<&SessionDescription> {
        self.last.as_ref()
    }

    /// Gives `sd` the `o=` of the last SDP, with the version raised if anything else differs.
    fn settle(&mut self, mut sd: SessionDescription) -> SessionDescription {
        if let Some(last) = &self.last {
            sd.origin = last.origin.clone();
            if sd != *last {
                sd.origin.session_version = last.origin.session_version.wrapping_add(1);
            }
        }
        self.local.session_version = sd.origin.session_version;
        self.last = Some(sd.clone());
        sd
    }
}
