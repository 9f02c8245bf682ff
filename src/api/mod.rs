//! Admin HTTP listener: `/metrics`, `/healthz`, `/readyz`, and the REST API under `/api/v1`.

pub mod auth;
pub mod calls;
pub mod campaign_calls;
pub mod campaigns;
pub mod contacts;
pub mod dnc;
pub mod forms;
pub mod lines;
pub mod metrics;
pub mod openapi;
pub mod permissions;
pub mod problem;
pub mod questionnaires;
pub mod users;
pub mod v1;

use crate::health::Health;
use crate::metrics::Metrics;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Errors of the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The listen address cannot be bound.
    #[error("cannot listen on http.listen {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("http server failed: {0}")]
    Serve(std::io::Error),
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Metrics registry to render.
    pub metrics: Metrics,
    /// Readiness flag.
    pub health: Health,
    /// Trunk status from the SIP endpoint.
    pub trunks: crate::sip::endpoint::TrunkView,
    /// Call legs through the SIP endpoint.
    pub sip: crate::sip::leg::SipHandle,
    /// Campaigns, contacts, users.
    pub store: crate::store::Store,
    /// REST API metrics.
    pub api_metrics: metrics::ApiMetrics,
    /// Caller-ID lines and their verification.
    pub lines: crate::lines::Lines,
}

impl AppState {
    /// Whether a trunk of this name is configured.
    pub fn has_trunk(&self, name: &str) -> bool {
        self.trunks
            .read()
            .map(|t| t.iter().any(|t| t.name == name))
            .unwrap_or(false)
    }
}

/// Binds the admin listener, naming the address on failure.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ApiError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::Bind { addr, source })
}

/// Routes outside `/api/v1`'s resources: (path, handlers).
fn admin_routes() -> Vec<(&'static str, axum::routing::MethodRouter<AppState>)> {
    vec![
        ("/metrics", get(metrics)),
        ("/healthz", get(healthz)),
        ("/readyz", get(readyz)),
        ("/api/v1/trunks", get(trunks)),
        (
            "/api/v1/trunks/{name}/test-call",
            axum::routing::post(test_call),
        ),
    ]
}

/// Every path the admin listener serves, as registered.
pub fn paths() -> Vec<String> {
    admin_routes()
        .into_iter()
        .map(|(p, _)| p.to_string())
        .chain(v1::paths())
        .collect()
}

/// The routes.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (path, handlers) in admin_routes() {
        router = router.route(path, handlers);
    }
    router
        .merge(v1::routes(state.clone()))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Serves until `stop` resolves, then finishes requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
        .map_err(ApiError::Serve)
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "http request");
    resp
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn trunks(State(s): State<AppState>) -> axum::Json<Vec<crate::sip::trunk::TrunkStatus>> {
    let list = s.trunks.read().map(|v| v.clone()).unwrap_or_default();
    axum::Json(list)
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

/// A JSON error answer: `{"error": "...", "field": "..."}`.
fn json_error(status: StatusCode, error: String, field: Option<&str>) -> Response {
    let body = serde_json::json!({ "error": error, "field": field });
    (status, axum::Json(body)).into_response()
}

async fn test_call(
    State(s): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let req: TestCallRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.to_string();
            // serde names the field in backticks: "missing field `to`", "unknown field `x`".
            let field = msg.split('`').nth(1).map(str::to_string);
            return json_error(StatusCode::BAD_REQUEST, msg, field.as_deref());
        }
    };
    let msg = "wanted a number or user part of at most 64 characters: digits, letters, + * # - . _";
    if !valid_number(&req.to) {
        return json_error(StatusCode::BAD_REQUEST, msg.into(), Some("to"));
    }
    if req.caller_id.as_deref().is_some_and(|c| !valid_number(c)) {
        return json_error(StatusCode::BAD_REQUEST, msg.into(), Some("caller_id"));
    }
    if req.ring_timeout.is_some_and(|t| !(1..=300).contains(&t)) {
        let msg = "wanted a number of seconds from 1 to 300";
        return json_error(StatusCode::BAD_REQUEST, msg.into(), Some("ring_timeout"));
    }
    let ring_timeout = req
        .ring_timeout
        .map(std::time::Duration::from_secs)
        .unwrap_or(crate::call::test_call::RING_TIMEOUT);
    if !s.has_trunk(&name) {
        return json_error(
            StatusCode::NOT_FOUND,
            format!("no trunk named {name}"),
            None,
        );
    }
    // Ring timeout plus Timer B bounds the wait.
    let dial = crate::sip::leg::Dial {
        trunk: Some(name),
        caller_id: req.caller_id,
        ring_timeout,
        ..crate::sip::leg::Dial::new(req.to)
    };
    let call = crate::call::test_call::run(&s.sip, dial);
    match tokio::time::timeout(std::time::Duration::from_secs(400), call).await {
        Ok(report) => axum::Json(report).into_response(),
        _ => json_error(
            StatusCode::GATEWAY_TIMEOUT,
            "the test call did not finish".into(),
            None,
        ),
    }
}
