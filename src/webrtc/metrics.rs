//! Metrics of the browser audio legs.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Gauges and counters of the browser legs.
#[derive(Clone)]
pub struct WebRtcMetrics {
    failed: IntCounterVec,
    /// Browser legs with ICE and DTLS up now.
    pub legs_active: IntGauge,
    /// Legs the WebRTC stack failed before they connected (a failed DTLS handshake).
    pub connect_failed_error: IntCounter,
    /// Legs ended from above before they connected (the connect timeout, a logout).
    pub connect_failed_ended: IntCounter,
}

impl WebRtcMetrics {
    /// Creates the browser legs' metrics, not yet registered.
    pub fn new() -> prometheus::Result<Self> {
        let failed = IntCounterVec::new(
            Opts::new(
                "dialerd_webrtc_connect_failures_total",
                "Browser audio legs that ended before ICE and DTLS were up: the WebRTC stack \
                 failed them (reason error: a DTLS alert or failed handshake) or they were \
                 ended before (reason ended: the session's connect timeout, a logout).",
            ),
            &["reason"],
        )?;
        Ok(Self {
            legs_active: IntGauge::new(
                "dialerd_webrtc_legs_active",
                "Browser audio legs with ICE and DTLS up.",
            )?,
            connect_failed_error: failed.with_label_values(&["error"]),
            connect_failed_ended: failed.with_label_values(&["ended"]),
            failed,
        })
    }

    /// Exports them in `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.legs_active.clone()))?;
        registry.register(Box::new(self.failed.clone()))
    }
}
