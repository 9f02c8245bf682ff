//! An in-process datagram link between a media leg and the driver in this process that feeds
//! it (a browser leg's WebRTC stack), in place of a loopback socket pair: a packet crosses as
//! one copy into a buffer the link reuses — no syscall, no port, no readiness event, and no
//! allocation once warm. Like a UDP socket it drops what its reader leaves unread past
//! [`CAPACITY`].

use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

/// Packets that may wait unread in one direction (about a second of 20 ms frames); more are
/// dropped, as a full socket buffer drops them.
pub const CAPACITY: usize = 64;

/// The address a piped leg's SDP and RTP session give both ends (the discard port on
/// loopback): nothing is bound to it and nothing is sent to it.
pub const ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9));

/// One end of a link: sends to the other end, receives what the other end sent.
pub struct PipeEnd {
    inbox: Arc<Mutex<Queue>>,
    outbox: Arc<Mutex<Queue>>,
}

/// One direction's packets.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<Vec<u8>>,
    /// Buffers of packets already read, reused for the next ones.
    spare: Vec<Vec<u8>>,
    /// The reader waiting for a packet, woken by the next send.
    reader: Option<Waker>,
}

/// A new link: its two ends.
pub fn pair() -> (PipeEnd, PipeEnd) {
    let (a, b) = (Arc::default(), Arc::default());
    (
        PipeEnd {
            inbox: Arc::clone(&a),
            outbox: Arc::clone(&b),
        },
        PipeEnd {
            inbox: b,
            outbox: a,
        },
    )
}

/// A poisoned lock only means a panic elsewhere mid-copy; the queue itself stays consistent.
fn lock(q: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    q.lock().unwrap_or_else(|e| e.into_inner())
}

impl PipeEnd {
    /// Hands `datagram` to the other end; dropped when [`CAPACITY`] packets wait unread.
    pub fn send(&self, datagram: &[u8]) {
        let reader = {
            let mut q = lock(&self.outbox);
            if q.waiting.len() >= CAPACITY {
                return;
            }
            let mut buf = q.spare.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(datagram);
            q.waiting.push_back(buf);
            q.reader.take()
        };
        // Woken outside the lock: the reader's first act is to take it.
        if let Some(w) = reader {
            w.wake();
        }
    }

    /// Reads the oldest waiting packet into `buf` (cut to its length): the packet's length, or
    /// `None` when none waits.
    pub fn try_recv(&self, buf: &mut [u8]) -> Option<usize> {
        let mut q = lock(&self.inbox);
        let packet = q.waiting.pop_front()?;
        let n = packet.len().min(buf.len());
        buf[..n].copy_from_slice(&packet[..n]);
        q.spare.push(packet);
        Some(n)
    }

    /// Waits until a packet waits to be read.
    pub async fn readable(&self) {
        poll_fn(|cx| {
            let mut q = lock(&self.inbox);
            if q.waiting.is_empty() {
                if !q.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    q.reader = Some(cx.waker().clone());
                }
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn packets_cross_both_ways_in_order_and_a_full_direction_drops() {
        let (leg, driver) = pair();
        let mut buf = [0u8; 8];
        assert_eq!(leg.try_recv(&mut buf), None);
        driver.send(&[1, 2, 3]);
        driver.send(&[4]);
        leg.send(&[9; 20]);
        assert_eq!(leg.try_recv(&mut buf), Some(3));
        assert_eq!(buf[..3], [1, 2, 3]);
        assert_eq!(leg.try_recv(&mut buf), Some(1));
        assert_eq!(buf[0], 4);
        assert_eq!(leg.try_recv(&mut buf), None);
        // Longer than the reader's buffer: cut, as a datagram read is.
        assert_eq!(driver.try_recv(&mut buf), Some(8));
        assert_eq!(driver.try_recv(&mut buf), None);

        for i in 0..CAPACITY + 10 {
            driver.send(&[i as u8]);
        }
        let mut got = Vec::new();
        while let Some(n) = leg.try_recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        assert_eq!(
            got.len(),
            CAPACITY,
            "the packets past the capacity are dropped"
        );
        assert_eq!(got.last(), Some(&vec![CAPACITY as u8 - 1]));
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_a_send_from_another_task() {
        let (leg, driver) = pair();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 4];
            let mut got = Vec::new();
            while got.len() < 3 {
                leg.readable().await;
                while let Some(n) = leg.try_recv(&mut buf) {
                    got.push(buf[..n].to_vec());
                }
            }
            got
        });
        for i in 0..3u8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            driver.send(&[i]);
        }
        let got = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the reader was woken")
            .unwrap();
        assert_eq!(got, vec![vec![0], vec![1], vec![2]]);
    }
}
