//! How a call attempt's SIP outcome becomes the contact's status detail, and when (and whether)
//! the contact is tried again.
//!
//! | outcome | detail |
//! |---|---|
//! | 486 Busy Here, 600 Busy Everywhere, 603 Decline | `$busy` |
//! | the dialer's ring timeout (at least 15 s), 480, 408 | `$no_answer` |
//! | 404 Not Found, 484 Address Incomplete, 604 Does Not Exist Anywhere | `$invalid_number` |
//! | 5xx, transaction or transport timeouts, any other failure | `$network_error` |
//! | answered by a person, no agent within 2 s | `$abandoned` |
//!
//! 603, 480 and 408 are not named by the issue: a decline is treated like busy (the person is
//! there but not taking the call), 480/408 like no answer (the far end says nobody picked up).

use super::Time;
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
        CallEnd::Abandoned => Detail::Abandoned,
    }
}

/// The ring timeout to use: the configured one, never below `minimum`.
pub fn ring_timeout(configured: Duration, minimum: Duration) -> Duration {
    configured.max(minimum)
}

/// When to try again after one kind of outcome, and how many attempts in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Wait this long before the next attempt.
    pub delay: Duration,
    /// Attempts in all (the first included); 1 means never retried.
    pub max_attempts: u32,
}

/// Retry rules per outcome (per call task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// After `$busy`.
    pub busy: Retry,
    /// After `$no_answer`.
    pub no_answer: Retry,
    /// After `$invalid_number`.
    pub invalid_number: Retry,
    /// After `$network_error`.
    pub network_error: Retry,
    /// After `$abandoned`; the delay is never below the 72 h no-recall rule.
    pub abandoned: Retry,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let r = |mins: u64, max_attempts| Retry {
            delay: Duration::from_secs(mins * 60),
            max_attempts,
        };
        RetryPolicy {
            busy: r(10, 5),
            no_answer: r(60, 5),
            invalid_number: r(0, 1),
            network_error: r(5, 3),
            abandoned: r(72 * 60, 3),
        }
    }
}

impl RetryPolicy {
    /// The rule for `detail`.
    pub fn rule(&self, detail: Detail) -> Retry {
        match detail {
            Detail::Busy => self.busy,
            Detail::NoAnswer => self.no_answer,
            Detail::InvalidNumber => self.invalid_number,
            Detail::NetworkError => self.network_error,
            Detail::Abandoned => Retry {
                delay: self.abandoned.delay.max(super::answer::NO_RECALL),
                ..self.abandoned
            },
        }
    }

    /// When the contact may be tried next after its `attempts`-th attempt ended with `detail`
    /// at `now`; `None` when it has had all its attempts (the contact fails with that detail).
    pub fn next_attempt(&self, detail: Detail, attempts: u32, now: Time) -> Option<Time> {
        let rule = self.rule(detail);
        (attempts < rule.max_attempts).then(|| now + rule.delay)
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
    fn retries_follow_the_policy_until_attempts_run_out() {
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
            Some(now + Duration::from_secs(300))
        );
    }

    #[test]
    fn abandoned_contacts_wait_72_hours_even_if_configured_shorter() {
        let p = RetryPolicy {
            abandoned: Retry {
                delay: Duration::from_secs(60),
                max_attempts: 3,
            },
            ..RetryPolicy::default()
        };
        assert_eq!(
            p.next_attempt(Detail::Abandoned, 1, Time(0)),
            Some(Time(72 * 3600 * 1000))
        );
    }
}
