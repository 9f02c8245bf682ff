//! Calls: binds SIP legs to media legs, one task per call. For now the test routes PBX admins
//! use — the echo number, the prompt number and test calls through a trunk; the B2BUA for
//! agents and campaigns grows here.

pub mod agent_leg;
pub mod bridge;
pub mod campaign_call;
pub mod echo;
pub mod playback;
pub mod record;
pub mod relay;
pub mod test_call;

use crate::config::MediaEncryption;
use crate::media::engine::MediaEngine;
use crate::media::leg::MediaLeg;
use crate::sip::leg::{Incoming, LegEvent, LegId, SipHandle};
use std::time::Duration;
use tokio::sync::mpsc;

/// Where inbound calls go.
#[derive(Debug, Clone)]
pub struct Routes {
    /// Calls to this number are answered and their audio echoed.
    pub echo_number: Option<String>,
    /// Echo calls are hung up after this long.
    pub echo_max: Duration,
    /// Calls to this number hear `test_prompt` and are hung up.
    pub prompt_number: Option<String>,
    /// The prompt (file name without `.wav`) the prompt number plays.
    pub test_prompt: String,
    /// Calls to numbers with this prefix are relayed, prefix removed, through a trunk.
    pub relay_prefix: Option<String>,
    /// The first caller to this number is held as a test agent; later callers are bridged
    /// to it in turn.
    pub agent_test_number: Option<String>,
    /// Relayed calls are recorded.
    pub record_relay: bool,
    /// Calls to this number (`lines.access_number`) are handed up to `access` unanswered:
    /// the lines layer matches them to forward verifications.
    pub access_number: Option<String>,
    /// Where calls to the access number go.
    pub access: Option<mpsc::Sender<Incoming>>,
    /// Calls from agents' phones to this number (`sip.agent_login_number`) are handed up to
    /// `agent_logins` unanswered: the agents layer logs the agent in on them.
    pub agent_login_number: Option<String>,
    /// Where calls to the agent login number go.
    pub agent_logins: Option<mpsc::Sender<Incoming>>,
    /// Where calls from trunks that no route above takes go: the callbacks to caller-ID
    /// lines (404 there when no line is called).
    pub callbacks: Option<mpsc::Sender<Incoming>>,
}

/// Routes every inbound call until the SIP endpoint stops: to its route, or 404.
pub async fn route_incoming(
    sip: SipHandle,
    media: MediaEngine,
    mut incoming: mpsc::Receiver<Incoming>,
    routes: Routes,
    log: record::CallLog,
) {
    let test_agent = agent_leg::TestAgentSlot::default();
    while let Some(call) = incoming.recv().await {
        let to = Some(call.to_user.as_str());
        if let (true, Some(up)) = (routes.access_number.as_deref() == to, &routes.access) {
            if let Err(e) = up.try_send(call) {
                let call = e.into_inner();
                tracing::warn!(from = %call.from_user, "access number calls queue full; 503");
                sip.reject(call.leg.id, 503).await;
            }
        } else if let (true, Some(up)) = (
            routes.agent_login_number.as_deref() == to,
            &routes.agent_logins,
        ) {
            if call.trunk.is_some() {
                // Only an INVITE authenticated as an agent's phone names its agent: the From
                // of a call from a trunk (or an `inbound_from` network) proves nothing.
                tracing::info!(from = %call.from_user, "agent login number called from a trunk; 403");
                sip.reject(call.leg.id, 403).await;
            } else if let Err(e) = up.try_send(call) {
                let call = e.into_inner();
                tracing::warn!(from = %call.from_user, "agent login calls queue full; 503");
                sip.reject(call.leg.id, 503).await;
            }
        } else if routes.agent_test_number.as_deref() == to {
            test_agent.route(&sip, &media, call).await;
        } else if routes.echo_number.as_deref() == to {
            tokio::spawn(echo::run(sip.clone(), media.clone(), call, routes.echo_max));
        } else if routes.prompt_number.as_deref() == to {
            let clip = media.prompts().get(media.language(), &routes.test_prompt);
            let clips = clip
                .map(crate::media::prompt::Clip::Audio)
                .into_iter()
                .collect();
            tokio::spawn(playback::run(sip.clone(), media.clone(), call, clips));
        } else if let Some(number) = routes
            .relay_prefix
            .as_deref()
            .and_then(|p| call.to_user.strip_prefix(p))
            .filter(|n| !n.is_empty())
        {
            let number = number.to_string();
            tokio::spawn(relay::run(
                sip.clone(),
                media.clone(),
                log.clone(),
                routes.record_relay,
                call,
                number,
            ));
        } else if let (true, Some(up)) = (call.trunk.is_some(), &routes.callbacks) {
            if let Err(e) = up.try_send(call) {
                let call = e.into_inner();
                tracing::warn!(from = %call.from_user, "inbound calls queue full; 503");
                sip.reject(call.leg.id, 503).await;
            }
        } else {
            tracing::debug!(to = %call.to_user, from = %call.from_user, "no route for call");
            sip.reject(call.leg.id, 404).await;
        }
    }
}

/// An inbound call as a one-leg route keeps it: the numbers and headers of [`Incoming`] are
/// freed when the call is routed, so a held call's task stays small.
struct Inbound {
    id: LegId,
    events: mpsc::UnboundedReceiver<LegEvent>,
    local_ip: std::net::IpAddr,
    sdp: Vec<u8>,
    behind_nat: bool,
    encryption: MediaEncryption,
}

impl From<Incoming> for Inbound {
    fn from(call: Incoming) -> Self {
        Self {
            id: call.leg.id,
            events: call.leg.events,
            local_ip: call.local_ip,
            sdp: call.sdp,
            behind_nat: call.behind_nat,
            encryption: call.media_encryption,
        }
    }
}

/// Opens a media leg for an inbound call and answers it with our SDP; on failure rejects it
/// (503 when no RTP port is free, 488 when the offer has nothing we can use) and says `None`.
/// `behind_nat`: the caller's media may come from another address than its SDP names;
/// `encryption`: whether it may be SRTP (the leg came over TLS).
/// Boxed: inlined, its state (a media leg in flight) would double every held call's task.
fn answer_with_media<'a>(
    sip: &'a SipHandle,
    media: &'a MediaEngine,
    id: LegId,
    local_ip: std::net::IpAddr,
    sdp: Vec<u8>,
    behind_nat: bool,
    encryption: MediaEncryption,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<MediaLeg>> + Send + 'a>> {
    Box::pin(async move {
        let mut leg = match media.open(local_ip) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(leg = %id, error = %e, "no media for the call; 503");
                sip.reject(id, 503).await;
                return None;
            }
        };
        leg.set_behind_nat(behind_nat);
        leg.set_encryption(encryption);
        match leg.answer(&sdp) {
            Ok(answer) => {
                sip.answer(id, answer).await;
                Some(leg)
            }
            Err(e) => {
                // No offer in the INVITE (offer in ACK) or no codec in common: RFC 3264 §6.
                tracing::debug!(leg = %id, error = %e, "unusable offer; 488");
                sip.reject(id, 488).await;
                None
            }
        }
    })
}

/// Applies a leg event to its media; false when the leg is over.
fn on_leg_event(event: Option<LegEvent>, leg: &mut MediaLeg) -> bool {
    match event {
        None | Some(LegEvent::Ended { .. }) | Some(LegEvent::Failed { .. }) => false,
        Some(LegEvent::Reoffer { sdp }) => {
            if let Err(e) = leg.reoffer(&sdp) {
                tracing::debug!(error = %e, "re-offer not applied");
            }
            true
        }
        Some(_) => true,
    }
}

/// Hangs up a leg whose RTP stopped, counting it.
async fn hang_up_dead(sip: &SipHandle, media: &MediaEngine, id: LegId) {
    tracing::info!(leg = %id, "no RTP for media.rtp_timeout; hanging up");
    media.metrics().timeouts.inc();
    sip.hang_up(id).await;
}
