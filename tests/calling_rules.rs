//! Country calling rules against the real daemon: contacts in France (built-in décret
//! 2022-1313 rule) and Germany (a rule from `[[calling_rules]]`), judged with the callable
//! routes' `at=`, attempts written by the dialer's store function into the daemon's database,
//! and a configuration with an unknown rule key refused.

mod common;

use common::api::{campaign, Api, ADMIN, BASE};
use common::Daemon;
use dialerd::store::contacts::Attempt;
use serde_json::{json, Value};

/// Germany: Monday to Saturday 09:00–20:00, at most 2 attempts in 30 days.
const DE_RULE: &str = r#"
[[calling_rules]]
country = "DE"
windows = [{ days = ["mon", "tue", "wed", "thu", "fri", "sat"], from = "09:00", to = "20:00" }]
max_attempts_30d = 2
"#;

fn at(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

/// Ids of the callable contacts at `when`.
fn callable(api: &Api, c: i64, t: i64, when: &str) -> Vec<i64> {
    let v = api.ok(
        "GET",
        &format!("/api/v1/campaigns/{c}/contacts/callable?task={t}&at={when}"),
        None,
    );
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_i64().unwrap())
        .collect()
}

/// The explanation of one contact at `when`.
fn explain(api: &Api, c: i64, k: i64, when: &str) -> Value {
    api.ok(
        "GET",
        &format!("/api/v1/campaigns/{c}/contacts/{k}/callable?at={when}"),
        None,
    )
}

both_stores_async! {
    async fn french_and_german_contacts_follow_their_countrys_rule() {
        let d = Daemon::start_with(
            &format!("{BASE}{DE_RULE}"),
            &[("DIALERD_ADMIN_TOKEN", ADMIN)],
        );
        let api = Api::new(&d, ADMIN);
        let (c, t) = campaign(&api, "rules");
        let contact = |phone: &str| {
            api.ok(
                "POST",
                &format!("/api/v1/campaigns/{c}/contacts"),
                Some(json!({"phones": [phone], "task_id": t})),
            )["id"]
                .as_i64()
                .unwrap()
        };
        let fr = contact("+33 6 12 34 56 78");
        let de = contact("030 1234567");

        // Thursday 15 January 2026 (UTC+1 in both): 11:00 both callable; 13:30 the French lunch
        // gap; 20:30 both closed (Germany's rule ends at 20:00, the campaign's hours at 21:00).
        assert_eq!(callable(&api, c, t, "2026-01-15T10:00:00Z"), [fr, de]);
        assert_eq!(callable(&api, c, t, "2026-01-15T12:30:00Z"), [de]);
        assert_eq!(
            callable(&api, c, t, "2026-01-15T19:30:00Z"),
            Vec::<i64>::new()
        );
        let v = explain(&api, c, fr, "2026-01-15T12:30:00Z");
        assert_eq!(
            v,
            json!({
                "at": "2026-01-15T12:30:00.000Z",
                "callable": false,
                "reasons": ["FR: outside Monday–Friday 10:00–13:00, 14:00–20:00 Europe/Paris"]
            })
        );
        let v = explain(&api, c, de, "2026-01-15T19:30:00Z");
        assert_eq!(
            v["reasons"],
            json!(["DE: outside Monday–Saturday 09:00–20:00 Europe/Berlin"])
        );
        // Saturday 17 January, 11:00: Germany's rule allows it, France's does not.
        assert_eq!(callable(&api, c, t, "2026-01-17T10:00:00Z"), [de]);
        // Tuesday 14 July 2026 (UTC+2), 11:00: a French public holiday, an ordinary German day.
        assert_eq!(callable(&api, c, t, "2026-07-14T09:00:00Z"), [de]);
        assert_eq!(
            explain(&api, c, fr, "2026-07-14T09:00:00Z")["reasons"],
            json!(["FR: 2026-07-14 is a public holiday in Europe/Paris"])
        );
        assert_eq!(
            explain(&api, c, de, "2026-01-15T10:00:00Z"),
            json!({"at": "2026-01-15T10:00:00.000Z", "callable": true, "reasons": []})
        );

        // Attempts as the dialer records them, into the daemon's own database.
        let store = d.open_store().await;
        let attempt = |day: &str| Attempt {
            number: String::new(),
            result: "$no_answer".into(),
            sip_code: Some(480),
            call_id: None,
            status: "open".into(),
            follow_up_ms: Some(at(&format!("{day}T10:00:01Z"))),
            at_ms: at(&format!("{day}T10:00:00Z")),
        };
        for day in ["2025-12-17", "2026-01-01"] {
            for k in [fr, de] {
                store
                    .record_attempt(c, k, &attempt(day), "dialer")
                    .await
                    .unwrap();
            }
        }
        // 2 attempts: Germany's limit reached, France may have 2 more.
        assert_eq!(callable(&api, c, t, "2026-01-15T10:00:00Z"), [fr]);
        assert_eq!(
            explain(&api, c, de, "2026-01-15T10:00:00Z")["reasons"],
            json!(["DE: 2 attempts in 30 days"])
        );
        for day in ["2026-01-05", "2026-01-10"] {
            store
                .record_attempt(c, fr, &attempt(day), "dialer")
                .await
                .unwrap();
        }
        assert_eq!(
            callable(&api, c, t, "2026-01-15T10:00:00Z"),
            Vec::<i64>::new()
        );
        // In the lunch gap: both French reasons at once.
        assert_eq!(
            explain(&api, c, fr, "2026-01-15T12:30:00Z")["reasons"],
            json!([
                "FR: outside Monday–Friday 10:00–13:00, 14:00–20:00 Europe/Paris",
                "FR: 4 attempts in 30 days"
            ])
        );
        // Friday 16 January, 11:00 in both zones: the attempts of 17 December 10:00 UTC are 30
        // days old and drop out (France 3 of 4, Germany 1 of 2); a minute earlier they count.
        // Germany's follow-up (1 January) is the older: it comes first.
        assert_eq!(callable(&api, c, t, "2026-01-16T10:00:00Z"), [de, fr]);
        assert_eq!(
            callable(&api, c, t, "2026-01-16T09:59:00Z"),
            Vec::<i64>::new()
        );
        store.close().await;

        // A contact waiting in a wait task is not the dialer's, and says so.
        let wait = api.ok(
            "POST",
            &format!("/api/v1/campaigns/{c}/tasks"),
            Some(json!({"name": "later", "kind": "wait", "settings": {"seconds": 60}})),
        )["id"]
            .as_i64()
            .unwrap();
        let waiting = api.ok(
            "POST",
            &format!("/api/v1/campaigns/{c}/contacts"),
            Some(json!({"phones": ["030 7654321"], "task_id": wait})),
        )["id"]
            .as_i64()
            .unwrap();
        assert_eq!(
            explain(&api, c, waiting, "2026-01-15T10:00:00Z")["reasons"],
            json!([format!("task {wait} is not a call task")])
        );

        // Unknown contact: 404; a bad `at`: 422 naming it.
        let (status, _) = api.call(
            "GET",
            &format!("/api/v1/campaigns/{c}/contacts/999999/callable"),
            None,
        );
        assert_eq!(status, 404);
        let (status, v) = api.call(
            "GET",
            &format!("/api/v1/campaigns/{c}/contacts/{fr}/callable?at=soon"),
            None,
        );
        assert_eq!((status, v["field"].as_str()), (422, Some("at")), "{v}");
    }
}

both_stores! {
    fn a_rule_with_an_unknown_key_or_a_bad_window_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (text, key) in [
            (
                "[[calling_rules]]\ncountry = \"FR\"\nmax_attempts = 4\n",
                "unknown field `max_attempts`",
            ),
            (
                "[[calling_rules]]\ncountry = \"FR\"\nwindows = [{ days = [\"mon\"], from = \"14:00\", to = \"13:00\" }]\n",
                "calling_rules[0].windows[0].to",
            ),
            (
                "[[calling_rules]]\ncountry = \"FR\"\nwindows = [{ days = [\"monday\"], from = \"09:00\", to = \"13:00\" }]\n",
                "calling_rules[0].windows[0].days[0]",
            ),
            ("[[calling_rules]]\ncountry = \"XX\"\n", "calling_rules[0].country"),
        ] {
            let path = dir.path().join("bad.toml");
            std::fs::write(&path, text).unwrap();
            let out = common::command()
                .args(["check-config", "--config"])
                .arg(&path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{text}: {stderr}");
            assert!(stderr.contains(key), "{text}: {stderr}");
        }
        let path = dir.path().join("good.toml");
        std::fs::write(&path, DE_RULE).unwrap();
        let out = common::command()
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("max_attempts_30d = 2"));
    }
}
