use super::negotiate::{self, read_answer, MediaEncryption};
use super::*;
use crate::media::srtp::Suite;
use std::net::SocketAddr;

/// Asterisk 18, chan_pjsip, default codec list.
const ASTERISK: &str = "v=0\r\n\
o=- 1234567890 1234567890 IN IP4 192.168.1.10\r\n\
s=Asterisk\r\n\
c=IN IP4 192.168.1.10\r\n\
t=0 0\r\n\
m=audio 10000 RTP/AVP 0 8 3 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:3 GSM/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

/// FreeSWITCH: PCMA first, comfort noise, and RTCP named explicitly.
const FREESWITCH: &str = "v=0\r\n\
o=FreeSWITCH 1700000000 1700000001 IN IP4 203.0.113.20\r\n\
s=FreeSWITCH\r\n\
c=IN IP4 203.0.113.20\r\n\
t=0 0\r\n\
m=audio 24580 RTP/AVP 8 0 9 101 13\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=rtpmap:13 CN/8000\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtcp:24581 IN IP4 203.0.113.20\r\n";

/// A Cisco CUBE toward a carrier: LF only, trailing spaces, b= at both levels, media-level
/// c=, G729 with fmtp, no rtpmap for the static types, dynamic types, telephone-event on 100
/// with 0-15, Cisco NSE on 101, ptime 30, a=rtcp port only, vendor attributes.
const CUBE: &str = "v=0\n\
o=CiscoSystemsSIP-GW-UserAgent 4024 2186 IN IP4 198.51.100.5 \n\
s=SIP Call\n\
c=IN IP4 198.51.100.5\n\
b=AS:80\n\
t=0 0\n\
m=audio 17548 RTP/AVP 18 0 8 96 97 98 100 101\n\
c=IN IP4 198.51.100.6\n\
b=TIAS:64000\n\
a=rtpmap:18 G729/8000\n\
a=fmtp:18 annexb=no\n\
a=rtpmap:96 AMR-WB/16000\n\
a=fmtp:96 mode-set=0,1,2; octet-align=1\n\
a=rtpmap:97 iLBC/8000\n\
a=fmtp:97 mode=30\n\
a=rtpmap:98 speex/16000\n\
a=rtpmap:100 telephone-event/8000\n\
a=fmtp:100 0-15\n\
a=rtpmap:101 X-NSE/8000\n\
a=fmtp:101 192-194\n\
a=ptime:30   \n\
a=maxptime:60\n\
a=rtcp:17551\n\
a=x-custom-thing\n\
a=silenceSupp:off - - - -\n";

/// A WebRTC gateway leg over plain RTP/AVPF: opus first, ICE and BUNDLE attributes, a=rtcp
/// with the 0.0.0.0 placeholder, and a video stream.
const WEBRTC: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic: WMS\r\n\
m=audio 50000 RTP/AVPF 111 0 8 126\r\n\
c=IN IP4 192.0.2.44\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Fq2c\r\n\
a=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:1001 cname:4TOk42mSjXCkVIa6\r\n\
m=video 50002 RTP/AVPF 96 97\r\n\
c=IN IP4 192.0.2.44\r\n\
a=mid:1\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtpmap:97 H264/90000\r\n\
a=fmtp:97 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=sendrecv\r\n";

/// SIPp's built-in uac scenario.
const SIPP: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// Linphone over IPv6: dynamic codecs first, a session-level attribute, no direction.
const IPV6: &str = "v=0\r\n\
o=alice 3724 3725 IN IP6 2001:db8::10\r\n\
s=Talk\r\n\
c=IN IP6 2001:db8::10\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 101\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=rtpmap:98 speex/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=rtcp-fb:* trr-int 1000\r\n";

/// An RFC 2543 hold: c=0.0.0.0, no direction attribute, a host name in o=.
const OLD_HOLD: &str = "v=0\r\n\
o=- 2890844526 2890844527 IN IP4 host.example.com\r\n\
s=-\r\n\
c=IN IP4 0.0.0.0\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

const FIXTURES: &[(&str, &str)] = &[
    ("asterisk", ASTERISK),
    ("freeswitch", FREESWITCH),
    ("cube", CUBE),
    ("webrtc", WEBRTC),
    ("sipp", SIPP),
    ("ipv6", IPV6),
    ("old hold", OLD_HOLD),
];

fn parse(s: &str) -> SessionDescription {
    SessionDescription::parse(s.as_bytes()).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn local() -> LocalMedia {
    LocalMedia {
        session_id: 42,
        ..LocalMedia::new(ip("192.0.2.10"), 20000)
    }
}

fn prefs(names: &[&str]) -> Vec<CodecPref> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

/// Answers with the default preferences and checks the answer reads back as valid SDP with
/// one stream per offered stream, only the audio one open.
fn answer_checked(offer_text: &str, local: &LocalMedia, prefs: &[CodecPref]) -> Answer {
    let offer = parse(offer_text);
    let a = negotiate::answer(&offer, local, prefs).unwrap();
    let text = a.sdp.to_string();
    assert!(text.ends_with("\r\n") && !text.replace("\r\n", "").contains('\n'));
    let back = parse(&text);
    assert_eq!(back, a.sdp, "answer does not read back: {text}");
    assert_eq!(back.media.len(), offer.media.len(), "{text}");
    let open: Vec<usize> = (0..back.media.len())
        .filter(|&i| back.media[i].port != 0)
        .collect();
    assert_eq!(open.len(), 1, "{text}");
    for (o, b) in offer.media.iter().zip(&back.media) {
        assert_eq!((&o.media, &o.proto), (&b.media, &b.proto), "{text}");
    }
    a
}

#[test]
fn fixtures_parse_into_the_model() {
    let a = parse(ASTERISK);
    assert_eq!(a.origin.username, "-");
    assert_eq!(a.origin.session_id, 1234567890);
    assert_eq!(a.session_name, "Asterisk");
    assert_eq!(a.connection, Some(ip("192.168.1.10")));
    let m = &a.media[0];
    assert_eq!(m.formats, ["0", "8", "3", "101"]);
    assert_eq!((m.ptime, m.maxptime), (Some(20), Some(150)));
    assert_eq!(m.fmtp_of("101"), Some("0-16"));

    let c = parse(CUBE);
    assert_eq!(c.origin.address, "198.51.100.5");
    assert_eq!(c.origin.session_version, 2186);
    assert_eq!(c.session_name, "SIP Call");
    assert_eq!(
        c.bandwidths,
        [Bandwidth {
            kind: "AS".into(),
            value: 80
        }]
    );
    let m = &c.media[0];
    assert_eq!(m.bandwidths[0].kind, "TIAS");
    assert_eq!(m.connection, Some(ip("198.51.100.6")));
    assert_eq!(c.connection_of(m), Some(ip("198.51.100.6")));
    assert_eq!(m.formats.len(), 8);
    assert_eq!(m.rtpmap(0).unwrap().to_string(), "PCMU/8000"); // static, no rtpmap line
    assert_eq!(m.rtpmap(96).unwrap().to_string(), "AMR-WB/16000");
    assert_eq!(m.fmtp_of("96"), Some("mode-set=0,1,2; octet-align=1"));
    assert_eq!(
        m.rtcp,
        Some(Rtcp {
            port: 17551,
            addr: None
        })
    );
    assert_eq!((m.ptime, m.maxptime), (Some(30), Some(60)));
    assert_eq!(m.telephone_event(8000), Some(100));
    let names: Vec<&str> = m.attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["x-custom-thing", "silenceSupp"]);
    assert_eq!(m.attributes[1].value.as_deref(), Some("off - - - -"));

    let w = parse(WEBRTC);
    assert_eq!(w.origin.session_id, 4611731400430051336);
    assert_eq!(w.connection, None);
    assert_eq!(w.attributes[0].to_string(), "group:BUNDLE 0 1");
    assert_eq!(w.media.len(), 2);
    assert_eq!(w.media[1].media, "video");
    assert_eq!(w.media[0].rtpmap(111).unwrap().channels, Some(2));
    assert_eq!(
        w.media[0].rtcp,
        Some(Rtcp {
            port: 9,
            addr: Some(ip("0.0.0.0"))
        })
    );

    let v6 = parse(IPV6);
    assert_eq!(v6.connection, Some(ip("2001:db8::10")));
    assert_eq!(v6.media[0].direction, Direction::SendRecv);

    let hold = parse(OLD_HOLD);
    assert_eq!(hold.origin.address, "host.example.com");
    assert_eq!(hold.connection, Some(ip("0.0.0.0")));
}

#[test]
fn fixtures_survive_writing_and_reading_back() {
    for (name, text) in FIXTURES {
        let sd = parse(text);
        let written = sd.to_string();
        assert_eq!(parse(&written), sd, "{name}: {written}");
    }
}

#[test]
fn asterisk_is_answered_with_pcmu_and_its_dtmf() {
    let a = answer_checked(ASTERISK, &local(), &CodecPref::defaults());
    let n = &a.negotiated;
    assert_eq!((n.codec.pt, n.codec.encoding.as_str()), (0, "PCMU"));
    assert_eq!(n.telephone_event, Some(101));
    assert_eq!(n.remote_rtp, sock("192.168.1.10:10000"));
    assert_eq!(n.remote_rtcp, sock("192.168.1.10:10001"));
    assert_eq!(
        (n.ptime, n.direction, n.hold),
        (20, Direction::SendRecv, false)
    );
    let text = a.sdp.to_string();
    assert!(
        text.contains("o=dialerd 42 1 IN IP4 192.0.2.10\r\n"),
        "{text}"
    );
    assert!(text.contains("c=IN IP4 192.0.2.10\r\n"), "{text}");
    assert!(text.contains("m=audio 20000 RTP/AVP 0 101\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
}

#[test]
fn freeswitch_gets_the_configured_order_and_its_rtcp_port() {
    let a = answer_checked(FREESWITCH, &local(), &prefs(&["PCMA", "PCMU"]));
    let n = &a.negotiated;
    assert_eq!((n.codec.pt, n.codec.encoding.as_str()), (8, "PCMA"));
    assert_eq!(n.remote_rtcp, sock("203.0.113.20:24581"));
    // Our order wins over the offerer's: PCMU is picked though PCMA is listed first.
    let a = answer_checked(FREESWITCH, &local(), &CodecPref::defaults());
    assert_eq!(a.negotiated.codec.pt, 0);
    // Comfort noise is never the codec, even when asked for first.
    let a = answer_checked(FREESWITCH, &local(), &prefs(&["CN", "G722"]));
    assert_eq!(a.negotiated.codec.to_string(), "G722/8000");
}

#[test]
fn carrier_offer_with_g729_dynamic_types_and_odd_dtmf() {
    let a = answer_checked(CUBE, &local(), &prefs(&["G729", "PCMU"]));
    let n = &a.negotiated;
    assert_eq!((n.codec.pt, n.codec.encoding.as_str()), (18, "G729"));
    assert_eq!(n.telephone_event, Some(100)); // not X-NSE on 101
    assert_eq!(n.remote_rtp, sock("198.51.100.6:17548")); // media c= wins
    assert_eq!(n.remote_rtcp, sock("198.51.100.6:17551"));
    assert_eq!(n.ptime, 30);
    let m = &a.sdp.media[0];
    assert_eq!(m.formats, ["18", "100"]);
    assert_eq!(m.fmtp_of("18"), Some("annexb=no"));
    assert_eq!(m.fmtp_of("100"), Some("0-15")); // the offerer's events, not ours
    assert_eq!(m.ptime, Some(30));

    // PCMU has no rtpmap line here: the static type is enough.
    let a = answer_checked(CUBE, &local(), &CodecPref::defaults());
    assert_eq!(a.negotiated.codec.to_string(), "PCMU/8000");
    assert!(a
        .sdp
        .to_string()
        .contains("m=audio 20000 RTP/AVP 0 100\r\n"));
    // A dynamic type picked by name and rate keeps the offerer's number.
    let a = answer_checked(CUBE, &local(), &prefs(&["speex/16000"]));
    assert_eq!(a.negotiated.codec.pt, 98);
    assert_eq!(a.negotiated.telephone_event, None); // offered only at 8000 Hz
}

#[test]
fn webrtc_audio_is_answered_and_video_refused_in_place() {
    let a = answer_checked(WEBRTC, &local(), &CodecPref::defaults());
    let n = &a.negotiated;
    assert_eq!(n.codec.pt, 0);
    assert_eq!(n.telephone_event, Some(126));
    assert_eq!(n.remote_rtp, sock("192.0.2.44:50000"));
    // Multiplexing offered is taken: RTCP goes to the RTP address, not to a=rtcp.
    assert!(n.rtcp_mux);
    assert_eq!(n.remote_rtcp, sock("192.0.2.44:50000"));
    let text = a.sdp.to_string();
    assert!(text.contains("m=audio 20000 RTP/AVPF 0 126\r\n"), "{text}");
    assert!(text.contains("m=video 0 RTP/AVPF 96\r\n"), "{text}");
    assert!(text.contains("a=rtcp-mux\r\n"), "{text}");
    assert!(!text.contains("ice-ufrag"), "{text}");

    // Without a=rtcp-mux the 0.0.0.0 in a=rtcp is a placeholder, not an address.
    let plain = WEBRTC.replace("a=rtcp-mux\r\n", "");
    let a = answer_checked(&plain, &local(), &CodecPref::defaults());
    assert!(!a.negotiated.rtcp_mux);
    assert_eq!(a.negotiated.remote_rtcp, sock("192.0.2.44:9"));
    assert!(!a.sdp.to_string().contains("rtcp-mux"));

    // Opus by the name in the config, with its parameters echoed; DTMF at 8000 Hz does not go
    // with a 48 kHz codec.
    let a = answer_checked(WEBRTC, &local(), &prefs(&["opus/48000/2", "PCMU"]));
    assert_eq!(a.negotiated.codec.to_string(), "opus/48000/2");
    assert_eq!(a.negotiated.telephone_event, None);
    assert_eq!(
        a.sdp.media[0].fmtp_of("111"),
        Some("minptime=10;useinbandfec=1")
    );
}

#[test]
fn dtls_srtp_audio_is_not_usable() {
    let offer = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\n",
    );
    assert_eq!(
        negotiate::answer(&offer, &local(), &CodecPref::defaults()).unwrap_err(),
        SdpError::NoAudio
    );
}

#[test]
fn sipp_default_offer() {
    let a = answer_checked(SIPP, &local(), &CodecPref::defaults());
    let n = &a.negotiated;
    assert_eq!(n.codec.pt, 0);
    assert_eq!(n.telephone_event, None);
    assert_eq!(n.remote_rtp, sock("127.0.0.1:6000"));
    assert_eq!(a.sdp.media[0].formats, ["0"]);
    let offer = parse(SIPP);
    assert_eq!(
        negotiate::answer(&offer, &local(), &prefs(&["PCMA"])).unwrap_err(),
        SdpError::NoCommonCodec
    );
}

#[test]
fn ipv6_offer_answered_from_an_ipv6_address() {
    let me = LocalMedia::new(ip("2001:db8::1"), 30000);
    let a = answer_checked(IPV6, &me, &CodecPref::defaults());
    assert_eq!(a.negotiated.remote_rtp, sock("[2001:db8::10]:7078"));
    assert_eq!(a.negotiated.remote_rtcp, sock("[2001:db8::10]:7079"));
    assert_eq!(a.negotiated.telephone_event, Some(101));
    let text = a.sdp.to_string();
    assert!(
        text.contains("o=dialerd 0 1 IN IP6 2001:db8::1\r\n"),
        "{text}"
    );
    assert!(text.contains("c=IN IP6 2001:db8::1\r\n"), "{text}");
    // By name, opus is found on the offerer's dynamic type 96.
    let a = answer_checked(IPV6, &me, &prefs(&["opus"]));
    assert_eq!(a.negotiated.codec.pt, 96);
}

#[test]
fn old_style_hold_is_a_hold() {
    let a = answer_checked(OLD_HOLD, &local(), &CodecPref::defaults());
    let n = &a.negotiated;
    assert!(n.hold);
    // They may still send (music on hold); we must send nothing to 0.0.0.0.
    assert_eq!(n.direction, Direction::RecvOnly);
    assert_eq!(a.sdp.media[0].direction, Direction::RecvOnly);
    assert_eq!(n.remote_rtp, sock("0.0.0.0:49170"));

    // The same with an explicit inactive: nothing either way.
    let inactive = format!("{OLD_HOLD}a=inactive\r\n");
    let a = answer_checked(&inactive, &local(), &CodecPref::defaults());
    assert_eq!(
        (a.negotiated.direction, a.negotiated.hold),
        (Direction::Inactive, true)
    );
}

#[test]
fn direction_is_answered_per_rfc3264() {
    use Direction::*;
    // (offered, what we want, answered, hold)
    let table = [
        (SendRecv, SendRecv, SendRecv, false),
        (SendOnly, SendRecv, RecvOnly, true),
        (RecvOnly, SendRecv, SendOnly, false),
        (Inactive, SendRecv, Inactive, true),
        (SendRecv, SendOnly, SendOnly, false), // we put them on hold
        (SendRecv, RecvOnly, RecvOnly, false),
        (SendRecv, Inactive, Inactive, false),
        (SendOnly, SendOnly, Inactive, true),
        (RecvOnly, RecvOnly, Inactive, false),
    ];
    for (offered, wish, answered, hold) in table {
        let text = format!("{SIPP}a={offered}\r\n");
        let me = LocalMedia {
            direction: wish,
            ..local()
        };
        let a = answer_checked(&text, &me, &CodecPref::defaults());
        assert_eq!(
            (a.negotiated.direction, a.negotiated.hold),
            (answered, hold),
            "{offered} offered, {wish} wanted"
        );
        assert!(a.sdp.to_string().contains(&format!("a={answered}\r\n")));
    }
}

#[test]
fn session_level_direction_is_every_streams_default() {
    let text = SIPP.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    let sd = parse(&text);
    assert_eq!(sd.direction, Some(Direction::SendOnly));
    assert_eq!(sd.media[0].direction, Direction::SendOnly);
    let with_own = format!("{text}a=sendrecv\r\n");
    assert_eq!(parse(&with_own).media[0].direction, Direction::SendRecv);
}

#[test]
fn ptime_is_honoured_only_when_sensible() {
    for (offered, answered) in [
        ("", 20),
        ("a=ptime:10\r\n", 10),
        ("a=ptime:30\r\n", 30),
        ("a=ptime:60\r\n", 60),
        ("a=ptime:20.0\r\n", 20),
        ("a=ptime:25\r\n", 20),
        ("a=ptime:90\r\n", 20),
        ("a=ptime:0\r\n", 20),
        ("a=ptime:5\r\n", 20),
        ("a=maxptime:10\r\n", 10),
    ] {
        let a = answer_checked(
            &format!("{SIPP}{offered}"),
            &local(),
            &CodecPref::defaults(),
        );
        assert_eq!(a.negotiated.ptime, answered, "{offered:?}");
        assert_eq!(a.sdp.media[0].ptime, Some(answered));
    }
}

#[test]
fn every_other_stream_is_refused_in_place() {
    // Video first, an unusable audio (port 0), the usable one, a second audio, an application.
    let offer = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
        m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
        m=audio 0 RTP/AVP 0\r\n\
        m=audio 6000 RTP/AVP 18 8\r\n\
        m=audio 7000 RTP/AVP 0\r\n\
        m=application 8000 UDP/BFCP *\r\n";
    let a = answer_checked(offer, &local(), &CodecPref::defaults());
    let ports: Vec<(&str, u16)> = a
        .sdp
        .media
        .iter()
        .map(|m| (m.media.as_str(), m.port))
        .collect();
    assert_eq!(
        ports,
        [
            ("video", 0),
            ("audio", 0),
            ("audio", 20000),
            ("audio", 0),
            ("application", 0)
        ]
    );
    // The first audio with a codec in common is the one taken: PCMA on the third stream.
    assert_eq!(a.negotiated.codec.pt, 8);
    assert_eq!(a.negotiated.remote_rtp, sock("192.0.2.1:6000"));
    assert_eq!(a.sdp.media[4].formats, ["*"]);

    // With G729 first in our list, the third stream is still the first usable one.
    let a = answer_checked(offer, &local(), &prefs(&["G729"]));
    assert_eq!(a.negotiated.remote_rtp.port(), 6000);
}

#[test]
fn offers_we_cannot_answer_are_errors() {
    let no_audio = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=video 4000 RTP/AVP 96\r\n";
    let refused = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 0 RTP/AVP 0\r\n";
    let g729 = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 18 101\r\n\
        a=rtpmap:101 telephone-event/8000\r\n";
    let no_addr = "v=0\r\nm=audio 4000 RTP/AVP 0\r\n";
    for (text, err) in [
        (no_audio, SdpError::NoAudio),
        (refused, SdpError::NoAudio),
        (g729, SdpError::NoCommonCodec),
        (no_addr, SdpError::NoAddress),
    ] {
        let r = negotiate::answer(&parse(text), &local(), &CodecPref::defaults());
        assert_eq!(r.unwrap_err(), err, "{text}");
    }
    // telephone-event alone is not a codec, even when the config lists it.
    let r = negotiate::answer(&parse(g729), &local(), &prefs(&["telephone-event"]));
    assert_eq!(r.unwrap_err(), SdpError::NoCommonCodec);
}

#[test]
fn garbage_is_an_error() {
    let cases: [(&[u8], SdpError); 10] = [
        (b"", SdpError::NoVersion),
        (b"hello", SdpError::NoVersion),
        (b"\xff\xfe", SdpError::NotUtf8),
        (b"o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n", SdpError::NoVersion),
        (b"v=1\r\n", SdpError::BadVersion("1".into())),
        (b"v=0\r\nm=audio\r\n", SdpError::BadMedia("audio".into())),
        (
            b"v=0\r\nm=audio x RTP/AVP 0\r\n",
            SdpError::BadPort("audio x RTP/AVP 0".into()),
        ),
        (
            b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n",
            SdpError::BadPort("audio 70000 RTP/AVP 0".into()),
        ),
        (
            b"v=0\r\nc=IN IP4 pbx.example.com\r\n",
            SdpError::BadConnection("IN IP4 pbx.example.com".into()),
        ),
        (
            b"v=0\r\no=- one 1 IN IP4 1.2.3.4\r\n",
            SdpError::BadOrigin("- one 1 IN IP4 1.2.3.4".into()),
        ),
    ];
    for (body, err) in cases {
        assert_eq!(SessionDescription::parse(body), Err(err), "{body:?}");
    }
    // Lines we cannot read inside a good body are passed over, not fatal.
    let odd = parse("v=0\r\nnonsense\r\nc=IN IP4 192.0.2.1\r\nb=AS\r\nm=audio 4000 RTP/AVP 0\r\n");
    assert_eq!(odd.media.len(), 1);
    assert!(odd.bandwidths.is_empty());
}

#[test]
fn truncated_fixtures_never_panic_and_read_back() {
    for (name, text) in FIXTURES {
        let mut ok = 0;
        for cut in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            let prefix = &text[..cut];
            let Ok(sd) = SessionDescription::parse(prefix.as_bytes()) else {
                continue;
            };
            ok += 1;
            // Whatever we could read, we can write and read again to the same model.
            assert_eq!(parse(&sd.to_string()), sd, "{name} cut at {cut}");
            let _ = negotiate::answer(&sd, &local(), &CodecPref::defaults());
            let _ = read_answer(&sd, prefix.as_bytes());
        }
        // Only cuts inside the v=, o=, c= or m= lines fail, so most cuts must read.
        assert!(
            ok > text.len() / 2,
            "{name}: only {ok} of {} cuts read",
            text.len()
        );
    }
}

#[test]
fn our_offer_lists_the_preferences_and_dtmf() {
    let sd = negotiate::offer(&local(), &CodecPref::defaults());
    let text = sd.to_string();
    assert!(text.starts_with("v=0\r\no=dialerd 42 1 IN IP4 192.0.2.10\r\ns=dialerd\r\n"));
    assert!(text.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:8 PCMA/8000\r\n"), "{text}");
    assert!(text.contains("a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"));
    assert_eq!(parse(&text), sd);

    // Static numbers where they exist, dynamic ones around 101 otherwise; unknown rates and
    // repeats left out.
    let sd = negotiate::offer(
        &local(),
        &prefs(&[
            "opus",
            "G729",
            "AMR-WB/16000",
            "iLBC",
            "PCMU",
            "pcmu",
            "telephone-event",
        ]),
    );
    let m = &sd.media[0];
    assert_eq!(m.formats, ["96", "18", "97", "0", "101"]);
    assert_eq!(m.rtpmap(96).unwrap().to_string(), "opus/48000/2");
    assert_eq!(m.rtpmap(97).unwrap().to_string(), "AMR-WB/16000");

    // Nothing usable in the list: PCMU and PCMA rather than an offer without a codec.
    let sd = negotiate::offer(&local(), &prefs(&["iLBC"]));
    assert_eq!(sd.media[0].formats, ["0", "8", "101"]);
}

#[test]
fn answers_to_our_offer_are_read() {
    let offer = negotiate::offer(&local(), &CodecPref::defaults());
    let answer = "v=0\r\no=- 5 5 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n\
        m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:30\r\n";
    let n = read_answer(&offer, answer.as_bytes()).unwrap();
    assert_eq!(n.codec.to_string(), "PCMA/8000");
    assert_eq!(n.codec.pt, 8);
    assert_eq!(n.telephone_event, Some(101));
    assert_eq!(n.remote_rtp, sock("203.0.113.9:40000"));
    assert_eq!(n.remote_rtcp, sock("203.0.113.9:40001"));
    assert_eq!(
        (n.ptime, n.direction, n.hold),
        (30, Direction::SendRecv, false)
    );

    // Early media: a 183 and then the 200 carry the same SDP and read the same.
    let early = read_answer(&offer, answer.as_bytes()).unwrap();
    assert_eq!(early, n);

    // An answer without a=ptime keeps ours; one that is on hold says so.
    let held = answer.replace("a=ptime:30\r\n", "a=sendonly\r\n");
    let n = read_answer(&offer, held.as_bytes()).unwrap();
    assert_eq!(
        (n.ptime, n.direction, n.hold),
        (20, Direction::RecvOnly, true)
    );
}

#[test]
fn bad_answers_to_our_offer_are_errors() {
    let offer = negotiate::offer(&local(), &CodecPref::defaults());
    let head = "v=0\r\no=- 5 5 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n";
    let rejected = format!("{head}m=audio 0 RTP/AVP 0\r\n");
    let err = read_answer(&offer, rejected.as_bytes()).unwrap_err();
    assert_eq!(err, SdpError::NoAudio);
    assert_eq!(err.to_string(), "no audio");
    let not_offered = format!("{head}m=audio 40000 RTP/AVP 18\r\n");
    assert_eq!(
        read_answer(&offer, not_offered.as_bytes()),
        Err(SdpError::NotOffered("18".into()))
    );
    let dtmf_only = format!("{head}m=audio 40000 RTP/AVP 101\r\n");
    assert_eq!(
        read_answer(&offer, dtmf_only.as_bytes()),
        Err(SdpError::NoCommonCodec)
    );
    let video = format!("{head}m=video 40000 RTP/AVP 0\r\n");
    assert_eq!(
        read_answer(&offer, video.as_bytes()),
        Err(SdpError::NoAudio)
    );
    assert_eq!(read_answer(&offer, b"junk"), Err(SdpError::NoVersion));
    // A stray format next to a good one is passed over.
    let extra = format!("{head}m=audio 40000 RTP/AVP 13 0\r\n");
    assert_eq!(read_answer(&offer, extra.as_bytes()).unwrap().codec.pt, 0);
}

#[test]
fn session_version_moves_only_when_our_sdp_changes() {
    let mut s = SdpSession::new(LocalMedia {
        session_version: 7,
        ..local()
    });
    let first = s.offer(&CodecPref::defaults());
    assert_eq!(first.origin.session_version, 7);
    // A session refresh: nothing changed, same version.
    assert_eq!(s.offer(&CodecPref::defaults()).origin.session_version, 7);
    // We put the peer on hold: next version, same id.
    s.local.direction = Direction::SendOnly;
    let hold = s.offer(&CodecPref::defaults());
    assert_eq!(hold.origin.session_version, 8);
    assert_eq!(hold.origin.session_id, 42);
    assert_eq!(hold.media[0].direction, Direction::SendOnly);
    // Our address moves: the o= line still keeps the first address (RFC 3264 §8).
    s.local.direction = Direction::SendRecv;
    s.local.port = 20002;
    let moved = s.offer(&CodecPref::defaults());
    assert_eq!(moved.origin.session_version, 9);
    assert_eq!(moved.origin.address, "192.0.2.10");
    assert_eq!(s.last(), Some(&moved));
}

#[test]
fn reoffers_from_the_peer_give_a_fresh_negotiation() {
    let mut s = SdpSession::new(local());
    let first = s.answer(&parse(ASTERISK), &CodecPref::defaults()).unwrap();
    assert_eq!(first.sdp.origin.session_version, 1);
    assert!(!first.negotiated.hold);

    // The same offer again (a refresh): same answer, same version.
    let again = s.answer(&parse(ASTERISK), &CodecPref::defaults()).unwrap();
    assert_eq!(again, first);

    // Hold: they go sendonly; we answer recvonly in a new version.
    let held = ASTERISK.replace("a=sendrecv", "a=sendonly");
    let a = s.answer(&parse(&held), &CodecPref::defaults()).unwrap();
    assert!(a.negotiated.hold);
    assert_eq!(a.negotiated.direction, Direction::RecvOnly);
    assert_eq!(a.sdp.origin.session_version, 2);

    // Unhold from a new address and port.
    let moved = ASTERISK
        .replace("192.168.1.10", "192.168.1.77")
        .replace("m=audio 10000", "m=audio 12000");
    let a = s.answer(&parse(&moved), &CodecPref::defaults()).unwrap();
    assert!(!a.negotiated.hold);
    assert_eq!(a.negotiated.remote_rtp, sock("192.168.1.77:12000"));
    assert_eq!(a.negotiated.direction, Direction::SendRecv);
    assert_eq!(a.sdp.origin.session_version, 3);
}

#[test]
fn codec_preferences_read_from_config_strings() {
    assert_eq!(
        "opus/48000/2".parse::<CodecPref>().unwrap(),
        CodecPref {
            name: "opus".into(),
            clock_rate: Some(48000),
            channels: Some(2)
        }
    );
    assert_eq!("PCMU".parse::<CodecPref>().unwrap(), CodecPref::new("PCMU"));
    assert_eq!(
        "G722/8000".parse::<CodecPref>().unwrap().to_string(),
        "G722/8000"
    );
    for bad in ["", "/8000", "PCMU/x", "opus/48000/2/1", "PCMU/8000/many"] {
        assert!(bad.parse::<CodecPref>().is_err(), "{bad:?}");
    }
    // Mono is what an rtpmap without a channel count means.
    let pcmu = static_payload(0).unwrap();
    assert!("PCMU/8000/1".parse::<CodecPref>().unwrap().matches(&pcmu));
    assert!(!"PCMU/16000".parse::<CodecPref>().unwrap().matches(&pcmu));
}

// The older one-call API used by the SIP endpoint.

#[test]
fn legacy_parse_and_choose() {
    let o = parse_offer(CUBE.as_bytes()).unwrap();
    assert_eq!(o.addr, ip("198.51.100.6"));
    assert_eq!(o.port, 17548);
    assert_eq!(o.formats, vec![18, 0, 8, 96, 97, 98, 100, 101]);
    assert_eq!(o.telephone_event, Some(100));
    assert_eq!(choose_codec(&o), Some((0, "PCMU/8000")));

    let f = parse_offer(b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 8\r\n").unwrap();
    assert_eq!(choose_codec(&f), Some((8, "PCMA/8000")));

    assert_eq!(
        parse_offer(b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=video 4000 RTP/AVP 96\r\n"),
        None
    );
    assert_eq!(parse_offer(b"\xff\xfe"), None);
    let g729 = parse_offer(b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 18\r\n").unwrap();
    assert_eq!(choose_codec(&g729), None);
}

#[test]
fn legacy_offer_and_answer() {
    let text = offer(ip("192.0.2.10"), 20000, 9);
    let sd = parse(&text);
    assert_eq!(sd.origin.session_id, 9);
    assert_eq!(sd.media[0].formats, ["0", "8", "101"]);

    let o = parse_offer(WEBRTC.as_bytes()).unwrap();
    let codec = choose_codec(&o).unwrap();
    let a = answer(ip("192.0.2.10"), 20000, 42, codec, &o);
    assert!(a.contains("m=audio 20000 RTP/AVPF 0 126\r\n"), "{a}");
    assert!(a.contains("m=video 0 RTP/AVPF 96\r\n"), "{a}");
    // A codec not in the offer: every stream refused rather than a bad answer.
    let a = answer(ip("192.0.2.10"), 20000, 42, (18, "G729/8000"), &o);
    let sd = parse(&a);
    assert!(sd.media.iter().all(|m| m.port == 0), "{a}");
    assert_eq!(sd.media.len(), 2);
}

/// baresip 1.0 with `mediaenc srtp-mand`: RTP/SAVP and both AES-CM suites.
const BARESIP_SAVP: &str = "v=0\r\n\
o=- 1 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 10000 RTP/SAVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB|2^31\r\n\
a=sendrecv\r\n";

fn secure(encryption: MediaEncryption) -> LocalMedia {
    LocalMedia {
        encryption,
        srtp_key: std::array::from_fn(|i| 0xa0 + i as u8),
        ..local()
    }
}

fn with_media(offer: &str, m_line: &str, crypto: &[&str]) -> String {
    let mut s = offer.replace("m=audio 10000 RTP/SAVP 0 8 101", m_line);
    s = s
        .lines()
        .filter(|l| !l.starts_with("a=crypto"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    for c in crypto {
        s.push_str(&format!("a=crypto:{c}\r\n"));
    }
    s
}

#[test]
fn crypto_lines_parse_and_write_back() {
    let sd = parse(BARESIP_SAVP);
    let m = &sd.media[0];
    assert!(m.is_srtp() && !m.is_plain_rtp());
    assert_eq!(m.crypto.len(), 2);
    assert_eq!(
        (m.crypto[0].tag, m.crypto[0].suite.as_str()),
        (1, "AES_CM_128_HMAC_SHA1_32")
    );
    let (suite, key) = m.crypto[0].usable().unwrap();
    assert_eq!(
        (suite, key),
        (Suite::AesCm128HmacSha1_32, (0..30).collect())
    );
    // A lifetime does not stop a line; its key is still read.
    assert_eq!(
        m.crypto[1].usable().unwrap().1,
        (100..130).collect::<Vec<u8>>()
    );
    assert!(m.attributes.iter().all(|a| a.name != "crypto"));
    assert_eq!(parse(&sd.to_string()), sd);
    assert!(sd.to_string().contains(
        "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB|2^31\r\n"
    ));
    // Keys never reach a log line.
    assert!(!format!("{m:?}").contains("ZGVmZ2hp"));
}

#[test]
fn crypto_lines_we_cannot_run_are_not_usable() {
    let line = |v: &str| {
        let sd = parse(&with_media(BARESIP_SAVP, "m=audio 10000 RTP/SAVP 0", &[v]));
        sd.media[0].crypto.first().cloned()
    };
    let key = "inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";
    for bad in [
        format!("1 F8_128_HMAC_SHA1_80 {key}"),
        format!("1 AES_CM_128_HMAC_SHA1_80 {key}|2^20|1:4"),
        format!("1 AES_CM_128_HMAC_SHA1_80 {key};{key}"),
        format!("1 AES_CM_128_HMAC_SHA1_80 {key} UNENCRYPTED_SRTP"),
        format!("1 AES_CM_128_HMAC_SHA1_80 {key} KDR=10"),
        // 29 octets: one short for AES-CM.
        "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxw=".into(),
        // 30 octets: two too many for GCM.
        format!("1 AEAD_AES_128_GCM {key}"),
        "1 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64!!".into(),
        "1 AES_CM_128_HMAC_SHA1_80 srtp-key-params".into(),
    ] {
        let c = line(&bad).unwrap_or_else(|| panic!("{bad} should parse"));
        assert_eq!(c.usable(), None, "{bad}");
    }
    assert!(line(&format!("1 AES_CM_128_HMAC_SHA1_80 {key} WSH=64"))
        .unwrap()
        .usable()
        .is_some());
    // Not a crypto line at all: kept as a plain attribute.
    for junk in [
        "x AES_CM_128_HMAC_SHA1_80 inline:AA==",
        "1234567890 S K",
        "1 ONLY",
    ] {
        let sd = parse(&with_media(
            BARESIP_SAVP,
            "m=audio 10000 RTP/SAVP 0",
            &[junk],
        ));
        assert!(sd.media[0].crypto.is_empty(), "{junk}");
        assert!(sd.media[0].attributes.iter().any(|a| a.name == "crypto"));
    }
}

#[test]
fn savp_offer_is_answered_with_the_first_line_we_can_run() {
    for enc in [MediaEncryption::Optional, MediaEncryption::Srtp] {
        let local = secure(enc);
        let a = answer_checked(BARESIP_SAVP, &local, &CodecPref::defaults());
        let m = &a.sdp.media[0];
        assert_eq!(m.proto, "RTP/SAVP");
        assert_eq!(m.crypto.len(), 1);
        assert_eq!(
            (m.crypto[0].tag, m.crypto[0].suite.as_str()),
            (1, "AES_CM_128_HMAC_SHA1_32")
        );
        let keys = a.negotiated.srtp.clone().unwrap();
        assert_eq!(keys.suite, Suite::AesCm128HmacSha1_32);
        assert_eq!(keys.remote, (0..30).collect::<Vec<u8>>());
        assert_eq!(keys.local, local.srtp_key.to_vec());
        assert_eq!(m.crypto[0].usable().unwrap().1, keys.local);
    }
}

#[test]
fn gcm_is_taken_when_offered_with_a_key_of_its_length() {
    let offer = with_media(
        BARESIP_SAVP,
        "m=audio 10000 RTP/SAVP 8",
        &["7 AEAD_AES_128_GCM inline:yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4w=="],
    );
    let local = secure(MediaEncryption::Optional);
    let a = answer_checked(&offer, &local, &CodecPref::defaults());
    let keys = a.negotiated.srtp.unwrap();
    assert_eq!(keys.suite, Suite::AeadAes128Gcm);
    assert_eq!(keys.local, local.srtp_key[..28].to_vec());
    assert_eq!(keys.remote, (200..228).collect::<Vec<u8>>());
    assert_eq!(a.sdp.media[0].crypto[0].tag, 7);
}

#[test]
fn plain_legs_never_answer_crypto() {
    // Over UDP or TCP (encryption none): RTP/SAVP is not ours to take ...
    assert_eq!(
        negotiate::answer(&parse(BARESIP_SAVP), &local(), &CodecPref::defaults()).unwrap_err(),
        SdpError::NoAudio
    );
    // ... and crypto offered best effort in RTP/AVP is read past: plain RTP, no key sent.
    let avp = BARESIP_SAVP.replace("RTP/SAVP", "RTP/AVP");
    let a = answer_checked(&avp, &local(), &CodecPref::defaults());
    assert!(a.sdp.media[0].crypto.is_empty() && a.negotiated.srtp.is_none());
    assert!(!a.sdp.to_string().contains("crypto"));
}

#[test]
fn required_encryption_refuses_plain_offers_and_optional_takes_them() {
    let plain = with_media(BARESIP_SAVP, "m=audio 10000 RTP/AVP 0 8 101", &[]);
    assert_eq!(
        negotiate::answer(
            &parse(&plain),
            &secure(MediaEncryption::Srtp),
            &CodecPref::defaults()
        )
        .unwrap_err(),
        SdpError::NoCrypto
    );
    let a = answer_checked(
        &plain,
        &secure(MediaEncryption::Optional),
        &CodecPref::defaults(),
    );
    assert!(a.negotiated.srtp.is_none() && a.sdp.media[0].crypto.is_empty());
    // RTP/SAVP whose only line we cannot run: refused even when encryption is optional.
    let f8 = with_media(
        BARESIP_SAVP,
        "m=audio 10000 RTP/SAVP 0",
        &["1 F8_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"],
    );
    assert_eq!(
        negotiate::answer(
            &parse(&f8),
            &secure(MediaEncryption::Optional),
            &CodecPref::defaults()
        )
        .unwrap_err(),
        SdpError::NoCrypto
    );
    // Best-effort crypto in RTP/AVP satisfies a required policy.
    let avp = BARESIP_SAVP.replace("RTP/SAVP", "RTP/AVP");
    let a = answer_checked(&avp, &secure(MediaEncryption::Srtp), &CodecPref::defaults());
    assert_eq!(a.sdp.media[0].proto, "RTP/AVP");
    assert!(a.negotiated.srtp.is_some());
}

#[test]
fn offers_by_policy_and_their_answers() {
    let prefs = CodecPref::defaults();
    let none = negotiate::offer(&local(), &prefs);
    assert_eq!(none.media[0].proto, "RTP/AVP");
    assert!(none.media[0].crypto.is_empty());

    let opt = negotiate::offer(&secure(MediaEncryption::Optional), &prefs);
    assert_eq!(opt.media[0].proto, "RTP/AVP");
    let req = negotiate::offer(&secure(MediaEncryption::Srtp), &prefs);
    assert_eq!(req.media[0].proto, "RTP/SAVP");
    for o in [&opt, &req] {
        let suites: Vec<&str> = o.media[0].crypto.iter().map(|c| c.suite.as_str()).collect();
        assert_eq!(
            suites,
            ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"]
        );
        assert_eq!(parse(&o.to_string()), *o);
    }

    // The peer takes tag 2 with its own key: keys for both directions.
    let answer = |proto: &str, crypto: &str| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             m=audio 4000 {proto} 0\r\n{crypto}"
        )
    };
    let took = answer(
        "RTP/SAVP",
        "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB\r\n",
    );
    let n = read_answer(&req, took.as_bytes()).unwrap();
    let keys = n.srtp.unwrap();
    assert_eq!(keys.suite, Suite::AesCm128HmacSha1_32);
    assert_eq!(keys.local, secure(MediaEncryption::Srtp).srtp_key.to_vec());
    assert_eq!(keys.remote, (100..130).collect::<Vec<u8>>());

    // A tag we never offered, or a suite changed under our tag, is no key.
    let stray = answer(
        "RTP/SAVP",
        "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB\r\n",
    );
    assert_eq!(
        read_answer(&req, stray.as_bytes()).unwrap_err(),
        SdpError::NoCrypto
    );
    // Optional: a plain answer is plain RTP; required: it is refused.
    let plain = answer("RTP/AVP", "");
    assert!(read_answer(&opt, plain.as_bytes()).unwrap().srtp.is_none());
    assert_eq!(
        read_answer(&req, plain.as_bytes()).unwrap_err(),
        SdpError::NoCrypto
    );
    // Crypto in an answer to a plain offer is read past.
    assert!(
        read_answer(&none, took.replace("RTP/SAVP", "RTP/AVP").as_bytes())
            .unwrap()
            .srtp
            .is_none()
    );
}

#[test]
fn a_reoffer_with_the_same_keys_keeps_the_answer_and_its_version() {
    let mut s = SdpSession::new(secure(MediaEncryption::Optional));
    let offer = parse(BARESIP_SAVP);
    let first = s.answer(&offer, &CodecPref::defaults()).unwrap();
    let again = s.answer(&offer, &CodecPref::defaults()).unwrap();
    assert_eq!(first.sdp, again.sdp);
    assert_eq!(first.negotiated.srtp, again.negotiated.srtp);
}
