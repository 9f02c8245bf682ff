//! The relay test route, a two-leg B2BUA: the caller's leg waits while a second leg is dialled
//! through a trunk; when it answers, both are answered and bridged — packets relayed as they
//! are when the codecs match, transcoded when they do not — until either side hangs up or its
//! RTP stops, and then the other side is hung up too. With `media.record_relay` the bridged
//! call is recorded (caller left, called right); every call leaves a call record.

use super::bridge::{BridgeEnd, BridgeLeg};
use super::record::{self, CallLog};
use crate::media::bridge::Side;
use crate::media::engine::MediaEngine;
use crate::media::recorder::Recorder;
use crate::sip::leg::{Dial, Failure, Incoming, LegEvent, LegId, SipHandle};
use crate::store::calls::CallRecord;
use crate::store::now_ms;

/// How long the dialled side may ring.
const RING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Relays `call` to `number` through the least loaded trunk that is up, recording it when
/// `recorded`; writes the call record at the end.
pub async fn run(
    sip: SipHandle,
    media: MediaEngine,
    log: CallLog,
    recorded: bool,
    call: Incoming,
    number: String,
) {
    let started_at = now_ms();
    let mut rec = CallRecord {
        id: record::new_call_id(),
        route: "relay".into(),
        a_number: call.from_user.clone(),
        b_number: number.clone(),
        started_at,
        answered_at: None,
        ended_at: started_at,
        end_reason: String::new(),
        recording_path: None,
        a_quality: None,
        b_quality: None,
        ..CallRecord::default()
    };
    let recording = recorded.then(|| log.recording_path(&rec.id, started_at));
    rec.end_reason = relay(&sip, &media, call, number, recording, &mut rec).await;
    rec.ended_at = now_ms();
    log.write(rec).await;
}

/// The call itself; says how it ended.
async fn relay(
    sip: &SipHandle,
    media: &MediaEngine,
    call: Incoming,
    number: String,
    recording: Option<std::path::PathBuf>,
    rec: &mut CallRecord,
) -> String {
    let a = call.leg.id;
    let mut a_events = call.leg.events;
    let (Ok(mut leg_a), Ok(mut leg_b)) = (
        media.open(call.local_ip),
        media.open(sip.local_ip_for_trunk(None)),
    ) else {
        sip.reject(a, 503).await;
        return "no_rtp_port".into();
    };
    leg_b.set_encryption(sip.media_encryption_for_trunk(None));
    let dialled = sip
        .dial(Dial {
            caller_id: Some(call.from_user.clone()).filter(|c| !c.is_empty()),
            sdp: Some(leg_b.offer()),
            ring_timeout: RING_TIMEOUT,
            ..Dial::new(number)
        })
        .await;
    let b = dialled.id;
    let mut b_events = dialled.events;
    // Until B answers, A hears ringing; B's failure code is passed back to A.
    loop {
        tokio::select! {
            ev = a_events.recv() => match ev {
                Some(LegEvent::Failed { .. }) | Some(LegEvent::Ended { .. }) | None => {
                    sip.hang_up(b).await;
                    return "a_cancelled".into();
                }
                _ => {}
            },
            ev = b_events.recv() => match ev {
                Some(LegEvent::Progress { code: 180..=183, .. }) => sip.progress(a, 180, None).await,
                Some(LegEvent::Answered { sdp, behind_nat }) => {
                    leg_b.set_behind_nat(behind_nat);
                    leg_a.set_behind_nat(call.behind_nat);
                    leg_a.set_encryption(call.media_encryption);
                    let accepted = sdp.as_deref().map(|s| leg_b.accept_answer(s));
                    let answer = leg_a.answer(&call.sdp);
                    match (accepted, answer) {
                        (Some(Ok(())), Ok(answer)) => {
                            sip.answer(a, answer).await;
                            break;
                        }
                        _ => {
                            sip.hang_up(b).await;
                            sip.reject(a, 488).await;
                            return "no_common_codec".into();
                        }
                    }
                }
                Some(LegEvent::Failed { failure, code, .. }) => {
                    let code = match (failure, code) {
                        (Failure::NoAnswer, _) => 480,
                        (_, Some(c)) if (400..700).contains(&c) => c,
                        _ => 503,
                    };
                    sip.reject(a, code).await;
                    return format!("b_failed_{code}");
                }
                None | Some(LegEvent::Ended { .. }) => {
                    sip.reject(a, 503).await;
                    return "b_failed_503".into();
                }
                Some(_) => {}
            },
        }
    }
    rec.answered_at = Some(now_ms());
    let mut recorder = recording.and_then(|path| match Recorder::create(&path) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "call not recorded");
            None
        }
    });
    // Nothing drives the relay's bridge; the sender stays here so it runs to the end.
    let (_commands_tx, mut commands) = tokio::sync::mpsc::channel(1);
    let end = super::bridge::run(
        media,
        BridgeLeg {
            media: &mut leg_a,
            events: &mut a_events,
        },
        BridgeLeg {
            media: &mut leg_b,
            events: &mut b_events,
        },
        &mut commands,
        recorder.as_mut(),
    )
    .await;
    rec.a_quality = record::quality(&mut leg_a);
    rec.b_quality = record::quality(&mut leg_b);
    if let Some(r) = recorder {
        match r.finish() {
            Ok(info) => {
                tracing::info!(path = %info.path.display(), seconds = info.duration_seconds, "recording closed");
                rec.recording_path = Some(info.path.display().to_string());
            }
            Err(e) => tracing::warn!(error = %e, "recording not finished"),
        }
    }
    hang_up_after(sip, media, end, a, b).await;
    end_reason(end)
}

/// The call record's `end_reason` for how a bridge ended.
pub(super) fn end_reason(end: BridgeEnd) -> String {
    match end {
        BridgeEnd::Ended(side) => format!("{}_hangup", side.as_str()),
        BridgeEnd::Dead(side) => format!("{}_rtp_timeout", side.as_str()),
        BridgeEnd::Unbridged => "unbridged".into(),
    }
}

/// Hangs up what is still up after a bridge of `a` and `b` ended.
pub(super) async fn hang_up_after(
    sip: &SipHandle,
    media: &MediaEngine,
    end: BridgeEnd,
    a: LegId,
    b: LegId,
) {
    let id = |side| if side == Side::A { a } else { b };
    match end {
        BridgeEnd::Ended(side) => sip.hang_up(id(side.other())).await,
        BridgeEnd::Dead(side) => {
            super::hang_up_dead(sip, media, id(side)).await;
            sip.hang_up(id(side.other())).await;
        }
        BridgeEnd::Unbridged => {
            sip.hang_up(a).await;
            sip.hang_up(b).await;
        }
    }
}
