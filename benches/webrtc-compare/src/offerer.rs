//! The client's peers: full-ICE str0m peers offering PCMU and telephone-event as a browser
//! does, sending a PCMU frame every 20 ms once connected and counting what they receive. The
//! same client serves both answerers, so only the answerer differs between runs.

use crate::answer::{FRAME, PTIME};
use crate::signal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use str0m::change::SdpAnswer;
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

/// What the client's peers count.
#[derive(Default)]
pub struct Tally {
    /// Peers whose ICE and DTLS are up.
    pub connected: AtomicU64,
    /// RTP packets received from the answerer.
    pub received: AtomicU64,
    /// RTP packets sent to the answerer.
    pub sent: AtomicU64,
}

/// One offering peer.
pub struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mid: Mid,
}

impl Peer {
    /// Offers to the answerer at `answerer` and applies its answer.
    pub async fn connect(answerer: SocketAddr) -> Result<Peer, String> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let mut cfg = Rtc::builder()
            .clear_codecs()
            .enable_pcmu(true, false)
            .set_rtp_mode(true);
        cfg.codec_config().add_config(
            Pt::from(126),
            None,
            Codec::Tele,
            Frequency::EIGHT_KHZ,
            None,
            FormatParams::default(),
        );
        let mut rtc = cfg.build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| e.to_string())?);
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().ok_or("no offer")?;
        let answer = signal::request(answerer, "OFFER", &offer.to_sdp_string())
            .await
            .map_err(|e| e.to_string())?;
        if let Some(why) = answer.strip_prefix("ERROR") {
            return Err(format!("answerer refused the offer:{why}"));
        }
        let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| e.to_string())?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| e.to_string())?;
        Ok(Peer {
            rtc,
            socket,
            local,
            mid,
        })
    }

    /// Drives the peer until `stop`.
    pub async fn run(mut self, tally: Arc<Tally>, stop: Instant) {
        let mut buf = vec![0u8; 2048];
        let mut next_frame = Instant::now();
        let mut up = false;
        let (mut seq, mut ts) = (0u64, 0u32);
        while Instant::now() < stop {
            let deadline = loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => {
                        let _ = self.socket.try_send_to(&t.contents, t.destination);
                    }
                    Ok(Output::Event(Event::Connected)) => {
                        up = true;
                        next_frame = Instant::now();
                        tally.connected.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Output::Event(Event::RtpPacket(_))) => {
                        tally.received.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Output::Event(_)) => {}
                    Err(_) => return,
                }
            };
            let wake = if up {
                deadline.min(next_frame)
            } else {
                deadline
            }
            .min(stop);
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let Ok((n, source)) = r else { continue };
                    let Ok(contents) = buf[..n].try_into() else { continue };
                    let _ = self.rtc.handle_input(Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents,
                    }));
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            let now = Instant::now();
            if up && now >= next_frame {
                next_frame += PTIME;
                if next_frame < now {
                    next_frame = now + PTIME;
                }
                seq += 1;
                ts = ts.wrapping_add(160);
                if let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(self.mid, None) {
                    tx.write_rtp(RtpWrite::new(
                        Pt::from(0),
                        seq.into(),
                        ts,
                        now,
                        FRAME.to_vec(),
                    ));
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            if self.rtc.handle_input(Input::Timeout(now)).is_err() {
                return;
            }
        }
    }
}
