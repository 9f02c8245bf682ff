//! `/api/v1/dnc` (the global do-not-call list) and `/api/v1/campaigns/{id}/dnc` (one
//! campaign's): list, add (JSON or a CSV column), remove.

use super::auth::{Caller, CAMPAIGN_WRITE, DNC_READ};
use super::contacts::{blocking_reader, content_type};
use super::problem::{parse, Params, Problem, QueryOf};
use super::AppState;
use crate::store::dnc::{DncPage, DncReport, DncScope};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

type Answer<T> = Result<T, Problem>;

/// Query of `GET .../dnc`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

/// Query of `POST .../dnc` (CSV bodies use all of it, JSON bodies `region` only).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddQuery {
    region: Option<String>,
    header: Option<bool>,
    column: Option<String>,
}

/// JSON body of `POST` and `DELETE .../dnc`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Numbers {
    phones: Vec<String>,
    #[serde(default)]
    region: Option<String>,
}

/// Largest JSON body of numbers (CSV bodies are streamed and have no limit).
const JSON_LIMIT: usize = 16 << 20;

async fn list(s: &AppState, caller: &Caller, scope: DncScope, q: ListQuery) -> Answer<DncPage> {
    caller.require(DNC_READ)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(
            Problem::new(StatusCode::BAD_REQUEST, "wanted a limit from 1 to 1000").field("limit"),
        );
    }
    Ok(s.store.dnc_list(scope, q.cursor.as_deref(), limit).await?)
}

async fn add(
    s: &AppState,
    caller: &Caller,
    scope: DncScope,
    q: AddQuery,
    headers: &HeaderMap,
    body: Body,
) -> Answer<DncReport> {
    let user = caller.require(CAMPAIGN_WRITE)?;
    let (kind, csv) = content_type(headers, "none");
    if csv {
        let header = q.header.unwrap_or(true);
        let column = q
            .column
            .unwrap_or_else(|| if header { "phone".into() } else { "1".into() });
        let input = blocking_reader(body);
        return Ok(s
            .store
            .dnc_import(
                scope,
                q.region.as_deref(),
                header,
                &column,
                input,
                &user.name,
            )
            .await?);
    }
    if !kind.to_ascii_lowercase().starts_with("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("wanted application/json or text/csv, got {kind}"),
        )
        .field("Content-Type"));
    }
    let bytes = axum::body::to_bytes(body, JSON_LIMIT).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the JSON body is over 16 MiB; send large lists as text/csv",
        )
    })?;
    let req: Numbers = parse(&bytes)?;
    let numbers: Vec<(u64, String)> = req
        .phones
        .into_iter()
        .enumerate()
        .map(|(i, p)| (i as u64, p))
        .collect();
    let region = req.region.or(q.region);
    Ok(s.store
        .dnc_add(scope, region.as_deref(), &numbers, &user.name)
        .await?)
}

async fn remove(s: &AppState, caller: &Caller, scope: DncScope, body: &[u8]) -> Answer<Value> {
    caller.require(CAMPAIGN_WRITE)?;
    let req: Numbers = parse(body)?;
    let removed = s
        .store
        .dnc_remove(scope, req.region.as_deref(), &req.phones)
        .await?;
    Ok(serde_json::json!({ "removed": removed }))
}

/// `GET /api/v1/dnc`
pub async fn list_global(
    State(s): State<AppState>,
    caller: Caller,
    QueryOf(q): QueryOf<ListQuery>,
) -> Answer<Json<DncPage>> {
    Ok(Json(list(&s, &caller, DncScope::Global, q).await?))
}

/// `POST /api/v1/dnc`: `{"phones": [...], "region": "DE"}` or a CSV.
pub async fn add_global(
    State(s): State<AppState>,
    caller: Caller,
    QueryOf(q): QueryOf<AddQuery>,
    headers: HeaderMap,
    body: Body,
) -> Answer<Json<DncReport>> {
    Ok(Json(
        add(&s, &caller, DncScope::Global, q, &headers, body).await?,
    ))
}

/// `DELETE /api/v1/dnc`: `{"phones": [...]}`.
pub async fn remove_global(
    State(s): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Answer<Json<Value>> {
    Ok(Json(remove(&s, &caller, DncScope::Global, &body).await?))
}

/// `GET /api/v1/campaigns/{id}/dnc`
pub async fn list_campaign(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Answer<Json<DncPage>> {
    Ok(Json(list(&s, &caller, DncScope::Campaign(id), q).await?))
}

/// `POST /api/v1/campaigns/{id}/dnc`: numbers read with the campaign's `default_region`.
pub async fn add_campaign(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    QueryOf(q): QueryOf<AddQuery>,
    headers: HeaderMap,
    body: Body,
) -> Answer<Json<DncReport>> {
    Ok(Json(
        add(&s, &caller, DncScope::Campaign(id), q, &headers, body).await?,
    ))
}

/// `DELETE /api/v1/campaigns/{id}/dnc`: `{"phones": [...]}`.
pub async fn remove_campaign(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: axum::body::Bytes,
) -> Answer<Json<Value>> {
    Ok(Json(
        remove(&s, &caller, DncScope::Campaign(id), &body).await?,
    ))
}
