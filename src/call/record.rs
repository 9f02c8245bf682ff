//! Call records and recordings as the call layer makes them: call ids, where a call's WAV
//! goes (`<state_dir>/recordings/YYYY/MM/DD/<call-id>.wav`, date of the call's start in UTC),
//! the quality of each leg, and writing the record at the end of the call.

use crate::media::leg::MediaLeg;
use crate::sip::id::random_u32;
use crate::store::calls::{CallRecord, SideQuality};
use crate::store::Store;
use std::path::{Path, PathBuf};

/// Directory under the state directory that holds recordings.
pub const RECORDINGS_DIR: &str = "recordings";

/// Where call records and recordings go; cheap to clone.
#[derive(Clone)]
pub struct CallLog {
    store: Store,
    recordings: PathBuf,
}

impl CallLog {
    /// Records into `store`, recordings under `state_dir/recordings`.
    pub fn new(store: Store, state_dir: &Path) -> Self {
        CallLog {
            store,
            recordings: state_dir.join(RECORDINGS_DIR),
        }
    }

    /// The WAV path for call `id` started at `started_ms` (epoch ms).
    pub fn recording_path(&self, id: &str, started_ms: i64) -> PathBuf {
        recording_path(&self.recordings, id, started_ms)
    }

    /// Stores the record of a finished call; a failure is logged (the call is over anyway).
    pub async fn write(&self, record: &CallRecord) {
        match self.store.insert_call(record).await {
            Ok(()) => {
                tracing::info!(call = %record.id, reason = %record.end_reason, "call recorded")
            }
            Err(e) => tracing::warn!(call = %record.id, error = %e, "call record not stored"),
        }
    }
}

/// `dir/YYYY/MM/DD/<id>.wav` for a call started at `started_ms` (UTC date).
pub fn recording_path(dir: &Path, id: &str, started_ms: i64) -> PathBuf {
    let day = chrono::DateTime::from_timestamp_millis(started_ms).unwrap_or_default();
    dir.join(day.format("%Y/%m/%d").to_string())
        .join(format!("{id}.wav"))
}

/// A new call id: 16 hex digits, random (also safe as a file name).
pub fn new_call_id() -> String {
    format!("{:08x}{:08x}", random_u32(), random_u32())
}

/// What we received from `leg`, once it received anything.
pub fn quality(leg: &mut MediaLeg) -> Option<SideQuality> {
    let s = leg.session()?;
    if s.counters().packets_in == 0 {
        return None;
    }
    let q = s.quality();
    Some(SideQuality {
        loss: q.loss_ratio,
        jitter_seconds: q.jitter_seconds,
        mos: q.mos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_are_filed_by_the_utc_day_the_call_started() {
        // 2025-03-09T23:59:59.999Z
        let p = recording_path(Path::new("/s/recordings"), "00ff", 1_741_564_799_999);
        assert_eq!(p, Path::new("/s/recordings/2025/03/09/00ff.wav"));
    }

    #[test]
    fn call_ids_are_16_hex_digits_and_differ() {
        let (a, b) = (new_call_id(), new_call_id());
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
