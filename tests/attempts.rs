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

both_stores_async! {
    async fn attempts_are_counted_kept_in_history_and_drive_follow_ups_and_the_flow() {
        let dir = tempfile::tempdir().unwrap();
        let store = common::open_store(dir.path()).await;
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
        let busy = Attempt {
            number: "+49301234567".into(),
            result: "$busy".into(),
            sip_code: Some(486),
            call_id: Some("0123456789abcdef".into()),
            status: "open".into(),
            follow_up_ms: Some(at("2025-01-15T10:30:00Z")),
            at_ms: at("2025-01-15T10:00:05Z"),
        };
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
