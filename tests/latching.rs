//! Symmetric RTP latching through the real daemon: a caller whose NAT binding moves (its RTP now
//! comes from another port than its SDP named) keeps hearing the echo, on the new address, and a
//! stray stream alongside a live one cannot take the call.

mod common;

use common::ua::TestUa;
use common::Daemon;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// An echo number, a trunk on loopback (so the test UA is trusted) and 100 RTP ports from
/// `first_port`.
fn config(first_port: u16) -> String {
    format!(
        "[[trunks]]\nname = \"loopback\"\nhost = \"127.0.0.1\"\nport = 5070\nkeepalive = \"0s\"\n\
         [sip]\necho_number = \"1000\"\n[media]\nrtp_port_min = {first_port}\nrtp_port_max = {}\n",
        first_port + 99
    )
}

/// dialerd's RTP address from the SDP of its 200 OK.
fn answer_rtp(ok: &str) -> SocketAddr {
    let body = &ok[ok.find("\r\n\r\n").expect("body") + 4..];
    let ip = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .expect("c= line");
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split_whitespace().next())
        .expect("m= line");
    format!("{}:{port}", ip.trim()).parse().unwrap()
}

/// An RTP packet of 20 ms PCMU with this SSRC and sequence number; the payload carries `mark`.
fn rtp(ssrc: u32, seq: u16, mark: u8) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend([mark; 160]);
    p
}

/// Sends `count` packets 20 ms apart from `from` to `to`; returns the payload marks each of
/// `listeners` received meanwhile.
fn talk(
    from: &UdpSocket,
    to: SocketAddr,
    ssrc: u32,
    seqs: std::ops::Range<u16>,
    mark: u8,
    listeners: &[&UdpSocket],
) -> Vec<Vec<u8>> {
    let mut heard = vec![Vec::new(); listeners.len()];
    let mut buf = [0u8; 2048];
    for seq in seqs {
        from.send_to(&rtp(ssrc, seq, mark), to).unwrap();
        let until = Instant::now() + Duration::from_millis(20);
        while Instant::now() < until {
            for (i, l) in listeners.iter().enumerate() {
                while let Ok(n) = l.recv(&mut buf) {
                    if n > 12 {
                        heard[i].push(buf[12]);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    heard
}

#[test]
fn echo_follows_the_callers_new_address_and_ignores_a_stray_stream() {
    let d = Daemon::start(&config(31400));
    let ua = TestUa::new(d.sip, "latch-1");
    ua.invite("1000");
    let ok = ua.final_response();
    assert_eq!(common::status_of(&ok), 200, "{ok}");
    let media = answer_rtp(&ok);
    let moved = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&ua.rtp, &moved, &stray] {
        s.set_nonblocking(true).unwrap();
    }

    // 1. From the address the SDP named: the echo comes back there.
    let heard = talk(&ua.rtp, media, 7, 0..25, 0xA1, &[&ua.rtp, &moved]);
    assert!(
        heard[0].iter().filter(|&&m| m == 0xA1).count() >= 20,
        "{heard:?}"
    );
    assert!(
        heard[1].is_empty(),
        "nothing may go to an address that never sent"
    );

    // 2. A stray stream from another port while the caller still talks: ignored.
    let mut stray_heard = Vec::new();
    for i in 0..25u16 {
        stray.send_to(&rtp(99, 500 + i, 0xEE), media).unwrap();
        let h = talk(&ua.rtp, media, 7, 25 + i..26 + i, 0xA2, &[&ua.rtp, &stray]);
        assert!(
            h[0].iter().all(|&m| m != 0xEE),
            "stray audio echoed to the caller"
        );
        stray_heard.extend(h[1].clone());
    }
    assert!(
        stray_heard.is_empty(),
        "the stray stream took the call: {stray_heard:?}"
    );

    // 3. The caller's NAT binding moves: its RTP now comes from `moved`. After the old address
    //    has been quiet for the re-latch silence, the echo follows to the new one.
    let heard = talk(&moved, media, 7, 50..100, 0xB1, &[&ua.rtp, &moved]);
    let on_new = heard[1].iter().filter(|&&m| m == 0xB1).count();
    assert!(
        on_new >= 30,
        "echo did not follow the new address: {heard:?}"
    );
    assert!(
        heard[0].iter().all(|&m| m != 0xB1),
        "the moved stream's echo went to the old address"
    );
}

/// A sender report from `ssrc` whose NTP timestamp's middle 32 bits are `lsr`.
fn sender_report(ssrc: u32, lsr: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&ssrc.to_be_bytes());
    let ntp = (u64::from(lsr) << 16) | 0x1122_0000_0000_0000;
    p.extend_from_slice(&ntp.to_be_bytes());
    p.extend_from_slice(&[0; 12]); // RTP timestamp, packet and octet counts
    p
}

/// The LSR of the report block about `ssrc` in an RTCP SR or RR, if it has one.
fn lsr_for(packet: &[u8], ssrc: u32) -> Option<u32> {
    let blocks_at = match packet.get(1)? {
        200 => 28,
        201 => 8,
        _ => return None,
    };
    let count = usize::from(packet[0] & 0x1f);
    (0..count).find_map(|i| {
        let b = packet.get(blocks_at + 24 * i..blocks_at + 24 * (i + 1))?;
        (u32::from_be_bytes(b[..4].try_into().ok()?) == ssrc)
            .then(|| u32::from_be_bytes(b[16..20].try_into().unwrap()))
    })
}

#[test]
fn offered_rtcp_mux_is_taken_and_rtcp_shares_the_rtp_port() {
    let d = Daemon::start(&config(31500));
    let ua = TestUa::new(d.sip, "mux-1").rtcp_mux();
    ua.invite("1000");
    let ok = ua.final_response();
    assert_eq!(common::status_of(&ok), 200, "{ok}");
    assert!(
        ok.contains("a=rtcp-mux\r\n"),
        "multiplexing not taken: {ok}"
    );
    let media = answer_rtp(&ok);
    // dialerd closed its RTCP socket: the port above is free to bind.
    UdpSocket::bind(SocketAddr::new(media.ip(), media.port() + 1))
        .expect("dialerd still holds a socket on the RTCP port");

    // Voice, and one sender report, to the RTP port; dialerd's reports must come back on the
    // same port pair and show it read our report (its LSR is our NTP's middle 32 bits).
    ua.rtp.set_nonblocking(true).unwrap();
    let lsr = 0x3344_5566;
    let mut echoed = 0;
    let mut reported = None;
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    for seq in 0..600u16 {
        ua.rtp.send_to(&rtp(42, seq, 0xC1), media).unwrap();
        if seq == 10 {
            ua.rtp.send_to(&sender_report(42, lsr), media).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        while let Ok(n) = ua.rtp.recv(&mut buf) {
            match buf[1] {
                // A report sent before ours arrived has LSR 0: wait for a later one.
                200 | 201 => {
                    if let Some(l) = lsr_for(&buf[..n], 42).filter(|&l| l != 0) {
                        reported = Some(l);
                    }
                }
                _ if n > 12 && buf[12] == 0xC1 => echoed += 1,
                _ => {}
            }
        }
        if reported.is_some() && echoed > 50 {
            break;
        }
    }
    assert!(echoed > 50, "only {echoed} echoed RTP packets");
    assert_eq!(
        reported,
        Some(lsr),
        "no RTCP report on the RTP port acknowledging our SR within {:?}",
        start.elapsed()
    );
}
