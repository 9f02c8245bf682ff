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
        carrier
            .send_to(common::ok_response(&req).as_bytes(), from)
            .unwrap();
    }
    req
}

fn trunk_state(d: &Daemon) -> (String, f64) {
    let (status, body) = d.admin_request("GET", "/api/v1/trunks", None);
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
    let (_, body) = d.admin_request("GET", "/api/v1/trunks", None);
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
    let post = |path: &str, body: &str| {
        let auth = format!("Bearer {}", d.admin);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        let (status, _, body) =
            common::http_request(d.http, "POST", path, &headers, body.as_bytes());
        (status, body)
    };
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
        // The CLI finds the admin token where the daemon wrote it.
        .env("DIALERD__STATE_DIR", d.dir.path().join("state"))
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

/// A user of `role` with a fresh token, made through the API.
fn user_token(d: &Daemon, name: &str, role: &str) -> String {
    let (status, body) = d.admin_request(
        "POST",
        "/api/v1/users",
        Some(&serde_json::json!({ "name": name, "role": role })),
    );
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].clone();
    let (status, body) = d.admin_request("POST", &format!("/api/v1/users/{id}/tokens"), None);
    assert_eq!(status, 201, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A POST with exactly these headers (and Host) and body: (status, body).
fn post_with(d: &Daemon, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let (status, _, body) = common::http_request(d.http, "POST", path, headers, body.as_bytes());
    (status, body)
}

#[test]
fn test_calls_need_a_token_a_role_json_and_a_verified_or_admin_caller_id() {
    let carrier = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = carrier.local_addr().unwrap().port();
    let d = Daemon::start(&format!(
        "[sip]\nt1 = \"20ms\"\nt2 = \"40ms\"\n[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {port}\nkeepalive = \"0s\"\n"
    ));
    let path = "/api/v1/trunks/carrier/test-call";
    let probe = r#"{"to":"+882355555555","caller_id":"+33144556677","ring_timeout":300}"#;

    // The probe's request: no token, text/plain, as a web page could send it.
    let (status, body) = post_with(&d, path, &[("Content-Type", "text/plain")], probe);
    assert_eq!(status, 401, "{body}");
    let (status, body) = d.get("/api/v1/trunks");
    assert_eq!(status, 401, "{body}");

    let admin = format!("Bearer {}", d.admin);
    let (status, body) = post_with(
        &d,
        path,
        &[("Authorization", &admin), ("Content-Type", "text/plain")],
        probe,
    );
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("\"field\":\"Content-Type\""), "{body}");

    let operator = format!("Bearer {}", user_token(&d, "op", "operator"));
    let json = ("Content-Type", "application/json");
    let (status, body) = post_with(&d, path, &[("Authorization", &operator), json], probe);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"field\":\"caller_id\""), "{body}");
    let backoffice = format!("Bearer {}", user_token(&d, "bo", "backoffice"));
    let (status, body) = post_with(
        &d,
        path,
        &[("Authorization", &backoffice), json],
        r#"{"to":"4930123456"}"#,
    );
    assert_eq!(status, 403, "{body}");

    // Nothing of the refused requests reached the carrier.
    carrier
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(
        carrier.recv(&mut buf).is_err(),
        "a refused request placed a call"
    );

    // An operator may call with the trunk's own caller ID, an admin with any.
    let (status, body) = post_with(
        &d,
        path,
        &[("Authorization", &operator), json],
        r#"{"to":"4930123456","ring_timeout":1}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_with(
        &d,
        path,
        &[("Authorization", &admin), json],
        r#"{"to":"4930123456","caller_id":"+33144556677","ring_timeout":1}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["caller_id"],
        "+33144556677"
    );
}

#[test]
fn other_host_names_get_421_and_metrics_can_require_a_token() {
    let metrics_token = "scrape-token-0123456789";
    let d = Daemon::start(&format!(
        "[http]\nmetrics_token = \"{metrics_token}\"\nallowed_hosts = [\"dialer.corp.example\"]\n"
    ));
    let admin = format!("Bearer {}", d.admin);
    let get = |host: &str, path: &str, auth: &str| {
        let mut s = std::net::TcpStream::connect(d.http).unwrap();
        std::io::Write::write_all(
            &mut s,
            format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut resp = String::new();
        std::io::Read::read_to_string(&mut s, &mut resp).unwrap();
        resp[9..12].parse::<u16>().unwrap()
    };
    // DNS rebinding: the attacker's name in Host, even with a stolen token.
    assert_eq!(
        get("rebind.attacker.example:9090", "/api/v1/me", &admin),
        421
    );
    assert_eq!(get("rebind.attacker.example", "/metrics", &admin), 421);
    assert_eq!(get("dialer.corp.example:9090", "/api/v1/me", &admin), 200);
    assert_eq!(get("localhost:9090", "/api/v1/me", &admin), 200);
    assert_eq!(get(&d.http.to_string(), "/api/v1/me", &admin), 200);
    // Probes answer whatever the Host.
    assert_eq!(get("rebind.attacker.example", "/healthz", ""), 200);
    assert_eq!(get("rebind.attacker.example", "/readyz", ""), 200);
    // Metrics: the scrape token, not an API token.
    let host = d.http.to_string();
    assert_eq!(get(&host, "/metrics", ""), 401);
    assert_eq!(get(&host, "/metrics", &admin), 401);
    assert_eq!(
        get(&host, "/metrics", &format!("Bearer {metrics_token}")),
        200
    );
}
