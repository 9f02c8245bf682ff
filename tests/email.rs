//! E-mail tasks against the real binary and a real SMTP server (python3's aiosmtpd, writing
//! what it receives to a maildir): headers, filled placeholders, escaped HTML, an encoded
//! UTF-8 subject; a line break in a header value refused; a relay that is down retried with
//! back-off, then `failed`/`$email_failed`, each try in the contact's history.

mod common;

use common::api::{campaign, Api, ADMIN, BASE};
use common::Daemon;
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// An aiosmtpd server on a free loopback port, storing messages in a maildir; killed on drop.
struct Smtp {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Smtp {
    fn start() -> Smtp {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let child = common::python3()
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(addr.to_string())
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs (scripts/test installs python3-aiosmtpd)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Smtp { child, addr, dir }
    }

    /// The messages received so far, parsed by python3's email package.
    fn messages(&self) -> Vec<Value> {
        parse_maildir(&self.dir.path().join("maildir"))
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every message in a maildir: decoded headers, the raw Subject line, the text and HTML parts.
fn parse_maildir(dir: &Path) -> Vec<Value> {
    let script = r#"
import email, email.policy, glob, json, sys
out = []
for path in sorted(glob.glob(sys.argv[1] + "/new/*")):
    data = open(path, "rb").read()
    m = email.message_from_bytes(data, policy=email.policy.default)
    raw = email.message_from_bytes(data, policy=email.policy.compat32)
    text = m.get_body(("plain",))
    html = m.get_body(("html",))
    out.append({
        "from": str(m["From"]), "to": str(m["To"]), "subject": str(m["Subject"]),
        "raw_subject": raw["Subject"], "rcpt": str(m["X-RcptTo"]), "bcc": m["Bcc"],
        "text": text.get_content() if text else None,
        "html": html.get_content() if html else None,
    })
print(json.dumps(out))
"#;
    let out = common::python3()
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits (up to 30 s) until `f` gives Some.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A contact with `fields` moved into the e-mail task by a `success` result: its id.
fn mail_to(api: &Api, c: i64, dial: i64, phone: &str, fields: Value) -> i64 {
    let k = api.ok(
        "POST",
        &format!("/api/v1/campaigns/{c}/contacts"),
        Some(json!({"task_id": dial, "phones": [phone], "fields": fields})),
    )["id"]
        .as_i64()
        .unwrap();
    api.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}/contacts/{k}"),
        Some(json!({"status": "success"})),
    );
    k
}

/// The contact once it has left `open` in its e-mail task.
fn settled(api: &Api, c: i64, k: i64) -> Value {
    eventually(&format!("contact {k} settled"), || {
        let v = api.ok("GET", &format!("/api/v1/campaigns/{c}/contacts/{k}"), None);
        (v["status"] != "open").then_some(v)
    })
}

/// The e-mail history entries (`op` email) of a contact.
fn email_history(contact: &Value) -> Vec<Value> {
    contact["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["change"].clone())
        .filter(|c| c["op"] == "email")
        .collect()
}

both_stores! {
    fn email_tasks_send_through_a_real_relay_and_retry_when_it_is_down() {
        let smtp = Smtp::start();
        let config = format!(
            "{BASE}[email]\nsmtp_url = \"smtp://{}\"\nfrom = \"Dialer <noreply@example.com>\"\n",
            smtp.addr
        );
        let d = Daemon::start_with(&config, &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
        let api = Api::new(&d, ADMIN);
        let (c, dial) = campaign(&api, "Spring & <Sale>");
        let mail = api.ok(
            "POST",
            &format!("/api/v1/campaigns/{c}/tasks"),
            Some(json!({"name": "offer", "kind": "email", "settings": {
                "to_field": "email",
                "subject": "Angebot für {{fields.name}} – {{campaign.name}}",
                "text": "Hallo {{fields.name}},\nwir rufen {{phones.0}} an.\n{{campaign.name}}",
                "html": "<p>Hallo {{fields.name}}</p><p>{{campaign.name}}</p>",
                "retries": 2, "backoff_seconds": 1
            }})),
        )["id"]
            .as_i64()
            .unwrap();
        api.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}/tasks/{dial}"),
            Some(json!({"flow": [{"status": "success", "next_task": mail}]})),
        );

        // Sent: success/$sent, the message as the templates say.
        let zoe = mail_to(
            &api,
            c,
            dial,
            "030 1234567",
            json!({"name": "Zoë <b>", "email": "zoe@example.com"}),
        );
        let done = settled(&api, c, zoe);
        assert_eq!(
            (done["task_id"].as_i64(), &done["status"], &done["detail"]),
            (Some(mail), &json!("success"), &json!("$sent")),
            "{done}"
        );
        let messages = smtp.messages();
        assert_eq!(messages.len(), 1, "{messages:?}");
        let m = &messages[0];
        assert_eq!(m["from"], "Dialer <noreply@example.com>");
        assert_eq!(m["to"], "zoe@example.com");
        assert_eq!(m["rcpt"], "zoe@example.com");
        assert_eq!(m["subject"], "Angebot für Zoë <b> – Spring & <Sale>");
        let raw = m["raw_subject"].as_str().unwrap();
        assert!(raw.is_ascii() && raw.contains("=?utf-8?"), "{raw}");
        assert_eq!(
            m["text"].as_str().unwrap().replace("\r\n", "\n").trim_end(),
            "Hallo Zoë <b>,\nwir rufen +49301234567 an.\nSpring & <Sale>"
        );
        assert_eq!(
            m["html"].as_str().unwrap().trim_end(),
            "<p>Hallo Zoë &lt;b&gt;</p><p>Spring &amp; &lt;Sale&gt;</p>"
        );
        assert_eq!(email_history(&done).len(), 1, "{done}");

        // A line break in a value that goes into a header: refused, nothing sent, no retry.
        let evil = mail_to(
            &api,
            c,
            dial,
            "030 1234568",
            json!({"name": "Eve\r\nBcc: victim@example.com", "email": "eve@example.com"}),
        );
        let refused = settled(&api, c, evil);
        assert_eq!(
            (&refused["status"], &refused["detail"]),
            (&json!("failed"), &json!("$email_failed")),
            "{refused}"
        );
        let tries = email_history(&refused);
        assert_eq!(tries.len(), 1, "{refused}");
        assert!(
            tries[0]["error"].as_str().unwrap().contains("line break"),
            "{tries:?}"
        );
        let injected = mail_to(
            &api,
            c,
            dial,
            "030 1234569",
            json!({"name": "Mallory", "email": "m@example.com\r\nBcc: victim@example.com"}),
        );
        let refused = settled(&api, c, injected);
        assert_eq!(refused["detail"], "$email_failed", "{refused}");
        assert_eq!(smtp.messages().len(), 1, "a refused message went out");

        // The relay goes down: two retries a second and two seconds apart, then $email_failed.
        drop(smtp);
        let started = Instant::now();
        let lost = mail_to(
            &api,
            c,
            dial,
            "030 1234570",
            json!({"name": "Lou", "email": "lou@example.com"}),
        );
        let failed = settled(&api, c, lost);
        assert_eq!(
            (&failed["status"], &failed["detail"]),
            (&json!("failed"), &json!("$email_failed")),
            "{failed}"
        );
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let tries = email_history(&failed);
        assert_eq!(tries.len(), 3, "{failed}");
        assert_eq!(
            tries
                .iter()
                .map(|t| t["tries"].as_i64())
                .collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3)]
        );
        assert_eq!(
            tries
                .iter()
                .map(|t| t["retry_in_seconds"].as_i64())
                .collect::<Vec<_>>(),
            [Some(1), Some(2), None]
        );
        assert!(tries.iter().all(|t| t["error"].is_string()), "{tries:?}");
    }
}

both_stores! {
    /// A relay URL of another scheme and a relay without a sender are refused at start-up.
    fn email_config_is_checked() {
        for (email, key) in [
            (
                "smtp_url = \"http://x\"\nfrom = \"a@b.c\"\n",
                "email.smtp_url",
            ),
            ("smtp_url = \"smtp://127.0.0.1:25\"\n", "email.from"),
            ("smtp_uri = \"smtp://127.0.0.1:25\"\n", "email.smtp_uri"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("dialerd.toml");
            std::fs::write(&path, format!("{BASE}[email]\n{email}")).unwrap();
            let out = common::command()
                .arg("check-config")
                .arg("--config")
                .arg(&path)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{email}: accepted");
            assert!(err.contains(key), "{email}: {err}");
        }
    }
}
