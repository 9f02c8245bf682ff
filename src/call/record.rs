//! Call records and recordings as the call layer makes them: call ids, where a call's WAV
//! goes (`<state_dir>/recordings/YYYY/MM/DD/<call-id>.wav`, date of the call's start in UTC),
//! the quality of each leg, and writing the record at the end of the call.
//!
//! Records are written by one writer task, in a transaction per batch of whatever has queued
//! up: with `synchronous = FULL` every commit waits for the disk, so one commit per call would
//! cap the call rate at the disk's flush rate (a queue of 2.7 s at 120 calls/s on this VM).

use crate::media::leg::MediaLeg;
use crate::sip::id::random_u32;
use crate::store::calls::{CallRecord, SideQuality};
use crate::store::Store;
use std::future::Future;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Directory under the state directory that holds recordings.
pub const RECORDINGS_DIR: &str = "recordings";

/// Records queued for the writer before calls ending wait for it.
const QUEUE: usize = 4096;
/// Most records in one transaction.
const BATCH: usize = 512;

/// Where call records and recordings go; cheap to clone.
#[derive(Clone)]
pub struct CallLog {
    records: mpsc::Sender<CallRecord>,
    recordings: PathBuf,
}

impl CallLog {
    /// Records into `store`, recordings under `state_dir/recordings`. The returned writer must
    /// be spawned; it ends, with everything written, once every `CallLog` clone is dropped.
    pub fn new(store: Store, state_dir: &Path) -> (Self, impl Future<Output = ()>) {
        let (records, rx) = mpsc::channel(QUEUE);
        let log = CallLog {
            records,
            recordings: state_dir.join(RECORDINGS_DIR),
        };
        (log, write_batches(store, rx))
    }

    /// The WAV path for call `id` started at `started_ms` (epoch ms).
    pub fn recording_path(&self, id: &str, started_ms: i64) -> PathBuf {
        recording_path(&self.recordings, id, started_ms)
    }

    /// Queues the record of a finished call for the writer.
    pub async fn write(&self, record: CallRecord) {
        if let Err(e) = self.records.send(record).await {
            tracing::warn!(call = %e.0.id, "call record not stored: the writer has stopped");
        }
    }
}

/// The writer: stores queued records a batch per transaction until every sender is gone.
async fn write_batches(store: Store, mut rx: mpsc::Receiver<CallRecord>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        match store.insert_calls(&batch).await {
            Ok(()) => {
                for r in &batch {
                    tracing::info!(call = %r.id, reason = %r.end_reason, "call recorded");
                }
            }
            // One bad record must not lose the others: each alone, failures logged (the
            // calls are over anyway).
            Err(_) => {
                for r in &batch {
                    match store.insert_calls(std::slice::from_ref(r)).await {
                        Ok(()) => {
                            tracing::info!(call = %r.id, reason = %r.end_reason, "call recorded")
                        }
                        Err(e) => {
                            tracing::warn!(call = %r.id, error = %e, "call record not stored")
                        }
                    }
                }
            }
        }
        batch.clear();
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

    fn record(id: &str) -> CallRecord {
        CallRecord {
            id: id.into(),
            route: "relay".into(),
            a_number: "+4930111".into(),
            b_number: "+4930222".into(),
            started_at: 1_000,
            answered_at: None,
            ended_at: 2_000,
            end_reason: "remote_bye".into(),
            recording_path: None,
            a_quality: None,
            b_quality: None,
            ..CallRecord::default()
        }
    }

    #[tokio::test]
    async fn the_writer_stores_every_record_even_beside_a_bad_one_and_ends_with_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        store.insert_calls(&[record("taken")]).await.unwrap();
        let (log, writer) = CallLog::new(store.clone(), dir.path());
        let writer = tokio::spawn(writer);
        for i in 0..1000 {
            log.write(record(&format!("call-{i}"))).await;
            if i == 500 {
                // Its batch fails as a whole, then goes in one by one.
                log.write(record("taken")).await;
            }
        }
        drop(log);
        writer.await.unwrap();
        assert_eq!(store.recent_calls(5000).await.unwrap().len(), 1001);
        assert!(store.call("call-999").await.unwrap().is_some());
    }

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
