//! Giving freed heap back to the system. glibc keeps what a burst of calls freed in its arenas,
//! so without a trim a daemon's RSS would stay at its peak after a load run for good.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often freed heap is returned.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(30);

/// Returns free heap pages to the system now (glibc `malloc_trim`); elsewhere a no-op.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; no Rust object is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trims every `every` until `stop` is cancelled.
pub async fn trim_periodically(every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while stop.run_until_cancelled(tick.tick()).await.is_some() {
        // A walk of the free lists: off the async workers.
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}
