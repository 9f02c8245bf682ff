//! `/api/v1/campaigns/{id}/prompts`: recordings a campaign plays to its callers, uploaded as
//! WAV in any format and converted once, at upload.

use super::auth::{Caller, CAMPAIGN_READ, CAMPAIGN_WRITE};
use super::problem::{Params, Problem};
use super::AppState;
use crate::media::prompt::{decode_wav, encode_wav};
use crate::store::prompts::PromptInfo;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

type Answer<T> = Result<T, Problem>;

/// Largest upload: 30 s of 48 kHz stereo 32-bit audio fits, with room to spare.
pub const PROMPT_LIMIT: usize = 16 * 1024 * 1024;

/// `GET …/prompts`: the campaign's prompts, without audio.
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<Vec<PromptInfo>>> {
    caller.require(CAMPAIGN_READ)?;
    Ok(Json(s.store.campaign_prompts(id).await?))
}

/// `GET …/prompts/{name}`: the prompt as stored, an 8 kHz mono 16-bit WAV file.
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, name)): Params<(i64, String)>,
) -> Answer<Response> {
    caller.require(CAMPAIGN_READ)?;
    let samples = s.store.campaign_prompt(id, &name).await?.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            format!("campaign {id} has no {name} prompt"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "audio/wav")], encode_wav(&samples)).into_response())
}

/// `PUT …/prompts/{name}`: a WAV file (any rate, depth or channel count), converted and
/// stored; 2 to 30 seconds.
pub async fn put(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, name)): Params<(i64, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<PromptInfo>> {
    let user = caller.require(CAMPAIGN_WRITE)?;
    let (kind, essence) = super::contacts::media_type(&headers, "none");
    if !["audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"].contains(&essence.as_str()) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("wanted Content-Type: audio/wav, got {kind}"),
        )
        .field("Content-Type"));
    }
    // Resampling a long file takes milliseconds of CPU: off the async workers.
    let samples = tokio::task::spawn_blocking(move || decode_wav(&body, "the upload"))
        .await
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a WAV file dialerd can play: {e}"),
            )
            .field("body")
        })?;
    Ok(Json(
        s.store
            .put_campaign_prompt(id, &name, &samples, &user.name)
            .await?,
    ))
}

/// `DELETE …/prompts/{name}`; refused (409) for the safe-harbour message while the campaign
/// may run power or predictive tasks.
pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Params((id, name)): Params<(i64, String)>,
) -> Answer<StatusCode> {
    caller.require(CAMPAIGN_WRITE)?;
    s.store.delete_campaign_prompt(id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
