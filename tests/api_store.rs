//! The REST API over the real binary and a real SQLite file: campaigns, tasks, CSV import,
//! contacts, users and roles, problem details, and an import cut short by SIGKILL.

mod common;

use common::api::{campaign, start, Api, ADMIN, BASE};
use common::{http_request, metric, Daemon};
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

both_stores! {
    fn first_start_writes_the_admin_token_and_bad_tokens_get_401() {
        let mut d = Daemon::start(BASE);
        let line = d
            .seen
            .iter()
            .find(|l| l["fields"]["message"] == "created user admin; its API token is in this file")
            .cloned()
            .unwrap_or_else(|| panic!("no admin token log line: {:#?}", d.seen));
        let file = line["fields"]["file"].as_str().unwrap().to_string();
        assert!(file.ends_with("state/admin.token"), "{file}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
        let me = Api::new(&d, &token).ok("GET", "/api/v1/me", None);
        assert_eq!(
            (me["name"].as_str(), me["role"].as_str()),
            (Some("admin"), Some("admin"))
        );
        // The SQLite file is made in the state directory unless store.url names a database.
        assert_eq!(
            d.dir.path().join("state/dialerd.db").is_file(),
            common::pg::current() == common::pg::Backend::Sqlite
        );

        for token in ["wrong", ""] {
            let (status, body) = Api::new(&d, token).call("GET", "/api/v1/campaigns", None);
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["status"], 401);
            assert!(
                body["detail"].as_str().unwrap().contains("Bearer"),
                "{body}"
            );
        }
        let (status, kind, _) = http_request(d.http, "GET", "/api/v1/campaigns", &[], b"");
        assert_eq!((status, kind.as_str()), (401, "application/problem+json"));

        // The token survives a restart; no second admin or file is made.
        d.signal(libc::SIGTERM);
        d.wait_exit(Duration::from_secs(5)).unwrap();
        std::fs::remove_file(&file).unwrap();
        let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
        let d2 = Daemon::start_in(dir, BASE, &[]);
        assert!(!std::path::Path::new(&file).exists());
        assert_eq!(Api::new(&d2, &token).call("GET", "/api/v1/me", None).0, 200);
    }
}

both_stores! {
    fn bad_input_is_a_problem_naming_the_field() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        let cases = [
            (json!({"name": "x", "colour": "red"}), 422, "colour"),
            (
                json!({"name": "x", "windows": [{"days": ["mon"], "from": "17:00", "to": "09:00"}]}),
                422,
                "windows[0].to",
            ),
            (
                json!({"name": "x", "time_zone": "Mars/Olympus"}),
                422,
                "time_zone",
            ),
            (
                json!({"name": "x", "default_region": "XX"}),
                422,
                "default_region",
            ),
            (
                json!({"name": "x", "windows": [{"days": ["mon"], "form": "09:00", "to": "17:00"}]}),
                422,
                "windows[0].form",
            ),
            (json!({"name": "x", "recording": "yes"}), 422, "recording"),
        ];
        for (body, status, field) in cases {
            let (got, problem) = api.call("POST", "/api/v1/campaigns", Some(body.clone()));
            assert_eq!(
                (got, problem["field"].as_str()),
                (status, Some(field)),
                "{body}: {problem}"
            );
            assert!(
                problem["detail"].as_str().unwrap().contains(field),
                "{problem}"
            );
            assert_eq!(problem["title"], "Unprocessable Entity");
        }
        let (status, kind, _) = http_request(
            d.http,
            "POST",
            "/api/v1/campaigns",
            &[
                ("Authorization", &format!("Bearer {ADMIN}")),
                ("Content-Type", "application/json"),
            ],
            b"{not json",
        );
        assert_eq!((status, kind.as_str()), (400, "application/problem+json"));
        // Nothing half-written.
        assert_eq!(api.ok("GET", "/api/v1/campaigns", None), json!([]));

        let (c, _) = campaign(&api, "Spring");
        let (status, p) = api.call(
            "PATCH",
            &format!("/api/v1/campaigns/{c}"),
            Some(json!({"stauts": "enabled"})),
        );
        assert_eq!((status, p["field"].as_str()), (422, Some("stauts")), "{p}");
        // Under the regulators' 15 s of ringing; a planned wait past the 2 s rule.
        for (key, value) in [("ring_timeout_seconds", 5), ("planned_wait_ms", 2500)] {
            let (status, p) = api.call(
                "POST",
                &format!("/api/v1/campaigns/{c}/tasks"),
                Some(json!({"name": "t", "kind": "call", "settings": {key: value}})),
            );
            let field = format!("settings.{key}");
            assert_eq!(
                (status, p["field"].as_str()),
                (422, Some(field.as_str())),
                "{p}"
            );
        }
        let (status, p) = api.call("POST", &format!("/api/v1/campaigns/{c}/tasks"), Some(json!({"name": "t", "kind": "wait", "settings": {"seconds": 60}, "flow": [{"status": "success", "next_task": 999}]})));
        assert_eq!(
            (status, p["field"].as_str()),
            (422, Some("flow[0].next_task")),
            "{p}"
        );
        // A webhook URL that could not be sent as written is refused when the task is saved.
        for (url, why) in [
            ("ftp://crm.example.com/", "not an http"),
            ("https://crm example.com/in", "percent-encoded"),
            ("https://crm.example.com:99999/in", "bad port"),
        ] {
            let (status, p) = api.call(
                "POST",
                &format!("/api/v1/campaigns/{c}/tasks"),
                Some(json!({"name": "hook", "kind": "webhook", "settings": {"url": url}})),
            );
            assert_eq!(
                (status, p["field"].as_str()),
                (422, Some("settings.url")),
                "{p}"
            );
            assert!(p["detail"].as_str().unwrap().contains(why), "{p}");
        }
        let (status, p) = api.call("GET", "/api/v1/campaigns/abc", None);
        assert_eq!(status, 400, "{p}");
        let (status, p) = api.call(
            "GET",
            &format!("/api/v1/campaigns/{c}/contacts?colour=red"),
            None,
        );
        assert_eq!((status, p["field"].as_str()), (400, Some("colour")), "{p}");
        assert_eq!(api.call("GET", "/api/v1/campaigns/999", None).0, 404);
        let (status, p) = api.import(c, "phone=tel", "name,phone\nAnn,030 1234567\n");
        assert_eq!((status, p["field"].as_str()), (422, Some("phone")), "{p}");
        assert_eq!(
            api.ok("GET", &format!("/api/v1/campaigns/{c}/imports"), None),
            json!([])
        );
    }
}

both_stores! {
    fn import_list_edit_replace_and_append() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        let (c, task) = campaign(&api, "Spring");

        let csv = "name,phone,mobile,time_zone\n\
                   Ann,030 1234567,,\n\
                   Bob,030 CALL ME,,\n\
                   Cid,(040) 123-4567,0151 23456789,America/New_York\n\
                   Dan,+49 30 1234567,,\n\
                   \"Eve, Jr.\",089 1234567,,\n\
                   Fay,,,\n\
                   Gus,0711 1234567,,Moon/Base\n";
        let (status, r) = api.import(c, "phone=phone,mobile", csv);
        assert_eq!(status, 200, "{r}");
        assert_eq!(
            (
                r["rows"].as_i64(),
                r["inserted"].as_i64(),
                r["bad"].as_i64(),
                r["duplicates"].as_i64()
            ),
            (Some(7), Some(3), Some(3), Some(1)),
            "{r}"
        );
        let problems: Vec<(i64, String)> = r["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["line"].as_i64().unwrap(),
                    p["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            problems,
            [
                (3, "bad".into()),
                (5, "duplicate".into()),
                (7, "bad".into()),
                (8, "bad".into())
            ],
            "{r}"
        );
        assert_eq!(r["state"], "done");

        // Listed two at a time; numbers in E.164, zones from the column or the country.
        let all = api.all_contacts(c, "", 2);
        assert_eq!(all.len(), 3);
        let ann = &all[0];
        assert_eq!(ann["phones"], json!(["+49301234567"]));
        assert_eq!(
            (
                ann["status"].as_str(),
                ann["detail"].as_str(),
                ann["task_id"].as_i64()
            ),
            (Some("open"), Some("$none"), Some(task))
        );
        assert_eq!(ann["time_zone"], "Europe/Berlin");
        assert_eq!(all[1]["phones"], json!(["+49401234567", "+4915123456789"]));
        assert_eq!(all[1]["time_zone"], "America/New_York");
        assert_eq!(all[2]["fields"]["name"], "Eve, Jr.");
        let found = api.all_contacts(c, "text=jr.", 10);
        assert_eq!(found.len(), 1);

        // A result on Ann: replace keeps her and says so.
        let ann_id = ann["id"].as_i64().unwrap();
        let patched = api.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}/contacts/{ann_id}"),
            Some(json!({"status": "success", "detail": "sale"})),
        );
        assert_eq!(patched["status"], "success");
        let got = api.ok(
            "GET",
            &format!("/api/v1/campaigns/{c}/contacts/{ann_id}"),
            None,
        );
        let history = got["history"].as_array().unwrap();
        assert_eq!(history.last().unwrap()["actor"], "admin");
        assert_eq!(
            history.last().unwrap()["change"]["changes"]["status"],
            json!(["open", "success"])
        );

        let (_, r) = api.import(
            c,
            "mode=replace",
            "phone,name\n030 1234567,Ann again\n0221 1234567,Hal\n",
        );
        assert_eq!(
            (
                r["removed"].as_i64(),
                r["kept_with_results"].as_i64(),
                r["inserted"].as_i64(),
                r["duplicates"].as_i64()
            ),
            (Some(2), Some(1), Some(1), Some(1)),
            "{r}"
        );
        assert!(
            r["problems"][0]["reason"]
                .as_str()
                .unwrap()
                .contains(&format!("contact {ann_id}")),
            "{r}"
        );
        let names: Vec<String> = api
            .all_contacts(c, "", 100)
            .iter()
            .map(|c| c["fields"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["Ann", "Hal"]);

        // Append without a header: columns by number.
        let (_, r) = api.import(
            c,
            "mode=append&header=false&phone=2",
            "Ivy,0201 1234567\nHal,0221 1234567\n",
        );
        assert_eq!(
            (
                r["inserted"].as_i64(),
                r["duplicates"].as_i64(),
                r["removed"].as_i64()
            ),
            (Some(1), Some(1), Some(0)),
            "{r}"
        );
        assert_eq!(api.all_contacts(c, "status=open", 100).len(), 2);
        assert_eq!(
            api.all_contacts(c, "status=success&detail=sale", 100).len(),
            1
        );

        let history = api.ok("GET", &format!("/api/v1/campaigns/{c}/imports"), None);
        let modes: Vec<&str> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["mode"].as_str().unwrap())
            .collect();
        assert_eq!(modes, ["append", "replace", "append"]);

        // Bulk edit and move.
        let second = api.ok(
            "POST",
            &format!("/api/v1/campaigns/{c}/tasks"),
            Some(json!({"name": "later", "kind": "wait", "settings": {"seconds": 60}})),
        );
        let r = api.ok(
            "POST",
            &format!("/api/v1/campaigns/{c}/contacts/bulk"),
            Some(json!({"filter": {"status": "open"}, "field": "fields.batch", "value": "B1"})),
        );
        assert_eq!(r["changed"], 2);
        let r = api.ok(
            "POST",
            &format!("/api/v1/campaigns/{c}/contacts/move"),
            Some(json!({"filter": {"text": "b1"}, "task_id": second["id"]})),
        );
        assert_eq!(r["moved"], 2);
        assert_eq!(
            api.all_contacts(c, &format!("task={}", second["id"]), 100)
                .len(),
            2
        );

        // Due order: overdue follow-up, never called, future follow-up.
        let ids: Vec<i64> = api
            .all_contacts(c, "", 100)
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect();
        api.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}/contacts/{}", ids[0]),
            Some(json!({"follow_up_at": "2999-01-01T00:00:00Z", "attempts": 1})),
        );
        api.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}/contacts/{}", ids[2]),
            Some(json!({"follow_up_at": "2000-01-01T00:00:00Z", "attempts": 1})),
        );
        let due: Vec<i64> = api
            .all_contacts(c, "order=due", 1)
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect();
        assert_eq!(due, [ids[2], ids[1], ids[0]]);

        let (_, text) = d.get("/metrics");
        assert_eq!(metric(&text, "dialerd_imports_total"), Some(3.0), "{text}");
        assert_eq!(
            metric(&text, "dialerd_import_rows_total{result=\"inserted\"}"),
            Some(5.0)
        );
        assert_eq!(
            metric(&text, "dialerd_import_rows_total{result=\"duplicate\"}"),
            Some(3.0)
        );
        let route =
            "dialerd_api_requests_total{code=\"200\",route=\"/api/v1/campaigns/{id}/contacts/import\"}";
        assert_eq!(metric(&text, route), Some(3.0), "{text}");
    }
}

both_stores! {
    /// Do-not-call lists over HTTP (JSON and CSV, global and per campaign), their marks in
    /// listings, and the callable selection with an `at` time in and out of calling hours.
    fn dnc_lists_and_callable_contacts() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        let (c, task) = campaign(&api, "Dnc");
        let (_, r) = api.import(
            c,
            "",
            "name,phone,time_zone\nAnn,030 1000001,\nBob,030 1000002,\nCid,030 1000003,America/New_York\nDan,030 1000004,\n",
        );
        assert_eq!(r["inserted"], 4, "{r}");
        let callable = |at: &str| -> Vec<String> {
            let v = api.ok(
                "GET",
                &format!("/api/v1/campaigns/{c}/contacts/callable?limit=10&task={task}&at={at}"),
                None,
            );
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["fields"]["name"].as_str().unwrap().to_string())
                .collect()
        };
        // 15:00 UTC: 16:00 in Berlin, 10:00 in New York; 06:00 UTC: only New York is too early.
        assert_eq!(
            callable("2025-01-15T15:00:00Z"),
            ["Ann", "Bob", "Cid", "Dan"]
        );
        assert_eq!(callable("2025-01-15T07:30:00Z"), ["Ann", "Bob", "Dan"]);

        // Global list by JSON (international form), the campaign's by CSV (national form).
        let r = api.ok(
            "POST",
            "/api/v1/dnc",
            Some(json!({"phones": ["+49 30 1000001", "+49 30 1000001", "not a number"]})),
        );
        assert_eq!(
            (
                r["added"].as_u64(),
                r["bad_count"].as_u64(),
                r["contacts_marked"].as_u64()
            ),
            (Some(1), Some(1), Some(1)),
            "{r}"
        );
        assert_eq!(r["bad"][0]["at"], 2);
        let auth = format!("Bearer {ADMIN}");
        let (status, _, text) = http_request(
            d.http,
            "POST",
            &format!("/api/v1/campaigns/{c}/dnc?column=tel"),
            &[("Authorization", &auth), ("Content-Type", "text/csv")],
            b"who,tel\nBob,030 1000002\nx,\nZed,030 7777777\n",
        );
        assert_eq!(status, 200, "{text}");
        let r: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (r["added"].as_u64(), r["contacts_marked"].as_u64()),
            (Some(2), Some(1)),
            "{r}"
        );
        let page = api.ok("GET", &format!("/api/v1/campaigns/{c}/dnc?limit=1"), None);
        assert_eq!(page["items"][0]["phone"], "+49301000002");
        assert_eq!(page["items"][0]["added_by"], "admin");
        let rest = api.ok(
            "GET",
            &format!(
                "/api/v1/campaigns/{c}/dnc?limit=1&cursor={}",
                page["next"].as_str().unwrap().replace('+', "%2B")
            ),
            None,
        );
        assert_eq!(rest["items"][0]["phone"], "+49307777777");
        assert_eq!(rest["next"], Value::Null);

        assert_eq!(callable("2025-01-15T15:00:00Z"), ["Cid", "Dan"]);
        let listed = api.all_contacts(c, "", 10);
        let marks: Vec<Value> = listed.iter().map(|c| c["dnc_numbers"].clone()).collect();
        assert_eq!(
            marks,
            [
                json!(["+49301000001"]),
                json!(["+49301000002"]),
                json!([]),
                json!([])
            ]
        );

        // A bad CSV column is named; removing a number makes its contact callable again.
        let (status, _, text) = http_request(
            d.http,
            "POST",
            "/api/v1/dnc?column=tel",
            &[("Authorization", &auth), ("Content-Type", "text/csv")],
            b"phone\n+4930\n",
        );
        assert_eq!(status, 422, "{text}");
        assert!(text.contains("\"field\":\"column\""), "{text}");
        let r = api.ok(
            "DELETE",
            "/api/v1/dnc",
            Some(json!({"phones": ["+49 30 1000001"]})),
        );
        assert_eq!(r["removed"], 1);
        assert_eq!(callable("2025-01-15T15:00:00Z"), ["Ann", "Cid", "Dan"]);
        let (status, p) = api.call(
            "GET",
            &format!("/api/v1/campaigns/{c}/contacts/callable?at=yesterday"),
            None,
        );
        assert_eq!((status, p["field"].as_str()), (422, Some("at")), "{p}");
    }
}

both_stores! {
    /// Who may do what: every role against every route.
    fn role_matrix() {
        let d = start();
        let admin = Api::new(&d, ADMIN);
        let (c, task) = campaign(&admin, "Roles");
        let contact = admin.ok(
            "POST",
            &format!("/api/v1/campaigns/{c}/contacts"),
            Some(json!({"phones": ["030 1234567"]})),
        );
        let k = contact["id"].as_i64().unwrap();
        let mut tokens = vec![("admin", ADMIN.to_string())];
        for role in ["operator", "supervisor", "backoffice", "agent", "proxy"] {
            let u = admin.ok(
                "POST",
                "/api/v1/users",
                Some(json!({"name": role, "role": role})),
            );
            let t = admin.ok(
                "POST",
                &format!("/api/v1/users/{}/tokens", u["id"]),
                Some(json!({"label": "test"})),
            );
            tokens.push((role, t["token"].as_str().unwrap().to_string()));
        }
        const ALL: &[&str] = &["admin", "operator", "supervisor", "backoffice", "agent", "proxy"];
        const READ: &[&str] = &["admin", "operator", "supervisor", "backoffice"];
        const WRITE: &[&str] = &["admin", "operator"];
        const EDIT: &[&str] = &["admin", "operator", "backoffice"];
        const ADM: &[&str] = &["admin"];
        const DIAL: &[&str] = &["admin", "operator", "supervisor"];
        const CALLS: &[&str] = &["admin", "supervisor"];
        let cp = format!("/api/v1/campaigns/{c}");
        // Bodies that are valid, or harmlessly not, so "allowed" shows as anything but 403.
        let routes: Vec<(&str, String, Option<Value>, &[&str])> = vec![
            ("GET", "/api/v1/me".into(), None, ALL),
            ("GET", "/api/v1/users".into(), None, ADM),
            (
                "POST",
                "/api/v1/users".into(),
                Some(json!({"name": "", "role": "agent"})),
                ADM,
            ),
            ("GET", "/api/v1/users/1".into(), None, ADM),
            (
                "PATCH",
                "/api/v1/users/999".into(),
                Some(json!({"tasks": []})),
                ADM,
            ),
            ("DELETE", "/api/v1/users/999".into(), None, ADM),
            ("GET", "/api/v1/users/1/tokens".into(), None, ADM),
            ("POST", "/api/v1/users/999/tokens".into(), None, ADM),
            ("DELETE", "/api/v1/tokens/999".into(), None, ADM),
            ("GET", "/api/v1/campaigns".into(), None, READ),
            (
                "POST",
                "/api/v1/campaigns".into(),
                Some(json!({"name": ""})),
                WRITE,
            ),
            ("GET", cp.clone(), None, READ),
            (
                "PATCH",
                cp.clone(),
                Some(json!({"description": "d"})),
                WRITE,
            ),
            ("DELETE", "/api/v1/campaigns/999".into(), None, WRITE),
            ("GET", format!("{cp}/tasks"), None, READ),
            (
                "POST",
                format!("{cp}/tasks"),
                Some(json!({"name": "", "kind": "wait"})),
                WRITE,
            ),
            ("GET", format!("{cp}/tasks/{task}"), None, READ),
            (
                "PATCH",
                format!("{cp}/tasks/{task}"),
                Some(json!({"name": "dial"})),
                WRITE,
            ),
            ("DELETE", format!("{cp}/tasks/999"), None, WRITE),
            ("GET", format!("{cp}/contacts"), None, EDIT),
            (
                "POST",
                format!("{cp}/contacts"),
                Some(json!({"phones": []})),
                EDIT,
            ),
            ("GET", format!("{cp}/contacts/{k}"), None, EDIT),
            (
                "PATCH",
                format!("{cp}/contacts/{k}"),
                Some(json!({"owner": "x"})),
                EDIT,
            ),
            ("DELETE", format!("{cp}/contacts/999"), None, WRITE),
            (
                "POST",
                format!("{cp}/contacts/bulk"),
                Some(json!({"field": "owner", "value": "y"})),
                EDIT,
            ),
            (
                "POST",
                format!("{cp}/contacts/move"),
                Some(json!({"ids": [k], "task_id": task})),
                EDIT,
            ),
            (
                "POST",
                format!("{cp}/contacts/import"),
                Some(json!("")),
                WRITE,
            ),
            ("GET", format!("{cp}/imports"), None, WRITE),
            (
                "POST",
                format!("{cp}/test-call"),
                Some(json!({"to": "not a number"})),
                WRITE,
            ),
            ("GET", format!("{cp}/contacts/callable"), None, DIAL),
            ("GET", format!("{cp}/contacts/{k}/callable"), None, DIAL),
            ("GET", format!("{cp}/dialer"), None, DIAL),
            (
                "POST",
                "/api/v1/agent/result".into(),
                Some(json!({"status": "success", "detail": "sale"})),
                &["agent"],
            ),
            (
                "POST",
                "/api/v1/agent/preview/dial".into(),
                None,
                &["agent"],
            ),
            (
                "POST",
                "/api/v1/agent/preview/skip".into(),
                None,
                &["agent"],
            ),
            (
                "GET",
                "/api/v1/agent/choices".into(),
                None,
                &["admin", "supervisor", "agent"],
            ),
            ("GET", "/api/v1/agent/contact".into(), None, &["agent"]),
            ("GET", "/api/v1/dnc".into(), None, DIAL),
            (
                "POST",
                "/api/v1/dnc".into(),
                Some(json!({"phones": ["+49 30 9999999"]})),
                WRITE,
            ),
            (
                "DELETE",
                "/api/v1/dnc".into(),
                Some(json!({"phones": ["+49 30 9999999"]})),
                WRITE,
            ),
            ("GET", format!("{cp}/dnc"), None, DIAL),
            (
                "POST",
                format!("{cp}/dnc"),
                Some(json!({"phones": ["030 9999998"]})),
                WRITE,
            ),
            (
                "DELETE",
                format!("{cp}/dnc"),
                Some(json!({"phones": ["030 9999998"]})),
                WRITE,
            ),
            ("GET", format!("{cp}/imports/999"), None, WRITE),
            ("GET", format!("{cp}/tasks/{task}/exports"), None, WRITE),
            ("GET", format!("{cp}/tasks/{task}/exports/999"), None, WRITE),
            ("GET", "/api/v1/trunks".into(), None, DIAL),
            ("GET", "/api/v1/nodes".into(), None, DIAL),
            (
                "GET",
                "/api/v1/nodes/route?sip_user=nobody".into(),
                None,
                &["admin", "operator", "supervisor", "proxy"],
            ),
            (
                "POST",
                "/api/v1/trunks/nosuch/test-call".into(),
                Some(json!({"to": "4930123456"})),
                WRITE,
            ),
            ("GET", "/api/v1/calls".into(), None, CALLS),
            ("GET", "/api/v1/calls/0000000000000000".into(), None, CALLS),
            ("GET", "/api/v1/lines".into(), None, WRITE),
            (
                "POST",
                "/api/v1/lines".into(),
                Some(json!({"number": ""})),
                WRITE,
            ),
            ("GET", "/api/v1/lines/999".into(), None, WRITE),
            (
                "PATCH",
                "/api/v1/lines/999".into(),
                Some(json!({"title": "t"})),
                WRITE,
            ),
            ("DELETE", "/api/v1/lines/999".into(), None, WRITE),
            ("POST", "/api/v1/lines/999/verification".into(), None, WRITE),
            ("GET", "/api/v1/lines/999/verifications".into(), None, WRITE),
            (
                "POST",
                "/api/v1/lines/999/verify".into(),
                Some(json!({"code": "123456"})),
                WRITE,
            ),
        ];
        let mut wrong = Vec::new();
        for (role, token) in &tokens {
            let api = Api::new(&d, token);
            for (method, path, body, allowed) in &routes {
                let (status, problem) = api.call(method, path, body.clone());
                let may = allowed.contains(role);
                if may == (status == 403) || status == 401 {
                    wrong.push(format!("{role} {method} {path}: {status} {problem}"));
                }
                if status == 403 {
                    let detail = problem["detail"].as_str().unwrap();
                    assert!(
                        detail.contains(allowed[0]) && detail.contains(role),
                        "{detail}"
                    );
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");

        // A revoked token stops working at once.
        let me = admin.ok("GET", "/api/v1/users", None);
        let agent = me
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == "agent")
            .unwrap();
        let list = admin.ok(
            "GET",
            &format!("/api/v1/users/{}/tokens", agent["id"]),
            None,
        );
        admin.ok("DELETE", &format!("/api/v1/tokens/{}", list[0]["id"]), None);
        let agent_token = &tokens.iter().find(|(r, _)| *r == "agent").unwrap().1;
        assert_eq!(
            Api::new(&d, agent_token).call("GET", "/api/v1/me", None).0,
            401
        );
    }
}

both_stores! {
    /// SIGKILL in the middle of a large import: after restart every committed batch is there once,
    /// the import says how far it got, and the count matches the contacts.
    fn sigkill_during_a_large_import_keeps_whole_batches() {
        let mut d = start();
        let api = Api::new(&d, ADMIN);
        let (c, _) = campaign(&api, "Big");
        let rows = 200_000u32;
        let mut csv = String::from("n,phone\n");
        for n in 0..rows {
            csv.push_str(&format!("{n},0151 {:08}\n", 20_000_000 + n));
        }
        // Send the head of the body, then stall: the daemon commits what it has read.
        let mut s = std::net::TcpStream::connect(d.http).unwrap();
        write!(
            s,
            "POST /api/v1/campaigns/{c}/contacts/import HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN}\r\n\
             Content-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
            d.http,
            csv.len()
        )
        .unwrap();
        s.write_all(&csv.as_bytes()[..csv.len() / 2]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let imports = api.ok("GET", &format!("/api/v1/campaigns/{c}/imports"), None);
            if imports[0]["inserted"].as_i64().unwrap_or(0) >= 20_000 {
                assert_eq!(imports[0]["state"], "running");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "import did not progress: {imports}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d.signal(libc::SIGKILL);
        d.wait_exit(Duration::from_secs(5)).unwrap();
        drop(s);

        let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
        let d2 = Daemon::start_in(dir, BASE, &[]);
        let api = Api::new(&d2, ADMIN);
        let import = &api.ok("GET", &format!("/api/v1/campaigns/{c}/imports"), None)[0];
        assert_eq!(import["state"], "interrupted");
        let inserted = import["inserted"].as_i64().unwrap();
        assert_eq!(inserted % 1000, 0, "a batch went in partly: {import}");
        assert!(inserted >= 20_000 && inserted < rows as i64, "{import}");
        let contacts = api.all_contacts(c, "", 1000);
        assert_eq!(contacts.len() as i64, inserted);
        // Rows 0..inserted, each once, in order.
        for (i, contact) in contacts.iter().enumerate() {
            assert_eq!(contact["fields"]["n"], i.to_string());
        }
    }
}

both_stores! {
    /// Wrong quoting: a stray quote or text after a closing quote makes that row bad ("bad
    /// quoting", by line) while good rows go in; a quote never closed fails the import with a 4xx
    /// naming the line it opened on, and what earlier batches had put in is taken out again; in
    /// replace mode nothing is removed or imported.
    fn wrong_quoting_is_a_bad_row_and_an_unclosed_quote_fails_the_import_whole() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        let (c, _) = campaign(&api, "Quotes");
        let csv = "name,phone\n\
                   Ann,030 1234567\n\
                   Bob 5\" tall,030 1234568\n\
                   \"Cid\" Jr,030 1234569\n\
                   \"Dan \"\"the man\"\"\",030 1234570\n\
                   Eve,030 1234571\n";
        let (status, r) = api.import(c, "", csv);
        assert_eq!(status, 200, "{r}");
        assert_eq!(
            (
                r["rows"].as_i64(),
                r["inserted"].as_i64(),
                r["bad"].as_i64()
            ),
            (Some(5), Some(3), Some(2)),
            "{r}"
        );
        let problems: Vec<(i64, &str, &str)> = r["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["line"].as_i64().unwrap(),
                    p["kind"].as_str().unwrap(),
                    p["reason"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(problems.len(), 2, "{r}");
        assert_eq!((problems[0].0, problems[0].1), (3, "bad"), "{r}");
        assert!(problems[0].2.starts_with("bad quoting"), "{r}");
        assert_eq!((problems[1].0, problems[1].1), (4, "bad"), "{r}");
        assert!(problems[1].2.contains("after the closing quote"), "{r}");
        let names: Vec<String> = api
            .all_contacts(c, "", 100)
            .iter()
            .map(|c| c["fields"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["Ann", "Dan \"the man\"", "Eve"]);

        // 2,500 good rows (two batches commit on the way), then a quote that never closes.
        let mut big = String::from("name,phone\n");
        for n in 0..2500 {
            big.push_str(&format!("n{n},0151 {:08}\n", 40_000_000 + n));
        }
        big.push_str("Zed,\"0151 99999999\nYul,0151 99999998\nXan,0151 99999997\n");
        let (status, p) = api.import(c, "", &big);
        assert_eq!(status, 422, "{p}");
        assert_eq!(p["field"], "body", "{p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("line 2502") && detail.contains("never closed"),
            "{detail}"
        );
        // Nothing of it stayed: the campaign holds the first import's three contacts only.
        assert_eq!(api.all_contacts(c, "", 1000).len(), 3);
        let last = &api.ok("GET", &format!("/api/v1/campaigns/{c}/imports"), None)[0];
        assert_eq!(
            (
                last["state"].as_str(),
                last["inserted"].as_i64(),
                last["rolled_back"].as_i64()
            ),
            (Some("failed"), Some(0), Some(2000)),
            "{last}"
        );
        assert!(
            last["error"].as_str().unwrap().contains("line 2502"),
            "{last}"
        );
        // In replace mode the whole file is received and checked before anything is removed:
        // the three contacts stay, and no import is recorded.
        let (status, p) = api.import(c, "mode=replace", &big);
        assert_eq!((status, p["field"].as_str()), (422, Some("body")), "{p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("line 2502") && detail.contains("nothing was removed or imported"),
            "{detail}"
        );
        assert_eq!(api.all_contacts(c, "", 1000).len(), 3);
        let history = api.ok("GET", &format!("/api/v1/campaigns/{c}/imports"), None);
        assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
        // The same numbers import fine once the file is fixed: none is taken.
        let fixed = big.replace("Zed,\"0151", "Zed,0151");
        let (status, r) = api.import(c, "", &fixed);
        assert_eq!(status, 200, "{r}");
        assert_eq!(
            (r["inserted"].as_i64(), r["duplicates"].as_i64()),
            (Some(2503), Some(0)),
            "{r}"
        );
    }
}

both_stores! {
    /// Bulk edit over more than one batch of 500: every matching contact changes once, each with
    /// a history entry naming who and what; a bad value is a 422 naming `value`, nothing changed.
    fn bulk_edit_changes_every_match_in_batches_with_history() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        let (c, _) = campaign(&api, "Bulk");
        let mut csv = String::from("n,phone\n");
        for n in 0..1234 {
            csv.push_str(&format!("{n},0151 {:08}\n", 60_000_000 + n));
        }
        assert_eq!(api.import(c, "", &csv).0, 200);
        let bulk = format!("/api/v1/campaigns/{c}/contacts/bulk");
        let (status, p) = api.call(
            "POST",
            &bulk,
            Some(json!({"filter": {}, "field": "status", "value": "sold"})),
        );
        assert_eq!((status, p["field"].as_str()), (422, Some("value")), "{p}");
        assert_eq!(api.all_contacts(c, "status=open", 1000).len(), 1234);

        let r = api.ok(
            "POST",
            &bulk,
            Some(json!({"filter": {"status": "open"}, "field": "status", "value": "declined"})),
        );
        assert_eq!(r["changed"], 1234);
        assert_eq!(api.all_contacts(c, "status=declined", 1000).len(), 1234);
        // Again: nothing left to change.
        let r = api.ok(
            "POST",
            &bulk,
            Some(json!({"filter": {}, "field": "status", "value": "declined"})),
        );
        assert_eq!(r["changed"], 0);
        let r = api.ok(
            "POST",
            &bulk,
            Some(json!({"filter": {"text": "+49151600012"}, "field": "fields.batch", "value": "B7"})),
        );
        // Numbers +4915160001200 … +4915160001233: 34 contacts.
        assert_eq!(r["changed"], 34);
        let all = api.all_contacts(c, "", 1000);
        let last = all.last().unwrap();
        assert_eq!(last["fields"]["batch"], "B7", "{last}");
        let got = api.ok(
            "GET",
            &format!("/api/v1/campaigns/{c}/contacts/{}", last["id"]),
            None,
        );
        let history: Vec<(String, Value)> = got["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                assert!(h["at"].is_string(), "{h}");
                (
                    h["actor"].as_str().unwrap().to_string(),
                    h["change"].clone(),
                )
            })
            .collect();
        assert_eq!(
            history,
            [
                (
                    "admin".to_string(),
                    json!({"op": "bulk_edit", "changes": {"status": ["open", "declined"]}})
                ),
                (
                    "admin".to_string(),
                    json!({"op": "bulk_edit", "changes": {"fields.batch": [null, "B7"]}})
                ),
            ],
            "{got}"
        );
    }
}

/// (line, kind, reason) of each problem in an import report.
fn problems_of(report: &Value) -> Vec<(i64, String, String)> {
    report["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {report}"))
        .iter()
        .map(|p| {
            (
                p["line"].as_i64().unwrap(),
                p["kind"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The `name` field of each contact of a campaign, by id.
fn names_of(api: &Api, campaign: i64) -> Vec<String> {
    api.all_contacts(campaign, "", 1000)
        .iter()
        .map(|c| c["fields"]["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Posts `body` as a CSV import while reading the answer: the daemon may answer (and stop
/// reading) before the whole body is sent, so write errors are not the test's concern.
fn import_body(api: &Api, campaign: i64, query: &str, body: Vec<u8>) -> (u16, Value) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(api.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(130))).unwrap();
    let head = format!(
        "POST /api/v1/campaigns/{campaign}/contacts/import?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        api.token,
        body.len()
    );
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w
            .write_all(head.as_bytes())
            .and_then(|_| w.write_all(&body));
    });
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    writer.join().unwrap();
    let resp = String::from_utf8_lossy(&resp);
    let (head, text) = resp
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("bad HTTP response: {resp:?}"));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    (
        status,
        serde_json::from_str(text).unwrap_or_else(|_| panic!("{status} {text:?}")),
    )
}

both_stores! {
    /// A field, a row or a column count over the `[import]` limits makes that row `bad` (by line,
    /// naming the limit) while the rows around it go in, in append and in replace mode; a 5 MB
    /// quoted cell spanning lines does not shift the lines after it. A header over a limit is a
    /// 422 naming it, and a refused replace leaves the campaign as it was.
    fn rows_over_the_import_limits_are_bad_rows_and_a_header_over_them_is_refused() {
        let d = Daemon::start_with(
            &format!("{BASE}[import]\nmax_field_bytes = 1000\nmax_columns = 5\nmax_row_bytes = 3000\n"),
            &[("DIALERD_ADMIN_TOKEN", ADMIN)],
        );
        let api = Api::new(&d, ADMIN);
        let (c, _) = campaign(&api, "Wide");
        // 5 MiB over three lines, commas inside.
        let huge = format!(
            "\"{}\n{}\n{}\"",
            "x".repeat(4 << 20),
            "y,".repeat(1 << 19),
            "z"
        );
        let csv = format!(
            "name,phone,notes,city\n\
             Ann,030 1234567,,Berlin\n\
             Bob,030 1234568,{huge},Bonn\n\
             Cid,030 1234569,,Köln\n\
             Dan,030 1234570,,Ulm,x,y\n\
             Eve,030 1234571,{n999},{n999},{n999}\n\
             Fay,030 1234572,{n1000},Kiel\n",
            n999 = "n".repeat(999),
            n1000 = "n".repeat(1000),
        );
        let want = [
            (
                3,
                "bad".to_string(),
                "field 3 is longer than 1000 bytes (import.max_field_bytes)".to_string(),
            ),
            (
                7,
                "bad".into(),
                "has more than 5 columns (import.max_columns)".into(),
            ),
            (
                8,
                "bad".into(),
                "is longer than 3000 bytes (import.max_row_bytes)".into(),
            ),
        ];
        let (status, r) = import_body(&api, c, "", csv.clone().into_bytes());
        assert_eq!(status, 200, "{r}");
        assert_eq!(
            (
                r["rows"].as_i64(),
                r["inserted"].as_i64(),
                r["bad"].as_i64()
            ),
            (Some(6), Some(3), Some(3)),
            "{r}"
        );
        assert_eq!(problems_of(&r), want);
        assert_eq!(names_of(&api, c), ["Ann", "Cid", "Fay"]);
        let fay = &api.all_contacts(c, "", 1000)[2];
        assert_eq!(fay["fields"]["notes"].as_str().map(str::len), Some(1000));

        // Replace: the same file replaces the three contacts with the same three.
        let (status, r) = import_body(&api, c, "mode=replace", csv.into_bytes());
        assert_eq!(status, 200, "{r}");
        assert_eq!(
            (
                r["removed"].as_i64(),
                r["inserted"].as_i64(),
                r["bad"].as_i64()
            ),
            (Some(3), Some(3), Some(3)),
            "{r}"
        );
        assert_eq!(problems_of(&r), want);
        assert_eq!(names_of(&api, c), ["Ann", "Cid", "Fay"]);

        // Headers over a limit: refused whole, in both modes, and nothing changes.
        let rows = "\nGus,030 1234573,,\n";
        for (header, reason) in [
            (
                format!("name,phone,notes,{}", "c".repeat(1001)),
                "line 1: the header field 4 is longer than 1000 bytes (import.max_field_bytes)",
            ),
            (
                "name,phone,notes,city,a,b".to_string(),
                "line 1: the header has more than 5 columns (import.max_columns)",
            ),
            (
                format!("name,phone,{0},c{0},d{0}", "n".repeat(998)),
                "line 1: the header is longer than 3000 bytes (import.max_row_bytes)",
            ),
        ] {
            for mode in ["mode=append", "mode=replace"] {
                let (status, p) = import_body(&api, c, mode, format!("{header}{rows}").into_bytes());
                assert_eq!((status, p["field"].as_str()), (422, Some("body")), "{p}");
                let detail = p["detail"].as_str().unwrap();
                assert!(detail.contains(reason), "{mode}: {detail}");
                assert!(detail.contains("nothing was imported"), "{detail}");
                assert_eq!(names_of(&api, c), ["Ann", "Cid", "Fay"], "{mode}");
            }
        }
        let history = api.ok("GET", &format!("/api/v1/campaigns/{c}/imports"), None);
        assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    }
}

both_stores! {
    /// A header naming a column twice (case and spaces aside, `time_zone`/`timezone` alike) is a
    /// 422 naming the columns, in both modes, and nothing changes; so is a header of a million
    /// columns (over the default `import.max_columns`).
    fn duplicate_header_names_and_a_million_columns_are_refused() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        let (c, _) = campaign(&api, "Dups");
        let (status, r) = api.import(c, "", "name,phone\nAnn,030 1234567\n");
        assert_eq!(status, 200, "{r}");
        for (csv, named) in [
            (
                "phone,name,name,phone\n030 1234568,Bob,Rob,030 1234569\n",
                "\"phone\" (columns 1, 4); \"name\" (columns 2, 3)",
            ),
            (
                "Name,phone, name \nBob,030 1234568,Rob\n",
                "\"Name\" / \"name\" (columns 1, 3)",
            ),
            (
                "name,phone,time_zone,TimeZone\nBob,030 1234568,Europe/Berlin,Asia/Tokyo\n",
                "\"time_zone\" / \"TimeZone\" (columns 3, 4)",
            ),
        ] {
            for mode in ["mode=append", "mode=replace"] {
                let (status, p) = api.import(c, mode, csv);
                assert_eq!((status, p["field"].as_str()), (422, Some("body")), "{p}");
                let detail = p["detail"].as_str().unwrap();
                assert!(
                    detail.contains(&format!(
                        "the header names a column more than once: {named};"
                    )),
                    "{mode}: {detail}"
                );
                assert_eq!(names_of(&api, c), ["Ann"], "{mode}");
            }
        }
        let mut wide = (1..=1_000_000)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",");
        wide.insert_str(0, "phone,");
        wide.push_str("\n030 1234568\n");
        for mode in ["mode=append", "mode=replace"] {
            let (status, p) = import_body(&api, c, mode, wide.clone().into_bytes());
            assert_eq!((status, p["field"].as_str()), (422, Some("body")), "{p}");
            assert_eq!(
                p["detail"],
                "body: line 1: the header has more than 256 columns (import.max_columns); \
                 nothing was imported",
                "{mode}"
            );
            assert_eq!(names_of(&api, c), ["Ann"], "{mode}");
        }
        let history = api.ok("GET", &format!("/api/v1/campaigns/{c}/imports"), None);
        assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    }
}

/// A PostgreSQL database that sorts text otherwise than SQLite (not `LC_COLLATE 'C'`) is
/// named in a warning at start, and the daemon still runs; a `C` database draws no warning.
#[test]
fn a_postgres_database_not_sorting_byte_wise_is_warned_about() {
    const WARNING: &str = "the database does not sort text byte-wise; create it with LC_COLLATE 'C' so that text sorts as on SQLite";
    let cluster = common::pg::cluster();
    cluster.psql(
        "CREATE DATABASE collated TEMPLATE template0 ENCODING 'UTF8' \
         LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'",
    );
    let mut d = Daemon::start_with(BASE, &[("DIALERD__STORE__URL", &cluster.url("collated"))]);
    let line = match d.seen_log(WARNING) {
        Some(line) => line.clone(),
        None => d.wait_log(WARNING, Duration::from_secs(5)),
    };
    assert_eq!(line["fields"]["collation"], "C.UTF-8", "{line}");
    let me = Api::new(&d, &d.admin).ok("GET", "/api/v1/me", None);
    assert_eq!(me["name"], "admin");

    let plain = common::pg::database();
    let d = Daemon::start_with(BASE, &[("DIALERD__STORE__URL", &plain)]);
    assert!(d.seen_log(WARNING).is_none(), "{:#?}", d.seen);
}
