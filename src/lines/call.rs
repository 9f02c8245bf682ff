//! The verification calls: one that speaks a code (external mode) and one that must come
//! back to the access number (forward mode).

use super::forward::Forwards;
use crate::call::playback::{play, Played};
use crate::media::engine::MediaEngine;
use crate::media::prompt::{verification_message, Clip};
use crate::sip::leg::{Dial, Failure, LegEvent, SipHandle};
use std::time::Duration;

/// How a verification call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallResult {
    /// `code_spoken`, `short` (hung up before the message ended), `no_answer`, `busy`,
    /// `rejected`, `forwarded`, `not_forwarded`, or a failure (`timeout`, `unavailable` …).
    pub outcome: &'static str,
    /// The final SIP status, when one came.
    pub sip_code: Option<u16>,
}

impl CallResult {
    fn new(outcome: &'static str, sip_code: Option<u16>) -> Self {
        Self { outcome, sip_code }
    }
}

/// The outcome of a call that was never answered.
fn unanswered(failure: Failure, code: Option<u16>) -> CallResult {
    let outcome = match (failure, code) {
        (Failure::NoAnswer, _) | (_, Some(408 | 480)) => "no_answer",
        (_, Some(486 | 600 | 603)) => "busy",
        (Failure::Rejected, _) => "rejected",
        (f, _) => f.as_str(),
    };
    CallResult::new(outcome, code)
}

/// The prompts of "your verification code is …, I repeat: …" in `lang`, else in the
/// daemon's default language.
pub fn message(media: &MediaEngine, lang: &str, code: &str) -> Option<Vec<Clip>> {
    verification_message(media.prompts(), lang, code)
        .or_else(|_| verification_message(media.prompts(), media.language(), code))
        .ok()
}

/// Calls `dial.to`, and once answered speaks `clips` and hangs up.
pub async fn speak(
    sip: &SipHandle,
    media: &MediaEngine,
    dial: Dial,
    clips: Vec<Clip>,
) -> CallResult {
    let local_ip = sip.local_ip_for_trunk(dial.trunk.as_deref());
    let Ok(mut leg) = media.open(local_ip) else {
        return CallResult::new("no_rtp_port", None);
    };
    leg.set_encryption(sip.media_encryption_for(&dial));
    let placed = sip
        .dial(Dial {
            sdp: Some(leg.offer()),
            ..dial
        })
        .await;
    let id = placed.id;
    let mut events = placed.events;
    while let Some(event) = events.recv().await {
        match event {
            LegEvent::Answered { sdp, behind_nat } => {
                leg.set_behind_nat(behind_nat);
                if sdp
                    .as_deref()
                    .map(|s| leg.accept_answer(s))
                    .transpose()
                    .is_err()
                    || leg.codec().is_none()
                {
                    sip.hang_up(id).await;
                    return CallResult::new("no_common_codec", Some(200));
                }
                return match play(sip, media, id, &mut leg, &mut events, clips).await {
                    Played::Finished => {
                        sip.hang_up(id).await;
                        CallResult::new("code_spoken", Some(200))
                    }
                    Played::LegEnded => CallResult::new("short", Some(200)),
                };
            }
            LegEvent::Failed { failure, code, .. } => return unanswered(failure, code),
            LegEvent::Ended { .. } => return CallResult::new("short", Some(200)),
            _ => {}
        }
    }
    CallResult::new("shutdown", None)
}

/// Calls `dial.to` (showing a caller ID from `pool` when one is free) and waits for the call
/// to come back to the access number (matched by `forwards`) within `timeout`; then ends both
/// legs.
pub async fn forwarded(
    sip: &SipHandle,
    media: &MediaEngine,
    forwards: &Forwards,
    dial: Dial,
    pool: &[String],
    timeout: Duration,
) -> CallResult {
    let local_ip = sip.local_ip_for_trunk(dial.trunk.as_deref());
    let Ok(mut leg) = media.open(local_ip) else {
        return CallResult::new("no_rtp_port", None);
    };
    leg.set_encryption(sip.media_encryption_for(&dial));
    let (caller_id, back) = forwards.expect(&dial.to, pool, dial.caller_id.clone());
    let placed = sip
        .dial(Dial {
            sdp: Some(leg.offer()),
            ring_timeout: timeout,
            caller_id,
            ..dial
        })
        .await;
    let id = placed.id;
    let mut events = placed.events;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline, back);
    let mut failed = None;
    loop {
        tokio::select! {
            returned = &mut back => {
                if let Ok(call) = returned {
                    // Proven: end the returning call and the one we placed.
                    sip.reject(call.leg.id, 603).await;
                    sip.hang_up(id).await;
                    return CallResult::new("forwarded", None);
                }
                return CallResult::new("shutdown", None);
            }
            ev = events.recv(), if failed.is_none() => match ev {
                Some(LegEvent::Failed { failure, code, .. }) => {
                    // A forwarding that fails on the far side still may have come back first;
                    // a short grace lets a call already on its way arrive.
                    failed = Some(unanswered(failure, code));
                    deadline.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(2));
                }
                Some(LegEvent::Answered { .. }) | Some(LegEvent::Ended { .. }) | None => {
                    // Answered by a person or voicemail instead of coming back.
                    sip.hang_up(id).await;
                    failed = Some(CallResult::new("not_forwarded", Some(200)));
                    deadline.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(2));
                }
                Some(_) => {}
            },
            _ = &mut deadline => {
                sip.hang_up(id).await;
                return match failed {
                    Some(r) if r.outcome != "no_answer" => r,
                    _ => CallResult::new("not_forwarded", failed.and_then(|r| r.sip_code)),
                };
            }
        }
    }
}
