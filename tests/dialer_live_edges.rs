//! The live driver's edges against the real daemon and SIPp: one agent serving two
//! progressive call tasks gets one customer at a time and nobody is abandoned; a task switched
//! from progressive to power while it dials dials as power at once.

mod common;

use common::api::{Api, ADMIN};
use common::dialer::*;
use common::{http_request_bytes, metric};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn one_agent_on_two_progressive_tasks_gets_one_customer_at_a_time_and_none_is_abandoned() {
    let carrier_port = free_udp_port();
    let per_task = 3;
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
    println!("six contacts called after {:?}", started.elapsed());
    assert_eq!(most, 1.0, "one agent had {most} calls in flight at once");
    for c in [c1, c2] {
        for k in admin.all_contacts(c, "", 100) {
            assert_ne!(k["detail"], "$abandoned", "{k}");
        }
    }
    let ev = events(&agent1);
    let offered = ev.iter().filter(|e| e["type"] == "call.offered").count();
    let connected = ev.iter().filter(|e| e["type"] == "call.connected").count();
    assert_eq!((offered, connected), (6, 6), "{ev:?}");
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

#[test]
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
    let auth = format!("Bearer {ADMIN}");
    let (status, _, text) = http_request_bytes(
        admin.addr,
        "PUT",
        &format!("/api/v1/campaigns/{c}/prompts/safe_harbour"),
        &[("Authorization", &auth), ("Content-Type", "audio/wav")],
        &tone_wav(2.5),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
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
            started.elapsed() < Duration::from_secs(15),
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
