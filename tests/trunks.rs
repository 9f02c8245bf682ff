//! Trunk keepalives against a real UDP "carrier": OPTIONS answered → up; silence → down; answers
//! again → up; seen in `GET /api/v1/trunks` and `dialerd_trunk_up`.

mod common;

use common::{metric, Daemon};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// Reads one OPTIONS from the daemon; answers 200 when `answer`.
fn serve_one(carrier: &UdpSocket, answer: bool) -> String {
    let mut buf = [0u8; 4096];
    let (n, from) = carrier
        .recv_from(&mut buf)
        .expect("no keepalive OPTIONS arrived");
    let req = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(req.starts_with("OPTIONS sip:127.0.0.1:"), "{req}");
    if answer {
        let mut resp = String::from("SIP/2.0 200 OK\\r\\n");
        for line in req.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
            let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
            if ["via", "from", "to", "call-id", "cseq"].contains(&name.as_str()) {
                resp.push_str(line);
                resp.push_str("\r\n");
            }
        }
        resp = resp.replace("\\r\\n", "\r\n");
        resp.push_str("Content-Length: 0\r\n\r\n");
        carrier.send_to(resp.as_bytes(), from).unwrap();
    }
    req
}

fn trunk_state(d: &Daemon) -> (String, f64) {
    let (status, body) = d.get("/api/v1/trunks");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["name"], "carrier");
    let state = v[0]["state"].as_str().unwrap().to_string();
    let up = metric(&d.get("/metrics").1, "dialerd_trunk_up{trunk=\"carrier\"}").unwrap();
    (state, up)
}

fn wait_state(d: &Daemon, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (state, up) = trunk_state(d);
        if state == want {
            assert_eq!(
                up,
                if want == "up" { 1.0 } else { 0.0 },
                "metric disagrees with API"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "trunk never went {want}; still {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn keepalives_track_trunk_health() {
    let carrier = UdpSocket::bind("127.0.0.1:0").unwrap();
    carrier
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = carrier.local_addr().unwrap().port();
    let cfg = format!(
        "[sip]\nt1 = \"20ms\"\nt2 = \"40ms\"\n[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = {port}\nkeepalive = \"200ms\"\n"
    );
    let d = Daemon::start(&cfg);

    let first = serve_one(&carrier, true);
    assert!(first.contains("User-Agent: dialerd/"), "{first}");
    wait_state(&d, "up", Duration::from_secs(5));

    // Go silent: every OPTIONS (and its retransmissions) goes unanswered until the trunk is down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while trunk_state(&d).0 == "up" {
        assert!(Instant::now() < deadline, "trunk stayed up while silent");
        let _ = serve_one(&carrier, false);
    }
    wait_state(&d, "down", Duration::from_secs(1));
    let (_, body) = d.get("/api/v1/trunks");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v[0]["failed_keepalives"].as_u64().unwrap() >= 2, "{body}");

    // Answer again: back up after one answered keepalive (skip retransmissions of old ones).
    let deadline = Instant::now() + Duration::from_secs(10);
    while trunk_state(&d).0 == "down" {
        assert!(
            Instant::now() < deadline,
            "trunk stayed down while answering"
        );
        let _ = serve_one(&carrier, true);
    }
    wait_state(&d, "up", Duration::from_secs(1));
}

#[test]
fn test_call_api_refuses_bad_input_naming_the_field() {
    let d = Daemon::start(
        "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = 9\nkeepalive = \"0s\"\n",
    );
    let post = |path: &str, body: &str| common::http_post(d.http, path, body);
    let field =
        |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap()["field"].clone();

    let (status, body) = post("/api/v1/trunks/carrier/test-call", r#"{"too": "123"}"#);
    assert_eq!(status, 400, "{body}");
    assert_eq!(field(&body), "too", "{body}");
    let (status, body) = post("/api/v1/trunks/carrier/test-call", "{}");
    assert_eq!(
        (status, field(&body)),
        (400, serde_json::json!("to")),
        "{body}"
    );
    let (status, body) = post("/api/v1/trunks/carrier/test-call", r#"{"to": "12 34"}"#);
    assert_eq!(
        (status, field(&body)),
        (400, serde_json::json!("to")),
        "{body}"
    );
    let (status, body) = post(
        "/api/v1/trunks/carrier/test-call",
        r#"{"to": "1", "ring_timeout": 0}"#,
    );
    assert_eq!(
        (status, field(&body)),
        (400, serde_json::json!("ring_timeout")),
        "{body}"
    );
    let (status, body) = post("/api/v1/trunks/carrier/test-call", "not json");
    assert_eq!(status, 400, "{body}");
    let (status, body) = post("/api/v1/trunks/nosuch/test-call", r#"{"to": "123"}"#);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no trunk named nosuch"), "{body}");
}

#[test]
fn cli_test_call_reports_a_carrier_that_never_answers() {
    let carrier = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = carrier.local_addr().unwrap().port();
    let d = Daemon::start(&format!(
        "[sip]\nt1 = \"20ms\"\nt2 = \"40ms\"\n[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = {port}\nkeepalive = \"0s\"\n"
    ));
    let out = common::command()
        .args([
            "test-call",
            "--trunk",
            "carrier",
            "--to",
            "4930123456",
            "--config",
        ])
        .arg(Daemon::config_path(d.dir.path()))
        .env("DIALERD__HTTP__LISTEN", d.http.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["outcome"], "timeout", "{report}");
    assert_eq!(report["trunk"], "carrier");
    assert!(stderr.contains("test call timeout"), "{stderr}");
    // The carrier saw the INVITE, with retransmissions (Timer A) since nothing answered.
    carrier
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut invites = 0;
    while let Ok(n) = carrier.recv(&mut buf) {
        if buf[..n].starts_with(b"INVITE sip:4930123456@127.0.0.1:") {
            invites += 1;
        }
    }
    assert!(invites >= 2, "saw {invites} INVITEs");
}
