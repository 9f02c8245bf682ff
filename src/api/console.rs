//! The browser console: the agent page (`/agent/`) and the supervisor page (`/supervisor/`),
//! plain HTML, CSS and ES modules shipped inside the binary (no build step). They use only
//! the public API; the token lives in the page's memory. Every answer carries a strict
//! Content-Security-Policy (no inline script, no framing) and `nosniff`.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The policy of every console answer: scripts, styles and connections from this origin
/// only (the event WebSockets included), nothing inline, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; media-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The files under `/console/`: (name, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../console/console.css"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/api.js"),
    ),
    (
        "agent.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/agent.js"),
    ),
    (
        "audio.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/audio.js"),
    ),
    (
        "supervisor.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/supervisor.js"),
    ),
];

const HTML: &str = "text/html; charset=utf-8";

/// One console answer with the security headers.
fn page(kind: &'static str, body: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A new binary may ship new pages: the browser asks again rather than mixing versions.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `GET /agent/`: the agent console.
pub async fn agent() -> Response {
    page(HTML, include_str!("../../console/agent.html"))
}

/// `GET /supervisor/`: the supervisor page.
pub async fn supervisor() -> Response {
    page(HTML, include_str!("../../console/supervisor.html"))
}

/// `GET /console/{file}`: the pages' scripts and style sheet.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => page(kind, body),
        None => {
            super::problem::Problem::new(StatusCode::NOT_FOUND, format!("no console file {file:?}"))
                .into_response()
        }
    }
}
