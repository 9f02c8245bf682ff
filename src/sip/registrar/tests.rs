use super::*;
use crate::sip::auth::{apply, ClientOutcome, DigestClient};

/// Where the phones of these tests send from.
const PHONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10));
/// Where a password guesser sends from.
const GUESSER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 66));

fn registrar(t0: Instant) -> Registrar {
    Registrar::new(
        RegistrarConfig {
            realm: "dialerd".into(),
            algorithms: vec![
                crate::sip::auth::Algorithm::Sha256,
                crate::sip::auth::Algorithm::Md5,
            ],
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
        },
        HashMap::from([("agent1".to_string(), "correct horse".to_string())]),
        t0,
    )
}

fn register(user: &str, cseq: u32, contacts: &[&str], expires: Option<u32>) -> rsip::Request {
    let mut text = format!(
        "REGISTER sip:dialerd.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKr{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@dialerd.example>;tag=r1\r\nTo: <sip:{user}@dialerd.example>\r\n\
         Call-ID: reg-1@192.0.2.10\r\nCSeq: {cseq} REGISTER\r\n"
    );
    for c in contacts {
        text.push_str(&format!("Contact: {c}\r\n"));
    }
    if let Some(e) = expires {
        text.push_str(&format!("Expires: {e}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    match crate::sip::wire::parse(text.as_bytes()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

/// Sends `req`, answers the challenge with `password`, returns the final response.
fn with_auth(
    r: &mut Registrar,
    now: Instant,
    req: rsip::Request,
    password: &str,
) -> rsip::Response {
    with_auth_from(r, now, PHONE, req, password)
}

/// As [`with_auth`], from `source`.
fn with_auth_from(
    r: &mut Registrar,
    now: Instant,
    source: IpAddr,
    mut req: rsip::Request,
    password: &str,
) -> rsip::Response {
    let challenge = r.handle(now, &req, source, "t");
    assert_eq!(challenge.status_code.code(), 401);
    let user = super::uri_user(&header_value(&req, "To").unwrap()).unwrap();
    let mut client = DigestClient::new(user, password);
    let ClientOutcome::Retry(headers) = client.on_challenge(&challenge, &req) else {
        panic!("client gave up")
    };
    apply(&mut req, &headers);
    r.handle(now, &req, source, "t")
}

fn retry_after(resp: &rsip::Response) -> Option<u64> {
    resp.headers.iter().find_map(|h| match h {
        Header::Other(n, v) if n.eq_ignore_ascii_case("Retry-After") => v.parse().ok(),
        _ => None,
    })
}

fn contacts(resp: &rsip::Response) -> Vec<String> {
    resp.headers
        .iter()
        .filter_map(|h| match h {
            Header::Contact(c) => Some(c.value().to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn register_with_right_password_binds_and_lists_contacts() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    let req = register("agent1", 1, &["<sip:agent1@192.0.2.10:5060>"], Some(300));
    let ok = with_auth(&mut r, t0, req, "correct horse");
    assert_eq!(ok.status_code.code(), 200);
    assert_eq!(
        contacts(&ok),
        vec!["<sip:agent1@192.0.2.10:5060>;expires=300"]
    );
    assert_eq!(r.lookup("agent1")[0].contact, "sip:agent1@192.0.2.10:5060");
    assert_eq!(r.binding_count(), 1);
}

#[test]
fn wrong_password_is_refused_and_counted() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    let req = register("agent1", 1, &["<sip:agent1@192.0.2.10>"], Some(300));
    assert_eq!(with_auth(&mut r, t0, req, "wrong").status_code.code(), 403);
    assert_eq!(r.auth_failures(), 1);
    assert_eq!(r.binding_count(), 0);
}

#[test]
fn replayed_request_is_challenged_again_not_applied() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    let mut req = register("agent1", 1, &["<sip:agent1@192.0.2.10>"], Some(300));
    let challenge = r.handle(t0, &req, PHONE, "t");
    let mut client = DigestClient::new("agent1", "correct horse");
    let ClientOutcome::Retry(h) = client.on_challenge(&challenge, &req) else {
        panic!()
    };
    apply(&mut req, &h);
    assert_eq!(r.handle(t0, &req, PHONE, "t").status_code.code(), 200);
    let replay = r.handle(t0, &req, PHONE, "t");
    assert_eq!(
        replay.status_code.code(),
        401,
        "a replayed nonce count must not pass"
    );
}

#[test]
fn several_contacts_expiry_and_removal() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    let req = register(
        "agent1",
        1,
        &["<sip:a@192.0.2.10>;expires=120", "<sip:b@192.0.2.11>"],
        Some(600),
    );
    let ok = with_auth(&mut r, t0, req, "correct horse");
    let mut got = contacts(&ok);
    got.sort();
    assert_eq!(
        got,
        vec![
            "<sip:a@192.0.2.10>;expires=120",
            "<sip:b@192.0.2.11>;expires=600"
        ]
    );
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(120)));
    r.handle_timeout(t0 + Duration::from_secs(121));
    assert_eq!(r.lookup("agent1").len(), 1);
    assert_eq!(r.lookup("agent1")[0].contact, "sip:b@192.0.2.11");

    // Expires: 0 on one contact removes just that one.
    let req = register("agent1", 2, &["<sip:b@192.0.2.11>"], Some(0));
    assert_eq!(
        with_auth(&mut r, t0 + Duration::from_secs(130), req, "correct horse")
            .status_code
            .code(),
        200
    );
    assert_eq!(r.binding_count(), 0);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn star_removes_all_and_needs_expires_zero() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    let req = register(
        "agent1",
        1,
        &["<sip:a@192.0.2.10>", "<sip:b@192.0.2.11>"],
        Some(600),
    );
    with_auth(&mut r, t0, req, "correct horse");
    assert_eq!(r.binding_count(), 2);
    let bad = register("agent1", 2, &["*"], Some(60));
    assert_eq!(
        with_auth(&mut r, t0, bad, "correct horse")
            .status_code
            .code(),
        400
    );
    let good = register("agent1", 3, &["*"], Some(0));
    let ok = with_auth(&mut r, t0, good, "correct horse");
    assert_eq!(ok.status_code.code(), 200);
    assert!(contacts(&ok).is_empty());
    assert_eq!(r.binding_count(), 0);
}

#[test]
fn too_brief_interval_gets_423_and_long_ones_are_shortened() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    let req = register("agent1", 1, &["<sip:a@192.0.2.10>"], Some(10));
    let resp = with_auth(&mut r, t0, req, "correct horse");
    assert_eq!(resp.status_code.code(), 423);
    assert!(resp
        .headers
        .iter()
        .any(|h| matches!(h, Header::Other(n, v) if n == "Min-Expires" && v == "60")));
    let req = register("agent1", 2, &["<sip:a@192.0.2.10>"], Some(86400));
    let ok = with_auth(&mut r, t0, req, "correct horse");
    assert_eq!(contacts(&ok), vec!["<sip:a@192.0.2.10>;expires=3600"]);
}

#[test]
fn registering_someone_elses_address_is_forbidden() {
    let t0 = Instant::now();
    let mut r = Registrar::new(
        RegistrarConfig {
            realm: "dialerd".into(),
            algorithms: vec![
                crate::sip::auth::Algorithm::Sha256,
                crate::sip::auth::Algorithm::Md5,
            ],
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
        },
        HashMap::from([
            ("agent1".into(), "correct horse".into()),
            ("agent2".into(), "battery staple".into()),
        ]),
        t0,
    );
    // agent2's credentials, agent1's address of record.
    let mut req = register("agent1", 1, &["<sip:x@192.0.2.66>"], Some(300));
    let challenge = r.handle(t0, &req, PHONE, "t");
    let mut client = DigestClient::new("agent2", "battery staple");
    let ClientOutcome::Retry(h) = client.on_challenge(&challenge, &req) else {
        panic!()
    };
    apply(&mut req, &h);
    assert_eq!(r.handle(t0, &req, PHONE, "t").status_code.code(), 403);
    assert_eq!(r.binding_count(), 0);
}

#[test]
fn older_request_of_same_call_id_does_not_undo_newer() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    let newer = register("agent1", 5, &["<sip:a@192.0.2.10>"], Some(300));
    with_auth(&mut r, t0, newer, "correct horse");
    let older = register("agent1", 4, &["<sip:a@192.0.2.10>"], Some(0));
    assert_eq!(
        with_auth(&mut r, t0, older, "correct horse")
            .status_code
            .code(),
        200
    );
    assert_eq!(
        r.binding_count(),
        1,
        "CSeq 4 must not remove what CSeq 5 set"
    );
}

#[test]
fn a_guessing_source_gets_503_with_retry_after_and_no_verdict() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    let guess = |n| register("agent1", n, &["<sip:agent1@203.0.113.66>"], Some(300));
    // A request with the right password, kept for later.
    let mut right = guess(100);
    let challenge = r.handle(t0, &right, GUESSER, "t");
    let mut client = DigestClient::new("agent1", "correct horse");
    let ClientOutcome::Retry(h) = client.on_challenge(&challenge, &right) else {
        panic!()
    };
    apply(&mut right, &h);

    for n in 1..=6 {
        let resp = with_auth_from(&mut r, t0, GUESSER, guess(n), "wrong");
        assert_eq!(resp.status_code.code(), 403, "guess {n}");
    }
    // Blocked now: refused before any check, so even the right password gets 503, not a
    // verdict either way.
    let resp = r.handle(t0, &right, GUESSER, "t");
    assert_eq!(resp.status_code.code(), 503, "{resp}");
    assert_eq!(retry_after(&resp), Some(1));
    // After the block one more guess is judged, and the next block is twice as long.
    let later = t0 + Duration::from_secs(1);
    let resp = with_auth_from(&mut r, later, GUESSER, guess(7), "wrong");
    assert_eq!(resp.status_code.code(), 403);
    let resp = r.handle(later, &right, GUESSER, "t");
    assert_eq!(resp.status_code.code(), 503, "{resp}");
    assert_eq!(retry_after(&resp), Some(2));
    assert_eq!(r.auth_failures(), 7);
    assert_eq!(r.throttled(), 2);
    assert_eq!(r.binding_count(), 0);
    // The agent's own phone is not held by the guesser's block.
    let ok = with_auth(&mut r, later, guess(8), "correct horse");
    assert_eq!(ok.status_code.code(), 200);
}

#[test]
fn one_nonce_serves_a_few_failures_then_a_fresh_challenge() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    let mut req = register("agent1", 1, &["<sip:agent1@203.0.113.66>"], Some(300));
    let challenge = r.handle(t0, &req, GUESSER, "t");
    let mut client = DigestClient::new("agent1", "wrong");
    let ClientOutcome::Retry(h) = client.on_challenge(&challenge, &req) else {
        panic!()
    };
    apply(&mut req, &h);
    let mut codes = vec![r.handle(t0, &req, GUESSER, "t").status_code.code()];
    for _ in 0..3 {
        // The same nonce again with a rising nonce count.
        let h = client.preemptive(&req);
        apply(&mut req, &h);
        let resp = r.handle(t0, &req, GUESSER, "t");
        codes.push(resp.status_code.code());
        if resp.status_code.code() == 401 {
            assert!(resp.to_string().contains("stale=true"), "{resp}");
        }
    }
    assert_eq!(codes, vec![403, 403, 403, 401]);
}

/// A store login for `name` with `password` over realm `dialerd`.
fn store_login(name: &str, password: &str, digest: AccountDigest) -> StoreAccount {
    use crate::sip::auth::{ha1, Algorithm};
    StoreAccount {
        username: name.into(),
        realm: "dialerd".into(),
        ha1_md5: ha1(Algorithm::Md5, name, "dialerd", password),
        ha1_sha256: ha1(Algorithm::Sha256, name, "dialerd", password),
        digest,
    }
}

fn set(r: &mut Registrar, user_id: i64, account: Option<StoreAccount>) {
    r.update_account(AccountUpdate::Set { user_id, account });
}

/// The algorithms a challenge offers, in order.
fn offered(resp: &rsip::Response) -> Vec<String> {
    crate::sip::auth::AuthKind::challenges_in(&resp.headers)
        .into_iter()
        .filter_map(|(_, v)| crate::sip::auth::Challenge::parse(&v).ok())
        .map(|c| c.algorithm.to_string())
        .collect()
}

fn invite(from_user: &str) -> rsip::Request {
    let text = format!(
        "INVITE sip:1000@dialerd.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKi1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{from_user}@dialerd.example>;tag=i1\r\nTo: <sip:1000@dialerd.example>\r\n\
         Call-ID: inv-1@192.0.2.10\r\nCSeq: 1 INVITE\r\nContact: <sip:{from_user}@192.0.2.10>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match crate::sip::wire::parse(text.as_bytes()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

#[test]
fn a_store_login_registers_with_its_hashes_and_is_offered_md5_only() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    set(
        &mut r,
        7,
        Some(store_login("bob", "bobs secret", AccountDigest::Md5)),
    );
    let req = register("bob", 1, &["<sip:bob@192.0.2.10>"], Some(300));
    let challenge = r.handle(t0, &req, PHONE, "t");
    assert_eq!(offered(&challenge), ["MD5"]);
    // `[[agents]]` keep `sip.digest_algorithms`; names that are no account get MD5 too.
    let cfg = r.handle(t0, &register("agent1", 1, &[], None), PHONE, "t");
    assert_eq!(offered(&cfg), ["SHA-256", "MD5"]);
    let nobody = r.handle(t0, &register("nobody", 1, &[], None), PHONE, "t");
    assert_eq!(offered(&nobody), ["MD5"]);
    assert_eq!(
        with_auth(&mut r, t0, req, "bobs secret").status_code.code(),
        200
    );
    assert_eq!(r.lookup("bob").len(), 1);
    let req = register("bob", 2, &["<sip:bob@192.0.2.10>"], Some(300));
    assert_eq!(
        with_auth(&mut r, t0, req, "bobs secreT").status_code.code(),
        403
    );
}

#[test]
fn a_sha256_login_is_offered_and_accepts_sha256_only() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    set(
        &mut r,
        7,
        Some(store_login("bob", "bobs secret", AccountDigest::Sha256)),
    );
    let mut req = register("bob", 1, &["<sip:bob@192.0.2.10>"], Some(300));
    let challenge = r.handle(t0, &req, PHONE, "t");
    assert_eq!(offered(&challenge), ["SHA-256"]);
    // An MD5 answer on the same nonce is refused though the password is right.
    let md5 = crate::sip::auth::AuthKind::challenges_in(&challenge.headers)[0]
        .1
        .replace("SHA-256", "MD5");
    let forged = make_response(&req, 401, Some("t"));
    let mut forged = forged;
    forged
        .headers
        .push(crate::sip::auth::AuthKind::Www.challenge_header(md5));
    let mut client = DigestClient::new("bob", "bobs secret");
    let ClientOutcome::Retry(h) = client.on_challenge(&forged, &req) else {
        panic!("client gave up")
    };
    apply(&mut req, &h);
    assert_eq!(r.handle(t0, &req, PHONE, "t").status_code.code(), 403);
    let req = register("bob", 2, &["<sip:bob@192.0.2.10>"], Some(300));
    assert_eq!(
        with_auth(&mut r, t0, req, "bobs secret").status_code.code(),
        200
    );
}

#[test]
fn a_changed_or_removed_login_loses_its_bindings_and_old_password_at_once() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    set(
        &mut r,
        7,
        Some(store_login("bob", "first secret", AccountDigest::Md5)),
    );
    let req = register("bob", 1, &["<sip:bob@192.0.2.10>"], Some(300));
    assert_eq!(
        with_auth(&mut r, t0, req, "first secret")
            .status_code
            .code(),
        200
    );
    // The same login again (e.g. only its tasks changed): the binding stays.
    set(
        &mut r,
        7,
        Some(store_login("bob", "first secret", AccountDigest::Md5)),
    );
    assert_eq!(r.binding_count(), 1);
    set(
        &mut r,
        7,
        Some(store_login("bob", "second secret", AccountDigest::Md5)),
    );
    assert_eq!(r.binding_count(), 0, "a new password drops the bindings");
    let req = register("bob", 2, &["<sip:bob@192.0.2.10>"], Some(300));
    assert_eq!(
        with_auth(&mut r, t0, req, "first secret")
            .status_code
            .code(),
        403
    );
    let req = register("bob", 3, &["<sip:bob@192.0.2.10>"], Some(300));
    assert_eq!(
        with_auth(&mut r, t0, req, "second secret")
            .status_code
            .code(),
        200
    );
    // Renamed: the old name is gone.
    set(
        &mut r,
        7,
        Some(store_login("robert", "second secret", AccountDigest::Md5)),
    );
    assert_eq!(r.binding_count(), 0);
    let req = register("bob", 4, &["<sip:bob@192.0.2.10>"], Some(300));
    assert_eq!(
        with_auth(&mut r, t0, req, "second secret")
            .status_code
            .code(),
        403
    );
    set(&mut r, 7, None);
    let req = register("robert", 1, &["<sip:robert@192.0.2.10>"], Some(300));
    assert_eq!(
        with_auth(&mut r, t0, req, "second secret")
            .status_code
            .code(),
        403
    );
}

#[test]
fn a_login_hashed_for_another_realm_or_named_like_a_config_account_is_ignored() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    let mut other = store_login("bob", "bobs secret", AccountDigest::Md5);
    other.realm = "elsewhere".into();
    set(&mut r, 7, Some(other));
    let req = register("bob", 1, &["<sip:bob@192.0.2.10>"], Some(300));
    assert_eq!(
        with_auth(&mut r, t0, req, "bobs secret").status_code.code(),
        403
    );
    set(
        &mut r,
        8,
        Some(store_login(
            "agent1",
            "not the config one",
            AccountDigest::Md5,
        )),
    );
    let req = register("agent1", 1, &["<sip:agent1@192.0.2.10>"], Some(300));
    assert_eq!(
        with_auth(&mut r, t0, req, "not the config one")
            .status_code
            .code(),
        403
    );
    let req = register("agent1", 2, &["<sip:agent1@192.0.2.10>"], Some(300));
    assert_eq!(
        with_auth(&mut r, t0, req, "correct horse")
            .status_code
            .code(),
        200
    );
}

#[test]
fn invites_are_challenged_only_from_a_registered_phone_and_pass_with_its_credentials() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    set(
        &mut r,
        7,
        Some(store_login("bob", "bobs secret", AccountDigest::Md5)),
    );
    // Not registered yet: refused outright, no challenge that would confirm the name.
    let mut inv = invite("bob");
    assert!(
        matches!(r.authorize_invite(t0, &inv, PHONE, "t"), InviteAuth::Refuse(x) if x.status_code.code() == 403)
    );
    let req = register("bob", 1, &["<sip:bob@192.0.2.10>"], Some(300));
    assert_eq!(
        with_auth(&mut r, t0, req, "bobs secret").status_code.code(),
        200
    );
    // Registered, but the INVITE comes from elsewhere.
    assert!(matches!(
        r.authorize_invite(t0, &inv, GUESSER, "t"),
        InviteAuth::Refuse(_)
    ));
    assert!(
        !r.may_authenticate_invite(&inv, PHONE),
        "no credentials yet"
    );
    let InviteAuth::Challenge(challenge) = r.authorize_invite(t0, &inv, PHONE, "t") else {
        panic!("a registered phone is challenged")
    };
    assert_eq!(challenge.status_code.code(), 407);
    assert_eq!(offered(&challenge), ["MD5"]);
    let mut wrong = inv.clone();
    let mut client = DigestClient::new("bob", "wrong secret");
    let ClientOutcome::Retry(h) = client.on_challenge(&challenge, &wrong) else {
        panic!()
    };
    apply(&mut wrong, &h);
    assert!(
        matches!(r.authorize_invite(t0, &wrong, PHONE, "t"), InviteAuth::Refuse(x) if x.status_code.code() == 403)
    );
    let mut client = DigestClient::new("bob", "bobs secret");
    let ClientOutcome::Retry(h) = client.on_challenge(&challenge, &inv) else {
        panic!()
    };
    apply(&mut inv, &h);
    assert!(r.may_authenticate_invite(&inv, PHONE));
    assert!(!r.may_authenticate_invite(&inv, GUESSER));
    match r.authorize_invite(t0, &inv, PHONE, "t") {
        InviteAuth::Authenticated { user } => assert_eq!(user, "bob"),
        other => panic!("{other:?}"),
    }
    // Removed: the next INVITE is refused, however right its credentials.
    set(&mut r, 7, None);
    assert!(matches!(
        r.authorize_invite(t0, &inv, PHONE, "t"),
        InviteAuth::Refuse(_)
    ));
}

#[test]
fn an_invite_authenticated_as_someone_else_than_its_from_is_refused() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    set(
        &mut r,
        7,
        Some(store_login("bob", "bobs secret", AccountDigest::Md5)),
    );
    set(
        &mut r,
        8,
        Some(store_login("eve", "eves secret", AccountDigest::Md5)),
    );
    for (user, pw) in [("bob", "bobs secret"), ("eve", "eves secret")] {
        let req = register(user, 1, &[&format!("<sip:{user}@192.0.2.10>")], Some(300));
        assert_eq!(with_auth(&mut r, t0, req, pw).status_code.code(), 200);
    }
    let mut inv = invite("bob");
    let InviteAuth::Challenge(challenge) = r.authorize_invite(t0, &inv, PHONE, "t") else {
        panic!()
    };
    let mut client = DigestClient::new("eve", "eves secret");
    let ClientOutcome::Retry(h) = client.on_challenge(&challenge, &inv) else {
        panic!()
    };
    apply(&mut inv, &h);
    assert!(
        matches!(r.authorize_invite(t0, &inv, PHONE, "t"), InviteAuth::Refuse(x) if x.status_code.code() == 403)
    );
}

#[test]
fn a_register_through_proxies_keeps_its_path_and_the_200_returns_it() {
    let t0 = Instant::now();
    let mut r = registrar(t0);
    let mut req = register("agent1", 1, &["<sip:agent1@10.0.0.5:5060>"], Some(600));
    // Two proxies, the outer one's Path first; one header carries a list.
    req.headers.push(Header::Other(
        "Path".into(),
        "<sip:edge.example;lr>, <sip:198.51.100.7:5070;lr;transport=tcp>".into(),
    ));
    let resp = with_auth(&mut r, t0, req, "correct horse");
    assert_eq!(resp.status_code.code(), 200);
    let echoed: Vec<&str> = resp
        .headers
        .iter()
        .filter_map(|h| match h {
            Header::Other(n, v) if n.eq_ignore_ascii_case("Path") => Some(v.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        echoed,
        ["<sip:edge.example;lr>, <sip:198.51.100.7:5070;lr;transport=tcp>"]
    );
    assert_eq!(
        r.lookup("agent1")[0].path,
        [
            "<sip:edge.example;lr>",
            "<sip:198.51.100.7:5070;lr;transport=tcp>"
        ]
    );
    // A refresh without Path (the phone now registers directly) forgets it.
    let req = register("agent1", 2, &["<sip:agent1@10.0.0.5:5060>"], Some(600));
    let resp = with_auth(&mut r, t0, req, "correct horse");
    assert_eq!(resp.status_code.code(), 200);
    assert!(r.lookup("agent1")[0].path.is_empty());
}
