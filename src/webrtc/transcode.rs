//! The Opus boundary of a browser leg, sans-IO: Opus from the browser (RFC 7587, 48 kHz RTP
//! clock) is decoded by libopus straight to 8 kHz and encoded G.711 for the ordinary leg; the
//! leg's G.711 is decoded and encoded Opus (8 kHz input, the leg's 20 ms frames) for the
//! browser. RFC 4733 events cross with their timestamps and durations rescaled (48000 ↔ 8000).
//! Sequence numbers and markers pass through, so each side sees one continuous stream.
//!
//! Opus packets lost on the way from the browser are concealed: the last frame before a packet
//! that arrives after a gap is rebuilt from that packet's in-band FEC (we answer
//! `useinbandfec=1`; browsers then carry a coarse copy of the previous frame), earlier ones by
//! libopus's loss concealment, so the customer hears the voice carried over a lost packet
//! instead of a click of silence. The leg gets those frames as the packets that were lost.

use super::offer::{Choice, Header};
use crate::media::codec::g711;
use crate::media::codec::CodecKind;
use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Channels, SampleRate};

/// The Opus clock over the G.711 clock.
const RATIO: u32 = 6;
/// Samples at 8 kHz of the longest Opus packet (120 ms).
const MAX_SAMPLES: usize = 960;
/// Room for one encoded Opus packet (RFC 6716's largest frame).
const MAX_PACKET: usize = 1276;
/// The encoder's complexity (0–10; libopus defaults to 10): 5, as browsers on phones use,
/// costs a third less CPU per leg and is ample for narrowband telephone audio.
const COMPLEXITY: u8 = 5;
/// Frame sizes (samples at 8 kHz) Opus encodes: 2.5 to 60 ms.
const FRAME_SIZES: [usize; 6] = [20, 40, 80, 160, 320, 480];
/// Most lost packets in a row that are concealed: libopus fades its concealment to silence
/// within about 100 ms, and a longer gap is the leg's jitter buffer's to handle.
const MAX_CONCEALED: u16 = 5;

/// Maps a browser's 48 kHz timestamps onto a running 8 kHz clock: by differences, so the
/// 48 kHz counter wrapping (every 24.8 hours) leaves no jump.
#[derive(Debug, Default)]
struct Downscale {
    last: Option<(u32, u32)>,
}

impl Downscale {
    fn map(&mut self, ts: u32) -> u32 {
        let Some((last_in, last_out)) = self.last else {
            let out = ts / RATIO;
            self.last = Some((ts, out));
            return out;
        };
        let delta = ts.wrapping_sub(last_in) as i32;
        let out = last_out.wrapping_add_signed(delta / RATIO as i32);
        if delta >= 0 {
            self.last = Some((ts, out));
        }
        out
    }
}

/// One browser leg's Opus encoder and decoder, and its timestamp mapping.
pub struct Transcoder {
    choice: Choice,
    decoder: Decoder,
    encoder: Encoder,
    pcm: Vec<i16>,
    down: Downscale,
    /// Sequence number and (48 kHz) timestamp of the newest Opus packet from the browser.
    newest: Option<(u16, u32)>,
}

impl Transcoder {
    /// An Opus boundary for `choice` (Opus in the browser, `choice.leg` on the leg).
    pub fn new(choice: Choice) -> Result<Self, audiopus::Error> {
        let mut encoder = Encoder::new(SampleRate::Hz8000, Channels::Mono, Application::Voip)?;
        encoder.set_complexity(COMPLEXITY)?;
        Ok(Self {
            choice,
            decoder: Decoder::new(SampleRate::Hz8000, Channels::Mono)?,
            encoder,
            pcm: Vec::with_capacity(MAX_SAMPLES),
            down: Downscale::default(),
            newest: None,
        })
    }

    /// A packet from the browser as the leg takes it: its header, its payload left in `out`;
    /// `None` (dropped) for another payload type or an undecodable packet. Packets lost just
    /// before it are first given to `lost`, concealed (header and G.711 payload each).
    pub fn from_browser(
        &mut self,
        h: Header,
        payload: &[u8],
        out: &mut Vec<u8>,
        mut lost: impl FnMut(Header, &[u8]),
    ) -> Option<Header> {
        out.clear();
        let pt = if h.pt == self.choice.pt {
            self.conceal(h, payload, out, &mut lost);
            out.clear();
            self.pcm.resize(MAX_SAMPLES, 0);
            let n = self
                .decoder
                .decode(Some(payload), &mut self.pcm[..], false)
                .ok()?;
            self.encode_leg(n, out);
            self.choice.leg_pt()
        } else if Some(h.pt) == self.choice.event_pt {
            event(payload, out, |d| d / RATIO as u16)?;
            self.choice.leg_event_pt()?
        } else {
            return None;
        };
        // Only packets that cross move the clock mapping.
        let timestamp = self.down.map(h.timestamp);
        Some(Header { pt, timestamp, ..h })
    }

    /// The first `n` samples of the decoded PCM as the leg's G.711, into `out`.
    fn encode_leg(&self, n: usize, out: &mut Vec<u8>) {
        match self.choice.leg {
            CodecKind::Pcmu => g711::encode_ulaw(&self.pcm[..n], out),
            CodecKind::Pcma => g711::encode_alaw(&self.pcm[..n], out),
        }
    }

    /// Rebuilds the Opus packets lost between the newest one and `h` (at most
    /// [`MAX_CONCEALED`], all of the frame length their timestamps leave room for) and gives
    /// each to `lost`: the last from `payload`'s FEC (libopus conceals when it has none), the
    /// others by concealment. A late or repeated packet conceals nothing.
    fn conceal(
        &mut self,
        h: Header,
        payload: &[u8],
        out: &mut Vec<u8>,
        lost: &mut impl FnMut(Header, &[u8]),
    ) {
        let Some((seq, ts)) = self.newest else {
            self.newest = Some((h.seq, h.timestamp));
            return;
        };
        let ahead = h.seq.wrapping_sub(seq);
        if ahead == 0 || ahead > MAX_CONCEALED + 1 {
            // A repeat, a late packet, or a gap too long (or a new stream): nothing to rebuild.
            if ahead != 0 && ahead < u16::MAX / 2 {
                self.newest = Some((h.seq, h.timestamp));
            }
            return;
        }
        self.newest = Some((h.seq, h.timestamp));
        let missing = ahead - 1;
        let span = (h.timestamp.wrapping_sub(ts) / RATIO) as usize;
        let frame = span / usize::from(ahead);
        if missing == 0 || frame * usize::from(ahead) != span || !FRAME_SIZES.contains(&frame) {
            return;
        }
        for i in 1..=missing {
            self.pcm.resize(frame, 0);
            let decoded = if i == missing {
                self.decoder.decode(Some(payload), &mut self.pcm[..], true)
            } else {
                self.decoder.decode(None::<&[u8]>, &mut self.pcm[..], false)
            };
            let Ok(n) = decoded else { return };
            out.clear();
            self.encode_leg(n, out);
            let at = ts.wrapping_add(u32::from(i) * frame as u32 * RATIO);
            let header = Header {
                marker: false,
                pt: self.choice.leg_pt(),
                seq: seq.wrapping_add(i),
                timestamp: self.down.map(at),
            };
            lost(header, out);
        }
    }

    /// A packet of the leg's stream as the browser takes it: its header, its payload left in
    /// `out`; `None` (dropped) for another payload type or a length Opus cannot frame.
    pub fn to_browser(&mut self, h: Header, payload: &[u8], out: &mut Vec<u8>) -> Option<Header> {
        out.clear();
        let pt = if h.pt == self.choice.leg_pt() {
            if !FRAME_SIZES.contains(&payload.len()) {
                return None;
            }
            self.pcm.clear();
            match self.choice.leg {
                CodecKind::Pcmu => g711::decode_ulaw(payload, &mut self.pcm),
                CodecKind::Pcma => g711::decode_alaw(payload, &mut self.pcm),
            }
            out.resize(MAX_PACKET, 0);
            let n = self.encoder.encode(&self.pcm, out).ok()?;
            out.truncate(n);
            self.choice.pt
        } else if Some(h.pt) == self.choice.leg_event_pt() {
            event(payload, out, |d| d.saturating_mul(RATIO as u16))?;
            self.choice.event_pt?
        } else {
            return None;
        };
        Some(Header {
            pt,
            timestamp: h.timestamp.wrapping_mul(RATIO),
            ..h
        })
    }
}

/// An RFC 4733 event payload into `out` with its duration rescaled; `None` when too short.
fn event(payload: &[u8], out: &mut Vec<u8>, scale: impl Fn(u16) -> u16) -> Option<()> {
    let head = payload.get(..4)?;
    let duration = scale(u16::from_be_bytes([head[2], head[3]]));
    out.extend_from_slice(&head[..2]);
    out.extend_from_slice(&duration.to_be_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webrtc::offer::{BrowserCodec, LEG_EVENT_PT};

    fn choice(leg: CodecKind) -> Choice {
        Choice {
            codec: BrowserCodec::Opus,
            pt: 111,
            event_pt: Some(110),
            leg,
        }
    }

    /// The power of `pcm` (8 kHz) at `hz` as a share of its whole power (Goertzel).
    fn share_at(pcm: &[i16], hz: f64) -> f64 {
        let w = std::f64::consts::TAU * hz / 8000.0;
        let (mut s1, mut s2, mut total) = (0.0f64, 0.0f64, 0.0f64);
        for &x in pcm {
            let x = f64::from(x);
            total += x * x;
            let s = x + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        if total < 1e3 * pcm.len() as f64 {
            return 0.0;
        }
        let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        power / (total * pcm.len() as f64 / 2.0)
    }

    fn tone(hz: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|i| ((i as f64 * hz * std::f64::consts::TAU / 8000.0).sin() * 12_000.0) as i16)
            .collect()
    }

    /// `hz` as the leg sends it (G.711, 20 ms packets) through the Opus of one browser leg and
    /// back through another's decoder: the G.711 the far leg receives, decoded.
    fn round_trip(leg: CodecKind, hz: f64) -> Vec<i16> {
        let (mut near, mut far) = (
            Transcoder::new(choice(leg)).unwrap(),
            Transcoder::new(choice(leg)).unwrap(),
        );
        let (mut g711, mut opus, mut back, mut heard) = (vec![], vec![], vec![], vec![]);
        for (i, frame) in tone(hz, 8000).chunks(160).enumerate() {
            g711.clear();
            match leg {
                CodecKind::Pcmu => g711::encode_ulaw(frame, &mut g711),
                CodecKind::Pcma => g711::encode_alaw(frame, &mut g711),
            }
            let h = Header {
                marker: i == 0,
                pt: leg.payload_type(),
                seq: 65530u16.wrapping_add(i as u16),
                timestamp: (u32::MAX - 800).wrapping_add(160 * i as u32),
            };
            let to = near.to_browser(h, &g711, &mut opus).unwrap();
            assert_eq!(to.pt, 111);
            assert_eq!((to.seq, to.marker), (h.seq, h.marker));
            assert_eq!(to.timestamp, h.timestamp.wrapping_mul(6));
            assert!(opus.len() < 160, "Opus packet of {} bytes", opus.len());
            let from = far.from_browser(to, &opus, &mut back, |_, _| {}).unwrap();
            assert_eq!((from.pt, from.seq), (leg.payload_type(), h.seq));
            assert_eq!(back.len(), 160);
            match leg {
                CodecKind::Pcmu => g711::decode_ulaw(&back, &mut heard),
                CodecKind::Pcma => g711::decode_alaw(&back, &mut heard),
            }
        }
        heard
    }

    #[test]
    fn a_1khz_tone_keeps_its_frequency_through_opus_both_ways() {
        for leg in CodecKind::ALL {
            let heard = round_trip(leg, 1000.0);
            // The codec's first frames settle; the rest is the tone.
            let steady = &heard[1600..];
            assert!(
                share_at(steady, 1000.0) > 0.8,
                "{leg:?}: {}",
                share_at(steady, 1000.0)
            );
            assert!(share_at(steady, 440.0) < 0.05, "{leg:?}");
            let heard = round_trip(leg, 440.0);
            assert!(share_at(&heard[1600..], 440.0) > 0.8, "{leg:?}");
            assert!(share_at(&heard[1600..], 1000.0) < 0.05, "{leg:?}");
        }
    }

    /// A browser's Opus stream of `hz` (48 kHz, 20 ms packets, in-band FEC on as browsers
    /// send it when the answer says `useinbandfec=1`), without the packets in `drop`, through
    /// one leg's boundary: each packet the leg gets (the lost ones concealed) by sequence
    /// number, its timestamp and decoded audio.
    fn lossy_browser(hz: f64, drop: &[u16]) -> Vec<(u16, u32, Vec<i16>, bool)> {
        let mut enc = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip).unwrap();
        enc.set_inband_fec(true).unwrap();
        enc.set_packet_loss_perc(20).unwrap();
        let mut t = Transcoder::new(choice(CodecKind::Pcmu)).unwrap();
        let (mut opus, mut out) = (vec![0u8; MAX_PACKET], vec![]);
        let mut got = vec![];
        let voice: Vec<i16> = (0..48_000)
            .map(|i| ((i as f64 * hz * std::f64::consts::TAU / 48_000.0).sin() * 12_000.0) as i16)
            .collect();
        for (i, frame) in voice.chunks(960).enumerate() {
            opus.resize(MAX_PACKET, 0);
            let n = enc.encode(frame, &mut opus).unwrap();
            let seq = 65500u16.wrapping_add(i as u16);
            if drop.contains(&(i as u16)) {
                continue;
            }
            let h = Header {
                marker: i == 0,
                pt: 111,
                seq,
                timestamp: 3_000_000u32.wrapping_add(960 * i as u32),
            };
            let mut concealed = vec![];
            let main = t
                .from_browser(h, &opus[..n], &mut out, |h, g| {
                    let mut pcm = vec![];
                    g711::decode_ulaw(g, &mut pcm);
                    concealed.push((h.seq, h.timestamp, pcm, true));
                })
                .unwrap();
            got.extend(concealed);
            let mut pcm = vec![];
            g711::decode_ulaw(&out, &mut pcm);
            got.push((main.seq, main.timestamp, pcm, false));
        }
        got
    }

    #[test]
    fn opus_packets_lost_on_the_way_are_concealed_with_the_voice_they_carried() {
        // One packet lost (rebuilt from the next one's FEC), then three in a row.
        let got = lossy_browser(440.0, &[20, 30, 31, 32]);
        let concealed: Vec<u16> = got
            .iter()
            .filter(|p| p.3)
            .map(|p| p.0.wrapping_sub(65500))
            .collect();
        assert_eq!(concealed, [20, 30, 31, 32]);
        // The leg sees one stream: every sequence number once, in order, timestamps 160 apart.
        assert_eq!(got.len(), 50);
        for (i, (seq, ts, pcm, _)) in got.iter().enumerate() {
            assert_eq!(seq.wrapping_sub(65500), i as u16);
            assert_eq!(ts.wrapping_sub(got[0].1), 160 * i as u32);
            assert_eq!(pcm.len(), 160);
        }
        // What was lost is heard as the voice, not silence.
        for (seq, _, pcm, _) in got.iter().filter(|p| p.3) {
            // Concealment fades (the middle one of three is quietest); FEC rebuilds the
            // frame itself.
            let least = if seq.wrapping_sub(65500) == 31 {
                0.3
            } else {
                0.6
            };
            let share = share_at(pcm, 440.0);
            assert!(share > least, "packet {seq}: {share}");
        }
    }

    #[test]
    fn a_gap_too_long_or_a_late_packet_conceals_nothing() {
        let got = lossy_browser(440.0, &[10, 11, 12, 13, 14, 15, 16]);
        assert!(got.iter().all(|p| !p.3));
        assert_eq!(got.len(), 43);
        let mut t = Transcoder::new(choice(CodecKind::Pcmu)).unwrap();
        let mut near = Transcoder::new(choice(CodecKind::Pcmu)).unwrap();
        let (mut opus, mut out) = (vec![], vec![]);
        let h = |seq: u16| Header {
            marker: false,
            pt: 111,
            seq,
            timestamp: 960 * u32::from(seq),
        };
        near.to_browser(Header { pt: 0, ..h(0) }, &[0xff; 160], &mut opus)
            .unwrap();
        let mut lost = 0;
        for seq in [5, 6, 4, 6, 7] {
            t.from_browser(h(seq), &opus, &mut out, |_, _| lost += 1)
                .unwrap();
        }
        assert_eq!(lost, 0);
    }

    #[test]
    fn browser_timestamps_run_on_at_8khz_over_a_wrap() {
        let mut t = Transcoder::new(choice(CodecKind::Pcmu)).unwrap();
        let mut near = Transcoder::new(choice(CodecKind::Pcmu)).unwrap();
        let (mut opus, mut out) = (vec![], vec![]);
        let h = Header {
            marker: false,
            pt: 0,
            seq: 1,
            timestamp: 0,
        };
        near.to_browser(h, &[0xff; 160], &mut opus).unwrap();
        let mut stamps = vec![];
        for (i, ts) in [u32::MAX - 1919, u32::MAX - 959, 0, 960, 0]
            .into_iter()
            .enumerate()
        {
            let h = Header {
                marker: false,
                pt: 111,
                seq: i as u16,
                timestamp: ts,
            };
            stamps.push(
                t.from_browser(h, &opus, &mut out, |_, _| {})
                    .unwrap()
                    .timestamp,
            );
        }
        let first = stamps[0];
        let steps: Vec<u32> = stamps.iter().map(|s| s.wrapping_sub(first)).collect();
        // The late packet (a repeat of the third) maps where it belongs.
        assert_eq!(steps, [0, 160, 320, 480, 320]);
    }

    #[test]
    fn telephone_events_cross_with_their_clock_rescaled() {
        let mut t = Transcoder::new(choice(CodecKind::Pcma)).unwrap();
        let mut out = vec![];
        // Digit 5, end bit, volume 10, 960 at 48 kHz = 160 at 8 kHz.
        let h = Header {
            marker: true,
            pt: 110,
            seq: 9,
            timestamp: 48_000,
        };
        let got = t
            .from_browser(h, &[5, 0x8a, 0x03, 0xc0], &mut out, |_, _| {})
            .unwrap();
        assert_eq!((got.pt, got.marker, got.seq), (LEG_EVENT_PT, true, 9));
        assert_eq!(out, [5, 0x8a, 0, 160]);
        let h = Header {
            marker: true,
            pt: LEG_EVENT_PT,
            seq: 3,
            timestamp: 8000,
        };
        let got = t.to_browser(h, &[7, 0x0a, 0, 160], &mut out).unwrap();
        assert_eq!((got.pt, got.timestamp), (110, 48_000));
        assert_eq!(out, [7, 0x0a, 0x03, 0xc0]);
        // Past what 16 bits hold at 48 kHz: the longest duration.
        t.to_browser(h, &[7, 0x0a, 0xff, 0x00], &mut out).unwrap();
        assert_eq!(out, [7, 0x0a, 0xff, 0xff]);
    }

    #[test]
    fn garbage_and_stray_payload_types_are_dropped() {
        let mut t = Transcoder::new(choice(CodecKind::Pcmu)).unwrap();
        let mut out = vec![];
        let h = |pt| Header {
            marker: false,
            pt,
            seq: 1,
            timestamp: 960,
        };
        assert_eq!(t.from_browser(h(111), &[], &mut out, |_, _| {}), None);
        assert_eq!(t.from_browser(h(126), &[0; 40], &mut out, |_, _| {}), None);
        assert_eq!(t.from_browser(h(110), &[5, 0], &mut out, |_, _| {}), None);
        // Not an Opus frame length, another type, a short event.
        assert_eq!(t.to_browser(h(0), &[0xff; 100], &mut out), None);
        assert_eq!(t.to_browser(h(8), &[0xff; 160], &mut out), None);
        assert_eq!(t.to_browser(h(LEG_EVENT_PT), &[1], &mut out), None);
        // Random bytes as Opus: dropped or decoded, never a panic.
        let mut x = 0x1234_5678u32;
        for len in 1..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            if let Some(got) = t.from_browser(h(111), &bytes, &mut out, |_, _| {}) {
                assert_eq!(got.pt, 0);
                assert!(out.len() <= MAX_SAMPLES);
            }
        }
    }
}
