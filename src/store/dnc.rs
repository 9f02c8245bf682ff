//! Do-not-call lists: one global, one per campaign. Numbers on them are never dialled; each
//! contact keeps a count (`dnc`: 0 none, 1 some, 2 all of its numbers) so selecting callable
//! contacts needs no join.

use super::builder::QueryBuilder;
use super::contacts::Contact;
use super::{now_ms, phone, push_in_list, rfc3339, Result, Store, StoreError};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DncScope {
    /// The global list (every campaign).
    Global,
    /// One campaign's list.
    Campaign(i64),
}

/// A number on a list.
#[derive(Debug, Clone, Serialize)]
pub struct DncEntry {
    /// E.164 number.
    pub phone: String,
    /// When it was added.
    pub added_at: String,
    /// Who added it.
    pub added_by: String,
}

/// One page of a list and the cursor of the next.
#[derive(Debug, Clone, Serialize)]
pub struct DncPage {
    /// The numbers, in order.
    pub items: Vec<DncEntry>,
    /// Cursor for the next page; null at the end.
    pub next: Option<String>,
}

/// A number that could not be added.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DncProblem {
    /// Position: index in the JSON list, or CSV line.
    pub at: u64,
    /// Why.
    pub reason: String,
}

/// What adding numbers did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DncReport {
    /// Numbers newly on the list.
    pub added: u64,
    /// Numbers that were on it already.
    pub already: u64,
    /// Numbers refused (the first 1,000).
    pub bad: Vec<DncProblem>,
    /// How many were refused.
    pub bad_count: u64,
    /// Contacts whose do-not-call mark changed.
    pub contacts_marked: u64,
}

/// True when `cp.phone` (a `contact_phones` row `cp`) is on the global list or its campaign's.
const BLOCKED: &str = "(EXISTS (SELECT 1 FROM dnc_global g WHERE g.phone = cp.phone) \
     OR EXISTS (SELECT 1 FROM dnc_campaign d WHERE d.campaign_id = cp.campaign_id AND d.phone = cp.phone))";

impl Store {
    /// Recounts the do-not-call mark of the contacts holding any of `phones` (in `campaign`,
    /// or in any campaign); returns how many contacts changed.
    pub(crate) async fn refresh_dnc(
        conn: &mut sqlx::AnyConnection,
        campaign: Option<i64>,
        phones: &[String],
    ) -> Result<u64> {
        let mut changed = 0;
        for chunk in phones.chunks(500) {
            let mut q = QueryBuilder::new(format!(
                "UPDATE contacts SET dnc = (SELECT CASE WHEN COALESCE(SUM(CASE WHEN {BLOCKED} THEN 1 ELSE 0 END), 0) = 0 THEN 0 \
                 WHEN SUM(CASE WHEN {BLOCKED} THEN 1 ELSE 0 END) < COUNT(*) THEN 1 ELSE 2 END \
                 FROM contact_phones cp WHERE cp.contact_id = contacts.id) \
                 WHERE id IN (SELECT contact_id FROM contact_phones WHERE phone IN "
            ));
            push_in_list(&mut q, chunk);
            if let Some(c) = campaign {
                q.push(" AND campaign_id = ").push_bind(c);
            }
            q.push(")");
            changed += q.build().execute(&mut *conn).await?.rows_affected();
        }
        Ok(changed)
    }

    /// The numbers among `phones` that are on the global list or `campaign_id`'s.
    pub(crate) async fn blocked_numbers(
        conn: &mut sqlx::AnyConnection,
        campaign_id: i64,
        phones: &[String],
    ) -> Result<Vec<String>> {
        let mut blocked = Vec::new();
        for chunk in phones.chunks(400) {
            let mut q = QueryBuilder::new("SELECT phone FROM dnc_global WHERE phone IN ");
            push_in_list(&mut q, chunk);
            q.push(" UNION SELECT phone FROM dnc_campaign WHERE campaign_id = ")
                .push_bind(campaign_id)
                .push(" AND phone IN ");
            push_in_list(&mut q, chunk);
            blocked.extend(
                q.build_query_scalar::<String>()
                    .fetch_all(&mut *conn)
                    .await?,
            );
        }
        Ok(blocked)
    }

    /// Marks newly written contacts whose numbers are on a list (after an insert or a change
    /// of numbers).
    pub(crate) async fn mark_new_numbers(
        conn: &mut sqlx::AnyConnection,
        campaign_id: i64,
        phones: &[String],
    ) -> Result<()> {
        let blocked = Self::blocked_numbers(conn, campaign_id, phones).await?;
        if !blocked.is_empty() {
            Self::refresh_dnc(conn, Some(campaign_id), &blocked).await?;
        }
        Ok(())
    }

    /// Fills `dnc_numbers` of contacts that have numbers on a list.
    pub(crate) async fn mark_dnc(&self, contacts: &mut [Contact]) -> Result<()> {
        let ids: Vec<i64> = contacts
            .iter()
            .filter(|c| c.dnc > 0)
            .map(|c| c.id)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let mut blocked: HashMap<i64, Vec<String>> = HashMap::new();
        for chunk in ids.chunks(500) {
            let mut q = QueryBuilder::new(format!(
                "SELECT cp.contact_id, cp.phone FROM contact_phones cp WHERE {BLOCKED} AND cp.contact_id IN "
            ));
            push_in_list(&mut q, chunk);
            for row in q.build().fetch_all(&self.reader).await? {
                blocked
                    .entry(row.try_get(0)?)
                    .or_default()
                    .push(row.try_get(1)?);
            }
        }
        for c in contacts {
            if let Some(list) = blocked.remove(&c.id) {
                c.dnc_numbers = c
                    .spec
                    .phones
                    .iter()
                    .filter(|p| list.contains(p))
                    .cloned()
                    .collect();
            }
        }
        Ok(())
    }

    /// The default region numbers of `scope` are read with (`region` for the global list).
    async fn dnc_region(
        &self,
        scope: DncScope,
        region: Option<&str>,
    ) -> Result<Option<phonenumber::country::Id>> {
        let code = match (scope, region) {
            (_, Some(r)) => Some(r.to_string()),
            (DncScope::Campaign(c), None) => self.campaign(c).await?.spec.default_region,
            (DncScope::Global, None) => None,
        };
        match code {
            None => Ok(None),
            Some(r) => phone::region(&r).map(Some).ok_or_else(|| {
                StoreError::invalid(
                    "region",
                    format!("{r:?} is not an ISO 3166 country code like DE or US"),
                )
            }),
        }
    }

    /// One page of a list, by number, after `cursor`.
    pub async fn dnc_list(
        &self,
        scope: DncScope,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<DncPage> {
        let mut q = match scope {
            DncScope::Global => {
                QueryBuilder::new("SELECT phone, added_ms, added_by FROM dnc_global WHERE 1 = 1")
            }
            DncScope::Campaign(c) => {
                self.campaign(c).await?;
                let mut q = QueryBuilder::new(
                    "SELECT phone, added_ms, added_by FROM dnc_campaign WHERE campaign_id = ",
                );
                q.push_bind(c);
                q
            }
        };
        if let Some(after) = cursor {
            q.push(" AND phone > ").push_bind(after.to_string());
        }
        q.push(" ORDER BY phone LIMIT ").push_bind(limit as i64 + 1);
        let rows = q.build().fetch_all(&self.reader).await?;
        let more = rows.len() > limit as usize;
        let items = rows
            .iter()
            .take(limit as usize)
            .map(|r| {
                Ok(DncEntry {
                    phone: r.try_get(0)?,
                    added_at: rfc3339(r.try_get(1)?),
                    added_by: r.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let next = items.last().filter(|_| more).map(|e| e.phone.clone());
        Ok(DncPage { items, next })
    }

    /// Normalises `numbers` ((position, text)) to E.164 and puts them on a list; contacts
    /// holding them are marked in the same transaction.
    pub async fn dnc_add(
        &self,
        scope: DncScope,
        region: Option<&str>,
        numbers: &[(u64, String)],
        actor: &str,
    ) -> Result<DncReport> {
        let region = self.dnc_region(scope, region).await?;
        let mut report = DncReport::default();
        let mut good = Vec::with_capacity(numbers.len());
        for (at, text) in numbers {
            match phone::normalise(text, region) {
                Ok(p) => good.push(p),
                Err(reason) => {
                    report.bad_count += 1;
                    if report.bad.len() < 1000 {
                        report.bad.push(DncProblem { at: *at, reason });
                    }
                }
            }
        }
        good.sort();
        good.dedup();
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        for chunk in good.chunks(300) {
            let mut q = match scope {
                DncScope::Global => {
                    QueryBuilder::new("INSERT INTO dnc_global (phone, added_ms, added_by) ")
                }
                DncScope::Campaign(_) => QueryBuilder::new(
                    "INSERT INTO dnc_campaign (campaign_id, phone, added_ms, added_by) ",
                ),
            };
            q.push_values(chunk, |mut b, p| {
                if let DncScope::Campaign(c) = scope {
                    b.push_bind(c);
                }
                b.push_bind(p.clone())
                    .push_bind(now)
                    .push_bind(actor.to_string());
            });
            q.push(" ON CONFLICT DO NOTHING");
            let added = q.build().execute(&mut *tx).await?.rows_affected();
            report.added += added;
            report.already += chunk.len() as u64 - added;
        }
        report.contacts_marked = Self::refresh_dnc(&mut tx, campaign_of(scope), &good).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// Takes numbers off a list; returns how many were on it.
    pub async fn dnc_remove(
        &self,
        scope: DncScope,
        region: Option<&str>,
        numbers: &[String],
    ) -> Result<u64> {
        let region = self.dnc_region(scope, region).await?;
        let mut phones = Vec::with_capacity(numbers.len());
        for (i, text) in numbers.iter().enumerate() {
            phones.push(
                phone::normalise(text, region)
                    .map_err(|r| StoreError::invalid(format!("phones[{i}]"), r))?,
            );
        }
        let mut tx = self.writer.begin().await?;
        let mut removed = 0;
        for chunk in phones.chunks(500) {
            let mut q = match scope {
                DncScope::Global => QueryBuilder::new("DELETE FROM dnc_global WHERE phone IN "),
                DncScope::Campaign(c) => {
                    let mut q = QueryBuilder::new("DELETE FROM dnc_campaign WHERE campaign_id = ");
                    q.push_bind(c).push(" AND phone IN ");
                    q
                }
            };
            push_in_list(&mut q, chunk);
            removed += q.build().execute(&mut *tx).await?.rows_affected();
        }
        Self::refresh_dnc(&mut tx, campaign_of(scope), &phones).await?;
        tx.commit().await?;
        Ok(removed)
    }
}

fn campaign_of(scope: DncScope) -> Option<i64> {
    match scope {
        DncScope::Global => None,
        DncScope::Campaign(c) => Some(c),
    }
}

/// Numbers read from a CSV for a list, in batches: ((line, cell) list) or a failure.
type NumberBatch = std::result::Result<Vec<(u64, String)>, StoreError>;

/// Reads the `column` (name with a header, else 1-based number) of a CSV in batches of 1,000;
/// runs on a blocking thread.
fn read_numbers(
    input: impl std::io::Read,
    header: bool,
    column: &str,
    tx: tokio::sync::mpsc::Sender<NumberBatch>,
) {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut record = csv::ByteRecord::new();
    let mut index = if header {
        None
    } else {
        match column.parse::<usize>() {
            Ok(n) if n >= 1 => Some(n - 1),
            _ => {
                let _ = tx.blocking_send(Err(StoreError::invalid(
                    "column",
                    "without a header, wanted a column number from 1",
                )));
                return;
            }
        }
    };
    let mut batch = Vec::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let _ = tx.blocking_send(Err(StoreError::invalid(
                    "body",
                    format!("CSV unreadable: {e}"),
                )));
                return;
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let Some(i) = index else {
            let names: Vec<String> = record
                .iter()
                .map(|n| {
                    String::from_utf8_lossy(n)
                        .trim_start_matches('\u{feff}')
                        .trim()
                        .to_string()
                })
                .collect();
            match names.iter().position(|n| n == column) {
                Some(i) => index = Some(i),
                None => {
                    let _ = tx.blocking_send(Err(StoreError::invalid(
                        "column",
                        format!(
                            "the CSV has no column {column:?}; its columns are {}",
                            names.join(", ")
                        ),
                    )));
                    return;
                }
            }
            continue;
        };
        let cell = record
            .get(i)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_default();
        if cell.trim().is_empty() {
            continue;
        }
        batch.push((line, cell));
        if batch.len() >= 1000 && tx.blocking_send(Ok(std::mem::take(&mut batch))).is_err() {
            return;
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Ok(batch));
    }
}

impl Store {
    /// Puts the numbers of a CSV column on a list, 1,000 per transaction, read as a stream.
    pub async fn dnc_import(
        &self,
        scope: DncScope,
        region: Option<&str>,
        header: bool,
        column: &str,
        input: impl std::io::Read + Send + 'static,
        actor: &str,
    ) -> Result<DncReport> {
        self.dnc_region(scope, region).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let column = column.to_string();
        let reader = tokio::task::spawn_blocking(move || read_numbers(input, header, &column, tx));
        let mut total = DncReport::default();
        let mut failure = None;
        while let Some(batch) = rx.recv().await {
            match batch {
                Ok(numbers) => {
                    let r = self.dnc_add(scope, region, &numbers, actor).await?;
                    total.added += r.added;
                    total.already += r.already;
                    total.bad_count += r.bad_count;
                    total.contacts_marked += r.contacts_marked;
                    let room = 1000usize.saturating_sub(total.bad.len());
                    total.bad.extend(r.bad.into_iter().take(room));
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(rx);
        let _ = reader.await;
        match failure {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }
}
