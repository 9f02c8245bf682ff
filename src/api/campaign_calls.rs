//! `POST /api/v1/campaigns/{id}/test-call`: one call placed by hand exactly as the campaign
//! places its calls (its verified line as caller ID, its call task's ring timeout), so an
//! operator can hear what a called person sees and check that the carrier accepts the number.

use super::auth::{Caller, CAMPAIGN_WRITE};
use super::problem::{parse, Params, Problem};
use super::AppState;
use crate::call::campaign_call::{self, CampaignCallError};
use crate::call::test_call::{self, TestCallReport};
use crate::store::phone;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use std::time::Duration;

impl From<CampaignCallError> for Problem {
    fn from(e: CampaignCallError) -> Self {
        match e {
            CampaignCallError::Store(e) => e.into(),
            CampaignCallError::LineNotVerified { .. } => {
                Problem::new(StatusCode::CONFLICT, e.to_string()).field("line_id")
            }
        }
    }
}

/// Body of `POST /api/v1/campaigns/{id}/test-call`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCall {
    /// Number to call, normalised with the campaign's default region.
    to: String,
    /// Trunk by name; the least loaded trunk that is up when absent.
    #[serde(default)]
    trunk: Option<String>,
    /// Call task whose ring timeout applies; the campaign's first call task when absent.
    #[serde(default)]
    task_id: Option<i64>,
}

/// `POST /api/v1/campaigns/{id}/test-call`: places the call, hangs up once answered, and
/// reports the SIP outcome with the caller ID shown.
pub async fn test_call(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Result<Json<TestCallReport>, Problem> {
    caller.require(CAMPAIGN_WRITE)?;
    let req: TestCall = parse(&body)?;
    let campaign = s.store.campaign(id).await?;
    let region = campaign
        .spec
        .default_region
        .as_deref()
        .and_then(phone::region);
    let to = phone::normalise(&req.to, region)
        .map_err(|why| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, why).field("to"))?;
    if let Some(name) = req.trunk.as_deref().filter(|n| !s.has_trunk(n)) {
        let why = format!("no trunk named {name}");
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, why).field("trunk"));
    }
    if let Some(task) = req.task_id {
        let is_call = s
            .store
            .task(id, task)
            .await
            .ok()
            .and_then(|t| t.spec.call_settings());
        if is_call.is_none() {
            let why = format!("the campaign has no call task {task}");
            return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, why).field("task_id"));
        }
    }
    let mut dial = campaign_call::dial(&s.store, id, req.task_id, &to).await?;
    dial.trunk = req.trunk;
    // Ring timeout plus Timer B bounds the wait.
    let limit = dial.ring_timeout + Duration::from_secs(40);
    tokio::time::timeout(limit, test_call::run(&s.sip, dial))
        .await
        .map(Json)
        .map_err(|_| Problem::new(StatusCode::GATEWAY_TIMEOUT, "the test call did not finish"))
}
