//! How an attempt the campaign core ends is written on its contact: the result (a status
//! detail or the agent's disposition), the contact's status after it and when to call again,
//! and the metric label it counts under. Pure, so each rule is tested here.

use super::AgentResult;
use crate::dialer::campaign::AttemptOutcome;
use crate::dialer::outcome::{Detail, RetryPolicy};
use crate::dialer::Time;
use crate::store::tasks::CallSettings;

/// The result recorded when the agent's wrap-up time ran out.
pub const NO_RESULT: &str = "$no_result";

/// What an attempt writes on its contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    /// `dialerd_dialer_calls_total`'s `result` label.
    pub label: String,
    /// The contact's `last_result` and detail.
    pub result: String,
    /// The contact's status after it.
    pub status: String,
    /// When to call again (Unix ms), for an `open` contact.
    pub follow_up_ms: Option<i64>,
}

/// How `outcome` (with the agent's `result`, if one came) is written on a contact that had
/// `attempts` attempts before it, under the task's `settings`, at `now`.
pub fn disposition(
    outcome: &AttemptOutcome,
    result: Option<&AgentResult>,
    settings: &CallSettings,
    attempts: i64,
    now: Time,
) -> Disposition {
    let policy = RetryPolicy::from(settings);
    let retry = |detail| match policy.next_attempt(detail, attempts as u32 + 1, now) {
        Some(t) => ("open".to_string(), Some(t.0 as i64)),
        None => ("failed".to_string(), None),
    };
    let failed = |d: Detail| {
        let (status, follow_up_ms) = retry(d);
        Disposition {
            label: d.as_str().trim_start_matches('$').to_string(),
            result: d.as_str().to_string(),
            status,
            follow_up_ms,
        }
    };
    match (outcome.detail(), result) {
        (Some(d), _) => failed(d),
        (None, Some(r)) => {
            let follow_up_ms = match (r.status.as_str(), r.follow_up_ms) {
                ("open", Some(t)) => Some(t),
                ("open", None) => {
                    Some(now.0 as i64 + i64::from(settings.retry_delays_seconds.no_answer) * 1000)
                }
                _ => None,
            };
            Disposition {
                label: "connected".into(),
                result: r.detail.clone(),
                status: r.status.clone(),
                follow_up_ms,
            }
        }
        // The wrap-up ran out: called again like an unanswered call, until `max_attempts`.
        (None, None) => {
            let (status, follow_up_ms) = retry(Detail::NoAnswer);
            Disposition {
                label: "no_result".into(),
                result: NO_RESULT.into(),
                status,
                follow_up_ms,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialer::outcome::CallEnd;
    use crate::dialer::AgentId;

    const NOW: Time = Time(1_000_000);

    fn connected() -> AttemptOutcome {
        AttemptOutcome::Connected {
            agent: AgentId(0),
            result: None,
        }
    }

    fn result(status: &str, follow_up_ms: Option<i64>) -> AgentResult {
        AgentResult {
            owner: None,
            status: status.into(),
            detail: "sale".into(),
            follow_up_ms,
            fields: Default::default(),
            actor: "ann".into(),
        }
    }

    #[test]
    fn failed_calls_follow_the_tasks_retry_rule() {
        let s = CallSettings::default();
        let busy = AttemptOutcome::NotAnswered(CallEnd::Rejected(486));
        let d = disposition(&busy, None, &s, 0, NOW);
        assert_eq!((d.label.as_str(), d.result.as_str()), ("busy", "$busy"));
        assert_eq!(d.status, "open");
        assert_eq!(d.follow_up_ms, Some(NOW.0 as i64 + 600_000));
        // The last attempt allowed: the contact fails with the detail.
        let d = disposition(&busy, None, &s, i64::from(s.max_attempts) - 1, NOW);
        assert_eq!((d.status.as_str(), d.follow_up_ms), ("failed", None));
        // A number that does not exist is not tried again.
        let gone = AttemptOutcome::NotAnswered(CallEnd::Rejected(404));
        let d = disposition(&gone, None, &s, 0, NOW);
        assert_eq!(
            (d.result.as_str(), d.status.as_str()),
            ("$invalid_number", "failed")
        );
        // Abandoned: not again for 72 h.
        let d = disposition(&AttemptOutcome::Abandoned, None, &s, 0, NOW);
        assert_eq!(d.result, "$abandoned");
        assert_eq!(d.follow_up_ms, Some(NOW.0 as i64 + 72 * 3600 * 1000));
    }

    #[test]
    fn an_agents_result_is_written_as_given() {
        let s = CallSettings::default();
        let d = disposition(&connected(), Some(&result("success", None)), &s, 0, NOW);
        assert_eq!(
            d,
            Disposition {
                label: "connected".into(),
                result: "sale".into(),
                status: "success".into(),
                follow_up_ms: None,
            }
        );
        let d = disposition(&connected(), Some(&result("open", Some(42))), &s, 0, NOW);
        assert_eq!((d.status.as_str(), d.follow_up_ms), ("open", Some(42)));
        // `auto`: the no-answer delay.
        let d = disposition(&connected(), Some(&result("open", None)), &s, 0, NOW);
        assert_eq!(d.follow_up_ms, Some(NOW.0 as i64 + 3_600_000));
    }

    #[test]
    fn no_result_in_time_is_no_result_called_again_later() {
        let s = CallSettings::default();
        let d = disposition(&connected(), None, &s, 0, NOW);
        assert_eq!(
            (d.label.as_str(), d.result.as_str()),
            ("no_result", NO_RESULT)
        );
        assert_eq!(d.status, "open");
        assert_eq!(d.follow_up_ms, Some(NOW.0 as i64 + 3_600_000));
    }
}
