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

/// `dialerd_ready`: 1 while `/readyz` answers 200, read at each scrape (so an alert sees a
/// daemon that serves metrics but is not ready, e.g. stuck draining).
pub struct ReadyCollector {
    health: Health,
    gauge: prometheus::IntGauge,
}

impl ReadyCollector {
    /// A collector reporting `health`'s readiness.
    pub fn new(health: Health) -> Result<Self, prometheus::Error> {
        let gauge = prometheus::IntGauge::new(
            "dialerd_ready",
            "1 while the daemon is ready (as /readyz), 0 before start-up completes and while draining.",
        )?;
        Ok(Self { health, gauge })
    }
}

impl prometheus::core::Collector for ReadyCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.gauge.set(i64::from(self.health.is_ready()));
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::core::Collector;

    #[test]
    fn the_gauge_follows_readiness_at_each_collection() {
        let health = Health::new();
        let c = ReadyCollector::new(health.clone()).unwrap();
        let value = |c: &ReadyCollector| c.collect()[0].get_metric()[0].get_gauge().get_value();
        assert_eq!(value(&c), 0.0);
        health.set_ready(true);
        assert_eq!(value(&c), 1.0);
        health.set_ready(false);
        assert_eq!(value(&c), 0.0);
    }
}
