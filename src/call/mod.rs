//! Calls: binds SIP legs to media. For now the test routes PBX admins use — the echo number
//! and test calls through a trunk; the B2BUA for agents and campaigns grows here.

pub mod echo;
pub mod test_call;

use crate::sip::leg::{Incoming, SipHandle};
use std::time::Duration;
use tokio::sync::mpsc;

/// Where inbound calls go.
#[derive(Debug, Clone)]
pub struct Routes {
    /// Calls to this number are answered and their audio echoed.
    pub echo_number: Option<String>,
    /// Echo calls are hung up after this long.
    pub echo_max: Duration,
}

/// Routes every inbound call until the SIP endpoint stops: to its route, or 404.
pub async fn route_incoming(
    sip: SipHandle,
    mut incoming: mpsc::Receiver<Incoming>,
    routes: Routes,
) {
    while let Some(call) = incoming.recv().await {
        if routes.echo_number.as_deref() == Some(call.to_user.as_str()) {
            tokio::spawn(echo::run(sip.clone(), call, routes.echo_max));
        } else {
            tracing::debug!(to = %call.to_user, from = %call.from_user, "no route for call");
            sip.reject(call.leg.id, 404).await;
        }
    }
}
