//! The accounting of one connection's send queue: how many bytes were handed to its writer
//! and not written to the socket yet, and whether the queue is stalled (over its limit, the
//! peer reading slower than it is sent to).
//!
//! The queue itself never refuses bytes (a NOTIFICATION or KEEPALIVE must always go out);
//! crossing the limit is reported once, so that the speaker stops handing the peer UPDATEs
//! and sends it the current state of what changed meanwhile once the queue has drained
//! (below a quarter of the limit) — see [`crate::speaker`]. A peer that does not read at
//! all is not dropped for it: its hold timer (our KEEPALIVEs wait in the same queue) or the
//! peer's decides.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The send queue of one connection, shared by the peering task (which fills it) and the
/// connection's writer (which drains it).
#[derive(Debug)]
pub(crate) struct SendQueue {
    bytes: AtomicUsize,
    stalled: AtomicBool,
    limit: usize,
}

impl SendQueue {
    /// An empty queue that stalls beyond `limit` bytes (at least one byte).
    pub(crate) fn new(limit: usize) -> SendQueue {
        SendQueue {
            bytes: AtomicUsize::new(0),
            stalled: AtomicBool::new(false),
            limit: limit.max(1),
        }
    }

    /// Counts `len` bytes handed to the writer; `true` when this made the queue stall.
    pub(crate) fn pushed(&self, len: usize) -> bool {
        let now = self.bytes.fetch_add(len, Ordering::AcqRel) + len;
        now > self.limit && !self.stalled.swap(true, Ordering::AcqRel)
    }

    /// Counts `len` bytes written to the socket; `true` when the queue was stalled and has
    /// now drained enough to take UPDATEs again.
    pub(crate) fn written(&self, len: usize) -> bool {
        let now = self
            .bytes
            .fetch_sub(len, Ordering::AcqRel)
            .saturating_sub(len);
        now <= self.limit / 4
            && self.stalled.load(Ordering::Acquire)
            && self.stalled.swap(false, Ordering::AcqRel)
    }

    /// Bytes queued and not written yet.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossing_the_limit_stalls_once_and_draining_resumes_once() {
        let q = SendQueue::new(100);
        assert!(!q.pushed(60));
        assert!(q.pushed(60), "120 > 100: stalled");
        assert!(!q.pushed(60), "reported once");
        assert_eq!(q.len(), 180);
        assert!(!q.written(60), "120 left: still stalled");
        assert!(!q.written(60), "60 left: above a quarter of the limit");
        assert!(q.written(40), "20 left: resumed");
        assert!(!q.written(20), "reported once");
        assert_eq!(q.len(), 0);
        // And again.
        assert!(q.pushed(101));
        assert!(q.written(101));
    }

    #[test]
    fn a_queue_that_never_stalled_never_resumes() {
        let q = SendQueue::new(100);
        assert!(!q.pushed(50));
        assert!(!q.written(50));
    }
}
