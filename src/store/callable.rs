//! The contacts a call task may dial now: open, not blocked by a do-not-call list, follow-up
//! due or never called, and inside the campaign's calling hours in the contact's own zone.
//!
//! Fast at a million contacts: the task's distinct zones come from the `contacts_callable`
//! (follow-ups) and `contacts_fresh` (never called) indexes by loose index scans, each zone
//! is judged once with chrono-tz, and each zone that is inside its hours gives two
//! index-ordered lists (overdue follow-ups, never called) that are merged here; only the
//! chosen rows are read whole.
//!
//! A call task with `settings.filter` or `settings.order` is selected with one query per
//! bucket over the zones inside their hours instead: the filter's conditions hold for
//! follow-ups and fresh contacts alike; the order sorts the fresh ones (due callbacks first).

use super::builder::QueryBuilder;
use super::campaigns::{minutes, CallingHours};
use super::contacts::{contact_of, like_pattern, Contact, COLUMNS};
use super::forms::FieldType;
use super::tasks::{CallFilter, CallOrder, CallSettings, Direction};
use super::{push_in_list, Backend, Result, Store};
use chrono::Timelike;
use serde_json::Value;
use sqlx::Row;
use std::collections::HashMap;

/// Most contacts one selection may return.
pub const MAX_LIMIT: u32 = 10_000;

/// Whether `now_ms` falls inside `[from, to)` minutes of the local day in `zone`.
pub fn inside_hours(zone: &str, from: u32, to: u32, now_ms: i64) -> bool {
    let Ok(tz) = zone.parse::<chrono_tz::Tz>() else {
        return false;
    };
    let Some(utc) = chrono::DateTime::from_timestamp_millis(now_ms) else {
        return false;
    };
    let local = utc.with_timezone(&tz);
    let minute = local.hour() * 60 + local.minute();
    from <= minute && minute < to
}

/// Appends `AND …` conditions for a call task's filter.
fn push_call_filter(q: &mut QueryBuilder<'_>, backend: Backend, f: &CallFilter) {
    if let Some(d) = &f.detail {
        q.push(" AND detail = ").push_bind(d.clone());
    }
    if let Some(text) = f.text.as_ref().filter(|t| !t.is_empty()) {
        let p = like_pattern(text);
        q.push(" AND (LOWER(fields) LIKE ")
            .push_bind(p.clone())
            .push(" ESCAPE '\\' OR phones LIKE ")
            .push_bind(p)
            .push(" ESCAPE '\\')");
    }
    for (key, want) in &f.fields {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let values: Vec<String> = match want {
            Value::Array(a) => a.iter().map(text).collect(),
            v => vec![text(v)],
        };
        q.push(" AND ");
        backend.push_json_text(q, "fields", key);
        q.push(" IN (");
        let mut list = q.separated(", ");
        for v in values {
            list.push_bind(v);
        }
        q.push(")");
    }
}

/// `calling_hours` as minutes of the day.
fn span(hours: &CallingHours) -> Result<(u32, u32)> {
    Ok((
        minutes("calling_hours.from", &hours.from)?,
        minutes("calling_hours.to", &hours.to)?,
    ))
}

/// `AND …` keeping out of the task's general selection the particular callbacks (follow-ups
/// of contacts with an owner) due less than the task's grace ago: those wait for their owner
/// ([`Store::lease_owned_due`]).
fn owner_hold(settings: &CallSettings, now_ms: i64) -> String {
    let cutoff = now_ms - i64::from(settings.particular_grace_seconds) * 1000;
    format!(" AND (owner IS NULL OR follow_up_ms <= {cutoff})")
}

/// The callable part of the `contacts_callable` and `contacts_fresh` indexes' conditions, as
/// the indexes state it.
const CALLABLE: &str = "status = 'open' AND dnc < 2";

/// The rest of `contacts_callable`'s condition: follow-ups only (migration 0019), so that a
/// new contact does not enter it.
const FOLLOW_UP: &str = " AND follow_up_ms IS NOT NULL";

/// The rest of `contacts_fresh`'s condition: never called.
const FRESH: &str = " AND follow_up_ms IS NULL AND attempts = 0";

/// `AND …` leaving out contacts leased to a call now (one probe of the leases' key each): a
/// dialer with thousands of calls in flight would otherwise read them all again at every lease.
const UNLEASED: &str =
    " AND NOT EXISTS (SELECT 1 FROM contact_leases cl WHERE cl.contact_id = contacts.id)";

impl Store {
    /// A call task's settings and its campaign's calling hours (minutes of the day).
    async fn dialling_rules(
        &self,
        campaign_id: i64,
        task_id: i64,
    ) -> Result<(CallSettings, (u32, u32))> {
        let campaign = self.campaign(campaign_id).await?;
        let settings = self
            .task(campaign_id, task_id)
            .await?
            .spec
            .call_settings()
            .unwrap_or_default();
        Ok((settings, span(&campaign.spec.calling_hours)?))
    }

    /// Distinct zones of a task's callable contacts (follow-ups or never called), one index
    /// probe per zone in each of the two indexes.
    async fn callable_zones(&self, task_id: i64) -> Result<Vec<String>> {
        let sql = format!(
            "WITH RECURSIVE d(tz) AS ( \
               SELECT MIN(time_zone) FROM contacts WHERE task_id = $1 AND {CALLABLE}{FOLLOW_UP} \
               UNION ALL \
               SELECT (SELECT MIN(time_zone) FROM contacts WHERE task_id = $1 AND {CALLABLE}{FOLLOW_UP} AND time_zone > d.tz) \
               FROM d WHERE d.tz IS NOT NULL), \
             f(tz) AS ( \
               SELECT MIN(time_zone) FROM contacts WHERE task_id = $1 AND {CALLABLE}{FRESH} \
               UNION ALL \
               SELECT (SELECT MIN(time_zone) FROM contacts WHERE task_id = $1 AND {CALLABLE}{FRESH} AND time_zone > f.tz) \
               FROM f WHERE f.tz IS NOT NULL) \
             SELECT tz FROM d WHERE tz IS NOT NULL UNION SELECT tz FROM f WHERE tz IS NOT NULL ORDER BY 1"
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(task_id)
            .fetch_all(&self.reader)
            .await?)
    }

    /// Up to `limit` contacts of `task_id` the dialer may call at `now_ms`: overdue follow-ups
    /// (oldest first), then never-called contacts (by id), less those a country calling rule
    /// holds back (`calling_rules.rs`) and those leased to a call now. Their `phones` hold only the numbers that are not on a
    /// do-not-call list (`dnc_numbers` the others).
    pub async fn next_callable(
        &self,
        campaign_id: i64,
        task_id: i64,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        let limit = limit.min(MAX_LIMIT);
        self.callable_under_rules(campaign_id, task_id, now_ms, limit)
            .await
    }

    /// `next_callable` before the calling rules, with no cap on `limit`.
    pub(super) async fn select_callable(
        &self,
        campaign_id: i64,
        task_id: i64,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        let (settings, (from, to)) = self.dialling_rules(campaign_id, task_id).await?;
        let limit = limit as i64;
        let kept = owner_hold(&settings, now_ms);
        let zones: Vec<String> = self
            .callable_zones(task_id)
            .await?
            .into_iter()
            .filter(|z| inside_hours(z, from, to, now_ms))
            .collect();
        if settings.filter.is_some() || settings.order.is_some() {
            let chosen = self
                .chosen_in_order(
                    campaign_id,
                    task_id,
                    &zones,
                    settings.filter.as_ref(),
                    settings.order.as_ref(),
                    &kept,
                    now_ms,
                    limit,
                )
                .await?;
            return self.read_callable(&chosen).await;
        }
        // (follow-up, attempts, id) of overdue contacts; ids of never-called ones.
        let mut overdue: Vec<(i64, i64, i64)> = Vec::new();
        let mut fresh: Vec<i64> = Vec::new();
        for zone in &zones {
            let hold = self.held_by_rules(zone, now_ms);
            let rows = sqlx::query(&format!(
                "SELECT follow_up_ms, attempts, id FROM contacts WHERE task_id = $1 AND {CALLABLE}{FOLLOW_UP} \
                 AND time_zone = $2 AND follow_up_ms <= $3{hold}{kept}{UNLEASED} ORDER BY follow_up_ms, attempts, id LIMIT $4"
            ))
            .bind(task_id)
            .bind(zone)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
            for r in rows {
                overdue.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
            }
            if overdue.len() as i64 >= limit && zones.len() == 1 {
                continue;
            }
            fresh.extend(
                sqlx::query_scalar::<_, i64>(&format!(
                    "SELECT id FROM contacts WHERE task_id = $1 AND {CALLABLE}{FRESH} AND time_zone = $2\
                     {hold}{UNLEASED} ORDER BY id LIMIT $3"
                ))
                .bind(task_id)
                .bind(zone)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?,
            );
        }
        overdue.sort_unstable();
        fresh.sort_unstable();
        let chosen: Vec<i64> = overdue
            .iter()
            .map(|o| o.2)
            .chain(fresh)
            .take(limit as usize)
            .collect();
        self.read_callable(&chosen).await
    }

    /// The ids of a task's callable contacts in `zones` that match `filter`: overdue follow-ups
    /// (oldest first), then never-called contacts in `order` (by id when none), at most `limit`.
    #[allow(clippy::too_many_arguments)]
    async fn chosen_in_order(
        &self,
        campaign_id: i64,
        task_id: i64,
        zones: &[String],
        filter: Option<&CallFilter>,
        order: Option<&CallOrder>,
        kept: &str,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<i64>> {
        if zones.is_empty() {
            return Ok(Vec::new());
        }
        let start = |q: &mut QueryBuilder<'_>| {
            q.push(" FROM contacts WHERE task_id = ")
                .push_bind(task_id)
                .push(format!(" AND {CALLABLE} AND time_zone IN ("));
            let mut list = q.separated(", ");
            for z in zones {
                list.push_bind(z.clone());
            }
            q.push(")").push(UNLEASED);
            if let Some(f) = filter {
                push_call_filter(q, self.backend, f);
            }
        };
        let mut q = QueryBuilder::new("SELECT id");
        start(&mut q);
        q.push(FOLLOW_UP)
            .push(" AND follow_up_ms <= ")
            .push_bind(now_ms)
            .push(kept.to_string())
            .push(" ORDER BY follow_up_ms, attempts, id LIMIT ")
            .push_bind(limit);
        let mut chosen: Vec<i64> = q.build_query_scalar().fetch_all(&self.reader).await?;
        let left = limit - chosen.len() as i64;
        if left > 0 {
            let mut q = QueryBuilder::new("SELECT id");
            start(&mut q);
            q.push(FRESH).push(" ORDER BY ");
            if let Some(o) = order {
                let numeric = self
                    .form(campaign_id)
                    .await?
                    .fields
                    .iter()
                    .any(|f| f.key == o.field && f.kind == FieldType::Number);
                let member = |q: &mut QueryBuilder<'_>| {
                    if numeric {
                        self.backend.push_json_number(q, "fields", &o.field);
                    } else {
                        self.backend.push_json_text(q, "fields", &o.field);
                    }
                };
                // Contacts without the field last, whichever the direction.
                member(&mut q);
                q.push(" IS NULL, ");
                member(&mut q);
                q.push(match o.direction {
                    Direction::Asc => " ASC, ",
                    Direction::Desc => " DESC, ",
                });
            }
            q.push("id LIMIT ").push_bind(left);
            chosen.extend(
                q.build_query_scalar::<i64>()
                    .fetch_all(&self.reader)
                    .await?,
            );
        }
        Ok(chosen)
    }

    /// Particular callbacks of `task_id` for the agents named in `owners`: contacts one of
    /// them owns whose follow-up fell due less than the task's grace ago, callable now (calling
    /// hours, rules, the task's filter), oldest first, at most `limit`, each leased to `lessee`
    /// in the same step. The general selection leaves them out during the grace.
    pub async fn lease_owned_due(
        &self,
        campaign_id: i64,
        task_id: i64,
        owners: &[String],
        now_ms: i64,
        limit: u32,
        lessee: &str,
    ) -> Result<Vec<Contact>> {
        if owners.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let (settings, (from, to)) = self.dialling_rules(campaign_id, task_id).await?;
        let cutoff = now_ms - i64::from(settings.particular_grace_seconds) * 1000;
        let mut q = QueryBuilder::new("SELECT id FROM contacts WHERE task_id = ");
        q.push_bind(task_id)
            .push(format!(" AND {CALLABLE} AND owner IN ("));
        let mut list = q.separated(", ");
        for o in owners {
            list.push_bind(o.clone());
        }
        q.push(")")
            .push(FOLLOW_UP)
            .push(" AND follow_up_ms <= ")
            .push_bind(now_ms)
            .push(" AND follow_up_ms > ")
            .push_bind(cutoff);
        if let Some(f) = &settings.filter {
            push_call_filter(&mut q, self.backend, f);
        }
        q.push(" ORDER BY follow_up_ms, id LIMIT ")
            .push_bind(i64::from(limit.min(MAX_LIMIT)));
        let ids: Vec<i64> = q.build_query_scalar().fetch_all(&self.reader).await?;
        let mut due = self.read_callable(&ids).await?;
        due.retain(|c| {
            c.spec
                .time_zone
                .as_deref()
                .is_some_and(|z| inside_hours(z, from, to, now_ms))
        });
        let reasons = self.rule_reasons(&due, now_ms).await?;
        let allowed: Vec<Contact> = due
            .into_iter()
            .zip(reasons)
            .filter_map(|(c, why)| why.is_empty().then_some(c))
            .collect();
        let want = allowed.len();
        self.lease_each_as_read(allowed, campaign_id, task_id, lessee, now_ms, want)
            .await
    }

    /// The chosen contacts whole, in the order given, their blocked numbers taken off.
    async fn read_callable(&self, chosen: &[i64]) -> Result<Vec<Contact>> {
        let mut rows: HashMap<i64, Contact> = HashMap::with_capacity(chosen.len());
        for chunk in chosen.chunks(500) {
            let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM contacts WHERE id IN "));
            push_in_list(&mut q, chunk);
            for row in q.build().fetch_all(&self.reader).await? {
                let c = contact_of(&row)?;
                rows.insert(c.id, c);
            }
        }
        let mut out: Vec<Contact> = chosen.iter().filter_map(|id| rows.remove(id)).collect();
        self.mark_dnc(&mut out).await?;
        for c in &mut out {
            let blocked = &c.dnc_numbers;
            c.spec.phones.retain(|p| !blocked.contains(p));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn hours_are_judged_in_the_contacts_zone() {
        let (from, to) = (8 * 60, 21 * 60);
        // 07:30 UTC in January: 08:30 in Berlin, 02:30 in New York.
        let now = at("2025-01-15T07:30:00Z");
        assert!(inside_hours("Europe/Berlin", from, to, now));
        assert!(!inside_hours("America/New_York", from, to, now));
        // 20:30 UTC: 21:30 in Berlin (closed at 21:00), 15:30 in New York.
        let now = at("2025-01-15T20:30:00Z");
        assert!(!inside_hours("Europe/Berlin", from, to, now));
        assert!(inside_hours("America/New_York", from, to, now));
        // Summer time moves the edge: 06:30 UTC in July is 08:30 in Berlin.
        assert!(inside_hours(
            "Europe/Berlin",
            from,
            to,
            at("2025-07-15T06:30:00Z")
        ));
        assert!(!inside_hours("Nowhere/Town", 0, 24 * 60, now));
        assert!(inside_hours("UTC", 0, 24 * 60, at("2025-07-15T23:59:00Z")));
    }
}
