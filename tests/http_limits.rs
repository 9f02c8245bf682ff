//! The admin listener under abuse, against the real binary: request heads trickled in
//! (slowloris) and idle connections are cut off, connections are capped, oversized and
//! mistyped bodies are refused before they are read, a stalled import fails and frees its
//! campaign, logins are rate-limited and take as long for unknown users as for real ones,
//! and user names cannot be look-alikes.

mod common;

use common::{api_request, http_request, Daemon};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-token-for-tests-0123456789";

fn start(http: &str) -> Daemon {
    Daemon::start_with(
        &format!("[log]\nlevel = \"info\"\n[http]\n{http}"),
        &[("DIALERD_ADMIN_TOKEN", ADMIN)],
    )
}

/// Reads until the server closes or `within` passes: (closed, what was read).
fn read_until_closed(s: &mut TcpStream, within: Duration) -> (bool, String) {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (true, String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (true, String::from_utf8_lossy(&got).into_owned())
            }
            Err(_) => {}
        }
    }
    (false, String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn trickled_heads_and_idle_connections_are_closed_and_connections_capped() {
    let d = start("header_read_timeout = \"1s\"\nmax_connections = 3\n");
    // Slowloris: a head that never ends, one header line now and then.
    let mut slow = TcpStream::connect(d.http).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(10) {
        if slow.write_all(b"X-Slow: 1\r\n").is_err() {
            closed = true;
            break;
        }
        let (c, _) = read_until_closed(&mut slow, Duration::from_millis(300));
        if c {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a trickled head was held for {:?}",
        started.elapsed()
    );
    // An idle connection that never sends a byte goes too.
    let mut idle = TcpStream::connect(d.http).unwrap();
    let (closed, _) = read_until_closed(&mut idle, Duration::from_secs(10));
    assert!(closed, "an idle connection was held");

    // The cap: three held connections, the fourth is told 503 and closed.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(d.http).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100)); // let the daemon accept them
    let mut fourth = TcpStream::connect(d.http).unwrap();
    let (closed, text) = read_until_closed(&mut fourth, Duration::from_secs(5));
    assert!(closed, "{text}");
    assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
    drop(held);
    // Once the held ones are gone, requests are served again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Until the daemon has seen the closes, an answer may be 503 and a reset.
        let mut s = TcpStream::connect(d.http).unwrap();
        let _ =
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let (_, text) = read_until_closed(&mut s, Duration::from_secs(5));
        if text.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "still {text:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn oversized_and_mistyped_bodies_are_refused_before_reading() {
    let d = start("");
    // 2 GB announced, nothing sent: the answer comes without waiting for the body.
    let mut s = TcpStream::connect(d.http).unwrap();
    write!(
        s,
        "POST /api/v1/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 2000000000\r\n\r\n{{",
        d.http
    )
    .unwrap();
    let (_, text) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(text.starts_with("HTTP/1.1 413"), "{text:?}");
    assert!(text.contains("\"field\":\"Content-Length\""), "{text}");

    let auth = format!("Bearer {ADMIN}");
    let body = br#"{"name": "Spring"}"#;
    for kind in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let mut headers = vec![("Authorization", auth.as_str())];
        if !kind.is_empty() {
            headers.push(("Content-Type", kind));
        }
        let (status, _, text) = http_request(d.http, "POST", "/api/v1/campaigns", &headers, body);
        assert_eq!(status, 415, "{kind}: {text}");
        let (status, _, text) = http_request(
            d.http,
            "POST",
            "/api/v1/login",
            &headers[1..],
            br#"{"name": "admin", "password": "x"}"#,
        );
        assert_eq!(status, 415, "{kind}: {text}");
    }
    let (status, _, text) = api_request(d.http, ADMIN, "GET", "/api/v1/campaigns", None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, "[]", "a refused request created something");
}

#[test]
fn a_stalled_import_fails_and_frees_the_campaign() {
    let d = start("body_read_timeout = \"1s\"\n");
    let (status, _, text) = api_request(
        d.http,
        ADMIN,
        "POST",
        "/api/v1/campaigns",
        Some(&json!({"name": "Stall", "default_region": "DE"})),
    );
    assert_eq!(status, 201, "{text}");
    let id = serde_json::from_str::<Value>(&text).unwrap()["id"].clone();
    let (status, _, text) = api_request(
        d.http,
        ADMIN,
        "POST",
        &format!("/api/v1/campaigns/{id}/tasks"),
        Some(&json!({"name": "dial", "kind": "call", "settings": {"queue": "q"}})),
    );
    assert_eq!(status, 201, "{text}");
    let path = format!("/api/v1/campaigns/{id}/contacts/import");
    let mut s = TcpStream::connect(d.http).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: text/csv\r\nContent-Length: 100000\r\n\r\nphone\n030 1234567\n",
        d.http
    )
    .unwrap();
    let (closed, text) = read_until_closed(&mut s, Duration::from_secs(15));
    assert!(closed, "the stalled import was held: {text:?}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    // The campaign is free for the next import at once.
    let auth = format!("Bearer {ADMIN}");
    let (status, _, text) = http_request(
        d.http,
        "POST",
        &path,
        &[("Authorization", &auth), ("Content-Type", "text/csv")],
        b"phone\n030 7654321\n",
    );
    assert_eq!(status, 200, "{text}");
}

fn login(d: &Daemon, name: &str, password: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(d.http).unwrap();
    let body = json!({ "name": name, "password": password }).to_string();
    write!(
        s,
        "POST /api/v1/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        d.http,
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    (status, resp, started.elapsed())
}

fn create_user(d: &Daemon, name: &str, password: &str) -> (u16, Value) {
    let (status, _, text) = api_request(
        d.http,
        ADMIN,
        "POST",
        "/api/v1/users",
        Some(&json!({"name": name, "role": "operator", "password": password})),
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn unknown_users_take_as_long_as_real_ones_and_failures_are_limited_per_user() {
    let d = start("");
    assert_eq!(create_user(&d, "ann", "correct horse").0, 201);
    // Alternate so that load on the machine hits both alike; the fastest of each counts (three
    // each: ten attempts a minute may come from one address).
    let (mut known, mut unknown) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let (status, _, t) = login(&d, "ann", "wrong password");
        assert_eq!(status, 401);
        known = known.min(t);
        let (status, _, t) = login(&d, "nobody-here", "wrong password");
        assert_eq!(status, 401);
        unknown = unknown.min(t);
    }
    // A shortcut for unknown names would answer in a fraction of the password hash's time;
    // a busy machine stretches either by less than this factor.
    assert!(
        unknown * 3 > known,
        "an unknown user answered in {unknown:?}, a real one in {known:?}"
    );
    // Five failures for one name: the sixth attempt waits, whatever the password.
    for _ in 0..2 {
        assert_eq!(login(&d, "ann", "wrong password").0, 401);
    }
    let (status, resp, _) = login(&d, "ANN ", "correct horse");
    assert_eq!(status, 429, "{resp}");
    assert!(resp.to_ascii_lowercase().contains("retry-after:"), "{resp}");
}

#[test]
fn logins_from_one_source_are_limited() {
    let d = start("");
    assert_eq!(create_user(&d, "bob", "correct horse").0, 201);
    let (status, resp, _) = login(&d, "bob", "correct horse");
    assert_eq!(status, 201, "{resp}");
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(login(&d, &format!("guess{i}"), "x").0);
    }
    assert_eq!(&statuses[..9], &[401; 9], "{statuses:?}");
    assert_eq!(&statuses[9..], &[429; 3], "{statuses:?}");
    // Even the right password waits now; the answer says for how long.
    let (status, resp, _) = login(&d, "bob", "correct horse");
    assert_eq!(status, 429, "{resp}");
    let retry: u64 = resp
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

#[test]
fn user_names_are_normalised_and_look_alikes_refused() {
    let d = start("");
    let (status, v) = create_user(&d, "ADMIN", "correct horse");
    assert_eq!(status, 409, "{v}");
    let (status, v) = create_user(&d, "admin ", "correct horse");
    assert_eq!(status, 409, "{v}");
    // Cyrillic "а" in place of the Latin one.
    let (status, v) = create_user(&d, "\u{430}dmin", "correct horse");
    assert_eq!((status, v["field"].as_str()), (422, Some("name")), "{v}");
    let (status, v) = create_user(&d, " Carol ", "correct horse");
    assert_eq!((status, v["name"].as_str()), (201, Some("carol")), "{v}");
    assert_eq!(login(&d, "CAROL", "correct horse").0, 201);
}

#[test]
fn a_bad_query_parameter_is_named_not_its_value() {
    let d = start("");
    let (status, _, text) = api_request(
        d.http,
        ADMIN,
        "POST",
        "/api/v1/campaigns",
        Some(&json!({"name": "Q"})),
    );
    assert_eq!(status, 201, "{text}");
    let id = serde_json::from_str::<Value>(&text).unwrap()["id"].clone();
    for (query, field) in [
        ("order=sideways", "order"),
        ("limit=lots", "limit"),
        ("colour=red", "colour"),
    ] {
        let (status, _, text) = api_request(
            d.http,
            ADMIN,
            "GET",
            &format!("/api/v1/campaigns/{id}/contacts?{query}"),
            None,
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (status, v["field"].as_str()),
            (400, Some(field)),
            "{query}: {text}"
        );
    }
}
