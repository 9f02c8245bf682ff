//! `/api/v1/campaigns/{id}/import-settings`: how the campaign's drop-folder files are imported.

use super::auth::{Caller, CAMPAIGN_WRITE};
use super::problem::{parse, Params, Problem};
use super::AppState;
use crate::store::inbox::{ImportSettings, SavedImportSettings};
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;

type Answer<T> = Result<T, Problem>;

/// `GET …/import-settings`: the defaults while never set.
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<SavedImportSettings>> {
    caller.require(CAMPAIGN_WRITE)?;
    Ok(Json(s.store.import_settings(id).await?))
}

/// `PUT …/import-settings`: mode, header, phone columns, task.
pub async fn put(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<Json<SavedImportSettings>> {
    let user = caller.require(CAMPAIGN_WRITE)?;
    let settings: ImportSettings = parse(&body)?;
    Ok(Json(
        s.store
            .put_import_settings(id, settings, &user.name)
            .await?,
    ))
}
