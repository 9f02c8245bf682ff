//! The browser console in a real headless Chromium (Debian's `chromium` driven by
//! `chromium-driver` over WebDriver): an agent logs in on `/agent/`, starts a session on a
//! number (a phone behind one trunk answers it), goes ready, sees a preview contact before any
//! call, dials, talks to the customer (a phone behind a second trunk), hangs up with a keyboard
//! shortcut and submits the result form; the contact in the API carries it. A supervisor
//! watches on `/supervisor/` and steers the agent; a lost event link comes back by itself.
//! A contact calling the campaign's line back pops up as a callback, in the callback colour.

mod common;

use common::api::{campaign, Api, ADMIN, BASE};
use common::phone::{Behaviour, Phone};
use common::ua::TestUa;
use common::webdriver::{Browser, Driver};
use common::{http_request, status_of, Daemon};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const AGENT_NUMBER: &str = "+4930111222";

/// Where the run leaves its screenshots of the pages.
fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console")
}

/// A user with a password, and an API client with a token of its own.
fn person(admin: &Api, name: &str, role: &str, password: &str) -> (i64, Api) {
    let u = admin.ok(
        "POST",
        "/api/v1/users",
        Some(json!({"name": name, "role": role, "password": password})),
    );
    let id = u["id"].as_i64().unwrap();
    let t = admin.ok(
        "POST",
        &format!("/api/v1/users/{id}/tokens"),
        Some(json!({"label": "test"})),
    );
    let api = Api {
        addr: admin.addr,
        token: t["token"].as_str().unwrap().to_string(),
    };
    (id, api)
}

/// Logs in on the page at `path` of `d`.
fn log_in(b: &Browser, d: &Daemon, path: &str, name: &str, password: &str) {
    b.goto(&format!("http://{}{path}", d.http));
    b.fill("#login-name", name);
    b.fill("#login-password", password);
    b.click("#login-submit");
}

/// The supervisor page's row of agent `id` shows `state`.
fn row_in(b: &Browser, id: i64, state: &str) {
    b.wait(&format!("supervisor sees agent {id} {state}"), WAIT, |b| {
        // Read in one step: the row may change between a find and a read.
        let now = b.run(
            "const r = document.querySelector(arguments[0]); return r ? r.dataset.state : null",
            json!([format!("tr[data-agent=\"{id}\"]")]),
        );
        now == state
    });
}

/// Nothing has reached `phone` yet (its SIP socket holds no datagram).
fn untouched(phone: &Phone) -> bool {
    let mut buf = [0u8; 2048];
    phone.sip.set_nonblocking(true).unwrap();
    let none = phone.sip.peek_from(&mut buf).is_err();
    phone.sip.set_nonblocking(false).unwrap();
    none
}

#[test]
fn an_agent_takes_a_preview_call_and_records_its_result_in_the_browser_while_a_supervisor_watches()
{
    // The agent's session call takes the first trunk (both idle, first wins, one call each);
    // the customer's call then has only the second.
    let agent_phone = Phone::new();
    let customer = Phone::new();
    let config = format!(
        "{BASE}[media]\nrtp_timeout = \"0s\"\n\
         [sessions]\npause_reasons = [\"break\", \"coaching\"]\nring_timeout = \"10s\"\n\
         [[trunks]]\nname = \"agents\"\nhost = \"127.0.0.1\"\nport = {}\nkeepalive = \"0s\"\nmax_calls = 1\n\
         [[trunks]]\nname = \"customers\"\nhost = \"127.0.0.1\"\nport = {}\nkeepalive = \"0s\"\nmax_calls = 1\n",
        agent_phone.port(),
        customer.port()
    );
    let d = Daemon::start_with(&config, &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
    let admin = Api::new(&d, ADMIN);
    let (c, task) = campaign(&admin, "Brochures");
    admin.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}"),
        Some(json!({"calling_hours": {"from": "00:00", "to": "24:00"}})),
    );
    admin.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}/tasks/{task}"),
        Some(
            json!({"settings": {"queue": "sales", "dial_mode": "preview", "wrap_up_seconds": 120}}),
        ),
    );
    admin.ok(
        "PUT",
        &format!("/api/v1/campaigns/{c}/form"),
        Some(json!({"fields": [
            {"key": "name", "title": "Full name", "type": "text", "required": true},
            {"key": "plan", "title": "Plan", "type": "choice", "choices": ["basic", "gold"]},
            {"key": "notes", "title": "Notes", "type": "note"}]})),
    );
    let k = admin.ok(
        "POST",
        &format!("/api/v1/campaigns/{c}/contacts"),
        Some(json!({"phones": ["030 1234567"], "fields": {"name": "Erika Mustermann", "plan": "basic"}})),
    );
    let contact = k["id"].as_i64().unwrap();
    let (ann, _) = person(&admin, "ann", "agent", "ann-password-1");
    let (_, sue) = person(&admin, "sue", "supervisor", "sue-password-1");

    let driver = Driver::start();
    let agent = driver.browser();
    let boss = driver.browser();
    let (agent_leg, customer_call) = std::thread::scope(|s| {
        let agent_leg = s.spawn(|| agent_phone.serve(Behaviour::Answer, Duration::from_secs(90)));

        // Log in on the page; the token stays in the page's memory.
        log_in(&agent, &d, "/agent/", "ann", "ann-password-1");
        agent.wait("the session form", WAIT, |b| b.visible("#setup-start"));
        let kept = agent.run(
            "return [localStorage.length, sessionStorage.length, document.cookie, location.href]",
            json!([]),
        );
        assert_eq!(
            kept,
            json!([0, 0, "", format!("http://{}/agent/", d.http)]),
            "no token kept"
        );
        assert!(agent.visible("#setup-tasks input[type=checkbox]:checked"));
        agent.click("input[name=phone-kind][value=number]");
        agent.fill("#setup-number", AGENT_NUMBER);
        agent.click("#setup-start");
        agent.wait_text("#state", "PAUSED", Duration::from_secs(20));
        assert_eq!(agent.text("#reason"), "(login)");
        assert_eq!(agent.text("#audio-phone"), AGENT_NUMBER);
        assert!(agent
            .text("#webrtc-status")
            .contains("Browser audio is off"));

        log_in(&boss, &d, "/supervisor/", "sue", "sue-password-1");
        row_in(&boss, ann, "paused");

        agent.alt('r');
        agent.wait_text("#state", "READY", WAIT);
        row_in(&boss, ann, "ready");

        // The campaign dials: the contact pops up on the page before any call is placed.
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"status": "enabled"})),
        );
        agent.wait("the preview pop", WAIT, |b| b.visible("#preview-dial"));
        assert_eq!(
            agent.attr("#pop", "data-direction").as_deref(),
            Some("preview")
        );
        assert!(agent.text("#pop-fields").contains("Erika Mustermann"));
        assert!(agent.text("#pop-fields").contains("Full name"));
        assert_eq!(agent.text("#pop-phones"), "+49301234567");
        assert!(
            untouched(&customer),
            "the customer was called before the pop"
        );
        agent.wait_text("#pop-history", "create", WAIT);
        agent.screenshot(&shots().join("agent-preview.png"));
        row_in(&boss, ann, "reserved");

        let customer_call = s.spawn(|| customer.serve(Behaviour::Answer, Duration::from_secs(60)));
        agent.click("#preview-dial");
        agent.wait_text("#state", "TALKING", Duration::from_secs(15));
        agent.wait_text("#pop-status", "Talking", WAIT);
        assert_eq!(agent.text("#calls"), "1");
        row_in(&boss, ann, "talking");
        // The last hours: the plot is drawn, and the current 5 minutes have busy agent time.
        let plot = format!("#history svg[data-task=\"{task}\"] polyline.occupancy");
        boss.wait("the plot of the last hours", WAIT, |b| {
            b.find(&plot).is_some()
        });
        let h = sue.ok(
            "GET",
            &format!("/api/v1/campaigns/{c}/dialer/history?hours=1"),
            None,
        );
        let buckets = h["tasks"][0]["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 12, "{h}");
        assert!(
            buckets[11]["occupancy"].as_f64().is_some_and(|o| o > 0.0),
            "{h}"
        );
        for bad in ["0", "25", "x"] {
            let (status, p) = sue.call(
                "GET",
                &format!("/api/v1/campaigns/{c}/dialer/history?hours={bad}"),
                None,
            );
            assert_eq!((status, p["field"].as_str()), (400, Some("hours")), "{p}");
        }
        // The queue's figures come pushed too: the driver runs, one call in flight.
        let queue = format!("#queues tr[data-task=\"{task}\"]");
        boss.wait_text(&format!("{queue} td:nth-child(2)"), "preview", WAIT);
        boss.wait_text(&format!("{queue} td:nth-child(3)"), "1", WAIT);
        assert!(!boss.text(&queue).contains("not dialling"));
        boss.screenshot(&shots().join("supervisor.png"));
        agent.screenshot(&shots().join("agent-talking.png"));

        // Alt+H hangs up: the customer gets BYE, the result form and its countdown show.
        agent.alt('h');
        agent.wait_text("#state", "WRAP-UP", WAIT);
        agent.wait("the result form", WAIT, |b| b.visible("#result-submit"));
        agent.wait_text("#wrap-countdown", "wrap-up 1:", WAIT);
        let customer_call = customer_call.join().unwrap();

        // A required field left empty is refused on the page, before the API.
        agent.fill("#field-name", " ");
        agent.fill("#result-detail", "brochure sent");
        agent.click("#result-submit");
        agent.wait_text("#notice", "Full name is required", WAIT);
        assert_eq!(agent.text("#state"), "WRAP-UP");
        agent.fill("#field-name", "Erika M. Mustermann");
        agent.select("#field-plan", "gold");
        agent.fill("#field-notes", "wants the gold brochure");
        // A call-back of the agent's own at 09:30 on the contact's wall clock (Berlin, UTC+1).
        agent.select("#result-status", "open");
        agent.click("input[name=follow-up][value=particular]");
        agent.run(
            "document.getElementById('result-at').value = arguments[0]",
            json!(["2030-01-02T09:30"]),
        );
        agent.screenshot(&shots().join("agent-result.png"));
        let fits = agent.run(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            json!([]),
        );
        assert!(
            fits[0].as_i64() <= fits[1].as_i64(),
            "wider than 1366: {fits}"
        );
        agent.alt('s');
        agent.wait_text("#state", "READY", WAIT);
        assert!(!agent.visible("#result"), "the form is gone once saved");

        // The event link drops; the page says so, reconnects with `since` and follows again.
        agent.run("window.dialerdConsole.dropEvents()", json!([]));
        agent.wait_text("#notice", "Reconnected", WAIT);
        let row = format!("tr[data-agent=\"{ann}\"]");
        boss.select(&format!("{row} select"), "coaching");
        boss.click(&format!("{row} button:nth-of-type(2)"));
        agent.wait_text("#state", "PAUSED", WAIT);
        assert_eq!(agent.text("#reason"), "(coaching)");
        row_in(&boss, ann, "paused");

        agent.click("#logout");
        agent.wait("the session form again", WAIT, |b| {
            b.visible("#setup-start")
        });
        row_in(&boss, ann, "logged_out");
        (agent_leg.join().unwrap(), customer_call)
    });
    assert!(
        agent_leg
            .invite
            .starts_with(&format!("INVITE sip:{AGENT_NUMBER}@")),
        "{}",
        agent_leg.invite
    );
    assert!(agent_leg.ended, "logging out hangs the agent's phone up");
    assert!(
        customer_call.invite.starts_with("INVITE sip:+49301234567@"),
        "{}",
        customer_call.invite
    );
    assert!(
        customer_call.ended,
        "the agent's hang-up reached the customer"
    );

    let k = admin.ok(
        "GET",
        &format!("/api/v1/campaigns/{c}/contacts/{contact}"),
        None,
    );
    assert_eq!(
        (k["status"].as_str(), k["detail"].as_str()),
        (Some("open"), Some("brochure sent")),
        "{k}"
    );
    assert_eq!(k["time_zone"], "Europe/Berlin", "{k}");
    assert!(
        k["follow_up_at"]
            .as_str()
            .is_some_and(|at| at.starts_with("2030-01-02T08:30:00")),
        "{k}"
    );
    assert_eq!(
        k["owner"], "ann",
        "a particular call-back is the agent's: {k}"
    );
    assert_eq!(
        k["fields"],
        json!({"name": "Erika M. Mustermann", "plan": "gold", "notes": "wants the gold brochure"}),
        "{k}"
    );
    assert_eq!(k["attempts"], 1, "{k}");
    let agents = sue.ok("GET", "/api/v1/agents", None);
    let me: &Value = agents["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == ann)
        .unwrap();
    assert_eq!(me["state"], "logged_out", "{me}");
}

/// The computed CSS `property` of the element at `css`.
fn style(b: &Browser, css: &str, property: &str) -> String {
    b.run(
        "return getComputedStyle(document.querySelector(arguments[0]))[arguments[1]]",
        json!([css, property]),
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

#[test]
fn a_contact_calling_back_pops_up_in_the_callback_colour() {
    const LINE: &str = "+4930555123";
    const ACCESS: &str = "4930999111";
    // One trunk: the agent's session call goes out on it, the caller comes in on it.
    let far = Phone::new();
    let config = format!(
        "{BASE}[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\n\
         port = {}\nkeepalive = \"0s\"\n[media]\nrtp_timeout = \"60s\"\n\
         [lines]\naccess_number = \"{ACCESS}\"\nforward_timeout = \"10s\"\ncaller_id_pool = [\"+4930999201\"]\n",
        far.port()
    );
    let d = Daemon::start_with(&config, &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
    let admin = Api::new(&d, ADMIN);
    let body = json!({"number": LINE, "language": "en", "callback_mode": "forward"});
    let line = common::phone::verified_line(&admin, &far, d.sip, body, ACCESS);
    let (c, task) = campaign(&admin, "Callbacks");
    admin.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}"),
        Some(json!({"line_id": line, "status": "enabled",
                    "calling_hours": {"from": "00:00", "to": "24:00"}})),
    );
    admin.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}/tasks/{task}"),
        Some(json!({"settings": {"queue": "sales", "dial_mode": "progressive", "wrap_up_seconds": 30}})),
    );
    // Open, due only in 2099: nothing is dialled, the contact calls in.
    let k = admin.ok(
        "POST",
        &format!("/api/v1/campaigns/{c}/contacts"),
        Some(
            json!({"task_id": task, "phones": ["+4930123456"], "fields": {"name": "Erika Rückruf"},
                    "follow_up_at": "2099-01-01T09:00:00Z"}),
        ),
    )["id"]
        .as_i64()
        .unwrap();
    person(&admin, "ann", "agent", "ann-password-1");

    let driver = Driver::start();
    let agent = driver.browser();
    std::thread::scope(|s| {
        let agent_leg = s.spawn(|| far.serve(Behaviour::Answer, Duration::from_secs(60)));
        log_in(&agent, &d, "/agent/", "ann", "ann-password-1");
        agent.wait("the session form", WAIT, |b| b.visible("#setup-start"));
        agent.click("input[name=phone-kind][value=number]");
        agent.fill("#setup-number", AGENT_NUMBER);
        agent.click("#setup-start");
        agent.wait_text("#state", "PAUSED", Duration::from_secs(20));
        agent.alt('r');
        agent.wait_text("#state", "READY", WAIT);
        let deadline = Instant::now() + WAIT;
        loop {
            let dialer = admin.ok("GET", &format!("/api/v1/campaigns/{c}/dialer"), None);
            if dialer["tasks"].as_array().is_some_and(|t| !t.is_empty()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the campaign's driver is not running"
            );
            std::thread::sleep(Duration::from_millis(50));
        }

        let caller = TestUa::new(d.sip, "cb-browser");
        caller.invite_with(
            LINE,
            "P-Asserted-Identity: <sip:030123456@carrier.example>\r\n",
        );
        let ok = caller.final_response();
        assert_eq!(status_of(&ok), 200, "{ok}");
        agent.wait_text("#state", "TALKING", WAIT);
        agent.wait("the callback pop", WAIT, |b| b.visible("#pop"));
        assert_eq!(
            agent.attr("#pop", "data-direction").as_deref(),
            Some("callback")
        );
        assert_eq!(agent.text("#pop-direction"), "CALLBACK");
        assert!(agent.text("#pop-title").contains(&format!("contact {k}")));
        assert!(agent.text("#pop-fields").contains("Erika Rückruf"));
        // The callback colour (--callback, #b3128c) on the pop's edge and label, a tint behind
        // it: not the blue of an outbound call or the violet of a preview.
        let magenta = "rgb(179, 18, 140)";
        assert_eq!(style(&agent, "#pop", "borderLeftColor"), magenta);
        assert_eq!(style(&agent, "#pop-direction", "backgroundColor"), magenta);
        assert_eq!(
            style(&agent, "#pop", "backgroundColor"),
            "rgb(253, 240, 250)"
        );
        agent.screenshot(&shots().join("agent-callback.png"));

        caller.bye();
        agent.wait_text("#state", "WRAP-UP", WAIT);
        agent.click("#logout");
        agent.wait("the session form again", WAIT, |b| {
            b.visible("#setup-start")
        });
        assert!(agent_leg.join().unwrap().ended);
    });
}

#[test]
fn the_pages_are_served_with_a_strict_policy_and_no_inline_script() {
    let d = common::api::start();
    for path in [
        "/agent/",
        "/supervisor/",
        "/console/agent.js",
        "/console/console.css",
    ] {
        let (status, head, body) = common::http_bytes(d.http, "GET", path, &[]);
        assert_eq!(status, 200, "{path}: {head}");
        let head = head.to_ascii_lowercase();
        let csp = head
            .lines()
            .find_map(|l| l.strip_prefix("content-security-policy:"))
            .unwrap_or_else(|| panic!("{path}: no policy: {head}"));
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(head.contains("x-frame-options: deny"), "{head}");
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        if path.ends_with('/') {
            let html = String::from_utf8(body).unwrap();
            for named in html.split("\"/console/").skip(1) {
                let file = &named[..named.find('"').unwrap()];
                let (status, head, _) =
                    common::http_bytes(d.http, "GET", &format!("/console/{file}"), &[]);
                assert_eq!(status, 200, "{path} names /console/{file}: {head}");
            }
            assert!(head.contains("content-type: text/html"), "{head}");
            // Every script is a file of its own: the policy would block an inline one.
            for tag in html.split("<script").skip(1) {
                assert!(tag.contains("src=\"/console/"), "inline script in {path}");
            }
            let handler = html.split(" on").skip(1).any(|rest| {
                let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
                !name.is_empty() && rest[name.len()..].starts_with('=')
            });
            assert!(!handler, "inline handler in {path}");
        }
    }
    let (status, _, _) = http_request(d.http, "GET", "/console/../Cargo.toml", &[], b"");
    assert_eq!(status, 404);
    let (status, _, _) = http_request(d.http, "GET", "/console/nope.js", &[], b"");
    assert_eq!(status, 404);
    // Pages answer only the hosts the API answers (DNS rebinding).
    let mut s = std::net::TcpStream::connect(d.http).unwrap();
    write!(
        s,
        "GET /agent/ HTTP/1.1\r\nHost: rebind.attacker.example\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 421"), "{resp}");
}
