//! The relay test route, a two-leg B2BUA: the caller's leg waits while a second leg is dialled
//! through a trunk; when it answers, both are answered and bridged — packets relayed as they
//! are when the codecs match, transcoded when they do not — until either side hangs up or its
//! RTP stops, and then the other side is hung up too.

use crate::media::codec::transcode;
use crate::media::engine::MediaEngine;
use crate::media::leg::{Input, MediaLeg, MAX_DATAGRAM};
use crate::media::rtp::{Received, PT_COMFORT_NOISE};
use crate::sip::leg::{Dial, Failure, Incoming, LegEvent, LegId, SipHandle};
use std::net::SocketAddr;

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
    bridge(
        &sip,
        &media,
        (a, &mut leg_a, &mut a_events),
        (b, &mut leg_b, &mut b_events),
    )
    .await;
}

type Side<'a> = (
    LegId,
    &'a mut MediaLeg,
    &'a mut tokio::sync::mpsc::UnboundedReceiver<LegEvent>,
);

/// Moves media both ways until one side ends; then ends the other.
async fn bridge(sip: &SipHandle, media: &MediaEngine, a: Side<'_>, b: Side<'_>) {
    let (a_id, leg_a, a_events) = a;
    let (b_id, leg_b, b_events) = b;
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    let ended = loop {
        tokio::select! {
            ev = a_events.recv() => if !super::on_leg_event(ev, leg_a) { break b_id },
            ev = b_events.recv() => if !super::on_leg_event(ev, leg_b) { break a_id },
            input = leg_a.input() => match input {
                Input::Rtp => forward(leg_a, leg_b, &mut scratch, &mut out),
                Input::Timer if leg_a.is_dead() => {
                    super::hang_up_dead(sip, media, a_id).await;
                    break b_id;
                }
                Input::Timer | Input::Handled => {}
            },
            input = leg_b.input() => match input {
                Input::Rtp => forward(leg_b, leg_a, &mut scratch, &mut out),
                Input::Timer if leg_b.is_dead() => {
                    super::hang_up_dead(sip, media, b_id).await;
                    break a_id;
                }
                Input::Timer | Input::Handled => {}
            },
        }
    };
    sip.hang_up(ended).await;
}

/// The datagrams waiting on `from_leg`, relayed onto `to_leg`'s stream.
fn forward(
    from_leg: &mut MediaLeg,
    to_leg: &mut MediaLeg,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    let mut buf = [0u8; MAX_DATAGRAM];
    while let Some((n, source)) = from_leg.recv_rtp(&mut buf) {
        forward_one(from_leg, to_leg, source, &buf[..n], scratch, out);
    }
}

/// One datagram received on `from_leg`, relayed onto `to_leg`'s stream: as is when the codecs
/// match, transcoded when they differ; telephone-events as events.
fn forward_one(
    from_leg: &mut MediaLeg,
    to_leg: &mut MediaLeg,
    source: SocketAddr,
    datagram: &[u8],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    let now = tokio::time::Instant::now().into_std();
    let (from_codec, to_codec) = (from_leg.codec(), to_leg.codec());
    let Some(rx) = from_leg.session() else { return };
    let received = rx.on_rtp(now, source, datagram);
    let Some(tx) = to_leg.session() else { return };
    out.clear();
    match received {
        Received::Media(pkt, payload) => match (from_codec, to_codec) {
            // Comfort noise (RFC 3389) is codec-independent: never transcoded.
            (Some(f), Some(t)) if f != t && pkt.payload_type != PT_COMFORT_NOISE => {
                scratch.clear();
                transcode(f, t, payload, scratch);
                tx.build_relayed(now, &pkt, scratch, out);
            }
            _ => tx.build_relayed(now, &pkt, payload, out),
        },
        Received::DtmfPacket(pkt, payload) => tx.build_relayed_event(now, &pkt, payload, out),
        Received::Dtmf(_) | Received::Dropped(_) => {}
    }
    if !out.is_empty() {
        to_leg.send_rtp(out);
    }
}
