//! The str0m answerer, built as dialerd's browser leg is (`src/webrtc/peer.rs`): ICE-lite,
//! RTP mode, one DTLS certificate for all legs, PCMU with telephone-event, one UDP socket and
//! one tokio task per leg driving the sans-IO `Rtc`.

use crate::answer::{Counters, FRAME, PTIME};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

/// What all legs share, as in dialerd: the crypto provider and one certificate.
pub struct Shared {
    crypto: Arc<CryptoProvider>,
    cert: DtlsCert,
}

impl Shared {
    /// Makes the certificate.
    pub fn new() -> Self {
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let cert = crypto.dtls_provider.generate_certificate().unwrap();
        Self { crypto, cert }
    }
}

/// Answers `offer` and spawns the leg's driver.
pub fn accept(sh: &Shared, offer: &str, counters: Arc<Counters>) -> Result<String, String> {
    let parsed = SdpOffer::from_sdp_string(offer).map_err(|e| e.to_string())?;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut cfg = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .set_crypto_provider(sh.crypto.clone())
        .set_dtls_cert(sh.cert.clone())
        .clear_codecs();
    cfg.codec_config().add_config(
        Pt::from(0),
        None,
        Codec::PCMU,
        Frequency::EIGHT_KHZ,
        None,
        FormatParams::default(),
    );
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
    let answer = rtc
        .sdp_api()
        .accept_offer(parsed)
        .map_err(|e| e.to_string())?;
    let socket = UdpSocket::from_std(socket).map_err(|e| e.to_string())?;
    tokio::spawn(drive(rtc, socket, local, counters));
    Ok(answer.to_sdp_string())
}

/// The leg's loop: the stack's outputs, datagrams in, its timer, and a PCMU frame every 20 ms
/// once connected.
async fn drive(mut rtc: Rtc, socket: UdpSocket, local: SocketAddr, counters: Arc<Counters>) {
    let mut buf = vec![0u8; 2048];
    let mut mid: Option<Mid> = None;
    let mut up = false;
    let mut next_frame = Instant::now();
    let (mut seq, mut ts) = (0u64, 0u32);
    loop {
        let deadline = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        up = true;
                        next_frame = Instant::now();
                        counters.connected.fetch_add(1, Ordering::Relaxed);
                    }
                    Event::MediaAdded(m) => mid = Some(m.mid),
                    Event::RtpPacket(_) => {
                        counters.received.fetch_add(1, Ordering::Relaxed);
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                    | Event::Closed => return,
                    _ => {}
                },
                Err(_) => return,
            }
        };
        let wake = if up {
            deadline.min(next_frame)
        } else {
            deadline
        };
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, source)) = r else { continue };
                let Ok(contents) = buf[..n].try_into() else { continue };
                let input = Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents,
                });
                let _ = rtc.handle_input(input);
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        if up && now >= next_frame {
            next_frame += PTIME;
            if next_frame < now {
                // Fallen behind (the machine is busy): no burst to catch up.
                next_frame = now + PTIME;
            }
            seq += 1;
            ts = ts.wrapping_add(160);
            let mut api = rtc.direct_api();
            if let Some(tx) = mid.and_then(|m| api.stream_tx_by_mid(m, None)) {
                tx.write_rtp(RtpWrite::new(
                    Pt::from(0),
                    seq.into(),
                    ts,
                    now,
                    FRAME.to_vec(),
                ));
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        if rtc.handle_input(Input::Timeout(now)).is_err() {
            return;
        }
    }
}
