//! TCP: accept loop with connection caps, per-connection task framing by Content-Length, idle
//! and message deadlines, writer queue. TLS connections are served by the same task.

use super::{Inbound, Peer, Transport, Transports};
use crate::sip::wire::{self, Frame};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A connection's queue of messages to write.
pub(super) type Queue = mpsc::UnboundedReceiver<Vec<u8>>;

/// How long an outbound connect may take before its messages are reported unsent.
pub(super) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Accepts connections until shutdown, under the connection caps; a TLS connection's
/// handshake runs in its own task.
pub(super) async fn accept(
    listener: TcpListener,
    local: SocketAddr,
    t: Transports,
    transport: Transport,
) {
    loop {
        let (stream, from) = tokio::select! {
            _ = t.stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, ?transport, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Over a cap the socket is closed at once: its descriptor is back before the next accept.
        let permit = match t.limits.admit(from.ip()) {
            Ok(p) => p,
            Err(why) => {
                t.config.tcp_refused.with_label_values(&[why.label()]).inc();
                tracing::debug!(%from, ?transport, reason = why.label(), "sip connection refused over a cap");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let t = t.clone();
        tokio::spawn(async move {
            match transport {
                Transport::Tls => super::tls::serve_accepted(stream, from, local, t).await,
                _ => connection(stream, from, local, Transport::Tcp, t, None).await,
            }
            drop(permit);
        });
    }
}

/// Opens a connection to `addr` whose queue `rx` is already registered, then serves it.
pub(super) async fn connect(addr: SocketAddr, rx: Queue, t: Transports) {
    let peer = Peer {
        addr,
        transport: Transport::Tcp,
    };
    let error = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().unwrap_or(t.local_for(addr));
            return connection(stream, addr, local, Transport::Tcp, t, Some(rx)).await;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out".to_string(),
    };
    unsent(&t, peer, rx, &error).await;
}

/// A connection to `peer` could not be opened: its queued messages are reported unsent.
pub(super) async fn unsent(t: &Transports, peer: Peer, mut rx: Queue, error: &str) {
    tracing::debug!(addr = %peer.addr, transport = ?peer.transport, error, "connect failed");
    forget(t, peer);
    rx.close();
    while let Some(bytes) = rx.recv().await {
        let _ = t.inbound.send(Inbound::SendFailed { peer, bytes }).await;
    }
}

fn forget(t: &Transports, peer: Peer) {
    if let Ok(mut c) = t.connections.lock() {
        c.remove(&peer);
    }
}

/// Serves one connection (TCP, or TLS once its handshake is done): reads and frames messages,
/// writes queued ones, closes when idle.
pub(super) async fn connection<S: AsyncRead + AsyncWrite>(
    stream: S,
    from: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    t: Transports,
    queue: Option<Queue>,
) {
    let peer = Peer {
        addr: from,
        transport,
    };
    // RFC 5923: on a TLS connection we opened with a client certificate the peer has
    // authenticated us, so our requests say `alias` and it may send its own back over it.
    let alias = transport == Transport::Tls && queue.is_some() && t.tls.presents_certificate(from);
    let mut rx = match queue {
        Some(rx) => rx,
        None => {
            let (tx, rx) = mpsc::unbounded_channel();
            if let Ok(mut c) = t.connections.lock() {
                c.insert(peer, tx);
            }
            rx
        }
    };
    let (rd, wr) = tokio::io::split(stream);
    let (mut rd, mut wr) = (Box::pin(rd), Box::pin(wr));
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let idle = t.config.tcp_idle_timeout;
    let whole = t.config.tcp_message_timeout;
    // Only whole messages (either way) restart the idle timer; a message begun must end
    // within `whole`, so bytes trickled one at a time cannot hold the connection open.
    let mut last_message = Instant::now();
    let mut started: Option<Instant> = None;
    let reason = 'conn: loop {
        let idle_at = last_message + idle;
        let (deadline, why) = match started {
            Some(at) if at + whole < idle_at => (at + whole, "message timeout"),
            _ => (idle_at, "idle timeout"),
        };
        tokio::select! {
            _ = t.stop.cancelled() => break 'conn "shutdown".to_string(),
            out = rx.recv() => match out {
                Some(bytes) => {
                    let bytes = if alias { super::via_alias(bytes) } else { bytes };
                    if let Err(e) = write(&mut wr, &bytes).await {
                        let _ = t.inbound.send(Inbound::SendFailed { peer, bytes }).await;
                        break 'conn format!("write failed: {e}");
                    }
                    last_message = Instant::now();
                }
                None => break 'conn "closed".to_string(),
            },
            _ = tokio::time::sleep_until(deadline) => {
                break 'conn why.to_string();
            }
            read = rd.read(&mut chunk) => {
                let n = match read {
                    Err(e) => break 'conn format!("read failed: {e}"),
                    Ok(0) => break 'conn "closed by peer".to_string(),
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    match wire::frame(&buf, t.config.max_message_size) {
                        Ok(Frame::Incomplete) => break,
                        Ok(Frame::Keepalive(n)) => {
                            buf.drain(..n);
                            last_message = Instant::now();
                            started = None;
                        }
                        Ok(Frame::Message(n)) => {
                            let bytes: Vec<u8> = buf.drain(..n).collect();
                            last_message = Instant::now();
                            started = None;
                            // A stream waits for room in the byte budget (its sender slows down).
                            let Ok(held) = t.budget.clone().acquire_many_owned(n as u32).await else {
                                break 'conn "endpoint gone".to_string();
                            };
                            let msg = Inbound::Message { bytes, peer, local, held: Some(held) };
                            if t.inbound.send(msg).await.is_err() {
                                break 'conn "endpoint gone".to_string();
                            }
                        }
                        Err(e) => {
                            let reason = e.to_string();
                            let _ = t.inbound.send(Inbound::FramingError { peer, reason: reason.clone() }).await;
                            break 'conn reason;
                        }
                    }
                }
                if !buf.is_empty() && started.is_none() {
                    started = Some(Instant::now());
                }
            }
        }
    };
    tracing::debug!(%from, ?transport, reason, "connection closed");
    forget(&t, peer);
}

/// Writes a whole message (and flushes it: TLS buffers records).
async fn write<W: AsyncWrite>(wr: &mut std::pin::Pin<Box<W>>, bytes: &[u8]) -> std::io::Result<()> {
    wr.write_all(bytes).await?;
    wr.flush().await
}
