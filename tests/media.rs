//! Media through the real daemon, with an in-process test UA on real UDP sockets: the prompt
//! route's audio is decoded and the prompt found in it; an empty RTP port pool gives 503.

mod common;

use common::ua::TestUa;
use common::Daemon;
use dialerd::media::codec::g711;
use dialerd::media::prompt::{find_clip, load_wav};
use std::path::Path;
use std::time::Duration;

fn config(ports: (u16, u16)) -> String {
    format!(
        "[[trunks]]\nname = \"loopback\"\nhost = \"127.0.0.1\"\nport = 5070\nkeepalive = \"0s\"\n\
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
fn relay_route_bridges_two_legs_and_transcodes_pcmu_to_pcma() {
    // The daemon relays "9" + 1001 through a trunk that is itself: the second leg reaches the
    // prompt route (PCMU), the caller offered only PCMA, so the bridge transcodes.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!(
        "[[trunks]]\nname = \"self\"\nhost = \"127.0.0.1\"\nport = {port}\nkeepalive = \"0s\"\n\
         [sip]\nprompt_number = \"1001\"\nrelay_prefix = \"9\"\n\
         [media]\nrtp_port_min = 31400\nrtp_port_max = 31499\n"
    );
    let listen = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(&cfg, &[("DIALERD__SIP__LISTEN", listen.as_str())]);
    let ua = TestUa::new(d.sip, "relay-1").pcma();
    ua.invite("91001");
    let ok = ua.final_response();
    assert_eq!(common::status_of(&ok), 200, "{ok}");
    assert!(ok.contains("RTP/AVP 8"), "answered with PCMA: {ok}");
    let (packets, bye) = ua.receive_until_bye(Duration::from_secs(15));
    assert!(bye, "the far leg's hang-up did not reach the caller");
    assert!(packets.len() > 20, "only {} RTP packets", packets.len());
    assert!(packets.iter().all(|p| p[1] & 0x7f == 8), "not all PCMA");
    let mut audio = Vec::new();
    for p in &packets {
        g711::decode_alaw(&p[12..], &mut audio);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let prompt = load_wav(&root.join("en/verification_code_is.wav")).unwrap();
    let (at, corr) = find_clip(&audio, &prompt).expect("prompt not found");
    eprintln!("relayed prompt found at sample {at}, correlation {corr:.3}");
    assert!(corr >= 0.95, "correlation {corr} at sample {at}");
}
