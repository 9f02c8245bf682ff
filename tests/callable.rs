//! `Store::next_callable` on a real SQLite file with an injected `now`: calling hours judged
//! in each contact's zone (Berlin and New York), due order, and do-not-call lists.

mod common;

use dialerd::store::contacts::{ContactFilter, ContactSpec, Order};
use dialerd::store::dnc::DncScope;
use dialerd::store::Store;
use serde_json::json;

fn at(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    campaign: i64,
    task: i64,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_store(dir.path()).await;
    let c = store
        .create_campaign(
            &serde_json::from_value(json!({"name": "c", "default_region": "DE"})).unwrap(),
        )
        .await
        .unwrap();
    let t = store
        .create_task(
            c.id,
            serde_json::from_value(json!({"name": "dial", "kind": "call"})).unwrap(),
        )
        .await
        .unwrap();
    Setup {
        _dir: dir,
        store,
        campaign: c.id,
        task: t.id,
    }
}

impl Setup {
    /// Creates a contact named `name`; returns its id.
    async fn add(&self, name: &str, extra: serde_json::Value) -> i64 {
        let mut spec = json!({"fields": {"name": name}});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let spec: ContactSpec = serde_json::from_value(spec).unwrap();
        self.store
            .create_contact(self.campaign, &spec, "test")
            .await
            .unwrap()
            .id
    }

    /// Sets the campaign's calling hours (local times in each contact's zone).
    async fn hours(&self, from: &str, to: &str) {
        let mut campaign = self.store.campaign(self.campaign).await.unwrap().spec;
        campaign.calling_hours.from = from.into();
        campaign.calling_hours.to = to.into();
        self.store
            .update_campaign(self.campaign, &campaign)
            .await
            .unwrap();
    }

    async fn callable(&self, now: &str) -> Vec<String> {
        self.store
            .next_callable(self.campaign, self.task, at(now), 100)
            .await
            .unwrap()
            .iter()
            .map(|c| c.spec.fields["name"].as_str().unwrap().to_string())
            .collect()
    }
}

both_stores_async! {
    async fn calling_hours_follow_each_contacts_zone_and_due_order() {
        let s = setup().await;
        let ny = "America/New_York";
        s.add("b-fresh", json!({"phones": ["030 1000001"]})).await;
        s.add(
            "b-overdue",
            json!({"phones": ["030 1000002"], "attempts": 1, "follow_up_at": "2025-01-15T07:00:00Z"}),
        )
        .await;
        s.add(
            "b-older-overdue",
            json!({"phones": ["030 1000009"], "attempts": 2, "follow_up_at": "2025-01-14T07:00:00Z"}),
        )
        .await;
        s.add(
            "b-future",
            json!({"phones": ["030 1000003"], "attempts": 1, "follow_up_at": "2025-01-16T07:00:00Z"}),
        )
        .await;
        s.add(
            "b-called",
            json!({"phones": ["030 1000004"], "attempts": 1}),
        )
        .await;
        s.add(
            "b-done",
            json!({"phones": ["030 1000005"], "status": "success"}),
        )
        .await;
        s.add(
            "n-fresh",
            json!({"phones": ["+1 212 555 0101"], "time_zone": ny}),
        )
        .await;
        s.add(
            "n-overdue",
            json!({"phones": ["+1 212 555 0102"], "time_zone": ny, "attempts": 1,
                   "follow_up_at": "2025-01-15T12:00:00Z"}),
        )
        .await;
        s.add("b-fresh-2", json!({"phones": ["030 1000006"]})).await;

        // 07:30 UTC: 08:30 in Berlin (inside 08:00–21:00), 02:30 in New York (outside).
        assert_eq!(
            s.callable("2025-01-15T07:30:00Z").await,
            ["b-older-overdue", "b-overdue", "b-fresh", "b-fresh-2"]
        );
        // 20:30 UTC: 21:30 in Berlin (outside), 15:30 in New York (inside).
        assert_eq!(
            s.callable("2025-01-15T20:30:00Z").await,
            ["n-overdue", "n-fresh"]
        );
        // 13:00 UTC: both inside; overdue follow-ups of every zone first, then never-called by id.
        assert_eq!(
            s.callable("2025-01-15T13:00:00Z").await,
            [
                "b-older-overdue",
                "b-overdue",
                "n-overdue",
                "b-fresh",
                "n-fresh",
                "b-fresh-2"
            ]
        );
        // The limit cuts the same order.
        let two = s
            .store
            .next_callable(s.campaign, s.task, at("2025-01-15T13:00:00Z"), 2)
            .await
            .unwrap();
        assert_eq!(two.len(), 2);
        // Narrower hours on the campaign apply at once.
        s.hours("09:00", "21:00").await;
        assert_eq!(
            s.callable("2025-01-15T07:30:00Z").await,
            Vec::<String>::new()
        );

        // The listing in due order agrees, future follow-ups and called contacts after.
        let page = s
            .store
            .list_contacts(
                s.campaign,
                &ContactFilter {
                    status: Some("open".into()),
                    ..ContactFilter::default()
                },
                Order::Due,
                None,
                100,
                at("2025-01-15T13:00:00Z"),
            )
            .await
            .unwrap();
        let names: Vec<&str> = page
            .items
            .iter()
            .map(|c| c.spec.fields["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "b-older-overdue",
                "b-overdue",
                "n-overdue",
                "b-fresh",
                "n-fresh",
                "b-fresh-2",
                "b-future",
                "b-called"
            ]
        );
    }
}

both_stores_async! {
    async fn do_not_call_numbers_are_never_selected() {
        let s = setup().await;
        let now = "2025-01-15T10:00:00Z";
        s.add("one", json!({"phones": ["030 1000001"]})).await;
        let two = s
            .add("two", json!({"phones": ["030 1000002", "0151 23456789"]}))
            .await;
        s.add("three", json!({"phones": ["030 1000003"]})).await;
        assert_eq!(s.callable(now).await, ["one", "two", "three"]);

        // Global list: "one" goes; campaign list: one of "two"'s numbers goes, "two" stays.
        let r = s
            .store
            .dnc_add(DncScope::Global, None, &[(0, "+49 30 1000001".into())], "t")
            .await
            .unwrap();
        assert_eq!((r.added, r.contacts_marked), (1, 1));
        let r = s
            .store
            .dnc_add(
                DncScope::Campaign(s.campaign),
                None,
                &[(0, "030 1000002".into()), (1, "oops".into())],
                "t",
            )
            .await
            .unwrap();
        assert_eq!((r.added, r.bad_count), (1, 1));
        let picked = s
            .store
            .next_callable(s.campaign, s.task, at(now), 100)
            .await
            .unwrap();
        let names: Vec<&str> = picked
            .iter()
            .map(|c| c.spec.fields["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["two", "three"]);
        assert_eq!(picked[0].spec.phones, ["+4915123456789"]);
        assert_eq!(picked[0].dnc_numbers, ["+49301000002"]);

        // Listings mark them.
        let c = s.store.contact(s.campaign, two).await.unwrap();
        assert_eq!(c.dnc_numbers, ["+49301000002"]);

        // A contact created later with a listed number is blocked from the start.
        s.store
            .dnc_add(
                DncScope::Global,
                Some("DE"),
                &[(0, "030 1000007".into())],
                "t",
            )
            .await
            .unwrap();
        s.add("four", json!({"phones": ["+49 30 1000007"]})).await;
        s.add("five", json!({"phones": ["030 1000111"]})).await;
        assert_eq!(s.callable(now).await, ["two", "three", "five"]);

        // Off the list: callable again.
        assert_eq!(
            s.store
                .dnc_remove(DncScope::Global, None, &["+49301000001".into()])
                .await
                .unwrap(),
            1
        );
        assert_eq!(s.callable(now).await, ["one", "two", "three", "five"]);
    }
}

both_stores_async! {
    /// A call task's `settings.filter` leaves out the contacts it does not match (follow-ups
    /// too), and `settings.order` sorts the never-called ones after the due callbacks: as numbers
    /// when the form types the field `number`, as text otherwise, missing values last.
    async fn filter_and_order_choose_which_contacts_come_first_and_which_never() {
        let s = setup().await;
        s.store
            .put_form(
                s.campaign,
                serde_json::from_value(json!({"fields": [
                    {"key": "name", "type": "text"},
                    {"key": "score", "type": "number"},
                    {"key": "city", "type": "text"},
                    {"key": "tier", "type": "text"}
                ]}))
                .unwrap(),
                "test",
            )
            .await
            .unwrap();
        let people = [
            (
                "low",
                "030 1000001",
                json!({"score": "2", "city": "Köln", "tier": "b"}),
            ),
            (
                "high",
                "030 1000002",
                json!({"score": "10", "city": "Bonn", "tier": "a"}),
            ),
            (
                "mid",
                "030 1000003",
                json!({"score": "9", "city": "Köln", "tier": "c"}),
            ),
            ("none", "030 1000004", json!({"city": "Köln"})),
            (
                "far",
                "030 1000005",
                json!({"score": "50", "city": "Berlin", "tier": "a"}),
            ),
        ];
        for (name, phone, fields) in people {
            let mut f = fields.as_object().unwrap().clone();
            f.insert("name".into(), json!(name));
            let spec: ContactSpec =
                serde_json::from_value(json!({"fields": f, "phones": [phone]})).unwrap();
            s.store
                .create_contact(s.campaign, &spec, "test")
                .await
                .unwrap();
        }
        let callback: ContactSpec = serde_json::from_value(json!({
            "fields": {"name": "callback", "score": "1", "city": "Bonn"},
            "phones": ["030 1000006"], "attempts": 1, "follow_up_at": "2025-01-15T07:00:00Z"
        }))
        .unwrap();
        s.store
            .create_contact(s.campaign, &callback, "test")
            .await
            .unwrap();
        let noon = "2025-01-15T11:00:00Z";
        // Without settings: due callback first, then by id.
        assert_eq!(
            s.callable(noon).await,
            ["callback", "low", "high", "mid", "none", "far"]
        );

        let mut task = s.store.task(s.campaign, s.task).await.unwrap().spec;
        let mut set = |settings: serde_json::Value| {
            task.settings = settings;
            task.clone()
        };
        // Highest score first (as numbers: 10 before 9), missing last; Berlin never.
        let spec = set(json!({"filter": {"fields": {"city": ["Köln", "Bonn"]}},
                              "order": {"field": "score", "direction": "desc"}}));
        s.store.update_task(s.campaign, s.task, spec).await.unwrap();
        assert_eq!(
            s.callable(noon).await,
            ["callback", "high", "mid", "low", "none"]
        );
        // Text order ascending; the filter's text condition drops the callback (Bonn) too.
        let spec = set(json!({"filter": {"text": "köln"}, "order": {"field": "tier"}}));
        s.store.update_task(s.campaign, s.task, spec).await.unwrap();
        assert_eq!(s.callable(noon).await, ["low", "mid", "none"]);
        // A JSON boolean field filters as `true`/`false` on both backends.
        for (name, phone, vip) in [("vip", "030 1000007", true), ("plain", "030 1000008", false)] {
            let spec: ContactSpec = serde_json::from_value(json!({
                "fields": {"name": name, "city": "Köln", "vip": vip}, "phones": [phone]
            }))
            .unwrap();
            s.store
                .create_contact(s.campaign, &spec, "test")
                .await
                .unwrap();
        }
        let spec = set(json!({"filter": {"fields": {"vip": true}}}));
        s.store.update_task(s.campaign, s.task, spec).await.unwrap();
        assert_eq!(s.callable(noon).await, ["vip"]);
        let spec = set(json!({"filter": {"fields": {"vip": [false]}}, "order": {"field": "vip"}}));
        s.store.update_task(s.campaign, s.task, spec).await.unwrap();
        assert_eq!(s.callable(noon).await, ["plain"]);
        // A bad field name is refused, naming it.
        let spec = set(json!({"order": {"field": "a\"b"}}));
        let e = s
            .store
            .update_task(s.campaign, s.task, spec)
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("settings.order.field"), "{e}");
    }
}

both_stores_async! {
    async fn a_contact_leased_to_a_call_is_not_callable_until_its_lease_goes() {
        let s = setup().await;
        let berlin = json!({"phones": ["030 1234567"]});
        let a = s.add("a", berlin.clone()).await;
        s.add("b", json!({"phones": ["030 1234568"]})).await;
        let noon = "2025-01-15T12:00:00Z";
        assert_eq!(s.callable(noon).await, ["a", "b"]);
        let leased = s
            .store
            .lease_callable(s.campaign, s.task, 1, at(noon), "node-1")
            .await
            .unwrap();
        assert_eq!(leased.iter().map(|c| c.id).collect::<Vec<_>>(), [a]);
        assert_eq!(s.callable(noon).await, ["b"], "a is being called");
        let why = s
            .store
            .explain_callable(s.campaign, a, at(noon))
            .await
            .unwrap();
        assert!(!why.callable);
        assert_eq!(
            why.reasons,
            ["being called now (leased to a call of node node-1)"]
        );
        // The next lease takes b, not a again.
        let next = s
            .store
            .lease_callable(s.campaign, s.task, 2, at(noon), "node-1")
            .await
            .unwrap();
        assert_eq!(next.len(), 1);
        assert_ne!(next[0].id, a);
        s.store.release_lease(a).await.unwrap();
        assert_eq!(s.callable(noon).await, ["a"]);
    }
}

both_stores_async! {
    /// A zone whose callable contacts are all never called, and one whose are all follow-ups,
    /// are both dialled: the task's zones come from the follow-ups' index and the
    /// never-called contacts' index together (migration 0019 keeps new contacts out of the
    /// first). A zone with only closed or called-without-follow-up contacts gives nothing.
    async fn zones_of_only_fresh_or_only_follow_up_contacts_are_both_dialled() {
        let s = setup().await;
        let ny = "America/New_York";
        let tokyo = "Asia/Tokyo";
        s.add("b-fresh", json!({"phones": ["030 1000001"]})).await;
        s.add(
            "n-overdue",
            json!({"phones": ["+1 212 555 0102"], "time_zone": ny, "attempts": 1,
                   "follow_up_at": "2025-01-15T12:00:00Z"}),
        )
        .await;
        s.add(
            "t-called",
            json!({"phones": ["+81 3 1234 5678"], "time_zone": tokyo, "attempts": 1}),
        )
        .await;
        // 13:00 UTC: 14:00 in Berlin, 08:00 in New York, 22:00 in Tokyo.
        s.hours("00:00", "24:00").await;
        assert_eq!(
            s.callable("2025-01-15T13:00:00Z").await,
            ["n-overdue", "b-fresh"]
        );
        // A Berlin follow-up and a New York newcomer: each zone now in both lists.
        s.add(
            "b-overdue",
            json!({"phones": ["030 1000002"], "attempts": 1, "follow_up_at": "2025-01-15T11:00:00Z"}),
        )
        .await;
        s.add("n-fresh", json!({"phones": ["+1 212 555 0101"], "time_zone": ny}))
            .await;
        assert_eq!(
            s.callable("2025-01-15T13:00:00Z").await,
            ["b-overdue", "n-overdue", "b-fresh", "n-fresh"]
        );
    }
}
