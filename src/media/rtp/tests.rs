//! RTP session tests on virtual time: one `Instant::now()` as the base, then base + offsets.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rtp_rs::{Pad, RtpPacketBuilder, RtpReader, Seq};

use super::*;
use crate::media::codec::CodecKind;
use crate::media::dtmf::{DigitEvent, DtmfReceiver, DtmfSender, TelephoneEvent};
use crate::media::rtcp::{self, RtcpPacket};

const TE: u8 = 101;
const FAR_SSRC: u32 = 0x1234_5678;
/// The far RTP address the SDP of [`config`] names.
const FAR: &str = "192.0.2.10:4000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The SDP says the far end is at 192.0.2.10:4000 (RTCP 4001); PCMU with telephone-event 101.
fn config(ssrc: u32) -> SessionConfig {
    SessionConfig {
        telephone_event: Some(TE),
        remote_rtp: Some(addr("192.0.2.10:4000")),
        remote_rtcp: Some(addr("192.0.2.10:4001")),
        ..SessionConfig::new(CodecKind::Pcmu, ssrc, "leg@dialerd.test")
    }
}

fn rtp(pt: u8, ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    RtpPacketBuilder::new()
        .payload_type(pt)
        .ssrc(ssrc)
        .sequence(Seq::from(seq))
        .timestamp(ts)
        .marked(marker)
        .payload(payload)
        .build()
        .unwrap()
}

/// A 20 ms PCMU packet whose payload bytes all equal the low byte of `seq`.
fn voice(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
    rtp(0, ssrc, seq, ts, false, &[seq as u8; 160])
}

/// Header fields and payload of a packet we built.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    pt: u8,
    ssrc: u32,
    seq: u16,
    ts: u32,
    marker: bool,
    payload: Vec<u8>,
}

fn parse(buf: &[u8]) -> Sent {
    let r = RtpReader::new(buf).unwrap();
    Sent {
        pt: r.payload_type(),
        ssrc: r.ssrc(),
        seq: r.sequence_number().into(),
        ts: r.timestamp(),
        marker: r.mark(),
        payload: r.payload().to_vec(),
    }
}

fn is_media(r: &Received<'_>) -> bool {
    matches!(r, Received::Media(..))
}

fn media_of(r: Received<'_>) -> (MediaPacket, Vec<u8>) {
    match r {
        Received::Media(p, payload) => (p, payload.to_vec()),
        other => panic!("expected media, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Latching

/// [`config`] for a peer known to be behind NAT.
fn nat_config(ssrc: u32) -> SessionConfig {
    SessionConfig {
        behind_nat: true,
        ..config(ssrc)
    }
}

/// Feeds `count` 20 ms voice packets of `ssrc` from `from`, the first with `seq` at `start`
/// after `t0`; says which ones were accepted as media.
fn stream(
    s: &mut RtpSession,
    t0: Instant,
    start: Duration,
    from: SocketAddr,
    ssrc: u32,
    seq: u16,
    count: u16,
) -> Vec<bool> {
    (0..count)
        .map(|i| {
            let q = seq.wrapping_add(i);
            let t = t0 + start + ms(20) * u32::from(i);
            is_media(&s.on_rtp(t, from, &voice(ssrc, q, u32::from(q) * 160)))
        })
        .collect()
}

#[test]
fn without_nat_only_the_sdp_address_latches() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(1), t0);
    let sdp = addr(FAR);
    let attacker = addr("203.0.113.66:4000");
    let next_port = addr("192.0.2.10:4002");
    assert_eq!(s.remote_rtp(), Some(sdp));

    // Invalid packets latch nothing.
    assert_eq!(
        s.on_rtp(t0, attacker, b"hello, not rtp"),
        Received::Dropped(DropReason::NotRtp)
    );
    assert_eq!(
        s.on_rtp(t0, sdp, &rtp(18, FAR_SSRC, 1, 0, false, &[0; 20])),
        Received::Dropped(DropReason::UnknownPayloadType(18))
    );
    // Before the peer's first packet, a steady stream from anywhere else is dropped, even from
    // the SDP's host on another port, and latches nothing.
    assert!(stream(&mut s, t0, ms(0), attacker, 0xBAD, 1, 100)
        .iter()
        .all(|&a| !a));
    assert!(stream(&mut s, t0, ms(0), next_port, FAR_SSRC, 1, 100)
        .iter()
        .all(|&a| !a));
    assert_eq!(s.latched(), None);
    assert_eq!(s.remote_rtp(), Some(sdp));

    // The peer's first packet latches.
    let (p, payload) = media_of(s.on_rtp(t0 + ms(2005), sdp, &voice(FAR_SSRC, 7, 1120)));
    assert_eq!(
        p,
        MediaPacket {
            ssrc: FAR_SSRC,
            seq: 7,
            timestamp: 1120,
            marker: false,
            payload_type: 0,
            received_at: t0 + ms(2005),
        }
    );
    assert_eq!(payload, vec![7u8; 160]);
    assert_eq!(s.latched(), Some(sdp));
    assert_eq!(s.remote_rtcp(), Some(addr("192.0.2.10:4001")));

    // The peer falls silent for a minute; a stranger continuing its very stream (same SSRC,
    // next sequence numbers) for all that time still takes nothing.
    let taken = stream(&mut s, t0, ms(2100), attacker, FAR_SSRC, 8, 3000);
    assert!(taken.iter().all(|&a| !a));
    assert_eq!(s.latched(), Some(sdp));
    assert_eq!(s.remote_rtp(), Some(sdp));
    let c = s.counters();
    assert_eq!((c.packets_in, c.bytes_in), (1, 172));
    assert_eq!(c.dropped_wrong_source, 3200);
    assert_eq!((c.dropped_malformed, c.dropped_unknown_pt), (1, 1));
    assert_eq!(c.relatches, 0);
}

#[test]
fn multiplexed_rtcp_goes_where_rtp_goes_even_after_latching() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(nat_config(1), t0);
    s.set_rtcp_mux();
    assert_eq!(s.remote_rtcp(), Some(addr(FAR)));
    let nat = addr("198.51.100.7:31000");
    stream(
        &mut s,
        t0,
        ms(0),
        nat,
        FAR_SSRC,
        7,
        NAT_LATCH_PACKETS as u16,
    );
    assert_eq!(s.remote_rtcp(), Some(nat));
}

#[test]
fn behind_nat_a_steady_stream_from_another_address_latches() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(nat_config(1), t0);
    let nat = addr("198.51.100.7:31000");
    // The first NAT_LATCH_PACKETS − 1 packets prove the stream and are dropped; the next one
    // latches and is media.
    let accepted = stream(&mut s, t0, ms(0), nat, FAR_SSRC, 7, 8);
    let n = NAT_LATCH_PACKETS as usize;
    assert_eq!(accepted[..n - 1], vec![false; n - 1][..]);
    assert_eq!(accepted[n - 1..], vec![true; 8 - n + 1][..]);
    assert_eq!(s.latched(), Some(nat));
    assert_eq!(s.remote_rtp(), Some(nat));
    // RTCP: nothing heard yet, so the latched address's port + 1.
    assert_eq!(s.remote_rtcp(), Some(addr("198.51.100.7:31001")));
    assert_eq!(s.remote_ssrc(), Some(FAR_SSRC));
    // Now even the SDP address is another source.
    assert_eq!(
        s.on_rtp(t0 + ms(500), addr(FAR), &voice(FAR_SSRC, 20, 3200)),
        Received::Dropped(DropReason::WrongSource)
    );
    assert_eq!(s.counters().relatches, 0);

    // Behind NAT, a packet from the SDP's address itself latches at once.
    let mut s = RtpSession::new(nat_config(1), t0);
    assert!(is_media(&s.on_rtp(t0, addr(FAR), &voice(FAR_SSRC, 1, 0))));
    assert_eq!(s.latched(), Some(addr(FAR)));
}

#[test]
fn behind_nat_bursts_and_jumbled_packets_do_not_latch_and_a_sprayer_does_not_block() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(nat_config(1), t0);
    let x = addr("203.0.113.66:4000");
    // Bursts one packet short, far apart.
    for burst in 0..5u32 {
        let start = ms(1000) * burst;
        let got = stream(&mut s, t0, start, x, 9, 100, NAT_LATCH_PACKETS as u16 - 1);
        assert!(got.iter().all(|&a| !a));
    }
    // A new SSRC every packet, sequence numbers that jump or go back, packets too far apart.
    let mut seq = 1u16;
    for i in 0..40u32 {
        let t = t0 + ms(10_000) + ms(20) * i;
        let pkt = match i % 3 {
            0 => voice(i, seq, 0),
            1 => voice(9, seq.wrapping_add(latch::MAX_SEQ_STEP + 1), 0),
            _ => voice(9, seq.wrapping_sub(1), 0),
        };
        seq = seq.wrapping_add(latch::MAX_SEQ_STEP + 1);
        assert!(!is_media(&s.on_rtp(t, x, &pkt)), "packet {i}");
    }
    for i in 0..10u32 {
        let t = t0 + ms(20_000) + (CANDIDATE_GAP + ms(1)) * i;
        assert!(!is_media(&s.on_rtp(t, x, &voice(9, i as u16, 0))));
    }
    assert_eq!(s.latched(), None);

    // While a sprayer sends junk from three new ports between each pair of the real stream's
    // packets, the real stream still latches on its NAT_LATCH_PACKETS-th packet.
    let real = addr("198.51.100.7:31000");
    let mut first = None;
    for i in 0..20u16 {
        let t = t0 + ms(30_000) + ms(20) * u32::from(i);
        for j in 0..3u16 {
            let junk = SocketAddr::new(x.ip(), 5000 + i * 3 + j);
            s.on_rtp(t, junk, &voice(u32::from(i), i, 0));
        }
        if is_media(&s.on_rtp(t + ms(1), real, &voice(FAR_SSRC, i, u32::from(i) * 160))) {
            first.get_or_insert(i);
        }
    }
    assert_eq!(first, Some(NAT_LATCH_PACKETS as u16 - 1));
    assert_eq!(s.latched(), Some(real));
}

#[test]
fn behind_nat_latching_follows_the_stream_to_a_new_address() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(nat_config(1), t0);
    let a = addr("198.51.100.7:31000");
    let b = addr("198.51.100.7:42000"); // the far NAT gave the stream a new port
                                        // A sends for one second (t = 0, 20, … 980 ms).
    assert!(is_media(&s.on_rtp(t0, addr(FAR), &voice(FAR_SSRC, 99, 0))));
    s.update(Some(a), None, false, t0);
    let got = stream(&mut s, t0, ms(0), a, FAR_SSRC, 100, 50);
    assert!(got[NAT_LATCH_PACKETS as usize - 1..].iter().all(|&x| x));
    // The same stream continues from B at t = 1000 ms. B's packets are dropped until A has been
    // silent for RELATCH_SILENCE (after its last packet at 980 ms) and B has sent for
    // RELATCH_SUSTAIN: from 2980 ms on, every packet is media.
    let got = stream(&mut s, t0, ms(1000), b, FAR_SSRC, 150, 120);
    let first = got.iter().position(|&x| x).expect("never re-latched");
    let at = 1000 + 20 * first as u64;
    assert_eq!(Duration::from_millis(at - 980), RELATCH_SILENCE);
    assert!(got[first..].iter().all(|&x| x));
    assert_eq!(s.latched(), Some(b));
    assert_eq!(s.remote_rtp(), Some(b));
    assert_eq!(s.counters().relatches, 1);
    // A late packet from the old address is now the stranger.
    assert_eq!(
        s.on_rtp(t0 + ms(4000), a, &voice(FAR_SSRC, 300, 0)),
        Received::Dropped(DropReason::WrongSource)
    );
    // Same SSRC: the receive statistics carried on.
    assert_eq!(s.remote_ssrc(), Some(FAR_SSRC));

    // A source with its own SSRC, however long it streams after B went quiet, is not followed.
    let c = addr("203.0.113.9:20000");
    let got = stream(&mut s, t0, ms(10_000), c, 0xC0C0, 5, 500);
    assert!(got.iter().all(|&x| !x));
    assert_eq!(s.latched(), Some(b));
    assert_eq!(s.counters().relatches, 1);
}

#[test]
fn behind_nat_a_live_source_is_not_stolen_nor_a_silent_one_by_a_burst() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(nat_config(1), t0);
    let a = addr(FAR);
    let b = addr("198.51.100.99:31000");
    // A and B both send continuously, B even continuing A's SSRC: never taken while A is alive.
    for i in 0..500u16 {
        let t = t0 + ms(20 * u64::from(i));
        assert!(is_media(&s.on_rtp(
            t,
            a,
            &voice(FAR_SSRC, i, 160 * u32::from(i))
        )));
        let pkt = voice(FAR_SSRC, i + 1, 160 * u32::from(i));
        let r = s.on_rtp(t + ms(5), b, &pkt);
        assert_eq!(r, Received::Dropped(DropReason::WrongSource));
    }
    assert_eq!(s.latched(), Some(a));

    // A falls silent (last packet at 9980 ms). Four packets, or any burst shorter than the
    // sustain, continuing A's stream, do not take it, even long after.
    let c = addr("203.0.113.66:9");
    for (k, start) in [12_000u64, 20_000, 40_000].into_iter().enumerate() {
        let seq = 500 + 200 * k as u16;
        let got = stream(&mut s, t0, ms(start), c, FAR_SSRC, seq, 4);
        assert!(got.iter().all(|&x| !x));
        let got = stream(&mut s, t0, ms(start + 1000), c, FAR_SSRC, seq + 10, 49);
        assert!(got.iter().all(|&x| !x), "a burst under 1 s took the leg");
    }
    // A stream that would continue but starts too far ahead of A's last sequence number.
    let far_ahead = 499u16.wrapping_add(MAX_DROPOUT + 1);
    let got = stream(&mut s, t0, ms(60_000), c, FAR_SSRC, far_ahead, 200);
    assert!(got.iter().all(|&x| !x));
    // Packets from D that change SSRC every time.
    for i in 0..100u64 {
        let pkt = voice(i as u32, 1 + i as u16, 0);
        let r = s.on_rtp(t0 + ms(70_000 + 20 * i), addr("203.0.113.67:9"), &pkt);
        assert_eq!(r, Received::Dropped(DropReason::WrongSource));
    }
    // A challenger proving itself when A comes back gets nothing while A's new silence is short.
    let got = stream(&mut s, t0, ms(80_000), c, FAR_SSRC, 600, 40);
    assert!(got.iter().all(|&x| !x));
    let pkt = voice(FAR_SSRC, 700, 0);
    assert!(is_media(&s.on_rtp(t0 + ms(80_800), a, &pkt)));
    let got = stream(&mut s, t0, ms(80_820), c, FAR_SSRC, 640, 90);
    assert!(
        got.iter().all(|&x| !x),
        "A was back: its silence starts over"
    );
    assert_eq!(s.latched(), Some(a));
    assert_eq!(s.counters().relatches, 0);
}

#[test]
fn a_new_sdp_address_restarts_latching_and_the_same_one_does_not() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(1), t0);
    let a = addr(FAR);
    assert!(is_media(&s.on_rtp(t0, a, &voice(FAR_SSRC, 1, 0))));

    // A session refresh with the same SDP keeps the latch.
    s.update(Some(a), Some(addr("192.0.2.10:4001")), false, t0 + ms(10));
    assert_eq!(s.latched(), Some(a));

    // A new address: only it is taken from now on, the old one no longer.
    let moved = addr("192.0.2.20:6000");
    s.update(Some(moved), None, false, t0 + ms(20));
    assert_eq!(s.latched(), None);
    assert_eq!(s.remote_rtp(), Some(moved));
    assert_eq!(s.remote_rtcp(), Some(addr("192.0.2.20:6001")));
    assert!(!is_media(&s.on_rtp(
        t0 + ms(30),
        a,
        &voice(FAR_SSRC, 2, 160)
    )));
    assert!(!is_media(&s.on_rtp(
        t0 + ms(35),
        addr("198.51.100.8:1234"),
        &voice(FAR_SSRC, 2, 160)
    )));
    assert!(is_media(&s.on_rtp(
        t0 + ms(40),
        moved,
        &voice(FAR_SSRC, 3, 320)
    )));
    assert_eq!(s.remote_rtp(), Some(moved));

    // Old-style hold: c=0.0.0.0 is no address at all, and nothing latches to it.
    s.update(Some(addr("0.0.0.0:6000")), None, true, t0 + ms(60));
    assert_eq!(s.remote_rtp(), None);
    assert_eq!(s.remote_rtcp(), None);
    assert!(!is_media(&s.on_rtp(
        t0 + ms(80),
        moved,
        &voice(FAR_SSRC, 4, 480)
    )));
    let unknown = RtpSession::new(
        SessionConfig {
            remote_rtp: Some(addr("0.0.0.0:4000")),
            remote_rtcp: Some(addr("192.0.2.1:0")),
            ..config(1)
        },
        t0,
    );
    assert_eq!(unknown.remote_rtp(), None);
    assert_eq!(unknown.remote_rtcp(), None);
}

#[test]
fn an_ipv4_mapped_source_is_the_sdps_ipv4_address() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(1), t0);
    let mapped = addr("[::ffff:192.0.2.10]:4000");
    assert!(is_media(&s.on_rtp(t0, mapped, &voice(FAR_SSRC, 1, 0))));
    // Replies go where the packet came from, in the socket's own address family.
    assert_eq!(s.remote_rtp(), Some(mapped));
}

#[test]
fn adversarial_sources_never_take_a_leg_they_cannot_prove() {
    // A real peer streams from its SDP address (or, behind NAT, from its public address) with
    // pauses; attackers on five addresses send random valid packets: random SSRCs, sequence
    // numbers, bursts, at random times. Whatever they do, the leg latches to the peer and
    // stays there, and no attacker packet is ever media.
    for nat in [false, true] {
        let t0 = Instant::now();
        let mut s = RtpSession::new(
            SessionConfig {
                behind_nat: nat,
                ..config(1)
            },
            t0,
        );
        let peer = if nat {
            addr("198.51.100.7:31000")
        } else {
            addr(FAR)
        };
        let mut rng = 0xDEAD_BEEFu32 ^ u32::from(nat);
        let mut now = t0;
        let mut seq = 1000u16;
        for step in 0..20_000u32 {
            now += ms(u64::from(next(&mut rng) % 15));
            // The peer talks in 3 s spurts with 4 s pauses.
            let talking = (step / 300) % 2 == 0;
            if talking && step % 2 == 0 {
                seq = seq.wrapping_add(1);
                let pkt = voice(FAR_SSRC, seq, u32::from(seq) * 160);
                let r = s.on_rtp(now, peer, &pkt);
                if s.latched() == Some(peer) {
                    assert!(is_media(&r), "the peer's packet dropped at step {step}");
                }
            }
            let who = SocketAddr::new(
                "203.0.113.50".parse().unwrap(),
                4000 + (next(&mut rng) % 5) as u16,
            );
            let pkt = match next(&mut rng) % 4 {
                0 => voice(next(&mut rng), next(&mut rng) as u16, next(&mut rng)),
                1 => voice(0xA77A, step as u16, step * 160),
                2 => voice(
                    next(&mut rng) % 3,
                    seq.wrapping_add(next(&mut rng) as u16),
                    0,
                ),
                _ => rtp(
                    TE,
                    0xA77A,
                    step as u16,
                    0,
                    step % 2 == 0,
                    &[1, 0x80, 0, 160],
                ),
            };
            let r = s.on_rtp(now, who, &pkt);
            assert!(
                matches!(r, Received::Dropped(DropReason::WrongSource)),
                "nat {nat}: attacker packet at step {step} came through: {r:?}"
            );
            assert!(s.latched().is_none() || s.latched() == Some(peer));
        }
        assert_eq!(s.latched(), Some(peer));
        assert_eq!(s.counters().relatches, 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Receive path

#[test]
fn duplicates_are_dropped_reordering_is_kept() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(1), t0);
    let a = addr(FAR);
    let order = [10u16, 11, 13, 12, 12, 11, 14, 13];
    let verdicts: Vec<bool> = order
        .iter()
        .map(|&q| {
            let pkt = voice(FAR_SSRC, q, u32::from(q) * 160);
            match s.on_rtp(t0 + ms(u64::from(q) * 20), a, &pkt) {
                Received::Media(..) => true,
                Received::Dropped(DropReason::Duplicate) => false,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(
        verdicts,
        [true, true, true, true, false, false, true, false]
    );
    // A sender that restarts its sequence far behind is followed, not taken for duplicates.
    for q in 5000..5010u16 {
        assert!(is_media(&s.on_rtp(t0 + ms(500), a, &voice(FAR_SSRC, q, 0))));
    }
    for q in 0..70u16 {
        let pkt = voice(FAR_SSRC, q, 0);
        let r = s.on_rtp(t0 + ms(600), a, &pkt);
        assert!(is_media(&r), "seq {q} after a restart: {r:?}");
    }
    assert_eq!(s.counters().dropped_duplicate, 3);
}

#[test]
fn comfort_noise_is_media_and_unknown_types_are_not() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(1), t0);
    let a = addr(FAR);
    let (p, payload) = media_of(s.on_rtp(t0, a, &rtp(13, FAR_SSRC, 1, 0, true, &[40])));
    assert_eq!((p.payload_type, p.marker, payload), (13, true, vec![40]));
    // PCMA was not negotiated on this PCMU leg.
    assert_eq!(
        s.on_rtp(t0, a, &rtp(8, FAR_SSRC, 2, 160, false, &[0xD5; 160])),
        Received::Dropped(DropReason::UnknownPayloadType(8))
    );
    // A re-INVITE to PCMA with telephone-event 96.
    s.set_codec(CodecKind::Pcma, 8, Some(96));
    assert!(is_media(&s.on_rtp(
        t0,
        a,
        &rtp(8, FAR_SSRC, 3, 320, false, &[0xD5; 160])
    )));
    assert_eq!(
        s.on_rtp(t0, a, &voice(FAR_SSRC, 4, 480)),
        Received::Dropped(DropReason::UnknownPayloadType(0))
    );
    assert_eq!(
        s.on_rtp(t0, a, &rtp(TE, FAR_SSRC, 5, 480, false, &[1, 0, 0, 160])),
        Received::Dropped(DropReason::UnknownPayloadType(TE))
    );
}

#[test]
fn receive_statistics_restart_with_a_new_ssrc() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(1), t0);
    let a = addr(FAR);
    // 100 packets of which every tenth is lost.
    for i in 0..100u16 {
        if i % 10 == 5 {
            continue;
        }
        s.on_rtp(
            t0 + ms(20 * u64::from(i)),
            a,
            &voice(FAR_SSRC, 1000 + i, 160 * u32::from(i)),
        );
    }
    let q = s.quality();
    assert!((q.loss_ratio - 0.1).abs() < 0.02, "{q:?}");
    assert!(q.mos < 4.0, "10% loss must cost MOS: {q:?}");
    let report = s.poll_rtcp(t0 + ms(4000), SystemTime::now()).unwrap();
    let block = report_blocks(&report)[0];
    assert_eq!(block.ssrc, FAR_SSRC);
    assert_eq!(block.cumulative_lost, 10);

    // The far end restarts with another SSRC: fresh statistics for it.
    for i in 0..100u16 {
        s.on_rtp(
            t0 + ms(4000 + 20 * u64::from(i)),
            a,
            &voice(0xFEED, i, 160 * u32::from(i)),
        );
    }
    assert_eq!(s.remote_ssrc(), Some(0xFEED));
    let q = s.quality();
    assert_eq!(q.loss_ratio, 0.0);
    assert!(q.mos > 4.3, "{q:?}");
    let report = s.poll_rtcp(t0 + ms(20_000), SystemTime::now()).unwrap();
    let block = report_blocks(&report)[0];
    assert_eq!((block.ssrc, block.cumulative_lost), (0xFEED, 0));
    assert_eq!(block.highest_seq, 99);
}

fn report_blocks(compound: &[u8]) -> Vec<rtcp::ReportBlock> {
    rtcp::parse_compound(compound)
        .unwrap()
        .into_iter()
        .flat_map(|p| match p {
            RtcpPacket::SenderReport(sr) => sr.reports,
            RtcpPacket::ReceiverReport(rr) => rr.reports,
            RtcpPacket::SourceDescription(_) => Vec::new(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// DTMF in

/// The packets of one digit from `DtmfSender`, as RTP with consecutive sequence numbers from
/// `seq`, each with its send time.
fn dtmf_packets(digit: char, ts: u32, ms_long: u32, seq: u16) -> Vec<(Duration, Vec<u8>, bool)> {
    DtmfSender::new(8000, 20)
        .packets(digit, ts, ms_long)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let end = TelephoneEvent::parse(&p.payload).unwrap().end;
            let buf = rtp(
                TE,
                FAR_SSRC,
                seq.wrapping_add(i as u16),
                p.timestamp,
                p.marker,
                &p.payload,
            );
            (ms(u64::from(p.offset_ms)), buf, end)
        })
        .collect()
}

#[test]
fn a_received_digit_is_reported_once() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(1), t0);
    let a = addr(FAR);
    // Voice, then '5' for 100 ms at timestamp 1600, then voice again.
    for i in 0..10u16 {
        assert!(is_media(&s.on_rtp(
            t0 + ms(20 * u64::from(i)),
            a,
            &voice(FAR_SSRC, i, 160 * u32::from(i))
        )));
    }
    let mut digits = Vec::new();
    let mut relayable = 0;
    for (offset, buf, _) in dtmf_packets('5', 1600, 100, 10) {
        match s.on_rtp(t0 + ms(200) + offset, a, &buf) {
            Received::Dtmf(d) => digits.push(d),
            Received::DtmfPacket(p, payload) => {
                assert_eq!((p.payload_type, p.timestamp), (TE, 1600));
                assert_eq!(payload.len(), 4);
                relayable += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        digits,
        [DigitEvent {
            digit: '5',
            duration_samples: 800,
            timestamp: 1600
        }]
    );
    // 4 updates + 3 end packets: the first end packet gave the digit.
    assert_eq!(relayable, 6);
    assert!(is_media(&s.on_rtp(
        t0 + ms(340),
        a,
        &voice(FAR_SSRC, 17, 2720)
    )));
    assert_eq!(s.poll_dtmf(t0 + ms(10_000)), None);
    assert_eq!(s.counters().dtmf_in, 1);
    // No loss counted: telephone-events share the stream's sequence numbers.
    assert_eq!(s.quality().loss_ratio, 0.0);

    // A short telephone-event payload is refused.
    assert_eq!(
        s.on_rtp(t0 + ms(400), a, &rtp(TE, FAR_SSRC, 18, 3000, true, &[1, 2])),
        Received::Dropped(DropReason::BadPayload)
    );
}

#[test]
fn a_digit_whose_end_was_lost_comes_from_poll_dtmf() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(1), t0);
    let a = addr(FAR);
    // 'A' for 100 ms: updates at 0, 20, 40, 60 ms (durations 160 … 640); every end packet lost.
    for (offset, buf, end) in dtmf_packets('A', 70_000, 100, 500) {
        if !end {
            assert!(matches!(
                s.on_rtp(t0 + offset, a, &buf),
                Received::DtmfPacket(..)
            ));
        }
    }
    // Heard until 640 units after the start at 60 ms; due 200 ms (1600 units) of silence later.
    let due = t0 + ms(60) + ms(200);
    assert_eq!(s.poll_timeout(), Some(due));
    assert_eq!(s.poll_dtmf(due - ms(1)), None);
    let d = s.poll_dtmf(due).unwrap();
    assert_eq!(
        (d.digit, d.duration_samples, d.timestamp),
        ('A', 640, 70_000)
    );
    assert_eq!(s.poll_dtmf(due + ms(1000)), None);
    assert!(s.poll_timeout().unwrap() > due, "nothing left due");
    assert_eq!(s.counters().dtmf_in, 1);
}

#[test]
fn a_pending_digit_survives_a_stream_change() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(1), t0);
    let a = addr(FAR);
    for (offset, buf, end) in dtmf_packets('7', 0, 100, 0) {
        if !end {
            s.on_rtp(t0 + offset, a, &buf);
        }
    }
    // A new SSRC before the digit timed out.
    assert!(is_media(&s.on_rtp(t0 + ms(80), a, &voice(0xABCD, 9, 0))));
    assert_eq!(s.poll_timeout(), Some(t0 + ms(80)));
    assert_eq!(s.poll_dtmf(t0 + ms(80)).map(|d| d.digit), Some('7'));
    assert_eq!(s.poll_dtmf(t0 + ms(10_000)), None);
}

// ---------------------------------------------------------------------------------------------
// Outbound continuity

/// Checks the invariants of one outbound stream: one SSRC; sequence numbers strictly
/// increasing (wrapping); timestamps never backwards.
fn assert_continuous(sent: &[Sent]) {
    for w in sent.windows(2) {
        assert_eq!(w[1].ssrc, w[0].ssrc, "SSRC changed");
        let dseq = w[1].seq.wrapping_sub(w[0].seq) as i16;
        assert!(dseq >= 1, "sequence went {} → {}", w[0].seq, w[1].seq);
        let dts = w[1].ts.wrapping_sub(w[0].ts) as i32;
        assert!(dts >= 0, "timestamp went {} → {}", w[0].ts, w[1].ts);
    }
}

#[test]
fn own_frames_are_continuous() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(0xDEAD_BEEF), t0);
    let mut out = Vec::new();
    let mut sent = Vec::new();
    // Timer jitter on the frames does not move the timestamps.
    for (i, jitter) in [0u64, 3, 0, 9, 1, 0, 15, 2].into_iter().enumerate() {
        s.build_voice(
            t0 + ms(20 * i as u64 + jitter),
            &[i as u8; 160],
            160,
            &mut out,
        );
        assert_eq!(out.len(), 172);
        sent.push(parse(&out));
    }
    assert_continuous(&sent);
    for (i, p) in sent.iter().enumerate() {
        assert_eq!(p.ssrc, 0xDEAD_BEEF);
        assert_eq!(p.pt, 0);
        assert_eq!(p.seq, sent[0].seq.wrapping_add(i as u16));
        assert_eq!(p.ts, sent[0].ts.wrapping_add(160 * i as u32));
        assert_eq!(p.marker, i == 0);
        assert_eq!(p.payload, vec![i as u8; 160]);
    }
    // A pause longer than TALKSPURT_GAP: a new talkspurt, timestamp by the wall clock. The
    // last frame went at 142 ms; 998 ms later is 7984 samples, 8000 rounded to the frame.
    let last = sent.last().unwrap().clone();
    s.build_voice(t0 + ms(1140), &[0; 160], 160, &mut out);
    let p = parse(&out);
    assert_eq!(p.seq, last.seq.wrapping_add(1));
    assert_eq!(p.ts, last.ts.wrapping_add(8000));
    assert!(p.marker);
    let c = s.counters();
    assert_eq!((c.packets_out, c.bytes_out), (9, 9 * 172));
}

#[test]
fn sequence_numbers_wrap_without_a_jump() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(7), t0);
    let mut out = Vec::new();
    let mut prev: Option<Sent> = None;
    let mut wrapped = false;
    for i in 0..70_000u32 {
        s.build_voice(t0 + ms(20 * u64::from(i)), &[0; 4], 160, &mut out);
        let p = parse(&out);
        if let Some(q) = prev {
            assert_eq!(p.seq, q.seq.wrapping_add(1));
            assert_eq!(p.ts, q.ts.wrapping_add(160));
            wrapped |= p.seq == 0;
        }
        prev = Some(p);
    }
    assert!(wrapped);
}

/// A packet as `on_rtp` would have returned it from another leg.
fn src(ssrc: u32, seq: u16, timestamp: u32, marker: bool, at: Instant) -> MediaPacket {
    MediaPacket {
        ssrc,
        seq,
        timestamp,
        marker,
        payload_type: 0,
        received_at: at,
    }
}

#[test]
fn prompt_relay_prompt_keeps_seq_and_timestamps_continuous() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(42), t0);
    let mut out = Vec::new();
    let mut sent = Vec::new();
    // Prompt: five frames at 0 … 80 ms.
    for i in 0..5u64 {
        s.build_voice(t0 + ms(20 * i), &[1; 160], 160, &mut out);
        sent.push(parse(&out));
    }
    let p4 = sent[4].clone();
    // Relay from another leg from 100 ms: source seq 1000, 1001, (1002 lost), 1003, 1004.
    let other = 0xAAAA_0001;
    let relayed = [
        (1000u16, 50_000u32, 100u64, true),
        (1001, 50_160, 120, false),
        (1003, 50_480, 160, false),
        (1004, 50_640, 180, false),
    ];
    for (seq, ts, t, marker) in relayed {
        let payload = [seq as u8; 160];
        s.build_relayed(
            t0 + ms(t),
            &src(other, seq, ts, marker, t0 + ms(t)),
            &payload,
            &mut out,
        );
        let p = parse(&out);
        assert_eq!(p.payload, payload);
        assert_eq!(p.pt, 0);
        sent.push(p);
    }
    // First relayed packet: seq + 1; ts = last + 20 ms elapsed (160); marker.
    let r0 = &sent[5];
    assert_eq!(r0.seq, p4.seq.wrapping_add(1));
    assert_eq!(r0.ts, p4.ts.wrapping_add(160));
    assert!(r0.marker);
    // Then the source's own spacing, gap included.
    let offsets: Vec<(u16, u32, bool)> = sent[5..]
        .iter()
        .map(|p| {
            (
                p.seq.wrapping_sub(r0.seq),
                p.ts.wrapping_sub(r0.ts),
                p.marker,
            )
        })
        .collect();
    assert_eq!(
        offsets,
        [
            (0, 0, true),
            (1, 160, false),
            (3, 480, false),
            (4, 640, false)
        ]
    );
    // Back to a prompt at 300 ms: seq follows the last relayed one, ts the 120 ms elapsed.
    let r3 = sent[8].clone();
    for i in 0..3u64 {
        s.build_voice(t0 + ms(300 + 20 * i), &[2; 160], 160, &mut out);
        sent.push(parse(&out));
    }
    assert_eq!(sent[9].seq, r3.seq.wrapping_add(1));
    assert_eq!(sent[9].ts, r3.ts.wrapping_add(960));
    assert!(sent[9].marker);
    assert_eq!(sent[10].ts, sent[9].ts.wrapping_add(160));
    assert!(!sent[10].marker && !sent[11].marker);
    assert_continuous(&sent);
    assert!(sent.iter().all(|p| p.ssrc == 42));
}

#[test]
fn a_new_relay_source_is_a_change() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(42), t0);
    let mut out = Vec::new();
    let mut sent = Vec::new();
    let mut relay = |s: &mut RtpSession, ssrc: u32, seq: u16, ts: u32, t: u64| {
        s.build_relayed(
            t0 + ms(t),
            &src(ssrc, seq, ts, false, t0 + ms(t)),
            &[0; 160],
            &mut out,
        );
        let p = parse(&out);
        sent.push(p.clone());
        p
    };
    let a0 = relay(&mut s, 1, 10, 1_000_000, 0);
    assert!(a0.marker, "the first packet of the stream");
    relay(&mut s, 1, 11, 1_000_160, 20);
    // Customer leg B replaces A at 40 ms (the agent's leg keeps its stream).
    let b0 = relay(&mut s, 2, 60_000, 7, 40);
    assert!(b0.marker);
    assert_eq!(b0.seq, a0.seq.wrapping_add(2));
    assert_eq!(b0.ts, a0.ts.wrapping_add(320));
    let b1 = relay(&mut s, 2, 60_001, 167, 60);
    assert!(!b1.marker);
    assert_eq!(
        (b1.seq.wrapping_sub(b0.seq), b1.ts.wrapping_sub(b0.ts)),
        (1, 160)
    );
    // The same SSRC jumping far in sequence is a restart: a change too.
    let b2 = relay(&mut s, 2, 20_000, 327, 80);
    assert!(b2.marker);
    assert_eq!(b2.seq, b1.seq.wrapping_add(1));
    assert_eq!(b2.ts, b1.ts.wrapping_add(160));
    // And a timestamp jump of more than a minute.
    let b3 = relay(&mut s, 2, 20_001, 327 + 8000 * 3600, 100);
    assert!(b3.marker);
    assert_eq!(b3.ts, b2.ts.wrapping_add(160));
    assert_continuous(&sent);
}

#[test]
fn relayed_late_packets_keep_their_order_but_never_reuse_numbers() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(42), t0);
    let mut out = Vec::new();
    for i in 0..3u64 {
        s.build_voice(t0 + ms(20 * i), &[1; 160], 160, &mut out);
    }
    let prompt_last = parse(&out);
    let mut relay = |s: &mut RtpSession, seq: u16, t: u64| {
        let ts = 160 * u32::from(seq);
        s.build_relayed(
            t0 + ms(t),
            &src(9, seq, ts, false, t0 + ms(t)),
            &[seq as u8; 160],
            &mut out,
        );
        (!out.is_empty()).then(|| parse(&out))
    };
    // The relay starts with 101 because 100 is late; 100 then maps onto the prompt's numbers.
    let first = relay(&mut s, 101, 60).unwrap();
    assert_eq!(first.seq, prompt_last.seq.wrapping_add(1));
    assert_eq!(relay(&mut s, 100, 65), None);
    // 103 before 102: both sent, in arrival order, with their own numbers.
    let p103 = relay(&mut s, 103, 100).unwrap();
    let p102 = relay(&mut s, 102, 101).unwrap();
    assert_eq!(p103.seq, first.seq.wrapping_add(2));
    assert_eq!(p102.seq, first.seq.wrapping_add(1));
    assert_eq!(p102.ts, first.ts.wrapping_add(160));
    // Our next own frame follows the highest, not the latest.
    s.build_voice(t0 + ms(120), &[1; 160], 160, &mut out);
    let next = parse(&out);
    assert_eq!(next.seq, p103.seq.wrapping_add(1));
    assert!(next.ts.wrapping_sub(p103.ts) as i32 >= 160);
    assert_eq!(s.counters().packets_out, 3 + 3 + 1);
}

#[test]
fn relayed_comfort_noise_and_events_get_this_legs_payload_types() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(
        SessionConfig {
            telephone_event: Some(96),
            ..config(5)
        },
        t0,
    );
    let mut out = Vec::new();
    let mut cn = src(3, 1, 0, true, t0);
    cn.payload_type = PT_COMFORT_NOISE;
    s.build_relayed(t0, &cn, &[50], &mut out);
    let cn_out = parse(&out);
    assert_eq!(cn_out.pt, PT_COMFORT_NOISE);
    let mut ev = src(3, 2, 160, true, t0 + ms(20));
    ev.payload_type = TE; // the other leg's telephone-event PT
    s.build_relayed_event(t0 + ms(20), &ev, &[5, 0, 0, 160], &mut out);
    let p = parse(&out);
    assert_eq!(
        (
            p.pt,
            p.seq.wrapping_sub(cn_out.seq),
            p.ts.wrapping_sub(cn_out.ts),
            p.marker
        ),
        (96, 1, 160, true)
    );
    assert_eq!(p.payload, [5, 0, 0, 160]);

    // A leg without telephone-event sends nothing.
    let mut plain = RtpSession::new(SessionConfig::new(CodecKind::Pcma, 6, "x"), t0);
    plain.build_relayed_event(t0, &ev, &[5, 0, 0, 160], &mut out);
    assert!(out.is_empty());
    assert!(plain.build_dtmf(t0, '1', 100).is_empty());
    assert_eq!(plain.counters().packets_out, 0);
}

// ---------------------------------------------------------------------------------------------
// DTMF out

#[test]
fn sent_dtmf_continues_the_stream_and_is_received_as_one_digit() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(77), t0);
    let mut out = Vec::new();
    let mut sent = Vec::new();
    for i in 0..5u64 {
        s.build_voice(t0 + ms(20 * i), &[1; 160], 160, &mut out);
        sent.push(parse(&out));
    }
    let before = sent[4].clone();
    let packets = s.build_dtmf(t0 + ms(100), '9', 100);
    assert_eq!(packets.len(), 5 + 2);
    let offsets: Vec<u64> = packets.iter().map(|(d, _)| d.as_millis() as u64).collect();
    assert_eq!(offsets, [0, 20, 40, 60, 80, 100, 120]);
    let events: Vec<Sent> = packets.iter().map(|(_, b)| parse(b)).collect();
    let start = before.ts.wrapping_add(160);
    for (i, p) in events.iter().enumerate() {
        assert_eq!(p.pt, TE);
        assert_eq!(p.seq, before.seq.wrapping_add(1 + i as u16));
        assert_eq!(p.ts, start, "all packets of an event carry its start");
        assert_eq!(p.marker, i == 0);
    }
    sent.extend(events.iter().cloned());
    // The far end hears exactly one '9' of 100 ms.
    let mut far = RtpSession::new(config(1), t0);
    let digits: Vec<DigitEvent> = packets
        .iter()
        .filter_map(
            |(offset, b)| match far.on_rtp(t0 + ms(100) + *offset, addr(FAR), b) {
                Received::Dtmf(d) => Some(d),
                _ => None,
            },
        )
        .collect();
    assert_eq!(
        digits,
        [DigitEvent {
            digit: '9',
            duration_samples: 800,
            timestamp: start
        }]
    );
    // Audio resumes when the tone ends (100 ms later): right after it in timestamps, marked.
    s.build_voice(t0 + ms(200), &[1; 160], 160, &mut out);
    let after = parse(&out);
    assert_eq!(after.seq, before.seq.wrapping_add(8));
    assert_eq!(after.ts, start.wrapping_add(800));
    assert!(after.marker);
    sent.push(after);
    assert_continuous(&sent);
    let c = s.counters();
    assert_eq!((c.dtmf_out, c.packets_out), (1, 5 + 7 + 1));

    // Refused digits and durations send nothing and consume no sequence number.
    assert!(s.build_dtmf(t0 + ms(300), 'X', 100).is_empty());
    assert!(s.build_dtmf(t0 + ms(300), '1', 3_600_000).is_empty());
    s.build_voice(t0 + ms(220), &[1; 160], 160, &mut out);
    assert_eq!(parse(&out).seq, before.seq.wrapping_add(9));
}

#[test]
fn relayed_digits_reach_the_far_end_once() {
    // Customer → leg A → (relay) → leg B → agent: the events keep their shape.
    let t0 = Instant::now();
    let mut a = RtpSession::new(config(1), t0);
    let mut b = RtpSession::new(config(2), t0);
    let mut agent = RtpSession::new(config(3), t0);
    let customer = addr(FAR);
    let mut out = Vec::new();
    let mut got = Vec::new();
    for (offset, buf, _) in dtmf_packets('#', 4000, 120, 300) {
        let now = t0 + offset;
        match a.on_rtp(now, customer, &buf) {
            Received::DtmfPacket(p, payload) => b.build_relayed_event(now, &p, payload, &mut out),
            Received::Dtmf(d) => {
                got.push(('A', d.digit));
                continue;
            }
            other => panic!("{other:?}"),
        }
        if let Received::Dtmf(d) = agent.on_rtp(now, addr(FAR), &out) {
            got.push(('B', d.digit));
        }
    }
    assert_eq!(got, [('A', '#'), ('B', '#')]);
}

// ---------------------------------------------------------------------------------------------
// RTCP

#[test]
fn rtcp_reports_rr_then_sr_with_cname_on_a_randomised_interval() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(0x5151), t0);
    let first = s.poll_timeout().unwrap();
    let after = first - t0;
    assert!(
        after >= ms(1250) && after < ms(3750),
        "first report at {after:?}"
    );
    assert_eq!(s.poll_rtcp(first - ms(1), SystemTime::now()), None);

    // Nothing sent or received yet: an RR without blocks, and the CNAME.
    let rr = s.poll_rtcp(first, SystemTime::now()).unwrap();
    let packets = rtcp::parse_compound(&rr).unwrap();
    assert_eq!(packets.len(), 2);
    assert!(
        matches!(&packets[0], RtcpPacket::ReceiverReport(r) if r.ssrc == 0x5151 && r.reports.is_empty())
    );
    assert!(matches!(&packets[1], RtcpPacket::SourceDescription(c)
        if c[0].ssrc == 0x5151 && c[0].cname.as_deref() == Some("leg@dialerd.test")));
    assert_eq!(
        s.poll_rtcp(first, SystemTime::now()),
        None,
        "one report per interval"
    );

    // Send 50 frames; the next report is an SR counting them.
    let mut out = Vec::new();
    for i in 0..50u64 {
        s.build_voice(first + ms(20 * i), &[0; 160], 160, &mut out);
    }
    let second = s.poll_timeout().unwrap();
    let gap = second - first;
    assert!(gap >= ms(2500) && gap < ms(7500), "interval {gap:?}");
    let sr = s.poll_rtcp(second, SystemTime::now()).unwrap();
    match &rtcp::parse_compound(&sr).unwrap()[0] {
        RtcpPacket::SenderReport(r) => {
            assert_eq!(r.ssrc, 0x5151);
            assert_eq!(r.info.packet_count, 50);
            assert_eq!(r.info.octet_count, 50 * 160);
        }
        other => panic!("expected an SR, got {other:?}"),
    }
    // Nothing sent since: back to an RR.
    let third = s.poll_timeout().unwrap();
    let rr = s.poll_rtcp(third, SystemTime::now()).unwrap();
    assert!(matches!(
        rtcp::parse_compound(&rr).unwrap()[0],
        RtcpPacket::ReceiverReport(_)
    ));
    assert_eq!(s.counters().rtcp_out, 3);

    // No address to send to: the report is skipped, not queued.
    let mut lost = RtpSession::new(SessionConfig::new(CodecKind::Pcmu, 8, "x"), t0);
    let due = lost.poll_timeout().unwrap();
    assert_eq!(lost.poll_rtcp(due, SystemTime::now()), None);
    assert!(lost.poll_timeout().unwrap() > due);
}

/// A datagram in flight between two sessions.
struct Flight {
    at: Instant,
    to_a: bool,
    rtcp: bool,
    data: Vec<u8>,
}

#[test]
fn round_trip_time_between_two_sessions() {
    // A and B talk over a path with 30 ms one way; both send 20 ms frames and RTCP.
    let t0 = Instant::now();
    let wall0 = SystemTime::now();
    let a_addr = addr("10.0.0.1:20000");
    let b_addr = addr("10.0.0.2:30000");
    let mut a = RtpSession::new(
        SessionConfig {
            remote_rtp: Some(b_addr),
            remote_rtcp: None,
            ..config(0xA)
        },
        t0,
    );
    let mut b = RtpSession::new(
        SessionConfig {
            remote_rtp: Some(a_addr),
            remote_rtcp: None,
            ..config(0xB)
        },
        t0,
    );
    let delay = ms(30);
    let mut wire: VecDeque<Flight> = VecDeque::new();
    let mut out = Vec::new();
    for step in 0..(15_000 / 5) {
        let now = t0 + ms(5 * step);
        let wall = wall0 + ms(5 * step);
        if step % 4 == 0 {
            for (to_a, s) in [(false, &mut a), (true, &mut b)] {
                s.build_voice(now, &[0x7F; 160], 160, &mut out);
                wire.push_back(Flight {
                    at: now + delay,
                    to_a,
                    rtcp: false,
                    data: out.clone(),
                });
            }
        }
        for (to_a, s) in [(false, &mut a), (true, &mut b)] {
            if let Some(data) = s.poll_rtcp(now, wall) {
                wire.push_back(Flight {
                    at: now + delay,
                    to_a,
                    rtcp: true,
                    data,
                });
            }
        }
        while wire.front().is_some_and(|f| f.at <= now) {
            let f = wire.pop_front().unwrap();
            let (s, from) = if f.to_a {
                (&mut a, b_addr)
            } else {
                (&mut b, a_addr)
            };
            if f.rtcp {
                s.on_rtcp(now, SocketAddr::new(from.ip(), from.port() + 1), &f.data);
            } else {
                assert!(is_media(&s.on_rtp(now, from, &f.data)));
            }
        }
    }
    for s in [&a, &b] {
        let rtt = s.round_trip().expect("an RTT after 15 s of reports");
        assert!(
            rtt >= ms(59) && rtt <= ms(61),
            "RTT {rtt:?} on a 2 × 30 ms path"
        );
        let q = s.quality();
        assert_eq!(q.loss_ratio, 0.0);
        assert!(q.jitter_seconds < 0.001, "{q:?}");
        assert!((q.rtt_seconds.unwrap() - 0.060).abs() < 0.001);
        assert!(q.mos > 4.3, "{q:?}");
        let remote = s.remote_quality().unwrap();
        assert_eq!(remote.loss_ratio, 0.0);
        assert_eq!(s.counters().rtcp_dropped, 0);
    }
    // RTCP latched to where the peer's reports come from.
    assert_eq!(a.remote_rtcp(), Some(addr("10.0.0.2:30001")));
    assert_eq!(b.remote_rtcp(), Some(addr("10.0.0.1:20001")));
}

#[test]
fn rtcp_from_a_stranger_does_not_move_our_reports() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(1), t0);
    s.on_rtp(t0, addr(FAR), &voice(FAR_SSRC, 1, 0));
    let stranger = rtcp::build_compound(0x0BAD, None, &[], "evil").unwrap();
    s.on_rtcp(t0, addr("203.0.113.1:666"), &stranger);
    assert_eq!(s.remote_rtcp(), Some(addr("192.0.2.10:4001")));
    let peer = rtcp::build_compound(FAR_SSRC, None, &[], "far").unwrap();
    s.on_rtcp(t0, addr("192.0.2.10:31555"), &peer);
    assert_eq!(s.remote_rtcp(), Some(addr("192.0.2.10:31555")));
    s.on_rtcp(t0, addr("192.0.2.10:31555"), b"\x80\xc8\x00\x09short");
    let c = s.counters();
    assert_eq!((c.rtcp_in, c.rtcp_dropped), (3, 1));
}

// ---------------------------------------------------------------------------------------------
// Dead calls

#[test]
fn dead_after_the_timeout_counted_from_start_or_last_packet() {
    let t0 = Instant::now();
    let cfg = SessionConfig {
        rtp_timeout: Duration::from_secs(30),
        ..config(1)
    };
    let s = RtpSession::new(cfg.clone(), t0);
    assert!(!s.is_dead(t0 + Duration::from_secs(30) - ms(1)));
    assert!(s.is_dead(t0 + Duration::from_secs(30)));

    let mut s = RtpSession::new(cfg.clone(), t0);
    let a = addr(FAR);
    s.on_rtp(t0 + Duration::from_secs(10), a, &voice(FAR_SSRC, 1, 0));
    // Garbage and strangers do not keep a call alive.
    s.on_rtp(t0 + Duration::from_secs(20), a, b"junk");
    s.on_rtp(
        t0 + Duration::from_secs(20),
        addr("203.0.113.1:1"),
        &voice(FAR_SSRC, 2, 160),
    );
    assert!(!s.is_dead(t0 + Duration::from_secs(40) - ms(1)));
    assert!(s.is_dead(t0 + Duration::from_secs(40)));

    // Zero disables the check.
    let s = RtpSession::new(
        SessionConfig {
            rtp_timeout: Duration::ZERO,
            ..cfg
        },
        t0,
    );
    assert!(!s.is_dead(t0 + Duration::from_secs(86_400)));
}

#[test]
fn hold_suspends_dead_call_detection_and_resume_rearms_it() {
    let t0 = Instant::now();
    let secs = Duration::from_secs;
    let mut s = RtpSession::new(config(1), t0);
    let sdp = Some(addr("192.0.2.10:4000"));
    let rtcp = Some(addr("192.0.2.10:4001"));
    s.on_rtp(
        t0 + secs(5),
        addr("192.0.2.10:4000"),
        &voice(FAR_SSRC, 1, 0),
    );
    s.update(sdp, rtcp, true, t0 + secs(10));
    assert!(s.on_hold());
    assert!(!s.is_dead(t0 + secs(600)));
    // While on hold only RTCP wakes the session: the timeout that was due at 35 s never is.
    loop {
        let due = s.poll_timeout().unwrap();
        if due > t0 + secs(100) {
            break;
        }
        assert!(
            s.poll_rtcp(due, SystemTime::now()).is_some(),
            "woken for nothing at {:?}",
            due - t0
        );
    }
    // Resumed at 600 s: dead 30 s after the resume, not 30 s after the last packet.
    s.update(sdp, rtcp, false, t0 + secs(600));
    assert!(!s.is_dead(t0 + secs(630) - ms(1)));
    assert!(s.is_dead(t0 + secs(630)));
    // The dead-call deadline is among the wake-ups again.
    let mut s2 = RtpSession::new(config(1), t0);
    for _ in 0..20 {
        let due = s2.poll_timeout().unwrap();
        if due >= t0 + secs(30) {
            assert_eq!(due, t0 + secs(30));
            return;
        }
        s2.poll_rtcp(due, SystemTime::now());
    }
    panic!("the dead-call timeout never came up in poll_timeout");
}

// ---------------------------------------------------------------------------------------------
// Robustness

/// xorshift32: a fixed pseudo-random sequence for the fuzz-like test.
fn next(state: &mut u32) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    *state
}

#[test]
fn garbage_never_panics() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(1), t0);
    let mut relay_to = RtpSession::new(config(2), t0);
    let from = addr(FAR);
    let mut rng = 0x9E37_79B9u32;
    let mut out = Vec::new();
    let mut datagrams = 0u64;
    let mut feed = |s: &mut RtpSession, relay_to: &mut RtpSession, now: Instant, d: &[u8]| {
        match s.on_rtp(now, from, d) {
            Received::Media(p, payload) => relay_to.build_relayed(now, &p, payload, &mut out),
            Received::DtmfPacket(p, payload) => {
                relay_to.build_relayed_event(now, &p, payload, &mut out)
            }
            Received::Dtmf(_) | Received::Dropped(_) => {}
        }
        s.on_rtcp(now, from, d);
    };

    // Valid packets with every header option, cut at every length.
    let ext = [1u8, 2, 3, 4];
    let full = RtpPacketBuilder::new()
        .payload_type(TE)
        .ssrc(FAR_SSRC)
        .add_csrc(1)
        .add_csrc(2)
        .extension(0xBEDE, &ext)
        .padded(Pad::round_to(8))
        .payload(&[3, 0x8A, 0, 160])
        .build()
        .unwrap();
    let rtcp_full = rtcp::build_compound(
        FAR_SSRC,
        Some(&rtcp::SenderInfo::default()),
        &[rtcp::ReportBlock::default(); 2],
        "cname",
    )
    .unwrap();
    for base in [&full, &voice(FAR_SSRC, 1, 0), &rtcp_full] {
        for len in 0..=base.len() {
            feed(&mut s, &mut relay_to, t0, &base[..len]);
            datagrams += 1;
        }
        // Every single-byte corruption of the header area.
        for pos in 0..base.len().min(24) {
            for v in [0u8, 1, 0x7F, 0x80, 0xBF, 0xFF, next(&mut rng) as u8] {
                let mut bad = base.clone();
                bad[pos] = v;
                feed(&mut s, &mut relay_to, t0, &bad);
                datagrams += 1;
            }
        }
    }
    // Random datagrams, with the version bits often right so that parsing goes deeper.
    for i in 0..30_000u32 {
        let len = (next(&mut rng) % 300) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| next(&mut rng) as u8).collect();
        if let Some(first) = d.first_mut() {
            if i % 2 == 0 {
                *first = (*first & 0x3F) | 0x80;
            }
        }
        if d.len() > 1 && i % 3 == 0 {
            d[1] = (d[1] & 0x80) | [0, TE, 13][(i % 9 / 3) as usize];
        }
        let now = t0 + ms(u64::from(i));
        feed(&mut s, &mut relay_to, now, &d);
        datagrams += 1;
        let _ = s.poll_dtmf(now);
        let _ = s.poll_rtcp(now, SystemTime::now());
        let _ = s.poll_timeout();
        let _ = s.quality();
        let _ = s.remote_quality();
    }
    // Arbitrary header values handed to the builders.
    for _ in 0..2000 {
        let p = MediaPacket {
            ssrc: next(&mut rng) % 4,
            seq: next(&mut rng) as u16,
            timestamp: next(&mut rng),
            marker: next(&mut rng).is_multiple_of(2),
            payload_type: (next(&mut rng) % 128) as u8,
            received_at: t0,
        };
        relay_to.build_relayed(t0, &p, &[0; 3], &mut out);
        relay_to.build_relayed_event(t0, &p, &[0; 3], &mut out);
    }
    let c = s.counters();
    assert_eq!(c.packets_in + c.dropped, datagrams);
    assert!(c.dropped_malformed > 0 && c.packets_in > 0);
    assert_eq!(c.rtcp_in, datagrams);
    // A payload type over 127 in the config builds nothing rather than a corrupt packet.
    let mut bad = RtpSession::new(
        SessionConfig {
            payload_type: 200,
            telephone_event: Some(255),
            ..config(3)
        },
        t0,
    );
    bad.build_voice(t0, &[0; 160], 160, &mut out);
    assert!(out.is_empty());
    assert!(bad.build_dtmf(t0, '1', 100).is_empty());
    assert_eq!(bad.counters().packets_out, 0);
}

#[test]
fn long_cnames_are_cut_to_fit() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(
        SessionConfig {
            cname: "é".repeat(200),
            ..config(1)
        },
        t0,
    );
    let due = s.poll_timeout().unwrap();
    let report = s.poll_rtcp(due, SystemTime::now()).unwrap();
    let cname = rtcp::parse_compound(&report)
        .unwrap()
        .into_iter()
        .find_map(|p| match p {
            RtcpPacket::SourceDescription(c) => c[0].cname.clone(),
            _ => None,
        })
        .unwrap();
    assert_eq!(cname, "é".repeat(127));
}

#[test]
fn dtmf_receiver_deadline_maps_to_instants_across_timestamp_wrap() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(1), t0);
    let a = addr(FAR);
    let start = u32::MAX - 100;
    for (offset, buf, end) in dtmf_packets('3', start, 100, 65_530) {
        if !end {
            s.on_rtp(t0 + offset, a, &buf);
        }
    }
    assert_eq!(s.poll_timeout(), Some(t0 + ms(260)));
    assert_eq!(s.poll_dtmf(t0 + ms(260)).map(|d| d.digit), Some('3'));
    // Sanity: the receiver on its own agrees on the deadline.
    let mut rx = DtmfReceiver::new(8000);
    for (_, buf, end) in dtmf_packets('3', start, 100, 0) {
        if !end {
            let r = RtpReader::new(&buf).unwrap();
            rx.feed(r.timestamp(), r.mark(), r.payload()).unwrap();
        }
    }
    assert_eq!(rx.deadline(), Some(start.wrapping_add(640 + 1600)));
}

#[test]
fn a_hold_we_put_on_pauses_dead_call_detection_whatever_the_sdp_says() {
    let t0 = Instant::now();
    let secs = Duration::from_secs;
    let mut s = RtpSession::new(config(1), t0);
    let sdp = Some(addr("192.0.2.10:4000"));
    let rtcp = Some(addr("192.0.2.10:4001"));
    s.on_rtp(
        t0 + secs(5),
        addr("192.0.2.10:4000"),
        &voice(FAR_SSRC, 1, 0),
    );
    s.set_local_hold(true, t0 + secs(10));
    assert!(s.on_hold());
    assert!(!s.is_dead(t0 + secs(600)));
    // A session refresh (re-INVITE, not on hold) does not end our hold.
    s.update(sdp, rtcp, false, t0 + secs(300));
    assert!(!s.is_dead(t0 + secs(600)));
    s.set_local_hold(false, t0 + secs(600));
    assert!(!s.on_hold());
    assert!(!s.is_dead(t0 + secs(630) - ms(1)));
    assert!(s.is_dead(t0 + secs(630)));
}

#[test]
fn a_relayed_stream_longer_than_half_the_sequence_space_keeps_flowing() {
    // 70,000 packets (23 minutes of 20 ms audio) through one mapping: none may be dropped as
    // "before the mapping's first packet" once the sequence numbers have come round.
    let t0 = Instant::now();
    let mut s = RtpSession::new(config(7), t0);
    let mut out = Vec::new();
    let other = 0xAAAA_0002;
    let (mut seq, mut ts) = (40_000u16, 9_000u32);
    let mut last = None;
    for i in 0..70_000u64 {
        let at = t0 + ms(20 * i);
        s.build_relayed(at, &src(other, seq, ts, i == 0, at), &[1; 160], &mut out);
        assert!(!out.is_empty(), "packet {i} not relayed");
        let p = parse(&out);
        if let Some(prev) = last {
            assert_eq!(p.seq, u16::wrapping_add(prev, 1), "packet {i}");
        }
        last = Some(p.seq);
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(160);
    }
}
