//! Bearer-token authentication for `/api/v1` and the role each route needs.

use super::problem::Problem;
use super::AppState;
use crate::store::permissions::{Access, Verdict};
use crate::store::users::{Role, User};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Campaign settings and tasks: read.
pub const CAMPAIGN_READ: &[Role] = &[
    Role::Admin,
    Role::Operator,
    Role::Supervisor,
    Role::Backoffice,
];
/// Campaign settings, tasks, imports: write.
pub const CAMPAIGN_WRITE: &[Role] = &[Role::Admin, Role::Operator];
/// Contacts: search, read, create, edit.
pub const CONTACT_EDIT: &[Role] = &[Role::Admin, Role::Operator, Role::Backoffice];
/// Contacts: delete, import.
pub const CONTACT_ADMIN: &[Role] = &[Role::Admin, Role::Operator];
/// Call records.
pub const CALL_READ: &[Role] = &[Role::Admin, Role::Supervisor];
/// What the dialer may call now; do-not-call lists: read.
pub const CALLABLE_READ: &[Role] = &[Role::Admin, Role::Operator, Role::Supervisor];
/// Do-not-call lists: read (writing is `CAMPAIGN_WRITE`).
pub const DNC_READ: &[Role] = CALLABLE_READ;
/// A campaign's files: download (backoffice only with the campaign's `export` grant).
pub const EXPORT: &[Role] = &[Role::Admin, Role::Operator, Role::Backoffice];
/// Users and tokens.
pub const USERS: &[Role] = &[Role::Admin];
/// Caller-ID lines and their verification.
pub const LINES: &[Role] = &[Role::Admin, Role::Operator];
/// Trunk status.
pub const TRUNKS_READ: &[Role] = &[Role::Admin, Role::Operator, Role::Supervisor];
/// Which node serves an agent's phone: also the cluster's SIP proxy, whose token may do
/// nothing else.
pub const NODE_ROUTE: &[Role] = &[Role::Admin, Role::Operator, Role::Supervisor, Role::Proxy];
/// A test call through a trunk (the caller ID limited to verified lines).
pub const TEST_CALL: &[Role] = &[Role::Admin, Role::Operator];
/// A test call showing any caller ID, verified or not.
pub const FREE_CALLER_ID: &[Role] = &[Role::Admin];
/// An agent's own session: login, ready, pause, hang-up, logout.
pub const AGENT_SELF: &[Role] = &[Role::Agent];
/// Agents: list them, act for any of them, watch a queue's agents.
pub const AGENTS_SUPERVISE: &[Role] = &[Role::Admin, Role::Supervisor];
/// A ticket for an event WebSocket (an agent's own, or a queue's for supervisors).
pub const EVENT_TICKET: &[Role] = &[Role::Admin, Role::Supervisor, Role::Agent];
/// Anyone signed in.
pub const ANYONE: &[Role] = &Role::ALL;

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

impl Caller {
    /// Passes when the caller has one of `roles`, else a 403 naming them.
    pub fn require(&self, roles: &[Role]) -> Result<&User, Problem> {
        if roles.contains(&self.0.role) {
            return Ok(&self.0);
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "this needs the role {}; you are {}",
                names.join(" or "),
                self.0.role.as_str()
            ),
        ))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(unauthorized)
    }
}

fn unauthorized() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "wanted a valid API token: Authorization: Bearer <token>",
    )
}

/// The token of an `Authorization: Bearer` header, if one is given.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Middleware: finds the user of the Bearer token, or answers 401.
pub async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(req.headers()) else {
        return unauthorized().into_response();
    };
    match s.store.authenticate(token).await {
        Ok(Some(user)) => {
            req.extensions_mut().insert(Caller(user));
            next.run(req).await
        }
        Ok(None) => unauthorized().into_response(),
        Err(e) => Problem::from(e).into_response(),
    }
}

/// The campaign routes' common prefix, as routes are registered.
const CAMPAIGN: &str = "/api/v1/campaigns/{id}";

/// What a request does to a campaign that its grants decide: downloading a file is `Export`,
/// any other method than GET is `Edit` (its grants themselves are the admin's).
fn access_of(method: &axum::http::Method, route: &str) -> Option<Access> {
    let tail = route.strip_prefix(CAMPAIGN)?;
    if tail.ends_with("/exports/{file}") || tail == "/questionnaire/export" {
        return Some(Access::Export);
    }
    if method == axum::http::Method::GET
        || method == axum::http::Method::HEAD
        || tail == "/permissions"
    {
        return None;
    }
    Some(Access::Edit)
}

/// Middleware (after `authenticate`): a request that changes a campaign or downloads its files
/// passes only when the campaign's grants allow the caller; the handler then checks the role.
pub async fn campaign_grants(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let access = route.as_deref().and_then(|r| access_of(req.method(), r));
    let (Some(access), Some(Caller(user))) = (access, req.extensions().get::<Caller>()) else {
        return next.run(req).await;
    };
    // The id is the fifth segment of both the route and the path (`/api/v1/campaigns/{id}`);
    // one that does not parse is left to the handler's 400.
    let Some(campaign) = req
        .uri()
        .path()
        .split('/')
        .nth(4)
        .and_then(|id| id.parse::<i64>().ok())
    else {
        return next.run(req).await;
    };
    let verdict = match s.store.may(campaign, user.id, user.role, access).await {
        Ok(v) => v,
        Err(e) => return Problem::from(e).into_response(),
    };
    let role = user.role.as_str();
    let detail = match verdict {
        Verdict::Allowed => return next.run(req).await,
        Verdict::NotGranted => format!(
            "campaign {campaign} is limited to admin and the users granted {what} on it; \
             you ({name}, {role}) are not",
            what = access.as_str(),
            name = user.name,
        ),
        Verdict::NeedsGrant => format!(
            "downloading needs the role admin or operator, or an export grant on campaign \
             {campaign}; you are {role} without one"
        ),
    };
    Problem::new(StatusCode::FORBIDDEN, detail).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn grants_judge_changes_and_downloads_only() {
        let c = |t: &str| format!("{CAMPAIGN}{t}");
        assert_eq!(access_of(&Method::PATCH, CAMPAIGN), Some(Access::Edit));
        assert_eq!(
            access_of(&Method::POST, &c("/contacts/import")),
            Some(Access::Edit)
        );
        assert_eq!(access_of(&Method::PUT, &c("/form")), Some(Access::Edit));
        assert_eq!(access_of(&Method::GET, &c("/form")), None);
        assert_eq!(
            access_of(&Method::GET, &c("/tasks/{task}/exports/{file}")),
            Some(Access::Export)
        );
        assert_eq!(
            access_of(&Method::GET, &c("/questionnaire/export")),
            Some(Access::Export)
        );
        assert_eq!(access_of(&Method::PUT, &c("/permissions")), None);
        assert_eq!(access_of(&Method::POST, "/api/v1/campaigns"), None);
        assert_eq!(access_of(&Method::POST, "/api/v1/lines"), None);
    }
}
