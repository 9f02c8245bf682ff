use super::*;

fn music() -> Arc<[i16]> {
    (1..=400).map(|n| n as i16).collect::<Vec<_>>().into()
}

#[test]
fn a_plain_bridge_forwards_both_ways_and_needs_no_ticks() {
    let b = Bridge::new(Some(music()));
    assert!(b.forwards(Side::A));
    assert!(b.forwards(Side::B));
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn a_muted_side_is_not_forwarded_and_the_other_hears_silence() {
    let t0 = Instant::now();
    let mut b = Bridge::new(Some(music()));
    assert_eq!(
        b.apply(
            BridgeCommand::Mute {
                side: Side::B,
                on: true
            },
            t0
        ),
        None
    );
    assert!(!b.forwards(Side::B));
    assert!(b.forwards(Side::A), "the muted side still hears the other");
    assert_eq!(b.fill(Side::A), Fill::Silence);
    assert_eq!(b.poll_timeout(), Some(t0));
    let frames = b.on_timeout(t0);
    assert_eq!(frames[0], Some([0; FRAME_SAMPLES]));
    assert_eq!(frames[1], None);
    assert_eq!(b.poll_timeout(), Some(t0 + TICK));
    b.apply(
        BridgeCommand::Mute {
            side: Side::B,
            on: false,
        },
        t0 + TICK,
    );
    assert!(b.forwards(Side::B));
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn a_held_side_hears_the_music_continuing_after_a_resume() {
    let t0 = Instant::now();
    let mut b = Bridge::new(Some(music()));
    assert_eq!(
        b.apply(
            BridgeCommand::Hold {
                side: Side::A,
                on: true
            },
            t0
        ),
        Some((Side::A, true))
    );
    assert!(!b.forwards(Side::A) && !b.forwards(Side::B));
    assert_eq!(b.fill(Side::A), Fill::Music);
    assert_eq!(b.fill(Side::B), Fill::Silence);
    let [a, bb] = b.on_timeout(t0);
    let a = a.unwrap();
    assert_eq!(a[0], 1);
    assert_eq!(a[159], 160);
    assert_eq!(bb, Some([0; FRAME_SAMPLES]));
    assert_eq!(
        b.apply(
            BridgeCommand::Hold {
                side: Side::A,
                on: false
            },
            t0 + TICK
        ),
        Some((Side::A, false))
    );
    assert!(b.forwards(Side::A) && b.forwards(Side::B));
    b.apply(
        BridgeCommand::Hold {
            side: Side::A,
            on: true,
        },
        t0 + 2 * TICK,
    );
    let [a, _] = b.on_timeout(t0 + 2 * TICK);
    assert_eq!(a.unwrap()[0], 161, "the music goes on where it stopped");
    // It loops: 400 samples = 2.5 frames.
    let [a, _] = b.on_timeout(t0 + 3 * TICK);
    let a = a.unwrap();
    assert_eq!(a[79], 400);
    assert_eq!(a[80], 1);
}

#[test]
fn a_late_tick_does_not_burst() {
    let t0 = Instant::now();
    let mut b = Bridge::new(None);
    b.apply(
        BridgeCommand::Hold {
            side: Side::B,
            on: true,
        },
        t0,
    );
    let [_, m] = b.on_timeout(t0);
    assert_eq!(m, Some([0; FRAME_SAMPLES]), "no music: silence");
    assert_eq!(b.on_timeout(t0 + TICK / 2), [None, None], "not yet due");
    let late = t0 + Duration::from_secs(1);
    assert!(b.on_timeout(late)[1].is_some());
    assert_eq!(b.poll_timeout(), Some(late + TICK));
}

#[test]
fn unbridge_changes_nothing_here() {
    let t0 = Instant::now();
    let mut b = Bridge::new(None);
    assert_eq!(b.apply(BridgeCommand::Unbridge, t0), None);
    assert!(b.forwards(Side::A) && b.forwards(Side::B));
}
