use super::g711::*;
use super::*;

/// µ-law encoder written the other way round from `linear_to_ulaw`, in the style of the ITU-T
/// G.191 reference (14-bit magnitude + 33, segment found by a shifting loop, nibbles inverted),
/// so the fast bit-twiddling version is checked against an independent formulation.
fn reference_ulaw(x: i16) -> u8 {
    let mag = (x as i32).unsigned_abs();
    let absno = ((mag >> 2) + 33).min(0x1FFF);
    let mut segno = 1;
    let mut i = absno >> 6;
    while i != 0 {
        segno += 1;
        i >>= 1;
    }
    let high = 8 - segno;
    let low = 0x0F - ((absno >> segno) & 0x0F);
    let code = ((high << 4) | low) as u8;
    if x >= 0 {
        code | 0x80
    } else {
        code
    }
}

/// A-law encoder in the G.191 style: 12-bit magnitude (one's complement for negatives), segment
/// found by halving until the value fits 5 bits.
fn reference_alaw(x: i16) -> u8 {
    let mut ix: i32 = if x < 0 {
        (!x as i32) >> 4
    } else {
        (x as i32) >> 4
    };
    if ix > 15 {
        let mut iexp = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            iexp += 1;
        }
        ix -= 16;
        ix += iexp << 4;
    }
    if x >= 0 {
        ix |= 0x80;
    }
    (ix as u8) ^ 0x55
}

/// µ-law codes from the most negative to the most positive value.
fn ulaw_codes_ascending() -> Vec<u8> {
    let neg = (0u8..=0x7F).collect::<Vec<_>>(); // 0x00 = -32124 … 0x7F = -0
    let pos = (0x80u8..=0xFF).rev().collect::<Vec<_>>(); // 0xFF = +0 … 0x80 = +32124
    neg.into_iter().chain(pos).collect()
}

/// A-law codes from the most negative to the most positive value.
fn alaw_codes_ascending() -> Vec<u8> {
    let neg = (0u8..0x80).rev().map(|k| k ^ 0x55);
    let pos = (0u8..0x80).map(|k| (0x80 | k) ^ 0x55);
    neg.chain(pos).collect()
}

#[test]
fn ulaw_reference_values() {
    assert_eq!(linear_to_ulaw(0), 0xFF);
    assert_eq!(
        linear_to_ulaw(-1),
        0x7F,
        "small negatives are negative zero"
    );
    assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
    assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
    assert_eq!(linear_to_ulaw(32124), 0x80);
    assert_eq!(linear_to_ulaw(-32124), 0x00);
    assert_eq!(ulaw_to_linear(0x00), -32124);
    assert_eq!(ulaw_to_linear(0x80), 32124);
    assert_eq!(ulaw_to_linear(0xFF), 0);
    assert_eq!(ulaw_to_linear(0x7F), 0);
    assert_eq!(ulaw_to_linear(0xFE), 8);
    assert_eq!(ulaw_to_linear(0x7E), -8);
    assert_eq!(ulaw_to_linear(0xF0), 120); // top of segment 0
    assert_eq!(ulaw_to_linear(0xEF), 132); // bottom of segment 1
    assert_eq!(ulaw_to_linear(0x8F), 16764); // bottom of segment 7
}

#[test]
fn alaw_reference_values() {
    assert_eq!(alaw_to_linear(0xD5), 8);
    assert_eq!(alaw_to_linear(0x55), -8);
    assert_eq!(alaw_to_linear(0x2A), -32256);
    assert_eq!(alaw_to_linear(0xAA), 32256);
    assert_eq!(alaw_to_linear(0xD4), 24);
    assert_eq!(alaw_to_linear(0xC5), 264); // bottom of segment 1
    assert_eq!(linear_to_alaw(0), 0xD5);
    assert_eq!(linear_to_alaw(7), 0xD5);
    assert_eq!(linear_to_alaw(-1), 0x55);
    assert_eq!(linear_to_alaw(-8), 0x55);
    assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
    assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
}

#[test]
fn fast_encoders_match_reference_for_every_sample() {
    for x in i16::MIN..=i16::MAX {
        assert_eq!(linear_to_ulaw(x), reference_ulaw(x), "µ-law of {x}");
        assert_eq!(linear_to_alaw(x), reference_alaw(x), "A-law of {x}");
    }
}

#[test]
fn every_code_survives_decode_then_encode() {
    for c in 0..=255u8 {
        let back = linear_to_ulaw(ulaw_to_linear(c));
        // Both µ-law zeros decode to 0, which encodes as positive zero.
        let want = if c == 0x7F { 0xFF } else { c };
        assert_eq!(back, want, "µ-law {c:#04x}");
        assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "A-law {c:#04x}");
    }
}

#[test]
fn ulaw_decode_is_monotonic_with_doubling_steps() {
    let codes = ulaw_codes_ascending();
    let values: Vec<i32> = codes.iter().map(|&c| ulaw_to_linear(c) as i32).collect();
    assert_eq!(values[0], -32124);
    assert_eq!(values[255], 32124);
    // -0 and +0 sit next to each other in the middle; everything else strictly increases.
    for (i, w) in values.windows(2).enumerate() {
        if i == 127 {
            assert_eq!(w, [0, 0]);
        } else {
            assert!(w[0] < w[1], "not increasing at {i}: {w:?}");
        }
    }
    // Within a segment the step is 8 << segment (positive side; the negative mirrors it).
    for c in 0x80u8..=0xFF {
        if c & 0x0F == 0 {
            continue;
        }
        let segment = ((!c & 0x70) >> 4) as i32;
        let step = ulaw_to_linear(c - 1) as i32 - ulaw_to_linear(c) as i32;
        assert_eq!(step, 8 << segment, "µ-law step below {c:#04x}");
        assert_eq!(
            ulaw_to_linear(c & 0x7F),
            -ulaw_to_linear(c),
            "symmetry {c:#04x}"
        );
    }
}

#[test]
fn alaw_decode_is_monotonic_with_doubling_steps() {
    let codes = alaw_codes_ascending();
    let values: Vec<i32> = codes.iter().map(|&c| alaw_to_linear(c) as i32).collect();
    assert_eq!(values[0], -32256);
    assert_eq!(values[255], 32256);
    assert!(values.windows(2).all(|w| w[0] < w[1]));
    for k in 1u8..0x80 {
        if k & 0x0F == 0 {
            continue;
        }
        let segment = (k >> 4) as i32;
        let hi = alaw_to_linear((0x80 | k) ^ 0x55) as i32;
        let lo = alaw_to_linear((0x80 | (k - 1)) ^ 0x55) as i32;
        let want = if segment <= 1 {
            16
        } else {
            16 << (segment - 1)
        };
        assert_eq!(hi - lo, want, "A-law step at magnitude code {k}");
        assert_eq!(alaw_to_linear(k ^ 0x55) as i32, -hi, "symmetry at {k}");
    }
}

#[test]
fn transcoding_follows_g711_tables_3_and_4() {
    // Ends and zeros of the printed tables: µ ±0 → A ±8 (rank 1), full scale → full scale.
    assert_eq!(ulaw_to_alaw(0xFF), 0xD5);
    assert_eq!(ulaw_to_alaw(0x7F), 0x55);
    assert_eq!(ulaw_to_alaw(0x80), 0xAA);
    assert_eq!(ulaw_to_alaw(0x00), 0x2A);
    assert_eq!(alaw_to_ulaw(0xD5), 0xFE);
    assert_eq!(alaw_to_ulaw(0x55), 0x7E);
    assert_eq!(alaw_to_ulaw(0xAA), 0x80);
    assert_eq!(alaw_to_ulaw(0x2A), 0x00);
    // Table 3 maps µ ranks 0–15 two to one onto A ranks 1–8 (µ-law's finer small steps).
    for k in 0..16u8 {
        assert_eq!(ulaw_to_alaw(0xFF ^ k), 0xD5 ^ (k / 2), "µ rank {k}");
    }
    // Where the tables differ from decode→encode they differ by one code, in a few places.
    let mut differ = (0, 0);
    for c in 0..=255u8 {
        let de = reference_alaw(ulaw_to_linear(c));
        if ulaw_to_alaw(c) != de {
            differ.0 += 1;
        }
        let de = reference_ulaw(alaw_to_linear(c));
        if alaw_to_ulaw(c) != de {
            differ.1 += 1;
        }
    }
    // 44 µ→A and 32 A→µ entries (mostly µ-law segment 5), each still within one step (below).
    assert_eq!(differ, (44, 32));
    // A µ→A→µ tandem gives back the original code for all but the 16 quietest pairs.
    let tandem = (0..=255u8)
        .filter(|&c| alaw_to_ulaw(ulaw_to_alaw(c)) == c)
        .count();
    assert_eq!(tandem, 240);
}

#[test]
fn transcoding_stays_within_one_step() {
    // The converted value stays within half a step of the target law, give or take 4 units:
    // in some 70 places G.711's Tables 3 and 4 pick the farther code (by at most 4 units past
    // half a step, mostly µ-law segment 5) where decode→encode would pick the nearer one.
    for c in 0..=255u8 {
        let v = ulaw_to_linear(c) as i32;
        let a = ulaw_to_alaw(c);
        let seg = ((a ^ 0x55) & 0x70) >> 4;
        let step = if seg <= 1 { 16 } else { 16 << (seg - 1) };
        let err = (alaw_to_linear(a) as i32 - v).abs();
        assert!(err <= step / 2 + 4, "µ {c:#04x}: err {err}");

        let v = alaw_to_linear(c) as i32;
        let u = alaw_to_ulaw(c);
        let step = 8 << ((!u & 0x70) >> 4);
        let err = (ulaw_to_linear(u) as i32 - v).abs();
        assert!(err <= step / 2 + 4, "A {c:#04x}: err {err}");
    }
}

#[test]
fn transcode_slices_use_the_tables_and_append() {
    let frame: Vec<u8> = (0..160u32).map(|i| (i * 37 % 256) as u8).collect();
    let mut out = vec![0xEE];
    transcode(CodecKind::Pcmu, CodecKind::Pcma, &frame, &mut out);
    assert_eq!(out.len(), 161);
    assert_eq!(out[0], 0xEE, "appends, does not clear");
    for (i, &b) in frame.iter().enumerate() {
        assert_eq!(out[i + 1], ULAW_TO_ALAW[b as usize]);
    }
    let mut back = Vec::new();
    transcode(CodecKind::Pcma, CodecKind::Pcmu, &out[1..], &mut back);
    assert!(back
        .iter()
        .zip(&out[1..])
        .all(|(&u, &a)| u == alaw_to_ulaw(a)));
    let mut same = Vec::new();
    transcode(CodecKind::Pcma, CodecKind::Pcma, &frame, &mut same);
    assert_eq!(same, frame);
}

#[test]
fn codec_kind_lookups() {
    assert_eq!(CodecKind::from_payload_type(0), Some(CodecKind::Pcmu));
    assert_eq!(CodecKind::from_payload_type(8), Some(CodecKind::Pcma));
    assert_eq!(CodecKind::from_payload_type(18), None);
    assert_eq!(CodecKind::from_name("pcmu"), Some(CodecKind::Pcmu));
    assert_eq!(CodecKind::from_name("PcMa"), Some(CodecKind::Pcma));
    assert_eq!(CodecKind::from_name("G729"), None);
    for kind in CodecKind::ALL {
        let codec = kind.new_codec();
        assert_eq!(codec.payload_type(), kind.payload_type());
        assert_eq!(codec.name(), kind.name());
        assert_eq!(codec.clock_rate(), 8000);
        assert_eq!(
            CodecKind::from_payload_type(kind.payload_type()),
            Some(kind)
        );
        assert_eq!(CodecKind::from_name(kind.name()), Some(kind));
    }
}

#[test]
fn boxed_codecs_encode_and_decode_a_frame() {
    // A 400 Hz tone at about -6 dBFS, one 20 ms frame.
    let pcm: Vec<i16> = (0..160)
        .map(|n| (16000.0 * (2.0 * std::f64::consts::PI * 400.0 * n as f64 / 8000.0).sin()) as i16)
        .collect();
    for kind in CodecKind::ALL {
        let mut codec = kind.new_codec();
        let mut payload = Vec::new();
        codec.encode(&pcm, &mut payload);
        assert_eq!(payload.len(), 160);
        let mut decoded = Vec::new();
        codec.decode(&payload, &mut decoded);
        assert_eq!(decoded.len(), 160);
        // Companding error is at most half a step; up to 16000 both laws step by at most 512.
        for (&a, &b) in pcm.iter().zip(&decoded) {
            assert!((a as i32 - b as i32).abs() <= 256, "{kind:?}: {a} → {b}");
        }
        let want: Vec<u8> = match kind {
            CodecKind::Pcmu => pcm.iter().map(|&s| linear_to_ulaw(s)).collect(),
            CodecKind::Pcma => pcm.iter().map(|&s| linear_to_alaw(s)).collect(),
        };
        assert_eq!(payload, want);
    }
}
