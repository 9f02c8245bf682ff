//! Test calls for PBX admins: one INVITE through a named trunk, the SIP outcome and timings.

use serde::Serialize;
use std::time::{Duration, Instant};

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
    /// response), `auth_failed`, `transport_error` or `unavailable` (trunk full or rate-limited).
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

/// A test call in flight, keyed by its current INVITE client transaction.
pub struct TestCall {
    /// Index of the trunk in the trunk table.
    pub trunk: usize,
    /// The INVITE as last sent (re-sent with credentials after a challenge).
    pub invite: rsip::Request,
    /// Where it goes.
    pub peer: crate::sip::transport::Peer,
    /// Started at.
    pub started: Instant,
    /// Cancel when still ringing at this time.
    pub ring_deadline: Instant,
    /// CANCEL sent: a 487 then means "no answer".
    pub cancelled: bool,
    /// Digest state for the trunk's credentials.
    pub digest: Option<crate::sip::auth::DigestClient>,
    /// The report as it fills in; sent once the outcome is known.
    pub report: TestCallReport,
    /// Who waits for the report.
    pub reply: Option<tokio::sync::oneshot::Sender<TestCallReport>>,
    /// RTP for the call, echoing what the far end sends.
    pub media: Option<crate::media::echo::Echo>,
}

impl TestCall {
    /// Milliseconds since the call started.
    pub fn elapsed_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_millis() as u64
    }

    /// Sends the report (once).
    pub fn finish(
        &mut self,
        outcome: &'static str,
        code: Option<u16>,
        reason: String,
        now: Instant,
    ) {
        self.report.outcome = outcome;
        self.report.code = code;
        self.report.reason = reason;
        if code.is_some() {
            self.report.final_ms = Some(self.elapsed_ms(now));
        }
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(self.report.clone());
        }
    }
}
