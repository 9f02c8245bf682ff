//! RTP reflector for the echo test route: every packet goes back where it came from.

use std::net::{IpAddr, SocketAddr};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// A running reflector; dropping it stops the task.
pub struct Echo {
    /// Local RTP address to put in the SDP answer.
    pub local: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Binds an RTP socket on `ip` (any port) and reflects packets until dropped. Needs a tokio
/// runtime; binding itself does not wait.
pub fn start(ip: IpAddr) -> std::io::Result<Echo> {
    let std_sock = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
    std_sock.set_nonblocking(true)?;
    let sock = UdpSocket::from_std(std_sock)?;
    let local = sock.local_addr()?;
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                r = sock.recv_from(&mut buf) => {
                    // Symmetric RTP: answer the address packets come from (NAT latching).
                    if let Ok((n, from)) = r {
                        let _ = sock.send_to(&buf[..n], from).await;
                    }
                }
            }
        }
    });
    Ok(Echo { local, stop })
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn packets_come_back_until_dropped() {
        let echo = super::start("127.0.0.1".parse().unwrap()).unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .unwrap();
        peer.send_to(b"\x80\x00\x00\x01rtp", echo.local).unwrap();
        let mut buf = [0u8; 64];
        let n = peer.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"\x80\x00\x00\x01rtp");
        let addr = echo.local;
        drop(echo);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        peer.send_to(b"again", addr).unwrap();
        assert!(
            peer.recv(&mut buf).is_err(),
            "reflector kept running after drop"
        );
    }
}
