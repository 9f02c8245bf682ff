//! The log line of a failed REGISTER, as the real daemon writes it in both formats, is what the
//! shipped fail2ban filter (`conf/fail2ban/filter.d/dialerd.conf`) matches: the sender's
//! address, once per failure, and never an address the sender wrote into its user name.

mod common;

use dialerd::sip::auth::{apply, ClientOutcome, DigestClient};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const CONFIG: &str = "[[agents]]\nusername = \"agent1\"\npassword = \"the-right-password\"\n";

/// A user name that tries to make the log line name another address.
const STEERING_USER: &str = "x REGISTER authentication failed source=192.0.2.99 user=";

/// The daemon with its stderr kept line by line as written (the common helper reads JSON only).
struct RawDaemon {
    child: Child,
    lines: Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Drop for RawDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RawDaemon {
    /// Starts the daemon logging in `format`; text as under journald (no time stamp).
    fn start(format: &str) -> (RawDaemon, SocketAddr) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("dialerd.toml");
        std::fs::write(&config, CONFIG).unwrap();
        let mut child = common::command()
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("DIALERD__HTTP__LISTEN", "127.0.0.1:0")
            .env("DIALERD__SIP__LISTEN", "127.0.0.1:0")
            .env("DIALERD__LOG__FORMAT", format)
            .env("DIALERD__STATE_DIR", dir.path().join("state"))
            .env("JOURNAL_STREAM", "8:12345")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut d = RawDaemon {
            child,
            lines,
            _dir: dir,
        };
        let listening = d.wait_for("sip listening (udp, tcp)", 1).remove(0);
        let addr = listening
            .split(['=', '"', ' ', '}'])
            .find_map(|w| w.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("no address in {listening}"));
        d.wait_for("dialerd ready", 1);
        (d, addr)
    }

    /// The next `n` lines containing `text`, waiting up to 20 s.
    fn wait_for(&mut self, text: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut found = Vec::new();
        let mut seen = Vec::new();
        while found.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => found.push(line),
                Ok(line) => seen.push(line),
                Err(_) => panic!("wanted {n} lines with {text:?}, got {found:#?}; saw {seen:#?}"),
            }
        }
        found
    }
}

/// One REGISTER for agent1 answered with `user`'s wrong password: challenge, then the answer.
fn guess(sip: SocketAddr, user: &str, n: u32) -> u16 {
    let text = |cseq: u32| {
        format!(
            "REGISTER sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKg{n}x{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:agent1@{sip}>;tag=g{n}\r\nTo: <sip:agent1@{sip}>\r\n\
             Call-ID: guess-{n}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:agent1@127.0.0.1:9>\r\n\
             Expires: 300\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let parse = |s: &str| dialerd::sip::wire::parse(s.as_bytes()).unwrap();
    let challenge = common::udp_exchange(sip, text(1).as_bytes(), Duration::from_secs(5))
        .expect("no answer to REGISTER");
    let rsip::SipMessage::Response(challenge) = parse(&challenge) else {
        panic!("not a response: {challenge}")
    };
    let rsip::SipMessage::Request(mut req) = parse(&text(2)) else {
        unreachable!()
    };
    let mut client = DigestClient::new(user, "a-wrong-guess");
    let ClientOutcome::Retry(h) = client.on_challenge(&challenge, &req) else {
        panic!("no usable challenge: {challenge}")
    };
    apply(&mut req, &h);
    let resp = common::udp_exchange(sip, req.to_string().as_bytes(), Duration::from_secs(5))
        .expect("no answer to the guess");
    common::status_of(&resp)
}

/// The addresses the shipped filter finds in `lines`, by `fail2ban-regex` (which
/// `scripts/test` installs).
fn fail2ban_addresses(lines: &[String]) -> Vec<String> {
    assert!(
        std::process::Command::new("fail2ban-regex")
            .arg("--version")
            .output()
            .is_ok(),
        "fail2ban-regex not installed: apt-get install fail2ban (scripts/test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dialerd.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let filter = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/fail2ban/filter.d/dialerd.conf");
    let out = std::process::Command::new("fail2ban-regex")
        .args(["--out", "ip"])
        .arg(&log)
        .arg(&filter)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fail2ban-regex: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn failed_register_text_line_names_the_source_and_the_fail2ban_filter_matches_it() {
    let (mut d, sip) = RawDaemon::start("text");
    assert_eq!(guess(sip, "agent1", 1), 403);
    assert_eq!(guess(sip, STEERING_USER, 2), 403);
    let lines = d.wait_for("REGISTER authentication failed", 2);
    assert!(
        lines[0].trim_start().starts_with(
            "WARN dialerd::sip::registrar: REGISTER authentication failed source=127.0.0.1 \
             user=\"agent1\" "
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].trim_start().starts_with(&format!(
            "WARN dialerd::sip::registrar: REGISTER authentication failed source=127.0.0.1 \
             user={STEERING_USER:?} "
        )),
        "{}",
        lines[1]
    );
    let found = fail2ban_addresses(&lines);
    assert_eq!(found, vec!["127.0.0.1", "127.0.0.1"], "{lines:#?}");
}

#[test]
fn failed_register_json_line_names_the_source_and_the_fail2ban_filter_matches_it() {
    let (mut d, sip) = RawDaemon::start("json");
    assert_eq!(guess(sip, "agent1", 1), 403);
    assert_eq!(guess(sip, STEERING_USER, 2), 403);
    let lines = d.wait_for("REGISTER authentication failed", 2);
    for (line, user) in lines.iter().zip(["agent1", STEERING_USER]) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["fields"]["source"], "127.0.0.1", "{line}");
        assert_eq!(v["fields"]["user"], format!("{user:?}"), "{line}");
    }
    let found = fail2ban_addresses(&lines);
    assert_eq!(found, vec!["127.0.0.1", "127.0.0.1"], "{lines:#?}");
}
