//! One inbound callback's task: the caller waits — hearing ringback (the call is answered
//! only when an agent takes it) or hold music (answered at once) — until the driver bridges
//! them to an agent (who hears the callback tone first), tells them they will be called back,
//! or hangs up; then the call record is written.

use super::call::{serve, CallCmd, CallCtx, CallEvent};
use crate::call::playback::{play, Played};
use crate::call::record;
use crate::dialer::CallId;
use crate::media::leg::MediaLeg;
use crate::media::prompt::Clip;
use crate::sip::leg::{Incoming, LegEvent, LegId};
use crate::store::calls::CallRecord;
use crate::store::lines::WaitingAudio;
use crate::store::now_ms;
use std::path::PathBuf;
use tokio::sync::mpsc;

/// What an inbound call plays.
#[derive(Debug, Clone, Default)]
pub struct Sounds {
    /// What the caller hears while waiting (ringback: nothing, the carrier rings).
    pub waiting: WaitingAudio,
    /// Hold music, looped.
    pub hold_music: Vec<Clip>,
    /// What the agent hears before the caller.
    pub callback_tone: Vec<Clip>,
}

/// Runs inbound call `call` on `incoming` until the caller's leg is over, carrying out `cmds`
/// and reporting to `report`; then writes `rec`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ctx: CallCtx,
    call: CallId,
    mut rec: CallRecord,
    recording: Option<PathBuf>,
    incoming: Incoming,
    sounds: Sounds,
    cmds: mpsc::UnboundedReceiver<CallCmd>,
    report: mpsc::UnboundedSender<(CallId, CallEvent)>,
) {
    rec.end_reason = take(
        &ctx, call, &mut rec, recording, incoming, sounds, cmds, report,
    )
    .await;
    // Waited until the driver's word, or until the caller left.
    rec.waited_ms.get_or_insert(now_ms() - rec.started_at);
    rec.ended_at = now_ms();
    ctx.log.write(rec).await;
}

#[allow(clippy::too_many_arguments)]
async fn take(
    ctx: &CallCtx,
    call: CallId,
    rec: &mut CallRecord,
    recording: Option<PathBuf>,
    incoming: Incoming,
    sounds: Sounds,
    mut cmds: mpsc::UnboundedReceiver<CallCmd>,
    report: mpsc::UnboundedSender<(CallId, CallEvent)>,
) -> String {
    let tell = |e: CallEvent| {
        let _ = report.send((call, e));
    };
    let id = incoming.leg.id;
    let mut events = incoming.leg.events;
    let mut leg = match ctx.media.open(incoming.local_ip) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%call, error = %e, "no media for an inbound call");
            ctx.sip.reject(id, 503).await;
            tell(CallEvent::Gone { by_customer: false });
            return "no_media".into();
        }
    };
    leg.set_behind_nat(incoming.behind_nat);
    leg.set_encryption(incoming.media_encryption);
    let answer = match leg.answer(&incoming.sdp) {
        Ok(sdp) => sdp,
        Err(e) => {
            tracing::info!(%call, error = %e, "inbound offer unusable; 488");
            ctx.sip.reject(id, 488).await;
            tell(CallEvent::Gone { by_customer: false });
            return "a_unusable_offer".into();
        }
    };
    let waited = |rec: &mut CallRecord| rec.waited_ms = Some(now_ms() - rec.started_at);
    let first = match sounds.waiting {
        WaitingAudio::Ringback => {
            ctx.sip.progress(id, 180, None).await;
            let cmd = loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Some(LegEvent::Ended { .. } | LegEvent::Failed { .. }) | None => {
                            tell(CallEvent::Gone { by_customer: true });
                            return "a_cancelled".into();
                        }
                        Some(_) => {}
                    },
                    cmd = cmds.recv() => break cmd,
                }
            };
            waited(rec);
            if matches!(cmd, Some(CallCmd::HangUp | CallCmd::Cancel) | None) {
                ctx.sip.reject(id, 480).await;
                tell(CallEvent::Gone { by_customer: false });
                return "rejected".into();
            }
            ctx.sip.answer(id, answer).await;
            rec.answered_at = Some(now_ms());
            cmd
        }
        WaitingAudio::HoldMusic => {
            ctx.sip.answer(id, answer).await;
            rec.answered_at = Some(now_ms());
            match hold(
                ctx,
                id,
                &mut leg,
                &mut events,
                &sounds.hold_music,
                &mut cmds,
            )
            .await
            {
                Some(cmd) => {
                    waited(rec);
                    Some(cmd)
                }
                None => {
                    rec.a_quality = record::quality(&mut leg);
                    tell(CallEvent::Gone { by_customer: true });
                    return "a_hangup".into();
                }
            }
        }
    };
    serve(
        ctx,
        call,
        rec,
        recording,
        id,
        leg,
        events,
        cmds,
        first,
        sounds.callback_tone,
        &tell,
    )
    .await
}

/// Loops the hold music until the driver says what to do (its command) or the caller leaves
/// (`None`). A closed command channel is a hang-up.
async fn hold(
    ctx: &CallCtx,
    id: LegId,
    leg: &mut MediaLeg,
    events: &mut mpsc::UnboundedReceiver<LegEvent>,
    music: &[Clip],
    cmds: &mut mpsc::UnboundedReceiver<CallCmd>,
) -> Option<CallCmd> {
    loop {
        let clips = if music.is_empty() {
            vec![Clip::silence_ms(1000)]
        } else {
            music.to_vec()
        };
        tokio::select! {
            played = play(&ctx.sip, &ctx.media, id, leg, events, clips) => {
                if played == Played::LegEnded {
                    return None;
                }
            }
            cmd = cmds.recv() => return Some(cmd.unwrap_or(CallCmd::HangUp)),
        }
    }
}
