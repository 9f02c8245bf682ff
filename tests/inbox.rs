//! Drop-folder imports against the real binary: a CSV written into `<state>/inbox/<campaign>/`
//! is imported with the campaign's saved import settings once complete (a `*.part` file
//! waits), then moved to `done/` with its report, or to `failed/` with the reason; the same
//! file dropped again, also after a restart, is not imported twice.

mod common;

use common::api::{campaign, Api, ADMIN, BASE};
use common::Daemon;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CONFIG: &str = "[inbox]\npoll_interval = \"200ms\"\n";

fn start_in(dir: tempfile::TempDir) -> Daemon {
    Daemon::start_in(
        dir,
        &format!("{BASE}{CONFIG}"),
        &[("DIALERD_ADMIN_TOKEN", ADMIN)],
    )
}

/// Waits (up to 20 s) until `f` gives Some.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn folder(d: &Daemon, c: i64) -> PathBuf {
    d.dir.path().join(format!("state/inbox/{c}"))
}

fn imports(api: &Api, c: i64) -> Vec<Value> {
    api.ok("GET", &format!("/api/v1/campaigns/{c}/imports"), None)
        .as_array()
        .unwrap()
        .clone()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

both_stores! {
    fn dropped_files_are_imported_once_with_the_saved_settings() {
        let d = start_in(tempfile::tempdir().unwrap());
        let api = Api::new(&d, ADMIN);
        let (c, dial) = campaign(&api, "Inbox");
        let settings = format!("/api/v1/campaigns/{c}/import-settings");
        let defaults = api.ok("GET", &settings, None);
        assert_eq!(
            (
                &defaults["mode"],
                &defaults["header"],
                &defaults["phone_columns"]
            ),
            (&json!("append"), &json!(true), &json!(["phone"])),
            "{defaults}"
        );
        let saved = api.ok(
            "PUT",
            &settings,
            Some(json!({"mode": "append", "header": true, "phone_columns": ["tel", "mobile"], "task_id": dial})),
        );
        assert_eq!(saved["phone_columns"], json!(["tel", "mobile"]));
        assert_eq!(saved["updated_by"], "admin");
        let (s, p) = api.call("PUT", &settings, Some(json!({"phone_columns": []})));
        assert_eq!(
            (s, p["field"].as_str()),
            (422, Some("phone_columns")),
            "{p}"
        );
        let (s, p) = api.call("PUT", &settings, Some(json!({"task_id": 999999})));
        assert_eq!((s, p["field"].as_str()), (422, Some("task_id")), "{p}");

        // The campaign's folder is made; a file still being written (*.part) waits.
        let inbox = eventually("the campaign's folder", || {
            let f = folder(&d, c);
            f.is_dir().then_some(f)
        });
        let csv = "name,tel,mobile\nAnn,030 1000001,0151 12345678\nBob,030 1000002,\nnobody,,\n";
        std::fs::write(inbox.join("list.csv.part"), csv).unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        assert!(imports(&api, c).is_empty(), "a .part file was imported");
        assert!(inbox.join("list.csv.part").exists());

        // Renamed: imported with the saved columns, moved to done/ with its report.
        std::fs::rename(inbox.join("list.csv.part"), inbox.join("list.csv")).unwrap();
        let report_path = inbox.join("done/list.csv.report.json");
        let report: Value = eventually("the report in done/", || {
            serde_json::from_str(&std::fs::read_to_string(&report_path).ok()?).ok()
        });
        assert_eq!(
            (report["inserted"].as_i64(), report["bad"].as_i64()),
            (Some(2), Some(1)),
            "{report}"
        );
        assert!(inbox.join("done/list.csv").is_file());
        assert!(!inbox.join("list.csv").exists());
        let all = api.all_contacts(c, "", 100);
        assert_eq!(all.len(), 2);
        let ann = all.iter().find(|k| k["fields"]["name"] == "Ann").unwrap();
        assert_eq!(ann["phones"], json!(["+49301000001", "+4915112345678"]));
        let history = imports(&api, c);
        assert_eq!(history.len(), 1);
        assert_eq!(history[0]["id"], report["id"]);

        // A file the settings cannot read: failed/ with the reason.
        std::fs::write(inbox.join("bad.csv"), "name,phone\nCy,030 1000003\n").unwrap();
        let reason = eventually("the reason in failed/", || {
            std::fs::read_to_string(inbox.join("failed/bad.csv.reason.txt")).ok()
        });
        assert!(reason.contains("tel"), "{reason}");
        assert!(inbox.join("failed/bad.csv").is_file());

        // The same file dropped again (same name, size, time and bytes): not imported again.
        let again = inbox.join("list.csv");
        std::fs::copy(inbox.join("done/list.csv"), &again).unwrap();
        let mtime = std::fs::metadata(inbox.join("done/list.csv"))
            .unwrap()
            .modified()
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(&again)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let why = eventually("the copy refused", || {
            std::fs::read_to_string(inbox.join("failed/list.csv.reason.txt")).ok()
        });
        assert!(why.contains("already imported"), "{why}");
        assert_eq!(imports(&api, c).len(), 1);

        // After a restart too; and a new file is still taken.
        let mut d = d;
        d.signal(libc::SIGTERM);
        assert!(d.wait_exit(Duration::from_secs(10)).is_some());
        let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
        std::fs::copy(inbox.join("done/list.csv"), &again).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&again)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::write(
            inbox.join("more.csv"),
            "name,tel,mobile\nDee,030 1000004,\n",
        )
        .unwrap();
        let d = start_in(dir);
        let api = Api::new(&d, ADMIN);
        eventually("the new file imported", || {
            inbox
                .join("done/more.csv.report.json")
                .is_file()
                .then_some(())
        });
        let why = eventually("the copy refused after the restart", || {
            std::fs::read_to_string(inbox.join("failed/list.csv.2.reason.txt")).ok()
        });
        assert!(why.contains("already imported"), "{why}");
        assert_eq!(imports(&api, c).len(), 2);
        assert_eq!(api.all_contacts(c, "", 100).len(), 3);
        assert!(read(&inbox.join("done/more.csv")).contains("Dee"));
    }
}
