//! A called phone for tests: a UAS on real UDP sockets that a daemon's trunk points at. It
//! answers (recording the RTP it hears until BYE), is busy, or rings until cancelled. And a
//! caller-ID line verified with such a phone as the carrier's far end.

use super::ua::header;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// What the phone does with the next INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with a PCMU answer; RTP is collected until BYE.
    Answer,
    /// 486 Busy Here.
    Busy,
    /// 180, then waits for CANCEL (200 + 487).
    RingForever,
}

/// What happened on one call.
#[derive(Debug, Default)]
pub struct Heard {
    /// The INVITE as received.
    pub invite: String,
    /// RTP payloads received, in arrival order.
    pub payloads: Vec<Vec<u8>>,
    /// The call ended with BYE (answered) or CANCEL (ringing).
    pub ended: bool,
}

/// The phone: its SIP and RTP sockets.
pub struct Phone {
    /// SIP socket (the trunk's port).
    pub sip: UdpSocket,
    rtp: UdpSocket,
}

impl Phone {
    /// A phone on loopback ports.
    pub fn new() -> Self {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        sip.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        rtp.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        Self { sip, rtp }
    }

    /// The SIP port a trunk should point at.
    pub fn port(&self) -> u16 {
        self.sip.local_addr().unwrap().port()
    }

    fn reply(&self, req: &str, to: SocketAddr, status: &str, extra: &str, body: &str) {
        let mut msg = format!("SIP/2.0 {status}\r\n");
        for name in ["Via", "From", "Call-ID", "CSeq"] {
            msg.push_str(&format!("{name}: {}\r\n", header(req, name)));
        }
        let to_h = header(req, "To");
        if to_h.contains("tag=") {
            msg.push_str(&format!("To: {to_h}\r\n"));
        } else {
            msg.push_str(&format!("To: {to_h};tag=phone1\r\n"));
        }
        msg.push_str(extra);
        if !body.is_empty() {
            msg.push_str("Content-Type: application/sdp\r\n");
        }
        msg.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.sip.send_to(msg.as_bytes(), to).unwrap();
    }

    /// Serves one call with `behaviour`, for at most `limit`.
    pub fn serve(&self, behaviour: Behaviour, limit: Duration) -> Heard {
        let deadline = Instant::now() + limit;
        let mut heard = Heard::default();
        let mut buf = [0u8; 4096];
        let local = self.sip.local_addr().unwrap();
        while Instant::now() < deadline {
            while let Ok(n) = self.rtp.recv(&mut buf) {
                if n > 12 {
                    heard.payloads.push(buf[12..n].to_vec());
                }
            }
            let Ok((n, from)) = self.sip.recv_from(&mut buf) else {
                continue;
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let method = msg.split(' ').next().unwrap_or("");
            match method {
                "INVITE" if heard.invite.is_empty() => {
                    heard.invite = msg.clone();
                    match behaviour {
                        Behaviour::Answer => {
                            let sdp = format!(
                                "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                                 t=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
                                self.rtp.local_addr().unwrap().port()
                            );
                            let contact = format!("Contact: <sip:phone@{local}>\r\n");
                            self.reply(&msg, from, "200 OK", &contact, &sdp);
                        }
                        Behaviour::Busy => self.reply(&msg, from, "486 Busy Here", "", ""),
                        Behaviour::RingForever => self.reply(&msg, from, "180 Ringing", "", ""),
                    }
                }
                "BYE" | "CANCEL" => {
                    self.reply(&msg, from, "200 OK", "", "");
                    if method == "CANCEL" {
                        self.reply(&heard.invite, from, "487 Request Terminated", "", "");
                    }
                    heard.ended = true;
                    // A little longer for the ACK of the 487 and late RTP.
                    let until = Instant::now() + Duration::from_millis(200);
                    while Instant::now() < until {
                        let _ = self.sip.recv_from(&mut buf);
                    }
                    return heard;
                }
                "ACK" if behaviour == Behaviour::Busy => return heard,
                _ => {}
            }
        }
        heard
    }
}

/// A caller-ID line created with `body` (its `number` among the fields) and verified as a
/// carrier would: its verification call rings `far` until a call back to `access` through
/// `sip`, diverted from the line's number, answers it (603). Its id.
pub fn verified_line(
    admin: &super::api::Api,
    far: &Phone,
    sip: SocketAddr,
    body: serde_json::Value,
    access: &str,
) -> i64 {
    let number = body["number"].as_str().expect("a line number").to_string();
    let id = admin.ok("POST", "/api/v1/lines", Some(body))["id"]
        .as_i64()
        .unwrap();
    admin.ok("POST", &format!("/api/v1/lines/{id}/verification"), None);
    std::thread::scope(|s| {
        let rings = s.spawn(|| far.serve(Behaviour::RingForever, Duration::from_secs(15)));
        // Until the verification call is out, a call back is no verification's (404).
        for tries in 0.. {
            std::thread::sleep(Duration::from_millis(300));
            let back = super::ua::TestUa::new(sip, &format!("verify-back-{tries}"));
            back.invite_with(
                access,
                &format!("Diversion: <sip:{number}@carrier.example>;reason=unconditional\r\n"),
            );
            let code = super::status_of(&back.final_response());
            if code == 603 {
                break;
            }
            assert!(code == 404 && tries < 20, "{code} after {tries} tries");
        }
        assert!(rings.join().unwrap().ended);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin.ok("GET", &format!("/api/v1/lines/{id}"), None)["status"] != "verified" {
        assert!(Instant::now() < deadline, "line not verified");
        std::thread::sleep(Duration::from_millis(50));
    }
    id
}
