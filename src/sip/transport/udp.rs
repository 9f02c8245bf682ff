//! UDP receive loop: one datagram is one message.

use super::{Inbound, Peer, Transport, Transports};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;

/// Largest UDP payload; anything bigger than the configured limit is dropped after reading.
const MAX_DATAGRAM: usize = 65_535;

/// Reads datagrams until shutdown and forwards them to the endpoint.
pub(super) async fn receive(sock: Arc<UdpSocket>, local: SocketAddr, t: Transports) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = tokio::select! {
            _ = t.stop.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(r) => r,
                // ICMP port unreachable from an earlier send shows up here on Linux; keep going.
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive error");
                    continue;
                }
            },
        };
        if n > t.config.max_message_size {
            tracing::debug!(%from, size = n, "datagram over sip.max_message_size dropped");
            continue;
        }
        // Bare CRLF keepalives (RFC 5626) carry nothing for the endpoint.
        if buf[..n].iter().all(|b| matches!(b, b'\r' | b'\n')) {
            continue;
        }
        // Over the byte budget the endpoint is far behind: drop, as a full socket buffer would.
        let Ok(held) = t.budget.clone().try_acquire_many_owned(n as u32) else {
            tracing::debug!(%from, size = n, "inbound queue full; datagram dropped");
            continue;
        };
        let msg = Inbound::Message {
            bytes: buf[..n].to_vec(),
            peer: Peer {
                addr: from,
                transport: Transport::Udp,
            },
            local,
            held: Some(held),
        };
        if t.inbound.send(msg).await.is_err() {
            return;
        }
    }
}
