//! Dialog scenarios on virtual time, with messages written as text and parsed by `wire`.

use super::*;
use crate::sip::wire;

const CONTACT: &str = "sip:dialerd@192.0.2.10:5060";

fn layer() -> DialogLayer {
    DialogLayer::new(DialogConfig::new(CONTACT, "192.0.2.10:5060"))
}

fn parse(text: &str, body: &str) -> rsip::SipMessage {
    let head = text.trim_start().replace('\n', "\r\n");
    let full = format!("{head}Content-Length: {}\r\n\r\n{body}", body.len());
    wire::parse(full.as_bytes()).expect("test message parses")
}

fn request(text: &str, body: &str) -> rsip::Request {
    match parse(text, body) {
        rsip::SipMessage::Request(r) => r,
        m => panic!("not a request: {m:?}"),
    }
}

fn response(text: &str, body: &str) -> rsip::Response {
    match parse(text, body) {
        rsip::SipMessage::Response(r) => r,
        m => panic!("not a response: {m:?}"),
    }
}

/// Every value of header `name` (case-insensitive), from rsip's `Name: value` rendering.
fn values(headers: &rsip::Headers, name: &str) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| {
            let s = h.to_string();
            let (n, v) = s.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .collect()
}

fn value(headers: &rsip::Headers, name: &str) -> Option<String> {
    values(headers, name).into_iter().next()
}

/// A request we built, sent through the wire encoder and parsed back: proves it is valid SIP.
fn on_wire(r: &rsip::Request) -> rsip::Request {
    match wire::parse(&wire::serialize_request(r)).expect("built request parses") {
        rsip::SipMessage::Request(r) => r,
        m => panic!("not a request: {m:?}"),
    }
}

/// The Request-URI in wire form.
fn ruri(r: &rsip::Request) -> String {
    let bytes = wire::serialize_request(r);
    let text = String::from_utf8_lossy(&bytes);
    text.split(' ').nth(1).unwrap_or_default().to_string()
}

fn branch(r: &rsip::Request) -> String {
    crate::sip::transaction::TopVia::of(&r.headers)
        .and_then(|v| v.branch().map(str::to_string))
        .expect("branch")
}

/// A response from the far end to a request we sent, copying its Via/From/To/Call-ID/CSeq.
fn reply(
    req: &rsip::Request,
    code: u16,
    to_tag: Option<&str>,
    extra: &str,
    body: &str,
) -> rsip::Response {
    let to = value(&req.headers, "To").unwrap();
    let to = match to_tag {
        Some(t) if !to.contains("tag=") => format!("{to};tag={t}"),
        _ => to,
    };
    response(
        &format!(
            "SIP/2.0 {code} Whatever\nVia: {}\nFrom: {}\nTo: {to}\nCall-ID: {}\nCSeq: {}\n{extra}",
            value(&req.headers, "Via").unwrap(),
            value(&req.headers, "From").unwrap(),
            value(&req.headers, "Call-ID").unwrap(),
            value(&req.headers, "CSeq").unwrap(),
        ),
        body,
    )
}

const SDP_THEM: &str = "v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const SDP_US: &str = "v=0\r\no=- 2 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";

/// A carrier's INVITE to us through two record-routing proxies; `extra` adds headers.
fn carrier_invite(extra: &str) -> rsip::Request {
    request(
        &format!(
            "INVITE sip:agent@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKp2
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKuac
Record-Route: <sip:p2.example.net;lr>, <sip:p1.example.net;lr>
Max-Forwards: 68
From: \"Carrier\" <sip:+15550001111@carrier.example.net>;tag=ctag
To: <sip:agent@192.0.2.10>
Call-ID: call-1@carrier
CSeq: 10 INVITE
Contact: <sip:j.user@203.0.113.5:5070>
Content-Type: application/sdp
{extra}"
        ),
        SDP_THEM,
    )
}

/// A request from the carrier inside dialog `id` (we are UAS).
fn from_carrier(method: &str, cseq: u32, id: &DialogId, extra: &str, body: &str) -> rsip::Request {
    request(
        &format!(
            "{method} sip:dialerd@192.0.2.10:5060 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK{method}{cseq}
Max-Forwards: 70
From: <sip:+15550001111@carrier.example.net>;tag={}
To: <sip:agent@192.0.2.10>;tag={}
Call-ID: {}
CSeq: {cseq} {method}
{extra}",
            id.remote_tag, id.local_tag, id.call_id
        ),
        body,
    )
}

/// Answers the carrier's INVITE with 200 + our SDP and returns the dialog.
fn uas_confirmed(
    l: &mut DialogLayer,
    now: Instant,
    invite: &rsip::Request,
) -> (DialogId, rsip::Response) {
    assert!(l.uas_check(invite).is_none());
    let mut ok = make_response(invite, 200, Some("ourtag"));
    set_body(&mut ok.headers, &mut ok.body, Body::sdp(SDP_US));
    let ok = l.uas_respond(now, invite, ok).unwrap();
    let id = DialogId {
        call_id: "call-1@carrier".into(),
        local_tag: "ourtag".into(),
        remote_tag: "ctag".into(),
    };
    assert_eq!(
        l.poll_event(),
        Some(DialogEvent::Confirmed { id: id.clone() })
    );
    (id, ok)
}

/// Our INVITE to a carrier and its 200 (with `extra` headers), returning the dialog.
fn uac_confirmed(l: &mut DialogLayer, now: Instant, extra: &str) -> (DialogId, rsip::Request) {
    let invite = l
        .uac_invite(
            Transport::Udp,
            "sip:+15551234567@carrier.example.net",
            "\"Dialer\" <sip:dialerd@192.0.2.10>",
            "sip:+15551234567@carrier.example.net",
            Some(Body::sdp(SDP_US)),
        )
        .unwrap();
    let ok = reply(
        &invite,
        200,
        Some("far"),
        &format!("Contact: <sip:gw@203.0.113.5:5070>\n{extra}"),
        SDP_THEM,
    );
    let id = l.uac_response(now, &invite, &ok).unwrap();
    assert_eq!(
        l.poll_event(),
        Some(DialogEvent::Confirmed { id: id.clone() })
    );
    (id, invite)
}

fn assert_idle(l: &DialogLayer) {
    assert_eq!(l.len(), 0);
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
    assert_eq!(l.timers_armed(), 0);
    assert!(l.forks.is_empty());
}

#[test]
fn uas_invite_180_then_200_makes_early_then_confirmed_dialog() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = carrier_invite("");
    assert!(l.uas_check(&invite).is_none());

    let ringing = l
        .uas_respond(t0, &invite, make_response(&invite, 180, Some("ourtag")))
        .unwrap();
    assert_eq!(
        value(&ringing.headers, "To").as_deref(),
        Some("<sip:agent@192.0.2.10>;tag=ourtag")
    );
    assert_eq!(
        value(&ringing.headers, "Contact").as_deref(),
        Some("<sip:dialerd@192.0.2.10:5060>")
    );
    assert_eq!(
        values(&ringing.headers, "Record-Route"),
        ["<sip:p2.example.net;lr>", "<sip:p1.example.net;lr>"]
    );
    assert_eq!(l.len(), 1);
    let id = DialogId {
        call_id: "call-1@carrier".into(),
        local_tag: "ourtag".into(),
        remote_tag: "ctag".into(),
    };
    assert_eq!(id.to_string(), "call-1@carrier;local=ourtag;remote=ctag");
    assert_eq!(l.get(&id).unwrap().state, DialogState::Early);
    assert_eq!(l.poll_event(), None);

    let (id2, ok) = uas_confirmed(&mut l, t0, &invite);
    assert_eq!(id2, id);
    assert_eq!(l.len(), 1);
    assert_eq!(
        value(&ok.headers, "Contact").as_deref(),
        Some("<sip:dialerd@192.0.2.10:5060>")
    );
    assert_eq!(values(&ok.headers, "Record-Route").len(), 2);
    // the INVITE did not ask for session timers
    assert_eq!(value(&ok.headers, "Session-Expires"), None);
    assert_eq!(value(&ok.headers, "Require"), None);
    let d = l.get(&id).unwrap();
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(d.role, DialogRole::Uas);
    assert_eq!(d.remote_cseq, Some(10));
    assert_eq!(d.local_uri, "<sip:agent@192.0.2.10>;tag=ourtag");
    assert_eq!(
        d.remote_uri,
        "\"Carrier\" <sip:+15550001111@carrier.example.net>;tag=ctag"
    );
    // UAS route set keeps Record-Route order; the dotted user part stays a user part
    assert_eq!(
        d.route_set,
        ["<sip:p2.example.net;lr>", "<sip:p1.example.net;lr>"]
    );
    assert_eq!(d.remote_target.auth.as_ref().unwrap().user, "j.user");
    assert_eq!(d.session, None);
    assert_eq!(l.poll_timeout(), None);

    let ack = from_carrier("ACK", 10, &id, "", "");
    assert_eq!(
        l.on_request(t0, &ack),
        InDialog::Ack {
            id: id.clone(),
            body: Vec::new()
        }
    );

    // our BYE goes to the first route with the remote target as Request-URI
    let bye = on_wire(&l.request(&id, Method::Bye, None).unwrap());
    assert_eq!(ruri(&bye), "sip:j.user@203.0.113.5:5070");
    assert_eq!(
        values(&bye.headers, "Route"),
        ["<sip:p2.example.net;lr>", "<sip:p1.example.net;lr>"]
    );
    assert_eq!(value(&bye.headers, "CSeq").as_deref(), Some("1 BYE"));
    assert_eq!(
        value(&bye.headers, "From").as_deref(),
        Some("<sip:agent@192.0.2.10>;tag=ourtag")
    );
}

#[test]
fn uas_rejecting_after_180_ends_the_early_dialog() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = carrier_invite("");
    l.uas_respond(t0, &invite, make_response(&invite, 180, Some("t")))
        .unwrap();
    assert_eq!(l.len(), 1);
    let busy = l
        .uas_respond(t0, &invite, make_response(&invite, 486, Some("t")))
        .unwrap();
    assert_eq!(busy.status_code.code(), 486);
    assert!(matches!(
        l.poll_event(),
        Some(DialogEvent::Terminated {
            reason: EndReason::Rejected(486),
            ..
        })
    ));
    assert_idle(&l);
}

#[test]
fn uac_invite_is_complete_and_valid_on_the_wire() {
    let mut l = layer();
    let invite = l
        .uac_invite(
            Transport::Udp,
            "sip:+15551234567@carrier.example.net;user=phone",
            "\"Dialer\" <sip:dialerd@192.0.2.10>",
            "sip:+15551234567@carrier.example.net;user=phone",
            Some(Body::sdp(SDP_US)),
        )
        .unwrap();
    let w = on_wire(&invite);
    assert_eq!(ruri(&w), "sip:+15551234567@carrier.example.net;user=phone");
    assert!(branch(&w).starts_with("z9hG4bK"));
    assert!(value(&w.headers, "Via")
        .unwrap()
        .starts_with("SIP/2.0/UDP 192.0.2.10:5060;branch="));
    assert_eq!(value(&w.headers, "Max-Forwards").as_deref(), Some("70"));
    assert_eq!(value(&w.headers, "CSeq").as_deref(), Some("1 INVITE"));
    assert!(tag_of(&w.headers, true).is_some_and(|t| t.len() == 16));
    assert_eq!(tag_of(&w.headers, false), None);
    assert_eq!(
        value(&w.headers, "To").as_deref(),
        Some("<sip:+15551234567@carrier.example.net;user=phone>")
    );
    assert_eq!(
        value(&w.headers, "Contact").as_deref(),
        Some("<sip:dialerd@192.0.2.10:5060>")
    );
    assert_eq!(value(&w.headers, "Supported").as_deref(), Some("timer"));
    assert_eq!(
        value(&w.headers, "Session-Expires").as_deref(),
        Some("1800")
    );
    assert_eq!(value(&w.headers, "Min-SE").as_deref(), Some("90"));
    assert_eq!(
        value(&w.headers, "Content-Type").as_deref(),
        Some("application/sdp")
    );
    assert_eq!(w.body, SDP_US.as_bytes());
    // no state until a response arrives
    assert_eq!(l.len(), 0);

    // a second INVITE gets another Call-ID, tag and branch
    let other = l
        .uac_invite(
            Transport::Udp,
            "sip:b@example.com",
            "sip:a@example.com",
            "sip:b@example.com",
            None,
        )
        .unwrap();
    assert_ne!(
        value(&other.headers, "Call-ID"),
        value(&w.headers, "Call-ID")
    );
    assert_ne!(branch(&other), branch(&w));
    assert!(l
        .uac_invite(
            Transport::Udp,
            "not a uri",
            "sip:a@example.com",
            "sip:b@example.com",
            None
        )
        .is_err());
    assert!(l
        .uac_invite(
            Transport::Udp,
            "sip:b@example.com",
            "<garbage",
            "sip:b@example.com",
            None
        )
        .is_err());
}

#[test]
fn uac_183_then_200_confirms_with_reversed_route_set_and_contact_target() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = l
        .uac_invite(
            Transport::Udp,
            "sip:+15551234567@carrier.example.net",
            "<sip:dialerd@192.0.2.10>",
            "<sip:+15551234567@carrier.example.net>",
            Some(Body::sdp(SDP_US)),
        )
        .unwrap();
    let progress = reply(
        &invite,
        183,
        Some("far"),
        "Record-Route: <sip:p2.example.net;lr>, <sip:p1.example.net;lr>\nContact: <sip:j.user@[2001:db8::5]:5070>\n",
        SDP_THEM,
    );
    // 100 and tagless 18x make no dialog
    assert_eq!(
        l.uac_response(t0, &invite, &reply(&invite, 100, None, "", "")),
        None
    );
    assert_eq!(
        l.uac_response(t0, &invite, &reply(&invite, 180, None, "", "")),
        None
    );
    let id = l.uac_response(t0, &invite, &progress).unwrap();
    assert_eq!(id.local_tag, tag_of(&invite.headers, true).unwrap());
    assert_eq!(id.remote_tag, "far");
    let d = l.get(&id).unwrap();
    assert_eq!(d.state, DialogState::Early);
    assert_eq!(
        d.route_set,
        ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]
    );
    assert_eq!(d.remote_target.to_string(), "sip:j.user@[2001:db8::5]:5070");
    assert_eq!(l.poll_event(), None);
    assert!(l.build_ack(&id).is_err(), "no ACK for an early dialog");
    // the caller may send UPDATE in an early dialog; it goes to the 183's Contact
    let early_update = on_wire(&l.request(&id, Method::Update, None).unwrap());
    assert_eq!(ruri(&early_update), "sip:j.user@[2001:db8::5]:5070");
    assert_eq!(
        value(&early_update.headers, "CSeq").as_deref(),
        Some("2 UPDATE")
    );

    let ok = reply(
        &invite,
        200,
        Some("far"),
        "Record-Route: <sip:p2.example.net;lr>, <sip:p1.example.net;lr>\nContact: <sip:j.user@203.0.113.5:5070;transport=udp>\n",
        SDP_THEM,
    );
    assert_eq!(l.uac_response(t0, &invite, &ok), Some(id.clone()));
    assert_eq!(
        l.poll_event(),
        Some(DialogEvent::Confirmed { id: id.clone() })
    );
    let d = l.get(&id).unwrap();
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(d.role, DialogRole::Uac);
    assert_eq!(d.local_cseq, 2);
    assert_eq!(d.remote_cseq, None);
    assert_eq!(
        d.route_set,
        ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]
    );
    assert_eq!(d.remote_target.auth.as_ref().unwrap().user, "j.user");
    assert_eq!(d.local_sdp.as_deref(), Some(SDP_US.as_bytes()));
    assert_eq!(d.next_hop().host_with_port.to_string(), "p1.example.net");
    // the 200 had no Session-Expires: no session expiration (RFC 4028 §7.2)
    assert_eq!(d.session, None);

    // ACK: Request-URI = remote target, Route = route set, CSeq of the INVITE, new branch
    let ack = on_wire(&l.build_ack(&id).unwrap());
    assert_eq!(ack.method, Method::Ack);
    // rsip writes the transport token upper-case; SIP compares it case-insensitively
    assert_eq!(ruri(&ack), "sip:j.user@203.0.113.5:5070;transport=UDP");
    assert_eq!(
        values(&ack.headers, "Route"),
        ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]
    );
    assert_eq!(value(&ack.headers, "CSeq").as_deref(), Some("1 ACK"));
    assert_eq!(
        value(&ack.headers, "Call-ID"),
        value(&invite.headers, "Call-ID")
    );
    assert_eq!(value(&ack.headers, "From"), value(&invite.headers, "From"));
    assert_eq!(
        value(&ack.headers, "To").as_deref(),
        Some("<sip:+15551234567@carrier.example.net>;tag=far")
    );
    assert_ne!(branch(&ack), branch(&invite));

    // a retransmitted 200 is ACKed again with the very same ACK, and confirms nothing new
    assert_eq!(l.uac_response(t0, &invite, &ok), Some(id.clone()));
    assert_eq!(l.poll_event(), None);
    assert_eq!(
        wire::serialize_request(&l.build_ack(&id).unwrap()),
        wire::serialize_request(&ack)
    );

    // in-dialog requests: CSeq counts up from the INVITE's, routed like the ACK
    let info = on_wire(&l.request(&id, Method::Info, None).unwrap());
    assert_eq!(value(&info.headers, "CSeq").as_deref(), Some("3 INFO"));
    let bye = on_wire(&l.request(&id, Method::Bye, None).unwrap());
    assert_eq!(ruri(&bye), "sip:j.user@203.0.113.5:5070;transport=UDP");
    assert_eq!(
        values(&bye.headers, "Route"),
        ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]
    );
    assert_eq!(value(&bye.headers, "CSeq").as_deref(), Some("4 BYE"));
    assert_eq!(value(&bye.headers, "Max-Forwards").as_deref(), Some("70"));
    assert_eq!(value(&bye.headers, "Contact"), None);
    assert_ne!(branch(&bye), branch(&info));
    assert_eq!(l.get(&id).unwrap().state, DialogState::Terminating);
    assert!(matches!(
        l.request(&id, Method::Info, None),
        Err(DialogError::InvalidState {
            state: DialogState::Terminating,
            ..
        })
    ));
    assert!(matches!(
        l.request(&id, Method::Ack, None),
        Err(DialogError::NotARequest(_))
    ));

    // 100 to the BYE changes nothing; its 200 ends the dialog
    assert_eq!(
        l.on_request_response(t0, &bye, &reply(&bye, 100, None, "", "")),
        None
    );
    assert_eq!(l.len(), 1);
    assert_eq!(
        l.on_request_response(t0, &bye, &reply(&bye, 200, None, "", "")),
        None
    );
    assert_eq!(
        l.poll_event(),
        Some(DialogEvent::Terminated {
            id,
            reason: EndReason::ByeSent
        })
    );
    assert_idle(&l);
}

#[test]
fn strict_route_takes_the_request_uri() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, _) = uac_confirmed(&mut l, t0, "Record-Route: <sip:old.example.net>\n");
    let bye = on_wire(&l.request(&id, Method::Bye, None).unwrap());
    assert_eq!(ruri(&bye), "sip:old.example.net");
    assert_eq!(values(&bye.headers, "Route"), ["<sip:gw@203.0.113.5:5070>"]);
}

#[test]
fn incoming_bye_is_answered_200_and_frees_everything() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = carrier_invite("Supported: timer\nSession-Expires: 1800\n");
    let (id, _) = uas_confirmed(&mut l, t0, &invite);
    assert!(l.poll_timeout().is_some(), "session timer armed");

    let InDialog::Bye { id: got, response } =
        l.on_request(t0, &from_carrier("BYE", 11, &id, "", ""))
    else {
        panic!("not a BYE");
    };
    assert_eq!(got, id);
    assert_eq!(response.status_code.code(), 200);
    assert_eq!(tag_of(&response.headers, false).as_deref(), Some("ourtag"));
    assert_eq!(value(&response.headers, "CSeq").as_deref(), Some("11 BYE"));
    assert_eq!(
        l.poll_event(),
        Some(DialogEvent::Terminated {
            id: id.clone(),
            reason: EndReason::ByeReceived
        })
    );
    assert_idle(&l);

    // the dialog is gone: a second BYE (new transaction) gets 481
    let InDialog::NoDialog { response: Some(r) } =
        l.on_request(t0, &from_carrier("BYE", 12, &id, "", ""))
    else {
        panic!("expected 481");
    };
    assert_eq!(r.status_code.code(), 481);
}

#[test]
fn bye_glare_answers_200_and_never_hangs() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, _) = uac_confirmed(&mut l, t0, "");
    let our_bye = l.request(&id, Method::Bye, None).unwrap();
    assert_eq!(l.get(&id).unwrap().state, DialogState::Terminating);

    // their BYE crosses ours
    let d = l.get(&id).unwrap();
    let their_bye = request(
        &format!(
            "BYE {CONTACT} SIP/2.0\nVia: SIP/2.0/UDP 203.0.113.5:5070;branch=z9hG4bKtheirbye\nFrom: {}\nTo: {}\nCall-ID: {}\nCSeq: 1 BYE\n",
            d.remote_uri, d.local_uri, id.call_id
        ),
        "",
    );
    let InDialog::Bye { response, .. } = l.on_request(t0, &their_bye) else {
        panic!("glare BYE not answered");
    };
    assert_eq!(response.status_code.code(), 200);
    assert_eq!(
        l.poll_event(),
        Some(DialogEvent::Terminated {
            id: id.clone(),
            reason: EndReason::ByeReceived
        })
    );
    assert_idle(&l);
    // the 481 to our BYE matches nothing and changes nothing
    assert_eq!(
        l.on_request_response(t0, &our_bye, &reply(&our_bye, 481, None, "", "")),
        None
    );
    assert_eq!(l.poll_event(), None);
    assert_idle(&l);
}

#[test]
fn unknown_dialog_gets_481_and_ack_no_answer() {
    let mut l = layer();
    let t0 = Instant::now();
    let ghost = DialogId {
        call_id: "nobody@here".into(),
        local_tag: "x".into(),
        remote_tag: "y".into(),
    };
    for m in ["BYE", "INVITE", "INFO", "UPDATE"] {
        let InDialog::NoDialog { response: Some(r) } = l.on_request(
            t0,
            &from_carrier(m, 2, &ghost, "Contact: <sip:x@203.0.113.5>\n", ""),
        ) else {
            panic!("{m} must get 481");
        };
        assert_eq!(r.status_code.code(), 481, "{m}");
        assert_eq!(value(&r.headers, "CSeq"), Some(format!("2 {m}")));
    }
    assert_eq!(
        l.on_request(t0, &from_carrier("ACK", 2, &ghost, "", "")),
        InDialog::NoDialog { response: None }
    );
    assert!(matches!(
        l.request(&ghost, Method::Bye, None),
        Err(DialogError::NotFound(_))
    ));
    assert!(l.build_ack(&ghost).is_err());
    assert_eq!(l.poll_event(), None);
}

#[test]
fn lower_cseq_gets_500() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, _) = uas_confirmed(&mut l, t0, &carrier_invite(""));
    assert_eq!(
        l.on_request(t0, &from_carrier("INFO", 11, &id, "", "")),
        InDialog::Other { id: id.clone() }
    );
    let InDialog::BadCSeq { response, .. } =
        l.on_request(t0, &from_carrier("INFO", 9, &id, "", ""))
    else {
        panic!("lower CSeq accepted");
    };
    assert_eq!(response.status_code.code(), 500);
    assert_eq!(l.get(&id).unwrap().remote_cseq, Some(11));
    // a BYE with a stale CSeq does not end the dialog
    assert!(matches!(
        l.on_request(t0, &from_carrier("BYE", 3, &id, "", "")),
        InDialog::BadCSeq { .. }
    ));
    assert_eq!(l.len(), 1);
}

#[test]
fn reinvite_with_contact_refreshes_target_and_is_answered_with_last_sdp() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, _) = uas_confirmed(&mut l, t0, &carrier_invite(""));
    let reinvite = from_carrier(
        "INVITE",
        11,
        &id,
        "Contact: <sip:moved@198.51.100.9:5080>\nContent-Type: application/sdp\n",
        SDP_THEM,
    );
    assert_eq!(
        l.on_request(t0, &reinvite),
        InDialog::ReInvite {
            id: id.clone(),
            offer: SDP_THEM.as_bytes().to_vec()
        }
    );
    assert_eq!(
        l.get(&id).unwrap().remote_target.to_string(),
        "sip:moved@198.51.100.9:5080"
    );
    let ok = l.answer_with_last_sdp(t0, &reinvite).unwrap();
    assert_eq!(ok.status_code.code(), 200);
    assert_eq!(ok.body, SDP_US.as_bytes());
    assert_eq!(
        value(&ok.headers, "Content-Type").as_deref(),
        Some("application/sdp")
    );
    assert_eq!(
        value(&ok.headers, "Contact").as_deref(),
        Some("<sip:dialerd@192.0.2.10:5060>")
    );
    assert_eq!(tag_of(&ok.headers, false).as_deref(), Some("ourtag"));
    let bye = l.request(&id, Method::Bye, None).unwrap();
    assert_eq!(ruri(&bye), "sip:moved@198.51.100.9:5080");
}

#[test]
fn our_reinvite_2xx_refreshes_target_and_gets_its_own_ack() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, _) = uac_confirmed(&mut l, t0, "");
    let first_ack = l.build_ack(&id).unwrap();
    let reinvite = on_wire(
        &l.request(&id, Method::Invite, Some(Body::sdp(SDP_US)))
            .unwrap(),
    );
    assert_eq!(
        value(&reinvite.headers, "CSeq").as_deref(),
        Some("2 INVITE")
    );
    assert_eq!(
        value(&reinvite.headers, "Contact").as_deref(),
        Some("<sip:dialerd@192.0.2.10:5060>")
    );
    // a re-INVITE of theirs now glares with ours: 491
    let d = l.get(&id).unwrap();
    let theirs = request(
        &format!(
            "INVITE {CONTACT} SIP/2.0\nVia: SIP/2.0/UDP 203.0.113.5:5070;branch=z9hG4bKri\nFrom: {}\nTo: {}\nCall-ID: {}\nCSeq: 1 INVITE\nContact: <sip:gw@203.0.113.5:5070>\n",
            d.remote_uri, d.local_uri, id.call_id
        ),
        "",
    );
    let InDialog::Pending { response, .. } = l.on_request(t0, &theirs) else {
        panic!("no 491");
    };
    assert_eq!(response.status_code.code(), 491);
    assert!(
        l.request(&id, Method::Invite, None).is_err(),
        "one re-INVITE at a time"
    );

    let ok = reply(
        &reinvite,
        200,
        None,
        "Contact: <sip:gw2@203.0.113.6>\n",
        SDP_THEM,
    );
    assert_eq!(l.on_request_response(t0, &reinvite, &ok), Some(id.clone()));
    assert_eq!(
        l.get(&id).unwrap().remote_target.to_string(),
        "sip:gw2@203.0.113.6"
    );
    let ack = l.build_ack(&id).unwrap();
    assert_eq!(value(&ack.headers, "CSeq").as_deref(), Some("2 ACK"));
    assert_eq!(ruri(&ack), "sip:gw2@203.0.113.6");
    assert_ne!(branch(&ack), branch(&first_ack));
}

#[test]
fn in_dialog_481_or_408_ends_the_dialog() {
    for code in [481, 408] {
        let mut l = layer();
        let t0 = Instant::now();
        let (id, _) = uac_confirmed(&mut l, t0, "Session-Expires: 600;refresher=uac\n");
        let info = l.request(&id, Method::Info, None).unwrap();
        assert_eq!(
            l.on_request_response(t0, &info, &make_response(&info, code, None)),
            None
        );
        assert_eq!(
            l.poll_event(),
            Some(DialogEvent::Terminated {
                id,
                reason: EndReason::RequestFailed(code)
            })
        );
        assert_idle(&l);
    }
}

#[test]
fn refresher_gets_refresh_due_at_half_interval_and_restarts_on_2xx() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, _) = uac_confirmed(
        &mut l,
        t0,
        "Require: timer\nSession-Expires: 120;refresher=uac\n",
    );
    let s = l.get(&id).unwrap().session.unwrap();
    assert_eq!(s.interval, Duration::from_secs(120));
    assert_eq!(s.refresher, Refresher::Local);
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    l.handle_timeout(t0 + Duration::from_secs(59));
    assert_eq!(l.poll_event(), None);
    l.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(
        l.poll_event(),
        Some(DialogEvent::RefreshDue { id: id.clone() })
    );
    assert_eq!(l.poll_event(), None);
    // if the refresh never succeeds the session still expires: 120 - min(32, 40) = 88 s
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(88)));

    let update = on_wire(&l.request(&id, Method::Update, None).unwrap());
    assert_eq!(value(&update.headers, "CSeq").as_deref(), Some("2 UPDATE"));
    assert_eq!(
        value(&update.headers, "Session-Expires").as_deref(),
        Some("120;refresher=uac")
    );
    assert_eq!(value(&update.headers, "Min-SE").as_deref(), Some("90"));
    assert_eq!(
        value(&update.headers, "Supported").as_deref(),
        Some("timer")
    );
    assert_eq!(
        value(&update.headers, "Contact").as_deref(),
        Some("<sip:dialerd@192.0.2.10:5060>")
    );

    let t1 = t0 + Duration::from_secs(61);
    let ok = reply(
        &update,
        200,
        None,
        "Require: timer\nSession-Expires: 120;refresher=uac\n",
        "",
    );
    assert_eq!(l.on_request_response(t1, &update, &ok), Some(id.clone()));
    assert_eq!(l.poll_timeout(), Some(t1 + Duration::from_secs(60)));
    assert_eq!(l.timers_armed(), 1);
    l.handle_timeout(t0 + Duration::from_secs(88));
    assert_eq!(l.poll_event(), None, "the old expiry was disarmed");
}

#[test]
fn uas_refresher_when_uac_asks_for_it() {
    let mut l = layer();
    let t0 = Instant::now();
    // the UAC offers 7200 s: we shorten to our 1800 and refresh ourselves as it asked
    let invite =
        carrier_invite("Supported: timer\nSession-Expires: 7200;refresher=uas\nMin-SE: 120\n");
    let (id, ok) = uas_confirmed(&mut l, t0, &invite);
    assert_eq!(
        value(&ok.headers, "Session-Expires").as_deref(),
        Some("1800;refresher=uas")
    );
    assert_eq!(value(&ok.headers, "Require").as_deref(), Some("timer"));
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(900)));
    l.handle_timeout(t0 + Duration::from_secs(900));
    assert_eq!(
        l.poll_event(),
        Some(DialogEvent::RefreshDue { id: id.clone() })
    );
    // as UAS we refresh with a re-INVITE of our own: we are its UAC and the refresher
    let reinvite = l
        .request(&id, Method::Invite, Some(Body::sdp(SDP_US)))
        .unwrap();
    assert_eq!(
        value(&reinvite.headers, "Session-Expires").as_deref(),
        Some("1800;refresher=uac")
    );
    assert_eq!(
        value(&reinvite.headers, "CSeq").as_deref(),
        Some("1 INVITE")
    );
    assert_eq!(ruri(&reinvite), "sip:j.user@203.0.113.5:5070");
}

#[test]
fn uas_without_refresher_param_lets_the_uac_refresh_and_expires_without_refresh() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = carrier_invite("Supported: timer\nSession-Expires: 300\n");
    let (id, ok) = uas_confirmed(&mut l, t0, &invite);
    assert_eq!(
        value(&ok.headers, "Session-Expires").as_deref(),
        Some("300;refresher=uac")
    );
    assert_eq!(value(&ok.headers, "Require").as_deref(), Some("timer"));
    let s = l.get(&id).unwrap().session.unwrap();
    assert_eq!(s.refresher, Refresher::Remote);
    // 300 - min(32, 100) = 268 s
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(268)));
    l.handle_timeout(t0 + Duration::from_secs(267));
    assert_eq!(l.poll_event(), None);
    l.handle_timeout(t0 + Duration::from_secs(268));
    assert_eq!(
        l.poll_event(),
        Some(DialogEvent::SessionExpired { id: id.clone() })
    );
    assert_eq!(l.poll_timeout(), None);
    assert_eq!(l.len(), 1, "the TU ends it with BYE");
    let bye = l.request(&id, Method::Bye, None).unwrap();
    l.on_request_response(
        t0 + Duration::from_secs(269),
        &bye,
        &make_response(&bye, 200, None),
    );
    assert!(matches!(
        l.poll_event(),
        Some(DialogEvent::Terminated {
            reason: EndReason::ByeSent,
            ..
        })
    ));
    assert_idle(&l);
}

#[test]
fn received_refresh_restarts_the_expiry() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = carrier_invite("Supported: timer\nSession-Expires: 300\n");
    let (id, _) = uas_confirmed(&mut l, t0, &invite);

    let t1 = t0 + Duration::from_secs(150);
    let reinvite = from_carrier(
        "INVITE",
        11,
        &id,
        "Contact: <sip:j.user@203.0.113.5:5070>\nSupported: timer\nSession-Expires: 300;refresher=uac\n",
        "",
    );
    assert!(matches!(
        l.on_request(t1, &reinvite),
        InDialog::ReInvite { .. }
    ));
    let ok = l.answer_with_last_sdp(t1, &reinvite).unwrap();
    assert_eq!(
        value(&ok.headers, "Session-Expires").as_deref(),
        Some("300;refresher=uac")
    );
    assert_eq!(ok.body, SDP_US.as_bytes());
    assert_eq!(l.poll_timeout(), Some(t1 + Duration::from_secs(268)));
    l.handle_timeout(t0 + Duration::from_secs(268));
    assert_eq!(l.poll_event(), None, "the first expiry no longer applies");

    // an UPDATE refreshes as well
    let t2 = t1 + Duration::from_secs(150);
    let update = from_carrier(
        "UPDATE",
        12,
        &id,
        "Supported: timer\nSession-Expires: 300;refresher=uac\n",
        "",
    );
    assert_eq!(
        l.on_request(t2, &update),
        InDialog::Update {
            id: id.clone(),
            offer: Vec::new()
        }
    );
    l.uas_respond(t2, &update, make_response(&update, 200, None))
        .unwrap();
    assert_eq!(l.poll_timeout(), Some(t2 + Duration::from_secs(268)));
    assert_eq!(l.timers_armed(), 1);
    l.handle_timeout(t2 + Duration::from_secs(268));
    assert_eq!(l.poll_event(), Some(DialogEvent::SessionExpired { id }));
}

#[test]
fn too_small_session_interval_gets_422_with_min_se() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = carrier_invite("Supported: timer\nSession-Expires: 60\n");
    let r = l.uas_check(&invite).expect("422");
    assert_eq!(r.status_code.code(), 422);
    assert_eq!(value(&r.headers, "Min-SE").as_deref(), Some("90"));
    assert!(tag_of(&r.headers, false).is_some());
    assert_eq!(
        wire::serialize_response(&r)[..40],
        b"SIP/2.0 422 Session Interval Too Small\r\n"[..]
    );
    assert_eq!(l.len(), 0);

    // in a dialog too
    let (id, _) = uas_confirmed(&mut l, t0, &carrier_invite("Supported: timer\n"));
    assert_eq!(
        l.get(&id).unwrap().session.unwrap().interval,
        Duration::from_secs(1800)
    );
    let reinvite = from_carrier(
        "INVITE",
        11,
        &id,
        "Supported: timer\nSession-Expires: 30\n",
        "",
    );
    let InDialog::IntervalTooSmall { response, .. } = l.on_request(t0, &reinvite) else {
        panic!("no 422 in dialog");
    };
    assert_eq!(response.status_code.code(), 422);
    assert_eq!(value(&response.headers, "Min-SE").as_deref(), Some("90"));

    // as UAC: retry with the interval the 422 asks for
    let ours = l
        .uac_invite(
            Transport::Udp,
            "sip:b@example.com",
            "sip:a@example.com",
            "sip:b@example.com",
            None,
        )
        .unwrap();
    let too_small = reply(&ours, 422, Some("x"), "Min-SE: 3600\n", "");
    assert_eq!(l.uac_response(t0, &ours, &too_small), None);
    let retry = on_wire(&l.uac_retry_422(&ours, &too_small).unwrap());
    assert_eq!(value(&retry.headers, "CSeq").as_deref(), Some("2 INVITE"));
    assert_eq!(
        value(&retry.headers, "Session-Expires").as_deref(),
        Some("3600")
    );
    assert_eq!(value(&retry.headers, "Min-SE").as_deref(), Some("3600"));
    assert_eq!(
        value(&retry.headers, "Call-ID"),
        value(&ours.headers, "Call-ID")
    );
    assert_eq!(value(&retry.headers, "From"), value(&ours.headers, "From"));
    assert_ne!(branch(&retry), branch(&ours));
}

#[test]
fn forked_early_dialogs_are_cleaned_up_on_2xx() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = l
        .uac_invite(
            Transport::Udp,
            "sip:b@example.com",
            "sip:a@example.com",
            "sip:b@example.com",
            None,
        )
        .unwrap();
    let a = l
        .uac_response(
            t0,
            &invite,
            &reply(
                &invite,
                180,
                Some("forkA"),
                "Contact: <sip:a@203.0.113.1>\n",
                "",
            ),
        )
        .unwrap();
    let b = l
        .uac_response(
            t0,
            &invite,
            &reply(
                &invite,
                183,
                Some("forkB"),
                "Contact: <sip:b@203.0.113.2>\n",
                "",
            ),
        )
        .unwrap();
    assert_eq!(l.len(), 2);
    assert_ne!(a, b);
    let ok = reply(
        &invite,
        200,
        Some("forkB"),
        "Contact: <sip:b@203.0.113.2>\n",
        "",
    );
    assert_eq!(l.uac_response(t0, &invite, &ok), Some(b.clone()));
    assert_eq!(
        l.poll_event(),
        Some(DialogEvent::Terminated {
            id: a.clone(),
            reason: EndReason::ForkLost
        })
    );
    assert_eq!(
        l.poll_event(),
        Some(DialogEvent::Confirmed { id: b.clone() })
    );
    assert_eq!(l.len(), 1);

    // a late 18x from a third fork makes no dialog any more
    let c = reply(&invite, 180, Some("forkC"), "", "");
    assert_eq!(l.uac_response(t0, &invite, &c), None);
    assert_eq!(l.len(), 1);

    // a late 2xx from the other fork: its own dialog, to be ACKed and hung up
    let late = reply(
        &invite,
        200,
        Some("forkA"),
        "Contact: <sip:a@203.0.113.1>\n",
        "",
    );
    assert_eq!(l.uac_response(t0, &invite, &late), Some(a.clone()));
    assert_eq!(
        l.poll_event(),
        Some(DialogEvent::ExtraAnswer { id: a.clone() })
    );
    assert_eq!(ruri(&l.build_ack(&a).unwrap()), "sip:a@203.0.113.1");
    let bye_a = l.request(&a, Method::Bye, None).unwrap();
    l.on_request_response(t0, &bye_a, &make_response(&bye_a, 200, None));
    let bye_b = l.request(&b, Method::Bye, None).unwrap();
    l.on_request_response(t0, &bye_b, &make_response(&bye_b, 408, None));
    assert_idle(&l);
}

#[test]
fn failed_or_timed_out_invite_ends_all_early_dialogs() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = l
        .uac_invite(
            Transport::Udp,
            "sip:b@example.com",
            "sip:a@example.com",
            "sip:b@example.com",
            None,
        )
        .unwrap();
    for tag in ["f1", "f2"] {
        l.uac_response(t0, &invite, &reply(&invite, 180, Some(tag), "", ""));
    }
    assert_eq!(l.len(), 2);
    // a 1xx without Contact still makes an early dialog targeting the Request-URI
    let f1 = DialogId {
        call_id: value(&invite.headers, "Call-ID").unwrap(),
        local_tag: tag_of(&invite.headers, true).unwrap(),
        remote_tag: "f1".into(),
    };
    assert_eq!(
        l.get(&f1).unwrap().remote_target.to_string(),
        "sip:b@example.com"
    );
    // Timer B: the driver feeds a 408 of its own making (no To tag)
    assert_eq!(
        l.uac_response(t0, &invite, &make_response(&invite, 408, None)),
        None
    );
    let mut reasons = Vec::new();
    while let Some(e) = l.poll_event() {
        reasons.push(e);
    }
    assert_eq!(reasons.len(), 2);
    assert!(reasons.iter().all(|e| matches!(
        e,
        DialogEvent::Terminated {
            reason: EndReason::Rejected(408),
            ..
        }
    )));
    assert_idle(&l);
}

#[test]
fn callee_may_not_bye_an_early_dialog() {
    let mut l = layer();
    let t0 = Instant::now();
    let invite = carrier_invite("");
    l.uas_respond(t0, &invite, make_response(&invite, 180, Some("t")))
        .unwrap();
    let id = DialogId {
        call_id: "call-1@carrier".into(),
        local_tag: "t".into(),
        remote_tag: "ctag".into(),
    };
    assert!(matches!(
        l.request(&id, Method::Bye, None),
        Err(DialogError::InvalidState {
            state: DialogState::Early,
            ..
        })
    ));
    // the caller may: its BYE ends the early dialog (the TU answers the INVITE 487)
    assert!(matches!(
        l.on_request(t0, &from_carrier("BYE", 11, &id, "", "")),
        InDialog::Bye { .. }
    ));
    assert_idle(&l);
}

#[test]
fn broken_input_never_panics() {
    let mut l = layer();
    let t0 = Instant::now();
    // INVITE without Contact: 400 up front, error if answered anyway
    let no_contact = request(
        "INVITE sip:a@192.0.2.10 SIP/2.0\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKnc\nFrom: <sip:x@y>;tag=1\nTo: <sip:a@192.0.2.10>\nCall-ID: nc\nCSeq: 1 INVITE\n",
        "",
    );
    assert_eq!(l.uas_check(&no_contact).unwrap().status_code.code(), 400);
    assert_eq!(
        l.uas_respond(t0, &no_contact, make_response(&no_contact, 200, Some("t"))),
        Err(DialogError::MissingHeader("Contact"))
    );
    // a 2xx the TU forgot to tag
    assert_eq!(
        l.uas_respond(
            t0,
            &carrier_invite(""),
            make_response(&carrier_invite(""), 200, None)
        ),
        Err(DialogError::MissingHeader("To tag"))
    );
    assert_eq!(l.len(), 0);

    // garbage CSeq on an in-dialog request: 400, no dialog touched
    let mut bad = from_carrier(
        "INFO",
        1,
        &DialogId {
            call_id: "c".into(),
            local_tag: "l".into(),
            remote_tag: "r".into(),
        },
        "",
        "",
    );
    bad.headers.retain(|h| !matches!(h, Header::CSeq(_)));
    bad.headers.push(h::CSeq::new("lots INFO").into());
    assert!(matches!(
        l.on_request(t0, &bad),
        InDialog::Invalid { response: Some(_) }
    ));
    // no To tag at all
    let invite = carrier_invite("");
    assert!(matches!(
        l.on_request(t0, &invite),
        InDialog::NoDialog { .. }
    ));

    // UAC side: 2xx without To tag, INVITE without From tag, garbage Contact
    let ours = l
        .uac_invite(
            Transport::Udp,
            "sip:b@example.com",
            "sip:a@example.com",
            "sip:b@example.com",
            None,
        )
        .unwrap();
    assert_eq!(
        l.uac_response(t0, &ours, &reply(&ours, 200, None, "", "")),
        None
    );
    let mut tagless = ours.clone();
    tagless.headers.retain(|h| !matches!(h, Header::From(_)));
    tagless
        .headers
        .push(h::From::new("<sip:a@example.com>").into());
    assert_eq!(
        l.uac_response(t0, &tagless, &reply(&ours, 200, Some("t"), "", "")),
        None
    );
    let mut junk = reply(&ours, 200, Some("t"), "", "");
    junk.headers.push(h::Contact::new("<<<>").into());
    let id = l
        .uac_response(t0, &ours, &junk)
        .expect("dialog without usable Contact");
    assert_eq!(
        l.get(&id).unwrap().remote_target.to_string(),
        "sip:b@example.com"
    );
    // Session-Expires garbage is ignored, not fatal
    let mut st = reply(&ours, 200, Some("t2"), "", "");
    st.headers.push(Header::Other(
        "Session-Expires".into(),
        "soon;refresher=uac".into(),
    ));
    let id2 = l.uac_response(t0, &ours, &st).unwrap();
    assert_eq!(l.get(&id2).unwrap().session, None);
    // responses to requests that carry no dialog identity
    assert_eq!(
        l.on_request_response(t0, &ours, &reply(&ours, 481, None, "", "")),
        None
    );
    l.terminate(&id);
    l.terminate(&id2);
    assert_idle(&l);
}

#[test]
fn everything_ends_idle() {
    let mut l = layer();
    let t0 = Instant::now();
    // a UAS dialog with a timer, a UAC one with a timer, and an early one
    let (uas, _) = uas_confirmed(&mut l, t0, &carrier_invite("Supported: timer\n"));
    let (uac, _) = uac_confirmed(&mut l, t0, "Session-Expires: 90;refresher=uas\n");
    let invite = l
        .uac_invite(
            Transport::Udp,
            "sip:c@example.com",
            "sip:a@example.com",
            "sip:c@example.com",
            None,
        )
        .unwrap();
    l.uac_response(t0, &invite, &reply(&invite, 180, Some("e"), "", ""));
    assert_eq!(l.len(), 3);
    assert_eq!(l.timers_armed(), 2);
    // 90 s as non-refresher: expiry at 90 - 30 = 60 s
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(60)));

    l.uac_response(t0, &invite, &reply(&invite, 487, Some("e"), "", ""));
    assert!(matches!(
        l.on_request(t0, &from_carrier("BYE", 11, &uas, "", "")),
        InDialog::Bye { .. }
    ));
    let bye = l.request(&uac, Method::Bye, None).unwrap();
    l.on_request_response(t0, &bye, &make_response(&bye, 200, None));
    let mut ended = 0;
    while let Some(e) = l.poll_event() {
        assert!(matches!(e, DialogEvent::Terminated { .. }), "{e:?}");
        ended += 1;
    }
    assert_eq!(ended, 3);
    assert_idle(&l);
    l.handle_timeout(t0 + Duration::from_secs(100_000));
    assert_eq!(l.poll_event(), None);
}

#[test]
fn dialog_id_of_our_answer_is_the_one_in_dialog_requests_name() {
    let mut layer = DialogLayer::new(DialogConfig::new(
        "sip:dialerd@192.0.2.10:5060",
        "192.0.2.10:5060",
    ));
    let invite = "INVITE sip:1000@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKid1\r\n\
        Max-Forwards: 70\r\nFrom: <sip:a@192.0.2.1>;tag=theirs\r\nTo: <sip:1000@192.0.2.10>\r\nCall-ID: idtest\r\n\
        CSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.1>\r\nContent-Length: 0\r\n\r\n";
    let rsip::SipMessage::Request(invite) = crate::sip::wire::parse(invite.as_bytes()).unwrap()
    else {
        unreachable!()
    };
    let ok = layer
        .uas_respond(
            Instant::now(),
            &invite,
            make_response(&invite, 200, Some("ours")),
        )
        .unwrap();
    let id = DialogId::of_answer(&ok).unwrap();
    assert_eq!(
        id,
        DialogId {
            call_id: "idtest".into(),
            local_tag: "ours".into(),
            remote_tag: "theirs".into()
        }
    );
    assert!(
        layer.get(&id).is_some(),
        "the answer's id must find the dialog it made"
    );
}

#[test]
fn requests_in_a_dialog_name_the_transport_it_was_set_up_on() {
    let mut layer = DialogLayer::new(DialogConfig::new(
        "sip:dialerd@192.0.2.10:5060",
        "192.0.2.10:5060",
    ));
    for (via, want) in [
        ("TCP", "SIP/2.0/TCP 192.0.2.10:5060"),
        ("UDP", "SIP/2.0/UDP 192.0.2.10:5060"),
    ] {
        let invite = format!(
            "INVITE sip:1000@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/{via} 192.0.2.1:5060;branch=z9hG4bK{via}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@192.0.2.1>;tag=f{via}\r\nTo: <sip:1000@192.0.2.10>\r\n\
             Call-ID: t{via}\r\nCSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.1>\r\nContent-Length: 0\r\n\r\n"
        );
        let rsip::SipMessage::Request(invite) = wire::parse(invite.as_bytes()).unwrap() else {
            unreachable!()
        };
        let ok = layer
            .uas_respond(
                Instant::now(),
                &invite,
                make_response(&invite, 200, Some("t")),
            )
            .unwrap();
        let id = DialogId::of_answer(&ok).unwrap();
        let bye = layer.request(&id, Method::Bye, None).unwrap();
        let top = TopVia::of(&bye.headers).unwrap();
        assert_eq!(
            format!(
                "SIP/2.0/{} {}:{}",
                top.transport,
                top.host,
                top.port.unwrap()
            ),
            want
        );
    }
    let invite = layer
        .uac_invite(
            Transport::Tcp,
            "sip:b@192.0.2.2",
            "<sip:a@192.0.2.10>",
            "<sip:b@192.0.2.2>",
            None,
        )
        .unwrap();
    assert_eq!(TopVia::of(&invite.headers).unwrap().transport, "TCP");
}
