//! Kamailio (Debian's package, conf/kamailio/dialerd-proxy.cfg) as a proxy in front of the
//! daemon: a phone registers through it (Path added), and a call through it is Record-Routed
//! both ways — SIPp's ACK follows the route set, and dialerd's BYE comes back via the proxy.
//! An agent's phone registered through it is called along its Path (RFC 3327).
//! baresip registers and calls the echo number over SIP over TLS (scripts/interop/baresip-tls.sh).
//! baresip with SRTP (SDES) over TLS calls the echo number and a relay whose other leg is plain
//! RTP (scripts/interop/baresip-srtp.sh), and through a TLS trunk with `media_encryption =
//! "srtp"` to a second baresip as the carrier (scripts/interop/baresip-srtp-trunk.sh).
//! The rest of the interop matrix (baresip, linphonec, SIPp over TCP) is scripts/interop/.

mod common;

use common::agent_phone::{free_udp_port, register, sipp};
use common::api::{campaign, user, Api, ADMIN, BASE};
use common::dialer::{phone, AGENTS};
use common::Daemon;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Kamailio whose output (log on stderr, listening sockets on stdout) goes to a file.
struct Kamailio {
    child: Child,
    log: std::path::PathBuf,
    addr: SocketAddr,
}

impl Kamailio {
    /// Kamailio on a free UDP port of 127.0.0.1, relaying to `dialerd`.
    fn start(dir: &Path, dialerd: SocketAddr) -> Kamailio {
        let port = free_udp_port();
        let log = dir.join("kamailio.log");
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/kamailio/dialerd-proxy.cfg");
        let file = std::fs::File::create(&log).unwrap();
        let child = common::spawn_group(
            common::kamailio(&cfg, dir, port)
                .args(["-A", &format!("DIALERD=\"sip:{dialerd}\"")])
                .stdin(Stdio::null())
                .stdout(file.try_clone().unwrap())
                .stderr(file),
        );
        let k = Kamailio {
            child,
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        assert!(
            k.wait_log("Listening on", Duration::from_secs(10)),
            "kamailio did not start:\n{}",
            k.log_text()
        );
        k
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True once a log line contains `text`, within `limit`.
    fn wait_log(&self, text: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.log_text().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        common::kill_group(&mut self.child);
    }
}

#[test]
fn kamailio_in_front_passes_registers_and_record_routes_calls_both_ways() {
    // The proxy is the daemon's trunk: INVITEs are taken from it. The echo hangs up after 2 s.
    let d = Daemon::start(
        "[sip]\necho_number = \"1000\"\necho_max_duration = \"2s\"\ndigest_algorithms = [\"MD5\"]\n\
         [[agents]]\nusername = \"agent1\"\npassword = \"agent1-secret\"\n\
         [[trunks]]\nname = \"proxy\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\n\
         keepalive = \"0s\"\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let proxy = Kamailio::start(dir.path(), d.sip);

    // REGISTER through the proxy, which adds a Path: digest-checked by dialerd, answered 200.
    register("agent1", "agent1-secret", free_udp_port(), proxy.addr);
    assert!(
        proxy.wait_log(
            &format!("proxy: reply 200 OK to REGISTER from {}", d.sip),
            Duration::from_secs(5)
        ),
        "{}",
        proxy.log_text()
    );

    // A call through the proxy: SIPp checks the Record-Route, routes its ACK, and wants
    // dialerd's BYE to arrive through the proxy.
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sip-scenarios/proxy/call_echo_record_route.xml");
    let out = sipp()
        .current_dir(dir.path())
        .arg("-sf")
        .arg(&scenario)
        .args(["-t", "u1", "-i", "127.0.0.1", "-p"])
        .arg(free_udp_port().to_string())
        .args(["-m", "1", "-timeout", "20", "-timeout_error", "-nostdin"])
        .arg(proxy.addr.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SIPp through kamailio: {:?} {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        proxy.log_text()
    );
    let log = proxy.log_text();
    for line in [
        "proxy: INVITE sip:1000@".to_string(),
        format!("proxy: reply 200 OK to INVITE from {}", d.sip),
        "proxy: ACK sip:".to_string(),
        "proxy: BYE sip:sipp@127.0.0.1:".to_string(),
    ] {
        assert!(
            log.contains(&line),
            "{line:?} not in the proxy's log:\n{log}"
        );
    }
    let bye = log
        .lines()
        .find(|l| l.contains("proxy: BYE"))
        .unwrap()
        .to_string();
    assert!(
        bye.ends_with(&format!("from {} (udp)", d.sip)),
        "the BYE came from dialerd: {bye}"
    );
}

#[test]
fn an_agent_phone_registered_through_kamailio_is_called_along_its_path() {
    let d = Daemon::start_with(
        &format!("{BASE}{AGENTS}"),
        &[("DIALERD_ADMIN_TOKEN", ADMIN)],
    );
    let dir = tempfile::tempdir().unwrap();
    let proxy = Kamailio::start(dir.path(), d.sip);
    let admin = Api::new(&d, ADMIN);
    let (_, task) = campaign(&admin, "Behind a proxy");
    let (_, agent) = user(&admin, "agent1", "agent");
    // SIPp is the phone; its REGISTER goes to the proxy, which adds a Path to itself.
    let _phone = phone("agent1", "sipp-agent-secret-1", proxy.addr);
    let (status, session) = agent.call(
        "POST",
        "/api/v1/agent/session",
        Some(json!({"tasks": [task], "phone": "sip"})),
    );
    proxy.wait_log("proxy: INVITE sip:agent1@", Duration::from_secs(3));
    assert_eq!(
        (status, session["state"].as_str()),
        (201, Some("paused")),
        "{session}\n{}",
        proxy.log_text()
    );
    let log = proxy.log_text();
    let invite = log
        .lines()
        .find(|l| l.contains("proxy: INVITE sip:agent1@"))
        .unwrap_or_else(|| panic!("dialerd's INVITE did not pass the proxy:\n{log}"));
    assert!(
        invite.contains(&format!("from {} (udp)", d.sip)),
        "the INVITE came from dialerd: {invite}"
    );
    agent.ok("DELETE", "/api/v1/agent/session", None);
}

#[test]
fn baresip_registers_and_calls_the_echo_number_over_tls() {
    let free_tcp = || {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let out =
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/interop/baresip-tls.sh"))
            .env("DIALERD_BIN", common::bin())
            .env("SIP_PORT", free_udp_port().to_string())
            .env("TLS_PORT", free_tcp().to_string())
            .env("HTTP_PORT", free_tcp().to_string())
            .output()
            .expect("the interop script runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("PASS: baresip's call to the echo number over TLS is answered"),
        "{text}"
    );
    assert!(!text.contains("FAIL"), "{text}");
}

/// Runs scripts/interop/baresip-srtp.sh with baresip's `mediaenc`; every check must pass.
fn baresip_srtp(mediaenc: &str) {
    let free_tcp = || {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let out =
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/interop/baresip-srtp.sh"))
            .env("DIALERD_BIN", common::bin())
            .env("MEDIAENC", mediaenc)
            .env("SIP_PORT", free_udp_port().to_string())
            .env("CARRIER_PORT", free_udp_port().to_string())
            .env("TLS_PORT", free_tcp().to_string())
            .env("HTTP_PORT", free_tcp().to_string())
            .output()
            .expect("the interop script runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for wanted in [
        "PASS: baresip hears its 440 Hz tone back through SRTP",
        "PASS: the carrier leg is plain RTP/AVP without keys",
        "PASS: baresip hears the carrier's echo of its tone, re-encrypted",
        "PASS: the recording's caller side is the clear tone",
        "PASS: the recording's carrier side is the clear echo",
    ] {
        assert!(text.contains(wanted), "no {wanted:?} in\n{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn baresip_srtp_savp_over_tls_to_the_echo_and_through_a_relay_to_plain_rtp() {
    baresip_srtp("srtp-mand");
}

#[test]
fn baresip_best_effort_srtp_in_rtp_avp_is_taken_over_tls() {
    baresip_srtp("srtp");
}

#[test]
fn baresip_srtp_phone_to_a_baresip_carrier_on_an_srtp_tls_trunk_through_the_relay() {
    let free_tcp = || {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    // baresip takes TLS on the port after its SIP port: two free ones in a row.
    let carrier = loop {
        let p = free_udp_port();
        if p < 65535
            && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
        {
            break p;
        }
    };
    let out = Command::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/interop/baresip-srtp-trunk.sh"),
    )
    .env("DIALERD_BIN", common::bin())
    .env("SIP_PORT", free_udp_port().to_string())
    .env("CARRIER_PORT", carrier.to_string())
    .env("TLS_PORT", free_tcp().to_string())
    .env("HTTP_PORT", free_tcp().to_string())
    .output()
    .expect("the interop script runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for wanted in [
        "PASS: dialerd offers the TLS trunk RTP/SAVP with its keys",
        "PASS: the phone hears the carrier's 880 Hz",
        "PASS: the carrier hears the phone's 440 Hz",
        "PASS: the recording holds both sides in clear",
    ] {
        assert!(text.contains(wanted), "no {wanted:?} in\n{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
}
