//! `/api/v1/users`, their tokens, `/api/v1/me` and `/api/v1/login`. Agents also have a SIP
//! login for their phone (`sip_username`, `sip_password`, `sip_digest`) and the call tasks they
//! may serve (`tasks`); a change to a SIP login reaches the registrar before the answer is
//! sent, so the next REGISTER or INVITE already meets it.

use super::auth::{Caller, ANYONE, USERS};
use super::problem::{parse, Params, Problem};
use super::AppState;
use crate::sip::auth::{ha1, Algorithm};
use crate::sip::registrar::{AccountDigest, AccountUpdate, StoreAccount};
use crate::store::agents::{check_sip_username, AgentChange, AgentProfile, SipLogin};
use crate::store::users::{normalise_name, NewToken, Role, TokenInfo, User};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use std::net::SocketAddr;

type Answer<T> = Result<T, Problem>;

/// Shortest SIP password accepted.
const MIN_SIP_PASSWORD: usize = 8;

/// Body of `POST /api/v1/users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    role: Role,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    sip_username: Option<String>,
    #[serde(default)]
    sip_password: Option<String>,
    #[serde(default)]
    sip_digest: Option<String>,
    #[serde(default)]
    tasks: Option<Vec<i64>>,
}

/// Body of `PATCH /api/v1/users/{id}`: each field left out stays as it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    /// `null` removes the SIP login.
    #[serde(default, deserialize_with = "present")]
    sip_username: Option<Option<String>>,
    #[serde(default)]
    sip_password: Option<String>,
    #[serde(default)]
    sip_digest: Option<String>,
    #[serde(default)]
    tasks: Option<Vec<i64>>,
}

/// A field given, even as `null` (`Some(None)`), apart from one left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A user as answered: agents also show their SIP user name, digest and tasks (never the SIP
/// password or its hashes).
#[derive(Serialize)]
pub struct UserView {
    #[serde(flatten)]
    user: User,
    #[serde(flatten)]
    agent: Option<AgentProfile>,
}

impl UserView {
    fn new(user: User, profile: Option<AgentProfile>) -> Self {
        let agent = (user.role == Role::Agent).then(|| profile.unwrap_or_default());
        Self { user, agent }
    }
}

/// What an agent's fields ask of the store: the SIP login (`None`: unchanged, `Some(None)`:
/// removed) and tasks. `current` is the login stored so far.
fn agent_change(
    s: &AppState,
    role: Role,
    sip_username: Option<Option<String>>,
    sip_password: Option<String>,
    sip_digest: Option<String>,
    tasks: Option<Vec<i64>>,
    current: Option<&SipLogin>,
) -> Answer<AgentChange> {
    let asked =
        sip_username.is_some() || sip_password.is_some() || sip_digest.is_some() || tasks.is_some();
    if asked && role != Role::Agent {
        let field = match (&sip_username, &sip_password, &sip_digest) {
            (Some(_), _, _) => "sip_username",
            (_, Some(_), _) => "sip_password",
            (_, _, Some(_)) => "sip_digest",
            _ => "tasks",
        };
        return Err(invalid(
            field,
            "only users with role agent have a SIP login and tasks",
        ));
    }
    let digest = match &sip_digest {
        Some(d) => AccountDigest::parse(d)
            .ok_or_else(|| invalid("sip_digest", "wanted \"md5\" or \"sha-256\""))?,
        None => current
            .and_then(|c| AccountDigest::parse(&c.digest))
            .unwrap_or_default(),
    };
    if let Some(p) = &sip_password {
        if p.chars().count() < MIN_SIP_PASSWORD {
            return Err(invalid(
                "sip_password",
                format!("wanted at least {MIN_SIP_PASSWORD} characters"),
            ));
        }
    }
    let sip = match (sip_username, sip_password, current) {
        (None, None, None) if sip_digest.is_some() => {
            return Err(invalid(
                "sip_username",
                "wanted with sip_digest: there is no SIP login",
            ))
        }
        (None, None, None) => None,
        (None, None, Some(c)) => sip_digest.is_some().then(|| {
            Some(SipLogin {
                digest: digest.as_str().into(),
                ..c.clone()
            })
        }),
        (Some(None), None, _) => Some(None),
        (Some(None), Some(_), _) => {
            return Err(invalid("sip_password", "wanted only with a sip_username"))
        }
        (Some(Some(name)), Some(password), _) => Some(Some(sip_login(s, name, &password, digest)?)),
        (None, Some(password), Some(c)) => {
            Some(Some(sip_login(s, c.username.clone(), &password, digest)?))
        }
        (None, Some(_), None) => {
            return Err(invalid("sip_username", "wanted with sip_password"));
        }
        (Some(Some(name)), None, Some(c)) if c.username == name => {
            sip_digest.is_some().then(|| {
                Some(SipLogin {
                    digest: digest.as_str().into(),
                    ..c.clone()
                })
            })
        }
        (Some(Some(_)), None, _) => {
            // The HA1s cover the user name: a new name needs the password again.
            return Err(invalid("sip_password", "wanted with a new sip_username"));
        }
    };
    Ok(AgentChange { sip, tasks })
}

/// The login for `name` and `password`: both HA1s over the registrar's realm.
fn sip_login(
    s: &AppState,
    name: String,
    password: &str,
    digest: AccountDigest,
) -> Answer<SipLogin> {
    check_sip_username(&name)?;
    if s.sip_accounts.is_reserved(&name) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!("sip_username {name:?} is taken by an [[agents]] account of the configuration"),
        )
        .field("sip_username"));
    }
    let realm = s.sip_accounts.realm().to_string();
    Ok(SipLogin {
        ha1_md5: ha1(Algorithm::Md5, &name, &realm, password),
        ha1_sha256: ha1(Algorithm::Sha256, &name, &realm, password),
        username: name,
        realm,
        digest: digest.as_str().into(),
    })
}

fn invalid(field: &str, reason: impl Into<String>) -> Problem {
    Problem::from(crate::store::StoreError::invalid(field, reason))
}

/// Tells the registrar what the store now holds for `user_id`'s SIP login. Read and sent under
/// the sender's lock, so concurrent changes reach it in the order they were read.
async fn sync_sip_login(s: &AppState, user_id: i64) -> Answer<()> {
    let _order = s.sip_accounts.lock().await;
    let account = s.store.sip_login(user_id).await?.map(store_account);
    s.sip_accounts.send(AccountUpdate::Set { user_id, account });
    Ok(())
}

fn store_account(l: SipLogin) -> StoreAccount {
    StoreAccount {
        digest: AccountDigest::parse(&l.digest).unwrap_or_default(),
        username: l.username,
        realm: l.realm,
        ha1_md5: l.ha1_md5,
        ha1_sha256: l.ha1_sha256,
    }
}

/// Hands every SIP login in the store to the registrar (at start-up).
pub async fn load_sip_logins(
    store: &crate::store::Store,
    accounts: &crate::sip::registrar::AccountSender,
) -> Result<usize, crate::store::StoreError> {
    let logins = store.sip_logins().await?;
    let n = logins.len();
    for (user_id, login) in logins {
        if accounts.is_reserved(&login.username) {
            tracing::warn!(user = %login.username, "SIP login shadowed by an [[agents]] account of the configuration");
        }
        accounts.send(AccountUpdate::Set {
            user_id,
            account: Some(store_account(login)),
        });
    }
    Ok(n)
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
pub async fn me(State(s): State<AppState>, caller: Caller) -> Answer<Json<UserView>> {
    let user = caller.require(ANYONE)?.clone();
    let profile = match user.role {
        Role::Agent => Some(s.store.agent_profile(user.id).await?),
        _ => None,
    };
    Ok(Json(UserView::new(user, profile)))
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
) -> Answer<(StatusCode, Json<UserView>)> {
    caller.require(USERS)?;
    let req: NewUser = parse(&body)?;
    let change = agent_change(
        &s,
        req.role,
        req.sip_username.map(Some),
        req.sip_password,
        req.sip_digest,
        req.tasks,
        None,
    )?;
    let user = s
        .store
        .create_user_with(&req.name, req.role, req.password.as_deref(), &change)
        .await?;
    if change.sip.is_some() {
        sync_sip_login(&s, user.id).await?;
    }
    let profile = s.store.agent_profile(user.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(UserView::new(user, Some(profile))),
    ))
}

/// `PATCH /api/v1/users/{id}`: an agent's SIP login and tasks.
pub async fn patch(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
    body: Bytes,
) -> Answer<Json<UserView>> {
    caller.require(USERS)?;
    let req: UserPatch = parse(&body)?;
    let user = s.store.user(id).await?;
    let current = s.store.sip_login(id).await?;
    let change = agent_change(
        &s,
        user.role,
        req.sip_username,
        req.sip_password,
        req.sip_digest,
        req.tasks,
        current.as_ref(),
    )?;
    s.store.update_agent(id, &change).await?;
    if change.sip.is_some() {
        sync_sip_login(&s, id).await?;
    }
    let profile = s.store.agent_profile(id).await?;
    Ok(Json(UserView::new(user, Some(profile))))
}

/// `GET /api/v1/users`
pub async fn list(State(s): State<AppState>, caller: Caller) -> Answer<Json<Vec<UserView>>> {
    caller.require(USERS)?;
    let mut profiles = s.store.agent_profiles().await?;
    let users = s.store.users().await?;
    Ok(Json(
        users
            .into_iter()
            .map(|u| {
                let p = profiles.remove(&u.id);
                UserView::new(u, p)
            })
            .collect(),
    ))
}

/// `GET /api/v1/users/{id}`
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> Answer<Json<UserView>> {
    caller.require(USERS)?;
    let user = s.store.user(id).await?;
    let profile = s.store.agent_profile(id).await?;
    Ok(Json(UserView::new(user, Some(profile))))
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
    // Its SIP login went with it: the phone stops authenticating at once.
    sync_sip_login(&s, id).await?;
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
