//! Prompts: WAV files converted once at load to 8 kHz mono 16-bit, cached per language, and
//! played in 20 ms frames by a sans-IO player that the RTP driver pulls from on its own timer.
//! Also `find_clip`, a normalised cross-correlation search that tests use to check that audio
//! received over RTP contains a given prompt.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Sample rate of everything the player produces (G.711's rate).
pub const SAMPLE_RATE: u32 = 8000;
/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// Duration of one frame.
pub const FRAME_MS: u32 = 20;
/// Pause between two digits read out together.
pub const DIGIT_GAP_MS: u32 = 120;
/// Pause where a digit string has a separator (space, dash, dot …): between digit groups.
pub const GROUP_GAP_MS: u32 = 300;
/// Pause between a phrase and what follows it.
pub const PHRASE_GAP_MS: u32 = 400;
/// Pause before a message is repeated.
pub const REPEAT_GAP_MS: u32 = 700;
/// Directory of language-independent prompts (tones, music).
pub const COMMON: &str = "common";
/// Language used when a prompt is missing in the one asked for.
pub const FALLBACK_LANGUAGE: &str = "en";

/// Longest file accepted: prompts are short, and this bounds the memory one bad file can take.
const MAX_SECONDS: u64 = 600;

/// Errors loading prompts or assembling a message from them.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The WAV file could not be opened, parsed or read.
    #[error("{}: {source}", path.display())]
    Wav { path: PathBuf, source: hound::Error },
    /// The WAV file parsed but is not something we can play.
    #[error("{}: {what}", path.display())]
    Format { path: PathBuf, what: String },
    /// A prompt directory could not be listed.
    #[error("{}: cannot list prompts: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A message needs a prompt that neither the language, `common` nor `en` has.
    #[error("no prompt `{name}` for language `{lang}` (nor in common/ or en/)")]
    Missing { lang: String, name: String },
}

/// Reads a WAV file of any rate, integer depth (8/16/24/32) or 32-bit float and any channel
/// count, and returns it as 8 kHz mono 16-bit samples.
pub fn load_wav(path: &Path) -> Result<Vec<i16>, PromptError> {
    let reader = hound::WavReader::open(path).map_err(|source| PromptError::Wav {
        path: path.to_path_buf(),
        source,
    })?;
    convert(reader, path)
}

/// Like [`load_wav`], for a WAV file held in memory (an upload); `label` names it in errors.
pub fn decode_wav(bytes: &[u8], label: &str) -> Result<Vec<i16>, PromptError> {
    let path = Path::new(label);
    let reader =
        hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(|source| PromptError::Wav {
            path: path.to_path_buf(),
            source,
        })?;
    convert(reader, path)
}

/// Writes 8 kHz mono 16-bit samples as a WAV file.
pub fn encode_wav(samples: &[i16]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    // Writing into memory cannot fail but for a file over 4 GiB, which 600 s cannot reach.
    if let Ok(mut w) = hound::WavWriter::new(&mut out, spec) {
        for &s in samples {
            let _ = w.write_sample(s);
        }
        let _ = w.finalize();
    }
    out.into_inner()
}

/// Reads every sample of `reader` as 8 kHz mono 16-bit.
fn convert<R: std::io::Read>(
    mut reader: hound::WavReader<R>,
    path: &Path,
) -> Result<Vec<i16>, PromptError> {
    let wav_err = |source| PromptError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let format_err = |what: String| PromptError::Format {
        path: path.to_path_buf(),
        what,
    };
    let spec = reader.spec();
    if spec.sample_rate == 0 {
        return Err(format_err("sample rate is 0".into()));
    }
    if u64::from(reader.duration()) > MAX_SECONDS * u64::from(spec.sample_rate) {
        return Err(format_err(format!("longer than {MAX_SECONDS} s")));
    }
    let channels = usize::from(spec.channels);
    // Downmix while reading: one f32 per frame in [-1, 1), averaged over channels.
    let mut mono = Vec::with_capacity(reader.duration() as usize);
    let mut acc = 0f32;
    let mut seen = 0usize;
    let mut push = |v: f32| {
        acc += v;
        seen += 1;
        if seen == channels {
            mono.push(acc / channels as f32);
            acc = 0.0;
            seen = 0;
        }
    };
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            for s in reader.samples::<i32>() {
                push(s.map_err(wav_err)? as f32 * scale);
            }
        }
        (hound::SampleFormat::Float, 32) => {
            for s in reader.samples::<f32>() {
                let v = s.map_err(wav_err)?;
                push(if v.is_finite() { v } else { 0.0 });
            }
        }
        (format, bits) => {
            return Err(format_err(format!(
                "unsupported sample format: {bits}-bit {format:?}"
            )))
        }
    }
    let samples = if spec.sample_rate == SAMPLE_RATE {
        mono
    } else {
        resample(&mono, spec.sample_rate, SAMPLE_RATE)
    };
    Ok(samples
        .iter()
        .map(|&v| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect())
}

/// Zero crossings of the resampling kernel on each side: sets the filter's steepness.
const ZERO_CROSSINGS: usize = 32;
/// Kernel table entries per zero crossing (linear interpolation between them).
const TABLE_STEPS: usize = 256;
/// Kaiser window β: about 80 dB stopband attenuation.
const KAISER_BETA: f64 = 8.0;
/// Cutoff as a fraction of the lower Nyquist frequency: 3.7 kHz at 8 kHz, so the telephone
/// band (to 3.4 kHz) is flat and the transition band ends by 4 kHz, where aliases would start.
const PASSBAND: f64 = 0.925;

/// Band-limited resampling by windowed-sinc interpolation: each output sample is the input
/// convolved with a Kaiser-windowed sinc low-pass centred on its exact position, so downsampling
/// is anti-aliased and any rate ratio works.
fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if input.is_empty() {
        return Vec::new();
    }
    let out_len =
        ((input.len() as u64 * u64::from(to) + u64::from(from) / 2) / u64::from(from)) as usize;
    // Cutoff in cycles per input sample, times two: the kernel is c·sinc(c·u), u in input samples.
    let c = f64::from(from.min(to)) * PASSBAND / f64::from(from);
    let half_width = ZERO_CROSSINGS as f64 / c;
    let table = kernel_table();
    let step = f64::from(from) / f64::from(to);
    let last = input.len() as i64 - 1;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        let t = n as f64 * step;
        let lo = ((t - half_width).ceil() as i64).max(0);
        let hi = ((t + half_width).floor() as i64).min(last);
        let mut acc = 0f64;
        for k in lo..=hi {
            // Position in table units: |c·(t − k)| zero crossings, TABLE_STEPS per crossing.
            let pos = (c * (t - k as f64)).abs() * TABLE_STEPS as f64;
            let i = pos as usize;
            if i + 1 >= table.len() {
                continue;
            }
            let frac = pos - i as f64;
            let h = table[i] + (table[i + 1] - table[i]) * frac;
            acc += f64::from(input[k as usize]) * h;
        }
        out.push((acc * c) as f32);
    }
    out
}

/// One side of the windowed sinc, sampled TABLE_STEPS times per zero crossing.
fn kernel_table() -> Vec<f64> {
    let len = ZERO_CROSSINGS * TABLE_STEPS + 2;
    let norm = bessel_i0(KAISER_BETA);
    (0..len)
        .map(|j| {
            let v = j as f64 / TABLE_STEPS as f64;
            let r = v / ZERO_CROSSINGS as f64;
            if r >= 1.0 {
                return 0.0;
            }
            let sinc = if j == 0 {
                1.0
            } else {
                (PI * v).sin() / (PI * v)
            };
            sinc * bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / norm
        })
        .collect()
}

/// Modified Bessel function of the first kind, order 0 (power series), for the Kaiser window.
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..100 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

/// One directory's prompts: name (file stem) → 8 kHz mono samples.
type PromptSet = BTreeMap<String, Arc<[i16]>>;

/// Every prompt of a prompt set, converted and held in memory; clones share the samples.
#[derive(Clone, Debug, Default)]
pub struct PromptCache {
    /// Directory name (language or `common`) → its prompts.
    sets: Arc<BTreeMap<String, PromptSet>>,
}

impl PromptCache {
    /// Loads `root/<lang>/*.wav` and `root/common/*.wav`; any unreadable file fails the load, so a
    /// broken prompt is found at start-up rather than heard as silence on a call.
    pub fn load(root: &Path) -> Result<Self, PromptError> {
        let dir_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PromptError::Dir { path, source }
        };
        let mut sets = BTreeMap::new();
        for entry in std::fs::read_dir(root).map_err(dir_err(root))? {
            let dir = entry.map_err(dir_err(root))?.path();
            let Some(lang) = visible_name(&dir) else {
                continue;
            };
            if !dir.is_dir() {
                continue;
            }
            let mut set = PromptSet::new();
            for file in std::fs::read_dir(&dir).map_err(dir_err(&dir))? {
                let path = file.map_err(dir_err(&dir))?.path();
                let is_wav = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
                if !is_wav || !path.is_file() {
                    continue;
                }
                let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let name = name.to_string();
                set.insert(name, Arc::from(load_wav(&path)?));
            }
            sets.insert(lang.to_string(), set);
        }
        Ok(Self {
            sets: Arc::new(sets),
        })
    }

    /// The prompt `name` in `lang`, else in `common`, else in `en`.
    pub fn get(&self, lang: &str, name: &str) -> Option<Arc<[i16]>> {
        [lang, COMMON, FALLBACK_LANGUAGE]
            .iter()
            .find_map(|set| self.sets.get(*set)?.get(name))
            .cloned()
    }

    /// Like `get`, but a missing prompt is an error naming it.
    pub fn require(&self, lang: &str, name: &str) -> Result<Arc<[i16]>, PromptError> {
        self.get(lang, name).ok_or_else(|| PromptError::Missing {
            lang: lang.to_string(),
            name: name.to_string(),
        })
    }

    /// Languages with a prompt directory, sorted (`common` is not a language).
    pub fn languages(&self) -> Vec<&str> {
        self.sets
            .keys()
            .map(String::as_str)
            .filter(|l| *l != COMMON)
            .collect()
    }

    /// Adds or replaces one prompt (e.g. a campaign's uploaded name); other clones keep theirs.
    pub fn insert(&mut self, lang: &str, name: &str, samples: Vec<i16>) {
        Arc::make_mut(&mut self.sets)
            .entry(lang.to_string())
            .or_default()
            .insert(name.to_string(), Arc::from(samples));
    }
}

/// The file name of `path` unless it is hidden or not UTF-8.
fn visible_name(path: &Path) -> Option<&str> {
    path.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.starts_with('.'))
}

/// One item of a playlist: prompt audio or a pause.
#[derive(Clone, Debug)]
pub enum Clip {
    /// 8 kHz mono samples, shared with the cache.
    Audio(Arc<[i16]>),
    /// This many samples of silence.
    Silence(usize),
}

impl Clip {
    /// A pause of `ms` milliseconds.
    pub fn silence_ms(ms: u32) -> Self {
        Clip::Silence(ms as usize * SAMPLE_RATE as usize / 1000)
    }

    /// Length in samples.
    pub fn len(&self) -> usize {
        match self {
            Clip::Audio(s) => s.len(),
            Clip::Silence(n) => *n,
        }
    }

    /// True when the clip has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Concatenates clips into one buffer, pauses as zeros (what a listener would hear).
pub fn render(clips: &[Clip]) -> Vec<i16> {
    let mut out = Vec::with_capacity(clips.iter().map(Clip::len).sum());
    for clip in clips {
        match clip {
            Clip::Audio(s) => out.extend_from_slice(s),
            Clip::Silence(n) => out.resize(out.len() + n, 0),
        }
    }
    out
}

/// Plays a sequence of clips as 20 ms frames. Sans-IO: the RTP driver calls `next_frame` on its
/// own 20 ms timer; clips run into one another within a frame, and only the last frame is
/// padded with silence.
#[derive(Clone, Debug)]
pub struct Player {
    clips: Vec<Clip>,
    /// Index of the clip being played.
    clip: usize,
    /// Next sample within that clip.
    pos: usize,
    /// Samples in one pass through all clips.
    total: usize,
    /// Samples played in the current pass.
    played: usize,
    looping: bool,
}

impl Player {
    /// A player that plays `clips` once.
    pub fn new(clips: Vec<Clip>) -> Self {
        let total = clips.iter().map(Clip::len).sum();
        Self {
            clips,
            clip: 0,
            pos: 0,
            total,
            played: 0,
            looping: false,
        }
    }

    /// A player that starts over when it reaches the end (hold music).
    pub fn looping(clips: Vec<Clip>) -> Self {
        Self {
            looping: true,
            ..Self::new(clips)
        }
    }

    /// Turns looping on or off; turned off, the current pass plays to its end.
    pub fn set_looping(&mut self, looping: bool) {
        self.looping = looping;
    }

    /// The next 20 ms of audio, or `None` once everything has been played.
    pub fn next_frame(&mut self) -> Option<[i16; FRAME_SAMPLES]> {
        if self.is_finished() {
            return None;
        }
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut filled = 0;
        while filled < FRAME_SAMPLES {
            if self.clip == self.clips.len() {
                // is_finished() was false, so total > 0 here and a loop makes progress.
                if !self.looping {
                    break;
                }
                self.clip = 0;
                self.pos = 0;
                self.played = 0;
            }
            let clip = &self.clips[self.clip];
            let n = (clip.len() - self.pos).min(FRAME_SAMPLES - filled);
            if let Clip::Audio(s) = clip {
                frame[filled..filled + n].copy_from_slice(&s[self.pos..self.pos + n]);
            }
            filled += n;
            self.pos += n;
            self.played += n;
            if self.pos == clip.len() {
                self.clip += 1;
                self.pos = 0;
            }
        }
        Some(frame)
    }

    /// True when `next_frame` has nothing more to give.
    pub fn is_finished(&self) -> bool {
        if self.looping && self.total > 0 {
            return false;
        }
        self.played >= self.total
    }

    /// Time left to play, rounded up to the millisecond; `None` while looping (no end).
    pub fn remaining_ms(&self) -> Option<u64> {
        if self.looping && self.total > 0 {
            return None;
        }
        let left = (self.total - self.played.min(self.total)) as u64;
        Some((left * 1000).div_ceil(u64::from(SAMPLE_RATE)))
    }
}

/// Digits read out one by one with the digit prompts of `lang`: short pauses between digits,
/// longer ones where the text has a separator ("+33 1 23" → 3 3 · 1 · 2 3).
pub fn speak_digits(
    cache: &PromptCache,
    lang: &str,
    digits: &str,
) -> Result<Vec<Clip>, PromptError> {
    let mut clips = Vec::new();
    let mut separator = false;
    for ch in digits.chars() {
        if !ch.is_ascii_digit() {
            separator = true;
            continue;
        }
        if !clips.is_empty() {
            clips.push(Clip::silence_ms(if separator {
                GROUP_GAP_MS
            } else {
                DIGIT_GAP_MS
            }));
        }
        separator = false;
        let mut name = [0u8; 4];
        clips.push(Clip::Audio(cache.require(lang, ch.encode_utf8(&mut name))?));
    }
    Ok(clips)
}

/// "Your verification code is 4 7 2 9 1 3. I repeat: 4 7 2 9 1 3."
pub fn verification_message(
    cache: &PromptCache,
    lang: &str,
    code: &str,
) -> Result<Vec<Clip>, PromptError> {
    let digits = speak_digits(cache, lang, code)?;
    let mut clips = vec![
        Clip::Audio(cache.require(lang, "verification_code_is")?),
        Clip::silence_ms(PHRASE_GAP_MS),
    ];
    clips.extend(digits.iter().cloned());
    clips.push(Clip::silence_ms(REPEAT_GAP_MS));
    clips.push(Clip::Audio(cache.require(lang, "i_repeat")?));
    clips.push(Clip::silence_ms(PHRASE_GAP_MS));
    clips.extend(digits);
    Ok(clips)
}

/// "This call was from <name>. You can call us back on <number>. Goodbye." The name is a
/// recording uploaded for the campaign; without one it is left out (no speech synthesis at
/// run time), and the number is read digit by digit.
pub fn safe_harbour_message(
    cache: &PromptCache,
    lang: &str,
    campaign_name: Option<Arc<[i16]>>,
    number: &str,
) -> Result<Vec<Clip>, PromptError> {
    let mut clips = Vec::new();
    if let Some(name) = campaign_name {
        clips.push(Clip::Audio(cache.require(lang, "safe_harbour_from")?));
        clips.push(Clip::silence_ms(DIGIT_GAP_MS));
        clips.push(Clip::Audio(name));
        clips.push(Clip::silence_ms(PHRASE_GAP_MS));
    }
    clips.push(Clip::Audio(cache.require(lang, "safe_harbour_callback")?));
    clips.push(Clip::silence_ms(PHRASE_GAP_MS));
    clips.extend(speak_digits(cache, lang, number)?);
    clips.push(Clip::silence_ms(REPEAT_GAP_MS));
    clips.push(Clip::Audio(cache.require(lang, "goodbye")?));
    Ok(clips)
}

/// Where `needle` best matches inside `haystack`: the offset with the highest normalised
/// (Pearson) cross-correlation, and that coefficient in [−1, 1]. `None` when the needle is
/// empty, silent (nothing to correlate with) or longer than the haystack. The products come
/// from one FFT correlation, the window energies from exact integer running sums, so 10 s of
/// audio is searched in milliseconds.
pub fn find_clip(haystack: &[i16], needle: &[i16]) -> Option<(usize, f32)> {
    let (n, m) = (haystack.len(), needle.len());
    if m == 0 || m > n {
        return None;
    }
    // Centring the needle makes Σ needle'·window equal to the covariance for every window.
    let mean = needle.iter().map(|&s| f64::from(s)).sum::<f64>() / m as f64;
    let size = n.next_power_of_two();
    let mut x_re = vec![0f64; size];
    let mut x_im = vec![0f64; size];
    let mut needle_energy = 0f64;
    for (slot, &s) in x_re.iter_mut().zip(needle) {
        *slot = f64::from(s) - mean;
        needle_energy += *slot * *slot;
    }
    if needle_energy < 1.0 {
        return None;
    }
    let mut h_re: Vec<f64> = haystack.iter().map(|&s| f64::from(s)).collect();
    h_re.resize(size, 0.0);
    let mut h_im = vec![0f64; size];
    let twiddles = Twiddles::new(size);
    fft(&mut h_re, &mut h_im, &twiddles, false);
    fft(&mut x_re, &mut x_im, &twiddles, false);
    // H · conj(X) transforms back to Σᵢ h[o+i]·x[i] at index o.
    for k in 0..size {
        let (a, b, c, d) = (h_re[k], h_im[k], x_re[k], x_im[k]);
        h_re[k] = a * c + b * d;
        h_im[k] = b * c - a * d;
    }
    fft(&mut h_re, &mut h_im, &twiddles, true);

    // Window variance × m from exact integer prefix sums (i64 cannot overflow for any i16 slice
    // shorter than 2^33 samples).
    let mut sum = vec![0i64; n + 1];
    let mut sum_sq = vec![0i64; n + 1];
    for (i, &s) in haystack.iter().enumerate() {
        sum[i + 1] = sum[i] + i64::from(s);
        sum_sq[i + 1] = sum_sq[i] + i64::from(s) * i64::from(s);
    }
    let mut best: Option<(usize, f32)> = None;
    for o in 0..=n - m {
        let s = i128::from(sum[o + m] - sum[o]);
        let sq = i128::from(sum_sq[o + m] - sum_sq[o]);
        let var_m = (m as i128 * sq - s * s) as f64 / m as f64;
        // Under one LSB of variation in the whole window: silence, no meaningful correlation.
        let r = if var_m < 1.0 {
            0.0
        } else {
            (h_re[o] / (var_m * needle_energy).sqrt()).clamp(-1.0, 1.0) as f32
        };
        if best.is_none_or(|(_, b)| r > b) {
            best = Some((o, r));
        }
    }
    best
}

/// exp(−2πik/N) for k < N/2, shared by the three transforms of one search.
struct Twiddles {
    re: Vec<f64>,
    im: Vec<f64>,
}

impl Twiddles {
    fn new(size: usize) -> Self {
        let (re, im) = (0..size / 2)
            .map(|k| {
                let a = -2.0 * PI * k as f64 / size as f64;
                (a.cos(), a.sin())
            })
            .unzip();
        Self { re, im }
    }
}

/// In-place iterative radix-2 FFT; `re.len()` is a power of two. The inverse is scaled by 1/N.
fn fft(re: &mut [f64], im: &mut [f64], tw: &Twiddles, inverse: bool) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let sign = if inverse { -1.0 } else { 1.0 };
    let mut len = 2;
    while len <= n {
        let half = len / 2;
        let stride = n / len;
        for start in (0..n).step_by(len) {
            for k in 0..half {
                let (wr, wi) = (tw.re[k * stride], sign * tw.im[k * stride]);
                let (a, b) = (start + k, start + k + half);
                let vr = re[b] * wr - im[b] * wi;
                let vi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - vr;
                im[b] = im[a] - vi;
                re[a] += vr;
                im[a] += vi;
            }
        }
        len <<= 1;
    }
    if inverse {
        let scale = 1.0 / n as f64;
        re.iter_mut().for_each(|v| *v *= scale);
        im.iter_mut().for_each(|v| *v *= scale);
    }
}

#[cfg(test)]
mod tests;
