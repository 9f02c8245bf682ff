use super::*;
use std::f64::consts::TAU;

/// Writes `frames` (one Vec per frame, one value in [-1, 1] per channel) in the given format.
fn write_wav(path: &Path, spec: hound::WavSpec, frames: &[Vec<f64>]) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for frame in frames {
        assert_eq!(frame.len(), usize::from(spec.channels));
        for &v in frame {
            match spec.sample_format {
                hound::SampleFormat::Float => w.write_sample(v as f32).unwrap(),
                hound::SampleFormat::Int => {
                    let full = ((1i64 << (spec.bits_per_sample - 1)) - 1) as f64;
                    w.write_sample((v * full).round() as i32).unwrap()
                }
            }
        }
    }
    w.finalize().unwrap();
}

fn spec(rate: u32, channels: u16, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: format,
    }
}

/// `seconds` of sum of sines (frequency, amplitude) at `rate`, as mono frames.
fn tones(rate: u32, seconds: f64, parts: &[(f64, f64)]) -> Vec<f64> {
    let n = (f64::from(rate) * seconds).round() as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            parts.iter().map(|(f, a)| a * (TAU * f * t).sin()).sum()
        })
        .collect()
}

fn zero_crossings(s: &[i16]) -> usize {
    s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
}

fn rms(s: &[i16]) -> f64 {
    (s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
}

/// The middle 1.5 s of a 2 s signal at 8 kHz, away from the filter's edge effects.
fn middle(s: &[i16]) -> &[i16] {
    &s[2000..14000]
}

const FULL_SCALE_RMS: f64 = 32768.0 / std::f64::consts::SQRT_2;

#[test]
fn stereo_24_bit_44k1_keeps_duration_pitch_and_level() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a440.wav");
    // Left and right carry the same 440 Hz tone: the downmix must keep its level.
    let mono = tones(44100, 2.0, &[(440.0, 0.5)]);
    let frames: Vec<Vec<f64>> = mono.iter().map(|&v| vec![v, v]).collect();
    write_wav(&path, spec(44100, 2, 24, hound::SampleFormat::Int), &frames);

    let out = load_wav(&path).unwrap();
    assert!(out.len().abs_diff(16000) <= FRAME_SAMPLES, "{}", out.len());
    // 1.5 s of 440 Hz crosses zero 2 × 440 × 1.5 = 1320 times; a wrong ratio would shift it.
    let zc = zero_crossings(middle(&out));
    assert!(zc.abs_diff(1320) <= 2, "{zc} zero crossings");
    let level = rms(middle(&out)) / (0.5 * FULL_SCALE_RMS);
    assert!((level - 1.0).abs() < 0.01, "level ratio {level}");
}

#[test]
fn tone_above_4khz_is_filtered_out_not_aliased() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a6k.wav");
    let mono = tones(44100, 2.0, &[(6000.0, 0.5)]);
    let frames: Vec<Vec<f64>> = mono.iter().map(|&v| vec![v, v]).collect();
    write_wav(&path, spec(44100, 2, 24, hound::SampleFormat::Int), &frames);

    let out = load_wav(&path).unwrap();
    // Unfiltered decimation would fold 6 kHz onto 2 kHz at full level; demand at least 60 dB less.
    let ratio = rms(middle(&out)) / (0.5 * FULL_SCALE_RMS);
    assert!(ratio < 1e-3, "6 kHz kept at {ratio} of its level");
}

#[test]
fn float_16khz_keeps_440_and_drops_6k() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mix.wav");
    let mono = tones(16000, 2.0, &[(440.0, 0.4), (6000.0, 0.4)]);
    let frames: Vec<Vec<f64>> = mono.iter().map(|&v| vec![v]).collect();
    write_wav(
        &path,
        spec(16000, 1, 32, hound::SampleFormat::Float),
        &frames,
    );

    let out = load_wav(&path).unwrap();
    assert!(out.len().abs_diff(16000) <= FRAME_SAMPLES, "{}", out.len());
    // With 6 kHz gone only 440 Hz is left: its crossing count and its level alone.
    let zc = zero_crossings(middle(&out));
    assert!(zc.abs_diff(1320) <= 2, "{zc} zero crossings");
    let level = rms(middle(&out)) / (0.4 * FULL_SCALE_RMS);
    assert!((level - 1.0).abs() < 0.01, "level ratio {level}");
    // Subtract the ideal 440 Hz tone: what remains (6 kHz leakage, alias) is tiny.
    let ideal = tones(8000, 2.0, &[(440.0, 0.4)]);
    let residual: Vec<i16> = middle(&out)
        .iter()
        .zip(&ideal[2000..14000])
        .map(|(&o, &i)| (f64::from(o) - i * 32768.0).round() as i16)
        .collect();
    let leak = rms(&residual) / (0.4 * FULL_SCALE_RMS);
    assert!(leak < 1e-3, "residual {leak}");
}

#[test]
fn upsampling_from_6khz_keeps_duration_pitch_and_level() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("low.wav");
    let mono = tones(6000, 2.0, &[(440.0, 0.5)]);
    let frames: Vec<Vec<f64>> = mono.iter().map(|&v| vec![v]).collect();
    write_wav(&path, spec(6000, 1, 16, hound::SampleFormat::Int), &frames);

    let out = load_wav(&path).unwrap();
    assert_eq!(out.len(), 16000);
    let zc = zero_crossings(middle(&out));
    assert!(zc.abs_diff(1320) <= 2, "{zc} zero crossings");
    let level = rms(middle(&out)) / (0.5 * FULL_SCALE_RMS);
    assert!((level - 1.0).abs() < 0.01, "level ratio {level}");
}

#[test]
fn native_format_loads_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.wav");
    let samples: Vec<i16> = (0..1000)
        .map(|i| ((i * 37) % 65536 - 32768) as i16)
        .collect();
    let mut w =
        hound::WavWriter::create(&path, spec(8000, 1, 16, hound::SampleFormat::Int)).unwrap();
    for &s in &samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    assert_eq!(load_wav(&path).unwrap(), samples);
}

#[test]
fn other_depths_scale_and_channels_average() {
    let dir = tempfile::tempdir().unwrap();
    // 8-bit (stored unsigned): 64/128 of full scale.
    let p8 = dir.path().join("8.wav");
    let mut w = hound::WavWriter::create(&p8, spec(8000, 1, 8, hound::SampleFormat::Int)).unwrap();
    w.write_sample(64i8).unwrap();
    w.write_sample(-128i8).unwrap();
    w.finalize().unwrap();
    assert_eq!(load_wav(&p8).unwrap(), vec![16384, -32768]);
    // 32-bit integer.
    let p32 = dir.path().join("32.wav");
    let mut w =
        hound::WavWriter::create(&p32, spec(8000, 1, 32, hound::SampleFormat::Int)).unwrap();
    w.write_sample(1i32 << 30).unwrap();
    w.write_sample(i32::MIN).unwrap();
    w.finalize().unwrap();
    assert_eq!(load_wav(&p32).unwrap(), vec![16384, -32768]);
    // Three channels averaged.
    let p3 = dir.path().join("3ch.wav");
    let mut w = hound::WavWriter::create(&p3, spec(8000, 3, 16, hound::SampleFormat::Int)).unwrap();
    for s in [3000i16, -600, 600, 30, 0, 0] {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    assert_eq!(load_wav(&p3).unwrap(), vec![1000, 10]);
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.wav");
    let err = load_wav(&missing).unwrap_err();
    assert!(matches!(err, PromptError::Wav { .. }));
    assert!(err.to_string().contains("nowhere.wav"), "{err}");

    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"RIFF\x04\x00\x00\x00not a wave file").unwrap();
    let err = load_wav(&junk).unwrap_err();
    assert!(err.to_string().contains("junk.wav"), "{err}");

    // A bad file inside a prompt set fails the whole load, naming that file.
    let root = dir.path().join("set");
    std::fs::create_dir_all(root.join("en")).unwrap();
    std::fs::copy(&junk, root.join("en").join("1.wav")).unwrap();
    let err = PromptCache::load(&root).unwrap_err();
    assert!(err.to_string().contains("1.wav"), "{err}");

    let err = PromptCache::load(&dir.path().join("no-such-dir")).unwrap_err();
    assert!(matches!(err, PromptError::Dir { .. }), "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

fn shipped() -> PromptCache {
    PromptCache::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")).unwrap()
}

const SPOKEN: [&str; 17] = [
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "verification_code_is",
    "i_repeat",
    "safe_harbour_from",
    "safe_harbour_callback",
    "goodbye",
    "we_will_call_you_back",
    "thank_you_for_calling",
];

#[test]
fn shipped_prompts_are_complete_native_and_audible() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let cache = shipped();
    assert_eq!(cache.languages(), vec!["en", "fr"]);
    let mut files = Vec::new();
    for lang in ["en", "fr"] {
        for name in SPOKEN {
            files.push((lang, name));
        }
    }
    files.push((COMMON, "callback_tone"));
    files.push((COMMON, "hold_music"));
    for (dir, name) in files {
        let path = root.join(dir).join(format!("{name}.wav"));
        // Shipped in the native format, so loading converts nothing.
        let spec = hound::WavReader::open(&path).unwrap().spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (8000, 1, 16),
            "{}",
            path.display()
        );
        let samples = cache.get(dir, name).unwrap();
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak > 3000, "{dir}/{name} peak {peak}");
        let secs = samples.len() as f64 / 8000.0;
        assert!((0.1..=25.0).contains(&secs), "{dir}/{name}: {secs} s");
    }
    // Each language has its own recordings, not a fallback to English.
    assert_ne!(cache.get("fr", "1").unwrap(), cache.get("en", "1").unwrap());
    let tone = cache.get(COMMON, "callback_tone").unwrap();
    assert!(tone.len().abs_diff(4800) <= 80, "{}", tone.len());
    let music = cache.get(COMMON, "hold_music").unwrap();
    assert!(music.len().abs_diff(160_000) <= 800, "{}", music.len());
    // Loops without a click: both ends are near silence.
    let edge = |s: &[i16]| s.iter().map(|v| v.unsigned_abs()).max().unwrap();
    assert!(edge(&music[..80]) < 300 && edge(&music[music.len() - 80..]) < 300);
}

#[test]
fn lookup_falls_back_to_common_then_english() {
    let mut cache = shipped();
    assert_eq!(cache.get("de", "3"), cache.get("en", "3"));
    assert_eq!(
        cache.get("fr", "hold_music"),
        cache.get(COMMON, "hold_music")
    );
    assert!(cache.get("fr", "no_such_prompt").is_none());
    let err = cache.require("fr", "no_such_prompt").unwrap_err();
    assert!(err.to_string().contains("no_such_prompt"), "{err}");

    // insert is copy-on-write: an earlier clone keeps what it had.
    let before = cache.clone();
    cache.insert("fr", "campaign_acme", vec![1, 2, 3]);
    assert_eq!(
        cache.get("fr", "campaign_acme").as_deref(),
        Some(&[1, 2, 3][..])
    );
    assert!(before.get("fr", "campaign_acme").is_none());
}

fn ramp(from: i16, n: usize) -> Clip {
    Clip::Audio((0..n).map(|i| from + i as i16).collect::<Vec<_>>().into())
}

#[test]
fn player_runs_clips_together_and_pads_only_the_last_frame() {
    let clips = vec![ramp(1, 400), Clip::silence_ms(300), ramp(1000, 100)];
    let expected = render(&clips);
    assert_eq!(expected.len(), 2900);
    let mut player = Player::new(clips);
    assert_eq!(player.remaining_ms(), Some(363));
    let mut played = Vec::new();
    let mut frames = 0;
    while let Some(frame) = player.next_frame() {
        frames += 1;
        played.extend_from_slice(&frame);
        if frames == 1 {
            assert_eq!(player.remaining_ms(), Some(343));
        }
    }
    assert_eq!(frames, 19); // ⌈2900 / 160⌉
    assert_eq!(&played[..2900], &expected[..]);
    // The last frame: 20 samples of the last clip, then silence.
    assert_eq!(played[2880..2900], (1080..1100).collect::<Vec<i16>>()[..]);
    assert!(played[2900..].iter().all(|&s| s == 0));
    assert!(player.is_finished());
    assert_eq!(player.remaining_ms(), Some(0));
    assert!(player.next_frame().is_none());
}

#[test]
fn looping_player_wraps_and_can_be_let_run_out() {
    let mut player = Player::looping(vec![ramp(0, 250)]);
    assert_eq!(player.remaining_ms(), None);
    let mut played = Vec::new();
    for _ in 0..4 {
        played.extend_from_slice(&player.next_frame().unwrap());
    }
    let expected: Vec<i16> = (0..640).map(|i| (i % 250) as i16).collect();
    assert_eq!(played, expected);
    assert!(!player.is_finished());
    // 640 = 2 × 250 + 140 played: switched off, the pass ends after 110 more samples.
    player.set_looping(false);
    assert_eq!(player.remaining_ms(), Some(14)); // 110 samples = 13.75 ms
    let last = player.next_frame().unwrap();
    assert_eq!(last[..110], (140..250).collect::<Vec<i16>>()[..]);
    assert!(last[110..].iter().all(|&s| s == 0));
    assert!(player.next_frame().is_none());

    // Nothing to loop over: finished at once rather than spinning.
    let mut empty = Player::looping(vec![Clip::silence_ms(0)]);
    assert!(empty.is_finished());
    assert!(empty.next_frame().is_none());
}

fn lens(clips: &[Clip]) -> Vec<usize> {
    clips.iter().map(Clip::len).collect()
}

#[test]
fn digits_get_short_gaps_and_groups_longer_ones() {
    let mut cache = PromptCache::default();
    for d in 0..10u8 {
        cache.insert("xx", &d.to_string(), vec![1; 100 + usize::from(d)]);
    }
    let clips = speak_digits(&cache, "xx", "+47 - 2").unwrap();
    assert_eq!(lens(&clips), vec![104, 960, 107, 2400, 102]);
    assert!(speak_digits(&cache, "xx", "").unwrap().is_empty());
    let err = speak_digits(&PromptCache::default(), "xx", "5").unwrap_err();
    assert!(matches!(err, PromptError::Missing { ref name, .. } if name == "5"));
}

#[test]
fn verification_message_says_the_code_twice() {
    let cache = shipped();
    let clips = verification_message(&cache, "fr", "472913").unwrap();
    // phrase, gap, 6 digits with 5 gaps, gap, "I repeat", gap, 6 digits with 5 gaps
    assert_eq!(clips.len(), 2 + 11 + 3 + 11);
    let audio = render(&clips);
    let intro = cache.get("fr", "verification_code_is").unwrap();
    assert_eq!(&audio[..intro.len()], &intro[..]);
    // The 9 of the repeat: found where the clip lengths put it.
    let nine = cache.get("fr", "9").unwrap();
    let second_nine = clips.iter().take(16 + 6).map(Clip::len).sum::<usize>();
    let (at, r) = find_clip(&audio[second_nine - 100..], &nine).unwrap();
    assert_eq!((at + second_nine - 100, r > 0.999), (second_nine, true));

    let safe = safe_harbour_message(&cache, "en", None, "0800 123").unwrap();
    assert_eq!(safe.len(), 2 + 13 + 2); // 7 digits, 6 gaps
    let named = safe_harbour_message(&cache, "en", Some(vec![5; 800].into()), "1").unwrap();
    assert_eq!(lens(&named)[2], 800);
}

/// Deterministic noise in [-amp, amp].
fn noise(n: usize, amp: i32, mut seed: u32) -> Vec<i16> {
    (0..n)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 16) as i32 % (2 * amp + 1) - amp) as i16
        })
        .collect()
}

/// G.711 µ-law encode then decode, as a prompt heard over RTP would be.
fn ulaw_round_trip(s: i16) -> i16 {
    const BIAS: i32 = 0x84;
    let mut x = i32::from(s);
    let sign = if x < 0 { 0x80 } else { 0 };
    x = x.abs().min(32635) + BIAS;
    let mut exp = 7;
    while exp > 0 && x & (0x80 << exp) == 0 {
        exp -= 1;
    }
    let mantissa = (x >> (exp + 3)) & 0x0F;
    let mag = (((mantissa << 3) + BIAS) << exp) - BIAS;
    (if sign != 0 { -mag } else { mag }) as i16
}

#[test]
fn finds_a_digit_among_noise_and_other_prompts() {
    let cache = shipped();
    let mut haystack = noise(80_000, 300, 7); // 10 s
    let place = |h: &mut Vec<i16>, name: &str, at: usize| {
        for (i, &s) in cache.get("en", name).unwrap().iter().enumerate() {
            h[at + i] = h[at + i].saturating_add(s);
        }
    };
    place(&mut haystack, "3", 8_000);
    place(&mut haystack, "5", 24_000);
    place(&mut haystack, "7", 44_037);
    place(&mut haystack, "2", 60_000);
    place(&mut haystack, "verification_code_is", 66_000);

    let seven = cache.get("en", "7").unwrap();
    let (at, r) = find_clip(&haystack, &seven).unwrap();
    assert_eq!(at, 44_037);
    assert!(r > 0.95, "r = {r}");

    // Through G.711 µ-law, as the RTP tests will receive it.
    let heard: Vec<i16> = haystack.iter().map(|&s| ulaw_round_trip(s)).collect();
    let (at, r) = find_clip(&heard, &seven).unwrap();
    assert_eq!(at, 44_037);
    assert!(r >= 0.95, "after G.711: r = {r}");

    // A digit that is not there matches nothing well.
    let (_, r) = find_clip(&haystack, &cache.get("en", "1").unwrap()).unwrap();
    assert!(r < 0.5, "absent digit: r = {r}");
}

#[test]
fn find_clip_matches_direct_pearson_correlation() {
    let haystack = noise(3000, 8000, 1);
    let mut needle = noise(200, 5000, 2);
    needle.iter_mut().for_each(|s| *s += 700); // a DC offset the measure must ignore
    let mut direct_best = (0, f64::MIN);
    for o in 0..=haystack.len() - needle.len() {
        let w = &haystack[o..o + needle.len()];
        let n = needle.len() as f64;
        let (ma, mb) = (
            w.iter().map(|&v| f64::from(v)).sum::<f64>() / n,
            needle.iter().map(|&v| f64::from(v)).sum::<f64>() / n,
        );
        let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
        for (&a, &b) in w.iter().zip(&needle) {
            let (a, b) = (f64::from(a) - ma, f64::from(b) - mb);
            cov += a * b;
            va += a * a;
            vb += b * b;
        }
        let r = cov / (va * vb).sqrt();
        if r > direct_best.1 {
            direct_best = (o, r);
        }
    }
    let (at, r) = find_clip(&haystack, &needle).unwrap();
    assert_eq!(at, direct_best.0);
    assert!(
        (f64::from(r) - direct_best.1).abs() < 1e-5,
        "{r} vs {direct_best:?}"
    );

    // Scaled and shifted copy: still a perfect match.
    let mut h = haystack.clone();
    for (i, &s) in needle.iter().enumerate() {
        h[1234 + i] = s / 2 - 100;
    }
    let (at, r) = find_clip(&h, &needle).unwrap();
    assert_eq!(at, 1234);
    assert!(r > 0.9999, "{r}");
}

#[test]
fn find_clip_degenerate_inputs() {
    assert_eq!(find_clip(&[1, 2, 3], &[]), None);
    assert_eq!(find_clip(&[1, 2], &[1, 2, 3]), None);
    assert_eq!(find_clip(&[1, 2, 3, 4], &[5, 5]), None); // silent (constant) needle
                                                         // A silent haystack correlates with nothing.
    assert_eq!(find_clip(&[0; 100], &[1, -1, 1]), Some((0, 0.0)));
}
