//! Agent sessions against the real daemon: SIPp is the agent's phone (it registers with an
//! `[[agents]]` account, then auto-answers the session call), the agent logs in, goes ready,
//! pauses, is steered by a supervisor, watched over WebSockets, and logs out; a phone that
//! hangs up logs its agent out.

mod common;

use common::agent_phone::{free_udp_port, scenario, sipp};
use common::api::{campaign, user, Api, ADMIN, BASE};
use common::ws::Ws;
use common::Daemon;
use serde_json::{json, Value};
use std::io::Read;
use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

const CONFIG: &str = "[sip]\ndigest_algorithms = [\"MD5\"]\n\
    [[agents]]\nusername = \"agent1\"\npassword = \"sipp-agent-secret\"\n\
    [sessions]\npause_reasons = [\"break\", \"coffee\"]\nring_timeout = \"10s\"\n";

/// SIPp as the agent's phone on `port`, answering one session call with `xml`.
fn phone(xml: &str, port: u16, daemon: SocketAddr) -> Child {
    let media = common::agent_phone::free_rtp_echo_port();
    sipp()
        .arg("-sf")
        .arg(scenario(xml))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &media.to_string(), "-rtp_echo"])
        .args(["-m", "1", "-timeout", "60", "-timeout_error", "-nostdin"])
        // answer_then_hang_up.xml hangs up this long after answering.
        .args(["-d", "1500"])
        .arg(daemon.to_string())
        .spawn()
        .unwrap()
}

/// Registers agent1 (an `[[agents]]` account) with a Contact on `phone_port`.
fn register(phone_port: u16, daemon: SocketAddr) {
    common::agent_phone::register("agent1", "sipp-agent-secret", phone_port, daemon);
}

/// Waits for SIPp to finish; its exit status says whether the phone saw what it expects.
fn finished(mut child: Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            assert!(status.success(), "{what}: SIPp {status:?}: {err}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("{what}: SIPp still running (no BYE?)");
}

fn ticket(api: &Api) -> String {
    let t = api.ok("POST", "/api/v1/agent/ticket", None);
    t["ticket"].as_str().unwrap().to_string()
}

fn listed(sup: &Api, id: i64) -> Value {
    let list = sup.ok("GET", "/api/v1/agents", None);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("agent {id} not listed: {list}"))
}

fn state(v: &Value) -> (String, Value) {
    (
        v["state"].as_str().unwrap().to_string(),
        v["reason"].clone(),
    )
}

both_stores! {
    fn an_agent_logs_in_on_the_phone_of_its_sip_login_from_the_api_for_its_own_tasks() {
        let d = Daemon::start_with(
            &format!("{BASE}{CONFIG}"),
            &[("DIALERD_ADMIN_TOKEN", ADMIN)],
        );
        let admin = Api::new(&d, ADMIN);
        let (_, mine) = campaign(&admin, "Mine");
        let (_, other) = campaign(&admin, "Other");
        // The phone's login differs from the agent's name: the session call must follow it.
        let (id, ann) = user(&admin, "ann", "agent");
        admin.ok(
            "PATCH",
            &format!("/api/v1/users/{id}"),
            Some(json!({"sip_username": "desk-17", "sip_password": "store-secret-1", "tasks": [mine]})),
        );
        let phone_port = free_udp_port();
        let answering = phone("answer.xml", phone_port, d.sip);
        common::agent_phone::register("desk-17", "store-secret-1", phone_port, d.sip);

        let (status, p) = ann.call(
            "POST",
            "/api/v1/agent/session",
            Some(json!({"tasks": [mine, other], "phone": "sip"})),
        );
        assert_eq!((status, p["field"].as_str()), (422, Some("tasks")), "{p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("task {other}")),
            "{p}"
        );

        let v = ann.ok(
            "POST",
            "/api/v1/agent/session",
            Some(json!({"tasks": [mine], "phone": "sip"})),
        );
        assert_eq!(state(&v), ("paused".into(), json!("login")), "{v}");
        let v = ann.ok("DELETE", "/api/v1/agent/session", None);
        assert_eq!(state(&v).0, "logged_out", "{v}");
        finished(answering, "answer.xml");
    }
}

both_stores! {
    fn an_agent_logs_in_on_a_sip_phone_works_and_logs_out() {
        let d = Daemon::start_with(
            &format!("{BASE}{CONFIG}"),
            &[("DIALERD_ADMIN_TOKEN", ADMIN)],
        );
        let admin = Api::new(&d, ADMIN);
        let (_, task) = campaign(&admin, "Sessions");
        let (a1, agent1) = user(&admin, "agent1", "agent");
        let (_, agent2) = user(&admin, "agent2", "agent");
        let (_, sup) = user(&admin, "sup", "supervisor");
        let login = json!({"tasks": [task], "phone": "sip"});

        // Bad requests, and a phone that is not registered yet.
        let (status, p) = agent1.call(
            "POST",
            "/api/v1/agent/session",
            Some(json!({"tasks": [task], "phone": "desk"})),
        );
        assert_eq!((status, p["field"].as_str()), (422, Some("phone")), "{p}");
        let (status, p) = agent1.call(
            "POST",
            "/api/v1/agent/session",
            Some(json!({"tasks": [task + 1000], "phone": "sip"})),
        );
        assert_eq!((status, p["field"].as_str()), (422, Some("tasks")), "{p}");
        let (status, p) = agent1.call("POST", "/api/v1/agent/session", Some(login.clone()));
        assert_eq!(status, 502, "{p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("no phone is registered"),
            "{p}"
        );
        let (status, p) = agent2.call("POST", "/api/v1/agent/session", Some(login.clone()));
        assert_eq!(status, 409, "agent2 has no SIP account: {p}");
        let (status, _) = sup.call("POST", "/api/v1/agent/session", Some(login.clone()));
        assert_eq!(status, 403, "only agents have a session of their own");

        // The phone registers; the agent watches its events, then logs in.
        let phone_port = free_udp_port();
        let answering = phone("answer.xml", phone_port, d.sip);
        register(phone_port, d.sip);
        let mut events = Ws::open(
            d.http,
            &format!("/api/v1/agent/events?ticket={}", ticket(&agent1)),
        )
        .unwrap();
        let started = Instant::now();
        let v = agent1.ok("POST", "/api/v1/agent/session", Some(login.clone()));
        println!("session up after {:?}", started.elapsed());
        assert_eq!(state(&v), ("paused".into(), json!("login")), "{v}");
        assert_eq!(v["tasks"], json!([task]));
        let (status, _) = agent1.call("POST", "/api/v1/agent/session", Some(login.clone()));
        assert_eq!(status, 409, "one session at a time");

        let row = listed(&sup, a1);
        assert_eq!(state(&row), ("paused".into(), json!("login")), "{row}");
        for key in [
            "id",
            "name",
            "state",
            "reason",
            "since",
            "call_id",
            "contact_id",
            "tasks",
        ] {
            assert!(row.get(key).is_some(), "{key} missing: {row}");
        }
        assert_eq!(row["name"], "agent1");
        assert_eq!(agent1.call("GET", "/api/v1/agents", None).0, 403);

        // Ready, pause with a reason, a reason not configured.
        let v = agent1.ok("POST", "/api/v1/agent/ready", None);
        assert_eq!(state(&v), ("ready".into(), Value::Null));
        let v = agent1.ok(
            "POST",
            "/api/v1/agent/pause",
            Some(json!({"reason": "coffee"})),
        );
        assert_eq!(state(&v), ("paused".into(), json!("coffee")));
        let (status, p) = agent1.call(
            "POST",
            "/api/v1/agent/pause",
            Some(json!({"reason": "lunch"})),
        );
        assert_eq!((status, p["field"].as_str()), (422, Some("reason")), "{p}");
        assert_eq!(
            agent1.call("POST", "/api/v1/agent/hangup", None).0,
            409,
            "no call to hang up"
        );

        // Another agent cannot act on agent1; a supervisor can.
        let (status, _) = agent2.call("POST", &format!("/api/v1/agents/{a1}/ready"), None);
        assert_eq!(status, 403);
        assert_eq!(agent2.call("POST", "/api/v1/agent/ready", None).0, 409);
        let v = sup.ok("POST", &format!("/api/v1/agents/{a1}/ready"), None);
        assert_eq!(state(&v), ("ready".into(), Value::Null));
        let metrics = d.get("/metrics").1;
        let series = format!("dialerd_agents{{state=\"ready\",task=\"{task}\"}}");
        assert_eq!(common::metric(&metrics, &series), Some(1.0), "{metrics}");

        // The events came in order, numbered; a reconnect with `since` gets what followed.
        // The failed login before: its last event is the agent's state when the stream opened.
        let e = events.next();
        assert_eq!(
            (e["seq"].as_u64(), e["reason"].as_str()),
            (Some(2), Some("leg_failed")),
            "{e}"
        );
        let want = [
            ("logged_out", json!("connecting")),
            ("paused", json!("login")),
            ("ready", Value::Null),
            ("paused", json!("coffee")),
            ("ready", Value::Null),
        ];
        for (i, (st, reason)) in want.iter().enumerate() {
            let e = events.next();
            assert_eq!(e["type"], "state", "{e}");
            assert_eq!(e["seq"], i as u64 + 3, "{e}");
            assert_eq!(e["agent"], a1);
            assert_eq!(
                (e["state"].as_str().unwrap(), &e["reason"]),
                (*st, reason),
                "{e}"
            );
        }
        let t = ticket(&agent1);
        let mut again = Ws::open(d.http, &format!("/api/v1/agent/events?ticket={t}&since=5")).unwrap();
        assert_eq!(again.next()["seq"], 6);
        assert_eq!(again.next()["seq"], 7);
        assert_eq!(
            Ws::open(d.http, &format!("/api/v1/agent/events?ticket={t}")).err(),
            Some(401),
            "a ticket serves once"
        );
        let mut queue = Ws::open(
            d.http,
            &format!("/api/v1/queues/{task}/events?ticket={}", ticket(&sup)),
        )
        .unwrap();
        let e = queue.next();
        assert_eq!(
            (e["agent"].as_i64(), e["state"].as_str()),
            (Some(a1), Some("ready")),
            "{e}"
        );
        assert_eq!(
            Ws::open(
                d.http,
                &format!("/api/v1/queues/{task}/events?ticket={}", ticket(&agent2))
            )
            .err(),
            Some(403)
        );

        // Logout hangs up the phone (SIPp waits for that BYE).
        let v = agent1.ok("DELETE", "/api/v1/agent/session", None);
        assert_eq!(state(&v), ("logged_out".into(), json!("logout")));
        finished(answering, "answer.xml");
        let e = events.next();
        assert_eq!(
            (e["seq"].as_u64(), e["state"].as_str()),
            (Some(8), Some("logged_out"))
        );
        let e = queue.next();
        assert_eq!(
            (e["agent"].as_i64(), e["reason"].as_str()),
            (Some(a1), Some("logout"))
        );

        // The phone hangs up during the next session: the agent is logged out, leg_lost.
        let hanging_up = phone("answer_then_hang_up.xml", phone_port, d.sip);
        let v = sup.ok("POST", &format!("/api/v1/agents/{a1}/session"), Some(login));
        assert_eq!(state(&v), ("paused".into(), json!("login")));
        finished(hanging_up, "answer_then_hang_up.xml");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let row = listed(&sup, a1);
            if state(&row) == ("logged_out".into(), json!("leg_lost")) {
                break;
            }
            assert!(Instant::now() < deadline, "still {row}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let seen: Vec<Value> = (0..3).map(|_| events.next()).collect();
        assert_eq!(seen[2]["reason"], "leg_lost", "{seen:?}");
        assert_eq!(seen[2]["seq"], 11, "{seen:?}");
        assert_eq!(
            sup.call("POST", &format!("/api/v1/agents/{a1}/ready"), None)
                .0,
            409,
            "no session left to steer"
        );
    }
}

both_stores! {
    fn a_remote_agent_on_a_number_hears_the_join_tone_then_silence_and_silent_rtp_ends_the_session() {
        let far = common::phone::Phone::new();
        let config = format!(
            "{BASE}[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {}\nkeepalive = \"0s\"\n\
             [media]\nrtp_timeout = \"3s\"\n",
            far.port()
        );
        let d = Daemon::start_with(&config, &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
        let admin = Api::new(&d, ADMIN);
        let (_, task) = campaign(&admin, "Remote");
        let (id, agent) = user(&admin, "remote", "agent");
        let (_, sup) = user(&admin, "sup", "supervisor");
        // The far phone answers and never sends RTP: dialerd hangs up at media.rtp_timeout.
        let phone = std::thread::spawn(move || {
            far.serve(common::phone::Behaviour::Answer, Duration::from_secs(20))
        });
        let v = agent.ok(
            "POST",
            "/api/v1/agent/session",
            Some(json!({"tasks": [task], "phone": "+4930123456"})),
        );
        assert_eq!(state(&v), ("paused".into(), json!("login")), "{v}");
        let heard = phone.join().unwrap();
        assert!(
            heard.invite.starts_with("INVITE sip:+4930123456@"),
            "{}",
            heard.invite
        );
        assert!(
            !heard.invite.contains("answer-after"),
            "no auto-answer hints to a number"
        );
        assert!(heard.ended, "dialerd hung up the silent leg");
        // 20 ms frames: 100 ms of 440 Hz, 100 ms of silence, 100 ms of 440 Hz, then silence.
        let loud: Vec<bool> = heard
            .payloads
            .iter()
            .map(|p| {
                p.iter()
                    .map(|b| common::rtp::ulaw(*b).abs())
                    .max()
                    .unwrap_or(0)
                    > 3000
            })
            .collect();
        assert!(loud.len() > 50, "{} frames heard", loud.len());
        let first = loud.iter().position(|l| *l).expect("a join tone");
        let want = [
            true, true, true, true, true, false, false, false, false, false,
        ];
        assert_eq!(loud[first..first + 10], want, "{loud:?}");
        assert_eq!(loud[first + 10..first + 15], [true; 5], "{loud:?}");
        assert!(
            loud[first + 15..].iter().all(|l| !l),
            "silence after the tone"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let row = listed(&sup, id);
            if state(&row) == ("logged_out".into(), json!("leg_lost")) {
                break;
            }
            assert!(Instant::now() < deadline, "still {row}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
