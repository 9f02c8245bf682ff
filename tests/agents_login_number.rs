//! Agents log in by calling `sip.agent_login_number` from their registered phone, against the
//! real daemon with SIPp as the phone: the agent's SIP login and tasks come from the API, the
//! phone registers, its INVITE to the login number is challenged (407) and answered (200), the
//! agent is listed paused (reason `login`) for its tasks, a second login call gets 486, and the
//! phone's BYE logs it out; an agent without tasks gets 403.

mod common;

use common::agent_phone::{free_udp_port, scenario};
use common::api::{campaign, Api, ADMIN, BASE};
use common::Daemon;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const CONFIG: &str = "[sip]\ndigest_algorithms = [\"MD5\"]\nagent_login_number = \"1003\"\n";

/// SIPp on 127.0.0.1 running `xml` once against the daemon as SIP account `user`.
fn sipp(xml: &str, user: &str, password: &str, daemon: SocketAddr) -> Command {
    let mut c = common::agent_phone::sipp();
    c.arg("-sf")
        .arg(scenario(xml))
        .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
        .args([
            "-mp",
            &common::agent_phone::free_rtp_echo_port().to_string(),
            "-rtp_echo",
        ])
        .args(["-key", "sip_user", user, "-au", user, "-ap", password])
        .args(["-m", "1", "-timeout", "30", "-timeout_error", "-nostdin"])
        .arg(daemon.to_string());
    c
}

/// Runs SIPp to its end; its exit status says whether the phone saw what it expects.
fn passes(mut c: Command, what: &str) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: SIPp {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Registers `user` from 127.0.0.1 (the Contact's port is not called in these tests).
fn register(user: &str, password: &str, daemon: SocketAddr) {
    let mut c = sipp("register.xml", user, password, daemon);
    c.args(["-key", "phone_port", &free_udp_port().to_string()]);
    passes(c, "register.xml");
}

/// An agent with a SIP login and these tasks: its user id.
fn agent(admin: &Api, name: &str, sip: (&str, &str), tasks: &[i64]) -> i64 {
    let u = admin.ok(
        "POST",
        "/api/v1/users",
        Some(json!({"name": name, "role": "agent"})),
    );
    let id = u["id"].as_i64().unwrap();
    admin.ok(
        "PATCH",
        &format!("/api/v1/users/{id}"),
        Some(json!({"sip_username": sip.0, "sip_password": sip.1, "tasks": tasks})),
    );
    id
}

/// The agent as `GET /api/v1/agents` lists it.
fn listed(admin: &Api, id: i64) -> Value {
    let list = admin.ok("GET", "/api/v1/agents", None);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("agent {id} not listed: {list}"))
}

/// Polls the listing until `want` holds of the agent, or panics with the last listing.
fn until(admin: &Api, id: i64, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = listed(admin, id);
        if want(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_agent_logs_in_by_calling_the_login_number_and_out_by_hanging_up() {
    let d = Daemon::start_with(
        &format!("{BASE}{CONFIG}"),
        &[("DIALERD_ADMIN_TOKEN", ADMIN)],
    );
    let admin = Api::new(&d, ADMIN);
    let (_, sales) = campaign(&admin, "Sales");
    let (_, other) = campaign(&admin, "Other");
    let ann = agent(&admin, "ann", ("desk-17", "store-secret-1"), &[sales]);
    register("desk-17", "store-secret-1", d.sip);
    assert_eq!(listed(&admin, ann)["state"], "logged_out");

    // The phone calls the login number and stays on the line 8 s, then hangs up.
    let mut call = sipp("login_number.xml", "desk-17", "store-secret-1", d.sip);
    call.args(["-s", "1003", "-d", "8000"]);
    let phone: Child = call.spawn().unwrap();
    let v = until(&admin, ann, "paused for login", |v| v["state"] == "paused");
    assert_eq!(v["reason"], "login", "{v}");
    assert_eq!(v["tasks"], json!([sales]), "its tasks from the store: {v}");
    assert_ne!(v["tasks"], json!([other]));
    // A second login call while the first holds the session: 486.
    let mut again = sipp("login_number_busy.xml", "desk-17", "store-secret-1", d.sip);
    again.args(["-s", "1003"]);
    passes(again, "login_number_busy.xml");
    assert_eq!(listed(&admin, ann)["state"], "paused");
    let out = phone.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "login_number.xml: SIPp {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v = until(&admin, ann, "logged out by the BYE", |v| {
        v["state"] == "logged_out"
    });
    assert_eq!(v["reason"], "leg_lost", "{v}");

    // An agent without tasks is refused with 403 and stays logged out.
    let bob = agent(&admin, "bob", ("desk-18", "store-secret-2"), &[]);
    register("desk-18", "store-secret-2", d.sip);
    let mut call = sipp(
        "login_number_refused.xml",
        "desk-18",
        "store-secret-2",
        d.sip,
    );
    call.args(["-s", "1003"]);
    passes(call, "login_number_refused.xml (no tasks)");
    assert_eq!(listed(&admin, bob)["state"], "logged_out");

    // The same phone calling another number is not logged in: the route is the login number.
    let mut call = sipp(
        "login_number_refused.xml",
        "desk-17",
        "store-secret-1",
        d.sip,
    );
    call.args(["-s", "1004"]);
    let out = call.output().unwrap();
    assert!(!out.status.success(), "a call to 1004 is no login (404)");
    assert_eq!(listed(&admin, ann)["state"], "logged_out");
}
