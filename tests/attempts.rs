//! Call attempts recorded on contacts (what the dialer writes after each call), on a real
//! SQLite file: attempt count, last result, history entry, follow-up honoured by the callable
//! selection, and a final result moving the contact on by the task flow.

mod common;

use dialerd::store::contacts::{Attempt, ContactSpec};
use serde_json::json;

fn at(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

/// A busy attempt on `number` at 10:00:05 on 2025-01-15, due again at 10:30.
fn busy(number: &str) -> Attempt {
    Attempt {
        number: number.into(),
        result: "$busy".into(),
        sip_code: Some(486),
        call_id: Some("0123456789abcdef".into()),
        status: "open".into(),
        follow_up_ms: Some(at("2025-01-15T10:30:00Z")),
        at_ms: at("2025-01-15T10:00:05Z"),
    }
}

/// A campaign whose call task `dial` moves failed `$invalid_number` contacts on to a wait task
/// `invalid`: (campaign, dial, invalid).
async fn campaign(store: &dialerd::store::Store) -> (i64, i64, i64) {
    let c = store
        .create_campaign(
            &serde_json::from_value(json!({"name": "c", "default_region": "DE"})).unwrap(),
        )
        .await
        .unwrap()
        .id;
    let invalid = store
        .create_task(
            c,
            serde_json::from_value(
                json!({"name": "bad numbers", "kind": "wait", "settings": {"seconds": 86400}}),
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .id;
    let dial = store
        .create_task(
            c,
            serde_json::from_value(json!({"name": "dial", "kind": "call", "flow": [
                {"status": "failed", "detail": "$invalid_number", "next_task": invalid}
            ]}))
            .unwrap(),
        )
        .await
        .unwrap()
        .id;
    (c, dial, invalid)
}

both_stores_async! {
    async fn attempts_are_counted_kept_in_history_and_drive_follow_ups_and_the_flow() {
        let dir = tempfile::tempdir().unwrap();
        let store = common::open_store(dir.path()).await;
        let (c, dial, invalid) = campaign(&store).await;
        let spec: ContactSpec = serde_json::from_value(json!({
            "fields": {"name": "Ada"}, "phones": ["030 1234567"], "task_id": dial
        }))
        .unwrap();
        let k = store.create_contact(c, &spec, "test").await.unwrap().id;
        let callable = |now: &'static str| {
            let store = store.clone();
            async move {
                store
                    .next_callable(c, dial, at(now), 10)
                    .await
                    .unwrap()
                    .len()
            }
        };
        assert_eq!(
            callable("2025-01-15T10:00:00Z").await,
            1,
            "never called: callable"
        );

        // Busy: open again, to be called after the retry delay.
        let busy = busy("+49301234567");
        let after = store.record_attempt(c, k, &busy, "dialer").await.unwrap();
        assert_eq!(after.spec.attempts, 1);
        assert_eq!(after.last_result.as_deref(), Some("$busy"));
        assert_eq!(after.spec.detail, "$busy");
        assert_eq!(
            callable("2025-01-15T10:10:00Z").await,
            0,
            "not before its follow-up"
        );
        assert_eq!(
            callable("2025-01-15T10:31:00Z").await,
            1,
            "due again after it"
        );
        let history = store.history(k).await.unwrap();
        let last = &history.last().unwrap();
        assert_eq!(last.actor, "dialer");
        assert_eq!(last.change["op"], "attempt");
        assert_eq!(last.change["sip_code"], 486);
        assert_eq!(last.change["number"], "+49301234567");

        // Invalid number: final; the flow rule moves it to the other task.
        let invalid_number = Attempt {
            result: "$invalid_number".into(),
            sip_code: Some(404),
            status: "failed".into(),
            follow_up_ms: None,
            at_ms: at("2025-01-15T10:31:05Z"),
            ..busy
        };
        let after = store
            .record_attempt(c, k, &invalid_number, "dialer")
            .await
            .unwrap();
        assert_eq!(after.spec.attempts, 2);
        assert_eq!(
            after.spec.task_id,
            Some(invalid),
            "moved on by the flow: {after:?}"
        );
        assert_eq!(
            after.spec.status, "open",
            "entering a task it is open again"
        );
        assert_eq!(after.last_result.as_deref(), Some("$invalid_number"));
        assert_eq!(callable("2025-01-15T10:32:00Z").await, 0);
    }
}

both_stores_async! {
    async fn attempts_written_in_one_batch_end_as_those_written_one_at_a_time() {
        use dialerd::store::attempts::AttemptWrite;
        let dir = tempfile::tempdir().unwrap();
        let store = common::open_store(dir.path()).await;
        let (c, dial, invalid) = campaign(&store).await;
        // Two of each: one written alone, its twin in the batch.
        let mut ids = Vec::new();
        for n in 0..7 {
            let spec: ContactSpec = serde_json::from_value(json!({
                "fields": {"name": format!("c{n}")}, "phones": [format!("030 12345{n:02}")],
                "task_id": dial
            }))
            .unwrap();
            ids.push(store.create_contact(c, &spec, "test").await.unwrap().id);
        }
        let leased = store
            .lease_callable(c, dial, 7, at("2025-01-15T10:00:00Z"), "node")
            .await
            .unwrap();
        assert_eq!(leased.len(), 7);
        let busy = busy("+49301234500");
        let invalid_number = Attempt {
            result: "$invalid_number".into(),
            sip_code: Some(404),
            status: "failed".into(),
            follow_up_ms: None,
            ..busy.clone()
        };
        let sale = Attempt {
            result: "sale".into(),
            sip_code: Some(200),
            status: "success".into(),
            follow_up_ms: None,
            ..busy.clone()
        };
        let kinds = [busy, invalid_number, sale];
        for (k, a) in ids[..3].iter().zip(&kinds) {
            store.record_attempt(c, *k, a, "dialer").await.unwrap();
            store.release_lease(*k).await.unwrap();
        }
        // The last contact is deleted before its attempt is written: the others still are.
        let gone = ids[6];
        store.delete_contact(c, gone).await.unwrap();
        let mut batch: Vec<AttemptWrite> = ids[3..6]
            .iter()
            .zip(&kinds)
            .map(|(k, a)| AttemptWrite {
                campaign_id: c,
                contact_id: *k,
                attempt: a.clone(),
            })
            .collect();
        batch.push(AttemptWrite {
            campaign_id: c,
            contact_id: gone,
            attempt: kinds[0].clone(),
        });
        store.record_attempts(&batch, "dialer").await.unwrap();

        assert_eq!(store.leases().await.unwrap(), vec![], "every lease released");
        for (alone, batched) in ids[..3].iter().zip(&ids[3..6]) {
            let (a, b) = (
                store.contact(c, *alone).await.unwrap(),
                store.contact(c, *batched).await.unwrap(),
            );
            assert_eq!(
                (&a.spec.status, &a.spec.detail, a.spec.attempts, a.spec.task_id),
                (&b.spec.status, &b.spec.detail, b.spec.attempts, b.spec.task_id),
                "contact {batched} written in a batch ends as {alone} written alone"
            );
            assert_eq!(a.last_result, b.last_result);
            assert_eq!(a.spec.follow_up_at, b.spec.follow_up_at);
            let (ha, hb) = (
                store.history(*alone).await.unwrap(),
                store.history(*batched).await.unwrap(),
            );
            let changes = |h: &[dialerd::store::contacts::HistoryEntry]| {
                h.iter()
                    .map(|e| (e.actor.clone(), e.change.clone()))
                    .collect::<Vec<_>>()
            };
            // After the creation entries, which name each contact's own fields.
            assert_eq!(changes(&ha[1..]), changes(&hb[1..]));
            assert!(hb.len() > 1);
            assert_eq!(ha.last().unwrap().at, hb.last().unwrap().at);
        }
        let moved = store.contact(c, ids[4]).await.unwrap();
        assert_eq!(moved.spec.task_id, Some(invalid), "the flow moved it on");
    }
}
