//! The RTP port pool: even ports from the configured range, RTCP on the port above. A port goes
//! to the back of the queue when freed, so a stray packet of the last call rarely reaches the
//! next one. The queue starts at a random place in the range, so daemons (and other programs)
//! sharing a machine do not all fight over its first ports.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

/// Ports tried per allocation before giving up (others may hold some of ours); each try is
/// one failed bind.
const BIND_ATTEMPTS: usize = 256;

/// A shared pool of RTP ports.
#[derive(Clone, Debug)]
pub struct PortPool {
    free: Arc<Mutex<VecDeque<u16>>>,
    size: usize,
}

/// An RTP/RTCP socket pair bound on pool ports.
#[derive(Debug)]
pub struct PortPair {
    /// RTP socket (even port).
    pub rtp: UdpSocket,
    /// RTCP socket (RTP port + 1).
    pub rtcp: UdpSocket,
    /// Holds the port; keep it as long as the sockets.
    pub lease: PortLease,
}

impl PortPair {
    /// The RTP port.
    pub fn port(&self) -> u16 {
        self.lease.port
    }
}

/// A port taken from the pool; it goes back when this is dropped.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    pool: PortPool,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.free.lock() {
            free.push_back(self.port);
        }
    }
}

impl PortPool {
    /// Every even port in `min..=max` whose RTCP port (+1) is in range too.
    pub fn new(min: u16, max: u16) -> Self {
        let pool = Self::sequential(min, max);
        let mut r = [0u8; 4];
        if getrandom::fill(&mut r).is_ok() {
            if let Ok(mut free) = pool.free.lock() {
                let n = free.len().max(1);
                free.rotate_left(u32::from_le_bytes(r) as usize % n);
            }
        }
        pool
    }

    /// The pool with its queue in port order.
    fn sequential(min: u16, max: u16) -> Self {
        let first = min + (min % 2);
        let free: VecDeque<u16> = (first..max).step_by(2).collect();
        let size = free.len();
        Self {
            free: Arc::new(Mutex::new(free)),
            size,
        }
    }

    /// Ports in the pool.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Ports not in use.
    pub fn free(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Binds RTP and RTCP sockets on `ip` at the next free ports. `Ok(None)` when the pool is
    /// empty or every port tried is held by another program; other socket errors (no file
    /// descriptors left, say) are returned as they are, not mistaken for a busy port.
    pub fn bind(&self, ip: IpAddr) -> std::io::Result<Option<PortPair>> {
        for _ in 0..BIND_ATTEMPTS {
            let Some(port) = self.free.lock().ok().and_then(|mut f| f.pop_front()) else {
                return Ok(None);
            };
            let pair = UdpSocket::bind(SocketAddr::new(ip, port)).and_then(|rtp| {
                let rtcp = UdpSocket::bind(SocketAddr::new(ip, port + 1))?;
                rtp.set_nonblocking(true)?;
                rtcp.set_nonblocking(true)?;
                Ok((rtp, rtcp))
            });
            match pair {
                Ok((rtp, rtcp)) => {
                    return Ok(Some(PortPair {
                        rtp,
                        rtcp,
                        lease: PortLease {
                            port,
                            pool: self.clone(),
                        },
                    }))
                }
                Err(e) => {
                    if let Ok(mut free) = self.free.lock() {
                        free.push_back(port);
                    }
                    if e.kind() != std::io::ErrorKind::AddrInUse {
                        return Err(e);
                    }
                    tracing::debug!(port, "rtp port busy; trying another");
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    /// An even port starting `len` ports all free now, picked at random below the kernel's
    /// ephemeral range: other tests running beside these bind ports of their own.
    fn free_block(len: u16) -> u16 {
        loop {
            let mut r = [0u8; 2];
            getrandom::fill(&mut r).unwrap();
            let base = 20_000 + (u16::from_le_bytes(r) % 6_000) * 2;
            let free = (base..base + len).all(|p| UdpSocket::bind((LOCAL, p)).is_ok());
            if free {
                return base;
            }
        }
    }

    #[test]
    fn hands_out_even_ports_with_rtcp_above_and_takes_them_back() {
        let b = free_block(8);
        let pool = PortPool::new(b + 1, b + 7);
        assert_eq!(pool.size(), 3, "b + 2, b + 4, b + 6");
        let a = pool.bind(LOCAL).unwrap().unwrap();
        assert_eq!(a.port() % 2, 0);
        assert_eq!(a.rtp.local_addr().unwrap().port(), a.port());
        assert_eq!(a.rtcp.local_addr().unwrap().port(), a.port() + 1);
        assert_eq!(pool.free(), 2);
        let port = a.port();
        drop(a);
        assert_eq!(pool.free(), 3);
        // A freed port goes to the back of the queue.
        let b = pool.bind(LOCAL).unwrap().unwrap();
        assert_ne!(b.port(), port);
    }

    #[test]
    fn an_empty_pool_says_none() {
        let b = free_block(4);
        let pool = PortPool::new(b, b + 3);
        let a = pool.bind(LOCAL).unwrap().unwrap();
        let b = pool.bind(LOCAL).unwrap().unwrap();
        assert!(pool.bind(LOCAL).unwrap().is_none());
        drop((a, b));
        assert!(pool.bind(LOCAL).unwrap().is_some());
    }

    #[test]
    fn a_pool_whose_first_ports_others_hold_still_finds_a_free_one() {
        // Twenty pairs held by another program, the twenty-first free.
        let b = free_block(44);
        let held: Vec<UdpSocket> = (0..20)
            .filter_map(|i| UdpSocket::bind((LOCAL, b + 2 * i)).ok())
            .collect();
        assert_eq!(held.len(), 20, "test ports taken");
        let pool = PortPool::sequential(b, b + 42);
        let pair = pool
            .bind(LOCAL)
            .unwrap()
            .expect("a free pair past the held ones");
        assert_eq!(pair.port(), b + 40);
    }

    #[test]
    fn pools_start_at_random_places_in_the_range() {
        let firsts: std::collections::HashSet<u16> = (0..8)
            .map(|_| {
                let pool = PortPool::new(42000, 44000);
                let p = pool.free.lock().unwrap()[0];
                p
            })
            .collect();
        assert!(firsts.len() > 1, "{firsts:?}");
    }

    #[test]
    fn ports_held_by_others_are_skipped() {
        let b = free_block(4);
        let squatter = UdpSocket::bind((LOCAL, b)).unwrap();
        let pool = PortPool::new(b, b + 3);
        let pair = pool.bind(LOCAL).unwrap().unwrap();
        assert_eq!(pair.port(), b + 2);
        drop(squatter);
    }
}
