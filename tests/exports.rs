//! Export files over the real binary, read back with independent tools: cells that would run
//! as formulas are neutralised in every format (CSV, TSV, questionnaire CSV, XLSX).

mod common;

use common::api::{campaign, start, Api, ADMIN};
use serde_json::{json, Value};

/// Field values a spreadsheet would run, each with what the export must hold instead.
const HOSTILE: [(&str, &str, &str); 5] = [
    (
        "link",
        "=HYPERLINK(\"http://x\",\"y\")",
        "'=HYPERLINK(\"http://x\",\"y\")",
    ),
    ("dde", "+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("sum", "-2+3", "'-2+3"),
    ("at", "@SUM(A1)", "'@SUM(A1)"),
    ("nul", "=1+1\0", "'=1+1"),
];

/// The hostile fields as a contact's `fields`, with a plain negative number beside them.
fn hostile_fields() -> Value {
    let mut f = serde_json::Map::new();
    for (k, v, _) in HOSTILE {
        f.insert(k.into(), json!(v));
    }
    f.insert("amount".into(), json!("-12.5"));
    f.insert("name".into(), json!("Ann"));
    Value::Object(f)
}

/// A contact with `fields` and the number `phone` in the call task `dial` of `c`: its id.
fn contact(api: &Api, c: i64, dial: i64, phone: &str, fields: Value) -> i64 {
    api.ok(
        "POST",
        &format!("/api/v1/campaigns/{c}/contacts"),
        Some(json!({"task_id": dial, "phones": [phone], "fields": fields})),
    )["id"]
        .as_i64()
        .unwrap()
}

/// An export task of `format` that the call task's `status` leads to: its id.
fn export_task(api: &Api, c: i64, dial: i64, name: &str, format: &str, status: &str) -> i64 {
    let t = api.ok(
        "POST",
        &format!("/api/v1/campaigns/{c}/tasks"),
        Some(json!({"name": name, "kind": "export", "settings": {"format": format}})),
    )["id"]
        .as_i64()
        .unwrap();
    let task = api.ok("GET", &format!("/api/v1/campaigns/{c}/tasks/{dial}"), None);
    let mut flow = task["flow"].as_array().cloned().unwrap_or_default();
    flow.push(json!({"status": status, "next_task": t}));
    api.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}/tasks/{dial}"),
        Some(json!({"flow": flow})),
    );
    t
}

/// Moves contact `k` on with `status`, then downloads the one file of export task `t`.
fn export_one(api: &Api, c: i64, k: i64, status: &str, t: i64) -> (String, Vec<u8>) {
    let moved = api.ok(
        "PATCH",
        &format!("/api/v1/campaigns/{c}/contacts/{k}"),
        Some(json!({"status": status})),
    );
    assert_eq!(moved["task_id"], t, "{moved}");
    let exports = format!("/api/v1/campaigns/{c}/tasks/{t}/exports");
    let files = api.ok("GET", &exports, None);
    let file = files[0]["id"].as_i64().unwrap();
    let (s, kind, bytes) = api.download(&format!("{exports}/{file}"));
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&bytes));
    (kind, bytes)
}

/// Rows of a CSV or TSV file as read by the csv crate, keyed by header.
fn table(bytes: &[u8], delimiter: u8) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .quoting(delimiter == b',')
        .from_reader(bytes);
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records()
        .map(|rec| {
            header
                .iter()
                .cloned()
                .zip(rec.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect()
}

both_stores! {
    /// Formula cells come out with a `'` in front and without NULs, in CSV, TSV and the
    /// questionnaire CSV; a plain negative number and the E.164 number stay as they are.
    fn formula_cells_are_neutralised_in_csv_and_tsv() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        let (c, dial) = campaign(&api, "Formulas");
        let csv_task = export_task(&api, c, dial, "csv", "csv", "success");
        let tsv_task = export_task(&api, c, dial, "tsv", "tsv", "declined");
        let a = contact(&api, c, dial, "030 1234567", hostile_fields());
        let b = contact(&api, c, dial, "030 1234568", hostile_fields());

        for (k, status, t, delimiter, kind, phone) in [
            (a, "success", csv_task, b',', "text/csv", "+49301234567"),
            (
                b,
                "declined",
                tsv_task,
                b'\t',
                "text/tab-separated-values",
                "+49301234568",
            ),
        ] {
            let (got_kind, bytes) = export_one(&api, c, k, status, t);
            assert!(got_kind.starts_with(kind), "{got_kind}");
            assert!(
                !bytes.contains(&0),
                "a NUL byte went out in the {kind} file"
            );
            let rows = table(&bytes, delimiter);
            assert_eq!(rows.len(), 1, "{}", String::from_utf8_lossy(&bytes));
            let row = &rows[0];
            for (field, _, want) in HOSTILE {
                assert_eq!(row[field], want, "{kind} field {field}");
            }
            assert_eq!(row["amount"], "-12.5", "{kind}");
            assert_eq!(row["name"], "Ann", "{kind}");
            assert_eq!(row["phones"], phone, "{kind}");
        }

        // The questionnaire's answers too.
        api.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/questionnaire"),
            Some(json!({"questions": [
                {"id": "why", "text": "Why?", "type": "text"},
                {"id": "much", "text": "How much?", "type": "number"}
            ]})),
        );
        api.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/contacts/{a}/answers"),
            Some(json!({"answers": {"why": "=HYPERLINK(\"http://x\",\"y\")\0", "much": -12.5}})),
        );
        let (s, kind, bytes) = api.download(&format!("/api/v1/campaigns/{c}/questionnaire/export"));
        assert_eq!((s, kind.as_str()), (200, "text/csv; charset=utf-8"));
        assert!(!bytes.contains(&0), "a NUL byte went out in the answers");
        let rows = table(&bytes, b',');
        assert_eq!(rows.len(), 1, "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(rows[0]["why"], "'=HYPERLINK(\"http://x\",\"y\")");
        assert_eq!(rows[0]["much"], "-12.5");
    }
}

/// Reads an XLSX file with python3's openpyxl: every row, each cell as [type name, value]
/// (dates as ISO text).
fn read_xlsx(bytes: &[u8]) -> Vec<Vec<(String, Value)>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("book.xlsx");
    std::fs::write(&path, bytes).unwrap();
    let script = r#"
import datetime, json, sys, openpyxl
book = openpyxl.load_workbook(sys.argv[1], read_only=True)
rows = []
for row in book.worksheets[0].iter_rows(values_only=True):
    rows.append([[type(v).__name__, v.isoformat() if isinstance(v, (datetime.date, datetime.datetime)) else v] for v in row])
print(json.dumps(rows))
"#;
    let out = common::python3()
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 runs (scripts/test installs python3-openpyxl)");
    assert!(
        out.status.success(),
        "openpyxl could not read the file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<(String, Value)>> = serde_json::from_slice(&out.stdout).unwrap();
    rows
}

/// The cell of `row` under the header `name`.
fn at<'a>(rows: &'a [Vec<(String, Value)>], row: usize, name: &str) -> &'a (String, Value) {
    let col = rows[0]
        .iter()
        .position(|(_, v)| v == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", rows[0]));
    &rows[row][col]
}

both_stores! {
    /// An XLSX export task and the questionnaire's XLSX export: a header row, then cells typed
    /// by the form and the questions (numbers, dates, yes/no), formulas neutralised as text.
    fn xlsx_exports_have_typed_cells_and_neutralised_formulas() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        let (c, dial) = campaign(&api, "Workbook");
        api.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/form"),
            Some(json!({"fields": [
                {"key": "name", "type": "text"},
                {"key": "amount", "type": "number"},
                {"key": "born", "type": "date"},
                {"key": "met", "type": "datetime"},
                {"key": "member", "type": "bool"},
                {"key": "link", "type": "text"}
            ]})),
        );
        let t = export_task(&api, c, dial, "book", "xlsx", "success");
        let k = contact(
            &api,
            c,
            dial,
            "030 1234567",
            json!({"name": "Zoë", "amount": "-12.5", "born": "1980-05-17", "met": "2025-01-31T09:30:00Z",
                   "member": "yes", "link": "=HYPERLINK(\"http://x\",\"y\")", "note": "-2+3\0"}),
        );
        let (kind, bytes) = export_one(&api, c, k, "success", t);
        assert_eq!(
            kind,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        );
        let rows = read_xlsx(&bytes);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(rows[0].iter().all(|(t, _)| t == "str"), "{:?}", rows[0]);
        let cell = |name| at(&rows, 1, name).clone();
        assert_eq!(cell("contact_id"), ("int".into(), json!(k)));
        assert_eq!(cell("phones"), ("str".into(), json!("+49301234567")));
        assert_eq!(cell("name"), ("str".into(), json!("Zoë")));
        assert_eq!(cell("amount"), ("float".into(), json!(-12.5)));
        assert_eq!(
            cell("born"),
            ("datetime".into(), json!("1980-05-17T00:00:00"))
        );
        assert_eq!(
            cell("met"),
            ("datetime".into(), json!("2025-01-31T09:30:00"))
        );
        assert_eq!(cell("member"), ("bool".into(), json!(true)));
        assert_eq!(
            cell("link"),
            ("str".into(), json!("'=HYPERLINK(\"http://x\",\"y\")"))
        );
        // A field the form does not type is text, neutralised.
        assert_eq!(cell("note"), ("str".into(), json!("'-2+3")));
        assert_eq!(cell("exported_at").0, "datetime");
        // Kept on disk under its extension, and downloaded again unchanged.
        let files = api.ok(
            "GET",
            &format!("/api/v1/campaigns/{c}/tasks/{t}/exports"),
            None,
        );
        let file = files[0]["id"].as_i64().unwrap();
        assert_eq!(files[0]["format"], "xlsx");
        let on_disk = d.dir.path().join(format!(
            "state/exports/campaign-{c}-task-{t}-file-{file}.xlsx"
        ));
        assert_eq!(std::fs::read(on_disk).unwrap(), bytes);

        // The questionnaire's answers as a workbook.
        api.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/questionnaire"),
            Some(json!({"questions": [
                {"id": "why", "text": "Why?", "type": "text"},
                {"id": "much", "text": "How much?", "type": "number"},
                {"id": "when", "text": "Since when?", "type": "date"},
                {"id": "again", "text": "Again?", "type": "yes_no"},
                {"id": "nps", "text": "Score?", "type": "scale", "scale": 10}
            ]})),
        );
        api.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/contacts/{k}/answers"),
            Some(
                json!({"answers": {"why": "@SUM(A1)", "much": -3.25, "when": "2024-12-24",
                                    "again": false, "nps": 9}}),
            ),
        );
        let (s, kind, bytes) = api.download(&format!(
            "/api/v1/campaigns/{c}/questionnaire/export?format=xlsx"
        ));
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(
            kind,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        );
        let rows = read_xlsx(&bytes);
        assert_eq!(rows.len(), 2, "{rows:?}");
        let cell = |name| at(&rows, 1, name).clone();
        assert_eq!(cell("contact_id"), ("int".into(), json!(k)));
        assert_eq!(cell("why"), ("str".into(), json!("'@SUM(A1)")));
        assert_eq!(cell("much"), ("float".into(), json!(-3.25)));
        assert_eq!(
            cell("when"),
            ("datetime".into(), json!("2024-12-24T00:00:00"))
        );
        assert_eq!(cell("again"), ("bool".into(), json!(false)));
        assert_eq!(cell("nps"), ("int".into(), json!(9)));
        assert_eq!(cell("answered_at").0, "datetime");
        // An unknown format is refused, naming the parameter.
        let (s, p) = api.call(
            "GET",
            &format!("/api/v1/campaigns/{c}/questionnaire/export?format=ods"),
            None,
        );
        assert_eq!((s, p["field"].as_str()), (400, Some("format")), "{p}");
    }
}

/// The PDFs of a ZIP archive as text: (name in the archive, what pdftotext reads), listed and
/// extracted by python3's zipfile.
fn read_pdf_zip(bytes: &[u8]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("letters.zip");
    std::fs::write(&zip, bytes).unwrap();
    let script = r#"
import json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
z.extractall(sys.argv[2])
print(json.dumps(z.namelist()))
"#;
    let out_dir = dir.path().join("out");
    let out = common::python3()
        .arg("-c")
        .arg(script)
        .arg(&zip)
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zipfile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    names
        .into_iter()
        .map(|name| {
            let out = std::process::Command::new("pdftotext")
                .args(["-layout", "-enc", "UTF-8"])
                .arg(out_dir.join(&name))
                .arg("-")
                .output()
                .expect("pdftotext runs (scripts/test installs poppler-utils)");
            assert!(
                out.status.success(),
                "pdftotext {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (name, String::from_utf8(out.stdout).unwrap())
        })
        .collect()
}

both_stores! {
    /// `pdf_zip`: one PDF letter per contact in a deflated ZIP, with the contact's fields (as the
    /// form titles them) and its answers, for an export task and for the questionnaire export.
    fn pdf_zip_exports_hold_one_letter_per_contact() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        let (c, dial) = campaign(&api, "Letters");
        api.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/form"),
            Some(json!({"fields": [
                {"key": "name", "title": "Full name", "type": "text"},
                {"key": "city", "title": "Home town", "type": "text"}
            ]})),
        );
        api.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/questionnaire"),
            Some(json!({"questions": [
                {"id": "why", "text": "Why did you buy?", "type": "text"},
                {"id": "nps", "text": "Would you recommend us?", "type": "scale", "scale": 10}
            ]})),
        );
        let t = export_task(&api, c, dial, "letters", "pdf_zip", "success");
        api.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}/tasks/{t}"),
            Some(json!({"settings": {"format": "pdf_zip", "letter":
                "Dear {{fields.name}},\nthank you for your order at {{campaign.name}}. We call {{phones.0}}."}})),
        );
        // A letter belongs to pdf_zip files only.
        let (s, p) = api.call(
            "POST",
            &format!("/api/v1/campaigns/{c}/tasks"),
            Some(json!({"name": "x", "kind": "export", "settings": {"format": "csv", "letter": "Hi"}})),
        );
        assert_eq!(
            (s, p["field"].as_str()),
            (422, Some("settings.letter")),
            "{p}"
        );
        let long = "word ".repeat(60);
        let zoe = contact(
            &api,
            c,
            dial,
            "030 1234567",
            json!({"name": "Zoë Müller", "city": "Köln", "note": long}),
        );
        let bob = contact(
            &api,
            c,
            dial,
            "030 1234568",
            json!({"name": "Bob Stone", "city": "Bonn"}),
        );
        api.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/contacts/{zoe}/answers"),
            Some(json!({"answers": {"why": "Price – and service", "nps": 9}})),
        );
        for k in [zoe, bob] {
            api.ok(
                "PATCH",
                &format!("/api/v1/campaigns/{c}/contacts/{k}"),
                Some(json!({"status": "success"})),
            );
        }
        let exports = format!("/api/v1/campaigns/{c}/tasks/{t}/exports");
        let files = api.ok("GET", &exports, None);
        assert_eq!(
            (files[0]["format"].as_str(), files[0]["rows"].as_i64()),
            (Some("pdf_zip"), Some(2)),
            "{files}"
        );
        let (s, kind, bytes) = api.download(&format!("{exports}/{}", files[0]["id"]));
        assert_eq!((s, kind.as_str()), (200, "application/zip"));
        let letters = read_pdf_zip(&bytes);
        let names: Vec<&str> = letters.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [format!("contact-{zoe}.pdf"), format!("contact-{bob}.pdf")]
        );
        let (_, z) = &letters[0];
        let squeeze = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
        let z = squeeze(z);
        for want in [
            format!("Letters: contact {zoe}"),
            "Dear Zoë Müller, thank you for your order at Letters. We call +49301234567.".into(),
            "Full name Zoë Müller".into(),
            "Home town Köln".into(),
            "phones +49301234567".into(),
            "Why did you buy? Price – and service".into(),
            "Would you recommend us? 9".into(),
        ] {
            assert!(z.contains(&want), "{want:?} not in {z}");
        }
        // A long value wraps onto more lines, every word kept.
        assert_eq!(z.matches("word").count(), 60, "{z}");
        let b = squeeze(&letters[1].1);
        assert!(b.contains("Full name Bob Stone"), "{b}");
        assert!(!b.contains("Why did you buy?"), "{b}");

        // The questionnaire export: only the contact that answered.
        let (s, kind, bytes) = api.download(&format!(
            "/api/v1/campaigns/{c}/questionnaire/export?format=pdf_zip"
        ));
        assert_eq!((s, kind.as_str()), (200, "application/zip"));
        let letters = read_pdf_zip(&bytes);
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(letters[0].0, format!("contact-{zoe}.pdf"));
        let text = squeeze(&letters[0].1);
        assert!(
            text.contains("Why did you buy? Price – and service"),
            "{text}"
        );
        assert!(
            text.contains(&format!("answers of contact {zoe}")),
            "{text}"
        );
    }
}

both_stores! {
    fn export_files_carry_each_contacts_questionnaire_answers() {
        let d = start();
        let api = Api::new(&d, ADMIN);
        let (c, dial) = campaign(&api, "Answered");
        api.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/questionnaire"),
            Some(json!({"questions": [
                {"id": "happy", "text": "Happy?", "type": "yes_no"},
                {"id": "uses", "text": "Uses?", "type": "multi_choice", "choices": ["phone", "web"]},
            ]})),
        );
        let t = export_task(&api, c, dial, "results", "csv", "success");
        let ann = contact(&api, c, dial, "030 1111111", json!({"name": "Ann"}));
        let bob = contact(&api, c, dial, "030 2222222", json!({"name": "Bob"}));
        api.ok(
            "PUT",
            &format!("/api/v1/campaigns/{c}/contacts/{ann}/answers"),
            Some(json!({"answers": {"happy": true, "uses": ["phone", "web"]}})),
        );
        api.ok(
            "PATCH",
            &format!("/api/v1/campaigns/{c}/contacts/{bob}"),
            Some(json!({"status": "success"})),
        );
        let (_, bytes) = export_one(&api, c, ann, "success", t);
        let rows = table(&bytes, b',');
        let header = String::from_utf8_lossy(&bytes)
            .lines()
            .next()
            .unwrap()
            .to_string();
        assert!(
            header.ends_with(",name,answer.happy,answer.uses"),
            "{header}"
        );
        let by_id = |id: i64| {
            rows.iter()
                .find(|r| r["contact_id"] == id.to_string())
                .unwrap_or_else(|| panic!("{id} not exported: {rows:?}"))
        };
        assert_eq!(
            (
                by_id(ann)["answer.happy"].as_str(),
                by_id(ann)["answer.uses"].as_str()
            ),
            ("yes", "phone; web")
        );
        assert_eq!(by_id(bob)["answer.happy"], "");
    }
}
