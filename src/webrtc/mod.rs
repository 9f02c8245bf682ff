//! Browser audio legs (WebRTC) for agents in the console: a browser's offer is answered
//! ICE-lite with a host candidate on each of `webrtc.addresses` (ports from the RTP pool),
//! DTLS-SRTP and rtcp-mux, audio only, with the first codec of `webrtc.codecs` the browser
//! offers and its RFC 4733 telephone-events: G.711 end to end, or Opus transcoded at the
//! boundary ([`transcode`]) to the G.711 the ordinary leg carries.
//!
//! [`str0m`] does ICE, DTLS and SRTP sans-IO (`handle_input` / `poll_output`, as our SIP and
//! RTP cores do); [`peer`] is its thin tokio driver. The leg hands its decrypted stream, as
//! plain RTP over an in-process pipe, to an ordinary [`MediaLeg`](crate::media::leg::MediaLeg), so the
//! agent's session, bridging, recording, mute, hold and the RTP timeout treat a browser
//! exactly like a SIP phone: the browser hears our continuous stream (our SSRC, sequence and
//! timestamps pass through), and a lost browser ends the leg as a phone's BYE does.

pub mod metrics;
pub mod offer;
pub mod peer;
pub mod transcode;

use crate::config::WebRtcConfig;
use crate::media::codec::CodecKind;
use crate::media::engine::MediaEngine;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use str0m::config::{CryptoProvider, DtlsCert};

/// Errors of the browser legs.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// `webrtc.addresses` is empty.
    #[error("browser audio is off: webrtc.addresses is empty")]
    Off,
    /// The browser's offer cannot be used.
    #[error("sdp: {0}")]
    Offer(String),
    /// No RTP port, or a socket failed.
    #[error(transparent)]
    Media(#[from] crate::media::MediaError),
    /// The WebRTC stack refused something.
    #[error("webrtc: {0}")]
    Rtc(#[from] str0m::RtcError),
    /// No DTLS certificate could be made at start.
    #[error("cannot make the DTLS certificate")]
    Cert,
    /// The metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// libopus refused to make an encoder or decoder.
    #[error("opus: {0}")]
    Opus(#[from] audiopus::Error),
}

/// What every browser leg shares: the addresses, the crypto provider and one DTLS
/// certificate (made once at start: making one per leg costs milliseconds of CPU). Cheap to
/// clone.
#[derive(Clone)]
pub struct WebRtc {
    inner: Arc<Inner>,
}

struct Inner {
    addresses: Vec<IpAddr>,
    codecs: Vec<offer::BrowserCodec>,
    crypto: Arc<CryptoProvider>,
    cert: DtlsCert,
    metrics: metrics::WebRtcMetrics,
}

impl WebRtc {
    /// Makes the DTLS certificate; the legs' metrics are kept but not exported (see
    /// [`WebRtc::with_metrics`]).
    pub fn new(cfg: &WebRtcConfig) -> Result<Self, WebRtcError> {
        let metrics = metrics::WebRtcMetrics::new()?;
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let cert = crypto
            .dtls_provider
            .generate_certificate()
            .ok_or(WebRtcError::Cert)?;
        Ok(Self {
            inner: Arc::new(Inner {
                addresses: cfg.addresses.clone(),
                codecs: cfg
                    .codecs
                    .iter()
                    .filter_map(|c| offer::BrowserCodec::from_name(c))
                    .collect(),
                crypto,
                cert,
                metrics,
            }),
        })
    }

    /// Exports the legs' metrics in `registry`.
    pub fn with_metrics(self, registry: &prometheus::Registry) -> Result<Self, WebRtcError> {
        self.inner.metrics.register(registry)?;
        Ok(self)
    }

    /// Answers `offer` as [`WebRtc::accept`] does, with host candidates at `candidates` and
    /// no socket bound: the offer's whole path through our parsing and str0m's, sans-IO.
    pub fn answer_offer(
        &self,
        offer: &str,
        leg_codecs: &[CodecKind],
        candidates: &[SocketAddr],
    ) -> Result<String, WebRtcError> {
        let choice = self.choose(offer, leg_codecs)?;
        let (answer, _) = peer::answer(
            self.inner.crypto.clone(),
            self.inner.cert.clone(),
            choice,
            offer,
            candidates,
        )?;
        Ok(answer)
    }

    /// The codec of `offer` we take (see [`offer::choose`]; the leg's G.711 codecs are
    /// `leg_codecs`), or why there is none.
    fn choose(&self, offer: &str, leg_codecs: &[CodecKind]) -> Result<offer::Choice, WebRtcError> {
        offer::choose(offer, &self.inner.codecs, leg_codecs).ok_or_else(|| {
            WebRtcError::Offer(format!(
                "the offer has no audio in {} (webrtc.codecs, G.711 as in media.codecs)",
                self.inner
                    .codecs
                    .iter()
                    .filter(|c| match c {
                        offer::BrowserCodec::G711(k) => leg_codecs.contains(k),
                        offer::BrowserCodec::Opus => true,
                    })
                    .map(|c| c.rtpmap())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))
        })
    }

    /// Answers a browser's SDP offer: the answer to send back, and the leg to drive with
    /// [`peer::Peer::run`].
    pub fn accept(
        &self,
        media: &MediaEngine,
        offer: &str,
    ) -> Result<(String, peer::Peer), WebRtcError> {
        if self.inner.addresses.is_empty() {
            return Err(WebRtcError::Off);
        }
        let leg_codecs: Vec<CodecKind> = media
            .prefs()
            .iter()
            .filter_map(|p| CodecKind::from_name(&p.name))
            .collect();
        let choice = self.choose(offer, &leg_codecs)?;
        peer::Peer::accept(
            media,
            &self.inner.addresses,
            self.inner.crypto.clone(),
            self.inner.cert.clone(),
            choice,
            offer,
            self.inner.metrics.clone(),
        )
    }
}
