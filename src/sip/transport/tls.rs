//! TLS (RFC 3261 §26): accepted connections present the configured certificate (reloadable);
//! outbound ones verify the peer's certificate against Mozilla's roots and the configured CA,
//! for the name the trunk gives. Once the handshake is done, a connection is served like a TCP
//! one, under the same caps.

use super::tcp::{connection, unsent, Queue, CONNECT_TIMEOUT};
use super::{Peer, Transport, Transports};
use rustls_pki_types::ServerName;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The TLS sides: the server certificate (replaced on reload) and the client settings, with the
/// name to verify for each peer address.
#[derive(Default)]
pub struct TlsSettings {
    server: RwLock<Option<Arc<ServerConfig>>>,
    client: RwLock<Option<Arc<ClientConfig>>>,
    /// Per peer (a trunk): the name its certificate must carry and the roots to check it by.
    peers: Mutex<HashMap<SocketAddr, (ServerName<'static>, Arc<ClientConfig>)>>,
}

impl TlsSettings {
    /// Settings with a server certificate (for the TLS listeners) and a client side.
    pub fn new(server: Option<ServerConfig>, client: Option<ClientConfig>) -> Self {
        Self {
            server: RwLock::new(server.map(Arc::new)),
            client: RwLock::new(client.map(Arc::new)),
            peers: Mutex::default(),
        }
    }

    /// Replaces the server certificate: connections accepted from now on present the new one.
    pub fn set_server(&self, server: ServerConfig) {
        *self.server.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(server));
    }

    /// Connections to `addr` verify the peer's certificate for `name` (a DNS name or an IP
    /// address) with `client`'s roots; other peers are verified for their IP address with the
    /// default client settings. False when `name` is no valid server name.
    pub fn name_peer(&self, addr: SocketAddr, name: &str, client: ClientConfig) -> bool {
        let Ok(n) = ServerName::try_from(name.to_string()) else {
            return false;
        };
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(addr, (n, Arc::new(client)));
        true
    }

    fn server(&self) -> Option<Arc<ServerConfig>> {
        self.server
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether connecting to `addr` presents a client certificate (the peer can then
    /// authenticate us, and RFC 5923 lets it send its requests back over our connection).
    pub(super) fn presents_certificate(&self, addr: SocketAddr) -> bool {
        self.client_for(addr)
            .is_some_and(|(_, c)| c.client_auth_cert_resolver.has_certs())
    }

    /// The name to verify and the settings to connect to `addr` with.
    fn client_for(&self, addr: SocketAddr) -> Option<(ServerName<'static>, Arc<ClientConfig>)> {
        if let Some(p) = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&addr)
        {
            return Some(p.clone());
        }
        let client = self
            .client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        Some((ServerName::IpAddress(addr.ip().into()), client))
    }
}

/// Serves an accepted connection once its TLS handshake is done (with the certificate of the
/// moment).
pub(super) async fn serve_accepted(
    stream: TcpStream,
    from: SocketAddr,
    local: SocketAddr,
    t: Transports,
) {
    let Some(server) = t.tls.server() else {
        return tracing::warn!(%from, "sip tls connection without a certificate configured");
    };
    let handshake = TlsAcceptor::from(server).accept(stream);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(tls)) => connection(tls, from, local, Transport::Tls, t, None).await,
        Ok(Err(e)) => tracing::info!(%from, error = %e, "sip tls handshake failed"),
        Err(_) => tracing::info!(%from, "sip tls handshake timed out"),
    }
}

/// Opens a TLS connection to `addr` (its queue `rx` already registered), verifying the peer's
/// certificate, then serves it.
pub(super) async fn connect(addr: SocketAddr, rx: Queue, t: Transports) {
    let peer = Peer {
        addr,
        transport: Transport::Tls,
    };
    let Some((name, client)) = t.tls.client_for(addr) else {
        return unsent(&t, peer, rx, "no TLS client settings").await;
    };
    let opened = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(t.local_for(addr));
        let tls = TlsConnector::from(client)
            .connect(name.clone(), stream)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        Ok::<_, String>((tls, local))
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, opened).await {
        Ok(Ok((tls, local))) => {
            connection(tls, addr, local, Transport::Tls, t, Some(rx)).await;
        }
        Ok(Err(e)) => {
            tracing::warn!(%addr, name = ?name, error = %e, "sip tls connection failed");
            unsent(&t, peer, rx, &e).await;
        }
        Err(_) => unsent(&t, peer, rx, "timed out").await,
    }
}
