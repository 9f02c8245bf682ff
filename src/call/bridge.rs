//! The bridge driver: moves media between two legs until one ends or the layer above
//! unbridges them — relayed as is when the codecs match, transcoded when they differ, DTMF as
//! events — applying mute and hold from a [`BridgeCommand`] channel (the rules are in the
//! sans-IO [`Bridge`]), and feeding a recording when there is one. It sends no SIP: it says
//! how it ended and the caller hangs up what needs hanging up.

use crate::media::bridge::{Bridge, BridgeCommand, Side, HOLD_MUSIC};
use crate::media::codec::{transcode, Codec};
use crate::media::engine::MediaEngine;
use crate::media::leg::{Input, MediaLeg, MAX_DATAGRAM};
use crate::media::recorder::Recorder;
use crate::media::rtp::{Received, PT_COMFORT_NOISE};
use crate::sip::leg::LegEvent;
use std::time::Instant;
use tokio::sync::mpsc;

/// One leg as the bridge uses it: its media and its SIP events.
pub struct BridgeLeg<'a> {
    /// The leg's media.
    pub media: &'a mut MediaLeg,
    /// The leg's SIP events (re-offers are applied; the end of the leg ends the bridge).
    pub events: &'a mut mpsc::UnboundedReceiver<LegEvent>,
}

/// How a bridge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeEnd {
    /// This side's SIP leg ended (hang-up, failure, shutdown).
    Ended(Side),
    /// This side sent no RTP for `media.rtp_timeout` (never while we hold it).
    Dead(Side),
    /// [`BridgeCommand::Unbridge`]: both legs are still up.
    Unbridged,
}

/// The driver's clock; tokio's so paused-time tests drive it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Per-side scratch state of the driver.
#[derive(Default)]
struct Work {
    scratch: Vec<u8>,
    out: Vec<u8>,
    pcm: Vec<i16>,
    /// Decoders for the recording and encoders for generated frames, made when first needed.
    codecs: [Option<Box<dyn Codec + Send>>; 2],
}

/// Bridges `a` and `b` until one ends or `commands` says [`BridgeCommand::Unbridge`]; a closed
/// command channel just means no more commands. `recorder`, when given, gets what each side
/// says as the other hears it (a muted or held side's audio is not recorded): A on the left,
/// B on the right. Sides we held are taken off hold in their RTP sessions at the end.
pub async fn run(
    media: &MediaEngine,
    a: BridgeLeg<'_>,
    b: BridgeLeg<'_>,
    commands: &mut mpsc::Receiver<BridgeCommand>,
    mut recorder: Option<&mut Recorder>,
) -> BridgeEnd {
    let music = media.prompts().get(media.language(), HOLD_MUSIC);
    let mut bridge = Bridge::new(music);
    let (leg_a, a_events) = (a.media, a.events);
    let (leg_b, b_events) = (b.media, b.events);
    let mut work = Work::default();
    let mut commands_open = true;
    let end = loop {
        let tick = bridge.poll_timeout().map(tokio::time::Instant::from_std);
        let timer = async move {
            match tick {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = a_events.recv() => if !super::on_leg_event(ev, leg_a) { break BridgeEnd::Ended(Side::A) },
            ev = b_events.recv() => if !super::on_leg_event(ev, leg_b) { break BridgeEnd::Ended(Side::B) },
            cmd = commands.recv(), if commands_open => match cmd {
                None => commands_open = false,
                Some(BridgeCommand::Unbridge) => break BridgeEnd::Unbridged,
                Some(cmd) => {
                    tracing::debug!(?cmd, "bridge command");
                    if let Some((side, on)) = bridge.apply(cmd, now()) {
                        let leg = if side == Side::A { &mut *leg_a } else { &mut *leg_b };
                        if let Some(s) = leg.session() {
                            s.set_local_hold(on, now());
                        }
                    }
                }
            },
            input = leg_a.input() => match input {
                Input::Rtp => forward(Side::A, &bridge, leg_a, leg_b, &mut work, &mut recorder),
                Input::Timer if leg_a.is_dead() => break BridgeEnd::Dead(Side::A),
                Input::Timer | Input::Handled => {}
            },
            input = leg_b.input() => match input {
                Input::Rtp => forward(Side::B, &bridge, leg_b, leg_a, &mut work, &mut recorder),
                Input::Timer if leg_b.is_dead() => break BridgeEnd::Dead(Side::B),
                Input::Timer | Input::Handled => {}
            },
            _ = timer => {
                let now = now();
                let [fa, fb] = bridge.on_timeout(now);
                for (side, frame, leg) in [(Side::A, fa, &mut *leg_a), (Side::B, fb, &mut *leg_b)] {
                    if let Some(frame) = frame {
                        send_frame(side, &frame, leg, &mut work, now);
                    }
                }
            }
        }
    };
    for leg in [leg_a, leg_b] {
        if let Some(s) = leg.session() {
            s.set_local_hold(false, now());
        }
    }
    end
}

/// Sends one generated 20 ms frame (silence or hold music) on `leg`'s continuous stream.
fn send_frame(side: Side, frame: &[i16], leg: &mut MediaLeg, work: &mut Work, now: Instant) {
    let Some(kind) = leg.codec() else { return };
    let codec = work.codecs[side as usize].get_or_insert_with(|| kind.new_codec());
    work.scratch.clear();
    codec.encode(frame, &mut work.scratch);
    if let Some(s) = leg.session() {
        s.build_voice(now, &work.scratch, frame.len() as u32, &mut work.out);
        leg.send_rtp(&work.out);
    }
}

/// The datagrams waiting on `from_leg` (side `from`): read into its session (latching,
/// statistics, liveness) and, when the bridge forwards that side, relayed onto `to_leg`.
fn forward(
    from: Side,
    bridge: &Bridge,
    from_leg: &mut MediaLeg,
    to_leg: &mut MediaLeg,
    work: &mut Work,
    recorder: &mut Option<&mut Recorder>,
) {
    let mut buf = [0u8; MAX_DATAGRAM];
    let forwards = bridge.forwards(from);
    while let Some((n, source)) = from_leg.recv_rtp(&mut buf) {
        let now = now();
        let (from_codec, to_codec) = (from_leg.codec(), to_leg.codec());
        let Some(rx) = from_leg.session() else { return };
        let received = rx.on_rtp(now, source, &buf[..n]);
        if !forwards {
            continue;
        }
        let Some(tx) = to_leg.session() else { return };
        work.out.clear();
        match received {
            Received::Media(pkt, payload) => {
                if let (Some(rec), Some(kind)) = (recorder.as_deref_mut(), from_codec) {
                    if pkt.payload_type != PT_COMFORT_NOISE {
                        let codec =
                            work.codecs[from as usize].get_or_insert_with(|| kind.new_codec());
                        work.pcm.clear();
                        codec.decode(payload, &mut work.pcm);
                        let pushed = match from {
                            Side::A => rec.push_customer(pkt.seq, pkt.timestamp, &work.pcm),
                            Side::B => rec.push_agent(pkt.seq, pkt.timestamp, &work.pcm),
                        };
                        if let Err(e) = pushed {
                            tracing::warn!(error = %e, path = %rec.path().display(), "recording stopped");
                            *recorder = None;
                        }
                    }
                }
                match (from_codec, to_codec) {
                    // Comfort noise (RFC 3389) is codec-independent: never transcoded.
                    (Some(f), Some(t)) if f != t && pkt.payload_type != PT_COMFORT_NOISE => {
                        work.scratch.clear();
                        transcode(f, t, payload, &mut work.scratch);
                        tx.build_relayed(now, &pkt, &work.scratch, &mut work.out);
                    }
                    _ => tx.build_relayed(now, &pkt, payload, &mut work.out),
                }
            }
            Received::DtmfPacket(pkt, payload) => {
                tx.build_relayed_event(now, &pkt, payload, &mut work.out)
            }
            Received::Dtmf(_) | Received::Dropped(_) => {}
        }
        if !work.out.is_empty() {
            to_leg.send_rtp(&work.out);
        }
    }
}
