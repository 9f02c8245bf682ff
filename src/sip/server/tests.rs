use super::*;

fn server() -> Server {
    let registrar = crate::sip::registrar::Registrar::new(
        crate::sip::registrar::RegistrarConfig {
            realm: "dialerd".into(),
            algorithms: vec![
                crate::sip::auth::Algorithm::Sha256,
                crate::sip::auth::Algorithm::Md5,
            ],
            min_expires: std::time::Duration::from_secs(60),
            max_expires: std::time::Duration::from_secs(3600),
        },
        std::collections::HashMap::from([("a".to_string(), "password1".to_string())]),
        Instant::now(),
    );
    Server::new(
        ServerPolicy {
            server: "dialerd-test".into(),
            refuse_new_calls: false,
            retry_after_secs: 5,
            trusted: crate::sip::trunk::TrustedSources {
                addrs: vec![TRUNK],
                nets: vec!["198.51.100.0/24".parse().unwrap()],
            },
        },
        registrar,
    )
}

fn request(method: &str, uri: &str, extra: &str, body: &str) -> rsip::Request {
    let text = format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx1\r\nMax-Forwards: 70\r\n\
         From: <sip:a@example.com>;tag=f1\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n\
         {extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    match crate::sip::wire::parse(text.as_bytes()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

impl Server {
    /// The response `route` gives; panics on a route, which these tests do not expect.
    fn respond(
        &mut self,
        now: Instant,
        req: &rsip::Request,
        source: std::net::SocketAddr,
        tag: &str,
    ) -> Option<rsip::Response> {
        match self.route(now, req, source, tag)? {
            Outcome::Respond(r) => Some(r),
            Outcome::Incoming => panic!("routed up"),
        }
    }
}

const TRUNK: std::net::SocketAddr = std::net::SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
    5060,
);

fn answer(req: &rsip::Request) -> rsip::Response {
    server().respond(Instant::now(), req, TRUNK, "t1").unwrap()
}

fn header(resp: &rsip::Response, name: &str) -> Option<String> {
    resp.headers.iter().find_map(|h| {
        header_named(h, name).or_else(|| match h {
            Header::WwwAuthenticate(w) if name == "WWW-Authenticate" => Some(w.value().to_string()),
            _ => None,
        })
    })
}

#[test]
fn options_gets_200_with_capabilities() {
    let r = answer(&request("OPTIONS", "sip:dialerd@192.0.2.2", "", ""));
    assert_eq!(r.status_code.code(), 200);
    assert_eq!(header(&r, "Allow").as_deref(), Some(ALLOW));
    assert_eq!(header(&r, "Accept").as_deref(), Some("application/sdp"));
    assert!(header(&r, "Supported").is_some());
    assert_eq!(header(&r, "Server").as_deref(), Some("dialerd-test"));
    assert_eq!(
        crate::sip::transaction::tag_of(&r.headers, false).as_deref(),
        Some("t1")
    );
}

#[test]
fn known_but_unimplemented_method_gets_405_with_allow() {
    let r = answer(&request("SUBSCRIBE", "sip:b@example.com", "", ""));
    assert_eq!(r.status_code.code(), 405);
    assert_eq!(header(&r, "Allow").as_deref(), Some(ALLOW));
}

#[test]
fn unknown_uri_scheme_gets_416() {
    let r = answer(&request("OPTIONS", "tel:+15551234567", "", ""));
    assert_eq!(r.status_code.code(), 416);
}

#[test]
fn unknown_require_gets_420_listing_tags() {
    let r = answer(&request(
        "OPTIONS",
        "sip:b@example.com",
        "Require: nothingsupportsthis, nor-this\r\n",
        "",
    ));
    assert_eq!(r.status_code.code(), 420);
    assert_eq!(
        header(&r, "Unsupported").as_deref(),
        Some("nothingsupportsthis, nor-this")
    );
}

#[test]
fn body_type_not_understood_gets_415_with_accept() {
    let r = answer(&request(
        "INVITE",
        "sip:b@example.com",
        "Content-Type: application/unknown\r\n",
        "xyz",
    ));
    assert_eq!(r.status_code.code(), 415);
    assert_eq!(header(&r, "Accept").as_deref(), Some("application/sdp"));
}

#[test]
fn invite_whose_accept_excludes_sdp_gets_406() {
    let r = answer(&request(
        "INVITE",
        "sip:b@example.com",
        "Accept: text/nobodyknowsthis\r\n",
        "",
    ));
    assert_eq!(r.status_code.code(), 406);
}

#[test]
fn out_of_dialog_invite_goes_up_and_in_dialog_gets_481() {
    let invite = request(
        "INVITE",
        "sip:5551234@example.com",
        "Content-Type: application/sdp\r\n",
        "v=0\r\n",
    );
    assert!(matches!(
        server().route(Instant::now(), &invite, TRUNK, "t"),
        Some(Outcome::Incoming)
    ));
    let mut req = request("INVITE", "sip:5551234@example.com", "", "");
    for h in req.headers.iter_mut() {
        if let Header::To(_) = h {
            *h = Header::To(rsip::headers::To::new("<sip:b@example.com>;tag=zz"));
        }
    }
    assert_eq!(answer(&req).status_code.code(), 481);
    assert_eq!(
        answer(&request("BYE", "sip:b@example.com", "", ""))
            .status_code
            .code(),
        481
    );
}

#[test]
fn overload_gets_503_with_retry_after() {
    let mut s = server();
    s.policy_mut().refuse_new_calls = true;
    let r = s
        .respond(
            Instant::now(),
            &request("INVITE", "sip:b@example.com", "", ""),
            TRUNK,
            "t",
        )
        .unwrap();
    assert_eq!(r.status_code.code(), 503);
    assert_eq!(header(&r, "Retry-After").as_deref(), Some("5"));
    // OPTIONS still answers while calls are refused (monitoring keeps working).
    let r = s
        .respond(
            Instant::now(),
            &request("OPTIONS", "sip:b@example.com", "", ""),
            TRUNK,
            "t",
        )
        .unwrap();
    assert_eq!(r.status_code.code(), 200);
}

#[test]
fn register_goes_to_the_registrar() {
    let mut s = server();
    let r1 = s
        .respond(
            Instant::now(),
            &request("REGISTER", "sip:example.com", "", ""),
            TRUNK,
            "t",
        )
        .unwrap();
    assert_eq!(r1.status_code.code(), 401);
    let challenge = header(&r1, "WWW-Authenticate").unwrap();
    assert!(
        challenge.starts_with("Digest realm=\"dialerd\""),
        "{challenge}"
    );
    assert!(challenge.contains("nonce=\""), "{challenge}");
    let forged = "Authorization: Digest username=\"a\", realm=\"dialerd\", nonce=\"n\", uri=\"sip:example.com\", response=\"00\"\r\n";
    let r3 = s
        .respond(
            Instant::now(),
            &request("REGISTER", "sip:example.com", forged, ""),
            TRUNK,
            "t",
        )
        .unwrap();
    // A nonce that is not ours judges no password: a fresh challenge.
    assert_eq!(r3.status_code.code(), 401);
    assert!(header(&r3, "WWW-Authenticate").is_some_and(|c| c.contains("stale=true")));
}

#[test]
fn invites_are_routed_up_only_after_every_check() {
    let mut s = server();
    let sdp = "v=0\r\n";
    let invite = request(
        "INVITE",
        "sip:1000@example.com",
        "Content-Type: application/sdp\r\n",
        sdp,
    );
    assert!(matches!(
        s.route(Instant::now(), &invite, TRUNK, "t"),
        Some(Outcome::Incoming)
    ));
    // Routing is no way around the trunk check.
    let scanner: std::net::SocketAddr = "203.0.113.9:5060".parse().unwrap();
    match s.route(Instant::now(), &invite, scanner, "t") {
        Some(Outcome::Respond(r)) => assert_eq!(r.status_code.code(), 403),
        other => panic!("{other:?}"),
    }
    s.policy_mut().refuse_new_calls = true;
    match s.route(Instant::now(), &invite, TRUNK, "t") {
        Some(Outcome::Respond(r)) => assert_eq!(r.status_code.code(), 503),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ack_is_never_answered() {
    assert!(server()
        .respond(
            Instant::now(),
            &request("ACK", "sip:b@example.com", "", ""),
            TRUNK,
            "t"
        )
        .is_none());
}

#[test]
fn invite_from_an_address_that_is_no_trunk_gets_403() {
    let scanner: std::net::SocketAddr = "203.0.113.9:5060".parse().unwrap();
    let mut s = server();
    let r = s
        .respond(
            Instant::now(),
            &request("INVITE", "sip:100@example.com", "", ""),
            scanner,
            "t",
        )
        .unwrap();
    assert_eq!(r.status_code.code(), 403);
    // OPTIONS from anywhere still answers (monitoring, carriers' keepalives).
    let r = s
        .respond(
            Instant::now(),
            &request("OPTIONS", "sip:100@example.com", "", ""),
            scanner,
            "t",
        )
        .unwrap();
    assert_eq!(r.status_code.code(), 200);
}

#[test]
fn invite_from_the_trunk_address_on_another_port_gets_403() {
    let mut s = server();
    let invite = request("INVITE", "sip:100@example.com", "", "");
    let other_port: std::net::SocketAddr = "192.0.2.1:5062".parse().unwrap();
    let r = s.respond(Instant::now(), &invite, other_port, "t").unwrap();
    assert_eq!(r.status_code.code(), 403);
    // An `inbound_from` network takes any port.
    let widened: std::net::SocketAddr = "198.51.100.7:40000".parse().unwrap();
    assert!(matches!(
        s.route(Instant::now(), &invite, widened, "t"),
        Some(Outcome::Incoming)
    ));
}
