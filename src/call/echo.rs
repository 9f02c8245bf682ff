//! The echo test route: answer, send every RTP packet back, hang up at the maximum duration.

use crate::media::{echo, sdp};
use crate::sip::leg::{Incoming, LegEvent, SipHandle};
use std::time::Duration;

/// Serves one call to the echo number until either side hangs up or `max` passes.
pub async fn run(sip: SipHandle, call: Incoming, max: Duration) {
    let id = call.leg.id;
    let offer = sdp::parse_offer(&call.sdp);
    let Some((offer, codec)) = offer.and_then(|o| sdp::choose_codec(&o).map(|c| (o, c))) else {
        // No offer in the INVITE (offer in ACK) or no codec in common: RFC 3264 §6.
        return sip.reject(id, 488).await;
    };
    let media = match echo::start(call.local_ip) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open an RTP socket; refusing the call");
            return sip.reject(id, 503).await;
        }
    };
    let answer = sdp::answer(call.local_ip, media.local.port(), id.0, codec, &offer);
    sip.answer(id, answer.into_bytes()).await;
    let mut events = call.leg.events;
    let limit = tokio::time::sleep(max);
    tokio::pin!(limit);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None | Some(LegEvent::Ended { .. }) | Some(LegEvent::Failed { .. }) => return,
                Some(_) => {}
            },
            _ = &mut limit => {
                tracing::info!(leg = %id, "echo call reached its maximum duration; hanging up");
                return sip.hang_up(id).await;
            }
        }
    }
}
