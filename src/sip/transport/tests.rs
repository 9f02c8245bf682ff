use super::*;
use std::io::{Read, Write};

fn config() -> TransportConfig {
    TransportConfig {
        max_message_size: 2048,
        tcp_idle_timeout: Duration::from_secs(300),
        tcp_message_timeout: Duration::from_secs(10),
        tcp_max_connections: 64,
        tcp_max_connections_per_source: 64,
        tcp_refused: prometheus::IntCounterVec::new(
            prometheus::Opts::new("refused", "refused"),
            &["reason"],
        )
        .unwrap(),
        queue_bytes: 1 << 20,
    }
}

async fn bound(cfg: TransportConfig) -> (Transports, mpsc::Receiver<Inbound>, CancellationToken) {
    let (tx, rx) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let t = Transports::bind(&[addr], cfg, tx, stop.clone())
        .await
        .unwrap();
    (t, rx, stop)
}

const OPTIONS: &str = "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";

async fn next_message(rx: &mut mpsc::Receiver<Inbound>) -> (Vec<u8>, Peer) {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(Inbound::Message { bytes, peer, .. })) => (bytes, peer),
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_and_tcp_share_the_port() {
    let (t, _rx, _stop) = bound(config()).await;
    let addr = t.local_addrs()[0];
    assert_ne!(addr.port(), 0);
    assert!(std::net::TcpStream::connect(addr).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagram_in_and_out() {
    let (t, mut rx, _stop) = bound(config()).await;
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.send_to(b"\r\n\r\n", t.local_addrs()[0]).unwrap(); // keepalive: swallowed
    client
        .send_to(OPTIONS.as_bytes(), t.local_addrs()[0])
        .unwrap();
    let (bytes, peer) = next_message(&mut rx).await;
    assert_eq!(bytes, OPTIONS.as_bytes());
    assert_eq!(peer.addr, client.local_addr().unwrap());
    assert_eq!(peer.transport, Transport::Udp);

    t.send(peer, b"SIP/2.0 200 OK\r\n\r\n".to_vec()).unwrap();
    let mut buf = [0u8; 64];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"SIP/2.0 200 OK\r\n\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_datagram_is_dropped() {
    let (t, mut rx, _stop) = bound(config()).await;
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let big = format!("{OPTIONS}{}", "x".repeat(4000));
    client.send_to(big.as_bytes(), t.local_addrs()[0]).unwrap();
    client
        .send_to(OPTIONS.as_bytes(), t.local_addrs()[0])
        .unwrap();
    let (bytes, _) = next_message(&mut rx).await;
    assert_eq!(
        bytes,
        OPTIONS.as_bytes(),
        "the oversized one must not arrive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_frames_back_to_back_and_split_messages() {
    let (t, mut rx, _stop) = bound(config()).await;
    let mut s = std::net::TcpStream::connect(t.local_addrs()[0]).unwrap();
    let with_body = "MESSAGE sip:a@b SIP/2.0\r\nl: 5\r\n\r\nhello";
    s.write_all(format!("\r\n\r\n{OPTIONS}{with_body}").as_bytes())
        .unwrap();
    assert_eq!(next_message(&mut rx).await.0, OPTIONS.as_bytes());
    assert_eq!(next_message(&mut rx).await.0, with_body.as_bytes());
    let (a, b) = OPTIONS.split_at(20);
    s.write_all(a.as_bytes()).unwrap();
    s.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b.as_bytes()).unwrap();
    let (bytes, peer) = next_message(&mut rx).await;
    assert_eq!(bytes, OPTIONS.as_bytes());
    assert_eq!(peer.transport, Transport::Tcp);

    // Replies go back on the same connection.
    t.send(
        peer,
        b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_oversized_message_closes_the_connection() {
    let (t, mut rx, _stop) = bound(config()).await;
    let mut s = std::net::TcpStream::connect(t.local_addrs()[0]).unwrap();
    s.write_all(
        format!(
            "INVITE sip:a@b SIP/2.0\r\nContent-Length: 100000\r\n\r\n{}",
            "x".repeat(3000)
        )
        .as_bytes(),
    )
    .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(Inbound::FramingError { reason, .. })) => {
            assert!(reason.contains("larger"), "{reason}")
        }
        other => panic!("expected a framing error, got {other:?}"),
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        matches!(s.read(&mut buf), Ok(0) | Err(_)),
        "connection should be closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_outbound_connects_on_demand_and_reports_refused() {
    let (t, mut rx, _stop) = bound(config()).await;
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = Peer {
        addr: server.local_addr().unwrap(),
        transport: Transport::Tcp,
    };
    t.send(peer, OPTIONS.as_bytes().to_vec()).unwrap();
    t.send(peer, OPTIONS.as_bytes().to_vec()).unwrap();
    let (mut conn, _) = server.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 * OPTIONS.len() {
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        got,
        format!("{OPTIONS}{OPTIONS}").as_bytes(),
        "one connection, both messages in order"
    );

    drop(server);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = Peer {
        addr: closed.local_addr().unwrap(),
        transport: Transport::Tcp,
    };
    drop(closed);
    t.send(dead, b"x".to_vec()).unwrap();
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(Inbound::SendFailed { peer, bytes })) => {
            assert_eq!(peer, dead);
            assert_eq!(bytes, b"x");
        }
        other => panic!("expected SendFailed, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn idle_tcp_connection_is_closed() {
    let cfg = TransportConfig {
        tcp_idle_timeout: Duration::from_secs(30),
        ..config()
    };
    let (t, _rx, _stop) = bound(cfg).await;
    let mut s = tokio::net::TcpStream::connect(t.local_addrs()[0])
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let mut buf = [0u8; 8];
    use tokio::io::AsyncReadExt;
    let n = s.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0);
    assert!(start.elapsed() >= Duration::from_secs(30));
    assert_eq!(t.tcp_connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_failure_names_the_address() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let err = Transports::bind(&[addr], config(), tx, CancellationToken::new())
        .await
        .err()
        .expect("bind should fail")
        .to_string();
    assert!(
        err.contains(&addr.to_string()) && err.contains("sip.listen"),
        "{err}"
    );
}

/// Writes `bytes` one at a time every `every` until the connection closes; how long it lasted.
async fn trickle_until_closed(
    s: &mut tokio::net::TcpStream,
    bytes: &[u8],
    every: Duration,
) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let start = tokio::time::Instant::now();
    let mut buf = [0u8; 16];
    for b in bytes.iter().cycle() {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        match tokio::time::timeout(every, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            _ => {}
        }
        if start.elapsed() > Duration::from_secs(3600) {
            panic!("never closed");
        }
    }
    start.elapsed()
}

const PARTIAL: &[u8] =
    b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKx\r\n";

#[tokio::test(start_paused = true)]
async fn a_trickled_message_is_cut_at_the_message_deadline() {
    let cfg = TransportConfig {
        tcp_idle_timeout: Duration::from_secs(300),
        tcp_message_timeout: Duration::from_secs(10),
        ..config()
    };
    let (t, _rx, _stop) = bound(cfg).await;
    let mut s = tokio::net::TcpStream::connect(t.local_addrs()[0])
        .await
        .unwrap();
    let open = trickle_until_closed(&mut s, PARTIAL, Duration::from_secs(1)).await;
    assert!(
        (Duration::from_secs(10)..Duration::from_secs(12)).contains(&open),
        "{open:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn only_whole_messages_restart_the_idle_timer() {
    let cfg = TransportConfig {
        tcp_idle_timeout: Duration::from_secs(30),
        tcp_message_timeout: Duration::from_secs(600),
        ..config()
    };
    let (t, _rx, _stop) = bound(cfg).await;
    let mut s = tokio::net::TcpStream::connect(t.local_addrs()[0])
        .await
        .unwrap();
    let open = trickle_until_closed(&mut s, PARTIAL, Duration::from_secs(1)).await;
    assert!(
        (Duration::from_secs(30)..Duration::from_secs(32)).contains(&open),
        "{open:?}"
    );
}

#[tokio::test]
async fn inbound_connections_over_the_per_source_cap_are_closed() {
    let cfg = TransportConfig {
        tcp_max_connections: 10,
        tcp_max_connections_per_source: 2,
        ..config()
    };
    let refused = cfg.tcp_refused.clone();
    let (t, _rx, _stop) = bound(cfg).await;
    let addr = t.local_addrs()[0];
    let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("the third connection was kept open")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(refused.with_label_values(&["per_source"]).get(), 1);
    assert_eq!(t.tcp_inbound_connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_beyond_the_byte_budget_are_dropped_until_the_endpoint_catches_up() {
    let cfg = TransportConfig {
        queue_bytes: 10_000,
        ..config()
    };
    let (t, mut rx, _stop) = bound(cfg).await;
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let big = format!("{OPTIONS}{}", "x".repeat(1500 - OPTIONS.len()));
    for _ in 0..20 {
        client.send_to(big.as_bytes(), t.local_addrs()[0]).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Six of 1,500 bytes fit in 10,000; the rest were dropped, not queued.
    let mut held = Vec::new();
    while let Ok(m) = rx.try_recv() {
        held.push(m);
    }
    assert_eq!(held.len(), 6);
    // Handled messages give their bytes back: the next datagram is queued again.
    drop(held);
    client
        .send_to(OPTIONS.as_bytes(), t.local_addrs()[0])
        .unwrap();
    let (bytes, _) = next_message(&mut rx).await;
    assert_eq!(bytes, OPTIONS.as_bytes());
}

#[test]
fn via_alias_goes_on_the_top_via_of_requests_only() {
    let req = b"OPTIONS sip:carrier.test SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK1;rport, SIP/2.0/TLS 192.0.2.9;branch=z9hG4bK0\r\nVia: SIP/2.0/TLS 192.0.2.8;branch=z9hG4bK2\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let out = String::from_utf8(super::via_alias(req.to_vec())).unwrap();
    assert!(
        out.contains("Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK1;rport;alias, SIP/2.0/TLS 192.0.2.9;branch=z9hG4bK0\r\n"),
        "{out}"
    );
    assert_eq!(out.matches("alias").count(), 1);
    // Already there, a compact header, a response, no Via at all.
    let once = super::via_alias(out.clone().into_bytes());
    assert_eq!(String::from_utf8(once).unwrap(), out);
    let compact = b"BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK3\r\n\r\n";
    assert!(String::from_utf8(super::via_alias(compact.to_vec()))
        .unwrap()
        .contains("v: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK3;alias\r\n"));
    let resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK4\r\n\r\n".to_vec();
    assert_eq!(super::via_alias(resp.clone()), resp);
    let bare = b"OPTIONS sip:a SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\nVia: in the body".to_vec();
    assert_eq!(super::via_alias(bare.clone()), bare);
}
