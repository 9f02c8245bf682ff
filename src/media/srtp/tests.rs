use super::*;

/// libsrtp's reference key (`srtp_driver.c`): master key then salt.
const KEY: &str = "e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn session(suite: Suite, local: Vec<u8>, remote: Vec<u8>) -> SrtpSession {
    SrtpSession::new(SrtpKeys {
        suite,
        local,
        remote,
    })
    .unwrap()
}

/// A pair facing each other: what `a` protects `b` unprotects and back.
fn pair(suite: Suite) -> (SrtpSession, SrtpSession) {
    let n = suite.key_salt_len();
    let ka: Vec<u8> = (0..n as u8).collect();
    let kb: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(7) ^ 0x5a).collect();
    (
        session(suite, ka.clone(), kb.clone()),
        session(suite, kb, ka),
    )
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 8];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The packet and expected outputs are libsrtp 2.5's (`srtp_driver.c` reference packet), so a
/// second implementation agrees with the crate byte for byte.
#[test]
fn known_answers_from_libsrtp() {
    let packet = hex("800f1234decafbadcafebabeabababababababababababababababab");
    let rtcp = hex("81c8000bcafebabeabababababababababababababababab");
    let cases = [
        (
            Suite::AesCm128HmacSha1_80,
            "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb",
        ),
        (
            Suite::AesCm128HmacSha1_32,
            "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc",
        ),
    ];
    for (suite, want) in cases {
        let mut s = session(suite, hex(KEY), hex(KEY));
        assert_eq!(s.protect_rtp(&packet).unwrap(), hex(want), "{suite}");
        // SRTCP keeps the 80-bit tag under _32 too (RFC 4568 §6.2.2); E bit and index 1.
        assert_eq!(
            s.protect_rtcp(&rtcp).unwrap(),
            hex("81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798"),
            "{suite} rtcp"
        );
        let mut r = session(suite, hex(KEY), hex(KEY));
        assert_eq!(r.unprotect_rtp(&hex(want)).unwrap(), packet);
    }
}

#[test]
fn round_trips_both_ways_on_every_suite() {
    for suite in Suite::ALL {
        let (mut a, mut b) = pair(suite);
        for seq in 0..50u16 {
            let clear = rtp(seq, 0x1111, &[seq as u8; 160]);
            let wire = a.protect_rtp(&clear).unwrap();
            assert_ne!(&wire[12..172], &clear[12..], "{suite}: payload encrypted");
            assert_eq!(b.unprotect_rtp(&wire).unwrap(), clear, "{suite}");
            let back = rtp(seq, 0x2222, &[!(seq as u8); 160]);
            assert_eq!(
                a.unprotect_rtp(&b.protect_rtp(&back).unwrap()).unwrap(),
                back
            );
        }
        let sr = hex("80c80006000022220000000000000000000000000000000000000000");
        let wire = b.protect_rtcp(&sr).unwrap();
        assert!(crate::media::rtcp::is_clear_compound(&sr));
        assert!(
            !crate::media::rtcp::is_clear_compound(&wire),
            "{suite}: SRTCP is not taken for clear RTCP"
        );
        assert_eq!(a.unprotect_rtcp(&wire).unwrap(), sr, "{suite} rtcp");
    }
}

#[test]
fn overhead_per_suite() {
    for (suite, tag) in [
        (Suite::AesCm128HmacSha1_80, 10),
        (Suite::AesCm128HmacSha1_32, 4),
        (Suite::AeadAes128Gcm, 16),
    ] {
        let (mut a, _) = pair(suite);
        let clear = rtp(1, 1, &[0; 160]);
        assert_eq!(a.protect_rtp(&clear).unwrap().len(), clear.len() + tag);
    }
}

#[test]
fn replays_and_forgeries_are_refused() {
    for suite in Suite::ALL {
        let (mut a, mut b) = pair(suite);
        let wire = a.protect_rtp(&rtp(7, 9, &[1; 160])).unwrap();
        assert!(b.unprotect_rtp(&wire).is_ok());
        assert_eq!(b.unprotect_rtp(&wire), Err(SrtpError::Replay), "{suite}");

        let mut forged = a.protect_rtp(&rtp(8, 9, &[1; 160])).unwrap();
        forged[20] ^= 1;
        assert_eq!(b.unprotect_rtp(&forged), Err(SrtpError::Auth), "{suite}");
        // A forgery does not burn its sequence number: the real packet still goes in.
        let real = a.protect_rtp(&rtp(9, 9, &[1; 160])).unwrap();
        assert!(b.unprotect_rtp(&real).is_ok());

        // Keyed differently: nothing gets through.
        let n = suite.key_salt_len();
        let mut other = session(suite, vec![3; n], vec![4; n]);
        let wire = a.protect_rtp(&rtp(1, 5, &[0; 160])).unwrap();
        assert_eq!(other.unprotect_rtp(&wire), Err(SrtpError::Auth), "{suite}");
    }
}

#[test]
fn late_packets_inside_the_window_are_taken_once() {
    let (mut a, mut b) = pair(Suite::AesCm128HmacSha1_80);
    let wires: Vec<Vec<u8>> = (0..40u16)
        .map(|s| a.protect_rtp(&rtp(s, 3, &[s as u8; 20])).unwrap())
        .collect();
    // Delivered newest first: every one is within the window and new.
    for w in wires.iter().rev() {
        assert!(b.unprotect_rtp(w).is_ok());
    }
    for w in &wires {
        assert_eq!(b.unprotect_rtp(w), Err(SrtpError::Replay));
    }
}

#[test]
fn rollover_counter_carries_the_stream_across_sequence_wrap() {
    let (mut a, mut b) = pair(Suite::AesCm128HmacSha1_80);
    // 70,000 packets: the sequence number wraps once, the ROC goes to 1 on both sides.
    let mut seq = 0xfff0u16;
    for i in 0..70_000u32 {
        let clear = rtp(seq, 0xabc, &(i.to_be_bytes()));
        let wire = a.protect_rtp(&clear).unwrap();
        if i % 1000 == 0 || (0xffe0..=0xffff).contains(&seq) || seq < 0x20 {
            assert_eq!(b.unprotect_rtp(&wire).unwrap(), clear, "packet {i}");
        }
        seq = seq.wrapping_add(1);
    }
    // A receiver that starts after the wrap assumes ROC 0: the sender's ROC-1 packets fail.
    let (_, mut late) = pair(Suite::AesCm128HmacSha1_80);
    let wire = a.protect_rtp(&rtp(seq, 0xabc, &[0; 8])).unwrap();
    assert_eq!(late.unprotect_rtp(&wire), Err(SrtpError::Auth));
    assert!(b.unprotect_rtp(&wire).is_ok());
}

#[test]
fn bad_keys_are_refused() {
    let err = SrtpSession::new(SrtpKeys {
        suite: Suite::AeadAes128Gcm,
        local: vec![0; 30],
        remote: vec![0; 28],
    });
    assert!(matches!(
        err,
        Err(SrtpError::KeyLength {
            wanted: 28,
            got: 30,
            ..
        })
    ));
}

#[test]
fn garbage_is_refused_not_panicked_on() {
    let (_, mut b) = pair(Suite::AesCm128HmacSha1_80);
    for junk in [
        &[][..],
        &[0x80],
        &[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
        &[0xff; 40],
    ] {
        assert!(b.unprotect_rtp(junk).is_err());
        assert!(b.unprotect_rtcp(junk).is_err());
    }
}

#[test]
fn suite_names_read_back() {
    for s in Suite::ALL {
        assert_eq!(Suite::from_name(s.name()), Some(s));
    }
    assert_eq!(Suite::from_name("aes_cm_128_hmac_sha1_80"), None);
    assert_eq!(Suite::from_name("F8_128_HMAC_SHA1_80"), None);
    let shown = format!("{:?}", pair(Suite::AeadAes128Gcm).0.keys());
    assert!(
        !shown.contains("local") && !shown.contains("remote"),
        "{shown}"
    );
}

#[test]
fn srtcp_with_its_e_flag_cleared_is_refused() {
    for suite in Suite::ALL {
        let (mut a, mut b) = pair(suite);
        let sr = hex("80c80006000022220000000000000000000000000000000000000000");
        let mut wire = a.protect_rtcp(&sr).unwrap();
        let at = match suite {
            Suite::AeadAes128Gcm => wire.len() - 4,
            _ => wire.len() - 14,
        };
        assert_ne!(wire[at] & 0x80, 0, "{suite}: E set on what we send");
        wire[at] &= 0x7f;
        assert_eq!(b.unprotect_rtcp(&wire), Err(SrtpError::Auth), "{suite}");
        // A clear RTCP packet (baresip's APP "PINGPONG") is not SRTCP either.
        let ping = hex("80cc00036c4406c050494e47504f4e47");
        assert!(b.unprotect_rtcp(&ping).is_err(), "{suite}");
    }
}
