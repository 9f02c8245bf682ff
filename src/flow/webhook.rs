//! A minimal HTTP/1.1 client for webhook tasks: one `POST` of a JSON body per connection over
//! a plain TCP stream (`Connection: close`). Only `http://` URLs: `https://` is refused with a
//! clear error until a TLS client is in the tree.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL is not one this client can use.
    #[error("{0}")]
    Url(String),
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer is not HTTP.
    #[error("the answer is not HTTP: {0:?}")]
    BadAnswer(String),
    /// The server answered with a status outside 2xx.
    #[error("the server answered {0}")]
    Status(u16),
}

/// Host, port and path of an `http://` URL.
pub fn split_url(url: &str) -> Result<(String, u16, String), WebhookError> {
    if url.starts_with("https://") {
        return Err(WebhookError::Url(
            "https:// webhooks are not supported yet; use an http:// URL (e.g. a local relay)"
                .into(),
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| WebhookError::Url(format!("{url:?} is not an http:// URL")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h,
            p.parse()
                .map_err(|_| WebhookError::Url(format!("bad port in {url:?}")))?,
        ),
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(WebhookError::Url(format!("no host in {url:?}")));
    }
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        path.to_string(),
    ))
}

/// POSTs `body` as JSON to `url`; a 2xx status is success.
pub async fn post_json(url: &str, body: &[u8], timeout: Duration) -> Result<u16, WebhookError> {
    let (host, port, path) = split_url(url)?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: dialerd/{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        // The status line is all that matters; read until it is complete.
        let mut answer = Vec::with_capacity(256);
        let mut buf = [0u8; 1024];
        while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < 8192 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        Ok::<_, WebhookError>(answer)
    };
    let answer = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| WebhookError::Timeout(timeout))??;
    let line = String::from_utf8_lossy(&answer);
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
    fn urls_split_and_https_is_refused_clearly() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/hook?a=1").unwrap(),
            ("127.0.0.1".into(), 8080, "/hook?a=1".into())
        );
        assert_eq!(
            split_url("http://example.com").unwrap(),
            ("example.com".into(), 80, "/".into())
        );
        assert_eq!(
            split_url("http://[::1]:81/x").unwrap(),
            ("::1".into(), 81, "/x".into())
        );
        let e = split_url("https://example.com/").unwrap_err().to_string();
        assert!(e.contains("https:// webhooks are not supported"), "{e}");
        assert!(split_url("http://h:port/").is_err());
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
        let url = format!("http://{addr}/hook");
        let t = Duration::from_secs(5);
        assert_eq!(post_json(&url, b"{\"a\":1}", t).await.unwrap(), 204);
        let e = post_json(&url, b"{\"a\":1}", t).await.unwrap_err();
        assert!(matches!(e, WebhookError::Status(503)), "{e}");
        let got = server.await.unwrap();
        assert!(got[0].starts_with("POST /hook HTTP/1.1\r\n"), "{}", got[0]);
        assert!(got[0].contains("Content-Length: 7\r\n"), "{}", got[0]);
    }
}
