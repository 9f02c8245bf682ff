//! Agents' SIP logins from the API against the real daemon: their phones register with digest
//! at once (a real baresip on the shipped defaults, and a test phone here), password changes
//! and deletions take effect without a restart, and their INVITEs are challenged with 407
//! while every other source that is no trunk keeps getting 403.

mod common;

use common::api::{campaign, Api, ADMIN, BASE};
use common::ua::header;
use common::Daemon;
use dialerd::sip::auth::{ClientOutcome, DigestClient};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The echo number, and one `[[agents]]` account whose name the store may not take. Nothing
/// else: the SIP settings are the shipped defaults (digest algorithms included).
fn start() -> Daemon {
    let config = format!(
        "{BASE}[sip]\necho_number = \"1000\"\n[[agents]]\nusername = \"cfgagent\"\npassword = \"config-secret\"\n"
    );
    Daemon::start_with(&config, &[("DIALERD_ADMIN_TOKEN", ADMIN)])
}

/// Creates an agent with a SIP login; returns its id.
fn agent(api: &Api, name: &str, sip_username: &str, sip_password: &str) -> i64 {
    let u = api.ok(
        "POST",
        "/api/v1/users",
        Some(json!({"name": name, "role": "agent", "sip_username": sip_username, "sip_password": sip_password})),
    );
    u["id"].as_i64().unwrap()
}

/// `dialerd_sip_registrations_active` now.
fn registrations(d: &Daemon) -> i64 {
    let (_, text) = d.get("/metrics");
    common::metric(&text, "dialerd_sip_registrations_active")
        .expect("no dialerd_sip_registrations_active in /metrics") as i64
}

/// Polls `f` until it holds or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A SIP phone on one UDP socket that answers digest challenges with dialerd's own client.
struct TestPhone {
    sock: UdpSocket,
    target: SocketAddr,
    call_id: String,
    cseq: u32,
    branch: u32,
}

impl TestPhone {
    /// A phone sending from `ip` (any loopback address) to the daemon.
    fn new(ip: &str, target: SocketAddr, call_id: &str) -> Self {
        let sock = UdpSocket::bind((ip, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Self {
            sock,
            target,
            call_id: call_id.into(),
            cseq: 0,
            branch: 0,
        }
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// A request's text: a fresh branch and the next CSeq.
    fn text(
        &mut self,
        method: &str,
        ruri: &str,
        from: &str,
        to: &str,
        extra: &str,
        body: &str,
    ) -> String {
        self.cseq += 1;
        self.branch += 1;
        let local = self.local();
        let ctype = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{c}-{b};rport\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {c}\r\nCSeq: {n} {method}\r\n\
             Contact: <sip:phone@{local}>\r\n{extra}{ctype}Content-Length: {len}\r\n\r\n{body}",
            c = self.call_id,
            b = self.branch,
            n = self.cseq,
            len = body.len(),
        )
    }

    fn send(&self, text: &str) {
        self.sock.send_to(text.as_bytes(), self.target).unwrap();
    }

    /// The next response with a final status (provisional ones skipped), as text.
    fn final_response(&self) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let code: u16 = text
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            if code >= 200 {
                return Some(text);
            }
        }
        None
    }

    /// Sends a request and answers up to one challenge with `creds` (user name, password):
    /// every final response, in order.
    fn transact(
        &mut self,
        method: &str,
        ruri: &str,
        from: &str,
        to: &str,
        (user, password): (&str, &str),
        body: &str,
    ) -> Vec<String> {
        let first = self.text(method, ruri, from, to, "", body);
        self.send(&first);
        let mut seen = Vec::new();
        let Some(resp) = self.final_response() else {
            return seen;
        };
        seen.push(resp.clone());
        if !(resp.starts_with("SIP/2.0 401") || resp.starts_with("SIP/2.0 407")) {
            return seen;
        }
        let request = parse_request(&first);
        let challenge = match dialerd::sip::wire::parse(resp.as_bytes()).unwrap() {
            rsip::SipMessage::Response(r) => r,
            _ => unreachable!(),
        };
        let mut client = DigestClient::new(user, password);
        let ClientOutcome::Retry(headers) = client.on_challenge(&challenge, &request) else {
            return seen;
        };
        let extra: String = headers
            .iter()
            .map(|h| format!("{}: {}\r\n", h.name(), h.value))
            .collect();
        let again = self.text(method, ruri, from, to, &extra, body);
        self.send(&again);
        if let Some(resp) = self.final_response() {
            seen.push(resp);
        }
        seen
    }

    /// REGISTERs `user` with `password` for 300 s: the status codes seen.
    fn register(&mut self, user: &str, password: &str) -> Vec<u16> {
        let t = self.target;
        let aor = format!("<sip:{user}@{t}>");
        let resp = self.transact(
            "REGISTER",
            &format!("sip:{t}"),
            &format!("{aor};tag=reg"),
            &aor,
            (user, password),
            "",
        );
        codes(&resp)
    }

    /// An INVITE from `user` to the echo number; on a 2xx it is ACKed and hung up. The final
    /// responses seen.
    fn call_echo(&mut self, user: &str, password: &str) -> Vec<String> {
        let t = self.target;
        let local = self.local();
        let from = format!("<sip:{user}@{t}>;tag=inv");
        let to = format!("<sip:1000@{t}>");
        let sdp = format!(
            "v=0\r\no=phone 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            ip = local.ip()
        );
        let seen = self.transact(
            "INVITE",
            &format!("sip:1000@{t}"),
            &from,
            &to,
            (user, password),
            &sdp,
        );
        if let Some(ok) = seen.last().filter(|r| r.starts_with("SIP/2.0 200")) {
            let to = header(ok, "To");
            let ack = self.text("ACK", &format!("sip:1000@{t}"), &from, &to, "", "");
            // An ACK carries the INVITE's CSeq number.
            let ack = ack.replace(
                &format!("CSeq: {} ACK", self.cseq),
                &format!("CSeq: {} ACK", self.cseq - 1),
            );
            self.send(&ack);
            let bye = self.text("BYE", &format!("sip:1000@{t}"), &from, &to, "", "");
            self.send(&bye);
            assert!(
                self.final_response()
                    .is_some_and(|r| r.starts_with("SIP/2.0 200")),
                "BYE not answered 200"
            );
        }
        seen
    }
}

fn parse_request(text: &str) -> rsip::Request {
    match dialerd::sip::wire::parse(text.as_bytes()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

fn codes(responses: &[String]) -> Vec<u16> {
    responses
        .iter()
        .filter_map(|r| r.get(8..11).and_then(|c| c.parse().ok()))
        .collect()
}

both_stores! {
    fn the_api_takes_sip_logins_and_tasks_checks_them_and_never_shows_secrets() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        let (_, task) = campaign(&api, "Agents");
        let u = api.ok(
            "POST",
            "/api/v1/users",
            Some(json!({"name": "ann", "role": "agent", "sip_username": "ann", "sip_password": "ann-secret-1", "tasks": [task]})),
        );
        assert_eq!(u["sip_username"], "ann");
        assert_eq!(u["sip_digest"], "md5");
        assert_eq!(u["tasks"], json!([task]));
        let id = u["id"].as_i64().unwrap();
        let (_, listed) = d.admin_request("GET", "/api/v1/users", None);
        let (_, one) = d.admin_request("GET", &format!("/api/v1/users/{id}"), None);
        for text in [u.to_string(), listed.clone(), one.clone()] {
            assert!(!text.contains("ann-secret-1"), "{text}");
            assert!(!text.contains("ha1"), "{text}");
            assert!(!text.contains("sip_password"), "{text}");
        }
        assert!(listed.contains("\"sip_username\":\"ann\""), "{listed}");

        let problem = |body: serde_json::Value| api.call("POST", "/api/v1/users", Some(body));
        let (status, p) = problem(
            json!({"name": "bea", "role": "agent", "sip_username": "bea", "sip_password": "short"}),
        );
        assert_eq!(
            (status, p["field"].as_str()),
            (422, Some("sip_password")),
            "{p}"
        );
        let (status, p) = problem(
            json!({"name": "bea", "role": "agent", "sip_username": "ann", "sip_password": "long enough"}),
        );
        assert_eq!(status, 409, "{p}");
        let (status, p) = problem(
            json!({"name": "bea", "role": "agent", "sip_username": "cfgagent", "sip_password": "long enough"}),
        );
        assert_eq!(status, 409, "an [[agents]] name is taken too: {p}");
        let (status, p) = problem(json!({"name": "bea", "role": "agent", "tasks": [task, 9999]}));
        assert_eq!((status, p["field"].as_str()), (422, Some("tasks")), "{p}");
        let (status, p) = problem(
            json!({"name": "bea", "role": "operator", "sip_username": "bea", "sip_password": "long enough"}),
        );
        assert_eq!(
            (status, p["field"].as_str()),
            (422, Some("sip_username")),
            "{p}"
        );
        let (status, p) = problem(
            json!({"name": "bea", "role": "agent", "sip_username": "b:ea", "sip_password": "long enough"}),
        );
        assert_eq!(
            (status, p["field"].as_str()),
            (422, Some("sip_username")),
            "{p}"
        );
        // None of the refused users was created half-way.
        let (_, listed) = d.admin_request("GET", "/api/v1/users", None);
        assert!(!listed.contains("\"bea\""), "{listed}");

        let path = format!("/api/v1/users/{id}");
        let (status, p) = api.call("PATCH", &path, Some(json!({"sip_password": "short"})));
        assert_eq!(
            (status, p["field"].as_str()),
            (422, Some("sip_password")),
            "{p}"
        );
        let (status, p) = api.call("PATCH", &path, Some(json!({"sip_username": "anne"})));
        assert_eq!(
            (status, p["field"].as_str()),
            (422, Some("sip_password")),
            "a new name needs the password: {p}"
        );
        let v = api.ok(
            "PATCH",
            &path,
            Some(json!({"tasks": [], "sip_digest": "sha-256"})),
        );
        assert_eq!(
            (v["tasks"].clone(), v["sip_digest"].clone()),
            (json!([]), json!("sha-256"))
        );
        let v = api.ok("PATCH", &path, Some(json!({"sip_username": null})));
        assert_eq!(v["sip_username"], serde_json::Value::Null);
        // Non-agents show no agent fields.
        let (_, me) = d.admin_request("GET", "/api/v1/me", None);
        assert!(!me.contains("sip_username"), "{me}");
    }
}

both_stores! {
    fn phones_register_with_api_logins_and_changes_apply_without_a_restart() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        let id = agent(&api, "bob", "bob", "first-secret");
        let mut phone = TestPhone::new("127.0.0.1", d.sip, "reg-bob");
        assert_eq!(phone.register("bob", "wrong-secret"), [401, 403]);
        assert_eq!(registrations(&d), 0);
        assert_eq!(phone.register("bob", "first-secret"), [401, 200]);
        assert!(eventually(Duration::from_secs(2), || registrations(&d) == 1));
        // The `[[agents]]` account keeps working beside the store's.
        let mut cfg = TestPhone::new("127.0.0.1", d.sip, "reg-cfg");
        assert_eq!(cfg.register("cfgagent", "config-secret"), [401, 200]);
        assert!(eventually(Duration::from_secs(2), || registrations(&d) == 2));

        api.ok(
            "PATCH",
            &format!("/api/v1/users/{id}"),
            Some(json!({"sip_password": "second-secret"})),
        );
        assert!(
            eventually(Duration::from_secs(2), || registrations(&d) == 1),
            "a new password drops the phone's binding"
        );
        assert_eq!(phone.register("bob", "first-secret"), [401, 403]);
        assert_eq!(phone.register("bob", "second-secret"), [401, 200]);
        assert!(eventually(Duration::from_secs(2), || registrations(&d) == 2));

        api.ok("DELETE", &format!("/api/v1/users/{id}"), None);
        assert!(eventually(Duration::from_secs(2), || registrations(&d) == 1));
        assert_eq!(phone.register("bob", "second-secret"), [401, 403]);
        assert_eq!(registrations(&d), 1);
    }
}

both_stores! {
    fn invites_from_a_registered_agent_are_challenged_and_strangers_get_403() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        agent(&api, "cat", "cat", "cats-secret");
        let mut phone = TestPhone::new("127.0.0.1", d.sip, "inv-cat");
        // Not registered: refused outright, without a challenge that would confirm the name.
        assert_eq!(codes(&phone.call_echo("cat", "cats-secret")), [403]);
        assert_eq!(phone.register("cat", "cats-secret"), [401, 200]);

        let seen = phone.call_echo("cat", "cats-secret");
        assert_eq!(codes(&seen), [407, 200], "{seen:#?}");
        let challenge = header(&seen[0], "Proxy-Authenticate");
        assert!(challenge.contains("algorithm=MD5"), "{challenge}");
        assert_eq!(
            seen[0].matches("Proxy-Authenticate").count(),
            1,
            "MD5 only: {}",
            seen[0]
        );
        assert_eq!(codes(&phone.call_echo("cat", "not-her-secret")), [407, 403]);

        // The same user name from an address that did not register: 403, no challenge.
        let mut stranger = TestPhone::new("127.0.0.2", d.sip, "inv-stranger");
        assert_eq!(codes(&stranger.call_echo("cat", "cats-secret")), [403]);
        assert_eq!(codes(&stranger.call_echo("nobody", "whatever1")), [403]);
    }
}

/// baresip's configuration directory: the account and just the modules REGISTER and a call
/// need (a sine tone as microphone, a file as speaker: no sound card).
fn baresip_dir(account: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:0\nmodule_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule ausine.so\nmodule aufile.so\nmodule stdio.so\n\
             module_app account.so\nmodule_app menu.so\n\
             audio_source ausine,440\naudio_player aufile,{}\naudio_alert aufile,{}\n\
             ausrc_srate 48000\nauplay_srate 48000\nausrc_channels 2\nauplay_channels 2\n",
            p.join("heard.wav").display(),
            p.join("alert.wav").display(),
        ),
    )
    .unwrap();
    std::fs::write(p.join("accounts"), format!("{account}\n")).unwrap();
    std::fs::write(p.join("contacts"), "").unwrap();
    dir
}

/// A running baresip whose output is collected.
struct Baresip {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Baresip {
    fn start(dir: &std::path::Path) -> Baresip {
        let mut child = Command::new("baresip")
            .arg("-f")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("baresip is not installed: ./scripts/test installs it, or run `apt-get install baresip`");
        let out = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
                    let mut o = out.lock().unwrap();
                    o.push_str(&String::from_utf8_lossy(&line));
                    o.push('\n');
                }
            });
        }
        Baresip { child, out }
    }

    fn wait_for(&self, text: &str, limit: Duration) -> bool {
        eventually(limit, || self.out.lock().unwrap().contains(text))
    }

    fn command(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

both_stores! {
    fn baresip_registers_on_the_shipped_defaults_and_places_an_authenticated_call() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        agent(&api, "dan", "dan", "dans-secret");
        let sip = d.sip;
        let dir = baresip_dir(&format!(
            "<sip:dan@{sip};transport=udp>;auth_pass=dans-secret;regint=300"
        ));
        let mut phone = Baresip::start(dir.path());
        assert!(
            phone.wait_for("200 OK", Duration::from_secs(10)),
            "baresip did not register: {}",
            phone.output()
        );
        assert!(
            eventually(Duration::from_secs(2), || registrations(&d) == 1),
            "no binding seen by the daemon"
        );
        phone.command(&format!("/dial sip:1000@{sip}"));
        assert!(
            phone.wait_for("Call established", Duration::from_secs(10)),
            "baresip's call was not answered: {}",
            phone.output()
        );
        phone.command("/hangup");

        // A wrong password: baresip is refused and no binding appears.
        let dir = baresip_dir(&format!(
            "<sip:dan@{sip};transport=udp>;auth_pass=not-dans-secret;regint=300"
        ));
        let wrong = Baresip::start(dir.path());
        assert!(
            wrong.wait_for("403 Forbidden", Duration::from_secs(10)),
            "{}",
            wrong.output()
        );
        assert_eq!(registrations(&d), 1);
    }
}
