//! The real binary: metrics, health, SIGHUP reload, SIGTERM drain, and bad-input exits.

mod common;

use common::{command, Daemon};
use std::time::{Duration, Instant};

const BASE: &str = "[log]\nlevel = \"info\"\n[shutdown]\ndrain_timeout = \"3s\"\n";

#[test]
fn metrics_health_and_readiness_answer() {
    let d = Daemon::start_with(BASE, &[("DIALERD__NODE__NAME", "dialer-a")]);
    assert_eq!(d.get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(d.get("/readyz"), (200, "ready\n".to_string()));
    let (status, body) = d.get("/metrics");
    assert_eq!(status, 200);
    let build = format!(
        "dialerd_build_info{{version=\"{}\",node=\"dialer-a\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(body.contains(&build), "{body}");
    for series in [
        "process_cpu_seconds_total{node=\"dialer-a\"} ",
        "process_resident_memory_bytes{node=\"dialer-a\"} ",
        "process_open_fds{node=\"dialer-a\"} ",
        "process_start_time_seconds{node=\"dialer-a\"} ",
    ] {
        assert!(body.contains(series), "missing {series}: {body}");
    }
    // Every series names the node, so that those of several nodes stay apart.
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains("node=\"dialer-a\""), "{line}");
    }
    let rss = common::metric(&body, "process_resident_memory_bytes").unwrap();
    assert!(rss > 1_000_000.0, "implausible RSS {rss}");
    assert_eq!(d.get("/nope").0, 404);
}

#[test]
fn sighup_applies_log_level_and_survives_a_bad_file() {
    let mut d = Daemon::start(BASE);
    let path = Daemon::config_path(d.dir.path());

    // At info, requests are not logged.
    d.get("/healthz");
    assert!(d
        .try_wait_log("http request", Duration::from_millis(500))
        .is_none());

    std::fs::write(&path, BASE.replace("\"info\"", "\"debug\"")).unwrap();
    d.signal(libc::SIGHUP);
    let applied = d.wait_log("log level applied", Duration::from_secs(10));
    assert_eq!(applied["fields"]["level"], "debug");
    d.get("/healthz");
    let line = d.wait_log("http request", Duration::from_secs(10));
    assert_eq!(line["level"], "DEBUG");
    assert_eq!(line["fields"]["path"], "/healthz");

    // A broken file is refused; the daemon keeps running on the old config.
    std::fs::write(&path, "[log]\nlevle = \"trace\"\n").unwrap();
    d.signal(libc::SIGHUP);
    let failed = d.wait_log(
        "reload failed; keeping the running configuration",
        Duration::from_secs(10),
    );
    let err = failed["fields"]["error"].as_str().unwrap();
    assert!(err.contains("log.levle"), "{err}");
    assert_eq!(d.get("/readyz").0, 200);

    // A section that needs a restart is named.
    std::fs::write(&path, format!("{BASE}[sip]\nmax_message_size = 2048\n")).unwrap();
    d.signal(libc::SIGHUP);
    let warn = d.wait_log(
        "changed in the config file; takes effect after a restart",
        Duration::from_secs(10),
    );
    assert_eq!(warn["fields"]["section"], "sip");
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut d = Daemon::start(BASE);
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(4))
        .expect("still running after the drain timeout");
    assert_eq!(status.code(), Some(0));
    d.wait_log("dialerd stopped", Duration::from_secs(1));
}

#[test]
fn sigterm_does_not_wait_for_our_own_keepalives() {
    // A trunk that never answers: its OPTIONS is in flight (Timer F 32 s) when SIGTERM comes.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut d = Daemon::start(&format!(
        "{BASE}[[trunks]]\nname = \"silent\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = {port}\n"
    ));
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 2048];
    silent.recv(&mut buf).expect("no keepalive sent");
    let start = std::time::Instant::now();
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(4)).expect("still running");
    assert_eq!(status.code(), Some(0));
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "waited {:?} for a keepalive",
        start.elapsed()
    );
}

#[test]
fn sigint_exits_zero() {
    let mut d = Daemon::start(BASE);
    d.signal(libc::SIGINT);
    let status = d.wait_exit(Duration::from_secs(4)).expect("still running");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sd_notify_ready_and_stopping_reach_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut d = Daemon::start_with(
        BASE,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    // READY first, then watchdog pings every 100 ms.
    while got.iter().filter(|m: &&String| *m == "WATCHDOG=1").count() < 2 {
        let n = sock.recv(&mut buf).expect("no notification");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got[0], "READY=1");
    // SIGHUP: RELOADING (with its monotonic stamp), then READY again.
    d.signal(libc::SIGHUP);
    let mut reload = Vec::new();
    while !reload.iter().any(|m: &String| m == "READY=1") {
        let n = sock.recv(&mut buf).expect("no notification after SIGHUP");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg != "WATCHDOG=1" {
            reload.push(msg);
        }
    }
    assert!(
        reload[0].starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reload:?}"
    );
    d.signal(libc::SIGTERM);
    loop {
        let n = sock.recv(&mut buf).expect("no STOPPING");
        if &buf[..n] == b"STOPPING=1" {
            break;
        }
    }
    assert_eq!(d.wait_exit(Duration::from_secs(4)).unwrap().code(), Some(0));
}

/// Runs the binary to completion: (exit code, stderr).
fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_clean_line(stderr: &str) {
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "want one line: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn unknown_key_exits_nonzero_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[http]\nlisten = \"127.0.0.1:0\"\nport = 80\n").unwrap();
    let (code, _, err) = run_to_exit(&["run", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1));
    assert_one_clean_line(&err);
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains("`http.port`"),
        "{err}"
    );
}

#[test]
fn bad_env_value_exits_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(&path, "").unwrap();
    let (code, _, err) = run_to_exit(
        &["check-config", "--config", path.to_str().unwrap()],
        &[("DIALERD__SHUTDOWN__DRAIN_TIMEOUT", "soon")],
    );
    assert_eq!(code, Some(1));
    assert_one_clean_line(&err);
    assert!(err.contains("DIALERD__SHUTDOWN__DRAIN_TIMEOUT"), "{err}");
}

#[test]
fn unreadable_file_exits_naming_it() {
    let (code, _, err) = run_to_exit(&["run", "--config", "/nonexistent/dialerd.toml"], &[]);
    assert_eq!(code, Some(1));
    assert_one_clean_line(&err);
    assert!(err.contains("/nonexistent/dialerd.toml"), "{err}");
}

#[test]
fn port_in_use_exits_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(&path, "").unwrap();
    let state = dir.path().join("state");
    let (code, _, err) = run_to_exit(
        &["run", "--config", path.to_str().unwrap()],
        &[
            ("DIALERD__HTTP__LISTEN", &addr),
            ("DIALERD__STATE_DIR", state.to_str().unwrap()),
            ("DIALERD__LOG__LEVEL", "off"),
        ],
    );
    assert_eq!(code, Some(1));
    assert_one_clean_line(&err);
    assert!(err.contains(&addr) && err.contains("http.listen"), "{err}");
    assert_eq!(err.matches("in use").count(), 1, "cause repeated: {err}");
}

#[test]
fn check_config_prints_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[[trunks]]\nname = \"carrier\"\nhost = \"sip.example.net\"\nusername = \"acct\"\npassword = \"s3cret-pw\"\n",
    )
    .unwrap();
    let (code, out, err) = run_to_exit(
        &["check-config", "--config", path.to_str().unwrap()],
        &[("DIALERD__LOG__LEVEL", "debug")],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains("s3cret-pw"), "{out}");
    assert!(out.contains("password = \"********\""), "{out}");
    assert!(
        out.contains("level = \"debug\""),
        "env override not shown: {out}"
    );
    assert!(
        out.contains("drain_timeout = \"30s\""),
        "defaults not shown: {out}"
    );
}

#[test]
fn version_flag_prints_version() {
    let (code, out, _) = run_to_exit(&["--version"], &[]);
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), format!("dialerd {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn sigterm_hangs_up_calls_left_at_three_quarters_of_the_drain_time() {
    let mut d = Daemon::start(
        "[shutdown]\ndrain_timeout = \"2s\"\n[sip]\necho_number = \"1000\"\n\
         [[trunks]]\nname = \"loopback\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nkeepalive = \"0s\"\n",
    );
    let ua = common::ua::TestUa::new(d.sip, "drain-1");
    ua.invite("1000");
    let ok = ua.final_response();
    assert_eq!(common::status_of(&ok), 200, "{ok}");
    let asked = Instant::now();
    d.signal(libc::SIGTERM);
    let (_, bye) = ua.receive_until_bye(Duration::from_secs(5));
    assert!(bye, "no BYE for the call left at the drain deadline");
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "BYE came before the call had its chance to finish: {waited:?}"
    );
    let status = d.wait_exit(Duration::from_secs(5)).expect("still running");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_call_hung_up_before_its_ack_gets_bye_only_once_the_ack_comes() {
    let d = Daemon::start(
        "[sip]\necho_number = \"1000\"\necho_max_duration = \"500ms\"\n\
         [[trunks]]\nname = \"loopback\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nkeepalive = \"0s\"\n",
    );
    let ua = common::ua::TestUa::new(d.sip, "late-ack");
    ua.invite("1000");
    let ok = ua.final_response_without_ack();
    assert_eq!(common::status_of(&ok), 200, "{ok}");
    // The echo route hangs up after 0.5 s; with the 2xx not yet ACKed, dialerd must only
    // retransmit it (RFC 3261 §15), never send BYE.
    let mut buf = [0u8; 8192];
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        if let Ok(n) = ua.sip.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(
        seen.iter().all(|m| m.starts_with("SIP/2.0 200")),
        "before the ACK: {seen:?}"
    );
    assert!(
        !seen.is_empty(),
        "the unacknowledged 200 was not retransmitted"
    );
    ua.ack(&ok);
    let (_, bye) = ua.receive_until_bye(Duration::from_secs(3));
    assert!(bye, "no BYE once the ACK came");
}

#[test]
fn sip_answers_over_ipv6_udp_and_tcp() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        // A container without IPv6 loopback cannot run this; say so rather than fail.
        eprintln!("no IPv6 loopback on this machine: IPv6 not exercised");
        return;
    }
    let d = Daemon::start_with(BASE, &[("DIALERD__SIP__LISTEN", "127.0.0.1:0,[::1]:0")]);
    let v6: std::net::SocketAddr = d
        .seen
        .iter()
        .filter(|l| l["fields"]["message"] == "sip listening (udp, tcp)")
        .filter_map(|l| l["fields"]["addr"].as_str()?.parse().ok())
        .find(|a: &std::net::SocketAddr| a.is_ipv6())
        .expect("no IPv6 listener logged");
    let udp = std::net::UdpSocket::bind("[::1]:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    udp.send_to(&common::options_request("v6udp"), v6).unwrap();
    let mut buf = [0u8; 4096];
    let n = udp.recv(&mut buf).expect("no answer over IPv6 UDP");
    let resp = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(common::status_of(&resp), 200, "{resp}");
    assert!(resp.contains("received=::1"), "{resp}");

    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(v6).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = String::from_utf8(common::options_request("v6tcp")).unwrap();
    tcp.write_all(request.replace("SIP/2.0/UDP", "SIP/2.0/TCP").as_bytes())
        .unwrap();
    let n = tcp.read(&mut buf).expect("no answer over IPv6 TCP");
    let resp = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(common::status_of(&resp), 200, "{resp}");
}
