use super::*;

const N: usize = 160;

/// Packet `i` of a stream starting at timestamp `ts0`: 160 samples valued by index, never 0.
fn packet(i: u32, ts0: u32) -> (u16, u32, Vec<i16>) {
    let samples = (0..N).map(|k| (1 + i as usize * N + k) as i16).collect();
    (i as u16, ts0.wrapping_add(i * N as u32), samples)
}

fn push(jb: &mut JitterBuffer, i: u32, ts0: u32) {
    let (seq, ts, samples) = packet(i, ts0);
    jb.push(seq, ts, &samples);
}

fn pop_all(jb: &mut JitterBuffer) -> Vec<Frame> {
    std::iter::from_fn(|| jb.pop_ready()).collect()
}

fn pcm(frames: &[Frame]) -> Vec<i16> {
    frames
        .iter()
        .flat_map(|f| f.samples.iter().copied())
        .collect()
}

fn expected(range: impl Iterator<Item = u32>, ts0: u32) -> Vec<i16> {
    range.flat_map(|i| packet(i, ts0).2).collect()
}

#[test]
fn in_order_waits_for_depth_then_passes_through() {
    let mut jb = JitterBuffer::new(3);
    push(&mut jb, 0, 1000);
    push(&mut jb, 1, 1000);
    assert_eq!(jb.pop_ready(), None, "still filling");
    push(&mut jb, 2, 1000);
    let first = pop_all(&mut jb);
    assert_eq!(first.len(), 3);
    assert!(first[0].new_stream && !first[1].new_stream);
    assert_eq!(first[0].timestamp, 1000);
    assert_eq!(first[2].timestamp, 1000 + 2 * N as u32);
    // After the start, a packet that continues the output is released at once.
    push(&mut jb, 3, 1000);
    let more = pop_all(&mut jb);
    assert_eq!(more.len(), 1);
    let all: Vec<_> = first.into_iter().chain(more).collect();
    assert!(all.iter().all(|f| f.kind == FrameKind::Audio));
    assert_eq!(pcm(&all), expected(0..4, 1000));
}

#[test]
fn reordering_within_depth_is_undone() {
    let mut jb = JitterBuffer::new(3);
    let mut out = Vec::new();
    for i in [1, 0, 2, 3, 5, 4, 6, 8, 7, 9] {
        push(&mut jb, i, 50);
        out.extend(pop_all(&mut jb));
    }
    out.extend(jb.drain());
    assert!(out.iter().all(|f| f.kind == FrameKind::Audio));
    assert_eq!(pcm(&out), expected(0..10, 50));
    assert_eq!(jb.stats().late, 0);
}

#[test]
fn lost_packet_becomes_silence_of_its_length() {
    let mut jb = JitterBuffer::new(3);
    let mut out = Vec::new();
    for i in (0..10).filter(|&i| i != 4) {
        push(&mut jb, i, 0);
        out.extend(pop_all(&mut jb));
    }
    out.extend(jb.drain());
    let gaps: Vec<_> = out.iter().filter(|f| f.kind == FrameKind::Gap).collect();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].timestamp, 4 * N as u32);
    assert_eq!(gaps[0].samples, vec![0; N]);
    let pcm = pcm(&out);
    assert_eq!(pcm.len(), 10 * N);
    assert_eq!(&pcm[..4 * N], &expected(0..4, 0)[..]);
    assert_eq!(&pcm[5 * N..], &expected(5..10, 0)[..]);
    assert_eq!(jb.stats().filled_samples, N as u64);
}

#[test]
fn gap_waits_for_depth_so_a_late_packet_still_fits() {
    let mut jb = JitterBuffer::new(3);
    for i in 0..3 {
        push(&mut jb, i, 0);
    }
    assert_eq!(pop_all(&mut jb).len(), 3);
    push(&mut jb, 4, 0);
    push(&mut jb, 5, 0);
    assert_eq!(jb.pop_ready(), None, "2 held < depth: wait for packet 3");
    push(&mut jb, 3, 0);
    let out = pop_all(&mut jb);
    assert_eq!(pcm(&out), expected(3..6, 0));
}

#[test]
fn late_and_duplicate_packets_are_dropped() {
    let mut jb = JitterBuffer::new(2);
    let mut out = Vec::new();
    for i in [0, 1, 2, 2, 0, 3, 1, 4] {
        push(&mut jb, i, 0);
        out.extend(pop_all(&mut jb));
    }
    out.extend(jb.drain());
    assert_eq!(pcm(&out), expected(0..5, 0));
    let stats = jb.stats();
    assert_eq!(stats.late + stats.duplicates, 3);
    assert_eq!(stats.pushed, 8);
}

#[test]
fn overlapping_packet_is_trimmed() {
    let mut jb = JitterBuffer::new(1);
    jb.push(0, 0, &[1; 160]);
    jb.push(1, 100, &[2; 160]); // overlaps the first by 60 samples
    let out = pop_all(&mut jb);
    let pcm = pcm(&out);
    assert_eq!(pcm.len(), 260);
    assert!(pcm[..160].iter().all(|&s| s == 1));
    assert!(pcm[160..].iter().all(|&s| s == 2));
}

#[test]
fn timestamp_and_sequence_wrap_are_seamless() {
    let ts0 = u32::MAX - 3 * N as u32 + 7;
    let mut jb = JitterBuffer::new(3);
    let mut out = Vec::new();
    for i in 0..10 {
        let (_, ts, samples) = packet(i, ts0);
        jb.push(65_530u16.wrapping_add(i as u16), ts, &samples);
        out.extend(pop_all(&mut jb));
    }
    out.extend(jb.drain());
    assert!(out.iter().all(|f| f.kind == FrameKind::Audio));
    assert_eq!(pcm(&out), expected(0..10, ts0));
    assert_eq!(
        out.last().unwrap().timestamp,
        ts0.wrapping_add(9 * N as u32)
    );
}

#[test]
fn short_timestamp_jump_is_filled_with_silence() {
    // 2 s without packets (silence suppression): 16,000 samples of silence.
    let mut jb = JitterBuffer::new(2);
    for i in 0..3 {
        push(&mut jb, i, 0);
    }
    let mut out = pop_all(&mut jb);
    jb.push(3, 3 * N as u32 + 16_000, &[9; N]);
    jb.push(4, 4 * N as u32 + 16_000, &[9; N]);
    out.extend(pop_all(&mut jb));
    assert_eq!(pcm(&out).len(), 5 * N + 16_000);
    assert_eq!(jb.stats().filled_samples, 16_000);
    assert_eq!(jb.stats().resyncs, 0);
}

#[test]
fn jump_over_ten_seconds_is_a_new_stream_not_silence() {
    let mut jb = JitterBuffer::new(2);
    let mut out = Vec::new();
    for i in 0..4 {
        push(&mut jb, i, 0);
        out.extend(pop_all(&mut jb));
    }
    // The far end restarts with new random sequence and timestamp.
    for i in 0..4 {
        let (_, ts, samples) = packet(i, 3_000_000_000);
        jb.push(20_000 + i as u16, ts, &samples);
        out.extend(pop_all(&mut jb));
    }
    out.extend(jb.drain());
    assert_eq!(jb.stats().resyncs, 1);
    assert_eq!(jb.stats().filled_samples, 0);
    let mut want = expected(0..4, 0);
    want.extend(expected(0..4, 3_000_000_000));
    assert_eq!(pcm(&out), want);
    let starts: Vec<_> = out
        .iter()
        .filter(|f| f.new_stream)
        .map(|f| f.timestamp)
        .collect();
    assert_eq!(starts, vec![0, 3_000_000_000]);
}

#[test]
fn a_single_far_packet_is_a_stray() {
    let mut jb = JitterBuffer::new(2);
    let mut out = Vec::new();
    for i in 0..3 {
        push(&mut jb, i, 0);
        out.extend(pop_all(&mut jb));
    }
    jb.push(3, 2_000_000_000, &[5; N]);
    for i in 3..6 {
        push(&mut jb, i, 0);
        out.extend(pop_all(&mut jb));
    }
    out.extend(jb.drain());
    assert_eq!(pcm(&out), expected(0..6, 0));
    assert_eq!(jb.stats().strays, 1);
    assert_eq!(jb.stats().resyncs, 0);
}

#[test]
fn drain_flushes_everything_in_order() {
    let mut jb = JitterBuffer::new(10);
    for i in [2, 0, 3] {
        push(&mut jb, i, 0);
    }
    assert_eq!(jb.pop_ready(), None);
    let out = jb.drain();
    assert_eq!(out.len(), 4);
    assert_eq!(out[1].kind, FrameKind::Gap);
    assert_eq!(jb.held(), 0);
    assert!(jb.drain().is_empty());
}

/// A new stream while the old one still waits on a gap: the old tail (gap filled) comes out,
/// then the new stream. This once looped for ever, re-queuing the same frame.
#[test]
fn a_new_stream_while_a_gap_is_held_releases_the_old_tail_and_returns() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut jb = JitterBuffer::new(3);
        let mut out = Vec::new();
        for i in 0..3 {
            push(&mut jb, i, 0);
            out.extend(pop_all(&mut jb));
        }
        // Packet 3 is lost: 4 waits behind the gap.
        push(&mut jb, 4, 0);
        out.extend(pop_all(&mut jb));
        for i in 0..2 {
            let (_, ts, samples) = packet(i, 3_000_000_000);
            jb.push(20_000 + i as u16, ts, &samples);
            out.extend(pop_all(&mut jb));
        }
        out.extend(jb.drain());
        let _ = tx.send((out, jb.stats()));
    });
    let (out, stats) = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the jitter buffer did not return");
    assert_eq!(stats.resyncs, 1);
    let mut want = expected(0..3, 0);
    want.extend(std::iter::repeat_n(0, N));
    want.extend(expected(4..5, 0));
    want.extend(expected(0..2, 3_000_000_000));
    assert_eq!(pcm(&out), want);
}
