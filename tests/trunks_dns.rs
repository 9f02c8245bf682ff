//! Trunk host names through a real DNS server (Debian's dnsmasq on a loopback port, named in
//! `sip.dns_servers`): NAPTR → SRV → A as RFC 3263 orders them, failover to the next SRV
//! target when the first one is silent, and a changed A record reaching the running daemon
//! once its TTL runs out.

mod common;

use common::Daemon;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A dnsmasq answering only from its own records, killed on drop.
struct Dns {
    child: Child,
    port: u16,
}

impl Dns {
    /// dnsmasq on 127.0.0.1 with `records` (its command-line options), `hosts` as an extra
    /// hosts file re-read on SIGHUP, and TTL 1 s for them.
    fn start(records: &[String], hosts: &Path) -> Dns {
        let port = free_udp_port();
        let child = Command::new("/usr/sbin/dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--local-ttl=1",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq runs (scripts/test installs dnsmasq-base)");
        let dns = Dns { child, port };
        // Ready when it answers: the daemon reads its trunks' names once at start.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dns.answers() {
            assert!(Instant::now() < deadline, "dnsmasq did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        dns
    }

    /// Whether a query for the root's SOA gets any reply.
    fn answers(&self) -> bool {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // id 1, RD, one question: ". SOA IN".
        let query = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1];
        s.send_to(&query, ("127.0.0.1", self.port)).unwrap();
        s.recv(&mut [0u8; 512]).is_ok()
    }

    /// Makes dnsmasq read its hosts file again.
    fn reload(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A UDP "carrier" on `addr` that answers OPTIONS with 200 when `answer`.
fn carrier(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s
}

/// Reads what arrived at `carrier` within `within`, answering OPTIONS when `answer`; returns
/// the requests.
fn serve(carrier: &UdpSocket, answer: bool, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok((n, from)) = carrier.recv_from(&mut buf) {
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            if answer && req.starts_with("OPTIONS ") {
                carrier
                    .send_to(common::ok_response(&req).as_bytes(), from)
                    .unwrap();
            }
            seen.push(req);
        }
    }
    seen
}

/// The trunk's state and address as `GET /api/v1/trunks` shows them.
fn trunk(d: &Daemon) -> (String, Option<SocketAddr>) {
    let (status, body) = d.admin_request("GET", "/api/v1/trunks", None);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    (
        v[0]["state"].as_str().unwrap().to_string(),
        v[0]["address"].as_str().and_then(|a| a.parse().ok()),
    )
}

fn config(dns: &Dns, trunk: &str) -> String {
    format!(
        "[sip]\nt1 = \"20ms\"\nt2 = \"40ms\"\ndns_servers = [\"127.0.0.1:{}\"]\n\
         [[trunks]]\nname = \"carrier\"\n{trunk}keepalive = \"200ms\"\n",
        dns.port
    )
}

#[test]
fn naptr_and_srv_order_the_targets_and_a_silent_one_gives_way_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "").unwrap();
    let first = carrier("127.0.0.1:0");
    let second = carrier("127.0.0.1:0");
    let port = |s: &UdpSocket| s.local_addr().unwrap().port();
    // The NAPTR names an SRV name that is not the default one, so the test sees it was read.
    let dns = Dns::start(
        &[
            "--naptr-record=carrier.test,10,10,s,SIP+D2T,,_sip._tcp.carrier.test".into(),
            "--naptr-record=carrier.test,20,10,s,SIP+D2U,,_sip._udp.pool.carrier.test".into(),
            format!(
                "--srv-host=_sip._udp.pool.carrier.test,a.carrier.test,{},10,0",
                port(&first)
            ),
            format!(
                "--srv-host=_sip._udp.pool.carrier.test,b.carrier.test,{},20,0",
                port(&second)
            ),
            "--srv-host=_sip._udp.carrier.test,wrong.carrier.test,9,0,0".into(),
            "--host-record=a.carrier.test,127.0.0.1".into(),
            "--host-record=b.carrier.test,127.0.0.1".into(),
        ],
        &hosts,
    );
    let d = Daemon::start(&config(&dns, "host = \"carrier.test\"\n"));
    assert_eq!(
        trunk(&d).1,
        Some(first.local_addr().unwrap()),
        "the priority-10 target of the NAPTR's SRV name comes first"
    );

    // The first target never answers: after two lost keepalives the second one is tried.
    let unanswered = serve(&first, false, Duration::from_secs(3));
    assert!(
        unanswered
            .iter()
            .any(|r| r.starts_with("OPTIONS sip:carrier.test ")),
        "{unanswered:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        serve(&second, true, Duration::from_millis(300));
        if trunk(&d) == ("up".into(), Some(second.local_addr().unwrap())) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "trunk never came up on the second target: {:?}",
            trunk(&d)
        );
    }
}

#[test]
fn a_changed_address_reaches_the_running_trunk_after_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 moving.carrier.test\n").unwrap();
    let dns = Dns::start(&[], &hosts);
    let old = carrier("127.0.0.1:0");
    let port = old.local_addr().unwrap().port();
    let new = carrier(&format!("127.0.0.2:{port}"));
    let d = Daemon::start(&config(
        &dns,
        &format!("host = \"moving.carrier.test\"\nport = {port}\n"),
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    while trunk(&d).0 != "up" {
        serve(&old, true, Duration::from_millis(200));
        assert!(Instant::now() < deadline, "trunk never came up");
    }
    assert_eq!(trunk(&d).1, Some(old.local_addr().unwrap()));

    // The carrier moves: the record changes, and within the 5 s floor on TTLs (plus a probe)
    // the keepalives go to the new address.
    std::fs::write(&hosts, "127.0.0.2 moving.carrier.test\n").unwrap();
    dns.reload();
    let moved_at = Instant::now();
    let deadline = moved_at + Duration::from_secs(12);
    loop {
        serve(&old, true, Duration::from_millis(100));
        let seen = serve(&new, true, Duration::from_millis(200));
        if seen.iter().any(|r| r.starts_with("OPTIONS ")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no keepalive reached the new address: {:?}",
            trunk(&d)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while trunk(&d) != ("up".into(), Some(new.local_addr().unwrap())) {
        serve(&new, true, Duration::from_millis(200));
        assert!(Instant::now() < deadline, "{:?}", trunk(&d));
    }
}
