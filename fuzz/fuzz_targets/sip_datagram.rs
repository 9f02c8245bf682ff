//! One UDP datagram through the SIP wire front: parse, and what parses must serialise into
//! bytes that parse again (we forward and answer what we read).
#![no_main]

use dialerd::sip::wire::{self, WireError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match wire::parse(data) {
        Ok(msg) => {
            let bytes = wire::serialize(&msg);
            if let Err(e) = wire::parse(&bytes) {
                panic!(
                    "serialised message does not parse again: {e}\n{}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
        Err(WireError::BadRequest {
            status,
            reason,
            reply,
        }) => {
            let _ = reply.response_bytes(status, &reason, "fuzz", &[("Allow", "INVITE")]);
        }
        Err(_) => {}
    }
});
