//! The admin listener's accept loop: hyper's HTTP/1 connection with a timer, so a client
//! that trickles its request head (slowloris) or sits idle is cut off after
//! `http.header_read_timeout`, a cap on connections served at once, and a bounded read
//! buffer; `axum::serve` offers none of these.

use super::ApiError;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Largest request head (and read buffer) a connection may hold.
const MAX_BUF: usize = 64 * 1024;

/// What answers a connection beyond the cap before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Length: 0\r\nConnection: close\r\n\r\n";

/// Connection limits of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// A request head must have arrived this long after it was awaited.
    pub header_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl From<&crate::config::HttpConfig> for ConnLimits {
    fn from(c: &crate::config::HttpConfig) -> Self {
        Self {
            header_read_timeout: c.header_read_timeout,
            max_connections: c.max_connections,
        }
    }
}

/// Serves until `stop` resolves, then finishes requests in flight; idle connections close.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let conns = TaskTracker::new();
    let stopping = CancellationToken::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Best effort: a full socket buffer just means the client sees the close.
            let _ = stream.try_write(BUSY);
            tracing::debug!(%peer, "http connection refused: http.max_connections reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let stopping = stopping.clone();
        conns.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(MAX_BUF)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let done = tokio::select! {
                done = conn.as_mut() => done,
                () = stopping.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = done {
                tracing::debug!(%peer, error = %e, "http connection ended");
            }
        });
    }
    stopping.cancel();
    conns.close();
    conns.wait().await;
    Ok(())
}
