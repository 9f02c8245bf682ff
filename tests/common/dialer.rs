//! The live dialer's test kit: SIPp as a campaign's carrier and as agents' phones, agents with
//! tokens, campaigns ready to dial, and an agent's event log read over its WebSocket.

use super::api::{campaign, Api, ADMIN, BASE};
use super::Daemon;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

pub const AGENTS: &str = "[sip]\ndigest_algorithms = [\"MD5\"]\n\
    [[agents]]\nusername = \"agent1\"\npassword = \"sipp-agent-secret-1\"\n\
    [[agents]]\nusername = \"agent2\"\npassword = \"sipp-agent-secret-2\"\n\
    [sessions]\nring_timeout = \"10s\"\n";

pub use super::agent_phone::free_udp_port;
use super::agent_phone::sipp;

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

/// Like [`phone`], on another agent scenario with SIPp arguments of its own.
pub fn phone_on(xml: &str, args: &[&str], user: &str, password: &str, daemon: SocketAddr) -> Sipp {
    let port = free_udp_port();
    let child = sipp()
        .arg("-sf")
        .arg(scenario(xml))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_udp_port().to_string(), "-rtp_echo"])
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
