//! Every SIPp scenario in `sip-scenarios/` against the real daemon. A scenario says how to run it
//! in a comment line `dialerd-test: transports=udp,tcp calls=N`; SIPp's exit status is the verdict
//! (0 only when every call followed the scenario, including its regexp checks).

mod common;

use common::Daemon;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sipp_path() -> &'static str {
    let ok = Command::new("sipp").arg("-v").output().is_ok();
    assert!(
        ok,
        "SIPp is not installed: ./scripts/test installs Debian's sip-tester, or run `apt-get install sip-tester`"
    );
    "sipp"
}

struct Plan {
    transports: Vec<String>,
    calls: u32,
    /// Run against the daemon that trusts no local address (for 403 checks).
    untrusted: bool,
    /// Run against a daemon of its own (the scenario leaves state behind, e.g. a blocked
    /// source address).
    own: bool,
    /// SIPp plays the carrier (UAS) and dialerd places a test call to it.
    uas: bool,
    /// For UAS scenarios: the test call's outcome, `answered` or `rejected:CODE`.
    expect: Option<String>,
    /// Percentage of packets SIPp drops, sent and received (`-lost`).
    lost: u32,
    /// For UAS scenarios: the daemon registers the trunk instead of placing a test call.
    register: bool,
    /// With `register`: once registered, the daemon is stopped with SIGTERM.
    stop_after_register: bool,
    /// For UAS scenarios: the test call's ring timeout in seconds.
    ring_timeout: Option<u32>,
    /// For UAS scenarios: the caller ID the test call asks for.
    caller_id: Option<String>,
    /// For UAS scenarios: the trunk's `dial_prefix`.
    dial_prefix: String,
    /// A longer echo limit than the shared daemon's 2 s, on a daemon of its own: on a lossy
    /// network SIPp's BYE can need several retransmissions, and the daemon must not end the
    /// call first.
    echo_max_duration: Option<String>,
}

/// The loopback trunk of the shipped config: SIPp on 127.0.0.1 is a trusted carrier.
const TRUSTED: &str = "[[trunks]]\nname = \"loopback\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = 5070\n\
    [sip]\ndigest_algorithms = [\"MD5\"]\necho_number = \"1000\"\necho_max_duration = \"2s\"\n[[agents]]\nusername = \"agent1\"\npassword = \"sipp-agent-secret\"\n";
/// Only a far-away trunk: SIPp on 127.0.0.1 is a stranger.
const UNTRUSTED: &str = "[[trunks]]\nname = \"far\"\nhost = \"192.0.2.1\"\n";

fn plan(xml: &str, path: &Path) -> Plan {
    let line = xml
        .lines()
        .find_map(|l| l.trim().strip_prefix("dialerd-test:"))
        .unwrap_or_else(|| panic!("{} has no 'dialerd-test:' line", path.display()));
    let mut plan = Plan {
        transports: vec!["udp".into()],
        calls: 1,
        untrusted: false,
        own: false,
        uas: false,
        expect: None,
        lost: 0,
        register: false,
        stop_after_register: false,
        ring_timeout: None,
        caller_id: None,
        dial_prefix: String::new(),
        echo_max_duration: None,
    };
    for word in line.split_whitespace() {
        match word.split_once('=') {
            Some(("transports", v)) => plan.transports = v.split(',').map(str::to_string).collect(),
            Some(("calls", v)) => plan.calls = v.parse().expect("calls=N"),
            Some(("daemon", "untrusted")) => plan.untrusted = true,
            Some(("daemon", "own")) => plan.own = true,
            Some(("role", "uas")) => plan.uas = true,
            Some(("expect", v)) => plan.expect = Some(v.to_string()),
            Some(("lost", v)) => plan.lost = v.parse().expect("lost=PERCENT"),
            Some(("trigger", "register")) => plan.register = true,
            Some(("trigger", "register_then_stop")) => {
                plan.register = true;
                plan.stop_after_register = true;
            }
            Some(("caller_id", v)) => plan.caller_id = Some(v.to_string()),
            Some(("dial_prefix", v)) => plan.dial_prefix = v.to_string(),
            Some(("echo_max_duration", v)) => plan.echo_max_duration = Some(v.to_string()),
            Some(("ring_timeout", v)) => {
                plan.ring_timeout = Some(v.parse().expect("ring_timeout=SECONDS"))
            }
            _ => panic!("{}: unknown dialerd-test word {word}", path.display()),
        }
    }
    plan
}

/// Runs one scenario as UAC against `target`; returns (exit code, SIPp's output).
fn run_uac(
    scenario: &Path,
    target: std::net::SocketAddr,
    transport: &str,
    calls: u32,
    lost: u32,
) -> (Option<i32>, String) {
    let work = tempfile::tempdir().unwrap();
    let mode = match transport {
        "udp" => "u1",
        "tcp" => "t1",
        other => panic!("unknown transport {other}"),
    };
    let out = Command::new(sipp_path())
        .current_dir(work.path())
        .arg("-sf")
        .arg(scenario)
        .args([
            "-t",
            mode,
            "-i",
            "127.0.0.1",
            "-m",
            &calls.to_string(),
            "-r",
            "10",
        ])
        .args([
            "-timeout",
            "60s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .args(if lost > 0 {
            vec!["-lost".to_string(), lost.to_string()]
        } else {
            vec![]
        })
        .arg(target.to_string())
        .output()
        .unwrap();
    let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    for entry in std::fs::read_dir(work.path()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().contains("errors") {
            log.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    // Keep the tail: SIPp's screen dumps are long.
    let tail: String = log
        .chars()
        .rev()
        .take(4000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (out.status.code(), tail)
}

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-scenarios");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_sipp_scenario_passes_against_the_daemon() {
    let d = Daemon::start(TRUSTED);
    let stranger = Daemon::start(UNTRUSTED);
    let all = scenarios();
    assert!(all.len() >= 4, "scenarios missing: {all:?}");
    let mut failures = Vec::new();
    let mut runs = 0;
    for path in &all {
        let xml = std::fs::read_to_string(path).unwrap();
        let plan = plan(&xml, path);
        if plan.uas {
            runs += 1;
            if let Err(e) = run_carrier(path, &plan) {
                failures.push(format!("{} as carrier: {e}", path.display()));
            }
            continue;
        }
        for transport in &plan.transports {
            runs += 1;
            let own = match &plan.echo_max_duration {
                Some(limit) => Some(Daemon::start(&TRUSTED.replace(
                    "echo_max_duration = \"2s\"",
                    &format!("echo_max_duration = \"{limit}\""),
                ))),
                None => plan.own.then(|| Daemon::start(TRUSTED)),
            };
            let target = match &own {
                Some(own) => own.sip,
                None if plan.untrusted => stranger.sip,
                None => d.sip,
            };
            let (code, log) = run_uac(path, target, transport, plan.calls, plan.lost);
            if code != Some(0) {
                failures.push(format!(
                    "{} over {transport}: sipp exit {code:?}\n{log}",
                    path.display()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} SIPp runs failed:\n{}",
        failures.len(),
        failures.join("\n----\n")
    );

    // The daemon saw them: requests counted by method.
    let (_, metrics) = d.get("/metrics");
    for method in ["OPTIONS", "INVITE", "ACK", "REGISTER", "SUBSCRIBE"] {
        let series = format!("dialerd_sip_requests_total{{direction=\"in\",method=\"{method}\"}}");
        assert!(
            common::metric(&metrics, &series).is_some(),
            "{series} missing:\n{metrics}"
        );
    }
}

/// SIPp plays a carrier (UAS) on a trunk; dialerd places a test call to it through the API.
fn run_carrier(scenario: &Path, plan: &Plan) -> Result<(), String> {
    let expect = plan.expect.as_deref().unwrap_or("answered");
    let register = plan.register;
    let work = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut sipp = Command::new(sipp_path())
        .current_dir(work.path())
        .arg("-sf")
        .arg(scenario)
        .args([
            "-t",
            "u1",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
        ])
        .args([
            "-timeout",
            "30s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until SIPp holds its port.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        if std::time::Instant::now() > deadline || sipp.try_wait().ok().flatten().is_some() {
            let _ = sipp.kill();
            let out = sipp.wait_with_output().unwrap();
            return Err(format!(
                "SIPp did not bind its port:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut d = Daemon::start(&format!(
        "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = {port}\nkeepalive = \"0s\"\n\
         username = \"carrier-user\"\npassword = \"carrier-secret\"\nregister = {register}\n\
         dial_prefix = \"{}\"\n",
        plan.dial_prefix
    ));
    if plan.stop_after_register {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !d
            .admin_request("GET", "/api/v1/trunks", None)
            .1
            .contains("\"registered\":true")
        {
            if std::time::Instant::now() > deadline {
                let _ = sipp.kill();
                let _ = sipp.wait();
                return Err(format!(
                    "never registered: {}",
                    d.admin_request("GET", "/api/v1/trunks", None).1
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        d.signal(libc::SIGTERM);
        let out = sipp.wait_with_output().unwrap();
        let exit = d.wait_exit(std::time::Duration::from_secs(40));
        return match (out.status.code(), exit.and_then(|e| e.code())) {
            (Some(0), Some(0)) => Ok(()),
            (sipp, daemon) => Err(format!(
                "sipp exit {sipp:?}, daemon exit {daemon:?}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )),
        };
    }
    if register {
        let out = sipp.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.code() != Some(0) {
            return Err(format!("sipp exit {:?}\n{log}", out.status.code()));
        }
        let (_, body) = d.admin_request("GET", "/api/v1/trunks", None);
        let trunks: serde_json::Value = serde_json::from_str(&body).unwrap();
        let metrics = d.get("/metrics").1;
        let gauge = common::metric(&metrics, "dialerd_trunk_registered{trunk=\"carrier\"}");
        return match (expect, trunks[0]["registered"].as_bool(), gauge) {
            ("registered", Some(true), Some(1.0)) => Ok(()),
            _ => Err(format!("wanted {expect}: {body}, gauge {gauge:?}")),
        };
    }
    let request = serde_json::json!({
        "to": "4915112345678",
        "ring_timeout": plan.ring_timeout,
        "caller_id": plan.caller_id,
    });
    let (status, _, body) = common::api_request(
        d.http,
        &d.admin,
        "POST",
        "/api/v1/trunks/carrier/test-call",
        Some(&request),
    );
    let out = sipp.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout)
            .chars()
            .rev()
            .take(2000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<String>(),
        String::from_utf8_lossy(&out.stderr)
    );
    if status != 200 {
        return Err(format!("test-call answered HTTP {status}: {body}\n{log}"));
    }
    let report: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    let got = match report["outcome"].as_str() {
        Some("answered") => "answered".to_string(),
        Some(o) => format!("{o}:{}", report["code"]),
        None => format!("{report}"),
    };
    if got != expect {
        return Err(format!("wanted {expect}, got {got}: {report}\n{log}"));
    }
    if expect == "answered" && report["final_ms"].as_u64().is_none() {
        return Err(format!("no timing in {report}"));
    }
    if out.status.code() != Some(0) {
        return Err(format!("sipp exit {:?}\n{log}", out.status.code()));
    }
    Ok(())
}

#[test]
fn sipp_run_fails_when_the_answer_is_wrong() {
    // Negative control: the same runner must report failure, or a green run means nothing.
    let d = Daemon::start(TRUSTED);
    let work = tempfile::tempdir().unwrap();
    let wrong = work.path().join("wrong.xml");
    let xml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-scenarios/options.xml"),
    )
    .unwrap()
    .replace("<recv response=\"200\">", "<recv response=\"486\">");
    std::fs::write(&wrong, xml).unwrap();
    let (code, _) = run_uac(&wrong, d.sip, "udp", 1, 0);
    assert_ne!(
        code,
        Some(0),
        "a scenario expecting 486 must fail against a 200"
    );
}

#[test]
fn register_guessing_is_throttled_logged_with_its_source_and_counted() {
    let mut d = Daemon::start(TRUSTED);
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-scenarios/register_guessing.xml");
    let (code, log) = run_uac(&scenario, d.sip, "udp", 1, 0);
    assert_eq!(code, Some(0), "{log}");
    // Every judged guess is one log line naming where it came from.
    let mut failures = Vec::new();
    while let Some(line) = d.try_wait_log(
        "REGISTER authentication failed",
        std::time::Duration::from_millis(500),
    ) {
        failures.push(line);
    }
    assert_eq!(failures.len(), 6, "{failures:#?}");
    for line in &failures {
        assert_eq!(line["fields"]["source"], "127.0.0.1", "{line}");
        assert_eq!(line["fields"]["user"], "\"agent1\"", "{line}");
    }
    let metrics = d.get("/metrics").1;
    assert_eq!(
        common::metric(&metrics, "dialerd_sip_auth_failures_total"),
        Some(6.0)
    );
    assert_eq!(
        common::metric(&metrics, "dialerd_sip_register_throttled_total"),
        Some(1.0)
    );
}
