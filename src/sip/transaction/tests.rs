//! Transaction layer on virtual time: every test starts at one `Instant` and adds durations.

use super::key::{self, TopVia};
use super::*;
use rsip::headers::untyped::UntypedHeader;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const T1: Duration = Duration::from_millis(500);
const T4: Duration = Duration::from_secs(5);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn udp(addr: &str) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        transport: Transport::Udp,
    }
}

fn tcp(addr: &str) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        transport: Transport::Tcp,
    }
}

/// The far end for client tests; our own sent-by is 10.0.0.1:5060.
fn carrier() -> Peer {
    udp("192.0.2.10:5060")
}

/// A phone sending us requests from its sent-by address.
fn phone() -> Peer {
    udp("192.0.2.1:5060")
}

fn layer() -> TransactionLayer {
    TransactionLayer::new(TimerConfig::default())
}

fn parse(text: &str) -> rsip::SipMessage {
    rsip::SipMessage::try_from(text).expect("test message parses")
}

fn req(text: &str) -> rsip::Request {
    match parse(text) {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(_) => panic!("not a request"),
    }
}

/// A request as sent by `via_host` with `branch`; `extra` adds header lines.
fn request_text(
    method: &str,
    branch: &str,
    via_host: &str,
    cseq: &str,
    to_tag: Option<&str>,
    extra: &str,
) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:bob@192.0.2.10 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via_host};branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=from1\r\n\
         To: <sip:bob@example.com>{to_tag}\r\n\
         Call-ID: call-1@example.com\r\n\
         CSeq: {cseq}\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n"
    )
}

fn our_invite(branch: &str) -> rsip::Request {
    req(&request_text(
        "INVITE",
        branch,
        "10.0.0.1:5060",
        "1 INVITE",
        None,
        "Route: <sip:proxy.example.com;lr>\r\n",
    ))
}

fn our_options(branch: &str) -> rsip::Request {
    req(&request_text(
        "OPTIONS",
        branch,
        "10.0.0.1:5060",
        "7 OPTIONS",
        None,
        "",
    ))
}

/// A response to one of our requests (Via sent-by 10.0.0.1:5060).
fn response_text(code: u16, branch: &str, cseq: &str, to_tag: Option<&str>) -> String {
    response_text_via(
        code,
        &format!("10.0.0.1:5060;branch={branch}"),
        cseq,
        to_tag,
    )
}

fn response_text_via(code: u16, via: &str, cseq: &str, to_tag: Option<&str>) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "SIP/2.0 {code} Whatever\r\n\
         Via: SIP/2.0/UDP {via}\r\n\
         From: <sip:alice@example.com>;tag=from1\r\n\
         To: <sip:bob@example.com>{to_tag}\r\n\
         Call-ID: call-1@example.com\r\n\
         CSeq: {cseq}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn resp(text: &str) -> rsip::Response {
    match parse(text) {
        rsip::SipMessage::Response(r) => r,
        rsip::SipMessage::Request(_) => panic!("not a response"),
    }
}

/// The TU's response to an incoming request (headers copied from it, To tag added).
fn answer(request: &rsip::Request, code: u16, to_tag: &str) -> rsip::Response {
    make_response(request, code, Some(to_tag))
}

fn transmits(l: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| l.poll_transmit()).collect()
}

fn events(l: &mut TransactionLayer) -> Vec<Event> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

/// Parses a transmit back: the layer must only emit valid SIP.
fn sent(t: &Transmit) -> rsip::SipMessage {
    let text = String::from_utf8(t.bytes.clone()).unwrap();
    rsip::SipMessage::try_from(text.as_str()).expect("transmitted bytes parse")
}

fn status(t: &Transmit) -> u16 {
    match sent(t) {
        rsip::SipMessage::Response(r) => r.status_code.code(),
        rsip::SipMessage::Request(r) => panic!("expected a response, got {}", r.method),
    }
}

fn method(t: &Transmit) -> String {
    match sent(t) {
        rsip::SipMessage::Request(r) => r.method.to_string(),
        rsip::SipMessage::Response(r) => panic!("expected a request, got {}", r.status_code),
    }
}

fn statuses(ts: &[Transmit]) -> Vec<u16> {
    ts.iter().map(status).collect()
}

fn response_codes(evs: &[Event]) -> Vec<u16> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Response { response, .. } => Some(response.status_code.code()),
            _ => None,
        })
        .collect()
}

fn header_value(msg: &rsip::SipMessage, pick: fn(&rsip::Header) -> Option<String>) -> String {
    let headers = match msg {
        rsip::SipMessage::Request(r) => &r.headers,
        rsip::SipMessage::Response(r) => &r.headers,
    };
    headers.iter().find_map(pick).expect("header present")
}

fn via_of(msg: &rsip::SipMessage) -> String {
    header_value(msg, |h| match h {
        rsip::Header::Via(v) => Some(v.value().to_string()),
        _ => None,
    })
}

/// Runs timers until `end`, returning (offset from `start`, transmit) for everything sent.
fn run_until(l: &mut TransactionLayer, start: Instant, end: Instant) -> Vec<(Duration, Transmit)> {
    let mut out = Vec::new();
    while let Some(at) = l.poll_timeout() {
        if at > end {
            break;
        }
        l.handle_timeout(at);
        for t in transmits(l) {
            out.push((at - start, t));
        }
    }
    out
}

/// Runs every timer to the end and checks nothing is left behind.
fn drain_all(l: &mut TransactionLayer, start: Instant) {
    run_until(l, start, start + Duration::from_secs(3600));
    assert_eq!(l.len(), 0, "transactions left");
    assert_eq!(l.poll_timeout(), None, "timers left");
    assert_eq!(l.timers_armed(), 0);
}

// ---------------------------------------------------------------------------------------------
// INVITE client

#[test]
fn invite_client_retransmits_at_doubling_intervals_then_timer_b() {
    let mut l = layer();
    let t0 = Instant::now();
    let key = l
        .send_request(t0, our_invite("z9hG4bKa"), carrier())
        .unwrap();
    let first = transmits(&mut l);
    assert_eq!(first.len(), 1);
    assert_eq!(method(&first[0]), "INVITE");
    assert_eq!(first[0].peer, carrier());
    assert_eq!(first[0].key.as_ref(), Some(&key));
    assert_eq!(l.poll_timeout(), Some(t0 + T1));

    let sent = run_until(&mut l, t0, t0 + T1 * 64 - ms(1));
    let times: Vec<Duration> = sent.iter().map(|(d, _)| *d).collect();
    // Timer A: T1, 2T1, 4T1, … between sends; cumulative 1, 3, 7, 15, 31, 63 T1.
    let expected: Vec<Duration> = [1, 3, 7, 15, 31, 63].iter().map(|n| T1 * *n).collect();
    assert_eq!(times, expected);
    assert!(sent.iter().all(|(_, t)| t.bytes == first[0].bytes));
    assert_eq!(l.retransmissions(), 6);
    assert!(events(&mut l).is_empty());

    // Timer B at 64*T1.
    assert_eq!(l.poll_timeout(), Some(t0 + T1 * 64));
    l.handle_timeout(t0 + T1 * 64);
    assert!(transmits(&mut l).is_empty());
    assert_eq!(
        events(&mut l),
        vec![
            Event::Timeout { key: key.clone() },
            Event::Terminated { key }
        ]
    );
    assert_eq!(l.len(), 0);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn invite_client_adds_branch_when_missing() {
    let mut l = layer();
    let t0 = Instant::now();
    let mut invite = our_invite("x");
    key::edit_top_via(&mut invite.headers, |v| {
        v.params.clear();
        true
    });
    let key = l.send_request(t0, invite, carrier()).unwrap();
    assert!(key.branch().starts_with(MAGIC_COOKIE));
    let t = transmits(&mut l);
    let via = TopVia::parse(&via_of(&sent(&t[0]))).unwrap();
    assert_eq!(via.branch(), Some(key.branch()));
}

#[test]
fn invite_client_loss_provisional_stops_a_and_2xx_accepted_until_m() {
    let mut l = layer();
    let t0 = Instant::now();
    let key = l
        .send_request(t0, our_invite("z9hG4bKloss"), carrier())
        .unwrap();
    // The network loses the first two copies (the original and the T1 retransmission).
    transmits(&mut l);
    let lost = run_until(&mut l, t0, t0 + T1);
    assert_eq!(lost.len(), 1);
    let delivered = run_until(&mut l, t0, t0 + T1 * 3);
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].0, T1 * 3);

    let t = t0 + T1 * 3 + ms(40);
    l.handle_message(
        t,
        parse(&response_text(180, "z9hG4bKloss", "1 INVITE", Some("b1"))),
        carrier(),
    );
    assert_eq!(l.state(&key), Some(State::Proceeding));
    // No more Timer A and no Timer B in Proceeding: nothing is armed.
    assert_eq!(l.poll_timeout(), None);

    let t = t + Duration::from_secs(10);
    l.handle_message(
        t,
        parse(&response_text(200, "z9hG4bKloss", "1 INVITE", Some("b1"))),
        carrier(),
    );
    assert_eq!(l.state(&key), Some(State::Accepted));
    // The transaction sends no ACK for a 2xx: that is the dialog's.
    assert!(transmits(&mut l).is_empty());
    // Timer M.
    assert_eq!(l.poll_timeout(), Some(t + T1 * 64));
    // A retransmitted 2xx in Accepted goes up again so the dialog can re-ACK.
    l.handle_message(
        t + T1,
        parse(&response_text(200, "z9hG4bKloss", "1 INVITE", Some("b1"))),
        carrier(),
    );
    let evs = events(&mut l);
    assert_eq!(response_codes(&evs), vec![180, 200, 200]);
    l.handle_timeout(t + T1 * 64);
    assert_eq!(events(&mut l), vec![Event::Terminated { key }]);
    assert_eq!(l.len(), 0);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn invite_client_non2xx_acked_by_transaction_and_duplicate_absorbed() {
    let mut l = layer();
    let t0 = Instant::now();
    let key = l
        .send_request(t0, our_invite("z9hG4bKbusy"), carrier())
        .unwrap();
    transmits(&mut l);
    let busy = response_text(486, "z9hG4bKbusy", "1 INVITE", Some("busy7"));
    l.handle_message(t0 + ms(80), parse(&busy), carrier());
    let ts = transmits(&mut l);
    assert_eq!(ts.len(), 1);
    let ack = match sent(&ts[0]) {
        rsip::SipMessage::Request(r) => r,
        _ => panic!("ACK expected"),
    };
    assert_eq!(ack.method, rsip::Method::Ack);
    assert_eq!(ack.uri.to_string(), "sip:bob@192.0.2.10");
    let via = TopVia::of(&ack.headers).unwrap();
    assert_eq!(via.branch(), Some("z9hG4bKbusy"));
    assert_eq!(key::tag_of(&ack.headers, false).as_deref(), Some("busy7"));
    assert_eq!(key::cseq_of(&ack.headers), Some((1, "ACK".to_string())));
    assert!(ack
        .headers
        .iter()
        .any(|h| matches!(h, rsip::Header::Route(r) if r.value() == "<sip:proxy.example.com;lr>")));

    // The 486 again (our ACK was lost): ACK again, TU hears nothing new.
    l.handle_message(t0 + ms(600), parse(&busy), carrier());
    let again = transmits(&mut l);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].bytes, ts[0].bytes);
    assert_eq!(response_codes(&events(&mut l)), vec![486]);
    assert_eq!(l.state(&key), Some(State::Completed));

    // Timer D: 32 s on UDP.
    assert_eq!(
        l.poll_timeout(),
        Some(t0 + ms(80) + Duration::from_secs(32))
    );
    drain_all(&mut l, t0);
    assert_eq!(events(&mut l), vec![Event::Terminated { key }]);
}

#[test]
fn invite_client_reordered_180_after_200_is_ignored() {
    let mut l = layer();
    let t0 = Instant::now();
    let key = l
        .send_request(t0, our_invite("z9hG4bKre"), carrier())
        .unwrap();
    l.handle_message(
        t0 + ms(50),
        parse(&response_text(200, "z9hG4bKre", "1 INVITE", Some("x"))),
        carrier(),
    );
    l.handle_message(
        t0 + ms(51),
        parse(&response_text(180, "z9hG4bKre", "1 INVITE", Some("x"))),
        carrier(),
    );
    assert_eq!(response_codes(&events(&mut l)), vec![200]);
    assert_eq!(l.state(&key), Some(State::Accepted));
}

#[test]
fn invite_client_cancel_waits_for_provisional() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = l
        .send_request(t0, our_invite("z9hG4bKc"), carrier())
        .unwrap();
    transmits(&mut l);
    let cancel = l.cancel(t0 + ms(10), &invite).unwrap();
    assert_eq!(cancel.method(), "CANCEL");
    assert_eq!(cancel.branch(), "z9hG4bKc");
    // §9.1: no CANCEL before a provisional.
    assert!(transmits(&mut l).is_empty());
    assert_eq!(l.len(), 1);

    l.handle_message(
        t0 + ms(100),
        parse(&response_text(180, "z9hG4bKc", "1 INVITE", Some("t"))),
        carrier(),
    );
    let ts = transmits(&mut l);
    assert_eq!(ts.len(), 1);
    let c = match sent(&ts[0]) {
        rsip::SipMessage::Request(r) => r,
        _ => panic!(),
    };
    assert_eq!(c.method, rsip::Method::Cancel);
    assert_eq!(c.uri.to_string(), "sip:bob@192.0.2.10");
    assert_eq!(TopVia::of(&c.headers).unwrap().branch(), Some("z9hG4bKc"));
    assert_eq!(key::cseq_of(&c.headers), Some((1, "CANCEL".to_string())));
    // To of the CANCEL is the request's, without the provisional's tag.
    assert_eq!(key::tag_of(&c.headers, false), None);
    assert_eq!(ts[0].key.as_ref(), Some(&cancel));
    // Cancelling again is idempotent.
    assert_eq!(l.cancel(t0 + ms(110), &invite).unwrap(), cancel);
    assert!(transmits(&mut l).is_empty());

    l.handle_message(
        t0 + ms(150),
        parse(&response_text(200, "z9hG4bKc", "1 CANCEL", Some("t"))),
        carrier(),
    );
    l.handle_message(
        t0 + ms(160),
        parse(&response_text(487, "z9hG4bKc", "1 INVITE", Some("t"))),
        carrier(),
    );
    let ts = transmits(&mut l);
    assert_eq!(ts.iter().map(method).collect::<Vec<_>>(), vec!["ACK"]);
    let evs = events(&mut l);
    let got: Vec<(String, u16)> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Response { key, response } => {
                Some((key.method().to_string(), response.status_code.code()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("INVITE".to_string(), 180),
            ("CANCEL".to_string(), 200),
            ("INVITE".to_string(), 487)
        ]
    );
    drain_all(&mut l, t0);
}

#[test]
fn cancel_errors() {
    let mut l = layer();
    let t0 = Instant::now();
    let opt = l
        .send_request(t0, our_options("z9hG4bKo"), carrier())
        .unwrap();
    assert_eq!(
        l.cancel(t0, &opt),
        Err(TransactionError::NotInvite(opt.clone()))
    );
    let inv = l
        .send_request(t0, our_invite("z9hG4bKi"), carrier())
        .unwrap();
    l.handle_message(
        t0,
        parse(&response_text(603, "z9hG4bKi", "1 INVITE", Some("t"))),
        carrier(),
    );
    assert!(matches!(
        l.cancel(t0, &inv),
        Err(TransactionError::InvalidState {
            state: State::Completed,
            ..
        })
    ));
    let gone = inv.with_method("BYE");
    assert_eq!(
        l.cancel(t0, &gone),
        Err(TransactionError::NotFound(gone.clone()))
    );
}

#[test]
fn send_request_rejects_ack_and_missing_headers() {
    let mut l = layer();
    let t0 = Instant::now();
    let ack = req(&request_text(
        "ACK",
        "z9hG4bKq",
        "10.0.0.1",
        "1 ACK",
        Some("t"),
        "",
    ));
    assert_eq!(
        l.send_request(t0, ack, carrier()),
        Err(TransactionError::AckNotTransactional)
    );
    let mut no_via = our_options("z9hG4bKv");
    no_via
        .headers
        .retain(|h| !matches!(h, rsip::Header::Via(_)));
    assert_eq!(
        l.send_request(t0, no_via, carrier()),
        Err(TransactionError::MissingHeader("Via"))
    );
    l.send_request(t0, our_options("z9hG4bKdup"), carrier())
        .unwrap();
    assert!(matches!(
        l.send_request(t0, our_options("z9hG4bKdup"), carrier()),
        Err(TransactionError::AlreadyExists(_))
    ));
    assert!(transmits(&mut l).len() == 1);
}

// ---------------------------------------------------------------------------------------------
// Non-INVITE client

#[test]
fn non_invite_client_e_capped_at_t2_then_timer_f() {
    let mut l = layer();
    let t0 = Instant::now();
    let key = l
        .send_request(t0, our_options("z9hG4bKe"), carrier())
        .unwrap();
    transmits(&mut l);
    let sent = run_until(&mut l, t0, t0 + T1 * 64 - ms(1));
    let times: Vec<u64> = sent.iter().map(|(d, _)| d.as_millis() as u64).collect();
    // 0.5, 1, 2, then capped at T2 = 4 s.
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    l.handle_timeout(t0 + T1 * 64);
    assert_eq!(
        events(&mut l),
        vec![
            Event::Timeout { key: key.clone() },
            Event::Terminated { key }
        ]
    );
    assert_eq!(l.len(), 0);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn non_invite_client_proceeding_retransmits_every_t2() {
    let mut l = layer();
    let t0 = Instant::now();
    l.send_request(t0, our_options("z9hG4bKp"), carrier())
        .unwrap();
    transmits(&mut l);
    l.handle_message(
        t0 + ms(100),
        parse(&response_text(100, "z9hG4bKp", "7 OPTIONS", None)),
        carrier(),
    );
    // E was armed for 500 ms; when it fires in Proceeding the next interval is T2.
    let sent = run_until(&mut l, t0, t0 + ms(9000));
    let times: Vec<u64> = sent.iter().map(|(d, _)| d.as_millis() as u64).collect();
    assert_eq!(times, vec![500, 4500, 8500]);
}

#[test]
fn non_invite_client_duplicate_final_seen_once_then_k() {
    let mut l = layer();
    let t0 = Instant::now();
    let key = l
        .send_request(t0, our_options("z9hG4bKd"), carrier())
        .unwrap();
    transmits(&mut l);
    let ok = response_text(200, "z9hG4bKd", "7 OPTIONS", Some("o"));
    l.handle_message(t0 + ms(30), parse(&ok), carrier());
    l.handle_message(t0 + ms(31), parse(&ok), carrier());
    // A late provisional after the final is ignored too.
    l.handle_message(
        t0 + ms(32),
        parse(&response_text(100, "z9hG4bKd", "7 OPTIONS", None)),
        carrier(),
    );
    let evs = events(&mut l);
    assert_eq!(response_codes(&evs), vec![200]);
    assert_eq!(l.state(&key), Some(State::Completed));
    // Timer K = T4, and E/F are gone: K is the only timer.
    assert_eq!(l.poll_timeout(), Some(t0 + ms(30) + T4));
    assert_eq!(l.timers_armed(), 1);
    l.handle_timeout(t0 + ms(30) + T4);
    assert_eq!(events(&mut l), vec![Event::Terminated { key }]);
    assert!(transmits(&mut l).is_empty());
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn stray_and_mismatched_responses_are_dropped() {
    let mut l = layer();
    let t0 = Instant::now();
    let key = l
        .send_request(t0, our_options("z9hG4bKs"), carrier())
        .unwrap();
    // Unknown branch.
    l.handle_message(
        t0,
        parse(&response_text(200, "z9hG4bKother", "7 OPTIONS", None)),
        carrier(),
    );
    // Right branch, wrong method.
    l.handle_message(
        t0,
        parse(&response_text(200, "z9hG4bKs", "7 INFO", None)),
        carrier(),
    );
    // Right branch, sent-by not ours (§18.1.2).
    l.handle_message(
        t0,
        parse(&response_text_via(
            200,
            "10.9.9.9:5060;branch=z9hG4bKs",
            "7 OPTIONS",
            None,
        )),
        carrier(),
    );
    assert_eq!(l.stray_responses(), 3);
    // Two Vias: not for us.
    let two_vias = response_text_via(
        200,
        "10.0.0.1:5060;branch=z9hG4bKs, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKx",
        "7 OPTIONS",
        None,
    );
    l.handle_message(t0, parse(&two_vias), carrier());
    // No Via at all: dropped without a panic.
    let mut no_via = resp(&response_text(200, "z9hG4bKs", "7 OPTIONS", None));
    no_via
        .headers
        .retain(|h| !matches!(h, rsip::Header::Via(_)));
    l.handle_message(t0, rsip::SipMessage::Response(no_via), carrier());
    assert_eq!(l.dropped(), 2);
    assert!(events(&mut l).is_empty());
    assert_eq!(l.state(&key), Some(State::Trying));
    // "10.0.0.1" without a port is the same sent-by as "10.0.0.1:5060".
    l.handle_message(
        t0,
        parse(&response_text_via(
            200,
            "10.0.0.1;branch=z9hG4bKs",
            "7 OPTIONS",
            None,
        )),
        carrier(),
    );
    assert_eq!(response_codes(&events(&mut l)), vec![200]);
}

// ---------------------------------------------------------------------------------------------
// INVITE server

fn their_invite(branch: &str) -> rsip::SipMessage {
    parse(&request_text(
        "INVITE",
        branch,
        "192.0.2.1:5060",
        "1 INVITE",
        None,
        "",
    ))
}

fn their_ack(branch: &str, to_tag: &str) -> rsip::SipMessage {
    parse(&request_text(
        "ACK",
        branch,
        "192.0.2.1:5060",
        "1 ACK",
        Some(to_tag),
        "",
    ))
}

/// Feeds an INVITE and returns its key and the request as the TU saw it.
fn incoming_invite(
    l: &mut TransactionLayer,
    now: Instant,
    branch: &str,
    peer: Peer,
) -> (TransactionKey, rsip::Request) {
    l.handle_message(now, their_invite(branch), peer);
    match events(l).as_slice() {
        [Event::Request {
            key,
            request,
            peer: p,
        }] => {
            assert_eq!(*p, peer);
            (key.clone(), request.clone())
        }
        other => panic!("expected one Request event, got {other:?}"),
    }
}

#[test]
fn invite_server_sends_100_at_once_and_answers_retransmissions_with_last_response() {
    let mut l = layer();
    let t0 = Instant::now();
    let (key, request) = incoming_invite(&mut l, t0, "z9hG4bKsrv", phone());
    assert_eq!(key.role(), Role::Server);
    let ts = transmits(&mut l);
    assert_eq!(statuses(&ts), vec![100]);
    assert_eq!(ts[0].peer, phone());
    // 100 Trying carries no To tag (§8.2.6.1).
    assert_eq!(key::tag_of(&resp_of(&ts[0]).headers, false), None);

    // Retransmitted INVITE: 100 again, no new event.
    l.handle_message(t0 + T1, their_invite("z9hG4bKsrv"), phone());
    assert_eq!(statuses(&transmits(&mut l)), vec![100]);
    assert!(events(&mut l).is_empty());

    l.send_response(t0 + ms(600), &key, answer(&request, 180, "uas1"))
        .unwrap();
    assert_eq!(statuses(&transmits(&mut l)), vec![180]);
    l.handle_message(t0 + ms(700), their_invite("z9hG4bKsrv"), phone());
    assert_eq!(statuses(&transmits(&mut l)), vec![180]);
    assert_eq!(l.retransmissions(), 2);
    // Proceeding has no timers on the server side.
    assert_eq!(l.poll_timeout(), None);
}

fn resp_of(t: &Transmit) -> rsip::Response {
    match sent(t) {
        rsip::SipMessage::Response(r) => r,
        _ => panic!("response expected"),
    }
}

#[test]
fn incoming_request_via_is_stamped_with_received_and_rport() {
    let mut l = layer();
    let t0 = Instant::now();
    let text = request_text(
        "OPTIONS",
        "z9hG4bKnat",
        "192.168.1.20:5060",
        "1 OPTIONS",
        None,
        "",
    )
    .replace("branch=z9hG4bKnat", "rport;branch=z9hG4bKnat");
    let nat = udp("203.0.113.7:40000");
    l.handle_message(t0, parse(&text), nat);
    let Some(Event::Request { key, request, .. }) = l.poll_event() else {
        panic!("request expected")
    };
    let via = TopVia::of(&request.headers).unwrap();
    assert_eq!(via.param("rport"), Some(Some("40000")));
    assert_eq!(via.param("received"), Some(Some("203.0.113.7")));
    l.send_response(t0, &key, answer(&request, 200, "x"))
        .unwrap();
    let ts = transmits(&mut l);
    // rport: back to the NAT's public address and port, Via echoed.
    assert_eq!(ts[0].peer, nat);
    let echoed = via_of(&sent(&ts[0]));
    assert!(echoed.contains("rport=40000") && echoed.contains("received=203.0.113.7"));
}

#[test]
fn invite_server_non2xx_retransmitted_with_g_until_ack_then_i() {
    let mut l = layer();
    let t0 = Instant::now();
    let (key, request) = incoming_invite(&mut l, t0, "z9hG4bKg", phone());
    transmits(&mut l);
    l.send_response(t0, &key, answer(&request, 486, "u1"))
        .unwrap();
    assert_eq!(statuses(&transmits(&mut l)), vec![486]);
    assert_eq!(l.state(&key), Some(State::Completed));

    let sent = run_until(&mut l, t0, t0 + Duration::from_secs(12));
    let times: Vec<u64> = sent.iter().map(|(d, _)| d.as_millis() as u64).collect();
    // G: T1, 2T1, 4T1, then T2.
    assert_eq!(times, vec![500, 1500, 3500, 7500, 11500]);
    assert!(sent.iter().all(|(_, t)| status(t) == 486));
    // A retransmitted INVITE in Completed gets the 486 as well.
    l.handle_message(t0 + ms(11_600), their_invite("z9hG4bKg"), phone());
    assert_eq!(statuses(&transmits(&mut l)), vec![486]);

    // The ACK (same branch) ends the retransmissions: Confirmed, then Timer I = T4.
    let ack_at = t0 + ms(12_000);
    l.handle_message(ack_at, their_ack("z9hG4bKg", "u1"), phone());
    assert_eq!(l.state(&key), Some(State::Confirmed));
    // ACK retransmissions are absorbed.
    l.handle_message(ack_at + ms(10), their_ack("z9hG4bKg", "u1"), phone());
    assert!(
        events(&mut l).is_empty(),
        "ACK of a non-2xx never reaches the TU"
    );
    assert_eq!(l.poll_timeout(), Some(ack_at + T4));
    let after = run_until(&mut l, t0, ack_at + T4);
    assert!(after.is_empty());
    assert_eq!(events(&mut l), vec![Event::Terminated { key }]);
    assert_eq!(l.len(), 0);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn invite_server_timer_h_without_ack() {
    let mut l = layer();
    let t0 = Instant::now();
    let (key, request) = incoming_invite(&mut l, t0, "z9hG4bKh", phone());
    l.send_response(t0, &key, answer(&request, 603, "u"))
        .unwrap();
    transmits(&mut l);
    let sent = run_until(&mut l, t0, t0 + T1 * 64 - ms(1));
    // 0.5, 1.5, 3.5, 7.5, then every 4 s up to 31.5.
    assert_eq!(sent.len(), 10);
    l.handle_timeout(t0 + T1 * 64);
    assert_eq!(
        events(&mut l),
        vec![
            Event::AckTimeout { key: key.clone() },
            Event::Terminated { key }
        ]
    );
    assert_eq!(l.len(), 0);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn invite_server_2xx_retransmitted_in_accepted_until_ack_with_own_branch() {
    let mut l = layer();
    let t0 = Instant::now();
    let (key, request) = incoming_invite(&mut l, t0, "z9hG4bKacc", phone());
    transmits(&mut l);
    l.send_response(t0, &key, answer(&request, 200, "u9"))
        .unwrap();
    assert_eq!(statuses(&transmits(&mut l)), vec![200]);
    assert_eq!(l.state(&key), Some(State::Accepted));
    let sent = run_until(&mut l, t0, t0 + ms(3600));
    assert_eq!(
        sent.iter()
            .map(|(d, t)| (d.as_millis() as u64, status(t)))
            .collect::<Vec<_>>(),
        vec![(500, 200), (1500, 200), (3500, 200)]
    );
    // The ACK of a 2xx is a new transaction with its own branch.
    let ack_at = t0 + ms(3700);
    l.handle_message(ack_at, their_ack("z9hG4bKack2", "u9"), phone());
    match events(&mut l).as_slice() {
        [Event::Ack { request, peer }] => {
            assert_eq!(request.method, rsip::Method::Ack);
            assert_eq!(*peer, phone());
        }
        other => panic!("expected Ack, got {other:?}"),
    }
    // A retransmitted INVITE in Accepted still gets the 2xx.
    l.handle_message(ack_at + ms(5), their_invite("z9hG4bKacc"), phone());
    assert_eq!(statuses(&transmits(&mut l)), vec![200]);
    // No more 2xx retransmissions; Timer L ends the transaction without AckTimeout.
    let later = run_until(&mut l, t0, t0 + T1 * 64);
    assert!(later.is_empty(), "2xx retransmitted after ACK: {later:?}");
    assert_eq!(events(&mut l), vec![Event::Terminated { key }]);
    assert_eq!(l.len(), 0);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn invite_server_2xx_without_ack_gives_ack_timeout() {
    let mut l = layer();
    let t0 = Instant::now();
    let (key, request) = incoming_invite(&mut l, t0, "z9hG4bKnoack", phone());
    l.send_response(t0, &key, answer(&request, 200, "u"))
        .unwrap();
    transmits(&mut l);
    let sent = run_until(&mut l, t0, t0 + T1 * 64 - ms(1));
    assert_eq!(sent.len(), 10);
    assert!(sent.iter().all(|(_, t)| status(t) == 200));
    // The TU may not send a non-2xx after a 2xx.
    assert!(matches!(
        l.send_response(t0, &key, answer(&request, 500, "u")),
        Err(TransactionError::InvalidState {
            state: State::Accepted,
            ..
        })
    ));
    l.handle_timeout(t0 + T1 * 64);
    assert_eq!(
        events(&mut l),
        vec![
            Event::AckTimeout { key: key.clone() },
            Event::Terminated { key }
        ]
    );
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn ack_without_transaction_goes_to_tu() {
    let mut l = layer();
    let t0 = Instant::now();
    l.handle_message(t0, their_ack("z9hG4bKlone", "t"), phone());
    assert!(matches!(events(&mut l).as_slice(), [Event::Ack { .. }]));
    assert!(transmits(&mut l).is_empty());
    assert_eq!(l.len(), 0);
}

// ---------------------------------------------------------------------------------------------
// Non-INVITE server, CANCEL, merged requests

#[test]
fn non_invite_server_absorbs_then_resends_final_until_j() {
    let mut l = layer();
    let t0 = Instant::now();
    let options = parse(&request_text(
        "OPTIONS",
        "z9hG4bKopt",
        "192.0.2.1:5060",
        "3 OPTIONS",
        None,
        "",
    ));
    l.handle_message(t0, options.clone(), phone());
    let Some(Event::Request { key, request, .. }) = l.poll_event() else {
        panic!()
    };
    // No automatic 100 for non-INVITE; a retransmission before the answer is absorbed.
    l.handle_message(t0 + T1, options.clone(), phone());
    assert!(transmits(&mut l).is_empty());
    assert!(events(&mut l).is_empty());
    l.send_response(t0 + ms(600), &key, answer(&request, 200, "o"))
        .unwrap();
    assert_eq!(statuses(&transmits(&mut l)), vec![200]);
    l.handle_message(t0 + ms(1500), options, phone());
    assert_eq!(statuses(&transmits(&mut l)), vec![200]);
    // A second final is refused.
    assert!(l
        .send_response(t0, &key, answer(&request, 500, "o"))
        .is_err());
    // Timer J = 64*T1 on UDP.
    assert_eq!(l.poll_timeout(), Some(t0 + ms(600) + T1 * 64));
    drain_all(&mut l, t0);
}

#[test]
fn cancel_matching_pending_invite_gets_200_and_cancelled_event() {
    let mut l = layer();
    let t0 = Instant::now();
    let (invite, request) = incoming_invite(&mut l, t0, "z9hG4bKcx", phone());
    l.send_response(t0, &invite, answer(&request, 180, "ring1"))
        .unwrap();
    transmits(&mut l);
    let cancel = parse(&request_text(
        "CANCEL",
        "z9hG4bKcx",
        "192.0.2.1:5060",
        "1 CANCEL",
        None,
        "",
    ));
    l.handle_message(t0 + ms(500), cancel.clone(), phone());
    let ts = transmits(&mut l);
    assert_eq!(statuses(&ts), vec![200]);
    let ok = resp_of(&ts[0]);
    assert_eq!(key::cseq_of(&ok.headers), Some((1, "CANCEL".to_string())));
    // Same To tag as the INVITE's provisional.
    assert_eq!(key::tag_of(&ok.headers, false).as_deref(), Some("ring1"));
    assert_eq!(
        events(&mut l),
        vec![Event::Cancelled {
            invite: invite.clone()
        }]
    );
    // A retransmitted CANCEL gets the 200 again and no second event.
    l.handle_message(t0 + ms(600), cancel, phone());
    assert_eq!(statuses(&transmits(&mut l)), vec![200]);
    assert!(events(&mut l).is_empty());

    // The TU answers the INVITE with 487; the caller ACKs it.
    l.send_response(t0 + ms(700), &invite, answer(&request, 487, "ring1"))
        .unwrap();
    assert_eq!(statuses(&transmits(&mut l)), vec![487]);
    l.handle_message(t0 + ms(800), their_ack("z9hG4bKcx", "ring1"), phone());
    assert_eq!(l.state(&invite), Some(State::Confirmed));
    drain_all(&mut l, t0);
}

#[test]
fn cancel_after_final_gets_200_but_no_event() {
    let mut l = layer();
    let t0 = Instant::now();
    let (invite, request) = incoming_invite(&mut l, t0, "z9hG4bKlate", phone());
    l.send_response(t0, &invite, answer(&request, 200, "a"))
        .unwrap();
    transmits(&mut l);
    let cancel = parse(&request_text(
        "CANCEL",
        "z9hG4bKlate",
        "192.0.2.1:5060",
        "1 CANCEL",
        None,
        "",
    ));
    l.handle_message(t0, cancel, phone());
    assert_eq!(statuses(&transmits(&mut l)), vec![200]);
    assert!(events(&mut l).is_empty());
}

#[test]
fn unmatched_cancel_gets_481() {
    let mut l = layer();
    let t0 = Instant::now();
    let cancel = parse(&request_text(
        "CANCEL",
        "z9hG4bKnone",
        "192.0.2.1:5060",
        "1 CANCEL",
        None,
        "",
    ));
    l.handle_message(t0, cancel, phone());
    let ts = transmits(&mut l);
    assert_eq!(statuses(&ts), vec![481]);
    assert_eq!(ts[0].peer, phone());
    assert!(events(&mut l).is_empty());
    drain_all(&mut l, t0);
}

#[test]
fn merged_request_gets_482_and_is_not_surfaced() {
    let mut l = layer();
    let t0 = Instant::now();
    let (_key, _) = incoming_invite(&mut l, t0, "z9hG4bKfork1", phone());
    transmits(&mut l);
    // Same From tag, Call-ID and CSeq via another proxy: another branch.
    let other = parse(&request_text(
        "INVITE",
        "z9hG4bKfork2",
        "192.0.2.99:5060",
        "1 INVITE",
        None,
        "",
    ));
    l.handle_message(t0 + ms(20), other, udp("192.0.2.99:5060"));
    let ts = transmits(&mut l);
    assert_eq!(statuses(&ts), vec![482]);
    assert_eq!(ts[0].peer, udp("192.0.2.99:5060"));
    assert_eq!(ts[0].key, None);
    assert!(events(&mut l).is_empty());
    assert_eq!(l.len(), 1);
}

#[test]
fn a_request_retried_after_our_refusal_is_served_anew_but_not_after_a_2xx() {
    let mut l = layer();
    let t0 = Instant::now();
    let kamailio = udp("192.0.2.1:5060");
    let (key, request) = incoming_invite(&mut l, t0, "z9hG4bKtry.0", kamailio);
    l.send_response(t0 + ms(10), &key, answer(&request, 503, "uas1"))
        .unwrap();
    l.handle_message(t0 + ms(20), their_ack("z9hG4bKtry.0", "uas1"), kamailio);
    transmits(&mut l);
    // The proxy tries us once more (serial forking): same From tag, Call-ID and CSeq, its
    // next branch, while the refused transaction still absorbs retransmissions (Timer I).
    let (again, request) = incoming_invite(&mut l, t0 + ms(30), "z9hG4bKtry.1", kamailio);
    assert_ne!(again, key);
    assert_eq!(statuses(&transmits(&mut l)), vec![100]);
    // Answered this time: the ACK of the 2xx (its own branch) finds the new transaction.
    l.send_response(t0 + ms(40), &again, answer(&request, 200, "uas2"))
        .unwrap();
    transmits(&mut l);
    l.handle_message(t0 + ms(50), their_ack("z9hG4bKtry.ack", "uas2"), kamailio);
    assert!(
        matches!(events(&mut l).as_slice(), [Event::Ack { .. }]),
        "the 2xx's ACK reaches the TU"
    );
    // After the 2xx, the same request by yet another branch is a merged one.
    l.handle_message(t0 + ms(60), their_invite("z9hG4bKtry.2"), kamailio);
    assert_eq!(statuses(&transmits(&mut l)), vec![482]);
    assert!(events(&mut l).is_empty());
}

#[test]
fn malformed_requests_are_dropped_without_panic() {
    let mut l = layer();
    let t0 = Instant::now();
    let mut no_cseq = req(&request_text(
        "OPTIONS",
        "z9hG4bKm",
        "192.0.2.1",
        "1 OPTIONS",
        None,
        "",
    ));
    no_cseq
        .headers
        .retain(|h| !matches!(h, rsip::Header::CSeq(_)));
    l.handle_message(t0, rsip::SipMessage::Request(no_cseq), phone());
    let mut no_via = req(&request_text(
        "OPTIONS",
        "z9hG4bKm",
        "192.0.2.1",
        "1 OPTIONS",
        None,
        "",
    ));
    no_via
        .headers
        .retain(|h| !matches!(h, rsip::Header::Via(_)));
    l.handle_message(t0, rsip::SipMessage::Request(no_via), phone());
    let mut bad_via = req(&request_text(
        "OPTIONS",
        "z9hG4bKm",
        "192.0.2.1",
        "1 OPTIONS",
        None,
        "",
    ));
    key::edit_top_via(&mut bad_via.headers, |_| false);
    for h in bad_via.headers.iter_mut() {
        if let rsip::Header::Via(v) = h {
            v.replace("garbage");
        }
    }
    l.handle_message(t0, rsip::SipMessage::Request(bad_via), phone());
    assert_eq!(l.dropped(), 3);
    assert!(events(&mut l).is_empty());
    assert!(transmits(&mut l).is_empty());
    assert_eq!(
        l.send_response(
            t0,
            &TransactionKey::for_server(&our_options("z9hG4bKz")).unwrap(),
            resp(&response_text(200, "z", "1 OPTIONS", None))
        ),
        Err(TransactionError::NotFound(
            TransactionKey::for_server(&our_options("z9hG4bKz")).unwrap()
        ))
    );
}

// ---------------------------------------------------------------------------------------------
// Reliable transport

#[test]
fn tcp_has_no_retransmissions_and_zero_linger_timers() {
    let mut l = layer();
    let t0 = Instant::now();
    let far = tcp("192.0.2.10:5060");

    // INVITE client: no Timer A, only B.
    let inv = l.send_request(t0, our_invite("z9hG4bKt1"), far).unwrap();
    assert_eq!(l.timers_armed(), 1);
    assert_eq!(l.poll_timeout(), Some(t0 + T1 * 64));
    // A non-2xx: ACK sent and the transaction ends at once (Timer D = 0).
    l.handle_message(
        t0 + ms(5),
        parse(&response_text(404, "z9hG4bKt1", "1 INVITE", Some("n"))),
        far,
    );
    assert_eq!(
        transmits(&mut l).iter().map(method).collect::<Vec<_>>(),
        vec!["INVITE", "ACK"]
    );
    assert_eq!(l.state(&inv), None);

    // Non-INVITE client: no E; the final ends it (K = 0).
    let opt = l.send_request(t0, our_options("z9hG4bKt2"), far).unwrap();
    assert_eq!(l.timers_armed(), 1);
    l.handle_message(
        t0 + ms(5),
        parse(&response_text(200, "z9hG4bKt2", "7 OPTIONS", None)),
        far,
    );
    assert_eq!(l.state(&opt), None);
    assert_eq!(response_codes(&events(&mut l)), vec![404, 200]);
    assert_eq!(
        transmits(&mut l).iter().map(method).collect::<Vec<_>>(),
        vec!["OPTIONS"]
    );

    // INVITE server over TCP: responses go back on the connection; no G; I = 0.
    let phone_tcp = tcp("192.0.2.1:49152");
    let (key, request) = incoming_invite(&mut l, t0, "z9hG4bKt3", phone_tcp);
    l.send_response(t0, &key, answer(&request, 486, "b"))
        .unwrap();
    let ts = transmits(&mut l);
    assert_eq!(statuses(&ts), vec![100, 486]);
    assert!(ts.iter().all(|t| t.peer == phone_tcp));
    assert_eq!(l.timers_armed(), 1, "only Timer H");
    l.handle_message(t0 + ms(5), their_ack("z9hG4bKt3", "b"), phone_tcp);
    assert_eq!(l.state(&key), None);

    // Non-INVITE server: J = 0.
    let bye = parse(&request_text(
        "BYE",
        "z9hG4bKt4",
        "192.0.2.1",
        "2 BYE",
        Some("b"),
        "",
    ));
    l.handle_message(t0, bye, phone_tcp);
    let Some(Event::Request { key, request, .. }) = events(&mut l)
        .into_iter()
        .find(|e| matches!(e, Event::Request { .. }))
    else {
        panic!()
    };
    l.send_response(t0, &key, answer(&request, 200, "b"))
        .unwrap();
    assert_eq!(l.state(&key), None);
    assert_eq!(events(&mut l), vec![Event::Terminated { key }]);

    // INVITE server 2xx over TCP: not retransmitted, but the ACK is still awaited (Timer L).
    let (key, request) = incoming_invite(&mut l, t0, "z9hG4bKt5", phone_tcp);
    l.send_response(t0, &key, answer(&request, 200, "ok"))
        .unwrap();
    transmits(&mut l);
    let sent = run_until(&mut l, t0, t0 + T1 * 64);
    assert!(sent.is_empty());
    assert!(events(&mut l).contains(&Event::AckTimeout { key }));
    assert_eq!(l.len(), 0);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn transport_error_terminates_the_transaction() {
    let mut l = layer();
    let t0 = Instant::now();
    let key = l
        .send_request(t0, our_invite("z9hG4bKerr"), carrier())
        .unwrap();
    let t = transmits(&mut l).remove(0);
    l.handle_transport_error(t0, t.key.as_ref().unwrap());
    assert_eq!(
        events(&mut l),
        vec![
            Event::TransportError { key: key.clone() },
            Event::Terminated { key }
        ]
    );
    assert_eq!(l.poll_timeout(), None);
}

// ---------------------------------------------------------------------------------------------
// Keys, response destination, memory

#[test]
fn keys_follow_17_2_3() {
    let invite = req(&request_text(
        "INVITE",
        "z9hG4bKk",
        "192.0.2.1:5060",
        "1 INVITE",
        None,
        "",
    ));
    let ack = req(&request_text(
        "ACK",
        "z9hG4bKk",
        "192.0.2.1",
        "1 ACK",
        Some("x"),
        "",
    ));
    let cancel = req(&request_text(
        "CANCEL",
        "z9hG4bKk",
        "192.0.2.1:5060",
        "1 CANCEL",
        None,
        "",
    ));
    let other_host = req(&request_text(
        "INVITE",
        "z9hG4bKk",
        "192.0.2.2",
        "1 INVITE",
        None,
        "",
    ));
    let k = TransactionKey::for_server(&invite).unwrap();
    assert_eq!(TransactionKey::for_server(&ack).unwrap(), k);
    let kc = TransactionKey::for_server(&cancel).unwrap();
    assert_ne!(kc, k);
    assert_eq!(kc.with_method("INVITE"), k);
    assert_ne!(TransactionKey::for_server(&other_host).unwrap(), k);
    // Client and server keys never collide.
    assert_ne!(TransactionKey::for_client_request(&invite).unwrap(), k);
}

#[test]
fn rfc2543_requests_without_cookie_still_match() {
    let mut l = layer();
    let t0 = Instant::now();
    let old = |method: &str, cseq: &str, tag: Option<&str>| {
        parse(&request_text(
            method,
            "oldstyle1",
            "192.0.2.1:5060",
            cseq,
            tag,
            "",
        ))
    };
    l.handle_message(t0, old("INVITE", "1 INVITE", None), phone());
    let Some(Event::Request { key, request, .. }) = l.poll_event() else {
        panic!()
    };
    assert!(key.branch().starts_with("rfc2543|"));
    transmits(&mut l);
    // Retransmission matches.
    l.handle_message(t0 + T1, old("INVITE", "1 INVITE", None), phone());
    assert_eq!(statuses(&transmits(&mut l)), vec![100]);
    // CANCEL matches the INVITE.
    l.handle_message(t0 + T1, old("CANCEL", "1 CANCEL", None), phone());
    assert_eq!(statuses(&transmits(&mut l)), vec![200]);
    assert_eq!(
        events(&mut l),
        vec![Event::Cancelled {
            invite: key.clone()
        }]
    );
    l.send_response(t0, &key, answer(&request, 487, "z"))
        .unwrap();
    // ACK with our To tag matches too.
    l.handle_message(t0 + T1, old("ACK", "1 ACK", Some("z")), phone());
    assert_eq!(l.state(&key), Some(State::Confirmed));
}

#[test]
fn response_destination_rules() {
    let via = |s: &str| TopVia::parse(s).unwrap();
    let src = udp("203.0.113.5:31000");
    // rport: source address and port.
    assert_eq!(
        response_destination(&via("SIP/2.0/UDP 10.1.1.1:5062;rport;branch=z9hG4bK1"), src),
        src
    );
    // No rport: source IP (what `received` says), sent-by port.
    assert_eq!(
        response_destination(&via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1"), src),
        udp("203.0.113.5:5062")
    );
    // No port: 5060.
    assert_eq!(
        response_destination(&via("SIP/2.0/UDP host.example.com;branch=z9hG4bK1"), src),
        udp("203.0.113.5:5060")
    );
    // Reliable: the connection it came on, whatever the Via says.
    let conn = tcp("203.0.113.5:49999");
    assert_eq!(
        response_destination(&via("SIP/2.0/TCP 10.1.1.1:5060;branch=z9hG4bK1"), conn),
        conn
    );
}

#[test]
fn top_via_parsing() {
    let v = TopVia::parse("SIP / 2.0 / UDP [2001:db8::1]:5070 ; branch=z9hG4bKx ; rport").unwrap();
    assert_eq!(v.host, "2001:db8::1");
    assert_eq!(v.port, Some(5070));
    assert_eq!(v.branch(), Some("z9hG4bKx"));
    assert_eq!(v.param("rport"), Some(None));
    let mut v = v;
    let src: SocketAddr = "[2001:db8::9]:1234".parse().unwrap();
    assert!(v.stamp_source(src));
    assert_eq!(
        v.render(),
        "SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKx;rport=1234;received=2001:db8::9"
    );
    // Same host, no rport: nothing to add.
    let mut same = TopVia::parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKy").unwrap();
    assert!(!same.stamp_source("192.0.2.1:5060".parse().unwrap()));
    assert!(TopVia::parse("garbage").is_none());
    assert!(TopVia::parse("SIP/2.0/UDP").is_none());
    assert!(TopVia::parse("SIP/2.0/UDP host:notaport").is_none());
}

#[test]
fn memory_returns_to_idle_after_load() {
    let mut l = layer();
    let t0 = Instant::now();
    let mut now = t0;
    for i in 0..300 {
        now += ms(3);
        let b = format!("z9hG4bKload{i}");
        match i % 4 {
            // Client INVITE answered 200.
            0 => {
                l.send_request(now, our_invite(&b), carrier()).unwrap();
                l.handle_message(
                    now,
                    parse(&response_text(200, &b, "1 INVITE", Some("t"))),
                    carrier(),
                );
            }
            // Client OPTIONS never answered.
            1 => {
                l.send_request(now, our_options(&b), carrier()).unwrap();
            }
            // Server INVITE rejected and ACKed.
            2 => {
                let text =
                    request_text("INVITE", &b, "192.0.2.1", &format!("{i} INVITE"), None, "");
                l.handle_message(now, parse(&text), phone());
                let Some(Event::Request { key, request, .. }) = l.poll_event() else {
                    panic!()
                };
                l.send_response(now, &key, answer(&request, 480, "t"))
                    .unwrap();
                let ack = request_text("ACK", &b, "192.0.2.1", &format!("{i} ACK"), Some("t"), "");
                l.handle_message(now, parse(&ack), phone());
            }
            // Server INVITE accepted, never ACKed.
            _ => {
                let text =
                    request_text("INVITE", &b, "192.0.2.1", &format!("{i} INVITE"), None, "");
                l.handle_message(now, parse(&text), phone());
                let Some(Event::Request { key, request, .. }) = l.poll_event() else {
                    panic!()
                };
                l.send_response(now, &key, answer(&request, 200, "t"))
                    .unwrap();
            }
        }
        transmits(&mut l);
        events(&mut l);
    }
    assert_eq!(l.len(), 300);
    drain_all(&mut l, t0);
    assert!(l.ids.is_empty());
    let evs = events(&mut l);
    let terminated = evs
        .iter()
        .filter(|e| matches!(e, Event::Terminated { .. }))
        .count();
    assert_eq!(terminated, 300);
}

#[test]
fn encode_round_trips() {
    let msg = parse(&request_text(
        "OPTIONS",
        "z9hG4bKenc",
        "10.0.0.1",
        "1 OPTIONS",
        None,
        "",
    ));
    let bytes = encode(&msg);
    let back = rsip::SipMessage::try_from(String::from_utf8(bytes).unwrap().as_str()).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn stamping_keeps_the_other_via_values_of_a_joined_header() {
    let mut l = layer();
    let t0 = Instant::now();
    let text = request_text(
        "OPTIONS",
        "z9hG4bKj",
        "10.5.5.5:5080",
        "1 OPTIONS",
        None,
        "",
    )
    .replace(
        "branch=z9hG4bKj\r\n",
        "branch=z9hG4bKj, SIP/2.0/UDP 10.6.6.6;branch=z9hG4bKdeep\r\n",
    );
    l.handle_message(t0, parse(&text), phone());
    let Some(Event::Request { request, .. }) = l.poll_event() else {
        panic!()
    };
    let via = via_of(&rsip::SipMessage::Request(request));
    assert_eq!(
        via,
        "SIP/2.0/UDP 10.5.5.5:5080;branch=z9hG4bKj;received=192.0.2.1, SIP/2.0/UDP 10.6.6.6;branch=z9hG4bKdeep"
    );
}

#[test]
fn pending_cancel_is_dropped_when_a_final_comes_first() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = l
        .send_request(t0, our_invite("z9hG4bKpf"), carrier())
        .unwrap();
    transmits(&mut l);
    l.cancel(t0, &invite).unwrap();
    l.handle_message(
        t0 + ms(100),
        parse(&response_text(200, "z9hG4bKpf", "1 INVITE", Some("a"))),
        carrier(),
    );
    // Answered before any provisional: no CANCEL, the TU sees the 200 (and must BYE).
    assert!(transmits(&mut l).is_empty());
    assert_eq!(response_codes(&events(&mut l)), vec![200]);
    drain_all(&mut l, t0);
}

#[test]
fn cancelled_invite_without_final_gives_up_64_t1_after_cancel() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = l
        .send_request(t0, our_invite("z9hG4bKgu"), carrier())
        .unwrap();
    l.handle_message(
        t0 + ms(100),
        parse(&response_text(183, "z9hG4bKgu", "1 INVITE", Some("a"))),
        carrier(),
    );
    let cancel_at = t0 + Duration::from_secs(20);
    let cancel = l.cancel(cancel_at, &invite).unwrap();
    l.handle_message(
        cancel_at + ms(50),
        parse(&response_text(200, "z9hG4bKgu", "1 CANCEL", Some("a"))),
        carrier(),
    );
    events(&mut l);
    // The peer never sends 487: Timer B, re-armed by the CANCEL, ends the INVITE.
    run_until(&mut l, t0, cancel_at + T1 * 64);
    let evs = events(&mut l);
    assert!(evs.contains(&Event::Timeout {
        key: invite.clone()
    }));
    assert!(evs.contains(&Event::Terminated { key: invite }));
    assert!(evs.contains(&Event::Terminated { key: cancel }));
    assert_eq!(l.len(), 0);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn forked_2xx_in_accepted_reach_the_tu() {
    let mut l = layer();
    let t0 = Instant::now();
    let key = l
        .send_request(t0, our_invite("z9hG4bKfork"), carrier())
        .unwrap();
    for tag in ["leg1", "leg2", "leg1"] {
        l.handle_message(
            t0 + ms(100),
            parse(&response_text(200, "z9hG4bKfork", "1 INVITE", Some(tag))),
            carrier(),
        );
    }
    let tags: Vec<String> = events(&mut l)
        .iter()
        .filter_map(|e| match e {
            Event::Response { key: k, response } if *k == key => {
                key::tag_of(&response.headers, false)
            }
            _ => None,
        })
        .collect();
    assert_eq!(tags, vec!["leg1", "leg2", "leg1"]);
}

#[test]
fn server_transactions_are_counted_until_they_end() {
    let mut l = layer();
    let t0 = Instant::now();
    l.send_request(t0, our_options("z9hG4bKours"), carrier())
        .unwrap();
    for i in 0..3 {
        let r = req(&request_text(
            "OPTIONS",
            &format!("z9hG4bKsrv{i}"),
            "192.0.2.1:5060",
            &format!("{} OPTIONS", i + 1),
            None,
            "",
        ));
        l.handle_message(t0, rsip::SipMessage::Request(r), phone());
    }
    let cancel = req(&request_text(
        "CANCEL",
        "z9hG4bKnone",
        "192.0.2.1:5060",
        "1 CANCEL",
        None,
        "",
    ));
    l.handle_message(t0, rsip::SipMessage::Request(cancel), phone());
    assert_eq!(l.len(), 5);
    assert_eq!(l.server_transactions(), 4, "our own request is not counted");
    for e in events(&mut l) {
        if let Event::Request { key, request, .. } = e {
            l.send_response(t0, &key, answer(&request, 200, "t"))
                .unwrap();
        }
    }
    // Timer J ends them 64×T1 later.
    drain_all(&mut l, t0);
    assert_eq!(l.server_transactions(), 0);
}
