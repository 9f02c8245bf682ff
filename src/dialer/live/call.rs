//! One campaign call's task: places the INVITE with its media, reports the far end's answer
//! or failure, then does what the driver asks with the answered customer — hand them to an
//! agent's phone to be bridged (recorded when the campaign records), play the safe-harbour
//! message and hang up, or hang up — and writes the call record at the end.

use crate::agents::phone::{Bridged, CustomerEnd, Handover};
use crate::agents::Agents;
use crate::call::playback::{play, Played};
use crate::call::record::{self, CallLog};
use crate::dialer::outcome::{call_end, CallEnd};
use crate::dialer::CallId;
use crate::media::engine::MediaEngine;
use crate::media::leg::MediaLeg;
use crate::media::prompt::Clip;
use crate::sip::leg::{Dial, Failure, LegEvent, LegId, SipHandle};
use crate::store::calls::CallRecord;
use crate::store::now_ms;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How long a call refused by the trunks' `max_cps` waits before it is placed again.
const REDIAL_AFTER: Duration = Duration::from_millis(50);
/// How often it is placed again before the refusal stands (a second's worth).
const MAX_REDIALS: u32 = 20;

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
    /// A person answered (200 OK), at this instant (the driver may hear of it later).
    Answered(Instant),
    /// Never answered: how, with the final SIP status when one came.
    Failed(CallEnd, Option<u16>),
    /// The customer is with the agent's phone task now, since this instant.
    Bridged(Instant),
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
    /// Where call records and recordings go.
    pub log: CallLog,
}

/// Runs call `call`: places `dial` and carries out `cmds` until the customer's leg is over,
/// reporting to `report`; then writes `rec`, recorded to `recording` if given.
pub async fn run(
    ctx: CallCtx,
    call: CallId,
    mut rec: CallRecord,
    recording: Option<PathBuf>,
    dial: Dial,
    cmds: mpsc::UnboundedReceiver<CallCmd>,
    report: mpsc::UnboundedSender<(CallId, CallEvent)>,
) {
    rec.end_reason = place(&ctx, call, &mut rec, recording, dial, cmds, report).await;
    rec.ended_at = now_ms();
    ctx.log.write(rec).await;
}

/// The call itself; says how it ended (the record's `end_reason`).
async fn place(
    ctx: &CallCtx,
    call: CallId,
    rec: &mut CallRecord,
    recording: Option<PathBuf>,
    dial: Dial,
    mut cmds: mpsc::UnboundedReceiver<CallCmd>,
    report: mpsc::UnboundedSender<(CallId, CallEvent)>,
) -> String {
    let tell = |e: CallEvent| {
        let _ = report.send((call, e));
    };
    let local_ip = ctx.sip.local_ip_for_trunk(dial.trunk.as_deref());
    let mut leg = match ctx.media.open(local_ip) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%call, error = %e, "no media for a campaign call");
            tell(CallEvent::Failed(CallEnd::Unavailable, None));
            return "no_media".into();
        }
    };
    leg.set_encryption(ctx.sip.media_encryption_for(&dial));
    let dial = Dial {
        sdp: Some(leg.offer()),
        ..dial
    };
    let placed = ctx.sip.dial(dial.clone()).await;
    let mut id = placed.id;
    let mut events = placed.events;
    let mut redials = 0;
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
                    rec.answered_at = Some(now_ms());
                    tell(CallEvent::Answered(Instant::now()));
                    break;
                }
                // The core paces to the trunks' max_cps on its own clock: a call it places
                // a moment before the trunk's bucket has the token waits for it, rather than
                // spend the contact's attempt on a call never sent.
                Some(LegEvent::Failed { failure: Failure::RateLimited, .. })
                    if redials < MAX_REDIALS =>
                {
                    redials += 1;
                    tokio::time::sleep(REDIAL_AFTER).await;
                    let placed = ctx.sip.dial(dial.clone()).await;
                    id = placed.id;
                    events = placed.events;
                }
                Some(LegEvent::Failed { failure, code, .. }) => {
                    tell(CallEvent::Failed(call_end(failure, code), code));
                    return match code {
                        Some(code) => format!("a_failed_{code}"),
                        None => format!("a_failed_{}", failure.as_str()),
                    };
                }
                Some(LegEvent::Ended { .. }) | None => {
                    tell(CallEvent::Failed(CallEnd::Timeout, None));
                    return "a_failed".into();
                }
                Some(_) => {}
            },
            cmd = cmds.recv(), if cmds_open => match cmd {
                // An answer crossing the CANCEL still comes: the queue takes or abandons it.
                Some(CallCmd::Cancel) => ctx.sip.cancel(id).await,
                Some(CallCmd::HangUp) => ctx.sip.hang_up(id).await,
                Some(other) => tracing::debug!(%call, ?other, "command for an unanswered call"),
                None => {
                    cmds_open = false;
                    ctx.sip.hang_up(id).await;
                }
            },
        }
    }
    serve(
        ctx,
        call,
        rec,
        recording,
        id,
        leg,
        events,
        cmds,
        None,
        Vec::new(),
        &tell,
    )
    .await
}

/// An answered customer (`id`, its `leg` and `events`) waiting for the driver's word, which
/// may have come already (`first`): bridged to an agent's phone — who hears `agent_tone`
/// first — the abandon message played, or hung up. Says how the call ended.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve(
    ctx: &CallCtx,
    call: CallId,
    rec: &mut CallRecord,
    recording: Option<PathBuf>,
    id: LegId,
    mut leg: MediaLeg,
    mut events: mpsc::UnboundedReceiver<LegEvent>,
    mut cmds: mpsc::UnboundedReceiver<CallCmd>,
    mut first: Option<CallCmd>,
    agent_tone: Vec<Clip>,
    tell: &impl Fn(CallEvent),
) -> String {
    loop {
        let cmd = match first.take() {
            Some(cmd) => Some(cmd),
            None => tokio::select! {
                ev = events.recv() => match ev {
                    Some(LegEvent::Ended { .. } | LegEvent::Failed { .. }) | None => {
                        rec.a_quality = record::quality(&mut leg);
                        tell(CallEvent::Gone { by_customer: true });
                        return "a_hangup".into();
                    }
                    Some(LegEvent::Reoffer { sdp }) => {
                        let _ = leg.reoffer(&sdp);
                        continue;
                    }
                    Some(_) => continue,
                },
                cmd = cmds.recv() => cmd,
            },
        };
        match cmd {
            Some(CallCmd::Bridge(agent)) => {
                let (done_tx, done) = oneshot::channel();
                let handover = Box::new(Handover {
                    id,
                    media: leg,
                    events,
                    recording: recording.clone(),
                    agent_tone: agent_tone.clone(),
                    done: done_tx,
                });
                match ctx.agents.bridge(agent, call, handover) {
                    Ok(()) => {
                        rec.b_number = format!("agent:{agent}");
                        tell(CallEvent::Bridged(Instant::now()));
                        let b = bridged(ctx, call, id, done, cmds, tell).await;
                        let Some(b) = b else {
                            return "b_lost".into();
                        };
                        rec.recording_path = b.recording;
                        rec.a_quality = b.customer;
                        rec.b_quality = b.agent;
                        return match b.end {
                            CustomerEnd::CustomerLeft => "a_hangup",
                            CustomerEnd::Unbridged => "b_hangup",
                            CustomerEnd::AgentLeft => "b_lost",
                        }
                        .into();
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
                let played = play(&ctx.sip, &ctx.media, id, &mut leg, &mut events, clips).await;
                rec.a_quality = record::quality(&mut leg);
                if played == Played::Finished {
                    ctx.sip.hang_up(id).await;
                    tell(CallEvent::Gone { by_customer: false });
                    return "abandoned".into();
                }
                tell(CallEvent::Gone { by_customer: true });
                return "abandoned_a_hangup".into();
            }
            Some(CallCmd::Cancel | CallCmd::HangUp) | None => {
                rec.a_quality = record::quality(&mut leg);
                ctx.sip.hang_up(id).await;
                tell(CallEvent::Gone { by_customer: false });
                return "hung_up".into();
            }
        }
    }
}

/// While the agent's phone task holds the customer: a hang-up asked by the driver ends the
/// customer's leg (the bridge then ends too). What the bridge left, if it said.
async fn bridged(
    ctx: &CallCtx,
    call: CallId,
    id: LegId,
    mut done: oneshot::Receiver<Bridged>,
    mut cmds: mpsc::UnboundedReceiver<CallCmd>,
    tell: &impl Fn(CallEvent),
) -> Option<Bridged> {
    let mut cmds_open = true;
    loop {
        tokio::select! {
            end = &mut done => {
                tracing::debug!(%call, ?end, "bridge ended");
                let by_customer = matches!(&end, Ok(b) if b.end == CustomerEnd::CustomerLeft);
                tell(CallEvent::Gone { by_customer });
                return end.ok();
            }
            cmd = cmds.recv(), if cmds_open => match cmd {
                Some(CallCmd::HangUp | CallCmd::Cancel) => ctx.sip.hang_up(id).await,
                Some(_) => {}
                None => cmds_open = false,
            },
        }
    }
}
