//! The SIP layer over hickory: NAPTR selection, SRV ordering, IP literals. Lookups against a
//! real DNS server (dnsmasq) are in tests/trunks_dns.rs.

use super::*;

// ---------------------------------------------------------------------------------------------
// NAPTR selection (RFC 3263 §4.1).

fn naptr(
    order: u16,
    preference: u16,
    flags: &str,
    service: &str,
    replacement: &str,
) -> NaptrRecord {
    NaptrRecord {
        order,
        preference,
        flags: flags.into(),
        service: service.into(),
        replacement: replacement.into(),
    }
}

#[test]
fn naptr_picks_the_transport_s_service_by_order_then_preference() {
    let records = [
        naptr(20, 10, "s", "SIP+D2U", "_sip._udp.late.test."),
        naptr(10, 50, "s", "SIP+D2U", "_sip._udp.second.test."),
        naptr(10, 10, "S", "sip+d2u", "_sip._udp.first.test."),
        naptr(5, 10, "s", "SIP+D2T", "_sip._tcp.carrier.test."),
        naptr(1, 1, "s", "SIPS+D2T", "_sips._tcp.carrier.test."),
        naptr(0, 0, "u", "SIP+D2U", "_sip._udp.not-srv.test."),
        naptr(0, 0, "s", "SIP+D2U", "."),
    ];
    assert_eq!(
        naptr_srv_name(&records, Transport::Udp).as_deref(),
        Some("_sip._udp.first.test")
    );
    assert_eq!(
        naptr_srv_name(&records, Transport::Tcp).as_deref(),
        Some("_sip._tcp.carrier.test")
    );
    assert_eq!(
        naptr_srv_name(&records, Transport::Tls).as_deref(),
        Some("_sips._tcp.carrier.test")
    );
    assert_eq!(naptr_srv_name(&records[..2], Transport::Tls), None);
    assert_eq!(naptr_srv_name(&[], Transport::Udp), None);
}

// ---------------------------------------------------------------------------------------------
// SRV ordering.

fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
    SrvRecord {
        priority,
        weight,
        port: 5060,
        target: target.into(),
    }
}

fn targets(records: &[SrvRecord]) -> Vec<&str> {
    records.iter().map(|r| r.target.as_str()).collect()
}

/// Hands out `values` in turn.
fn fixed(values: &[u32]) -> impl FnMut() -> u32 + '_ {
    let mut it = values.iter();
    move || *it.next().expect("more random values than expected")
}

#[test]
fn srv_order_by_priority_then_weight() {
    let records = [
        srv(10, 60, "a"),
        srv(10, 40, "b"),
        srv(5, 0, "c"),
        srv(20, 0, "."),
        srv(10, 0, "e"),
    ];
    // Group 10 in RFC order is e(0) a(60) b(40): running sums 0, 60, 100.
    assert_eq!(
        targets(&order_srv(&records, fixed(&[0, 70, 1, 0]))),
        ["c", "b", "a", "e"]
    );
    assert_eq!(
        targets(&order_srv(&records, fixed(&[0, 0, 0, 0]))),
        ["c", "e", "a", "b"]
    );
    assert_eq!(
        targets(&order_srv(&records, fixed(&[0, 30, 0, 0]))),
        ["c", "a", "e", "b"]
    );
    // Values beyond the total wrap: 101 + 61 → 61.
    assert_eq!(
        targets(&order_srv(&records, fixed(&[0, 162, 0, 0]))),
        ["c", "b", "e", "a"]
    );
}

#[test]
fn srv_weights_share_picks() {
    // With every possible random value once, a weight-3 target comes first three times as
    // often as a weight-1 one.
    let records = [srv(1, 1, "light"), srv(1, 3, "heavy")];
    let mut firsts = [0; 2];
    for value in 0..=4 {
        let order = order_srv(&records, fixed(&[value, 0]));
        assert_eq!(order.len(), 2);
        firsts[usize::from(order[0].target == "heavy")] += 1;
    }
    // Values 0 and 1 pick "light" (running sum 1), 2..=4 pick "heavy".
    assert_eq!(firsts, [2, 3]);
}

#[test]
fn srv_root_target_is_skipped() {
    assert!(order_srv(&[srv(0, 0, ".")], fixed(&[])).is_empty());
    assert!(order_srv(&[], fixed(&[])).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

#[test]
fn ip_literals() {
    assert_eq!(ip_literal("192.0.2.1"), Some(IpAddr::from([192, 0, 2, 1])));
    assert_eq!(ip_literal("[2001:db8::1]"), "2001:db8::1".parse().ok());
    assert_eq!(ip_literal("2001:db8::1"), "2001:db8::1".parse().ok());
    assert_eq!(ip_literal("carrier.test"), None);
    assert_eq!(ip_literal("[carrier.test]"), None);
}
