//! Media hot paths: G.711 PCMU→PCMA transcoding and µ-law encode/decode of one 20 ms frame
//! (160 samples at 8 kHz). `cargo bench --bench media` prints the figures; throughput is in
//! samples (elements), so frames/s is that divided by 160.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dialerd::media::codec::{g711, transcode, CodecKind};

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

criterion_group!(benches, g711_benches);
criterion_main!(benches);
