//! `GET /api/v1/campaigns/{id}/dialer`: the live figures of the campaign's call tasks whose
//! driver runs (calls in flight, placed, answered, abandoned, abandon ratios, agents).

use super::auth::{Caller, CALLABLE_READ};
use super::problem::{Params, Problem};
use super::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// `GET …/dialer`: `{"campaign_id", "dialing", "tasks": [figures of running drivers]}`.
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Result<Json<Value>, Problem> {
    caller.require(CALLABLE_READ)?;
    let campaign = s.store.campaign(id).await?;
    let tasks: Vec<i64> = s.store.tasks(id).await?.iter().map(|t| t.id).collect();
    let figures = s.live.figures(&tasks);
    Ok(Json(json!({
        "campaign_id": id,
        "dialing": crate::dialer::live::supervisor::dials_now(&campaign.spec, crate::store::now_ms()),
        "tasks": figures,
    })))
}
