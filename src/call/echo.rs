//! The echo test route: answer, send every RTP packet back on our own stream to where the
//! caller's media comes from (its SDP address, or behind a `nat` trunk its latched stream), hang
//! up at the maximum duration or when the caller's RTP stops.

use crate::media::engine::MediaEngine;
use crate::media::leg::{Input, MediaLeg, MAX_DATAGRAM};
use crate::media::rtp::Received;
use crate::sip::leg::{Incoming, LegEvent, LegId, SipHandle};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Serves one call to the echo number until either side hangs up or `max` passes.
pub fn run(
    sip: SipHandle,
    media: MediaEngine,
    call: Incoming,
    max: Duration,
) -> impl Future<Output = ()> + Send {
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
        serve(&sip, &media, id, &mut leg, &mut events, max).await
    }
}

async fn serve(
    sip: &SipHandle,
    media: &MediaEngine,
    id: LegId,
    leg: &mut MediaLeg,
    events: &mut UnboundedReceiver<LegEvent>,
    max: Duration,
) {
    let mut out = Vec::new();
    let limit = tokio::time::sleep(max);
    tokio::pin!(limit);
    loop {
        tokio::select! {
            ev = events.recv() => if !super::on_leg_event(ev, leg) {
                return;
            },
            input = leg.input() => match input {
                Input::Rtp => {
                    let mut buf = [0u8; MAX_DATAGRAM];
                    while let Some((n, from)) = leg.recv_rtp(&mut buf) {
                        let now = tokio::time::Instant::now().into_std();
                        let Some(s) = leg.session() else { continue };
                        match s.on_rtp(now, from, &buf[..n]) {
                            Received::Media(pkt, payload) | Received::DtmfPacket(pkt, payload) => {
                                out.clear();
                                s.build_relayed(now, &pkt, payload, &mut out);
                                leg.send_rtp(&out);
                            }
                            Received::Dtmf(d) => tracing::info!(leg = %id, digit = %d.digit, "dtmf received"),
                            Received::Dropped(_) => {}
                        }
                    }
                }
                Input::Timer if leg.is_dead() => {
                    return super::hang_up_dead(sip, media, id).await;
                }
                Input::Timer | Input::Handled => {}
            },
            _ = &mut limit => {
                tracing::info!(leg = %id, "echo call reached its maximum duration; hanging up");
                return sip.hang_up(id).await;
            }
        }
    }
}
