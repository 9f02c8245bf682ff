//! Tags, branches and Call-IDs.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// An unpredictable 32-bit number without a random-number crate: std's randomly keyed SipHash
/// over a process-wide counter. Good for SSRCs, SDP session ids, DNS query ids and SRV
/// weights; not for keys.
pub fn random_u32() -> u32 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish() as u32
}

/// Unpredictable identifiers without a random-number crate: SipHash under a per-process random
/// key over a counter.
#[derive(Debug, Default)]
pub struct IdGen {
    state: RandomState,
    counter: u64,
}

impl IdGen {
    /// A generator with a fresh random key.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next identifier: 16 hex digits, never repeated by this generator.
    pub fn next_id(&mut self) -> String {
        self.counter += 1;
        let mut h = self.state.build_hasher();
        h.write_u64(self.counter);
        format!("{:016x}", h.finish())
    }
}
