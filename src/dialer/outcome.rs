//! How a call attempt's SIP outcome becomes the contact's status detail, and when (and whether)
//! the contact is tried again.
//!
//! | outcome | detail |
//! |---|---|
//! | 486 Busy Here, 600 Busy Everywhere, 603 Decline | `$busy` |
//! | the dialer's ring timeout (at least 15 s), 480, 408 | `$no_answer` |
//! | 404 Not Found, 484 Address Incomplete, 604 Does Not Exist Anywhere | `$invalid_number` |
//! | 5xx, transaction or transport timeouts, any other failure | `$network_error` |
//! | no trunk could take the call, or its digest challenge could not be met | `$network_error` |
//! | answered by a person, no agent within 2 s | `$abandoned` |
//!
//! 603, 480 and 408 are not named by the issue: a decline is treated like busy (the person is
//! there but not taking the call), 480/408 like no answer (the far end says nobody picked up).
//!
//! [`call_end`] turns a [`Failure`] of a SIP leg into a [`CallEnd`]. Calls that never reached
//! the person's network (no trunk, failed trunk authentication, no final response) say
//! nothing about whether people answer, so the statistics do not learn from them
//! ([`CallEnd::teaches_answer_rate`]): counting them as "not live" would lower the learned
//! answer rate and make predictive dial harder than it should.
//!
//! The retry rule is the call task's own settings ([`CallSettings`]: `max_attempts` and
//! `retry_delays_seconds`), read by [`RetryPolicy`], so the store and the dialer share one
//! rule and one set of defaults; the 72 h no-recall floor for abandoned contacts wins over a
//! shorter configured delay.

use super::Time;
use crate::sip::leg::Failure;
use crate::store::tasks::{CallSettings, RetryDelays};
use std::time::Duration;

/// The shortest ring timeout allowed by default (US/UK rule of thumb: 15 s of ringing).
pub const MIN_RING_TIMEOUT: Duration = Duration::from_secs(15);

/// How an outbound attempt ended, as the SIP layer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// A final non-2xx response with this status code.
    Rejected(u16),
    /// The dialer gave up after its ring timeout.
    RingTimeout,
    /// No final response: transaction timeout (Timer B) or transport failure.
    Timeout,
    /// A person answered but no agent was connected within the wait (2 s).
    Abandoned,
    /// No trunk could take the call (unknown, down, full or rate-limited): it never left.
    Unavailable,
    /// The trunk's digest challenge could not be met.
    AuthFailed,
}

impl CallEnd {
    /// Whether the attempt tells anything about people answering: false for calls that never
    /// reached the far end's network, which the statistics must not count as "not live".
    pub fn teaches_answer_rate(self) -> bool {
        !matches!(
            self,
            CallEnd::Unavailable | CallEnd::AuthFailed | CallEnd::Timeout
        )
    }
}

/// How an outbound SIP leg's failure (with its final status, when one came) ended the attempt.
pub fn call_end(failure: Failure, code: Option<u16>) -> CallEnd {
    match (failure, code) {
        (Failure::Rejected, Some(code)) => CallEnd::Rejected(code),
        // Hung up by us before an answer: at the ring timeout or by the pacer.
        (Failure::NoAnswer | Failure::Cancelled, _) => CallEnd::RingTimeout,
        (Failure::Unavailable | Failure::RateLimited | Failure::Shutdown, _) => {
            CallEnd::Unavailable
        }
        (Failure::AuthFailed, _) => CallEnd::AuthFailed,
        // A rejection without a code, no final response, or a transport error; a caller's
        // CANCEL only ends inbound legs.
        (
            Failure::Rejected
            | Failure::Timeout
            | Failure::TransportError
            | Failure::CallerCancelled,
            _,
        ) => CallEnd::Timeout,
    }
}

/// A contact's status detail after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Detail {
    /// `$busy`
    #[serde(rename = "$busy")]
    Busy,
    /// `$no_answer`
    #[serde(rename = "$no_answer")]
    NoAnswer,
    /// `$invalid_number`
    #[serde(rename = "$invalid_number")]
    InvalidNumber,
    /// `$network_error`
    #[serde(rename = "$network_error")]
    NetworkError,
    /// `$abandoned`
    #[serde(rename = "$abandoned")]
    Abandoned,
}

impl Detail {
    /// The detail as contacts carry it, e.g. `$busy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Detail::Busy => "$busy",
            Detail::NoAnswer => "$no_answer",
            Detail::InvalidNumber => "$invalid_number",
            Detail::NetworkError => "$network_error",
            Detail::Abandoned => "$abandoned",
        }
    }
}

/// The status detail of an attempt that ended this way.
pub fn detail(end: CallEnd) -> Detail {
    match end {
        CallEnd::Rejected(486 | 600 | 603) => Detail::Busy,
        CallEnd::Rejected(404 | 484 | 604) => Detail::InvalidNumber,
        CallEnd::Rejected(408 | 480) | CallEnd::RingTimeout => Detail::NoAnswer,
        CallEnd::Rejected(_) | CallEnd::Timeout => Detail::NetworkError,
        CallEnd::Unavailable | CallEnd::AuthFailed => Detail::NetworkError,
        CallEnd::Abandoned => Detail::Abandoned,
    }
}

/// The ring timeout to use: the configured one, never below `minimum`.
pub fn ring_timeout(configured: Duration, minimum: Duration) -> Duration {
    configured.max(minimum)
}

/// When a contact is tried again: a call task's `max_attempts` and `retry_delays_seconds`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (the first included).
    pub max_attempts: u32,
    /// Seconds to wait per outcome.
    pub delays: RetryDelays,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::from(&CallSettings::default())
    }
}

impl From<&CallSettings> for RetryPolicy {
    fn from(settings: &CallSettings) -> Self {
        RetryPolicy {
            max_attempts: settings.max_attempts,
            delays: settings.retry_delays_seconds.clone(),
        }
    }
}

impl RetryPolicy {
    /// How long to wait after `detail`; `None` when the contact is not tried again at all
    /// (a number that does not exist will not exist in an hour either).
    pub fn delay(&self, detail: Detail) -> Option<Duration> {
        let secs = |s: u32| Duration::from_secs(s.into());
        match detail {
            Detail::Busy => Some(secs(self.delays.busy)),
            Detail::NoAnswer => Some(secs(self.delays.no_answer)),
            Detail::NetworkError => Some(secs(self.delays.failed)),
            Detail::InvalidNumber => None,
            Detail::Abandoned => Some(secs(self.delays.abandoned).max(super::answer::NO_RECALL)),
        }
    }

    /// When the contact may be tried next after its `attempts`-th attempt ended with `detail`
    /// at `now`; `None` when it has had all its attempts (the contact fails with that detail).
    pub fn next_attempt(&self, detail: Detail, attempts: u32, now: Time) -> Option<Time> {
        let delay = self.delay(detail)?;
        (attempts < self.max_attempts).then(|| now + delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_outcomes_map_to_details() {
        for code in [486, 600] {
            assert_eq!(detail(CallEnd::Rejected(code)), Detail::Busy, "{code}");
        }
        for code in [404, 484, 604] {
            assert_eq!(
                detail(CallEnd::Rejected(code)),
                Detail::InvalidNumber,
                "{code}"
            );
        }
        for code in [500, 502, 503, 504, 580] {
            assert_eq!(
                detail(CallEnd::Rejected(code)),
                Detail::NetworkError,
                "{code}"
            );
        }
        assert_eq!(detail(CallEnd::RingTimeout), Detail::NoAnswer);
        assert_eq!(detail(CallEnd::Timeout), Detail::NetworkError);
        assert_eq!(detail(CallEnd::Abandoned), Detail::Abandoned);
        assert_eq!(detail(CallEnd::Abandoned).as_str(), "$abandoned");
        assert_eq!(Detail::InvalidNumber.as_str(), "$invalid_number");
    }

    #[test]
    fn ring_timeout_is_at_least_the_minimum() {
        assert_eq!(
            ring_timeout(Duration::from_secs(8), MIN_RING_TIMEOUT),
            Duration::from_secs(15)
        );
        assert_eq!(
            ring_timeout(Duration::from_secs(25), MIN_RING_TIMEOUT),
            Duration::from_secs(25)
        );
    }

    #[test]
    fn leg_failures_map_to_outcomes_and_details() {
        let cases = [
            (
                Failure::Rejected,
                Some(486),
                CallEnd::Rejected(486),
                Detail::Busy,
            ),
            (
                Failure::NoAnswer,
                None,
                CallEnd::RingTimeout,
                Detail::NoAnswer,
            ),
            (
                Failure::Cancelled,
                None,
                CallEnd::RingTimeout,
                Detail::NoAnswer,
            ),
            (
                Failure::Timeout,
                None,
                CallEnd::Timeout,
                Detail::NetworkError,
            ),
            (
                Failure::TransportError,
                None,
                CallEnd::Timeout,
                Detail::NetworkError,
            ),
            (
                Failure::Unavailable,
                None,
                CallEnd::Unavailable,
                Detail::NetworkError,
            ),
            (
                Failure::Shutdown,
                None,
                CallEnd::Unavailable,
                Detail::NetworkError,
            ),
            (
                Failure::AuthFailed,
                Some(401),
                CallEnd::AuthFailed,
                Detail::NetworkError,
            ),
        ];
        for (failure, code, end, d) in cases {
            assert_eq!(call_end(failure, code), end, "{failure:?}");
            assert_eq!(detail(end), d, "{failure:?}");
        }
        // Calls that never reached the far end teach the statistics nothing.
        assert!(!CallEnd::Unavailable.teaches_answer_rate());
        assert!(!CallEnd::AuthFailed.teaches_answer_rate());
        assert!(CallEnd::Rejected(486).teaches_answer_rate());
        assert!(CallEnd::RingTimeout.teaches_answer_rate());
    }

    #[test]
    fn retries_follow_the_task_settings_until_attempts_run_out() {
        let p = RetryPolicy::default();
        let now = Time(1_000);
        assert_eq!(
            p.next_attempt(Detail::Busy, 1, now),
            Some(now + Duration::from_secs(600))
        );
        assert_eq!(p.next_attempt(Detail::Busy, 5, now), None);
        assert_eq!(p.next_attempt(Detail::InvalidNumber, 1, now), None);
        assert_eq!(
            p.next_attempt(Detail::NetworkError, 2, now),
            Some(now + Duration::from_secs(1800))
        );
        let p = RetryPolicy::from(&CallSettings {
            max_attempts: 2,
            ..CallSettings::default()
        });
        assert_eq!(p.next_attempt(Detail::NoAnswer, 2, now), None);
    }

    #[test]
    fn abandoned_contacts_wait_72_hours_even_if_configured_shorter() {
        let mut settings = CallSettings::default();
        settings.retry_delays_seconds.abandoned = 60;
        let p = RetryPolicy::from(&settings);
        assert_eq!(
            p.next_attempt(Detail::Abandoned, 1, Time(0)),
            Some(Time(72 * 3600 * 1000))
        );
        // The store's default is the 72 h rule itself, not a shorter delay.
        assert_eq!(
            RetryPolicy::default().delay(Detail::Abandoned),
            Some(super::super::answer::NO_RECALL)
        );
        settings.retry_delays_seconds.abandoned = 100 * 3600;
        assert_eq!(
            RetryPolicy::from(&settings).delay(Detail::Abandoned),
            Some(Duration::from_secs(100 * 3600))
        );
    }
}
