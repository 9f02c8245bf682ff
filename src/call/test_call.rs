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
    /// Trunk used.
    pub trunk: String,
    /// Number called.
    pub to: String,
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

/// Places a test call through `trunk` (even when its keepalive says it is down: that is what
/// a test is for) to `to`, hangs up as soon as it is answered, and reports.
pub async fn run(
    sip: &SipHandle,
    trunk: &str,
    to: &str,
    caller_id: Option<String>,
    ring_timeout: Duration,
) -> TestCallReport {
    let mut report = TestCallReport {
        trunk: trunk.to_string(),
        to: to.to_string(),
        outcome: "unavailable",
        code: None,
        reason: String::new(),
        auth_challenges: 0,
        first_response_ms: None,
        ringing_ms: None,
        final_ms: None,
    };
    let local_ip = sip.local_ip_for_trunk(Some(trunk));
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
            trunk: Some(trunk.to_string()),
            caller_id,
            sdp: Some(
                sdp::offer(
                    local_ip,
                    media.local.port(),
                    started.elapsed().as_nanos() as u64,
                )
                .into_bytes(),
            ),
            ring_timeout,
            even_if_down: true,
            ..Dial::new(to)
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
