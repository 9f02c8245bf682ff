use super::*;
use crate::sip::transaction::make_response;
use std::time::{Duration, Instant};

// RFC 7616 §3.9.1.
const USER: &str = "Mufasa";
const PASS: &str = "Circle of Life";
const REALM: &str = "http-auth@example.org";
const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
const OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";

fn rfc7616(algorithm: Algorithm) -> String {
    response(&ResponseInput {
        algorithm,
        ha1: &ha1(algorithm, USER, REALM, PASS),
        nonce: NONCE,
        cnonce: CNONCE,
        nc: 1,
        qop: Some(Qop::Auth),
        method: "GET",
        uri: "/dir/index.html",
        body: b"",
    })
}

#[test]
fn rfc7616_md5_vector() {
    assert_eq!(rfc7616(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
}

#[test]
fn rfc7616_sha256_vector() {
    assert_eq!(
        rfc7616(Algorithm::Sha256),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn rfc2617_md5_vector() {
    // RFC 2617 §3.5 (whose password is spelt with a capital O).
    let r = response(&ResponseInput {
        algorithm: Algorithm::Md5,
        ha1: &ha1(Algorithm::Md5, USER, "testrealm@host.com", "Circle Of Life"),
        nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        cnonce: "0a4f113b",
        nc: 1,
        qop: Some(Qop::Auth),
        method: "GET",
        uri: "/dir/index.html",
        body: b"",
    });
    assert_eq!(r, "6629fae49393a05397450978507c4ef1");
}

#[test]
fn rfc7616_vector_through_client() {
    // The client, fed the RFC's challenge, produces the RFC's Authorization.
    let challenge = format!(
        "Digest realm=\"{REALM}\", qop=\"auth, auth-int\", algorithm=SHA-256, \
         nonce=\"{NONCE}\", opaque=\"{OPAQUE}\""
    );
    let mut c = client();
    let out = c.on_challenge_values(&[(AuthKind::Www, &challenge)], &[], get_parts());
    let ClientOutcome::Retry(h) = out else {
        panic!("{out:?}")
    };
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].name(), "Authorization");
    let cr = Credentials::parse(&h[0].value).unwrap();
    assert_eq!(
        cr.response,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    assert_eq!(cr.opaque.as_deref(), Some(OPAQUE));
    assert!(h[0].value.contains("nc=00000001"), "{}", h[0].value);
    assert!(h[0].value.contains("qop=auth,") || h[0].value.contains("qop=auth "));
}

fn get_parts() -> RequestParts<'static> {
    RequestParts {
        method: "GET",
        uri: "/dir/index.html",
        body: b"",
    }
}

fn client() -> DigestClient {
    DigestClient::new(USER, PASS).with_cnonce(|| CNONCE.to_string())
}

fn counting_cnonce() -> impl FnMut() -> String + Send {
    let mut n = 0;
    move || {
        n += 1;
        format!("cn{n}")
    }
}

// ---- parsing ----

#[test]
fn parses_challenge_quirks() {
    let c = Challenge::parse(
        "digest   realm = \"a\\\"b\" ,nonce=abc123,  algorithm = md5-SESS , qop=auth,auth-int, \
         foo=\"bar, baz\", stale=TRUE,opaque=\"o\"",
    )
    .unwrap();
    assert_eq!(c.realm, "a\"b");
    assert_eq!(c.nonce, "abc123");
    assert_eq!(c.algorithm, Algorithm::Md5Sess);
    assert_eq!(c.qop, Some(vec![Qop::Auth, Qop::AuthInt]));
    assert!(c.stale);
    assert_eq!(c.opaque.as_deref(), Some("o"));

    let c = Challenge::parse("DIGEST realm=\"r\", nonce=\"n\"").unwrap();
    assert_eq!(c.algorithm, Algorithm::Md5);
    assert_eq!(c.qop, None);
    assert!(!c.stale);
    assert_eq!(c.pick_qop(), Ok(None));
}

#[test]
fn parses_several_challenges_in_one_value() {
    let all = Challenge::parse_all(
        "Basic realm=\"x\", Digest realm=\"r\", nonce=\"1\", algorithm=MD5, \
         Digest realm=\"r\", nonce=\"2\", algorithm=SHA-256, Digest realm=\"r\", nonce=\"3\", \
         algorithm=AKAv1-MD5",
    );
    assert_eq!(all.len(), 4);
    assert!(matches!(all[0], Err(AuthError::NotDigest(_))));
    assert_eq!(all[1].as_ref().unwrap().nonce, "1");
    assert_eq!(all[2].as_ref().unwrap().algorithm, Algorithm::Sha256);
    assert!(matches!(all[3], Err(AuthError::UnsupportedAlgorithm(_))));
}

#[test]
fn challenge_round_trips() {
    let c = Challenge {
        realm: "we \"quote\" \\ this".into(),
        nonce: "n".into(),
        opaque: Some("o".into()),
        algorithm: Algorithm::Sha256Sess,
        qop: Some(vec![Qop::Auth, Qop::AuthInt]),
        stale: true,
        domain: Some("sip:a sip:b".into()),
    };
    assert_eq!(Challenge::parse(&c.to_header_value()).unwrap(), c);
}

#[test]
fn parses_credentials() {
    let v = format!(
        "Digest username=\"{USER}\", realm=\"{REALM}\", uri=\"/dir/index.html\", \
         algorithm=MD5, nonce=\"{NONCE}\", nc=00000001, cnonce=\"{CNONCE}\", qop=auth, \
         response=\"8ca523f5e9506fed4657c9700eebdbec\", opaque=\"{OPAQUE}\", userhash=false"
    );
    let c = Credentials::parse(&v).unwrap();
    assert_eq!(c.username, USER);
    assert_eq!(c.nc, Some(1));
    assert_eq!(c.qop, Some(Qop::Auth));
    assert_eq!(c.cnonce.as_deref(), Some(CNONCE));
    assert_eq!(Credentials::parse(&c.to_header_value()).unwrap(), c);

    assert!(matches!(
        Credentials::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        Err(AuthError::NotDigest(_))
    ));
    assert!(matches!(
        Credentials::parse("Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\""),
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(
        Credentials::parse(
            "Digest username=a, realm=r, nonce=n, uri=u, response=x, qop=auth, nc=zz, cnonce=c"
        ),
        Err(AuthError::Malformed(_))
    ));
}

// ---- client ----

fn register(extra: &str) -> rsip::Request {
    let text = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKr1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{USER}@example.com>;tag=f1\r\nTo: <sip:{USER}@example.com>\r\n\
         Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContact: <sip:{USER}@192.0.2.1>\r\n{extra}\
         Content-Length: 0\r\n\r\n"
    );
    match crate::sip::wire::parse(text.as_bytes()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        other => panic!("{other:?}"),
    }
}

fn challenged(req: &rsip::Request, code: u16, values: &[&str]) -> rsip::Response {
    let mut r = make_response(req, code, Some("t1"));
    let kind = AuthKind::for_status(code).unwrap();
    for v in values {
        r.headers.push(kind.challenge_header(v.to_string()));
    }
    r
}

fn retry(out: ClientOutcome) -> Vec<AuthHeader> {
    match out {
        ClientOutcome::Retry(h) => h,
        other => panic!("expected a retry, got {other:?}"),
    }
}

#[test]
fn client_answers_401_with_authorization() {
    let mut c = DigestClient::new("alice", "secret").with_cnonce(counting_cnonce());
    let mut req = register("");
    let resp = challenged(
        &req,
        401,
        &["Digest realm=\"example.com\", nonce=\"n1\", qop=\"auth\""],
    );
    let h = retry(c.on_challenge(&resp, &req));
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].kind, AuthKind::Www);
    apply(&mut req, &h);
    let sent = AuthKind::credentials_in(&req.headers);
    assert_eq!(sent.len(), 1);
    let cr = Credentials::parse(&sent[0].1).unwrap();
    assert_eq!(cr.uri, "sip:example.com");
    assert_eq!(cr.nc, Some(1));
    let expected = response(&ResponseInput {
        algorithm: Algorithm::Md5,
        ha1: &ha1(Algorithm::Md5, "alice", "example.com", "secret"),
        nonce: "n1",
        cnonce: "cn1",
        nc: 1,
        qop: Some(Qop::Auth),
        method: "REGISTER",
        uri: "sip:example.com",
        body: b"",
    });
    assert_eq!(cr.response, expected);
}

#[test]
fn client_answers_407_with_proxy_authorization() {
    let mut c = DigestClient::new("alice", "secret");
    let req = register("");
    let resp = challenged(&req, 407, &["Digest realm=\"proxy\", nonce=\"p1\""]);
    let h = retry(c.on_challenge(&resp, &req));
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].name(), "Proxy-Authorization");
    assert!(matches!(
        h[0].to_header(),
        rsip::Header::ProxyAuthorization(_)
    ));
    // No qop: RFC 2069 style, no nc nor cnonce.
    let cr = Credentials::parse(&h[0].value).unwrap();
    assert_eq!((cr.qop, cr.nc, cr.cnonce), (None, None, None));
}

#[test]
fn client_gives_up_on_same_nonce_without_stale() {
    let mut c = DigestClient::new("alice", "wrong");
    let ch = "Digest realm=\"r\", nonce=\"n1\", qop=auth";
    let mut req = register("");
    let h = retry(c.on_challenge(&challenged(&req, 401, &[ch]), &req));
    apply(&mut req, &h);
    let out = c.on_challenge(&challenged(&req, 401, &[ch]), &req);
    assert_eq!(out, ClientOutcome::GiveUp(AuthError::Rejected("r".into())));
}

#[test]
fn client_gives_up_when_fresh_answer_gets_new_nonce_without_stale() {
    // Asterisk-style: a wrong password earns a new nonce, not stale.
    let mut c = DigestClient::new("alice", "wrong");
    let mut req = register("");
    let h = retry(c.on_challenge(
        &challenged(&req, 401, &["Digest realm=\"r\", nonce=\"n1\", qop=auth"]),
        &req,
    ));
    apply(&mut req, &h);
    let out = c.on_challenge(
        &challenged(&req, 401, &["Digest realm=\"r\", nonce=\"n2\", qop=auth"]),
        &req,
    );
    assert!(matches!(out, ClientOutcome::GiveUp(AuthError::Rejected(_))));
}

#[test]
fn client_retries_on_stale_then_stops_looping() {
    let mut c = DigestClient::new("alice", "secret");
    let mut req = register("");
    let h = retry(c.on_challenge(
        &challenged(&req, 401, &["Digest realm=\"r\", nonce=\"n1\", qop=auth"]),
        &req,
    ));
    apply(&mut req, &h);
    // stale: not a failure, answer the new nonce.
    let h = retry(c.on_challenge(
        &challenged(
            &req,
            401,
            &["Digest realm=\"r\", nonce=\"n2\", qop=auth, stale=true"],
        ),
        &req,
    ));
    let cr = Credentials::parse(&h[0].value).unwrap();
    assert_eq!((cr.nonce.as_str(), cr.nc), ("n2", Some(1)));
    apply(&mut req, &h);
    // Stale again for the fresh answer: the server is broken, do not loop.
    let out = c.on_challenge(
        &challenged(
            &req,
            401,
            &["Digest realm=\"r\", nonce=\"n3\", qop=auth, stale=true"],
        ),
        &req,
    );
    assert!(matches!(
        out,
        ClientOutcome::GiveUp(AuthError::StaleLoop(_))
    ));
}

#[test]
fn client_reuses_nonce_with_increasing_nc() {
    let mut c = DigestClient::new("alice", "secret").with_cnonce(counting_cnonce());
    let req = register("");
    assert!(c.preemptive(&req).is_empty());
    retry(c.on_challenge(
        &challenged(&req, 401, &["Digest realm=\"r\", nonce=\"n1\", qop=auth"]),
        &req,
    ));
    for want in 2..5u32 {
        let h = c.preemptive(&req);
        assert_eq!(h.len(), 1);
        let cr = Credentials::parse(&h[0].value).unwrap();
        assert_eq!(cr.nc, Some(want));
        assert!(h[0].value.contains(&format!("nc={want:08x}")));
        assert_eq!(cr.cnonce, Some(format!("cn{want}")));
    }
}

#[test]
fn client_retries_once_when_preemptive_nonce_expired_without_stale() {
    let mut c = DigestClient::new("alice", "secret");
    let mut req = register("");
    retry(c.on_challenge(
        &challenged(&req, 401, &["Digest realm=\"r\", nonce=\"n1\", qop=auth"]),
        &req,
    ));
    let h = c.preemptive(&req); // nc=2
    apply(&mut req, &h);
    // The server forgot n1 and does not say stale: one fresh try is fair.
    let h = retry(c.on_challenge(
        &challenged(&req, 401, &["Digest realm=\"r\", nonce=\"n2\", qop=auth"]),
        &req,
    ));
    apply(&mut req, &h);
    let out = c.on_challenge(
        &challenged(&req, 401, &["Digest realm=\"r\", nonce=\"n3\", qop=auth"]),
        &req,
    );
    assert!(matches!(out, ClientOutcome::GiveUp(_)));
}

#[test]
fn client_prefers_sha256() {
    let mut c = DigestClient::new("alice", "secret");
    let req = register("");
    let resp = challenged(
        &req,
        401,
        &[
            "Digest realm=\"r\", nonce=\"n\", algorithm=MD5, qop=\"auth\"",
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\"",
        ],
    );
    let h = retry(c.on_challenge(&resp, &req));
    assert_eq!(h.len(), 1);
    assert_eq!(
        Credentials::parse(&h[0].value).unwrap().algorithm,
        Algorithm::Sha256
    );
    // Same in one line, SHA-256 first, and with an unsupported one in between.
    let mut c = DigestClient::new("alice", "secret");
    let out = c.on_challenge_values(
        &[(
            AuthKind::Www,
            "Digest realm=r, nonce=n, algorithm=SHA-256, qop=auth, Digest realm=r, nonce=n, \
             algorithm=AKAv1-MD5, Digest realm=r, nonce=n, algorithm=MD5, qop=auth",
        )],
        &[],
        get_parts(),
    );
    let h = retry(out);
    assert_eq!(
        Credentials::parse(&h[0].value).unwrap().algorithm,
        Algorithm::Sha256
    );
}

#[test]
fn client_parse_quirks() {
    let mut c = DigestClient::new("alice", "secret");
    let h = retry(c.on_challenge_values(
        &[(
            AuthKind::Www,
            "digest  realm = r ,  nonce=\"x y\" ,algorithm=sha-256,, qop=auth-int , \
             x-unknown=\"what,ever\", stale=false",
        )],
        &[],
        RequestParts {
            method: "INVITE",
            uri: "sip:b@example.com",
            body: b"v=0\r\n",
        },
    ));
    let cr = Credentials::parse(&h[0].value).unwrap();
    assert_eq!(cr.realm, "r");
    assert_eq!(cr.nonce, "x y");
    assert_eq!(cr.algorithm, Algorithm::Sha256);
    assert_eq!(cr.qop, Some(Qop::AuthInt));
}

#[test]
fn client_realm_restriction_and_unusable_challenges() {
    let mut c = DigestClient::new("alice", "secret").with_realm("mine");
    let out = c.on_challenge_values(
        &[(AuthKind::Www, "Digest realm=\"theirs\", nonce=\"n\"")],
        &[],
        get_parts(),
    );
    assert_eq!(out, ClientOutcome::GiveUp(AuthError::NoUsableChallenge));
    let mut c = DigestClient::new("alice", "secret");
    for v in [
        "Basic realm=\"x\"",
        "Digest realm=\"r\", nonce=\"n\", algorithm=AKAv1-MD5",
        "Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf\"",
        "Digest nonce=\"n\"",
        "",
    ] {
        let out = c.on_challenge_values(&[(AuthKind::Www, v)], &[], get_parts());
        assert_eq!(
            out,
            ClientOutcome::GiveUp(AuthError::NoUsableChallenge),
            "{v}"
        );
    }
}

#[test]
fn client_answers_proxy_and_registrar_together() {
    let mut c = DigestClient::new("alice", "secret");
    let mut req = register("");
    let h = retry(c.on_challenge(
        &challenged(
            &req,
            407,
            &["Digest realm=\"proxy\", nonce=\"p\", qop=auth"],
        ),
        &req,
    ));
    apply(&mut req, &h);
    let h = retry(c.on_challenge(
        &challenged(&req, 401, &["Digest realm=\"reg\", nonce=\"r\", qop=auth"]),
        &req,
    ));
    // The proxy credentials ride along (nc 2), so the proxy does not challenge again.
    assert_eq!(h.len(), 2);
    let kinds: Vec<_> = h.iter().map(|h| h.kind).collect();
    assert!(kinds.contains(&AuthKind::Proxy) && kinds.contains(&AuthKind::Www));
    apply(&mut req, &h);
    assert_eq!(AuthKind::credentials_in(&req.headers).len(), 2);
}

#[test]
fn random_cnonces_and_secrets_differ() {
    let mut c = DigestClient::new("alice", "secret");
    let ch = [(AuthKind::Www, "Digest realm=r, nonce=n, qop=auth")];
    let a = retry(c.on_challenge_values(&ch, &[], get_parts()));
    let b = c.preemptive_values(get_parts());
    let cn = |h: &[AuthHeader]| Credentials::parse(&h[0].value).unwrap().cnonce.unwrap();
    assert_ne!(cn(&a), cn(&b));
    assert_eq!(cn(&a).len(), 32);
    let t0 = Instant::now();
    let n1 = DigestServer::new("r", LIFETIME, t0).challenge_values(t0, false);
    let n2 = DigestServer::new("r", LIFETIME, t0).challenge_values(t0, false);
    assert_ne!(n1, n2);
}

#[test]
fn client_debug_hides_password() {
    let c = DigestClient::new("alice", "hunter2");
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!format!("{:?}", Secret::Password("hunter2".into())).contains("hunter2"));
}

// ---- server ----

const LIFETIME: Duration = Duration::from_secs(300);

fn server(t0: Instant) -> DigestServer {
    DigestServer::with_secret("dialerd", LIFETIME, [7; 32], t0)
}

fn users(name: &str) -> Option<Secret> {
    match name {
        "alice" => Some(Secret::Password("secret".into())),
        "bob" => Some(Secret::Ha1 {
            algorithm: Algorithm::Sha256,
            hex: ha1(Algorithm::Sha256, "bob", "dialerd", "pw"),
        }),
        _ => None,
    }
}

/// Challenge from `srv`, answered by a client for `algorithm` only; returns the client and the
/// credentials value.
fn answer(
    srv: &mut DigestServer,
    now: Instant,
    user: &str,
    pass: &str,
    algorithm: Algorithm,
) -> (DigestClient, String) {
    let values = srv.challenge_values(now, false);
    let offered: Vec<(AuthKind, &str)> = values
        .iter()
        .filter(|v| Challenge::parse(v).unwrap().algorithm == algorithm)
        .map(|v| (AuthKind::Www, v.as_str()))
        .collect();
    assert_eq!(offered.len(), 1);
    let mut c = DigestClient::new(user, pass);
    let h = retry(c.on_challenge_values(&offered, &[], reg_parts()));
    (c, h[0].value.clone())
}

fn reg_parts() -> RequestParts<'static> {
    RequestParts {
        method: "REGISTER",
        uri: "sip:dialerd",
        body: b"",
    }
}

#[test]
fn server_offers_sha256_then_md5() {
    let t0 = Instant::now();
    let mut srv = server(t0);
    let v = srv.challenge_values(t0, false);
    assert_eq!(v.len(), 2);
    let a = Challenge::parse(&v[0]).unwrap();
    let b = Challenge::parse(&v[1]).unwrap();
    assert_eq!(
        (a.algorithm, b.algorithm),
        (Algorithm::Sha256, Algorithm::Md5)
    );
    assert_eq!(a.qop, Some(vec![Qop::Auth]));
    assert!(!a.stale);
    let h = srv.challenge_headers(t0, true, AuthKind::Proxy);
    assert!(matches!(h[0], rsip::Header::ProxyAuthenticate(_)));
    assert!(h[0].to_string().contains("stale=true"));
    // A client offered both picks SHA-256.
    let mut c = DigestClient::new("alice", "secret");
    let offered: Vec<(AuthKind, &str)> = v.iter().map(|v| (AuthKind::Www, v.as_str())).collect();
    let h = retry(c.on_challenge_values(&offered, &[], reg_parts()));
    assert_eq!(h.len(), 1);
    assert!(matches!(
        srv.verify(t0, reg_parts(), &h[0].value, users),
        Verdict::Ok {
            algorithm: Algorithm::Sha256,
            ..
        }
    ));
}

#[test]
fn server_round_trip_md5_and_sha256() {
    let t0 = Instant::now();
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let mut srv = server(t0);
        let (_, value) = answer(&mut srv, t0, "alice", "secret", alg);
        assert_eq!(
            srv.verify(t0, reg_parts(), &value, users),
            Verdict::Ok {
                username: "alice".into(),
                algorithm: alg
            }
        );
    }
    // HA1 stored for SHA-256 works for SHA-256 and is refused for MD5.
    let mut srv = server(t0);
    let (_, value) = answer(&mut srv, t0, "bob", "pw", Algorithm::Sha256);
    assert!(matches!(
        srv.verify(t0, reg_parts(), &value, users),
        Verdict::Ok { .. }
    ));
    let (_, value) = answer(&mut srv, t0, "bob", "pw", Algorithm::Md5);
    assert!(matches!(
        srv.verify(t0, reg_parts(), &value, users),
        Verdict::Failed(AuthError::NoSecretFor(..))
    ));
}

#[test]
fn server_round_trip_with_rsip_messages() {
    let t0 = Instant::now();
    let mut srv = server(t0);
    let mut req = register("");
    assert_eq!(
        srv.verify_request(t0, &req, AuthKind::Www, users),
        Verdict::Missing
    );
    let mut resp = make_response(&req, 401, Some("t1"));
    for h in srv.challenge_headers(t0, false, AuthKind::Www) {
        resp.headers.push(h);
    }
    let mut c = DigestClient::new(USER, "pw");
    let h = retry(c.on_challenge(&resp, &req));
    apply(&mut req, &h);
    let lookup = |u: &str| (u == USER).then(|| Secret::Password("pw".into()));
    assert!(matches!(
        srv.verify_request(t0, &req, AuthKind::Www, lookup),
        Verdict::Ok { .. }
    ));
    // Credentials in Proxy-Authorization are not ours when checking Authorization.
    assert_eq!(
        srv.verify_request(t0, &req, AuthKind::Proxy, lookup),
        Verdict::Missing
    );
    // Pre-emptive reuse on the refresh is accepted.
    let h = c.preemptive(&req);
    apply(&mut req, &h);
    assert!(matches!(
        srv.verify_request(t0 + Duration::from_secs(60), &req, AuthKind::Www, lookup),
        Verdict::Ok { .. }
    ));
}

#[test]
fn server_refuses_wrong_password_and_unknown_user() {
    let t0 = Instant::now();
    let mut srv = server(t0);
    let (_, value) = answer(&mut srv, t0, "alice", "wrong", Algorithm::Md5);
    assert_eq!(
        srv.verify(t0, reg_parts(), &value, users),
        Verdict::Failed(AuthError::WrongResponse("alice".into()))
    );
    let (_, value) = answer(&mut srv, t0, "mallory", "x", Algorithm::Md5);
    assert_eq!(
        srv.verify(t0, reg_parts(), &value, users),
        Verdict::Failed(AuthError::UnknownUser("mallory".into()))
    );
    assert_eq!(srv.failures(), 2);
    // Another method than the one signed: the digest does not match.
    let (_, value) = answer(&mut srv, t0, "alice", "secret", Algorithm::Md5);
    let invite = RequestParts {
        method: "INVITE",
        ..reg_parts()
    };
    assert!(matches!(
        srv.verify(t0, invite, &value, users),
        Verdict::Failed(AuthError::WrongResponse(_))
    ));
    assert_eq!(srv.failures(), 3);
    // Wrong realm or another scheme: not for us, so just challenge.
    assert_eq!(
        srv.verify(t0, reg_parts(), "Basic YWxpY2U6c2VjcmV0", users),
        Verdict::Missing
    );
    let other = value.replace("realm=\"dialerd\"", "realm=\"other\"");
    assert_eq!(srv.verify(t0, reg_parts(), &other, users), Verdict::Missing);
    assert_eq!(srv.failures(), 3);
}

#[test]
fn server_refuses_replay_and_accepts_increasing_nc() {
    let t0 = Instant::now();
    let mut srv = server(t0);
    let (mut c, first) = answer(&mut srv, t0, "alice", "secret", Algorithm::Sha256);
    assert!(matches!(
        srv.verify(t0, reg_parts(), &first, users),
        Verdict::Ok { .. }
    ));
    // The very same request again.
    assert_eq!(
        srv.verify(t0, reg_parts(), &first, users),
        Verdict::Stale(StaleReason::Replayed)
    );
    let second = c.preemptive_values(reg_parts());
    let third = c.preemptive_values(reg_parts());
    // nc 3 then nc 2: the late lower one is a replay.
    assert!(matches!(
        srv.verify(t0, reg_parts(), &third[0].value, users),
        Verdict::Ok { .. }
    ));
    assert_eq!(
        srv.verify(t0, reg_parts(), &second[0].value, users),
        Verdict::Stale(StaleReason::Replayed)
    );
    let fourth = c.preemptive_values(reg_parts());
    assert!(matches!(
        srv.verify(t0, reg_parts(), &fourth[0].value, users),
        Verdict::Ok { .. }
    ));
    // Replays are not password failures.
    assert_eq!(srv.failures(), 0);
}

#[test]
fn server_nonce_without_qop_is_single_use() {
    let t0 = Instant::now();
    let mut srv = server(t0);
    let nonce = Challenge::parse(&srv.challenge_values(t0, false)[1])
        .unwrap()
        .nonce;
    let mut c = DigestClient::new("alice", "secret");
    let ch = format!("Digest realm=\"dialerd\", nonce=\"{nonce}\"");
    let h = retry(c.on_challenge_values(&[(AuthKind::Www, &ch)], &[], reg_parts()));
    assert!(!h[0].value.contains("nc="));
    assert!(matches!(
        srv.verify(t0, reg_parts(), &h[0].value, users),
        Verdict::Ok { .. }
    ));
    let again = c.preemptive_values(reg_parts());
    assert_eq!(
        srv.verify(t0, reg_parts(), &again[0].value, users),
        Verdict::Stale(StaleReason::Replayed)
    );
}

#[test]
fn server_judges_no_password_on_an_expired_nonce() {
    let t0 = Instant::now();
    let mut srv = server(t0);
    let late = t0 + LIFETIME + Duration::from_secs(1);
    let (_, good) = answer(&mut srv, t0, "alice", "secret", Algorithm::Md5);
    assert_eq!(
        srv.verify(late, reg_parts(), &good, users),
        Verdict::Stale(StaleReason::Expired)
    );
    // A wrong password gets the same answer: an old nonce is no oracle for guessing.
    let (_, bad) = answer(&mut srv, t0, "alice", "nope", Algorithm::Md5);
    assert_eq!(
        srv.verify(late, reg_parts(), &bad, users),
        Verdict::Stale(StaleReason::Expired)
    );
    assert_eq!(srv.failures(), 0);
    // Just inside the lifetime it is fine.
    let (_, good) = answer(&mut srv, t0, "alice", "secret", Algorithm::Md5);
    assert!(matches!(
        srv.verify(t0 + LIFETIME, reg_parts(), &good, users),
        Verdict::Ok { .. }
    ));
}

#[test]
fn server_nonce_serves_a_bounded_number_of_failures() {
    let t0 = Instant::now();
    let mut srv = server(t0);
    // One nonce, wrong guesses with a rising nc.
    let (mut guesser, first) = answer(&mut srv, t0, "alice", "guess", Algorithm::Md5);
    let mut verdicts = vec![srv.verify(t0, reg_parts(), &first, users)];
    for _ in 0..5 {
        let next = guesser.preemptive_values(reg_parts());
        verdicts.push(srv.verify(t0, reg_parts(), &next[0].value, users));
    }
    let judged = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Failed(AuthError::WrongResponse(_))))
        .count();
    assert_eq!(judged as u32, MAX_FAILURES_PER_NONCE, "{verdicts:?}");
    assert_eq!(
        verdicts.last(),
        Some(&Verdict::Stale(StaleReason::Spent)),
        "{verdicts:?}"
    );
    assert_eq!(srv.failures(), u64::from(MAX_FAILURES_PER_NONCE));
    // Once spent the nonce judges nothing, not even the right password.
    let c = Credentials::parse(&first).unwrap();
    let ch = format!(
        "Digest realm=\"dialerd\", nonce=\"{}\", qop=auth, algorithm=MD5",
        c.nonce
    );
    let mut phone = DigestClient::new("alice", "secret");
    let h = retry(phone.on_challenge_values(&[(AuthKind::Www, &ch)], &[], reg_parts()));
    assert_eq!(
        srv.verify(t0, reg_parts(), &h[0].value, users),
        Verdict::Stale(StaleReason::Spent)
    );
    // A fresh nonce works for the right password.
    let (_, good) = answer(&mut srv, t0, "alice", "secret", Algorithm::Md5);
    assert!(matches!(
        srv.verify(t0, reg_parts(), &good, users),
        Verdict::Ok { .. }
    ));
}

/// A client answer for an arbitrary nonce, as an attacker who knows the password (or the
/// phone itself) would compute it.
fn answer_for_nonce(nonce: &str) -> String {
    let ch = format!("Digest realm=\"dialerd\", nonce=\"{nonce}\", qop=auth");
    let mut c = DigestClient::new("alice", "secret");
    retry(c.on_challenge_values(&[(AuthKind::Www, &ch)], &[], reg_parts()))[0]
        .value
        .clone()
}

#[test]
fn server_refuses_forged_nonces() {
    let t0 = Instant::now();
    let mut srv = server(t0);
    let nonce = Challenge::parse(&srv.challenge_values(t0, false)[0])
        .unwrap()
        .nonce;
    assert_eq!(nonce.len(), 64);
    // Push the issue time forward so the nonce would live longer.
    let later = t0 + LIFETIME * 2;
    let tampered = format!("{:016x}{}", 600_000u64, &nonce[16..]);
    assert_eq!(
        srv.verify(later, reg_parts(), &answer_for_nonce(&tampered), users),
        Verdict::Stale(StaleReason::Unknown)
    );
    // Made-up nonces, and one from another server secret (e.g. before a restart).
    for forged in [
        "deadbeef".to_string(),
        "0".repeat(64),
        Challenge::parse(
            &DigestServer::with_secret("dialerd", LIFETIME, [8; 32], t0)
                .challenge_values(t0, false)[0],
        )
        .unwrap()
        .nonce,
    ] {
        assert_eq!(
            srv.verify(t0, reg_parts(), &answer_for_nonce(&forged), users),
            Verdict::Stale(StaleReason::Unknown),
            "{forged}"
        );
    }
    // A wrong password on a made-up nonce learns nothing either.
    let ch = "Digest realm=\"dialerd\", nonce=\"deadbeef\", qop=auth";
    let mut guesser = DigestClient::new("alice", "guess");
    let h = retry(guesser.on_challenge_values(&[(AuthKind::Www, ch)], &[], reg_parts()));
    assert_eq!(
        srv.verify(t0, reg_parts(), &h[0].value, users),
        Verdict::Stale(StaleReason::Unknown)
    );
    assert_eq!(srv.failures(), 0);
    // The genuine one still works.
    assert!(matches!(
        srv.verify(t0, reg_parts(), &answer_for_nonce(&nonce), users),
        Verdict::Ok { .. }
    ));
}

#[test]
fn server_table_stays_bounded() {
    let t0 = Instant::now();
    let mut srv = server(t0).with_max_tracked(64);
    let mut max_seen = 0;
    let mut oldest: Option<String> = None;
    for i in 0..1000u64 {
        let now = t0 + Duration::from_millis(i * 10);
        let (_, v) = answer(&mut srv, now, "alice", "secret", Algorithm::Md5);
        assert!(matches!(
            srv.verify(now, reg_parts(), &v, users),
            Verdict::Ok { .. }
        ));
        oldest.get_or_insert(v);
        max_seen = max_seen.max(srv.tracked_nonces());
    }
    assert!(max_seen <= 64, "{max_seen}");
    // The first nonce's replay state was dropped: it must not count as unused again.
    let now = t0 + Duration::from_millis(10_000);
    let c = Credentials::parse(oldest.as_ref().unwrap()).unwrap();
    let mut c2 = DigestClient::new("alice", "secret");
    let ch = format!(
        "Digest realm=\"dialerd\", nonce=\"{}\", qop=auth, algorithm=MD5",
        c.nonce
    );
    let h = retry(c2.on_challenge_values(&[(AuthKind::Www, &ch)], &[], reg_parts()));
    assert_eq!(
        srv.verify(now, reg_parts(), &h[0].value, users),
        Verdict::Stale(StaleReason::Forgotten)
    );
    // Expiry alone empties the table.
    let mut srv = server(t0);
    for i in 0..100u64 {
        let now = t0 + Duration::from_millis(i);
        let (_, v) = answer(&mut srv, now, "alice", "secret", Algorithm::Md5);
        srv.verify(now, reg_parts(), &v, users);
    }
    assert_eq!(srv.tracked_nonces(), 100);
    let late = t0 + LIFETIME * 2;
    let (_, v) = answer(&mut srv, late, "alice", "secret", Algorithm::Md5);
    srv.verify(late, reg_parts(), &v, users);
    assert_eq!(srv.tracked_nonces(), 1);
}

#[test]
fn server_accepts_uppercase_hex_response() {
    let t0 = Instant::now();
    let mut srv = server(t0);
    let (_, v) = answer(&mut srv, t0, "alice", "secret", Algorithm::Md5);
    let c = Credentials::parse(&v).unwrap();
    let upper = Credentials {
        response: c.response.to_ascii_uppercase(),
        ..c
    };
    assert!(matches!(
        srv.verify(t0, reg_parts(), &upper.to_header_value(), users),
        Verdict::Ok { .. }
    ));
}

// ---- robustness ----

/// Deterministic mutations of real values: byte flips, truncations, duplications, insertions
/// of the characters the lexer cares about (xorshift, so a failure reproduces).
fn mutations(seed_values: &[String], n: usize) -> Vec<String> {
    let specials = ['"', '\\', ',', '=', ' ', '\u{e9}', '\0', 'D'];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let r = x;
        let base: Vec<char> = seed_values[i % seed_values.len()].chars().collect();
        let mut v = base.clone();
        let pos = (r as usize >> 8) % (v.len() + 1);
        match r % 5 {
            0 => v.truncate(pos),
            1 => v.insert(pos, specials[(r >> 40) as usize % specials.len()]),
            2 if pos < v.len() => v[pos] = char::from((r >> 32) as u8 & 0x7f),
            3 => v.extend(base[pos..].iter().copied()),
            _ if !v.is_empty() => {
                let at = pos.min(v.len() - 1);
                v.remove(at);
            }
            _ => {}
        }
        out.push(v.into_iter().collect());
    }
    out
}

#[test]
fn garbage_never_panics() {
    let t0 = Instant::now();
    let mut srv = server(t0);
    let challenges = srv.challenge_values(t0, true);
    let (_, creds) = answer(&mut srv, t0, "alice", "secret", Algorithm::Sha256);
    let mut seeds = challenges.clone();
    seeds.push(creds);
    seeds.push(
        "Digest realm=\"a\\\"b\", nonce=x, qop=auth,auth-int, Basic, Digest realm=r, nonce=\""
            .into(),
    );
    seeds.push("\"\"\"===,,,\\".into());
    for v in mutations(&seeds, 600) {
        let _ = Challenge::parse_all(&v);
        let _ = Credentials::parse(&v);
        let _ = srv.verify(t0, reg_parts(), &v, users);
        let mut c = DigestClient::new("alice", "secret");
        let _ = c.on_challenge_values(&[(AuthKind::Www, &v)], &[(AuthKind::Www, &v)], reg_parts());
    }
    for v in [
        "",
        " ",
        ",",
        "=",
        "\"",
        "\\",
        "Digest",
        "Digest ,",
        "Digest realm",
        "Digest =x",
    ] {
        let _ = Challenge::parse_all(v);
        let _ = Credentials::parse(v);
        let _ = srv.verify(t0, reg_parts(), v, users);
    }
}
