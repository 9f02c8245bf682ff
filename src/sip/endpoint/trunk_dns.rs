//! Trunk host names kept current: each trunk is resolved at start-up and again when its DNS
//! answer expires, so a carrier's DNS change reaches a running daemon; the endpoint is told of
//! the new addresses.

use super::SipError;
use crate::config::{TransportKind, TrunkConfig};
use crate::sip::dns::{Resolution, Resolver};
use crate::sip::transport::{TlsSettings, Transport};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Wait before asking again after a lookup failed (the last good addresses stay in use).
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// A trunk's addresses from a fresh lookup, in the order to try them.
#[derive(Debug)]
pub(super) struct TrunkTargets {
    /// The trunk's index in configuration order.
    pub index: usize,
    /// Its addresses.
    pub targets: Vec<SocketAddr>,
}

/// Resolves one trunk's host (RFC 3263), logging the outcome.
async fn resolve(resolver: &Resolver, t: &TrunkConfig) -> Option<Resolution> {
    match resolver
        .resolve_sip(&t.host, t.port, Transport::from(t.transport))
        .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(trunk = %t.name, host = %t.host, error = %e, "cannot resolve trunk host; trunk down, its INVITEs refused");
            None
        }
    }
}

/// Every trunk's addresses at start-up (empty when its host does not resolve), the TLS names
/// to verify set for each, and when each trunk is due to be resolved again.
pub(super) async fn resolve_all(
    resolver: &Resolver,
    trunks: &[TrunkConfig],
    tls: &TlsSettings,
) -> Result<(Vec<Vec<SocketAddr>>, Vec<Instant>), SipError> {
    let mut targets = Vec::with_capacity(trunks.len());
    let mut due = Vec::with_capacity(trunks.len());
    for t in trunks {
        match resolve(resolver, t).await {
            Some(r) => {
                tracing::info!(trunk = %t.name, host = %t.host, addrs = ?r.targets, "trunk resolved");
                name_tls_peers(tls, t, &r.targets)?;
                targets.push(r.targets);
                due.push(r.valid_until);
            }
            None => {
                targets.push(Vec::new());
                due.push(Instant::now() + RETRY_AFTER);
            }
        }
    }
    Ok((targets, due))
}

/// A TLS trunk's certificate must carry its name and chain to its CA or a public root: the
/// name and roots are set for each of its addresses.
fn name_tls_peers(
    tls: &TlsSettings,
    t: &TrunkConfig,
    addrs: &[SocketAddr],
) -> Result<(), SipError> {
    if t.transport != TransportKind::Tls {
        return Ok(());
    }
    let name = t.tls_server_name.as_deref().unwrap_or(&t.host);
    let name = name.trim_matches(['[', ']']);
    let identity = t
        .tls_client_certificate
        .as_deref()
        .zip(t.tls_client_key.as_deref());
    let client = crate::tls::client_config_with(t.tls_ca.as_deref(), identity)?;
    for &addr in addrs {
        if !tls.name_peer(addr, name, client.clone()) {
            tracing::warn!(trunk = %t.name, name, "not a name a certificate can carry; verified for the address");
        }
    }
    Ok(())
}

/// Resolves each trunk again when its answer expires (`due`), until `stop`, and sends the
/// addresses into `tx`. The endpoint keeps the address in use when it is still listed.
pub(super) async fn keep_current(
    resolver: Resolver,
    trunks: Vec<TrunkConfig>,
    mut due: Vec<Instant>,
    tls: Arc<TlsSettings>,
    tx: mpsc::Sender<TrunkTargets>,
    stop: CancellationToken,
) {
    loop {
        let Some((index, &at)) = due.iter().enumerate().min_by_key(|(_, at)| **at) else {
            return;
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(at.into()) => {}
        }
        let t = &trunks[index];
        let Some(r) = resolve(&resolver, t).await else {
            due[index] = Instant::now() + RETRY_AFTER;
            continue;
        };
        due[index] = r.valid_until;
        tracing::debug!(trunk = %t.name, addrs = ?r.targets, "trunk resolved again");
        if let Err(e) = name_tls_peers(&tls, t, &r.targets) {
            tracing::warn!(trunk = %t.name, error = %e, "trunk tls settings");
        }
        let update = TrunkTargets {
            index,
            targets: r.targets,
        };
        if tx.send(update).await.is_err() {
            return;
        }
    }
}
