//! The relay test route, a two-leg B2BUA: the caller's leg waits while a second leg is dialled
//! through a trunk; when it answers, both are answered and bridged — packets relayed as they
//! are when the codecs match, transcoded when they do not — until either side hangs up or its
//! RTP stops, and then the other side is hung up too.

use super::bridge::{BridgeEnd, BridgeLeg};
use crate::media::bridge::Side;
use crate::media::engine::MediaEngine;
use crate::sip::leg::{Dial, Failure, Incoming, LegEvent, LegId, SipHandle};

/// How long the dialled side may ring.
const RING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Relays `call` to `number` through the least loaded trunk that is up.
pub async fn run(sip: SipHandle, media: MediaEngine, call: Incoming, number: String) {
    let a = call.leg.id;
    let mut a_events = call.leg.events;
    let Ok(mut leg_a) = media.open(call.local_ip) else {
        return sip.reject(a, 503).await;
    };
    let Ok(mut leg_b) = media.open(sip.local_ip_for_trunk(None)) else {
        return sip.reject(a, 503).await;
    };
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
                    return sip.hang_up(b).await;
                }
                _ => {}
            },
            ev = b_events.recv() => match ev {
                Some(LegEvent::Progress { code: 180..=183, .. }) => sip.progress(a, 180, None).await,
                Some(LegEvent::Answered { sdp }) => {
                    let accepted = sdp.as_deref().map(|s| leg_b.accept_answer(s));
                    let answer = leg_a.answer(&call.sdp);
                    match (accepted, answer) {
                        (Some(Ok(())), Ok(answer)) => {
                            sip.answer(a, answer).await;
                            break;
                        }
                        _ => {
                            sip.hang_up(b).await;
                            return sip.reject(a, 488).await;
                        }
                    }
                }
                Some(LegEvent::Failed { failure, code, .. }) => {
                    let code = match (failure, code) {
                        (Failure::NoAnswer, _) => 480,
                        (_, Some(c)) if (400..700).contains(&c) => c,
                        _ => 503,
                    };
                    return sip.reject(a, code).await;
                }
                None | Some(LegEvent::Ended { .. }) => return sip.reject(a, 503).await,
                Some(_) => {}
            },
        }
    }
    let (_commands_tx, mut commands) = tokio::sync::mpsc::channel(1);
    let end = super::bridge::run(
        &media,
        BridgeLeg {
            media: &mut leg_a,
            events: &mut a_events,
        },
        BridgeLeg {
            media: &mut leg_b,
            events: &mut b_events,
        },
        &mut commands,
        None,
    )
    .await;
    hang_up_after(&sip, &media, end, a, b).await;
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
