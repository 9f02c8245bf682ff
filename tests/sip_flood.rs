//! Floods and forged sources against the real daemon: stateless refusals of untrusted INVITEs
//! (no reflection), trunk trust by address and port, the shipped config's test routes, TCP
//! connection caps and message deadlines, stateless OPTIONS, the per-source rate limit and
//! the cap on server transactions with a call in progress.

mod common;

use common::ua::TestUa;
use common::{metric, status_of, Daemon};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// An INVITE to `number` as a UDP client on `from` would send it.
fn invite(number: &str, from: SocketAddr, branch: &str) -> Vec<u8> {
    format!(
        "INVITE sip:{number}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:scan@{from}>;tag=s1\r\nTo: <sip:{number}@127.0.0.1>\r\n\
         Call-ID: {branch}@flood\r\nCSeq: 1 INVITE\r\nContact: <sip:scan@{from}>\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A REGISTER as a UDP client on `from` would send it.
fn register(from: SocketAddr, branch: &str) -> Vec<u8> {
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:nobody@127.0.0.1>;tag=r1\r\nTo: <sip:nobody@127.0.0.1>\r\n\
         Call-ID: {branch}@flood\r\nCSeq: 1 REGISTER\r\nContact: <sip:nobody@{from}>\r\nExpires: 60\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn udp(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{ip}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s
}

/// Every datagram `sock` receives until `until`.
fn collect(sock: &UdpSocket, until: Instant) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < until {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

/// The first final response `sock` receives within 5 s.
fn final_answer(sock: &UdpSocket) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if status_of(&text) >= 200 {
                return text;
            }
        }
    }
    panic!("no final answer within 5 s");
}

fn metric_of(d: &Daemon, series: &str) -> f64 {
    metric(&d.get("/metrics").1, series).unwrap_or(0.0)
}

/// Polls `series` until it reaches `want`, within 5 s.
fn wait_metric(d: &Daemon, series: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = metric_of(d, series);
        if v == want {
            return;
        }
        assert!(Instant::now() < deadline, "{series} is {v}, wanted {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_invite_from_a_stranger_gets_one_403_and_nothing_else() {
    // T1 = 20 ms: a transaction would retransmit its 403 within the 64×T1 = 1.28 s watched.
    let d = Daemon::start(
        "[sip]\nt1 = \"20ms\"\nt2 = \"40ms\"\n[[trunks]]\nname = \"far\"\nhost = \"192.0.2.1\"\nkeepalive = \"0s\"\n",
    );
    let scanner = udp("127.0.0.1");
    let from = scanner.local_addr().unwrap();
    scanner
        .send_to(&invite("100", from, "scan1"), d.sip)
        .unwrap();
    let got = collect(&scanner, Instant::now() + Duration::from_millis(1500));
    let codes: Vec<u16> = got.iter().map(|m| status_of(m)).collect();
    assert_eq!(
        codes,
        vec![403],
        "one 403, no 100 Trying, no retransmission"
    );
    assert_eq!(
        metric_of(&d, "dialerd_sip_transactions_active"),
        0.0,
        "no transaction state kept for the refusal"
    );
}

#[test]
fn a_trunk_is_its_address_and_port_unless_inbound_from_widens_it() {
    let carrier = udp("127.0.0.1");
    let port = carrier.local_addr().unwrap().port();
    let d = Daemon::start(&format!(
        "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {port}\nkeepalive = \"0s\"\n\
         [[trunks]]\nname = \"office\"\nhost = \"192.0.2.1\"\nkeepalive = \"0s\"\ninbound_from = [\"127.0.0.2\"]\n"
    ));
    // From the trunk's own port the call is routed (no route for this number: 404).
    let from = carrier.local_addr().unwrap();
    carrier.send_to(&invite("555", from, "t1"), d.sip).unwrap();
    assert_eq!(status_of(&final_answer(&carrier)), 404);
    // The trunk's address from another port is a stranger.
    let other = udp("127.0.0.1");
    let from = other.local_addr().unwrap();
    other.send_to(&invite("555", from, "t2"), d.sip).unwrap();
    assert_eq!(status_of(&final_answer(&other)), 403);
    // An inbound_from network takes any port.
    let office = udp("127.0.0.2");
    let from = office.local_addr().unwrap();
    office.send_to(&invite("555", from, "t3"), d.sip).unwrap();
    assert_eq!(status_of(&final_answer(&office)), 404);
}

#[test]
fn the_shipped_config_has_no_relay_route() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/dialerd.toml")).unwrap();
    let d = Daemon::start(&shipped);
    // 127.0.0.1 is the loopback trunk's (inbound_from), so this INVITE is routed: "9" + a
    // number is no route at all, not a call out through the trunk.
    let caller = udp("127.0.0.1");
    let from = caller.local_addr().unwrap();
    caller
        .send_to(&invite("94915112345678", from, "r1"), d.sip)
        .unwrap();
    assert_eq!(status_of(&final_answer(&caller)), 404);
}

/// A TCP connection to the daemon from `ip`.
fn tcp_from(ip: &str, to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{ip}:0").parse().unwrap();
    sock.bind(&local.into()).unwrap();
    sock.connect(&to.into()).unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// An OPTIONS over `s` is answered 200.
fn options_over(s: &mut TcpStream, branch: &str) -> bool {
    let local = s.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:dialerd@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:p@127.0.0.1>;tag=p1\r\nTo: <sip:dialerd@127.0.0.1>\r\n\
         Call-ID: {branch}@tcp\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    if s.write_all(msg.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    match s.read(&mut buf) {
        Ok(n) if n > 0 => String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200"),
        _ => false,
    }
}

/// True when the daemon closes `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn tcp_connections_over_the_caps_are_closed_and_the_rest_keep_working() {
    let d = Daemon::start("[sip]\ntcp_max_connections = 5\ntcp_max_connections_per_source = 2\n");
    let mut kept = Vec::new();
    let open = |ip: &str, kept: &mut Vec<TcpStream>| {
        let mut s = tcp_from(ip, d.sip);
        assert!(options_over(&mut s, &format!("k{}", kept.len())), "{ip}");
        kept.push(s);
    };
    open("127.0.0.1", &mut kept);
    open("127.0.0.1", &mut kept);
    // A third from 127.0.0.1: over its source's cap.
    let mut third = tcp_from("127.0.0.1", d.sip);
    assert!(closed_within(&mut third, Duration::from_secs(5)));
    for ip in ["127.0.0.2", "127.0.0.2", "127.0.0.3"] {
        open(ip, &mut kept);
    }
    // A first from 127.0.0.4: over the total.
    let mut sixth = tcp_from("127.0.0.4", d.sip);
    assert!(closed_within(&mut sixth, Duration::from_secs(5)));
    let m = d.get("/metrics").1;
    assert_eq!(
        metric(
            &m,
            "dialerd_sip_tcp_connections_refused_total{reason=\"per_source\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "dialerd_sip_tcp_connections_refused_total{reason=\"total\"}"
        ),
        Some(1.0)
    );
    // The connections inside the caps, HTTP and UDP are unaffected.
    assert!(options_over(&mut kept[0], "again"));
    assert_eq!(d.get("/healthz").0, 200);
    let answer = common::udp_exchange(
        d.sip,
        &common::options_request("u1"),
        Duration::from_secs(5),
    );
    assert_eq!(answer.as_deref().map(status_of), Some(200));
    // A slot freed is usable again.
    drop(kept.remove(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = tcp_from("127.0.0.1", d.sip);
        if options_over(&mut s, "reuse") {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends the start of an OPTIONS one byte every 200 ms until the daemon closes the connection;
/// returns how long it stayed open (`None`: still open after 8 s).
fn trickle(d: &Daemon) -> Option<Duration> {
    let mut s = TcpStream::connect(d.sip).unwrap();
    s.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let bytes = b"OPTIONS sip:dialerd@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKslow\r\n";
    let mut buf = [0u8; 64];
    for b in bytes.iter().cycle() {
        if start.elapsed() > Duration::from_secs(8) {
            return None;
        }
        if s.write_all(&[*b]).is_err() {
            return Some(start.elapsed());
        }
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return Some(start.elapsed()),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

#[test]
fn a_message_trickled_byte_by_byte_is_cut_at_the_message_deadline() {
    let d = Daemon::start("[sip]\ntcp_idle_timeout = \"60s\"\ntcp_message_timeout = \"1s\"\n");
    let open = trickle(&d).expect("a trickled message held the connection open");
    assert!(open >= Duration::from_millis(900), "closed after {open:?}");
}

#[test]
fn bytes_of_an_unfinished_message_do_not_restart_the_idle_timer() {
    let d = Daemon::start("[sip]\ntcp_idle_timeout = \"2s\"\ntcp_message_timeout = \"60s\"\n");
    let open = trickle(&d).expect("trickled bytes kept restarting the idle timer");
    assert!(open >= Duration::from_millis(1900), "closed after {open:?}");
}

#[test]
fn options_are_answered_without_transaction_state() {
    let d = Daemon::start("");
    let sock = udp("127.0.0.1");
    for i in 0..20 {
        sock.send_to(&common::options_request(&format!("o{i}")), d.sip)
            .unwrap();
        assert_eq!(status_of(&final_answer(&sock)), 200);
    }
    // With a transaction each would linger 64×T1 = 32 s to absorb retransmissions.
    assert_eq!(metric_of(&d, "dialerd_sip_transactions_active"), 0.0);
}

#[test]
fn a_source_over_the_rate_is_dropped_while_others_are_answered() {
    let d = Daemon::start(
        "[sip]\nrate_limit_requests = 5\nrate_limit_interval = \"60s\"\nrate_limit_block = \"60s\"\n",
    );
    let flooder = udp("127.0.0.1");
    for i in 0..5 {
        flooder
            .send_to(&common::options_request(&format!("f{i}")), d.sip)
            .unwrap();
        assert_eq!(status_of(&final_answer(&flooder)), 200, "request {i}");
    }
    for i in 5..10 {
        flooder
            .send_to(&common::options_request(&format!("f{i}")), d.sip)
            .unwrap();
    }
    wait_metric(
        &d,
        "dialerd_sip_requests_shed_total{reason=\"rate_limit\"}",
        5.0,
    );
    // Nothing came back for the five over the rate.
    assert!(collect(&flooder, Instant::now() + Duration::from_millis(300)).is_empty());
    // Another source is answered.
    let other = udp("127.0.0.2");
    other
        .send_to(&common::options_request("x1"), d.sip)
        .unwrap();
    assert_eq!(status_of(&final_answer(&other)), 200);
}

#[test]
fn over_the_transaction_cap_new_requests_get_503_and_a_call_in_progress_goes_on() {
    let d = Daemon::start(
        "[sip]\necho_number = \"1000\"\nmax_server_transactions = 100\nrate_limit_requests = 0\n\
         [[trunks]]\nname = \"loopback\"\nhost = \"127.0.0.1\"\ninbound_from = [\"127.0.0.1\"]\nkeepalive = \"0s\"\n",
    );
    let ua = TestUa::new(d.sip, "held-call");
    ua.invite("1000");
    assert_eq!(status_of(&ua.final_response()), 200);

    // Finished REGISTER transactions linger 64×T1 = 32 s: with the call's INVITE transaction
    // (in Accepted until Timer L) 99 of them fill the table.
    let flooder = udp("127.0.0.2");
    let from = flooder.local_addr().unwrap();
    let mut answered = 0;
    let over = loop {
        flooder
            .send_to(&register(from, &format!("reg{answered}")), d.sip)
            .unwrap();
        let answer = final_answer(&flooder);
        if status_of(&answer) == 503 {
            break answer;
        }
        answered += 1;
        assert!(answered <= 100, "no 503 past the cap");
    };
    assert_eq!(answered, 99, "the cap counts server transactions");
    assert_eq!(common::ua::header(&over, "Retry-After"), "5");
    assert_eq!(
        metric_of(
            &d,
            "dialerd_sip_requests_shed_total{reason=\"transactions\"}"
        ),
        1.0
    );
    assert!(metric_of(&d, "dialerd_sip_transactions_active") <= 102.0);
    // The call in progress still hangs up properly: its BYE is in a known dialog.
    ua.bye();
}
