//! Media through the real daemon, with an in-process test UA on real UDP sockets: the prompt
//! route's audio is decoded and the prompt found in it; an empty RTP port pool gives 503; a
//! relayed call is recorded (stereo WAV, caller left, called right) and its call record names
//! the file.

mod common;

use common::ua::TestUa;
use common::Daemon;
use dialerd::media::codec::g711;
use dialerd::media::prompt::{find_clip, load_wav};
use std::path::Path;
use std::time::Duration;

fn config(ports: (u16, u16)) -> String {
    format!(
        "[[trunks]]\nname = \"loopback\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = 5070\nkeepalive = \"0s\"\n\
         [sip]\necho_number = \"1000\"\nprompt_number = \"1001\"\n\
         [media]\nrtp_port_min = {}\nrtp_port_max = {}\n",
        ports.0, ports.1
    )
}

#[test]
fn prompt_number_plays_the_prompt_on_one_continuous_stream_then_hangs_up() {
    let d = Daemon::start(&config((31000, 31099)));
    let ua = TestUa::new(d.sip, "prompt-1");
    ua.invite("1001");
    let ok = ua.final_response();
    assert_eq!(common::status_of(&ok), 200, "{ok}");
    let (packets, bye) = ua.receive_until_bye(Duration::from_secs(15));
    assert!(bye, "no BYE after the prompt");
    assert!(packets.len() > 20, "only {} RTP packets", packets.len());

    // One stream: SSRC constant, sequence +1, timestamp +160 (20 ms of PCMU) every packet.
    let field = |p: &[u8], at: usize, len: usize| {
        p[at..at + len]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    };
    for pair in packets.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(b[1] & 0x7f, 0, "payload type PCMU");
        assert_eq!(field(a, 8, 4), field(b, 8, 4), "SSRC changed");
        assert_eq!((field(a, 2, 2) + 1) % 65536, field(b, 2, 2), "sequence gap");
        assert_eq!(
            (field(a, 4, 4) + 160) % (1 << 32),
            field(b, 4, 4),
            "timestamp step"
        );
    }

    // The audio is the prompt: decode and look for it.
    let mut audio = Vec::new();
    for p in &packets {
        g711::decode_ulaw(&p[12..], &mut audio);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let prompt = load_wav(&root.join("en/verification_code_is.wav")).unwrap();
    let (at, corr) = find_clip(&audio, &prompt).expect("prompt not found");
    eprintln!("prompt found at sample {at}, correlation {corr:.3}");
    assert!(corr >= 0.95, "correlation {corr} at sample {at}");
    // And not just any speech matches: a digit is not in it.
    let other = load_wav(&root.join("en/7.wav")).unwrap();
    let (_, wrong) = find_clip(&audio, &other).unwrap();
    assert!(wrong < 0.8, "digit 7 matched with {wrong}");

    let metrics = d.get("/metrics").1;
    assert!(
        common::metric(&metrics, "dialerd_rtp_packets_total{direction=\"out\"}").unwrap_or(0.0)
            >= packets.len() as f64 - 5.0,
        "{metrics}"
    );
}

#[test]
fn an_empty_port_pool_gives_503_not_a_crash() {
    // One RTP port pair in the pool: the first call takes it.
    let d = Daemon::start(&config((31200, 31201)));
    let first = TestUa::new(d.sip, "pool-1");
    first.invite("1000");
    assert_eq!(common::status_of(&first.final_response()), 200);
    let second = TestUa::new(d.sip, "pool-2");
    second.invite("1000");
    let resp = second.final_response();
    assert_eq!(common::status_of(&resp), 503, "{resp}");
    // The daemon still answers.
    let (status, _) = d.get("/healthz");
    assert_eq!(status, 200);
    let metrics = d.get("/metrics").1;
    assert_eq!(
        common::metric(&metrics, "dialerd_rtp_ports_free"),
        Some(0.0),
        "{metrics}"
    );
}

#[test]
fn relay_route_bridges_two_legs_transcodes_pcmu_to_pcma_and_records_the_call() {
    // The daemon relays "9" + 1001 through a trunk that is itself: the second leg reaches the
    // prompt route (PCMU), the caller offered only PCMA, so the bridge transcodes. The caller
    // says "seven" meanwhile; the call is recorded.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!(
        "[[trunks]]\nname = \"self\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = {port}\nkeepalive = \"0s\"\n\
         [sip]\nprompt_number = \"1001\"\nrelay_prefix = \"9\"\n\
         [media]\nrtp_port_min = 31400\nrtp_port_max = 31499\nrecord_relay = true\n"
    );
    let listen = format!("127.0.0.1:{port}");
    const TOKEN: &str = "media-test-admin-token-0123456789";
    let d = Daemon::start_with(
        &cfg,
        &[
            ("DIALERD__SIP__LISTEN", listen.as_str()),
            ("DIALERD_ADMIN_TOKEN", TOKEN),
        ],
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let seven = load_wav(&root.join("en/7.wav")).unwrap();
    let said: Vec<Vec<u8>> = seven
        .chunks(160)
        .map(|c| {
            let mut frame = c.to_vec();
            frame.resize(160, 0);
            let mut out = Vec::new();
            g711::encode_alaw(&frame, &mut out);
            out
        })
        .collect();
    let ua = TestUa::new(d.sip, "relay-1").pcma();
    ua.invite("91001");
    let ok = ua.final_response();
    assert_eq!(common::status_of(&ok), 200, "{ok}");
    assert!(ok.contains("RTP/AVP 8"), "answered with PCMA: {ok}");
    let (packets, bye) = std::thread::scope(|s| {
        s.spawn(|| ua.send_voice(0xA11CE, &said, said.len()));
        ua.receive_until_bye(Duration::from_secs(15))
    });
    assert!(bye, "the far leg's hang-up did not reach the caller");
    assert!(packets.len() > 20, "only {} RTP packets", packets.len());
    assert!(packets.iter().all(|p| p[1] & 0x7f == 8), "not all PCMA");
    let mut audio = Vec::new();
    for p in &packets {
        g711::decode_alaw(&p[12..], &mut audio);
    }
    let prompt = load_wav(&root.join("en/verification_code_is.wav")).unwrap();
    let (at, corr) = find_clip(&audio, &prompt).expect("prompt not found");
    eprintln!("relayed prompt found at sample {at}, correlation {corr:.3}");
    assert!(corr >= 0.95, "correlation {corr} at sample {at}");

    // The call record, written at the end, names the recording.
    let auth = format!("Bearer {TOKEN}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let calls = loop {
        let (status, _, body) = common::http_request(
            d.http,
            "GET",
            "/api/v1/calls",
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(status, 200, "{body}");
        let calls: serde_json::Value = serde_json::from_str(&body).unwrap();
        if calls.as_array().is_some_and(|c| !c.is_empty()) {
            break calls;
        }
        assert!(std::time::Instant::now() < deadline, "no call record");
        std::thread::sleep(Duration::from_millis(100));
    };
    let call = &calls[0];
    assert_eq!(call["route"], "relay");
    assert_eq!(call["b_number"], "1001");
    assert_eq!(call["end_reason"], "b_hangup", "{call}");
    assert!(call["answered_at"].as_i64().is_some(), "{call}");
    assert!(call["a_quality"]["mos"].as_f64().unwrap() > 4.0, "{call}");
    let id = call["id"].as_str().unwrap();
    let (status, _, one) = common::http_request(
        d.http,
        "GET",
        &format!("/api/v1/calls/{id}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(status, 200, "{one}");
    let path = std::path::PathBuf::from(call["recording_path"].as_str().expect("no recording"));
    let started = chrono::DateTime::from_timestamp_millis(call["started_at"].as_i64().unwrap());
    let day = started.unwrap().format("%Y/%m/%d").to_string();
    assert_eq!(
        path,
        d.dir
            .path()
            .join("state/recordings")
            .join(day)
            .join(format!("{id}.wav"))
    );
    let (status, _, missing) = common::http_request(
        d.http,
        "GET",
        "/api/v1/calls/nosuchcall",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(status, 404, "{missing}");

    // The recording: stereo 8 kHz 16-bit; the caller's "seven" on the left, the prompt the
    // called side played on the right, and not the other way round.
    let mut wav = hound::WavReader::open(&path).unwrap();
    let spec = wav.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    let all: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = all.iter().step_by(2).copied().collect();
    let right: Vec<i16> = all.iter().skip(1).step_by(2).copied().collect();
    let (_, l_corr) = find_clip(&left, &seven).expect("nothing on the left");
    let (_, r_corr) = find_clip(&right, &prompt).expect("nothing on the right");
    eprintln!("recording: caller on the left {l_corr:.3}, called on the right {r_corr:.3}");
    assert!(l_corr >= 0.95, "left channel vs what A said: {l_corr}");
    assert!(r_corr >= 0.95, "right channel vs what B played: {r_corr}");
    let crossed = find_clip(&left, &prompt).map_or(0.0, |(_, c)| c);
    assert!(crossed < 0.5, "the prompt is on the left too: {crossed}");
}
