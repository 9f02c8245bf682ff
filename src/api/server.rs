//! The admin listener's accept loop: hyper's HTTP/1 connection with a timer, so a client
//! that trickles its request head (slowloris) or sits idle is cut off after
//! `http.header_read_timeout`, a cap on connections served at once, and a bounded read
//! buffer; `axum::serve` offers none of these. It runs on a runtime of its own, one thread at
//! a lower CPU priority (and so are the blocking threads where passwords are hashed), so a
//! flood of HTTP requests cannot delay SIP and media work on the main runtime. With
//! [`HttpTls`] it speaks HTTPS (rustls; the handshake must end within the header timeout).

use super::ApiError;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::{rustls, TlsAcceptor};
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

/// The listener's certificate: HTTPS when set, replaced by [`HttpTls::reload`].
pub struct HttpTls {
    config: RwLock<Arc<rustls::ServerConfig>>,
}

impl HttpTls {
    /// HTTPS with the certificate chain and key of these PEM files.
    pub fn new(cert: &Path, key: &Path) -> Result<Self, crate::tls::TlsError> {
        Ok(Self {
            config: RwLock::new(Self::load(cert, key)?),
        })
    }

    /// Reads the files again; new connections get the new certificate. On error the old one
    /// stays.
    pub fn reload(&self, cert: &Path, key: &Path) -> Result<(), crate::tls::TlsError> {
        let fresh = Self::load(cert, key)?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    fn load(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, crate::tls::TlsError> {
        let mut config = crate::tls::server_config(cert, key)?;
        // hyper serves HTTP/1.1 here (the WebSockets upgrade from it).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.config
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Nice value of the HTTP threads: SIP and media (nice 0) win the CPU when both want it.
const HTTP_NICE: libc::c_int = 10;

/// Lowers the calling thread's CPU priority to `HTTP_NICE`.
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread's own id.
    let done = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, HTTP_NICE)
    };
    if done != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the HTTP thread's priority");
    }
}

/// Serves `router` on a thread and runtime of their own (see the module docs) until `stop`
/// resolves; the receiver gets the outcome once requests in flight have finished.
pub fn spawn(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    tls: Option<Arc<HttpTls>>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::sync::oneshot::Receiver<Result<(), ApiError>>, ApiError> {
    let listener = listener.into_std().map_err(ApiError::Runtime)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("dialerd-http")
        .on_thread_start(lower_priority)
        .build()
        .map_err(ApiError::Runtime)?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("dialerd-http".into())
        .spawn(move || {
            lower_priority();
            let done = runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).map_err(ApiError::Runtime)?;
                serve(listener, router, limits, tls, stop).await
            });
            let _ = done_tx.send(done);
        })
        .map_err(ApiError::Runtime)?;
    Ok(done_rx)
}

/// Serves until `stop` resolves, then finishes requests in flight; idle connections close.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    tls: Option<Arc<HttpTls>>,
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
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        conns.spawn(async move {
            let _permit = permit;
            let Some(acceptor) = acceptor else {
                return serve_connection(stream, peer, router, limits, stopping).await;
            };
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_connection(tls, peer, router, limits, stopping).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "https handshake failed"),
                Err(_) => tracing::debug!(%peer, "https handshake timed out"),
            }
        });
    }
    stopping.cancel();
    conns.close();
    conns.wait().await;
    Ok(())
}

/// Serves one connection (plain or TLS) until it ends, or gracefully once `stopping`.
async fn serve_connection<S>(
    stream: S,
    peer: std::net::SocketAddr,
    router: Router,
    limits: ConnLimits,
    stopping: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_BUF)
        .serve_connection(TokioIo::new(stream), service)
        // The agents' event WebSockets take the connection over.
        .with_upgrades();
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
}
