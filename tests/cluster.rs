//! Several nodes on one store: three dialerd daemons on loopback ports share one throwaway
//! PostgreSQL database (tests/common/pg.rs) and one SIPp carrier; two SIPp agent phones are
//! logged in on each node. A predictive campaign runs; one node holds its call task. A change
//! written through another node's API reaches the holder within a second or two; the holder
//! is SIGKILLed mid-campaign; another node takes the task over within 30 s, starting from the
//! stored abandon ledger, and the campaign runs to its end. Afterwards no number was dialled
//! twice at once, every call the carrier saw is an attempt in the store, and the calls the
//! killed node had in flight are recorded `$interrupted` and were dialled again.
//!
//! Kamailio is not in front there: each node's agents register with that node directly. In
//! front of three other nodes (conf/kamailio/dialerd-cluster.cfg), it sends carriers' calls to
//! the nodes in turn and each agent's phone to the node of its call task (it asks
//! `GET /api/v1/nodes/route`), also after that node dies. And in front of three more, with a
//! predictive campaign whose agents' phones all register through it: the node dialling it is
//! SIGKILLed, the agents are logged out, their phones register again through Kamailio and
//! reach a survivor, where they log in; that node takes the task over within 30 s and the
//! campaign ends there, no number dialled twice at once and every call an attempt.

mod common;

use common::api::{user, Api, ADMIN};
use common::dialer::*;
use common::pg::{self, Backend};
use common::{metric, ClusterProxy, Daemon};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Held by each test that runs three nodes: one such test at a time, so that neither times its
/// take-over on a machine the other loads (the two smaller tests run beside either).
static THREE_NODES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`THREE_NODES`] (also after a test that held it failed).
fn three_nodes() -> std::sync::MutexGuard<'static, ()> {
    THREE_NODES.lock().unwrap_or_else(|e| e.into_inner())
}

/// A node of the test: its daemon, name and RTP port range.
struct Node {
    d: Daemon,
    name: String,
    rtp: (u16, u16),
}

fn start_node(url: &str, name: &str, carrier_port: u16) -> Node {
    let config = config_with_agents(carrier_port, 6);
    let port = |key: &str| -> u16 {
        let line = config.lines().find(|l| l.starts_with(key)).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let rtp = (port("rtp_port_min"), port("rtp_port_max"));
    let dir = tempfile::tempdir().unwrap();
    // The kit's daemon on PostgreSQL uses the database named in its directory: the same one.
    std::fs::write(dir.path().join("store.url"), url).unwrap();
    let d = Daemon::start_in(
        dir,
        &config,
        &[
            ("DIALERD_ADMIN_TOKEN", ADMIN),
            ("DIALERD__NODE__NAME", name),
        ],
    );
    Node {
        d,
        name: name.into(),
        rtp,
    }
}

/// Three nodes (n1, n2, n3) dialling through one SIPp carrier that logs every call.
struct Dialling {
    nodes: Vec<Node>,
    /// Their database.
    url: String,
    /// The carrier's log of calls (see [`carrier_log`]).
    log: std::path::PathBuf,
    /// The directory of the logs (the carrier's, and Kamailio's where there is one).
    _logs: tempfile::TempDir,
    /// The carrier and the customers' media, kept while the test runs.
    _far: (Sipp, Customers),
}

/// Three nodes on a new PostgreSQL database, behind one SIPp carrier
/// (`dialer/carrier_random.xml`) that takes three calls per contact of a campaign of
/// `contacts` (the killed node's calls are placed again).
fn three_nodes_dialling(contacts: usize) -> Dialling {
    pg::set(Backend::Postgres);
    let url = pg::database();
    let carrier_port = free_udp_port();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("carrier.log");
    let customers = Customers::start(&log);
    let far = logged_carrier(
        "dialer/carrier_random.xml",
        carrier_port,
        contacts * 3,
        customers.port,
        &log,
    );
    let nodes = ["n1", "n2", "n3"]
        .iter()
        .map(|n| start_node(&url, n, carrier_port))
        .collect();
    Dialling {
        nodes,
        url,
        log,
        _logs: logs,
        _far: (far, customers),
    }
}

/// One call the carrier saw: whether the killed node placed it, and its events in order.
type Placed = (bool, Vec<(String, f64)>);

/// The node holding `task`'s lease, as `node`'s API says; `None` when none does.
fn owner(node: &Node, task: i64) -> Option<String> {
    let v = Api::new(&node.d, ADMIN).ok("GET", "/api/v1/nodes", None);
    assert_eq!(v["node"], node.name.as_str(), "{v}");
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == task)
        .map(|t| t["node"].as_str().unwrap().to_string())
}

/// The attempts of a contact as its history records them: their results.
fn attempts(admin: &Api, c: i64, id: i64) -> Vec<String> {
    let k = admin.ok("GET", &format!("/api/v1/campaigns/{c}/contacts/{id}"), None);
    k["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["change"]["op"] == "attempt")
        .map(|h| h["change"]["result"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Seeds the task's stored dialer state with an abandon ledger of 20 abandons in 1000 live
/// answers over the last hours, as a node that dialled it earlier would have left it.
fn seed_ledger(url: &str, task: i64) {
    use dialerd::dialer::campaign::{Campaign, CampaignConfig};
    use dialerd::dialer::Time;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let location = dialerd::store::Location::Postgres(url.to_string());
        let store = dialerd::store::Store::open_at(&location, dir.path())
            .await
            .unwrap();
        let mut state = Campaign::new(CampaignConfig::default(), None)
            .unwrap()
            .persisted();
        let now = dialerd::store::now_ms() as u64;
        for i in 0..1000u64 {
            state.ledger.record(Time(now - i * 50_000), i % 50 == 0);
        }
        store.save_dialer_state(task, &state).await.unwrap();
        store.close().await;
    });
}

#[test]
fn a_task_moves_to_another_node_when_its_node_is_killed_and_no_number_is_dialled_twice() {
    let _alone = three_nodes();
    let contacts = 40;
    let Dialling {
        mut nodes,
        url,
        log,
        _logs,
        _far,
    } = three_nodes_dialling(contacts);
    let admin = Api::new(&nodes[0].d, ADMIN);
    let settings = json!({
        "queue": "sales", "dial_mode": "predictive", "abandon_target": 0.03,
        "wrap_up_seconds": 1, "ring_timeout_seconds": 15, "max_attempts": 1
    });
    let (c, task) = dialing_campaign(&admin, "Cluster", settings, contacts, 0);
    upload_safe_harbour(&admin, c, 2.0);
    seed_ledger(&url, task);
    // Two agents on each node, their phones registered with it.
    let mut phones = Vec::new();
    for (k, node) in nodes.iter().enumerate() {
        let admin_k = Api::new(&node.d, ADMIN);
        for i in [2 * k + 1, 2 * k + 2] {
            let (id, _) = user(&admin, &format!("agent{i}"), "agent");
            phones.push(phone(
                &format!("agent{i}"),
                &format!("sipp-agent-secret-{i}"),
                node.d.sip,
            ));
            admin_k.ok(
                "POST",
                &format!("/api/v1/agents/{id}/session"),
                Some(json!({"tasks": [task], "phone": "sip"})),
            );
            admin_k.ok("POST", &format!("/api/v1/agents/{id}/ready"), None);
        }
    }
    // Enabled through the second node: the holder reads it from the store.
    Api::new(&nodes[1].d, ADMIN).ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}"),
        Some(json!({"status": "enabled"})),
    );
    let started = Instant::now();
    let holder = loop {
        if let Some(o) = owner(&nodes[2], task) {
            break o;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no node took the task"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for n in &nodes {
        assert_eq!(
            owner(n, task).as_deref(),
            Some(holder.as_str()),
            "{}",
            n.name
        );
    }
    let h = nodes.iter().position(|n| n.name == holder).unwrap();
    let other = (h + 1) % 3;
    // The others say where the task is dialled while their agents wait.
    let said = nodes[other].d.wait_log(
        "call task dialled by another node; its agents here wait",
        Duration::from_secs(5),
    );
    assert_eq!(said["fields"]["holder"], holder.as_str(), "{said}");
    println!("{holder} holds task {task} after {:?}", started.elapsed());

    // Only the holder dials: the others run no driver for the task.
    let dialer =
        |n: &Node| Api::new(&n.d, ADMIN).ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
    let deadline = Instant::now() + Duration::from_secs(5);
    while dialer(&nodes[h])["tasks"].as_array().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the holder runs no driver");
        std::thread::sleep(Duration::from_millis(100));
    }
    for (k, n) in nodes.iter().enumerate() {
        let v = dialer(n);
        assert_eq!(
            v["held_by"],
            json!([{"task_id": task, "node": holder}]),
            "{v}"
        );
        if k != h {
            assert_eq!(v["tasks"], json!([]), "{} dials too", n.name);
        }
    }

    // A settings change written through another node reaches the holder.
    let total_attempts = |admin: &Api| -> i64 {
        admin
            .all_contacts(c, "", 100)
            .iter()
            .map(|k| k["attempts"].as_i64().unwrap())
            .sum()
    };
    let changed = Instant::now();
    Api::new(&nodes[other].d, ADMIN).ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}/tasks/{task}"),
        Some(json!({"settings": {
            "queue": "sales", "dial_mode": "predictive", "abandon_target": 0.03,
            "wrap_up_seconds": 2, "ring_timeout_seconds": 15, "max_attempts": 1
        }})),
    );
    nodes[h].d.wait_log(
        "call task settings changed; its driver restarts",
        Duration::from_secs(3),
    );
    let picked_up = changed.elapsed();
    println!("the holder saw the change written elsewhere after {picked_up:?}");
    assert!(picked_up < Duration::from_millis(2500), "{picked_up:?}");

    // Mid-campaign, the holder is killed.
    let (killed_at, killed_unix) =
        kill_on_a_new_customer(&mut nodes[h].d, || total_attempts(&admin) >= 6);
    let dead = nodes.remove(h);
    let admin = Api::new(&nodes[0].d, ADMIN);

    // Another node takes the task over within 30 s.
    let taker = loop {
        match owner(&nodes[0], task) {
            Some(o) if o != dead.name => break o,
            _ => {}
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "task {task} still not moved"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let moved = killed_at.elapsed();
    println!(
        "task {task} moved from {} to {taker} after {moved:?}",
        dead.name
    );
    let t = nodes.iter().position(|n| n.name == taker).unwrap();
    // It starts from the stored abandon ledger (about 20 in 1000), not from nothing.
    let figures = loop {
        let v = dialer(&nodes[t]);
        if let Some(f) = v["tasks"].as_array().unwrap().first() {
            break f.clone();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(35),
            "{taker} runs no driver"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let ratio = figures["abandon_ratio_24h"].as_f64().unwrap();
    assert!((0.015..0.045).contains(&ratio), "{figures}");
    let recovered = nodes[t].d.wait_log(
        "leases of a node gone recorded as $interrupted",
        Duration::from_secs(5),
    );
    assert_eq!(
        recovered["fields"]["from"],
        dead.name.as_str(),
        "{recovered}"
    );
    assert!(
        recovered["fields"]["contacts"].as_u64().unwrap() >= 1,
        "{recovered}"
    );

    let (calls, interrupted) =
        ends_without_double_dials(&admin, c, contacts, &log, dead.rtp, killed_unix);
    println!(
        "{contacts} contacts, {} calls, {interrupted} interrupted; moved after {moved:?}",
        calls
    );
    drop(phones);
}

/// The nodes' `sip.agent_login_number`, which Kamailio routes to the agent's node.
const LOGIN_NUMBER: &str = "1099";

#[test]
fn behind_kamailio_a_predictive_task_moves_with_its_agents_when_its_node_is_killed() {
    let _alone = three_nodes();
    let contacts = 30;
    let Dialling {
        mut nodes,
        log,
        _logs: logs,
        _far,
        ..
    } = three_nodes_dialling(contacts);
    let names = ["n1", "n2", "n3"];
    let admin = Api::new(&nodes[0].d, ADMIN);
    // Kamailio in front: the agents' phones register through it.
    let (_, kamailio_user) = user(&admin, "kamailio", "proxy");
    let mut list = String::new();
    for (k, n) in nodes.iter().enumerate() {
        let port = n.d.sip.port();
        list.push_str(&format!("1 sip:127.0.0.1:{port} 0 0\n"));
        list.push_str(&format!(
            "2 sip:127.0.0.1:{port} 0 {} api=http://{}\n",
            10 - k,
            n.d.http
        ));
    }
    let k_port = free_udp_port();
    let kamailio = std::net::SocketAddr::from(([127, 0, 0, 1], k_port));
    let proxy = proxy(logs.path(), k_port, &list, &kamailio_user.token);
    let settings = json!({
        "queue": "sales", "dial_mode": "predictive", "abandon_target": 0.03,
        "wrap_up_seconds": 1, "ring_timeout_seconds": 15, "max_attempts": 1
    });
    let (c, task) = dialing_campaign(&admin, "Behind Kamailio", settings, contacts, 0);
    upload_safe_harbour(&admin, c, 2.0);
    // Four agents of the task: Kamailio sends their phones to the node the placement rule
    // names for it, and they log in there.
    let x = names
        .iter()
        .position(|n| *n == dialerd::placement::agent_node("", &[task], &[], &names).unwrap())
        .unwrap();
    let mut ids = Vec::new();
    let mut phones = HashMap::new();
    let register = |i: usize| {
        phone(
            &format!("agent{i}"),
            &format!("sipp-agent-secret-{i}"),
            kamailio,
        )
    };
    for i in 1..=4 {
        let (id, _) = user(&admin, &format!("agent{i}"), "agent");
        admin.ok(
            "PATCH",
            &format!("/api/v1/users/{id}"),
            Some(json!({"tasks": [task]})),
        );
        ids.push(id);
        phones.insert(i, register(i));
    }
    let log_in = |d: &Daemon, id: i64| -> (u16, Value) {
        Api::new(d, ADMIN).call(
            "POST",
            &format!("/api/v1/agents/{id}/session"),
            Some(json!({"tasks": [task], "phone": "sip"})),
        )
    };
    // Where Kamailio last sent agent i's REGISTER, as its log says.
    let routed = |i: usize| -> String {
        let text = proxy.log_text();
        let line = text
            .lines()
            .rfind(|l| l.contains(&format!("cluster: REGISTER for agent{i} to ")))
            .unwrap_or_else(|| panic!("agent{i}'s REGISTER not through Kamailio:\n{text}"));
        line.to_string()
    };
    for i in 1..=4 {
        let to = format!("to its node sip:127.0.0.1:{}", nodes[x].d.sip.port());
        assert!(routed(i).contains(&to), "{}", routed(i));
    }
    for &id in &ids {
        let (status, session) = log_in(&nodes[x].d, id);
        assert_eq!(status, 201, "{session}\n{}", proxy.log_text());
        Api::new(&nodes[x].d, ADMIN).ok("POST", &format!("/api/v1/agents/{id}/ready"), None);
    }
    admin.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}"),
        Some(json!({"status": "enabled"})),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while owner(&nodes[0], task).as_deref() != Some(names[x]) {
        assert!(
            Instant::now() < deadline,
            "{} does not hold the task",
            names[x]
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Mid-campaign, the node is killed; its agents' sessions end with it.
    let attempted = || {
        admin
            .all_contacts(c, "", 100)
            .iter()
            .map(|k| k["attempts"].as_i64().unwrap())
            .sum::<i64>()
            >= 4
    };
    let (killed_at, killed_unix) = kill_on_a_new_customer(&mut nodes[x].d, attempted);
    let dead = nodes.remove(x);
    let admin = Api::new(&nodes[0].d, ADMIN);
    for a in admin.ok("GET", "/api/v1/agents", None)["items"]
        .as_array()
        .unwrap()
    {
        assert_eq!(a["state"], "logged_out", "{a}");
    }
    // Their phones register again through Kamailio, reach a surviving node, and the agents log
    // in there; that node takes the task over within 30 s of the kill.
    let mut taker = None;
    for (n, &id) in ids.iter().enumerate() {
        let i = n + 1;
        drop(phones.remove(&i));
        phones.insert(i, register(i));
        let logged: Vec<usize> = (0..nodes.len())
            .filter(|&k| log_in(&nodes[k].d, id).0 == 201)
            .collect();
        assert_eq!(
            logged.len(),
            1,
            "agent{i} logged in on {logged:?}\n{}",
            proxy.log_text()
        );
        assert!(
            taker.is_none() || taker == Some(logged[0]),
            "the agents on two nodes"
        );
        taker = Some(logged[0]);
        let to = format!("sip:127.0.0.1:{}", nodes[logged[0]].d.sip.port());
        assert!(routed(i).contains(&to), "{}", routed(i));
        Api::new(&nodes[logged[0]].d, ADMIN).ok(
            "POST",
            &format!("/api/v1/agents/{id}/ready"),
            None,
        );
    }
    let t = taker.unwrap();
    loop {
        if owner(&nodes[t], task).as_deref() == Some(nodes[t].name.as_str()) {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "task {task} not moved to {}",
            nodes[t].name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let moved = killed_at.elapsed();

    // The campaign ends on the new node, with no number dialled twice at once.
    let (calls, interrupted) =
        ends_without_double_dials(&admin, c, contacts, &log, dead.rtp, killed_unix);
    println!(
        "{contacts} contacts, {calls} calls, {interrupted} interrupted; moved to {} after {moved:?}",
        nodes[t].name
    );
    drop(phones);
}

/// Kills `holder` (SIGKILL) right after one of its agents got a customer (who talks 4.5-6 s),
/// once `going` says the campaign got going: that call is surely cut, whatever the other
/// calls are doing at that moment. Returns when it was killed (now, and Unix seconds).
fn kill_on_a_new_customer(holder: &mut Daemon, going: impl Fn() -> bool) -> (Instant, f64) {
    let holder_admin = Api::new(holder, ADMIN);
    let mut seen = std::collections::HashSet::new();
    let mut first = true;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let items = holder_admin.ok("GET", "/api/v1/agents", None)["items"].clone();
        let talking: Vec<String> = items
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "talking" && !a["call_id"].is_null())
            .map(|a| a["call_id"].to_string())
            .collect();
        let fresh = talking.iter().any(|c| !seen.contains(c));
        if fresh && !first && going() {
            break;
        }
        seen.extend(talking);
        first = false;
        assert!(Instant::now() < deadline, "the campaign does not get going");
        std::thread::sleep(Duration::from_millis(50));
    }
    holder.signal(libc::SIGKILL);
    let killed_at = Instant::now();
    let killed_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    holder.wait_exit(Duration::from_secs(5)).expect("killed");
    (killed_at, killed_unix)
}

/// Waits until `contacts` contacts of campaign `c` are all done, then checks the carrier's log
/// (`log`) against the store: no number was dialled twice at once; the calls of the node
/// killed at `killed_unix` (RTP ports `dead_rtp`) left in flight were dialled again only after
/// the kill; every call the carrier saw is an attempt, those cut short `$interrupted`, and
/// at least one was. Returns the calls the carrier saw and the `$interrupted` attempts.
fn ends_without_double_dials(
    admin: &Api,
    c: i64,
    contacts: usize,
    log: &std::path::Path,
    dead_rtp: (u16, u16),
    killed_unix: f64,
) -> (usize, usize) {
    // The campaign runs to its end on the survivors.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let all = admin.all_contacts(c, "", 100);
        if all.iter().all(|k| k["status"] != "open") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "contacts still open: {:?}",
            all.iter()
                .filter(|k| k["status"] == "open")
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The last calls' ends reach the carrier's log.
    std::thread::sleep(Duration::from_secs(2));

    // The carrier's view: per number, its calls in order, each with the node that placed it.
    let mut calls: BTreeMap<String, Vec<Placed>> = BTreeMap::new();
    for e in carrier_log(log) {
        let list = calls.entry(e.number.clone()).or_default();
        if e.kind == "invite" {
            let port = e.rtp.unwrap_or(0);
            let by_dead = (dead_rtp.0..=dead_rtp.1).contains(&port);
            list.push((by_dead, Vec::new()));
        }
        list.last_mut().unwrap().1.push((e.kind, e.at));
    }
    let mut cut = 0;
    for (number, list) in &calls {
        for w in list.windows(2) {
            let (by_dead, events) = &w[0];
            let next_start = w[1].1[0].1;
            let ended = events.len() > 1 || events[0].0 != "invite";
            if *by_dead
                && events[0].1 < killed_unix
                && !events
                    .iter()
                    .any(|(k, _)| k.ends_with("bye") || k == "busy" || k == "cancelled")
            {
                // A call of the killed node: dialled again only after the takeover.
                cut += 1;
                assert!(next_start > killed_unix, "{number}: {list:?}");
            } else {
                assert!(ended, "{number}: {list:?}");
                let end = events.last().unwrap().1;
                assert!(
                    end <= next_start,
                    "{number} dialled twice at once: {list:?}"
                );
            }
        }
    }
    // Every call the carrier saw is an attempt in the store; the killed node's calls in flight
    // are `$interrupted`.
    let mut interrupted = 0;
    let mut by_number: HashMap<String, Vec<String>> = HashMap::new();
    for k in admin.all_contacts(c, "", 100) {
        let number = k["phones"][0]
            .as_str()
            .unwrap()
            .trim_start_matches('+')
            .to_string();
        let results = attempts(admin, c, k["id"].as_i64().unwrap());
        interrupted += results.iter().filter(|r| *r == "$interrupted").count();
        by_number.insert(number, results);
    }
    assert_eq!(by_number.len(), contacts);
    for (number, results) in &by_number {
        let placed = calls.get(number).map_or(0, Vec::len);
        let cut_short = results.iter().filter(|r| *r == "$interrupted").count();
        assert!(
            placed <= results.len() && results.len() <= placed + cut_short,
            "{number}: the carrier saw {placed} calls, the store has {results:?}"
        );
        if cut_short > 0 {
            assert_ne!(
                results.last().unwrap(),
                "$interrupted",
                "{number}: not dialled again"
            );
        }
    }
    assert!(
        interrupted >= 1 && cut >= 1,
        "interrupted {interrupted}, cut {cut}"
    );
    (calls.values().map(Vec::len).sum(), interrupted)
}

/// Kamailio on conf/kamailio/dialerd-cluster.cfg with the dispatcher list `list` on UDP `port`
/// of 127.0.0.1, asking the nodes with the API token `token`, and sending agents' calls to
/// [`LOGIN_NUMBER`] to their nodes.
fn proxy(dir: &std::path::Path, port: u16, list: &str, token: &str) -> ClusterProxy {
    ClusterProxy::start(
        dir,
        port,
        list,
        &[
            format!("DIALERD_TOKEN=\"{token}\""),
            format!("AGENT_LOGIN_NUMBER=\"{LOGIN_NUMBER}\""),
            format!("LISTEN_AGENTS=udp:127.0.0.1:{}", free_udp_port()),
        ],
    )
}

/// A call from a carrier to the echo number through Kamailio: the node that answered it (the
/// port of the 200's Contact), or the status of a failure (0: no final response).
fn echo_call(kamailio: std::net::SocketAddr, call_id: &str) -> Result<u16, u16> {
    let ua = common::ua::TestUa::new(kamailio, call_id);
    ua.invite("1000");
    // Kamailio's slowest answer: three nodes that time out (3 s each), then its last resort.
    let Some(answer) = ua.final_response_within(Duration::from_secs(20)) else {
        return Err(0);
    };
    let status = common::status_of(&answer);
    if status != 200 {
        return Err(status);
    }
    let contact = common::ua::header(&answer, "Contact");
    let port = contact
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('>').split(';').next())
        .and_then(|p| p.trim_end_matches('>').parse().ok())
        .unwrap_or_else(|| panic!("no port in {contact}"));
    Ok(port)
}

/// The node holding each call task's lease, as `d`'s API says: task → node.
fn holders(d: &Daemon) -> HashMap<i64, String> {
    let v = Api::new(d, ADMIN).ok("GET", "/api/v1/nodes", None);
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let node = t["node"].as_str().unwrap().to_string();
            (t["task_id"].as_i64().unwrap(), node)
        })
        .collect()
}

/// Whether a SIPp phone still runs, or how it ended (its stderr).
fn phone_state(phone: &mut Sipp) -> String {
    use std::io::Read;
    match phone.0.try_wait().unwrap() {
        None => "running".into(),
        Some(status) => {
            let mut err = String::new();
            if let Some(mut e) = phone.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            format!("ended {status}: {err}")
        }
    }
}

/// Polls `d`'s `GET /api/v1/nodes` until `want` holds of the leases, for up to `limit`.
fn wait_holders(
    d: &Daemon,
    limit: Duration,
    what: &str,
    want: impl Fn(&HashMap<i64, String>) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let now = holders(d);
        if want(&now) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: leases {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kamailio_sends_carriers_to_the_nodes_and_agents_to_the_node_of_their_task() {
    pg::set(Backend::Postgres);
    let _alone = three_nodes();
    let url = pg::database();
    let k_port = free_udp_port();
    let kamailio = std::net::SocketAddr::from(([127, 0, 0, 1], k_port));
    // Three nodes; Kamailio is their trunk, calls to 1000 from it are echoed. Agents 1-4 are
    // [[agents]] accounts on every node.
    let start = |name: &str| {
        let (rtp_min, rtp_max) = rtp_ports();
        let mut agents = String::new();
        for i in 1..=4 {
            agents.push_str(&format!(
                "[[agents]]\nusername = \"agent{i}\"\npassword = \"sipp-agent-secret-{i}\"\n"
            ));
        }
        let config = format!(
            "[log]\nlevel = \"info\"\n[shutdown]\ndrain_timeout = \"3s\"\n\
             [sip]\ndigest_algorithms = [\"MD5\"]\necho_number = \"1000\"\n\
             agent_login_number = \"{LOGIN_NUMBER}\"\n{agents}\
             [sessions]\nring_timeout = \"10s\"\n\
             [media]\nrtp_port_min = {rtp_min}\nrtp_port_max = {rtp_max}\n\
             [[trunks]]\nname = \"kamailio\"\nhost = \"127.0.0.1\"\nport = {k_port}\n\
             keepalive = \"0s\"\ncluster_proxy = true\n"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("store.url"), &url).unwrap();
        Daemon::start_in(
            dir,
            &config,
            &[
                ("DIALERD_ADMIN_TOKEN", ADMIN),
                ("DIALERD__NODE__NAME", name),
            ],
        )
    };
    let names = ["n1", "n2", "n3"];
    let mut nodes: Vec<Daemon> = names.iter().map(|n| start(n)).collect();
    let port_of = |d: &Daemon| d.sip.port();
    let admin = Api::new(&nodes[0], ADMIN);
    // Kamailio asks the nodes with a token of role proxy: it may read the route only.
    let (_, kamailio_user) = user(&admin, "kamailio", "proxy");
    let mut list = String::new();
    for (k, d) in nodes.iter().enumerate() {
        list.push_str(&format!("1 sip:127.0.0.1:{} 0 0\n", port_of(d)));
        list.push_str(&format!(
            "2 sip:127.0.0.1:{} 0 {} api=http://{}\n",
            port_of(d),
            10 - k,
            d.http
        ));
    }
    let logs = tempfile::tempdir().unwrap();
    let proxy = proxy(logs.path(), k_port, &list, &kamailio_user.token);

    // Carriers' calls go to the nodes in turn.
    let answered: Vec<u16> = (0..6)
        .map(|i| {
            echo_call(kamailio, &format!("k-before-{i}"))
                .unwrap_or_else(|s| panic!("call {i}: {s}\n{}", proxy.log_text()))
        })
        .collect();
    for d in &nodes {
        assert!(answered.contains(&port_of(d)), "{answered:?}");
    }

    // Two call tasks that the placement rule gives to two different nodes (with no lease
    // yet, by rendezvous hashing of the task over the nodes up).
    let settings = json!({"queue": "sales", "dial_mode": "progressive", "wrap_up_seconds": 1});
    let placed = |task: i64| dialerd::placement::agent_node("", &[task], &[], &names).unwrap();
    let (ca, a) = dialing_campaign(&admin, "Task A", settings.clone(), 3, 0);
    let (cb, b) = (1..)
        .map(|n| dialing_campaign(&admin, &format!("Task B{n}"), settings.clone(), 3, 0))
        .find(|(_, t)| placed(*t) != placed(a))
        .unwrap();
    let node_of = |name: &str| names.iter().position(|n| *n == name).unwrap();
    let (na, nb) = (node_of(placed(a)), node_of(placed(b)));
    println!(
        "task {a} placed on {}, task {b} on {}",
        names[na], names[nb]
    );
    // Agents 1 and 2 serve A, 3 and 4 serve B.
    let mut agents = HashMap::new();
    for (i, task) in [(1, a), (2, a), (3, b), (4, b)] {
        let (id, _) = user(&admin, &format!("agent{i}"), "agent");
        admin.ok(
            "PATCH",
            &format!("/api/v1/users/{id}"),
            Some(json!({"tasks": [task]})),
        );
        agents.insert(i, (id, task));
    }
    let log_in = |d: &Daemon, i: u32| -> (u16, Value) {
        let (id, task) = agents[&i];
        Api::new(d, ADMIN).call(
            "POST",
            &format!("/api/v1/agents/{id}/session"),
            Some(json!({"tasks": [task], "phone": "sip"})),
        )
    };
    // Each phone registers through Kamailio, which asks a node where the agent goes: the
    // node the rule names, where the agent logs in: agents 1-3 through the API (the node calls
    // the phone along its Path), agent 4 by calling the login number through Kamailio.
    let mut phones = HashMap::new();
    let mut login_call = None;
    for i in 1..=4u32 {
        let k = if agents[&i].1 == a { na } else { nb };
        let (status, _, said) = common::http_request(
            nodes[(k + 1) % 3].http,
            "GET",
            &format!("/api/v1/nodes/route?sip_user=agent{i}"),
            &[("Authorization", &format!("Bearer {}", kamailio_user.token))],
            b"",
        );
        let uri = format!("sip:127.0.0.1:{}", port_of(&nodes[k]));
        assert_eq!((status, said.as_str()), (200, uri.as_str()), "agent{i}");
        phones.insert(
            i,
            phone(
                &format!("agent{i}"),
                &format!("sipp-agent-secret-{i}"),
                kamailio,
            ),
        );
        assert!(
            proxy
                .log_text()
                .contains(&format!("cluster: REGISTER for agent{i} to its node {uri}")),
            "agent{i} not sent to {uri}:\n{}",
            proxy.log_text()
        );
        if i < 4 {
            let (status, session) = log_in(&nodes[k], i);
            assert_eq!(
                (status, &session["state"]),
                (201, &json!("paused")),
                "agent{i}: {session}; its phone: {}\n{}",
                phone_state(phones.get_mut(&i).unwrap()),
                proxy.log_text()
            );
            continue;
        }
        let call = common::agent_phone::sipp()
            .arg("-sf")
            .arg(scenario("proxy/login_number_record_route.xml"))
            .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
            .args([
                "-mp",
                &common::agent_phone::free_rtp_echo_port().to_string(),
                "-rtp_echo",
            ])
            .args(["-key", "sip_user", "agent4", "-au", "agent4"])
            .args([
                "-ap",
                "sipp-agent-secret-4",
                "-s",
                LOGIN_NUMBER,
                "-d",
                "120000",
            ])
            .args(["-m", "1", "-timeout", "150", "-nostdin"])
            .arg(kamailio.to_string())
            .spawn()
            .unwrap();
        login_call = Some(Sipp(call));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = Api::new(&nodes[k], ADMIN).ok("GET", "/api/v1/agents", None);
            let me = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["id"] == agents[&4].0)
                .cloned()
                .unwrap_or_default();
            if me["state"] == "paused" {
                assert_eq!(me["reason"], "login", "{me}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "agent4 not logged in by its call: {me}\n{}",
                proxy.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            proxy
                .log_text()
                .contains(&format!("cluster: INVITE for agent4 to its node {uri}")),
            "agent4's login call not sent to {uri}:\n{}",
            proxy.log_text()
        );
    }
    // Both campaigns dial: each task on the node of its agents, at the same time.
    for c in [ca, cb] {
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "enabled"})),
        );
    }
    wait_holders(&nodes[0], Duration::from_secs(10), "A and B apart", |h| {
        h.get(&a).map(String::as_str) == Some(names[na])
            && h.get(&b).map(String::as_str) == Some(names[nb])
    });
    let dialer = |d: &Daemon, c: i64| {
        Api::new(d, ADMIN).ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None)
    };
    // Each holder's driver publishes its figures a moment after it took the lease.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dialer(&nodes[na], ca)["tasks"][0]["task_id"] != a
        || dialer(&nodes[nb], cb)["tasks"][0]["task_id"] != b
    {
        assert!(
            Instant::now() < deadline,
            "{} {}",
            dialer(&nodes[na], ca),
            dialer(&nodes[nb], cb)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A's node dies.
    nodes[na].signal(libc::SIGKILL);
    nodes[na].wait_exit(Duration::from_secs(5)).expect("killed");
    let killed = Instant::now();
    let dead_port = port_of(&nodes[na]);
    let survivors: Vec<usize> = (0..3).filter(|k| *k != na).collect();
    // Carriers' calls reach the survivors only.
    for i in 0..3 {
        let at = echo_call(kamailio, &format!("k-after-{i}"))
            .unwrap_or_else(|s| panic!("call {i} after the kill: {s}\n{}", proxy.log_text()));
        assert_ne!(at, dead_port, "call {i} after the kill");
    }
    // A's phones register again through Kamailio: they reach a surviving node (the dead one's
    // lease and name are not expired yet, so Kamailio falls back to the nodes up), and the
    // agents log in there.
    let mut taker = None;
    for i in [1, 2] {
        drop(phones.remove(&i));
        phones.insert(
            i,
            phone(
                &format!("agent{i}"),
                &format!("sipp-agent-secret-{i}"),
                kamailio,
            ),
        );
        let mut logged = Vec::new();
        for &k in &survivors {
            let (status, session) = log_in(&nodes[k], i);
            if status == 201 {
                assert_eq!(session["state"], "paused", "{session}");
                logged.push(k);
            }
        }
        assert_eq!(
            logged.len(),
            1,
            "agent{i} logged in on {logged:?}; its phone: {}\n{}",
            phone_state(phones.get_mut(&i).unwrap()),
            proxy.log_text()
        );
        assert!(
            taker.is_none() || taker == Some(logged[0]),
            "A's agents on two nodes"
        );
        taker = Some(logged[0]);
    }
    let t = taker.unwrap();
    println!(
        "A's agents registered and logged in again on {} {:?} after the kill",
        names[t],
        killed.elapsed()
    );
    // Task A is dialled again, by that node, once the dead node's lease has expired; B stays.
    wait_holders(&nodes[t], Duration::from_secs(25), "A taken over", |h| {
        h.get(&a).map(String::as_str) == Some(names[t])
            && h.get(&b).map(String::as_str) == Some(names[nb])
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while dialer(&nodes[t], ca)["tasks"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "{} runs no driver for A",
            names[t]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "task {a} dialled again by {} {:?} after the kill",
        names[t],
        killed.elapsed()
    );
    // The route now names the new holder for A's agents.
    let (status, _, said) = common::http_request(
        nodes[t].http,
        "GET",
        "/api/v1/nodes/route?sip_user=agent1",
        &[("Authorization", &format!("Bearer {}", kamailio_user.token))],
        b"",
    );
    assert_eq!(
        (status, said),
        (200, format!("sip:127.0.0.1:{}", port_of(&nodes[t])))
    );
    drop(login_call);
    drop(phones);
}

/// Node n1 with a progressive campaign whose one SIP agent talks to a customer of the carrier
/// on `carrier_port`.
struct N1 {
    daemon: Daemon,
    admin: Api,
    campaign: i64,
    task: i64,
    /// The task's `dialerd_calls_in_flight` series.
    in_flight: String,
    /// The agent's API client and phone, kept for the call's life.
    _agent: (Api, Sipp),
}

/// Starts [`N1`] with a campaign named `name` and waits until the agent talks.
fn n1_with_a_call_up(carrier_port: u16, name: &str) -> N1 {
    let daemon = Daemon::start_with(
        &config(carrier_port),
        &[
            ("DIALERD_ADMIN_TOKEN", ADMIN),
            ("DIALERD__NODE__NAME", "n1"),
        ],
    );
    let admin = Api::new(&daemon, ADMIN);
    let (campaign, task) = dialing_campaign(
        &admin,
        name,
        json!({"queue": "sales", "dial_mode": "progressive", "wrap_up_seconds": 2}),
        3,
        0,
    );
    let (agent, phone) = sip_agent(&admin, &daemon, 1, task);
    agent.ok("POST", "/api/v1/agent/ready", None);
    admin.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{campaign}"),
        Some(json!({"status": "enabled"})),
    );
    let in_flight = format!("dialerd_calls_in_flight{{task=\"{task}\"}}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, text) = daemon.get("/metrics");
        let talking = admin.ok("GET", "/api/v1/agents", None)["items"][0]["state"] == "talking";
        if talking && metric(&text, &in_flight) == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no call put through");
        std::thread::sleep(Duration::from_millis(100));
    }
    N1 {
        daemon,
        admin,
        campaign,
        task,
        in_flight,
        _agent: (agent, phone),
    }
}

#[test]
fn a_node_whose_task_was_taken_over_hangs_up_its_calls_and_dials_it_no_more() {
    pg::set(Backend::Postgres);
    let carrier_port = free_udp_port();
    let far = carrier("dialer/carrier_waits_for_bye.xml", carrier_port, 1, true);
    let n1 = n1_with_a_call_up(carrier_port, "Taken");
    let (mut d, admin, c, task, in_flight) =
        (n1.daemon, n1.admin, n1.campaign, n1.task, n1.in_flight);
    // Another node, whose clock runs 16 s ahead, takes the task over as if n1's lease had
    // expired.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let taken = rt.block_on(async {
        let store = d.open_store().await;
        let now = dialerd::store::now_ms();
        store
            .claim_task(task, "n2", now + 16_000, 60_000)
            .await
            .unwrap()
    });
    assert_eq!(
        taken,
        dialerd::store::task_leases::Claim::Held {
            from: Some("n1".into())
        }
    );
    // At its next renewal n1 finds the task gone and hangs up: the carrier gets its BYE.
    let lost = Instant::now();
    d.try_wait_log(
        "call task no longer this node's; its calls are hung up",
        Duration::from_secs(8),
    )
    .expect("n1 did not give the task up");
    finished(
        far,
        "the customer's call ends with dialerd's BYE",
        Duration::from_secs(10),
    );
    println!("n1 hung up {:?} after losing the task", lost.elapsed());
    let v = Api::new(&d, ADMIN).ok("GET", "/api/v1/nodes", None);
    assert_eq!(v["tasks"][0]["node"], "n2", "{v}");
    // Its agent still ready and the campaign still dialling, n1 starts no driver for it.
    // (The stopped driver is gone within a second or two; then it must stay gone.)
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..10 {
        let live = admin.ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
        assert_eq!(live["tasks"], json!([]), "{live}");
        assert_eq!(
            live["held_by"],
            json!([{"task_id": task, "node": "n2"}]),
            "{live}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, text) = d.get("/metrics");
    assert_eq!(metric(&text, &in_flight), Some(0.0), "{text}");
}

#[test]
fn a_node_whose_name_was_taken_while_it_stalled_is_fenced_and_leaves_its_task_to_the_new_one() {
    pg::set(Backend::Postgres);
    let carrier_port = free_udp_port();
    // The customers stay on the line until dialerd hangs up: one call of each instance.
    let _far = carrier("dialer/carrier_waits_for_bye.xml", carrier_port, 3, true);
    let n1 = n1_with_a_call_up(carrier_port, "Fenced");
    let (mut first, c, task, in_flight) = (n1.daemon, n1.campaign, n1.task, n1.in_flight);

    // The first instance stalls past the expiry of its name and task lease, with its call up.
    first.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    std::thread::sleep(
        (dialerd::node::EXPIRY + Duration::from_secs(1)).saturating_sub(stopped.elapsed()),
    );
    // Meanwhile a daemon of the same name starts on another state directory (another machine),
    // and its agent dials the task.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("store.url"), first.store_url()).unwrap();
    let second = Daemon::start_in(
        dir,
        &config(carrier_port),
        &[
            ("DIALERD_ADMIN_TOKEN", ADMIN),
            ("DIALERD__NODE__NAME", "n1"),
        ],
    );
    let admin2 = Api::new(&second, ADMIN);
    let instance2 = admin2.ok("GET", "/api/v1/nodes", None)["nodes"][0]["instance"]
        .as_str()
        .unwrap()
        .to_string();
    let (agent2, _phone2) = sip_agent(&admin2, &second, 2, task);
    agent2.ok("POST", "/api/v1/agent/ready", None);
    let dialer =
        |d: &Daemon| Api::new(d, ADMIN).ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = second.get("/metrics");
        if metric(&text, &in_flight) == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second instance puts no call through"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!dialer(&second)["tasks"].as_array().unwrap().is_empty());

    // The first wakes up: at its next renewal it finds its name taken and is fenced.
    first.signal(libc::SIGCONT);
    let said = first
        .try_wait_log(
            "node name lost to another instance: this node is fenced and dials no more",
            Duration::from_secs(8),
        )
        .expect("the stalled instance was not fenced");
    assert_eq!(said["level"], "ERROR", "{said}");
    assert_eq!(said["fields"]["holder"], instance2.as_str(), "{said}");
    let fenced_at = Instant::now();
    // Its probes and metrics say so (set by a task of its own, a moment after the log line).
    let deadline = Instant::now() + Duration::from_secs(2);
    let (status, body) = loop {
        let (status, body) = first.get("/healthz");
        if status == 503 || Instant::now() > deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("fenced"), "{body}");
    assert_eq!(first.get("/readyz").0, 503);
    let (_, text) = first.get("/metrics");
    assert_eq!(metric(&text, "dialerd_node_fenced"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "dialerd_ready"), Some(0.0), "{text}");
    let (_, text) = second.get("/metrics");
    assert_eq!(metric(&text, "dialerd_node_fenced"), Some(0.0), "{text}");
    assert_eq!(second.get("/healthz").0, 200);

    // Its driver is gone and its call hung up, for good; all along, the task's lease and the
    // second instance's call's contact lease stay (the first deletes nothing of them).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(second.open_store());
    let mut gone = None;
    while fenced_at.elapsed() < Duration::from_secs(6) {
        let now = dialerd::store::now_ms();
        let leases = rt.block_on(store.task_leases(now)).unwrap();
        assert_eq!(leases.len(), 1, "the task's lease was deleted");
        assert_eq!((leases[0].task_id, leases[0].node.as_str()), (task, "n1"));
        assert!(
            !rt.block_on(store.leases()).unwrap().is_empty(),
            "the second instance's call lost its contact's lease"
        );
        let idle = dialer(&first)["tasks"] == json!([]);
        let (_, text) = first.get("/metrics");
        let idle = idle && metric(&text, &in_flight).unwrap_or(0.0) == 0.0;
        match gone {
            None if idle => gone = Some(fenced_at.elapsed()),
            Some(_) => assert!(idle, "the fenced instance dials again"),
            None => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone = gone.expect("the fenced instance still runs its driver");
    println!("fenced instance idle {gone:?} after its fence was logged");
    assert!(gone < Duration::from_secs(3), "{gone:?}");
    // The second instance still dials the task, under the name it holds.
    let v = admin2.ok("GET", "/api/v1/nodes", None);
    assert_eq!(v["nodes"][0]["instance"], instance2.as_str(), "{v}");
    assert_eq!(v["tasks"][0]["node"], "n1", "{v}");
    assert!(!dialer(&second)["tasks"].as_array().unwrap().is_empty());
    let (_, text) = second.get("/metrics");
    assert_eq!(metric(&text, &in_flight), Some(1.0), "{text}");
    drop(rt);
}
