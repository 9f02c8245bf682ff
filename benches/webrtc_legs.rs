//! Load client for browser audio legs: starts the daemon, logs `LEGS` agents in with
//! `phone: "webrtc"`, each from a str0m peer of its own on loopback (full ICE, DTLS-SRTP,
//! `CODEC` — `pcmu` or `opus` — at 50 packets a second both ways, as a browser sends), and
//! prints the daemon's CPU and RSS per leg while they talk for `SECONDS`, and the DTLS
//! handshakes per second at login. With Opus it also times the transcoder itself in process
//! (a tone both ways), since the daemon's legs send silence between customers.
//! It reports figures and fails on nothing but a leg that never connects.
//!
//! `DAEMON_CPUS` and `CLIENT_CPUS` (CPU lists as `taskset` takes them: `0`, `0,1`, `2-3`) pin
//! the daemon and this load client apart, so the daemon's own capacity shows: the daemon
//! inherits its CPUs at start (its runtime sizes itself to them), the client's threads are
//! moved after. The client's peers are driven by `CLIENT_THREADS` threads (1 unless told).
//!
//!   LEGS=100 SECONDS=30 CODEC=opus cargo bench --bench webrtc_legs
//!   LEGS=500 DAEMON_CPUS=0 CLIENT_CPUS=1 cargo bench --bench webrtc_legs

#[path = "../tests/common/mod.rs"]
mod common;

use common::api::{campaign, Api, ADMIN, BASE};
use common::Daemon;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

/// 20 ms of a 440 Hz tone as a browser sends it: one Opus packet (48 kHz, mono) or PCMU.
fn voice_frame(opus: bool) -> Vec<u8> {
    if !opus {
        return vec![0xff; 160];
    }
    let enc = audiopus::coder::Encoder::new(
        audiopus::SampleRate::Hz48000,
        audiopus::Channels::Mono,
        audiopus::Application::Voip,
    )
    .unwrap();
    let pcm: Vec<i16> = (0..960)
        .map(|i| {
            ((f64::from(i) * 440.0 * std::f64::consts::TAU / 48_000.0).sin() * 12_000.0) as i16
        })
        .collect();
    let mut out = vec![0u8; 1276];
    let n = enc.encode(&pcm, &mut out).unwrap();
    out.truncate(n);
    out
}

/// CPU time of the Opus boundary of one leg for one second of voice both ways (50 frames each
/// way: a 1 kHz tone from the leg, Opus from the browser), timed in process over `seconds`
/// of audio.
fn transcoder_cost(seconds: u32) -> Duration {
    use dialerd::media::codec::CodecKind;
    use dialerd::webrtc::offer::{BrowserCodec, Choice, Header};
    use dialerd::webrtc::transcode::Transcoder;
    let choice = Choice {
        codec: BrowserCodec::Opus,
        pt: 111,
        event_pt: Some(110),
        leg: CodecKind::Pcmu,
    };
    let mut t = Transcoder::new(choice).unwrap();
    let mut g711 = Vec::new();
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((f64::from(i) * 1000.0 * std::f64::consts::TAU / 8000.0).sin() * 12_000.0) as i16)
        .collect();
    dialerd::media::codec::g711::encode_ulaw(&pcm, &mut g711);
    let opus = voice_frame(true);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let begun = thread_cpu();
    for i in 0..50 * seconds {
        let h = Header {
            marker: false,
            pt: 0,
            seq: i as u16,
            timestamp: 160 * i,
        };
        t.to_browser(h, &g711, &mut a).unwrap();
        let h = Header {
            pt: 111,
            timestamp: 960 * i,
            ..h
        };
        t.from_browser(h, &opus, &mut b, |_, _| {}).unwrap();
    }
    (thread_cpu() - begun) / seconds
}

/// CPU time of this thread so far (not wall time: the machine is shared).
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The daemon's CPU time (user + system) and RSS, from /proc.
fn usage(pid: u32) -> (Duration, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (Duration::from_millis(ticks * 1000 / hz), rss_kb * 1024)
}

/// The CPUs of a `taskset`-style list (`0`, `0,1`, `2-3`).
fn cpu_list(list: &str) -> Vec<usize> {
    list.split(',')
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| {
            let (a, b) = p.split_once('-').unwrap_or((p, p));
            let (a, b): (usize, usize) = (a.trim().parse().unwrap(), b.trim().parse().unwrap());
            a..=b
        })
        .collect()
}

/// Pins every thread of this process to the CPUs in env `name`, when it is set; threads (and
/// processes) started later inherit them.
fn pin_self(name: &str) -> Option<String> {
    let list = std::env::var(name).ok()?;
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in cpu_list(&list) {
        // SAFETY: `set` is a valid cpu_set_t; CPU_SET checks nothing but writes inside it.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let tid: libc::pid_t = task.unwrap().file_name().to_str().unwrap().parse().unwrap();
        // SAFETY: `set` is a valid cpu_set_t of the size given.
        let r = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
        assert_eq!(r, 0, "{name}={list}: {}", std::io::Error::last_os_error());
    }
    Some(list)
}

/// The daemon's `dialerd_rtp_packets_total` with `direction` (`in`: what its legs received).
fn rtp_packets(d: &Daemon, direction: &str) -> u64 {
    let series = format!("dialerd_rtp_packets_total{{direction=\"{direction}\"}}");
    common::metric(&d.get("/metrics").1, &series).unwrap_or(0.0) as u64
}

/// One browser-like peer: offers, logs agent `id` in with its offer, then talks.
struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mid: Mid,
}

impl Peer {
    async fn connect(admin: &Api, agent: i64, task: i64, opus: bool) -> Peer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_pcmu(!opus, false)
            .enable_opus(opus, false)
            .set_rtp_mode(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        let sdp = offer.to_sdp_string();
        let addr = admin.addr;
        let token = admin.token.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let api = Api { addr, token };
            api.ok(
                "POST",
                &format!("/api/v1/agents/{agent}/session"),
                Some(json!({"tasks": [task], "phone": "webrtc", "sdp": sdp})),
            )
        })
        .await
        .unwrap();
        let answer = SdpAnswer::from_sdp_string(answer["sdp"].as_str().unwrap()).unwrap();
        rtc.sdp_api().accept_answer(pending, answer).unwrap();
        Peer {
            rtc,
            socket,
            local,
            mid,
        }
    }

    /// Drives the peer: sends a voice frame every 20 ms once connected, counts what comes.
    /// Kept cheap, as the client shares the machine with the daemon: one timer moved to each
    /// wake-up, every waiting datagram read per wake-up, sends that never wait.
    async fn run(
        mut self,
        frame: (u8, u32, Arc<[u8]>),
        connected: Arc<AtomicU64>,
        received: Arc<AtomicU64>,
        stop: Instant,
    ) {
        let (pt, step, payload) = frame;
        let mut buf = vec![0u8; 2048];
        let mut next_frame = Instant::now();
        let mut up = false;
        let (mut seq, mut ts) = (0u64, 0u32);
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        while Instant::now() < stop {
            let wake = loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        let _ = self.socket.try_send_to(&t.contents, t.destination);
                    }
                    Output::Event(Event::Connected) => {
                        up = true;
                        connected.fetch_add(1, Ordering::Relaxed);
                    }
                    Output::Event(Event::RtpPacket(_)) => {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Output::Event(_) => {}
                }
            };
            let wake = if up { wake.min(next_frame) } else { wake }.min(stop);
            let wake = tokio::time::Instant::from_std(wake);
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            tokio::select! {
                r = self.socket.readable() => {
                    if r.is_err() {
                        continue;
                    }
                    while let Ok((n, source)) = self.socket.try_recv_from(&mut buf) {
                        let input = Input::Receive(
                            Instant::now(),
                            Receive {
                                proto: Protocol::Udp,
                                source,
                                destination: self.local,
                                contents: buf[..n].try_into().unwrap(),
                            },
                        );
                        let _ = self.rtc.handle_input(input);
                    }
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if up && now >= next_frame {
                        next_frame += Duration::from_millis(20);
                        seq += 1;
                        ts = ts.wrapping_add(step);
                        if let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(self.mid, None) {
                            tx.write_rtp(RtpWrite::new(
                                Pt::from(pt),
                                seq.into(),
                                ts,
                                now,
                                payload.clone(),
                            ));
                        }
                    }
                    let _ = self.rtc.handle_input(Input::Timeout(now));
                }
            }
        }
    }
}

fn main() {
    let legs = env_or("LEGS", 50);
    let seconds = env_or("SECONDS", 20);
    let opus = std::env::var("CODEC").is_ok_and(|c| c.eq_ignore_ascii_case("opus"));
    // str0m offers Opus as payload type 111, PCMU as 0.
    let frame: (u8, u32, Arc<[u8]>) = if opus {
        (111, 960, voice_frame(true).into())
    } else {
        (0, 160, voice_frame(false).into())
    };
    let (rtp_min, rtp_max) = (30000u32, 30000 + 8 * legs as u32 + 100);
    let config = format!(
        "{BASE}[media]\nrtp_port_min = {rtp_min}\nrtp_port_max = {}\nrtp_timeout = \"0s\"\n",
        rtp_max.min(65534)
    );
    let daemon_cpus = pin_self("DAEMON_CPUS");
    let d = Daemon::start_with(&config, &[("DIALERD_ADMIN_TOKEN", ADMIN)]);
    let client_cpus = pin_self("CLIENT_CPUS");
    let client_threads = env_or("CLIENT_THREADS", 1) as usize;
    let admin = Api::new(&d, ADMIN);
    let (_, task) = campaign(&admin, "bench");
    let agents: Vec<i64> = (0..legs)
        .map(|i| {
            admin.ok(
                "POST",
                "/api/v1/users",
                Some(json!({"name": format!("browser{i}"), "role": "agent"})),
            )["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let pid = d.child.id();
    let (cpu0, rss0) = usage(pid);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .enable_all()
        .build()
        .unwrap();
    let connected = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let begun = Instant::now();
    let stop = begun + Duration::from_secs(seconds + 60 + legs / 10);
    rt.block_on(async {
        for id in &agents {
            let peer = Peer::connect(&admin, *id, task, opus).await;
            tokio::spawn(peer.run(frame.clone(), connected.clone(), received.clone(), stop));
        }
    });
    while connected.load(Ordering::Relaxed) < legs {
        assert!(
            begun.elapsed() < Duration::from_secs(60 + legs / 10),
            "{} of {legs} legs connected",
            connected.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let login = begun.elapsed();
    let (cpu1, rss1) = usage(pid);
    let rx1 = received.load(Ordering::Relaxed);
    let (in1, out1) = (rtp_packets(&d, "in"), rtp_packets(&d, "out"));
    let client1 = usage(std::process::id()).0;
    let t1 = Instant::now();
    // RSS along the way, to tell warm-up from growth.
    let mut trail = Vec::new();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_secs(seconds) / 6);
        trail.push(format!(
            "{:.0}",
            (usage(pid).1 as f64 - rss0 as f64) / 1024.0 / legs as f64
        ));
    }
    let (cpu2, rss2) = usage(pid);
    let span = t1.elapsed();
    let client_cpu = usage(std::process::id()).0 - client1;
    let daemon_in = rtp_packets(&d, "in") - in1;
    let daemon_out = rtp_packets(&d, "out") - out1;
    let rx = received.load(Ordering::Relaxed) - rx1;
    let per_leg_cpu = (cpu2 - cpu1).as_secs_f64() / span.as_secs_f64() / legs as f64 * 100.0;
    let codec = if opus { "Opus" } else { "PCMU" };
    println!("webrtc_legs: {legs} legs, {codec} 20 ms both ways, {seconds} s");
    println!(
        "  daemon on CPUs {}, client on CPUs {} with {client_threads} thread(s)",
        daemon_cpus.as_deref().unwrap_or("any"),
        client_cpus.as_deref().unwrap_or("any")
    );
    println!(
        "  logins (HTTP offer/answer + ICE + DTLS): {:.1} per second ({legs} in {login:.2?}; daemon CPU {:.1} ms per login)",
        legs as f64 / login.as_secs_f64(),
        (cpu1 - cpu0).as_secs_f64() * 1000.0 / legs as f64
    );
    println!(
        "  daemon CPU per leg: {per_leg_cpu:.3} % of a core ({:.1} % for all)",
        per_leg_cpu * legs as f64
    );
    println!(
        "  daemon RSS: {:.1} MiB idle, +{:.1} KiB per leg at login, +{:.1} KiB per leg after {seconds} s",
        rss0 as f64 / 1048576.0,
        (rss1 as f64 - rss0 as f64) / 1024.0 / legs as f64,
        (rss2 as f64 - rss0 as f64) / 1024.0 / legs as f64
    );
    println!(
        "  daemon RSS per leg (KiB) at each sixth of the run: {}",
        trail.join(" ")
    );
    println!(
        "  packets from the daemon per leg and second: {:.1} (50 expected)",
        rx as f64 / legs as f64 / span.as_secs_f64()
    );
    // The legs' counters reach the metrics at each RTCP interval: right within a few seconds.
    println!(
        "  packets into the daemon's legs per leg and second: {:.1} (50 sent)",
        daemon_in as f64 / legs as f64 / span.as_secs_f64()
    );
    // What the daemon's legs sent towards the browsers (before their WebRTC stacks): below 50,
    // the daemon's own timers ran late; above what arrived, packets were lost on the way.
    println!(
        "  packets the daemon's legs sent per leg and second: {:.1} (50 expected)",
        daemon_out as f64 / legs as f64 / span.as_secs_f64()
    );
    println!(
        "  load client CPU: {:.1} % of a core (this process, its peers and the sampling)",
        client_cpu.as_secs_f64() / span.as_secs_f64() * 100.0
    );
    rt.shutdown_background();
    if opus {
        let per_second = transcoder_cost(20);
        println!(
            "  Opus boundary in process, voice both ways: {:.0} µs of CPU per second of call, {:.2} % of a core per leg",
            per_second.as_secs_f64() * 1e6,
            per_second.as_secs_f64() * 100.0
        );
    }
}
