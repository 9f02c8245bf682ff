//! A minimal SIP user agent on real UDP sockets for tests: INVITE with a PCMU offer, ACK, RTP
//! collection, BYE answered.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A minimal SIP UA on UDP: INVITE with a PCMU offer, ACK, answer BYE.
pub struct TestUa {
    /// SIP socket.
    pub sip: UdpSocket,
    /// RTP socket (its port is in the offer).
    pub rtp: UdpSocket,
    target: SocketAddr,
    call_id: String,
    /// Voice codec offered: (payload type, rtpmap name).
    codec: (u8, &'static str),
    /// The 2xx to our INVITE, once answered: the dialog and the far RTP address.
    answer: Mutex<Option<String>>,
    /// Whether the offer says `a=rtcp-mux` (RFC 5761).
    rtcp_mux: bool,
    /// The number the INVITE called (for a CANCEL).
    number: Mutex<String>,
    /// The offer's transport and `a=crypto` lines (RFC 4568), as written after `m=audio PORT`.
    media_proto: (&'static str, &'static str),
}

impl TestUa {
    /// A UA that will call `target` with Call-ID `call_id`.
    pub fn new(target: SocketAddr, call_id: &str) -> Self {
        Self::on(UdpSocket::bind("127.0.0.1:0").unwrap(), target, call_id)
    }

    /// A UA sending from `sip` (a socket bound beforehand, e.g. at a trunk's address).
    pub fn on(sip: UdpSocket, target: SocketAddr, call_id: &str) -> Self {
        sip.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        rtp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Self {
            sip,
            rtp,
            target,
            call_id: call_id.into(),
            codec: (0, "PCMU"),
            answer: Mutex::new(None),
            rtcp_mux: false,
            number: Mutex::new(String::new()),
            media_proto: ("RTP/AVP", ""),
        }
    }

    /// The same UA offering `proto` (e.g. `RTP/SAVP`) with an SDES key (`a=crypto`).
    pub fn sdes(mut self, proto: &'static str) -> Self {
        self.media_proto = (
            proto,
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\r\n",
        );
        self
    }

    /// The same UA offering RTCP multiplexed on its RTP port (`a=rtcp-mux`).
    pub fn rtcp_mux(mut self) -> Self {
        self.rtcp_mux = true;
        self
    }

    /// The same UA offering PCMA (payload type 8) instead of PCMU.
    pub fn pcma(mut self) -> Self {
        self.codec = (8, "PCMA");
        self
    }

    /// Sends the INVITE to `number`.
    pub fn invite(&self, number: &str) {
        self.invite_with(number, "")
    }

    /// Sends the INVITE to `number` with `extra` header lines (each ending in CRLF).
    pub fn invite_with(&self, number: &str, extra: &str) {
        *self.number.lock().unwrap() = number.to_string();
        let local = self.sip.local_addr().unwrap();
        let sdp = format!(
            "v=0\r\no=ua 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} {proto} {pt} 101\r\na=rtpmap:{pt} {name}/8000\r\na=rtpmap:101 telephone-event/8000\r\n{mux}{crypto}",
            mux = if self.rtcp_mux { "a=rtcp-mux\r\n" } else { "" },
            proto = self.media_proto.0,
            crypto = self.media_proto.1,
            port = self.rtp.local_addr().unwrap().port(),
            pt = self.codec.0,
            name = self.codec.1,
        );
        let msg = format!(
            "INVITE sip:{number}@{t} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{c}-1;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:ua@{local}>;tag=ua-{c}\r\nTo: <sip:{number}@{t}>\r\n\
             Call-ID: {c}\r\nCSeq: 1 INVITE\r\nContact: <sip:ua@{local}>\r\n{extra}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len(),
            t = self.target,
            c = self.call_id,
        );
        self.sip.send_to(msg.as_bytes(), self.target).unwrap();
    }

    /// The final response to the INVITE (ACKed when 2xx).
    pub fn final_response(&self) -> String {
        let text = self.final_response_without_ack();
        if super::status_of(&text) < 300 {
            self.ack(&text);
        }
        text
    }

    /// The final response to the INVITE, not ACKed: a caller whose ACK is late or lost.
    pub fn final_response_without_ack(&self) -> String {
        self.final_response_within(Duration::from_secs(10))
            .expect("no final response to the INVITE")
    }

    /// The final response to the INVITE within `wait`, not ACKed.
    pub fn final_response_within(&self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 8192];
        while Instant::now() < deadline {
            let Ok(n) = self.sip.recv(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let code = super::status_of(&text);
            // The CANCEL's own 200 is not the INVITE's answer.
            if code < 200 || header(&text, "CSeq").ends_with("CANCEL") {
                continue;
            }
            return Some(text);
        }
        None
    }

    /// ACKs the 2xx `ok`; the call is then up.
    pub fn ack(&self, ok: &str) {
        *self.answer.lock().unwrap() = Some(ok.to_string());
        let local = self.sip.local_addr().unwrap();
        let to = header(ok, "To");
        let msg = format!(
            "ACK sip:ua@{t} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{c}-ack\r\n\
             Max-Forwards: 70\r\nFrom: <sip:ua@{local}>;tag=ua-{c}\r\nTo: {to}\r\nCall-ID: {c}\r\n\
             CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            t = self.target,
            c = self.call_id,
        );
        self.sip.send_to(msg.as_bytes(), self.target).unwrap();
    }

    /// RTP packets received until the daemon's BYE (answered 200), or `limit`.
    pub fn receive_until_bye(&self, limit: Duration) -> (Vec<Vec<u8>>, bool) {
        let (packets, bye) = self.receive_timed(limit);
        (packets.into_iter().map(|(_, p)| p).collect(), bye)
    }

    /// Where the answer's SDP says to send RTP.
    pub fn remote_rtp(&self) -> SocketAddr {
        let answer = self.answer.lock().unwrap();
        let ok = answer.as_deref().expect("not answered");
        let ip = ok
            .lines()
            .find_map(|l| l.strip_prefix("c=IN IP4 "))
            .expect("no c= line");
        let port = ok
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|m| m.split(' ').next())
            .expect("no m= line");
        format!("{}:{}", ip.trim(), port).parse().unwrap()
    }

    /// Sends `packets` RTP packets of `payloads` in turn (each 20 ms of audio in the offered
    /// codec), one every 20 ms, on one stream with SSRC `ssrc`.
    pub fn send_voice(&self, ssrc: u32, payloads: &[Vec<u8>], packets: usize) {
        let to = self.remote_rtp();
        let start = Instant::now();
        for i in 0..packets {
            let at = start + Duration::from_millis(20 * i as u64);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            let payload = &payloads[i % payloads.len()];
            let p = super::rtp::packet(self.codec.0, i as u16, (i * 160) as u32, ssrc, payload);
            self.rtp.send_to(&p, to).unwrap();
        }
    }

    /// Gives up the unanswered INVITE: CANCEL (same branch), then waits for the 487 and ACKs it.
    pub fn cancel(&self) {
        let local = self.sip.local_addr().unwrap();
        let msg = format!(
            "CANCEL sip:{n}@{t} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{c}-1;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:ua@{local}>;tag=ua-{c}\r\nTo: <sip:{n}@{t}>\r\n\
             Call-ID: {c}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
            n = self.number.lock().unwrap(),
            t = self.target,
            c = self.call_id,
        );
        self.sip.send_to(msg.as_bytes(), self.target).unwrap();
        let text = self.final_response_without_ack();
        assert_eq!(super::status_of(&text), 487, "{text}");
        let ack = format!(
            "ACK sip:{n}@{t} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{c}-1;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:ua@{local}>;tag=ua-{c}\r\nTo: {to}\r\n\
             Call-ID: {c}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            n = self.number.lock().unwrap(),
            t = self.target,
            c = self.call_id,
            to = header(&text, "To"),
        );
        self.sip.send_to(ack.as_bytes(), self.target).unwrap();
    }

    /// Hangs up the answered call: BYE, then waits for its 200.
    pub fn bye(&self) {
        let local = self.sip.local_addr().unwrap();
        let to = header(
            self.answer
                .lock()
                .unwrap()
                .as_deref()
                .expect("not answered"),
            "To",
        );
        let msg = format!(
            "BYE sip:ua@{t} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{c}-bye\r\n\
             Max-Forwards: 70\r\nFrom: <sip:ua@{local}>;tag=ua-{c}\r\nTo: {to}\r\nCall-ID: {c}\r\n\
             CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            t = self.target,
            c = self.call_id,
        );
        self.sip.send_to(msg.as_bytes(), self.target).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 8192];
        while Instant::now() < deadline {
            if let Ok(n) = self.sip.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.starts_with("SIP/2.0 200") && header(&text, "CSeq").ends_with("BYE") {
                    return;
                }
            }
        }
        panic!("no 200 to our BYE");
    }

    /// Like [`receive_until_bye`](Self::receive_until_bye), each packet with its arrival time.
    pub fn receive_timed(&self, limit: Duration) -> (Vec<super::rtp::Timed>, bool) {
        self.rtp
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        self.sip
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        // Only what the daemon's media port sends: a port this UA took may have been another
        // test's a moment ago, whose peers still send to it (a trunk's OPTIONS, say).
        let answered = self.answer.lock().unwrap().is_some();
        let from_daemon = answered.then(|| self.remote_rtp());
        let deadline = Instant::now() + limit;
        let mut packets = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            while let Ok((n, from)) = self.rtp.recv_from(&mut buf) {
                if from_daemon.is_some_and(|d| d != from) {
                    continue;
                }
                packets.push((Instant::now(), buf[..n].to_vec()));
            }
            if let Ok((n, from)) = self.sip.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.starts_with("BYE ") {
                    let ok = super::ok_response(&text);
                    self.sip.send_to(ok.as_bytes(), from).unwrap();
                    return (packets, true);
                }
            }
        }
        (packets, false)
    }
}

/// A header value of a SIP message (first occurrence).
pub fn header(msg: &str, name: &str) -> String {
    msg.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}
