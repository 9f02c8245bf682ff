//! The SIP endpoint: the thin tokio driver that owns the sockets' inbound channel, the sans-IO
//! transaction layer and the server core, and moves messages between them.

use super::metrics::SipMetrics;
use super::server::{Server, ServerPolicy};
use super::transaction::{edit_top_via, Event, TimerConfig, TransactionKey, TransactionLayer};
use super::transport::{Inbound, Peer, Transport, TransportConfig, Transports};
use super::wire::{self, WireError};
use super::SipError;
use crate::config::{SipConfig, TrunkConfig};
use crate::shutdown::Shutdown;
use std::net::SocketAddr;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages handled per wake-up before flushing, so a burst cannot starve timers.
const BATCH: usize = 64;
/// Inbound queue depth; a full queue applies back-pressure to the receive tasks.
const INBOUND_QUEUE: usize = 4096;

/// What the rest of the daemon learns about the running endpoint.
pub struct EndpointHandle {
    /// Bound SIP addresses (UDP and TCP on each).
    pub local_addrs: Vec<SocketAddr>,
}

/// Binds the SIP listeners and starts the endpoint task under `shutdown`.
pub async fn start(
    cfg: &SipConfig,
    cfg_trunks: &[TrunkConfig],
    registry: &prometheus::Registry,
    shutdown: &Shutdown,
) -> Result<EndpointHandle, SipError> {
    let metrics = SipMetrics::register(registry)?;
    let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
    // Sockets stop only after the endpoint has drained, hence their own token.
    let sockets_stop = CancellationToken::new();
    let transports = Transports::bind(
        &cfg.listen,
        TransportConfig {
            max_message_size: cfg.max_message_size,
            tcp_idle_timeout: cfg.tcp_idle_timeout,
        },
        tx,
        sockets_stop.clone(),
    )
    .await?;
    let local_addrs = transports.local_addrs().to_vec();
    let endpoint = Endpoint {
        layer: TransactionLayer::new(TimerConfig {
            t1: cfg.t1,
            t2: cfg.t2,
            t4: cfg.t4,
        }),
        server: Server::new(ServerPolicy {
            server: format!("dialerd/{}", env!("CARGO_PKG_VERSION")),
            realm: "dialerd".into(),
            refuse_new_calls: false,
            retry_after_secs: 5,
            trusted: trusted_networks(cfg_trunks).await,
        }),
        transports,
        metrics,
        rx,
        stop: shutdown.token(),
        force_rport: cfg.force_rport,
        draining: false,
        retransmissions_seen: 0,
    };
    shutdown.spawn(async move {
        endpoint.run().await;
        sockets_stop.cancel();
    });
    Ok(EndpointHandle { local_addrs })
}

/// Where trunks' INVITEs come from: each trunk's resolved host plus its `inbound_from`.
async fn trusted_networks(trunks: &[TrunkConfig]) -> Vec<ipnet::IpNet> {
    let mut nets = Vec::new();
    for t in trunks {
        nets.extend(t.inbound_from.iter().map(|c| c.0));
        match tokio::net::lookup_host((t.host.as_str(), t.port)).await {
            Ok(addrs) => nets.extend(addrs.map(|a| ipnet::IpNet::from(a.ip()))),
            Err(e) => {
                tracing::warn!(trunk = %t.name, host = %t.host, error = %e, "cannot resolve trunk host; its INVITEs will be refused")
            }
        }
    }
    nets
}

struct Endpoint {
    layer: TransactionLayer,
    server: Server,
    transports: Transports,
    metrics: SipMetrics,
    rx: mpsc::Receiver<Inbound>,
    stop: CancellationToken,
    force_rport: bool,
    draining: bool,
    retransmissions_seen: u64,
}

/// The driver's clock; tokio's so paused-time tests drive it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Endpoint {
    async fn run(mut self) {
        loop {
            self.flush();
            if self.draining && self.layer.awaiting_final() == 0 {
                tracing::info!("sip endpoint drained");
                return;
            }
            let deadline = self
                .layer
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let timer = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.stop.cancelled(), if !self.draining => {
                    // New calls get 503 from now on; transactions in progress finish.
                    self.draining = true;
                    self.server.policy_mut().refuse_new_calls = true;
                }
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { return };
                    self.on_inbound(msg);
                    for _ in 1..BATCH {
                        match self.rx.try_recv() {
                            Ok(msg) => self.on_inbound(msg),
                            Err(_) => break,
                        }
                    }
                }
                _ = timer => self.layer.handle_timeout(now()),
            }
        }
    }

    fn on_inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Message { bytes, peer, .. } => {
                self.metrics.count("in", &bytes);
                match wire::parse(&bytes) {
                    Ok(mut msg) => {
                        if let (true, Transport::Udp, rsip::SipMessage::Request(req)) =
                            (self.force_rport, peer.transport, &mut msg)
                        {
                            edit_top_via(&mut req.headers, |via| {
                                let asked = via
                                    .params
                                    .iter()
                                    .any(|(n, _)| n.eq_ignore_ascii_case("rport"));
                                if !asked {
                                    via.params.push(("rport".into(), None));
                                }
                                !asked
                            });
                        }
                        self.layer.handle_message(now(), msg, peer)
                    }
                    Err(e) => self.reject(e, peer),
                }
            }
            Inbound::FramingError { peer, reason } => {
                self.metrics.parse_errors.inc();
                tracing::debug!(peer = %peer.addr, reason, "sip stream framing error; connection closed");
            }
            Inbound::SendFailed { peer, bytes } => {
                tracing::debug!(peer = %peer.addr, "sip send failed");
                // Only our own requests have client transactions to fail.
                if let Ok(rsip::SipMessage::Request(req)) = wire::parse(&bytes) {
                    if let Some(key) = TransactionKey::for_client_request(&req) {
                        self.layer.handle_transport_error(now(), &key);
                    }
                }
            }
        }
    }

    /// A message that did not parse: a 400/501/505 when it is a request we can answer.
    fn reject(&mut self, err: WireError, peer: Peer) {
        self.metrics.parse_errors.inc();
        tracing::debug!(peer = %peer.addr, error = %err, "bad sip message");
        if let WireError::BadRequest {
            status,
            reason,
            reply,
        } = err
        {
            let is_ack = reply
                .cseq
                .as_deref()
                .and_then(|c| c.split_whitespace().nth(1))
                .is_some_and(|m| m.eq_ignore_ascii_case("ACK"));
            if is_ack {
                return;
            }
            let tag = self.layer.new_tag();
            let extra: &[(&str, &str)] = if status == 501 || status == 405 {
                &[("Allow", super::server::ALLOW)]
            } else {
                &[]
            };
            if let Some(bytes) = reply.response_bytes(status, &reason, &tag, extra) {
                self.send(peer, bytes, None);
            }
        }
    }

    /// Sends everything the layer queued and hands its events to the cores, until quiet.
    fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.layer.poll_transmit() {
                progressed = true;
                self.send(t.peer, t.bytes, t.key);
            }
            while let Some(event) = self.layer.poll_event() {
                progressed = true;
                self.on_event(event);
            }
            if !progressed {
                break;
            }
        }
        self.metrics
            .transactions_active
            .set(self.layer.len() as i64);
        let retx = self.layer.retransmissions();
        self.metrics
            .retransmissions
            .inc_by(retx - self.retransmissions_seen);
        self.retransmissions_seen = retx;
    }

    fn send(&mut self, peer: Peer, bytes: Vec<u8>, key: Option<TransactionKey>) {
        self.metrics.count("out", &bytes);
        if let Err(e) = self.transports.send(peer, bytes) {
            tracing::debug!(error = %e, "sip send failed");
            if let Some(key) = key {
                self.layer.handle_transport_error(now(), &key);
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Request { key, request, peer } => {
                let tag = self.layer.new_tag();
                if let Some(resp) = self.server.answer(&request, peer.addr.ip(), &tag) {
                    if let Err(e) = self.layer.send_response(now(), &key, resp) {
                        tracing::warn!(error = %e, "cannot answer sip request");
                    }
                }
            }
            Event::Timeout { key } => tracing::debug!(%key, "sip transaction timed out"),
            Event::AckTimeout { key } => tracing::debug!(%key, "no ACK for final response"),
            Event::TransportError { key } => tracing::debug!(%key, "sip transport error"),
            // Dialogs and client calls are not held yet: nothing above listens for these.
            Event::Ack { .. }
            | Event::Response { .. }
            | Event::Cancelled { .. }
            | Event::Terminated { .. } => {}
        }
    }
}
