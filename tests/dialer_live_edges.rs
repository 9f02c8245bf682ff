//! The live driver's edges against the real daemon and SIPp: one agent serving two
//! progressive call tasks gets one customer at a time and nobody is abandoned; a task switched
//! from progressive to power while it dials dials as power at once; no call is placed while
//! the only trunk is down, and no more at once than the trunk's `max_calls`; customers who
//! answer and hang up at once, and an answer crossing dialerd's CANCEL, leave the agent ready
//! and each contact with one attempt; a store whose writer is held up holds up no agent input.

mod common;

use common::api::{user, Api, ADMIN};
use common::dialer::*;
use common::metric;
use serde_json::json;
use std::time::{Duration, Instant};

both_stores! {
    fn one_agent_on_two_progressive_tasks_gets_one_customer_at_a_time_and_none_is_abandoned() {
        let carrier_port = free_udp_port();
        let per_task = 2;
        let far = carrier("dialer/carrier_talk.xml", carrier_port, 2 * per_task, false);
        let d = start(carrier_port);
        let admin = Api::new(&d, ADMIN);
        let settings = json!({"queue": "sales", "dial_mode": "progressive", "wrap_up_seconds": 1});
        let (c1, t1) = dialing_campaign(&admin, "Shared one", settings.clone(), per_task, 0);
        let (c2, t2) = dialing_campaign(&admin, "Shared two", settings, per_task, 0);
        let (_, agent1) = user(&admin, "agent1", "agent");
        let ph = phone("agent1", "sipp-agent-secret-1", d.sip);
        agent1.ok(
            "POST",
            "/api/v1/agent/session",
            Some(json!({"tasks": [t1, t2], "phone": "sip"})),
        );
        agent1.ok("POST", "/api/v1/agent/ready", None);
        let started = Instant::now();
        for c in [c1, c2] {
            admin.ok(
                "PATCH",
                &format!("/api/v1/campaigns/{c}"),
                Some(json!({"status": "enabled"})),
            );
        }
        let done = |admin: &Api| {
            [c1, c2].iter().all(|c| {
                admin
                    .all_contacts(*c, "", 100)
                    .iter()
                    .all(|k| k["attempts"].as_i64() == Some(1))
            })
        };
        let mut most = 0.0f64;
        while !done(&admin) {
            assert!(
                started.elapsed() < Duration::from_secs(45),
                "contacts not all called: {:?} {:?}",
                admin.all_contacts(c1, "", 100),
                admin.all_contacts(c2, "", 100)
            );
            let (_, text) = d.get("/metrics");
            let in_flight: f64 = [t1, t2]
                .iter()
                .map(|t| metric(&text, &format!("dialerd_calls_in_flight{{task=\"{t}\"}}")))
                .map(|v| v.unwrap_or(0.0))
                .sum();
            most = most.max(in_flight);
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("every contact called after {:?}", started.elapsed());
        assert_eq!(most, 1.0, "one agent had {most} calls in flight at once");
        for c in [c1, c2] {
            for k in admin.all_contacts(c, "", 100) {
                assert_ne!(k["detail"], "$abandoned", "{k}");
            }
        }
        let ev = events(&agent1);
        let offered = ev.iter().filter(|e| e["type"] == "call.offered").count();
        let connected = ev.iter().filter(|e| e["type"] == "call.connected").count();
        assert_eq!((offered, connected), (2 * per_task, 2 * per_task), "{ev:?}");
        let (_, text) = d.get("/metrics");
        for c in [c1, c2] {
            let abandoned =
                format!("dialerd_dialer_calls_total{{campaign=\"{c}\",result=\"abandoned\"}}");
            assert_eq!(metric(&text, &abandoned), None, "campaign {c}: {text}");
        }
        finished(far, "carrier", Duration::from_secs(10));
        agent1.ok("DELETE", "/api/v1/agent/session", None);
        finished(ph, "agent phone", Duration::from_secs(10));
    }
}

both_stores! {
    fn a_task_switched_from_progressive_to_power_while_dialing_dials_as_power() {
        let carrier_port = free_udp_port();
        let far = carrier("dialer/carrier_talk.xml", carrier_port, 20, false);
        let d = start(carrier_port);
        let admin = Api::new(&d, ADMIN);
        let (c, task) = dialing_campaign(
            &admin,
            "Switched",
            json!({"queue": "sales", "dial_mode": "progressive", "wrap_up_seconds": 1}),
            20,
            0,
        );
        upload_safe_harbour(&admin, c, 2.5);
        let (_, agent1) = user(&admin, "agent1", "agent");
        let ph = phone("agent1", "sipp-agent-secret-1", d.sip);
        agent1.ok(
            "POST",
            "/api/v1/agent/session",
            Some(json!({"tasks": [task], "phone": "sip"})),
        );
        agent1.ok("POST", "/api/v1/agent/ready", None);
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "enabled"})),
        );
        let figures = |admin: &Api| {
            admin.ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None)["tasks"][0].clone()
        };
        let in_flight = || {
            let (_, text) = d.get("/metrics");
            metric(
                &text,
                &format!("dialerd_calls_in_flight{{task=\"{task}\"}}"),
            )
            .unwrap_or(0.0)
        };
        // Progressive with one agent: one call at a time.
        let started = Instant::now();
        let mut most = 0.0f64;
        while figures(&admin)["placed"].as_u64().unwrap_or(0) < 2 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{}",
                figures(&admin)
            );
            most = most.max(in_flight());
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(figures(&admin)["mode"], "progressive");
        assert_eq!(
            most, 1.0,
            "progressive with one agent had {most} calls at once"
        );

        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}/tasks/{task}"),
            Some(json!({"settings": {"queue": "sales", "dial_mode": "power",
                "calls_per_ready_agent": 3.0, "wrap_up_seconds": 1}})),
        );
        let switched = Instant::now();
        let mut most = 0.0f64;
        while most < 2.0 {
            assert!(
                switched.elapsed() < Duration::from_secs(15),
                "still one call at a time: {}",
                figures(&admin)
            );
            if figures(&admin)["mode"] == "power" {
                most = most.max(in_flight());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("power after {:?}, {most} calls at once", switched.elapsed());
        drop(far);
        drop(ph);
    }
}

/// The config of [`start`] with fast SIP timers, the carrier's trunk probed every `keepalive`
/// and given the `trunk` lines.
fn start_with_trunk(carrier_port: u16, keepalive: &str, trunk: &str) -> common::Daemon {
    let fast = AGENTS.replacen("[sip]\n", "[sip]\nt1 = \"20ms\"\nt2 = \"40ms\"\n", 1);
    let cfg = config(carrier_port).replacen(AGENTS, &fast, 1).replacen(
        "keepalive = \"0s\"",
        &format!("keepalive = \"{keepalive}\""),
        1,
    ) + trunk;
    common::Daemon::start_with(&cfg, &[("DIALERD_ADMIN_TOKEN", ADMIN)])
}

/// An agent (agent1) on its SIPp phone, logged in to `task` and ready.
fn ready_agent(admin: &Api, d: &common::Daemon, task: i64) -> (Api, Sipp) {
    let (agent1, ph) = sip_agent(admin, d, 1, task);
    agent1.ok("POST", "/api/v1/agent/ready", None);
    (agent1, ph)
}

both_stores! {
    fn no_call_is_placed_while_the_only_trunk_is_down() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        silent
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = silent.local_addr().unwrap().port();
        let d = start_with_trunk(port, "200ms", "");
        let admin = Api::new(&d, ADMIN);
        let (c, task) = dialing_campaign(
            &admin,
            "Trunk down",
            json!({"queue": "sales", "dial_mode": "progressive"}),
            2,
            0,
        );
        let (agent1, ph) = ready_agent(&admin, &d, task);
        let heard = |silent: &std::net::UdpSocket| {
            let mut buf = [0u8; 4096];
            let mut invites = 0;
            while let Ok((n, _)) = silent.recv_from(&mut buf) {
                if buf[..n].starts_with(b"INVITE ") {
                    invites += 1;
                }
            }
            invites
        };
        // Its keepalives unanswered, the trunk goes down.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let trunks = admin.ok("GET", "/api/v1/trunks", None);
            if trunks[0]["state"] == "down" {
                break;
            }
            assert!(Instant::now() < deadline, "trunk still up: {trunks}");
            heard(&silent);
        }
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "enabled"})),
        );
        let started = Instant::now();
        let mut invites = 0;
        while started.elapsed() < Duration::from_secs(4) {
            invites += heard(&silent);
        }
        let live = admin.ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
        assert_eq!(live["tasks"][0]["agents"], 1, "driver not running: {live}");
        assert_eq!(
            (invites, &live["tasks"][0]["placed"]),
            (0, &json!(0)),
            "{live}"
        );
        for k in admin.all_contacts(c, "", 10) {
            assert_eq!(k["attempts"], 0, "{k}");
        }
        agent1.ok("DELETE", "/api/v1/agent/session", None);
        drop(ph);
    }
}

both_stores! {
    fn a_power_campaign_places_no_more_calls_than_its_trunk_takes() {
        let carrier_port = free_udp_port();
        let contacts = 4;
        let far = carrier("dialer/carrier_talk.xml", carrier_port, contacts, false);
        let d = start_with_trunk(carrier_port, "0s", "max_calls = 1\n");
        let admin = Api::new(&d, ADMIN);
        let (c, task) = dialing_campaign(
            &admin,
            "One line",
            json!({"queue": "sales", "dial_mode": "power", "calls_per_ready_agent": 3.0,
                "wrap_up_seconds": 1}),
            contacts,
            0,
        );
        upload_safe_harbour(&admin, c, 2.5);
        let (agent1, ph) = ready_agent(&admin, &d, task);
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "enabled"})),
        );
        let started = Instant::now();
        let mut most = 0;
        while !admin
            .all_contacts(c, "", 100)
            .iter()
            .all(|k| k["attempts"].as_i64() == Some(1))
        {
            assert!(
                started.elapsed() < Duration::from_secs(40),
                "not every contact called: {:?}",
                admin.all_contacts(c, "", 100)
            );
            let trunks = admin.ok("GET", "/api/v1/trunks", None);
            most = most.max(trunks[0]["active_calls"].as_u64().unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("every contact called after {:?}", started.elapsed());
        assert_eq!(most, 1, "the trunk took {most} calls at once");
        // No call failed for want of a line: each was answered by the carrier.
        for k in admin.all_contacts(c, "", 100) {
            let id = k["id"].as_i64().unwrap();
            let full = admin.ok("GET", &format!("/api/v1/campaigns/{c}/contacts/{id}"), None);
            let attempt = full["history"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["change"]["op"] == "attempt")
                .unwrap()["change"]
                .clone();
            assert_eq!(attempt["sip_code"], 200, "{full}");
        }
        finished(far, "carrier", Duration::from_secs(10));
        agent1.ok("DELETE", "/api/v1/agent/session", None);
        finished(ph, "agent phone", Duration::from_secs(10));
    }
}

/// Waits until every contact of `c` has one attempt; then the agent is ready again.
fn all_called_and_agent_ready(admin: &Api, c: i64, within: Duration) {
    let started = Instant::now();
    while !admin
        .all_contacts(c, "", 100)
        .iter()
        .all(|k| k["attempts"].as_i64() == Some(1))
    {
        assert!(
            started.elapsed() < within,
            "not every contact called: {:?}",
            admin.all_contacts(c, "", 100)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("every contact called after {:?}", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let agents = admin.ok("GET", "/api/v1/agents", None);
        let state = agents["items"][0]["state"].clone();
        if state == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "agent stuck: {agents}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The attempt recorded for each contact of `c`, once every contact has one (attempts are
/// written by the daemon's attempt writer a moment after their call ends).
fn attempts(admin: &Api, c: i64) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let each: Vec<(serde_json::Value, Vec<serde_json::Value>)> = admin
            .all_contacts(c, "", 100)
            .iter()
            .map(|k| {
                let id = k["id"].as_i64().unwrap();
                let full = admin.ok("GET", &format!("/api/v1/campaigns/{c}/contacts/{id}"), None);
                let found: Vec<_> = full["history"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|h| h["change"]["op"] == "attempt")
                    .map(|h| h["change"].clone())
                    .collect();
                (full, found)
            })
            .collect();
        if each.iter().all(|(_, found)| !found.is_empty()) || Instant::now() > deadline {
            return each
                .into_iter()
                .map(|(full, found)| {
                    assert_eq!(found.len(), 1, "{full}");
                    found[0].clone()
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

both_stores! {
    fn customers_who_answer_and_hang_up_at_once_leave_the_agent_ready() {
        let carrier_port = free_udp_port();
        let contacts = 3;
        let far = carrier(
            "dialer/carrier_hangup_at_once.xml",
            carrier_port,
            contacts,
            false,
        );
        let d = start(carrier_port);
        let admin = Api::new(&d, ADMIN);
        let (c, task) = dialing_campaign(
            &admin,
            "Gone at once",
            json!({"queue": "sales", "dial_mode": "progressive", "wrap_up_seconds": 1}),
            contacts,
            0,
        );
        let (agent1, ph) = ready_agent(&admin, &d, task);
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "enabled"})),
        );
        all_called_and_agent_ready(&admin, c, Duration::from_secs(30));
        let found = attempts(&admin, c);
        println!(
            "results: {:?}",
            found
                .iter()
                .map(|a| a["result"].clone())
                .collect::<Vec<_>>()
        );
        for a in &found {
            assert_eq!(a["sip_code"], 200, "{a}");
            // The call record is written when the call's media ends, a moment after the attempt.
            let path = format!("/api/v1/calls/{}", a["call_id"].as_str().unwrap());
            let deadline = Instant::now() + Duration::from_secs(5);
            let rec = loop {
                match admin.call("GET", &path, None) {
                    (200, rec) => break rec,
                    (status, p) => assert!(Instant::now() < deadline, "{status} {p}"),
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            assert!(rec["answered_at"].as_i64().is_some(), "{rec}");
        }
        finished(far, "carrier", Duration::from_secs(10));
        agent1.ok("DELETE", "/api/v1/agent/session", None);
        finished(ph, "agent phone", Duration::from_secs(10));
    }
}

both_stores! {
    fn an_answer_crossing_the_cancel_is_put_through_to_the_agent() {
        let carrier_port = free_udp_port();
        let far = carrier("dialer/carrier_cancel_crossing.xml", carrier_port, 1, false);
        let d = start(carrier_port);
        let admin = Api::new(&d, ADMIN);
        let (c, task) = dialing_campaign(
            &admin,
            "Crossing",
            json!({"queue": "sales", "dial_mode": "progressive", "wrap_up_seconds": 1,
                "ring_timeout_seconds": 15}),
            1,
            0,
        );
        let (agent1, ph) = ready_agent(&admin, &d, task);
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "enabled"})),
        );
        all_called_and_agent_ready(&admin, c, Duration::from_secs(30));
        let a = attempts(&admin, c).remove(0);
        assert_eq!(
            (&a["sip_code"], &a["result"]),
            (&json!(200), &json!("$no_result")),
            "{a}"
        );
        let ev = events(&agent1);
        let kinds: Vec<&str> = ev
            .iter()
            .filter(|e| e["type"] != "state")
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "call.offered",
                "call.connected",
                "call.customer_hangup",
                "call.ended",
                "wrap_up"
            ],
            "{ev:?}"
        );
        finished(far, "carrier", Duration::from_secs(10));
        agent1.ok("DELETE", "/api/v1/agent/session", None);
        finished(ph, "agent phone", Duration::from_secs(10));
    }
}

both_stores! {
    fn an_agent_phone_that_vanishes_mid_call_logs_the_agent_out_and_the_customer_is_hung_up() {
        let carrier_port = free_udp_port();
        // The customer answers and waits for dialerd's BYE.
        let far = carrier("dialer/carrier_waits_for_bye.xml", carrier_port, 1, true);
        let d = start(carrier_port);
        let admin = Api::new(&d, ADMIN);
        let (c, task) = dialing_campaign(
            &admin,
            "Vanishing agent",
            json!({"queue": "sales", "dial_mode": "progressive", "wrap_up_seconds": 30}),
            1,
            0,
        );
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "enabled"})),
        );
        let (_, agent1) = user(&admin, "agent1", "agent");
        // The phone answers the session call and hangs up 4 s later, in the middle of the call.
        let ph = phone_on(
            "agent/answer_then_hang_up.xml",
            &["-d", "4000"],
            "agent1",
            "sipp-agent-secret-1",
            d.sip,
        );
        agent1.ok(
            "POST",
            "/api/v1/agent/session",
            Some(json!({"tasks": [task], "phone": "sip"})),
        );
        agent1.ok("POST", "/api/v1/agent/ready", None);
        let talking = Instant::now() + Duration::from_secs(4);
        let mut was_talking = false;
        loop {
            let (_, v) = agent1.call("GET", "/api/v1/agent/session", None);
            was_talking |= v["state"] == "talking";
            if v["state"] == "logged_out" {
                assert_eq!(v["reason"], "leg_lost", "{v}");
                break;
            }
            assert!(
                Instant::now() < talking + Duration::from_secs(10),
                "still {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(was_talking, "the agent never talked to the customer");
        // The customer is hung up (SIPp's BYE wait passes) and the attempt is written once.
        finished(far, "carrier", Duration::from_secs(10));
        finished(ph, "agent phone", Duration::from_secs(10));
        let found = attempts(&admin, c);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["sip_code"], 200, "{:?}", found[0]);
        assert_eq!(found[0]["result"], "$no_result", "{:?}", found[0]);
    }
}

/// The campaign's live figures: its task's agents by state, as its driver last published them.
fn agents_by_state(admin: &Api, c: i64) -> serde_json::Value {
    let dialer = admin.ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
    dialer["tasks"][0]["agents_by_state"].clone()
}

#[test]
fn a_store_whose_writer_is_held_holds_up_no_agent_input() {
    let carrier_port = free_udp_port();
    let d = start(carrier_port);
    let admin = Api::new(&d, ADMIN);
    let (c, task) = dialing_campaign(
        &admin,
        "Busy store",
        json!({"queue": "sales", "dial_mode": "progressive"}),
        3,
        0,
    );
    // Paused at login: the driver starts without asking for contacts.
    let (agent1, ph) = sip_agent(&admin, &d, 1, task);
    admin.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}"),
        Some(json!({"status": "enabled"})),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while agents_by_state(&admin, c)["paused"] != 1 {
        assert!(Instant::now() < deadline, "the driver never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Another connection holds SQLite's write lock for 4 s (as a burst of writes would).
    let db = d.dir.path().join("state/dialerd.db");
    let mut lock = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN IMMEDIATE'); print('locked', flush=True)\n\
             time.sleep(4); c.execute('COMMIT')",
        )
        .arg(&db)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(lock.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    // Ready: the driver asks the store for a contact, which waits for the lock.
    agent1.ok("POST", "/api/v1/agent/ready", None);
    std::thread::sleep(Duration::from_millis(300));
    // The driver still takes the agent's pause at once.
    let paused = Instant::now();
    agent1.ok(
        "POST",
        "/api/v1/agent/pause",
        Some(json!({"reason": "break"})),
    );
    while agents_by_state(&admin, c)["paused"] != 1 {
        assert!(
            paused.elapsed() < Duration::from_secs(1),
            "the pause waited for the store: {}",
            agents_by_state(&admin, c)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(lock.wait().unwrap().success());
    agent1.ok("DELETE", "/api/v1/agent/session", None);
    finished(ph, "agent phone", Duration::from_secs(10));
}
