//! Media: SDP offer/answer, RTP sessions and their sockets, G.711, RFC 4733 DTMF, RTCP
//! quality, prompts and recording. Sans-IO cores (`rtp`, `rtcp`, `dtmf`, `jitter`, `sdp`,
//! `codec`) with thin drivers (`leg`, `engine`); a leg's packets go over sockets or an in-process
//! `pipe`; the call layer moves packets between legs.

pub mod bridge;
pub mod codec;
pub mod dtmf;
pub mod echo;
pub mod engine;
pub mod jitter;
pub mod leg;
pub mod metrics;
pub mod pipe;
pub mod ports;
pub mod prompt;
pub mod recorder;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod srtp;

/// Errors of the media layer.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Every RTP port of `media.rtp_port_min..rtp_port_max` is in use.
    #[error("no free RTP port in media.rtp_port_min..media.rtp_port_max")]
    NoPorts,
    /// A socket operation failed.
    #[error("rtp socket: {0}")]
    Io(#[from] std::io::Error),
    /// The SDP could not be read or has nothing we can use.
    #[error("sdp: {0}")]
    Sdp(#[from] sdp::SdpError),
    /// An answer came without our offer.
    #[error("an SDP answer arrived but no offer was made")]
    NoOffer,
    /// The prompts could not be loaded.
    #[error(transparent)]
    Prompt(#[from] prompt::PromptError),
    /// Metrics could not be registered.
    #[error("media metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}
