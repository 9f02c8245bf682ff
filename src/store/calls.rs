//! Call records: one row per call, written by the call layer when the call ends.

use super::{rfc3339, Result, Store};
use serde::Serialize;
use sqlx::Row;

/// Audio quality received from one side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SideQuality {
    /// Packets lost over packets expected, in [0, 1].
    pub loss: f64,
    /// Interarrival jitter in seconds.
    pub jitter_seconds: f64,
    /// Estimated mean opinion score (1 to 4.5).
    pub mos: f64,
}

/// One call as stored and as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CallRecord {
    /// Call id (also the recording's file name).
    pub id: String,
    /// Route that handled it (`relay`).
    pub route: String,
    /// Side A's number: the customer (relay: the caller); the recording's left channel.
    pub a_number: String,
    /// Side B's number: the agent (relay: the number called); the recording's right channel.
    pub b_number: String,
    /// When the call came in or was placed, epoch ms.
    pub started_at: i64,
    /// When it was answered, epoch ms.
    pub answered_at: Option<i64>,
    /// When it ended, epoch ms.
    pub ended_at: i64,
    /// How it ended (`a_hangup`, `b_hangup`, `a_rtp_timeout`, `b_failed_486`, …).
    pub end_reason: String,
    /// The WAV recording, when the call was recorded.
    pub recording_path: Option<String>,
    /// Quality of what side A sent us.
    pub a_quality: Option<SideQuality>,
    /// Quality of what side B sent us.
    pub b_quality: Option<SideQuality>,
    /// The caller-ID line an inbound call reached.
    pub line_id: Option<i64>,
    /// The contact the call was with (campaign and inbound calls).
    pub contact_id: Option<i64>,
    /// How long an inbound caller waited for an agent (ms).
    pub waited_ms: Option<i64>,
}

/// A call record with its times as RFC 3339 as well, for API answers.
#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    /// The record.
    #[serde(flatten)]
    pub call: CallRecord,
    /// `started_at` as RFC 3339.
    pub started: String,
    /// `ended_at` as RFC 3339.
    pub ended: String,
}

impl From<CallRecord> for CallView {
    fn from(call: CallRecord) -> Self {
        CallView {
            started: rfc3339(call.started_at),
            ended: rfc3339(call.ended_at),
            call,
        }
    }
}

const COLUMNS: &str = "id, route, a_number, b_number, started_at, answered_at, ended_at, \
    end_reason, recording_path, a_loss, a_jitter_s, a_mos, b_loss, b_jitter_s, b_mos, line_id, \
    contact_id, waited_ms";

fn quality(row: &sqlx::any::AnyRow, side: &str) -> Result<Option<SideQuality>> {
    let loss: Option<f64> = row.try_get(format!("{side}_loss").as_str())?;
    let jitter: Option<f64> = row.try_get(format!("{side}_jitter_s").as_str())?;
    let mos: Option<f64> = row.try_get(format!("{side}_mos").as_str())?;
    Ok(match (loss, jitter, mos) {
        (Some(loss), Some(jitter_seconds), Some(mos)) => Some(SideQuality {
            loss,
            jitter_seconds,
            mos,
        }),
        _ => None,
    })
}

fn record(row: &sqlx::any::AnyRow) -> Result<CallRecord> {
    Ok(CallRecord {
        id: row.try_get("id")?,
        route: row.try_get("route")?,
        a_number: row.try_get("a_number")?,
        b_number: row.try_get("b_number")?,
        started_at: row.try_get("started_at")?,
        answered_at: row.try_get("answered_at")?,
        ended_at: row.try_get("ended_at")?,
        end_reason: row.try_get("end_reason")?,
        recording_path: row.try_get("recording_path")?,
        a_quality: quality(row, "a")?,
        b_quality: quality(row, "b")?,
        line_id: row.try_get("line_id")?,
        contact_id: row.try_get("contact_id")?,
        waited_ms: row.try_get("waited_ms")?,
    })
}

impl Store {
    /// Stores finished calls, all in one transaction.
    pub async fn insert_calls(&self, calls: &[CallRecord]) -> Result<()> {
        // The qualities go as text, cast in SQL: through `Any`, sqlx 0.8 declares a NULL f64
        // as float4, and PostgreSQL then refuses the next row's real f64 on the same prepared
        // statement ("incorrect binary data format").
        let text = |v: f64| Some(v.to_string());
        let q = |s: Option<SideQuality>| match s {
            Some(q) => (text(q.loss), text(q.jitter_seconds), text(q.mos)),
            None => (None, None, None),
        };
        let f = |n: u8| format!("CAST(${n} AS DOUBLE PRECISION)");
        let insert = format!(
            "INSERT INTO calls ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, {}, {}, {}, {}, {}, {}, $16, $17, $18)",
            f(10),
            f(11),
            f(12),
            f(13),
            f(14),
            f(15)
        );
        let mut tx = self.writer.begin().await?;
        for c in calls {
            let (a, b) = (q(c.a_quality), q(c.b_quality));
            sqlx::query(&insert)
                .bind(&c.id)
                .bind(&c.route)
                .bind(&c.a_number)
                .bind(&c.b_number)
                .bind(c.started_at)
                .bind(c.answered_at)
                .bind(c.ended_at)
                .bind(&c.end_reason)
                .bind(&c.recording_path)
                .bind(a.0)
                .bind(a.1)
                .bind(a.2)
                .bind(b.0)
                .bind(b.1)
                .bind(b.2)
                .bind(c.line_id)
                .bind(c.contact_id)
                .bind(c.waited_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The call `id`, if stored.
    pub async fn call(&self, id: &str) -> Result<Option<CallRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM calls WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// The `limit` most recent calls, latest first.
    pub async fn recent_calls(&self, limit: u32) -> Result<Vec<CallRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM calls ORDER BY started_at DESC, id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(record).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn call(id: &str, started_at: i64) -> CallRecord {
        CallRecord {
            id: id.into(),
            route: "relay".into(),
            a_number: "alice".into(),
            b_number: "1001".into(),
            started_at,
            answered_at: Some(started_at + 1500),
            ended_at: started_at + 9000,
            end_reason: "b_hangup".into(),
            recording_path: Some(format!("/var/lib/dialerd/recordings/{id}.wav")),
            a_quality: Some(SideQuality {
                loss: 0.01,
                jitter_seconds: 0.002,
                mos: 4.3,
            }),
            b_quality: None,
            ..CallRecord::default()
        }
    }

    crate::store::both_backends! {
        async fn calls_are_stored_read_back_and_listed_latest_first() {
            let (_dir, store) = crate::store::test_support::store().await;
            store
                .insert_calls(&[call("older", 1_000), call("newer", 2_000)])
                .await
                .unwrap();
            assert_eq!(
                store.call("older").await.unwrap(),
                Some(call("older", 1_000))
            );
            assert_eq!(store.call("missing").await.unwrap(), None);
            let ids: Vec<String> = store
                .recent_calls(10)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.id)
                .collect();
            assert_eq!(ids, ["newer", "older"]);
            assert_eq!(store.recent_calls(1).await.unwrap().len(), 1);
            // The same id twice is refused, and a batch holding it stores nothing.
            assert!(matches!(
                store
                    .insert_calls(&[call("third", 3_000), call("older", 3_000)])
                    .await,
                Err(StoreError::Conflict(_))
            ));
            assert_eq!(store.call("third").await.unwrap(), None);
        }
    }

    crate::store::both_backends! {
        async fn a_side_without_quality_then_one_with_it_are_both_stored() {
            let (_dir, store) = crate::store::test_support::store().await;
            // One statement, prepared once: a missing quality first, then a present one.
            let mut with_b = call("with_b", 2_000);
            with_b.b_quality = Some(SideQuality {
                loss: 0.25,
                jitter_seconds: 0.0125,
                mos: 3.5,
            });
            store
                .insert_calls(&[call("without_b", 1_000), with_b.clone()])
                .await
                .unwrap();
            assert_eq!(store.call("with_b").await.unwrap(), Some(with_b));
            assert_eq!(
                store.call("without_b").await.unwrap(),
                Some(call("without_b", 1_000))
            );
        }
    }
}
