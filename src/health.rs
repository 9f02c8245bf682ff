//! Liveness and readiness as the admin HTTP listener reports them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Readiness: set once every listener is bound and state is usable, cleared when draining.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    /// Not ready yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Marks the daemon ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
    /// True when `/readyz` should answer 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
