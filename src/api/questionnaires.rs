//! `/api/v1/campaigns/{id}/questionnaire`, a contact's answers, and the answers' CSV export.

use super::auth::{Caller, CAMPAIGN_READ, CAMPAIGN_WRITE, CONTACT_EDIT, EXPORT};
use super::problem::{parse, Params, Problem, QueryOf};
use super::AppState;
use crate::store::formula::neutralise;
use crate::store::pdf_zip::{self, Letter};
use crate::store::questionnaires::{
    AnswerExport, Answers, AnswersSpec, Questionnaire, QuestionnaireSpec,
};
use crate::store::tasks::ExportFormat;
use crate::store::xlsx;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncSeekExt;

type Answer<T> = Result<T, Problem>;

/// Query of `GET …/questionnaire/export`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
}

/// `GET …/questionnaire`: retired questions included.
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<Questionnaire>> {
    caller.require(CAMPAIGN_READ)?;
    Ok(Json(s.store.questionnaire(id).await?))
}

/// `PUT …/questionnaire`: the questions in order; left-out answered ones stay retired.
pub async fn put(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<Json<Questionnaire>> {
    let user = caller.require(CAMPAIGN_WRITE)?;
    let spec: QuestionnaireSpec = parse(&body)?;
    Ok(Json(s.store.put_questionnaire(id, spec, &user.name).await?))
}

/// `GET …/contacts/{contact}/answers`
pub async fn get_answers(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, contact)): Params<(i64, i64)>,
) -> Answer<Json<Answers>> {
    caller.require(CONTACT_EDIT)?;
    Ok(Json(s.store.answers(id, contact).await?))
}

/// `PUT …/contacts/{contact}/answers`: checked like a form; nothing is half-saved.
pub async fn put_answers(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, contact)): Params<(i64, i64)>,
    body: Bytes,
) -> Answer<Json<Answers>> {
    let user = caller.require(CONTACT_EDIT)?;
    let spec: AnswersSpec = parse(&body)?;
    Ok(Json(
        s.store.put_answers(id, contact, spec, &user.name).await?,
    ))
}

/// One CSV record as bytes.
fn csv_line(cells: &[String]) -> std::io::Result<Bytes> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(cells.iter().map(|c| neutralise(c).into_owned()))?;
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// `GET …/questionnaire/export`: the answers as CSV (streamed as the store reads them) or
/// XLSX (written to a temporary file first: a workbook is a ZIP archive), one row per contact
/// that answered.
pub async fn export(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    QueryOf(q): QueryOf<ExportQuery>,
) -> Answer<Response> {
    caller.require(EXPORT)?;
    let format = match q.format.as_deref() {
        None | Some("csv") => ExportFormat::Csv,
        Some("xlsx") => ExportFormat::Xlsx,
        Some("pdf_zip") => ExportFormat::PdfZip,
        Some(other) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                format!("wanted format csv, xlsx or pdf_zip, got {other:?}"),
            )
            .field("format"))
        }
    };
    let export = s.store.questionnaire_answers_for_export(id).await?;
    if format != ExportFormat::Csv {
        return export_file(&s, id, format, export).await;
    }
    let head = csv_line(&export.header).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write CSV: {e}"),
        )
    })?;
    let rows = export.rows.map(move |row| match row {
        Ok(cells) => csv_line(&cells),
        Err(e) => {
            // The status is sent already: the log says why the file ends early.
            tracing::error!(campaign = id, error = %e, "questionnaire export failed");
            Err(std::io::Error::other(e.to_string()))
        }
    });
    let body = futures_util::stream::once(async { Ok(head) }).chain(rows);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"campaign-{id}-answers.csv\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// The answers as an XLSX workbook or a ZIP of PDF letters, in an unnamed temporary file
/// beside the exports, then sent from it with its length.
async fn export_file(
    s: &AppState,
    id: i64,
    format: ExportFormat,
    export: AnswerExport,
) -> Answer<Response> {
    let failed = |e: String| {
        tracing::error!(campaign = id, error = %e, "questionnaire export failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the export cannot be written; see the daemon's log",
        )
    };
    let dir = s.store.exports_dir();
    let tmp = dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&tmp)?;
        tempfile::tempfile_in(&tmp)
    })
    .await
    .map_err(|e| failed(e.to_string()))?
    .map_err(|e| failed(e.to_string()))?;
    let file = if format == ExportFormat::Xlsx {
        xlsx::write(dir, export.header, export.types, export.rows, out).await
    } else {
        let campaign = s.store.campaign(id).await?.spec.name;
        let questions = s.store.questionnaire(id).await?.questions;
        let header = export.header;
        let letters = export.rows.map(move |row| {
            let cells = row?;
            let contact = cells.first().cloned().unwrap_or_default();
            let lines = header
                .iter()
                .zip(cells)
                .map(|(h, v)| {
                    let label = questions
                        .iter()
                        .find(|q| &q.id == h)
                        .map_or_else(|| h.clone(), |q| q.text.clone());
                    (label, Some(v))
                })
                .collect();
            Ok(Letter {
                name: format!("contact-{contact}.pdf"),
                title: format!("{campaign}: answers of contact {contact}"),
                body: String::new(),
                lines,
            })
        });
        pdf_zip::write(dir.join("answers.zip"), letters, out).await
    }
    .map_err(|e| failed(e.to_string()))?;
    let mut file = tokio::fs::File::from_std(file);
    file.seek(std::io::SeekFrom::Start(0))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| failed(e.to_string()))?
        .len();
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"campaign-{id}-answers.{}\"",
                    format.extension()
                ),
            ),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024)),
    )
        .into_response())
}
