//! The INVITE a campaign places: it shows the campaign's verified line as caller ID — in From,
//! and in P-Asserted-Identity with `Privacy: none` on trunks with `send_pai` (the default) —
//! and rings for the call task's ring timeout. A campaign without a line shows the trunk's
//! caller ID. Every campaign call is to be built here: today by
//! `POST /api/v1/campaigns/{id}/test-call`, next by the dialer's driver.

use crate::sip::leg::Dial;
use crate::store::lines::LineStatus;
use crate::store::{Store, StoreError};
use std::time::{Duration, Instant};

/// Ring timeout when the campaign has no call task yet (the call task default).
const DEFAULT_RING: Duration = Duration::from_secs(25);

/// Why a campaign cannot place a call.
#[derive(Debug, thiserror::Error)]
pub enum CampaignCallError {
    /// The campaign, its task or its line could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The campaign's line lost its verification (a later attempt failed): nothing is shown
    /// that is not proven ours.
    #[error(
        "line {id} ({number}) is {status}; a campaign calls only with a verified line as caller ID"
    )]
    LineNotVerified {
        /// The line.
        id: i64,
        /// Its number.
        number: String,
        /// Where it stands.
        status: String,
    },
}

/// The call to `to` for campaign `campaign_id`, with the ring timeout of call task `task_id`
/// (else of the campaign's first call task).
pub async fn dial(
    store: &Store,
    campaign_id: i64,
    task_id: Option<i64>,
    to: &str,
) -> Result<Dial, CampaignCallError> {
    let campaign = store.campaign(campaign_id).await?;
    let caller_id = match campaign.spec.line_id {
        None => None,
        Some(id) => {
            let line = store.line(id).await?;
            if line.status != LineStatus::Verified {
                return Err(CampaignCallError::LineNotVerified {
                    id,
                    number: line.spec.number,
                    status: line.status.as_str().to_string(),
                });
            }
            Some(line.spec.number)
        }
    };
    let tasks = match task_id {
        Some(t) => vec![store.task(campaign_id, t).await?],
        None => store.tasks(campaign_id).await?,
    };
    let ring_timeout = tasks
        .iter()
        .find_map(|t| t.spec.call_settings())
        .map(|c| Duration::from_secs(c.ring_timeout_seconds.into()))
        .unwrap_or(DEFAULT_RING);
    Ok(Dial {
        caller_id,
        ring_timeout,
        ..Dial::new(to)
    })
}

/// How long a [`DialPlan`] serves what it read before reading it again.
pub const PLAN_FRESH_FOR: Duration = Duration::from_secs(1);

/// The calls of one call task: the campaign, its line and the task read at most once per
/// [`PLAN_FRESH_FOR`], rather than three reads for every call a pacing step places. A line
/// that loses its verification stops the task's calls within that time.
pub struct DialPlan {
    store: Store,
    campaign_id: i64,
    task_id: i64,
    /// The last plan read, and when. Held while reading, so a burst of calls reads once.
    read: tokio::sync::Mutex<Option<(Instant, Dial)>>,
}

impl DialPlan {
    /// The plan for the calls of `task_id` of `campaign_id`.
    pub fn new(store: Store, campaign_id: i64, task_id: i64) -> Self {
        Self {
            store,
            campaign_id,
            task_id,
            read: tokio::sync::Mutex::new(None),
        }
    }

    /// The call to `to`, as [`dial`] builds it.
    pub async fn dial(&self, to: &str) -> Result<Dial, CampaignCallError> {
        let mut read = self.read.lock().await;
        let plan = match read.as_ref() {
            Some((at, plan)) if at.elapsed() < PLAN_FRESH_FOR => plan,
            _ => {
                let plan = dial(&self.store, self.campaign_id, Some(self.task_id), "").await?;
                &read.insert((Instant::now(), plan)).1
            }
        };
        Ok(Dial {
            caller_id: plan.caller_id.clone(),
            ring_timeout: plan.ring_timeout,
            ..Dial::new(to)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_dial_plan_reads_once_a_second_and_a_line_no_longer_verified_stops_its_calls() {
        let (_dir, store) = crate::store::test_support::store().await;
        let (campaign, task) =
            crate::store::test_support::campaign_with_call_task(&store, json!({"name": "c"})).await;
        let plan = DialPlan::new(store.clone(), campaign, task);
        let first = plan.dial("+33612345678").await.unwrap();
        assert_eq!(first.to, "+33612345678");
        assert_eq!(first.caller_id, None, "no line: the trunk's caller ID");
        assert_eq!(first.ring_timeout, DEFAULT_RING);
        let line = store
            .create_line(&serde_json::from_value(json!({"number": "+33198765432"})).unwrap())
            .await
            .unwrap();
        let mut spec = store.campaign(campaign).await.unwrap().spec;
        spec.line_id = Some(line.id);
        store.update_campaign(campaign, &spec).await.unwrap();
        let cached = plan.dial("+33612345679").await.unwrap();
        assert_eq!(cached.to, "+33612345679");
        assert_eq!(cached.caller_id, None, "read less than a second ago");
        tokio::time::sleep(PLAN_FRESH_FOR).await;
        let refused = plan.dial("+33612345679").await;
        assert!(
            matches!(refused, Err(CampaignCallError::LineNotVerified { .. })),
            "{refused:?}"
        );
    }
}
