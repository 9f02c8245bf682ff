//! SIP metrics, registered by the endpoint at start.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Counters and gauges of the SIP layer.
#[derive(Clone)]
pub struct SipMetrics {
    /// `dialerd_sip_requests_total{direction,method}`
    pub requests: IntCounterVec,
    /// `dialerd_sip_responses_total{direction,code_class}`
    pub responses: IntCounterVec,
    /// `dialerd_sip_transactions_active`
    pub transactions_active: IntGauge,
    /// `dialerd_sip_retransmissions_total`
    pub retransmissions: IntCounter,
    /// `dialerd_sip_parse_errors_total`
    pub parse_errors: IntCounter,
    /// `dialerd_sip_dialogs_active`
    pub dialogs_active: IntGauge,
    /// `dialerd_sip_auth_failures_total`
    pub auth_failures: IntCounter,
    /// `dialerd_sip_register_throttled_total`
    pub register_throttled: IntCounter,
    /// `dialerd_sip_registrations_active`
    pub registrations: IntGauge,
    /// `dialerd_sip_requests_shed_total{reason}`
    pub requests_shed: IntCounterVec,
    /// `dialerd_sip_tcp_connections_refused_total{reason}`
    pub tcp_refused: IntCounterVec,
    /// `dialerd_trunk_up{trunk}`
    pub trunk_up: IntGaugeVec,
    /// `dialerd_trunk_registered{trunk}`
    pub trunk_registered: IntGaugeVec,
    /// `dialerd_trunk_calls_active{trunk}`
    pub trunk_calls_active: IntGaugeVec,
}

impl SipMetrics {
    /// Creates and registers the SIP metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "dialerd_sip_requests_total",
                    "SIP requests received (in) and sent (out), retransmissions included.",
                ),
                &["direction", "method"],
            )?,
            responses: IntCounterVec::new(
                Opts::new(
                    "dialerd_sip_responses_total",
                    "SIP responses received (in) and sent (out), by class (1xx..6xx).",
                ),
                &["direction", "code_class"],
            )?,
            transactions_active: IntGauge::new(
                "dialerd_sip_transactions_active",
                "SIP transactions in progress.",
            )?,
            retransmissions: IntCounter::new(
                "dialerd_sip_retransmissions_total",
                "SIP messages retransmitted by transaction timers.",
            )?,
            parse_errors: IntCounter::new(
                "dialerd_sip_parse_errors_total",
                "SIP messages that could not be parsed or framed.",
            )?,
            dialogs_active: IntGauge::new(
                "dialerd_sip_dialogs_active",
                "SIP dialogs (early and confirmed) in progress.",
            )?,
            auth_failures: IntCounter::new(
                "dialerd_sip_auth_failures_total",
                "Digest authentications that failed (wrong password, unknown user).",
            )?,
            register_throttled: IntCounter::new(
                "dialerd_sip_register_throttled_total",
                "REGISTERs answered 503 without a password check: their source or account \
                 failed authentication too often.",
            )?,
            registrations: IntGauge::new(
                "dialerd_sip_registrations_active",
                "Contacts currently registered by agent phones.",
            )?,
            requests_shed: IntCounterVec::new(
                Opts::new(
                    "dialerd_sip_requests_shed_total",
                    "SIP requests not given a transaction under load: reason=rate_limit (source over sip.rate_limit_requests, dropped), sources_full (too many sources tracked, dropped), backlog (inbound queue over half full, dropped), transactions (over sip.max_server_transactions, answered 503 without state).",
                ),
                &["reason"],
            )?,
            tcp_refused: IntCounterVec::new(
                Opts::new(
                    "dialerd_sip_tcp_connections_refused_total",
                    "SIP TCP connections closed at once: reason=total (sip.tcp_max_connections reached) or per_source (sip.tcp_max_connections_per_source reached).",
                ),
                &["reason"],
            )?,
            trunk_up: IntGaugeVec::new(
                Opts::new(
                    "dialerd_trunk_up",
                    "1 when the trunk answers keepalives, else 0.",
                ),
                &["trunk"],
            )?,
            trunk_registered: IntGaugeVec::new(
                Opts::new(
                    "dialerd_trunk_registered",
                    "1 when registered to the trunk, else 0.",
                ),
                &["trunk"],
            )?,
            trunk_calls_active: IntGaugeVec::new(
                Opts::new(
                    "dialerd_trunk_calls_active",
                    "Calls in progress through the trunk.",
                ),
                &["trunk"],
            )?,
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.responses.clone()))?;
        registry.register(Box::new(m.transactions_active.clone()))?;
        registry.register(Box::new(m.retransmissions.clone()))?;
        registry.register(Box::new(m.parse_errors.clone()))?;
        registry.register(Box::new(m.dialogs_active.clone()))?;
        registry.register(Box::new(m.auth_failures.clone()))?;
        registry.register(Box::new(m.register_throttled.clone()))?;
        registry.register(Box::new(m.registrations.clone()))?;
        // Every reason starts at 0, so `rate()` and alerts see the series before the first shed.
        for reason in ["rate_limit", "sources_full", "backlog", "transactions"] {
            m.requests_shed.with_label_values(&[reason]);
        }
        registry.register(Box::new(m.requests_shed.clone()))?;
        registry.register(Box::new(m.tcp_refused.clone()))?;
        registry.register(Box::new(m.trunk_up.clone()))?;
        registry.register(Box::new(m.trunk_registered.clone()))?;
        registry.register(Box::new(m.trunk_calls_active.clone()))?;
        Ok(m)
    }

    /// Counts one message by its first line: `direction` is "in" or "out".
    pub fn count(&self, direction: &str, bytes: &[u8]) {
        if let Some(rest) = bytes.strip_prefix(b"SIP/2.0 ") {
            let class = match rest.first() {
                Some(d @ b'1'..=b'6') => [*d, b'x', b'x'],
                _ => *b"bad",
            };
            let class = std::str::from_utf8(&class).unwrap_or("bad");
            self.responses.with_label_values(&[direction, class]).inc();
        } else {
            let end = bytes.iter().position(|&b| b == b' ').unwrap_or(0).min(16);
            let method = std::str::from_utf8(&bytes[..end]).unwrap_or("");
            // Bounded label set: unknown methods share one label.
            let method = match method {
                "INVITE" | "ACK" | "BYE" | "CANCEL" | "OPTIONS" | "REGISTER" | "INFO"
                | "UPDATE" | "PRACK" | "SUBSCRIBE" | "NOTIFY" | "REFER" | "MESSAGE" | "PUBLISH" => {
                    method
                }
                _ => "other",
            };
            self.requests.with_label_values(&[direction, method]).inc();
        }
    }
}

impl SipMetrics {
    /// Publishes trunk state as gauges.
    pub fn set_trunks(&self, status: &[crate::sip::trunk::TrunkStatus]) {
        for t in status {
            self.trunk_up
                .with_label_values(&[&t.name])
                .set(i64::from(t.state == "up"));
            self.trunk_registered
                .with_label_values(&[&t.name])
                .set(i64::from(t.registered));
            self.trunk_calls_active
                .with_label_values(&[&t.name])
                .set(i64::from(t.active_calls));
        }
    }
}
