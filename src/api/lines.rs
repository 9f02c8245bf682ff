//! `/api/v1/lines`: caller-ID lines, their verification calls and the codes typed in.

use super::auth::{Caller, LINES};
use super::problem::{merge, parse, Params, Problem};
use super::AppState;
use crate::lines::LinesError;
use crate::store::lines::{Line, LineSpec, Verification};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

type Answer<T> = Result<T, Problem>;

impl From<LinesError> for Problem {
    fn from(e: LinesError) -> Self {
        match e {
            LinesError::Store(e) => e.into(),
            LinesError::RateLimited { .. } => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            }
            LinesError::NoAccessNumber => Problem::new(StatusCode::CONFLICT, e.to_string()),
            LinesError::WrongCode { .. } | LinesError::BadCode => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).field("code")
            }
            LinesError::CodeUnusable(_) => {
                Problem::new(StatusCode::CONFLICT, e.to_string()).field("code")
            }
        }
    }
}

/// Body of `POST /api/v1/lines/{id}/verify`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeEntry {
    code: String,
}

/// A line's language must have prompts: 422 naming `language` otherwise.
fn known_language(s: &AppState, spec: &LineSpec) -> Answer<()> {
    if s.lines.has_language(&spec.language) {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!(
            "language: there are no prompts for {:?}; there are: {}",
            spec.language,
            s.lines.languages().join(", ")
        ),
    )
    .field("language"))
}

/// `POST /api/v1/lines`
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Answer<(StatusCode, Json<Line>)> {
    caller.require(LINES)?;
    let spec: LineSpec = parse(&body)?;
    known_language(&s, &spec)?;
    let line = s.store.create_line(&spec).await?;
    s.lines.refresh_gauge().await;
    Ok((StatusCode::CREATED, Json(line)))
}

/// `GET /api/v1/lines`
pub async fn list(State(s): State<AppState>, caller: Caller) -> Answer<Json<Vec<Line>>> {
    caller.require(LINES)?;
    Ok(Json(s.store.lines().await?))
}

/// `GET /api/v1/lines/{id}`
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<Line>> {
    caller.require(LINES)?;
    Ok(Json(s.store.line(id).await?))
}

/// `PATCH /api/v1/lines/{id}`: a new number or callback mode makes it unverified.
pub async fn patch(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<Json<Line>> {
    caller.require(LINES)?;
    let current = s.store.line(id).await?;
    let spec: LineSpec = merge(&current.spec, &body)?;
    known_language(&s, &spec)?;
    let line = s.store.update_line(id, &spec).await?;
    s.lines.refresh_gauge().await;
    Ok(Json(line))
}

/// `DELETE /api/v1/lines/{id}`
pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<StatusCode> {
    caller.require(LINES)?;
    s.store.delete_line(id).await?;
    s.lines.refresh_gauge().await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/lines/{id}/verification`: places the verification call (202; the line's
/// status and last outcome tell how it goes).
pub async fn verify_call(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<(StatusCode, Json<Line>)> {
    let user = caller.require(LINES)?;
    let line = s.lines.start_verification(id, &user.name).await?;
    Ok((StatusCode::ACCEPTED, Json(line)))
}

/// `GET /api/v1/lines/{id}/verifications`: every attempt, newest first.
pub async fn verifications(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<Vec<Verification>>> {
    caller.require(LINES)?;
    s.store.line(id).await?;
    Ok(Json(s.store.verifications(id).await?))
}

/// `POST /api/v1/lines/{id}/verify`: the code the owner heard.
pub async fn verify_code(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<Json<Line>> {
    caller.require(LINES)?;
    let entry: CodeEntry = parse(&body)?;
    Ok(Json(s.lines.enter_code(id, &entry.code).await?))
}
