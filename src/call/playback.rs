//! Playing prompts to a leg: 20 ms frames on a timer, encoded in the leg's codec, on the leg's
//! continuous RTP stream. The prompt test route answers, plays, and hangs up.

use crate::media::engine::MediaEngine;
use crate::media::leg::{Input, MediaLeg};
use crate::media::prompt::{Clip, Player};
use crate::sip::leg::{Incoming, LegEvent, LegId, SipHandle};
use tokio::sync::mpsc;

/// How playing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Played {
    /// Every frame was sent.
    Finished,
    /// The leg ended first (or its RTP went dead).
    LegEnded,
}

/// Plays `clips` on `leg` to the end, unless the leg ends first.
pub async fn play(
    sip: &SipHandle,
    media: &MediaEngine,
    id: LegId,
    leg: &mut MediaLeg,
    events: &mut mpsc::UnboundedReceiver<LegEvent>,
    clips: Vec<crate::media::prompt::Clip>,
) -> Played {
    let Some(codec) = leg.codec() else {
        return Played::LegEnded;
    };
    let mut encoder = codec.new_codec();
    let mut player = Player::new(clips);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut payload = Vec::with_capacity(320);
    let mut out = Vec::with_capacity(512);
    loop {
        tokio::select! {
            ev = events.recv() => if !super::on_leg_event(ev, leg) {
                return Played::LegEnded;
            },
            _ = tick.tick() => {
                let Some(frame) = player.next_frame() else {
                    return Played::Finished;
                };
                let now = tokio::time::Instant::now().into_std();
                payload.clear();
                encoder.encode(&frame, &mut payload);
                if let Some(s) = leg.session() {
                    out.clear();
                    s.build_voice(now, &payload, frame.len() as u32, &mut out);
                    leg.send_rtp(&out);
                }
            }
            input = leg.input() => match input {
                Input::Rtp => {
                    // Read for latching, statistics and liveness; nothing to play back.
                    let mut buf = [0u8; crate::media::leg::MAX_DATAGRAM];
                    while let Some((n, from)) = leg.recv_rtp(&mut buf) {
                        let now = tokio::time::Instant::now().into_std();
                        if let Some(s) = leg.session() {
                            let _ = s.on_rtp(now, from, &buf[..n]);
                        }
                    }
                }
                Input::Timer if leg.is_dead() => {
                    super::hang_up_dead(sip, media, id).await;
                    return Played::LegEnded;
                }
                Input::Timer | Input::Handled => {}
            },
        }
    }
}

/// The prompt test route: answer, play `clips`, hang up.
pub fn run(
    sip: SipHandle,
    media: MediaEngine,
    call: Incoming,
    clips: Vec<Clip>,
) -> impl std::future::Future<Output = ()> + Send {
    let super::Inbound {
        id,
        mut events,
        local_ip,
        sdp,
        behind_nat,
        encryption,
    } = call.into();
    async move {
        let Some(mut leg) =
            super::answer_with_media(&sip, &media, id, local_ip, sdp, behind_nat, encryption).await
        else {
            return;
        };
        if play(&sip, &media, id, &mut leg, &mut events, clips).await == Played::Finished {
            sip.hang_up(id).await;
        }
    }
}
