//! RFC 4733 telephone-events (DTMF digits in RTP), sans-IO.
//!
//! The RTP engine parses packet headers and hands this module the payload with the header
//! fields that matter (timestamp, marker); here live the 4-byte payload format, a receiver that
//! turns the packet stream into one [`DigitEvent`] per key press, and a sender that lays out the
//! packets for one digit with the times to send them. No sockets, no clocks: "now" is an RTP
//! timestamp supplied by the caller.

/// Length of one telephone-event payload block.
pub const PAYLOAD_LEN: usize = 4;
/// Number of times the final packet of an event is sent (RFC 4733 §2.5.1.4).
pub const END_PACKET_COPIES: usize = 3;
/// Longest digit the sender will lay out; longer requests are a caller bug.
pub const MAX_DIGIT_MS: u32 = 60_000;
/// Volume the sender puts in packets by default: -10 dBm0, a usual DTMF level.
pub const DEFAULT_VOLUME: u8 = 10;
/// Largest value of the 16-bit duration field; longer events are split into segments.
const MAX_SEGMENT: u32 = 0xFFFF;

/// What can go wrong reading or writing telephone-events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// The payload is shorter than one 4-byte event block.
    #[error("telephone-event payload is {0} bytes, needs {PAYLOAD_LEN}")]
    TooShort(usize),
    /// The character is not one of 0-9, *, #, A-D.
    #[error("{0:?} is not a DTMF digit")]
    UnknownDigit(char),
    /// The packet interval is shorter than one tick of the RTP clock.
    #[error("packet interval is shorter than one RTP clock tick")]
    BadInterval,
    /// The requested digit is longer than [`MAX_DIGIT_MS`].
    #[error("digit of {0} ms is longer than the {MAX_DIGIT_MS} ms limit")]
    TooLong(u32),
}

/// One telephone-event payload block (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code; 0-15 are the DTMF digits.
    pub event: u8,
    /// E bit: this is the final packet of the event.
    pub end: bool,
    /// Power level in -dBm0, 0..=63 (larger is quieter).
    pub volume: u8,
    /// Duration so far in RTP clock units, counted from the packet's timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads the first event block of a payload; bytes after it are ignored (multiple events
    /// per packet come as RFC 2198 redundancy, a different payload type).
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(DtmfError::TooShort(payload.len()));
        };
        Ok(Self {
            event,
            end: flags & 0x80 != 0,
            // Bit 6 is reserved: ignored on receipt.
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// Appends the 4-byte block to `out`; a volume above 63 is written as 63.
    pub fn write(&self, out: &mut Vec<u8>) {
        let end = if self.end { 0x80 } else { 0 };
        let [d0, d1] = self.duration.to_be_bytes();
        out.extend_from_slice(&[self.event, end | self.volume.min(0x3F), d0, d1]);
    }
}

/// The DTMF key for an event code (0-9, `*`, `#`, A-D), or `None` for other events.
pub fn digit_of(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The event code for a DTMF key; letters may be lower case.
pub fn event_of(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// A key press, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigitEvent {
    /// The key: 0-9, `*`, `#`, A-D.
    pub digit: char,
    /// How long it was held, in RTP clock units (the longest duration seen if the end was lost).
    pub duration_samples: u32,
    /// RTP timestamp at which the key went down.
    pub timestamp: u32,
}

/// The event the receiver is following.
#[derive(Debug, Clone, Copy)]
struct Current {
    digit: char,
    event: u8,
    /// Timestamp of the first segment: the start of the event.
    start: u32,
    /// Timestamp of the segment packets now carry (differs from `start` only past 0xFFFF).
    seg_ts: u32,
    /// Length of the finished segments before `seg_ts`.
    base: u32,
    /// Longest duration seen in the current segment (packets may arrive out of order).
    dur: u16,
    /// An end packet arrived.
    ended: bool,
    /// Handed to the caller; later packets of this event are duplicates.
    reported: bool,
}

impl Current {
    fn new(timestamp: u32, ev: TelephoneEvent, digit: char) -> Self {
        Self {
            digit,
            event: ev.event,
            start: timestamp,
            seg_ts: timestamp,
            base: 0,
            dur: ev.duration,
            ended: ev.end,
            reported: false,
        }
    }

    /// RTP time up to which the tone is known to have lasted.
    fn heard_until(&self) -> u32 {
        self.seg_ts.wrapping_add(u32::from(self.dur))
    }

    fn report(&mut self) -> DigitEvent {
        self.reported = true;
        DigitEvent {
            digit: self.digit,
            duration_samples: self.base.wrapping_add(u32::from(self.dur)),
            timestamp: self.start,
        }
    }
}

/// Turns received telephone-event payloads into digits, each reported exactly once.
///
/// Packets of one event share an RTP timestamp. A digit is reported:
/// - when its first end packet arrives (the two redundant end copies and any retransmits of
///   the event are then ignored);
/// - if all its end packets were lost, when a packet of a newer event arrives, or when
///   [`poll`](Self::poll) is called with a time at least the timeout (200 ms of RTP clock)
///   past the end of the longest duration heard.
///
/// Packets older than the current event (by up to 2 s of clock beyond its start) are late
/// arrivals and are ignored; a larger backward jump is taken as a restarted stream. Events
/// longer than the 16-bit duration field (RFC 4733 §2.5.1.3) continue in a new segment with a
/// timestamp 0xFFFF later and no marker; those are summed into one digit. Timestamps compare
/// with wrapping arithmetic. Event codes above 15 (not DTMF) are ignored.
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    cur: Option<Current>,
    /// Silence after the last heard duration that ends an event whose end packets were lost.
    timeout: u32,
    /// How far behind the current event a packet may be and still count as a late arrival.
    stale_window: u32,
}

impl DtmfReceiver {
    /// A receiver for a stream with this RTP clock rate (8000 for telephone-event/8000).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            cur: None,
            timeout: (clock_rate / 5).max(1),
            stale_window: clock_rate.saturating_mul(2),
        }
    }

    /// Feeds one telephone-event packet; returns a digit when one is complete. At most one digit
    /// comes out per call: if a new event arrives already ended while an older one is still
    /// unreported, the older one is returned now and the new one by the next packet or poll.
    pub fn feed(
        &mut self,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<Option<DigitEvent>, DtmfError> {
        let ev = TelephoneEvent::parse(payload)?;
        let Some(digit) = digit_of(ev.event) else {
            return Ok(None);
        };
        let Some(cur) = self.cur.as_mut() else {
            return Ok(self.start(timestamp, ev, digit, None));
        };
        let delta = timestamp.wrapping_sub(cur.seg_ts) as i32;
        if delta == 0 {
            if ev.event != cur.event || cur.reported {
                return Ok(None); // a retransmit, or a broken sender reusing the timestamp
            }
            cur.dur = cur.dur.max(ev.duration);
            cur.ended |= ev.end;
            return Ok(cur.ended.then(|| cur.report()));
        }
        if delta < 0 {
            let span = cur.seg_ts.wrapping_sub(cur.start);
            if delta.unsigned_abs() <= span.saturating_add(self.stale_window) {
                return Ok(None); // late packet of an earlier segment or event
            }
            // Far behind: the sender restarted its timestamps; fall through as a new event.
        } else if !marker
            && ev.event == cur.event
            && !cur.ended
            && !cur.reported
            && u32::from(cur.dur).saturating_add(self.timeout) >= MAX_SEGMENT
            && (delta as u32) <= MAX_SEGMENT.saturating_add(self.timeout)
        {
            // Next segment of a long event: the gap to the new timestamp is the old segment.
            cur.base = cur.base.wrapping_add(delta as u32);
            cur.seg_ts = timestamp;
            cur.dur = ev.duration;
            cur.ended = ev.end;
            return Ok(cur.ended.then(|| cur.report()));
        }
        let unreported = (!cur.reported).then(|| cur.report());
        Ok(self.start(timestamp, ev, digit, unreported))
    }

    /// Begins following a new event; returns `flushed` if there is one, else the new digit if
    /// its first packet is already an end packet.
    fn start(
        &mut self,
        timestamp: u32,
        ev: TelephoneEvent,
        digit: char,
        flushed: Option<DigitEvent>,
    ) -> Option<DigitEvent> {
        let cur = self.cur.insert(Current::new(timestamp, ev, digit));
        if flushed.is_some() {
            return flushed;
        }
        cur.ended.then(|| cur.report())
    }

    /// Reports a digit that is due: ended but held back, or silent past the timeout. `now` is
    /// the current time on the stream's RTP clock (e.g. extrapolated from the last packet).
    pub fn poll(&mut self, now: u32) -> Option<DigitEvent> {
        let timeout = self.timeout;
        let cur = self.cur.as_mut().filter(|c| !c.reported)?;
        let silent = now.wrapping_sub(cur.heard_until()) as i32;
        (cur.ended || silent >= timeout as i32).then(|| cur.report())
    }

    /// RTP time from which [`poll`](Self::poll) reports the pending digit, if there is one; an
    /// ended digit held back by [`feed`](Self::feed) is due from its start.
    pub fn deadline(&self) -> Option<u32> {
        let cur = self.cur.as_ref().filter(|c| !c.reported)?;
        Some(if cur.ended {
            cur.start
        } else {
            cur.heard_until().wrapping_add(self.timeout)
        })
    }

    /// Forgets the current event, e.g. when the far end's SSRC changes.
    pub fn reset(&mut self) {
        self.cur = None;
    }
}

/// One telephone-event RTP packet to send: header fields plus payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtmfPacket {
    /// RTP timestamp: the event's start (or its segment's start, past 0xFFFF).
    pub timestamp: u32,
    /// RTP marker bit: set on the first packet of the event only.
    pub marker: bool,
    /// The 4-byte telephone-event payload.
    pub payload: Vec<u8>,
    /// When to send it, in milliseconds after the start of the digit.
    pub offset_ms: u32,
}

/// Lays out the packets that send one digit (RFC 4733 §2.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfSender {
    clock_rate: u32,
    interval_ms: u32,
    volume: u8,
}

impl DtmfSender {
    /// A sender for an RTP clock rate (8000 for telephone-event/8000) and a packet interval in
    /// milliseconds (usually the audio ptime, 20).
    pub fn new(clock_rate: u32, interval_ms: u32) -> Self {
        Self {
            clock_rate,
            interval_ms,
            volume: DEFAULT_VOLUME,
        }
    }

    /// Sets the volume field (-dBm0, clamped to 63).
    pub fn with_volume(mut self, volume: u8) -> Self {
        self.volume = volume.min(0x3F);
        self
    }

    /// The packets for `digit` held for `duration_ms`, starting at RTP time `start_timestamp`.
    ///
    /// One packet per interval, all with the start timestamp; the first has the marker. The
    /// packet sent at `offset_ms` = k·interval reports the duration up to the end of its
    /// interval, (k+1)·interval, so the last one carries the full duration and the E bit; it is
    /// sent three times in all, one interval apart. A zero duration is sent as one interval.
    /// Past 0xFFFF clock units (8.2 s at 8 kHz) the event continues in segments whose timestamp
    /// advances by 0xFFFF (RFC 4733 §2.5.1.3); each finished segment gets one packet with
    /// duration 0xFFFF. Audio should resume at `start_timestamp` + the duration in clock units.
    pub fn packets(
        &self,
        digit: char,
        start_timestamp: u32,
        duration_ms: u32,
    ) -> Result<Vec<DtmfPacket>, DtmfError> {
        let event = event_of(digit).ok_or(DtmfError::UnknownDigit(digit))?;
        if duration_ms > MAX_DIGIT_MS {
            return Err(DtmfError::TooLong(duration_ms));
        }
        let rate = u64::from(self.clock_rate);
        let step = rate * u64::from(self.interval_ms) / 1000;
        if step == 0 {
            return Err(DtmfError::BadInterval);
        }
        let total = (rate * u64::from(duration_ms) / 1000).max(step);
        let updates = total.div_ceil(step);
        let seg_ts = |seg: u64| start_timestamp.wrapping_add((seg * u64::from(MAX_SEGMENT)) as u32);
        let interval = u64::from(self.interval_ms);

        let mut packets = Vec::with_capacity(updates as usize + END_PACKET_COPIES);
        let mut push = |timestamp, marker, end, duration: u64, offset: u64| {
            let mut payload = Vec::with_capacity(PAYLOAD_LEN);
            TelephoneEvent {
                event,
                end,
                volume: self.volume,
                duration: duration as u16, // callers keep it ≤ 0xFFFF
            }
            .write(&mut payload);
            packets.push(DtmfPacket {
                timestamp,
                marker,
                payload,
                offset_ms: u32::try_from(offset).unwrap_or(u32::MAX),
            });
        };
        let mut seg = 0u64;
        for k in 0..updates {
            let elapsed = ((k + 1) * step).min(total);
            let offset = k * interval;
            // A duration of exactly 0xFFFF still belongs to the segment it fills.
            let this_seg = (elapsed - 1) / u64::from(MAX_SEGMENT);
            while seg < this_seg {
                push(seg_ts(seg), false, false, u64::from(MAX_SEGMENT), offset);
                seg += 1;
            }
            let duration = elapsed - seg * u64::from(MAX_SEGMENT);
            let last = k + 1 == updates;
            push(seg_ts(seg), k == 0, last, duration, offset);
            if last {
                for copy in 1..END_PACKET_COPIES as u64 {
                    push(seg_ts(seg), false, true, duration, offset + copy * interval);
                }
            }
        }
        Ok(packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 8000;

    fn sender() -> DtmfSender {
        DtmfSender::new(RATE, 20)
    }

    /// Feeds packets in order; returns (index of the packet that produced it, digit).
    fn feed_all<'a>(
        rx: &mut DtmfReceiver,
        packets: impl IntoIterator<Item = &'a DtmfPacket>,
    ) -> Vec<(usize, DigitEvent)> {
        packets
            .into_iter()
            .enumerate()
            .filter_map(|(i, p)| {
                rx.feed(p.timestamp, p.marker, &p.payload)
                    .unwrap()
                    .map(|d| (i, d))
            })
            .collect()
    }

    fn digits(found: &[(usize, DigitEvent)]) -> String {
        found.iter().map(|(_, d)| d.digit).collect()
    }

    fn event(p: &DtmfPacket) -> TelephoneEvent {
        TelephoneEvent::parse(&p.payload).unwrap()
    }

    #[test]
    fn payload_layout_and_round_trip() {
        let ev = TelephoneEvent {
            event: 5,
            end: true,
            volume: 10,
            duration: 800,
        };
        let mut out = Vec::new();
        ev.write(&mut out);
        assert_eq!(out, [0x05, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&out).unwrap(), ev);

        for (event, end, volume, duration) in
            [(0, false, 0, 0), (11, true, 63, 0xFFFF), (16, false, 36, 1)]
        {
            let ev = TelephoneEvent {
                event,
                end,
                volume,
                duration,
            };
            let mut out = Vec::new();
            ev.write(&mut out);
            assert_eq!(out.len(), PAYLOAD_LEN);
            assert_eq!(TelephoneEvent::parse(&out).unwrap(), ev);
        }
    }

    #[test]
    fn reserved_bit_ignored_and_volume_clamped() {
        let ev = TelephoneEvent::parse(&[0x0B, 0x80 | 0x40 | 0x07, 0x00, 0xA0, 0xEE]).unwrap();
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 7,
                duration: 160
            }
        );
        let mut out = Vec::new();
        TelephoneEvent {
            event: 1,
            end: false,
            volume: 200,
            duration: 0,
        }
        .write(&mut out);
        assert_eq!(out[1], 63);
    }

    #[test]
    fn short_payload_is_an_error_not_a_panic() {
        for len in 0..PAYLOAD_LEN {
            let payload = vec![1u8; len];
            assert_eq!(
                TelephoneEvent::parse(&payload),
                Err(DtmfError::TooShort(len))
            );
            let mut rx = DtmfReceiver::new(RATE);
            assert_eq!(rx.feed(100, true, &payload), Err(DtmfError::TooShort(len)));
            assert_eq!(rx.deadline(), None, "a bad packet leaves no state");
        }
    }

    #[test]
    fn digit_and_event_codes() {
        let keys = "0123456789*#ABCD";
        for (code, key) in keys.chars().enumerate() {
            assert_eq!(digit_of(code as u8), Some(key));
            assert_eq!(event_of(key), Some(code as u8));
        }
        assert_eq!(event_of('c'), Some(14));
        assert_eq!(digit_of(16), None);
        assert_eq!(digit_of(255), None);
        assert_eq!(event_of('E'), None);
        assert_eq!(event_of(' '), None);
    }

    #[test]
    fn sender_lays_out_updates_and_three_end_packets() {
        let packets = sender().with_volume(12).packets('7', 1000, 100).unwrap();
        assert_eq!(packets.len(), 5 + 2);
        let durations: Vec<u16> = packets.iter().map(|p| event(p).duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        let ends: Vec<bool> = packets.iter().map(|p| event(p).end).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        let offsets: Vec<u32> = packets.iter().map(|p| p.offset_ms).collect();
        assert_eq!(offsets, [0, 20, 40, 60, 80, 100, 120]);
        let markers: Vec<bool> = packets.iter().map(|p| p.marker).collect();
        assert_eq!(markers, [true, false, false, false, false, false, false]);
        for p in &packets {
            assert_eq!(p.timestamp, 1000);
            assert_eq!(event(p).event, 7);
            assert_eq!(event(p).volume, 12);
        }
    }

    #[test]
    fn sender_rounds_odd_and_zero_durations() {
        // 50 ms = 400 units: updates at 160, 320, then the remainder 400.
        let packets = sender().packets('#', 0, 50).unwrap();
        let durations: Vec<u16> = packets.iter().map(|p| event(p).duration).collect();
        assert_eq!(durations, [160, 320, 400, 400, 400]);
        // Zero duration is sent as one interval: one update that is also the end.
        let packets = sender().packets('1', 0, 0).unwrap();
        assert_eq!(packets.len(), 3);
        assert!(packets[0].marker && event(&packets[0]).end);
        assert_eq!(event(&packets[0]).duration, 160);
    }

    #[test]
    fn sender_rejects_bad_requests() {
        assert_eq!(
            sender().packets('X', 0, 100),
            Err(DtmfError::UnknownDigit('X'))
        );
        assert_eq!(
            sender().packets('1', 0, MAX_DIGIT_MS + 1),
            Err(DtmfError::TooLong(MAX_DIGIT_MS + 1))
        );
        assert_eq!(
            DtmfSender::new(RATE, 0).packets('1', 0, 100),
            Err(DtmfError::BadInterval)
        );
    }

    #[test]
    fn sent_digit_is_received_exactly_once_at_the_first_end_packet() {
        let packets = sender().packets('5', 4242, 100).unwrap();
        let mut rx = DtmfReceiver::new(RATE);
        let found = feed_all(&mut rx, &packets);
        assert_eq!(
            found,
            [(
                4,
                DigitEvent {
                    digit: '5',
                    duration_samples: 800,
                    timestamp: 4242
                }
            )]
        );
        assert_eq!(rx.deadline(), None);
        assert_eq!(rx.poll(4242 + 100_000), None);
    }

    #[test]
    fn a_sequence_of_digits_including_repeats() {
        let mut rx = DtmfReceiver::new(RATE);
        let mut packets = Vec::new();
        let mut ts = 10_000u32;
        for key in "1#55*D0".chars() {
            packets.extend(sender().packets(key, ts, 120).unwrap());
            ts += 8000 / 4; // 120 ms tone + 130 ms gap
        }
        let found = feed_all(&mut rx, &packets);
        assert_eq!(digits(&found), "1#55*D0");
        assert!(found.iter().all(|(_, d)| d.duration_samples == 960));
    }

    #[test]
    fn duplicated_packets_give_one_digit() {
        let packets = sender().packets('9', 0, 100).unwrap();
        let doubled: Vec<&DtmfPacket> = packets.iter().flat_map(|p| [p, p]).collect();
        let mut rx = DtmfReceiver::new(RATE);
        let found = feed_all(&mut rx, doubled);
        assert_eq!(digits(&found), "9");
        // The whole event retransmitted later still gives nothing new.
        assert!(feed_all(&mut rx, &packets).is_empty());
    }

    #[test]
    fn reordered_packets_give_one_digit_with_the_full_duration() {
        let packets = sender().packets('3', 500, 100).unwrap();
        let mut rx = DtmfReceiver::new(RATE);
        // Reversed: an end packet arrives first and carries the whole duration.
        let found = feed_all(&mut rx, packets.iter().rev());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 0);
        assert_eq!(found[0].1.duration_samples, 800);

        // Late updates of an older event after a newer one began are ignored.
        let mut rx = DtmfReceiver::new(RATE);
        let first = sender().packets('3', 500, 100).unwrap();
        let second = sender().packets('4', 3000, 100).unwrap();
        let order = [
            &first[0], &first[1], &first[4], &second[0], &first[2], &first[5],
        ];
        let found = feed_all(&mut rx, order);
        assert_eq!(digits(&found), "3");
        let found = feed_all(&mut rx, &second);
        assert_eq!(digits(&found), "4");
    }

    #[test]
    fn lost_end_is_reported_when_the_next_event_starts() {
        let first = sender().packets('2', 0, 100).unwrap();
        let second = sender().packets('8', 2000, 100).unwrap();
        let mut rx = DtmfReceiver::new(RATE);
        // All three end packets of the first digit are lost.
        assert!(feed_all(&mut rx, first.iter().filter(|p| !event(p).end)).is_empty());
        let found = feed_all(&mut rx, &second);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0],
            (
                0,
                DigitEvent {
                    digit: '2',
                    duration_samples: 640, // longest update heard
                    timestamp: 0
                }
            )
        );
        assert_eq!(found[1].0, 4);
        assert_eq!(found[1].1.digit, '8');
    }

    #[test]
    fn lost_end_is_reported_by_poll_after_the_timeout() {
        let packets = sender().packets('A', 70_000, 100).unwrap();
        let mut rx = DtmfReceiver::new(RATE);
        assert!(feed_all(&mut rx, packets.iter().filter(|p| !event(p).end)).is_empty());
        // Heard until 70_000 + 640; timeout is 200 ms = 1600 units.
        let due = 70_000 + 640 + 1600;
        assert_eq!(rx.deadline(), Some(due));
        assert_eq!(rx.poll(due - 1), None);
        assert_eq!(
            rx.poll(70_000),
            None,
            "a time before the event is not a timeout"
        );
        let got = rx.poll(due).unwrap();
        assert_eq!(
            (got.digit, got.duration_samples, got.timestamp),
            ('A', 640, 70_000)
        );
        assert_eq!(rx.poll(due + 1), None);
        assert_eq!(rx.deadline(), None);
        // The end packets turning up late change nothing.
        assert!(feed_all(&mut rx, &packets).is_empty());
    }

    #[test]
    fn an_already_ended_event_behind_a_lost_end_comes_out_next() {
        let first = sender().packets('1', 0, 100).unwrap();
        let second = sender().packets('2', 2000, 100).unwrap();
        let mut rx = DtmfReceiver::new(RATE);
        // Updates of the first digit only; of the second digit only its end packets.
        feed_all(&mut rx, &first[..3]);
        let got = rx.feed(2000, false, &second[4].payload).unwrap().unwrap();
        assert_eq!(got.digit, '1');
        // Due at once: poll hands it over; the remaining end copies are duplicates.
        assert_eq!(rx.deadline(), Some(2000));
        let got = rx.poll(2000).unwrap();
        assert_eq!((got.digit, got.duration_samples), ('2', 800));
        assert!(feed_all(&mut rx, &second[5..]).is_empty());

        // Same situation, but the next end copy arrives before any poll.
        let mut rx = DtmfReceiver::new(RATE);
        feed_all(&mut rx, &first[..3]);
        let found = feed_all(&mut rx, &second[4..]);
        assert_eq!(digits(&found), "12");
        assert_eq!(found[1].0, 1);
    }

    #[test]
    fn timestamps_wrap_around() {
        let start = u32::MAX - 300;
        let mut rx = DtmfReceiver::new(RATE);
        let mut packets = sender().packets('6', start, 100).unwrap();
        let next_start = start.wrapping_add(2000);
        assert!(next_start < start);
        packets.extend(sender().packets('7', next_start, 100).unwrap());
        let found = feed_all(&mut rx, &packets);
        assert_eq!(digits(&found), "67");
        assert_eq!(found[0].1.timestamp, start);
        assert_eq!(found[1].1.timestamp, next_start);
        // A late packet of the first digit, now "numerically larger", is still old.
        assert_eq!(rx.feed(start, true, &packets[0].payload).unwrap(), None);

        // Timeout across the wrap.
        let mut rx = DtmfReceiver::new(RATE);
        let updates = sender().packets('6', start, 100).unwrap();
        feed_all(&mut rx, updates.iter().filter(|p| !event(p).end));
        let due = start.wrapping_add(640 + 1600);
        assert_eq!(rx.deadline(), Some(due));
        assert_eq!(rx.poll(due.wrapping_sub(1)), None);
        assert_eq!(rx.poll(due).map(|d| d.digit), Some('6'));
    }

    #[test]
    fn long_event_is_split_into_segments_and_summed_back() {
        // 10 s = 80_000 units: segments at start and start + 0xFFFF.
        let start = u32::MAX - 1000; // and wrap inside it
        let packets = sender().packets('0', start, 10_000).unwrap();
        assert!(packets[0].marker);
        assert!(packets[1..].iter().all(|p| !p.marker));
        let seg2 = start.wrapping_add(0xFFFF);
        let closing: Vec<&DtmfPacket> = packets
            .iter()
            .filter(|p| p.timestamp == start && event(p).duration == 0xFFFF)
            .collect();
        assert_eq!(closing.len(), 1, "the first segment is closed once");
        assert!(!event(closing[0]).end);
        let tail: Vec<&DtmfPacket> = packets.iter().filter(|p| p.timestamp == seg2).collect();
        assert!(tail
            .iter()
            .all(|p| u32::from(event(p).duration) <= 80_000 - 0xFFFF));
        let ends: Vec<&&DtmfPacket> = tail.iter().filter(|p| event(p).end).collect();
        assert_eq!(ends.len(), 3);
        assert_eq!(event(ends[0]).duration as u32, 80_000 - 0xFFFF);
        assert_eq!(packets.len(), 500 + 1 + 2);

        let mut rx = DtmfReceiver::new(RATE);
        let found = feed_all(&mut rx, &packets);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1.duration_samples, 80_000);
        assert_eq!(found[0].1.timestamp, start);

        // Losing the segment-closing packet does not split the digit either.
        let mut rx = DtmfReceiver::new(RATE);
        let found = feed_all(
            &mut rx,
            packets.iter().filter(|p| !std::ptr::eq(*p, closing[0])),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1.duration_samples, 80_000);
    }

    #[test]
    fn other_events_are_ignored() {
        let mut rx = DtmfReceiver::new(RATE);
        let mut flash = Vec::new();
        TelephoneEvent {
            event: 16,
            end: true,
            volume: 10,
            duration: 800,
        }
        .write(&mut flash);
        assert_eq!(rx.feed(0, true, &flash).unwrap(), None);
        assert_eq!(rx.deadline(), None);
    }

    #[test]
    fn a_restarted_stream_is_followed() {
        let mut rx = DtmfReceiver::new(RATE);
        let found = feed_all(&mut rx, &sender().packets('1', 1_000_000, 100).unwrap());
        assert_eq!(digits(&found), "1");
        // Slightly behind: a late packet, ignored. Far behind: a new timestamp base.
        let near = sender().packets('2', 1_000_000 - 8000, 100).unwrap();
        assert!(feed_all(&mut rx, &near).is_empty());
        let far = sender().packets('3', 5000, 100).unwrap();
        assert_eq!(digits(&feed_all(&mut rx, &far)), "3");
        rx.reset();
        assert_eq!(digits(&feed_all(&mut rx, &near)), "2");
    }
}
