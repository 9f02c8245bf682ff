//! A minimal WebSocket client for the daemon's event streams.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A minimal WebSocket client: the handshake, then server text frames as JSON.
pub struct Ws(TcpStream);

impl Ws {
    /// Opens `path`; on a refused upgrade, the HTTP status.
    pub fn open(addr: SocketAddr, path: &str) -> Result<Ws, u16> {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head);
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        if status != 101 {
            return Err(status);
        }
        assert!(
            head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "no RFC 6455 accept key: {head}"
        );
        Ok(Ws(s))
    }

    /// The next text message, as JSON.
    pub fn next(&mut self) -> Value {
        loop {
            let mut h = [0u8; 2];
            self.0.read_exact(&mut h).expect("a WebSocket frame");
            let op = h[0] & 0x0f;
            let len = match h[1] & 0x7f {
                126 => {
                    let mut l = [0u8; 2];
                    self.0.read_exact(&mut l).unwrap();
                    u64::from(u16::from_be_bytes(l))
                }
                127 => {
                    let mut l = [0u8; 8];
                    self.0.read_exact(&mut l).unwrap();
                    u64::from_be_bytes(l)
                }
                n => u64::from(n),
            };
            assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
            let mut payload = vec![0u8; len as usize];
            self.0.read_exact(&mut payload).unwrap();
            match op {
                1 => return serde_json::from_slice(&payload).unwrap(),
                8 => panic!("closed: {}", String::from_utf8_lossy(&payload)),
                _ => {} // ping, pong
            }
        }
    }
}
