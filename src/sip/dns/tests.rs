use super::*;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// Hand-made messages.

/// A reply to `SRV _sip._udp.carrier.test` as a recursive server would send it: id 0xBEEF,
/// names compressed against the question and against the SRV targets, two A records of the
/// targets in the additional section.
#[rustfmt::skip]
const SRV_REPLY: &[u8] = &[
    0xbe, 0xef, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02,
    // @12 question: _sip._udp.carrier.test SRV IN ("carrier" at 22 = 0x16).
    4, b'_', b's', b'i', b'p', 4, b'_', b'u', b'd', b'p',
    7, b'c', b'a', b'r', b'r', b'i', b'e', b'r', 4, b't', b'e', b's', b't', 0,
    0x00, 0x21, 0x00, 0x01,
    // @40 answer: ptr(12) SRV IN ttl 300, 10 60 5060 sbc1.ptr(22) (target label at 58 = 0x3a).
    0xc0, 0x0c, 0x00, 0x21, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x0d,
    0x00, 0x0a, 0x00, 0x3c, 0x13, 0xc4, 4, b's', b'b', b'c', b'1', 0xc0, 0x16,
    // @65 answer: ptr(12) SRV IN ttl 300, 20 0 5080 sbc2.ptr(22) (target label at 83 = 0x53).
    0xc0, 0x0c, 0x00, 0x21, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x0d,
    0x00, 0x14, 0x00, 0x00, 0x13, 0xd8, 4, b's', b'b', b'c', b'2', 0xc0, 0x16,
    // @90 additional: ptr(58) A 192.0.2.10.
    0xc0, 0x3a, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x04, 192, 0, 2, 10,
    // @106 additional: ptr(83) A 192.0.2.20.
    0xc0, 0x53, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x04, 192, 0, 2, 20,
];

/// A reply to `A sip.carrier.test` (id 1): sip.carrier.test CNAME edge.carrier.test CNAME
/// sbc.cdn.test A 198.51.100.7, every name compressed.
#[rustfmt::skip]
const CNAME_REPLY: &[u8] = &[
    0x00, 0x01, 0x81, 0x80, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00,
    // @12 question: sip.carrier.test A IN ("carrier" at 16 = 0x10, "test" at 24 = 0x18).
    3, b's', b'i', b'p', 7, b'c', b'a', b'r', b'r', b'i', b'e', b'r', 4, b't', b'e', b's', b't', 0,
    0x00, 0x01, 0x00, 0x01,
    // @34: ptr(12) CNAME edge.ptr(16) ("edge" at 46 = 0x2e).
    0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x07,
    4, b'e', b'd', b'g', b'e', 0xc0, 0x10,
    // @53: ptr(46) CNAME sbc.cdn.ptr(24) ("sbc" at 65 = 0x41).
    0xc0, 0x2e, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x0a,
    3, b's', b'b', b'c', 3, b'c', b'd', b'n', 0xc0, 0x18,
    // @75: ptr(65) A 198.51.100.7.
    0xc0, 0x41, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x04, 198, 51, 100, 7,
];

/// Header plus the question `nope.test A IN`, with the given id, flags and counts.
fn header_and_question(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
    if counts[0] == 1 {
        out.extend_from_slice(b"\x04nope\x04test\x00\x00\x01\x00\x01");
    }
    out
}

#[test]
fn query_bytes() {
    let q = build_query(0x1234, "_sip._udp.carrier.test", RecordType::Srv).unwrap();
    let mut expected = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    expected.extend_from_slice(b"\x04_sip\x04_udp\x07carrier\x04test\x00\x00\x21\x00\x01");
    assert_eq!(q, expected);
    // The trailing dot is optional; the type code goes in QTYPE.
    let a = build_query(7, "carrier.test.", RecordType::A).unwrap();
    assert_eq!(&a[12..], b"\x07carrier\x04test\x00\x00\x01\x00\x01");
    let aaaa = build_query(7, "carrier.test", RecordType::Aaaa).unwrap();
    assert_eq!(&aaaa[aaaa.len() - 4..], &[0, 28, 0, 1]);
}

#[test]
fn query_parses_back() {
    let q = build_query(0xabcd, "Sbc1.Carrier.test", RecordType::Aaaa).unwrap();
    let msg = parse_message(&q).unwrap();
    assert_eq!(msg.header.id, 0xabcd);
    assert!(!msg.header.is_response());
    assert!(msg.header.recursion_desired());
    assert_eq!(
        msg.questions,
        vec![Question {
            name: "Sbc1.Carrier.test".into(),
            qtype: 28,
            qclass: 1
        }]
    );
    assert!(msg.answers.is_empty());
}

#[test]
fn query_rejects_bad_names() {
    let long_label = "a".repeat(64);
    let long_name = vec!["abcdefghi"; 26].join("."); // 26 × 10 + 1 = 261 bytes on the wire
    for name in [
        "",
        "a..b",
        ".a",
        "a\\.b",
        long_label.as_str(),
        long_name.as_str(),
    ] {
        assert!(
            matches!(
                build_query(1, name, RecordType::A),
                Err(DnsError::InvalidName(n)) if n == name
            ),
            "{name:?}"
        );
    }
    let max_label = "a".repeat(63);
    assert!(build_query(1, &max_label, RecordType::A).is_ok());
}

#[test]
fn srv_reply_with_compression_and_additional_records() {
    let msg = parse_reply(SRV_REPLY, 0xbeef, "_sip._udp.carrier.test", RecordType::Srv).unwrap();
    assert_eq!(msg.header.ancount, 2);
    assert_eq!(msg.header.arcount, 2);
    assert!(!msg.header.truncated());
    assert_eq!(msg.questions[0].name, "_sip._udp.carrier.test");
    assert_eq!(msg.answers[0].name, "_sip._udp.carrier.test");
    assert_eq!(msg.answers[0].ttl, 300);
    assert_eq!(
        msg.srv_records("_SIP._udp.Carrier.test."),
        vec![
            SrvRecord {
                priority: 10,
                weight: 60,
                port: 5060,
                target: "sbc1.carrier.test".into()
            },
            SrvRecord {
                priority: 20,
                weight: 0,
                port: 5080,
                target: "sbc2.carrier.test".into()
            },
        ]
    );
    assert_eq!(msg.additionals[1].name, "sbc2.carrier.test");
    assert_eq!(
        msg.addresses("sbc1.carrier.test"),
        vec![IpAddr::from([192, 0, 2, 10])]
    );
    assert_eq!(
        msg.addresses("sbc2.carrier.test"),
        vec![IpAddr::from([192, 0, 2, 20])]
    );
    assert!(msg.addresses("sbc3.carrier.test").is_empty());
}

#[test]
fn cname_chain_is_followed() {
    let msg = parse_reply(CNAME_REPLY, 1, "sip.carrier.test", RecordType::A).unwrap();
    assert_eq!(
        msg.answers[0].data,
        RData::Cname("edge.carrier.test".into())
    );
    assert_eq!(msg.answers[1].name, "edge.carrier.test");
    assert_eq!(msg.answers[1].data, RData::Cname("sbc.cdn.test".into()));
    assert_eq!(msg.canonical_name("sip.carrier.test"), "sbc.cdn.test");
    assert_eq!(
        msg.addresses("SIP.carrier.test"),
        vec![IpAddr::from([198, 51, 100, 7])]
    );
}

#[test]
fn cname_loop_ends() {
    let record = |name: &str, target: &str| Record {
        name: name.into(),
        rtype: 5,
        class: 1,
        ttl: 60,
        data: RData::Cname(target.into()),
    };
    let msg = Message {
        header: Header::parse(&[0; 12]).unwrap(),
        questions: vec![],
        answers: vec![record("a.test", "b.test"), record("b.test", "a.test")],
        authorities: vec![],
        additionals: vec![],
    };
    assert!(msg.addresses("a.test").is_empty());
    assert!(msg.srv_records("a.test").is_empty());
}

#[test]
fn rcodes_are_errors() {
    let nx = header_and_question(9, 0x8183, [1, 0, 0, 0]);
    assert!(matches!(
        parse_reply(&nx, 9, "nope.test.", RecordType::A),
        Err(DnsError::NxDomain(name)) if name == "nope.test"
    ));
    let servfail = header_and_question(9, 0x8182, [1, 0, 0, 0]);
    assert!(matches!(
        parse_reply(&servfail, 9, "nope.test", RecordType::A),
        Err(DnsError::ServFail)
    ));
    // REFUSED without the question echoed is still read as REFUSED.
    let refused = header_and_question(9, 0x8105, [0, 0, 0, 0]);
    assert!(matches!(
        parse_reply(&refused, 9, "nope.test", RecordType::A),
        Err(DnsError::Rcode(5))
    ));
    // NOERROR and no records: not an error at this level.
    let empty = header_and_question(9, 0x8180, [1, 0, 0, 0]);
    let msg = parse_reply(&empty, 9, "nope.test", RecordType::A).unwrap();
    assert!(msg.addresses("nope.test").is_empty());
}

#[test]
fn wrong_replies_are_rejected() {
    assert!(matches!(
        parse_reply(SRV_REPLY, 0xbeee, "_sip._udp.carrier.test", RecordType::Srv),
        Err(DnsError::IdMismatch {
            expected: 0xbeee,
            got: 0xbeef
        })
    ));
    assert!(matches!(
        parse_reply(SRV_REPLY, 0xbeef, "_sip._tcp.carrier.test", RecordType::Srv),
        Err(DnsError::QuestionMismatch)
    ));
    assert!(matches!(
        parse_reply(SRV_REPLY, 0xbeef, "_sip._udp.carrier.test", RecordType::A),
        Err(DnsError::QuestionMismatch)
    ));
    // A success without the question is not trusted.
    let bare = header_and_question(9, 0x8180, [0, 0, 0, 0]);
    assert!(matches!(
        parse_reply(&bare, 9, "nope.test", RecordType::A),
        Err(DnsError::QuestionMismatch)
    ));
    let query = build_query(5, "nope.test", RecordType::A).unwrap();
    assert!(matches!(
        parse_reply(&query, 5, "nope.test", RecordType::A),
        Err(DnsError::NotResponse)
    ));
}

#[test]
fn bad_pointers_are_errors() {
    // Points at itself.
    let mut selfloop = header_and_question(1, 0x8180, [1, 0, 0, 0]);
    selfloop.truncate(12);
    selfloop.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert!(matches!(
        parse_message(&selfloop),
        Err(DnsError::BadPointer { offset: 12 })
    ));
    // Two names pointing at each other: the second pointer goes forward.
    let mut pingpong = header_and_question(1, 0x8180, [1, 0, 0, 0]);
    pingpong.truncate(12);
    pingpong.extend_from_slice(&[1, b'a', 0xc0, 16, 1, b'b', 0xc0, 12, 0, 1, 0, 1]);
    assert!(matches!(
        parse_message(&pingpong),
        Err(DnsError::BadPointer { offset: 14 })
    ));
    // Past the end.
    let mut outside = header_and_question(1, 0x8180, [1, 0, 0, 0]);
    outside.truncate(12);
    outside.extend_from_slice(&[0xff, 0xff, 0, 1, 0, 1]);
    assert!(matches!(
        parse_message(&outside),
        Err(DnsError::BadPointer { .. })
    ));
    // A record name pointing into its own type field.
    let mut answer = SRV_REPLY.to_vec();
    answer[41] = 42;
    assert!(matches!(
        parse_message(&answer),
        Err(DnsError::BadPointer { offset: 40 })
    ));
    // An SRV target pointing past the rdata.
    let mut target = SRV_REPLY.to_vec();
    target[64] = 0xff;
    assert!(matches!(
        parse_message(&target),
        Err(DnsError::BadPointer { .. })
    ));
}

#[test]
fn bad_names_and_rdata_are_errors() {
    // Reserved label type 0x40.
    let mut reserved = header_and_question(1, 0x8180, [1, 0, 0, 0]);
    reserved[12] = 0x44;
    assert!(matches!(parse_message(&reserved), Err(DnsError::BadName)));
    // A name over 255 bytes, made of five 63-byte labels.
    let mut long = header_and_question(1, 0x8180, [1, 0, 0, 0]);
    long.truncate(12);
    for _ in 0..5 {
        long.push(63);
        long.extend_from_slice(&[b'x'; 63]);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert!(matches!(parse_message(&long), Err(DnsError::BadName)));
    // An A record with 3 bytes of data.
    let mut short_a = SRV_REPLY[..102].to_vec();
    short_a[101] = 3;
    short_a.extend_from_slice(&[192, 0, 2]);
    short_a.extend_from_slice(&SRV_REPLY[106..]);
    assert!(matches!(
        parse_message(&short_a),
        Err(DnsError::BadRdata { rtype: 1 })
    ));
    // An SRV record whose rdlength stops inside its target name.
    let mut short_srv = SRV_REPLY.to_vec();
    short_srv[51] = 12;
    assert!(matches!(
        parse_message(&short_srv),
        Err(DnsError::BadRdata { rtype: 33 })
    ));
    // An SRV record too short for its fixed fields.
    let mut tiny_srv = header_and_question(1, 0x8180, [1, 1, 0, 0]);
    tiny_srv.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60, 0, 2, 0, 10]);
    assert!(matches!(
        parse_message(&tiny_srv),
        Err(DnsError::BadRdata { rtype: 33 })
    ));
}

#[test]
fn odd_label_bytes_are_escaped() {
    let mut msg = header_and_question(1, 0x8180, [1, 0, 0, 0]);
    msg.truncate(12);
    msg.extend_from_slice(b"\x03a.b\x02\x00\\\x00\x00\x01\x00\x01");
    let parsed = parse_message(&msg).unwrap();
    assert_eq!(parsed.questions[0].name, "a\\.b.\\000\\\\");
}

#[test]
fn every_prefix_is_an_error_not_a_panic() {
    for reply in [SRV_REPLY, CNAME_REPLY] {
        assert!(parse_message(reply).is_ok());
        for len in 0..reply.len() {
            assert!(
                parse_message(&reply[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
    }
}

#[test]
fn truncated_flag_keeps_whole_records() {
    let mut reply = SRV_REPLY.to_vec();
    reply[2] |= 0x02; // TC
                      // Cut inside the second additional record: the first three records survive.
    let msg = parse_message(&reply[..110]).unwrap();
    assert!(msg.header.truncated());
    assert_eq!(msg.answers.len(), 2);
    assert_eq!(msg.additionals.len(), 1);
    assert_eq!(
        msg.addresses("sbc1.carrier.test"),
        vec![IpAddr::from([192, 0, 2, 10])]
    );
    // A cut question is still an error.
    assert!(matches!(
        parse_message(&reply[..30]),
        Err(DnsError::Truncated)
    ));
}

#[test]
fn mutations_never_panic() {
    // xorshift: the same mutations on every run.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut oks = 0;
    for round in 0..20_000 {
        let base = if round % 2 == 0 {
            SRV_REPLY
        } else {
            CNAME_REPLY
        };
        let mut bytes = base.to_vec();
        for _ in 0..1 + next() % 4 {
            let i = (next() % bytes.len() as u64) as usize;
            bytes[i] = next() as u8;
        }
        let cut = bytes.len() - (next() % 4) as usize;
        if let Ok(msg) = parse_message(&bytes[..cut]) {
            oks += 1;
            let _ = msg.addresses("sbc1.carrier.test");
            let _ = msg.srv_records("_sip._udp.carrier.test");
        }
    }
    // Some mutations land in TTLs and addresses and must still parse.
    assert!(oks > 100, "{oks}");
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
fn resolv_conf_nameservers() {
    let text =
        "# generated\nsearch example.com\nnameserver 10.0.0.2\n  nameserver   2001:db8::53  \n\
                nameserver fe80::1%eth0\nnameserver\noptions timeout:1\n;nameserver 10.9.9.9\n";
    assert_eq!(
        parse_resolv_conf(text),
        vec![
            "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
            "[2001:db8::53]:53".parse().unwrap()
        ]
    );
    assert!(parse_resolv_conf("").is_empty());
}

#[test]
fn from_system_has_a_server() {
    assert!(!Resolver::from_system().servers().is_empty());
}

#[test]
fn ip_literals() {
    assert_eq!(ip_literal("192.0.2.1"), Some(IpAddr::from([192, 0, 2, 1])));
    assert_eq!(ip_literal("[2001:db8::1]"), "2001:db8::1".parse().ok());
    assert_eq!(ip_literal("2001:db8::1"), "2001:db8::1".parse().ok());
    assert_eq!(ip_literal("carrier.test"), None);
    assert_eq!(ip_literal("[carrier.test]"), None);
}

// ---------------------------------------------------------------------------------------------
// The driver against a fake server on real loopback sockets.

/// What the fake server sends back to one question.
#[derive(Default, Clone)]
struct Reply {
    rcode: u8,
    truncated: bool,
    answers: Vec<Record>,
    additionals: Vec<Record>,
    /// Send a copy with the wrong id first.
    stray_first: bool,
}

fn rr(name: &str, data: RData) -> Record {
    let rtype = match &data {
        RData::A(_) => 1,
        RData::Aaaa(_) => 28,
        RData::Cname(_) => 5,
        RData::Srv(_) => 33,
        RData::Other => 99,
    };
    Record {
        name: name.into(),
        rtype,
        class: 1,
        ttl: 60,
        data,
    }
}

fn a(name: &str, ip: [u8; 4]) -> Record {
    rr(name, RData::A(ip.into()))
}

fn srv_rr(name: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    rr(
        name,
        RData::Srv(SrvRecord {
            priority,
            weight,
            port,
            target: target.into(),
        }),
    )
}

fn answer(answers: Vec<Record>) -> Option<Reply> {
    Some(Reply {
        answers,
        ..Reply::default()
    })
}

fn rcode(rcode: u8) -> Option<Reply> {
    Some(Reply {
        rcode,
        ..Reply::default()
    })
}

/// Wire form of a reply, names uncompressed.
fn encode_reply(id: u16, q: &Question, reply: &Reply) -> Vec<u8> {
    let flags = 0x8180 | if reply.truncated { 0x0200 } else { 0 } | u16::from(reply.rcode);
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for c in [1, reply.answers.len(), 0, reply.additionals.len()] {
        out.extend_from_slice(&(c as u16).to_be_bytes());
    }
    encode_name(&q.name, &mut out).unwrap();
    out.extend_from_slice(&q.qtype.to_be_bytes());
    out.extend_from_slice(&q.qclass.to_be_bytes());
    for r in reply.answers.iter().chain(&reply.additionals) {
        encode_name(&r.name, &mut out).unwrap();
        out.extend_from_slice(&r.rtype.to_be_bytes());
        out.extend_from_slice(&r.class.to_be_bytes());
        out.extend_from_slice(&r.ttl.to_be_bytes());
        let mut rdata = Vec::new();
        match &r.data {
            RData::A(ip) => rdata.extend_from_slice(&ip.octets()),
            RData::Aaaa(ip) => rdata.extend_from_slice(&ip.octets()),
            RData::Cname(name) => encode_name(name, &mut rdata).unwrap(),
            RData::Srv(s) => {
                for v in [s.priority, s.weight, s.port] {
                    rdata.extend_from_slice(&v.to_be_bytes());
                }
                encode_name(&s.target, &mut rdata).unwrap();
            }
            RData::Other => {}
        }
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    out
}

type Handler = dyn Fn(&Question, bool) -> Option<Reply> + Send + Sync;

/// A DNS server on 127.0.0.1 (UDP, and TCP on the same port when asked) answering with
/// `handler(question, over_tcp)`, silent on `None`, logging every question it gets.
struct FakeDns {
    addr: SocketAddr,
    queries: Arc<Mutex<Vec<(String, u16, bool)>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FakeDns {
    async fn start(
        tcp: bool,
        handler: impl Fn(&Question, bool) -> Option<Reply> + Send + Sync + 'static,
    ) -> FakeDns {
        let handler: Arc<Handler> = Arc::new(handler);
        let queries = Arc::new(Mutex::new(Vec::new()));
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut tasks = Vec::new();
        let (h, log) = (handler.clone(), queries.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let (n, peer) = socket.recv_from(&mut buf).await.unwrap();
                let Some((id, q)) = question(&buf[..n], &log, false) else {
                    continue;
                };
                if let Some(reply) = h(&q, false) {
                    if reply.stray_first {
                        let stray = encode_reply(id ^ 0x5555, &q, &reply);
                        socket.send_to(&stray, peer).await.unwrap();
                    }
                    socket
                        .send_to(&encode_reply(id, &q, &reply), peer)
                        .await
                        .unwrap();
                }
            }
        }));
        if tcp {
            let listener = TcpListener::bind(addr).await.unwrap();
            let (h, log) = (handler, queries.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let (mut stream, _) = listener.accept().await.unwrap();
                    let mut len = [0u8; 2];
                    stream.read_exact(&mut len).await.unwrap();
                    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    stream.read_exact(&mut buf).await.unwrap();
                    let Some((id, q)) = question(&buf, &log, true) else {
                        continue;
                    };
                    if let Some(reply) = h(&q, true) {
                        let bytes = encode_reply(id, &q, &reply);
                        stream
                            .write_all(&(bytes.len() as u16).to_be_bytes())
                            .await
                            .unwrap();
                        stream.write_all(&bytes).await.unwrap();
                    }
                }
            }));
        }
        FakeDns {
            addr,
            queries,
            tasks,
        }
    }

    fn resolver(&self) -> Resolver {
        Resolver::new(vec![self.addr], Duration::from_millis(200))
    }

    /// Questions seen, as (name, qtype, over_tcp).
    fn queries(&self) -> Vec<(String, u16, bool)> {
        self.queries.lock().unwrap().clone()
    }
}

/// The id and the single question of a well-formed standard query, logged; `None` otherwise
/// (which then shows as a missing entry in the log).
fn question(
    buf: &[u8],
    log: &Mutex<Vec<(String, u16, bool)>>,
    tcp: bool,
) -> Option<(u16, Question)> {
    let msg = parse_message(buf).ok()?;
    let ok = !msg.header.is_response()
        && msg.header.recursion_desired()
        && msg.questions.len() == 1
        && msg.questions[0].qclass == 1
        && msg.answers.is_empty();
    let q = msg.questions.into_iter().next().filter(|_| ok)?;
    log.lock().unwrap().push((q.name.clone(), q.qtype, tcp));
    Some((msg.header.id, q))
}

/// A carrier with three SRV targets; glue for two of them.
fn carrier(q: &Question, _tcp: bool) -> Option<Reply> {
    let sbc2_v6: Ipv6Addr = "2001:db8::20".parse().unwrap();
    match (q.name.as_str(), q.qtype) {
        ("_sip._udp.carrier.test", 33) => Some(Reply {
            answers: vec![
                srv_rr(&q.name, 20, 0, 5080, "sbc2.carrier.test"),
                srv_rr(&q.name, 10, 0, 5060, "sbc1.carrier.test"),
                srv_rr(&q.name, 30, 0, 5070, "sbc3.carrier.test"),
            ],
            additionals: vec![
                a("sbc1.carrier.test", [192, 0, 2, 10]),
                a("sbc2.carrier.test", [192, 0, 2, 20]),
                rr("sbc2.carrier.test", RData::Aaaa(sbc2_v6)),
            ],
            ..Reply::default()
        }),
        ("_sip._tcp.carrier.test", 33) => {
            answer(vec![srv_rr(&q.name, 0, 0, 5060, "tcp.carrier.test")])
        }
        ("tcp.carrier.test", 1) => answer(vec![a(&q.name, [192, 0, 2, 40])]),
        ("sbc3.carrier.test" | "carrier.test", 1) => answer(
            vec![rr(&q.name, RData::Cname("sbc.cdn.test".into()))]
                .into_iter()
                .chain([a("sbc.cdn.test", [192, 0, 2, 30])])
                .collect(),
        ),
        (_, 1 | 28) => answer(vec![]),
        _ => rcode(3),
    }
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn srv_targets_in_priority_order() {
    let dns = FakeDns::start(false, carrier).await;
    let addrs = dns
        .resolver()
        .resolve_sip("carrier.test", None, Transport::Udp)
        .await
        .unwrap();
    assert_eq!(
        addrs,
        [
            sock("192.0.2.10:5060"),
            sock("192.0.2.20:5080"),
            sock("[2001:db8::20]:5080"),
            sock("192.0.2.30:5070"),
        ]
    );
    // Glue was used for sbc1 and sbc2; only sbc3 was looked up.
    let mut asked = dns.queries();
    asked.sort();
    assert_eq!(
        asked,
        [
            ("_sip._udp.carrier.test".to_string(), 33, false),
            ("sbc3.carrier.test".to_string(), 1, false),
            ("sbc3.carrier.test".to_string(), 28, false),
        ]
    );
}

#[tokio::test]
async fn tcp_transport_asks_for_sip_tcp() {
    let dns = FakeDns::start(false, carrier).await;
    let addrs = dns
        .resolver()
        .resolve_sip("carrier.test.", None, Transport::Tcp)
        .await
        .unwrap();
    assert_eq!(addrs, [sock("192.0.2.40:5060")]);
    assert_eq!(
        dns.queries()[0],
        ("_sip._tcp.carrier.test".into(), 33, false)
    );
}

#[tokio::test]
async fn no_srv_falls_back_to_a_on_5060() {
    // NXDOMAIN for the _sip name, and NOERROR with no records: both mean "no SRV".
    for srv_reply in [rcode(3), answer(vec![])] {
        let dns = FakeDns::start(false, move |q, _| match (q.name.as_str(), q.qtype) {
            (_, 33) => srv_reply.clone(),
            ("plain.test", 1) => answer(vec![a(&q.name, [192, 0, 2, 5])]),
            _ => answer(vec![]),
        })
        .await;
        let addrs = dns
            .resolver()
            .resolve_sip("plain.test", None, Transport::Udp)
            .await
            .unwrap();
        assert_eq!(addrs, [sock("192.0.2.5:5060")]);
        let asked: Vec<u16> = dns.queries().iter().map(|q| q.1).collect();
        assert_eq!(asked[0], 33);
        assert!(asked.contains(&1) && asked.contains(&28), "{asked:?}");
    }
}

#[tokio::test]
async fn explicit_port_skips_srv() {
    let dns = FakeDns::start(false, carrier).await;
    let addrs = dns
        .resolver()
        .resolve_sip("carrier.test", Some(5062), Transport::Udp)
        .await
        .unwrap();
    assert_eq!(addrs, [sock("192.0.2.30:5062")]);
    assert!(dns.queries().iter().all(|q| q.1 != 33));
}

#[tokio::test]
async fn ip_literal_needs_no_query() {
    let dns = FakeDns::start(false, carrier).await;
    let r = dns.resolver();
    assert_eq!(
        r.resolve_sip("192.0.2.1", None, Transport::Udp)
            .await
            .unwrap(),
        [sock("192.0.2.1:5060")]
    );
    assert_eq!(
        r.resolve_sip("[2001:db8::1]", Some(5070), Transport::Tcp)
            .await
            .unwrap(),
        [sock("[2001:db8::1]:5070")]
    );
    assert_eq!(
        r.ip("198.51.100.1").await.unwrap(),
        [IpAddr::from([198, 51, 100, 1])]
    );
    assert!(matches!(
        r.resolve_sip("", None, Transport::Udp).await,
        Err(DnsError::InvalidName(_))
    ));
    assert!(dns.queries().is_empty());
}

#[tokio::test]
async fn silent_server_times_out() {
    let dns = FakeDns::start(false, |_, _| None).await;
    let r = dns.resolver();
    assert!(matches!(
        r.srv("_sip._udp.carrier.test").await,
        Err(DnsError::Timeout)
    ));
    // Two attempts at the one server.
    assert_eq!(dns.queries().len(), 2);
    assert!(matches!(
        r.query("carrier.test", RecordType::A).await,
        Err(DnsError::Timeout)
    ));
}

#[tokio::test]
async fn unanswered_or_nxdomain_falls_back_to_the_system_resolver() {
    // "localhost" comes from the hosts file.
    let silent = FakeDns::start(false, |_, _| None).await;
    let addrs = silent
        .resolver()
        .with_attempts(1)
        .resolve_sip("localhost", None, Transport::Udp)
        .await
        .unwrap();
    assert!(addrs.contains(&sock("127.0.0.1:5060")), "{addrs:?}");

    let nx = FakeDns::start(false, |_, _| rcode(3)).await;
    let ips = nx.resolver().ip("localhost").await.unwrap();
    assert!(ips.contains(&IpAddr::from([127, 0, 0, 1])), "{ips:?}");
    // NXDOMAIN is final: one query per type, no retries.
    assert_eq!(nx.queries().len(), 2);
}

#[tokio::test]
async fn nxdomain_and_servfail_from_srv() {
    let dns = FakeDns::start(false, |q, _| {
        if q.name.starts_with("_sip._udp.gone") {
            rcode(3)
        } else {
            rcode(2)
        }
    })
    .await;
    let r = dns.resolver();
    assert!(matches!(
        r.srv("_sip._udp.gone.test").await,
        Err(DnsError::NxDomain(name)) if name == "_sip._udp.gone.test"
    ));
    // SERVFAIL moves on: two attempts, then the error.
    assert!(matches!(
        r.srv("_sip._udp.broken.test").await,
        Err(DnsError::ServFail)
    ));
    assert_eq!(dns.queries().len(), 3);
}

#[tokio::test]
async fn second_server_answers_after_first_fails() {
    let failing = FakeDns::start(false, |_, _| rcode(2)).await;
    let good = FakeDns::start(false, carrier).await;
    let r = Resolver::new(vec![failing.addr, good.addr], Duration::from_millis(200));
    let records = r.srv("_sip._tcp.carrier.test").await.unwrap();
    assert_eq!(targets(&records), ["tcp.carrier.test"]);
    assert_eq!(failing.queries().len(), 1);
    assert_eq!(good.queries().len(), 1);
}

#[tokio::test]
async fn stray_reply_with_wrong_id_is_ignored() {
    let dns = FakeDns::start(false, |q, _| {
        Some(Reply {
            answers: vec![a(&q.name, [192, 0, 2, 99])],
            stray_first: true,
            ..Reply::default()
        })
    })
    .await;
    let ips = dns.resolver().ip("host.test").await.unwrap();
    assert_eq!(ips, [IpAddr::from([192, 0, 2, 99])]);
}

/// Over UDP one SRV record and TC; over TCP all three.
fn big_srv(q: &Question, tcp: bool) -> Option<Reply> {
    let mut answers = vec![srv_rr(&q.name, 1, 0, 5060, "a.test")];
    if tcp {
        answers.push(srv_rr(&q.name, 2, 0, 5060, "b.test"));
        answers.push(srv_rr(&q.name, 3, 0, 5060, "c.test"));
    }
    Some(Reply {
        truncated: !tcp,
        answers,
        ..Reply::default()
    })
}

#[tokio::test]
async fn truncated_reply_is_retried_over_tcp() {
    let dns = FakeDns::start(true, big_srv).await;
    let records = dns.resolver().srv("_sip._udp.big.test").await.unwrap();
    assert_eq!(targets(&records), ["a.test", "b.test", "c.test"]);
    assert_eq!(
        dns.queries(),
        [
            ("_sip._udp.big.test".to_string(), 33, false),
            ("_sip._udp.big.test".to_string(), 33, true),
        ]
    );
}

#[tokio::test]
async fn truncated_reply_is_used_when_tcp_fails() {
    // No TCP listener on the port: the connection is refused.
    let dns = FakeDns::start(false, big_srv).await;
    let records = dns.resolver().srv("_sip._udp.big.test").await.unwrap();
    assert_eq!(targets(&records), ["a.test"]);
}
