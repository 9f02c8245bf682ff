//! Request bodies: JSON routes take `Content-Type: application/json` only (415 otherwise, so a
//! web page cannot post to them with a "simple" form or `text/plain` request) and at most a
//! route's limit (413, judged on `Content-Length` before a byte is read); every body that stops
//! sending for `http.body_read_timeout` fails with 408, so a stalled upload frees what it holds.

use super::problem::Problem;
use super::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Largest JSON body most routes take.
pub const JSON_LIMIT: usize = 1024 * 1024;
/// Largest body `POST /api/v1/login` takes.
pub const LOGIN_LIMIT: usize = 4 * 1024;

/// `handlers` take JSON bodies of at most `limit` bytes.
pub fn json(limit: usize, handlers: MethodRouter<AppState>) -> MethodRouter<AppState> {
    handlers
        .route_layer(middleware::from_fn_with_state(limit, require_json))
        .layer(DefaultBodyLimit::max(limit))
}

/// `handlers` take bodies of any type of at most `limit` bytes (413 up front on
/// `Content-Length`); the handler checks the type.
pub fn sized(limit: usize, handlers: MethodRouter<AppState>) -> MethodRouter<AppState> {
    handlers
        .route_layer(middleware::from_fn_with_state(limit, require_length))
        .layer(DefaultBodyLimit::max(limit))
}

/// The declared body length, if any (`None` for chunked bodies).
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Whether a request carries a body at all.
fn has_body(headers: &HeaderMap) -> bool {
    content_length(headers).is_some_and(|n| n > 0)
        || headers.contains_key(header::TRANSFER_ENCODING)
}

/// 413 when the declared length exceeds `limit`.
fn too_large(headers: &HeaderMap, limit: usize) -> Option<Problem> {
    let n = content_length(headers)?;
    (n > limit as u64).then(|| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is {n} bytes; this route takes at most {limit}"),
        )
        .field("Content-Length")
    })
}

async fn require_length(State(limit): State<usize>, req: Request, next: Next) -> Response {
    match too_large(req.headers(), limit) {
        Some(p) => close(p.into_response()),
        None => next.run(req).await,
    }
}

async fn require_json(State(limit): State<usize>, req: Request, next: Next) -> Response {
    if !has_body(req.headers()) {
        return next.run(req).await;
    }
    let (kind, essence) = super::contacts::media_type(req.headers(), "none");
    if essence != "application/json" && !essence.ends_with("+json") {
        return close(
            Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("wanted Content-Type: application/json, got {kind}"),
            )
            .field("Content-Type")
            .into_response(),
        );
    }
    require_length(State(limit), req, next).await
}

/// Asks the client to close: the body it may still be sending is not read.
fn close(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// Middleware: a body that sends nothing for `timeout` while it is read fails, and the
/// answer is 408 whatever the handler made of the failure.
pub async fn stall_timeout(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let fired = Arc::new(AtomicBool::new(false));
    let req = req.map(|b| {
        Body::new(StallTimeout {
            inner: b,
            timeout,
            sleep: None,
            fired: fired.clone(),
        })
    });
    let resp = next.run(req).await;
    if !fired.load(Ordering::Relaxed) {
        return resp;
    }
    close(
        Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body sent nothing for {timeout:?}; nothing of it was kept"),
        )
        .into_response(),
    )
}

/// A body that fails when no frame comes within `timeout` of being awaited.
struct StallTimeout {
    inner: Body,
    timeout: Duration,
    /// Armed while a read waits; dropped when a frame arrives.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    fired: Arc<AtomicBool>,
}

impl HttpBody for StallTimeout {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            self.sleep = None;
            return Poll::Ready(frame);
        }
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.fired.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the request body stalled",
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
