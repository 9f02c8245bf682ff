//! Test calls for PBX admins: one INVITE through a named trunk, the SIP outcome and timings.

use crate::media::{echo, sdp};
use crate::sip::leg::{Dial, LegEvent, SipHandle};
use serde::Serialize;
use std::time::Duration;

/// How long a test call may ring before it is cancelled, unless the request says otherwise.
pub const RING_TIMEOUT: Duration = Duration::from_secs(30);

/// What a test call reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestCallReport {
    /// Trunk asked for; `None` when the least loaded trunk that is up was taken.
    pub trunk: Option<String>,
    /// Number called.
    pub to: String,
    /// Caller ID asked for; `None` when the trunk's default was shown.
    pub caller_id: Option<String>,
    /// `answered`, `rejected`, `no_answer` (cancelled at the ring timeout), `timeout` (no final
    /// response), `auth_failed`, `transport_error`, `unavailable` (trunk unknown, full or
    /// rate-limited) or `shutdown`.
    pub outcome: &'static str,
    /// Final SIP status code, when one came.
    pub code: Option<u16>,
    /// Reason phrase or explanation.
    pub reason: String,
    /// Digest challenges answered (401/407).
    pub auth_challenges: u32,
    /// Milliseconds from the first INVITE to the first response of any kind.
    pub first_response_ms: Option<u64>,
    /// Milliseconds to the first 180/183.
    pub ringing_ms: Option<u64>,
    /// Milliseconds to the final response.
    pub final_ms: Option<u64>,
}

/// Places `dial` as a test call (through its trunk even when the trunk's keepalive says it is
/// down: that is what a test is for), hangs up as soon as it is answered, and reports.
pub async fn run(sip: &SipHandle, dial: Dial) -> TestCallReport {
    let mut report = TestCallReport {
        trunk: dial.trunk.clone(),
        to: dial.to.clone(),
        caller_id: dial.caller_id.clone(),
        outcome: "unavailable",
        code: None,
        reason: String::new(),
        auth_challenges: 0,
        first_response_ms: None,
        ringing_ms: None,
        final_ms: None,
    };
    let local_ip = sip.local_ip_for_trunk(dial.trunk.as_deref());
    // Whatever the far end sends comes back: an admin listening hears the path both ways.
    let media = match echo::start(local_ip) {
        Ok(m) => m,
        Err(e) => {
            report.outcome = "transport_error";
            report.reason = format!("cannot open an RTP socket: {e}");
            return report;
        }
    };
    let started = tokio::time::Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    let leg = sip
        .dial(Dial {
            sdp: Some(
                sdp::offer(
                    local_ip,
                    media.local.port(),
                    started.elapsed().as_nanos() as u64,
                )
                .into_bytes(),
            ),
            even_if_down: dial.trunk.is_some(),
            ..dial
        })
        .await;
    let mut events = leg.events;
    while let Some(event) = events.recv().await {
        match event {
            LegEvent::Progress { code, .. } => {
                report.first_response_ms.get_or_insert(ms());
                if (180..=183).contains(&code) {
                    report.ringing_ms.get_or_insert(ms());
                }
            }
            LegEvent::Challenged { .. } => {
                report.first_response_ms.get_or_insert(ms());
                report.auth_challenges += 1;
            }
            LegEvent::Answered { .. } => {
                report.first_response_ms.get_or_insert(ms());
                report.final_ms = Some(ms());
                report.outcome = "answered";
                report.code = Some(200);
                report.reason = "OK".into();
                // A test call only proves the path: hang up at once.
                sip.hang_up(leg.id).await;
                return report;
            }
            LegEvent::Failed {
                failure,
                code,
                reason,
            } => {
                if code.is_some() {
                    report.first_response_ms.get_or_insert(ms());
                    report.final_ms = Some(ms());
                }
                report.outcome = failure.as_str();
                report.code = code;
                report.reason = reason;
                return report;
            }
            LegEvent::Reoffer { .. } | LegEvent::Info(_) | LegEvent::Ended { .. } => {}
        }
    }
    report.outcome = "shutdown";
    report.reason = "the SIP endpoint is shutting down".into();
    report
}
