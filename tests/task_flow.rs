//! Task flow over HTTP against the real binary: flow rules with and without delay, a wait
//! task, a webhook task delivering to a tiny local HTTP server that fails once (retry with
//! backoff), webhooks on a kept-alive connection with the answer kept and redirects not
//! followed, export files that rotate when downloaded, and the contact gauge.

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
    common::api_request(d.http, ADMIN, method, path, body.as_ref())
}

fn ok(d: &Daemon, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, _, text) = call(d, method, path, body);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A new campaign (numbers read as German): its id and path, `/api/v1/campaigns/ID`.
fn new_campaign(d: &Daemon, name: &str) -> (i64, String) {
    let c = ok(
        d,
        "POST",
        "/api/v1/campaigns",
        Some(json!({"name": name, "default_region": "DE"})),
    )["id"]
        .as_i64()
        .unwrap();
    (c, format!("/api/v1/campaigns/{c}"))
}

/// A new task in the campaign at `cp`: its id.
fn new_task(d: &Daemon, cp: &str, body: Value) -> i64 {
    ok(d, "POST", &format!("{cp}/tasks"), Some(body))["id"]
        .as_i64()
        .unwrap()
}

/// Imports `csv` with `query` (e.g. `?task=3`, or empty) into the campaign at `cp`; the ids of
/// its first page of contacts.
fn import(d: &Daemon, cp: &str, query: &str, csv: &[u8]) -> Vec<i64> {
    let auth = format!("Bearer {ADMIN}");
    let (status, _, r) = http_request(
        d.http,
        "POST",
        &format!("{cp}/contacts/import{query}"),
        &[("Authorization", &auth), ("Content-Type", "text/csv")],
        csv,
    );
    assert_eq!(status, 200, "{r}");
    ok(d, "GET", &format!("{cp}/contacts"), None)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect()
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

/// One HTTP request, head and body (as long as its Content-Length says), or why none came.
fn read_request(s: &mut impl Read) -> Result<String, String> {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Err("closed before a request".to_string()),
            Ok(n) => req.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
        let text = String::from_utf8_lossy(&req).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return Ok(text);
            }
        }
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
            let body = read_request(&mut s)
                .ok()
                .and_then(|r| Some(r.split_once("\r\n\r\n")?.1.to_string()))
                .unwrap_or_default();
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

both_stores! {
    fn flow_rules_wait_webhook_and_export_rotation() {
        let d = Daemon::start_with(BASE, &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
        let (hook, bodies) = hook_server(vec![500, 200]);
        let (c, cp) = new_campaign(&d, "Flow");
        let task = |body: Value| new_task(&d, &cp, body);
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
        let ids = import(
            &d,
            &cp,
            "",
            b"name,phone\nAnn,030 1000001\nBob,030 1000002\nCid,030 1000003\nDan,030 1000004\n",
        );
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
}

/// Runs `openssl` in `dir`, failing the test with its stderr.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command is needed to make test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `name` and a certificate for `localhost` it signed, in `dir`:
/// `{name}-ca.pem`, `{name}-leaf.pem`, `{name}-leaf.key`.
fn make_certs(dir: &std::path::Path, name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let (ca_key, ca) = (format!("{name}-ca.key"), format!("{name}-ca.pem"));
    let (key, csr, leaf) = (
        format!("{name}-leaf.key"),
        format!("{name}-leaf.csr"),
        format!("{name}-leaf.pem"),
    );
    let subject = format!("/CN=dialerd test CA {name}");
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        &subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args);
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
    openssl(dir, &args);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &leaf,
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

/// What a TLS hook server saw: requests (SNI, request head and body) and failed handshakes.
#[derive(Default)]
struct TlsSeen {
    requests: Vec<(Option<String>, String)>,
    failed_handshakes: Vec<String>,
}

/// A one-thread HTTPS server on 127.0.0.1 with the certificate `cert` (PEM, key `key`),
/// answering 200 to every request.
fn tls_hook_server(cert: &std::path::Path, key: &std::path::Path) -> (u16, Arc<Mutex<TlsSeen>>) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(TlsSeen::default()));
    let out = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let tcp = tcp.unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut s = rustls::StreamOwned::new(conn, tcp);
            match read_request(&mut s) {
                Ok(text) => {
                    let sni = s.conn.server_name().map(str::to_string);
                    out.lock().unwrap().requests.push((sni, text));
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    s.conn.send_close_notify();
                    let _ = s.flush();
                }
                Err(e) => out.lock().unwrap().failed_handshakes.push(e),
            }
        }
    });
    (port, seen)
}

both_stores! {
    /// HTTPS webhooks: a server whose certificate the configured extra CA signed gets the POST
    /// (with SNI) and the contact moves on; a server with a certificate from an unknown CA never
    /// gets the body, the delivery fails with the reason in the contact's history.
    fn https_webhooks_verify_the_server_certificate() {
        let certs = tempfile::tempdir().unwrap();
        make_certs(certs.path(), "trusted");
        make_certs(certs.path(), "stranger");
        let p = |f: &str| certs.path().join(f);
        let (good_port, good) = tls_hook_server(&p("trusted-leaf.pem"), &p("trusted-leaf.key"));
        let (bad_port, bad) = tls_hook_server(&p("stranger-leaf.pem"), &p("stranger-leaf.key"));
        let config = format!(
            "{BASE}[flow]\nwebhook_ca_file = {:?}\n",
            p("trusted-ca.pem").display().to_string()
        );
        let d = Daemon::start_with(&config, &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
        let (_, cp) = new_campaign(&d, "Tls");
        let task = |body: Value| new_task(&d, &cp, body);
        let dial = task(json!({"name": "dial", "kind": "call"}));
        let done = task(json!({"name": "done", "kind": "call"}));
        let secure = task(json!({"name": "secure", "kind": "webhook",
            "settings": {"url": format!("https://localhost:{good_port}/crm?x=1"), "retries": 0, "backoff_seconds": 1},
            "flow": [{"status": "success", "next_task": done}]}));
        let stranger = task(json!({"name": "stranger", "kind": "webhook",
            "settings": {"url": format!("https://localhost:{bad_port}/crm"), "retries": 1, "backoff_seconds": 1},
            "flow": [{"status": "success", "next_task": done}]}));
        let ids = import(
            &d,
            &cp,
            &format!("?task={dial}"),
            b"name,phone\nAnn,030 2000001\nBob,030 2000002\n",
        );
        let contact = |i: usize| ok(&d, "GET", &format!("{cp}/contacts/{}", ids[i]), None);
        for (i, to) in [(0, secure), (1, stranger)] {
            ok(
                &d,
                "POST",
                &format!("{cp}/contacts/move"),
                Some(json!({"ids": [ids[i]], "task_id": to})),
            );
        }

        // Trusted: delivered over TLS with SNI, moved on by the flow rule.
        let ann = eventually("Ann delivered", || {
            let c = contact(0);
            (c["task_id"] == done).then_some(c)
        });
        let got = std::mem::take(&mut good.lock().unwrap().requests);
        assert_eq!(got.len(), 1, "{got:?}");
        let (sni, request) = &got[0];
        assert_eq!(sni.as_deref(), Some("localhost"));
        assert!(
            request.starts_with("POST /crm?x=1 HTTP/1.1\r\n"),
            "{request}"
        );
        let (_, body) = request.split_once("\r\n\r\n").unwrap();
        let posted: Value = serde_json::from_str(body).unwrap();
        assert_eq!(posted["fields"]["name"], "Ann", "{posted}");
        let delivered = ann["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["change"]["op"] == "webhook")
            .cloned()
            .unwrap_or_else(|| panic!("no webhook entry: {ann}"));
        assert_eq!(delivered["change"]["detail"], "$delivered", "{ann}");

        // Untrusted: two tries (one retry), then failed in the webhook task, never moved on.
        let bob = eventually("Bob's webhook failed", || {
            let c = contact(1);
            (c["status"] == "failed").then_some(c)
        });
        assert_eq!(
            (bob["task_id"].as_i64(), bob["detail"].as_str()),
            (Some(stranger), Some("$webhook_failed")),
            "{bob}"
        );
        let errors: Vec<String> = bob["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["change"]["op"] == "webhook")
            .map(|h| {
                h["change"]["error"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(errors.len(), 2, "{bob}");
        for e in &errors {
            assert!(
                e.contains("TLS with localhost failed") && e.contains("certificate"),
                "{e}"
            );
        }
        let seen = bad.lock().unwrap();
        assert!(seen.requests.is_empty(), "{:?}", seen.requests);
        assert_eq!(
            seen.failed_handshakes.len(),
            2,
            "{:?}",
            seen.failed_handshakes
        );
    }
}

/// A CONNECT proxy on 127.0.0.1 recording each request line, then joining the client to the
/// target it names.
fn connect_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut client = stream.unwrap();
            let Ok(head) = read_request(&mut client) else {
                continue;
            };
            let line = head.lines().next().unwrap_or_default().to_string();
            out.lock().unwrap().push(line.clone());
            let target = line.split(' ').nth(1).unwrap_or_default().to_string();
            let Ok(server) = std::net::TcpStream::connect(&target) else {
                let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                continue;
            };
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .unwrap();
            let (mut up_from, mut up_to) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut up_from, &mut up_to);
                let _ = up_to.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut down_to, mut down_from) = (client, server);
                let _ = std::io::copy(&mut down_from, &mut down_to);
                let _ = down_to.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, seen)
}

both_stores! {
    /// With `HTTPS_PROXY` set, an HTTPS webhook goes through the proxy in a CONNECT tunnel, the
    /// server's certificate still verified end to end (SNI and all).
    fn https_webhooks_go_through_the_proxy_named_in_the_environment() {
        let certs = tempfile::tempdir().unwrap();
        make_certs(certs.path(), "trusted");
        let p = |f: &str| certs.path().join(f);
        let (port, hook) = tls_hook_server(&p("trusted-leaf.pem"), &p("trusted-leaf.key"));
        let (proxy, tunnels) = connect_proxy();
        let config = format!(
            "{BASE}[flow]\nwebhook_ca_file = {:?}\n",
            p("trusted-ca.pem").display().to_string()
        );
        let proxy_url = format!("http://{proxy}");
        let d = Daemon::start_with(
            &config,
            &[("DIALERD_ADMIN_TOKEN", ADMIN), ("HTTPS_PROXY", &proxy_url)],
        );
        let (_, cp) = new_campaign(&d, "Proxied");
        let task = |body: Value| new_task(&d, &cp, body);
        let dial = task(json!({"name": "dial", "kind": "call"}));
        let done = task(json!({"name": "done", "kind": "call"}));
        let secure = task(json!({"name": "secure", "kind": "webhook",
            "settings": {"url": format!("https://localhost:{port}/crm"), "retries": 0, "backoff_seconds": 1},
            "flow": [{"status": "success", "next_task": done}]}));
        let ids = import(
            &d,
            &cp,
            &format!("?task={dial}"),
            b"name,phone\nAnn,030 2000001\n",
        );
        ok(
            &d,
            "POST",
            &format!("{cp}/contacts/move"),
            Some(json!({"ids": [ids[0]], "task_id": secure})),
        );
        let ann = eventually("Ann delivered through the proxy", || {
            let c = ok(&d, "GET", &format!("{cp}/contacts/{}", ids[0]), None);
            (c["task_id"] == done || c["status"] == "failed").then_some(c)
        });
        assert_eq!(ann["task_id"], done, "{ann}");
        assert_eq!(
            *tunnels.lock().unwrap(),
            [format!("CONNECT localhost:{port} HTTP/1.1")]
        );
        let got = &hook.lock().unwrap().requests;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0.as_deref(), Some("localhost"));
        assert!(
            got[0].1.starts_with("POST /crm HTTP/1.1\r\n"),
            "{}",
            got[0].1
        );
    }
}

/// The answer body of the keep-alive hook server for `path`: longer than the KiB kept.
fn crm_answer(path: &str) -> String {
    format!("accepted {path}: {}", "0123456789".repeat(150))
}

/// Requests a hook server saw: (connection number, request line).
type SeenLines = Arc<Mutex<Vec<(usize, String)>>>;

/// An HTTP server that keeps connections open (a thread each): `/crm...` answers 200 with
/// [`crm_answer`], anything else 302 to `/elsewhere`. Records (connection number, request
/// line) for each request.
fn keep_alive_hook_server() -> (SocketAddr, SeenLines) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = SeenLines::default();
    let out = seen.clone();
    std::thread::spawn(move || {
        for (conn, stream) in listener.incoming().enumerate() {
            let mut s = stream.unwrap();
            let out = out.clone();
            std::thread::spawn(move || {
                while let Ok(req) = read_request(&mut s) {
                    let line = req.lines().next().unwrap_or_default().to_string();
                    out.lock().unwrap().push((conn, line.clone()));
                    let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                    let answer = if path.starts_with("/crm") {
                        let body = crm_answer(&path);
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        format!(
                            "HTTP/1.1 302 Found\r\nLocation: http://{addr}/elsewhere\r\n\
                             Content-Length: 10\r\n\r\nmoved away"
                        )
                    };
                    if s.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

both_stores! {
    /// Webhooks reuse one kept-alive connection per host, keep the first KiB of the answer in
    /// the contact's history, and do not follow redirects: a 3xx fails the delivery with its
    /// Location in the history, and the target of the redirect never gets a request.
    fn webhooks_keep_connections_alive_keep_the_answer_and_do_not_follow_redirects() {
        let (addr, seen) = keep_alive_hook_server();
        let d = Daemon::start_with(BASE, &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
        let (_, cp) = new_campaign(&d, "Keep-alive");
        let task = |body: Value| new_task(&d, &cp, body);
        let dial = task(json!({"name": "dial", "kind": "call"}));
        let done = task(json!({"name": "done", "kind": "call"}));
        let crm = task(json!({"name": "crm", "kind": "webhook",
            "settings": {"url": format!("http://{addr}/crm?from=dialerd"), "retries": 0, "backoff_seconds": 1},
            "flow": [{"status": "success", "next_task": done}]}));
        let moved = task(json!({"name": "moved", "kind": "webhook",
            "settings": {"url": format!("http://{addr}/old"), "retries": 0, "backoff_seconds": 1},
            "flow": [{"status": "success", "next_task": done}]}));
        let ids = import(
            &d,
            &cp,
            &format!("?task={dial}"),
            b"name,phone\nAnn,030 2000001\nBob,030 2000002\nCid,030 2000003\nDee,030 2000004\n",
        );
        assert_eq!(ids.len(), 4);
        let contact = |id: i64| ok(&d, "GET", &format!("{cp}/contacts/{id}"), None);
        let webhook_entries = |c: &Value| -> Vec<Value> {
            c["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["change"]["op"] == "webhook")
                .map(|h| h["change"].clone())
                .collect()
        };
        ok(
            &d,
            "POST",
            &format!("{cp}/contacts/move"),
            Some(json!({"ids": &ids[..3], "task_id": crm})),
        );
        let delivered: Vec<Value> = ids[..3]
            .iter()
            .map(|&id| {
                eventually("delivered", || {
                    let c = contact(id);
                    (c["task_id"] == done).then_some(c)
                })
            })
            .collect();
        ok(
            &d,
            "POST",
            &format!("{cp}/contacts/move"),
            Some(json!({"ids": [ids[3]], "task_id": moved})),
        );
        let dee = eventually("Dee's redirect failed", || {
            let c = contact(ids[3]);
            (c["status"] == "failed").then_some(c)
        });

        // The first KiB of the answer, cut there.
        let want: String = crm_answer("/crm?from=dialerd").chars().take(1024).collect();
        for c in &delivered {
            let hooks = webhook_entries(c);
            assert_eq!(hooks.len(), 1, "{c}");
            assert_eq!(hooks[0]["detail"], "$delivered", "{c}");
            assert_eq!(hooks[0]["code"], 200, "{c}");
            assert_eq!(hooks[0]["body"].as_str(), Some(want.as_str()), "{c}");
        }

        // Not followed: failed at once (no retry configured) with the Location named.
        assert_eq!(
            (dee["task_id"].as_i64(), dee["detail"].as_str()),
            (Some(moved), Some("$webhook_failed")),
            "{dee}"
        );
        let hooks = webhook_entries(&dee);
        assert_eq!(hooks.len(), 1, "{dee}");
        let error = hooks[0]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("302")
                && error.contains(&format!("http://{addr}/elsewhere"))
                && error.contains("not followed")
                && error.contains("moved away"),
            "{error}"
        );

        // One connection carried all four POSTs; nothing went to the redirect's target.
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(seen.iter().all(|(conn, _)| *conn == 0), "{seen:?}");
        assert!(
            seen.iter()
                .all(|(_, line)| line.starts_with("POST /crm?from=dialerd ")
                    || line.starts_with("POST /old ")),
            "{seen:?}"
        );
    }
}

both_stores! {
    /// A large export (5,000 contacts) downloads whole: the Content-Length the daemon announces
    /// is the length of the body, and every contact is in it once, in order. Moves record one
    /// history entry per contact, refuse a list naming an unknown contact whole, and move a
    /// contact listed twice once.
    fn a_large_export_downloads_intact() {
        let d = Daemon::start_with(BASE, &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
        let (c, cp) = new_campaign(&d, "Big export");
        let dial = new_task(&d, &cp, json!({"name": "dial", "kind": "call"}));
        let results = new_task(
            &d,
            &cp,
            json!({"name": "results", "kind": "export", "settings": {"format": "csv"}}),
        );
        let n = 5000;
        let mut csv = String::from("n,note,phone\n");
        for i in 0..n {
            csv.push_str(&format!(
                "{i},\"row {i}, with a comma and some padding text\",0151 {:08}\n",
                30_000_000 + i
            ));
        }
        import(&d, &cp, &format!("?task={dial}"), csv.as_bytes());
        let auth = format!("Bearer {ADMIN}");
        let moved = ok(
            &d,
            "POST",
            &format!("{cp}/contacts/move"),
            Some(json!({"filter": {"task": dial}, "task_id": results})),
        );
        assert_eq!(moved["moved"], n);
        let exports = format!("{cp}/tasks/{results}/exports");
        let files = ok(&d, "GET", &exports, None);
        assert_eq!(files[0]["rows"], n, "{files}");
        let file = files[0]["id"].as_i64().unwrap();

        // A raw request, so the announced length can be compared with what came.
        let mut s = std::net::TcpStream::connect(d.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "GET {exports}/{file} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let body = &raw[split + 4..];
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .unwrap_or_else(|| panic!("no Content-Length: {head}"))
            .trim()
            .parse()
            .unwrap();
        assert!(!head.contains("transfer-encoding"), "{head}");
        assert_eq!(length, body.len(), "{head}");
        assert!(length > 500_000, "{length}");
        let on_disk = d.dir.path().join(format!(
            "state/exports/campaign-{c}-task-{results}-file-{file}.csv"
        ));
        assert!(
            body == std::fs::read(&on_disk).unwrap().as_slice(),
            "the body is not the file"
        );
        let mut reader = csv::Reader::from_reader(body);
        let headers = reader.headers().unwrap().clone();
        let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let (n_col, note_col) = (col("n"), col("note"));
        let mut count = 0;
        for (i, record) in reader.records().enumerate() {
            let record = record.unwrap();
            assert_eq!(record[n_col], i.to_string());
            assert_eq!(
                record[note_col],
                format!("row {i}, with a comma and some padding text")
            );
            count += 1;
        }
        assert_eq!(count, n);

        // Moves go a batch at a time, each contact with its own history entry.
        let ids: Vec<i64> = ok(&d, "GET", &format!("{cp}/contacts?limit=2"), None)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect();
        let moves = |id: i64| -> Vec<Value> {
            ok(&d, "GET", &format!("{cp}/contacts/{id}"), None)["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["change"]["op"] == "move")
                .map(|h| h["change"].clone())
                .collect()
        };
        assert_eq!(
            moves(ids[1]),
            [json!({"op": "move", "from_task": dial, "to_task": results})]
        );
        // A list naming a contact that does not exist moves none of them.
        let (status, _, text) = call(
            &d,
            "POST",
            &format!("{cp}/contacts/move"),
            Some(json!({"ids": [ids[0], 999_999], "task_id": dial})),
        );
        assert_eq!(status, 404, "{text}");
        assert!(text.contains("999999"), "{text}");
        assert_eq!(moves(ids[0]).len(), 1);
        // One listed twice moves once.
        let moved = ok(
            &d,
            "POST",
            &format!("{cp}/contacts/move"),
            Some(json!({"ids": [ids[0], ids[0], ids[1]], "task_id": dial})),
        );
        assert_eq!(moved["moved"], 2);
        assert_eq!(moves(ids[0]).len(), 2);
        let back = ok(&d, "GET", &format!("{cp}/contacts/{}", ids[0]), None);
        assert_eq!(
            (back["task_id"].as_i64(), back["status"].as_str()),
            (Some(dial), Some("open")),
            "{back}"
        );
    }
}

both_stores! {
    /// A bulk status edit over more than one batch runs the flow for every contact: 1,200 calls
    /// marked `success` all go through a one-second wait task to the export task, each once, with
    /// one entry per step.
    fn a_bulk_status_edit_moves_every_contact_on() {
        let d = Daemon::start_with(BASE, &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
        let (_, cp) = new_campaign(&d, "Bulk flow");
        let results = new_task(
            &d,
            &cp,
            json!({"name": "results", "kind": "export", "settings": {"format": "csv"}}),
        );
        let pause = new_task(
            &d,
            &cp,
            json!({"name": "pause", "kind": "wait", "settings": {"seconds": 1},
                   "flow": [{"status": "success", "next_task": results}]}),
        );
        let dial = new_task(
            &d,
            &cp,
            json!({"name": "dial", "kind": "call", "flow": [{"status": "success", "next_task": pause}]}),
        );
        let n = 1200;
        let mut csv = String::from("n,phone\n");
        for i in 0..n {
            csv.push_str(&format!("{i},0151 {:08}\n", 50_000_000 + i));
        }
        import(&d, &cp, &format!("?task={dial}"), csv.as_bytes());
        let r = ok(
            &d,
            "POST",
            &format!("{cp}/contacts/bulk"),
            Some(json!({"filter": {}, "field": "status", "value": "success"})),
        );
        assert_eq!(r["changed"], n);
        let files = eventually("every contact in the export file", || {
            let files = ok(&d, "GET", &format!("{cp}/tasks/{results}/exports"), None);
            (files[0]["rows"] == n).then_some(files)
        });
        assert_eq!(files.as_array().unwrap().len(), 1, "{files}");
        let moved: Vec<Value> = ok(&d, "GET", &format!("{cp}/contacts?limit=1000"), None)["items"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(moved.len(), 1000);
        for c in &moved {
            assert_eq!(
                (
                    c["task_id"].as_i64(),
                    c["status"].as_str(),
                    c["detail"].as_str()
                ),
                (Some(results), Some("success"), Some("$exported")),
                "{c}"
            );
        }
        let last = ok(
            &d,
            "GET",
            &format!("{cp}/contacts/{}", moved[999]["id"]),
            None,
        );
        let ops: Vec<&str> = last["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["change"]["op"].as_str().unwrap())
            .collect();
        assert_eq!(ops, ["bulk_edit", "move", "wait", "move"], "{last}");
    }
}

both_stores! {
    /// A download that cannot write its file (here `exports` is a plain file, as a full or
    /// read-only disk would be) is a 500 and loses nothing: the file stays closed with its rows,
    /// and once the fault is gone the next download writes and sends every row.
    fn an_export_that_cannot_be_written_is_written_on_the_next_download() {
        let d = Daemon::start_with(BASE, &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
        let (_, cp) = new_campaign(&d, "Full disk");
        let dial = new_task(&d, &cp, json!({"name": "dial", "kind": "call"}));
        let results = new_task(&d, &cp, json!({"name": "results", "kind": "export"}));
        import(
            &d,
            &cp,
            &format!("?task={dial}"),
            b"name,phone\nAnn,030 1234567\nBob,030 1234568\n",
        );
        ok(
            &d,
            "POST",
            &format!("{cp}/contacts/move"),
            Some(json!({"filter": {}, "task_id": results})),
        );
        let exports = format!("{cp}/tasks/{results}/exports");
        let file = ok(&d, "GET", &exports, None)[0]["id"].as_i64().unwrap();
        let blocker = d.dir.path().join("state/exports");
        std::fs::write(&blocker, "not a directory").unwrap();
        let (status, _, text) = call(&d, "GET", &format!("{exports}/{file}"), None);
        assert_eq!(status, 500, "{text}");
        assert!(text.contains("see the daemon's log"), "{text}");
        let files = ok(&d, "GET", &exports, None);
        assert_eq!(files[0]["rows"], 2, "{files}");
        assert!(files[0]["closed_at"].is_string(), "{files}");

        std::fs::remove_file(&blocker).unwrap();
        let (status, _, text) = call(&d, "GET", &format!("{exports}/{file}"), None);
        assert_eq!(status, 200, "{text}");
        let names: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split('\t').nth(9).unwrap())
            .collect();
        assert_eq!(names, ["Ann", "Bob"], "{text}");
    }
}
