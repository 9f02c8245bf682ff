//! The webrtc-rs answerer (`webrtc` 0.21, its default tokio runtime and ring crypto), set up
//! as close to dialerd's leg as its API allows: ICE-lite, one host candidate on loopback, one
//! DTLS certificate for all legs, PCMU with telephone-event, the default interceptors (RTCP
//! reports, NACK, TWCC as a browser-facing server would keep them), a `TrackLocalStaticRTP`
//! written every 20 ms by a task of the leg, and a task reading the remote track.

use crate::answer::{Counters, FRAME, PTIME};
use rtc::crypto::SignatureScheme;
use rtc::peer_connection::certificate::CertificateParams;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCCertificate, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};
use webrtc::runtime::{Runtime, TokioRuntime};

/// What all legs share: the runtime handle, the crypto provider and one certificate.
pub struct Shared {
    runtime: Arc<dyn Runtime>,
    crypto: Arc<dyn rtc::crypto::RTCCryptoProvider>,
    cert: RTCCertificate,
}

impl Shared {
    /// Makes the certificate (ECDSA P-256, as webrtc-rs makes one when given none).
    pub fn new() -> Self {
        let crypto = rtc::crypto::default_provider().unwrap();
        let cert = RTCCertificate::generate(
            crypto.crypto(),
            SignatureScheme::EcdsaP256Sha256,
            CertificateParams::new(vec!["dialerd".to_owned()]).unwrap(),
        )
        .unwrap();
        Self {
            runtime: Arc::new(TokioRuntime),
            crypto,
            cert,
        }
    }
}

fn pcmu() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/PCMU".to_owned(),
        clock_rate: 8000,
        channels: 1,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

/// The leg's events as the connection reports them.
struct Handler {
    gathered: mpsc::Sender<()>,
    state: watch::Sender<RTCPeerConnectionState>,
    runtime: Arc<dyn Runtime>,
    counters: Arc<Counters>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let counters = self.counters.clone();
        self.runtime.spawn(Box::pin(async move {
            while let Some(e) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(_) = e {
                    counters.received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
}

/// Answers `offer` (after ICE gathering, no trickling) and spawns the leg's sender.
pub async fn accept(sh: &Shared, offer: &str, counters: Arc<Counters>) -> Result<String, String> {
    let e = |e: webrtc::error::Error| e.to_string();
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: pcmu(),
                payload_type: 0,
            },
            RtpCodecKind::Audio,
        )
        .map_err(e)?;
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: "audio/telephone-event".to_owned(),
                    clock_rate: 8000,
                    channels: 1,
                    sdp_fmtp_line: String::new(),
                    rtcp_feedback: vec![],
                },
                payload_type: 126,
            },
            RtpCodecKind::Audio,
        )
        .map_err(e)?;
    let registry = register_default_interceptors(Registry::new(), &mut media).map_err(e)?;
    let settings = SettingEngineBuilder::new()
        .with_crypto_provider(sh.crypto.clone())
        .with_lite(true)
        .with_include_loopback_candidate(true)
        .build();
    let config = RTCConfigurationBuilder::new()
        .with_certificates(vec![sh.cert.clone()])
        .build();
    let (gathered_tx, mut gathered) = mpsc::channel(1);
    let (state_tx, mut state) = watch::channel(RTCPeerConnectionState::New);
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_runtime(sh.runtime.clone())
        .with_handler(Arc::new(Handler {
            gathered: gathered_tx,
            state: state_tx,
            runtime: sh.runtime.clone(),
            counters: counters.clone(),
        }))
        .with_udp_addrs(vec!["127.0.0.1:0"])
        .build()
        .await
        .map_err(e)?;
    let ssrc = rand_ssrc();
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "dialerd".to_owned(),
        "audio".to_owned(),
        "audio".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: pcmu(),
            ..Default::default()
        }],
    )));
    pc.add_track(track.clone() as Arc<dyn TrackLocal>)
        .await
        .map_err(e)?;
    pc.set_remote_description(RTCSessionDescription::offer(offer.to_owned()).map_err(e)?)
        .await
        .map_err(e)?;
    let answer = pc.create_answer(None).await.map_err(e)?;
    pc.set_local_description(answer).await.map_err(e)?;
    let _ = gathered.recv().await;
    let sdp = pc
        .local_description()
        .await
        .ok_or("no local description")?
        .sdp;
    tokio::spawn(async move {
        // Holding the connection keeps it open.
        let _pc = pc;
        loop {
            let s = *state.borrow_and_update();
            match s {
                RTCPeerConnectionState::Connected => break,
                RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => return,
                _ => {}
            }
            if state.changed().await.is_err() {
                return;
            }
        }
        counters.connected.fetch_add(1, Ordering::Relaxed);
        let mut tick = tokio::time::interval(PTIME);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let (mut seq, mut ts) = (0u16, 0u32);
        let payload = bytes::Bytes::from_static(&FRAME);
        loop {
            tick.tick().await;
            if state.has_changed().unwrap_or(true)
                && !matches!(*state.borrow(), RTCPeerConnectionState::Connected)
            {
                return;
            }
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
            let packet = rtc::rtp::Packet {
                header: rtc::rtp::Header {
                    version: 2,
                    payload_type: 0,
                    sequence_number: seq,
                    timestamp: ts,
                    ssrc,
                    ..Default::default()
                },
                payload: payload.clone(),
            };
            if track.write_rtp(packet).await.is_err() {
                return;
            }
            counters.sent.fetch_add(1, Ordering::Relaxed);
        }
    });
    Ok(sdp)
}

fn rand_ssrc() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: `b` is valid for 4 bytes of writing.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 4, 0) };
    u32::from_ne_bytes(b)
}
