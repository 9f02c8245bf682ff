//! `dialerd_store_seconds{op}`: how long the store calls that the live dialer and the node's
//! leases wait on take, from the caller's side (pool wait and round trips included), so that
//! the store's share of a slow dialer shows when several nodes share one database.

use prometheus::{HistogramOpts, HistogramTimer, HistogramVec, Registry};

/// The store's timing histogram; unset (nothing measured) until registered.
#[derive(Clone, Default)]
pub struct Timings(Option<HistogramVec>);

impl Timings {
    /// Registers `dialerd_store_seconds{op}` with `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let h = HistogramVec::new(
            HistogramOpts::new(
                "dialerd_store_seconds",
                "Time of store calls the dialer waits on, by operation",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["op"],
        )?;
        registry.register(Box::new(h.clone()))?;
        Ok(Self(Some(h)))
    }

    /// A timer of one `op` call, observed when dropped.
    pub(crate) fn start(&self, op: &str) -> Option<HistogramTimer> {
        self.0
            .as_ref()
            .map(|h| h.with_label_values(&[op]).start_timer())
    }
}
