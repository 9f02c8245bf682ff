//! Media hot paths: G.711 PCMU→PCMA transcoding and µ-law encode/decode of one 20 ms frame
//! (160 samples at 8 kHz). `cargo bench --bench media` prints the figures; throughput is in
//! samples (elements), so frames/s is that divided by 160.
//!
//! The `rtp` group times the relay path per packet: leg A's session reads a 172-byte PCMU
//! packet (`on_rtp`) and leg B's session re-stamps it (`build_relayed`) into a reused buffer;
//! its throughput is in packets (elements), so the figure is packets/s on one core.
//!
//! The `srtp` group times what SRTP adds: protect + unprotect of one 172-byte packet per suite,
//! and the relay path between an SRTP leg and an RTP leg, each way (unprotect, relay; relay,
//! protect). A relayed call with one SRTP leg pays one unprotect and one protect per 20 ms
//! packet pair, so its cost per second of call is 50 × (the two relay paths − the plain one).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dialerd::media::codec::{g711, transcode, CodecKind};
use dialerd::media::rtp::{Received, RtpSession, SessionConfig};
use dialerd::media::srtp::{SrtpKeys, SrtpSession, Suite};
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

/// A pair of SRTP sessions facing each other under `suite`.
fn srtp_pair(suite: Suite) -> (SrtpSession, SrtpSession) {
    let n = suite.key_salt_len();
    let k1: Vec<u8> = (0..n as u8).collect();
    let k2: Vec<u8> = (0..n as u8).map(|i| i ^ 0x5a).collect();
    let s = |local: &Vec<u8>, remote: &Vec<u8>| {
        SrtpSession::new(SrtpKeys {
            suite,
            local: local.clone(),
            remote: remote.clone(),
        })
        .expect("keys")
    };
    (s(&k1, &k2), s(&k2, &k1))
}

fn srtp_benches(c: &mut Criterion) {
    let mut packet = vec![0u8; 172];
    packet[0] = 0x80;
    packet[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    let mut g = c.benchmark_group("srtp");
    g.throughput(Throughput::Elements(1));
    for suite in Suite::ALL {
        let (mut tx, mut rx) = srtp_pair(suite);
        let mut seq = 0u16;
        g.bench_function(
            format!("protect + unprotect, 172-byte PCMU, {suite}"),
            |bench| {
                bench.iter(|| {
                    seq = seq.wrapping_add(1);
                    packet[2..4].copy_from_slice(&seq.to_be_bytes());
                    let wire = tx.protect_rtp(black_box(&packet)).expect("protect");
                    black_box(rx.unprotect_rtp(&wire).expect("unprotect"))
                })
            },
        );
    }

    // The relay between an SRTP leg (A) and an RTP leg (B), both ways, AES_CM_128_HMAC_SHA1_80.
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
    let (mut phone, mut leg_a_srtp) = srtp_pair(Suite::AesCm128HmacSha1_80);
    let (mut a, mut b) = (leg(1), leg(2));
    let mut out = Vec::with_capacity(256);
    let (mut seq, mut ts, mut now) = (0u16, 0u32, t0);
    g.bench_function(
        "relay SRTP -> RTP per packet: unprotect + on_rtp + build_relayed",
        |bench| {
            bench.iter_batched(
                || {
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(160);
                    packet[2..4].copy_from_slice(&seq.to_be_bytes());
                    packet[4..8].copy_from_slice(&ts.to_be_bytes());
                    // What the phone sends: made outside the timed part.
                    phone.protect_rtp(&packet).expect("protect")
                },
                |wire| {
                    now += Duration::from_millis(20);
                    let clear = leg_a_srtp
                        .unprotect_rtp(black_box(&wire))
                        .expect("unprotect");
                    if let Received::Media(p, payload) = a.on_rtp(now, far, &clear) {
                        b.build_relayed(now, &p, payload, &mut out);
                    }
                    black_box(&out);
                },
                criterion::BatchSize::SmallInput,
            )
        },
    );
    let (mut leg_a_srtp, _) = srtp_pair(Suite::AesCm128HmacSha1_80);
    let (mut b, mut a) = (leg(3), leg(4));
    let (mut seq, mut ts, mut now) = (0u16, 0u32, t0);
    let mut wire = Vec::new();
    g.bench_function(
        "relay RTP -> SRTP per packet: on_rtp + build_relayed + protect",
        |bench| {
            bench.iter(|| {
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                now += Duration::from_millis(20);
                packet[2..4].copy_from_slice(&seq.to_be_bytes());
                packet[4..8].copy_from_slice(&ts.to_be_bytes());
                if let Received::Media(p, payload) = b.on_rtp(now, far, black_box(&packet)) {
                    a.build_relayed(now, &p, payload, &mut out);
                    wire = leg_a_srtp.protect_rtp(&out).expect("protect");
                }
                black_box(&wire);
            })
        },
    );
    g.finish();
    assert_eq!(wire.len(), 182, "the SRTP relay path built no packet");
}

criterion_group!(benches, g711_benches, relay_benches, srtp_benches);
criterion_main!(benches);
