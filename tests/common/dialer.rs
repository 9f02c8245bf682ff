//! The live dialer's test kit: SIPp as a campaign's carrier and as agents' phones, agents with
//! tokens, campaigns ready to dial, and an agent's event log read over its WebSocket.

use super::api::{campaign, Api, ADMIN, BASE};
use super::Daemon;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

pub const AGENTS: &str = "[sip]\ndigest_algorithms = [\"MD5\"]\n\
    [[agents]]\nusername = \"agent1\"\npassword = \"sipp-agent-secret-1\"\n\
    [[agents]]\nusername = \"agent2\"\npassword = \"sipp-agent-secret-2\"\n\
    [sessions]\nring_timeout = \"10s\"\n";

pub use super::agent_phone::free_udp_port;
use super::agent_phone::sipp;
use super::rtp::share_at;

pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("sip-scenarios/{name}"))
}

/// A SIPp process, killed if the test ends before it does.
pub struct Sipp(pub Child);

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIPp as the carrier on `port`, serving `calls` calls with `xml` (run in its directory, so
/// it finds its pcap), echoing RTP when `echo`.
pub fn carrier(xml: &str, port: u16, calls: usize, echo: bool) -> Sipp {
    let mut c = sipp();
    c.current_dir(scenario("dialer"))
        .arg("-sf")
        .arg(scenario(xml))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_udp_port().to_string()])
        .args(["-m", &calls.to_string(), "-timeout", "90", "-nostdin"]);
    if echo {
        c.arg("-rtp_echo");
    }
    Sipp(c.spawn().unwrap())
}

/// SIPp as the phone of `user` (an `[[agents]]` account): registered, then answering the
/// session call and echoing RTP until dialerd hangs up.
pub fn phone(user: &str, password: &str, daemon: SocketAddr) -> Sipp {
    phone_on("agent/answer.xml", &[], user, password, daemon)
}

/// Agent `n` of [`AGENTS`] (user `agentN`) made through the API, its SIPp phone registered,
/// and logged in to `task` on it (paused, reason `login`): its API client and the phone.
pub fn sip_agent(admin: &Api, d: &Daemon, n: u8, task: i64) -> (Api, Sipp) {
    let name = format!("agent{n}");
    let (_, api) = super::api::user(admin, &name, "agent");
    let ph = phone(&name, &format!("sipp-agent-secret-{n}"), d.sip);
    api.ok(
        "POST",
        "/api/v1/agent/session",
        Some(json!({"tasks": [task], "phone": "sip"})),
    );
    (api, ph)
}

/// Like [`phone`], on another agent scenario with SIPp arguments of its own.
pub fn phone_on(xml: &str, args: &[&str], user: &str, password: &str, daemon: SocketAddr) -> Sipp {
    let port = free_udp_port();
    let child = sipp()
        .arg("-sf")
        .arg(scenario(xml))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-mp",
            &super::agent_phone::free_rtp_echo_port().to_string(),
            "-rtp_echo",
        ])
        .args(["-m", "1", "-timeout", "90", "-nostdin"])
        .args(args)
        .arg(daemon.to_string())
        .spawn()
        .unwrap();
    let child = Sipp(child);
    super::agent_phone::register(user, password, port, daemon);
    child
}

/// Waits for SIPp to end; its exit status says whether every call went as its scenario wants.
pub fn finished(mut sipp: Sipp, what: &str, limit: Duration) {
    let child = &mut sipp.0;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            assert!(status.success(), "{what}: SIPp {status:?}: {err}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: SIPp still running");
}

/// A WAV file of `seconds` of a 440 Hz tone, 8 kHz mono.
pub fn tone_wav(seconds: f64) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for i in 0..(seconds * 8000.0) as u32 {
        let v = (f64::from(i) * 440.0 * std::f64::consts::TAU / 8000.0).sin();
        w.write_sample((v * 12000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    out.into_inner()
}

/// Every event an agent's log keeps, read over its WebSocket from `since=0`.
pub fn events(api: &Api) -> Vec<Value> {
    let t = api.ok("POST", "/api/v1/agent/ticket", None);
    let path = format!(
        "/api/v1/agent/events?ticket={}&since=0",
        t["ticket"].as_str().unwrap()
    );
    let mut s = TcpStream::connect(api.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        api.addr
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    let mut out = Vec::new();
    loop {
        let mut h = [0u8; 2];
        if s.read_exact(&mut h).is_err() {
            return out;
        }
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                s.read_exact(&mut l).unwrap();
                u64::from(u16::from_be_bytes(l))
            }
            127 => {
                let mut l = [0u8; 8];
                s.read_exact(&mut l).unwrap();
                u64::from_be_bytes(l)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; len as usize];
        s.read_exact(&mut payload).unwrap();
        if h[0] & 0x0f == 1 {
            out.push(serde_json::from_slice(&payload).unwrap());
        }
    }
}

/// The config with the agents' accounts and a trunk to the carrier on `carrier_port`.
pub fn config(carrier_port: u16) -> String {
    format!(
        "{BASE}{AGENTS}[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {carrier_port}\n\
         keepalive = \"0s\"\n"
    )
}

/// The daemon on [`config`].
pub fn start(carrier_port: u16) -> Daemon {
    Daemon::start_with(&config(carrier_port), &[("DIALERD_ADMIN_TOKEN", ADMIN)])
}

/// A campaign called round the clock with `settings` for its call task and `n` contacts,
/// the last `busy` of them on numbers the carrier answers busy: (campaign, task).
pub fn dialing_campaign(
    admin: &Api,
    name: &str,
    settings: Value,
    n: usize,
    busy: usize,
) -> (i64, i64) {
    let (c, task) = campaign(admin, name);
    admin.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}"),
        Some(json!({"calling_hours": {"from": "00:00", "to": "24:00"}, "recording": true})),
    );
    admin.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}/tasks/{task}"),
        Some(json!({ "settings": settings })),
    );
    let mut csv = String::from("name,phone\n");
    for i in 0..n {
        let last = if i >= n - busy { 99 } else { 10 };
        csv.push_str(&format!("c{i},030 1234{i:02}{last}\n"));
    }
    let (status, r) = admin.import(c, "phone=phone", &csv);
    assert_eq!(status, 200, "{r}");
    assert_eq!(admin.all_contacts(c, "", 100).len(), n, "{r}");
    (c, task)
}

/// Uploads `seconds` of tone as campaign `c`'s safe-harbour message.
pub fn upload_safe_harbour(admin: &Api, c: i64, seconds: f64) {
    let auth = format!("Bearer {}", admin.token);
    let (status, _, text) = super::http_request_bytes(
        admin.addr,
        "PUT",
        &format!("/api/v1/campaigns/{c}/prompts/safe_harbour"),
        &[("Authorization", &auth), ("Content-Type", "audio/wav")],
        &tone_wav(seconds),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
}

/// The next slice of RTP ports for a daemon of this test process: daemons run side by side
/// would otherwise all start at the bottom of the same range and take each other's ports.
pub fn rtp_ports() -> (u16, u16) {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let slice = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 20;
    let min = 20000 + slice * 600;
    (min, min + 598)
}

/// The config with `n` agent accounts, `agent1` … `agentN` (password `sipp-agent-secret-I`),
/// a trunk to the carrier on `carrier_port`, and RTP ports of the daemon's own.
pub fn config_with_agents(carrier_port: u16, n: usize) -> String {
    let (rtp_min, rtp_max) = rtp_ports();
    let mut accounts = String::new();
    for i in 1..=n {
        accounts.push_str(&format!(
            "[[agents]]\nusername = \"agent{i}\"\npassword = \"sipp-agent-secret-{i}\"\n"
        ));
    }
    format!(
        "{BASE}[sip]\ndigest_algorithms = [\"MD5\"]\n{accounts}[sessions]\nring_timeout = \"10s\"\n\
         [media]\nrtp_port_min = {rtp_min}\nrtp_port_max = {rtp_max}\n\
         [[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {carrier_port}\n\
         keepalive = \"0s\"\nmax_calls = 200\n"
    )
}

/// SIPp as a carrier that logs each call's events (`-trace_logs`) to `log`, its answers naming
/// `rtp_port` as the customer's media port (see `sip-scenarios/dialer/carrier_random.xml`).
pub fn logged_carrier(xml: &str, port: u16, calls: usize, rtp_port: u16, log: &Path) -> Sipp {
    let child = sipp()
        .current_dir(scenario("dialer"))
        .arg("-sf")
        .arg(scenario(xml))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_udp_port().to_string()])
        .args(["-key", "rtp_port", &rtp_port.to_string()])
        .args(["-trace_logs", "-log_file"])
        .arg(log)
        .args([
            "-m",
            &calls.to_string(),
            "-l",
            "1000",
            "-timeout",
            "150",
            "-nostdin",
        ])
        .spawn()
        .unwrap();
    Sipp(child)
}

/// One line of a logged carrier's log: what happened to a call to `number`, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct CarrierEvent {
    /// `invite`, `answered`, `busy`, `cancelled`, `customer_bye` or `dialerd_bye`.
    pub kind: String,
    /// The called number, digits only.
    pub number: String,
    /// dialerd's RTP port for the call (on `invite` only).
    pub rtp: Option<u16>,
    /// Unix time in seconds.
    pub at: f64,
}

/// The events of a logged carrier's log, in the order written.
pub fn carrier_log(path: &Path) -> Vec<CarrierEvent> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let time = |s: &str, us: &str| -> Option<f64> {
                Some(s.parse::<f64>().ok()? + us.parse::<f64>().ok()? / 1e6)
            };
            match w.as_slice() {
                ["invite", number, rtp, s, us] => Some(CarrierEvent {
                    kind: "invite".into(),
                    number: number.to_string(),
                    rtp: rtp.parse().ok(),
                    at: time(s, us)?,
                }),
                [kind, number, s, us] => Some(CarrierEvent {
                    kind: kind.to_string(),
                    number: number.to_string(),
                    rtp: None,
                    at: time(s, us)?,
                }),
                _ => None,
            }
        })
        .collect()
}

/// What a 20 ms frame a customer heard sounds like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sound {
    /// The 440 Hz tone of [`tone_wav`]: the safe-harbour message the tests upload.
    Message,
    /// The customers' own 1 kHz voice, come back through an agent's echoing phone.
    Voice,
    /// An RFC 4733 telephone-event (payload type 101, as the carriers' SDP answers name it):
    /// its event code (0-9 the digits, 10 `*`, 11 `#`).
    Digit(u8),
    /// Silence or anything else.
    Other,
}

/// The customers' side of the media: one RTP socket that every answered call's SDP names.
/// It speaks a 1 kHz tone (PCMA) to the dialerd port of every call the carrier's log shows
/// in progress (dialerd relays nothing to an agent before the customer speaks), and keeps what
/// each port sent, frame by frame, with the Unix time it came.
pub struct Customers {
    /// The socket's port.
    pub port: u16,
    heard: std::sync::Arc<std::sync::Mutex<Vec<(u16, f64, Sound)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// What an RTP packet's audio sounds like (PCMU or PCMA), or the key it carries.
pub fn sound_of(packet: &[u8]) -> Sound {
    use dialerd::media::codec::g711::{decode_alaw, decode_ulaw};
    if packet.len() <= 12 {
        return Sound::Other;
    }
    let mut pcm = Vec::new();
    match packet[1] & 0x7f {
        0 => decode_ulaw(&packet[12..], &mut pcm),
        8 => decode_alaw(&packet[12..], &mut pcm),
        101 if packet.len() >= 16 => return Sound::Digit(packet[12]),
        _ => return Sound::Other,
    }
    if share_at(&pcm, 440.0) > 0.4 {
        Sound::Message
    } else if share_at(&pcm, 1000.0) > 0.4 {
        Sound::Voice
    } else {
        Sound::Other
    }
}

impl Customers {
    /// Binds the socket and starts speaking to the calls in progress in the carrier's `log`,
    /// and listening.
    pub fn start(log: &Path) -> Customers {
        let log = log.to_path_buf();
        use std::sync::atomic::Ordering;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (h, s) = (heard.clone(), stop.clone());
        std::thread::spawn(move || {
            let tone: Vec<i16> = (0..160)
                .map(|i| (8000.0 * (f64::from(i) * std::f64::consts::TAU / 8.0).sin()) as i16)
                .collect();
            let mut voice = Vec::new();
            dialerd::media::codec::g711::encode_alaw(&tone, &mut voice);
            // Per dialerd port: when it last sent, and our sequence number towards it.
            let mut seqs: HashMap<u16, u16> = HashMap::new();
            let mut talking: Vec<u16> = Vec::new();
            let mut next_send = Instant::now();
            let mut next_read = Instant::now();
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let sound = sound_of(&buf[..n]);
                    h.lock().unwrap().push((from.port(), unix_now(), sound));
                }
                if Instant::now() >= next_read {
                    next_read += Duration::from_millis(100);
                    // The last call to each number, while it has no end.
                    let mut last: HashMap<String, Option<u16>> = HashMap::new();
                    for e in carrier_log(&log) {
                        match e.kind.as_str() {
                            "invite" => last.insert(e.number, e.rtp),
                            "answered" => None,
                            _ => last.insert(e.number, None),
                        };
                    }
                    talking = last.into_values().flatten().collect();
                }
                if Instant::now() >= next_send {
                    next_send += Duration::from_millis(20);
                    for port in &talking {
                        let to = SocketAddr::from(([127, 0, 0, 1], *port));
                        let seq = seqs.entry(*port).or_default();
                        *seq = seq.wrapping_add(1);
                        let ts = u32::from(*seq).wrapping_mul(160);
                        let p = super::rtp::packet(8, *seq, ts, 0x00c0_ffee, &voice);
                        let _ = socket.send_to(&p, to);
                    }
                }
            }
        });
        Customers { port, heard, stop }
    }

    /// Frames heard in all, by dialerd port and sound.
    pub fn summary(&self) -> std::collections::BTreeMap<(u16, String), usize> {
        let mut out = std::collections::BTreeMap::new();
        for (p, _, sound) in self.heard.lock().unwrap().iter() {
            *out.entry((*p, format!("{sound:?}"))).or_default() += 1;
        }
        out
    }

    /// The keys (RFC 4733 event codes) dialerd's `port` sent since `from` (Unix s), in order,
    /// each once however many packets carried it (so a key pressed twice in a row counts once).
    pub fn keys(&self, port: u16, from: f64) -> Vec<u8> {
        let mut keys: Vec<u8> = Vec::new();
        for (p, at, sound) in self.heard.lock().unwrap().iter() {
            if let (Sound::Digit(k), true) = (sound, *p == port && *at >= from) {
                if keys.last() != Some(k) {
                    keys.push(*k);
                }
            }
        }
        keys
    }

    /// Frames dialerd's `port` sent between `from` and `to` (Unix s), by sound.
    pub fn frames(&self, port: u16, from: f64, to: f64) -> HashMap<Sound, usize> {
        let mut out = HashMap::new();
        for (p, at, sound) in self.heard.lock().unwrap().iter() {
            if *p == port && *at >= from && *at <= to {
                *out.entry(*sound).or_default() += 1;
            }
        }
        out
    }
}

impl Drop for Customers {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
