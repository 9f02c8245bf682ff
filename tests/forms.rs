//! Agent forms, questionnaires and per-campaign permissions over the real binary and a real
//! SQLite file: what an API user sends and gets back.

mod common;

use common::api::{campaign, start, user, Api, ADMIN};
use common::http_request;
use serde_json::{json, Value};

/// The contact of a campaign whose `field` is `value`.
fn contact_with(api: &Api, c: i64, field: &str, value: &str) -> Value {
    api.all_contacts(c, "", 1000)
        .into_iter()
        .find(|k| k["fields"][field] == value)
        .unwrap_or_else(|| panic!("no contact with {field} = {value}"))
}

/// (key, title, type) of every form field, in order.
fn shape(form: &Value) -> Vec<(String, String, String)> {
    form["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap().to_string(),
                f["title"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn triple(k: &str, t: &str, ty: &str) -> (String, String, String) {
    (k.into(), t.into(), ty.into())
}

/// GET with the token, answering (status, content type, body text); a streamed (chunked)
/// body is put back together.
fn get_text(api: &Api, path: &str) -> (u16, String, String) {
    let auth = format!("Bearer {}", api.token);
    let (status, kind, body) =
        http_request(api.addr, "GET", path, &[("Authorization", &auth)], b"");
    if !kind.starts_with("text/csv") {
        return (status, kind, body);
    }
    let mut rest = body.as_str();
    let mut whole = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or_else(|_| panic!("{body:?}"));
        if n == 0 {
            break;
        }
        whole.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    (status, kind, whole)
}

both_stores! {
    fn imports_add_columns_to_the_form_and_a_retype_that_does_not_fit_is_refused() {
        let d = start();
        let admin = Api::new(&d, ADMIN);
        let (c, _) = campaign(&admin, "Forms");
        let form_path = format!("/api/v1/campaigns/{c}/form");
        let empty = admin.ok("GET", &form_path, None);
        assert_eq!(empty["fields"], json!([]));

        let (s, r) = admin.import(
            c,
            "",
            "phone,name,age,colour\n030 1111111,Ann,42,red\n030 2222222,Bob,old,blue\n030 3333333,Cy,,red\n",
        );
        assert_eq!((s, r["inserted"].as_i64()), (200, Some(3)), "{r}");
        let form = admin.ok("GET", &form_path, None);
        assert_eq!(
            shape(&form),
            vec![
                triple("phone", "phone", "text"),
                triple("name", "name", "text"),
                triple("age", "age", "text"),
                triple("colour", "colour", "text"),
            ]
        );
        assert_eq!(form["updated_by"], format!("import {}", r["id"]));
        let bob = contact_with(&admin, c, "name", "Bob");

        // Retyping age to number: Bob's "old" does not fit; nothing changes.
        let typed = json!({"fields": [
            {"key": "name", "title": "Full name", "type": "text", "required": true, "section": "Person"},
            {"key": "age", "title": "Age", "type": "number", "section": "Person", "help": "in years"},
            {"key": "colour", "title": "Favourite colour", "type": "choice", "choices": ["red", "blue", "green"]},
            {"key": "phone", "title": "Phone", "type": "phone", "read_only": true},
        ]});
        let (s, p) = admin.call("PUT", &form_path, Some(typed.clone()));
        assert_eq!(
            (s, p["field"].as_str()),
            (422, Some("fields[1].type")),
            "{p}"
        );
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("\"age\"") && detail.contains(&format!("contact {}", bob["id"])),
            "{detail}"
        );
        assert!(detail.contains("\"old\""), "{detail}");
        assert_eq!(shape(&admin.ok("GET", &form_path, None)), shape(&form));

        // Once Bob's age is a number, the same form goes in: reordered, retitled, retyped.
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}/contacts/{}", bob["id"]),
            Some(json!({"fields": {"phone": "030 2222222", "name": "Bob", "age": "67", "colour": "blue"}})),
        );
        let form = admin.ok("PUT", &form_path, Some(typed));
        assert_eq!(
            shape(&form),
            vec![
                triple("name", "Full name", "text"),
                triple("age", "Age", "number"),
                triple("colour", "Favourite colour", "choice"),
                triple("phone", "Phone", "phone"),
            ]
        );
        assert_eq!(form["updated_by"], "admin");

        // A later import keeps the titles and types and adds only the new column, at the end;
        // the data still goes under the keys.
        let (s, r) = admin.import(c, "", "phone,name,email\n030 4444444,Dee,dee@example.org\n");
        assert_eq!((s, r["inserted"].as_i64()), (200, Some(1)), "{r}");
        let form = admin.ok("GET", &form_path, None);
        assert_eq!(
            shape(&form),
            vec![
                triple("name", "Full name", "text"),
                triple("age", "Age", "number"),
                triple("colour", "Favourite colour", "choice"),
                triple("phone", "Phone", "phone"),
                triple("email", "email", "text"),
            ]
        );
        let dee = contact_with(&admin, c, "name", "Dee");
        assert_eq!(dee["fields"]["email"], "dee@example.org");

        // Bad forms are named.
        let (s, p) = admin.call(
            "PUT",
            &form_path,
            Some(json!({"fields": [{"key": "a", "type": "text"}, {"key": "a", "type": "date"}]})),
        );
        assert_eq!(
            (s, p["field"].as_str()),
            (422, Some("fields[1].key")),
            "{p}"
        );
        let (s, p) = admin.call(
            "PUT",
            &form_path,
            Some(json!({"fields": [{"key": "a", "type": "colour"}]})),
        );
        assert_eq!(
            (s, p["field"].as_str()),
            (422, Some("fields[0].type")),
            "{p}"
        );
        let (s, _) = admin.call("GET", "/api/v1/campaigns/999/form", None);
        assert_eq!(s, 404);
    }
}

both_stores! {
    fn the_preview_is_the_form_filled_with_the_contact_and_edits_are_checked_against_it() {
        let d = start();
        let admin = Api::new(&d, ADMIN);
        let (c, _) = campaign(&admin, "Preview");
        let (s, _) = admin.import(
            c,
            "",
            "phone,name,age,notes\n030 1111111,Ann,42,call after 5\n030 2222222,,,\n",
        );
        assert_eq!(s, 200);
        admin.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/form"),
            Some(json!({"fields": [
                {"key": "name", "title": "Name", "type": "text", "required": true, "section": "Person"},
                {"key": "notes", "title": "Notes", "type": "note"},
                {"key": "age", "title": "Age", "type": "text", "section": "Person"},
                {"key": "phone", "title": "Phone", "type": "phone", "read_only": true},
            ]})),
        );
        let ann = contact_with(&admin, c, "name", "Ann");
        let k = ann["id"].as_i64().unwrap();
        let p = admin.ok(
            "GET",
            &format!("/api/v1/campaigns/{c}/form/preview?contact={k}"),
            None,
        );
        assert_eq!(p["contact"]["id"], k);
        assert_eq!(p["contact"]["phones"], json!(["+49301111111"]));
        let sections: Vec<(Value, Vec<(String, Value)>)> = p["sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let fields = s["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| (f["key"].as_str().unwrap().to_string(), f["value"].clone()))
                    .collect();
                (s["title"].clone(), fields)
            })
            .collect();
        assert_eq!(
            sections,
            vec![
                (
                    json!("Person"),
                    vec![("name".into(), json!("Ann")), ("age".into(), json!("42"))]
                ),
                (
                    Value::Null,
                    vec![
                        ("notes".into(), json!("call after 5")),
                        ("phone".into(), json!("030 1111111"))
                    ]
                ),
            ]
        );
        let name = &p["sections"][0]["fields"][0];
        assert_eq!(
            (&name["title"], &name["type"], &name["required"]),
            (&json!("Name"), &json!("text"), &json!(true))
        );
        assert_eq!(p["sections"][1]["fields"][1]["read_only"], true);

        // A PATCH that sets a value the form refuses is a 422 naming the field, and nothing of
        // it is saved: not the owner, not the other field.
        let path = format!("/api/v1/campaigns/{c}/contacts/{k}");
        admin.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/form"),
            Some(json!({"fields": [
                {"key": "name", "title": "Name", "type": "text", "required": true},
                {"key": "age", "title": "Age", "type": "number"},
            ]})),
        );
        let mut fields = ann["fields"].clone();
        fields["age"] = json!("forty");
        fields["notes"] = json!("changed");
        let (s, pr) = admin.call(
            "PATCH",
            &path,
            Some(json!({"fields": fields, "owner": "someone"})),
        );
        assert_eq!((s, pr["field"].as_str()), (422, Some("fields.age")), "{pr}");
        let now = admin.ok("GET", &path, None);
        assert_eq!(
            (&now["owner"], &now["fields"]["notes"]),
            (&Value::Null, &json!("call after 5"))
        );
        // A required field emptied is a 422 too.
        let mut fields = ann["fields"].clone();
        fields["name"] = json!("");
        let (s, pr) = admin.call("PATCH", &path, Some(json!({"fields": fields})));
        assert_eq!(
            (s, pr["field"].as_str()),
            (422, Some("fields.name")),
            "{pr}"
        );
        // A fitting change goes in.
        let mut fields = ann["fields"].clone();
        fields["age"] = json!(43);
        let now = admin.ok("PATCH", &path, Some(json!({"fields": fields})));
        assert_eq!(now["fields"]["age"], 43);

        // The other contact lacks the required name (imported so): an edit that leaves it alone
        // passes.
        let other = admin
            .all_contacts(c, "", 100)
            .into_iter()
            .find(|k| k["fields"]["name"] == "")
            .unwrap();
        let o = other["id"].as_i64().unwrap();
        admin.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}/contacts/{o}"),
            Some(json!({"owner": "bo"})),
        );
        // Imports keep text as it comes: the preview says what is wrong with a value.
        let (s, _) = admin.import(c, "", "phone,name,age\n030 5555555,Eve,many\n");
        assert_eq!(s, 200);
        let eve = contact_with(&admin, c, "name", "Eve");
        let p = admin.ok(
            "GET",
            &format!("/api/v1/campaigns/{c}/form/preview?contact={}", eve["id"]),
            None,
        );
        let age = &p["sections"][0]["fields"][1];
        assert_eq!(
            (&age["key"], &age["value"]),
            (&json!("age"), &json!("many"))
        );
        assert!(
            age["problem"].as_str().unwrap().contains("a number"),
            "{age}"
        );

        let (s, pr) = admin.call("GET", &format!("/api/v1/campaigns/{c}/form/preview"), None);
        assert_eq!((s, pr["field"].as_str()), (400, Some("contact")), "{pr}");
        let (s, _) = admin.call(
            "GET",
            &format!("/api/v1/campaigns/{c}/form/preview?contact=999999"),
            None,
        );
        assert_eq!(s, 404);
    }
}

both_stores! {
    fn answers_are_checked_kept_through_retirement_in_history_and_exported() {
        let d = start();
        let admin = Api::new(&d, ADMIN);
        let (c, _) = campaign(&admin, "Survey");
        let (s, _) = admin.import(
            c,
            "",
            "phone,name\n030 1111111,Ann\n030 2222222,Bob\n030 3333333,Cy\n",
        );
        assert_eq!(s, 200);
        let ids: Vec<i64> = ["Ann", "Bob", "Cy"]
            .iter()
            .map(|n| contact_with(&admin, c, "name", n)["id"].as_i64().unwrap())
            .collect();
        let (ann, bob, cy) = (ids[0], ids[1], ids[2]);
        let q = format!("/api/v1/campaigns/{c}/questionnaire");
        let answers = |k: i64| format!("/api/v1/campaigns/{c}/contacts/{k}/answers");

        let (s, p) = admin.call("PUT", &answers(ann), Some(json!({"answers": {}})));
        assert_eq!((s, p["field"].as_str()), (422, Some("answers")), "{p}");
        let qs = admin.ok(
            "PUT",
            &q,
            Some(json!({"questions": [
                {"id": "happy", "text": "Are you happy with us?", "type": "yes_no", "required": true},
                {"id": "score", "text": "How likely are you to recommend us?", "type": "scale", "scale": 5},
                {"id": "uses", "text": "What do you use?", "type": "multi_choice", "choices": ["phone", "web", "shop"]},
                {"id": "why", "text": "Why?", "type": "text"},
            ]})),
        );
        assert_eq!(qs["questions"].as_array().unwrap().len(), 4);

        // Wrong answers are named; nothing is stored.
        for (body, field) in [
            (json!({"answers": {"score": 3}}), "answers.happy"),
            (
                json!({"answers": {"happy": true, "score": 6}}),
                "answers.score",
            ),
            (
                json!({"answers": {"happy": true, "uses": ["fax"]}}),
                "answers.uses",
            ),
            (
                json!({"answers": {"happy": true, "mood": "ok"}}),
                "answers.mood",
            ),
            (
                json!({"answers": {"happy": true}, "respondent": "other"}),
                "respondent_name",
            ),
            (
                json!({"answers": {"happy": true}, "answered_at": "yesterday"}),
                "answered_at",
            ),
        ] {
            let (s, p) = admin.call("PUT", &answers(cy), Some(body.clone()));
            assert_eq!((s, p["field"].as_str()), (422, Some(field)), "{body}: {p}");
        }
        let (s, _) = admin.call("GET", &answers(cy), None);
        assert_eq!(s, 404);

        let a = admin.ok(
            "PUT",
            &answers(ann),
            Some(json!({"answers": {"happy": true, "score": 5, "uses": ["phone", "web"], "why": "quick, kind"},
                        "answered_at": "2026-03-02T10:00:00Z"})),
        );
        assert_eq!(
            (&a["respondent"], &a["answered_at"], &a["recorded_by"]),
            (
                &json!("contact"),
                &json!("2026-03-02T10:00:00.000Z"),
                &json!("admin")
            )
        );
        admin.ok(
            "PUT",
            &answers(bob),
            Some(json!({"answers": {"happy": false, "score": 2},
                        "respondent": "other", "respondent_name": "Jane Doe"})),
        );
        let history = admin.ok(
            "GET",
            &format!("/api/v1/campaigns/{c}/contacts/{bob}"),
            None,
        )["history"]
            .clone();
        let entry = history
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["change"]["op"] == "answers")
            .unwrap_or_else(|| panic!("no answers in {history}"));
        assert_eq!(
            (
                &entry["actor"],
                &entry["change"]["respondent_name"],
                &entry["change"]["answers"]["score"]
            ),
            (&json!("admin"), &json!("Jane Doe"), &json!(2))
        );

        // Export: only those who answered, one column per question.
        let export = format!("{q}/export");
        let (s, kind, text) = get_text(&admin, &export);
        assert_eq!(
            (s, kind.as_str()),
            (200, "text/csv; charset=utf-8"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "contact_id,phones,respondent,respondent_name,answered_at,recorded_by,happy,score,uses,why",
                &format!("{ann},+49301111111,contact,,2026-03-02T10:00:00.000Z,admin,yes,5,phone; web,\"quick, kind\""),
                lines[2],
            ]
        );
        assert!(
            lines[2].starts_with(&format!("{bob},+49302222222,other,Jane Doe,"))
                && lines[2].ends_with(",admin,no,2,,"),
            "{}",
            lines[2]
        );
        let (s, _, text) = get_text(&admin, &format!("{export}?format=pdf"));
        assert_eq!(s, 400, "{text}");

        // Retire "why" (answered) by leaving it out, drop nothing else, add "again": the answer
        // stays, exported, and can no longer be given.
        let qs = admin.ok(
            "PUT",
            &q,
            Some(json!({"questions": [
                {"id": "score", "text": "How likely, 1 to 5?", "type": "scale", "scale": 5},
                {"id": "happy", "text": "Are you happy with us?", "type": "yes_no", "required": true},
                {"id": "uses", "text": "What do you use?", "type": "multi_choice", "choices": ["phone", "web", "shop"]},
                {"id": "again", "text": "May we call again?", "type": "yes_no"},
            ]})),
        );
        let order: Vec<(&str, bool)> = qs["questions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| (q["id"].as_str().unwrap(), q["retired"].as_bool().unwrap()))
            .collect();
        assert_eq!(
            order,
            vec![
                ("score", false),
                ("happy", false),
                ("uses", false),
                ("again", false),
                ("why", true)
            ]
        );
        let (s, p) = admin.call(
            "PUT",
            &answers(ann),
            Some(json!({"answers": {"happy": true, "why": "again"}})),
        );
        assert_eq!((s, p["field"].as_str()), (422, Some("answers.why")), "{p}");
        let a = admin.ok(
            "PUT",
            &answers(ann),
            Some(json!({"answers": {"happy": true, "score": 4, "again": true}})),
        );
        assert_eq!(a["answers"]["why"], "quick, kind");
        let (_, _, text) = get_text(&admin, &export);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "contact_id,phones,respondent,respondent_name,answered_at,recorded_by,score,happy,uses,again,why"
        );
        assert!(
            lines[1].ends_with(",admin,4,yes,,yes,\"quick, kind\""),
            "{}",
            lines[1]
        );

        // Narrowing the scale below a stored answer is refused, naming the question and Ann.
        let (s, p) = admin.call(
            "PUT",
            &q,
            Some(json!({"questions": [
                {"id": "score", "text": "How likely, 1 to 3?", "type": "scale", "scale": 3},
                {"id": "happy", "text": "Are you happy with us?", "type": "yes_no", "required": true},
            ]})),
        );
        assert_eq!(
            (s, p["field"].as_str()),
            (422, Some("questions[0].type")),
            "{p}"
        );
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("\"score\"") && detail.contains(&format!("contact {ann}")),
            "{detail}"
        );
        assert_eq!(admin.ok("GET", &q, None)["questions"], qs["questions"]);
    }
}

/// One campaign route: method, path, body, the roles it is for, and what grant it needs
/// ("" none, "edit", "export").
type Route = (
    &'static str,
    String,
    Option<Value>,
    &'static [&'static str],
    &'static str,
);

/// Every campaign route (but deleting the campaign) against a campaign: harmless bodies, so
/// "allowed" shows as anything but 403.
fn campaign_routes(c: i64, task: i64, k: i64) -> Vec<Route> {
    const READ: &[&str] = &["admin", "operator", "supervisor", "backoffice"];
    const WRITE: &[&str] = &["admin", "operator"];
    const EDIT: &[&str] = &["admin", "operator", "backoffice"];
    const DIAL: &[&str] = &["admin", "operator", "supervisor"];
    const ADM: &[&str] = &["admin"];
    let cp = format!("/api/v1/campaigns/{c}");
    vec![
        ("GET", cp.clone(), None, READ, ""),
        (
            "PATCH",
            cp.clone(),
            Some(json!({"description": "d"})),
            WRITE,
            "edit",
        ),
        ("GET", format!("{cp}/tasks"), None, READ, ""),
        (
            "POST",
            format!("{cp}/tasks"),
            Some(json!({"name": "", "kind": "wait"})),
            WRITE,
            "edit",
        ),
        ("GET", format!("{cp}/tasks/{task}"), None, READ, ""),
        (
            "PATCH",
            format!("{cp}/tasks/{task}"),
            Some(json!({"name": "dial"})),
            WRITE,
            "edit",
        ),
        ("DELETE", format!("{cp}/tasks/999"), None, WRITE, "edit"),
        ("GET", format!("{cp}/tasks/{task}/exports"), None, WRITE, ""),
        (
            "GET",
            format!("{cp}/tasks/{task}/exports/999"),
            None,
            EDIT,
            "export",
        ),
        ("GET", format!("{cp}/contacts"), None, EDIT, ""),
        (
            "POST",
            format!("{cp}/contacts"),
            Some(json!({"phones": []})),
            EDIT,
            "edit",
        ),
        ("GET", format!("{cp}/contacts/{k}"), None, EDIT, ""),
        (
            "PATCH",
            format!("{cp}/contacts/{k}"),
            Some(json!({"owner": "x"})),
            EDIT,
            "edit",
        ),
        ("DELETE", format!("{cp}/contacts/999"), None, WRITE, "edit"),
        (
            "POST",
            format!("{cp}/contacts/bulk"),
            Some(json!({"field": "owner", "value": "y"})),
            EDIT,
            "edit",
        ),
        (
            "POST",
            format!("{cp}/contacts/move"),
            Some(json!({"ids": [k], "task_id": task})),
            EDIT,
            "edit",
        ),
        (
            "POST",
            format!("{cp}/contacts/import"),
            Some(json!("")),
            WRITE,
            "edit",
        ),
        ("GET", format!("{cp}/contacts/callable"), None, DIAL, ""),
        ("GET", format!("{cp}/dnc"), None, DIAL, ""),
        (
            "POST",
            format!("{cp}/dnc"),
            Some(json!({"phones": ["030 9999998"]})),
            WRITE,
            "edit",
        ),
        (
            "DELETE",
            format!("{cp}/dnc"),
            Some(json!({"phones": ["030 9999998"]})),
            WRITE,
            "edit",
        ),
        ("GET", format!("{cp}/imports"), None, WRITE, ""),
        ("GET", format!("{cp}/imports/999"), None, WRITE, ""),
        ("GET", format!("{cp}/import-settings"), None, WRITE, ""),
        (
            "PUT",
            format!("{cp}/import-settings"),
            Some(json!({"phone_columns": []})),
            WRITE,
            "edit",
        ),
        (
            "POST",
            format!("{cp}/test-call"),
            Some(json!({"to": "not a number"})),
            WRITE,
            "edit",
        ),
        ("GET", format!("{cp}/form"), None, READ, ""),
        (
            "PUT",
            format!("{cp}/form"),
            Some(json!({"fields": [{"key": "", "type": "text"}]})),
            WRITE,
            "edit",
        ),
        (
            "GET",
            format!("{cp}/form/preview?contact={k}"),
            None,
            READ,
            "",
        ),
        ("GET", format!("{cp}/questionnaire"), None, READ, ""),
        (
            "PUT",
            format!("{cp}/questionnaire"),
            Some(json!({"questions": [{"id": "", "text": "t", "type": "text"}]})),
            WRITE,
            "edit",
        ),
        (
            "GET",
            format!("{cp}/questionnaire/export?format=none"),
            None,
            EDIT,
            "export",
        ),
        ("GET", format!("{cp}/contacts/{k}/answers"), None, EDIT, ""),
        (
            "PUT",
            format!("{cp}/contacts/{k}/answers"),
            Some(json!({"answers": {"nope": 1}})),
            EDIT,
            "edit",
        ),
        ("GET", format!("{cp}/permissions"), None, WRITE, ""),
        (
            "PUT",
            format!("{cp}/permissions"),
            Some(json!({"grants": [{"user": "nobody"}]})),
            ADM,
            "",
        ),
    ]
}

both_stores! {
    /// Who may do what on a campaign: every role (and grant) against every campaign route, on a
    /// campaign with grants and one without.
    fn role_matrix_with_campaign_grants() {
        let d = start();
        let admin = Api::new(&d, ADMIN);
        let (open, open_task) = campaign(&admin, "Open");
        let (closed, closed_task) = campaign(&admin, "Granted");
        let mut contacts = Vec::new();
        for c in [open, closed] {
            let k = admin.ok(
                "POST",
                &format!("/api/v1/campaigns/{c}/contacts"),
                Some(json!({"phones": ["030 1234567"]})),
            );
            contacts.push(k["id"].as_i64().unwrap());
        }
        // (name, role, edit grant on `closed`, export grant on `closed`)
        let people: &[(&str, &str, bool, bool)] = &[
            ("admin", "admin", false, false),
            ("op-edit", "operator", true, false),
            ("op-export", "operator", false, true),
            ("op-none", "operator", false, false),
            ("bo-export", "backoffice", false, true),
            ("bo-edit", "backoffice", true, false),
            ("bo-none", "backoffice", false, false),
            ("sv-all", "supervisor", true, true),
            ("agent", "agent", false, false),
        ];
        let mut tokens = Vec::new();
        for (name, role, _, _) in people {
            let token = if *name == "admin" {
                ADMIN.to_string()
            } else {
                user(&admin, name, role).1.token
            };
            tokens.push(token);
        }
        let grants: Vec<Value> = people
            .iter()
            .filter(|p| p.2 || p.3 || p.0 == "op-none")
            .map(|(name, _, edit, export)| json!({"user": name, "edit": edit, "export": export}))
            .collect();
        let p = admin.ok(
            "PUT",
            &format!("/api/v1/campaigns/{closed}/permissions"),
            Some(json!({"grants": grants})),
        );
        assert_eq!(p["restricted"], true);
        assert_eq!(p["grants"].as_array().unwrap().len(), 6);
        let open_p = admin.ok(
            "GET",
            &format!("/api/v1/campaigns/{open}/permissions"),
            None,
        );
        assert_eq!(
            (&open_p["restricted"], &open_p["grants"]),
            (&json!(false), &json!([]))
        );

        let mut wrong = Vec::new();
        for ((name, role, edit, export), token) in people.iter().zip(&tokens) {
            let api = Api::new(&d, token);
            for (c, task, k) in [
                (open, open_task, contacts[0]),
                (closed, closed_task, contacts[1]),
            ] {
                for (method, path, body, roles, grant) in campaign_routes(c, task, k) {
                    // The grants in `people` are on `closed`; `open` has none.
                    let (edit, export) = (c == closed && *edit, c == closed && *export);
                    let granted = match grant {
                        "edit" => c == open || edit,
                        // Backoffice downloads only with an export grant, on any campaign.
                        "export" if *role == "backoffice" => export,
                        "export" => c == open || export,
                        _ => true,
                    };
                    let role_ok = roles.contains(role);
                    let may = *role == "admin" || (role_ok && granted);
                    let (status, problem) = api.call(method, &path, body.clone());
                    if may == (status == 403) || status == 401 {
                        wrong.push(format!("{name} {method} {path}: {status} {problem}"));
                    }
                    if status == 403 {
                        let detail = problem["detail"].as_str().unwrap();
                        assert!(
                            detail.contains("admin") && detail.contains(role),
                            "{detail}"
                        );
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");

        // Deleting the campaign is an edit too; an operator without the grant cannot.
        let op_none = Api::new(&d, &tokens[3]);
        let (s, _) = op_none.call("DELETE", &format!("/api/v1/campaigns/{closed}"), None);
        assert_eq!(s, 403);
        admin.ok("GET", &format!("/api/v1/campaigns/{closed}"), None);
        // A backoffice user with the export grant downloads the answers.
        let bo = Api::new(&d, &tokens[4]);
        let (s, kind, _) = get_text(
            &bo,
            &format!("/api/v1/campaigns/{closed}/questionnaire/export"),
        );
        assert_eq!((s, kind.as_str()), (200, "text/csv; charset=utf-8"));

        // Unknown or repeated users are named; lifting the grants restores the roles.
        let perms = format!("/api/v1/campaigns/{closed}/permissions");
        let (s, p) = admin.call(
            "PUT",
            &perms,
            Some(json!({"grants": [{"user": "op-edit", "edit": true}, {"user": "ghost"}]})),
        );
        assert_eq!(
            (s, p["field"].as_str()),
            (422, Some("grants[1].user")),
            "{p}"
        );
        let (s, p) = admin.call(
            "PUT",
            &perms,
            Some(json!({"grants": [{"user": "op-edit"}, {"user": "op-edit"}]})),
        );
        assert_eq!(
            (s, p["field"].as_str()),
            (422, Some("grants[1].user")),
            "{p}"
        );
        let (s, _) = op_none.call(
            "PATCH",
            &format!("/api/v1/campaigns/{closed}"),
            Some(json!({"description": "mine"})),
        );
        assert_eq!(s, 403);
        let p = admin.ok("PUT", &perms, Some(json!({"grants": []})));
        assert_eq!(p["restricted"], false);
        op_none.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{closed}"),
            Some(json!({"description": "mine"})),
        );
    }
}

both_stores! {
    /// Answers are results: a replace import keeps the never-called contacts that answered.
    fn a_replace_import_keeps_contacts_with_answers() {
        let d = start();
        let admin = Api::new(&d, ADMIN);
        let (c, _) = campaign(&admin, "Keep");
        let (s, _) = admin.import(c, "", "phone,name\n030 1111111,Ann\n030 2222222,Bob\n");
        assert_eq!(s, 200);
        admin.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/questionnaire"),
            Some(json!({"questions": [{"id": "happy", "text": "Happy?", "type": "yes_no"}]})),
        );
        let ann = contact_with(&admin, c, "name", "Ann")["id"]
            .as_i64()
            .unwrap();
        admin.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/contacts/{ann}/answers"),
            Some(json!({"answers": {"happy": true}})),
        );
        let (s, r) = admin.import(c, "mode=replace", "phone,name\n030 3333333,Cy\n");
        assert_eq!(
            (s, r["removed"].as_i64(), r["kept_with_results"].as_i64()),
            (200, Some(1), Some(1)),
            "{r}"
        );
        let names: Vec<Value> = admin
            .all_contacts(c, "", 100)
            .iter()
            .map(|k| k["fields"]["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("Ann"), json!("Cy")]);
        let a = admin.ok(
            "GET",
            &format!("/api/v1/campaigns/{c}/contacts/{ann}/answers"),
            None,
        );
        assert_eq!(a["answers"]["happy"], true);
    }
}
