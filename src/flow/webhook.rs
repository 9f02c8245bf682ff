//! The webhook client: hyper's pooled HTTP/1.1 client (`hyper-util` legacy `Client`) over
//! `hyper-rustls` (rustls, ring). Connections are kept alive and reused per host. The
//! server's certificate is always verified, against the Mozilla roots (webpki-roots) plus an
//! optional extra CA bundle (`flow.webhook_ca_file`); the server name comes from the URL's
//! host and is sent as SNI. Proxies come from `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` /
//! `NO_PROXY` (as curl reads them): `https://` URLs go through a `CONNECT` tunnel, `http://`
//! ones are sent to the proxy in absolute form. Redirects are not followed: a 3xx is a failed
//! delivery naming its `Location`, because re-posting a contact to a URL nobody configured is
//! not ours to decide. The first KiB of every answer's body is kept for the history.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::http::{header, uri, Request, Uri};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::error::Error as StdError;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tower::ServiceExt;

use crate::http_url::split_url;

/// How much of an answer's body is kept for the contact's history.
pub const BODY_EXCERPT: usize = 1024;
/// How much of a longer body is still read (and dropped) so that the connection can be
/// reused; past that the connection is closed instead.
const BODY_DRAIN: usize = 64 * 1024;
/// How long an idle connection stays in the pool.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Why a delivery failed (or the client could not be built).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL is not one this client can use.
    #[error("{0}")]
    Url(String),
    /// Connecting (directly or through the proxy), sending or reading failed.
    #[error("{0}")]
    Http(String),
    /// The TLS handshake failed (an untrusted or mismatched certificate, no common protocol).
    #[error("TLS with {host} failed: {reason}")]
    Tls {
        /// Host named by the URL.
        host: String,
        /// What rustls said.
        reason: String,
    },
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server answered with a redirection, which is not followed.
    #[error("the server answered {code}, a redirect to {location:?}, which is not followed; body: {body:?}")]
    Redirect {
        /// The 3xx status.
        code: u16,
        /// The `Location` header, empty when missing.
        location: String,
        /// The start of the body.
        body: String,
    },
    /// The server answered with a status outside 2xx and 3xx.
    #[error("the server answered {code}; body: {body:?}")]
    Status {
        /// The status.
        code: u16,
        /// The start of the body.
        body: String,
    },
    /// The extra CA bundle cannot be used.
    #[error("flow.webhook_ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A delivered webhook: a 2xx status and the start of the answer's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub code: u16,
    /// The first [`BODY_EXCERPT`] bytes of the body (lossy UTF-8).
    pub body: String,
}

type Connector = hyper_rustls::HttpsConnector<ProxyConnector>;

/// Posts webhooks; cheap to clone (the pool and the TLS settings are shared).
#[derive(Clone)]
pub struct WebhookClient {
    client: Client<Connector, Full<Bytes>>,
    proxies: Arc<Matcher>,
}

impl WebhookClient {
    /// A client trusting the Mozilla roots plus the certificates of `extra_ca` (a PEM file),
    /// using the proxies named in the environment.
    pub fn new(extra_ca: Option<&Path>) -> Result<Self, WebhookError> {
        Self::with_proxies(extra_ca, Matcher::from_env())
    }

    /// A client like [`WebhookClient::new`] with the given proxy rules.
    pub fn with_proxies(extra_ca: Option<&Path>, proxies: Matcher) -> Result<Self, WebhookError> {
        let tls = crate::tls::client_config(extra_ca).map_err(|e| match e {
            crate::tls::TlsError::File { path, reason } => WebhookError::CaFile { path, reason },
            other => WebhookError::CaFile {
                path: String::new(),
                reason: other.to_string(),
            },
        })?;
        let mut http = HttpConnector::new();
        // The TLS layer hands https:// destinations down to this connector.
        http.enforce_http(false);
        let proxies = Arc::new(proxies);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(ProxyConnector {
                http,
                proxies: proxies.clone(),
            });
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            // Some small servers only know the header names as the RFCs spell them.
            .http1_title_case_headers(true)
            .build(connector);
        Ok(Self { client, proxies })
    }

    /// POSTs `body` as JSON to `url`; a 2xx status is success, anything else (a redirect
    /// too) a failure carrying the start of the answer.
    pub async fn post_json(
        &self,
        url: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Answer, WebhookError> {
        let target = split_url(url).map_err(|e| WebhookError::Url(e.to_string()))?;
        let uri: Uri = target
            .uri()
            .parse()
            .map_err(|e| WebhookError::Url(format!("{url:?}: {e}")))?;
        let mut request = Request::post(uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("dialerd/", env!("CARGO_PKG_VERSION")),
            );
        if uri.scheme() == Some(&uri::Scheme::HTTP) {
            // A CONNECT tunnel carries its own credentials; a plain proxy needs them here.
            if let Some(auth) = self
                .proxies
                .intercept(&uri)
                .and_then(|p| p.basic_auth().cloned())
            {
                request = request.header(header::PROXY_AUTHORIZATION, auth);
            }
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| WebhookError::Url(format!("{url:?}: {e}")))?;
        let exchange = async {
            let answer = self
                .client
                .request(request)
                .await
                .map_err(|e| match tls_reason(&e) {
                    Some(reason) => WebhookError::Tls {
                        host: target.host.clone(),
                        reason,
                    },
                    None => WebhookError::Http(chain(&e)),
                })?;
            let code = answer.status().as_u16();
            let location = answer
                .headers()
                .get(header::LOCATION)
                .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
                .unwrap_or_default();
            let body = excerpt(answer.into_body())
                .await
                .map_err(|e| WebhookError::Http(chain(&e)))?;
            Ok((code, location, body))
        };
        let (code, location, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| WebhookError::Timeout(timeout))??;
        match code {
            200..=299 => Ok(Answer { code, body }),
            300..=399 => Err(WebhookError::Redirect {
                code,
                location,
                body,
            }),
            _ => Err(WebhookError::Status { code, body }),
        }
    }
}

/// The first [`BODY_EXCERPT`] bytes of `body`, cut at a character boundary. The rest is read
/// up to [`BODY_DRAIN`] so that the connection goes back to the pool.
async fn excerpt(mut body: Incoming) -> Result<String, hyper::Error> {
    let mut kept = Vec::new();
    let mut seen = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            seen += data.len();
            let room = BODY_EXCERPT.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..room.min(data.len())]);
        }
        if seen > BODY_DRAIN {
            break;
        }
    }
    Ok(match std::str::from_utf8(&kept) {
        Ok(s) => s.to_string(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&kept[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(&kept).into_owned(),
    })
}

/// An error and its causes, `: `-separated, each said once.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// What rustls said, when a TLS failure is among the causes of `e`.
fn tls_reason(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(reason) = tls_reason(inner) {
                return Some(reason);
            }
        }
        cur = err.source();
    }
    None
}

/// Opens TCP connections, directly or through the proxy the rules name for the destination.
#[derive(Clone)]
struct ProxyConnector {
    http: HttpConnector,
    proxies: Arc<Matcher>,
}

impl tower::Service<Uri> for ProxyConnector {
    type Response = ProxiedStream;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<ProxiedStream, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let http = self.http.clone();
        let proxy = self.proxies.intercept(&dst);
        Box::pin(async move {
            let (io, proxied) = match proxy {
                None => (http.oneshot(dst).await?, false),
                // The connection to the proxy itself is plain TCP: no TLS, no SOCKS.
                Some(p) if p.uri().scheme() != Some(&uri::Scheme::HTTP) => {
                    return Err(
                        format!("proxy {}: only http:// proxies are supported", p.uri()).into(),
                    )
                }
                Some(p) if dst.scheme() == Some(&uri::Scheme::HTTPS) => {
                    let mut tunnel = Tunnel::new(p.uri().clone(), http);
                    if let Some(auth) = p.basic_auth() {
                        tunnel = tunnel.with_auth(auth.clone());
                    }
                    let io = tunnel
                        .oneshot(dst)
                        .await
                        .map_err(|e| format!("CONNECT through the proxy {}: {e}", p.uri()))?;
                    (io, false)
                }
                Some(p) => (http.oneshot(p.uri().clone()).await?, true),
            };
            Ok(ProxiedStream { io, proxied })
        })
    }
}

/// A TCP stream that says whether it goes to a plain HTTP proxy (then hyper writes the
/// request target in absolute form).
struct ProxiedStream {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for ProxiedStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for ProxiedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for ProxiedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = WebhookClient::new(Some(&path)).err().unwrap().to_string();
        assert!(
            e.contains("flow.webhook_ca_file") && e.contains("no PEM"),
            "{e}"
        );
        let e = WebhookClient::new(Some(&dir.path().join("none.pem")))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("none.pem"), "{e}");
    }

    /// Reads one request (head and `Content-Length` body) from `s`; `None` at end of stream.
    async fn read_request(s: &mut tokio::net::TcpStream) -> Option<String> {
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&req).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    return Some(text);
                }
            }
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            req.extend_from_slice(&buf[..n]);
        }
    }

    /// Requests seen by [`server`], one list per connection.
    type Seen = Arc<std::sync::Mutex<Vec<Vec<String>>>>;

    /// A server answering requests, on any connection, with `answers` in turn.
    async fn server(answers: Vec<String>) -> (std::net::SocketAddr, Seen) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answers = Arc::new(std::sync::Mutex::new(answers.into_iter()));
        let seen = Seen::default();
        let conns = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let i = {
                    let mut conns = conns.lock().unwrap();
                    conns.push(Vec::new());
                    conns.len() - 1
                };
                let (answers, conns) = (answers.clone(), conns.clone());
                tokio::spawn(async move {
                    while let Some(req) = read_request(&mut s).await {
                        conns.lock().unwrap()[i].push(req);
                        let next = answers.lock().unwrap().next();
                        let Some(a) = next else { break };
                        s.write_all(a.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        (addr, seen)
    }

    fn answer(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn posts_on_one_kept_alive_connection_and_keeps_the_start_of_each_answer() {
        let long = format!("x{}", "é".repeat(600));
        let (addr, server) = server(vec![
            answer("204 No Content", "", ""),
            answer("503 Busy", "", "try later"),
            answer("200 OK", "", &long),
            answer(
                "302 Found",
                "Location: http://elsewhere.example/\r\n",
                "moved",
            ),
        ])
        .await;
        let client = WebhookClient::with_proxies(None, Matcher::builder().build()).unwrap();
        let url = format!("http://{addr}/hook?a=1");
        let t = Duration::from_secs(5);
        let got = client.post_json(&url, b"{\"a\":1}", t).await.unwrap();
        assert_eq!(
            got,
            Answer {
                code: 204,
                body: String::new()
            }
        );
        let e = client.post_json(&url, b"{\"a\":1}", t).await.unwrap_err();
        assert!(
            matches!(&e, WebhookError::Status { code: 503, body } if body == "try later"),
            "{e}"
        );
        let got = client.post_json(&url, b"{}", t).await.unwrap();
        // The KiB ends inside the 512th "é": the half character is left out.
        assert_eq!((got.code, got.body), (200, format!("x{}", "é".repeat(511))));
        let e = client.post_json(&url, b"{}", t).await.unwrap_err();
        assert!(
            matches!(&e, WebhookError::Redirect { code: 302, location, body }
                if location == "http://elsewhere.example/" && body == "moved"),
            "{e}"
        );
        let conns = server.lock().unwrap().clone();
        assert_eq!(conns.len(), 1, "one connection for all: {conns:?}");
        let reqs = &conns[0];
        assert_eq!(reqs.len(), 4, "{reqs:?}");
        assert!(
            reqs[0].starts_with("POST /hook?a=1 HTTP/1.1\r\n"),
            "{}",
            reqs[0]
        );
        assert!(reqs[0].contains("Content-Length: 7\r\n"), "{}", reqs[0]);
        assert!(
            reqs[0].contains("Content-Type: application/json\r\n"),
            "{}",
            reqs[0]
        );
        assert!(
            reqs[0].contains(&format!("Host: {addr}\r\n")),
            "{}",
            reqs[0]
        );
    }

    #[tokio::test]
    async fn http_urls_go_to_the_proxy_in_absolute_form_and_https_ones_through_connect() {
        let (proxy, seen) = server(vec![
            answer("200 OK", "", "via proxy"),
            answer("403 Forbidden", "", ""),
        ])
        .await;
        let rules = Matcher::builder()
            .http(format!("http://user:secret@{proxy}"))
            .https(format!("http://{proxy}"))
            .no("no-proxy.example")
            .build();
        let client = WebhookClient::with_proxies(None, rules).unwrap();
        let t = Duration::from_secs(5);
        let got = client
            .post_json("http://crm.example:8080/in", b"{}", t)
            .await
            .unwrap();
        assert_eq!(got.body, "via proxy");
        let e = client
            .post_json("https://crm.example/in", b"{}", t)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("CONNECT through the proxy"), "{e}");
        let conns = seen.lock().unwrap().clone();
        assert_eq!(conns.len(), 2, "{conns:?}");
        let plain = &conns[0][0];
        assert!(
            plain.starts_with("POST http://crm.example:8080/in HTTP/1.1\r\n"),
            "{plain}"
        );
        // "user:secret" in Base64.
        assert!(
            plain.contains("Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\n"),
            "{plain}"
        );
        let tunnel = &conns[1][0];
        assert!(
            tunnel.starts_with("CONNECT crm.example:443 HTTP/1.1\r\n"),
            "{tunnel}"
        );
    }

    #[tokio::test]
    async fn proxies_other_than_plain_http_are_refused() {
        for proxy in ["socks5://127.0.0.1:1080", "https://127.0.0.1:3128"] {
            let rules = Matcher::builder().https(proxy).build();
            let client = WebhookClient::with_proxies(None, rules).unwrap();
            let e = client
                .post_json("https://crm.example/in", b"{}", Duration::from_secs(5))
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("only http:// proxies"), "{proxy}: {e}");
        }
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let client = WebhookClient::with_proxies(None, Matcher::builder().build()).unwrap();
        let e = client
            .post_json(
                &format!("http://{addr}/"),
                b"{}",
                Duration::from_millis(300),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, WebhookError::Timeout(_)), "{e}");
    }
}
