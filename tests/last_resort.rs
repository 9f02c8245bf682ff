//! A callback every node refuses is not lost. Kamailio (conf/kamailio/dialerd-cluster.cfg) in
//! front of two dialerd nodes on one PostgreSQL store relays a carrier's calls (SIPp) to the
//! nodes in turn; a node that does not dial the callback's call task refuses it with 503 while
//! the other one does. When the node dialling it is SIGKILLed, the other refuses the callback
//! too (the dead node's lease has not expired), and Kamailio relays it once more with
//! `X-Dialerd-Last-Resort: 1`: the node takes it as a missed callback (the caller hears they
//! will be called back; the contact's history, the call record and
//! `dialerd_inbound_calls_total{result="missed"}` show it). The same header from a carrier
//! (Kamailio strips it), from a carrier straight to a node (no trunk: refused; a trunk that is
//! not the `cluster_proxy`: refused for the task's node) or from an agent's phone (no trunk)
//! changes nothing.

mod common;

use common::api::{campaign, Api, ADMIN, BASE};
use common::dialer::{free_udp_port, rtp_ports, scenario, sip_agent, Sipp};
use common::pg::{self, Backend};
use common::phone::Phone;
use common::ua::TestUa;
use common::{metric, status_of, ClusterProxy, Daemon};
use serde_json::{json, Value};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const LINE: &str = "+4930555123";
const ACCESS: &str = "4930999111";
const ANN: &str = "+4930123456";
const BOB: &str = "+4930123457";

/// Two nodes behind Kamailio, a verified forward line shown by a progressive call task, Ann
/// and Bob open contacts of it, and agent1 logged in (paused) on the first node, which
/// therefore dials the task.
struct Cluster {
    nodes: Vec<Daemon>,
    proxy: ClusterProxy,
    kamailio: SocketAddr,
    line: i64,
    campaign: i64,
    task: i64,
    contacts: (i64, i64),
    /// The SIP socket of a carrier that is a trunk of every node (`direct`), not the proxy.
    direct: UdpSocket,
    _agent: Sipp,
    _logs: tempfile::TempDir,
}

/// A node named `name` on the store `url`: Kamailio on `k_port` is its trunk for carriers'
/// calls (the cluster proxy); its line verification calls go out through the carrier `far`;
/// the carrier at `direct` is a trunk too.
fn node(url: &str, name: &str, k_port: u16, far: &Phone, direct: u16) -> Daemon {
    let (rtp_min, rtp_max) = rtp_ports();
    let config = format!(
        "{BASE}[sip]\ndigest_algorithms = [\"MD5\"]\n\
         [[agents]]\nusername = \"agent1\"\npassword = \"sipp-agent-secret-1\"\n\
         [[agents]]\nusername = \"agent2\"\npassword = \"sipp-agent-secret-2\"\n\
         [sessions]\nring_timeout = \"10s\"\n\
         [media]\nrtp_port_min = {rtp_min}\nrtp_port_max = {rtp_max}\n\
         [[trunks]]\nname = \"kamailio\"\nhost = \"127.0.0.1\"\nport = {k_port}\nkeepalive = \"0s\"\n\
         cluster_proxy = true\n\
         [[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {}\nkeepalive = \"0s\"\n\
         [[trunks]]\nname = \"direct\"\nhost = \"127.0.0.1\"\nport = {direct}\nkeepalive = \"0s\"\n\
         [lines]\naccess_number = \"{ACCESS}\"\nforward_timeout = \"10s\"\ntrunk = \"carrier\"\n\
         caller_id_pool = [\"+4930999201\"]\n",
        far.port()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("store.url"), url).unwrap();
    Daemon::start_in(
        dir,
        &config,
        &[
            ("DIALERD_ADMIN_TOKEN", ADMIN),
            ("DIALERD__NODE__NAME", name),
        ],
    )
}

impl Cluster {
    fn start() -> Cluster {
        pg::set(Backend::Postgres);
        let url = pg::database();
        let far = Phone::new();
        let k_port = free_udp_port();
        let kamailio = SocketAddr::from(([127, 0, 0, 1], k_port));
        let direct = UdpSocket::bind("127.0.0.1:0").unwrap();
        let direct_port = direct.local_addr().unwrap().port();
        let nodes: Vec<Daemon> = ["n1", "n2"]
            .iter()
            .map(|n| node(&url, n, k_port, &far, direct_port))
            .collect();
        let list: String = nodes
            .iter()
            .map(|d| format!("1 sip:127.0.0.1:{} 0 0\n", d.sip.port()))
            .collect();
        let logs = tempfile::tempdir().unwrap();
        let proxy = ClusterProxy::start(
            logs.path(),
            k_port,
            &list,
            &["DIALERD_TOKEN=\"\"".to_string()],
        );
        let admin = Api::new(&nodes[0], ADMIN);
        let body = json!({"number": LINE, "language": "en", "callback_mode": "forward",
                          "max_wait_seconds": 5});
        let line = common::phone::verified_line(&admin, &far, kamailio, body, ACCESS);
        let (c, task) = campaign(&admin, "Last resort");
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"line_id": line, "status": "enabled",
                        "calling_hours": {"from": "00:00", "to": "24:00"}})),
        );
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}/tasks/{task}"),
            Some(
                json!({"settings": {"queue": "sales", "dial_mode": "progressive",
                                     "wrap_up_seconds": 1}}),
            ),
        );
        // Open, and due only next year: nothing is dialled.
        let contact = |number: &str| {
            admin.ok(
                "POST",
                &format!("/api/v1/campaigns/{c}/contacts"),
                Some(
                    json!({"task_id": task, "phones": [number], "fields": {"name": "Ann"},
                            "follow_up_at": "2099-01-01T09:00:00Z"}),
                ),
            )["id"]
                .as_i64()
                .unwrap()
        };
        let contacts = (contact(ANN), contact(BOB));
        // Agent1 logs in on n1 (paused): n1 takes the task's lease and runs its driver.
        let (_, agent) = sip_agent(&admin, &nodes[0], 1, task);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let held = Api::new(&nodes[1], ADMIN).ok("GET", "/api/v1/nodes", None);
            let running = admin.ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
            if held["tasks"][0]["task_id"] == task
                && held["tasks"][0]["node"] == "n1"
                && running["tasks"][0]["task_id"] == task
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "n1 does not dial task {task}: {held} {running}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Cluster {
            nodes,
            proxy,
            kamailio,
            line,
            campaign: c,
            task,
            contacts,
            direct,
            _agent: agent,
            _logs: logs,
        }
    }

    /// Waits for the caller `sipp` to end; panics with its complaint and Kamailio's log when
    /// its scenario did not pass.
    fn passes(&self, mut sipp: Sipp, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(40);
        let status = loop {
            if let Some(status) = sipp.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: SIPp still running\n{}",
                self.proxy.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = sipp.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("{what}: SIPp {status}: {err}\n{}", self.proxy.log_text());
        }
    }

    /// A count of `dialerd_inbound_calls_total` for the line on node `k`.
    fn inbound(&self, k: usize, result: &str) -> f64 {
        let (_, text) = self.nodes[k].get("/metrics");
        let series = format!(
            "dialerd_inbound_calls_total{{line=\"{}\",result=\"{result}\"}}",
            self.line
        );
        metric(&text, &series).unwrap_or(0.0)
    }

    /// The inbound entries of contact `id`'s history, as node `k` reads it.
    fn inbound_history(&self, k: usize, id: i64) -> Vec<Value> {
        let v = Api::new(&self.nodes[k], ADMIN).ok(
            "GET",
            &format!("/api/v1/campaigns/{}/contacts/{id}", self.campaign),
            None,
        );
        v["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["change"]["op"] == "inbound")
            .cloned()
            .collect()
    }
}

/// A carrier (SIPp) calling `LINE` back through Kamailio as `caller`, with the header line
/// `extra`; it passes when the call is answered and dialerd hangs up.
fn callback(kamailio: SocketAddr, caller: &str, extra: &str) -> Sipp {
    let child = common::agent_phone::sipp()
        .arg("-sf")
        .arg(scenario("proxy/callback_through_proxy.xml"))
        .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
        .args(["-mp", &free_udp_port().to_string()])
        .args(["-s", LINE, "-key", "caller", caller, "-key", "extra", extra])
        .args(["-m", "1", "-timeout", "40", "-timeout_error", "-nostdin"])
        .arg(kamailio.to_string())
        .spawn()
        .unwrap();
    Sipp(child)
}

#[test]
fn a_callback_every_node_refuses_is_taken_as_missed_by_the_last_resort() {
    let mut cl = Cluster::start();
    let (ann, _) = cl.contacts;
    let n2_port = cl.nodes[1].sip.port();
    // n1, which dials the task, dies: its lease holds for up to 15 s, and n2 (no agent of
    // the task) never takes it over.
    cl.nodes[0].signal(libc::SIGKILL);
    cl.nodes[0]
        .wait_exit(Duration::from_secs(5))
        .expect("n1 killed");
    let killed = Instant::now();
    let killed_ms = dialerd::store::now_ms();
    let before = cl.inbound_history(1, ann).len();
    // Ann calls back. n1 is marked down (it does not answer), n2 refuses (another node dials
    // the task), and Kamailio relays the call to n2 once more as the last resort.
    cl.passes(
        callback(cl.kamailio, ANN, "Subject: callback"),
        "Ann's callback answered and hung up",
    );
    let took = killed.elapsed();
    let log = cl.proxy.log_text();
    assert!(
        log.contains(&format!(
            "refused by every node; last resort to sip:127.0.0.1:{n2_port}"
        )),
        "{log}"
    );
    // n2 refused it first (n1's lease still held), then took it as a missed callback (counted
    // once the store has it, after dialerd's BYE).
    assert_eq!(cl.inbound(1, "elsewhere"), 1.0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cl.inbound(1, "missed") < 1.0 {
        assert!(Instant::now() < deadline, "n2 counted no missed callback");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(cl.inbound(1, "missed"), 1.0);
    let history = cl.inbound_history(1, ann);
    assert_eq!(history.len(), before + 1, "{history:?}");
    let entry = &history.last().unwrap()["change"];
    assert_eq!(entry["result"], "$missed_callback", "{entry}");
    let admin = Api::new(&cl.nodes[1], ADMIN);
    let got = admin.ok(
        "GET",
        &format!("/api/v1/campaigns/{}/contacts/{ann}", cl.campaign),
        None,
    );
    assert_eq!(
        (got["status"].as_str(), got["detail"].as_str()),
        (Some("open"), Some("$missed_callback")),
        "{got}"
    );
    // Its call record: inbound, answered, ended as missed, on Ann's contact.
    let call = entry["call_id"]
        .as_str()
        .expect("a call record")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    let record = loop {
        let (status, v) = admin.call("GET", &format!("/api/v1/calls/{call}"), None);
        if status == 200 {
            break v;
        }
        assert!(Instant::now() < deadline, "no call record {call}: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (
            &record["route"],
            &record["end_reason"],
            &record["contact_id"]
        ),
        (&json!("inbound"), &json!("missed"), &json!(ann)),
        "{record}"
    );
    assert!(record["answered_at"].is_i64(), "answered: {record}");
    let answered = record["answered_at"].as_i64().unwrap() - killed_ms;
    println!(
        "task {} of the killed n1: Ann's callback answered on n2 {answered} ms after the \
         kill, hung up after the message {took:?} after it",
        cl.task
    );
}

#[test]
fn the_last_resort_header_from_a_carrier_or_a_phone_changes_nothing() {
    let cl = Cluster::start();
    let (ann, bob) = cl.contacts;
    let n1_port = cl.nodes[0].sip.port();
    // Two carriers' calls carrying the header reach the nodes in turn: one tries n2 first,
    // which refuses it (Kamailio stripped the header), and both wait at n1 for its paused
    // agent, then hear that they will be called back (the line's max_wait, 5 s).
    let forged = "X-Dialerd-Last-Resort: 1";
    let calls = [
        callback(cl.kamailio, ANN, forged),
        callback(cl.kamailio, BOB, forged),
    ];
    for (i, call) in calls.into_iter().enumerate() {
        cl.passes(call, &format!("forged callback {i}"));
    }
    let log = cl.proxy.log_text();
    assert!(!log.contains("last resort"), "{log}");
    assert_eq!(cl.inbound(1, "missed"), 0.0, "n2 took a call:\n{log}");
    assert_eq!(
        cl.inbound(1, "elsewhere"),
        1.0,
        "n2 refused one call:\n{log}"
    );
    // Counted once the store has them, after dialerd's BYE.
    let deadline = Instant::now() + Duration::from_secs(5);
    while cl.inbound(0, "missed") < 2.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(cl.inbound(0, "missed"), 2.0, "n1 took both:\n{log}");
    for id in [ann, bob] {
        let history = cl.inbound_history(0, id);
        assert_eq!(history.len(), 1, "{history:?}");
        // Waited for n1's agent: the line's max_wait.
        assert!(
            history[0]["change"]["waited_ms"].as_i64() >= Some(4500),
            "{history:?}"
        );
    }
    assert!(
        log.contains(&format!(
            "cluster: INVITE for {LINE} failed over to sip:127.0.0.1:{n1_port}"
        )),
        "{log}"
    );

    // Straight from the carrier to n2, which has no trunk there: refused as any stranger.
    let ua = TestUa::new(cl.nodes[1].sip, "forged-direct");
    ua.invite_with(
        LINE,
        &format!("P-Asserted-Identity: <sip:{ANN}@carrier.example>\r\n{forged}\r\n"),
    );
    assert_eq!(status_of(&ua.final_response_without_ack()), 403);

    // Straight from a carrier that is n2's trunk too, but not the cluster proxy: the header
    // proves nothing, so n2 refuses the callback for n1, which dials the task (without the
    // trunk's cluster_proxy check n2 took it as a missed callback: 200).
    let ua = TestUa::on(
        cl.direct.try_clone().unwrap(),
        cl.nodes[1].sip,
        "forged-trunk",
    );
    ua.invite_with(
        LINE,
        &format!("P-Asserted-Identity: <sip:{ANN}@carrier.example>\r\n{forged}\r\n"),
    );
    assert_eq!(status_of(&ua.final_response()), 503);
    assert_eq!(cl.inbound(1, "elsewhere"), 2.0);
    assert_eq!(cl.inbound(1, "missed"), 0.0);

    // From an agent's phone registered with n2 (it may call n2, but is no trunk), as a
    // callback forwarded to the access number: still refused for n1 to take.
    common::agent_phone::register(
        "agent2",
        "sipp-agent-secret-2",
        free_udp_port(),
        cl.nodes[1].sip,
    );
    let out = common::agent_phone::sipp()
        .arg("-sf")
        .arg(scenario("agent/access_number_last_resort.xml"))
        .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
        .args(["-mp", &free_udp_port().to_string()])
        .args(["-s", ACCESS, "-key", "line", LINE, "-key", "caller", ANN])
        .args(["-key", "sip_user", "agent2", "-au", "agent2"])
        .args(["-ap", "sipp-agent-secret-2"])
        .args(["-m", "1", "-timeout", "20", "-timeout_error", "-nostdin"])
        .arg(cl.nodes[1].sip.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the phone's call: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(cl.inbound(1, "elsewhere"), 3.0);
    assert_eq!(cl.inbound(1, "missed"), 0.0);
    assert_eq!(cl.inbound_history(0, ann).len(), 1);
}
