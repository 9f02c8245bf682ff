//! One campaign call's task: places the INVITE with its media, reports the far end's answer
//! or failure, then does what the driver asks with the answered customer — hand them to an
//! agent's phone to be bridged, play the safe-harbour message and hang up, or hang up.

use crate::agents::phone::{CustomerEnd, Handover};
use crate::agents::Agents;
use crate::call::playback::{play, Played};
use crate::dialer::outcome::{call_end, CallEnd};
use crate::dialer::CallId;
use crate::media::engine::MediaEngine;
use crate::media::prompt::Clip;
use crate::sip::leg::{Dial, LegEvent, SipHandle};
use tokio::sync::{mpsc, oneshot};

/// What the driver asks of a call.
#[derive(Debug)]
pub enum CallCmd {
    /// CANCEL while ringing (an answer that crossed it is still reported).
    Cancel,
    /// Hand the answered customer to this agent (user id) to be bridged.
    Bridge(i64),
    /// Play these clips to the answered customer, then hang up.
    Abandon(Vec<Clip>),
    /// Hang up.
    HangUp,
}

/// What a call tells the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// 180/183 came.
    Ringing,
    /// A person answered (200 OK).
    Answered,
    /// Never answered: how, with the final SIP status when one came.
    Failed(CallEnd, Option<u16>),
    /// The customer is with the agent's phone task now.
    Bridged,
    /// The agent had no leg to bridge to: the customer still waits.
    BridgeFailed,
    /// The answered customer's leg is gone; `by_customer` when they hung up.
    Gone {
        /// The customer hung up (not the agent, the abandon message or the driver).
        by_customer: bool,
    },
}

/// What a call needs to run.
#[derive(Clone)]
pub struct CallCtx {
    /// The SIP endpoint.
    pub sip: SipHandle,
    /// The media engine.
    pub media: MediaEngine,
    /// The agents' sessions, for bridging.
    pub agents: Agents,
}

/// Runs call `call`: places `dial` and carries out `cmds` until the customer's leg is over,
/// reporting to `report`.
pub async fn run(
    ctx: CallCtx,
    call: CallId,
    dial: Dial,
    mut cmds: mpsc::UnboundedReceiver<CallCmd>,
    report: mpsc::UnboundedSender<(CallId, CallEvent)>,
) {
    let tell = |e: CallEvent| {
        let _ = report.send((call, e));
    };
    let local_ip = ctx.sip.local_ip_for_trunk(dial.trunk.as_deref());
    let mut leg = match ctx.media.open(local_ip) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%call, error = %e, "no media for a campaign call");
            return tell(CallEvent::Failed(CallEnd::Unavailable, None));
        }
    };
    let placed = ctx
        .sip
        .dial(Dial {
            sdp: Some(leg.offer()),
            ..dial
        })
        .await;
    let id = placed.id;
    let mut events = placed.events;
    let mut rang = false;
    let mut cmds_open = true;
    // Ringing: until an answer or a failure.
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(LegEvent::Progress { code: 180 | 183, .. }) if !rang => {
                    rang = true;
                    tell(CallEvent::Ringing);
                }
                Some(LegEvent::Answered { sdp, behind_nat }) => {
                    leg.set_behind_nat(behind_nat);
                    if let Some(sdp) = sdp {
                        if let Err(e) = leg.accept_answer(&sdp) {
                            tracing::debug!(%call, error = %e, "unusable answer");
                        }
                    }
                    tell(CallEvent::Answered);
                    break;
                }
                Some(LegEvent::Failed { failure, code, .. }) => {
                    return tell(CallEvent::Failed(call_end(failure, code), code));
                }
                Some(LegEvent::Ended { .. }) | None => {
                    return tell(CallEvent::Failed(CallEnd::Timeout, None));
                }
                Some(_) => {}
            },
            cmd = cmds.recv(), if cmds_open => match cmd {
                Some(CallCmd::Cancel | CallCmd::HangUp) => ctx.sip.hang_up(id).await,
                Some(other) => tracing::debug!(%call, ?other, "command for an unanswered call"),
                None => {
                    cmds_open = false;
                    ctx.sip.hang_up(id).await;
                }
            },
        }
    }
    // Answered: waits for the driver's word.
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(LegEvent::Ended { .. } | LegEvent::Failed { .. }) | None => {
                    return tell(CallEvent::Gone { by_customer: true });
                }
                Some(LegEvent::Reoffer { sdp }) => {
                    let _ = leg.reoffer(&sdp);
                }
                Some(_) => {}
            },
            cmd = cmds.recv() => match cmd {
                Some(CallCmd::Bridge(agent)) => {
                    let (done_tx, done) = oneshot::channel();
                    let handover = Box::new(Handover { id, media: leg, events, done: done_tx });
                    match ctx.agents.bridge(agent, call, handover) {
                        Ok(()) => {
                            tell(CallEvent::Bridged);
                            return bridged(&ctx, call, id, done, cmds, tell).await;
                        }
                        Err(back) => {
                            let back = *back;
                            leg = back.media;
                            events = back.events;
                            tell(CallEvent::BridgeFailed);
                        }
                    }
                }
                Some(CallCmd::Abandon(clips)) => {
                    if play(&ctx.sip, &ctx.media, id, &mut leg, &mut events, clips).await
                        == Played::Finished
                    {
                        ctx.sip.hang_up(id).await;
                        return tell(CallEvent::Gone { by_customer: false });
                    }
                    return tell(CallEvent::Gone { by_customer: true });
                }
                Some(CallCmd::Cancel | CallCmd::HangUp) | None => {
                    ctx.sip.hang_up(id).await;
                    return tell(CallEvent::Gone { by_customer: false });
                }
            },
        }
    }
}

/// While the agent's phone task holds the customer: a hang-up asked by the driver ends the
/// customer's leg (the bridge then ends too).
async fn bridged(
    ctx: &CallCtx,
    call: CallId,
    id: crate::sip::leg::LegId,
    mut done: oneshot::Receiver<CustomerEnd>,
    mut cmds: mpsc::UnboundedReceiver<CallCmd>,
    tell: impl Fn(CallEvent),
) {
    let mut cmds_open = true;
    loop {
        tokio::select! {
            end = &mut done => {
                let by_customer = matches!(end, Ok(CustomerEnd::CustomerLeft));
                tracing::debug!(%call, ?end, "bridge ended");
                return tell(CallEvent::Gone { by_customer });
            }
            cmd = cmds.recv(), if cmds_open => match cmd {
                Some(CallCmd::HangUp | CallCmd::Cancel) => ctx.sip.hang_up(id).await,
                Some(_) => {}
                None => cmds_open = false,
            },
        }
    }
}
