//! The answering process: listens for offers on loopback and answers each with a leg of one
//! stack, which then sends PCMU every 20 ms and counts what it receives. It runs until killed.

use crate::signal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// What all legs of the answerer count.
#[derive(Default)]
pub struct Counters {
    /// Legs whose ICE and DTLS are up.
    pub connected: AtomicU64,
    /// RTP packets received from the offerers, decrypted.
    pub received: AtomicU64,
    /// RTP packets handed to the stack to send.
    pub sent: AtomicU64,
}

/// One 20 ms PCMU frame (silence, as μ-law 0xff).
pub const FRAME: [u8; 160] = [0xff; 160];
/// The packet interval.
pub const PTIME: Duration = Duration::from_millis(20);

/// The stacks compared.
pub enum Stack {
    Str0m(crate::answer_str0m::Shared),
    WebrtcRs(crate::answer_webrtc::Shared),
}

/// Runs the answerer for `stack` ("str0m" or "webrtc-rs"); prints `listening ADDR`.
pub fn main(stack: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stack = Arc::new(match stack {
            "str0m" => Stack::Str0m(crate::answer_str0m::Shared::new()),
            "webrtc-rs" => Stack::WebrtcRs(crate::answer_webrtc::Shared::new()),
            other => panic!("unknown stack {other}: str0m or webrtc-rs"),
        });
        let counters = Arc::new(Counters::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening {}", listener.local_addr().unwrap());
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let (stack, counters) = (stack.clone(), counters.clone());
            tokio::spawn(async move {
                let Ok((verb, body)) = signal::read_request(&mut s).await else {
                    return;
                };
                let reply = match verb.as_str() {
                    "OFFER" => match &*stack {
                        Stack::Str0m(sh) => crate::answer_str0m::accept(sh, &body, counters),
                        Stack::WebrtcRs(sh) => {
                            crate::answer_webrtc::accept(sh, &body, counters).await
                        }
                    }
                    .unwrap_or_else(|e| format!("ERROR {e}")),
                    "STATS" => format!(
                        "{} {} {}",
                        counters.connected.load(Ordering::Relaxed),
                        counters.received.load(Ordering::Relaxed),
                        counters.sent.load(Ordering::Relaxed)
                    ),
                    _ => "ERROR verb".to_string(),
                };
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
}
