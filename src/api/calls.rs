//! `/api/v1/calls`: call records (who, when, how it ended, recording path, audio quality).

use super::auth::{Caller, CALL_READ};
use super::problem::{Params, Problem};
use super::AppState;
use crate::store::calls::CallView;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

type Answer<T> = Result<T, Problem>;

/// Most calls one listing returns.
const MAX_LIMIT: u32 = 1000;

/// Query of `GET /api/v1/calls`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// How many, latest first (default 100, at most 1000).
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /api/v1/calls?limit=N`: the most recent calls, latest first.
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<Json<Vec<CallView>>> {
    caller.require(CALL_READ)?;
    let Query(q) =
        query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()).field("limit"))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "wanted 1 to 1000").field("limit"));
    }
    let calls = s.store.recent_calls(limit).await?;
    Ok(Json(calls.into_iter().map(CallView::from).collect()))
}

/// `GET /api/v1/calls/{id}`
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<String>,
) -> Answer<Json<CallView>> {
    caller.require(CALL_READ)?;
    match s.store.call(&id).await? {
        Some(call) => Ok(Json(call.into())),
        None => Err(Problem::new(StatusCode::NOT_FOUND, format!("no call {id}"))),
    }
}
