//! `/api/v1/campaigns` and their tasks.

use super::auth::{Caller, CAMPAIGN_READ, CAMPAIGN_WRITE, EXPORT};
use super::problem::{merge, parse, Params, Problem};
use super::AppState;
use crate::store::campaigns::{Campaign, CampaignSpec};
use crate::store::exports::ExportFile;
use crate::store::tasks::{Task, TaskSpec};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

type Answer<T> = Result<T, Problem>;

/// `POST /api/v1/campaigns`
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Answer<(StatusCode, Json<Campaign>)> {
    caller.require(CAMPAIGN_WRITE)?;
    let spec: CampaignSpec = parse(&body)?;
    verified_line(&s, spec.line_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(s.store.create_campaign(&spec).await?),
    ))
}

/// `GET /api/v1/campaigns`
pub async fn list(State(s): State<AppState>, caller: Caller) -> Answer<Json<Vec<Campaign>>> {
    caller.require(CAMPAIGN_READ)?;
    Ok(Json(s.store.campaigns().await?))
}

/// `GET /api/v1/campaigns/{id}`
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<Campaign>> {
    caller.require(CAMPAIGN_READ)?;
    Ok(Json(s.store.campaign(id).await?))
}

/// `PATCH /api/v1/campaigns/{id}`: a JSON merge patch of the campaign's settings.
pub async fn patch(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<Json<Campaign>> {
    caller.require(CAMPAIGN_WRITE)?;
    let current = s.store.campaign(id).await?;
    let spec: CampaignSpec = merge(&current.spec, &body)?;
    if spec.line_id != current.spec.line_id {
        verified_line(&s, spec.line_id).await?;
    }
    Ok(Json(s.store.update_campaign(id, &spec).await?))
}

/// A campaign may show only a verified line as caller ID: 422 naming `line_id` otherwise.
async fn verified_line(s: &AppState, line_id: Option<i64>) -> Answer<()> {
    let Some(id) = line_id else {
        return Ok(());
    };
    let line = match s.store.line(id).await {
        Ok(l) => l,
        Err(crate::store::StoreError::NotFound { .. }) => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("line_id: there is no line {id}"),
            )
            .field("line_id"))
        }
        Err(e) => return Err(e.into()),
    };
    if line.status != crate::store::lines::LineStatus::Verified {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "line_id: line {id} ({}) is {}; only a verified line may be shown as caller ID",
                line.spec.number,
                line.status.as_str()
            ),
        )
        .field("line_id"));
    }
    Ok(())
}

/// `DELETE /api/v1/campaigns/{id}`: with its tasks, contacts and imports.
pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<StatusCode> {
    caller.require(CAMPAIGN_WRITE)?;
    s.store.delete_campaign(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/campaigns/{id}/tasks`
pub async fn create_task(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<(StatusCode, Json<Task>)> {
    caller.require(CAMPAIGN_WRITE)?;
    let spec: TaskSpec = parse(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(s.store.create_task(id, spec).await?),
    ))
}

/// `GET /api/v1/campaigns/{id}/tasks`
pub async fn list_tasks(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<Vec<Task>>> {
    caller.require(CAMPAIGN_READ)?;
    Ok(Json(s.store.tasks(id).await?))
}

/// `GET /api/v1/campaigns/{id}/tasks/{task}`
pub async fn get_task(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, task)): Params<(i64, i64)>,
) -> Answer<Json<Task>> {
    caller.require(CAMPAIGN_READ)?;
    Ok(Json(s.store.task(id, task).await?))
}

/// `PATCH /api/v1/campaigns/{id}/tasks/{task}`: a JSON merge patch (settings replaced whole).
pub async fn patch_task(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, task)): Params<(i64, i64)>,
    body: Bytes,
) -> Answer<Json<Task>> {
    caller.require(CAMPAIGN_WRITE)?;
    let current = s.store.task(id, task).await?;
    let spec: TaskSpec = merge(&current.spec, &body)?;
    Ok(Json(s.store.update_task(id, task, spec).await?))
}

/// `GET /api/v1/campaigns/{id}/tasks/{task}/exports`: the files of an export task, newest
/// first; `new` until first downloaded.
pub async fn exports(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, task)): Params<(i64, i64)>,
) -> Answer<Json<Vec<ExportFile>>> {
    caller.require(CAMPAIGN_WRITE)?;
    Ok(Json(s.store.export_files(id, task).await?))
}

/// `GET /api/v1/campaigns/{id}/tasks/{task}/exports/{file}`: the file; an open one is closed
/// by this, and the next contacts go to a new one.
pub async fn download(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, task, file)): Params<(i64, i64, i64)>,
) -> Answer<Response> {
    caller.require(EXPORT)?;
    let d = s.store.download_export(id, task, file).await?;
    let unreadable = |e: std::io::Error| {
        tracing::error!(path = %d.path.display(), error = %e, "cannot read an export file");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the export file cannot be read; see the daemon's log",
        )
    };
    // Streamed from disk: a large export never sits in memory whole. Closed files are not
    // written again, so the length read here is the length sent.
    let f = tokio::fs::File::open(&d.path).await.map_err(unreadable)?;
    let len = f.metadata().await.map_err(unreadable)?.len();
    let kind = d.format.content_type();
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", d.name),
            ),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f, 64 * 1024)),
    )
        .into_response())
}

/// `DELETE /api/v1/campaigns/{id}/tasks/{task}`: only when it holds no contacts.
pub async fn delete_task(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, task)): Params<(i64, i64)>,
) -> Answer<StatusCode> {
    caller.require(CAMPAIGN_WRITE)?;
    s.store.delete_task(id, task).await?;
    Ok(StatusCode::NO_CONTENT)
}
