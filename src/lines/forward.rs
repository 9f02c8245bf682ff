//! Verification by forwarding: calls to the access number matched to the verification that
//! is waiting for them — by the line's number in Diversion or History-Info, else by the
//! caller ID (from a configured pool) the verification call showed.

use crate::sip::leg::Incoming;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The digits of a number or header value (`+49 (30) 1234` → `49301234`).
fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// True when `call` is the forwarded return of a verification call to `number` shown with
/// `caller_id`.
pub fn matches(call: &Incoming, number: &str, caller_id: Option<&str>) -> bool {
    let want = digits(number);
    let diverted = call.headers.iter().any(|(name, value)| {
        let name = name.to_ascii_lowercase();
        (name == "diversion" || name == "history-info")
            && value
                .split([',', ';', '<', '>', '@', ':'])
                .any(|part| !want.is_empty() && digits(part).ends_with(&want))
    });
    diverted || caller_id.is_some_and(|c| !c.is_empty() && digits(&call.from_user) == digits(c))
}

struct Waiting {
    number: String,
    caller_id: Option<String>,
    tx: oneshot::Sender<Incoming>,
}

/// The forward verifications waiting for their call to come back.
#[derive(Clone, Default)]
pub struct Forwards(Arc<Mutex<Vec<Waiting>>>);

impl Forwards {
    /// Waits for the return of a call to `number`. The call is to show a caller ID from
    /// `pool` that no other waiting verification uses (chosen under the lock, so two cannot
    /// take the same), else `fallback`: the one chosen, and the receiver of the returning call.
    pub fn expect(
        &self,
        number: &str,
        pool: &[String],
        fallback: Option<String>,
    ) -> (Option<String>, oneshot::Receiver<Incoming>) {
        let (tx, rx) = oneshot::channel();
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        w.retain(|x| !x.tx.is_closed());
        let caller_id = pool
            .iter()
            .find(|c| !w.iter().any(|x| x.caller_id.as_ref() == Some(*c)))
            .cloned()
            .or(fallback);
        w.push(Waiting {
            number: number.to_string(),
            caller_id: caller_id.clone(),
            tx,
        });
        (caller_id, rx)
    }

    /// Hands a call to the access number to the verification it returns for; gives it back
    /// when none matches.
    pub fn offer(&self, call: Incoming) -> Option<Incoming> {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        w.retain(|x| !x.tx.is_closed());
        let Some(i) = w
            .iter()
            .position(|x| matches(&call, &x.number, x.caller_id.as_deref()))
        else {
            return Some(call);
        };
        w.swap_remove(i).tx.send(call).err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::leg::{Leg, LegId};

    fn call(from: &str, headers: &[(&str, &str)]) -> Incoming {
        let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Incoming {
            leg: Leg {
                id: LegId(1),
                events: rx,
            },
            to_user: "4930999".into(),
            from_user: from.into(),
            from: format!("<sip:{from}@carrier>"),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            sdp: Vec::new(),
            source: "127.0.0.1:5060".parse().unwrap(),
            local_ip: "127.0.0.1".parse().unwrap(),
            media_encryption: Default::default(),
            trunk: None,
            behind_nat: false,
            from_cluster_proxy: false,
        }
    }

    #[test]
    fn matched_by_diversion_or_history_info_or_pool_caller_id() {
        let n = "+4930123456";
        let div = call(
            "anonymous",
            &[(
                "Diversion",
                "<sip:+4930123456@carrier.example>;reason=unconditional",
            )],
        );
        assert!(matches(&div, n, None));
        let hi = call(
            "anonymous",
            &[("History-Info", "<sip:004930123456@pbx;user=phone>;index=1")],
        );
        assert!(
            matches(&hi, n, None),
            "national/international prefixes differ"
        );
        let pool = call("+4930555001", &[]);
        assert!(matches(&pool, n, Some("+49 30 555001")));
        assert!(!matches(&pool, n, Some("+4930555002")));
        let other = call("+4930777", &[("Diversion", "<sip:+4930999888@x>")]);
        assert!(!matches(&other, n, None));
    }

    #[test]
    fn an_offered_call_reaches_its_waiter_once_and_strangers_come_back() {
        let f = Forwards::default();
        let pool = ["+4930555001".to_string(), "+4930555002".to_string()];
        let (first, mut rx) = f.expect("+4930123456", &pool, None);
        assert_eq!(first.as_deref(), Some("+4930555001"));
        let (second, _rx2) = f.expect("+4930123457", &pool, None);
        assert_eq!(
            second.as_deref(),
            Some("+4930555002"),
            "a pool number is used once"
        );
        let (third, _rx3) = f.expect("+4930123458", &pool, Some("+4930999".into()));
        assert_eq!(
            third.as_deref(),
            Some("+4930999"),
            "pool used up: the fallback"
        );
        assert!(
            f.offer(call("+4930777", &[])).is_some(),
            "a stranger is no match"
        );
        assert!(f.offer(call("+4930555001", &[])).is_none());
        assert!(rx.try_recv().is_ok());
        assert!(
            f.offer(call("+4930555001", &[])).is_some(),
            "matched once only"
        );
    }
}
