//! Bridging two legs, sans-IO: per packet, whether it is forwarded to the other side given the
//! mute and hold state, and what a side hears while nothing is forwarded to it.
//!
//! Rules (side A and side B; for a customer call A is the customer, B the agent):
//! - A **muted** side's audio is not forwarded; the other side hears silence frames on its
//!   continuous stream instead, so its phone or carrier keeps receiving RTP (a far end that
//!   times out on silent RTP would hang up a long mute) and the switch back is heard as the
//!   voice resuming, not as a stream restart.
//! - A **held** side hears the hold music, looping, on its own continuous stream; its audio is
//!   not forwarded (the other side hears silence frames), and nothing of the other side reaches
//!   it. The driver tells the held side's RTP session so its dead-call timeout is paused.
//! - Frames we generate come on a 20 ms tick that runs only while some side needs them, so a
//!   plain bridge costs no timer wake-ups.
//!
//! The driver (`call::bridge`) owns the sockets and asks [`Bridge::forwards`] per packet,
//! [`Bridge::poll_timeout`] for the next tick and [`Bridge::on_timeout`] for the frames to send.

use crate::media::prompt::{Clip, Player, FRAME_MS, FRAME_SAMPLES};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Name of the hold-music prompt (in `prompts/common/`).
pub const HOLD_MUSIC: &str = "hold_music";
/// Interval of generated frames.
const TICK: Duration = Duration::from_millis(FRAME_MS as u64);
/// A tick this late is not caught up with a burst of frames: the stream's timestamps follow the
/// wall clock over such a pause anyway (see `rtp::outbound`).
const MAX_CATCH_UP: Duration = Duration::from_millis(200);

/// One of the two bridged legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The first leg: the customer (relay: the caller); the left channel of a recording.
    A,
    /// The second leg: the agent (relay: the called party); the right channel.
    B,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }

    /// `"a"` or `"b"`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

/// What the layer above asks of a running bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeCommand {
    /// Mute (`on`) or unmute one side's audio toward the other.
    Mute {
        /// The side whose audio is muted.
        side: Side,
        /// Muted or not.
        on: bool,
    },
    /// Put one side on hold (it hears hold music) or take it off.
    Hold {
        /// The side put on hold.
        side: Side,
        /// Held or not.
        on: bool,
    },
    /// End the bridge and leave both legs up (an agent's leg goes back to waiting).
    Unbridge,
}

/// What a side hears while nothing is forwarded to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Nothing generated: it hears the other side.
    Nothing,
    /// Silence frames (the other side is muted or held).
    Silence,
    /// Hold music (this side is held).
    Music,
}

/// The mute and hold state of a bridge, and the hold-music players.
#[derive(Debug, Clone)]
pub struct Bridge {
    muted: [bool; 2],
    held: [bool; 2],
    hold_music: Option<Arc<[i16]>>,
    /// A held side's player; kept over a resume so music continues where it stopped.
    players: [Option<Player>; 2],
    next_tick: Option<Instant>,
}

impl Bridge {
    /// A bridge with nobody muted or held; `hold_music` is what a held side hears (silence
    /// when `None`).
    pub fn new(hold_music: Option<Arc<[i16]>>) -> Self {
        Bridge {
            muted: [false; 2],
            held: [false; 2],
            hold_music,
            players: [None, None],
            next_tick: None,
        }
    }

    /// Whether `side` is muted.
    pub fn is_muted(&self, side: Side) -> bool {
        self.muted[side.index()]
    }

    /// Whether `side` is on hold.
    pub fn is_held(&self, side: Side) -> bool {
        self.held[side.index()]
    }

    /// Applies a mute or hold command at `now` (`Unbridge` is the driver's to act on). Returns
    /// the sides whose hold state changed, for the driver to tell their RTP sessions.
    pub fn apply(&mut self, cmd: BridgeCommand, now: Instant) -> Option<(Side, bool)> {
        let changed = match cmd {
            BridgeCommand::Mute { side, on } => {
                self.muted[side.index()] = on;
                None
            }
            BridgeCommand::Hold { side, on } => {
                let i = side.index();
                let was = std::mem::replace(&mut self.held[i], on);
                if on && self.players[i].is_none() {
                    let clips = self.hold_music.iter().cloned().map(Clip::Audio).collect();
                    self.players[i] = Some(Player::looping(clips));
                }
                (was != on).then_some((side, on))
            }
            BridgeCommand::Unbridge => None,
        };
        let needed = [Side::A, Side::B]
            .iter()
            .any(|s| self.fill(*s) != Fill::Nothing);
        self.next_tick = match (needed, self.next_tick) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(now),
        };
        changed
    }

    /// Whether a packet received from `from` is forwarded to the other side.
    pub fn forwards(&self, from: Side) -> bool {
        self.fill(from.other()) == Fill::Nothing
    }

    /// What `to` hears from us instead of the other side.
    pub fn fill(&self, to: Side) -> Fill {
        let from = to.other();
        if self.held[to.index()] {
            Fill::Music
        } else if self.muted[from.index()] || self.held[from.index()] {
            Fill::Silence
        } else {
            Fill::Nothing
        }
    }

    /// When the next generated frames are due; `None` while no side needs any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    /// The frames due at `now`, one per side that needs one (8 kHz mono, 20 ms); call when
    /// [`poll_timeout`](Self::poll_timeout) has passed.
    pub fn on_timeout(&mut self, now: Instant) -> [Option<[i16; FRAME_SAMPLES]>; 2] {
        let Some(due) = self.next_tick else {
            return [None, None];
        };
        if now < due {
            return [None, None];
        }
        let next = due + TICK;
        self.next_tick = Some(if now.saturating_duration_since(next) > MAX_CATCH_UP {
            now + TICK
        } else {
            next
        });
        [Side::A, Side::B].map(|side| match self.fill(side) {
            Fill::Nothing => None,
            Fill::Silence => Some([0; FRAME_SAMPLES]),
            Fill::Music => Some(
                self.players[side.index()]
                    .as_mut()
                    .and_then(Player::next_frame)
                    .unwrap_or([0; FRAME_SAMPLES]),
            ),
        })
    }
}

#[cfg(test)]
mod tests;
