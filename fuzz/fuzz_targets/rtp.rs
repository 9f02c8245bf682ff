//! A sequence of datagrams into one leg's RTP session (RTP with RFC 4733 telephone-events on
//! the RTP socket, RTCP compounds on the RTCP socket), with time passing and two sources.
//!
//! Input: records of `[flags][len][len bytes]`; flags bit 0 = RTCP, bit 1 = from the second
//! address, bits 2..8 = milliseconds (×5) to advance before the datagram.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use dialerd::media::codec::CodecKind;
use dialerd::media::dtmf::TelephoneEvent;
use dialerd::media::rtcp;
use dialerd::media::rtp::{RtpSession, SessionConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let peer: SocketAddr = "192.0.2.7:30000".parse().unwrap();
    let other: SocketAddr = "198.51.100.9:31000".parse().unwrap();
    let mut cfg = SessionConfig::new(CodecKind::Pcma, 0x1234_5678, "fuzz@dialerd");
    cfg.telephone_event = Some(101);
    cfg.remote_rtp = Some(peer);
    cfg.remote_rtcp = Some(SocketAddr::new(peer.ip(), 30001));
    cfg.behind_nat = data.first().is_some_and(|b| b & 0x80 != 0);
    let start = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut now = start;
    let mut s = RtpSession::new(cfg, now);
    let mut rest = data;
    let mut out = Vec::new();
    while let [flags, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (pkt, next) = tail.split_at(n);
        rest = next;
        now += Duration::from_millis(u64::from(flags >> 2) * 5);
        let from = if flags & 2 == 0 { peer } else { other };
        if flags & 1 == 0 {
            let _ = s.on_rtp(now, from, pkt);
            let _ = TelephoneEvent::parse(pkt);
        } else {
            s.on_rtcp(now, from, pkt);
            let _ = rtcp::parse_compound(pkt);
        }
        while s.poll_dtmf(now).is_some() {}
        if let Some(report) = s.poll_rtcp(now, wall + (now - start)) {
            rtcp::parse_compound(&report).expect("our RTCP parses");
        }
        out.clear();
        s.build_voice(now, &[0xD5; 160], 160, &mut out);
        let _ = s.is_dead(now);
        let _ = s.quality();
        let _ = s.remote_quality();
        let _ = s.poll_timeout();
    }
});
