//! A minimal HTTP/1.1 client for webhook tasks: one `POST` of a JSON body per connection
//! (`Connection: close`), over plain TCP for `http://` URLs and over TLS (rustls, ring) for
//! `https://` ones. The server's certificate is always verified, against the Mozilla roots
//! (webpki-roots) plus an optional extra CA bundle (`flow.webhook_ca_file`); the server name
//! comes from the URL's host and is sent as SNI.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;

/// Why a delivery failed (or the client could not be built).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL is not one this client can use.
    #[error("{0}")]
    Url(String),
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
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
    /// The answer is not HTTP.
    #[error("the answer is not HTTP: {0:?}")]
    BadAnswer(String),
    /// The server answered with a status outside 2xx.
    #[error("the server answered {0}")]
    Status(u16),
    /// The extra CA bundle cannot be used.
    #[error("flow.webhook_ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

use crate::http_url::{split_url, Scheme};

/// Posts webhooks; cheap to clone (the TLS settings are shared).
#[derive(Clone)]
pub struct WebhookClient {
    tls: tokio_rustls::TlsConnector,
}

impl WebhookClient {
    /// A client trusting the Mozilla roots plus the certificates of `extra_ca` (a PEM file).
    pub fn new(extra_ca: Option<&Path>) -> Result<Self, WebhookError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = extra_ca {
            let bad = |reason: String| WebhookError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("holds no PEM certificate".into()));
            }
            for (i, cert) in certs.into_iter().enumerate() {
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("certificate {}: {e}", i + 1)))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WebhookError::CaFile {
                path: String::new(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// POSTs `body` as JSON to `url`; a 2xx status is success.
    pub async fn post_json(
        &self,
        url: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<u16, WebhookError> {
        let t = split_url(url).map_err(|e| WebhookError::Url(e.to_string()))?;
        let host_header = if t.host.contains(':') {
            format!("[{}]:{}", t.host, t.port)
        } else {
            format!("{}:{}", t.host, t.port)
        };
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: dialerd/{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            t.path,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port)).await?;
            match t.scheme {
                Scheme::Http => exchange(tcp, head.as_bytes(), body).await,
                Scheme::Https => {
                    let name = ServerName::try_from(t.host.clone()).map_err(|_| {
                        WebhookError::Url(format!("{:?} is not a valid TLS server name", t.host))
                    })?;
                    let tls = self
                        .tls
                        .connect(name, tcp)
                        .await
                        .map_err(|e| WebhookError::Tls {
                            host: t.host.clone(),
                            reason: e.to_string(),
                        })?;
                    exchange(tls, head.as_bytes(), body).await
                }
            }
        };
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| WebhookError::Timeout(timeout))??;
        status_of(&answer)
    }
}

/// Sends the request and reads until the status line is complete.
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    head: &[u8],
    body: &[u8],
) -> Result<Vec<u8>, WebhookError> {
    stream.write_all(head).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    let mut answer = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    Ok(answer)
}

/// The status of an HTTP answer: `Ok` for 2xx.
fn status_of(answer: &[u8]) -> Result<u16, WebhookError> {
    let line = String::from_utf8_lossy(answer);
    let line = line.lines().next().unwrap_or_default().to_string();
    let code: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|l| l.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| WebhookError::BadAnswer(line.clone()))?;
    if (200..300).contains(&code) {
        Ok(code)
    } else {
        Err(WebhookError::Status(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn posts_and_reads_the_status() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut got = Vec::new();
            for answer in [
                "HTTP/1.1 204 No Content\r\n\r\n",
                "HTTP/1.1 503 Busy\r\n\r\n",
            ] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let mut req = Vec::new();
                while !String::from_utf8_lossy(&req).contains("{\"a\":1}") {
                    let n = s.read(&mut buf).await.unwrap();
                    req.extend_from_slice(&buf[..n]);
                }
                s.write_all(answer.as_bytes()).await.unwrap();
                got.push(String::from_utf8(req).unwrap());
            }
            got
        });
        let client = WebhookClient::new(None).unwrap();
        let url = format!("http://{addr}/hook");
        let t = Duration::from_secs(5);
        assert_eq!(client.post_json(&url, b"{\"a\":1}", t).await.unwrap(), 204);
        let e = client.post_json(&url, b"{\"a\":1}", t).await.unwrap_err();
        assert!(matches!(e, WebhookError::Status(503)), "{e}");
        let got = server.await.unwrap();
        assert!(got[0].starts_with("POST /hook HTTP/1.1\r\n"), "{}", got[0]);
        assert!(got[0].contains("Content-Length: 7\r\n"), "{}", got[0]);
    }
}
