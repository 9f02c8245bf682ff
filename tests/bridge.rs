//! Bridging in process on real UDP sockets: two media legs from the real media engine, each
//! with a test "phone" socket as its far end, bridged by `call::bridge::run`, driven by
//! `BridgeCommand`s as the agents layer will drive it. What each phone receives is checked:
//! whose voice, silence or hold music, on one continuous stream. And through the real daemon:
//! a test-UA "agent" on `sip.agent_test_number` stays connected while two customers come and
//! go, and hears both on one continuous stream.

mod common;

use common::ua::TestUa;
use common::Daemon;

use common::rtp::{self, Timed};
use dialerd::call::bridge::{self, BridgeEnd, BridgeLeg};
use dialerd::config::MediaConfig;
use dialerd::media::bridge::{BridgeCommand, Side, HOLD_MUSIC};
use dialerd::media::codec::g711;
use dialerd::media::engine::MediaEngine;
use dialerd::media::leg::MediaLeg;
use dialerd::media::prompt::{find_clip, load_wav};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

fn engine(ports: (u16, u16)) -> MediaEngine {
    let cfg = MediaConfig {
        rtp_port_min: ports.0,
        rtp_port_max: ports.1,
        prompts_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts"),
        ..MediaConfig::default()
    };
    MediaEngine::new(&cfg, &prometheus::Registry::new()).unwrap()
}

/// A PCMU tone whose 20 ms packets all carry the same payload (a whole number of periods).
fn tone_payload(freq: f64) -> Vec<u8> {
    let pcm: Vec<i16> = (0..160)
        .map(|n| (8000.0 * (2.0 * std::f64::consts::PI * freq * n as f64 / 8000.0).sin()) as i16)
        .collect();
    let mut out = Vec::new();
    g711::encode_ulaw(&pcm, &mut out);
    out
}

/// A test phone: sends `voice` every 20 ms to its leg, keeps what it receives.
struct Phone {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Timed>>>,
    voice: Vec<u8>,
}

impl Phone {
    /// A phone whose media leg answered its PCMU offer; it starts talking.
    async fn connect(engine: &MediaEngine, voice: Vec<u8>) -> (Phone, MediaLeg) {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = sock.local_addr().unwrap();
        let mut leg = engine.open("127.0.0.1".parse().unwrap()).unwrap();
        let offer = format!(
            "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
            addr.port()
        );
        leg.answer(offer.as_bytes()).unwrap();
        let to = leg.local_addr();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = (sock.clone(), sock);
        let payload = voice.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let ssrc = rand_ssrc(to.port());
            for i in 0u32.. {
                tick.tick().await;
                let p = rtp::packet(0, i as u16, i * 160, ssrc, &payload);
                let _ = tx.send_to(&p, to).await;
            }
        });
        let store = received.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok(n) = rx.recv(&mut buf).await {
                store
                    .lock()
                    .unwrap()
                    .push((Instant::now(), buf[..n].to_vec()));
            }
        });
        (
            Phone {
                addr,
                received,
                voice,
            },
            leg,
        )
    }

    fn received(&self) -> Vec<Timed> {
        self.received.lock().unwrap().clone()
    }
}

type Events = mpsc::UnboundedReceiver<dialerd::sip::leg::LegEvent>;

/// Bridges two legs, unrecorded, until the bridge ends.
async fn run_bridge(
    engine: &MediaEngine,
    a: (&mut MediaLeg, &mut Events),
    b: (&mut MediaLeg, &mut Events),
    commands: &mut mpsc::Receiver<BridgeCommand>,
) -> BridgeEnd {
    let (a, b) = (
        BridgeLeg {
            media: a.0,
            events: a.1,
        },
        BridgeLeg {
            media: b.0,
            events: b.1,
        },
    );
    bridge::run(engine, a, b, commands, None).await
}

fn rand_ssrc(seed: u16) -> u32 {
    0x5EED_0000 | u32::from(seed)
}

/// What a packet carried, told apart by payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    Voice(Side),
    Silence,
    Other,
}

fn classify(p: &[u8], a: &Phone, b: &Phone) -> Heard {
    let pl = rtp::payload(p);
    if pl == a.voice.as_slice() {
        Heard::Voice(Side::A)
    } else if pl == b.voice.as_slice() {
        Heard::Voice(Side::B)
    } else if pl.iter().all(|&x| x == 0xFF) {
        Heard::Silence
    } else {
        Heard::Other
    }
}

/// Packets that arrived between `from` and `to` after `t0` (ms), 100 ms of settling cut off
/// each end.
fn window(packets: &[Timed], t0: Instant, from: u64, to: u64) -> Vec<Timed> {
    let (lo, hi) = (
        t0 + Duration::from_millis(from + 100),
        t0 + Duration::from_millis(to - 100),
    );
    packets
        .iter()
        .filter(|(t, _)| *t >= lo && *t < hi)
        .cloned()
        .collect()
}

fn count(packets: &[Timed], a: &Phone, b: &Phone, what: Heard) -> usize {
    packets
        .iter()
        .filter(|(_, p)| classify(p, a, b) == what)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_and_hold_change_what_each_side_hears_on_one_continuous_stream() {
    let engine = engine((32100, 32199));
    let (a, mut leg_a) = Phone::connect(&engine, tone_payload(400.0)).await;
    let (b, mut leg_b) = Phone::connect(&engine, tone_payload(1000.0)).await;
    assert_ne!(a.addr, b.addr);
    let (a_tx, mut a_events) = mpsc::unbounded_channel();
    let (b_tx, mut b_events) = mpsc::unbounded_channel();
    let (commands, mut command_rx) = mpsc::channel(4);
    let t0 = Instant::now();
    let run = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let end = run_bridge(
                &engine,
                (&mut leg_a, &mut a_events),
                (&mut leg_b, &mut b_events),
                &mut command_rx,
            )
            .await;
            (end, leg_a, leg_b)
        })
    };
    // 0–1 s bridged; 1–2 s B muted; 2–3 s bridged; 3–5 s A held; 5–6 s bridged.
    for (ms, cmd) in [
        (
            1000,
            BridgeCommand::Mute {
                side: Side::B,
                on: true,
            },
        ),
        (
            2000,
            BridgeCommand::Mute {
                side: Side::B,
                on: false,
            },
        ),
        (
            3000,
            BridgeCommand::Hold {
                side: Side::A,
                on: true,
            },
        ),
        (
            5000,
            BridgeCommand::Hold {
                side: Side::A,
                on: false,
            },
        ),
        (6000, BridgeCommand::Unbridge),
    ] {
        tokio::time::sleep_until((t0 + Duration::from_millis(ms)).into()).await;
        commands.send(cmd).await.unwrap();
    }
    let (end, _leg_a, _leg_b) = run.await.unwrap();
    assert_eq!(end, BridgeEnd::Unbridged);
    drop((a_tx, b_tx));

    let (to_a, to_b) = (a.received(), b.received());
    let phase = |p: &[Timed], from, to| window(p, t0, from, to);
    // Bridged: each hears the other's voice.
    for (from, to) in [(0, 1000), (2000, 3000), (5000, 6000)] {
        let (wa, wb) = (phase(&to_a, from, to), phase(&to_b, from, to));
        assert!(
            count(&wa, &a, &b, Heard::Voice(Side::B)) >= 30,
            "A did not hear B at {from} ms"
        );
        assert!(
            count(&wb, &a, &b, Heard::Voice(Side::A)) >= 30,
            "B did not hear A at {from} ms"
        );
    }
    // B muted: A hears silence frames and nothing of B; B still hears A.
    let (wa, wb) = (phase(&to_a, 1000, 2000), phase(&to_b, 1000, 2000));
    assert_eq!(
        count(&wa, &a, &b, Heard::Voice(Side::B)),
        0,
        "B's voice got through the mute"
    );
    assert!(
        count(&wa, &a, &b, Heard::Silence) >= 30,
        "no silence frames while B was muted"
    );
    assert!(
        count(&wb, &a, &b, Heard::Voice(Side::A)) >= 30,
        "the muted side stopped hearing"
    );
    // A held: A hears the hold music (and nothing of B), B hears silence (nothing of A).
    let (wa, wb) = (phase(&to_a, 3000, 5000), phase(&to_b, 3000, 5000));
    assert_eq!(
        count(&wa, &a, &b, Heard::Voice(Side::B)),
        0,
        "B heard by the held side"
    );
    assert_eq!(
        count(&wb, &a, &b, Heard::Voice(Side::A)),
        0,
        "the held side was heard"
    );
    assert!(
        count(&wb, &a, &b, Heard::Silence) >= 60,
        "B got no silence frames during the hold"
    );
    let mut music = Vec::new();
    for (_, p) in &wa {
        g711::decode_ulaw(rtp::payload(p), &mut music);
    }
    let prompt = load_wav(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("prompts/common/{HOLD_MUSIC}.wav")),
    )
    .unwrap();
    // The held side hears the music from its start (the window starts 100 ms in): find its
    // second half-second to second-and-a-half in what came.
    let (offset, corr) = find_clip(&music, &prompt[4000..12000]).expect("no audio during hold");
    eprintln!("hold music found at sample {offset}, correlation {corr:.3}");
    assert!(corr >= 0.95, "hold music correlation {corr}");
    // Each side's stream stayed one stream through all of it.
    rtp::assert_one_continuous_stream(&to_a);
    rtp::assert_one_continuous_stream(&to_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_hanging_up_ends_the_bridge_and_says_which() {
    let engine = engine((32200, 32299));
    let (_a, mut leg_a) = Phone::connect(&engine, tone_payload(400.0)).await;
    let (_b, mut leg_b) = Phone::connect(&engine, tone_payload(1000.0)).await;
    let (a_tx, mut a_events) = mpsc::unbounded_channel();
    let (_b_tx, mut b_events) = mpsc::unbounded_channel();
    let (_commands, mut command_rx) = mpsc::channel(1);
    drop(a_tx);
    let end = run_bridge(
        &engine,
        (&mut leg_a, &mut a_events),
        (&mut leg_b, &mut b_events),
        &mut command_rx,
    )
    .await;
    assert_eq!(end, BridgeEnd::Ended(Side::A));
}

#[test]
fn an_agent_leg_stays_one_stream_while_two_customers_are_bridged_to_it_in_turn() {
    let d = Daemon::start(
        // Calls are taken from trunk addresses only: the test UAs are on 127.0.0.1.
        "[[trunks]]\nname = \"loopback\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nport = 5070\nkeepalive = \"0s\"\n\
         [sip]\nagent_test_number = \"1002\"\n[media]\nrtp_port_min = 32300\nrtp_port_max = 32399\n",
    );
    let agent = TestUa::new(d.sip, "agent-1");
    agent.invite("1002");
    assert_eq!(common::status_of(&agent.final_response()), 200);
    let voices = [tone_payload(400.0), tone_payload(1000.0)];
    let (packets, bye) = std::thread::scope(|s| {
        s.spawn(|| {
            for (i, voice) in voices.iter().enumerate() {
                std::thread::sleep(Duration::from_millis(600));
                let customer = TestUa::new(d.sip, &format!("customer-{i}"));
                customer.invite("1002");
                let ok = customer.final_response();
                assert_eq!(common::status_of(&ok), 200, "{ok}");
                customer.send_voice(0xC0FFEE + i as u32, std::slice::from_ref(voice), 50);
                customer.bye();
            }
        });
        agent.receive_timed(Duration::from_secs(5))
    });
    assert!(!bye, "the agent was hung up");
    // All of it is one stream: no new SSRC, no sequence gap, no timestamp jump at a switch.
    rtp::assert_one_continuous_stream(&packets);
    // Both customers were heard, in turn, with silence around them.
    let heard: Vec<usize> = packets
        .iter()
        .map(|(_, p)| {
            let pl = rtp::payload(p);
            if pl == voices[0].as_slice() {
                1
            } else if pl == voices[1].as_slice() {
                2
            } else {
                assert!(pl.iter().all(|&b| b == 0xFF), "neither voice nor silence");
                0
            }
        })
        .collect();
    for who in [1, 2] {
        let n = heard.iter().filter(|&&h| h == who).count();
        assert!(
            n >= 45,
            "customer {who}: {n} of 50 packets reached the agent"
        );
    }
    let last_1 = heard.iter().rposition(|&h| h == 1).unwrap();
    let first_2 = heard.iter().position(|&h| h == 2).unwrap();
    assert!(last_1 < first_2, "the customers overlapped");
    assert!(heard[..last_1].contains(&0) && heard[last_1..first_2].contains(&0));
    assert!(
        heard[first_2..].contains(&0),
        "no silence after the second customer left"
    );
}
