//! Caps on inbound TCP connections, total and per source IP, so a connection flood cannot take
//! every file descriptor the HTTP listener, RTP sockets and the store also need.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `sip.tcp_max_connections` reached.
    Total,
    /// `sip.tcp_max_connections_per_source` reached for this IP.
    PerSource,
}

impl Refused {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerSource => "per_source",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// Counts open inbound connections; a [`Permit`] holds one slot until dropped.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_source: usize,
    counts: Arc<Mutex<Counts>>,
}

/// One open connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    source: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl ConnectionLimits {
    /// Limits of `max_total` connections, `max_per_source` from one IP.
    pub fn new(max_total: usize, max_per_source: usize) -> Self {
        Self {
            max_total,
            max_per_source,
            counts: Arc::default(),
        }
    }

    /// A slot for a connection from `source`, or why there is none.
    pub fn admit(&self, source: IpAddr) -> Result<Permit, Refused> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.max_total {
            return Err(Refused::Total);
        }
        let n = c.by_source.entry(source).or_insert(0);
        if *n >= self.max_per_source {
            return Err(Refused::PerSource);
        }
        *n += 1;
        c.total += 1;
        Ok(Permit {
            source,
            counts: self.counts.clone(),
        })
    }

    /// Open inbound connections.
    pub fn open(&self) -> usize {
        self.counts.lock().map(|c| c.total).unwrap_or(0)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if let Some(n) = c.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                c.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_slots_come_back() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = limits.admit(a).unwrap();
        let _p2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refused::PerSource);
        let _p3 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refused::Total);
        assert_eq!(limits.open(), 3);
        drop(p1);
        assert_eq!(limits.open(), 2);
        assert!(limits.admit(a).is_ok(), "a freed slot is usable again");
    }
}
