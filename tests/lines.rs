//! Caller-ID lines over the real API and real SIP: a verification call to a test phone speaks
//! a code that the test recovers from the audio it heard (by matching the digit prompts);
//! right, wrong, burned codes; busy and no answer; the per-number rate limit; the audit trail
//! and the metrics.

mod common;

use common::phone::{Behaviour, Heard, Phone};
use common::Daemon;
use dialerd::media::codec::g711;
use dialerd::media::prompt::{find_clip, load_wav};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "lines-test-admin-token";

fn start(phone_port: u16) -> Daemon {
    Daemon::start_with(
        &format!(
            "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = {phone_port}\n\
             keepalive = \"0s\"\n[media]\nrtp_port_min = 31600\nrtp_port_max = 31699\n\
             [lines]\nring_timeout = \"2s\"\nmax_calls_per_number = 3\nrate_window = \"1h\"\n\
             caller_id = \"+4930999000\"\n"
        ),
        &[("DIALERD_ADMIN_TOKEN", TOKEN)],
    )
}

fn api(d: &Daemon, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, text) = common::api_request(d.http, TOKEN, method, path, body.as_ref());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The line once its verification call has ended (status no longer "calling").
fn settled(d: &Daemon, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, line) = api(d, "GET", &format!("/api/v1/lines/{id}"), None);
        if line["last_outcome"] != "calling" || Instant::now() > deadline {
            return line;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn prompt(name: &str) -> Vec<i16> {
    load_wav(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("prompts/en/{name}.wav"))).unwrap()
}

/// The digits spoken after `intro` in `audio`: each the digit prompt found earliest (with a
/// correlation of at least 0.9) in the audio that follows the previous one.
fn digits_after(audio: &[i16], intro: &[i16], from: usize) -> (String, usize) {
    let (at, score) = find_clip(&audio[from..], intro).expect("intro prompt not found");
    assert!(score > 0.9, "intro prompt correlation {score}");
    let mut pos = from + at + intro.len();
    let digits: Vec<Vec<i16>> = (0..10).map(|d| prompt(&d.to_string())).collect();
    let longest = digits.iter().map(Vec::len).max().unwrap();
    let mut spoken = String::new();
    for _ in 0..6 {
        let window = &audio[pos..(pos + longest + 8000).min(audio.len())];
        let best = digits
            .iter()
            .enumerate()
            .filter_map(|(d, clip)| {
                let (off, score) = find_clip(window, clip)?;
                (score >= 0.9).then_some((off, d, clip.len()))
            })
            .min()
            .expect("no digit prompt found where a digit should be");
        spoken.push(char::from(b'0' + best.1 as u8));
        pos += best.0 + best.2;
    }
    (spoken, pos)
}

/// The code spoken twice in what the phone heard ("… code is D D D D D D. I repeat: …").
fn code_heard(heard: &Heard) -> String {
    let audio: Vec<i16> = heard
        .payloads
        .iter()
        .flatten()
        .map(|&b| g711::ulaw_to_linear(b))
        .collect();
    let (first, end) = digits_after(&audio, &prompt("verification_code_is"), 0);
    let (second, _) = digits_after(&audio, &prompt("i_repeat"), end);
    assert_eq!(first, second, "the code is said twice, the same");
    first
}

fn create_line(d: &Daemon, number: &str) -> i64 {
    create_line_as(d, number, "external")
}

fn create_line_as(d: &Daemon, number: &str, mode: &str) -> i64 {
    let (status, line) = api(
        d,
        "POST",
        "/api/v1/lines",
        Some(json!({"number": number, "title": "Sales", "language": "en", "callback_mode": mode})),
    );
    assert_eq!(status, 201, "{line}");
    assert_eq!(line["status"], "unverified");
    line["id"].as_i64().unwrap()
}

/// Asks for a verification call of line `id` (202, `verifying`).
fn start_verification(d: &Daemon, id: i64) {
    let (status, line) = api(d, "POST", &format!("/api/v1/lines/{id}/verification"), None);
    assert_eq!(status, 202, "{line}");
    assert_eq!(line["status"], "verifying");
}

fn verification_call(d: &Daemon, phone: &Phone, id: i64, how: Behaviour) -> (Heard, Value) {
    start_verification(d, id);
    let heard = phone.serve(how, Duration::from_secs(30));
    (heard, settled(d, id))
}

both_stores! {
    fn a_verification_call_speaks_a_code_that_verifies_the_line() {
        let phone = Phone::new();
        let d = start(phone.port());
        let id = create_line(&d, "+49 30 1234567");

        let (heard, line) = verification_call(&d, &phone, id, Behaviour::Answer);
        assert!(
            heard.invite.starts_with("INVITE sip:+49301234567@"),
            "{}",
            heard.invite
        );
        assert!(
            heard.invite.contains("+4930999000"),
            "caller ID: {}",
            heard.invite
        );
        assert!(heard.ended, "no BYE after the message");
        assert_eq!(line["last_outcome"], "code_spoken", "{line}");
        assert_eq!(line["status"], "verifying");
        let code = code_heard(&heard);

        let wrong = if code == "000000" { "111111" } else { "000000" };
        let (status, problem) = api(
            &d,
            "POST",
            &format!("/api/v1/lines/{id}/verify"),
            Some(json!({ "code": wrong })),
        );
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], "code");
        assert!(
            problem["detail"].as_str().unwrap().contains("2 tries left"),
            "{problem}"
        );

        let (status, line) = api(
            &d,
            "POST",
            &format!("/api/v1/lines/{id}/verify"),
            Some(json!({ "code": code })),
        );
        assert_eq!(status, 200, "{line}");
        assert_eq!(line["status"], "verified");
        assert!(line["verified_at"].is_string());
        // Used once: the same code again finds nothing waiting.
        let (status, _) = api(
            &d,
            "POST",
            &format!("/api/v1/lines/{id}/verify"),
            Some(json!({ "code": code })),
        );
        assert_eq!(status, 409);

        let (_, attempts) = api(
            &d,
            "GET",
            &format!("/api/v1/lines/{id}/verifications"),
            None,
        );
        assert_eq!(attempts[0]["requested_by"], "admin", "{attempts}");
        assert_eq!(attempts[0]["outcome"], "code_spoken");
        assert_eq!(attempts[0]["sip_code"], 200);
        let (_, metrics) = d.get("/metrics");
        let m = |s: &str| common::metric(&metrics, s);
        assert_eq!(
            m("dialerd_lines{status=\"verified\"}"),
            Some(1.0),
            "{metrics}"
        );
        assert_eq!(
            m("dialerd_line_verifications_total{mode=\"external\",result=\"code_accepted\"}"),
            Some(1.0)
        );

        // The verified line is what the campaign's calls show: in From and P-Asserted-Identity,
        // with Privacy: none.
        let (status, c) = api(
            &d,
            "POST",
            "/api/v1/campaigns",
            Some(
                json!({"name": "Shows the line", "time_zone": "Europe/Berlin",
                        "default_region": "DE", "line_id": id}),
            ),
        );
        assert_eq!(status, 201, "{c}");
        let test_call = format!("/api/v1/campaigns/{}/test-call", c["id"]);
        let (heard, (status, report)) = std::thread::scope(|s| {
            let answering = s.spawn(|| phone.serve(Behaviour::Answer, Duration::from_secs(15)));
            let answer = api(&d, "POST", &test_call, Some(json!({"to": "030 7654321"})));
            (answering.join().unwrap(), answer)
        });
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["outcome"], "answered", "{report}");
        assert_eq!(report["caller_id"], "+49301234567");
        let invite = &heard.invite;
        assert!(invite.starts_with("INVITE sip:+49307654321@"), "{invite}");
        let header = |name: &str| common::ua::header(invite, name);
        assert!(header("From").contains("<sip:+49301234567@"), "{invite}");
        assert!(
            header("P-Asserted-Identity").contains("<sip:+49301234567@"),
            "{invite}"
        );
        assert_eq!(header("Privacy"), "none", "{invite}");

        // Once a later verification fails, the campaign places no call showing the line.
        let (_, line) = verification_call(&d, &phone, id, Behaviour::Busy);
        assert_eq!(line["status"], "failed", "{line}");
        let (status, p) = api(&d, "POST", &test_call, Some(json!({"to": "030 7654321"})));
        assert_eq!((status, p["field"].as_str()), (409, Some("line_id")), "{p}");
        assert!(p["detail"].as_str().unwrap().contains("failed"), "{p}");
        let (status, p) = api(&d, "POST", &test_call, Some(json!({"to": "030 76x"})));
        assert_eq!((status, p["field"].as_str()), (422, Some("to")), "{p}");
        for (body, field) in [
            (json!({"to": "030 7654321", "trunk": "nope"}), "trunk"),
            (json!({"to": "030 7654321", "task_id": 999}), "task_id"),
            (json!({"to": "030 7654321", "caller_id": "+1"}), "caller_id"),
        ] {
            let (status, p) = api(&d, "POST", &test_call, Some(body));
            assert_eq!((status, p["field"].as_str()), (422, Some(field)), "{p}");
        }
    }
}

both_stores! {
    fn three_wrong_codes_burn_it_busy_and_no_answer_fail_and_a_fourth_call_is_refused() {
        let phone = Phone::new();
        let d = start(phone.port());
        let id = create_line(&d, "+33 1 23 45 67 89");

        let (heard, _) = verification_call(&d, &phone, id, Behaviour::Answer);
        let code = code_heard(&heard);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let verify = |c: &str| {
            api(
                &d,
                "POST",
                &format!("/api/v1/lines/{id}/verify"),
                Some(json!({ "code": c })),
            )
        };
        assert_eq!(verify(wrong).0, 422);
        assert_eq!(verify(wrong).0, 422);
        let (status, problem) = verify(wrong);
        assert_eq!(status, 409, "the third wrong try burns the code: {problem}");
        let (status, problem) = verify(&code);
        assert_eq!(status, 409, "a burned code stays burned: {problem}");
        let (_, line) = api(&d, "GET", &format!("/api/v1/lines/{id}"), None);
        assert_eq!(line["status"], "failed");
        assert_eq!(line["last_outcome"], "code_burned");

        let (_, line) = verification_call(&d, &phone, id, Behaviour::Busy);
        assert_eq!(line["status"], "failed", "{line}");
        assert_eq!(line["last_outcome"], "busy");
        assert_eq!(line["last_sip_code"], 486);

        let (heard, line) = verification_call(&d, &phone, id, Behaviour::RingForever);
        assert!(
            heard.ended,
            "the ringing call is cancelled at lines.ring_timeout"
        );
        assert_eq!(line["status"], "failed", "{line}");
        assert_eq!(line["last_outcome"], "no_answer");

        // Three calls to this number within the hour: the fourth is refused and nothing is dialled.
        let (status, problem) = api(
            &d,
            "POST",
            &format!("/api/v1/lines/{id}/verification"),
            None,
        );
        assert_eq!(status, 429, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("+33123456789"),
            "{problem}"
        );
        let quiet = phone.serve(Behaviour::Answer, Duration::from_millis(500));
        assert!(
            quiet.invite.is_empty(),
            "a refused verification placed a call"
        );

        let (_, attempts) = api(
            &d,
            "GET",
            &format!("/api/v1/lines/{id}/verifications"),
            None,
        );
        let outcomes: Vec<&str> = attempts
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["outcome"].as_str().unwrap_or("-"))
            .collect();
        assert_eq!(outcomes, ["no_answer", "busy", "code_spoken"]);
        let (_, metrics) = d.get("/metrics");
        assert_eq!(
            common::metric(
                &metrics,
                "dialerd_line_verifications_total{mode=\"external\",result=\"busy\"}"
            ),
            Some(1.0)
        );
    }
}

both_stores! {
    fn bad_line_input_is_named() {
        let d = start(5999);
        let (status, p) = api(&d, "POST", "/api/v1/lines", Some(json!({"number": "12ab"})));
        assert_eq!((status, p["field"].as_str()), (422, Some("number")), "{p}");
        let (status, p) = api(
            &d,
            "POST",
            "/api/v1/lines",
            Some(json!({"number": "+4930123", "colour": "red"})),
        );
        assert_eq!(status, 422, "{p}");
        assert!(p["field"].as_str().unwrap_or("").contains("colour"), "{p}");
        let (status, p) = api(
            &d,
            "POST",
            "/api/v1/lines",
            Some(json!({"number": "+4930123456", "language": "English"})),
        );
        assert_eq!(
            (status, p["field"].as_str()),
            (422, Some("language")),
            "{p}"
        );
        let (status, p) = api(
            &d,
            "POST",
            "/api/v1/lines",
            Some(json!({"number": "+4930123456", "language": "xx"})),
        );
        assert_eq!(
            (status, p["field"].as_str()),
            (422, Some("language")),
            "{p}"
        );
        assert!(p["detail"].as_str().unwrap().contains("en, fr"), "{p}");
        // Forward mode without lines.access_number cannot be verified.
        let (status, line) = api(
            &d,
            "POST",
            "/api/v1/lines",
            Some(json!({"number": "+4930123456", "callback_mode": "forward"})),
        );
        assert_eq!(status, 201, "{line}");
        let id = line["id"].as_i64().unwrap();
        let (status, p) = api(
            &d,
            "POST",
            &format!("/api/v1/lines/{id}/verification"),
            None,
        );
        assert_eq!(status, 409, "{p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("lines.access_number"),
            "{p}"
        );
        let (status, p) = api(
            &d,
            "POST",
            &format!("/api/v1/lines/{id}/verify"),
            Some(json!({"code": "12ab56"})),
        );
        assert_eq!((status, p["field"].as_str()), (422, Some("code")), "{p}");
        assert!(p["detail"].as_str().unwrap().contains("six digits"), "{p}");
    }
}

both_stores! {
    fn an_expired_code_is_refused() {
        let phone = Phone::new();
        let d = start(phone.port());
        let id = create_line(&d, "+44 20 7946 0958");
        let (heard, line) = verification_call(&d, &phone, id, Behaviour::Answer);
        assert_eq!(line["last_outcome"], "code_spoken", "{line}");
        let code = code_heard(&heard);
        // Eleven minutes pass: the code's expiry is moved into the past in the daemon's database.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&d.store_url()).await.unwrap();
            let done = sqlx::query("UPDATE lines SET code_expires_ms = code_expires_ms - 660000")
                .execute(&pool)
                .await
                .unwrap();
            assert_eq!(done.rows_affected(), 1);
            pool.close().await;
        });
        let (status, p) = api(
            &d,
            "POST",
            &format!("/api/v1/lines/{id}/verify"),
            Some(json!({ "code": code })),
        );
        assert_eq!(status, 409, "{p}");
        assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
        let (_, line) = api(&d, "GET", &format!("/api/v1/lines/{id}"), None);
        assert_eq!(line["status"], "failed");
        assert_eq!(line["last_outcome"], "code_expired");
    }
}

#[test]
fn a_forward_line_is_verified_when_the_call_comes_back_diverted_and_campaigns_want_verified_lines()
{
    let phone = Phone::new();
    let d = Daemon::start_with(
        &format!(
            "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = {}\nkeepalive = \"0s\"\n\
             [media]\nrtp_port_min = 31700\nrtp_port_max = 31799\n\
             [lines]\naccess_number = \"4930999111\"\nforward_timeout = \"10s\"\n\
             caller_id_pool = [\"+4930999201\"]\n",
            phone.port()
        ),
        &[("DIALERD_ADMIN_TOKEN", TOKEN)],
    );
    let id = create_line_as(&d, "+4930555123", "forward");

    // An unverified line cannot be a campaign's caller ID.
    let campaign = |name: &str| json!({"name": name, "time_zone": "Europe/Berlin", "line_id": id});
    let (status, p) = api(&d, "POST", "/api/v1/campaigns", Some(campaign("early")));
    assert_eq!((status, p["field"].as_str()), (422, Some("line_id")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("unverified"), "{p}");

    start_verification(&d, id);
    let ringing = std::thread::scope(|s| {
        let rings = s.spawn(|| phone.serve(Behaviour::RingForever, Duration::from_secs(15)));
        std::thread::sleep(Duration::from_millis(500));
        // A stranger calling the access number is not taken for the forwarded call.
        let stranger = common::ua::TestUa::new(d.sip, "access-stranger");
        stranger.invite("4930999111");
        assert_eq!(common::status_of(&stranger.final_response()), 404);
        // The carrier forwards the ringing call to the access number, saying so in Diversion.
        let back = common::ua::TestUa::new(d.sip, "access-back");
        back.invite_with(
            "4930999111",
            "Diversion: <sip:+4930555123@carrier.example>;reason=unconditional\r\n",
        );
        assert_eq!(common::status_of(&back.final_response()), 603);
        rings.join().unwrap()
    });
    assert!(
        ringing.invite.contains("+4930999201"),
        "the call shows the pool caller ID: {}",
        ringing.invite
    );
    assert!(
        ringing.ended,
        "the placed call is cancelled once it came back"
    );
    let line = settled(&d, id);
    assert_eq!(line["status"], "verified", "{line}");
    assert_eq!(line["last_outcome"], "forwarded");

    // The same with History-Info (RFC 7044) instead of Diversion, a national spelling in it.
    let other = create_line_as(&d, "+4930555777", "forward");
    start_verification(&d, other);
    std::thread::scope(|s| {
        let rings = s.spawn(|| phone.serve(Behaviour::RingForever, Duration::from_secs(15)));
        std::thread::sleep(Duration::from_millis(500));
        let back = common::ua::TestUa::new(d.sip, "access-back-hi");
        back.invite_with(
            "4930999111",
            "History-Info: <sip:004930555777@pbx.example;user=phone>;index=1\r\n\
             History-Info: <sip:4930999111@dialerd;cause=302>;index=1.1\r\n",
        );
        assert_eq!(common::status_of(&back.final_response()), 603);
        assert!(rings.join().unwrap().ended);
    });
    assert_eq!(settled(&d, other)["status"], "verified");

    let (status, c) = api(&d, "POST", "/api/v1/campaigns", Some(campaign("verified")));
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["line_id"], id);
    let (_, metrics) = d.get("/metrics");
    assert_eq!(
        common::metric(
            &metrics,
            "dialerd_line_verifications_total{mode=\"forward\",result=\"forwarded\"}"
        ),
        Some(2.0)
    );
}

both_stores! {
    fn sipp_as_the_carrier_forwards_the_call_back_and_the_line_is_verified() {
        let port = {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let work = tempfile::tempdir().unwrap();
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("sip-scenarios/lines/carrier_forwards_to_access.xml");
        let sipp = std::process::Command::new("sipp")
            .current_dir(work.path())
            .arg("-sf")
            .arg(&scenario)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
            .args([
                "-nostdin",
                "-timeout",
                "30s",
                "-timeout_error",
                "-trace_err",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("SIPp is not installed: ./scripts/test installs sip-tester");
        let d = Daemon::start_with(
            &format!(
                "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = {port}\nkeepalive = \"0s\"\n\
                 [media]\nrtp_port_min = 31900\nrtp_port_max = 31999\n\
                 [lines]\naccess_number = \"4930999111\"\nforward_timeout = \"10s\"\n"
            ),
            &[("DIALERD_ADMIN_TOKEN", TOKEN)],
        );
        let id = create_line_as(&d, "+4930555123", "forward");
        start_verification(&d, id);
        let out = sipp.wait_with_output().unwrap();
        let errors = std::fs::read_dir(work.path())
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect::<String>();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{errors}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = settled(&d, id);
        assert_eq!(line["status"], "verified", "{line}");
        assert_eq!(line["last_outcome"], "forwarded");
    }
}
