//! The store on PostgreSQL, measured: a CSV import of `BENCH_IMPORT_ROWS` rows (default 1 M)
//! through `Store::import_csv` (time, rows per second, the process's peak resident memory
//! while it runs), then `Store::next_callable` on a call task of `BENCH_CONTACTS` contacts
//! (default 10 M, written straight into the database), with the plans PostgreSQL chose.
//!
//! Runs on a throwaway cluster (tests/common/pg.rs), so it needs Debian's `postgresql`
//! (`BENCH_BACKEND=sqlite`: the import on a SQLite file instead, for comparison):
//! `cargo bench --profile dev --bench store_pg` (or without `--profile dev` for optimised code).
//! `BENCH_INDEXES=0018`: the import with the contacts indexes and keys of before migrations
//! 0019 to 0021 (on PostgreSQL); `BENCH_INDEXES=0020`: with the keys of before 0021 (a key per
//! column, the numbers' key onto their contact), to compare on one build and one machine state.
//! It reports figures; it fails on no time.

#[path = "../tests/common/pg.rs"]
mod pg;

use dialerd::store::imports::{ImportMode, ImportOptions};
use dialerd::store::{Location, Store};
use serde_json::json;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// CSV rows made on the fly, so the input itself takes no memory.
struct Rows {
    next: u64,
    end: u64,
    pending: Vec<u8>,
    at: usize,
}

impl Read for Rows {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.pending.len() {
            self.pending.clear();
            self.at = 0;
            if self.next == 0 {
                self.pending.extend_from_slice(b"phone,name,customer_no\n");
            }
            while self.pending.len() < 64 * 1024 && self.next < self.end {
                let i = self.next;
                self.pending.extend_from_slice(
                    format!("+49151{i:08},Kunde {i},{}\n", 1_000_000 + i).as_bytes(),
                );
                self.next += 1;
            }
            if self.pending.is_empty() {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn campaign(store: &Store, name: &str) -> (i64, i64) {
    let c = store
        .create_campaign(
            &serde_json::from_value(json!({
                "name": name,
                "default_region": "DE",
                "time_zone": "Europe/Berlin",
                "calling_hours": {"from": "00:00", "to": "23:59"},
            }))
            .unwrap(),
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
    (c.id, t.id)
}

/// The contacts indexes, and contact_phones' key on its campaign, as they were before
/// migrations 0019 and 0020, for `BENCH_INDEXES=0018`: the same build imports with either.
const INDEXES_0018: &str =
    "DROP INDEX contacts_callable; DROP INDEX contacts_due; DROP INDEX contacts_task; \
    CREATE INDEX contacts_callable ON contacts (task_id, time_zone, follow_up_ms, attempts) \
      WHERE status = 'open' AND dnc < 2; \
    CREATE INDEX contacts_due ON contacts (campaign_id, follow_up_ms); \
    CREATE INDEX contacts_task ON contacts (task_id, status, follow_up_ms); \
    CREATE INDEX contacts_import ON contacts (import_id, import_line); \
    ALTER TABLE contact_phones ADD FOREIGN KEY (campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE";

/// The contacts' keys as they were before migration 0021, for `BENCH_INDEXES=0020`.
const KEYS_0020: &str = "DROP TRIGGER contacts_take_their_phones ON contacts; \
    ALTER TABLE contacts DROP CONSTRAINT contacts_task_campaign_fkey; \
    ALTER TABLE contacts ADD FOREIGN KEY (campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE; \
    ALTER TABLE contacts ADD FOREIGN KEY (task_id) REFERENCES tasks (id); \
    ALTER TABLE contact_phones ADD FOREIGN KEY (contact_id) REFERENCES contacts (id) ON DELETE CASCADE";

async fn import(store: &Store, url: &str, rows: u64) {
    let older = match std::env::var("BENCH_INDEXES").as_deref() {
        Ok("0018") => format!("{KEYS_0020}; {INDEXES_0018}"),
        Ok("0020") => KEYS_0020.to_string(),
        _ => String::new(),
    };
    if !older.is_empty() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .unwrap();
        sqlx::raw_sql(&older).execute(&pool).await.unwrap();
        println!("import: with the contacts indexes and keys of before migration 0021 or 0019");
    }
    let (campaign, task) = campaign(store, "import").await;
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let before = rss_kib();
    let started = Instant::now();
    let report = store
        .import_csv(
            campaign,
            ImportOptions {
                mode: ImportMode::Append,
                header: true,
                phone_columns: vec!["phone".into()],
                task_id: Some(task),
                user: "bench".into(),
            },
            Rows {
                next: 0,
                end: rows,
                pending: Vec::new(),
                at: 0,
            },
        )
        .await
        .unwrap();
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let report = serde_json::to_value(&report).unwrap();
    assert_eq!(report["inserted"], rows, "{report}");
    println!(
        "import: {rows} rows in {:.1} s ({:.0} rows/s); resident memory {} MiB before, at most {} MiB during",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64(),
        before / 1024,
        peak.load(Ordering::Relaxed) / 1024
    );
}

async fn next_callable(store: &Store, url: &str, contacts: u64) {
    let (campaign, task) = campaign(store, "callable").await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let now: i64 = 1_800_000_000_000;
    let started = Instant::now();
    // A tenth are due follow-ups, the rest never called; two zones; one in 50
    // closed (success). Written in slices so that no one statement runs for minutes.
    let slice = 1_000_000u64;
    let mut from = 1u64;
    while from <= contacts {
        let to = (from + slice - 1).min(contacts);
        sqlx::query(
            "INSERT INTO contacts (campaign_id, task_id, fields, phones, time_zone, status, detail, \
             follow_up_ms, attempts, created_ms, updated_ms) \
             SELECT $1, $2, '{\"name\":\"x\"}', '[\"+49151' || lpad(g::text, 8, '0') || '\"]', \
               CASE WHEN g % 3 = 0 THEN 'Europe/London' ELSE 'Europe/Berlin' END, \
               CASE WHEN g % 50 = 0 THEN 'success' ELSE 'open' END, '$none', \
               CASE WHEN g % 10 = 0 THEN $3 - g * 7 END, \
               CASE WHEN g % 10 = 0 THEN 1 ELSE 0 END, $3, $3 \
             FROM generate_series($4::bigint, $5::bigint) AS g",
        )
        .bind(campaign)
        .bind(task)
        .bind(now)
        .bind(from as i64)
        .bind(to as i64)
        .execute(&pool)
        .await
        .unwrap();
        from = to + 1;
    }
    sqlx::query("ANALYZE contacts")
        .execute(&pool)
        .await
        .unwrap();
    println!(
        "next_callable: {contacts} contacts written in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let got = store.next_callable(campaign, task, now, 100).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(got.len(), 100);
    }
    times.sort();
    println!(
        "next_callable: 100 of {contacts} contacts: median {:.1} ms, slowest of 50 {:.1} ms",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
    for (what, sql) in [
        (
            "due follow-ups",
            "SELECT follow_up_ms, attempts, id FROM contacts WHERE task_id = $1 AND status = 'open' \
             AND dnc < 2 AND follow_up_ms IS NOT NULL AND time_zone = $2 AND follow_up_ms <= $3 \
             AND NOT EXISTS (SELECT 1 FROM contact_leases cl WHERE cl.contact_id = contacts.id) \
             ORDER BY follow_up_ms, attempts, id LIMIT $4",
        ),
        (
            "never called",
            "SELECT id FROM contacts WHERE task_id = $1 AND status = 'open' AND dnc < 2 \
             AND time_zone = $2 AND follow_up_ms IS NULL AND attempts = 0 \
             AND NOT EXISTS (SELECT 1 FROM contact_leases cl WHERE cl.contact_id = contacts.id) \
             ORDER BY id LIMIT $4",
        ),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) {}",
            sql.replace("$1", &task.to_string())
                .replace("$2", "'Europe/Berlin'")
                .replace("$3", &now.to_string())
                .replace("$4", "100")
        ))
        .fetch_all(&pool)
        .await
        .unwrap();
        println!("EXPLAIN ANALYZE ({what}):\n  {}", plan.join("\n  "));
    }
}

fn main() {
    if std::env::var_os("BENCH_TRACE").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(std::env::var("BENCH_TRACE").unwrap_or_default())
            .init();
    }
    let rows = env_u64("BENCH_IMPORT_ROWS", 1_000_000);
    let contacts = env_u64("BENCH_CONTACTS", 10_000_000);
    // BENCH_BACKEND=sqlite: the import on a SQLite file instead, for comparison.
    let sqlite = std::env::var("BENCH_BACKEND").is_ok_and(|b| b == "sqlite");
    let dir = tempfile::tempdir().unwrap();
    let (url, location) = if sqlite {
        let path = dir.path().join("bench.db");
        (String::new(), Location::Sqlite(path))
    } else {
        let url = pg::database();
        (url.clone(), Location::Postgres(url))
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = Store::open_at(&location, dir.path()).await.unwrap();
            if rows > 0 {
                import(&store, &url, rows).await;
            }
            if contacts > 0 && !sqlite {
                next_callable(&store, &url, contacts).await;
            }
            store.close().await;
        });
}
