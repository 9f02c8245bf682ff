use super::*;

const N: usize = 160;

/// A tone that is never exactly 0 at a sample, so silence is told apart from audio.
fn tone(freq: f64, amp: f64, len: usize) -> Vec<i16> {
    (0..len)
        .map(|n| {
            let x = (amp * (2.0 * std::f64::consts::PI * freq * (n as f64 + 0.25) / 8000.0).sin())
                .round() as i16;
            if x == 0 {
                1
            } else {
                x
            }
        })
        .collect()
}

/// A side's stream: packet `i` is samples [i*N, (i+1)*N) of `pcm`.
struct Stream {
    pcm: Vec<i16>,
    seq0: u16,
    ts0: u32,
}

impl Stream {
    fn packet(&self, i: usize) -> (u16, u32, &[i16]) {
        (
            self.seq0.wrapping_add(i as u16),
            self.ts0.wrapping_add((i * N) as u32),
            &self.pcm[i * N..(i + 1) * N],
        )
    }
}

fn customer_stream(packets: usize) -> Stream {
    Stream {
        pcm: tone(440.0, 8000.0, packets * N),
        seq0: 65_500, // sequence numbers wrap during the call
        ts0: 12_345,
    }
}

fn agent_stream(packets: usize) -> Stream {
    Stream {
        pcm: tone(1000.0, 6000.0, packets * N),
        seq0: 7,
        ts0: u32::MAX - 1000, // timestamps wrap during the call
    }
}

fn push_c(rec: &mut Recorder, s: &Stream, i: usize) {
    let (seq, ts, pcm) = s.packet(i);
    rec.push_customer(seq, ts, pcm).unwrap();
}

fn push_a(rec: &mut Recorder, s: &Stream, i: usize) {
    let (seq, ts, pcm) = s.packet(i);
    rec.push_agent(seq, ts, pcm).unwrap();
}

/// Reads a recording back: (left, right), after checking the format.
fn read(path: &Path) -> (Vec<i16>, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    assert_eq!(spec.channels, 2);
    assert_eq!(spec.sample_rate, 8000);
    assert_eq!(spec.bits_per_sample, 16);
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    let all: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
    assert_eq!(all.len() % 2, 0);
    (
        all.iter().step_by(2).copied().collect(),
        all.iter().skip(1).step_by(2).copied().collect(),
    )
}

#[test]
fn stereo_tones_with_loss_and_reordering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("2024/06/01/call-1.wav");
    let mut rec = Recorder::create(&path).unwrap();
    let (cust, agent) = (customer_stream(50), agent_stream(50));
    // Arrival order: customer loses packet 10 and gets 30/31 swapped; agent gets 20/21 swapped.
    let swap = |i: usize, a: usize| match i {
        _ if i == a => a + 1,
        _ if i == a + 1 => a,
        _ => i,
    };
    for i in 0..50 {
        let c = swap(i, 30);
        if c != 10 {
            push_c(&mut rec, &cust, c);
        }
        push_a(&mut rec, &agent, swap(i, 20));
    }
    let info = rec.finish().unwrap();
    assert_eq!(info.path, path);
    assert_eq!(info.samples, 50 * N as u64);
    assert!((info.duration_seconds - 1.0).abs() < 1e-9);

    let (left, right) = read(&path);
    assert_eq!(left.len(), 50 * N);
    assert_eq!(
        right, agent.pcm,
        "agent channel is the agent tone, in order"
    );
    let gap = 10 * N..11 * N;
    assert!(
        left[gap.clone()].iter().all(|&s| s == 0),
        "lost packet is silence"
    );
    let mut want = cust.pcm.clone();
    want[gap].fill(0);
    assert_eq!(
        left, want,
        "customer channel is the customer tone, in order"
    );
}

#[test]
fn late_starting_side_is_placed_by_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.wav");
    let mut rec = Recorder::create(&path).unwrap();
    let (cust, agent) = (customer_stream(50), agent_stream(100));
    // The agent talks alone for 1 s, then the customer answers.
    for i in 0..50 {
        push_a(&mut rec, &agent, i);
    }
    assert!(
        rec.samples_written() > 0,
        "a silent side does not stall the file"
    );
    for i in 0..50 {
        push_c(&mut rec, &cust, i);
        push_a(&mut rec, &agent, 50 + i);
    }
    rec.finish().unwrap();

    let (left, right) = read(&path);
    assert_eq!(right, agent.pcm);
    let start = left.iter().position(|&s| s != 0).unwrap();
    assert!(
        (8000 - 2 * N..=8000 + 2 * N).contains(&start),
        "customer starts at {start}, arrived at 8000"
    );
    assert_eq!(&left[start..start + 50 * N], &cust.pcm[..]);
    assert!(left[start + 50 * N..].iter().all(|&s| s == 0));
}

#[test]
fn pause_with_running_timestamps_is_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pause.wav");
    let mut rec = Recorder::create(&path).unwrap();
    let (cust, agent) = (customer_stream(100), agent_stream(100));
    // The customer sends nothing for packets 20..70 (1 s) but its timestamps run on.
    for i in 0..100 {
        if !(20..70).contains(&i) {
            push_c(&mut rec, &cust, i);
        }
        push_a(&mut rec, &agent, i);
    }
    rec.finish().unwrap();

    let (left, right) = read(&path);
    assert_eq!(right, agent.pcm);
    let mut want = cust.pcm.clone();
    want[20 * N..70 * N].fill(0);
    assert_eq!(left.len(), want.len());
    assert_eq!(left, want, "the customer resumes exactly in time");
}

#[test]
fn drop_without_finish_leaves_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped.wav");
    let (cust, agent) = (customer_stream(3), agent_stream(3));
    {
        let mut rec = Recorder::create(&path).unwrap();
        // Fewer packets than the jitter depth: all still held when dropped.
        for i in 0..3 {
            push_c(&mut rec, &cust, i);
            push_a(&mut rec, &agent, i);
        }
        assert_eq!(rec.samples_written(), 0);
    }
    let (left, right) = read(&path);
    assert_eq!(left, cust.pcm);
    assert_eq!(right, agent.pcm);
}

#[test]
fn create_fails_cleanly_when_the_directory_cannot_be_made() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Recorder::create(&file.join("sub/call.wav")).unwrap_err();
    assert!(matches!(err, RecordError::CreateDir { .. }), "{err}");
}
