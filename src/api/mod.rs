//! Admin HTTP listener: `/metrics`, `/healthz`, `/readyz` (the REST API mounts here later).

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
}

/// Binds the admin listener, naming the address on failure.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ApiError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::Bind { addr, source })
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/trunks", get(trunks))
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
