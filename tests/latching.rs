//! Symmetric RTP latching through the real daemon, and RTP hijacking ("RTP bleed") refused:
//! media is taken only from the address the SDP names, so an attacker streaming RTP at
//! dialerd's media ports — before the call's first packet, alongside it, or while the real
//! party is silent — receives nothing and is heard by no one, on an echo call and on a relayed
//! one. A trunk with `nat = true` may send from elsewhere: its steady stream latches, and the
//! echo follows it when its NAT binding moves. A caller offering `a=rtcp-mux` gets it.

mod common;

use common::ua::{header, TestUa};
use common::Daemon;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// An echo number, a relay prefix, a trunk on loopback at `trunk_port` (so the test UA is
/// trusted; `nat = true` when `nat`, else the default) and 100 RTP ports from `first_port`.
fn config(first_port: u16, trunk_port: u16, nat: bool) -> String {
    format!(
        "[[trunks]]\nname = \"loopback\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = {trunk_port}\n\
         keepalive = \"0s\"\n{}[sip]\necho_number = \"1000\"\nrelay_prefix = \"9\"\n\
         [media]\nrtp_port_min = {first_port}\nrtp_port_max = {}\n",
        if nat { "nat = true\n" } else { "" },
        first_port + 99
    )
}

/// The RTP address in the SDP body of a SIP message.
fn sdp_rtp(msg: &str) -> SocketAddr {
    let body = &msg[msg.find("\r\n\r\n").expect("body") + 4..];
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

/// One RTP stream a test sends: from this socket to that address, SSRC, first sequence
/// number, payload mark.
struct Sender<'a> {
    from: &'a UdpSocket,
    to: SocketAddr,
    ssrc: u32,
    seq: u16,
    mark: u8,
}

impl<'a> Sender<'a> {
    fn new(from: &'a UdpSocket, to: SocketAddr, ssrc: u32, seq: u16, mark: u8) -> Self {
        Self {
            from,
            to,
            ssrc,
            seq,
            mark,
        }
    }
}

/// For `count` rounds 20 ms apart, each of `senders` sends its next packet; returns the payload
/// marks each of `listeners` received meanwhile (and a little after, for packets in flight).
fn talk(senders: &mut [Sender<'_>], count: u16, listeners: &[&UdpSocket]) -> Vec<Vec<u8>> {
    let mut heard = vec![Vec::new(); listeners.len()];
    let mut buf = [0u8; 2048];
    let mut listen_until = |until: Instant, heard: &mut Vec<Vec<u8>>| {
        while Instant::now() < until {
            for (i, l) in listeners.iter().enumerate() {
                while let Ok(n) = l.recv(&mut buf) {
                    // RTP only (RTCP's second octet is 200–204).
                    if n > 12 && buf[1] & 0x7f < 100 {
                        heard[i].push(buf[12]);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    for _ in 0..count {
        for s in senders.iter_mut() {
            s.from.send_to(&rtp(s.ssrc, s.seq, s.mark), s.to).unwrap();
            s.seq = s.seq.wrapping_add(1);
        }
        listen_until(Instant::now() + Duration::from_millis(20), &mut heard);
    }
    listen_until(Instant::now() + Duration::from_millis(100), &mut heard);
    heard
}

/// How many of `marks` are `mark`.
fn count(marks: &[u8], mark: u8) -> usize {
    marks.iter().filter(|&&m| m == mark).count()
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

const ATTACK: u8 = 0xEE;

#[test]
fn an_attacker_streaming_at_an_echo_call_gets_nothing_and_is_not_echoed() {
    let d = Daemon::start(&config(31400, 5070, false));
    let ua = TestUa::new(d.sip, "hijack-echo");
    ua.rtp.set_nonblocking(true).unwrap();
    ua.invite("1000");
    let ok = ua.final_response();
    assert_eq!(common::status_of(&ok), 200, "{ok}");
    let media = sdp_rtp(&ok);
    let attacker = socket();

    // 1. Before the caller's first packet: a steady stream from the attacker (and the same from
    //    the caller's own host on another port — no NAT flag, so that is someone else too).
    let heard = talk(
        &mut [Sender::new(&attacker, media, 0xBAD, 1, ATTACK)],
        50,
        &[&attacker, &ua.rtp],
    );
    assert!(heard[0].is_empty(), "the attacker got the echo: {heard:?}");
    assert!(heard[1].is_empty(), "{heard:?}");

    // 2. The caller talks; the attacker goes on alongside. The caller hears its own echo only.
    let heard = talk(
        &mut [
            Sender::new(&ua.rtp, media, 7, 0, 0xA1),
            Sender::new(&attacker, media, 0xBAD, 51, ATTACK),
        ],
        50,
        &[&ua.rtp, &attacker],
    );
    assert!(count(&heard[0], 0xA1) >= 40, "{heard:?}");
    assert_eq!(
        count(&heard[0], ATTACK),
        0,
        "the attack was echoed to the caller"
    );
    assert!(heard[1].is_empty(), "the attacker got audio: {heard:?}");

    // 3. The caller falls silent for 3 s; the attacker even continues the caller's stream
    //    (its SSRC and next sequence numbers). It takes nothing.
    let heard = talk(
        &mut [Sender::new(&attacker, media, 7, 50, ATTACK)],
        150,
        &[&attacker, &ua.rtp],
    );
    assert!(heard[0].is_empty(), "the attacker took the call: {heard:?}");
    assert!(heard[1].is_empty(), "{heard:?}");

    // 4. The caller is back and still heard, and only itself.
    let heard = talk(
        &mut [
            Sender::new(&ua.rtp, media, 7, 200, 0xA2),
            Sender::new(&attacker, media, 7, 1000, ATTACK),
        ],
        30,
        &[&ua.rtp, &attacker],
    );
    assert!(count(&heard[0], 0xA2) >= 20, "{heard:?}");
    assert_eq!(count(&heard[0], ATTACK), 0);
    assert!(heard[1].is_empty(), "{heard:?}");
}

#[test]
fn an_attacker_streaming_at_a_relayed_call_hears_neither_side_and_is_heard_by_neither() {
    // The trunk is a callee in this test: dialerd relays the caller's "9" + 2000 to it.
    let callee_sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    callee_sip
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let callee_rtp = socket();
    let d = Daemon::start(&config(
        31600,
        callee_sip.local_addr().unwrap().port(),
        false,
    ));
    let ua = TestUa::new(d.sip, "hijack-relay");
    ua.rtp.set_nonblocking(true).unwrap();
    ua.invite("92000");

    // The callee answers dialerd's INVITE; dialerd's offer names leg B's media port.
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    let (invite, from) = loop {
        assert!(Instant::now() < deadline, "no INVITE reached the callee");
        if let Ok((n, from)) = callee_sip.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("INVITE ") {
                break (text, from);
            }
        }
    };
    let leg_b = sdp_rtp(&invite);
    let sdp = format!(
        "v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        callee_rtp.local_addr().unwrap().port()
    );
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        ok.push_str(&format!("{name}: {}\r\n", header(&invite, name)));
    }
    ok.push_str(&format!(
        "To: {};tag=callee\r\nContact: <sip:callee@{}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        header(&invite, "To"),
        callee_sip.local_addr().unwrap(),
        sdp.len()
    ));
    callee_sip.send_to(ok.as_bytes(), from).unwrap();
    let answer = ua.final_response();
    assert_eq!(common::status_of(&answer), 200, "{answer}");
    let leg_a = sdp_rtp(&answer);
    let attacker = socket();

    // 1. Before either party's first packet, the attacker streams at both legs' ports.
    let heard = talk(
        &mut [
            Sender::new(&attacker, leg_a, 0xBAD, 1, ATTACK),
            Sender::new(&attacker, leg_b, 0xBAD, 1, ATTACK),
        ],
        50,
        &[&attacker, &ua.rtp, &callee_rtp],
    );
    assert!(heard.iter().all(Vec::is_empty), "{heard:?}");

    // 2. Both parties talk, the attacker goes on: each party hears the other only.
    let heard = talk(
        &mut [
            Sender::new(&ua.rtp, leg_a, 0xA, 0, 0xA1),
            Sender::new(&callee_rtp, leg_b, 0xB, 0, 0xB1),
            Sender::new(&attacker, leg_a, 0xBAD, 51, ATTACK),
            Sender::new(&attacker, leg_b, 0xBAD, 51, ATTACK),
        ],
        50,
        &[&attacker, &ua.rtp, &callee_rtp],
    );
    assert!(heard[0].is_empty(), "the attacker got audio: {heard:?}");
    assert!(count(&heard[1], 0xB1) >= 40, "caller: {heard:?}");
    assert!(count(&heard[2], 0xA1) >= 40, "callee: {heard:?}");
    assert_eq!(count(&heard[1], ATTACK) + count(&heard[2], ATTACK), 0);

    // 3. Both fall silent for 3 s; the attacker continues each party's stream (its SSRC, next
    //    sequence numbers) towards dialerd. Nobody hears anything from it, nor it from anyone.
    let heard = talk(
        &mut [
            Sender::new(&attacker, leg_a, 0xA, 50, ATTACK),
            Sender::new(&attacker, leg_b, 0xB, 50, ATTACK),
        ],
        150,
        &[&attacker, &ua.rtp, &callee_rtp],
    );
    assert!(heard[0].is_empty(), "the attacker took the call: {heard:?}");
    assert_eq!(
        count(&heard[1], ATTACK) + count(&heard[2], ATTACK),
        0,
        "{heard:?}"
    );

    // 4. Both are back and hear each other.
    let heard = talk(
        &mut [
            Sender::new(&ua.rtp, leg_a, 0xA, 300, 0xA2),
            Sender::new(&callee_rtp, leg_b, 0xB, 300, 0xB2),
            Sender::new(&attacker, leg_a, 0xA, 1000, ATTACK),
        ],
        30,
        &[&attacker, &ua.rtp, &callee_rtp],
    );
    assert!(heard[0].is_empty(), "{heard:?}");
    assert!(count(&heard[1], 0xB2) >= 20, "caller: {heard:?}");
    assert!(count(&heard[2], 0xA2) >= 20, "callee: {heard:?}");
    assert_eq!(count(&heard[1], ATTACK) + count(&heard[2], ATTACK), 0);
}

#[test]
fn behind_nat_the_echo_latches_to_the_callers_stream_and_follows_its_new_address() {
    let d = Daemon::start(&config(31500, 5070, true));
    let ua = TestUa::new(d.sip, "latch-nat");
    ua.invite("1000");
    let ok = ua.final_response();
    assert_eq!(common::status_of(&ok), 200, "{ok}");
    let media = sdp_rtp(&ok);
    // The caller's SDP names `ua.rtp`, but its NAT sends from `public`, later from `moved`.
    let public = socket();
    let moved = socket();
    let stray = socket();
    ua.rtp.set_nonblocking(true).unwrap();

    // 1. A steady stream from another address than the SDP's latches: the echo goes there.
    let heard = talk(
        &mut [Sender::new(&public, media, 7, 0, 0xA1)],
        25,
        &[&public, &ua.rtp],
    );
    assert!(count(&heard[0], 0xA1) >= 15, "{heard:?}");
    assert!(
        heard[1].is_empty(),
        "nothing may go to an address that never sent"
    );

    // 2. A stray stream from another port while the caller talks: ignored.
    let heard = talk(
        &mut [
            Sender::new(&public, media, 7, 25, 0xA2),
            Sender::new(&stray, media, 99, 500, ATTACK),
        ],
        25,
        &[&public, &stray],
    );
    assert_eq!(
        count(&heard[0], ATTACK),
        0,
        "stray audio echoed to the caller"
    );
    assert!(
        heard[1].is_empty(),
        "the stray stream took the call: {heard:?}"
    );

    // 3. The caller's NAT binding moves: the same stream now comes from `moved`. Once the old
    //    address has been quiet for 2 s, the echo follows to the new one.
    let heard = talk(
        &mut [Sender::new(&moved, media, 7, 50, 0xB1)],
        150,
        &[&public, &moved],
    );
    let on_new = count(&heard[1], 0xB1);
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
    let d = Daemon::start(&config(31700, 5070, false));
    let ua = TestUa::new(d.sip, "mux-1").rtcp_mux();
    ua.invite("1000");
    let ok = ua.final_response();
    assert_eq!(common::status_of(&ok), 200, "{ok}");
    assert!(
        ok.contains("a=rtcp-mux\r\n"),
        "multiplexing not taken: {ok}"
    );
    let media = sdp_rtp(&ok);
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
