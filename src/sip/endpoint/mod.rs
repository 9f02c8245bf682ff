//! The SIP endpoint: the thin tokio driver that owns the sockets' inbound channel, the sans-IO
//! transaction and dialog layers and the server core, moves messages between them, and serves
//! the call legs of the layers above ([`crate::sip::leg`]).

mod admission;
mod legs;
mod trunk_dns;
mod trunking;

use super::dialog::{DialogConfig, DialogEvent, DialogId, DialogLayer, InDialog};
use super::leg::{Failure, Incoming, LegCommand, LegEvent, LegId, SipHandle};
use super::metrics::SipMetrics;
use super::registrar::{AccountSender, AccountUpdate, Registrar, RegistrarConfig};
use super::server::{Outcome, Server, ServerPolicy};
use super::transaction::{edit_top_via, Event, TimerConfig, TransactionKey, TransactionLayer};
use super::transaction::{make_response, tag_of};
use super::transport::{Inbound, Peer, TlsSettings, Transport, TransportConfig, Transports};
use super::trunk::{TrunkStatus, Trunks};
use super::wire::{self, WireError};
use super::SipError;
use crate::config::Config;
use crate::shutdown::Shutdown;
use rsip::headers::UntypedHeader;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages handled per wake-up before flushing, so a burst cannot starve timers.
const BATCH: usize = 64;
/// Inbound queue depth; a full queue applies back-pressure to the receive tasks.
const INBOUND_QUEUE: usize = 4096;
/// Most bytes waiting in the inbound queue: 4,096 datagrams of 64 KiB would be 256 MiB.
const INBOUND_BYTES: usize = 16 * 1024 * 1024;
/// Past this many messages waiting, new INVITEs get 503: the backlog is growing.
const BACKLOG_LIMIT: usize = INBOUND_QUEUE / 2;
/// New calls waiting for the call layer before they get 503.
const INCOMING_QUEUE: usize = 1024;

/// The latest trunk status, shared with the HTTP API.
pub type TrunkView = Arc<RwLock<Vec<TrunkStatus>>>;

/// What the rest of the daemon learns about the running endpoint.
pub struct EndpointHandle {
    /// Places, answers and ends call legs.
    pub sip: SipHandle,
    /// New inbound calls, for the call layer's router.
    pub incoming: mpsc::Receiver<Incoming>,
    /// Bound SIP addresses (UDP and TCP on each).
    pub local_addrs: Vec<SocketAddr>,
    /// Trunk status, refreshed when it changes.
    pub trunks: TrunkView,
    /// Agents' SIP logins from the store, for the registrar.
    pub accounts: AccountSender,
    /// The TLS settings (the server certificate is replaced on SIGHUP).
    pub tls: Arc<TlsSettings>,
    /// Bound SIP over TLS addresses.
    pub tls_addrs: Vec<SocketAddr>,
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
    let (commands_tx, commands) = mpsc::channel(1024);
    let (incoming_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
    let reserved = config.agents.iter().map(|a| a.username.clone()).collect();
    let (accounts_tx, accounts) = AccountSender::new(cfg.realm.clone(), reserved);
    // Sockets stop only after the endpoint has drained, hence their own token.
    let sockets_stop = CancellationToken::new();
    let server = match (&cfg.tls_certificate, &cfg.tls_private_key) {
        (Some(cert), Some(key)) if !cfg.tls_listen.is_empty() => {
            Some(crate::tls::server_config(cert, key)?)
        }
        _ => None,
    };
    let tls = Arc::new(TlsSettings::new(
        server,
        Some(crate::tls::client_config(None)?),
    ));
    let transports = Transports::bind_with_tls(
        &cfg.listen,
        &cfg.tls_listen,
        tls.clone(),
        TransportConfig {
            max_message_size: cfg.max_message_size,
            tcp_idle_timeout: cfg.tcp_idle_timeout,
            tcp_message_timeout: cfg.tcp_message_timeout,
            tcp_max_connections: cfg.tcp_max_connections,
            tcp_max_connections_per_source: cfg.tcp_max_connections_per_source,
            tcp_refused: metrics.tcp_refused.clone(),
            queue_bytes: INBOUND_BYTES,
        },
        tx,
        sockets_stop.clone(),
    )
    .await?;
    let local_addrs = transports.local_addrs().to_vec();
    let tls_addrs = transports.tls_addrs().to_vec();
    let resolver = super::dns::Resolver::new(&cfg.dns_servers)?;
    let (resolved, due) = trunk_dns::resolve_all(&resolver, cfg_trunks, &tls).await?;
    let trunk_addrs = cfg_trunks
        .iter()
        .zip(&resolved)
        .filter_map(|(t, a)| Some((t.name.clone(), *a.first()?)))
        .collect();
    let (trunk_dns_tx, trunk_dns) = mpsc::channel(16);
    shutdown.spawn(trunk_dns::keep_current(
        resolver,
        cfg_trunks.to_vec(),
        due,
        tls.clone(),
        trunk_dns_tx,
        shutdown.token(),
    ));
    let sip = SipHandle::new(commands_tx, local_addrs.clone(), trunk_addrs).with_media_encryption(
        cfg_trunks
            .iter()
            .map(|t| (t.name.clone(), t.media_encryption))
            .collect(),
    );
    let trunks = Trunks::new(cfg_trunks, resolved, now());
    let trusted = trunks.trusted_sources();
    let trunk_view: TrunkView = Arc::new(RwLock::new(trunks.status()));
    metrics.set_trunks(&trunks.status());
    let endpoint = Endpoint {
        layer: TransactionLayer::new(TimerConfig {
            t1: cfg.t1,
            t2: cfg.t2,
            t4: cfg.t4,
        }),
        admission: admission::Admission::new(cfg),
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
        dialogs: DialogLayer::new(DialogConfig {
            session_expires: cfg.session_expires,
            min_se: cfg.min_se,
            tls: tls_addrs
                .first()
                .map(|a| (format!("sip:dialerd@{a};transport=tls"), a.to_string())),
            ..DialogConfig::new(
                format!("sip:dialerd@{}", local_addrs[0]),
                local_addrs[0].to_string(),
            )
        }),
        registers: HashMap::new(),
        commands,
        accounts,
        trunk_dns,
        legs: HashMap::new(),
        leg_txns: HashMap::new(),
        leg_of_dialog: HashMap::new(),
        ring_deadlines: BTreeSet::new(),
        incoming: Some(incoming_tx),
        handle: sip.clone(),
        sent: HashMap::new(),
        max_calls: cfg.max_calls,
        stop: shutdown.token(),
        drain_timeout: config.shutdown.drain_timeout,
        hang_up_at: None,
        force_rport: cfg.force_rport,
        draining: false,
        retransmissions_seen: 0,
        auth_failures_seen: 0,
        peak_load: 0,
    };
    shutdown.spawn(async move {
        endpoint.run().await;
        sockets_stop.cancel();
    });
    Ok(EndpointHandle {
        sip,
        incoming,
        local_addrs,
        trunks: trunk_view,
        accounts: accounts_tx,
        tls,
        tls_addrs,
    })
}

/// The endpoint task's state.
struct Endpoint {
    layer: TransactionLayer,
    /// What decides, before any state is kept, which requests get a transaction.
    admission: admission::Admission,
    server: Server,
    transports: Transports,
    metrics: SipMetrics,
    rx: mpsc::Receiver<Inbound>,
    trunks: Trunks,
    trunk_view: TrunkView,
    /// Keepalive OPTIONS in flight: client transaction → trunk index.
    keepalives: HashMap<TransactionKey, usize>,
    dialogs: DialogLayer,
    /// Trunk REGISTERs in flight: client transaction → (trunk, request, destination).
    registers: HashMap<TransactionKey, (usize, rsip::Request, Peer)>,
    /// Leg commands from the layers above.
    commands: mpsc::Receiver<LegCommand>,
    /// Changes to agents' SIP logins, applied before the SIP messages that follow them.
    accounts: mpsc::UnboundedReceiver<AccountUpdate>,
    /// Trunks' addresses from DNS lookups made when their answers expire.
    trunk_dns: mpsc::Receiver<trunk_dns::TrunkTargets>,
    /// Call legs by id.
    legs: HashMap<LegId, legs::LegState>,
    /// INVITE transactions of legs.
    leg_txns: legs::LegTxns,
    /// Answered legs by dialog.
    leg_of_dialog: HashMap<DialogId, LegId>,
    /// When ringing outbound legs are cancelled.
    ring_deadlines: BTreeSet<(Instant, LegId)>,
    /// New inbound calls go here (`None`: nobody routes them; 404).
    incoming: Option<mpsc::Sender<Incoming>>,
    /// For leg ids of inbound calls (shares the handle's counter).
    handle: SipHandle,
    /// In-dialog requests we sent (BYE, UPDATE), until their final response.
    sent: HashMap<TransactionKey, rsip::Request>,
    max_calls: usize,
    stop: CancellationToken,
    /// The daemon's drain budget; calls still up at three quarters of it get BYE.
    drain_timeout: Duration,
    /// When the remaining calls are hung up (set when draining starts).
    hang_up_at: Option<Instant>,
    force_rport: bool,
    draining: bool,
    retransmissions_seen: u64,
    auth_failures_seen: u64,
    /// Most transactions + dialogs held since memory was last given back.
    peak_load: usize,
}

/// The driver's clock; tokio's so paused-time tests drive it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Endpoint {
    async fn run(mut self) {
        loop {
            self.flush();
            if self.draining && self.layer.awaiting_final() == 0 && self.legs.is_empty() {
                tracing::info!("sip endpoint drained");
                return;
            }
            let deadline = [
                self.layer.poll_timeout(),
                self.trunks.poll_timeout(),
                self.server.registrar_mut().poll_timeout(),
                self.dialogs.poll_timeout(),
                self.ring_deadlines.first().map(|(at, _)| *at),
                self.hang_up_at,
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
                _ = self.stop.cancelled(), if !self.draining => self.start_draining(),
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { return };
                    // A login the API changed before this message arrived applies to it.
                    self.apply_account_updates();
                    self.on_inbound(msg);
                    for _ in 1..BATCH {
                        match self.rx.try_recv() {
                            Ok(msg) => {
                                self.apply_account_updates();
                                self.on_inbound(msg);
                            }
                            Err(_) => break,
                        }
                    }
                }
                Some(update) = self.accounts.recv() => {
                    self.server.registrar_mut().update_account(update);
                    self.apply_account_updates();
                }
                Some(update) = self.trunk_dns.recv() => self.trunk_resolved(update),
                Some(cmd) = self.commands.recv() => {
                    self.on_leg_command(cmd);
                    for _ in 1..BATCH {
                        match self.commands.try_recv() {
                            Ok(cmd) => self.on_leg_command(cmd),
                            Err(_) => break,
                        }
                    }
                }
                _ = timer => {
                    let now = now();
                    self.layer.handle_timeout(now);
                    self.server.registrar_mut().handle_timeout(now);
                    self.dialogs.handle_timeout(now);
                    self.cancel_unanswered(now);
                    if self.hang_up_at.is_some_and(|at| at <= now) {
                        self.hang_up_at = None;
                        tracing::info!(calls = self.legs.len(), "drain time nearly over; hanging up the calls left");
                        self.hang_up_all();
                    }
                    self.send_registrations();
                    self.send_keepalives();
                }
            }
        }
    }

    /// Applies every account change waiting.
    fn apply_account_updates(&mut self) {
        while let Ok(update) = self.accounts.try_recv() {
            self.server.registrar_mut().update_account(update);
        }
    }

    /// New calls get 503 from now on and trunks are unregistered; calls in progress may
    /// finish until three quarters of the drain time, then get BYE.
    fn start_draining(&mut self) {
        self.draining = true;
        self.server.policy_mut().refuse_new_calls = true;
        self.hang_up_at = Some(now() + self.drain_timeout * 3 / 4);
        self.send_unregistrations();
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
                        match msg {
                            rsip::SipMessage::Request(req) => self.admit(req, peer),
                            msg => self.layer.handle_message(now(), msg, peer),
                        }
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
            while let Some(event) = self.dialogs.poll_event() {
                progressed = true;
                self.on_dialog_event(event);
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
        // The registrar's own count is the total; the counter follows it.
        let throttled = registrar.throttled();
        let shown = self.metrics.register_throttled.get();
        self.metrics.register_throttled.inc_by(throttled - shown);
        self.metrics.registrations.set(bindings as i64);
        self.metrics.dialogs_active.set(self.dialogs.len() as i64);
        // Once traffic falls to a quarter of its peak, give memory back: a keepalive or two
        // always in flight means "no transactions at all" may never happen.
        let load = self.layer.len() + self.dialogs.len();
        self.peak_load = self.peak_load.max(load);
        if self.peak_load >= 1024 && load * 4 < self.peak_load {
            self.peak_load = load;
            // Maps keep their peak capacity; give it back, then the heap to the OS.
            self.layer.shrink_to_fit();
            self.dialogs.shrink_to_fit();
            self.legs.shrink_to_fit();
            self.leg_txns.shrink_to_fit();
            self.leg_of_dialog.shrink_to_fit();
            self.sent.shrink_to_fit();
            self.keepalives.shrink_to_fit();
            release_free_memory();
        }
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
                if tag_of(&request.headers, false).is_some() {
                    return self.in_dialog_request(key, request);
                }
                let refuse = self.draining
                    || self.legs.len() >= self.max_calls
                    || self.rx.len() > BACKLOG_LIMIT;
                self.server.policy_mut().refuse_new_calls = refuse;
                let tag = self.layer.new_tag();
                match self.server.route(now(), &request, peer.addr, &tag) {
                    Some(Outcome::Respond(resp)) => self.respond(&key, resp),
                    Some(Outcome::Incoming) => self.offer_incoming(key, request, peer, tag),
                    None => {}
                }
            }
            Event::Ack { request, .. } => {
                if let InDialog::Ack { id, .. } = self.dialogs.on_request(now(), &request) {
                    self.leg_acked(&id);
                }
            }
            Event::Cancelled { invite } => self.leg_cancelled_by_caller(&invite),
            Event::AckTimeout { key } if self.leg_txns.contains_key(&key) => {
                self.leg_ack_timeout(&key)
            }
            Event::Response { key, response } if self.leg_txns.contains_key(&key) => {
                self.leg_response(key, response)
            }
            Event::Timeout { key } if self.leg_txns.contains_key(&key) => {
                self.leg_invite_failed(&key, Failure::Timeout)
            }
            Event::TransportError { key } if self.leg_txns.contains_key(&key) => {
                self.leg_invite_failed(&key, Failure::TransportError)
            }
            Event::Response { key, response } if self.registers.contains_key(&key) => {
                self.register_response(key, response)
            }
            Event::Timeout { key } | Event::TransportError { key }
                if self.registers.contains_key(&key) =>
            {
                self.register_failed(&key)
            }
            Event::Response { key, response } if self.sent.contains_key(&key) => {
                if response.status_code.code() >= 200 {
                    if let Some(req) = self.sent.remove(&key) {
                        self.dialogs.on_request_response(now(), &req, &response);
                    }
                }
            }
            Event::Timeout { key } | Event::TransportError { key }
                if self.sent.contains_key(&key) =>
            {
                if let Some(req) = self.sent.remove(&key) {
                    let timeout = make_response(&req, 408, None);
                    self.dialogs.on_request_response(now(), &req, &timeout);
                }
            }
            Event::Terminated { key } => {
                self.leg_txns.remove(&key);
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
            Event::Response { .. } => {}
        }
    }

    fn respond(&mut self, key: &TransactionKey, resp: rsip::Response) {
        if let Err(e) = self.layer.send_response(now(), key, resp) {
            tracing::warn!(error = %e, "cannot answer sip request");
        }
    }

    /// A request carrying a To tag: the dialog layer says what it is.
    fn in_dialog_request(&mut self, key: TransactionKey, req: rsip::Request) {
        let now = now();
        match self.dialogs.on_request(now, &req) {
            InDialog::NoDialog { response } | InDialog::Invalid { response } => {
                if let Some(r) = response {
                    self.respond(&key, r);
                }
            }
            InDialog::BadCSeq { response, .. }
            | InDialog::Pending { response, .. }
            | InDialog::IntervalTooSmall { response, .. } => self.respond(&key, response),
            InDialog::Bye { response, .. } => {
                // The dialog layer ends the dialog; its Terminated event ends the leg.
                self.respond(&key, response);
            }
            InDialog::ReInvite { id, .. } | InDialog::Update { id, .. } => {
                // Answer with the session we have; the leg hears of the new offer.
                match self.dialogs.answer_with_last_sdp(now, &req) {
                    Ok(r) => self.respond(&key, r),
                    Err(_) => self.respond(&key, make_response(&req, 481, None)),
                }
                if !req.body.is_empty() {
                    self.leg_notify(&id, LegEvent::Reoffer { sdp: req.body });
                }
            }
            InDialog::Ack { .. } => {}
            InDialog::Other { id, .. } => {
                let info = req.method == rsip::Method::Info;
                let code = if info { 200 } else { 405 };
                self.respond(&key, make_response(&req, code, None));
                if info {
                    let content_type = req
                        .headers
                        .iter()
                        .find_map(|h| match h {
                            rsip::Header::ContentType(c) => Some(c.value().to_string()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    let body = req.body;
                    self.leg_notify(
                        &id,
                        LegEvent::Info(Box::new(super::leg::InfoRequest { content_type, body })),
                    );
                }
            }
        }
    }

    fn on_dialog_event(&mut self, event: DialogEvent) {
        match event {
            DialogEvent::Terminated { id, reason } => {
                tracing::debug!(dialog = %id, ?reason, "dialog ended");
                self.leg_dialog_ended(&id, reason);
            }
            DialogEvent::SessionExpired { id } => self.leg_session_expired(&id),
            DialogEvent::RefreshDue { id } => {
                if let Some(peer) = self.leg_peer_of_dialog(&id) {
                    let peer = self.dialog_peer(&id, peer);
                    self.send_in_dialog(&id, rsip::Method::Update, peer);
                }
            }
            // Extra 2xx from forks are ACKed and hung up where the 2xx arrives.
            DialogEvent::Confirmed { .. } | DialogEvent::ExtraAnswer { .. } => {}
        }
    }

    /// Where in-dialog requests go: over UDP the remote target / route set; over TCP the
    /// connection the call came on.
    fn dialog_peer(&self, id: &DialogId, call_peer: Peer) -> Peer {
        match (
            call_peer.transport,
            self.dialogs.get(id).map(|d| d.next_hop()),
        ) {
            (Transport::Udp, Some(uri)) => uri_peer(&uri).unwrap_or(call_peer),
            _ => call_peer,
        }
    }

    /// Sends a request inside dialog `id` to `peer` through a client transaction.
    fn send_in_dialog(&mut self, id: &DialogId, method: rsip::Method, peer: Peer) {
        let req = match self.dialogs.request(id, method, None) {
            Ok(r) => r,
            Err(e) => {
                return tracing::debug!(dialog = %id, error = %e, "cannot build in-dialog request")
            }
        };
        match self.layer.send_request(now(), req.clone(), peer) {
            Ok(key) => {
                self.sent.insert(key, req);
            }
            Err(e) => tracing::warn!(dialog = %id, error = %e, "cannot send in-dialog request"),
        }
    }
}

/// Hands freed heap back to the OS after a busy spell. glibc keeps freed memory in its arenas,
/// so after a burst of 60,000 transactions RSS would stay at the peak; this runs only when load
/// falls to a quarter of its peak, never per message.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and shrinks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A UDP peer for a SIP URI whose host is an IP address (names need DNS: `None`).
fn uri_peer(uri: &rsip::Uri) -> Option<Peer> {
    let ip = match &uri.host_with_port.host {
        rsip::Host::IpAddr(ip) => *ip,
        rsip::Host::Domain(d) => d.to_string().trim_matches(['[', ']']).parse().ok()?,
    };
    // A sips: URI is reached over TLS, on 5061 unless it says otherwise (RFC 3261 §26.2).
    let secure = uri.scheme == Some(rsip::Scheme::Sips);
    let default_port = if secure { 5061 } else { 5060 };
    let port = uri
        .host_with_port
        .port
        .map(|p| *p.value())
        .unwrap_or(default_port);
    Some(Peer {
        addr: SocketAddr::new(ip, port),
        transport: if secure {
            Transport::Tls
        } else {
            Transport::Udp
        },
    })
}
