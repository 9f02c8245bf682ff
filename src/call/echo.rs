//! The echo test route: answer, send every RTP packet back on our own stream (latching, so it
//! works behind NAT), hang up at the maximum duration or when the caller's RTP stops.

use crate::media::engine::MediaEngine;
use crate::media::leg::Input;
use crate::media::rtp::Received;
use crate::sip::leg::{Incoming, SipHandle};
use std::time::Duration;

/// Serves one call to the echo number until either side hangs up or `max` passes.
pub async fn run(sip: SipHandle, media: MediaEngine, call: Incoming, max: Duration) {
    let id = call.leg.id;
    let Some(mut leg) = super::answer_with_media(&sip, &media, &call).await else {
        return;
    };
    let mut events = call.leg.events;
    let mut buf = vec![0u8; crate::media::leg::MAX_DATAGRAM];
    let mut out = Vec::new();
    let limit = tokio::time::sleep(max);
    tokio::pin!(limit);
    loop {
        tokio::select! {
            ev = events.recv() => if !super::on_leg_event(ev, &mut leg) {
                return;
            },
            input = leg.input(&mut buf) => match input {
                Input::Rtp(n, from) => {
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
                Input::Timer if leg.is_dead() => {
                    return super::hang_up_dead(&sip, &media, id).await;
                }
                Input::Timer | Input::Rtcp => {}
            },
            _ = &mut limit => {
                tracing::info!(leg = %id, "echo call reached its maximum duration; hanging up");
                return sip.hang_up(id).await;
            }
        }
    }
}
