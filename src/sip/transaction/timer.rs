//! Transaction timers (RFC 3261 Table 4, RFC 6026 L and M) and the deadline queue.

use super::TransactionKey;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Every timer a transaction can arm, named as in RFC 3261 Table 4 and RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE client: request retransmission (unreliable only), T1 doubling.
    A,
    /// INVITE client: transaction timeout in Calling, 64*T1.
    B,
    /// INVITE client: wait for response retransmissions in Completed (32 s UDP, 0 TCP).
    D,
    /// Non-INVITE client: request retransmission (unreliable only), T1 doubling, capped at T2.
    E,
    /// Non-INVITE client: transaction timeout, 64*T1.
    F,
    /// INVITE server: final response retransmission (unreliable only), T1 doubling capped at
    /// T2; also paces the 2xx retransmission of §13.3.1.4 in Accepted.
    G,
    /// INVITE server: wait for ACK of a non-2xx final, 64*T1.
    H,
    /// INVITE server: absorb ACK retransmissions in Confirmed (T4 UDP, 0 TCP).
    I,
    /// Non-INVITE server: absorb request retransmissions in Completed (64*T1 UDP, 0 TCP).
    J,
    /// Non-INVITE client: absorb response retransmissions in Completed (T4 UDP, 0 TCP).
    K,
    /// INVITE server (RFC 6026): how long Accepted waits for the ACK of a 2xx, 64*T1.
    L,
    /// INVITE client (RFC 6026): how long Accepted forwards 2xx retransmissions, 64*T1.
    M,
}

/// Timer base values (RFC 3261 §17.1.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, 500 ms by default.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: timers B, F, H, J, L, M.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D on unreliable transport: "at least 32 s" (§17.1.1.2), never below 64*T1.
    pub fn timer_d(&self) -> Duration {
        Duration::from_secs(32).max(self.t1x64())
    }
}

/// Position of one armed timer in the queue; lets a transaction disarm it in O(log n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerHandle {
    deadline: Instant,
    seq: u64,
}

/// The timers one transaction has armed (at most one per kind).
pub(crate) type TimerHandleList = Vec<(Timer, TimerHandle)>;

/// All armed timers of the layer ordered by deadline.
///
/// A BTreeMap rather than a heap so a transaction that ends early removes its timers at once:
/// `poll_timeout` is then exact (no stale wake-ups) and nothing outlives its transaction.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    entries: BTreeMap<TimerHandle, (TransactionKey, Timer)>,
    next_seq: u64,
}

impl TimerQueue {
    pub(crate) fn insert(
        &mut self,
        deadline: Instant,
        key: TransactionKey,
        timer: Timer,
    ) -> TimerHandle {
        let handle = TimerHandle {
            deadline,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.entries.insert(handle, (key, timer));
        handle
    }

    pub(crate) fn remove(&mut self, handle: TimerHandle) {
        self.entries.remove(&handle);
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.first_key_value().map(|(h, _)| h.deadline)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TransactionKey, Timer)> {
        let first = self.entries.first_entry()?;
        if first.key().deadline > now {
            return None;
        }
        Some(first.remove())
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
