//! SIP hot paths: parse + normalise + serialise a carrier INVITE, and a whole INVITE server
//! transaction in the sans-IO core. `cargo bench --bench sip` prints the figures.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dialerd::sip::transaction::{Event, Peer, TimerConfig, TransactionLayer, Transport};
use dialerd::sip::wire;
use std::time::{Duration, Instant};

/// A typical INVITE from a carrier SBC: 17 headers and an SDP offer with four codecs.
const CARRIER_INVITE: &str = "INVITE sip:+4915112345678@10.0.0.5:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6a7b8;rport\r\n\
Max-Forwards: 69\r\n\
Contact: <sip:+4930123456@203.0.113.7:5060;transport=udp>\r\n\
To: <sip:+4915112345678@10.0.0.5;user=phone>\r\n\
From: \"Caller\" <sip:+4930123456@203.0.113.7;user=phone>;tag=3c2a1b0f\r\n\
Call-ID: 4a8e0c1d-7f2b-4e3a-9c5d-1b2a3c4d5e6f@203.0.113.7\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO, REFER, NOTIFY\r\n\
Supported: 100rel, timer, replaces\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
P-Asserted-Identity: <sip:+4930123456@203.0.113.7;user=phone>\r\n\
User-Agent: Carrier-SBC 9.1\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 232\r\n\r\n\
v=0\r\no=- 1234567890 1234567890 IN IP4 203.0.113.7\r\ns=-\r\nc=IN IP4 203.0.113.7\r\n\
t=0 0\r\nm=audio 30000 RTP/AVP 8 0 18 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";

fn wire_benches(c: &mut Criterion) {
    let bytes = CARRIER_INVITE.as_bytes();
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse carrier INVITE", |b| {
        b.iter(|| wire::parse(black_box(bytes)).unwrap())
    });
    let msg = wire::parse(bytes).unwrap();
    g.bench_function("serialize carrier INVITE", |b| {
        b.iter(|| wire::serialize(black_box(&msg)))
    });
    g.bench_function("parse + serialize carrier INVITE", |b| {
        b.iter(|| wire::serialize(&wire::parse(black_box(bytes)).unwrap()))
    });
    g.finish();
}

/// INVITE in → 100 → TU's 200 → ACK in → Timer L → gone: the whole server side of a call setup.
fn transaction_benches(c: &mut Criterion) {
    let peer = Peer {
        addr: "203.0.113.7:5060".parse().unwrap(),
        transport: Transport::Udp,
    };
    let mut g = c.benchmark_group("transaction");
    g.throughput(Throughput::Elements(1));
    g.bench_function("INVITE server transaction, 200 and ACK", |b| {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let mut now = Instant::now();
        let mut n: u64 = 0;
        b.iter(|| {
            n += 1;
            let invite = CARRIER_INVITE
                .replace("a1b2c3d4e5f6a7b8", &format!("{n:016x}"))
                .replace("4a8e0c1d", &format!("{:08x}", n as u32));
            layer.handle_message(now, wire::parse(invite.as_bytes()).unwrap(), peer);
            while layer.poll_transmit().is_some() {}
            let Some(Event::Request { key, request, .. }) = layer.poll_event() else {
                panic!("no request event")
            };
            let tag = layer.new_tag();
            let ok = dialerd::sip::transaction::make_response(&request, 200, Some(&tag));
            layer.send_response(now, &key, ok.clone()).unwrap();
            while layer.poll_transmit().is_some() {}
            let ack = format!(
                "ACK sip:+4915112345678@10.0.0.5:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bKack{n:x}\r\n\
                 Max-Forwards: 70\r\nFrom: \"Caller\" <sip:+4930123456@203.0.113.7;user=phone>;tag=3c2a1b0f\r\n\
                 To: <sip:+4915112345678@10.0.0.5;user=phone>;tag={tag}\r\nCall-ID: {:08x}-7f2b-4e3a-9c5d-1b2a3c4d5e6f@203.0.113.7\r\n\
                 CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                n as u32
            );
            layer.handle_message(now, wire::parse(ack.as_bytes()).unwrap(), peer);
            while layer.poll_event().is_some() {}
            now += Duration::from_secs(40);
            layer.handle_timeout(now);
            while layer.poll_event().is_some() {}
        });
        assert_eq!(layer.len(), 0, "transactions leaked");
    });
    g.finish();
}

criterion_group!(benches, wire_benches, transaction_benches);
criterion_main!(benches);
