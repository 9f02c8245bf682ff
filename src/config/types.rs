//! The configuration structs, their defaults and their validation.

use super::Secret;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole daemon configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the daemon keeps its state (database, recordings); `$STATE_DIRECTORY` wins.
    pub state_dir: PathBuf,
    /// Logging.
    pub log: LogConfig,
    /// Admin HTTP listener (metrics, health, API).
    pub http: HttpConfig,
    /// SIP stack.
    pub sip: SipConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// RTP, codecs, prompts.
    pub media: MediaConfig,
    /// SIP trunks to carriers and PBXs.
    pub trunks: Vec<TrunkConfig>,
    /// Agent phones that may register (until the agents issue moves accounts to the store).
    pub agents: Vec<AgentConfig>,
    /// Caller-ID lines and their verification calls.
    pub lines: LinesConfig,
    /// Task flow in the background (webhook deliveries).
    pub flow: FlowConfig,
    /// Limits on the CSV files imported.
    pub import: ImportConfig,
    /// Browser audio (WebRTC) of agents in the console.
    pub webrtc: WebRtcConfig,
    /// Agent sessions: pause reasons, the session call.
    pub sessions: SessionsConfig,
    /// The SMTP relay e-mail tasks send through.
    pub email: EmailConfig,
    /// Drop folders whose CSV files are imported.
    pub inbox: InboxConfig,
    /// Country calling rules, beside the built-in ones (France).
    pub calling_rules: Vec<CallingRuleConfig>,
    /// Where the store is: SQLite (the default) or PostgreSQL.
    pub store: StoreConfig,
    /// This node's name among the nodes sharing one store.
    pub node: NodeConfig,
}

/// `[node]`: this daemon among several sharing one PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name (1–64 letters, digits, `.`, `_`, `-`), unique among the nodes of one
    /// store; empty: the host name.
    pub name: String,
    /// The SIP URI a proxy in front of the nodes relays this node's agents' phones to,
    /// published in the node's row; empty: `sip:` and the first `sip.listen` address as bound
    /// (the host name for an unspecified address).
    pub sip_uri: String,
}

impl NodeConfig {
    /// The name in use: `name`, else the host name (`dialerd` when it cannot be read or is not
    /// a valid node name).
    pub fn resolved(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        host_name()
            .filter(|h| valid_node_name(h))
            .unwrap_or_else(|| "dialerd".into())
    }

    /// The SIP URI published: `sip_uri`, else one for `bound`, the first SIP address the
    /// daemon listens on (the host name in place of an unspecified address).
    pub fn sip_uri_for(&self, bound: SocketAddr) -> String {
        if !self.sip_uri.is_empty() {
            return self.sip_uri.clone();
        }
        let port = bound.port();
        match bound.ip() {
            ip if ip.is_unspecified() => {
                let host = host_name().unwrap_or_else(|| "localhost".into());
                format!("sip:{host}:{port}")
            }
            std::net::IpAddr::V4(ip) => format!("sip:{ip}:{port}"),
            std::net::IpAddr::V6(ip) => format!("sip:[{ip}]:{port}"),
        }
    }
}

/// Whether `uri` may be published as a node's SIP URI: `sip:` or `sips:` and a host, printable
/// ASCII without spaces, at most 255 characters (Kamailio compares it with its dispatcher list).
pub fn valid_sip_uri(uri: &str) -> bool {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .unwrap_or("");
    !rest.is_empty() && uri.len() <= 255 && uri.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `name` may name a node: 1–64 ASCII letters, digits, `.`, `_` or `-` (it becomes a
/// metrics label value and a column value, and Kamailio's configuration matches on it).
pub fn valid_node_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The system's host name, as `gethostname(2)` gives it.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the call writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

/// `[store]`: the database.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`; empty: the SQLite
    /// file `dialerd.db` in the state directory.
    pub url: StoreUrl,
}

/// A `store.url`; its password shows as `********` in Debug and in serialised output.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }
    /// The URL in clear, to connect with.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The URL with its password masked.
    fn masked(&self) -> String {
        crate::store::Location::parse(&self.0)
            .map(|l| match l {
                crate::store::Location::Postgres(_) => l.to_string(),
                crate::store::Location::Sqlite(_) => self.0.clone(),
            })
            .unwrap_or_else(|_| self.0.clone())
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl Serialize for StoreUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// `[[calling_rules]]`: when contacts whose number is of `country` may be called, judged in
/// the contact's own zone; replaces the built-in rule of that country.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CallingRuleConfig {
    /// ISO 3166 alpha-2 code of the numbers' country (`FR`).
    pub country: String,
    /// Weekly windows in the contact's zone; none: any time.
    #[serde(default)]
    pub windows: Vec<crate::store::campaigns::Window>,
    /// Most attempts on a contact in a rolling 30 days; unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts_30d: Option<u32>,
    /// Public holidays without calls: `MM-DD`, or `easter+N` days from Easter Sunday.
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// `[sessions]`: agent sessions (login on a phone dialerd calls, pauses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Reasons agents may give for a pause, besides the system reasons `login`, `leg_lost`
    /// and `missed_offer`.
    pub pause_reasons: Vec<String>,
    /// How long the agent's phone may ring for the session call.
    #[serde(with = "humantime_serde")]
    pub ring_timeout: Duration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            pause_reasons: ["break", "lunch", "meeting", "training"]
                .map(String::from)
                .to_vec(),
            ring_timeout: Duration::from_secs(30),
        }
    }
}

/// `[inbox]`: drop folders, one per campaign (`<dir>/<campaign id>/`), whose complete CSV
/// files are imported with the campaign's saved import settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboxConfig {
    /// The folder holding the campaigns' folders; unset: `<state_dir>/inbox`.
    pub dir: Option<PathBuf>,
    /// How often the folders are looked into; a file is taken once two looks in a row see
    /// it unchanged. `0s`: no drop folders.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for InboxConfig {
    fn default() -> Self {
        Self {
            dir: None,
            poll_interval: Duration::from_secs(5),
        }
    }
}

/// `[email]`: the SMTP relay of e-mail tasks. Unset `smtp_url`: e-mail tasks fail their
/// contacts (`$email_failed`, after the retries) saying so.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://host:port` (STARTTLS when the relay offers it) or `smtps://host:port` (TLS from
    /// the start); empty: no relay.
    pub smtp_url: String,
    /// User name for SMTP AUTH; empty: no authentication.
    pub username: String,
    /// Password for SMTP AUTH; masked by check-config.
    pub password: Secret,
    /// The sender address (`From`), e.g. `Dialer <noreply@example.com>`.
    pub from: String,
}

/// `[import]`: how wide a CSV import may be, so that one file cannot fill the memory or the
/// contacts (a cell, a row or a header over a limit is refused, not read into memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportConfig {
    /// Longest field in bytes (as stored, quotes undone).
    pub max_field_bytes: usize,
    /// Most columns (fields) in a row.
    pub max_columns: usize,
    /// Longest row in bytes as written in the file (quotes, commas and line breaks inside
    /// quotes included; the line ending excluded).
    pub max_row_bytes: usize,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            max_field_bytes: 16_384,
            max_columns: 256,
            max_row_bytes: 65_536,
        }
    }
}

/// `[webrtc]`: the browser agents' audio legs (ICE-lite, DTLS-SRTP, rtcp-mux).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebRtcConfig {
    /// Addresses the browsers reach the daemon's media at: one host candidate each, its port
    /// from the RTP pool. Empty: no browser audio.
    pub addresses: Vec<std::net::IpAddr>,
    /// The browser legs' codecs in order of preference (`opus`, `PCMU`, `PCMA`); G.711 ones
    /// count only when `media.codecs` has them.
    pub codecs: Vec<String>,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        Self {
            addresses: vec![std::net::IpAddr::from([127, 0, 0, 1])],
            codecs: vec!["PCMU".into(), "PCMA".into(), "opus".into()],
        }
    }
}

/// `[flow]`: background task flow, i.e. how webhook tasks reach their servers.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// PEM file of extra CA certificates trusted for `https://` webhooks, besides the Mozilla
    /// roots (a company CA); unset: the Mozilla roots only.
    pub webhook_ca_file: Option<PathBuf>,
}

/// `[lines]`: verification of the numbers campaigns show as caller ID.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinesConfig {
    /// dialerd's own number that `forward` lines are forwarded to (calls to it are matched to
    /// pending forward verifications); unset: forward mode cannot be verified.
    pub access_number: Option<String>,
    /// Trunk verification calls go through; unset: the least loaded trunk that is up.
    pub trunk: Option<String>,
    /// Caller ID of verification calls (external mode); unset: the trunk's.
    pub caller_id: Option<String>,
    /// Caller IDs for forward-mode calls, one per pending verification, so that a returning
    /// call whose carrier drops Diversion/History-Info is still matched by its From.
    pub caller_id_pool: Vec<String>,
    /// How long a verification call may ring.
    #[serde(with = "humantime_serde")]
    pub ring_timeout: Duration,
    /// How long a forwarded call has to come back to the access number.
    #[serde(with = "humantime_serde")]
    pub forward_timeout: Duration,
    /// Verification calls to one number allowed per `rate_window` (anti-harassment).
    pub max_calls_per_number: u32,
    /// The window of `max_calls_per_number`.
    #[serde(with = "humantime_serde")]
    pub rate_window: Duration,
}

impl Default for LinesConfig {
    fn default() -> Self {
        Self {
            access_number: None,
            trunk: None,
            caller_id: None,
            caller_id_pool: Vec::new(),
            ring_timeout: Duration::from_secs(30),
            forward_timeout: Duration::from_secs(60),
            max_calls_per_number: 3,
            rate_window: Duration::from_secs(3600),
        }
    }
}

/// `[[agents]]`: a SIP account for an agent's phone.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// SIP user name (the user part of the phone's address of record).
    pub username: String,
    /// Digest password; masked by check-config.
    pub password: Secret,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/dialerd"),
            log: LogConfig::default(),
            http: HttpConfig::default(),
            sip: SipConfig::default(),
            shutdown: ShutdownConfig::default(),
            media: MediaConfig::default(),
            trunks: Vec::new(),
            agents: Vec::new(),
            lines: LinesConfig::default(),
            flow: FlowConfig::default(),
            import: ImportConfig::default(),
            webrtc: WebRtcConfig::default(),
            sessions: SessionsConfig::default(),
            email: EmailConfig::default(),
            inbox: InboxConfig::default(),
            calling_rules: Vec::new(),
            store: StoreConfig::default(),
            node: NodeConfig::default(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!(
                "\"{s}\" is not a log format; wanted \"text\" or \"json\""
            )),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, or `info,dialerd::sip=trace`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the admin HTTP listener.
    pub listen: SocketAddr,
    /// Bearer token `/metrics` requires; empty: `/metrics` is open.
    pub metrics_token: Secret,
    /// Host names (besides IP literals and `localhost`) requests may carry in `Host`; others
    /// get 421, so a browser page cannot reach the API through DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// A connection whose request head has not fully arrived this long after it was awaited
    /// (idle keep-alive connections included) is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A request body that sends no byte for this long fails (408) and frees what it held.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Connections served at once; beyond it new ones get 503 and are closed.
    pub max_connections: usize,
    /// Certificate chain (PEM) for HTTPS on `listen`, read again on SIGHUP; unset: plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl HttpConfig {
    /// HTTPS needs a certificate and its key that rustls takes; on failure, the key at fault
    /// and why.
    pub fn check_tls(&self) -> Result<(), (&'static str, String)> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                crate::tls::server_config(cert, key)
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            "http.tls_cert",
                            format!("wanted a usable PEM certificate and key: {e}"),
                        )
                    })
            }
            (None, None) => Ok(()),
            (None, Some(_)) => Err((
                "http.tls_cert",
                "wanted the PEM certificate chain of http.tls_key".into(),
            )),
            (Some(_), None) => Err((
                "http.tls_key",
                "wanted the PEM private key of http.tls_cert".into(),
            )),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            metrics_token: Secret::default(),
            allowed_hosts: Vec::new(),
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 256,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[sip]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// Addresses to listen on, UDP and TCP on each.
    pub listen: Vec<SocketAddr>,
    /// Addresses to take SIP over TLS on (usually port 5061); empty: no TLS listener.
    pub tls_listen: Vec<SocketAddr>,
    /// The TLS listeners' certificate chain (PEM), read again on SIGHUP.
    pub tls_certificate: Option<PathBuf>,
    /// The private key of `tls_certificate` (PEM), read again on SIGHUP.
    pub tls_private_key: Option<PathBuf>,
    /// Largest SIP message accepted, in bytes.
    pub max_message_size: usize,
    /// A TCP connection that carries no whole message for this long is closed.
    #[serde(with = "humantime_serde")]
    pub tcp_idle_timeout: Duration,
    /// Once a message has started on a TCP connection, all of it must arrive within this, or
    /// the connection is closed.
    #[serde(with = "humantime_serde")]
    pub tcp_message_timeout: Duration,
    /// Most inbound SIP TCP connections at once; further ones are closed on accept.
    pub tcp_max_connections: usize,
    /// Most inbound SIP TCP connections from one IP address at once.
    pub tcp_max_connections_per_source: usize,
    /// Most server transactions at once; beyond it new requests outside dialogs get a 503
    /// without transaction state (OPTIONS is always answered without state).
    pub max_server_transactions: usize,
    /// Requests outside dialogs one source (IPv4 address, IPv6 /64) may send per
    /// `rate_limit_interval` before it is blocked; trunks are exempt; 0 turns the limit off.
    pub rate_limit_requests: u32,
    /// The window `rate_limit_requests` is counted in.
    #[serde(with = "humantime_serde")]
    pub rate_limit_interval: Duration,
    /// How long a source over the rate has its requests dropped, counted from its last
    /// request over the rate.
    #[serde(with = "humantime_serde")]
    pub rate_limit_block: Duration,
    /// Calls to this number are answered and their audio echoed (a test route for PBX admins).
    pub echo_number: Option<String>,
    /// Echo calls are hung up after this long.
    #[serde(with = "humantime_serde")]
    pub echo_max_duration: Duration,
    /// Calls to this number hear `media.test_prompt` and are hung up (a test route).
    pub prompt_number: Option<String>,
    /// Calls to a number starting with this prefix are relayed, prefix removed, through the
    /// least loaded trunk that is up, audio bridged (a B2BUA test route; unset: none).
    pub relay_prefix: Option<String>,
    /// A test route for bridging to a long-lived leg: the first caller to this number is held
    /// as the "agent" (hears silence), and each later caller is bridged to it in turn, until
    /// the agent hangs up (unset: none).
    pub agent_test_number: Option<String>,
    /// An agent's registered phone that calls this number (its INVITE digest-authenticated)
    /// logs the agent in on that call, for its tasks from the store (unset: no such route).
    pub agent_login_number: Option<String>,
    /// Most calls at once; beyond it new INVITEs get 503 with Retry-After.
    pub max_calls: usize,
    /// Session interval offered and accepted (RFC 4028); "0s" turns session timers off.
    #[serde(with = "humantime_serde")]
    pub session_expires: Duration,
    /// Shortest session interval accepted (Min-SE).
    #[serde(with = "humantime_serde")]
    pub min_se: Duration,
    /// Digest realm the registrar challenges agent phones with.
    pub realm: String,
    /// Digest algorithms offered to phones, most preferred first (`SHA-256`, `MD5`). Phones
    /// that only read the first challenge need theirs first.
    pub digest_algorithms: Vec<String>,
    /// Shortest registration accepted (shorter gets 423 with Min-Expires).
    #[serde(with = "humantime_serde")]
    pub min_expires: Duration,
    /// Longest registration granted (longer requests are shortened).
    #[serde(with = "humantime_serde")]
    pub max_expires: Duration,
    /// Answer every UDP request at its source port, as if it carried `rport` (for NATed phones
    /// that do not add it); off means strict RFC 3261 §18.2.2 routing.
    pub force_rport: bool,
    /// DNS servers for trunk host names (`ip:port`); empty: those of `/etc/resolv.conf`.
    pub dns_servers: Vec<SocketAddr>,
    /// RFC 3261 T1: round-trip estimate, first retransmission interval.
    #[serde(with = "humantime_serde")]
    pub t1: Duration,
    /// RFC 3261 T2: longest retransmission interval.
    #[serde(with = "humantime_serde")]
    pub t2: Duration,
    /// RFC 3261 T4: how long a message may stay in the network.
    #[serde(with = "humantime_serde")]
    pub t4: Duration,
}

impl SipConfig {
    /// The TLS listeners need a certificate and its key that rustls takes; on failure, the
    /// key at fault and why.
    pub fn check_tls(&self) -> Result<(), (&'static str, String)> {
        match (&self.tls_certificate, &self.tls_private_key) {
            (Some(cert), Some(key)) => {
                crate::tls::server_config(cert, key)
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            "sip.tls_certificate",
                            format!("wanted a usable PEM certificate and key: {e}"),
                        )
                    })
            }
            (None, None) if self.tls_listen.is_empty() => Ok(()),
            (None, _) => Err((
                "sip.tls_certificate",
                "wanted a PEM certificate chain for sip.tls_listen".into(),
            )),
            (_, None) => Err((
                "sip.tls_private_key",
                "wanted the PEM private key of sip.tls_certificate".into(),
            )),
        }
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5060))],
            tls_listen: Vec::new(),
            tls_certificate: None,
            tls_private_key: None,
            max_message_size: 65_536,
            tcp_idle_timeout: Duration::from_secs(300),
            tcp_message_timeout: Duration::from_secs(10),
            tcp_max_connections: 4096,
            tcp_max_connections_per_source: 256,
            max_server_transactions: 20_000,
            rate_limit_requests: 200,
            rate_limit_interval: Duration::from_secs(1),
            rate_limit_block: Duration::from_secs(10),
            echo_number: None,
            echo_max_duration: Duration::from_secs(3600),
            prompt_number: None,
            relay_prefix: None,
            agent_test_number: None,
            agent_login_number: None,
            max_calls: 10_000,
            session_expires: Duration::from_secs(1800),
            min_se: Duration::from_secs(90),
            realm: "dialerd".into(),
            digest_algorithms: vec!["SHA-256".into(), "MD5".into()],
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            force_rport: false,
            dns_servers: Vec::new(),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// `[media]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Lowest RTP port (even; RTCP uses the port above each RTP port).
    pub rtp_port_min: u16,
    /// Highest RTP port.
    pub rtp_port_max: u16,
    /// A leg with no RTP for this long is dead: both sides get BYE ("0s": never).
    #[serde(with = "humantime_serde")]
    pub rtp_timeout: Duration,
    /// Voice codecs in order of preference (`PCMU`, `PCMA`).
    pub codecs: Vec<String>,
    /// Directory of the prompt sets (`<lang>/*.wav`, `common/*.wav`).
    pub prompts_dir: PathBuf,
    /// Language of prompts when a call names none.
    pub language: String,
    /// Prompt played by the `sip.prompt_number` test route.
    pub test_prompt: String,
    /// Record calls on the `sip.relay_prefix` route (stereo WAV under
    /// `<state_dir>/recordings/`, caller left, called right).
    pub record_relay: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtp_port_min: 16384,
            rtp_port_max: 32767,
            rtp_timeout: Duration::from_secs(30),
            codecs: vec!["PCMU".into(), "PCMA".into()],
            prompts_dir: PathBuf::from("prompts"),
            language: "en".into(),
            test_prompt: "verification_code_is".into(),
            record_relay: false,
        }
    }
}

/// `[shutdown]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long work in progress may take to finish after SIGTERM.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// SIP transport protocol of a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum TransportKind {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP (certificate verified; `tls_ca`, `tls_server_name`).
    Tls,
}

impl TryFrom<String> for TransportKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "udp" => Ok(Self::Udp),
            "tcp" => Ok(Self::Tcp),
            "tls" => Ok(Self::Tls),
            _ => Err(format!(
                "\"{s}\" is not a transport; wanted \"udp\", \"tcp\" or \"tls\""
            )),
        }
    }
}

/// Whether a trunk's media is encrypted: SRTP keyed by SDES (RFC 4568), over TLS trunks only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum MediaEncryption {
    /// Plain RTP; `a=crypto` in offers is ignored.
    #[default]
    None,
    /// RTP/AVP with `a=crypto` offered: SRTP when the far end takes it, else plain RTP.
    Optional,
    /// RTP/SAVP only: plain offers are refused with 488.
    Srtp,
}

impl TryFrom<String> for MediaEncryption {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "none" => Ok(Self::None),
            "optional" => Ok(Self::Optional),
            "srtp" => Ok(Self::Srtp),
            _ => Err(format!(
                "\"{s}\" is not a media encryption; wanted \"srtp\", \"optional\" or \"none\""
            )),
        }
    }
}

/// `[[trunks]]`: a carrier or PBX that calls go through.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Unique name, used in the API and metrics.
    pub name: String,
    /// Proxy host name or address.
    pub host: String,
    /// Proxy port; unset with a host name means DNS SRV (`_sip._udp` / `_sip._tcp`, RFC 3263),
    /// then A/AAAA on 5060.
    #[serde(default)]
    pub port: Option<u16>,
    /// `udp`, `tcp` or `tls`.
    #[serde(default = "default_transport")]
    pub transport: TransportKind,
    /// TLS: a PEM file of CA certificates the carrier's certificate may chain to, beside
    /// Mozilla's roots.
    #[serde(default)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// TLS: the name the carrier's certificate must carry (default: `host`).
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// TLS: a client certificate chain (PEM) shown to a carrier that asks for one.
    #[serde(default)]
    pub tls_client_certificate: Option<std::path::PathBuf>,
    /// TLS: the private key of `tls_client_certificate` (PEM).
    #[serde(default)]
    pub tls_client_key: Option<std::path::PathBuf>,
    /// Digest user name (empty: no authentication).
    #[serde(default)]
    pub username: String,
    /// Digest password.
    #[serde(default)]
    pub password: Secret,
    /// Digest realm to answer; empty accepts the realm the carrier offers.
    #[serde(default)]
    pub realm: String,
    /// Domain for From headers; defaults to `host`.
    #[serde(default)]
    pub from_domain: String,
    /// Register to the trunk.
    #[serde(default)]
    pub register: bool,
    /// Most calls at once through this trunk.
    #[serde(default = "default_trunk_max_calls")]
    pub max_calls: u32,
    /// Most new calls per second through this trunk.
    #[serde(default = "default_trunk_max_cps")]
    pub max_cps: f64,
    /// Extra source networks (CIDR or single address) whose INVITEs are accepted as this
    /// trunk's, besides the address `host` resolves to.
    #[serde(default)]
    pub inbound_from: Vec<Cidr>,
    /// OPTIONS keepalive interval; a trunk that stops answering is marked down.
    #[serde(default = "default_keepalive", with = "humantime_serde")]
    pub keepalive: Duration,
    /// Caller ID for calls that name none (empty: the digest user name, else `dialerd`).
    #[serde(default)]
    pub caller_id: String,
    /// Drop a leading `+` from called and calling numbers (carriers that want bare digits).
    #[serde(default)]
    pub strip_plus: bool,
    /// Prepended to every called number (a carrier's technical prefix).
    #[serde(default)]
    pub dial_prefix: String,
    /// Send P-Asserted-Identity (and `Privacy: none`) with the caller ID.
    #[serde(default = "default_true")]
    pub send_pai: bool,
    /// The trunk's media comes through NAT: its RTP may come from another address than its
    /// SDP names, and is latched by stream instead (off: only the SDP's address is accepted).
    #[serde(default)]
    pub nat: bool,
    /// SRTP with SDES keys on this trunk's calls (TLS trunks only): `srtp`, `optional`, `none`.
    #[serde(default)]
    pub media_encryption: MediaEncryption,
    /// This trunk is the proxy in front of several nodes (conf/kamailio/dialerd-cluster.cfg),
    /// not a carrier: only its calls may ask for the last resort (`X-Dialerd-Last-Resort`).
    #[serde(default)]
    pub cluster_proxy: bool,
}

fn default_true() -> bool {
    true
}

impl TrunkConfig {
    /// `host` or `host:port` as written in SIP URIs (no port: RFC 3263 lookup by the peer too).
    pub fn hostport(&self) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host) // an IPv6 literal
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }
}

fn default_keepalive() -> Duration {
    Duration::from_secs(30)
}

/// A network in CIDR form; a bare address means that one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(pub ipnet::IpNet);

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let net = match s.parse::<std::net::IpAddr>() {
            Ok(ip) => ipnet::IpNet::from(ip),
            Err(_) => s.parse::<ipnet::IpNet>().map_err(|_| {
                format!("\"{s}\" is not a network; wanted an address or CIDR like \"192.0.2.0/24\"")
            })?,
        };
        Ok(Cidr(net))
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.0.to_string()
    }
}

fn default_transport() -> TransportKind {
    TransportKind::Udp
}
fn default_trunk_max_calls() -> u32 {
    100
}
fn default_trunk_max_cps() -> f64 {
    10.0
}

/// A bare word in a tracing filter is a target, so a misspelt level would silently log nothing;
/// demand a level or `target=level` in every directive.
fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains('=') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!("\"{directive}\" is not a level"));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl Config {
    /// Checks values the types alone do not; on failure returns the key and what is wanted.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, want: &str| Err((key.to_string(), want.to_string()));
        if self.state_dir.as_os_str().is_empty() {
            return bad("state_dir", "wanted a directory path, got an empty string");
        }
        if let Err(e) = check_log_filter(&self.log.level) {
            return Err((
                "log.level".into(),
                format!("wanted a level (error, warn, info, debug, trace) or a filter like \"info,dialerd::sip=debug\": {e}"),
            ));
        }
        if self.http.header_read_timeout < Duration::from_secs(1) {
            return bad(
                "http.header_read_timeout",
                "wanted a duration of at least 1s",
            );
        }
        if self.http.body_read_timeout < Duration::from_secs(1) {
            return bad("http.body_read_timeout", "wanted a duration of at least 1s");
        }
        if self.http.max_connections == 0 {
            return bad("http.max_connections", "wanted at least 1");
        }
        if !self.http.metrics_token.is_empty() && self.http.metrics_token.expose().len() < 16 {
            return bad("http.metrics_token", "wanted at least 16 characters");
        }
        if !self.store.url.expose().is_empty() {
            if let Err(e) = crate::store::Location::parse(self.store.url.expose()) {
                return Err(("store.url".into(), e));
            }
        }
        if !self.node.name.is_empty() && !valid_node_name(&self.node.name) {
            return bad(
                "node.name",
                "wanted 1 to 64 letters, digits, \".\", \"_\" or \"-\"",
            );
        }
        if !self.node.sip_uri.is_empty() && !valid_sip_uri(&self.node.sip_uri) {
            return bad(
                "node.sip_uri",
                "wanted a SIP URI such as \"sip:10.0.0.11:5060\" (printable, no spaces)",
            );
        }
        if self.sip.listen.is_empty() {
            return bad(
                "sip.listen",
                "wanted at least one address such as \"127.0.0.1:5060\"",
            );
        }
        if let Err((key, why)) = self.sip.check_tls() {
            return Err((key.into(), why));
        }
        if let Err((key, why)) = self.http.check_tls() {
            return Err((key.into(), why));
        }
        if !(1024..=1_048_576).contains(&self.sip.max_message_size) {
            return bad(
                "sip.max_message_size",
                "wanted a size in bytes between 1024 and 1048576",
            );
        }
        if self.lines.ring_timeout < Duration::from_secs(1) {
            return bad("lines.ring_timeout", "wanted a duration of at least 1s");
        }
        if self.lines.max_calls_per_number == 0 {
            return bad(
                "lines.max_calls_per_number",
                "wanted at least 1 (verification calls per number per lines.rate_window)",
            );
        }
        if let Some(t) = &self.lines.trunk {
            if !self.trunks.iter().any(|k| &k.name == t) {
                return bad(
                    "lines.trunk",
                    &format!("no [[trunks]] entry is named {t:?}"),
                );
            }
        }
        if self.sip.tcp_idle_timeout < Duration::from_secs(1) {
            return bad("sip.tcp_idle_timeout", "wanted a duration of at least 1s");
        }
        if self.sip.tcp_message_timeout < Duration::from_millis(100) {
            return bad(
                "sip.tcp_message_timeout",
                "wanted a duration of at least 100ms",
            );
        }
        if self.sip.tcp_max_connections == 0 {
            return bad("sip.tcp_max_connections", "wanted at least 1");
        }
        if !(1..=self.sip.tcp_max_connections).contains(&self.sip.tcp_max_connections_per_source) {
            return bad(
                "sip.tcp_max_connections_per_source",
                "wanted at least 1 and at most sip.tcp_max_connections",
            );
        }
        if self.sip.max_server_transactions < 100 {
            return bad("sip.max_server_transactions", "wanted at least 100");
        }
        if self.sip.rate_limit_interval < Duration::from_millis(100)
            || self.sip.rate_limit_interval > Duration::from_secs(3600)
        {
            return bad(
                "sip.rate_limit_interval",
                "wanted a duration between 100ms and 1h",
            );
        }
        if self.sip.rate_limit_block > Duration::from_secs(86_400) {
            return bad("sip.rate_limit_block", "wanted a duration of at most 24h");
        }
        if !(Duration::from_millis(10)..=Duration::from_secs(10)).contains(&self.sip.t1) {
            return bad("sip.t1", "wanted a duration between 10ms and 10s");
        }
        if self.sip.t2 < self.sip.t1 || self.sip.t2 > Duration::from_secs(60) {
            return bad(
                "sip.t2",
                "wanted a duration at least sip.t1 and at most 60s",
            );
        }
        if self.sip.t4 < self.sip.t1 || self.sip.t4 > Duration::from_secs(60) {
            return bad(
                "sip.t4",
                "wanted a duration at least sip.t1 and at most 60s",
            );
        }
        if self.sip.max_calls == 0 {
            return bad("sip.max_calls", "wanted at least 1");
        }
        if self.sip.min_se < Duration::from_secs(90) {
            return bad("sip.min_se", "wanted at least 90s (RFC 4028)");
        }
        if !self.sip.session_expires.is_zero() && self.sip.session_expires < self.sip.min_se {
            return bad(
                "sip.session_expires",
                "wanted \"0s\" (off) or at least sip.min_se",
            );
        }
        if self
            .sip
            .echo_number
            .as_deref()
            .is_some_and(|n| n.is_empty() || n.contains(['@', ' ', ';']))
        {
            return bad(
                "sip.echo_number",
                "wanted a user part such as \"1000\" or \"echo\"",
            );
        }
        for (key, number) in [
            ("sip.prompt_number", &self.sip.prompt_number),
            ("sip.relay_prefix", &self.sip.relay_prefix),
            ("sip.agent_test_number", &self.sip.agent_test_number),
            ("sip.agent_login_number", &self.sip.agent_login_number),
        ] {
            if number
                .as_deref()
                .is_some_and(|n| n.is_empty() || n.contains(['@', ' ', ';']))
            {
                return bad(key, "wanted a user part such as \"1001\"");
            }
        }
        if let Some(login) = self.sip.agent_login_number.as_deref() {
            let taken = [
                &self.sip.echo_number,
                &self.sip.prompt_number,
                &self.sip.agent_test_number,
                &self.lines.access_number,
            ];
            if taken.iter().any(|n| n.as_deref() == Some(login)) {
                return bad(
                    "sip.agent_login_number",
                    "wanted a number no other route (echo, prompt, agent test, access) uses",
                );
            }
        }
        let m = &self.media;
        if m.rtp_port_min < 1024 || !m.rtp_port_min.is_multiple_of(2) {
            return bad("media.rtp_port_min", "wanted an even port of at least 1024");
        }
        if m.rtp_port_max <= m.rtp_port_min || m.rtp_port_max == u16::MAX {
            return bad(
                "media.rtp_port_max",
                "wanted a port above media.rtp_port_min and below 65535",
            );
        }
        if m.codecs.is_empty()
            || m.codecs
                .iter()
                .any(|c| crate::media::codec::CodecKind::from_name(c).is_none())
        {
            return bad(
                "media.codecs",
                "wanted a list of codecs from PCMU, PCMA, such as [\"PCMU\", \"PCMA\"]",
            );
        }
        if m.language.is_empty() || m.language.contains(['/', '.']) {
            return bad("media.language", "wanted a language code such as \"en\"");
        }
        if m.test_prompt.is_empty() || m.test_prompt.contains(['/', '.']) {
            return bad(
                "media.test_prompt",
                "wanted a prompt name such as \"verification_code_is\"",
            );
        }
        if self.sip.realm.is_empty() || self.sip.realm.contains('"') {
            return bad("sip.realm", "wanted a non-empty realm without quotes");
        }
        if self.sip.min_expires < Duration::from_secs(1)
            || self.sip.max_expires < self.sip.min_expires
        {
            return bad(
                "sip.max_expires",
                "wanted sip.min_expires ≥ 1s and sip.max_expires ≥ sip.min_expires",
            );
        }
        if self.sip.digest_algorithms.is_empty()
            || self
                .sip
                .digest_algorithms
                .iter()
                .any(|a| !matches!(a.to_ascii_uppercase().as_str(), "MD5" | "SHA-256"))
        {
            return bad(
                "sip.digest_algorithms",
                "wanted a non-empty list of \"SHA-256\" and \"MD5\"",
            );
        }
        let mut users = std::collections::HashSet::new();
        for (i, a) in self.agents.iter().enumerate() {
            if a.username.is_empty()
                || !a
                    .username
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
            {
                return Err((
                    format!("agents[{i}].username"),
                    "wanted a non-empty user name of letters, digits, '-', '_', '.', '+'".into(),
                ));
            }
            if !users.insert(a.username.as_str()) {
                return Err((
                    format!("agents[{i}].username"),
                    format!("agent \"{}\" is listed twice", a.username),
                ));
            }
            if a.password.expose().len() < 8 {
                return Err((
                    format!("agents[{i}].password"),
                    "wanted a password of at least 8 characters".into(),
                ));
            }
        }
        for (i, r) in self.sessions.pause_reasons.iter().enumerate() {
            if r.is_empty()
                || r.len() > 32
                || !r
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err((
                    format!("sessions.pause_reasons[{i}]"),
                    "wanted 1 to 32 lowercase letters, digits or '_'".into(),
                ));
            }
        }
        if !(Duration::from_secs(5)..=Duration::from_secs(300))
            .contains(&self.sessions.ring_timeout)
        {
            return bad(
                "sessions.ring_timeout",
                "wanted a duration from \"5s\" to \"5m\"",
            );
        }
        if let Some(ca) = &self.flow.webhook_ca_file {
            if !ca.is_file() {
                return bad(
                    "flow.webhook_ca_file",
                    &format!(
                        "wanted a PEM file of CA certificates; {} is not a file",
                        ca.display()
                    ),
                );
            }
        }
        let i = &self.import;
        if !(1..=10_000).contains(&i.max_columns) {
            return bad("import.max_columns", "wanted between 1 and 10000");
        }
        if !(1..=16_777_216).contains(&i.max_row_bytes) {
            return bad(
                "import.max_row_bytes",
                "wanted a size in bytes between 1 and 16777216",
            );
        }
        if !(1..=i.max_row_bytes).contains(&i.max_field_bytes) {
            return bad(
                "import.max_field_bytes",
                "wanted a size in bytes between 1 and import.max_row_bytes",
            );
        }
        if let Some(a) = self.webrtc.addresses.iter().find(|a| a.is_unspecified()) {
            return bad(
                "webrtc.addresses",
                &format!("wanted addresses browsers can reach, not the wildcard {a}"),
            );
        }
        if self.webrtc.codecs.is_empty()
            || self
                .webrtc
                .codecs
                .iter()
                .any(|c| crate::webrtc::offer::BrowserCodec::from_name(c).is_none())
        {
            return bad(
                "webrtc.codecs",
                "wanted a list of codecs from opus, PCMU, PCMA, such as [\"opus\", \"PCMU\"]",
            );
        }
        let e = &self.email;
        if !e.smtp_url.is_empty() {
            if !(e.smtp_url.starts_with("smtp://") || e.smtp_url.starts_with("smtps://")) {
                return bad(
                    "email.smtp_url",
                    "wanted smtp://host:port or smtps://host:port",
                );
            }
            if e.from.trim().is_empty() {
                return bad(
                    "email.from",
                    "wanted the sender address: email.smtp_url is set",
                );
            }
        }
        if e.from.contains(['\r', '\n']) {
            return bad("email.from", "wanted one line");
        }
        let p = self.inbox.poll_interval;
        if !p.is_zero() && !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&p) {
            return bad(
                "inbox.poll_interval",
                "wanted \"0s\" (off) or a duration from 100ms to 1h",
            );
        }
        if self.shutdown.drain_timeout > Duration::from_secs(3600) {
            return bad("shutdown.drain_timeout", "wanted a duration of at most 1h");
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.trunks.iter().enumerate() {
            let key = |f: &str| format!("trunks[{i}].{f}");
            if t.name.is_empty()
                || !t
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err((
                    key("name"),
                    "wanted a non-empty name of letters, digits, '-' and '_'".into(),
                ));
            }
            if !names.insert(t.name.as_str()) {
                return Err((
                    key("name"),
                    format!("trunk name \"{}\" is used twice", t.name),
                ));
            }
            if t.host.is_empty() {
                return Err((key("host"), "wanted a host name or address".into()));
            }
            if t.port == Some(0) {
                return Err((key("port"), "wanted a port between 1 and 65535".into()));
            }
            if t.max_calls == 0 {
                return Err((key("max_calls"), "wanted at least 1".into()));
            }
            if !(t.max_cps > 0.0 && t.max_cps.is_finite()) {
                return Err((
                    key("max_cps"),
                    "wanted a number of calls per second above 0".into(),
                ));
            }
            if !t.keepalive.is_zero() && t.keepalive < Duration::from_millis(100) {
                return Err((
                    key("keepalive"),
                    "wanted \"0s\" (off) or a duration of at least 100ms".into(),
                ));
            }
            if t.transport != TransportKind::Tls
                && (t.tls_ca.is_some() || t.tls_server_name.is_some())
            {
                return Err((
                    key("transport"),
                    "wanted \"tls\": tls_ca and tls_server_name are for TLS trunks".into(),
                ));
            }
            if t.transport != TransportKind::Tls && t.media_encryption != MediaEncryption::None {
                return Err((
                    key("media_encryption"),
                    "wanted \"none\": SDES keys travel in the SDP, so SRTP needs transport = \"tls\""
                        .into(),
                ));
            }
            if let Some(ca) = &t.tls_ca {
                if let Err(e) = crate::tls::client_config(Some(ca)) {
                    return Err((
                        key("tls_ca"),
                        format!("wanted a PEM file of CA certificates: {e}"),
                    ));
                }
            }
            if t.register && t.username.is_empty() {
                return Err((
                    key("username"),
                    "wanted a user name: register = true needs one".into(),
                ));
            }
        }
        if let Err(e) = crate::store::calling_rules::CallingRules::from_config(&self.calling_rules)
        {
            return match e {
                crate::store::StoreError::Invalid { field, reason } => Err((field, reason)),
                other => Err(("calling_rules".into(), other.to_string())),
            };
        }
        Ok(())
    }

    /// Names of settings that differ from `new` and only take effect after a restart.
    pub fn restart_needed(&self, new: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.state_dir != new.state_dir {
            changed.push("state_dir");
        }
        if self.log.format != new.log.format {
            changed.push("log.format");
        }
        if self.http != new.http {
            changed.push("http");
        }
        if self.sip != new.sip {
            changed.push("sip");
        }
        if self.media != new.media {
            changed.push("media");
        }
        if self.trunks != new.trunks {
            changed.push("trunks");
        }
        if self.agents != new.agents {
            changed.push("agents");
        }
        if self.flow != new.flow {
            changed.push("flow");
        }
        if self.import != new.import {
            changed.push("import");
        }
        if self.webrtc != new.webrtc {
            changed.push("webrtc");
        }
        if self.sessions != new.sessions {
            changed.push("sessions");
        }
        if self.email != new.email {
            changed.push("email");
        }
        if self.inbox != new.inbox {
            changed.push("inbox");
        }
        if self.calling_rules != new.calling_rules {
            changed.push("calling_rules");
        }
        if self.store != new.store {
            changed.push("store");
        }
        if self.node != new.node {
            changed.push("node");
        }
        changed
    }
}
