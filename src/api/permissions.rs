//! `/api/v1/campaigns/{id}/permissions`: per-campaign `edit` and `export` grants.

use super::auth::{Caller, CAMPAIGN_WRITE, USERS};
use super::problem::{parse, Params, Problem};
use super::AppState;
use crate::store::permissions::{Permissions, PermissionsSpec};
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;

type Answer<T> = Result<T, Problem>;

/// `GET …/permissions`
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<Permissions>> {
    caller.require(CAMPAIGN_WRITE)?;
    Ok(Json(s.store.permissions(id).await?))
}

/// `PUT …/permissions`: every grant of the campaign; an empty list lifts them.
pub async fn put(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<Json<Permissions>> {
    let user = caller.require(USERS)?;
    let spec: PermissionsSpec = parse(&body)?;
    Ok(Json(s.store.put_permissions(id, spec, &user.name).await?))
}
