//! Country calling rules: per country of a contact's number, the weekday windows (in the
//! contact's own zone), the public holidays without calls, and the most attempts in a rolling
//! 30 days. France's décret 2022-1313 is built in; `[[calling_rules]]` replaces or adds rules.
//!
//! The judgement is sans-IO (`CallingRules::reasons` takes `now` and the attempt count); the
//! store part below counts attempts in the contacts' history and filters `next_callable`.

use super::builder::QueryBuilder;
use super::campaigns::{minutes, Day, Window};
use super::contacts::Contact;
use super::{push_in_list, Result, Store, StoreError, ID_CHUNK};
use crate::config::CallingRuleConfig;
use chrono::{Datelike, NaiveDate, Timelike};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};

/// The rolling period of `max_attempts_30d`.
pub const THIRTY_DAYS_MS: i64 = 30 * 24 * 3600 * 1000;

/// Most candidates `next_callable` reads while looking past contacts held back by a rule.
const MAX_SCAN: u32 = 100_000;

/// A public holiday: a fixed date, or a day counted from Easter Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holiday {
    Fixed { month: u32, day: u32 },
    Easter(i64),
}

impl Holiday {
    /// `MM-DD`, `easter`, `easter+N` or `easter-N`.
    fn parse(text: &str) -> Option<Self> {
        if let Some(rest) = text.strip_prefix("easter") {
            let offset = match rest {
                "" => 0,
                _ if rest.starts_with(['+', '-']) => rest.parse().ok()?,
                _ => return None,
            };
            return (-100..=100)
                .contains(&offset)
                .then_some(Self::Easter(offset));
        }
        let (m, d) = text.split_once('-')?;
        if m.len() != 2 || d.len() != 2 {
            return None;
        }
        let (month, day) = (m.parse().ok()?, d.parse().ok()?);
        // 2024 is a leap year, so 02-29 is accepted.
        NaiveDate::from_ymd_opt(2024, month, day)?;
        Some(Self::Fixed { month, day })
    }

    fn falls_on(self, date: NaiveDate) -> bool {
        match self {
            Self::Fixed { month, day } => date.month() == month && date.day() == day,
            Self::Easter(offset) => {
                easter(date.year()).is_some_and(|e| e + chrono::Duration::days(offset) == date)
            }
        }
    }
}

/// Easter Sunday of a Gregorian year (the anonymous Gregorian computus).
fn easter(year: i32) -> Option<NaiveDate> {
    let y = year;
    let (a, b, c) = (y % 19, y / 100, y % 100);
    let (d, e) = (b / 4, b % 4);
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(y, month as u32, day as u32)
}

/// One window: days of the week (bit 0 Monday) and `[from, to)` minutes of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    days: u8,
    from: u32,
    to: u32,
}

/// The rule of one country.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// ISO 3166 alpha-2 code.
    pub country: String,
    spans: Vec<Span>,
    holidays: Vec<Holiday>,
    /// Most attempts in the last 30 days; unset: no limit.
    pub max_attempts_30d: Option<u32>,
    /// `+CC` when the country has its calling code to itself, so that its numbers can be told
    /// apart in SQL (`+1` or `+44`, shared with other countries, cannot).
    prefix: Option<String>,
    /// The windows as people read them: `Monday–Friday 10:00–13:00, 14:00–20:00`.
    windows_text: String,
}

const DAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn hhmm(m: u32) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// `Monday–Friday`, `Saturday`, `Monday, Wednesday` for a day mask.
fn days_text(mask: u8) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for d in (0..7).filter(|d| mask & (1 << d) != 0) {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == d => *end = d,
            _ => runs.push((d, d)),
        }
    }
    let mut parts = Vec::new();
    for (a, b) in runs {
        match b - a {
            0 => parts.push(DAY_NAMES[a].to_string()),
            1 => parts.extend([DAY_NAMES[a].to_string(), DAY_NAMES[b].to_string()]),
            _ => parts.push(format!("{}–{}", DAY_NAMES[a], DAY_NAMES[b])),
        }
    }
    parts.join(", ")
}

impl Rule {
    /// A rule from its configuration, naming the bad key (`calling_rules[i].…`) on error.
    fn from_config(i: usize, c: &CallingRuleConfig) -> Result<Self> {
        let key = |k: &str| format!("calling_rules[{i}].{k}");
        let country = c.country.to_ascii_uppercase();
        if c.country.len() != 2 || super::phone::region(&country).is_none() {
            return Err(StoreError::invalid(
                key("country"),
                format!(
                    "{:?} is not an ISO 3166 country code like FR or DE",
                    c.country
                ),
            ));
        }
        let mut spans = Vec::new();
        for (w, win) in c.windows.iter().enumerate() {
            let wkey = |k: &str| key(&format!("windows[{w}].{k}"));
            if win.days.is_empty() {
                return Err(StoreError::invalid(wkey("days"), "wanted at least one day"));
            }
            let from = minutes(&wkey("from"), &win.from)?;
            let to = minutes(&wkey("to"), &win.to)?;
            if to <= from {
                return Err(StoreError::invalid(
                    wkey("to"),
                    format!(
                        "the window ends at {}, not after it starts at {}",
                        win.to, win.from
                    ),
                ));
            }
            let days = win.days.iter().fold(0u8, |m, d| m | 1 << (*d as u8));
            spans.push(Span { days, from, to });
        }
        let mut holidays = Vec::new();
        for (h, text) in c.holidays.iter().enumerate() {
            holidays.push(Holiday::parse(text).ok_or_else(|| {
                StoreError::invalid(
                    key(&format!("holidays[{h}]")),
                    format!("wanted MM-DD, easter, easter+N or easter-N (N ≤ 100), got {text:?}"),
                )
            })?);
        }
        if c.max_attempts_30d == Some(0) {
            return Err(StoreError::invalid(
                key("max_attempts_30d"),
                "wanted at least 1 (leave it out for no limit)",
            ));
        }
        let db = &phonenumber::metadata::DATABASE;
        let prefix = db
            .by_id(country.as_str())
            .map(|m| m.country_code())
            .filter(|code| db.region(code).is_some_and(|r| r == [country.as_str()]))
            .map(|code| format!("+{code}"));
        Ok(Self {
            windows_text: windows_text(&spans),
            prefix,
            country,
            spans,
            holidays,
            max_attempts_30d: c.max_attempts_30d,
        })
    }

    /// Whether the rule limits anything (a rule with no window, holiday or limit is a way to
    /// switch a built-in rule off).
    fn is_empty(&self) -> bool {
        self.spans.is_empty() && self.holidays.is_empty() && self.max_attempts_30d.is_none()
    }

    /// Why a contact in `zone` with `attempts_30d` attempts in the last 30 days may not be
    /// called under this rule at `now_ms`; empty when it may.
    pub fn reasons(&self, zone: &str, attempts_30d: u32, now_ms: i64) -> Vec<String> {
        let mut out = self.time_reasons(zone, now_ms);
        if let Some(max) = self.max_attempts_30d {
            if attempts_30d >= max {
                out.push(format!(
                    "{}: {attempts_30d} attempts in 30 days",
                    self.country
                ));
            }
        }
        out
    }

    /// Why no contact of this country in `zone` may be called at `now_ms`, whatever its
    /// attempts: outside the windows, or a public holiday.
    fn time_reasons(&self, zone: &str, now_ms: i64) -> Vec<String> {
        let c = &self.country;
        let mut out = Vec::new();
        if !self.spans.is_empty() || !self.holidays.is_empty() {
            let local = zone.parse::<chrono_tz::Tz>().ok().and_then(|tz| {
                chrono::DateTime::from_timestamp_millis(now_ms).map(|t| t.with_timezone(&tz))
            });
            match local {
                None => out.push(format!("{c}: unknown time zone {zone:?}")),
                Some(local) => {
                    let day = local.weekday().num_days_from_monday();
                    let minute = local.hour() * 60 + local.minute();
                    let inside = self.spans.is_empty()
                        || self
                            .spans
                            .iter()
                            .any(|s| s.days & (1 << day) != 0 && s.from <= minute && minute < s.to);
                    if !inside {
                        out.push(format!("{c}: outside {} {zone}", self.windows_text));
                    }
                    let date = local.date_naive();
                    if self.holidays.iter().any(|h| h.falls_on(date)) {
                        out.push(format!("{c}: {date} is a public holiday in {zone}"));
                    }
                }
            }
        }
        out
    }
}

/// Spans grouped by their days, in the order first written.
fn windows_text(spans: &[Span]) -> String {
    let mut groups: Vec<(u8, Vec<String>)> = Vec::new();
    for s in spans {
        let text = format!("{}–{}", hhmm(s.from), hhmm(s.to));
        match groups.iter_mut().find(|(d, _)| *d == s.days) {
            Some((_, list)) => list.push(text),
            None => groups.push((s.days, vec![text])),
        }
    }
    groups
        .iter()
        .map(|(d, list)| format!("{} {}", days_text(*d), list.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The rules in force, by country.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallingRules {
    by_country: BTreeMap<String, Rule>,
}

/// The built-in rules as configuration: France (décret 2022-1313: Monday to Friday 10:00–13:00
/// and 14:00–20:00, no calls on public holidays, at most 4 attempts in 30 days).
pub fn builtin_config() -> Vec<CallingRuleConfig> {
    let weekdays = vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri];
    let window = |from: &str, to: &str| Window {
        days: weekdays.clone(),
        from: from.into(),
        to: to.into(),
    };
    vec![CallingRuleConfig {
        country: "FR".into(),
        windows: vec![window("10:00", "13:00"), window("14:00", "20:00")],
        max_attempts_30d: Some(4),
        holidays: [
            "01-01",
            "easter+1",
            "05-01",
            "05-08",
            "easter+39",
            "easter+50",
            "07-14",
            "08-15",
            "11-01",
            "11-11",
            "12-25",
        ]
        .map(String::from)
        .to_vec(),
    }]
}

impl CallingRules {
    /// The built-in rules, then `configured` ones: a configured country replaces its built-in
    /// rule, and a configured rule that limits nothing removes it.
    pub fn from_config(configured: &[CallingRuleConfig]) -> Result<Self> {
        let mut by_country = BTreeMap::new();
        for (i, c) in builtin_config().iter().enumerate() {
            let rule = Rule::from_config(i, c)?;
            by_country.insert(rule.country.clone(), rule);
        }
        let mut seen = Vec::new();
        for (i, c) in configured.iter().enumerate() {
            let rule = Rule::from_config(i, c)?;
            if seen.contains(&rule.country) {
                return Err(StoreError::invalid(
                    format!("calling_rules[{i}].country"),
                    format!("{} has a rule already; one rule per country", rule.country),
                ));
            }
            seen.push(rule.country.clone());
            if rule.is_empty() {
                by_country.remove(&rule.country);
            } else {
                by_country.insert(rule.country.clone(), rule);
            }
        }
        Ok(Self { by_country })
    }

    /// The built-in rules alone.
    pub fn builtin() -> Self {
        Self::from_config(&[]).unwrap_or_default()
    }

    /// Whether no country has a rule.
    pub fn is_empty(&self) -> bool {
        self.by_country.is_empty()
    }

    /// The rule of a country (ISO 3166 alpha-2, upper case).
    pub fn rule(&self, country: &str) -> Option<&Rule> {
        self.by_country.get(country)
    }

    /// The rules of the countries of these E.164 numbers, each once.
    pub fn rules_for<'a>(&'a self, phones: &[String]) -> Vec<&'a Rule> {
        let mut out: Vec<&Rule> = Vec::new();
        for p in phones {
            if let Some(rule) = country_of(p).and_then(|c| self.by_country.get(&c)) {
                if !out.iter().any(|r| r.country == rule.country) {
                    out.push(rule);
                }
            }
        }
        out
    }

    /// Why a contact with these numbers, in `zone`, with `attempts_30d` attempts in the last
    /// 30 days, may not be called at `now_ms`: every rule of its numbers' countries applies.
    pub fn reasons(
        &self,
        phones: &[String],
        zone: &str,
        attempts_30d: u32,
        now_ms: i64,
    ) -> Vec<String> {
        self.rules_for(phones)
            .iter()
            .flat_map(|r| r.reasons(zone, attempts_30d, now_ms))
            .collect()
    }
}

impl CallingRules {
    /// The calling codes (`+33`) of the countries whose rule closes `zone` at `now_ms`, for
    /// countries that have their code to themselves.
    pub fn closed_prefixes(&self, zone: &str, now_ms: i64) -> Vec<&str> {
        self.by_country
            .values()
            .filter_map(|r| r.prefix.as_deref().map(|p| (r, p)))
            .filter(|(r, _)| !r.time_reasons(zone, now_ms).is_empty())
            .map(|(_, p)| p)
            .collect()
    }
}

/// The ISO 3166 code of an E.164 number's country.
pub fn country_of(e164: &str) -> Option<String> {
    let id = phonenumber::parse(None, e164).ok()?.country().id()?;
    Some(format!("{id:?}"))
}

/// Whether a contact may be called now, and why not.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// The time judged (RFC 3339).
    pub at: String,
    /// Whether `next_callable` may give the contact at `at`.
    pub callable: bool,
    /// Why not (empty when callable).
    pub reasons: Vec<String>,
}

impl Store {
    /// Attempts recorded on each of `ids` in the 30 days up to `now_ms`.
    pub async fn attempts_30d(&self, ids: &[i64], now_ms: i64) -> Result<HashMap<i64, u32>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(ID_CHUNK) {
            let mut q = QueryBuilder::new(
                "SELECT contact_id, COUNT(*) FROM contact_history WHERE at_ms > ",
            );
            q.push_bind(now_ms - THIRTY_DAYS_MS)
                .push(" AND at_ms <= ")
                .push_bind(now_ms)
                .push(format!(
                    " AND {} = 'attempt' AND contact_id IN ",
                    self.backend.json_member("change", "op")
                ));
            push_in_list(&mut q, chunk);
            q.push(" GROUP BY contact_id");
            for row in q.build().fetch_all(&self.reader).await? {
                let n: i64 = row.try_get(1)?;
                out.insert(row.try_get(0)?, n as u32);
            }
        }
        Ok(out)
    }

    /// The rule reasons of each contact (its callable numbers, its zone) at `now_ms`.
    pub(super) async fn rule_reasons(
        &self,
        contacts: &[Contact],
        now_ms: i64,
    ) -> Result<Vec<Vec<String>>> {
        let rules = &self.calling_rules;
        let counted: Vec<i64> = contacts
            .iter()
            .filter(|c| {
                rules
                    .rules_for(&c.spec.phones)
                    .iter()
                    .any(|r| r.max_attempts_30d.is_some())
            })
            .map(|c| c.id)
            .collect();
        let attempts = self.attempts_30d(&counted, now_ms).await?;
        Ok(contacts
            .iter()
            .map(|c| {
                let zone = c.spec.time_zone.as_deref().unwrap_or("UTC");
                let n = attempts.get(&c.id).copied().unwrap_or(0);
                rules.reasons(&c.spec.phones, zone, n, now_ms)
            })
            .collect())
    }

    /// A condition for the callable selection of one zone: leaves out the contacts with a
    /// number of a country whose rule closes the zone now, so that a closed country's
    /// contacts are skipped by SQLite rather than read and judged one by one. A contact with
    /// numbers on a do-not-call list is left to the judgement after (its closed country's
    /// number may be the blocked one). Empty when nothing is closed.
    pub(super) fn held_by_rules(&self, zone: &str, now_ms: i64) -> String {
        // The prefixes are `+` and digits from the phone-number metadata: safe inline.
        self.calling_rules
            .closed_prefixes(zone, now_ms)
            .iter()
            .map(|p| format!(" AND (dnc = 1 OR phones NOT LIKE '%\"{p}%')"))
            .collect()
    }

    /// `next_callable` under the calling rules: the selection is read further, in growing
    /// steps, until `limit` contacts pass the rules or nothing is left.
    pub(super) async fn callable_under_rules(
        &self,
        campaign_id: i64,
        task_id: i64,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        if self.calling_rules.is_empty() {
            return self
                .select_callable(campaign_id, task_id, now_ms, limit)
                .await;
        }
        let mut fetch = limit;
        loop {
            let got = self
                .select_callable(campaign_id, task_id, now_ms, fetch)
                .await?;
            let exhausted = (got.len() as u32) < fetch;
            let reasons = self.rule_reasons(&got, now_ms).await?;
            let mut kept: Vec<Contact> = got
                .into_iter()
                .zip(reasons)
                .filter(|(_, r)| r.is_empty())
                .map(|(c, _)| c)
                .collect();
            if kept.len() as u32 >= limit || exhausted || fetch >= MAX_SCAN {
                kept.truncate(limit as usize);
                return Ok(kept);
            }
            fetch = fetch.saturating_mul(4).min(MAX_SCAN);
        }
    }

    /// Whether `next_callable` (for the contact's task) may give this contact at `now_ms`, and
    /// every reason it may not: a task that is no call task, status, do-not-call lists,
    /// follow-up time, the campaign's calling hours and the calling rules of its numbers'
    /// countries.
    pub async fn explain_callable(
        &self,
        campaign_id: i64,
        contact_id: i64,
        now_ms: i64,
    ) -> Result<Verdict> {
        let campaign = self.campaign(campaign_id).await?;
        let mut contacts = vec![self.contact(campaign_id, contact_id).await?];
        self.mark_dnc(&mut contacts).await?;
        let mut c = contacts.remove(0);
        let blocked = c.dnc_numbers.clone();
        c.spec.phones.retain(|p| !blocked.contains(p));
        let mut reasons = Vec::new();
        let mut grace_ms = 0;
        if let Some(t) = c.spec.task_id {
            match self.task(campaign_id, t).await?.spec.call_settings() {
                Some(s) => grace_ms = i64::from(s.particular_grace_seconds) * 1000,
                None => reasons.push(format!("task {t} is not a call task")),
            }
        }
        if c.spec.status != "open" {
            reasons.push(format!("status is {}, not open", c.spec.status));
        }
        if c.spec.phones.is_empty() {
            reasons.push("every number is on a do-not-call list".into());
        }
        let follow_up = match &c.spec.follow_up_at {
            Some(t) => Some(super::parse_time("follow_up_at", t)?),
            None => None,
        };
        match (follow_up, c.spec.attempts) {
            (Some(f), _) if f > now_ms => {
                reasons.push(format!("follow-up due at {}", super::rfc3339(f)))
            }
            (None, n) if n > 0 => reasons.push(format!("called {n} times, no follow-up set")),
            _ => {}
        }
        if let (Some(f), Some(owner)) = (follow_up, &c.spec.owner) {
            if f <= now_ms && now_ms < f + grace_ms {
                reasons.push(format!(
                    "kept for its owner {owner} until {} (particular callback)",
                    super::rfc3339(f + grace_ms)
                ));
            }
        }
        let zone = c.spec.time_zone.clone().unwrap_or_else(|| "UTC".into());
        let hours = &campaign.spec.calling_hours;
        let (from, to) = (
            minutes("calling_hours.from", &hours.from)?,
            minutes("calling_hours.to", &hours.to)?,
        );
        if !super::callable::inside_hours(&zone, from, to, now_ms) {
            reasons.push(format!(
                "outside calling hours {}–{} {zone}",
                hours.from, hours.to
            ));
        }
        reasons.extend(self.rule_reasons(&[c], now_ms).await?.remove(0));
        let lessee: Option<String> =
            sqlx::query_scalar("SELECT owner FROM contact_leases WHERE contact_id = $1")
                .bind(contact_id)
                .fetch_optional(&self.reader)
                .await?;
        if let Some(node) = lessee {
            reasons.push(format!(
                "being called now (leased to a call of node {node})"
            ));
        }
        Ok(Verdict {
            at: super::rfc3339(now_ms),
            callable: reasons.is_empty(),
            reasons,
        })
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

    fn fr() -> Rule {
        CallingRules::builtin().rule("FR").unwrap().clone()
    }

    const PARIS: &str = "Europe/Paris";

    #[test]
    fn france_is_built_in_and_reads_as_the_decree() {
        let r = fr();
        assert_eq!(r.max_attempts_30d, Some(4));
        assert_eq!(r.windows_text, "Monday–Friday 10:00–13:00, 14:00–20:00");
        // Thursday 15 January 2026, 11:00 in Paris (UTC+1).
        assert!(r.reasons(PARIS, 0, at("2026-01-15T10:00:00Z")).is_empty());
        assert_eq!(
            r.reasons(PARIS, 0, at("2026-01-15T08:59:00Z")),
            ["FR: outside Monday–Friday 10:00–13:00, 14:00–20:00 Europe/Paris"]
        );
    }

    #[test]
    fn the_lunch_gap_and_the_edges() {
        let r = fr();
        // Winter, UTC+1: 12:59 in, 13:00 and 13:59 out, 14:00 in, 19:59 in, 20:00 out.
        for (utc, ok) in [
            ("2026-01-15T09:00:00Z", true),
            ("2026-01-15T11:59:00Z", true),
            ("2026-01-15T12:00:00Z", false),
            ("2026-01-15T12:59:00Z", false),
            ("2026-01-15T13:00:00Z", true),
            ("2026-01-15T18:59:00Z", true),
            ("2026-01-15T19:00:00Z", false),
        ] {
            assert_eq!(r.reasons(PARIS, 0, at(utc)).is_empty(), ok, "{utc}");
        }
    }

    #[test]
    fn weekends_are_closed() {
        let r = fr();
        // Saturday 17 and Sunday 18 January 2026, 11:00 in Paris; Monday 19 open.
        assert!(!r.reasons(PARIS, 0, at("2026-01-17T10:00:00Z")).is_empty());
        assert!(!r.reasons(PARIS, 0, at("2026-01-18T10:00:00Z")).is_empty());
        assert!(r.reasons(PARIS, 0, at("2026-01-19T10:00:00Z")).is_empty());
    }

    #[test]
    fn the_window_follows_paris_across_the_dst_change() {
        let r = fr();
        // Summer time starts Sunday 29 March 2026. Friday 27 March: UTC+1, so 09:30 UTC is
        // 10:30 in Paris (open). Monday 30 March: UTC+2, so 08:30 UTC is 10:30 (open) while
        // 07:30 UTC is 09:30 (closed), and 18:30 UTC is 20:30 (closed).
        assert!(r.reasons(PARIS, 0, at("2026-03-27T09:30:00Z")).is_empty());
        assert!(!r.reasons(PARIS, 0, at("2026-03-27T08:30:00Z")).is_empty());
        assert!(r.reasons(PARIS, 0, at("2026-03-30T08:30:00Z")).is_empty());
        assert!(!r.reasons(PARIS, 0, at("2026-03-30T07:30:00Z")).is_empty());
        assert!(r.reasons(PARIS, 0, at("2026-03-30T17:30:00Z")).is_empty());
        assert!(!r.reasons(PARIS, 0, at("2026-03-30T18:30:00Z")).is_empty());
        // And back: winter time from Sunday 25 October 2026; Monday 26, 19:30 UTC is 20:30.
        assert!(r.reasons(PARIS, 0, at("2026-10-23T17:30:00Z")).is_empty());
        assert!(!r.reasons(PARIS, 0, at("2026-10-26T19:30:00Z")).is_empty());
        assert!(r.reasons(PARIS, 0, at("2026-10-26T18:30:00Z")).is_empty());
    }

    #[test]
    fn the_fifth_attempt_in_30_days_is_held() {
        let r = fr();
        let now = at("2026-01-15T10:00:00Z");
        assert!(r.reasons(PARIS, 3, now).is_empty(), "4th attempt allowed");
        assert_eq!(r.reasons(PARIS, 4, now), ["FR: 4 attempts in 30 days"]);
    }

    #[test]
    fn public_holidays_are_closed() {
        let r = fr();
        // Tuesday 14 July 2026 and Easter Monday 6 April 2026, 11:00 in Paris (UTC+2).
        assert_eq!(
            r.reasons(PARIS, 0, at("2026-07-14T09:00:00Z")),
            ["FR: 2026-07-14 is a public holiday in Europe/Paris"]
        );
        assert!(!r.reasons(PARIS, 0, at("2026-04-06T09:00:00Z")).is_empty());
        // Ascension (14 May 2026) and Whit Monday (25 May 2026); the day after is open.
        assert!(!r.reasons(PARIS, 0, at("2026-05-14T09:00:00Z")).is_empty());
        assert!(!r.reasons(PARIS, 0, at("2026-05-25T09:00:00Z")).is_empty());
        assert!(r.reasons(PARIS, 0, at("2026-05-26T09:00:00Z")).is_empty());
        assert_eq!(easter(2025), NaiveDate::from_ymd_opt(2025, 4, 20));
        assert_eq!(easter(2026), NaiveDate::from_ymd_opt(2026, 4, 5));
        assert_eq!(easter(2038), NaiveDate::from_ymd_opt(2038, 4, 25));
    }

    #[test]
    fn closed_countries_with_their_own_calling_code_are_left_out_in_sql() {
        let gb = CallingRuleConfig {
            country: "GB".into(),
            windows: vec![Window {
                days: vec![Day::Mon],
                from: "09:00".into(),
                to: "10:00".into(),
            }],
            max_attempts_30d: None,
            holidays: vec![],
        };
        let rules = CallingRules::from_config(&[gb]).unwrap();
        let saturday = at("2026-01-17T10:00:00Z");
        // +44 is shared with Jersey, Guernsey and Man: judged per contact only.
        assert_eq!(rules.closed_prefixes(PARIS, saturday), ["+33"]);
        assert!(rules
            .closed_prefixes(PARIS, at("2026-01-15T10:00:00Z"))
            .is_empty());
    }

    #[test]
    fn rules_follow_the_numbers_country() {
        let rules = CallingRules::builtin();
        let saturday = at("2026-01-17T10:00:00Z");
        let fr = vec!["+33612345678".to_string()];
        let de = vec!["+4930123456".to_string()];
        assert_eq!(country_of(&fr[0]).as_deref(), Some("FR"));
        assert!(!rules.reasons(&fr, PARIS, 0, saturday).is_empty());
        assert!(rules.reasons(&de, "Europe/Berlin", 9, saturday).is_empty());
        // The contact's own zone decides: a French mobile in Réunion (UTC+4).
        let thursday_8_utc = at("2026-01-15T08:00:00Z");
        assert!(rules
            .reasons(&fr, "Indian/Reunion", 0, thursday_8_utc)
            .is_empty());
        assert!(!rules.reasons(&fr, PARIS, 0, thursday_8_utc).is_empty());
    }

    #[test]
    fn configured_rules_replace_add_and_remove() {
        let de = CallingRuleConfig {
            country: "de".into(),
            windows: vec![Window {
                days: vec![Day::Sat],
                from: "09:00".into(),
                to: "12:00".into(),
            }],
            max_attempts_30d: None,
            holidays: vec![],
        };
        let fr_off = CallingRuleConfig {
            country: "FR".into(),
            windows: vec![],
            max_attempts_30d: None,
            holidays: vec![],
        };
        let rules = CallingRules::from_config(&[de.clone(), fr_off]).unwrap();
        assert!(rules.rule("FR").is_none());
        assert_eq!(
            rules.rule("DE").unwrap().windows_text,
            "Saturday 09:00–12:00"
        );
        let err = CallingRules::from_config(&[de.clone(), de.clone()]).unwrap_err();
        assert!(err.to_string().starts_with("calling_rules[1].country"));
        let bad = CallingRuleConfig {
            holidays: vec!["13-01".into()],
            ..de.clone()
        };
        let err = CallingRules::from_config(&[bad]).unwrap_err().to_string();
        assert!(err.starts_with("calling_rules[0].holidays[0]"), "{err}");
        let bad = CallingRuleConfig {
            country: "XX".into(),
            ..de
        };
        assert!(CallingRules::from_config(&[bad]).is_err());
        assert_eq!(days_text(0b0010101), "Monday, Wednesday, Friday");
        assert_eq!(days_text(0b1100000), "Saturday, Sunday");
    }

    crate::store::both_backends! {
        async fn attempts_count_over_a_rolling_30_days_in_next_callable() {
            use crate::store::contacts::{Attempt, ContactSpec};
            use serde_json::json;
            let (_dir, store) = crate::store::test_support::store().await;
            let c = store
                .create_campaign(&serde_json::from_value(json!({"name": "c"})).unwrap())
                .await
                .unwrap()
                .id;
            let t = store
                .create_task(
                    c,
                    serde_json::from_value(json!({"name": "dial", "kind": "call"})).unwrap(),
                )
                .await
                .unwrap()
                .id;
            let spec = |phone: &str| -> ContactSpec {
                serde_json::from_value(json!({"phones": [phone], "task_id": t})).unwrap()
            };
            let paris = store
                .create_contact(c, &spec("+33612345678"), "test")
                .await
                .unwrap();
            assert_eq!(paris.spec.time_zone.as_deref(), Some(PARIS));
            let berlin = store
                .create_contact(c, &spec("+4930123456"), "test")
                .await
                .unwrap();
            let attempt = |day: &str| Attempt {
                number: "+33612345678".into(),
                result: "$no_answer".into(),
                sip_code: Some(480),
                call_id: None,
                status: "open".into(),
                follow_up_ms: Some(at(&format!("{day}T10:00:01Z"))),
                at_ms: at(&format!("{day}T10:00:00Z")),
            };
            let ids = |now: &'static str| {
                let store = store.clone();
                async move {
                    let got = store.next_callable(c, t, at(now), 10).await.unwrap();
                    got.iter().map(|k| k.id).collect::<Vec<_>>()
                }
            };
            for (k, day) in ["2025-12-17", "2026-01-01", "2026-01-05"]
                .iter()
                .enumerate()
            {
                for id in [paris.id, berlin.id] {
                    store
                        .record_attempt(c, id, &attempt(day), "dialer")
                        .await
                        .unwrap();
                }
                let counted = store
                    .attempts_30d(&[paris.id], at("2026-01-15T10:00:00Z"))
                    .await
                    .unwrap();
                assert_eq!(counted[&paris.id], k as u32 + 1);
            }
            // Thursday 15 January, 11:00 in Paris: 3 attempts in 30 days, a 4th is allowed.
            assert_eq!(ids("2026-01-15T10:00:00Z").await, [paris.id, berlin.id]);
            for id in [paris.id, berlin.id] {
                store
                    .record_attempt(c, id, &attempt("2026-01-10"), "dialer")
                    .await
                    .unwrap();
            }
            // 4 attempts in 30 days: a 5th waits; Germany has no rule.
            assert_eq!(ids("2026-01-15T10:00:00Z").await, [berlin.id]);
            let v = store
                .explain_callable(c, paris.id, at("2026-01-15T10:00:00Z"))
                .await
                .unwrap();
            assert!(!v.callable);
            assert_eq!(v.reasons, ["FR: 4 attempts in 30 days"]);
            // Friday 16 January, 10:59 in Paris: 17 December 10:00 UTC is still within 30 days.
            assert_eq!(ids("2026-01-16T09:59:00Z").await, [berlin.id]);
            // 11:00 in Paris: it is now 30 days old, on its 31st day, and no longer counts.
            assert_eq!(ids("2026-01-16T10:00:00Z").await, [paris.id, berlin.id]);
            assert!(
                store
                    .explain_callable(c, paris.id, at("2026-01-16T10:00:00Z"))
                    .await
                    .unwrap()
                    .callable
            );
        }
    }
}
