//! Media: SDP offer/answer and RTP. For now the pieces the SIP test routes need — reading an
//! audio offer, writing an answer, and an RTP reflector for the echo route. The full RTP engine
//! (port pool, G.711, DTMF, prompts, bridging, recording) grows here.

pub mod codec;
pub mod dtmf;
pub mod echo;
pub mod jitter;
pub mod prompt;
pub mod recorder;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
