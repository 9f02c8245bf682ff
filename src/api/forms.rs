//! `/api/v1/campaigns/{id}/form`: the agent form of a campaign and its preview on a contact.

use super::auth::{Caller, CAMPAIGN_READ, CAMPAIGN_WRITE};
use super::problem::{parse, Params, Problem, QueryOf};
use super::AppState;
use crate::store::forms::{Form, FormSpec};
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

type Answer<T> = Result<T, Problem>;

/// Query of `GET …/form/preview`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    contact: i64,
}

/// `GET …/form`
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<Form>> {
    caller.require(CAMPAIGN_READ)?;
    Ok(Json(s.store.form(id).await?))
}

/// `PUT …/form`: the whole form; a retype the stored values do not fit is a 422.
pub async fn put(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<Json<Form>> {
    let user = caller.require(CAMPAIGN_WRITE)?;
    let spec: FormSpec = parse(&body)?;
    Ok(Json(s.store.put_form(id, spec, &user.name).await?))
}

/// `GET …/form/preview?contact=ID`: the form filled with a contact's values.
pub async fn preview(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    QueryOf(q): QueryOf<PreviewQuery>,
) -> Answer<Json<Value>> {
    caller.require(CAMPAIGN_READ)?;
    Ok(Json(s.store.form_preview(id, q.contact).await?))
}
