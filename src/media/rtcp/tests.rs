use super::*;

fn block(ssrc: u32) -> ReportBlock {
    ReportBlock {
        ssrc,
        fraction_lost: 12,
        cumulative_lost: -3,
        highest_seq: 0x0001_00fa,
        jitter: 77,
        lsr: 0xb705_2000,
        dlsr: 0x0005_4000,
    }
}

#[test]
fn sr_round_trip_with_sdes() {
    let info = SenderInfo {
        ntp: NtpTime(0xe8a2_1c3f_9e35_3f7c),
        rtp_timestamp: 160_000,
        packet_count: 1000,
        octet_count: 160_000,
    };
    let blocks = [block(0x1111), block(0x2222)];
    let bytes = build_compound(0xdead_beef, Some(&info), &blocks, "dialerd@host").unwrap();
    assert_eq!(bytes.len() % 4, 0);
    let packets = parse_compound(&bytes).unwrap();
    assert_eq!(
        packets,
        vec![
            RtcpPacket::SenderReport(SenderReport {
                ssrc: 0xdead_beef,
                info,
                reports: blocks.to_vec(),
            }),
            RtcpPacket::SourceDescription(vec![SdesChunk {
                ssrc: 0xdead_beef,
                cname: Some("dialerd@host".into()),
            }]),
        ]
    );
}

#[test]
fn rr_round_trip_and_more_than_31_blocks_spill_into_rrs() {
    let bytes = build_compound(7, None, &[], "x").unwrap();
    // RR header + SSRC, SDES header + SSRC + CNAME(2+1) + END, padded to 4: 8 + 12.
    assert_eq!(bytes.len(), 20);
    assert_eq!(
        parse_compound(&bytes).unwrap()[0],
        RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 7,
            reports: vec![]
        })
    );

    let blocks: Vec<_> = (0..40).map(block).collect();
    let bytes = build_compound(7, None, &blocks, "x").unwrap();
    let packets = parse_compound(&bytes).unwrap();
    assert_eq!(packets.len(), 3);
    let mut all = Vec::new();
    for p in &packets[..2] {
        match p {
            RtcpPacket::ReceiverReport(rr) => all.extend(rr.reports.iter().copied()),
            other => panic!("expected RR, got {other:?}"),
        }
    }
    assert_eq!(all, blocks);
}

#[test]
fn clear_rtcp_is_told_from_anything_else() {
    let sr = build_compound(0xdead_beef, None, &[block(1)], "dialerd@host").unwrap();
    assert!(is_clear_compound(&sr));
    // baresip's APP "PING" with "PONG" as data, sent in clear at call start.
    let ping = [
        0x80, 204, 0, 3, 0, 0, 0, 1, b'P', b'I', b'N', b'G', b'P', b'O', b'N', b'G',
    ];
    assert!(is_clear_compound(&ping));
    let mut trailed = sr.clone();
    trailed.extend_from_slice(&[0x80, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert!(!is_clear_compound(&trailed), "an SRTCP index and tag");
    assert!(!is_clear_compound(&sr[..sr.len() - 4]), "cut short");
    assert!(!is_clear_compound(&[]));
    let mut rtp = ping;
    rtp[1] = 0;
    assert!(!is_clear_compound(&rtp), "RTP, not RTCP");
}

#[test]
fn cumulative_lost_is_24_bit_signed_and_clamped() {
    let mut b = block(1);
    b.cumulative_lost = -0x80_0000;
    let bytes = build_compound(1, None, &[b], "c").unwrap();
    match &parse_compound(&bytes).unwrap()[0] {
        RtcpPacket::ReceiverReport(rr) => assert_eq!(rr.reports[0].cumulative_lost, -0x80_0000),
        other => panic!("{other:?}"),
    }
    b.cumulative_lost = 0x0100_0000; // Too big for 24 bits: clamped, not wrapped.
    let bytes = build_compound(1, None, &[b], "c").unwrap();
    match &parse_compound(&bytes).unwrap()[0] {
        RtcpPacket::ReceiverReport(rr) => assert_eq!(rr.reports[0].cumulative_lost, 0x7f_ffff),
        other => panic!("{other:?}"),
    }
}

/// An Asterisk-style compound packet as seen on the wire: SR with one report block, SDES
/// CNAME, then a BYE (skipped).
#[rustfmt::skip]
const ASTERISK_SR: &[u8] = &[
    // SR, RC=1, length 12 words.
    0x81, 0xc8, 0x00, 0x0c,
    0x5f, 0x2a, 0x9b, 0x01, // SSRC
    0xe8, 0xa2, 0x1c, 0x3f, // NTP seconds
    0x9e, 0x35, 0x3f, 0x7c, // NTP fraction
    0x7a, 0x3c, 0x1e, 0x40, // RTP timestamp
    0x00, 0x00, 0x03, 0xc9, // 969 packets
    0x00, 0x02, 0x5d, 0xa0, // 155,040 payload octets (969 × 160)
    0x1a, 0x2b, 0x3c, 0x4d, // report block: SSRC
    0x05, 0xff, 0xff, 0xfe, // fraction 5/256, cumulative -2 (duplicates)
    0x00, 0x01, 0x00, 0xfa, // one wrap, seq 250
    0x00, 0x00, 0x00, 0x12, // jitter 18
    0xa2, 0x1c, 0x3f, 0x9e, // LSR
    0x00, 0x00, 0x80, 0x00, // DLSR 0.5 s
    // SDES, SC=1, length 6 words.
    0x81, 0xca, 0x00, 0x06,
    0x5f, 0x2a, 0x9b, 0x01,
    0x01, 0x10, b'a', b's', b't', b'e', b'r', b'i', b's', b'k', b'@', b'p', b'b', b'x',
    b'.', b'l', b'a', b'n',
    0x00, 0x00,
    // BYE, SC=1, length 1 word.
    0x81, 0xcb, 0x00, 0x01,
    0x5f, 0x2a, 0x9b, 0x01,
];

#[test]
fn parses_captured_asterisk_sr() {
    let packets = parse_compound(ASTERISK_SR).unwrap();
    assert_eq!(packets.len(), 2, "BYE is skipped");
    let RtcpPacket::SenderReport(sr) = &packets[0] else {
        panic!("first is not an SR: {:?}", packets[0]);
    };
    assert_eq!(sr.ssrc, 0x5f2a_9b01);
    assert_eq!(sr.info.ntp, NtpTime(0xe8a2_1c3f_9e35_3f7c));
    assert_eq!(sr.info.ntp.middle32(), 0x1c3f_9e35);
    assert_eq!(sr.info.rtp_timestamp, 0x7a3c_1e40);
    assert_eq!(sr.info.packet_count, 969);
    assert_eq!(sr.info.octet_count, 969 * 160);
    assert_eq!(
        sr.reports,
        vec![ReportBlock {
            ssrc: 0x1a2b_3c4d,
            fraction_lost: 5,
            cumulative_lost: -2,
            highest_seq: 65_536 + 250,
            jitter: 18,
            lsr: 0xa21c_3f9e,
            dlsr: 0x8000,
        }]
    );
    assert_eq!(
        compact_to_duration(sr.reports[0].dlsr),
        Duration::from_millis(500)
    );
    assert_eq!(
        packets[1],
        RtcpPacket::SourceDescription(vec![SdesChunk {
            ssrc: 0x5f2a_9b01,
            cname: Some("asterisk@pbx.lan".into()),
        }])
    );
}

#[test]
fn skips_unknown_types_and_honours_padding() {
    // APP (204) with 4 bytes of data, then an RR with P set and 4 bytes of padding.
    let mut bytes = vec![0x80, 204, 0x00, 0x02, 0, 0, 0, 9, b'n', b'a', b'm', b'e'];
    bytes.extend_from_slice(&[0xa0, 0xc9, 0x00, 0x02, 0, 0, 0, 5, 0, 0, 0, 4]);
    assert_eq!(
        parse_compound(&bytes).unwrap(),
        vec![RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 5,
            reports: vec![]
        })]
    );
}

#[test]
fn bad_input_is_an_error_never_a_panic() {
    assert_eq!(parse_compound(&[]), Err(RtcpError::Empty));
    assert_eq!(parse_compound(&[0x80, 0xc9]), Err(RtcpError::Truncated(0)));
    let mut wrong_version = ASTERISK_SR.to_vec();
    wrong_version[0] = 0x41;
    assert_eq!(parse_compound(&wrong_version), Err(RtcpError::Version(1)));
    let mut long = ASTERISK_SR.to_vec();
    long[3] = 0x40;
    assert_eq!(parse_compound(&long), Err(RtcpError::LengthPastEnd(0)));
    // RC says 2 blocks but the length holds only one.
    let mut count = ASTERISK_SR.to_vec();
    count[0] = 0x82;
    assert!(matches!(
        parse_compound(&count),
        Err(RtcpError::Truncated(_))
    ));
    // Padding count larger than the packet.
    assert_eq!(
        parse_compound(&[0xa0, 0xc9, 0x00, 0x01, 0, 0, 0, 9]),
        Err(RtcpError::Padding(9))
    );
    // SDES item length past the end of its packet.
    assert!(matches!(
        parse_compound(&[0x81, 0xca, 0x00, 0x02, 0, 0, 0, 1, 1, 200, b'a', b'b']),
        Err(RtcpError::Truncated(_))
    ));
    // Every truncation of a valid datagram either parses a prefix or errs.
    for n in 0..ASTERISK_SR.len() {
        let _ = parse_compound(&ASTERISK_SR[..n]);
    }
    assert_eq!(
        build_compound(1, None, &[], &"x".repeat(256)),
        Err(RtcpError::CnameTooLong(256))
    );
}

#[test]
fn ntp_from_system_time() {
    // 2023-01-01T00:00:00.5Z = 1672531200.5 Unix.
    let t = UNIX_EPOCH + Duration::from_millis(1_672_531_200_500);
    let ntp = NtpTime::from_system_time(t);
    assert_eq!(ntp.0 >> 32, 1_672_531_200 + 2_208_988_800);
    assert_eq!(ntp.0 & 0xffff_ffff, 0x8000_0000);
    assert_eq!(
        ntp.middle32(),
        (((1_672_531_200u64 + 2_208_988_800) & 0xffff) << 16 | 0x8000) as u32
    );
}

/// Feeds `n` packets 20 ms apart, 160 timestamp units apart, from `seq0`.
fn feed(stats: &mut ReceiverStats, t0: Instant, seqs: impl IntoIterator<Item = u16>) {
    for (i, seq) in seqs.into_iter().enumerate() {
        let at = t0 + Duration::from_millis(20 * i as u64);
        stats.on_packet(seq, 1000u32.wrapping_add(160 * i as u32), at, 8000);
    }
}

#[test]
fn extended_seq_wraps_at_65535() {
    let mut s = ReceiverStats::new(1);
    let t0 = Instant::now();
    feed(&mut s, t0, (65_530..=65_535).chain(0..=5));
    assert_eq!(s.cycles(), 1);
    assert_eq!(s.extended_highest_seq(), 65_536 + 5);
    // The first packet is spent on probation: counting starts at 65531.
    assert_eq!(s.expected(), 11);
    assert_eq!(s.received(), 11);
    assert_eq!(s.cumulative_lost(), 0);
    let rb = s.report_block(t0).unwrap();
    assert_eq!(rb.highest_seq, 0x0001_0005);
    assert_eq!(rb.fraction_lost, 0);
}

#[test]
fn probation_holds_back_report() {
    let mut s = ReceiverStats::new(9);
    assert!(!s.on_packet(100, 0, Instant::now(), 8000));
    assert!(s.report_block(Instant::now()).is_none());
    assert!(s.on_packet(101, 160, Instant::now(), 8000));
    assert!(s.report_block(Instant::now()).is_some());
}

#[test]
fn loss_counted_across_a_gap_and_fraction_is_per_interval() {
    let mut s = ReceiverStats::new(1);
    let t0 = Instant::now();
    feed(&mut s, t0, (1..=100).filter(|q| !(50..55).contains(q)));
    assert_eq!(s.expected(), 99); // 2..=100
    assert_eq!(s.received(), 94);
    assert_eq!(s.cumulative_lost(), 5);
    assert!((s.loss_ratio() - 5.0 / 99.0).abs() < 1e-9);
    let rb = s.report_block(t0).unwrap();
    assert_eq!(rb.cumulative_lost, 5);
    assert_eq!(rb.fraction_lost, (5 * 256 / 99) as u8);

    feed(&mut s, t0 + Duration::from_secs(2), 101..=200);
    let rb = s.report_block(t0).unwrap();
    assert_eq!(rb.fraction_lost, 0, "no loss in the second interval");
    assert_eq!(rb.cumulative_lost, 5);
    assert_eq!(rb.highest_seq, 200);
}

#[test]
fn duplicates_make_loss_negative() {
    let mut s = ReceiverStats::new(1);
    let t0 = Instant::now();
    feed(&mut s, t0, [1, 2, 3, 3, 4, 4]);
    assert_eq!(s.cumulative_lost(), -2);
    assert_eq!(s.loss_ratio(), 0.0);
    assert_eq!(s.report_block(t0).unwrap().cumulative_lost, -2);
}

#[test]
fn restart_after_big_jump_needs_two_packets() {
    let mut s = ReceiverStats::new(1);
    let t0 = Instant::now();
    feed(&mut s, t0, 1..=10);
    assert!(
        !s.on_packet(40_000, 0, t0, 8000),
        "one stray packet is not counted"
    );
    assert_eq!(s.extended_highest_seq(), 10);
    assert!(
        s.on_packet(40_001, 160, t0, 8000),
        "the next in sequence resyncs"
    );
    assert_eq!(s.extended_highest_seq(), 40_001);
    assert_eq!(s.expected(), 1);
}

#[test]
fn jitter_is_zero_for_constant_delay_and_grows_with_varying_delay() {
    let mut s = ReceiverStats::new(1);
    let t0 = Instant::now();
    // Alternate 0 and 10 ms of extra delay: |D| = 80 units every packet.
    for i in 0..200u32 {
        let extra = if i % 2 == 0 { 0 } else { 10 };
        let at = t0 + Duration::from_millis(u64::from(20 * i + extra));
        s.on_packet(i as u16, i * 160, at, 8000);
    }
    assert!((s.jitter() - 80.0).abs() < 1.0, "jitter {}", s.jitter());
    assert!((s.jitter_seconds() - 0.010).abs() < 0.000_2);
    // Then a constant delay: J decays by 15/16 per packet toward 0.
    for i in 200..400u32 {
        let at = t0 + Duration::from_millis(u64::from(20 * i + 50));
        s.on_packet(i as u16, i * 160, at, 8000);
    }
    assert!(s.jitter() < 0.5, "jitter {}", s.jitter());
    assert_eq!(s.report_block(t0).unwrap().jitter, 0);
}

#[test]
fn jitter_across_timestamp_wrap_is_zero() {
    let mut s = ReceiverStats::new(1);
    let t0 = Instant::now();
    for i in 0..100u32 {
        let at = t0 + Duration::from_millis(u64::from(20 * i));
        s.on_packet(i as u16, (u32::MAX - 4000).wrapping_add(i * 160), at, 8000);
    }
    assert!(s.jitter() < 1e-6, "jitter {}", s.jitter());
}

#[test]
fn report_block_carries_lsr_and_dlsr() {
    let mut s = ReceiverStats::new(1);
    let t0 = Instant::now();
    feed(&mut s, t0, 1..=3);
    s.on_sender_report(NtpTime(0xe8a2_1c3f_9e35_3f7c), t0);
    let rb = s.report_block(t0 + Duration::from_millis(1500)).unwrap();
    assert_eq!(rb.lsr, 0x1c3f_9e35);
    assert_eq!(rb.dlsr, 0x0001_8000);
}

#[test]
fn rtt_from_rfc_3550_example() {
    // §6.4.1 figure: A = 0xb710:8000, LSR = 0xb705:2000, DLSR = 0x0005:4000 → 6.125 s.
    assert_eq!(
        round_trip_time(0xb710_8000, 0xb705_2000, 0x0005_4000),
        Some(Duration::from_millis(6125))
    );
    assert_eq!(round_trip_time(0xb710_8000, 0, 0), None);
    assert_eq!(round_trip_time(0xb705_0000, 0xb705_2000, 0), None);
}

#[test]
fn sender_stats_make_sr_and_measure_rtt() {
    let t0 = Instant::now();
    let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut tx = SenderStats::new(42, 8000);
    assert!(tx.sender_info(wall, t0).is_none(), "nothing sent yet");
    for i in 0..50u32 {
        tx.on_sent(
            5000 + i * 160,
            160,
            t0 + Duration::from_millis(u64::from(20 * i)),
        );
    }
    assert_eq!((tx.packets(), tx.octets()), (50, 8000));
    // SR 30 ms after the last packet (sent at 980 ms, ts 5000 + 49*160): +240 units.
    let sr_at = t0 + Duration::from_millis(1010);
    let info = tx.sender_info(wall, sr_at).unwrap();
    assert_eq!(info.rtp_timestamp, 5000 + 49 * 160 + 240);
    assert_eq!(info.packet_count, 50);
    assert_eq!(info.octet_count, 8000);
    assert_eq!(info.ntp, NtpTime::from_system_time(wall));

    // The peer held our SR 200 ms and its RR reached us 300 ms after we sent the SR.
    let rb = ReportBlock {
        lsr: info.ntp.middle32(),
        dlsr: duration_to_compact(Duration::from_millis(200)),
        ..ReportBlock::default()
    };
    let rtt = tx
        .round_trip(&rb, sr_at + Duration::from_millis(300))
        .unwrap();
    assert!((rtt.as_secs_f64() - 0.100).abs() < 0.000_1, "rtt {rtt:?}");
    let unknown = ReportBlock { lsr: 12345, ..rb };
    assert_eq!(tx.round_trip(&unknown, sr_at), None);
}

#[test]
fn mos_is_high_on_a_perfect_network() {
    let q = CallQuality::estimate(0.0, 0.0, Some(0.0));
    assert!((q.mos - 4.4).abs() < 0.05, "mos {}", q.mos);
    let q = CallQuality::estimate(0.05, 0.0, Some(0.0));
    assert!(q.mos < 4.0, "5% loss mos {}", q.mos);
    assert!(q.mos > 3.0, "5% loss with PLC is still fair: {}", q.mos);
}

#[test]
fn mos_falls_with_loss_and_delay() {
    let mut last = f64::INFINITY;
    for pct in 0..=30 {
        let mos = CallQuality::estimate(f64::from(pct) / 100.0, 0.01, Some(0.05)).mos;
        assert!(mos < last, "not falling at {pct}% loss: {mos} >= {last}");
        last = mos;
    }
    let mut last = f64::INFINITY;
    for ms in (0..=1000).step_by(50) {
        let mos = CallQuality::estimate(0.01, 0.0, Some(f64::from(ms) / 1000.0)).mos;
        assert!(mos < last, "not falling at rtt {ms} ms: {mos} >= {last}");
        last = mos;
    }
    assert!(CallQuality::estimate(0.0, 0.05, None).mos < CallQuality::estimate(0.0, 0.0, None).mos);
}

#[test]
fn mos_bounds_and_nonsense_input() {
    assert_eq!(mos_from_r(-10.0), 1.0);
    assert_eq!(mos_from_r(120.0), 4.5);
    assert_eq!(mos_from_r(f64::NAN), 1.0);
    let q = CallQuality::estimate(f64::NAN, -1.0, Some(f64::INFINITY));
    assert_eq!((q.loss_ratio, q.jitter_seconds), (0.0, 0.0));
    assert!((1.0..=4.5).contains(&q.mos));
    assert!(CallQuality::estimate(1.0, 10.0, Some(10.0)).mos >= 1.0);
}

#[test]
fn quality_from_a_report_block() {
    let rb = ReportBlock {
        fraction_lost: 13, // ~5%
        jitter: 80,
        ..ReportBlock::default()
    };
    let q = CallQuality::from_report(&rb, 8000, Some(Duration::from_millis(100)));
    assert!((q.loss_ratio - 13.0 / 256.0).abs() < 1e-12);
    assert!((q.jitter_seconds - 0.01).abs() < 1e-12);
    assert_eq!(q.rtt_seconds, Some(0.1));
    assert!(q.mos < CallQuality::estimate(0.0, 0.0, None).mos);
}
