//! `/api/v1/campaigns/{id}/contacts`, their CSV import and the import history.

use super::auth::{Caller, CALLABLE_READ, CAMPAIGN_WRITE, CONTACT_ADMIN, CONTACT_EDIT};
use super::problem::{merge, parse, Params, Problem, QueryOf};
use super::AppState;
use crate::store::contacts::{Contact, ContactFilter, ContactSpec, Order, Page};
use crate::store::imports::{ImportMode, ImportOptions, ImportReport};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::Value;

type Answer<T> = Result<T, Problem>;

/// Query of `GET .../contacts`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    task: Option<i64>,
    status: Option<String>,
    detail: Option<String>,
    text: Option<String>,
    due: Option<bool>,
    #[serde(default)]
    order: Order,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// Query of `GET .../contacts/callable`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallableQuery {
    task: Option<i64>,
    limit: Option<u32>,
    at: Option<String>,
}

/// Query of `GET .../contacts/{contact}/callable`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    at: Option<String>,
}

/// Body of `POST .../contacts/bulk`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkEdit {
    #[serde(default)]
    filter: ContactFilter,
    field: String,
    value: Value,
}

/// Body of `POST .../contacts/move`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    #[serde(default)]
    filter: ContactFilter,
    #[serde(default)]
    ids: Option<Vec<i64>>,
    task_id: i64,
}

/// Query of `POST .../contacts/import`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    #[serde(default)]
    mode: ImportMode,
    header: Option<bool>,
    phone: Option<String>,
    task: Option<i64>,
}

/// `GET .../contacts`: filters, order (`id` or `due`), cursor pagination.
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    QueryOf(q): QueryOf<ListQuery>,
) -> Answer<Json<Page>> {
    caller.require(CONTACT_EDIT)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(
            Problem::new(StatusCode::BAD_REQUEST, "wanted a limit from 1 to 1000").field("limit"),
        );
    }
    let filter = ContactFilter {
        task: q.task,
        status: q.status,
        detail: q.detail,
        text: q.text,
        due: q.due,
    };
    let page = s
        .store
        .list_contacts(
            id,
            &filter,
            q.order,
            q.cursor.as_deref(),
            limit,
            crate::store::now_ms(),
        )
        .await?;
    Ok(Json(page))
}

/// `GET .../contacts/callable`: what the dialer may call now (or `at`), in calling order.
pub async fn callable(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    QueryOf(q): QueryOf<CallableQuery>,
) -> Answer<Json<Value>> {
    caller.require(CALLABLE_READ)?;
    let max = crate::store::callable::MAX_LIMIT;
    let limit = q.limit.unwrap_or(100);
    if !(1..=max).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("wanted a limit from 1 to {max}"),
        )
        .field("limit"));
    }
    let now = match &q.at {
        Some(at) => crate::store::parse_time("at", at)?,
        None => crate::store::now_ms(),
    };
    let task = match q.task {
        Some(t) => t,
        None => {
            s.store.campaign(id).await?;
            s.store.first_task(id).await?
        }
    };
    let items = s.store.next_callable(id, task, now, limit).await?;
    Ok(Json(serde_json::json!({
        "at": crate::store::rfc3339(now),
        "task_id": task,
        "items": items,
    })))
}

/// `GET .../contacts/{contact}/callable`: whether the dialer may call the contact now (or
/// `at`), and every reason it may not (calling hours, country calling rules, …).
pub async fn explain_callable(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, contact)): Params<(i64, i64)>,
    QueryOf(q): QueryOf<ExplainQuery>,
) -> Answer<Json<crate::store::calling_rules::Verdict>> {
    caller.require(CALLABLE_READ)?;
    let now = match &q.at {
        Some(at) => crate::store::parse_time("at", at)?,
        None => crate::store::now_ms(),
    };
    Ok(Json(s.store.explain_callable(id, contact, now).await?))
}

/// `POST .../contacts`
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<(StatusCode, Json<Contact>)> {
    let user = caller.require(CONTACT_EDIT)?;
    let spec: ContactSpec = parse(&body)?;
    s.store.check_contact_fields(id, None, &spec.fields).await?;
    Ok((
        StatusCode::CREATED,
        Json(s.store.create_contact(id, &spec, &user.name).await?),
    ))
}

/// `GET .../contacts/{contact}`: with its history.
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, contact)): Params<(i64, i64)>,
) -> Answer<Json<Value>> {
    caller.require(CONTACT_EDIT)?;
    let c = s.store.contact(id, contact).await?;
    let mut v = serde_json::to_value(c).unwrap_or_default();
    v["history"] = serde_json::to_value(s.store.history(contact).await?).unwrap_or_default();
    Ok(Json(v))
}

/// `PATCH .../contacts/{contact}`: a JSON merge patch of any settable field, checked against
/// the campaign's form.
pub async fn patch(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, contact)): Params<(i64, i64)>,
    body: Bytes,
) -> Answer<Json<Contact>> {
    let user = caller.require(CONTACT_EDIT)?;
    let current = s.store.contact(id, contact).await?;
    let spec: ContactSpec = merge(&current.spec, &body)?;
    // Against the campaign's form: a field set to a value its type refuses, or a required one
    // emptied, is a 422 before anything is written.
    s.store
        .check_contact_fields(id, Some(&current.spec.fields), &spec.fields)
        .await?;
    Ok(Json(
        s.store
            .update_contact(id, contact, &spec, &user.name)
            .await?,
    ))
}

/// `DELETE .../contacts/{contact}`
pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, contact)): Params<(i64, i64)>,
) -> Answer<StatusCode> {
    caller.require(CONTACT_ADMIN)?;
    s.store.delete_contact(id, contact).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../contacts/bulk`: one field set on every contact matching a filter.
pub async fn bulk(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<Json<Value>> {
    let user = caller.require(CONTACT_EDIT)?;
    let req: BulkEdit = parse(&body)?;
    let changed = s
        .store
        .bulk_edit(id, &req.filter, &req.field, &req.value, &user.name)
        .await?;
    Ok(Json(serde_json::json!({ "changed": changed })))
}

/// `POST .../contacts/move`: listed or matching contacts to another task.
pub async fn move_to(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<Json<Value>> {
    let user = caller.require(CONTACT_EDIT)?;
    let req: Move = parse(&body)?;
    let moved = s
        .store
        .move_contacts(id, &req.filter, req.ids.as_deref(), req.task_id, &user.name)
        .await?;
    Ok(Json(serde_json::json!({ "moved": moved })))
}

/// The Content-Type of a request (`default` when absent) and its essence: the type and
/// subtype in lower case, without parameters.
pub(super) fn media_type(headers: &HeaderMap, default: &str) -> (String, String) {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(default)
        .to_string();
    let essence = kind
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (kind, essence)
}

/// The Content-Type of a request (`default` when absent) and whether it is a CSV.
pub(super) fn content_type(headers: &HeaderMap, default: &str) -> (String, bool) {
    let (kind, essence) = media_type(headers, default);
    let csv = ["text/csv", "application/csv", "text/plain"].contains(&essence.as_str());
    (kind, csv)
}

/// A request body as a blocking reader, for CSV parsing on a blocking thread.
pub(super) fn blocking_reader(body: Body) -> impl std::io::Read + Send + 'static {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream))
}

/// `POST .../contacts/import`: the CSV body is read as a stream, never whole.
pub async fn import(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    QueryOf(q): QueryOf<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Answer<Json<ImportReport>> {
    let user = caller.require(CONTACT_ADMIN)?;
    let (kind, csv) = content_type(&headers, "text/csv");
    if !csv {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("wanted the CSV as Content-Type: text/csv, got {kind}"),
        )
        .field("Content-Type"));
    }
    let header = q.header.unwrap_or(true);
    let phone = q
        .phone
        .unwrap_or_else(|| if header { "phone".into() } else { "1".into() });
    let options = ImportOptions {
        mode: q.mode,
        header,
        phone_columns: phone
            .split(',')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect(),
        task_id: q.task,
        user: user.name.clone(),
    };
    let input = blocking_reader(body);
    let result = s.store.import_csv(id, options, input).await;
    if let Ok(r) = &result {
        s.api_metrics.imports.inc();
        for (label, n) in [
            ("inserted", r.inserted),
            ("bad", r.bad),
            ("duplicate", r.duplicates),
        ] {
            s.api_metrics
                .import_rows
                .with_label_values(&[label])
                .inc_by(n as u64);
        }
    }
    Ok(Json(result?))
}

/// `GET .../imports`: newest first.
pub async fn imports(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<Vec<ImportReport>>> {
    caller.require(CAMPAIGN_WRITE)?;
    Ok(Json(s.store.imports(id).await?))
}

/// `GET .../imports/{import}`
pub async fn get_import(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, import)): Params<(i64, i64)>,
) -> Answer<Json<ImportReport>> {
    caller.require(CAMPAIGN_WRITE)?;
    Ok(Json(s.store.import(id, import).await?))
}
