//! Node names: two daemons of one `node.name` on one store would share its leases and
//! "recover" each other's calls, so the second refuses to start, naming the name and the first
//! one's last heartbeat; a name is free again once its holder stopped cleanly (at once) or was
//! killed (after the expiry, or at once for its successor on the same state directory).

mod common;

use common::api::{Api, ADMIN};
use common::pg::{self, Backend};
use common::Daemon;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const CONFIG: &str = "";

fn start(dir: tempfile::TempDir, name: &str) -> Daemon {
    Daemon::start_in(
        dir,
        CONFIG,
        &[
            ("DIALERD_ADMIN_TOKEN", ADMIN),
            ("DIALERD__NODE__NAME", name),
        ],
    )
}

/// A daemon in `dir` named `name` that must refuse to start: its stderr.
fn refused(dir: &Path, name: &str) -> String {
    let (status, stderr) = Daemon::refused(
        dir,
        CONFIG,
        &[
            ("DIALERD_ADMIN_TOKEN", ADMIN),
            ("DIALERD__NODE__NAME", name),
        ],
        Duration::from_secs(20),
    );
    assert!(!status.success(), "{status}: {stderr}");
    // It stopped before its SIP and HTTP listeners were up: nothing was dialled.
    assert!(!stderr.contains("sip listening"), "{stderr}");
    stderr
}

/// A fresh directory whose daemon uses the database `url`.
fn dir_on(url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("store.url"), url).unwrap();
    dir
}

/// The nodes that are up, as `d`'s API lists them: name → the node.
fn nodes(d: &Daemon) -> std::collections::BTreeMap<String, Value> {
    let v = Api::new(d, ADMIN).ok("GET", "/api/v1/nodes", None);
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap().to_string(), n.clone()))
        .collect()
}

#[test]
fn a_second_daemon_of_one_name_refuses_to_start_until_the_first_has_ended() {
    pg::set(Backend::Postgres);
    let url = pg::database();
    let mut first = start(dir_on(&url), "dup");
    let up = nodes(&first);
    let instance = up["dup"]["instance"].as_str().unwrap().to_string();
    assert_eq!(up["dup"]["tasks"], serde_json::json!([]), "{up:?}");
    assert!(up["dup"]["heartbeat_at"].is_string(), "{up:?}");

    // Same name, another machine (state directory): refused, naming the name, the holder and
    // its last heartbeat.
    let other = dir_on(&url);
    let stderr = refused(other.path(), "dup");
    println!("{stderr}");
    assert!(
        stderr.contains(&format!(
            "node.name \"dup\" is held by another running dialerd (instance {instance}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("last heartbeat 20"), "{stderr}");
    // The first is untouched: same instance, still renewing.
    assert_eq!(nodes(&first)["dup"]["instance"], instance.as_str());

    // Another name is fine, and listed as up without tasks; a clean stop frees it at once.
    let mut second = start(dir_on(&url), "solo");
    assert!(nodes(&first).contains_key("solo"));
    second.signal(libc::SIGTERM);
    assert!(second.wait_exit(Duration::from_secs(10)).unwrap().success());
    assert!(!nodes(&first).contains_key("solo"));
    let third = start(dir_on(&url), "solo");
    drop(third);

    // Killed: its row stays until it expires, so another machine is still refused ...
    first.signal(libc::SIGKILL);
    let killed = Instant::now();
    assert!(first.wait_exit(Duration::from_secs(5)).is_some());
    refused(other.path(), "dup");
    // ... but its successor on its own state directory takes the name at once.
    let dir = std::mem::replace(&mut first.dir, tempfile::tempdir().unwrap());
    drop(first);
    let mut again = start(dir, "dup");
    let after = nodes(&again)["dup"]["instance"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(after, instance);
    println!(
        "restarted on its state directory {:?} after the SIGKILL",
        killed.elapsed()
    );

    // Killed again: once its row has expired, the other machine takes the name.
    again.signal(libc::SIGKILL);
    let killed = Instant::now();
    assert!(again.wait_exit(Duration::from_secs(5)).is_some());
    std::thread::sleep(
        (dialerd::node::EXPIRY + Duration::from_millis(200)).saturating_sub(killed.elapsed()),
    );
    let taken = start(other, "dup");
    let up = nodes(&taken);
    assert_ne!(up["dup"]["instance"], after.as_str(), "{up:?}");
    println!(
        "taken by another machine {:?} after the SIGKILL",
        killed.elapsed()
    );
}

#[test]
fn a_second_daemon_on_one_state_directory_refuses_and_a_killed_ones_successor_starts_at_once() {
    // SQLite, the single-node default.
    let mut d = start(tempfile::tempdir().unwrap(), "solo");
    let instance = nodes(&d)["solo"]["instance"].as_str().unwrap().to_string();
    let stderr = refused(d.dir.path(), "solo");
    assert!(
        stderr.contains("is in use by another running dialerd (node.lock is locked)"),
        "{stderr}"
    );
    d.signal(libc::SIGKILL);
    assert!(d.wait_exit(Duration::from_secs(5)).is_some());
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    drop(d);
    let started = Instant::now();
    let d = start(dir, "solo");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_ne!(nodes(&d)["solo"]["instance"], instance.as_str());
}

/// CSV arriving as the test sends it: a read waits for the next chunk, and ends when the
/// sender is dropped (an upload in progress, as the import sees it).
struct Upload(std::sync::mpsc::Receiver<Vec<u8>>, Vec<u8>);

impl std::io::Read for Upload {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.1.is_empty() {
            match self.0.recv() {
                Ok(chunk) => self.1 = chunk,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.1.len());
        buf[..n].copy_from_slice(&self.1[..n]);
        self.1.drain(..n);
        Ok(n)
    }
}

crate::both_stores_async! {
    async fn a_starting_node_marks_interrupted_only_imports_no_running_node_has() {
        use dialerd::store::imports::{ImportMode, ImportOptions};
        let dir = tempfile::tempdir().unwrap();
        let store = common::open_store(dir.path()).await;
        // One campaign each: a campaign runs one import at a time.
        let mut campaigns = Vec::new();
        for name in ["on a", "on b", "on none"] {
            let spec = serde_json::json!({"name": name, "default_region": "DE"});
            let c = store.create_campaign(&serde_json::from_value(spec).unwrap()).await;
            let c = c.unwrap().id;
            let task = serde_json::json!({"name": "dial", "kind": "call"});
            let task = store.create_task(c, serde_json::from_value(task).unwrap()).await;
            task.unwrap();
            campaigns.push(c);
        }
        let now = dialerd::store::now_ms();
        // Node a is up; node b's row expired a minute ago (it died).
        store.claim_node("a", "ia", "", None, now, 15_000).await.unwrap();
        store.claim_node("b", "ib", "", None, now - 60_000, 15_000).await.unwrap();
        // An import in progress on a, one on b, one from a store of no node.
        let mut uploads = Vec::new();
        for (node, c) in ["a", "b", ""].into_iter().zip(campaigns.clone()) {
            let s = match node {
                "" => store.clone(),
                n => store.clone().with_node(n),
            };
            let (tx, rx) = std::sync::mpsc::channel();
            // A first batch, committed with the import's row; the rest never comes.
            let mut csv = String::from("phone\n");
            for n in 0..dialerd::store::imports::BATCH_ROWS + 1 {
                csv.push_str(&format!("030 {:08}\n", 10_000_000 + n));
            }
            tx.send(csv.into_bytes()).unwrap();
            let options = ImportOptions {
                mode: ImportMode::Append,
                header: true,
                phone_columns: vec!["phone".into()],
                task_id: None,
                user: "test".into(),
            };
            let task = tokio::spawn(async move { s.import_csv(c, options, Upload(rx, vec![])).await });
            uploads.push((tx, task));
        }
        let states = || async {
            let mut states = Vec::new();
            for c in &campaigns {
                let imports = store.imports(*c).await.unwrap();
                states.push(imports.first().map(|i| i.state.clone()).unwrap_or_default());
            }
            states
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while states().await != ["running", "running", "running"] {
            assert!(Instant::now() < deadline, "{:?}", states().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A node's heartbeat: only the dead node's import ends.
        assert_eq!(store.interrupted_imports(None, now).await.unwrap(), 1);
        assert_eq!(states().await, ["running", "interrupted", "running"]);
        // Node c starts: the import of no node too, never a's.
        assert_eq!(store.interrupted_imports(Some("c"), now).await.unwrap(), 1);
        assert_eq!(states().await, ["running", "interrupted", "interrupted"]);
        // Node a restarts: its earlier run's import.
        assert_eq!(store.interrupted_imports(Some("a"), now).await.unwrap(), 1);
        assert_eq!(states().await, ["interrupted", "interrupted", "interrupted"]);
        for (tx, task) in uploads {
            drop(tx);
            task.abort();
        }
    }
}

/// Node `r1` with an `[[agents]]` account `desk1`, once it has published its SIP address:
/// the daemon and that address's SIP URI.
fn published_node() -> (Daemon, String) {
    let d = Daemon::start_with(
        "[sip]\ndigest_algorithms = [\"MD5\"]\n\
         [[agents]]\nusername = \"desk1\"\npassword = \"sipp-agent-secret-1\"\n",
        &[
            ("DIALERD_ADMIN_TOKEN", ADMIN),
            ("DIALERD__NODE__NAME", "r1"),
        ],
    );
    let want = format!("sip:{}", d.sip);
    // Published once the SIP listeners are bound (the port was chosen by the system).
    let deadline = Instant::now() + Duration::from_secs(5);
    while nodes(&d)["r1"]["sip_uri"] != want.as_str() {
        assert!(Instant::now() < deadline, "{:?}", nodes(&d));
        std::thread::sleep(Duration::from_millis(50));
    }
    (d, want)
}

both_stores! {
    /// Each node publishes its SIP address, and `GET /api/v1/nodes/route` answers it as plain
    /// text for the phones of the agents it serves (what Kamailio's http_client reads).
    fn a_node_publishes_its_sip_address_and_the_route_names_it_for_agents() {
        let (d, want) = published_node();
        let admin = Api::new(&d, ADMIN);
        let (_, task) = common::api::campaign(&admin, "Routed");
        admin.ok(
            "POST",
            "/api/v1/users",
            Some(serde_json::json!({"name": "ann", "role": "agent", "sip_username": "ann-phone",
                                    "sip_password": "a-long-sip-secret", "tasks": [task]})),
        );
        let route = |user: &str, token: Option<&str>| {
            let auth = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            common::http_request(d.http, "GET", &format!("/api/v1/nodes/route?sip_user={user}"), &headers, b"")
        };
        // An agent's phone by its SIP name, and an [[agents]] account: this node, as text.
        for user in ["ann-phone", "desk1"] {
            let (status, kind, body) = route(user, Some(ADMIN));
            assert_eq!((status, body.as_str()), (200, want.as_str()), "{user}");
            assert!(kind.starts_with("text/plain"), "{kind}");
        }
        // Not an agent's account: 404, which Kamailio takes as "relay as usual".
        let (status, _, body) = route("ann", Some(ADMIN));
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("sip_user"), "{body}");
        // A token is needed, and a role that may read the nodes.
        assert_eq!(route("ann-phone", None).0, 401);
        let (_, agent) = common::api::user(&admin, "bob", "agent");
        assert_eq!(route("ann-phone", Some(&agent.token)).0, 403);
    }
}

both_stores! {
    /// The node answering is up, so the route finds no node up only while its own row has
    /// lapsed (it stalled past the expiry, or its store writes failed that long) or is gone:
    /// then 503, which Kamailio takes as "relay to the first node up"; its next heartbeat
    /// takes the name again and the route names it once more.
    fn the_route_answers_503_while_the_node_has_lapsed_and_names_it_after_its_heartbeat() {
        let (d, want) = published_node();
        let instance = nodes(&d)["r1"]["instance"].as_str().unwrap().to_string();
        let route = || {
            common::http_request(
                d.http,
                "GET",
                "/api/v1/nodes/route?sip_user=desk1",
                &[("Authorization", &format!("Bearer {ADMIN}"))],
                b"",
            )
        };
        assert_eq!(route().0, 200);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store = rt.block_on(d.open_store());
        // The row gone; a heartbeat (every 5 s) may take it back before the request: again.
        let mut refused = None;
        for _ in 0..3 {
            rt.block_on(store.release_node("r1", &instance)).unwrap();
            let (status, _, body) = route();
            if status == 503 {
                refused = Some(body);
                break;
            }
        }
        let body = refused.expect("the route never answered 503 with no node up");
        assert!(body.contains("no node that is up"), "{body}");
        let deadline = Instant::now() + Duration::from_secs(7);
        loop {
            let (status, _, body) = route();
            if status == 200 {
                assert_eq!(body, want);
                break;
            }
            assert!(Instant::now() < deadline, "{status} {body}");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(nodes(&d)["r1"]["instance"], instance.as_str());
    }
}

both_stores! {
    /// The cluster's SIP proxy gets a token of role `proxy`: it reads the route (and `/me`,
    /// as every role), and every other route of the OpenAPI document answers it 403 — the
    /// ones that spend money (dialling, test and verification calls) and hand out tokens
    /// among them — and changes nothing.
    fn a_proxy_token_reads_the_route_and_nothing_else() {
        let (d, want) = published_node();
        let admin = Api::new(&d, ADMIN);
        let (c, task) = common::api::campaign(&admin, "Routed");
        let line = admin.ok("POST", "/api/v1/lines", Some(serde_json::json!({"number": "+4930555123"})));
        let (_, proxy) = common::api::user(&admin, "kamailio", "proxy");
        let (status, body) = {
            let auth = format!("Bearer {}", proxy.token);
            let (status, _, body) = common::http_request(
                d.http,
                "GET",
                "/api/v1/nodes/route?sip_user=desk1",
                &[("Authorization", &auth)],
                b"",
            );
            (status, body)
        };
        assert_eq!((status, body.as_str()), (200, want.as_str()));
        assert_eq!(proxy.ok("GET", "/api/v1/me", None)["role"], "proxy");

        let doc = admin.ok("GET", "/api/v1/openapi.json", None);
        let mut wrong = Vec::new();
        let mut tried = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            if path == "/api/v1/nodes/route" || path == "/api/v1/me" {
                continue;
            }
            let url = path
                .replace("{id}", &if path.starts_with("/api/v1/lines") {
                    line["id"].to_string()
                } else {
                    c.to_string()
                })
                .replace("{task}", &task.to_string())
                .replace("{name}", "x")
                .replace("{contact}", "1")
                .replace("{import}", "1")
                .replace("{file}", "1");
            assert!(!url.contains('{'), "a parameter to fill in: {url}");
            let url = if url.ends_with("/form/preview") {
                format!("{url}?contact=1")
            } else {
                url
            };
            for (method, op) in ops.as_object().unwrap() {
                if op.get("security").is_none() {
                    continue; // no token needed (login, the document, WebSockets)
                }
                let method = method.to_uppercase();
                let body = (method != "GET" && method != "DELETE").then(|| serde_json::json!({}));
                let (status, problem) = proxy.call(&method, &url, body);
                tried += 1;
                if status != 403 {
                    wrong.push(format!("{method} {url}: {status} {problem}"));
                }
            }
        }
        assert!(tried > 60, "{tried} routes tried");
        assert!(wrong.is_empty(), "{wrong:#?}");
        // Nothing changed: the campaign is not dialling, the line not called, no token made.
        let campaign = admin.ok("GET", &format!("/api/v1/campaigns/{c}"), None);
        assert_eq!(campaign["status"], "disabled", "{campaign}");
        let calls = admin.ok("GET", &format!("/api/v1/lines/{}/verifications", line["id"]), None);
        assert_eq!(calls.as_array().map(Vec::len), Some(0), "{calls}");
    }
}
