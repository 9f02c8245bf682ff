//! A TCP byte stream through the SIP framer and parser: frames are cut by Content-Length, and a
//! frame is only ever reported once all of its bytes are there (a prefix is `Incomplete`).
#![no_main]

use dialerd::sip::wire::{self, Frame};
use libfuzzer_sys::fuzz_target;

/// `sip.max_message_size` default order of magnitude, small enough for the fuzzer to reach.
const MAX: usize = 8192;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    loop {
        match wire::frame(buf, MAX) {
            Ok(Frame::Keepalive(n)) => {
                assert!(n > 0 && n <= buf.len(), "keepalive of {n} in {}", buf.len());
                buf = &buf[n..];
            }
            Ok(Frame::Message(n)) => {
                assert!(n > 0 && n <= buf.len() && n <= MAX, "message of {n}");
                for k in [n / 2, n - 1] {
                    if k > 0 && k < n {
                        assert_eq!(
                            wire::frame(&buf[..k], MAX),
                            Ok(Frame::Incomplete),
                            "prefix of {k} of a {n}-byte message"
                        );
                    }
                }
                let _ = wire::parse(&buf[..n]);
                buf = &buf[n..];
            }
            Ok(Frame::Incomplete) | Err(_) => break,
        }
    }
});
