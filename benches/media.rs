//! Media hot paths: G.711 PCMU→PCMA transcoding and µ-law encode/decode of one 20 ms frame
//! (160 samples at 8 kHz). `cargo bench --bench media` prints the figures; throughput is in
//! samples (elements), so frames/s is that divided by 160.
//!
//! The `rtp` group times the relay path per packet: leg A's session reads a 172-byte PCMU
//! packet (`on_rtp`) and leg B's session re-stamps it (`build_relayed`) into a reused buffer;
//! its throughput is in packets (elements), so the figure is packets/s on one core.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dialerd::media::codec::{g711, transcode, CodecKind};
use dialerd::media::rtp::{Received, RtpSession, SessionConfig};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const FRAME: usize = 160;

/// One frame of speech-like signal: a 440 Hz + 1.3 kHz mix with a slow envelope, so every
/// segment of the companding curve is exercised rather than a constant.
fn frame_pcm() -> Vec<i16> {
    (0..FRAME)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let env = 0.2 + 0.8 * (std::f64::consts::PI * n as f64 / FRAME as f64).sin();
            let s = (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 0.5 * (2.0 * std::f64::consts::PI * 1300.0 * t).sin();
            (env * s * 20000.0) as i16
        })
        .collect()
}

fn g711_benches(c: &mut Criterion) {
    let pcm = frame_pcm();
    let mut ulaw = Vec::with_capacity(FRAME);
    g711::encode_ulaw(&pcm, &mut ulaw);

    let mut g = c.benchmark_group("g711");
    g.throughput(Throughput::Elements(FRAME as u64));
    g.bench_function("transcode PCMU→PCMA, 160-byte frame", |b| {
        let mut out = Vec::with_capacity(FRAME);
        b.iter(|| {
            out.clear();
            transcode(CodecKind::Pcmu, CodecKind::Pcma, black_box(&ulaw), &mut out);
            black_box(&out);
        })
    });
    g.bench_function("µ-law encode, 160 samples", |b| {
        let mut out = Vec::with_capacity(FRAME);
        b.iter(|| {
            out.clear();
            g711::encode_ulaw(black_box(&pcm), &mut out);
            black_box(&out);
        })
    });
    g.bench_function("µ-law decode, 160 bytes", |b| {
        let mut out = Vec::with_capacity(FRAME);
        b.iter(|| {
            out.clear();
            g711::decode_ulaw(black_box(&ulaw), &mut out);
            black_box(&out);
        })
    });
    g.bench_function("µ-law encode via Box<dyn Codec>, 160 samples", |b| {
        let mut codec = CodecKind::Pcmu.new_codec();
        let mut out = Vec::with_capacity(FRAME);
        b.iter(|| {
            out.clear();
            codec.encode(black_box(&pcm), &mut out);
            black_box(&out);
        })
    });
    g.finish();
}

fn relay_benches(c: &mut Criterion) {
    let t0 = Instant::now();
    let far: SocketAddr = "192.0.2.10:4000".parse().expect("address");
    let leg = |ssrc| {
        let cfg = SessionConfig {
            remote_rtp: Some(far),
            telephone_event: Some(101),
            ..SessionConfig::new(CodecKind::Pcmu, ssrc, "bench@dialerd")
        };
        RtpSession::new(cfg, t0)
    };
    let mut a = leg(1);
    let mut b = leg(2);
    // A 172-byte PCMU packet (12-byte header, 160-byte payload) whose sequence number and
    // timestamp are advanced in place each time, as a live stream's are.
    let mut packet = vec![0u8; 172];
    packet[0] = 0x80;
    packet[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    let mut out = Vec::with_capacity(256);
    let mut seq = 0u16;
    let mut ts = 0u32;
    let mut now = t0;

    let mut g = c.benchmark_group("rtp");
    g.throughput(Throughput::Elements(1));
    g.bench_function(
        "relay path per packet: on_rtp + build_relayed, 172-byte PCMU",
        |bench| {
            bench.iter(|| {
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                now += Duration::from_millis(20);
                packet[2..4].copy_from_slice(&seq.to_be_bytes());
                packet[4..8].copy_from_slice(&ts.to_be_bytes());
                if let Received::Media(p, payload) = a.on_rtp(now, far, black_box(&packet)) {
                    b.build_relayed(now, &p, payload, &mut out);
                }
                black_box(&out);
            })
        },
    );
    g.finish();
    assert_eq!(out.len(), 172, "the relay path built no packet");
}

criterion_group!(benches, g711_benches, relay_benches);
criterion_main!(benches);
