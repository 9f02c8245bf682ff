//! Bearer-token authentication for `/api/v1` and the role each route needs.

use super::problem::Problem;
use super::AppState;
use crate::store::users::{Role, User};
use axum::extract::{FromRequestParts, Request, State};
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
/// Users and tokens.
pub const USERS: &[Role] = &[Role::Admin];
/// Caller-ID lines and their verification.
pub const LINES: &[Role] = &[Role::Admin, Role::Operator];
/// Trunk status.
pub const TRUNKS_READ: &[Role] = &[Role::Admin, Role::Operator, Role::Supervisor];
/// A test call through a trunk (the caller ID limited to verified lines).
pub const TEST_CALL: &[Role] = &[Role::Admin, Role::Operator];
/// A test call showing any caller ID, verified or not.
pub const FREE_CALLER_ID: &[Role] = &[Role::Admin];
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
