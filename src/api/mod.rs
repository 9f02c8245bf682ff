//! Admin HTTP listener: `/metrics`, `/healthz`, `/readyz`, the REST API under `/api/v1`, and
//! the browser console (`/agent/`, `/supervisor/`).

pub mod agent;
pub mod agents;
pub mod auth;
pub mod body;
pub mod calls;
pub mod campaign_calls;
pub mod campaigns;
pub mod console;
pub mod contacts;
pub mod dialer;
pub mod dnc;
pub mod forms;
pub mod host;
pub mod import_settings;
pub mod lines;
pub mod login_limit;
pub mod metrics;
pub mod nodes;
pub mod openapi;
pub mod permissions;
pub mod problem;
pub mod prompts;
pub mod questionnaires;
pub mod server;
pub mod trunks;
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
    /// The HTTP thread or its runtime cannot be started.
    #[error("cannot start the http server: {0}")]
    Runtime(std::io::Error),
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
    /// The `[http]` settings handlers apply (metrics token, allowed hosts, timeouts).
    pub http: std::sync::Arc<crate::config::HttpConfig>,
    /// Login attempts by source and by user name.
    pub logins: login_limit::LoginGuard,
    /// Agents' SIP logins, to the registrar.
    pub sip_accounts: crate::sip::registrar::AccountSender,
    /// Agent sessions and their events.
    pub agents: crate::agents::Agents,
    /// The campaign drivers running.
    pub live: crate::dialer::live::Live,
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
        ("/agent/", get(console::agent)),
        ("/supervisor/", get(console::supervisor)),
        ("/console/{file}", get(console::asset)),
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

/// The routes. Probes (`/healthz`, `/readyz`) answer any Host; everything else only the
/// hosts `host::check` allows.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    let mut probes = Router::new();
    for (path, handlers) in admin_routes() {
        if !matches!(path, "/healthz" | "/readyz") {
            router = router.route(path, handlers);
        } else {
            probes = probes.route(path, handlers);
        }
    }
    let hosts: std::sync::Arc<[String]> = state.http.allowed_hosts.clone().into();
    router
        .merge(v1::routes(state.clone()))
        .route_layer(middleware::from_fn_with_state(hosts, host::check))
        .merge(probes)
        .layer(middleware::from_fn_with_state(
            state.http.body_read_timeout,
            body::stall_timeout,
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "http request");
    resp
}

/// Whether two secrets are equal, in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let want = s.http.metrics_token.expose();
    if !want.is_empty() {
        let given = auth::bearer(&headers).unwrap_or("");
        if !same_secret(given.as_bytes(), want.as_bytes()) {
            return problem::Problem::new(
                StatusCode::UNAUTHORIZED,
                "wanted the metrics token (http.metrics_token): Authorization: Bearer <token>",
            )
            .into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.health.is_fenced() {
        (StatusCode::SERVICE_UNAVAILABLE, FENCED)
    } else {
        (StatusCode::OK, "ok\n")
    }
}

/// What both probes answer a fenced node.
const FENCED: &str = "fenced: another running dialerd holds this node's node.name\n";

async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.health.is_fenced() {
        (StatusCode::SERVICE_UNAVAILABLE, FENCED)
    } else if s.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
