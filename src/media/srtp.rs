//! SRTP and SRTCP (RFC 3711) for one leg, keyed by SDES (RFC 4568), sans-IO: clear packets in,
//! protected packets out and back. The ciphers are `webrtc-srtp`'s; this module holds the two
//! contexts of a leg (ours to protect what we send, the peer's to check and decrypt what we
//! receive), each with its rollover counters per SSRC, and replay windows on the receiving one.
//!
//! Keys come from the SDP's `a=crypto` lines (see `sdp::Crypto`); fresh key material comes from
//! the driver, like every other random number in the media cores.

use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Packets a replay window remembers: libsrtp's default, and what RFC 3711 §3.3.2 asks at least.
const REPLAY_WINDOW: usize = 128;

/// Longest master key and salt of the suites we speak (AES-CM: 16 + 14 octets).
pub const MAX_KEY_SALT: usize = 30;

/// Why a packet or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// The key material does not fit the suite.
    #[error("SRTP key for {suite} must be {wanted} octets, got {got}")]
    KeyLength {
        /// The suite's name.
        suite: &'static str,
        /// Master key plus salt length the suite needs.
        wanted: usize,
        /// What was given.
        got: usize,
    },
    /// A packet seen before (RFC 3711 §3.3.2).
    #[error("replayed packet")]
    Replay,
    /// The authentication tag did not match: forged, damaged or keyed differently.
    #[error("authentication failed")]
    Auth,
    /// Too short or otherwise not SRTP/SRTCP.
    #[error("not an SRTP packet: {0}")]
    Malformed(String),
}

/// The SDES crypto suites we speak (RFC 4568 §6.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-128 counter mode, HMAC-SHA1 tag of 80 bits.
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 tag of 32 bits on SRTP (80 on SRTCP).
    AesCm128HmacSha1_32,
    /// AES-128 GCM, 16-octet tag.
    AeadAes128Gcm,
}

impl Suite {
    /// Every suite, in the order we prefer and offer them.
    pub const ALL: [Suite; 3] = [
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
        Suite::AeadAes128Gcm,
    ];

    /// The name in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// The suite an `a=crypto` name stands for (names are case-sensitive, RFC 4568 §9.2).
    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Master key plus master salt, in octets.
    pub fn key_salt_len(self) -> usize {
        let p = self.profile();
        p.key_len() + p.salt_len()
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            Suite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        }
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What offer and answer agreed on for SRTP: one suite, and a master key and salt per direction.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The suite both sides use.
    pub suite: Suite,
    /// Our master key and salt: what we protect with (and what our SDP carried).
    pub local: Vec<u8>,
    /// The peer's master key and salt: what we check and decrypt with.
    pub remote: Vec<u8>,
}

impl std::fmt::Debug for SrtpKeys {
    /// Keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// One leg's SRTP: protects what we send, checks and decrypts what we receive.
pub struct SrtpSession {
    keys: SrtpKeys,
    outbound: Context,
    inbound: Context,
}

impl SrtpSession {
    /// Contexts for `keys`; refused when a key does not fit its suite.
    pub fn new(keys: SrtpKeys) -> Result<Self, SrtpError> {
        let context = |material: &[u8], replay: bool| {
            let wanted = keys.suite.key_salt_len();
            if material.len() != wanted {
                return Err(SrtpError::KeyLength {
                    suite: keys.suite.name(),
                    wanted,
                    got: material.len(),
                });
            }
            let p = keys.suite.profile();
            let (key, salt) = material.split_at(p.key_len());
            let (rtp, rtcp) = if replay {
                (
                    Some(srtp_replay_protection(REPLAY_WINDOW)),
                    Some(srtcp_replay_protection(REPLAY_WINDOW)),
                )
            } else {
                (None, None)
            };
            Context::new(key, salt, p, rtp, rtcp).map_err(|e| SrtpError::Malformed(e.to_string()))
        };
        Ok(SrtpSession {
            outbound: context(&keys.local, false)?,
            inbound: context(&keys.remote, true)?,
            keys,
        })
    }

    /// The keys this session runs on.
    pub fn keys(&self) -> &SrtpKeys {
        &self.keys
    }

    /// A clear RTP packet made SRTP (payload encrypted, tag appended).
    pub fn protect_rtp(&mut self, clear: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.outbound
            .encrypt_rtp(clear)
            .map(|b| b.to_vec())
            .map_err(error)
    }

    /// An SRTP packet checked (tag, replay) and decrypted.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.inbound
            .decrypt_rtp(packet)
            .map(|b| b.to_vec())
            .map_err(error)
    }

    /// A clear RTCP compound packet made SRTCP (encrypted, index and tag appended).
    pub fn protect_rtcp(&mut self, clear: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.outbound
            .encrypt_rtcp(clear)
            .map(|b| b.to_vec())
            .map_err(error)
    }

    /// An SRTCP packet checked (tag, replay) and decrypted.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        // The crate hands back a packet whose E flag is clear without checking its tag; we never
        // agree to UNENCRYPTED_SRTCP, so such a packet is refused here first.
        let e_flag_at = match self.keys.suite {
            Suite::AeadAes128Gcm => packet.len().checked_sub(4),
            Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 => {
                packet.len().checked_sub(4 + 10)
            }
        };
        match e_flag_at {
            Some(at) if at >= 8 && packet[at] & 0x80 != 0 => {}
            Some(at) if at >= 8 => return Err(SrtpError::Auth),
            _ => return Err(SrtpError::Malformed("too short for SRTCP".into())),
        }
        self.inbound
            .decrypt_rtcp(packet)
            .map(|b| b.to_vec())
            .map_err(error)
    }
}

/// The crate's errors sorted into what a leg counts.
fn error(e: webrtc_srtp::Error) -> SrtpError {
    use webrtc_srtp::Error as E;
    match e {
        E::ErrDuplicated | E::SrtpSsrcDuplicated(..) | E::SrtcpSsrcDuplicated(..) => {
            SrtpError::Replay
        }
        E::ErrFailedToVerifyAuthTag
        | E::RtpFailedToVerifyAuthTag
        | E::RtcpFailedToVerifyAuthTag
        | E::AesGcm(_) => SrtpError::Auth,
        other => SrtpError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
