//! Task flow over HTTP against the real binary: flow rules with and without delay, a wait
//! task, a webhook task delivering to a tiny local HTTP server that fails once (retry with
//! backoff), export files that rotate when downloaded, and the contact gauge.

mod common;

use common::{http_request, metric, Daemon};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BASE: &str = "[log]\nlevel = \"info\"\n[shutdown]\ndrain_timeout = \"3s\"\n";
const ADMIN: &str = "admin-token-for-tests-0123456789";

fn call(d: &Daemon, method: &str, path: &str, body: Option<Value>) -> (u16, String, String) {
    let auth = format!("Bearer {ADMIN}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    http_request(
        d.http,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

fn ok(d: &Daemon, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, _, text) = call(d, method, path, body);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Waits (up to 20 s) until `f` gives Some.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A one-thread HTTP server answering each request with the next status of `answers` (the
/// last one repeated), keeping the bodies it got.
fn hook_server(answers: Vec<u16>) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let bodies = got.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let mut s = stream.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            let body = loop {
                let n = s.read(&mut buf).unwrap();
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        break body.to_string();
                    }
                }
                if n == 0 {
                    break String::new();
                }
            };
            bodies.lock().unwrap().push(body);
            let code = answers[i.min(answers.len() - 1)];
            write!(
                s,
                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
        }
    });
    (addr, got)
}

#[test]
fn flow_rules_wait_webhook_and_export_rotation() {
    let d = Daemon::start_with(BASE, &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
    let (hook, bodies) = hook_server(vec![500, 200]);
    let c = ok(
        &d,
        "POST",
        "/api/v1/campaigns",
        Some(json!({"name": "Flow", "default_region": "DE"})),
    )["id"]
        .as_i64()
        .unwrap();
    let cp = format!("/api/v1/campaigns/{c}");
    let task = |body: Value| {
        ok(&d, "POST", &format!("{cp}/tasks"), Some(body))["id"]
            .as_i64()
            .unwrap()
    };
    let dial = task(json!({"name": "dial", "kind": "call"}));
    let results = task(json!({"name": "results", "kind": "export"}));
    let cool = task(
        json!({"name": "cool", "kind": "wait", "settings": {"seconds": 1},
                            "flow": [{"status": "success", "next_task": results}]}),
    );
    let crm = task(json!({"name": "crm", "kind": "webhook",
                           "settings": {"url": format!("http://{hook}/hook"), "retries": 2, "backoff_seconds": 1},
                           "flow": [{"status": "success", "next_task": results}]}));
    ok(
        &d,
        "PATCH",
        &format!("{cp}/tasks/{dial}"),
        Some(json!({"flow": [
            {"status": "success", "next_task": results},
            {"status": "declined", "next_task": cool, "delay_seconds": 1},
            {"status": "failed", "next_task": crm}
        ]})),
    );
    let auth = format!("Bearer {ADMIN}");
    let (status, _, r) = http_request(
        d.http,
        "POST",
        &format!("{cp}/contacts/import"),
        &[("Authorization", &auth), ("Content-Type", "text/csv")],
        b"name,phone\nAnn,030 1000001\nBob,030 1000002\nCid,030 1000003\nDan,030 1000004\n",
    );
    assert_eq!(status, 200, "{r}");
    let ids: Vec<i64> = ok(&d, "GET", &format!("{cp}/contacts"), None)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    let contact = |i: usize| ok(&d, "GET", &format!("{cp}/contacts/{}", ids[i]), None);
    let in_task = |i: usize, t: i64| {
        let c = contact(i);
        (c["task_id"] == t).then_some(c)
    };

    // No delay: the PATCH itself moves Ann on, into the export file.
    let ann = ok(
        &d,
        "PATCH",
        &format!("{cp}/contacts/{}", ids[0]),
        Some(json!({"status": "success", "detail": "sale"})),
    );
    assert_eq!(
        (
            ann["task_id"].as_i64(),
            ann["status"].as_str(),
            ann["detail"].as_str()
        ),
        (Some(results), Some("success"), Some("$exported")),
        "{ann}"
    );
    let exports = format!("{cp}/tasks/{results}/exports");
    let files = ok(&d, "GET", &exports, None);
    assert_eq!(files.as_array().unwrap().len(), 1, "{files}");
    assert_eq!(
        (files[0]["rows"].as_i64(), files[0]["new"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(files[0]["closed_at"], Value::Null);
    let first = files[0]["id"].as_i64().unwrap();

    // Downloading closes it: tab-separated, every field plus status and detail.
    let (status, kind, text) = call(&d, "GET", &format!("{exports}/{first}"), None);
    assert_eq!(status, 200, "{text}");
    assert!(kind.starts_with("text/tab-separated-values"), "{kind}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("contact_id\tphones\ttime_zone\tstatus\tdetail\tlast_result"),
        "{text}"
    );
    assert!(lines[0].ends_with("\tname\tphone"), "{text}");
    assert!(
        lines[1].contains("\tsuccess\tsale\t") && lines[1].contains("\tAnn\t030 1000001"),
        "{text}"
    );
    let files = ok(&d, "GET", &exports, None);
    assert_eq!(files[0]["new"], false);
    assert!(files[0]["closed_at"].is_string(), "{files}");

    // Declined: to the wait task after 1 s, out of it 1 s later, then exported.
    ok(
        &d,
        "PATCH",
        &format!("{cp}/contacts/{}", ids[1]),
        Some(json!({"status": "declined"})),
    );
    assert_eq!(contact(1)["task_id"], dial, "moved before its delay");
    eventually("Bob in the wait task", || in_task(1, cool));
    let bob = eventually("Bob exported", || in_task(1, results));
    let ops: Vec<String> = bob["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            format!(
                "{} {}",
                h["actor"].as_str().unwrap(),
                h["change"]["op"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        ops,
        ["admin update", "flow move", "flow wait", "flow move"],
        "{bob}"
    );

    // Failed: to the webhook, which fails once and succeeds on the retry.
    ok(
        &d,
        "PATCH",
        &format!("{cp}/contacts/{}", ids[2]),
        Some(json!({"status": "failed", "detail": "$busy"})),
    );
    let cid = eventually("Cid delivered and exported", || in_task(2, results));
    let got = bodies.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let posted: Value = serde_json::from_str(&got[1]).unwrap();
    assert_eq!(
        (posted["id"].as_i64(), posted["fields"]["name"].as_str()),
        (Some(ids[2]), Some("Cid"))
    );
    let hooks: Vec<&Value> = cid["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["change"]["op"] == "webhook")
        .collect();
    assert_eq!(hooks.len(), 2, "{cid}");
    assert!(
        hooks[0]["change"]["error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{cid}"
    );
    assert_eq!(hooks[1]["change"]["detail"], "$delivered");

    // The move API reaches the export task too.
    ok(
        &d,
        "POST",
        &format!("{cp}/contacts/move"),
        Some(json!({"ids": [ids[3]], "task_id": results})),
    );
    let files = ok(&d, "GET", &exports, None);
    assert_eq!(files.as_array().unwrap().len(), 2, "{files}");
    let second = files[0]["id"].as_i64().unwrap();
    assert_eq!(
        (files[0]["rows"].as_i64(), files[0]["new"].as_bool()),
        (Some(3), Some(true))
    );
    let (_, _, text) = call(&d, "GET", &format!("{exports}/{second}"), None);
    let names: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(9).unwrap())
        .collect();
    assert_eq!(names, ["Bob", "Cid", "Dan"], "{text}");
    // Status and detail as the contact left its last task.
    let states: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').skip(3).take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        states,
        ["success $waited", "success $delivered", "open $none"],
        "{text}"
    );
    // The old file is still there, unchanged.
    let (status, _, again) = call(&d, "GET", &format!("{exports}/{first}"), None);
    assert_eq!((status, again.lines().count()), (200, 2), "{again}");
    assert!(d
        .dir
        .path()
        .join(format!(
            "state/exports/campaign-{c}-task-{results}-file-{first}.tsv"
        ))
        .is_file());
    // Not an export task: 404.
    assert_eq!(
        call(&d, "GET", &format!("{cp}/tasks/{dial}/exports"), None).0,
        404
    );

    // The gauge counts the four exported contacts.
    eventually("dialerd_contacts", || {
        let (_, text) = d.get("/metrics");
        let series =
            format!("dialerd_contacts{{campaign=\"{c}\",status=\"success\",task=\"{results}\"}}");
        (metric(&text, &series) == Some(4.0)).then_some(())
    });
}
