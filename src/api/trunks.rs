//! `GET /api/v1/trunks` and `POST /api/v1/trunks/{name}/test-call`: trunk status, and one call
//! placed by hand through a trunk. A caller ID of one's choosing is for admins; anyone else may
//! only show a verified line, as campaign calls do.

use super::auth::{Caller, FREE_CALLER_ID, TEST_CALL, TRUNKS_READ};
use super::problem::Problem;
use super::AppState;
use crate::store::lines::LineStatus;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// `GET /api/v1/trunks`
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<crate::sip::trunk::TrunkStatus>>, Problem> {
    caller.require(TRUNKS_READ)?;
    Ok(Json(s.trunks.read().map(|v| v.clone()).unwrap_or_default()))
}

/// Body of `POST /api/v1/trunks/{name}/test-call`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCallRequest {
    /// Number (user part of the Request-URI) to call.
    to: String,
    /// Seconds to let it ring before CANCEL (1 to 300; default 30).
    #[serde(default)]
    ring_timeout: Option<u64>,
    /// Caller ID to send (default: the trunk's).
    #[serde(default)]
    caller_id: Option<String>,
}

/// A number or SIP user part we are willing to put in a Request-URI or From.
fn valid_number(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+*#-._".contains(c))
}

/// A problem answer, naming the field at fault when there is one.
fn json_error(status: StatusCode, error: String, field: Option<&str>) -> Response {
    let problem = Problem::new(status, error);
    match field {
        Some(f) => problem.field(f),
        None => problem,
    }
    .into_response()
}

/// Whether `caller_id` is the number of a verified line (compared as E.164).
async fn is_verified_line(s: &AppState, caller_id: &str) -> Result<bool, Problem> {
    let Ok(number) = crate::store::phone::normalise(caller_id, None) else {
        return Ok(false);
    };
    Ok(s.store
        .lines()
        .await?
        .iter()
        .any(|l| l.status == LineStatus::Verified && l.spec.number == number))
}

/// `POST /api/v1/trunks/{name}/test-call`: places the call and reports its SIP outcome.
pub async fn test_call(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let user = caller.require(TEST_CALL)?;
    let req: TestCallRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.to_string();
            // serde names the field in backticks: "missing field `to`", "unknown field `x`".
            let field = msg.split('`').nth(1).map(str::to_string);
            return Ok(json_error(StatusCode::BAD_REQUEST, msg, field.as_deref()));
        }
    };
    let msg = "wanted a number or user part of at most 64 characters: digits, letters, + * # - . _";
    if !valid_number(&req.to) {
        return Ok(json_error(StatusCode::BAD_REQUEST, msg.into(), Some("to")));
    }
    if let Some(c) = req.caller_id.as_deref() {
        if !valid_number(c) {
            return Ok(json_error(
                StatusCode::BAD_REQUEST,
                msg.into(),
                Some("caller_id"),
            ));
        }
        // Showing a number nobody proved to own is how calls get spoofed; only admins may.
        if !FREE_CALLER_ID.contains(&user.role) && !is_verified_line(&s, c).await? {
            let why = format!(
                "caller ID {c} is not a verified line; only an admin may send any caller ID"
            );
            return Ok(json_error(StatusCode::FORBIDDEN, why, Some("caller_id")));
        }
    }
    if req.ring_timeout.is_some_and(|t| !(1..=300).contains(&t)) {
        let msg = "wanted a number of seconds from 1 to 300";
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            msg.into(),
            Some("ring_timeout"),
        ));
    }
    let ring_timeout = req
        .ring_timeout
        .map(std::time::Duration::from_secs)
        .unwrap_or(crate::call::test_call::RING_TIMEOUT);
    if !s.has_trunk(&name) {
        return Ok(json_error(
            StatusCode::NOT_FOUND,
            format!("no trunk named {name}"),
            None,
        ));
    }
    tracing::info!(user = %user.name, trunk = %name, to = %req.to, caller_id = ?req.caller_id, "test call requested");
    let dial = crate::sip::leg::Dial {
        trunk: Some(name),
        caller_id: req.caller_id,
        ring_timeout,
        ..crate::sip::leg::Dial::new(req.to)
    };
    let call = crate::call::test_call::run(&s.sip, dial);
    // Ring timeout plus Timer B bounds the wait.
    Ok(
        match tokio::time::timeout(std::time::Duration::from_secs(400), call).await {
            Ok(report) => Json(report).into_response(),
            _ => json_error(
                StatusCode::GATEWAY_TIMEOUT,
                "the test call did not finish".into(),
                None,
            ),
        },
    )
}
