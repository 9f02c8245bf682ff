//! The SIP endpoint: the thin tokio driver that owns the sockets' inbound channel, the sans-IO
//! transaction layer and the server core, and moves messages between them.

use super::auth::{apply, with_credentials, ClientOutcome, DigestClient};
use super::dialog::{Body, DialogConfig, DialogEvent, DialogId, DialogLayer, InDialog};
use super::metrics::SipMetrics;
use super::registrar::{Registrar, RegistrarConfig};
use super::server::Outcome;
use super::server::{Server, ServerPolicy};
use super::test_call::{TestCall, TestCallReport};
use super::transaction::header_param;
use super::transaction::{edit_top_via, Event, TimerConfig, TransactionKey, TransactionLayer};
use super::transaction::{make_response, tag_of};
use super::transport::{Inbound, Peer, Transport, TransportConfig, Transports};
use super::trunk::REGISTER_EXPIRES;
use super::trunk::{TrunkStatus, Trunks};
use super::wire::{self, WireError};
use super::SipError;
use crate::config::{Config, TransportKind, TrunkConfig};
use crate::media::{echo, sdp};
use crate::shutdown::Shutdown;
use rsip::headers::UntypedHeader;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Messages handled per wake-up before flushing, so a burst cannot starve timers.
const BATCH: usize = 64;
/// Inbound queue depth; a full queue applies back-pressure to the receive tasks.
const INBOUND_QUEUE: usize = 4096;

/// The latest trunk status, shared with the HTTP API.
pub type TrunkView = Arc<RwLock<Vec<TrunkStatus>>>;

/// What the daemon asks of the endpoint.
pub enum Command {
    /// Place a test call through a trunk and report the outcome.
    TestCall {
        /// Trunk name.
        trunk: String,
        /// Number (user part) to call.
        to: String,
        /// CANCEL when still ringing after this long.
        ring_timeout: Duration,
        /// Where the report goes.
        reply: oneshot::Sender<TestCallReport>,
    },
}

/// What the rest of the daemon learns about the running endpoint.
pub struct EndpointHandle {
    /// Commands into the endpoint (test calls).
    pub commands: mpsc::Sender<Command>,
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
    let (commands_tx, commands) = mpsc::channel(64);
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
                echo_number: cfg.echo_number.clone(),
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
            ..DialogConfig::new(
                format!("sip:dialerd@{}", local_addrs[0]),
                local_addrs[0].to_string(),
            )
        }),
        calls: HashMap::new(),
        test_calls: HashMap::new(),
        registers: HashMap::new(),
        commands,
        call_deadlines: BTreeMap::new(),
        invites: HashMap::new(),
        sent: HashMap::new(),
        call_seq: 0,
        max_calls: cfg.max_calls,
        echo_max: cfg.echo_max_duration,
        stop: shutdown.token(),
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
        commands: commands_tx,
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

/// A call in progress on the echo route.
struct Call {
    /// The RTP reflector; dropping it stops the audio.
    _echo: echo::Echo,
    /// Where the INVITE came from: in-dialog requests over TCP reuse its connection.
    peer: Peer,
    /// Key in `call_deadlines`.
    deadline: (Instant, u64),
    /// The trunk it holds a slot on (outbound calls).
    trunk: Option<usize>,
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
    dialogs: DialogLayer,
    /// Calls in progress by dialog.
    calls: HashMap<DialogId, Call>,
    /// Trunk REGISTERs in flight: client transaction → (trunk, request, destination).
    registers: HashMap<TransactionKey, (usize, rsip::Request, Peer)>,
    /// Test calls by their INVITE client transaction.
    test_calls: HashMap<TransactionKey, TestCall>,
    commands: mpsc::Receiver<Command>,
    /// When each call must be hung up: (deadline, seq) → dialog.
    call_deadlines: BTreeMap<(Instant, u64), DialogId>,
    /// INVITE server transactions we answered 2xx, until their ACK (for AckTimeout).
    invites: HashMap<TransactionKey, DialogId>,
    /// In-dialog requests we sent (BYE, UPDATE), until their final response.
    sent: HashMap<TransactionKey, rsip::Request>,
    call_seq: u64,
    max_calls: usize,
    echo_max: Duration,
    stop: CancellationToken,
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
            if self.draining && self.layer.awaiting_final() == 0 && self.calls.is_empty() {
                tracing::info!("sip endpoint drained");
                return;
            }
            let deadline = [
                self.layer.poll_timeout(),
                self.trunks.poll_timeout(),
                self.server.registrar_mut().poll_timeout(),
                self.dialogs.poll_timeout(),
                self.call_deadlines.keys().next().map(|(at, _)| *at),
                self.test_calls
                    .values()
                    .filter(|c| !c.cancelled && c.reply.is_some())
                    .map(|c| c.ring_deadline)
                    .min(),
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
                Some(cmd) = self.commands.recv() => self.on_command(cmd),
                _ = timer => {
                    let now = now();
                    self.layer.handle_timeout(now);
                    self.server.registrar_mut().handle_timeout(now);
                    self.dialogs.handle_timeout(now);
                    self.hang_up_due_calls(now);
                    self.cancel_unanswered_test_calls(now);
                    self.send_registrations();
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
            self.calls.shrink_to_fit();
            self.invites.shrink_to_fit();
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
                if tag_of(&request.headers, false).is_some() {
                    return self.in_dialog_request(key, request);
                }
                let refuse = self.draining || self.calls.len() >= self.max_calls;
                self.server.policy_mut().refuse_new_calls = refuse;
                let tag = self.layer.new_tag();
                match self.server.route(now(), &request, peer.addr.ip(), &tag) {
                    Some(Outcome::Respond(resp)) => self.respond(&key, resp),
                    Some(Outcome::Echo) => self.answer_echo(key, request, peer, &tag),
                    None => {}
                }
            }
            Event::Ack { request, .. } => {
                let _ = self.dialogs.on_request(now(), &request);
            }
            Event::AckTimeout { key } if self.invites.contains_key(&key) => {
                if let Some(id) = self.invites.remove(&key) {
                    tracing::info!(dialog = %id, "no ACK for our 200; hanging up");
                    self.hang_up(&id);
                }
            }
            Event::Response { key, response } if self.registers.contains_key(&key) => {
                self.register_response(key, response)
            }
            Event::Timeout { key } | Event::TransportError { key }
                if self.registers.contains_key(&key) =>
            {
                self.register_failed(&key)
            }
            Event::Response { key, response } if self.test_calls.contains_key(&key) => {
                self.test_call_response(key, response)
            }
            Event::Timeout { key } if self.test_calls.contains_key(&key) => {
                self.test_call_failed(&key, "timeout")
            }
            Event::TransportError { key } if self.test_calls.contains_key(&key) => {
                self.test_call_failed(&key, "transport_error")
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
                self.invites.remove(&key);
                self.test_calls.remove(&key);
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
            // Echo calls are answered at once, so no INVITE is pending when a CANCEL comes.
            Event::Response { .. } | Event::Cancelled { .. } => {}
        }
    }

    fn respond(&mut self, key: &TransactionKey, resp: rsip::Response) {
        if let Err(e) = self.layer.send_response(now(), key, resp) {
            tracing::warn!(error = %e, "cannot answer sip request");
        }
    }

    /// Answers an INVITE to the echo number: 200 with an SDP answer and an RTP reflector.
    fn answer_echo(&mut self, key: TransactionKey, invite: rsip::Request, peer: Peer, tag: &str) {
        let now = now();
        if let Some(resp) = self.dialogs.uas_check(&invite) {
            return self.respond(&key, resp);
        }
        let offer = sdp::parse_offer(&invite.body);
        let Some((offer, codec)) = offer.and_then(|o| sdp::choose_codec(&o).map(|c| (o, c))) else {
            // No offer in the INVITE (offer in ACK) or no codec in common: RFC 3264 §6.
            return self.respond(&key, make_response(&invite, 488, Some(tag)));
        };
        let local_ip = self.transports.local_for(peer.addr).ip();
        let echo = match echo::start(local_ip) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open an RTP socket; refusing the call");
                let mut r = make_response(&invite, 503, Some(tag));
                r.headers
                    .push(rsip::Header::Other("Retry-After".into(), "5".into()));
                return self.respond(&key, r);
            }
        };
        self.call_seq += 1;
        let answer = sdp::answer(local_ip, echo.local.port(), self.call_seq, codec, &offer);
        let mut ok = make_response(&invite, 200, Some(tag));
        ok.headers
            .push(rsip::Header::ContentType(rsip::headers::ContentType::new(
                "application/sdp",
            )));
        ok.body = answer.into_bytes();
        let ok = match self.dialogs.uas_respond(now, &invite, ok) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "cannot make a dialog for the echo call");
                return self.respond(&key, make_response(&invite, 400, Some(tag)));
            }
        };
        let Some(id) = DialogId::of_answer(&ok) else {
            return self.respond(&key, make_response(&invite, 400, Some(tag)));
        };
        let deadline = (now + self.echo_max, self.call_seq);
        self.call_deadlines.insert(deadline, id.clone());
        self.calls.insert(
            id.clone(),
            Call {
                _echo: echo,
                peer,
                deadline,
                trunk: None,
            },
        );
        self.invites.insert(key.clone(), id);
        self.respond(&key, ok);
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
            InDialog::Bye { id, response } => {
                self.respond(&key, response);
                self.end_call(&id);
            }
            InDialog::ReInvite { .. } | InDialog::Update { .. } => {
                // Media changes come with the media layer; answer with the session we have.
                match self.dialogs.answer_with_last_sdp(now, &req) {
                    Ok(r) => self.respond(&key, r),
                    Err(_) => self.respond(&key, make_response(&req, 481, None)),
                }
            }
            InDialog::Ack { .. } => {}
            InDialog::Other { .. } => {
                let code = if req.method == rsip::Method::Info {
                    200
                } else {
                    405
                };
                self.respond(&key, make_response(&req, code, None));
            }
        }
    }

    fn on_dialog_event(&mut self, event: DialogEvent) {
        match event {
            DialogEvent::Terminated { id, reason } => {
                tracing::debug!(dialog = %id, ?reason, "dialog ended");
                self.end_call(&id);
            }
            DialogEvent::SessionExpired { id } => {
                tracing::info!(dialog = %id, "session expired without refresh; hanging up");
                self.hang_up(&id);
            }
            DialogEvent::RefreshDue { id } => self.send_in_dialog(&id, rsip::Method::Update),
            DialogEvent::Confirmed { .. } | DialogEvent::ExtraAnswer { .. } => {}
        }
    }

    /// Hangs up calls whose time is up.
    fn hang_up_due_calls(&mut self, now: Instant) {
        while let Some(entry) = self.call_deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            tracing::info!(dialog = %id, "call reached its maximum duration; hanging up");
            self.hang_up(&id);
        }
    }

    /// Sends BYE and stops the call's media now; the dialog ends when the BYE is answered.
    fn hang_up(&mut self, id: &DialogId) {
        self.send_in_dialog(id, rsip::Method::Bye);
        self.end_call(id);
    }

    /// Forgets a call (idempotent): media stops, its deadline goes.
    fn end_call(&mut self, id: &DialogId) {
        if let Some(call) = self.calls.remove(id) {
            self.call_deadlines.remove(&call.deadline);
            if let Some(trunk) = call.trunk {
                self.trunks.call_ended(trunk);
                self.publish_trunks();
            }
        }
    }

    /// Sends a request inside dialog `id` through a client transaction.
    fn send_in_dialog(&mut self, id: &DialogId, method: rsip::Method) {
        let Some(call_peer) = self.calls.get(id).map(|c| c.peer) else {
            return;
        };
        let peer = match (
            call_peer.transport,
            self.dialogs.get(id).map(|d| d.next_hop()),
        ) {
            // Over UDP, follow the remote target / route set; over TCP keep the connection.
            (Transport::Udp, Some(uri)) => uri_peer(&uri).unwrap_or(call_peer),
            _ => call_peer,
        };
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
    let port = uri.host_with_port.port.map(|p| *p.value()).unwrap_or(5060);
    Some(Peer {
        addr: SocketAddr::new(ip, port),
        transport: Transport::Udp,
    })
}

impl Endpoint {
    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::TestCall {
                trunk,
                to,
                ring_timeout,
                reply,
            } => self.start_test_call(trunk, to, ring_timeout, reply),
        }
    }

    /// Places a test call: INVITE with an SDP offer through trunk `name` to `to`.
    fn start_test_call(
        &mut self,
        name: String,
        to: String,
        ring_timeout: Duration,
        reply: oneshot::Sender<TestCallReport>,
    ) {
        let now = now();
        let mut report = TestCallReport {
            trunk: name.clone(),
            to: to.clone(),
            outcome: "unavailable",
            code: None,
            reason: String::new(),
            auth_challenges: 0,
            first_response_ms: None,
            ringing_ms: None,
            final_ms: None,
        };
        let trunk = match self.trunks.admit_test_call(&name, now) {
            Ok(i) => i,
            Err(e) => {
                report.reason = e.to_string();
                let _ = reply.send(report);
                return;
            }
        };
        self.publish_trunks();
        let cfg = self.trunks.get(trunk).config.clone();
        let dest = self
            .trunks
            .get(trunk)
            .addr
            .expect("admitted trunks have an address");
        let transport = match cfg.transport {
            TransportKind::Udp => Transport::Udp,
            TransportKind::Tcp => Transport::Tcp,
        };
        let local = self.transports.local_for(dest);
        let media = echo::start(local.ip()).ok();
        let Some(rtp_port) = media.as_ref().map(|m| m.local.port()) else {
            self.trunks.call_ended(trunk);
            report.outcome = "transport_error";
            report.reason = "cannot open an RTP socket".into();
            let _ = reply.send(report);
            return;
        };
        self.call_seq += 1;
        let domain = if cfg.from_domain.is_empty() {
            &cfg.host
        } else {
            &cfg.from_domain
        };
        let user = if cfg.username.is_empty() {
            "dialerd"
        } else {
            &cfg.username
        };
        let invite = self.dialogs.uac_invite(
            transport,
            &format!("sip:{to}@{}:{}", cfg.host, cfg.port),
            &format!("<sip:{user}@{domain}>"),
            &format!("<sip:{to}@{domain}>"),
            Some(Body::sdp(sdp::offer(local.ip(), rtp_port, self.call_seq))),
        );
        let invite = match invite {
            Ok(r) => r,
            Err(e) => {
                self.trunks.call_ended(trunk);
                report.outcome = "rejected";
                report.reason = format!("cannot build the INVITE: {e}");
                let _ = reply.send(report);
                return;
            }
        };
        let peer = Peer {
            addr: dest,
            transport,
        };
        let digest = (!cfg.username.is_empty()).then(|| {
            let client = DigestClient::new(cfg.username.clone(), cfg.password.expose().to_string());
            if cfg.realm.is_empty() {
                client
            } else {
                client.with_realm(cfg.realm.clone())
            }
        });
        let call = TestCall {
            trunk,
            invite: invite.clone(),
            peer,
            started: now,
            ring_deadline: now + ring_timeout,
            cancelled: false,
            digest,
            report,
            reply: Some(reply),
            media,
        };
        self.send_test_invite(call, invite);
    }

    fn send_test_invite(&mut self, mut call: TestCall, invite: rsip::Request) {
        let now = now();
        match self.layer.send_request(now, invite.clone(), call.peer) {
            Ok(key) => {
                call.invite = invite;
                self.test_calls.insert(key, call);
            }
            Err(e) => {
                self.trunks.call_ended(call.trunk);
                call.finish("transport_error", None, e.to_string(), now);
            }
        }
    }

    /// A response to a test call's INVITE.
    fn test_call_response(&mut self, key: TransactionKey, resp: rsip::Response) {
        let now = now();
        let Some(mut call) = self.test_calls.remove(&key) else {
            return;
        };
        let code = resp.status_code.code();
        call.report
            .first_response_ms
            .get_or_insert(call.elapsed_ms(now));
        if (180..=183).contains(&code) {
            call.report.ringing_ms.get_or_insert(call.elapsed_ms(now));
        }
        let dialog = self.dialogs.uac_response(now, &call.invite, &resp);
        let reason = reason_of(&resp);
        // Provisionals and 2xx keep the call (2xx retransmissions need their ACK too).
        let keep = match code {
            100..=199 => Some(call),
            200..=299 => {
                let Some(id) = dialog else {
                    self.test_calls.insert(key, call);
                    return;
                };
                // Every 2xx, retransmissions included, gets the (same) ACK.
                if let Ok(ack) = self.dialogs.build_ack(&id) {
                    self.layer
                        .send_stateless(rsip::SipMessage::Request(ack), call.peer);
                }
                if call.reply.is_some() {
                    call.finish("answered", Some(code), reason, now);
                    // A test call only proves the path: hang up at once.
                    let deadline = (now, self.call_seq);
                    self.call_seq += 1;
                    if let Some(media) = call.media.take() {
                        self.calls.insert(
                            id.clone(),
                            Call {
                                _echo: media,
                                peer: call.peer,
                                deadline,
                                trunk: Some(call.trunk),
                            },
                        );
                        self.call_deadlines.insert(deadline, id.clone());
                    }
                    self.hang_up(&id);
                }
                Some(call)
            }
            401 | 407 if call.report.auth_challenges < 2 && call.reply.is_some() => {
                let outcome = call
                    .digest
                    .as_mut()
                    .map(|d| d.on_challenge(&resp, &call.invite));
                match outcome {
                    Some(ClientOutcome::Retry(headers)) => {
                        call.report.auth_challenges += 1;
                        let branch = self.layer.new_branch();
                        let retry = super::auth::with_credentials(&call.invite, &headers, &branch);
                        self.send_test_invite(call, retry);
                        None
                    }
                    Some(ClientOutcome::GiveUp(e)) => {
                        self.trunks.call_ended(call.trunk);
                        call.finish("auth_failed", Some(code), e.to_string(), now);
                        None
                    }
                    None => {
                        self.trunks.call_ended(call.trunk);
                        let why = "the trunk asks for credentials; none configured";
                        call.finish("auth_failed", Some(code), why.into(), now);
                        None
                    }
                }
            }
            _ => {
                self.trunks.call_ended(call.trunk);
                let outcome = if call.cancelled && code == 487 {
                    "no_answer"
                } else {
                    "rejected"
                };
                call.finish(outcome, Some(code), reason, now);
                None
            }
        };
        if let Some(call) = keep {
            self.test_calls.insert(key, call);
        }
        self.publish_trunks();
    }

    /// A test call's INVITE got no final response, or could not be sent.
    fn test_call_failed(&mut self, key: &TransactionKey, outcome: &'static str) {
        if let Some(mut call) = self.test_calls.remove(key) {
            if call.reply.is_some() {
                self.trunks.call_ended(call.trunk);
                let reason = match outcome {
                    "timeout" => "no final response (Timer B)".to_string(),
                    _ => "the trunk cannot be reached".to_string(),
                };
                call.finish(outcome, None, reason, now());
                self.publish_trunks();
            }
        }
    }

    /// Cancels test calls that rang too long.
    fn cancel_unanswered_test_calls(&mut self, now: Instant) {
        let due: Vec<TransactionKey> = self
            .test_calls
            .iter()
            .filter(|(_, c)| !c.cancelled && c.reply.is_some() && c.ring_deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(call) = self.test_calls.get_mut(&key) {
                call.cancelled = true;
            }
            if let Err(e) = self.layer.cancel(now, &key) {
                tracing::debug!(error = %e, "cannot cancel test call");
            }
        }
    }
}

/// The reason phrase of a response.
fn reason_of(resp: &rsip::Response) -> String {
    resp.status_code.to_string()
}

impl Endpoint {
    /// Sends a REGISTER for every trunk whose registration is due.
    fn send_registrations(&mut self) {
        let now = now();
        for i in self.trunks.due_registrations(now) {
            let trunk = self.trunks.get(i);
            let cfg = trunk.config.clone();
            let Some(dest) = trunk.addr else { continue };
            let transport = match cfg.transport {
                TransportKind::Udp => Transport::Udp,
                TransportKind::Tcp => Transport::Tcp,
            };
            let local = self.transports.local_for(dest);
            let domain = if cfg.from_domain.is_empty() {
                cfg.host.clone()
            } else {
                cfg.from_domain.clone()
            };
            let branch = self.layer.new_branch();
            let tag = self.layer.new_tag();
            let fresh_call_id = self.layer.new_tag();
            let reg = self
                .trunks
                .get_mut(i)
                .registration
                .as_mut()
                .expect("due trunks register");
            if reg.call_id.is_empty() {
                reg.call_id = format!("{fresh_call_id}@dialerd");
            }
            reg.cseq += 1;
            let text = format!(
                "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@{domain}>;tag={tag}\r\nTo: <sip:{user}@{domain}>\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>\r\n\
                 Expires: {expires}\r\nUser-Agent: dialerd/{v}\r\nContent-Length: 0\r\n\r\n",
                t = transport.via_name(),
                user = cfg.username,
                call_id = reg.call_id,
                cseq = reg.cseq,
                expires = REGISTER_EXPIRES.as_secs(),
                v = env!("CARGO_PKG_VERSION"),
            );
            let Ok(rsip::SipMessage::Request(mut req)) = wire::parse(text.as_bytes()) else {
                tracing::warn!(trunk = %cfg.name, "REGISTER did not build");
                self.trunks.registration_result(i, None, now);
                continue;
            };
            // Reuse the last nonce (nc + 1) and save the 401 round trip on refreshes.
            let auth = reg.digest.preemptive(&req);
            apply(&mut req, &auth);
            self.send_register(
                i,
                req,
                Peer {
                    addr: dest,
                    transport,
                },
            );
        }
    }

    fn send_register(&mut self, trunk: usize, req: rsip::Request, peer: Peer) {
        match self.layer.send_request(now(), req.clone(), peer) {
            Ok(key) => {
                self.registers.insert(key, (trunk, req, peer));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot send REGISTER");
                self.trunks.registration_result(trunk, None, now());
            }
        }
    }

    /// A final response to a trunk REGISTER.
    fn register_response(&mut self, key: TransactionKey, resp: rsip::Response) {
        let now = now();
        let code = resp.status_code.code();
        if code < 200 {
            return;
        }
        let Some((trunk, req, peer)) = self.registers.remove(&key) else {
            return;
        };
        let name = self.trunks.get(trunk).config.name.clone();
        match code {
            200..=299 => {
                let granted = granted_expires(&resp).unwrap_or(REGISTER_EXPIRES);
                tracing::info!(trunk = %name, expires = granted.as_secs(), "registered to trunk");
                self.trunks.registration_result(trunk, Some(granted), now);
            }
            401 | 407 => {
                let Some(reg) = self.trunks.get_mut(trunk).registration.as_mut() else {
                    return;
                };
                match reg.digest.on_challenge(&resp, &req) {
                    ClientOutcome::Retry(headers) => {
                        reg.cseq += 1;
                        let branch = self.layer.new_branch();
                        let retry = with_credentials(&req, &headers, &branch);
                        self.send_register(trunk, retry, peer);
                    }
                    ClientOutcome::GiveUp(e) => {
                        tracing::warn!(trunk = %name, error = %e, "trunk registration refused");
                        self.trunks.registration_result(trunk, None, now);
                    }
                }
            }
            _ => {
                tracing::warn!(trunk = %name, code, "trunk registration failed");
                self.trunks.registration_result(trunk, None, now);
            }
        }
        self.publish_trunks();
    }

    /// A trunk REGISTER got no answer or could not be sent.
    fn register_failed(&mut self, key: &TransactionKey) {
        if let Some((trunk, _, _)) = self.registers.remove(key) {
            tracing::warn!(trunk = %self.trunks.get(trunk).config.name, "trunk registration got no answer");
            self.trunks.registration_result(trunk, None, now());
            self.publish_trunks();
        }
    }
}

/// The lifetime a registrar granted: the smallest `expires` among the Contacts of its 200
/// (ours is the one it kept), else the Expires header.
fn granted_expires(resp: &rsip::Response) -> Option<Duration> {
    let from_contacts = resp
        .headers
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Contact(c) => header_param(c.value(), "expires")?.parse::<u64>().ok(),
            _ => None,
        })
        .min();
    let from_header = resp.headers.iter().find_map(|h| match h {
        rsip::Header::Expires(e) => e.value().trim().parse::<u64>().ok(),
        _ => None,
    });
    from_contacts.or(from_header).map(Duration::from_secs)
}
