//! Per-connection cost of one WebRTC stack as an audio answerer: str0m 0.25 (as dialerd's
//! browser legs use it) or webrtc-rs (`webrtc` 0.21). This process is the client: it starts
//! the answerer (this binary, `answer STACK`) as a process of its own, connects `LEGS`
//! full-ICE str0m peers to it over loopback (offer/answer over TCP, ICE, DTLS-SRTP, then PCMU
//! 20 ms both ways) and prints the answerer's RSS and CPU per leg from /proc while they talk
//! for `SECONDS`, sampled `SAMPLES` times, and the rate at which the legs came up.
//!
//!   STACK=webrtc-rs LEGS=100 SECONDS=120 cargo run --release

mod answer;
mod answer_str0m;
mod answer_webrtc;
mod offerer;
mod signal;
mod usage;

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use usage::usage;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("answer") {
        answer::main(args.get(2).map(String::as_str).unwrap_or("str0m"));
        return;
    }
    run();
}

/// The answerer's counters: legs connected, packets received, packets sent.
fn stats(rt: &tokio::runtime::Runtime, to: SocketAddr) -> (u64, u64, u64) {
    let reply = rt.block_on(signal::request(to, "STATS", "")).unwrap();
    let v: Vec<u64> = reply
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1], v[2])
}

fn run() {
    let stack = std::env::var("STACK").unwrap_or_else(|_| "str0m".into());
    let legs = env_or("LEGS", 100);
    let seconds = env_or("SECONDS", 120);
    let samples = env_or("SAMPLES", 6).max(1);
    let parallel = env_or("PARALLEL", 8).max(1);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["answer", &stack])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening ")
        .expect("the answerer did not start")
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let idle = usage(pid);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tally = Arc::new(offerer::Tally::default());
    let setup_limit = Duration::from_secs(60 + legs / 5);
    let begun = Instant::now();
    let stop = begun + setup_limit + Duration::from_secs(seconds + 30);
    let next = Arc::new(AtomicU64::new(0));
    let failed = rt.block_on(async {
        let workers: Vec<_> = (0..parallel)
            .map(|_| {
                let (next, tally) = (next.clone(), tally.clone());
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < legs {
                        let peer = offerer::Peer::connect(addr).await?;
                        tokio::spawn(peer.run(tally.clone(), stop));
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        for w in workers {
            if let Err(e) = w.await.unwrap() {
                return Some(e);
            }
        }
        None
    });
    let mut fail = |why: String| -> ! {
        let _ = child.kill();
        panic!("{why}");
    };
    if let Some(e) = failed {
        fail(e);
    }
    while tally.connected.load(Ordering::Relaxed) < legs {
        if begun.elapsed() > setup_limit {
            fail(format!(
                "{} of {legs} legs connected",
                tally.connected.load(Ordering::Relaxed)
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let setup = begun.elapsed();
    let up = usage(pid);
    let per_leg_kib = |u: usage::Usage| (u.rss as f64 - idle.rss as f64) / 1024.0 / legs as f64;
    println!(
        "webrtc-compare: answerer {stack}, {legs} legs, PCMU 20 ms both ways, {seconds} s of media"
    );
    println!(
        "  idle answerer: {:.1} MiB RSS, {} threads",
        idle.rss as f64 / 1048576.0,
        idle.threads
    );
    println!(
        "  setup (offer/answer + ICE + DTLS, {parallel} offers at a time): {legs} legs in {setup:.2?}, {:.1} handshakes per second; answerer CPU {:.2} ms per leg; RSS +{:.0} KiB per leg; {} threads",
        legs as f64 / setup.as_secs_f64(),
        (up.cpu - idle.cpu).as_secs_f64() * 1000.0 / legs as f64,
        per_leg_kib(up),
        up.threads
    );
    println!("  t(s)  RSS/leg(KiB)  CPU/leg(% of a core)  pkts/leg/s: answerer sent  client got  client sent  answerer got  threads");
    let t1 = Instant::now();
    let client = || {
        (
            tally.received.load(Ordering::Relaxed),
            tally.sent.load(Ordering::Relaxed),
        )
    };
    let mut last = (t1, up, stats(&rt, addr), client());
    let first = last;
    for k in 1..=samples {
        let due = t1 + Duration::from_secs(seconds) * k as u32 / samples as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let now = Instant::now();
        let u = usage(pid);
        let s = stats(&rt, addr);
        let rx = client();
        let span = (now - last.0).as_secs_f64();
        let rate = |a: u64, b: u64| (a - b) as f64 / span / legs as f64;
        println!(
            "  {:>5.0}  {:>12.0}  {:>20.3}  {:>24.1}  {:>10.1}  {:>11.1}  {:>12.1}  {:>7}",
            (now - t1).as_secs_f64(),
            per_leg_kib(u),
            (u.cpu - last.1.cpu).as_secs_f64() / span / legs as f64 * 100.0,
            rate(s.2, last.2 .2),
            rate(rx.0, last.3 .0),
            rate(rx.1, last.3 .1),
            rate(s.1, last.2 .1),
            u.threads
        );
        last = (now, u, s, rx);
    }
    let span = (last.0 - first.0).as_secs_f64();
    let answerer_cpu = (last.1.cpu - first.1.cpu).as_secs_f64();
    let cpu = answerer_cpu / span / legs as f64 * 100.0;
    // Packets the answerer's stack handled: what it sent and what it received.
    let packets = (last.2 .1 - first.2 .1) + (last.2 .2 - first.2 .2);
    let per_packet = answerer_cpu / packets.max(1) as f64;
    let me = usage::usage(std::process::id());
    println!(
        "  over {span:.0} s of media: answerer CPU {cpu:.3} % of a core per leg ({:.1} % for all) at {:.1} packets per leg and second sent, {:.1} received (50 each way asked)",
        cpu * legs as f64,
        (last.2 .2 - first.2 .2) as f64 / span / legs as f64,
        (last.2 .1 - first.2 .1) as f64 / span / legs as f64,
    );
    println!(
        "  answerer CPU per packet (sent + received): {:.1} µs; at 50 + 50 packets a second that is {:.3} % of a core per leg",
        per_packet * 1e6,
        per_packet * 100.0 * 100.0
    );
    println!(
        "  answerer RSS: +{:.0} KiB per leg at setup, +{:.0} KiB at the end ({:.1} MiB in all); it says {} legs connected",
        per_leg_kib(up),
        per_leg_kib(last.1),
        last.1.rss as f64 / 1048576.0,
        last.2 .0
    );
    println!(
        "  client (this process, {legs} str0m peers): {:.0} % of a core over the whole run; load average {}",
        me.cpu.as_secs_f64() / begun.elapsed().as_secs_f64() * 100.0,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = child.kill();
    let _ = child.wait();
    rt.shutdown_background();
}
