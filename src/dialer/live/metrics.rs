//! The live driver's Prometheus series.

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The dialer's series; cheap to clone.
#[derive(Clone)]
pub struct LiveMetrics {
    /// `dialerd_dialer_calls_total{campaign,result}`: attempts recorded.
    pub calls: IntCounterVec,
    /// `dialerd_calls_in_flight{task}`: calls placed and not yet recorded.
    pub in_flight: IntGaugeVec,
    /// `dialerd_abandon_ratio{campaign,window}`: abandoned ÷ live, `24h` and `30d`.
    pub abandon_ratio: GaugeVec,
    /// `dialerd_answer_to_agent_seconds{agent}`: from the customer's answer to the agent's
    /// bridge; `agent="ready"` when an agent was free at the answer, `awaited` when the customer
    /// waited for one to free up (the predictive pacer plans such waits, up to 2 s).
    pub answer_to_agent: HistogramVec,
    /// `dialerd_answer_read_lag_seconds`: from a customer's answer to its campaign driver
    /// reading it (how far behind the driver runs).
    pub answer_read_lag: Histogram,
    /// `dialerd_inbound_calls_total{line,result}`: callbacks and other calls to lines.
    pub inbound_calls: IntCounterVec,
    /// `dialerd_inbound_wait_seconds`: how long callers waited for an agent.
    pub inbound_wait: Histogram,
    /// `dialerd_inbound_waiting{task}`: callers waiting for an agent now.
    pub inbound_waiting: IntGaugeVec,
}

impl LiveMetrics {
    /// Registers the series in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let calls = IntCounterVec::new(
            Opts::new(
                "dialerd_dialer_calls_total",
                "Campaign call attempts recorded, by result.",
            ),
            &["campaign", "result"],
        )?;
        let in_flight = IntGaugeVec::new(
            Opts::new(
                "dialerd_calls_in_flight",
                "Campaign calls placed and not yet recorded, by call task.",
            ),
            &["task"],
        )?;
        let abandon_ratio = GaugeVec::new(
            Opts::new(
                "dialerd_abandon_ratio",
                "Abandoned share of live answers per campaign, over 24h and 30d.",
            ),
            &["campaign", "window"],
        )?;
        let answer_to_agent = HistogramVec::new(
            HistogramOpts::new(
                "dialerd_answer_to_agent_seconds",
                "From a customer's answer to the bridge to an agent; agent=ready when one was \
                 free at the answer, awaited when the customer waited for one.",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0,
            ]),
            &["agent"],
        )?;
        let answer_read_lag = Histogram::with_opts(
            HistogramOpts::new(
                "dialerd_answer_read_lag_seconds",
                "From a customer's answer to its campaign driver reading it.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
            ]),
        )?;
        let inbound_calls = IntCounterVec::new(
            Opts::new(
                "dialerd_inbound_calls_total",
                "Calls to caller-ID lines, by line and result (connected, missed, unknown, \
                 closed_contact, rejected, message).",
            ),
            &["line", "result"],
        )?;
        let inbound_wait = Histogram::with_opts(
            HistogramOpts::new(
                "dialerd_inbound_wait_seconds",
                "How long inbound callers waited for an agent (or until they left).",
            )
            .buckets(vec![
                0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
            ]),
        )?;
        let inbound_waiting = IntGaugeVec::new(
            Opts::new(
                "dialerd_inbound_waiting",
                "Inbound callers waiting for an agent, by call task.",
            ),
            &["task"],
        )?;
        registry.register(Box::new(inbound_calls.clone()))?;
        registry.register(Box::new(inbound_wait.clone()))?;
        registry.register(Box::new(inbound_waiting.clone()))?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(abandon_ratio.clone()))?;
        // Both series from the start, so dashboards and alerts see zeros, not nothing.
        for agent in ["ready", "awaited"] {
            answer_to_agent.with_label_values(&[agent]);
        }
        registry.register(Box::new(answer_to_agent.clone()))?;
        registry.register(Box::new(answer_read_lag.clone()))?;
        Ok(Self {
            calls,
            in_flight,
            abandon_ratio,
            answer_to_agent,
            answer_read_lag,
            inbound_calls,
            inbound_wait,
            inbound_waiting,
        })
    }
}
