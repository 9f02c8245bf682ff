//! Whole campaigns against the real daemon, one daemon per dial mode and two campaigns side by
//! side per test (the harness runs only as many tests at once as there are cores, and a
//! campaign mostly waits on its calls): SIPp is a carrier whose customers
//! ring, answer, are busy or ring out at random (`sip-scenarios/dialer/carrier_random.xml`),
//! SIPp phones are the agents, and one test socket is every answered customer's mouth and ears.
//! Each run checks that every contact is called once and reaches a status, that no number is
//! dialled twice at once, that the abandoned customers counted by the store and the metrics are
//! exactly those who heard the safe-harbour message, that every customer put through heard the
//! agent's leg (their own voice, echoed by the agent's phone), that the metrics agree with the
//! store, and that the agents end ready, then logged out, in the API and the metrics alike.

mod common;

use common::api::{user, Api, ADMIN};
use common::dialer::*;
use common::{metric, metric_sum, Daemon};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// One campaign run's shape.
struct Shape {
    name: &'static str,
    settings: Value,
    contacts: usize,
    agents: usize,
    /// The run must be over within this.
    limit: Duration,
    /// Abandoned calls the mode must make at least (power dials more than agents can take).
    min_abandoned: usize,
}

/// What one call looked like from the carrier: its events in order, and dialerd's RTP port.
#[derive(Debug, Default)]
struct CarrierCall {
    rtp: Option<u16>,
    events: Vec<(String, f64)>,
}

impl CarrierCall {
    fn at(&self, kind: &str) -> Option<f64> {
        self.events.iter().find(|(k, _)| k == kind).map(|(_, t)| *t)
    }

    /// The call's end as the carrier saw it: (kind, time).
    fn end(&self) -> (String, f64) {
        self.events.last().cloned().unwrap_or_default()
    }
}

fn agents_list(admin: &Api) -> Vec<Value> {
    admin.ok("GET", "/api/v1/agents", None)["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn run(shape: Shape) {
    let Shape {
        name,
        settings,
        contacts,
        agents,
        limit,
        min_abandoned,
    } = shape;
    let preview = settings["dial_mode"] == "preview";
    let begun = Instant::now();
    let carrier_port = free_udp_port();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("carrier.log");
    let customers = Customers::start(&log);
    let far = logged_carrier(
        "dialer/carrier_random.xml",
        carrier_port,
        contacts,
        customers.port,
        &log,
    );
    let d = Daemon::start_with(
        &config_with_agents(carrier_port, agents),
        &[("DIALERD_ADMIN_TOKEN", ADMIN)],
    );
    let admin = Api::new(&d, ADMIN);
    let mut settings = settings;
    settings["queue"] = json!("sales");
    settings["wrap_up_seconds"] = json!(1);
    settings["ring_timeout_seconds"] = json!(15);
    settings["max_attempts"] = json!(1);
    let (c, task) = dialing_campaign(&admin, name, settings, contacts, 0);
    upload_safe_harbour(&admin, c, 2.0);
    let mut team = Vec::new();
    let mut phones = Vec::new();
    for i in 1..=agents {
        let (id, api) = user(&admin, &format!("agent{i}"), "agent");
        phones.push(phone(
            &format!("agent{i}"),
            &format!("sipp-agent-secret-{i}"),
            d.sip,
        ));
        admin.ok(
            "POST",
            &format!("/api/v1/agents/{id}/session"),
            Some(json!({"tasks": [task], "phone": "sip"})),
        );
        admin.ok("POST", &format!("/api/v1/agents/{id}/ready"), None);
        team.push((id, api));
    }

    let started = Instant::now();
    println!("{name}: {agents} agents ready after {:?}", begun.elapsed());
    admin.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}"),
        Some(json!({"status": "enabled"})),
    );
    let called = |admin: &Api| {
        admin
            .all_contacts(c, "", 100)
            .iter()
            .filter(|k| k["attempts"].as_i64() == Some(1))
            .count()
    };
    let mut accepted = BTreeSet::new();
    let mut last_check = Instant::now();
    loop {
        if last_check.elapsed() > Duration::from_millis(500) {
            last_check = Instant::now();
            if called(&admin) == contacts {
                break;
            }
        }
        assert!(
            started.elapsed() < limit,
            "{name}: {} of {contacts} contacts called after {limit:?}",
            called(&admin)
        );
        if preview {
            // Each agent dials every contact offered to them.
            for a in agents_list(&admin) {
                let call = a["call_id"].clone();
                if a["state"] != "reserved"
                    || call.is_null()
                    || accepted.contains(&call.to_string())
                {
                    continue;
                }
                let (_, api) = team.iter().find(|(id, _)| a["id"] == *id).unwrap();
                let (status, _) = api.call("POST", "/api/v1/agent/preview/dial", None);
                if status == 200 {
                    accepted.insert(call.to_string());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("{name}: every contact called after {:?}", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(20);
    let open = || -> Vec<CarrierEvent> {
        let mut last: BTreeMap<String, CarrierEvent> = BTreeMap::new();
        for e in carrier_log(&log) {
            last.insert(e.number.clone(), e);
        }
        last.into_values()
            .filter(|e| e.kind == "invite" || e.kind == "answered")
            .collect()
    };
    while !open().is_empty() {
        assert!(
            Instant::now() < deadline,
            "{name}: calls the carrier has not ended: {:?}",
            open()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every contact's call reached the carrier.
    let dialled: BTreeSet<String> = carrier_log(&log).into_iter().map(|e| e.number).collect();
    let unseen: Vec<Value> = admin
        .all_contacts(c, "", 100)
        .into_iter()
        .filter(|k| !dialled.contains(k["phones"][0].as_str().unwrap().trim_start_matches('+')))
        .map(|k| {
            let id = k["id"].as_i64().unwrap();
            let k = admin.ok("GET", &format!("/api/v1/campaigns/{c}/contacts/{id}"), None);
            let call = k["history"][0]["change"]["call_id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let (_, rec) = admin.call("GET", &format!("/api/v1/calls/{call}"), None);
            json!([k["phones"], k["history"], rec["end_reason"], rec["started"]])
        })
        .collect();
    assert!(
        unseen.is_empty(),
        "{name}: never reached the carrier: {unseen:?}"
    );
    finished(far, "carrier", Duration::from_secs(10));

    // The agents settle: ready, no call, in the API and the metrics alike.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = agents_list(&admin);
        if all
            .iter()
            .all(|a| a["state"] == "ready" && a["call_id"].is_null())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: agents not settled: {all:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, text) = d.get("/metrics");
    let ready = format!("dialerd_agents{{state=\"ready\",task=\"{task}\"}}");
    let gauges: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("dialerd_agents"))
        .collect();
    assert_eq!(
        metric(&text, &ready),
        Some(agents as f64),
        "{name}: {gauges:?}"
    );
    let in_flight = format!("dialerd_calls_in_flight{{task=\"{task}\"}}");
    assert_eq!(metric(&text, &in_flight), Some(0.0), "{name}");

    // The carrier's view: every number called once, never twice at once.
    let mut calls: BTreeMap<String, Vec<CarrierCall>> = BTreeMap::new();
    for e in carrier_log(&log) {
        let list = calls.entry(e.number.clone()).or_default();
        if e.kind == "invite" {
            list.push(CarrierCall {
                rtp: e.rtp,
                ..CarrierCall::default()
            });
        }
        let call = list
            .last_mut()
            .unwrap_or_else(|| panic!("{name}: {e:?} before its INVITE"));
        call.events.push((e.kind, e.at));
    }
    for (number, list) in &calls {
        for w in list.windows(2) {
            assert!(
                w[0].end().1 <= w[1].events[0].1,
                "{name}: {number} dialled twice at once: {list:?}"
            );
        }
    }
    assert_eq!(calls.len(), contacts, "{name}: numbers called");
    assert!(
        calls.values().all(|l| l.len() == 1),
        "{name}: a number called twice"
    );

    // What each answered customer heard.
    let mut heard_message = BTreeSet::new();
    let mut heard_agent = BTreeSet::new();
    for (number, list) in &calls {
        let call = &list[0];
        let Some(answered) = call.at("answered") else {
            continue;
        };
        let (end, at) = call.end();
        let frames = customers.frames(call.rtp.unwrap(), answered, at + 0.2);
        let n = |s: Sound| frames.get(&s).copied().unwrap_or(0);
        // 2 s of message are 100 frames; a customer put through talks for 4.5 s at least.
        if n(Sound::Message) >= 50 {
            assert_eq!(end, "dialerd_bye", "{name}: {number} {call:?}");
            heard_message.insert(number.clone());
        }
        if n(Sound::Voice) >= 10 {
            heard_agent.insert(number.clone());
        }
    }

    // The store's view: one attempt each, a status each.
    let mut by_result: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for k in admin.all_contacts(c, "", 100) {
        let id = k["id"].as_i64().unwrap();
        let full = admin.ok("GET", &format!("/api/v1/campaigns/{c}/contacts/{id}"), None);
        let attempts: Vec<&Value> = full["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["change"]["op"] == "attempt")
            .collect();
        assert_eq!(attempts.len(), 1, "{name}: {full}");
        assert_ne!(full["status"], "open", "{name}: {full}");
        let number = k["phones"][0].as_str().unwrap().trim_start_matches('+');
        let result = attempts[0]["change"]["result"].as_str().unwrap();
        by_result
            .entry(result.to_string())
            .or_default()
            .insert(number.to_string());
    }
    let counts: BTreeMap<&String, usize> = by_result.iter().map(|(r, s)| (r, s.len())).collect();
    println!(
        "{name}: results {counts:?}; {} heard the message, {} an agent",
        heard_message.len(),
        heard_agent.len()
    );
    let of = |r: &str| by_result.get(r).cloned().unwrap_or_default();
    let carrier = |kind: &str| -> BTreeSet<String> {
        calls
            .iter()
            .filter(|(_, l)| l[0].at(kind).is_some())
            .map(|(n, _)| n.clone())
            .collect()
    };
    assert_eq!(of("$abandoned"), heard_message, "{name}: abandoned");
    assert_eq!(of("$no_result"), heard_agent, "{name}: put through");
    assert_eq!(of("$busy"), carrier("busy"), "{name}: busy");
    assert_eq!(of("$no_answer"), carrier("cancelled"), "{name}: rang out");
    let answered = carrier("answered");
    assert_eq!(
        answered,
        heard_agent.union(&heard_message).cloned().collect(),
        "{name}: answered"
    );
    assert!(!heard_agent.is_empty(), "{name}: nobody put through");
    assert!(
        heard_message.len() >= min_abandoned,
        "{name}: {} abandoned, {min_abandoned} at least wanted",
        heard_message.len()
    );

    // The metrics agree with the store.
    let result = |r: &str| {
        let series = format!("dialerd_dialer_calls_total{{campaign=\"{c}\",result=\"{r}\"}}");
        metric(&text, &series).unwrap_or(0.0) as usize
    };
    let labels: HashMap<&str, &str> = [
        ("$abandoned", "abandoned"),
        ("$no_result", "no_result"),
        ("$busy", "busy"),
        ("$no_answer", "no_answer"),
    ]
    .into();
    let mut total = 0;
    for (r, set) in &by_result {
        let label = labels
            .get(r.as_str())
            .unwrap_or_else(|| panic!("{name}: unexpected result {r}"));
        assert_eq!(result(label), set.len(), "{name}: {r}");
        total += set.len();
    }
    assert_eq!(total, contacts);
    let bridged = metric_sum(&text, "dialerd_answer_to_agent_seconds_count");
    assert_eq!(bridged as usize, heard_agent.len(), "{name}: bridged");
    let ratio = format!("dialerd_abandon_ratio{{campaign=\"{c}\",window=\"24h\"}}");
    let want = heard_message.len() as f64 / answered.len() as f64;
    let got = metric(&text, &ratio).unwrap_or(0.0);
    assert!(
        (got - want).abs() < 1e-9,
        "{name}: abandon ratio {got} ≠ {want}"
    );

    // Logged out, the agents are so everywhere, and their phones saw the leg end well.
    for (id, _) in &team {
        admin.ok("DELETE", &format!("/api/v1/agents/{id}/session"), None);
    }
    for p in phones {
        finished(p, "agent phone", Duration::from_secs(10));
    }
    println!("{name}: checked after {:?}", begun.elapsed());
    let all = agents_list(&admin);
    assert!(
        all.iter().all(|a| a["state"] == "logged_out"),
        "{name}: {all:?}"
    );
    let (_, text) = d.get("/metrics");
    let series = format!("dialerd_agents{{state=\"ready\",task=\"{task}\"}}");
    assert_eq!(metric(&text, &series).unwrap_or(0.0), 0.0, "{name}");
}

/// Runs the campaigns side by side (the test harness runs only as many tests at once as there
/// are cores); each one's failure is reported.
fn side_by_side(shapes: Vec<Shape>) {
    std::thread::scope(|scope| {
        let runs: Vec<_> = shapes
            .into_iter()
            .map(|shape| scope.spawn(move || run(shape)))
            .collect();
        let failed = runs
            .into_iter()
            .map(|r| r.join())
            .filter(Result::is_err)
            .count();
        assert_eq!(failed, 0, "campaigns failed (see above)");
    });
}

#[test]
fn preview_and_progressive_campaigns_call_every_contact_and_agree_with_the_carrier() {
    side_by_side(vec![
        Shape {
            name: "preview",
            settings: json!({"dial_mode": "preview"}),
            contacts: 40,
            agents: 4,
            limit: Duration::from_secs(180),
            min_abandoned: 0,
        },
        Shape {
            name: "progressive",
            settings: json!({"dial_mode": "progressive"}),
            contacts: 120,
            agents: 10,
            limit: Duration::from_secs(180),
            min_abandoned: 0,
        },
    ]);
}

#[test]
fn power_and_predictive_campaigns_abandon_only_whom_the_message_reaches() {
    side_by_side(vec![
        Shape {
            name: "power",
            settings: json!({"dial_mode": "power", "calls_per_ready_agent": 3.0,
                             "calls_per_wrap_up_agent": 0.5}),
            contacts: 100,
            agents: 6,
            limit: Duration::from_secs(180),
            min_abandoned: 1,
        },
        Shape {
            name: "predictive",
            settings: json!({"dial_mode": "predictive", "abandon_target": 0.03}),
            contacts: 150,
            agents: 8,
            limit: Duration::from_secs(180),
            min_abandoned: 0,
        },
    ]);
}
