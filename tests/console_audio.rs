//! Browser audio (WebRTC) in a real headless Chromium whose microphone is a WAV file of a
//! 440 Hz tone: the agent logs in on `/agent/` with "this browser" as the audio, goes ready,
//! and the progressive campaign's call, answered by a SIPp carrier whose customer speaks a
//! 1 kHz tone (PCMA), is put through to the browser (PCMU, PCMA, or Opus transcoded at the
//! browser leg's boundary). The customer hears the browser's tone and the page hears the
//! customer's (a WebAudio analyser on the received stream, read through WebDriver). Logout ends the browser leg and gives its ports back; a browser that
//! goes away ends the session as a phone's hang-up does, one that never connects times out.

mod common;

use common::api::{Api, ADMIN};
use common::dialer::{
    carrier_log, config_with_agents, dialing_campaign, finished, free_udp_port, logged_carrier,
    Customers, Sipp, Sound,
};
use common::rtp::share_at;
use common::webdriver::{Browser, Driver};
use common::Daemon;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// Where the run leaves its screenshots of the pages.
fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console")
}

/// `seconds` of a 440 Hz tone, 48 kHz mono: the browser's fake microphone.
fn microphone_wav(path: &Path, seconds: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..seconds * 48_000 {
        let v = (f64::from(i) * 440.0 * std::f64::consts::TAU / 48_000.0).sin();
        w.write_sample((v * 12_000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// A browser whose microphone plays `wav`, allowed to use it without asking.
fn browser_with_microphone<'a>(driver: &'a Driver, wav: &Path) -> Browser<'a> {
    driver.browser_with(&[
        "--use-fake-device-for-media-stream".into(),
        "--use-fake-ui-for-media-stream".into(),
        format!("--use-file-for-fake-audio-capture={}", wav.display()),
        "--autoplay-policy=no-user-gesture-required".into(),
        "--allow-loopback-in-peer-connection".into(),
    ])
}

/// The page's audio figures: `{mic, heard, heardHz, state, codec, dtmf}`, or null without
/// browser audio.
fn levels(b: &Browser) -> Value {
    b.run("return window.dialerdAudio()", json!([]))
}

/// A gauge of the daemon's `/metrics`.
fn gauge(d: &Daemon, name: &str) -> f64 {
    let (_, text) = d.get("/metrics");
    common::metric(&text, name).unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// An agent who signs in with a password, as the page does.
fn agent_user(admin: &Api, name: &str, password: &str) -> i64 {
    let u = admin.ok(
        "POST",
        "/api/v1/users",
        Some(json!({"name": name, "role": "agent", "password": password})),
    );
    u["id"].as_i64().unwrap()
}

fn log_in_with_browser_audio(b: &Browser, d: &Daemon, name: &str, password: &str) {
    b.goto(&format!("http://{}/agent/", d.http));
    b.fill("#login-name", name);
    b.fill("#login-password", password);
    b.click("#login-submit");
    b.wait("the session form", WAIT, |b| b.visible("#setup-start"));
    b.click("input[name=phone-kind][value=webrtc]");
    b.click("#setup-start");
    b.wait_text("#state", "PAUSED", Duration::from_secs(20));
}

/// A daemon preferring `codecs` (`media.codecs`) and `browser` (`webrtc.codecs`), a SIPp carrier whose one customer answers and talks, and a
/// progressive campaign with that customer.
struct Call {
    logs: tempfile::TempDir,
    customers: Customers,
    far: Option<Sipp>,
    d: Daemon,
    admin: Api,
    campaign: i64,
    agent: i64,
}

impl Call {
    fn new(codecs: &str, browser: &str) -> Call {
        Call::with_env(codecs, browser, &[])
    }

    fn with_env(codecs: &str, browser: &str, env: &[(&str, &str)]) -> Call {
        let carrier_port = free_udp_port();
        let logs = tempfile::tempdir().unwrap();
        let log = logs.path().join("carrier.log");
        microphone_wav(&logs.path().join("microphone.wav"), 10);
        let customers = Customers::start(&log);
        let far = logged_carrier(
            "dialer/carrier_talks_until_bye.xml",
            carrier_port,
            1,
            customers.port,
            &log,
        );
        let mut vars = vec![
            ("DIALERD_ADMIN_TOKEN", ADMIN),
            ("DIALERD__MEDIA__CODECS", codecs),
            ("DIALERD__WEBRTC__CODECS", browser),
        ];
        vars.extend_from_slice(env);
        let d = Daemon::start_with(&config_with_agents(carrier_port, 0), &vars);
        let admin = Api::new(&d, ADMIN);
        let (campaign, _) = dialing_campaign(
            &admin,
            "Browser",
            json!({"queue": "sales", "dial_mode": "progressive", "wrap_up_seconds": 120,
                   "ring_timeout_seconds": 15, "max_attempts": 1}),
            1,
            0,
        );
        let agent = agent_user(&admin, "ann", "ann-password-1");
        Call {
            logs,
            customers,
            far: Some(far),
            d,
            admin,
            campaign,
            agent,
        }
    }

    fn wav(&self) -> PathBuf {
        self.logs.path().join("microphone.wav")
    }

    /// Logs the agent in on `b` with browser audio, makes it ready and lets the campaign dial:
    /// once talking, the page hears the customer's 1 kHz and the customer the browser's
    /// 440 Hz. The customer's dialerd RTP port.
    /// Mutes the page for a second (the customer on `port` hears none of the microphone),
    /// then unmutes it.
    fn mute_silences_the_microphone(&self, b: &Browser, port: u16) {
        b.click("#mute");
        std::thread::sleep(Duration::from_millis(500));
        let muted_from = unix_now();
        std::thread::sleep(Duration::from_secs(1));
        let heard = self.customers.frames(port, muted_from, unix_now());
        assert_eq!(heard.get(&Sound::Message), None, "muted, yet {heard:?}");
        b.click("#mute");
    }

    /// The page's keypad: 4, 2, # reach the customer on `port` as RFC 4733 events, in order.
    fn keypad_reaches_the_customer(&self, b: &Browser, port: u16) {
        let from = unix_now();
        for key in ["4", "2", "#"] {
            b.click(&format!("#keypad [data-digit='{key}']"));
            std::thread::sleep(Duration::from_millis(400));
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let keys = self.customers.keys(port, from);
            if keys == [4, 2, 11] {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the customer got keys {keys:?}, not 4, 2, #"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn talk(&self, b: &Browser) -> u16 {
        log_in_with_browser_audio(b, &self.d, "ann", "ann-password-1");
        assert_eq!(b.text("#reason"), "(login)");
        assert_eq!(b.text("#audio-phone"), "this browser");
        assert_eq!(levels(b)["state"], "connected");
        // Between customers the browser hears our silence (after the join tone).
        b.wait("the join tone over", WAIT, |b| {
            levels(b)["heard"].as_f64().unwrap_or(1.0) < 0.01
        });
        b.wait("the microphone's WAV on the meter", WAIT, |b| {
            levels(b)["mic"].as_f64().unwrap_or(0.0) > 0.05
        });
        b.alt('r');
        b.wait_text("#state", "READY", WAIT);
        self.admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{}", self.campaign),
            Some(json!({"status": "enabled"})),
        );
        b.wait_text("#state", "TALKING", Duration::from_secs(20));
        let talking = unix_now();
        // The page hears the customer's 1 kHz tone.
        b.wait("the customer's tone in the browser", WAIT, |b| {
            let l = levels(b);
            let hz = l["heardHz"].as_f64().unwrap_or(0.0);
            l["heard"].as_f64().unwrap_or(0.0) > 0.1 && (950.0..1050.0).contains(&hz)
        });
        // The customer hears the browser's 440 Hz microphone.
        let port = carrier_log(&self.logs.path().join("carrier.log"))
            .iter()
            .find_map(|e| e.rtp.filter(|_| e.kind == "invite"))
            .expect("the carrier logged the call");
        let deadline = Instant::now() + WAIT;
        loop {
            let heard = self.customers.frames(port, talking, unix_now());
            if heard.get(&Sound::Message).copied().unwrap_or(0) >= 50 {
                return port;
            }
            assert!(
                Instant::now() < deadline,
                "the customer did not hear the browser's tone: {heard:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn a_browser_agent_talks_to_a_customer_over_webrtc_and_its_leg_ends_with_the_session() {
    // PCMU to the browser, the customer on PCMA: transcoded in the bridge.
    let mut call = Call::new("PCMU,PCMA", "PCMU,PCMA,opus");
    let (d, admin, ann) = (&call.d, &call.admin, call.agent);
    let free_before = gauge(d, "dialerd_rtp_ports_free");
    assert_eq!(gauge(d, "dialerd_webrtc_legs_active"), 0.0);
    let driver = Driver::start();
    let agent = browser_with_microphone(&driver, &call.wav());
    let port = call.talk(&agent);
    assert_eq!(
        gauge(d, "dialerd_webrtc_legs_active"),
        1.0,
        "the browser leg is up"
    );
    assert_eq!(levels(&agent)["codec"], "PCMU/8000");
    assert_eq!(levels(&agent)["dtmf"], true, "telephone-event/8000 agreed");
    // A browser leg holds pool ports: its own and its media leg's.
    assert!(gauge(d, "dialerd_rtp_ports_free") < free_before);
    agent.screenshot(&shots().join("agent-browser-audio.png"));

    // Muted on the page, the customer hears no more of the microphone.
    call.mute_silences_the_microphone(&agent, port);
    call.keypad_reaches_the_customer(&agent, port);

    // Alt+H hangs up: the carrier gets BYE.
    agent.alt('h');
    agent.wait_text("#state", "WRAP-UP", WAIT);
    finished(call.far.take().unwrap(), "the carrier", WAIT);

    // Logout ends the browser leg: its ports go back to the pool.
    admin.ok("DELETE", &format!("/api/v1/agents/{ann}/session"), None);
    agent.wait("the session form again", WAIT, |b| {
        b.visible("#setup-start")
    });
    assert_eq!(levels(&agent), Value::Null, "the page let go of its audio");
    let deadline = Instant::now() + WAIT;
    while gauge(d, "dialerd_rtp_ports_free") < free_before {
        assert!(Instant::now() < deadline, "the browser leg kept its ports");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        gauge(d, "dialerd_webrtc_legs_active"),
        0.0,
        "the leg is gone"
    );
    assert_eq!(
        common::metric_sum(
            &d.get("/metrics").1,
            "dialerd_webrtc_connect_failures_total"
        ),
        0.0,
        "a leg that connected is no failure"
    );

    // Again; then the browser goes away: the session ends as with a phone's hang-up.
    agent.click("input[name=phone-kind][value=webrtc]");
    agent.click("#setup-start");
    agent.wait_text("#state", "PAUSED", Duration::from_secs(20));
    agent.goto("about:blank");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let a = admin.ok("GET", "/api/v1/agents", None)["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == ann)
            .cloned()
            .unwrap();
        if a["state"] == "logged_out" {
            assert_eq!(a["reason"], "leg_lost", "{a}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session outlived the browser: {a}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_browser_offering_pcma_first_in_our_order_gets_it_end_to_end() {
    // The customer's PCMA goes to the browser as it is.
    let mut call = Call::new("PCMA,PCMU", "PCMA,PCMU,opus");
    let driver = Driver::start();
    let agent = browser_with_microphone(&driver, &call.wav());
    call.talk(&agent);
    assert_eq!(levels(&agent)["codec"], "PCMA/8000");
    agent.alt('h');
    agent.wait_text("#state", "WRAP-UP", WAIT);
    finished(call.far.take().unwrap(), "the carrier", WAIT);

    // The call was recorded: the customer's 1 kHz on the left, the browser's 440 Hz on the right.
    let admin = &call.admin;
    let deadline = Instant::now() + WAIT;
    let rec = loop {
        let calls = admin.ok("GET", "/api/v1/calls", None);
        let rec = calls
            .as_array()
            .or_else(|| calls["items"].as_array())
            .and_then(|all| all.iter().find(|r| r["route"] == "campaign").cloned());
        if let Some(rec) = rec.filter(|r| r["recording_path"].is_string()) {
            break rec;
        }
        assert!(Instant::now() < deadline, "no recording: {calls}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut wav = hound::WavReader::open(rec["recording_path"].as_str().unwrap()).unwrap();
    let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let (left, right): (Vec<i16>, Vec<i16>) = samples.chunks(2).map(|lr| (lr[0], lr[1])).unzip();
    assert!(share_at(&left, 1000.0) > 0.3, "customer's side: {rec}");
    assert!(share_at(&right, 440.0) > 0.3, "browser's side: {rec}");
}

#[test]
fn a_browser_preferring_opus_talks_through_the_transcoder_both_ways() {
    // Chromium offers Opus first; dialerd prefers it too. The customer speaks PCMA, the
    // browser leg's media leg carries PCMU (media.codecs' first), Opus to the browser.
    let mut call = Call::new("PCMU,PCMA", "opus,PCMU,PCMA");
    let d = &call.d;
    let free_before = gauge(d, "dialerd_rtp_ports_free");
    let driver = Driver::start();
    let agent = browser_with_microphone(&driver, &call.wav());
    let port = call.talk(&agent);
    assert_eq!(levels(&agent)["codec"], "opus/48000/2");
    // Its telephone-event at 48 kHz was agreed: Chromium's RTCDTMFSender can send.
    assert_eq!(levels(&agent)["dtmf"], true);
    agent.screenshot(&shots().join("agent-browser-audio-opus.png"));

    // Muted on the page, the customer hears no more of the microphone (Opus of silence).
    call.mute_silences_the_microphone(&agent, port);
    // Keys sent at 48 kHz reach the customer's 8 kHz events.
    call.keypad_reaches_the_customer(&agent, port);

    agent.alt('h');
    agent.wait_text("#state", "WRAP-UP", WAIT);
    finished(call.far.take().unwrap(), "the carrier", WAIT);
    call.admin.ok(
        "DELETE",
        &format!("/api/v1/agents/{}/session", call.agent),
        None,
    );
    let deadline = Instant::now() + WAIT;
    while gauge(d, "dialerd_rtp_ports_free") < free_before {
        assert!(Instant::now() < deadline, "the Opus leg kept its ports");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Agent `id` as the admin API lists it.
fn agent_row(admin: &Api, id: i64) -> Value {
    admin.ok("GET", "/api/v1/agents", None)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap()
}

#[test]
fn browser_audio_that_dialerd_loses_comes_back_by_itself_and_a_logout_stays_out() {
    // The browser stops its RTP with its connection up: dialerd's RTP timeout ends the leg
    // (leg_lost), and the page logs in again with a new offer on its own.
    let call = Call::with_env(
        "PCMU,PCMA",
        "opus,PCMU",
        &[("DIALERD__MEDIA__RTP_TIMEOUT", "3s")],
    );
    let (admin, ann) = (&call.admin, call.agent);
    let driver = Driver::start();
    let agent = browser_with_microphone(&driver, &call.wav());
    log_in_with_browser_audio(&agent, &call.d, "ann", "ann-password-1");
    assert_eq!(levels(&agent)["codec"], "opus/48000/2");
    let since = agent_row(admin, ann)["since"].clone();
    agent.run("window.dialerdConsole.stopAudio()", json!([]));
    agent.wait_text("#notice", "Browser audio lost", WAIT);
    agent.screenshot(&shots().join("agent-audio-reconnecting.png"));
    agent.wait_text("#notice", "Browser audio is back", Duration::from_secs(20));
    assert_eq!(agent.text("#state"), "PAUSED");
    assert_eq!(agent.text("#reason"), "(login)");
    agent.wait("the new connection up", WAIT, |b| {
        levels(b)["state"] == "connected"
    });
    let row = agent_row(admin, ann);
    assert_eq!(
        (&row["state"], &row["reason"]),
        (&json!("paused"), &json!("login")),
        "{row}"
    );
    assert_ne!(row["since"], since, "a new session: {row}");
    // It talks again: the new leg's microphone reaches dialerd and keeps the session up past
    // the RTP timeout.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(agent_row(admin, ann)["state"], "paused");
    assert_eq!(agent.text("#state"), "PAUSED");

    // A supervisor's logout is no loss: the page stays logged out.
    admin.ok("DELETE", &format!("/api/v1/agents/{ann}/session"), None);
    agent.wait("the session form again", WAIT, |b| {
        b.visible("#setup-start")
    });
    std::thread::sleep(Duration::from_secs(3));
    let row = agent_row(admin, ann);
    assert_eq!(
        (&row["state"], &row["reason"]),
        (&json!("logged_out"), &json!("logout")),
        "{row}"
    );
    assert_eq!(levels(&agent), Value::Null, "the page let go of its audio");
}

#[test]
fn a_browser_offer_without_our_codecs_or_without_sdp_is_refused() {
    // With webrtc.codecs G.711 only, an Opus-only offer has nothing dialerd takes.
    let d = Daemon::start_with(
        &config_with_agents(free_udp_port(), 0),
        &[
            ("DIALERD_ADMIN_TOKEN", ADMIN),
            ("DIALERD__WEBRTC__CODECS", "PCMU,PCMA"),
        ],
    );
    let admin = Api::new(&d, ADMIN);
    let (_, task) = common::api::campaign(&admin, "Refused");
    let (_, ann) = common::api::user(&admin, "ann", "agent");
    let opus_only = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
        a=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
        a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
        a=setup:actpass\r\na=rtcp-mux\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n";
    let (status, body) = ann.call(
        "POST",
        "/api/v1/agent/session",
        Some(json!({"tasks": [task], "phone": "webrtc", "sdp": opus_only})),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("PCMU"), "{body}");
    let (status, body) = ann.call(
        "POST",
        "/api/v1/agent/session",
        Some(json!({"tasks": [task], "phone": "webrtc"})),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "sdp", "{body}");
    let (status, body) = ann.call(
        "POST",
        "/api/v1/agent/session",
        Some(json!({"tasks": [task], "phone": "sip", "sdp": opus_only})),
    );
    assert_eq!(status, 422, "{body}");
    // Nothing of the refused logins stays.
    let (status, _) = ann.call("GET", "/api/v1/agent/session", None);
    assert_eq!(status, 409);
}

#[test]
fn a_browser_that_never_connects_is_logged_out_and_its_ports_go_back() {
    let d = Daemon::start_with(
        &config_with_agents(free_udp_port(), 0),
        &[
            ("DIALERD_ADMIN_TOKEN", ADMIN),
            ("DIALERD__SESSIONS__RING_TIMEOUT", "5s"),
        ],
    );
    let admin = Api::new(&d, ADMIN);
    let (_, task) = common::api::campaign(&admin, "Silent");
    let (_, api) = common::api::user(&admin, "ann", "agent");
    let free_before = gauge(&d, "dialerd_rtp_ports_free");
    // A real offer from a peer that then never sends a datagram.
    let mut rtc = str0m::Rtc::builder()
        .clear_codecs()
        .enable_pcmu(true, false)
        .build(Instant::now());
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let candidate = str0m::Candidate::host(socket.local_addr().unwrap(), "udp").unwrap();
    rtc.add_local_candidate(candidate);
    let mut change = rtc.sdp_api();
    change.add_media(
        str0m::media::MediaKind::Audio,
        str0m::media::Direction::SendRecv,
        None,
        None,
        None,
    );
    let (offer, _) = change.apply().unwrap();
    let (status, body) = api.call(
        "POST",
        "/api/v1/agent/session",
        Some(json!({"tasks": [task], "phone": "webrtc", "sdp": offer.to_sdp_string()})),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (&body["state"], &body["reason"]),
        (&json!("logged_out"), &json!("connecting"))
    );
    assert!(body["sdp"].as_str().unwrap().contains("a=ice-lite"));
    assert!(gauge(&d, "dialerd_rtp_ports_free") < free_before);
    // The connect timeout (ring timeout + 5 s) ends the session and the leg.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = api.call("GET", "/api/v1/agent/session", None);
        if v["reason"] != "connecting" {
            assert_eq!(
                (&v["state"], &v["reason"]),
                (&json!("logged_out"), &json!("timeout")),
                "{v}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "still connecting: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + WAIT;
    while gauge(&d, "dialerd_rtp_ports_free") < free_before {
        assert!(Instant::now() < deadline, "the browser leg kept its ports");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Counted as a leg that never connected, ended from above; never as connected.
    assert_eq!(
        gauge(
            &d,
            "dialerd_webrtc_connect_failures_total{reason=\"ended\"}"
        ),
        1.0
    );
    assert_eq!(
        gauge(
            &d,
            "dialerd_webrtc_connect_failures_total{reason=\"error\"}"
        ),
        0.0
    );
    assert_eq!(gauge(&d, "dialerd_webrtc_legs_active"), 0.0);
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
