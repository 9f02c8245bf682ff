//! Campaign prompts: recordings a campaign plays to the people it calls, uploaded in any WAV
//! format and kept converted (8 kHz mono 16-bit). The safe-harbour message is one: an answered
//! call that no agent takes within 2 s hears it, so power and predictive calling, which make
//! such calls, may run only while the campaign has it.

use super::campaigns::CampaignStatus;
use super::tasks::DialMode;
use super::{now_ms, rfc3339, Result, Store, StoreError};
use serde::Serialize;
use sqlx::Row;

/// The message an abandoned call hears: who called and a number to call back.
pub const SAFE_HARBOUR: &str = "safe_harbour";
/// Names a campaign prompt may have.
pub const NAMES: &[&str] = &[SAFE_HARBOUR];
/// Shortest prompt accepted, in seconds: a message naming a caller and a number takes longer.
pub const MIN_SECONDS: f64 = 2.0;
/// Longest prompt accepted, in seconds: an abandoned call must end soon.
pub const MAX_SECONDS: f64 = 30.0;

/// A stored prompt, without its audio.
#[derive(Debug, Clone, Serialize)]
pub struct PromptInfo {
    /// Its name.
    pub name: String,
    /// Length in seconds.
    pub seconds: f64,
    /// When it was uploaded.
    pub updated_at: String,
    /// Who uploaded it.
    pub updated_by: String,
}

fn info_of(row: &sqlx::any::AnyRow) -> Result<PromptInfo> {
    let samples: i64 = row.try_get("samples")?;
    Ok(PromptInfo {
        name: row.try_get("name")?,
        seconds: samples as f64 / f64::from(crate::media::prompt::SAMPLE_RATE),
        updated_at: rfc3339(row.try_get("updated_ms")?),
        updated_by: row.try_get("updated_by")?,
    })
}

/// `name` when it is a campaign prompt's name, else a 404 naming the known ones.
fn known(name: &str) -> Result<()> {
    if NAMES.contains(&name) {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "name".into(),
            reason: format!("no campaign prompt {name:?}; known: {}", NAMES.join(", ")),
        })
    }
}

/// Why a campaign may not run as set: power or predictive tasks without a safe-harbour message.
fn needs_safe_harbour(campaign_id: i64, tasks: &[String]) -> StoreError {
    StoreError::Conflict(format!(
        "campaign {campaign_id} has no {SAFE_HARBOUR} prompt, which power and predictive \
         calling need (task {}): upload it with PUT /api/v1/campaigns/{campaign_id}/prompts/{SAFE_HARBOUR}, \
         or dial in preview or progressive mode",
        tasks.join(", ")
    ))
}

impl Store {
    /// Stores a campaign prompt (converted samples), replacing an earlier one.
    pub async fn put_campaign_prompt(
        &self,
        campaign_id: i64,
        name: &str,
        samples: &[i16],
        by: &str,
    ) -> Result<PromptInfo> {
        known(name)?;
        self.campaign(campaign_id).await?;
        let seconds = samples.len() as f64 / f64::from(crate::media::prompt::SAMPLE_RATE);
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) {
            return Err(StoreError::Invalid {
                field: "body".into(),
                reason: format!(
                    "the recording lasts {seconds:.1} s; a campaign prompt lasts {MIN_SECONDS} to {MAX_SECONDS} s"
                ),
            });
        }
        let audio: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let row = sqlx::query(
            "INSERT INTO campaign_prompts (campaign_id, name, audio, samples, updated_ms, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (campaign_id, name) DO UPDATE SET audio = excluded.audio, \
             samples = excluded.samples, updated_ms = excluded.updated_ms, \
             updated_by = excluded.updated_by \
             RETURNING name, samples, updated_ms, updated_by",
        )
        .bind(campaign_id)
        .bind(name)
        .bind(audio)
        .bind(samples.len() as i64)
        .bind(now_ms())
        .bind(by)
        .fetch_one(&self.writer)
        .await?;
        info_of(&row)
    }

    /// A campaign's prompts, by name, without their audio.
    pub async fn campaign_prompts(&self, campaign_id: i64) -> Result<Vec<PromptInfo>> {
        self.campaign(campaign_id).await?;
        let rows = sqlx::query(
            "SELECT name, samples, updated_ms, updated_by FROM campaign_prompts \
             WHERE campaign_id = $1 ORDER BY name",
        )
        .bind(campaign_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(info_of).collect()
    }

    /// A campaign prompt's samples (8 kHz mono), or `None` when it has none by that name.
    pub async fn campaign_prompt(&self, campaign_id: i64, name: &str) -> Result<Option<Vec<i16>>> {
        known(name)?;
        let row =
            sqlx::query("SELECT audio FROM campaign_prompts WHERE campaign_id = $1 AND name = $2")
                .bind(campaign_id)
                .bind(name)
                .fetch_optional(&self.reader)
                .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let audio: Vec<u8> = row.try_get("audio")?;
        Ok(Some(
            audio
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect(),
        ))
    }

    /// Removes a campaign prompt; the safe-harbour message stays while the campaign may run
    /// power or predictive tasks.
    pub async fn delete_campaign_prompt(&self, campaign_id: i64, name: &str) -> Result<()> {
        known(name)?;
        let campaign = self.campaign(campaign_id).await?;
        if name == SAFE_HARBOUR && campaign.spec.status != CampaignStatus::Disabled {
            let tasks = self.tasks_needing_safe_harbour(campaign_id, None).await?;
            if !tasks.is_empty() {
                return Err(needs_safe_harbour(campaign_id, &tasks));
            }
        }
        let done = sqlx::query("DELETE FROM campaign_prompts WHERE campaign_id = $1 AND name = $2")
            .bind(campaign_id)
            .bind(name)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "prompt of campaign",
                id: campaign_id,
            });
        }
        Ok(())
    }

    /// The call tasks of a campaign (but `except`) that dial in power or predictive mode.
    async fn tasks_needing_safe_harbour(
        &self,
        campaign_id: i64,
        except: Option<i64>,
    ) -> Result<Vec<String>> {
        Ok(self
            .tasks(campaign_id)
            .await?
            .into_iter()
            .filter(|t| {
                Some(t.id) != except
                    && t.spec.call_settings().is_some_and(|c| {
                        matches!(c.dial_mode, DialMode::Power | DialMode::Predictive)
                    })
            })
            .map(|t| format!("{} ({})", t.id, t.spec.name))
            .collect())
    }

    /// Refuses (409) a campaign that may run (`status` not disabled) with power or predictive
    /// tasks while it has no safe-harbour message. `saving` is a task about to be saved: its
    /// id when it replaces a stored one, and its new spec.
    pub(crate) async fn check_safe_harbour(
        &self,
        campaign_id: i64,
        status: CampaignStatus,
        saving: Option<(Option<i64>, &super::tasks::TaskSpec)>,
    ) -> Result<()> {
        if status == CampaignStatus::Disabled {
            return Ok(());
        }
        let except = saving.and_then(|(id, _)| id);
        let mut tasks = self.tasks_needing_safe_harbour(campaign_id, except).await?;
        if let Some((_, spec)) = saving {
            if spec
                .call_settings()
                .is_some_and(|c| matches!(c.dial_mode, DialMode::Power | DialMode::Predictive))
            {
                tasks.push(spec.name.clone());
            }
        }
        if tasks.is_empty() {
            return Ok(());
        }
        let has =
            sqlx::query("SELECT 1 FROM campaign_prompts WHERE campaign_id = $1 AND name = $2")
                .bind(campaign_id)
                .bind(SAFE_HARBOUR)
                .fetch_optional(&self.reader)
                .await?
                .is_some();
        if has {
            Ok(())
        } else {
            Err(needs_safe_harbour(campaign_id, &tasks))
        }
    }
}
