//! Graceful shutdown: one token that tells every task to stop taking new work, and a tracker
//! that lets in-progress work finish under a grace timeout.

use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Coordinates stopping: subsystems watch [`Shutdown::token`] and spawn work on the tracker.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

/// How draining ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// All work finished in time.
    Clean,
    /// The timeout ran out with this many tasks still running; they are abandoned.
    TimedOut(usize),
}

impl Shutdown {
    /// A fresh coordinator.
    pub fn new() -> Self {
        Self::default()
    }
    /// Cancelled when the daemon begins to stop.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
    /// Spawns a task whose completion shutdown waits for.
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(fut)
    }
    /// Stops new work and waits up to `timeout` for tracked tasks to finish.
    pub async fn drain(&self, timeout: Duration) -> Drained {
        self.token.cancel();
        self.tracker.close();
        match tokio::time::timeout(timeout, self.tracker.wait()).await {
            Ok(()) => Drained::Clean,
            Err(_) => Drained::TimedOut(self.tracker.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_work_that_finishes_in_time() {
        let s = Shutdown::new();
        let token = s.token();
        s.spawn(async move {
            token.cancelled().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        let start = tokio::time::Instant::now();
        assert_eq!(s.drain(Duration::from_secs(5)).await, Drained::Clean);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_at_the_timeout() {
        let s = Shutdown::new();
        s.spawn(tokio::time::sleep(Duration::from_secs(60)));
        let start = tokio::time::Instant::now();
        assert_eq!(s.drain(Duration::from_secs(5)).await, Drained::TimedOut(1));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
