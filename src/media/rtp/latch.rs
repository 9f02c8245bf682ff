//! Symmetric RTP latching (RFC 4961 style, as carriers behind NAT need it): which far address
//! media is accepted from and sent to.
//!
//! The rule, for packets that are already known valid (RTP v2 with a negotiated payload type):
//!
//! 1. Not latched (start, or after a re-INVITE moved the far address): a packet from any address
//!    is accepted and latches the leg to its source address. Carriers behind NAT send from
//!    another address than their SDP names, so the SDP address is only where we send until then.
//! 2. Latched: packets from the latched address are accepted; packets from any other address
//!    are dropped …
//! 3. … unless that other address has sent [`RELATCH_PACKETS`] valid packets in a row with one
//!    SSRC, each within [`CANDIDATE_GAP`] of the one before, and the latched address has sent
//!    nothing valid for [`RELATCH_SILENCE`]. Then the leg re-latches to it and the packet that
//!    met the condition is accepted. This follows a far NAT binding that changed or a media
//!    server that took over, while a stray or spoofed packet, or a second stream alongside a
//!    live one, cannot steal the leg.
//!
//! The cost of a genuine move is the audio of the first [`RELATCH_SILENCE`] after it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Consecutive valid packets another address must send to take over.
pub const RELATCH_PACKETS: u32 = 4;
/// How long the latched address must have been silent before another may take over.
pub const RELATCH_SILENCE: Duration = Duration::from_millis(200);
/// Longest gap between a challenger's packets for them to count as consecutive.
pub const CANDIDATE_GAP: Duration = Duration::from_secs(1);

/// What to do with a valid packet, by its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// From the latched address.
    Accept,
    /// The first valid packet: the leg is now latched to its source.
    Latched,
    /// Another address took over by rule 3.
    Relatched,
    /// From another address: drop it.
    Reject,
}

/// The latched source and the time of its last valid packet.
#[derive(Debug, Clone, Copy)]
struct Current {
    addr: SocketAddr,
    last_at: Instant,
}

/// Another address sending valid packets while we are latched.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    addr: SocketAddr,
    ssrc: u32,
    count: u32,
    last_at: Instant,
}

/// Latching state of one leg.
#[derive(Debug, Clone, Default)]
pub(super) struct Latch {
    current: Option<Current>,
    candidate: Option<Candidate>,
}

impl Latch {
    /// Decides about a valid packet from `from` with SSRC `ssrc` arriving at `now`.
    pub(super) fn check(&mut self, now: Instant, from: SocketAddr, ssrc: u32) -> Verdict {
        let Some(cur) = self.current.as_mut() else {
            self.current = Some(Current {
                addr: from,
                last_at: now,
            });
            return Verdict::Latched;
        };
        if cur.addr == from {
            cur.last_at = now;
            return Verdict::Accept;
        }
        let count = match self.candidate {
            Some(c)
                if c.addr == from
                    && c.ssrc == ssrc
                    && now.saturating_duration_since(c.last_at) <= CANDIDATE_GAP =>
            {
                c.count.saturating_add(1)
            }
            _ => 1,
        };
        self.candidate = Some(Candidate {
            addr: from,
            ssrc,
            count,
            last_at: now,
        });
        if count >= RELATCH_PACKETS && now.saturating_duration_since(cur.last_at) >= RELATCH_SILENCE
        {
            *cur = Current {
                addr: from,
                last_at: now,
            };
            self.candidate = None;
            return Verdict::Relatched;
        }
        Verdict::Reject
    }

    /// The latched address, if any.
    pub(super) fn addr(&self) -> Option<SocketAddr> {
        self.current.map(|c| c.addr)
    }

    /// Forgets the latched address: the next valid packet latches again (rule 1).
    pub(super) fn reset(&mut self) {
        *self = Latch::default();
    }
}
