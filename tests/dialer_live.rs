//! The live campaign driver against the real daemon: SIPp is the carrier behind a trunk and
//! the agents' phones. A progressive campaign calls every contact once, puts each answered
//! customer through to a ready agent (events `call.offered` before `call.connected`) and
//! records each attempt with its SIP code and the agent's result (or `$no_result`); a power
//! campaign with one agent abandons the customers no agent can take, and they hear the
//! safe-harbour message before dialerd hangs up; a preview agent skips an offer and accepts
//! the next ones; a particular callback due is dialled for its owner once the owner is ready,
//! and for anyone once the task's grace has passed.

mod common;

use common::api::{user, Api, ADMIN};
use common::{metric, metric_sum, Daemon};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::dialer::*;

both_stores! {
    fn a_progressive_campaign_calls_every_contact_once_and_puts_each_answer_through_to_an_agent() {
        let carrier_port = free_udp_port();
        let contacts = 10;
        let far = carrier("dialer/carrier_talk.xml", carrier_port, contacts, false);
        let d = start(carrier_port);
        let admin = Api::new(&d, ADMIN);
        let (c, task) = dialing_campaign(
            &admin,
            "Progressive",
            json!({"queue": "sales", "dial_mode": "progressive", "wrap_up_seconds": 2}),
            contacts,
            2,
        );
        let (a1, agent1) = user(&admin, "agent1", "agent");
        let (a2, agent2) = user(&admin, "agent2", "agent");
        let phones = [
            phone("agent1", "sipp-agent-secret-1", d.sip),
            phone("agent2", "sipp-agent-secret-2", d.sip),
        ];
        for a in [&agent1, &agent2] {
            a.ok(
                "POST",
                "/api/v1/agent/session",
                Some(json!({"tasks": [task], "phone": "sip"})),
            );
            a.ok("POST", "/api/v1/agent/ready", None);
        }
        // Not in wrap-up: no result yet; a bad status is named.
        let result = json!({"status": "success", "detail": "sale", "follow_up": "auto"});
        let (status, p) = agent1.call("POST", "/api/v1/agent/result", Some(result.clone()));
        assert_eq!(status, 409, "{p}");
        let (status, p) = agent1.call(
            "POST",
            "/api/v1/agent/result",
            Some(json!({"status": "sold", "detail": "sale"})),
        );
        assert_eq!((status, p["field"].as_str()), (422, Some("status")), "{p}");

        let started = Instant::now();
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "enabled"})),
        );
        // agent1 posts a result at each wrap-up; agent2 lets the wrap-up time run out.
        let mut posted = 0;
        let mut refused = 0;
        let mut max_in_flight = 0.0f64;
        let mut occupancy = Vec::new();
        let done = |admin: &Api| {
            admin
                .all_contacts(c, "", 100)
                .iter()
                .all(|k| k["attempts"].as_i64() == Some(1))
        };
        while !done(&admin) {
            assert!(
                started.elapsed() < Duration::from_secs(45),
                "contacts not all called: {:?}",
                admin.all_contacts(c, "", 100)
            );
            let (_, text) = d.get("/metrics");
            let series = format!("dialerd_calls_in_flight{{task=\"{task}\"}}");
            max_in_flight = max_in_flight.max(metric(&text, &series).unwrap_or(0.0));
            let series = format!("dialerd_agent_occupancy_ratio{{task=\"{task}\"}}");
            occupancy.push(metric(&text, &series).expect("no occupancy gauge"));
            std::thread::sleep(Duration::from_millis(200));
            // In wrap-up, a field outside the campaign's form is refused, naming it.
            let bad = json!({"status": "success", "detail": "sale", "fields": {"bogus": "x"}});
            let (status, p) = agent1.call("POST", "/api/v1/agent/result", Some(bad));
            if status == 409 {
                continue;
            }
            assert_eq!(
                (status, p["field"].as_str()),
                (422, Some("fields.bogus")),
                "{p}"
            );
            refused += 1;
            let (status, _) = agent1.call("POST", "/api/v1/agent/result", Some(result.clone()));
            if status == 200 {
                posted += 1;
            }
        }
        println!("every contact called after {:?}", started.elapsed());
        assert!(posted >= 1, "agent1 never wrapped up a call");
        assert!(refused >= posted, "{refused} refused, {posted} posted");
        assert!(
            max_in_flight <= 2.0,
            "progressive with 2 agents had {max_in_flight} calls at once"
        );
        // Two agents: nobody, one or both busy.
        assert!(
            occupancy.iter().all(|o| [0.0, 0.5, 1.0].contains(o)) && occupancy.iter().any(|o| *o > 0.0),
            "{occupancy:?}"
        );

        let all = admin.all_contacts(c, "", 100);
        let mut results: HashMap<String, usize> = HashMap::new();
        for k in &all {
            let id = k["id"].as_i64().unwrap();
            let full = admin.ok("GET", &format!("/api/v1/campaigns/{c}/contacts/{id}"), None);
            let attempts: Vec<&Value> = full["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["change"]["op"] == "attempt")
                .collect();
            assert_eq!(attempts.len(), 1, "{full}");
            let a = &attempts[0]["change"];
            let phone = k["phones"][0].as_str().unwrap();
            let expected_code = if phone.ends_with("99") { 486 } else { 200 };
            assert_eq!(a["sip_code"], expected_code, "{full}");
            // The attempt names its call record; a call put through is recorded.
            let call_id = a["call_id"].as_str().unwrap();
            let rec = admin.ok("GET", &format!("/api/v1/calls/{call_id}"), None);
            assert_eq!(
                (rec["route"].as_str(), rec["a_number"].as_str()),
                (Some("campaign"), Some(phone)),
                "{rec}"
            );
            if expected_code == 486 {
                assert_eq!(rec["end_reason"], "a_failed_486", "{rec}");
                assert!(rec["recording_path"].is_null(), "{rec}");
            } else {
                assert_eq!(rec["end_reason"], "a_hangup", "{rec}");
                assert!(rec["answered_at"].as_i64().is_some(), "{rec}");
                let wav = std::fs::read(rec["recording_path"].as_str().unwrap()).unwrap();
                // About 2 s of talk, 8 kHz stereo 16-bit.
                assert!(wav.len() > 8000 * 4, "{} bytes: {rec}", wav.len());
            }
            *results
                .entry(a["result"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        println!("results: {results:?}");
        assert_eq!(results.get("$busy"), Some(&2), "{results:?}");
        assert_eq!(results.get("sale"), Some(&posted), "{results:?}");
        assert_eq!(
            results.get("sale").unwrap_or(&0) + results.get("$no_result").unwrap_or(&0),
            8,
            "{results:?}"
        );
        let sold = all.iter().filter(|k| k["status"] == "success").count();
        assert_eq!(sold, posted);

        // Each agent's calls: offered, then connected, then the customer's hang-up and wrap-up.
        for (id, api) in [(a1, &agent1), (a2, &agent2)] {
            let ev = events(api);
            let kinds = |call: &Value| -> Vec<String> {
                ev.iter()
                    .filter(|e| &e["call"] == call && e["type"] != "state")
                    .map(|e| e["type"].as_str().unwrap().to_string())
                    .collect()
            };
            let offered: Vec<&Value> = ev.iter().filter(|e| e["type"] == "call.offered").collect();
            assert!(!offered.is_empty(), "agent {id} got no call: {ev:?}");
            for o in offered {
                assert_eq!(o["direction"], "outbound");
                assert!(o["phones"][0].as_str().unwrap().starts_with("+4930"), "{o}");
                assert_eq!(
                    kinds(&o["call"]),
                    [
                        "call.offered",
                        "call.connected",
                        "call.customer_hangup",
                        "call.ended",
                        "wrap_up"
                    ],
                    "agent {id}: {ev:?}"
                );
            }
        }

        let live = admin.ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
        assert_eq!(live["dialing"], true, "{live}");
        assert_eq!(live["tasks"][0]["placed"], 10, "{live}");
        let (_, text) = d.get("/metrics");
        let busy = format!("dialerd_dialer_calls_total{{campaign=\"{c}\",result=\"busy\"}}");
        assert_eq!(metric(&text, &busy), Some(2.0), "{text}");
        let bridged = metric_sum(&text, "dialerd_answer_to_agent_seconds_count");
        let total = metric_sum(&text, "dialerd_answer_to_agent_seconds_sum");
        // Progressive dials only for ready agents: no customer waits for one to free up.
        let ready = "dialerd_answer_to_agent_seconds_count{agent=\"ready\"}";
        assert_eq!(metric(&text, ready), Some(8.0), "{text}");
        let read = metric(&text, "dialerd_answer_read_lag_seconds_count");
        assert_eq!(read, Some(8.0), "every answer read by the driver: {text}");
        println!(
            "answer to agent: {bridged} calls, mean {:.1} ms",
            1000.0 * total / bridged
        );
        assert_eq!(bridged, 8.0, "{text}");

        finished(far, "carrier", Duration::from_secs(10));
        for a in [&agent1, &agent2] {
            a.ok("DELETE", "/api/v1/agent/session", None);
        }
        for p in phones {
            finished(p, "agent phone", Duration::from_secs(10));
        }
        // Without agents the task's driver ends.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let live = admin.ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
            if live["tasks"] == json!([]) {
                break;
            }
            assert!(Instant::now() < deadline, "driver still running: {live}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

both_stores! {
    fn a_power_campaign_abandons_whom_no_agent_takes_with_the_safe_harbour_message() {
        let carrier_port = free_udp_port();
        let contacts = 3;
        let far = carrier("dialer/carrier_abandon.xml", carrier_port, contacts, true);
        let d = start(carrier_port);
        let admin = Api::new(&d, ADMIN);
        let (c, task) = dialing_campaign(
            &admin,
            "Power",
            json!({"queue": "sales", "dial_mode": "power", "calls_per_ready_agent": 3.0, "wrap_up_seconds": 2}),
            contacts,
            0,
        );
        upload_safe_harbour(&admin, c, 3.0);
        let (_, agent1) = user(&admin, "agent1", "agent");
        let ph = phone("agent1", "sipp-agent-secret-1", d.sip);
        agent1.ok(
            "POST",
            "/api/v1/agent/session",
            Some(json!({"tasks": [task], "phone": "sip"})),
        );
        agent1.ok("POST", "/api/v1/agent/ready", None);
        let started = Instant::now();
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "enabled"})),
        );
        // The one customer put through talks to the agent for 4.5 s; the agent hangs up.
        let mut hung_up = false;
        let done = |admin: &Api| {
            admin
                .all_contacts(c, "", 100)
                .iter()
                .all(|k| k["attempts"].as_i64() == Some(1))
        };
        while !done(&admin) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not every contact called"
            );
            std::thread::sleep(Duration::from_millis(200));
            let v = agent1.ok("POST", "/api/v1/agent/ready", None);
            if v["state"] == "talking" && !hung_up {
                assert!(v["contact_id"].as_i64().is_some(), "{v}");
                std::thread::sleep(Duration::from_millis(4500));
                agent1.ok("POST", "/api/v1/agent/hangup", None);
                hung_up = true;
            }
        }
        assert!(hung_up, "no customer was put through");
        let all = admin.all_contacts(c, "", 100);
        let abandoned = all.iter().filter(|k| k["detail"] == "$abandoned").count();
        assert_eq!(abandoned, 2, "{all:?}");
        // The carrier failed any call hung up before the 3 s message could be heard.
        finished(far, "carrier", Duration::from_secs(10));
        let (_, text) = d.get("/metrics");
        let ratio = format!("dialerd_abandon_ratio{{campaign=\"{c}\",window=\"24h\"}}");
        let r = metric(&text, &ratio).unwrap_or(0.0);
        assert!((r - 2.0 / 3.0).abs() < 1e-9, "{r}");
        agent1.ok("DELETE", "/api/v1/agent/session", None);
        finished(ph, "agent phone", Duration::from_secs(10));
    }
}

both_stores! {
    fn a_call_cut_short_by_a_killed_daemon_is_an_interrupted_attempt_at_the_next_start() {
        // A carrier that never answers: the call stays in flight until the daemon dies.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let port = silent.local_addr().unwrap().port();
        let mut d = start(port);
        let admin = Api::new(&d, ADMIN);
        let (c, task) = dialing_campaign(
            &admin,
            "Killed",
            json!({"queue": "sales", "dial_mode": "progressive"}),
            1,
            0,
        );
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
        let mut buf = [0u8; 4096];
        // A signal to the test process (a child's end) may interrupt the wait: wait again.
        let (n, _) = loop {
            match silent.recv_from(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                got => break got.expect("no INVITE reached the carrier"),
            }
        };
        assert!(
            buf[..n].starts_with(b"INVITE "),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        let contact = admin.all_contacts(c, "", 10)[0].clone();
        assert_eq!(contact["attempts"], 0, "{contact}");

        d.signal(libc::SIGKILL);
        assert!(d.wait_exit(Duration::from_secs(5)).is_some());
        drop(ph);
        let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
        drop(d);
        let mut d = Daemon::start_in(dir, &config(port), &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
        let admin = Api::new(&d, ADMIN);
        let id = contact["id"].as_i64().unwrap();
        let path = format!("/api/v1/campaigns/{c}/contacts/{id}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut full = admin.ok("GET", &path, None);
        while full["attempts"] == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            full = admin.ok("GET", &path, None);
        }
        let _ = d.try_wait_log("no such line", Duration::from_millis(200));
        assert!(
            d.seen
                .iter()
                .any(|v| v["fields"]["message"] == "leases of the last run recorded as $interrupted"),
            "no recovery logged"
        );
        assert_eq!(full["attempts"], 1, "{full}");
        assert_eq!(full["status"], "open", "{full}");
        assert_eq!(full["last_result"], "$interrupted", "{full}");
    }
}

both_stores! {
    fn a_preview_agent_skips_an_offer_and_accepts_the_next_ones() {
        let carrier_port = free_udp_port();
        let contacts = 2;
        let far = carrier("dialer/carrier_talk.xml", carrier_port, contacts, false);
        let d = start(carrier_port);
        let admin = Api::new(&d, ADMIN);
        let (c, task) = dialing_campaign(
            &admin,
            "Preview",
            json!({"queue": "sales", "dial_mode": "preview", "wrap_up_seconds": 2}),
            contacts,
            0,
        );
        let (_, agent1) = user(&admin, "agent1", "agent");
        let ph = phone("agent1", "sipp-agent-secret-1", d.sip);
        agent1.ok(
            "POST",
            "/api/v1/agent/session",
            Some(json!({"tasks": [task], "phone": "sip"})),
        );
        agent1.ok("POST", "/api/v1/agent/ready", None);
        let (status, p) = agent1.call("POST", "/api/v1/agent/preview/dial", None);
        assert_eq!(status, 409, "no offer yet: {p}");
        let started = Instant::now();
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "enabled"})),
        );
        let done = |admin: &Api| {
            admin
                .all_contacts(c, "", 100)
                .iter()
                .all(|k| k["attempts"].as_i64() == Some(1))
        };
        let mut skipped = None;
        let mut answered = Value::Null;
        // Each call put through ends with a call-back at a time of the agent's choosing.
        let call_back = json!({"status": "open", "detail": "call back", "follow_up": "particular",
                               "follow_up_at": "2030-01-02T09:30:00Z"});
        let mut posted = 0;
        while !done(&admin) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not every contact called"
            );
            std::thread::sleep(Duration::from_millis(100));
            let (status, _) = agent1.call("POST", "/api/v1/agent/result", Some(call_back.clone()));
            if status == 200 {
                posted += 1;
            }
            let v = agent1.ok("POST", "/api/v1/agent/ready", None);
            if v["state"] != "reserved" || v["call_id"] == answered {
                continue;
            }
            answered = v["call_id"].clone();
            let accept = skipped.is_some();
            if !accept {
                skipped = Some(v["call_id"].clone());
            }
            let answer = if accept { "dial" } else { "skip" };
            agent1.ok("POST", &format!("/api/v1/agent/preview/{answer}"), None);
        }
        let skipped = skipped.expect("no offer came");
        assert_eq!(posted, 2, "a result for each call put through");
        for k in admin.all_contacts(c, "", 100) {
            assert_eq!(
                (k["status"].as_str(), k["detail"].as_str()),
                (Some("open"), Some("call back")),
                "{k}"
            );
            let at = k["follow_up_at"].as_str().unwrap_or_default();
            assert!(at.starts_with("2030-01-02T09:30:00"), "{k}");
            assert_eq!(
                k["owner"], "agent1",
                "a particular callback is its agent's: {k}"
            );
        }
        let ev = events(&agent1);
        let offers: Vec<&Value> = ev.iter().filter(|e| e["type"] == "preview.offer").collect();
        assert_eq!(offers.len(), 3, "{ev:?}");
        for o in offers {
            let kinds: Vec<&str> = ev
                .iter()
                .filter(|e| e["call"] == o["call"])
                .map(|e| e["type"].as_str().unwrap())
                .collect();
            if o["call"] == skipped {
                assert_eq!(kinds, ["preview.offer"], "{ev:?}");
            } else {
                let connected = ev
                    .iter()
                    .find(|e| e["call"] == o["call"] && e["type"] == "call.offered")
                    .unwrap_or_else(|| panic!("no call.offered: {ev:?}"));
                assert_eq!(connected["direction"], "preview", "{connected}");
                assert_eq!(
                    kinds,
                    [
                        "preview.offer",
                        "call.offered",
                        "call.connected",
                        "call.customer_hangup",
                        "call.ended",
                        "wrap_up"
                    ],
                    "{ev:?}"
                );
            }
        }
        finished(far, "carrier", Duration::from_secs(10));
        agent1.ok("DELETE", "/api/v1/agent/session", None);
        finished(ph, "agent phone", Duration::from_secs(10));
    }
}

both_stores! {
    fn a_particular_callback_due_is_dialled_for_its_owner_and_for_anyone_after_the_grace() {
        let carrier_port = free_udp_port();
        let far = carrier("dialer/carrier_talk.xml", carrier_port, 3, false);
        let d = start(carrier_port);
        let admin = Api::new(&d, ADMIN);
        let grace = 8;
        let (c, task) = dialing_campaign(
            &admin,
            "Particular",
            json!({"queue": "sales", "dial_mode": "progressive", "wrap_up_seconds": 2,
                   "particular_grace_seconds": grace}),
            3,
            0,
        );
        let mut ids: Vec<i64> = admin
            .all_contacts(c, "", 100)
            .iter()
            .map(|k| k["id"].as_i64().unwrap())
            .collect();
        ids.sort_unstable();
        // Due now: `mine` is agent1's, `absent`'s owner is not logged in; `fresh` was never called.
        let (mine, fresh, absent) = (ids[0], ids[1], ids[2]);
        user(&admin, "agent3", "agent");
        let due = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // The grace runs from the due time, not from the campaign's start (logins take a while).
        let due_at = Instant::now();
        for (id, owner) in [(mine, "agent1"), (absent, "agent3")] {
            admin.ok(
                "PATCH",
                &format!("/api/v1/campaigns/{c}/contacts/{id}"),
                Some(json!({"owner": owner, "follow_up_at": due})),
            );
        }
        let why = admin.ok(
            "GET",
            &format!("/api/v1/campaigns/{c}/contacts/{absent}/callable"),
            None,
        );
        assert_eq!(why["callable"], false, "{why}");
        assert!(
            why["reasons"][0]
                .as_str()
                .is_some_and(|r| r.starts_with("kept for its owner agent3 until ")),
            "{why}"
        );
        let (agent1, ph1) = sip_agent(&admin, &d, 1, task);
        let (agent2, ph2) = sip_agent(&admin, &d, 2, task);
        agent2.ok("POST", "/api/v1/agent/ready", None);
        let started = Instant::now();
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "enabled"})),
        );
        // Which agent first held each contact, and when.
        let mut took: HashMap<i64, (&str, Duration)> = HashMap::new();
        let mut owner_ready = false;
        while took.len() < 3 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not every contact reached an agent: {took:?}"
            );
            if !owner_ready && started.elapsed() >= Duration::from_secs(1) {
                agent1.ok("POST", "/api/v1/agent/ready", None);
                owner_ready = true;
            }
            for (name, api) in [("agent1", &agent1), ("agent2", &agent2)] {
                let v = api.ok("GET", "/api/v1/agent/session", None);
                if let Some(k) = v["contact_id"].as_i64() {
                    took.entry(k).or_insert((name, due_at.elapsed()));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(took[&fresh].0, "agent2", "{took:?}");
        assert_eq!(took[&mine].0, "agent1", "the owner's callback is the owner's: {took:?}");
        assert!(
            took[&mine].1 < Duration::from_secs(grace),
            "the owner got it within the grace: {took:?}"
        );
        // After the grace, anyone: whichever agent has been ready longest by then.
        assert!(
            ["agent1", "agent2"].contains(&took[&absent].0),
            "{took:?}"
        );
        assert!(
            took[&absent].1 >= Duration::from_millis(grace * 1000 - 500),
            "held for its absent owner during the grace: {took:?}"
        );
        let ev = events(&agent1);
        let offered = ev
            .iter()
            .find(|e| e["type"] == "call.offered" && e["contact"] == mine)
            .unwrap_or_else(|| panic!("no call.offered for the owner: {ev:?}"));
        assert_eq!(offered["direction"], "outbound", "{offered}");
        finished(far, "carrier", Duration::from_secs(15));
        for a in [&agent1, &agent2] {
            a.ok("DELETE", "/api/v1/agent/session", None);
        }
        finished(ph1, "agent1's phone", Duration::from_secs(10));
        finished(ph2, "agent2's phone", Duration::from_secs(10));
    }
}
