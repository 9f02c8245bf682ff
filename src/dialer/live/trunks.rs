//! What the trunks can take: the driver leases no more contacts than the trunks that are up
//! have free lines for (none while every trunk is down), and its core paces to the trunks'
//! calls per second together.

use crate::sip::endpoint::TrunkView;
use crate::sip::trunk::TrunkStatus;

/// The trunks as the endpoint last showed them, and their `max_cps` together.
#[derive(Clone, Default)]
pub struct TrunkRoom {
    view: Option<TrunkView>,
    max_cps: Option<f64>,
}

impl TrunkRoom {
    /// The room of the trunks shown in `view`, which take `max_cps` calls per second together.
    pub fn new(view: TrunkView, max_cps: f64) -> Self {
        Self {
            view: Some(view),
            max_cps: Some(max_cps),
        }
    }

    /// Calls the trunks that are up can take now; unbounded without trunks known.
    pub fn free_lines(&self) -> u32 {
        let Some(view) = &self.view else {
            return u32::MAX;
        };
        let trunks = view.read().map(|v| v.clone()).unwrap_or_default();
        free_lines(&trunks)
    }

    /// The calls per second a campaign core may place, if the trunks limit it.
    pub fn max_cps(&self) -> Option<f64> {
        self.max_cps
    }
}

/// Free lines of the trunks that are up (resolved, answering their keepalives).
pub fn free_lines(trunks: &[TrunkStatus]) -> u32 {
    trunks
        .iter()
        .filter(|t| t.state == "up" && t.address.is_some())
        .map(|t| t.max_calls.saturating_sub(t.active_calls))
        .fold(0u32, u32::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(state: &'static str, active: u32, max: u32) -> TrunkStatus {
        TrunkStatus {
            name: "t".into(),
            proxy: "127.0.0.1:5060".into(),
            address: Some("127.0.0.1:5060".parse().unwrap()),
            state,
            registered: false,
            active_calls: active,
            max_calls: max,
            failed_keepalives: 0,
        }
    }

    #[test]
    fn only_trunks_that_are_up_have_free_lines() {
        assert_eq!(free_lines(&[]), 0);
        assert_eq!(free_lines(&[trunk("down", 0, 10)]), 0);
        assert_eq!(free_lines(&[trunk("up", 3, 10), trunk("down", 0, 10)]), 7);
        assert_eq!(free_lines(&[trunk("up", 12, 10), trunk("up", 1, 2)]), 1);
    }
}
