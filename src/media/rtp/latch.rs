//! Symmetric RTP latching: which far address media is accepted from and sent to.
//!
//! The rule, for packets that are already known valid (RTP v2 with a negotiated payload type).
//! Latching only ever narrows where media comes from; a packet from a source the rule refuses
//! is dropped, so its audio reaches no one and nothing is sent to its address.
//!
//! 1. **Peer not behind NAT** (the default): media is accepted only from the exact address and
//!    port the SDP names; the first packet from there latches. Nothing else ever latches, however
//!    long the peer is silent; only new SDP (a re-INVITE) moves the address.
//! 2. **Peer behind NAT** (a trunk with `nat = true`): its media may come from another address
//!    than its SDP names (the NAT's public side). A packet from the SDP address still latches at
//!    once. Another source latches only by sending a stream: [`NAT_LATCH_PACKETS`] packets with
//!    one SSRC and sequence numbers that keep going up (by at most [`MAX_SEQ_STEP`]), each
//!    within [`CANDIDATE_GAP`] of the one before. Those proving packets are dropped.
//! 3. **Latched, peer behind NAT**: another source takes over only when all of these hold: its
//!    stream continues the latched one (same SSRC, first sequence number at most
//!    [`MAX_DROPOUT`] ahead of the last one received), it has kept going for
//!    [`RELATCH_SUSTAIN`] and at least [`RELATCH_PACKETS`] packets as in rule 2, and the
//!    latched source has sent nothing valid for [`RELATCH_SILENCE`]. That follows a far NAT
//!    binding that moved (the phone's stream goes on from a new port), while a stranger, who
//!    never receives our audio and so does not know the far SSRC, cannot take the leg, and a
//!    burst cannot either.
//!
//! At most [`CANDIDATES`] sources are followed at once; a new one replaces the one that has
//! proved least (fewest packets, then oldest), so a sprayer cannot stall a real stream for long
//! without sending more packets per interval than the stream itself, several times over.
//!
//! The cost of a genuine NAT move is the audio of the first [`RELATCH_SILENCE`] after it; a
//! NAT'd peer that changes SSRC and address together without new SDP is not followed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Packets a source other than the SDP's must send in a row to latch a NAT'd peer's leg.
pub const NAT_LATCH_PACKETS: u32 = 5;
/// Packets a challenger must send before it may take over a latched leg.
pub const RELATCH_PACKETS: u32 = 25;
/// How long a challenger must have been sending before it may take over a latched leg.
pub const RELATCH_SUSTAIN: Duration = Duration::from_secs(1);
/// How long the latched source must have been silent before another may take over.
pub const RELATCH_SILENCE: Duration = Duration::from_secs(2);
/// Longest gap between a source's packets for them to count as one stream.
pub const CANDIDATE_GAP: Duration = Duration::from_millis(500);
/// Largest forward step of the sequence number between two packets of one proving stream.
pub const MAX_SEQ_STEP: u16 = 100;
/// Largest forward step from the latched stream's last sequence number to a challenger's
/// first (RFC 3550 A.1's `MAX_DROPOUT`).
pub const MAX_DROPOUT: u16 = 3000;
/// Sources followed at once while they prove themselves.
pub const CANDIDATES: usize = 4;

/// What to do with a valid packet, by its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// From the latched source.
    Accept,
    /// The leg is now latched to its source.
    Latched,
    /// Another source took over by rule 3.
    Relatched,
    /// From a source the rule refuses: drop it.
    Reject,
}

/// The latched source, the time of its last valid packet and the newest of its stream.
#[derive(Debug, Clone, Copy)]
struct Current {
    addr: SocketAddr,
    last_at: Instant,
    ssrc: u32,
    seq: u16,
}

/// A source proving it carries the peer's stream.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    addr: SocketAddr,
    ssrc: u32,
    seq: u16,
    count: u32,
    first_at: Instant,
    last_at: Instant,
}

/// Latching state of one leg.
#[derive(Debug, Clone)]
pub(super) struct Latch {
    /// The far RTP address the SDP names, if known.
    expected: Option<SocketAddr>,
    /// The peer is known to be behind NAT: rules 2 and 3 apply.
    nat: bool,
    current: Option<Current>,
    candidates: [Option<Candidate>; CANDIDATES],
}

/// The same address and port, an IPv4-mapped IPv6 address being its IPv4 one.
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// How far `seq` is ahead of `of`, or `None` when it is not ahead (late, duplicate, or more
/// than half the sequence space away).
fn ahead(seq: u16, of: u16) -> Option<u16> {
    let d = seq.wrapping_sub(of);
    (d != 0 && d < 0x8000).then_some(d)
}

impl Latch {
    /// A leg whose peer the SDP places at `expected`, behind NAT or not.
    pub(super) fn new(expected: Option<SocketAddr>, nat: bool) -> Self {
        Latch {
            expected,
            nat,
            current: None,
            candidates: [None; CANDIDATES],
        }
    }

    /// Decides about a valid packet from `from` with SSRC `ssrc` and sequence number `seq`
    /// arriving at `now`.
    pub(super) fn check(&mut self, now: Instant, from: SocketAddr, ssrc: u32, seq: u16) -> Verdict {
        let Some(cur) = self.current.as_mut() else {
            if self.expected.is_some_and(|e| same(e, from)) {
                return self.latch(now, from, ssrc, seq, Verdict::Latched);
            }
            if !self.nat {
                return Verdict::Reject;
            }
            // Rule 2: any stream may start a candidate.
            let count = self.prove(now, from, ssrc, seq, |_, _| true);
            if count >= NAT_LATCH_PACKETS {
                return self.latch(now, from, ssrc, seq, Verdict::Latched);
            }
            return Verdict::Reject;
        };
        if same(cur.addr, from) {
            cur.last_at = now;
            if cur.ssrc != ssrc || ahead(seq, cur.seq).is_some() {
                cur.seq = seq;
            }
            cur.ssrc = ssrc;
            return Verdict::Accept;
        }
        if !self.nat {
            return Verdict::Reject;
        }
        // Rule 3: only a stream that continues the latched one may start a candidate.
        let (cur_ssrc, cur_seq, cur_last) = (cur.ssrc, cur.seq, cur.last_at);
        let count = self.prove(now, from, ssrc, seq, |ssrc, seq| {
            ssrc == cur_ssrc && ahead(seq, cur_seq).is_some_and(|d| d <= MAX_DROPOUT)
        });
        let sustained = self
            .candidate(from)
            .is_some_and(|c| now.saturating_duration_since(c.first_at) >= RELATCH_SUSTAIN);
        if count >= RELATCH_PACKETS
            && sustained
            && now.saturating_duration_since(cur_last) >= RELATCH_SILENCE
        {
            return self.latch(now, from, ssrc, seq, Verdict::Relatched);
        }
        Verdict::Reject
    }

    /// Latches to `from` and forgets the candidates.
    fn latch(
        &mut self,
        now: Instant,
        from: SocketAddr,
        ssrc: u32,
        seq: u16,
        verdict: Verdict,
    ) -> Verdict {
        self.current = Some(Current {
            addr: from,
            last_at: now,
            ssrc,
            seq,
        });
        self.candidates = [None; CANDIDATES];
        verdict
    }

    /// The candidate for `from`, if one is followed.
    fn candidate(&self, from: SocketAddr) -> Option<&Candidate> {
        self.candidates.iter().flatten().find(|c| c.addr == from)
    }

    /// Counts a packet towards `from`'s candidate and says how many in a row it has now (0:
    /// none). A packet that continues the candidate's stream adds one; a late or duplicate one
    /// leaves it as it is; anything else starts it again, if `may_start` allows, else drops it.
    fn prove(
        &mut self,
        now: Instant,
        from: SocketAddr,
        ssrc: u32,
        seq: u16,
        may_start: impl Fn(u32, u16) -> bool,
    ) -> u32 {
        let slot = self
            .candidates
            .iter()
            .position(|c| c.is_some_and(|c| c.addr == from));
        if let Some(c) = slot.and_then(|i| self.candidates[i].as_mut()) {
            let fresh = now.saturating_duration_since(c.last_at) <= CANDIDATE_GAP;
            if fresh && c.ssrc == ssrc {
                match ahead(seq, c.seq) {
                    Some(d) if d <= MAX_SEQ_STEP => {
                        c.seq = seq;
                        c.last_at = now;
                        c.count = c.count.saturating_add(1);
                        return c.count;
                    }
                    None => return c.count,
                    Some(_) => {}
                }
            }
        }
        let started = may_start(ssrc, seq).then_some(Candidate {
            addr: from,
            ssrc,
            seq,
            count: 1,
            first_at: now,
            last_at: now,
        });
        let i = slot.unwrap_or_else(|| self.free_slot(now));
        self.candidates[i] = started;
        started.map_or(0, |c| c.count)
    }

    /// The slot a new source goes into: an empty or stale one, else the one that proved least.
    fn free_slot(&self, now: Instant) -> usize {
        let rank = |c: &Option<Candidate>| match c {
            None => (0, 0, None),
            Some(c) if now.saturating_duration_since(c.last_at) > CANDIDATE_GAP => (0, 0, None),
            Some(c) => (1, c.count, Some(c.last_at)),
        };
        (0..CANDIDATES)
            .min_by_key(|&i| rank(&self.candidates[i]))
            .unwrap_or(0)
    }

    /// The latched address, if any.
    pub(super) fn addr(&self) -> Option<SocketAddr> {
        self.current.map(|c| c.addr)
    }

    /// New SDP names `expected`: forget the latched source, latch again by rule 1 or 2.
    pub(super) fn reset(&mut self, expected: Option<SocketAddr>) {
        *self = Latch::new(expected, self.nat);
    }

    /// The peer is (`on`) or is not behind NAT, from now on.
    pub(super) fn set_nat(&mut self, on: bool) {
        self.nat = on;
        if !on {
            self.candidates = [None; CANDIDATES];
        }
    }
}
