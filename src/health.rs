//! Liveness and readiness as the admin HTTP listener reports them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Readiness: set once every listener is bound and state is usable, cleared when draining;
/// and whether the node is fenced (another instance took its node name).
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    fenced: Arc<AtomicBool>,
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
    /// True when `/readyz` should answer 200: ready and not fenced.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.is_fenced()
    }
    /// Marks the node fenced, for good: it dials no more and both probes answer 503.
    pub fn set_fenced(&self) {
        self.fenced.store(true, Ordering::SeqCst);
    }
    /// True once the node is fenced.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }
}

/// `dialerd_ready`: 1 while `/readyz` answers 200, and `dialerd_node_fenced`: 1 once the node
/// is fenced, read at each scrape (so an alert sees a daemon that serves metrics but is not
/// ready, e.g. stuck draining, or that lost its node name).
pub struct ReadyCollector {
    health: Health,
    ready: prometheus::IntGauge,
    fenced: prometheus::IntGauge,
}

impl ReadyCollector {
    /// A collector reporting `health`'s readiness and fence.
    pub fn new(health: Health) -> Result<Self, prometheus::Error> {
        let ready = prometheus::IntGauge::new(
            "dialerd_ready",
            "1 while the daemon is ready (as /readyz), 0 before start-up completes, while draining and once fenced.",
        )?;
        let fenced = prometheus::IntGauge::new(
            "dialerd_node_fenced",
            "1 once another running dialerd holds this node's node.name: this one dials no more.",
        )?;
        Ok(Self {
            health,
            ready,
            fenced,
        })
    }
}

impl prometheus::core::Collector for ReadyCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.ready
            .desc()
            .into_iter()
            .chain(self.fenced.desc())
            .collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.ready.set(i64::from(self.health.is_ready()));
        self.fenced.set(i64::from(self.health.is_fenced()));
        self.ready
            .collect()
            .into_iter()
            .chain(self.fenced.collect())
            .collect()
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

    #[test]
    fn a_fenced_node_is_not_ready_for_good() {
        let health = Health::new();
        let c = ReadyCollector::new(health.clone()).unwrap();
        let values = |c: &ReadyCollector| -> Vec<(String, f64)> {
            c.collect()
                .iter()
                .map(|f| {
                    (
                        f.name().to_string(),
                        f.get_metric()[0].get_gauge().get_value(),
                    )
                })
                .collect()
        };
        health.set_ready(true);
        let names = |v: &[(&str, f64)]| -> Vec<(String, f64)> {
            v.iter().map(|(n, x)| (n.to_string(), *x)).collect()
        };
        assert_eq!(
            values(&c),
            names(&[("dialerd_ready", 1.0), ("dialerd_node_fenced", 0.0)])
        );
        health.set_fenced();
        health.set_ready(true);
        assert!(!health.is_ready());
        assert_eq!(
            values(&c),
            names(&[("dialerd_ready", 0.0), ("dialerd_node_fenced", 1.0)])
        );
    }
}
