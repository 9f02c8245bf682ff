//! The SIP endpoint: the thin tokio driver that owns the sockets' inbound channel, the sans-IO
//! transaction layer and the server core, and moves messages between them.

use super::metrics::SipMetrics;
use super::registrar::{Registrar, RegistrarConfig};
use super::server::{Server, ServerPolicy};
use super::transaction::{edit_top_via, Event, TimerConfig, TransactionKey, TransactionLayer};
use super::transport::{Inbound, Peer, Transport, TransportConfig, Transports};
use super::trunk::{TrunkStatus, Trunks};
use super::wire::{self, WireError};
use super::SipError;
use crate::config::{Config, TransportKind, TrunkConfig};
use crate::shutdown::Shutdown;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages handled per wake-up before flushing, so a burst cannot starve timers.
const BATCH: usize = 64;
/// Inbound queue depth; a full queue applies back-pressure to the receive tasks.
const INBOUND_QUEUE: usize = 4096;

/// The latest trunk status, shared with the HTTP API.
pub type TrunkView = Arc<RwLock<Vec<TrunkStatus>>>;

/// What the rest of the daemon learns about the running endpoint.
pub struct EndpointHandle {
    /// Bound SIP addresses (UDP and TCP on each).
    pub local_addrs: Vec<SocketAddr>,
    /// Trunk status, refreshed when it changes.
    pub trunks: TrunkView,
}

/// Binds the SIP listeners and starts the endpoint task under `shutdown`.
pub async fn start(
    config: &Config,
    registry: &prometheus::Registry,
    shutdown: &Shutdown,
) -> Result<EndpointHandle, SipError> {
    let cfg = &config.sip;
    let cfg_trunks = &config.trunks;
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
    let resolved = resolve_trunks(cfg_trunks).await;
    let mut trusted: Vec<ipnet::IpNet> = cfg_trunks
        .iter()
        .flat_map(|t| t.inbound_from.iter().map(|c| c.0))
        .collect();
    trusted.extend(
        resolved
            .iter()
            .flatten()
            .map(|a| ipnet::IpNet::from(a.ip())),
    );
    let trunks = Trunks::new(cfg_trunks, resolved, now());
    let trunk_view: TrunkView = Arc::new(RwLock::new(trunks.status()));
    metrics.set_trunks(&trunks.status());
    let endpoint = Endpoint {
        layer: TransactionLayer::new(TimerConfig {
            t1: cfg.t1,
            t2: cfg.t2,
            t4: cfg.t4,
        }),
        server: Server::new(
            ServerPolicy {
                server: format!("dialerd/{}", env!("CARGO_PKG_VERSION")),
                refuse_new_calls: false,
                retry_after_secs: 5,
                trusted,
            },
            Registrar::new(
                RegistrarConfig {
                    realm: cfg.realm.clone(),
                    algorithms: cfg
                        .digest_algorithms
                        .iter()
                        .filter_map(|a| crate::sip::auth::Algorithm::parse(a))
                        .collect(),
                    min_expires: cfg.min_expires,
                    max_expires: cfg.max_expires,
                },
                config
                    .agents
                    .iter()
                    .map(|a| (a.username.clone(), a.password.expose().to_string()))
                    .collect(),
                now(),
            ),
        ),
        transports,
        metrics,
        rx,
        trunks,
        trunk_view: trunk_view.clone(),
        keepalives: HashMap::new(),
        stop: shutdown.token(),
        force_rport: cfg.force_rport,
        draining: false,
        retransmissions_seen: 0,
        auth_failures_seen: 0,
    };
    shutdown.spawn(async move {
        endpoint.run().await;
        sockets_stop.cancel();
    });
    Ok(EndpointHandle {
        local_addrs,
        trunks: trunk_view,
    })
}

/// Each trunk's proxy address (DNS A/AAAA when a name is given); `None` when it does not resolve.
async fn resolve_trunks(trunks: &[TrunkConfig]) -> Vec<Option<SocketAddr>> {
    let mut out = Vec::new();
    for t in trunks {
        let addr = match tokio::net::lookup_host((t.host.as_str(), t.port)).await {
            Ok(mut addrs) => addrs.next(),
            Err(e) => {
                tracing::warn!(trunk = %t.name, host = %t.host, error = %e, "cannot resolve trunk host; trunk down, its INVITEs refused");
                None
            }
        };
        out.push(addr);
    }
    out
}

struct Endpoint {
    layer: TransactionLayer,
    server: Server,
    transports: Transports,
    metrics: SipMetrics,
    rx: mpsc::Receiver<Inbound>,
    trunks: Trunks,
    trunk_view: TrunkView,
    /// Keepalive OPTIONS in flight: client transaction → trunk index.
    keepalives: HashMap<TransactionKey, usize>,
    stop: CancellationToken,
    force_rport: bool,
    draining: bool,
    retransmissions_seen: u64,
    auth_failures_seen: u64,
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
            let deadline = [
                self.layer.poll_timeout(),
                self.trunks.poll_timeout(),
                self.server.registrar_mut().poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min()
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
                _ = timer => {
                    let now = now();
                    self.layer.handle_timeout(now);
                    self.server.registrar_mut().handle_timeout(now);
                    self.send_keepalives();
                }
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
        let registrar = self.server.registrar_mut();
        let failures = registrar.auth_failures();
        let bindings = registrar.binding_count();
        self.metrics
            .auth_failures
            .inc_by(failures - self.auth_failures_seen);
        self.auth_failures_seen = failures;
        self.metrics.registrations.set(bindings as i64);
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

    /// Sends an OPTIONS to every trunk whose keepalive is due.
    fn send_keepalives(&mut self) {
        let now = now();
        for (i, dest) in self.trunks.due_keepalives(now) {
            let trunk = &self.trunks.get(i).config;
            let transport = match trunk.transport {
                TransportKind::Udp => Transport::Udp,
                TransportKind::Tcp => Transport::Tcp,
            };
            let local = self.transports.local_for(dest);
            let text = format!(
                "OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:dialerd@{local}>;tag={tag}\r\nTo: <sip:{host}:{port}>\r\n\
                 Call-ID: {call_id}@dialerd\r\nCSeq: 1 OPTIONS\r\nUser-Agent: dialerd/{v}\r\nContent-Length: 0\r\n\r\n",
                host = trunk.host,
                port = trunk.port,
                t = transport.via_name(),
                branch = self.layer.new_branch(),
                tag = self.layer.new_tag(),
                call_id = self.layer.new_tag(),
                v = env!("CARGO_PKG_VERSION"),
            );
            let sent = match wire::parse(text.as_bytes()) {
                Ok(rsip::SipMessage::Request(req)) => self
                    .layer
                    .send_request(
                        now,
                        req,
                        Peer {
                            addr: dest,
                            transport,
                        },
                    )
                    .map_err(|e| e.to_string()),
                other => Err(format!("keepalive did not build: {other:?}")),
            };
            match sent {
                Ok(key) => {
                    self.keepalives.insert(key, i);
                }
                Err(e) => {
                    tracing::warn!(trunk = %trunk.name, error = %e, "cannot send keepalive");
                    self.keepalive_done(i, false);
                }
            }
        }
    }

    fn keepalive_done(&mut self, trunk: usize, answered: bool) {
        if self.trunks.keepalive_result(trunk, answered, now()) {
            let status = self.trunks.status();
            let t = &status[trunk];
            tracing::warn!(trunk = %t.name, state = t.state, "trunk state changed");
        }
        self.publish_trunks();
    }

    fn publish_trunks(&self) {
        let status = self.trunks.status();
        self.metrics.set_trunks(&status);
        if let Ok(mut view) = self.trunk_view.write() {
            *view = status;
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Request { key, request, peer } => {
                let tag = self.layer.new_tag();
                if let Some(resp) = self.server.answer(now(), &request, peer.addr.ip(), &tag) {
                    if let Err(e) = self.layer.send_response(now(), &key, resp) {
                        tracing::warn!(error = %e, "cannot answer sip request");
                    }
                }
            }
            Event::Response { key, response } if self.keepalives.contains_key(&key) => {
                let code = response.status_code.code();
                if code >= 200 {
                    let trunk = self.keepalives.remove(&key).unwrap_or_default();
                    self.keepalive_done(trunk, code != 503);
                }
            }
            Event::Timeout { key } | Event::TransportError { key }
                if self.keepalives.contains_key(&key) =>
            {
                let trunk = self.keepalives.remove(&key).unwrap_or_default();
                self.keepalive_done(trunk, false);
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
