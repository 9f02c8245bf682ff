//! One browser leg: the thin tokio driver around a sans-IO [`Rtc`] (ICE-lite, DTLS-SRTP) —
//! its sockets (one per `webrtc.addresses` entry, from the RTP pool), its timer, and the
//! in-process [`pipe`](crate::media::pipe) that hands the browser's decrypted stream to an
//! ordinary [`MediaLeg`] and what that leg sends to the browser, packet for packet (G.711:
//! payload type, sequence number, timestamp and marker kept; Opus: through the [`Transcoder`];
//! str0m puts on its SSRC and encrypts).
//!
//! The leg ends when the browser closes the connection (DTLS close), stops its ICE consent
//! checks, or when the layer above drops the leg's event channel (logout, DELETE); the
//! ordinary leg then sees its events end, as a SIP leg's BYE ends them.

use super::metrics::WebRtcMetrics;
use super::offer::{self, BrowserCodec, Choice, Header, SeqExtender};
use super::transcode::Transcoder;
use super::WebRtcError;
use crate::media::engine::MediaEngine;
use crate::media::leg::{MediaLeg, MAX_DATAGRAM};
use crate::media::pipe::{self, PipeEnd};
use crate::media::ports::PortLease;
use crate::sip::leg::LegEvent;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;
use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// The answer to a browser's `offer` with `choice` as the only codec (and its
/// telephone-event) and a host candidate at each of `candidates`, and the session that
/// answered it; sans-IO, so the offer's parsing can be fuzzed without sockets.
pub fn answer(
    crypto: Arc<CryptoProvider>,
    cert: DtlsCert,
    choice: Choice,
    offer: &str,
    candidates: &[SocketAddr],
) -> Result<(String, Rtc), WebRtcError> {
    let parsed = SdpOffer::from_sdp_string(offer).map_err(|e| WebRtcError::Offer(e.to_string()))?;
    let mut cfg = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .set_crypto_provider(crypto)
        .set_dtls_cert(cert)
        .clear_codecs();
    let (codec, clock, channels, params) = match choice.codec {
        BrowserCodec::Opus => (
            Codec::Opus,
            Frequency::FORTY_EIGHT_KHZ,
            Some(2),
            FormatParams {
                min_p_time: Some(10),
                use_inband_fec: Some(true),
                ..FormatParams::default()
            },
        ),
        BrowserCodec::G711(k) => (
            match k {
                crate::media::codec::CodecKind::Pcmu => Codec::PCMU,
                crate::media::codec::CodecKind::Pcma => Codec::PCMA,
            },
            Frequency::EIGHT_KHZ,
            None,
            FormatParams::default(),
        ),
    };
    cfg.codec_config()
        .add_config(Pt::from(choice.pt), None, codec, clock, channels, params);
    if let Some(e) = choice.event_pt {
        cfg.codec_config().add_config(
            Pt::from(e),
            None,
            Codec::Tele,
            clock,
            None,
            FormatParams::default(),
        );
    }
    let mut rtc = cfg.build(now());
    for addr in candidates {
        let candidate =
            Candidate::host(*addr, "udp").map_err(|e| WebRtcError::Offer(e.to_string()))?;
        rtc.add_local_candidate(candidate);
    }
    let answer = rtc.sdp_api().accept_offer(parsed)?;
    Ok((answer.to_sdp_string(), rtc))
}

/// The driver's clock; tokio's so paused-time tests drive it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// An answered browser offer, not yet running.
pub struct Peer {
    rtc: Rtc,
    sockets: Vec<(std::net::UdpSocket, SocketAddr)>,
    leases: Vec<PortLease>,
    choice: Choice,
    metrics: WebRtcMetrics,
}

/// A running browser leg as the agent's session uses it.
pub struct Started {
    /// The ordinary media leg carrying the browser's stream.
    pub media: MediaLeg,
    /// Ends (`None`) when the browser leg is gone; dropping it ends the browser leg.
    pub events: mpsc::UnboundedReceiver<LegEvent>,
    /// Fires once ICE and DTLS are up; dropped unfired when the leg ends before.
    pub connected: oneshot::Receiver<()>,
}

impl Peer {
    /// Binds one pool port per address, offers a host candidate on each, and answers `offer`
    /// with `choice` as the only codec (and its telephone-event).
    pub(super) fn accept(
        media: &MediaEngine,
        addresses: &[IpAddr],
        crypto: Arc<CryptoProvider>,
        cert: DtlsCert,
        choice: Choice,
        offer: &str,
        metrics: WebRtcMetrics,
    ) -> Result<(String, Peer), WebRtcError> {
        let mut sockets = Vec::new();
        let mut leases = Vec::new();
        for ip in addresses {
            let pair = media.bind_pair(*ip)?;
            let addr = pair
                .rtp
                .local_addr()
                .map_err(crate::media::MediaError::Io)?;
            sockets.push((pair.rtp, addr));
            // Multiplexed RTCP: the RTCP port stays leased, its socket goes.
            leases.push(pair.lease);
        }
        let candidates: Vec<SocketAddr> = sockets.iter().map(|(_, a)| *a).collect();
        let (answer, rtc) = answer(crypto, cert, choice, offer, &candidates)?;
        Ok((
            answer,
            Peer {
                rtc,
                sockets,
                leases,
                choice,
                metrics,
            },
        ))
    }

    /// Opens the ordinary media leg (piped, in process) the stream is handed to and spawns
    /// the driver.
    pub fn start(self, media: &MediaEngine) -> Result<Started, WebRtcError> {
        let (mut leg, relay) = media.open_piped()?;
        leg.answer(offer::plain_offer(self.choice, pipe::ADDR).as_bytes())?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (connected_tx, connected) = oneshot::channel();
        let mut sockets = Vec::new();
        for (s, addr) in self.sockets {
            sockets.push((
                UdpSocket::from_std(s).map_err(crate::media::MediaError::Io)?,
                addr,
            ));
        }
        let opus = match self.choice.codec {
            BrowserCodec::Opus => Some(Transcoder::new(self.choice)?),
            BrowserCodec::G711(_) => None,
        };
        let driver = Driver {
            opus,
            payload: Vec::with_capacity(MAX_DATAGRAM),
            engine: media.clone(),
            rtc: self.rtc,
            sockets,
            leases: self.leases,
            relay,
            mid: None,
            seq: SeqExtender::default(),
            ssrc: crate::sip::id::random_u32(),
            metrics: self.metrics,
        };
        tokio::spawn(driver.run(connected_tx, events_tx));
        Ok(Started {
            media: leg,
            events,
            connected,
        })
    }
}

struct Driver {
    /// The Opus boundary, when the browser speaks Opus.
    opus: Option<Transcoder>,
    /// The payload the transcoder leaves.
    payload: Vec<u8>,
    engine: MediaEngine,
    rtc: Rtc,
    sockets: Vec<(UdpSocket, SocketAddr)>,
    leases: Vec<PortLease>,
    /// The driver's end of the ordinary leg's pipe.
    relay: PipeEnd,
    mid: Option<Mid>,
    seq: SeqExtender,
    /// The SSRC of the plain stream handed to the ordinary leg.
    ssrc: u32,
    metrics: WebRtcMetrics,
}

/// Waits until one of `sockets` has a datagram; reads it into `buf`: (socket index, length,
/// source).
async fn recv_any(
    sockets: &[(UdpSocket, SocketAddr)],
    buf: &mut [u8],
) -> (usize, std::io::Result<(usize, SocketAddr)>) {
    std::future::poll_fn(|cx| {
        for (i, (s, _)) in sockets.iter().enumerate() {
            let mut rb = tokio::io::ReadBuf::new(buf);
            if let Poll::Ready(r) = s.poll_recv_from(cx, &mut rb) {
                return Poll::Ready((i, r.map(|from| (rb.filled().len(), from))));
            }
        }
        Poll::Pending
    })
    .await
}

impl Driver {
    async fn run(
        mut self,
        connected: oneshot::Sender<()>,
        events: mpsc::UnboundedSender<LegEvent>,
    ) {
        let mut connected = Some(connected);
        let mut buf = vec![0u8; 2048];
        let mut relayed = vec![0u8; MAX_DATAGRAM];
        let mut out = Vec::with_capacity(256);
        // One timer for the leg's life, moved to each wake-up the stack asks for: a new one
        // per turn cost a timer-wheel insertion and removal per packet.
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        let (why, from_above) = loop {
            let deadline = match self.drain(&mut connected, &mut out) {
                Ok(t) => tokio::time::Instant::from_std(t),
                Err(why) => break (why, false),
            };
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            tokio::select! {
                _ = events.closed() => break ("hung up".to_string(), true),
                (i, r) = recv_any(&self.sockets, &mut buf) => {
                    let Ok((n, source)) = r else { continue };
                    let Ok(contents) = buf[..n].try_into() else { continue };
                    let input = Input::Receive(now(), Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.sockets[i].1,
                        contents,
                    });
                    if let Err(e) = self.rtc.handle_input(input) {
                        tracing::debug!(error = %e, "browser datagram refused");
                    }
                }
                _ = self.relay.readable() => {
                    while let Some(n) = self.relay.try_recv(&mut relayed) {
                        self.send_to_browser(&relayed[..n]);
                    }
                }
                _ = &mut timer => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now())) {
                        break (format!("webrtc: {e}"), false);
                    }
                }
            }
        };
        if connected.is_none() {
            self.metrics.legs_active.dec();
        } else if from_above {
            self.metrics.connect_failed_ended.inc();
        } else {
            self.metrics.connect_failed_error.inc();
        }
        tracing::info!(reason = %why, "browser audio leg ended");
        self.rtc.disconnect();
        // What the close leaves to send (DTLS close_notify) goes out best effort.
        while let Ok(Output::Transmit(t)) = self.rtc.poll_output() {
            self.transmit(&t.contents, t.source, t.destination);
        }
        // The sockets close before their ports go back to the pool.
        self.sockets.clear();
        self.leases.clear();
        self.engine.update_free_ports();
    }

    /// Carries out the stack's outputs until it wants waking at the returned instant; `Err`
    /// when the leg is over.
    fn drain(
        &mut self,
        connected: &mut Option<oneshot::Sender<()>>,
        out: &mut Vec<u8>,
    ) -> Result<Instant, String> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Ok(t),
                Ok(Output::Transmit(t)) => self.transmit(&t.contents, t.source, t.destination),
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        tracing::info!("browser audio leg connected");
                        if let Some(c) = connected.take() {
                            self.metrics.legs_active.inc();
                            let _ = c.send(());
                        }
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Err("ICE consent lost".into())
                    }
                    Event::Closed => return Err("closed by the browser".into()),
                    Event::MediaAdded(m) => self.mid = Some(m.mid),
                    Event::RtpPacket(p) => {
                        let h = Header {
                            marker: p.header.marker,
                            pt: *p.header.payload_type,
                            seq: p.header.sequence_number,
                            timestamp: p.header.timestamp,
                        };
                        match &mut self.opus {
                            None => offer::write(h, self.ssrc, &p.payload, out),
                            Some(t) => {
                                let (relay, ssrc) = (&self.relay, self.ssrc);
                                // `out` is free until the packet itself is written into it.
                                let concealed = |h, payload: &[u8]| {
                                    offer::write(h, ssrc, payload, out);
                                    relay.send(out);
                                };
                                match t.from_browser(h, &p.payload, &mut self.payload, concealed) {
                                    Some(h) => offer::write(h, self.ssrc, &self.payload, out),
                                    None => continue,
                                }
                            }
                        }
                        self.relay.send(out);
                    }
                    _ => {}
                },
                Err(e) => return Err(format!("webrtc: {e}")),
            }
        }
    }

    fn transmit(&self, datagram: &[u8], source: SocketAddr, to: SocketAddr) {
        if let Some((s, _)) = self.sockets.iter().find(|(_, a)| *a == source) {
            let _ = s.try_send_to(datagram, to);
        }
    }

    /// One packet of the ordinary leg's stream, encrypted to the browser once it is up.
    fn send_to_browser(&mut self, datagram: &[u8]) {
        let (Some(mid), Some((h, range))) = (self.mid, offer::parse(datagram)) else {
            return;
        };
        let (h, payload) = match &mut self.opus {
            None => (h, &datagram[range]),
            Some(t) => match t.to_browser(h, &datagram[range], &mut self.payload) {
                Some(h) => (h, &self.payload[..]),
                None => return,
            },
        };
        let seq = self.seq.extend(h.seq);
        let now = now();
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return;
        };
        tx.write_rtp(
            RtpWrite::new(Pt::from(h.pt), seq.into(), h.timestamp, now, payload).marker(h.marker),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MediaConfig, WebRtcConfig};
    use crate::webrtc::WebRtc;
    use std::time::Duration;
    use str0m::change::SdpAnswer;
    use str0m::media::{Direction, MediaKind};

    fn engine(min: u16) -> MediaEngine {
        let cfg = MediaConfig {
            rtp_port_min: min,
            rtp_port_max: min + 20,
            ..MediaConfig::default()
        };
        MediaEngine::new(&cfg, &prometheus::Registry::new()).unwrap()
    }

    /// A browser stand-in: a full-ICE str0m peer offering PCMU and telephone-events.
    struct Browser {
        rtc: Rtc,
        socket: UdpSocket,
        local: SocketAddr,
        mid: Mid,
        up: bool,
    }

    impl Browser {
        async fn offer() -> (Browser, String, str0m::change::SdpPendingOffer) {
            Browser::offer_codec(false).await
        }

        /// Offers Opus (111) with telephone-event/48000 (110), as Chromium does, when `opus`;
        /// PCMU with telephone-event/8000 (126) otherwise.
        async fn offer_codec(opus: bool) -> (Browser, String, str0m::change::SdpPendingOffer) {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let local = socket.local_addr().unwrap();
            let mut cfg = Rtc::builder()
                .clear_codecs()
                .enable_pcmu(!opus, false)
                .enable_opus(opus, false)
                .set_rtp_mode(true);
            let (event, clock) = if opus {
                (110, Frequency::FORTY_EIGHT_KHZ)
            } else {
                (126, Frequency::EIGHT_KHZ)
            };
            cfg.codec_config().add_config(
                Pt::from(event),
                None,
                Codec::Tele,
                clock,
                None,
                FormatParams::default(),
            );
            let mut rtc = cfg.build(now());
            rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
            let mut change = rtc.sdp_api();
            let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
            let (offer, pending) = change.apply().unwrap();
            let b = Browser {
                rtc,
                socket,
                local,
                mid,
                up: false,
            };
            (b, offer.to_sdp_string(), pending)
        }

        /// Runs the peer until `until` holds for what it received, or `limit` passes; sends
        /// `frames` (payload type, payload) one every 20 ms once connected.
        async fn run(
            &mut self,
            limit: Duration,
            mut frames: Vec<(u8, Vec<u8>)>,
            mut until: impl FnMut(&[str0m::rtp::RtpPacket], bool) -> bool,
        ) -> (Vec<str0m::rtp::RtpPacket>, bool) {
            let deadline = now() + limit;
            let mut got = Vec::new();
            let mut buf = vec![0u8; 2048];
            let mut next = now();
            let mut seq = 0u64;
            while now() < deadline && !until(&got, self.up) {
                let wake = loop {
                    match self.rtc.poll_output().unwrap() {
                        Output::Timeout(t) => break t,
                        Output::Transmit(t) => {
                            let _ = self.socket.send_to(&t.contents, t.destination).await;
                        }
                        Output::Event(Event::Connected) => self.up = true,
                        Output::Event(Event::RtpPacket(p)) => got.push(p),
                        Output::Event(_) => {}
                    }
                };
                let wake = wake.min(next).min(deadline);
                let wait = wake.saturating_duration_since(now());
                match tokio::time::timeout(wait, self.socket.recv_from(&mut buf)).await {
                    Ok(Ok((n, source))) => {
                        let _ = self.rtc.handle_input(Input::Receive(
                            now(),
                            Receive {
                                proto: Protocol::Udp,
                                source,
                                destination: self.local,
                                contents: buf[..n].try_into().unwrap(),
                            },
                        ));
                    }
                    _ => {
                        if self.up && now() >= next && !frames.is_empty() {
                            next += Duration::from_millis(20);
                            let (pt, payload) = frames.remove(0);
                            seq += 1;
                            let mut api = self.rtc.direct_api();
                            let tx = api.stream_tx_by_mid(self.mid, None).unwrap();
                            tx.write_rtp(RtpWrite::new(
                                Pt::from(pt),
                                seq.into(),
                                160 * seq as u32,
                                now(),
                                payload,
                            ));
                        }
                        let _ = self.rtc.handle_input(Input::Timeout(now()));
                    }
                }
            }
            (got, self.up)
        }
    }

    #[tokio::test]
    async fn an_offer_is_answered_without_sockets_and_a_broken_one_is_refused() {
        let webrtc = WebRtc::new(&WebRtcConfig::default()).unwrap();
        let (_browser, offer, _pending) = Browser::offer().await;
        let at: SocketAddr = "192.0.2.7:40002".parse().unwrap();
        let prefs = [
            crate::media::codec::CodecKind::Pcma,
            crate::media::codec::CodecKind::Pcmu,
        ];
        let answer = webrtc.answer_offer(&offer, &prefs, &[at]).unwrap();
        assert!(
            answer.contains("a=ice-lite") && answer.contains("PCMU/8000"),
            "{answer}"
        );
        assert!(answer.contains("192.0.2.7 40002"), "{answer}");
        for broken in [
            String::new(),
            offer.replace("a=fingerprint", "a=fingerprin"),
            offer.replace("m=audio", "m=video"),
            offer[..offer.len() / 2].to_string(),
        ] {
            assert!(
                matches!(
                    webrtc.answer_offer(&broken, &prefs, &[at]),
                    Err(WebRtcError::Offer(_) | WebRtcError::Rtc(_))
                ),
                "{broken}"
            );
        }
    }

    #[tokio::test]
    async fn a_browser_stream_is_relayed_both_ways_as_plain_rtp_and_the_leg_ends_with_its_events() {
        let media = engine(41000);
        let webrtc = WebRtc::new(&WebRtcConfig::default()).unwrap();
        let (mut browser, offer, pending) = Browser::offer().await;
        let (answer, peer) = webrtc.accept(&media, &offer).unwrap();
        assert!(answer.contains("a=ice-lite"), "{answer}");
        assert!(answer.contains("PCMU/8000") && answer.contains("telephone-event/8000"));
        assert!(answer.contains("a=candidate:") && answer.contains("127.0.0.1 410"));
        let free = media.metrics().ports_free.get();
        let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        browser
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .unwrap();
        let Started {
            media: mut leg,
            events,
            connected,
        } = peer.start(&media).unwrap();
        assert_eq!(leg.codec(), Some(crate::media::codec::CodecKind::Pcmu));
        assert_eq!(
            media.metrics().ports_free.get(),
            free,
            "the ordinary leg is fed in process: it takes no port of its own"
        );

        // The browser connects and speaks: voice, then an RFC 4733 event.
        let (_, up) = browser
            .run(Duration::from_secs(5), vec![], |_, up| up)
            .await;
        assert!(up, "the browser stand-in connected");
        connected.await.expect("the leg says it is up");
        let frames = vec![
            (0, vec![0x11; 160]),
            (0, vec![0x22; 160]),
            (126, vec![5, 0x8a, 0, 160]),
        ];
        browser
            .run(Duration::from_millis(300), frames, |_, _| false)
            .await;
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut plain = Vec::new();
        while let Some((n, _)) = leg.recv_rtp(&mut buf) {
            plain.push(offer::parse(&buf[..n]).map(|(h, r)| (h.pt, buf[r].to_vec())));
        }
        assert_eq!(
            plain,
            vec![
                Some((0, vec![0x11; 160])),
                Some((0, vec![0x22; 160])),
                Some((126, vec![5, 0x8a, 0, 160]))
            ]
        );

        // What the leg sends reaches the browser with its sequence numbers and timestamps.
        let mut out = Vec::new();
        for (i, seq) in [65534u16, 65535, 0].into_iter().enumerate() {
            let h = Header {
                marker: i == 0,
                pt: 0,
                seq,
                timestamp: 1000 + 160 * i as u32,
            };
            offer::write(h, 42, &[0x7f; 160], &mut out);
            leg.send_rtp(&out);
        }
        let (got, _) = browser
            .run(Duration::from_secs(3), vec![], |got, _| got.len() >= 3)
            .await;
        let seen: Vec<(u16, u32, bool)> = got
            .iter()
            .map(|p| {
                (
                    p.header.sequence_number,
                    p.header.timestamp,
                    p.header.marker,
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![(65534, 1000, true), (65535, 1160, false), (0, 1320, false)]
        );

        // Dropping the leg's events ends the browser leg and gives its ports back.
        drop(events);
        drop(leg);
        let deadline = now() + Duration::from_secs(3);
        while media.metrics().ports_free.get() <= free {
            assert!(now() < deadline, "the browser leg kept its ports");
            browser
                .run(Duration::from_millis(50), vec![], |_, _| false)
                .await;
        }
    }

    #[tokio::test]
    async fn an_opus_browser_is_transcoded_both_ways_with_its_48khz_events() {
        let media = engine(41200);
        let webrtc = WebRtc::new(&WebRtcConfig::default()).unwrap();
        let (mut browser, offer, pending) = Browser::offer_codec(true).await;
        let (answer, peer) = webrtc.accept(&media, &offer).unwrap();
        assert!(answer.contains("opus/48000/2"), "{answer}");
        assert!(answer.contains("telephone-event/48000"), "{answer}");
        assert!(!answer.contains("PCMU"), "{answer}");
        let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        browser
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .unwrap();
        let Started {
            media: mut leg,
            events: _events,
            connected,
        } = peer.start(&media).unwrap();
        // The media leg carries media.codecs' first G.711.
        assert_eq!(leg.codec(), Some(crate::media::codec::CodecKind::Pcmu));
        let (_, up) = browser
            .run(Duration::from_secs(5), vec![], |_, up| up)
            .await;
        assert!(up);
        connected.await.unwrap();

        // Opus voice (20 ms at 48 kHz) and a 20 ms event from the browser.
        let enc = audiopus::coder::Encoder::new(
            audiopus::SampleRate::Hz48000,
            audiopus::Channels::Mono,
            audiopus::Application::Voip,
        )
        .unwrap();
        let mut opus = vec![0u8; 1276];
        let n = enc.encode(&[0i16; 960], &mut opus).unwrap();
        opus.truncate(n);
        let frames = vec![(111, opus.clone()), (110, vec![5, 0x8a, 0x03, 0xc0])];
        browser
            .run(Duration::from_millis(300), frames, |_, _| false)
            .await;
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut plain = Vec::new();
        while let Some((n, _)) = leg.recv_rtp(&mut buf) {
            plain.push(offer::parse(&buf[..n]).map(|(h, r)| (h.pt, r.len(), buf[r].to_vec())));
        }
        assert_eq!(plain.len(), 2, "{plain:?}");
        assert_eq!(plain[0].as_ref().map(|p| (p.0, p.1)), Some((0, 160)));
        assert_eq!(
            plain[1],
            Some((offer::LEG_EVENT_PT, 4, vec![5, 0x8a, 0, 160]))
        );

        // The leg's PCMU and its 8 kHz event reach the browser as Opus and a 48 kHz event.
        let mut out = Vec::new();
        let sends = [
            (0u8, vec![0xff; 160]),
            (offer::LEG_EVENT_PT, vec![7, 0x0a, 0, 160]),
        ];
        for (i, (pt, payload)) in sends.iter().enumerate() {
            let h = Header {
                marker: false,
                pt: *pt,
                seq: 100 + i as u16,
                timestamp: 8000 + 160 * i as u32,
            };
            offer::write(h, 42, payload, &mut out);
            leg.send_rtp(&out);
        }
        let (got, _) = browser
            .run(Duration::from_secs(3), vec![], |got, _| got.len() >= 2)
            .await;
        let seen: Vec<(u8, u32)> = got
            .iter()
            .map(|p| (*p.header.payload_type, p.header.timestamp))
            .collect();
        assert_eq!(seen, vec![(111, 48_000), (110, 48_960)]);
        let mut dec =
            audiopus::coder::Decoder::new(audiopus::SampleRate::Hz48000, audiopus::Channels::Mono)
                .unwrap();
        let mut pcm = [0i16; 5760];
        let n = dec
            .decode(Some(&got[0].payload[..]), &mut pcm[..], false)
            .unwrap();
        assert_eq!(n, 960, "20 ms of Opus at 48 kHz");
        assert_eq!(got[1].payload[..], [7, 0x0a, 0x03, 0xc0]);
    }

    #[tokio::test]
    async fn a_browser_that_closes_ends_the_leg_events() {
        let media = engine(41100);
        let webrtc = WebRtc::new(&WebRtcConfig::default()).unwrap();
        let (mut browser, offer, pending) = Browser::offer().await;
        let (answer, peer) = webrtc.accept(&media, &offer).unwrap();
        let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        browser
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .unwrap();
        let mut started = peer.start(&media).unwrap();
        browser
            .run(Duration::from_secs(5), vec![], |_, up| up)
            .await;
        started.connected.await.unwrap();
        browser.rtc.close().unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                tokio::select! {
                    ev = started.events.recv() => break ev.is_none(),
                    _ = browser.run(Duration::from_millis(50), vec![], |_, _| false) => {}
                }
            }
        })
        .await;
        assert_eq!(
            ended,
            Ok(true),
            "the leg's events end when the browser closes"
        );
    }
}
