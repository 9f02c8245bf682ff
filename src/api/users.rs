//! `/api/v1/users`, their tokens, `/api/v1/me` and `/api/v1/login`.

use super::auth::{Caller, ANYONE, USERS};
use super::problem::{parse, Params, Problem};
use super::AppState;
use crate::store::users::{normalise_name, NewToken, Role, TokenInfo, User};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::net::SocketAddr;

type Answer<T> = Result<T, Problem>;

/// Body of `POST /api/v1/users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    role: Role,
    #[serde(default)]
    password: Option<String>,
}

/// Body of `POST /api/v1/users/{id}/tokens`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    #[serde(default)]
    label: String,
}

/// Body of `POST /api/v1/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    name: String,
    password: String,
}

/// `GET /api/v1/me`
pub async fn me(caller: Caller) -> Answer<Json<User>> {
    Ok(Json(caller.require(ANYONE)?.clone()))
}

/// `POST /api/v1/login`: a password for a new token (no Bearer needed). Limited per source
/// address and per user name (429 with Retry-After); see `login_limit`.
pub async fn login(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<(StatusCode, Json<NewToken>), Response> {
    let req: Login = parse(&body).map_err(IntoResponse::into_response)?;
    // Names count as the store will match them, so `Ann` and `ann ` share one limit.
    let key = normalise_name(&req.name).unwrap_or_else(|_| req.name.clone());
    let _pending = s.logins.admit(peer.ip(), &key).map_err(too_many)?;
    match s
        .store
        .login(&req.name, &req.password)
        .await
        .map_err(|e| Problem::from(e).into_response())?
    {
        Some(token) => Ok((StatusCode::CREATED, Json(token))),
        None => {
            s.logins.failed(&key);
            Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "unknown user name or wrong password",
            )
            .into_response())
        }
    }
}

/// 429 with the seconds to wait in Retry-After.
fn too_many(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut resp = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many login attempts; try again in {secs} s"),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs.max(1)));
    resp
}

/// `POST /api/v1/users`
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Answer<(StatusCode, Json<User>)> {
    caller.require(USERS)?;
    let req: NewUser = parse(&body)?;
    let user = s
        .store
        .create_user(&req.name, req.role, req.password.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// `GET /api/v1/users`
pub async fn list(State(s): State<AppState>, caller: Caller) -> Answer<Json<Vec<User>>> {
    caller.require(USERS)?;
    Ok(Json(s.store.users().await?))
}

/// `GET /api/v1/users/{id}`
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<User>> {
    caller.require(USERS)?;
    Ok(Json(s.store.user(id).await?))
}

/// `DELETE /api/v1/users/{id}`: not oneself.
pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<StatusCode> {
    if caller.require(USERS)?.id == id {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "you cannot delete yourself",
        ));
    }
    s.store.delete_user(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/users/{id}/tokens`: the secret is in this answer only.
pub async fn create_token(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<(StatusCode, Json<NewToken>)> {
    caller.require(USERS)?;
    let req: TokenRequest = if body.is_empty() {
        TokenRequest {
            label: String::new(),
        }
    } else {
        parse(&body)?
    };
    Ok((
        StatusCode::CREATED,
        Json(s.store.create_token(id, &req.label).await?),
    ))
}

/// `GET /api/v1/users/{id}/tokens`
pub async fn tokens(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<Vec<TokenInfo>>> {
    caller.require(USERS)?;
    Ok(Json(s.store.tokens(id).await?))
}

/// `DELETE /api/v1/tokens/{id}`: revokes it.
pub async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<TokenInfo>> {
    caller.require(USERS)?;
    Ok(Json(s.store.revoke_token(id).await?))
}
