//! SIP transports: UDP and TCP sockets on the `[sip] listen` addresses (same port for both),
//! and TLS (RFC 3261 §26, rustls) on the `sip.tls_listen` addresses.
//!
//! Thin tokio code: it moves bytes between sockets and the endpoint's channel and knows nothing
//! of SIP beyond stream framing. TLS connections are framed and capped like TCP ones.

mod limits;
mod tcp;
mod tls;
mod udp;

pub use limits::{ConnectionLimits, Permit, Refused};
pub use tls::TlsSettings;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Transport protocol of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unreliable: the transaction layer retransmits.
    Udp,
    /// Reliable, stream framed by Content-Length.
    Tcp,
    /// TCP under TLS: reliable, framed like TCP.
    Tls,
}

impl Transport {
    /// True for stream transports, where SIP does not retransmit.
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }
    /// The Via transport token.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

/// A remote address and the transport to reach it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Remote socket address.
    pub addr: SocketAddr,
    /// Transport.
    pub transport: Transport,
}

/// What the transports hand to the endpoint.
#[derive(Debug)]
pub enum Inbound {
    /// One whole SIP message (a datagram or one framed stream message).
    Message {
        /// Raw bytes.
        bytes: Vec<u8>,
        /// Who sent it.
        peer: Peer,
        /// The local address it arrived on.
        local: SocketAddr,
        /// Its share of the inbound byte budget, given back when the endpoint drops it.
        held: Option<OwnedSemaphorePermit>,
    },
    /// Bytes that could not be framed (TCP): the connection was closed.
    FramingError {
        /// Who sent it.
        peer: Peer,
        /// What was wrong.
        reason: String,
    },
    /// A message to this peer could not be sent (connection refused, reset, closed).
    SendFailed {
        /// The peer.
        peer: Peer,
        /// The bytes that were not sent.
        bytes: Vec<u8>,
    },
}

/// Transport errors.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A listen address cannot be bound.
    #[error("cannot listen on sip.listen {addr} ({transport:?}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which transport.
        transport: Transport,
        /// The OS error.
        source: std::io::Error,
    },
    /// No socket of the right address family to send from.
    #[error("no {transport:?} listener for {addr}")]
    NoRoute {
        /// Destination.
        addr: SocketAddr,
        /// Transport.
        transport: Transport,
    },
    /// The kernel refused the datagram (buffer full, unreachable).
    #[error("send to {addr} failed: {source}")]
    Send {
        /// Destination.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Transport settings.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Largest message accepted.
    pub max_message_size: usize,
    /// TCP connections that carry no whole message for this long are closed.
    pub tcp_idle_timeout: Duration,
    /// A message begun on a TCP connection must be complete within this.
    pub tcp_message_timeout: Duration,
    /// Most inbound TCP connections at once.
    pub tcp_max_connections: usize,
    /// Most inbound TCP connections from one IP address.
    pub tcp_max_connections_per_source: usize,
    /// Counts connections refused over a cap, by reason.
    pub tcp_refused: prometheus::IntCounterVec,
    /// Most bytes of received messages waiting for the endpoint: beyond it datagrams are
    /// dropped and TCP readers wait, so a flood of large messages cannot fill memory.
    pub queue_bytes: usize,
}

/// Open TCP and TLS connections by remote address and transport: each has a writer queue.
type Connections = Arc<Mutex<HashMap<Peer, mpsc::UnboundedSender<Vec<u8>>>>>;

/// The bound sockets, shared by the receive tasks and the endpoint that sends.
#[derive(Clone)]
pub struct Transports {
    udp: Vec<Arc<tokio::net::UdpSocket>>,
    local: Vec<SocketAddr>,
    /// The TLS listeners' addresses.
    tls_local: Vec<SocketAddr>,
    tls: Arc<TlsSettings>,
    connections: Connections,
    limits: ConnectionLimits,
    inbound: mpsc::Sender<Inbound>,
    budget: Arc<Semaphore>,
    config: TransportConfig,
    stop: CancellationToken,
}

impl Transports {
    /// Binds UDP and TCP on every address and starts the receive tasks. With port 0, UDP picks
    /// a port and TCP takes the same one.
    pub async fn bind(
        addrs: &[SocketAddr],
        config: TransportConfig,
        inbound: mpsc::Sender<Inbound>,
        stop: CancellationToken,
    ) -> Result<Self, TransportError> {
        Self::bind_with_tls(
            addrs,
            &[],
            Arc::new(TlsSettings::default()),
            config,
            inbound,
            stop,
        )
        .await
    }

    /// Like [`Transports::bind`], with TLS listeners on `tls_addrs` (server settings from
    /// `tls`, which also holds the client side for outbound TLS).
    pub async fn bind_with_tls(
        addrs: &[SocketAddr],
        tls_addrs: &[SocketAddr],
        tls: Arc<TlsSettings>,
        config: TransportConfig,
        inbound: mpsc::Sender<Inbound>,
        stop: CancellationToken,
    ) -> Result<Self, TransportError> {
        let mut udp_sockets = Vec::new();
        let mut listeners = Vec::new();
        let mut local = Vec::new();
        for &addr in addrs {
            let (udp, tcp) = bind_pair(addr).await?;
            local.push(udp.local_addr().map_err(|source| TransportError::Bind {
                addr,
                transport: Transport::Udp,
                source,
            })?);
            udp_sockets.push(Arc::new(udp));
            listeners.push(tcp);
        }
        let mut tls_listeners = Vec::new();
        let mut tls_local = Vec::new();
        for &addr in tls_addrs {
            let bind = |source| TransportError::Bind {
                addr,
                transport: Transport::Tls,
                source,
            };
            let l = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
            tls_local.push(l.local_addr().map_err(bind)?);
            tls_listeners.push(l);
        }
        let transports = Transports {
            udp: udp_sockets,
            local,
            tls_local,
            tls,
            connections: Arc::default(),
            limits: ConnectionLimits::new(
                config.tcp_max_connections,
                config.tcp_max_connections_per_source,
            ),
            inbound,
            budget: Arc::new(Semaphore::new(
                config.queue_bytes.min(Semaphore::MAX_PERMITS),
            )),
            config,
            stop,
        };
        for (sock, &addr) in transports.udp.iter().zip(&transports.local) {
            tokio::spawn(udp::receive(sock.clone(), addr, transports.clone()));
        }
        for (listener, &addr) in listeners.into_iter().zip(&transports.local) {
            tokio::spawn(tcp::accept(
                listener,
                addr,
                transports.clone(),
                Transport::Tcp,
            ));
        }
        for (listener, &addr) in tls_listeners.into_iter().zip(&transports.tls_local) {
            tokio::spawn(tcp::accept(
                listener,
                addr,
                transports.clone(),
                Transport::Tls,
            ));
        }
        Ok(transports)
    }

    /// The bound addresses (UDP and TCP share each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// The bound TLS addresses.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_local
    }

    /// The TLS settings (certificates to reload, names of TLS peers).
    pub fn tls(&self) -> &Arc<TlsSettings> {
        &self.tls
    }

    /// The local address to put in Via/Contact when talking to `dest` over `transport`: for
    /// TLS, a TLS listener's port.
    pub fn local_for_transport(&self, dest: SocketAddr, transport: Transport) -> SocketAddr {
        let mut local = self.local_for(dest);
        if transport == Transport::Tls {
            if let Some(l) = self
                .tls_local
                .iter()
                .find(|l| l.is_ipv4() == dest.is_ipv4())
                .or(self.tls_local.first())
            {
                local.set_port(l.port());
            }
        }
        local
    }

    /// The local address to put in Via/Contact when talking to `dest`.
    pub fn local_for(&self, dest: SocketAddr) -> SocketAddr {
        let port = self
            .local
            .iter()
            .find(|l| l.is_ipv4() == dest.is_ipv4())
            .unwrap_or(&self.local[0])
            .port();
        SocketAddr::new(local_ip_toward(&self.local, dest), port)
    }

    /// Sends without waiting. UDP goes straight to the kernel; TCP is queued on the
    /// connection (opened on demand), and a failure comes back as [`Inbound::SendFailed`].
    pub fn send(&self, peer: Peer, bytes: Vec<u8>) -> Result<(), TransportError> {
        match peer.transport {
            Transport::Udp => {
                let sock = self
                    .udp
                    .iter()
                    .zip(&self.local)
                    .find(|(_, l)| l.is_ipv4() == peer.addr.is_ipv4())
                    .map(|(s, _)| s)
                    .ok_or(TransportError::NoRoute {
                        addr: peer.addr,
                        transport: peer.transport,
                    })?;
                sock.try_send_to(&bytes, peer.addr)
                    .map(|_| ())
                    .map_err(|source| TransportError::Send {
                        addr: peer.addr,
                        source,
                    })
            }
            Transport::Tcp | Transport::Tls => {
                let Ok(mut conns) = self.connections.lock() else {
                    return Err(TransportError::NoRoute {
                        addr: peer.addr,
                        transport: peer.transport,
                    });
                };
                let bytes = match conns.get(&peer) {
                    Some(tx) => match tx.send(bytes) {
                        Ok(()) => return Ok(()),
                        // The connection task just ended; open a fresh one below.
                        Err(mpsc::error::SendError(bytes)) => bytes,
                    },
                    None => bytes,
                };
                // Register the queue before connecting so later sends join it, not a 2nd socket.
                let (tx, rx) = mpsc::unbounded_channel();
                let _ = tx.send(bytes);
                conns.insert(peer, tx);
                if peer.transport == Transport::Tls {
                    tokio::spawn(tls::connect(peer.addr, rx, self.clone()));
                } else {
                    tokio::spawn(tcp::connect(peer.addr, rx, self.clone()));
                }
                Ok(())
            }
        }
    }

    /// Number of open inbound TCP connections (the ones the caps count).
    pub fn tcp_inbound_connections(&self) -> usize {
        self.limits.open()
    }

    /// Number of open TCP connections.
    pub fn tcp_connections(&self) -> usize {
        self.connections.lock().map(|c| c.len()).unwrap_or(0)
    }
}

/// Socket buffer asked for on SIP UDP sockets. Bursts of thousands of datagrams overflow the
/// kernel's 208 KiB default; the kernel caps this at `net.core.rmem_max`/`wmem_max`.
const UDP_BUFFER: usize = 4 << 20;

/// A UDP socket on `addr` with large kernel buffers.
fn bind_udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a smaller buffer still works, it just drops sooner under bursts.
    let _ = sock.set_recv_buffer_size(UDP_BUFFER);
    let _ = sock.set_send_buffer_size(UDP_BUFFER);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(sock.into())
}

/// Binds UDP then TCP on the same address; with port 0 retries until both get one port.
async fn bind_pair(
    addr: SocketAddr,
) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener), TransportError> {
    let mut attempts = 0;
    loop {
        let udp = bind_udp(addr).map_err(|source| TransportError::Bind {
            addr,
            transport: Transport::Udp,
            source,
        })?;
        let port_addr = udp.local_addr().map_err(|source| TransportError::Bind {
            addr,
            transport: Transport::Udp,
            source,
        })?;
        match tokio::net::TcpListener::bind(port_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(_) if addr.port() == 0 && attempts < 16 => attempts += 1,
            Err(source) => {
                return Err(TransportError::Bind {
                    addr,
                    transport: Transport::Tcp,
                    source,
                })
            }
        }
    }
}

/// A request with `;alias` (RFC 5923) added to its top Via; responses and requests that
/// already carry it are returned as they are.
fn via_alias(bytes: Vec<u8>) -> Vec<u8> {
    if bytes.starts_with(b"SIP/2.0 ") {
        return bytes;
    }
    let head_end = find(&bytes, b"\r\n\r\n").unwrap_or(bytes.len());
    let mut at = 0;
    while let Some(i) = find(&bytes[at..head_end], b"\r\n") {
        let start = at + i + 2;
        let end = start + find(&bytes[start..head_end], b"\r\n").unwrap_or(head_end - start);
        let line = &bytes[start..end];
        let name_end = line.iter().position(|&b| b == b':').unwrap_or(0);
        let name = line[..name_end].trim_ascii();
        if name.eq_ignore_ascii_case(b"via") || name.eq_ignore_ascii_case(b"v") {
            // The first value of the line is the top Via; a comma starts the next one.
            let top_end = line.iter().position(|&b| b == b',').unwrap_or(line.len());
            let top = &line[..top_end];
            if top
                .split(|&b| b == b';')
                .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"alias"))
            {
                return bytes;
            }
            let cut = start + top.trim_ascii_end().len();
            let mut out = Vec::with_capacity(bytes.len() + 6);
            out.extend_from_slice(&bytes[..cut]);
            out.extend_from_slice(b";alias");
            out.extend_from_slice(&bytes[cut..]);
            return out;
        }
        at = end;
    }
    bytes
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;

/// The local IP address that reaches `dest`: the listener of the same family, or — when it is
/// a wildcard (`0.0.0.0`, `::`) — the source address the kernel would route from, because a
/// wildcard is no address to put in Via, Contact or SDP.
pub fn local_ip_toward(listen: &[SocketAddr], dest: SocketAddr) -> std::net::IpAddr {
    let Some(l) = listen
        .iter()
        .find(|l| l.is_ipv4() == dest.is_ipv4())
        .or(listen.first())
    else {
        return dest.ip();
    };
    if !l.ip().is_unspecified() {
        return l.ip();
    }
    // connect() on UDP sends nothing; it only asks the routing table for a source address.
    let any = SocketAddr::new(l.ip(), 0);
    std::net::UdpSocket::bind(any)
        .and_then(|s| s.connect(dest).and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .unwrap_or(l.ip())
}

impl From<crate::config::TransportKind> for Transport {
    fn from(kind: crate::config::TransportKind) -> Self {
        match kind {
            crate::config::TransportKind::Udp => Transport::Udp,
            crate::config::TransportKind::Tcp => Transport::Tcp,
            crate::config::TransportKind::Tls => Transport::Tls,
        }
    }
}
