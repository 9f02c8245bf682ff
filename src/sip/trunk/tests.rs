use super::*;
use crate::config::TransportKind;

fn cfg(name: &str, max_calls: u32, max_cps: f64) -> TrunkConfig {
    TrunkConfig {
        name: name.into(),
        host: "192.0.2.1".into(),
        port: Some(5060),
        transport: TransportKind::Udp,
        tls_ca: None,
        tls_server_name: None,
        tls_client_certificate: None,
        tls_client_key: None,
        username: String::new(),
        password: Default::default(),
        realm: String::new(),
        from_domain: String::new(),
        register: false,
        max_calls,
        max_cps,
        inbound_from: Vec::new(),
        keepalive: Duration::from_secs(30),
        caller_id: String::new(),
        strip_plus: false,
        dial_prefix: String::new(),
        send_pai: true,
        nat: false,
        media_encryption: Default::default(),
        cluster_proxy: false,
    }
}

fn addr() -> Option<SocketAddr> {
    Some("192.0.2.1:5060".parse().unwrap())
}

#[test]
fn token_bucket_limits_rate() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(2.0, t0);
    assert!(b.try_take(t0));
    assert!(b.try_take(t0));
    assert!(!b.try_take(t0), "burst is one second's worth");
    assert_eq!(b.next_token_at(t0), t0 + Duration::from_millis(500));
    assert!(b.try_take(t0 + Duration::from_millis(500)));
    assert!(!b.try_take(t0 + Duration::from_millis(600)));
}

#[test]
fn keepalives_mark_down_after_two_failures_and_up_after_one_answer() {
    let t0 = Instant::now();
    let mut t = Trunks::new(
        &[cfg("a", 10, 10.0)],
        vec![addr().into_iter().collect()],
        t0,
    );
    assert_eq!(t.due_keepalives(t0), vec![(0, addr().unwrap())]);
    assert!(t.due_keepalives(t0).is_empty(), "one probe at a time");
    assert_eq!(t.poll_timeout(), None);
    assert!(!t.keepalive_result(0, false, t0));
    assert_eq!(t.status()[0].state, "up");
    assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    let t1 = t0 + Duration::from_secs(30);
    assert_eq!(t.due_keepalives(t1).len(), 1);
    assert!(
        t.keepalive_result(0, false, t1),
        "second failure changes state"
    );
    assert_eq!(t.status()[0].state, "down");
    assert_eq!(t.admit_call(None, t1), Err(TrunkError::AllDown));
    let t2 = t1 + Duration::from_secs(30);
    t.due_keepalives(t2);
    assert!(t.keepalive_result(0, true, t2));
    assert_eq!(t.status()[0].state, "up");
    assert_eq!(t.status()[0].failed_keepalives, 0);
}

#[test]
fn admission_prefers_least_loaded_and_respects_limits() {
    let t0 = Instant::now();
    let mut t = Trunks::new(
        &[cfg("a", 2, 100.0), cfg("b", 4, 100.0)],
        vec![addr().into_iter().collect(), addr().into_iter().collect()],
        t0,
    );
    assert_eq!(t.admit_call(None, t0), Ok(0)); // a 1/2, b 0/4
    assert_eq!(t.admit_call(None, t0), Ok(1)); // a 1/2=.5, b 1/4
    assert_eq!(t.admit_call(None, t0), Ok(1)); // b 2/4
    assert_eq!(t.admit_call(Some("a"), t0), Ok(0)); // a full now
    assert_eq!(t.admit_call(Some("a"), t0), Err(TrunkError::Full));
    assert_eq!(
        t.admit_call(Some("zz"), t0),
        Err(TrunkError::Unknown("zz".into()))
    );
    t.call_ended(0);
    assert_eq!(t.status()[0].active_calls, 1);
}

#[test]
fn admission_is_rate_limited_per_trunk() {
    let t0 = Instant::now();
    let mut t = Trunks::new(
        &[cfg("a", 100, 1.0)],
        vec![addr().into_iter().collect()],
        t0,
    );
    assert_eq!(t.admit_call(None, t0), Ok(0));
    assert_eq!(
        t.admit_call(None, t0),
        Err(TrunkError::RateLimited(t0 + Duration::from_secs(1)))
    );
    assert_eq!(t.admit_call(None, t0 + Duration::from_secs(1)), Ok(0));
}

#[test]
fn unresolved_trunk_is_down_and_never_probed() {
    let t0 = Instant::now();
    let mut t = Trunks::new(&[cfg("a", 1, 1.0)], vec![vec![]], t0);
    assert_eq!(t.status()[0].state, "down");
    assert!(t.due_keepalives(t0).is_empty());
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn keepalive_zero_means_never_probe_and_up() {
    let t0 = Instant::now();
    let mut c = cfg("a", 1, 1.0);
    c.keepalive = Duration::ZERO;
    let mut t = Trunks::new(&[c], vec![addr().into_iter().collect()], t0);
    assert!(t.due_keepalives(t0).is_empty());
    assert_eq!(t.poll_timeout(), None);
    assert_eq!(t.admit_call(None, t0), Ok(0));
}

#[test]
fn registration_refreshes_at_half_life_and_backs_off_on_failure() {
    let t0 = Instant::now();
    let mut c = cfg("a", 10, 10.0);
    c.register = true;
    c.username = "u".into();
    let mut t = Trunks::new(&[c], vec![addr().into_iter().collect()], t0);
    assert_eq!(t.due_registrations(t0), vec![0]);
    assert!(t.due_registrations(t0).is_empty(), "one REGISTER at a time");
    t.registration_result(0, Some(Duration::from_secs(600)), t0);
    assert!(t.status()[0].registered);
    assert_eq!(
        t.get(0).registration.as_ref().unwrap().next,
        t0 + Duration::from_secs(300)
    );
    // The refresh fails: still registered until the binding lapses, retry after 5 s, then 10 s.
    let t1 = t0 + Duration::from_secs(300);
    assert_eq!(t.due_registrations(t1), vec![0]);
    t.registration_result(0, None, t1);
    assert!(t.status()[0].registered);
    assert_eq!(
        t.get(0).registration.as_ref().unwrap().next,
        t1 + Duration::from_secs(5)
    );
    let t2 = t1 + Duration::from_secs(5);
    t.due_registrations(t2);
    t.registration_result(0, None, t2);
    assert_eq!(
        t.get(0).registration.as_ref().unwrap().next,
        t2 + Duration::from_secs(10)
    );
    // Past the lapse, a failure clears it.
    let t3 = t0 + Duration::from_secs(700);
    t.due_registrations(t3);
    t.registration_result(0, None, t3);
    assert!(!t.status()[0].registered);
}

#[test]
fn number_rules_shape_called_and_calling_numbers() {
    let mut c = cfg("a", 1, 1.0);
    assert_eq!(
        number_rules(&c, "+33123456789", Some("+33999")),
        ("+33123456789".into(), Some("+33999".into()))
    );
    assert_eq!(number_rules(&c, "100", None), ("100".into(), None));
    c.caller_id = "+3311".into();
    c.strip_plus = true;
    c.dial_prefix = "9#".into();
    assert_eq!(
        number_rules(&c, "+33123456789", None),
        ("9#33123456789".into(), Some("3311".into())),
        "trunk default caller ID, plus stripped, prefix added"
    );
    assert_eq!(
        number_rules(&c, "0612", Some(" ")),
        ("9#0612".into(), Some("3311".into())),
        "a blank caller ID takes the default"
    );
}

#[test]
fn calls_are_matched_to_trunks_by_address_and_port() {
    let mut c = cfg("carrier", 1, 1.0);
    c.inbound_from = vec![crate::config::Cidr("198.51.100.0/24".parse().unwrap())];
    let t = Trunks::new(&[c], vec![addr().into_iter().collect()], Instant::now());
    let trunk = addr().unwrap();
    let other_port = SocketAddr::new(trunk.ip(), trunk.port() + 1);
    assert_eq!(t.named_by_source(trunk).as_deref(), Some("carrier"));
    assert_eq!(
        t.named_by_source(other_port),
        None,
        "the trunk's address from another port is not the trunk"
    );
    assert_eq!(
        t.named_by_source("198.51.100.7:40000".parse().unwrap())
            .as_deref(),
        Some("carrier"),
        "inbound_from widens to any port"
    );
    assert_eq!(t.named_by_source("203.0.113.1:5060".parse().unwrap()), None);
    let trusted = t.trusted_sources();
    assert!(trusted.contains(trunk));
    assert!(!trusted.contains(other_port));
    assert!(trusted.contains("198.51.100.7:1".parse().unwrap()));
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn a_silent_target_gives_way_to_the_next_srv_target() {
    let t0 = Instant::now();
    let (a, b) = (sock("192.0.2.1:5060"), sock("192.0.2.2:5070"));
    let mut t = Trunks::new(&[cfg("carrier", 10, 10.0)], vec![vec![a, b]], t0);
    assert_eq!(t.due_keepalives(t0), vec![(0, a)]);
    t.keepalive_result(0, false, t0);
    let t1 = t0 + Duration::from_secs(30);
    assert_eq!(t.due_keepalives(t1), vec![(0, a)]);
    assert!(t.keepalive_result(0, false, t1), "down after two");
    // The next target is probed at once; one answer brings the trunk up on it.
    assert_eq!(t.due_keepalives(t1), vec![(0, b)]);
    assert_eq!(t.status()[0].address, Some(b));
    assert!(t.keepalive_result(0, true, t1));
    assert_eq!(t.status()[0].state, "up");
    // Both targets are the carrier's: INVITEs from either are trunk calls.
    assert_eq!(t.named_by_source(a).as_deref(), Some("carrier"));
    assert!(t.trusted_sources().contains(b));
}

#[test]
fn a_new_resolution_keeps_the_address_in_use_or_moves_to_the_first_new_one() {
    let t0 = Instant::now();
    let (a, b, c) = (
        sock("192.0.2.1:5060"),
        sock("192.0.2.2:5060"),
        sock("192.0.2.3:5060"),
    );
    let mut t = Trunks::new(&[cfg("carrier", 10, 10.0)], vec![vec![a]], t0);
    assert_eq!(t.due_keepalives(t0), vec![(0, a)]);
    t.keepalive_result(0, true, t0);
    assert!(!t.set_targets(0, vec![b, a], t0), "a is still listed");
    assert_eq!(t.status()[0].address, Some(a));
    assert!(
        !t.set_targets(0, vec![], t0),
        "a failed lookup keeps what worked"
    );
    assert_eq!(t.targets(0), [b, a]);
    let t1 = t0 + Duration::from_secs(1);
    assert!(t.set_targets(0, vec![c], t1));
    assert_eq!(t.status()[0].address, Some(c));
    assert_eq!(
        t.due_keepalives(t1),
        vec![(0, c)],
        "the new address is probed at once"
    );
    assert_eq!(t.named_by_source(a), None);
}

#[test]
fn a_trunk_that_resolves_late_is_probed_and_registers() {
    let t0 = Instant::now();
    let mut c = cfg("carrier", 10, 10.0);
    c.register = true;
    let mut t = Trunks::new(&[c], vec![vec![]], t0);
    assert!(t.due_registrations(t0).is_empty());
    assert!(t.set_targets(0, vec![sock("192.0.2.1:5060")], t0));
    assert_eq!(t.due_registrations(t0), vec![0]);
    assert_eq!(t.due_keepalives(t0).len(), 1);
}
