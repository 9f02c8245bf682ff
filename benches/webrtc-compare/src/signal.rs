//! Offer/answer between the client and the answerer: one TCP connection per request on
//! loopback, a verb line, a body up to the client's end of writing, the reply up to the
//! answerer's close.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `verb` and `body`, returns the reply.
pub async fn request(to: SocketAddr, verb: &str, body: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(to).await?;
    s.write_all(format!("{verb}\n{body}").as_bytes()).await?;
    s.shutdown().await?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).await?;
    Ok(reply)
}

/// Reads one request: its verb and body.
pub async fn read_request(s: &mut TcpStream) -> std::io::Result<(String, String)> {
    let mut all = String::new();
    s.read_to_string(&mut all).await?;
    let (verb, body) = all.split_once('\n').unwrap_or((&all, ""));
    Ok((verb.to_string(), body.to_string()))
}
