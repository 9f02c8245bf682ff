//! Campaigns: what they hold, how they are checked, and their rows.

use super::{now_ms, phone, rfc3339, Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// Whether a campaign dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    /// Dials.
    Enabled,
    /// Does not dial.
    #[default]
    Disabled,
    /// Dials inside its time windows only.
    Automatic,
}

impl CampaignStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Automatic => "automatic",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "enabled" => Self::Enabled,
            "automatic" => Self::Automatic,
            _ => Self::Disabled,
        }
    }
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// A weekly time window: on these days, from `from` to `to` (`HH:MM`, campaign time zone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Days it applies to.
    pub days: Vec<Day>,
    /// Start, `HH:MM`.
    pub from: String,
    /// End, `HH:MM` (`24:00` for midnight), after `from`.
    pub to: String,
}

/// Hours of the contact's local day in which it may be called.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallingHours {
    /// Earliest, `HH:MM`.
    pub from: String,
    /// Latest, `HH:MM`.
    pub to: String,
}

impl Default for CallingHours {
    fn default() -> Self {
        Self {
            from: "08:00".into(),
            to: "21:00".into(),
        }
    }
}

/// What an API user writes to create or change a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// enabled, disabled or automatic.
    #[serde(default)]
    pub status: CampaignStatus,
    /// IANA time zone of the windows.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Weekly windows (for `automatic`).
    #[serde(default)]
    pub windows: Vec<Window>,
    /// ISO 3166 country for numbers written without a country code.
    #[serde(default)]
    pub default_region: Option<String>,
    /// Caller-ID line.
    #[serde(default)]
    pub line_id: Option<i64>,
    /// Record calls.
    #[serde(default)]
    pub recording: bool,
    /// Calling hours in each contact's local time.
    #[serde(default)]
    pub calling_hours: CallingHours,
}

fn utc() -> String {
    "UTC".into()
}

/// A stored campaign.
#[derive(Debug, Clone, Serialize)]
pub struct Campaign {
    /// Id.
    pub id: i64,
    /// Its settings.
    #[serde(flatten)]
    pub spec: CampaignSpec,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Minutes since midnight of `HH:MM` (`24:00` allowed as an end).
pub(crate) fn minutes(field: &str, text: &str) -> Result<u32> {
    let bad = || StoreError::invalid(field, format!("wanted a time of day HH:MM, got {text:?}"));
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Checks that `to` comes after `from`, naming `<prefix>.to` when not.
fn span(prefix: &str, from: &str, to: &str) -> Result<()> {
    let start = minutes(&format!("{prefix}.from"), from)?;
    let end = minutes(&format!("{prefix}.to"), to)?;
    if end <= start {
        return Err(StoreError::invalid(
            format!("{prefix}.to"),
            format!("the window ends at {to}, not after it starts at {from}"),
        ));
    }
    Ok(())
}

impl CampaignSpec {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(StoreError::invalid("name", "wanted 1 to 200 characters"));
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(StoreError::invalid(
                "time_zone",
                format!(
                    "{:?} is not an IANA time zone like Europe/Berlin",
                    self.time_zone
                ),
            ));
        }
        for (i, w) in self.windows.iter().enumerate() {
            if w.days.is_empty() {
                return Err(StoreError::invalid(
                    format!("windows[{i}].days"),
                    "wanted at least one day",
                ));
            }
            span(&format!("windows[{i}]"), &w.from, &w.to)?;
        }
        if let Some(r) = &self.default_region {
            if phone::region(r).is_none() {
                return Err(StoreError::invalid(
                    "default_region",
                    format!("{r:?} is not an ISO 3166 country code like DE or US"),
                ));
            }
        }
        span(
            "calling_hours",
            &self.calling_hours.from,
            &self.calling_hours.to,
        )
    }
}

const COLUMNS: &str =
    "id, name, description, status, time_zone, windows, default_region, line_id, \
                       recording, calling_from, calling_to, created_ms, updated_ms";

fn campaign_of(row: &sqlx::any::AnyRow) -> Result<Campaign> {
    let windows: String = row.try_get("windows")?;
    Ok(Campaign {
        id: row.try_get("id")?,
        spec: CampaignSpec {
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            status: CampaignStatus::parse(row.try_get("status")?),
            time_zone: row.try_get("time_zone")?,
            windows: serde_json::from_str(&windows).unwrap_or_default(),
            default_region: row.try_get("default_region")?,
            line_id: row.try_get("line_id")?,
            recording: row.try_get::<i64, _>("recording")? != 0,
            calling_hours: CallingHours {
                from: row.try_get("calling_from")?,
                to: row.try_get("calling_to")?,
            },
        },
        created_at: rfc3339(row.try_get("created_ms")?),
        updated_at: rfc3339(row.try_get("updated_ms")?),
    })
}

fn name_taken(spec: &CampaignSpec) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match StoreError::from(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a campaign named {:?} exists", spec.name))
        }
        e => e,
    }
}

/// Binds $1..$10: the spec's columns, in table order.
fn bind_spec<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    spec: &'q CampaignSpec,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(&spec.name)
        .bind(&spec.description)
        .bind(spec.status.as_str())
        .bind(&spec.time_zone)
        .bind(serde_json::to_string(&spec.windows).unwrap_or_default())
        .bind(spec.default_region.as_ref().map(|r| r.to_ascii_uppercase()))
        .bind(spec.line_id)
        .bind(spec.recording as i64)
        .bind(&spec.calling_hours.from)
        .bind(&spec.calling_hours.to)
}

impl Store {
    /// Creates a campaign from a checked spec.
    pub async fn create_campaign(&self, spec: &CampaignSpec) -> Result<Campaign> {
        spec.validate()?;
        let now = now_ms();
        let sql = format!(
            "INSERT INTO campaigns (name, description, status, time_zone, windows, default_region, \
             line_id, recording, calling_from, calling_to, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {COLUMNS}"
        );
        let row = bind_spec(sqlx::query(&sql), spec)
            .bind(now)
            .fetch_one(&self.writer)
            .await
            .map_err(name_taken(spec))?;
        campaign_of(&row)
    }

    /// Every campaign, by id.
    pub async fn campaigns(&self) -> Result<Vec<Campaign>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM campaigns ORDER BY id"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(campaign_of).collect()
    }

    /// One campaign.
    pub async fn campaign(&self, id: i64) -> Result<Campaign> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .ok_or(StoreError::NotFound {
                what: "campaign",
                id,
            })?;
        campaign_of(&row)
    }

    /// Replaces a campaign's settings with a checked spec.
    pub async fn update_campaign(&self, id: i64, spec: &CampaignSpec) -> Result<Campaign> {
        spec.validate()?;
        self.check_safe_harbour(id, spec.status, None).await?;
        let sql = format!(
            "UPDATE campaigns SET name = $1, description = $2, status = $3, time_zone = $4, \
             windows = $5, default_region = $6, line_id = $7, recording = $8, calling_from = $9, \
             calling_to = $10, updated_ms = $11 WHERE id = $12 RETURNING {COLUMNS}"
        );
        let row = bind_spec(sqlx::query(&sql), spec)
            .bind(now_ms())
            .bind(id)
            .fetch_optional(&self.writer)
            .await
            .map_err(name_taken(spec))?
            .ok_or(StoreError::NotFound {
                what: "campaign",
                id,
            })?;
        campaign_of(&row)
    }

    /// Deletes a campaign with its tasks, contacts and import history.
    pub async fn delete_campaign(&self, id: i64) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        // Contacts first: they refer to tasks, which the campaign's cascade also removes.
        sqlx::query("DELETE FROM contacts WHERE campaign_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM campaigns WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "campaign",
                id,
            });
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CampaignSpec {
        serde_json::from_value(serde_json::json!({"name": "Spring"})).unwrap()
    }

    #[test]
    fn defaults_and_window_checks() {
        let mut s = spec();
        assert_eq!(s.calling_hours, CallingHours::default());
        assert_eq!(s.status, CampaignStatus::Disabled);
        s.validate().unwrap();
        s.windows = vec![
            Window {
                days: vec![Day::Mon],
                from: "09:00".into(),
                to: "24:00".into(),
            },
            Window {
                days: vec![Day::Tue],
                from: "17:00".into(),
                to: "09:00".into(),
            },
        ];
        let err = s.validate().unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid { field, .. } if field == "windows[1].to"),
            "{err}"
        );
        s.windows.pop();
        s.time_zone = "Mars/Olympus".into();
        assert!(
            matches!(s.validate().unwrap_err(), StoreError::Invalid { field, .. } if field == "time_zone")
        );
        s.time_zone = "Europe/Berlin".into();
        s.default_region = Some("XX".into());
        assert!(
            matches!(s.validate().unwrap_err(), StoreError::Invalid { field, .. } if field == "default_region")
        );
    }

    crate::store::both_backends! {
        async fn round_trip_and_unique_names() {
            let (_dir, store) = crate::store::test_support::store().await;
            let mut s = spec();
            s.default_region = Some("de".into());
            let c = store.create_campaign(&s).await.unwrap();
            assert_eq!(c.spec.default_region.as_deref(), Some("DE"));
            assert!(matches!(
                store.create_campaign(&s).await.unwrap_err(),
                StoreError::Conflict(_)
            ));
            s.recording = true;
            let u = store.update_campaign(c.id, &s).await.unwrap();
            assert!(u.spec.recording);
            assert_eq!(store.campaigns().await.unwrap().len(), 1);
            store.delete_campaign(c.id).await.unwrap();
            assert!(matches!(
                store.campaign(c.id).await.unwrap_err(),
                StoreError::NotFound { .. }
            ));
        }
    }
}
