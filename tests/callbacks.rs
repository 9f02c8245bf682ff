//! Inbound callbacks against the real daemon: a caller (a UA behind the carrier trunk) rings a
//! verified forward line back; an open contact of the task showing the line reaches a ready
//! agent — `call.offered` with `direction: "callback"` before `call.connected`, the callback
//! tone before the caller's voice — ahead of new outbound calls; a caller nobody takes within
//! the line's `max_wait` is told they will be called back and their contact is dialled first;
//! unknown and closed contacts follow the line's policy; callers who hang up leave one
//! `$missed_call` callback; a particular callback waits for its owner, then goes to anyone.

mod common;

use common::api::{campaign, user, Api, ADMIN, BASE};
use common::dialer::{events, sip_agent, AGENTS};
use common::phone::{Behaviour, Heard, Phone};
use common::rtp::{pcmu_tone, tone_share};
use common::ua::TestUa;
use common::{metric, status_of, Daemon};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const LINE: &str = "+4930555123";
const ACCESS: &str = "4930999111";
const CUSTOMER: &str = "+4930123456";

/// A daemon whose trunk `carrier` is `far` (and admits callers from loopback), with an access
/// number for forward lines and the SIPp agents' accounts.
fn daemon(far: &Phone) -> Daemon {
    let config = format!(
        "{BASE}{AGENTS}[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\n\
         port = {}\nkeepalive = \"0s\"\n[media]\nrtp_timeout = \"60s\"\n\
         [lines]\naccess_number = \"{ACCESS}\"\nforward_timeout = \"10s\"\ncaller_id_pool = [\"+4930999201\"]\n",
        far.port()
    );
    Daemon::start_with(&config, &[("DIALERD_ADMIN_TOKEN", ADMIN)])
}

/// Line `LINE` in forward mode with `settings`, verified through `d`'s access number.
fn verified_line(d: &Daemon, admin: &Api, far: &Phone, settings: Value) -> i64 {
    let mut body = json!({"number": LINE, "language": "en", "callback_mode": "forward"});
    body.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    common::phone::verified_line(admin, far, d.sip, body, ACCESS)
}

/// A progressive campaign showing `line`, dialling round the clock, enabled: (campaign, task).
fn campaign_on(admin: &Api, line: i64, settings: Value) -> (i64, i64) {
    let (c, task) = campaign(admin, "Callbacks");
    admin.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}"),
        Some(json!({"line_id": line, "status": "enabled",
                    "calling_hours": {"from": "00:00", "to": "24:00"}})),
    );
    let mut s = json!({"queue": "sales", "dial_mode": "progressive", "wrap_up_seconds": 30});
    s.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    admin.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}/tasks/{task}"),
        Some(json!({ "settings": s })),
    );
    (c, task)
}

/// A contact of `task` on `number`, open and due only next year (nothing to dial now).
fn contact(admin: &Api, c: i64, task: i64, number: &str, extra: Value) -> i64 {
    let mut body = json!({"task_id": task, "phones": [number], "fields": {"name": "Ann"},
                          "follow_up_at": "2099-01-01T09:00:00Z"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    admin.ok(
        "POST",
        &format!("/api/v1/campaigns/{c}/contacts"),
        Some(body),
    )["id"]
        .as_i64()
        .unwrap()
}

/// The caller: a UA behind the carrier trunk ringing `LINE` as `number`.
fn call_back(d: &Daemon, id: &str, number: &str) -> TestUa {
    let ua = TestUa::new(d.sip, id);
    ua.invite_with(
        LINE,
        &format!("P-Asserted-Identity: <sip:{number}@carrier.example>\r\n"),
    );
    ua
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until campaign `c`'s driver runs (its agents are logged in and it dials).
fn running(admin: &Api, c: i64) {
    wait_for(
        "the campaign's driver running",
        Duration::from_secs(5),
        || {
            let dialer = admin.ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
            dialer["tasks"].as_array().is_some_and(|t| !t.is_empty())
        },
    );
}

fn state(api: &Api) -> Value {
    api.ok("GET", "/api/v1/agent/session", None)
}

/// Contact `id` of campaign `c`, with its history.
fn contact_of(admin: &Api, c: i64, id: i64) -> Value {
    admin.ok("GET", &format!("/api/v1/campaigns/{c}/contacts/{id}"), None)
}

fn history(admin: &Api, c: i64, id: i64) -> Vec<Value> {
    contact_of(admin, c, id)["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Frames of what the agent heard where `hz` dominates.
fn frames_at(heard: &Heard, hz: f64) -> Vec<usize> {
    heard
        .payloads
        .iter()
        .enumerate()
        .filter(|(_, p)| tone_share(p, hz) > 0.5)
        .map(|(i, _)| i)
        .collect()
}

both_stores! {
    fn a_caller_who_is_an_open_contact_reaches_a_ready_agent_who_hears_the_callback_tone_first() {
        let far = Phone::new();
        let d = daemon(&far);
        let admin = Api::new(&d, ADMIN);
        let line = verified_line(&d, &admin, &far, json!({}));
        let (c, task) = campaign_on(&admin, line, json!({}));
        let k = contact(&admin, c, task, CUSTOMER, json!({}));
        let (_, agent) = user(&admin, "remote", "agent");
        let heard = std::thread::scope(|s| {
            let listening = s.spawn(|| far.serve(Behaviour::Answer, Duration::from_secs(30)));
            agent.ok(
                "POST",
                "/api/v1/agent/session",
                Some(json!({"tasks": [task], "phone": "+4930111222"})),
            );
            agent.ok("POST", "/api/v1/agent/ready", None);
            running(&admin, c);
            let caller = call_back(&d, "cb-open", "030123456");
            let ok = caller.final_response();
            assert_eq!(status_of(&ok), 200, "{ok}");
            let v = state(&agent);
            assert_eq!(v["state"], "talking", "{v}");
            // The caller speaks (600 Hz) once put through, then hangs up.
            caller.send_voice(7, &pcmu_tone(600.0, 50), 50);
            caller.bye();
            wait_for("agent in wrap-up", Duration::from_secs(5), || {
                state(&agent)["state"] == "wrap_up"
            });
            agent.ok(
                "POST",
                "/api/v1/agent/result",
                Some(json!({"status": "success", "detail": "sale"})),
            );
            agent.ok("DELETE", "/api/v1/agent/session", None);
            listening.join().unwrap()
        });
        // The screen pop names the contact as a callback before the audio is joined.
        let ev = events(&agent);
        let offered = ev
            .iter()
            .position(|e| e["type"] == "call.offered")
            .expect("no call.offered");
        assert_eq!(ev[offered]["direction"], "callback", "{:?}", ev[offered]);
        assert_eq!(ev[offered]["contact"], k, "{:?}", ev[offered]);
        let connected = ev
            .iter()
            .position(|e| e["type"] == "call.connected")
            .expect("no call.connected");
        assert!(offered < connected, "{ev:?}");
        // Join tone (440 Hz), then the callback tone (880 Hz then 1320 Hz), then the caller.
        let (tone_lo, tone_hi, voice) = (
            frames_at(&heard, 880.0),
            frames_at(&heard, 1320.0),
            frames_at(&heard, 600.0),
        );
        assert!(tone_lo.len() >= 5, "880 Hz frames: {tone_lo:?}");
        assert!(tone_hi.len() >= 5, "1320 Hz frames: {tone_hi:?}");
        assert!(voice.len() >= 30, "600 Hz frames: {}", voice.len());
        assert!(tone_lo[0] < tone_hi[0], "{tone_lo:?} {tone_hi:?}");
        assert!(
            tone_hi.last() < voice.first(),
            "the tone ends before the caller: {tone_hi:?} {voice:?}"
        );
        // Written on the contact (no dialling attempt) and in the call record; counted.
        let got = contact_of(&admin, c, k);
        assert_eq!(
            (got["status"].as_str(), got["detail"].as_str()),
            (Some("success"), Some("sale"))
        );
        assert_eq!(got["attempts"], 0, "{got}");
        let h = history(&admin, c, k);
        let entry = h
            .iter()
            .find(|e| e["change"]["op"] == "inbound")
            .unwrap_or_else(|| panic!("no inbound entry: {h:?}"));
        assert_eq!(entry["change"]["agent"], "remote", "{entry}");
        assert_eq!(entry["change"]["line_id"], line, "{entry}");
        let calls = admin.ok("GET", "/api/v1/calls?limit=50", None);
        let rec = calls
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == "inbound")
            .unwrap_or_else(|| panic!("no inbound call record: {calls}"))
            .clone();
        assert_eq!(
            (rec["line_id"].as_i64(), rec["contact_id"].as_i64()),
            (Some(line), Some(k)),
            "{rec}"
        );
        assert!(rec["waited_ms"].as_i64().is_some(), "{rec}");
        assert_eq!(rec["a_number"], CUSTOMER, "{rec}");
        let (_, text) = d.get("/metrics");
        let series = format!("dialerd_inbound_calls_total{{line=\"{line}\",result=\"connected\"}}");
        assert_eq!(metric(&text, &series), Some(1.0), "{series}");
        assert_eq!(
            metric(&text, "dialerd_inbound_wait_seconds_count"),
            Some(1.0)
        );
    }
}

both_stores! {
    fn a_caller_waits_for_a_paused_agent_then_hears_we_will_call_you_back_and_is_dialled_first() {
        let far = Phone::new();
        let d = daemon(&far);
        let admin = Api::new(&d, ADMIN);
        let line = verified_line(&d, &admin, &far, json!({"max_wait_seconds": 5}));
        let (c, task) = campaign_on(&admin, line, json!({}));
        let k = contact(&admin, c, task, CUSTOMER, json!({}));
        // A fresh contact the progressive dialler would call first if the callback were not due.
        admin.ok(
            "POST",
            &format!("/api/v1/campaigns/{c}/contacts"),
            Some(json!({"task_id": task, "phones": ["+4930777001"]})),
        );
        let (agent1, _phone) = sip_agent(&admin, &d, 1, task);
        agent1.ok(
            "POST",
            "/api/v1/agent/pause",
            Some(json!({"reason": "break"})),
        );
        running(&admin, c);
        let (_, sup) = user(&admin, "sup", "supervisor");
        let t = sup.ok("POST", "/api/v1/agent/ticket", None);
        let mut queue = common::ws::Ws::open(
            d.http,
            &format!(
                "/api/v1/queues/{task}/events?ticket={}",
                t["ticket"].as_str().unwrap()
            ),
        )
        .unwrap();
        // Paused: the caller waits (ringing) and is listed as waiting.
        let started = Instant::now();
        let caller = call_back(&d, "cb-wait", CUSTOMER);
        wait_for("a waiting caller listed", Duration::from_secs(5), || {
            let dialer = admin.ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
            dialer["tasks"][0]["waiting_callers"][0]["contact_id"] == k
        });
        let (_, text) = d.get("/metrics");
        let series = format!("dialerd_inbound_waiting{{task=\"{task}\"}}");
        assert_eq!(metric(&text, &series), Some(1.0));
        // The supervisor's stream shows the queue's figures with the caller waiting.
        let shown = loop {
            let e = queue.next();
            if e["type"] == "queue" && e["figures"]["waiting_callers"][0]["contact_id"] == k {
                break e;
            }
        };
        assert_eq!(shown["figures"]["agents_by_state"]["paused"], 1, "{shown}");
        assert!(shown["figures"]["answer_rate"].is_number(), "{shown}");
        assert!(
            shown["figures"]["decisions"]["mode"].as_u64() >= Some(1),
            "{shown}"
        );
        // After max_wait the call is answered with the message and hung up by dialerd.
        let ok = caller.final_response();
        assert_eq!(status_of(&ok), 200, "{ok}");
        assert!(
            started.elapsed() >= Duration::from_millis(4500),
            "{:?}",
            started.elapsed()
        );
        let (payloads, bye) = caller.receive_until_bye(Duration::from_secs(15));
        assert!(bye, "dialerd hangs up after the message");
        assert!(
            payloads.len() > 100,
            "the message is heard: {} frames",
            payloads.len()
        );
        let got = contact_of(&admin, c, k);
        assert_eq!(
            (got["status"].as_str(), got["detail"].as_str()),
            (Some("open"), Some("$missed_callback")),
            "{got}"
        );
        // The next ready agent calls them back first, before the never-called contact.
        let dialled = std::thread::scope(|s| {
            let rings = s.spawn(|| far.serve(Behaviour::Busy, Duration::from_secs(15)));
            agent1.ok("POST", "/api/v1/agent/ready", None);
            rings.join().unwrap()
        });
        assert!(
            dialled
                .invite
                .starts_with(&format!("INVITE sip:{CUSTOMER}@")),
            "{}",
            dialled.invite
        );
        let (_, text) = d.get("/metrics");
        let series = format!("dialerd_inbound_calls_total{{line=\"{line}\",result=\"missed\"}}");
        assert_eq!(metric(&text, &series), Some(1.0), "{series}");
    }
}

both_stores! {
    fn unknown_and_closed_callers_follow_the_lines_policy_and_hang_ups_leave_one_missed_call() {
        let far = Phone::new();
        let d = daemon(&far);
        let admin = Api::new(&d, ADMIN);
        let line = verified_line(&d, &admin, &far, json!({"inbound_policy": "reject"}));
        let (c, task) = campaign_on(&admin, line, json!({}));
        let closed = contact(
            &admin,
            c,
            task,
            "+4930123777",
            json!({"status": "success", "detail": "sale"}),
        );
        let open = contact(&admin, c, task, CUSTOMER, json!({}));
        let set_policy = |p: &str| {
            admin.ok(
                "PATCH",
                &format!("/api/v1/lines/{line}"),
                Some(json!({"inbound_policy": p})),
            );
        };
        // reject: 480 for an unknown number and for a closed contact.
        let ua = call_back(&d, "cb-unknown-reject", "+4930123999");
        assert_eq!(status_of(&ua.final_response()), 480);
        let ua = call_back(&d, "cb-closed-reject", "+4930123777");
        assert_eq!(status_of(&ua.final_response()), 480);
        // message: answered, the message heard, hung up by dialerd.
        set_policy("message");
        let ua = call_back(&d, "cb-closed-message", "+4930123777");
        assert_eq!(status_of(&ua.final_response()), 200);
        let (heard, bye) = ua.receive_until_bye(Duration::from_secs(10));
        assert!(bye && heard.len() > 25, "{} frames, bye {bye}", heard.len());
        let results = || -> Vec<String> {
            let k = contact_of(&admin, c, closed);
            assert_eq!(
                (k["status"].as_str(), k["detail"].as_str()),
                (Some("success"), Some("sale")),
                "{k}"
            );
            k["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["change"]["op"] == "inbound")
                .map(|e| e["change"]["result"].as_str().unwrap().to_string())
                .collect()
        };
        wait_for("the message in the history", Duration::from_secs(5), || {
            results().len() == 2
        });
        assert_eq!(results(), ["$inbound_rejected", "$inbound_message"]);
        // route with no agent logged in: an unknown caller becomes a contact to call back.
        set_policy("route");
        let ua = call_back(&d, "cb-unknown-route", "+4930123999");
        assert_eq!(status_of(&ua.final_response()), 200);
        assert!(ua.receive_until_bye(Duration::from_secs(15)).1);
        let mut made = Value::Null;
        wait_for(
            "the unknown caller's contact",
            Duration::from_secs(5),
            || {
                made = admin
                    .all_contacts(c, "", 100)
                    .into_iter()
                    .find(|k| k["phones"][0] == "+4930123999")
                    .unwrap_or_default();
                made["detail"] == "$missed_callback"
            },
        );
        assert_eq!(
            (made["status"].as_str(), made["detail"].as_str()),
            (Some("open"), Some("$missed_callback")),
            "{made}"
        );
        assert_eq!(made["task_id"], task);

        // With an agent logged in but paused, callers wait; each who hangs up while waiting
        // leaves the contact open with one overdue $missed_call follow-up.
        let (_agent1, _phone) = sip_agent(&admin, &d, 1, task);
        running(&admin, c);
        let mut first_follow_up = None;
        for i in 0..3 {
            let ua = call_back(&d, &format!("cb-missed-{i}"), CUSTOMER);
            wait_for("the caller waiting", Duration::from_secs(5), || {
                let dialer = admin.ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
                dialer["tasks"][0]["waiting_callers"][0]["contact_id"] == open
            });
            ua.cancel();
            wait_for("the missed call written", Duration::from_secs(5), || {
                let k = contact_of(&admin, c, open);
                let n = k["history"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["change"]["result"] == "$missed_call")
                    .count();
                n == i + 1
            });
            let k = contact_of(&admin, c, open);
            assert_eq!(
                (k["status"].as_str(), k["detail"].as_str()),
                (Some("open"), Some("$missed_call")),
                "{k}"
            );
            let at = k["follow_up_at"].as_str().unwrap().to_string();
            assert!(at.as_str() < "2099", "overdue, not next year: {at}");
            first_follow_up.get_or_insert(at.clone());
            assert_eq!(
                first_follow_up.as_deref(),
                Some(at.as_str()),
                "one callback, the first"
            );
        }
        let due = admin.all_contacts(c, "detail=%24missed_call", 100);
        assert_eq!(due.len(), 1, "{due:?}");
        let (_, text) = d.get("/metrics");
        for (result, n) in [("rejected", 2.0), ("message", 1.0), ("missed", 4.0)] {
            let series = format!("dialerd_inbound_calls_total{{line=\"{line}\",result=\"{result}\"}}");
            assert_eq!(metric(&text, &series), Some(n), "{series}");
        }
    }
}

both_stores! {
    fn a_particular_callback_waits_for_its_owner_and_goes_to_another_agent_after_the_grace() {
        let far = Phone::new();
        let d = daemon(&far);
        let admin = Api::new(&d, ADMIN);
        let line = verified_line(&d, &admin, &far, json!({"waiting_audio": "hold_music"}));
        let (c, task) = campaign_on(&admin, line, json!({"particular_grace_seconds": 3}));
        contact(&admin, c, task, CUSTOMER, json!({"owner": "agent1"}));
        let (agent1, _phone1) = sip_agent(&admin, &d, 1, task);
        let (agent2, _phone2) = sip_agent(&admin, &d, 2, task);
        agent2.ok("POST", "/api/v1/agent/ready", None);
        running(&admin, c);
        // The owner comes back within the grace and takes the call; agent2 stays ready.
        let ua = call_back(&d, "cb-owner", CUSTOMER);
        // Hold music: answered at once.
        assert_eq!(status_of(&ua.final_response()), 200);
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(state(&agent2)["state"], "ready");
        agent1.ok("POST", "/api/v1/agent/ready", None);
        wait_for("the owner takes the call", Duration::from_secs(3), || {
            state(&agent1)["state"] == "talking"
        });
        assert_eq!(state(&agent2)["state"], "ready");
        ua.bye();
        wait_for("owner in wrap-up", Duration::from_secs(5), || {
            state(&agent1)["state"] == "wrap_up"
        });
        agent1.ok(
            "POST",
            "/api/v1/agent/result",
            Some(
                json!({"status": "open", "detail": "call again", "follow_up": "particular",
                        "follow_up_at": "2099-01-01T09:00:00Z"}),
            ),
        );
        agent1.ok(
            "POST",
            "/api/v1/agent/pause",
            Some(json!({"reason": "break"})),
        );
        // The owner stays away: after the grace, agent2 takes it.
        let started = Instant::now();
        let ua = call_back(&d, "cb-grace", CUSTOMER);
        assert_eq!(status_of(&ua.final_response()), 200);
        wait_for("agent2 takes the call", Duration::from_secs(6), || {
            state(&agent2)["state"] == "talking"
        });
        assert!(
            started.elapsed() >= Duration::from_millis(2800),
            "{:?}",
            started.elapsed()
        );
        let ev = events(&agent2);
        let offer = ev
            .iter()
            .find(|e| e["type"] == "call.offered")
            .expect("no offer");
        assert_eq!(offer["direction"], "callback", "{offer}");
        ua.bye();
    }
}

both_stores! {
    fn a_waiting_callback_goes_to_the_next_ready_agent_before_any_predictive_call() {
        let far = Phone::new();
        let d = daemon(&far);
        let admin = Api::new(&d, ADMIN);
        let line = verified_line(&d, &admin, &far, json!({}));
        let (c, task) = campaign_on(&admin, line, json!({}));
        common::dialer::upload_safe_harbour(&admin, c, 2.5);
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}/tasks/{task}"),
            Some(json!({"settings": {"queue": "sales", "dial_mode": "predictive", "wrap_up_seconds": 30}})),
        );
        let k = contact(&admin, c, task, CUSTOMER, json!({}));
        for i in 0..5 {
            admin.ok(
                "POST",
                &format!("/api/v1/campaigns/{c}/contacts"),
                Some(json!({"task_id": task, "phones": [format!("+49307770{i:02}")]})),
            );
        }
        let (agent1, _phone) = sip_agent(&admin, &d, 1, task);
        running(&admin, c);
        let caller = call_back(&d, "cb-first", CUSTOMER);
        wait_for("the caller waiting", Duration::from_secs(5), || {
            let dialer = admin.ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
            dialer["tasks"][0]["waiting_callers"][0]["contact_id"] == k
        });
        // The agent goes ready: the callback is theirs, and no campaign call rings meanwhile.
        let rang = std::thread::scope(|s| {
            let far_side = s.spawn(|| far.serve(Behaviour::Busy, Duration::from_secs(3)));
            agent1.ok("POST", "/api/v1/agent/ready", None);
            let ok = caller.final_response();
            assert_eq!(status_of(&ok), 200, "{ok}");
            far_side.join().unwrap()
        });
        assert!(
            rang.invite.is_empty(),
            "an outbound call was placed: {}",
            rang.invite
        );
        assert_eq!(state(&agent1)["state"], "talking");
        let ev = events(&agent1);
        let offer = ev
            .iter()
            .find(|e| e["type"] == "call.offered")
            .expect("no offer");
        assert_eq!(
            (offer["direction"].as_str(), offer["contact"].as_i64()),
            (Some("callback"), Some(k)),
            "{offer}"
        );
        let placed: f64 = {
            let (_, text) = d.get("/metrics");
            text.lines()
                .filter(|l| l.starts_with("dialerd_dialer_calls_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        assert_eq!(
            placed, 0.0,
            "no campaign attempt recorded while the caller was served"
        );
        caller.bye();
    }
}

both_stores! {
    fn a_callback_for_a_task_another_node_dials_is_refused_with_503_for_the_proxy_to_try_the_next() {
        let far = Phone::new();
        let d = daemon(&far);
        let admin = Api::new(&d, ADMIN);
        let line = verified_line(&d, &admin, &far, json!({}));
        let (c, task) = campaign_on(&admin, line, json!({}));
        let k = contact(&admin, c, task, CUSTOMER, json!({}));
        // Another node sharing the store dials the task (its lease, as that node writes it);
        // no agent is logged in here, so this node runs no driver for it.
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store = rt.block_on(d.open_store());
        let now = dialerd::store::now_ms();
        rt.block_on(store.claim_task(task, "elsewhere", now, 600_000))
            .unwrap();
        let caller = call_back(&d, "cb-elsewhere", CUSTOMER);
        let answer = caller.final_response();
        assert_eq!(status_of(&answer), 503, "{answer}");
        let (_, text) = d.get("/metrics");
        let series = format!("dialerd_inbound_calls_total{{line=\"{line}\",result=\"elsewhere\"}}");
        assert_eq!(metric(&text, &series), Some(1.0), "{series}");
        // Nothing is recorded here: the holder takes the call.
        let got = contact_of(&admin, c, k);
        assert_ne!(got["detail"], "$missed_callback", "{got}");
        // Held by no node, a callback with no agent here is a missed callback, as on one node.
        rt.block_on(store.release_task(task, "elsewhere")).unwrap();
        let caller = call_back(&d, "cb-here", CUSTOMER);
        let ok = caller.final_response();
        assert_eq!(status_of(&ok), 200, "{ok}");
        wait_for("the missed callback recorded", Duration::from_secs(10), || {
            contact_of(&admin, c, k)["detail"] == "$missed_callback"
        });
    }
}
