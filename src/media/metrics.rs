//! Media metrics, registered by the engine at start. Legs count packets locally and add them
//! here now and then, so the per-packet path touches no shared counter.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Counters, gauges and histograms of the media layer.
#[derive(Clone)]
pub struct MediaMetrics {
    /// `dialerd_rtp_packets_total{direction="in"}`
    pub packets_in: IntCounter,
    /// `dialerd_rtp_packets_total{direction="out"}`
    pub packets_out: IntCounter,
    /// `dialerd_rtp_sessions_active`
    pub sessions_active: IntGauge,
    /// `dialerd_rtp_ports_free`
    pub ports_free: IntGauge,
    /// `dialerd_rtp_loss_ratio`: per leg, at its end.
    pub loss_ratio: Histogram,
    /// `dialerd_rtp_jitter_seconds`: per leg, at its end.
    pub jitter: Histogram,
    /// `dialerd_rtp_timeouts_total`
    pub timeouts: IntCounter,
    /// `dialerd_call_mos`: estimated MOS per leg, at its end.
    pub mos: Histogram,
    /// `dialerd_srtp_packets_dropped_total{kind="rtp"}`: SRTP that failed its check.
    pub srtp_dropped: IntCounter,
    /// `dialerd_srtp_packets_dropped_total{kind="rtcp"}`: SRTCP that failed its check.
    pub srtcp_dropped: IntCounter,
    /// `dialerd_srtp_packets_dropped_total{kind="rtcp_clear"}`: well-formed RTCP sent in clear.
    pub srtcp_clear_dropped: IntCounter,
}

impl MediaMetrics {
    /// Creates and registers the media metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let packets = IntCounterVec::new(
            Opts::new(
                "dialerd_rtp_packets_total",
                "RTP packets received (in) and sent (out).",
            ),
            &["direction"],
        )?;
        let srtp_dropped = IntCounterVec::new(
            Opts::new(
                "dialerd_srtp_packets_dropped_total",
                "Packets dropped on encrypted legs: SRTP (kind rtp) and SRTCP (kind rtcp) that \
                 failed authentication, were replayed or are not SRTP at all, and well-formed RTCP \
                 the far end sent in clear (kind rtcp_clear).",
            ),
            &["kind"],
        )?;
        let m = Self {
            srtp_dropped: srtp_dropped.with_label_values(&["rtp"]),
            srtcp_dropped: srtp_dropped.with_label_values(&["rtcp"]),
            srtcp_clear_dropped: srtp_dropped.with_label_values(&["rtcp_clear"]),
            packets_in: packets.with_label_values(&["in"]),
            packets_out: packets.with_label_values(&["out"]),
            sessions_active: IntGauge::new(
                "dialerd_rtp_sessions_active",
                "RTP sessions (call legs with media) open.",
            )?,
            ports_free: IntGauge::new("dialerd_rtp_ports_free", "RTP ports left in the pool.")?,
            loss_ratio: Histogram::with_opts(
                HistogramOpts::new(
                    "dialerd_rtp_loss_ratio",
                    "Share of RTP packets lost per call leg, measured when it ends.",
                )
                .buckets(vec![0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]),
            )?,
            jitter: Histogram::with_opts(
                HistogramOpts::new(
                    "dialerd_rtp_jitter_seconds",
                    "RTP interarrival jitter per call leg (RFC 3550), measured when it ends.",
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2]),
            )?,
            timeouts: IntCounter::new(
                "dialerd_rtp_timeouts_total",
                "Call legs hung up because no RTP arrived for media.rtp_timeout.",
            )?,
            mos: Histogram::with_opts(
                HistogramOpts::new(
                    "dialerd_call_mos",
                    "Estimated MOS per call leg (simplified E-model), measured when it ends.",
                )
                .buckets(vec![1.0, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4, 4.5]),
            )?,
        };
        registry.register(Box::new(packets))?;
        registry.register(Box::new(m.sessions_active.clone()))?;
        registry.register(Box::new(m.ports_free.clone()))?;
        registry.register(Box::new(m.loss_ratio.clone()))?;
        registry.register(Box::new(m.jitter.clone()))?;
        registry.register(Box::new(m.timeouts.clone()))?;
        registry.register(Box::new(m.mos.clone()))?;
        registry.register(Box::new(srtp_dropped))?;
        Ok(m)
    }
}
