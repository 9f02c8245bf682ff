//! Tags, branches and Call-IDs.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

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
