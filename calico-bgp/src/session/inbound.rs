//! Back-pressure on what a peer sends: each connection's reader may have at most
//! [`INBOUND_WINDOW`] bytes of messages read and passed on but not yet handled by the
//! speaker. Past that it stops reading the socket, so TCP's own flow control slows the
//! peer down, rather than decoded UPDATEs piling up in memory while the RIB catches up (a
//! full table arrives faster than it is applied).
//!
//! The reader takes a [`ReadCredit`] for each batch of messages it passes on; the credit
//! travels behind the batch's UPDATEs to the speaker task
//! ([`super::io::PeerEvent::Credit`]), which drops it once they are applied, giving the
//! bytes back to the window.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of messages a connection's reader may have passed on and not seen handled.
pub const INBOUND_WINDOW: usize = 512 << 10;

/// The window of one connection's reader.
#[derive(Clone, Debug)]
pub(crate) struct InboundWindow {
    bytes: Arc<Semaphore>,
    size: usize,
}

impl InboundWindow {
    /// A window of `size` bytes (at least one).
    pub(crate) fn new(size: usize) -> InboundWindow {
        let size = size.clamp(1, Semaphore::MAX_PERMITS);
        InboundWindow {
            bytes: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// Waits until `bytes` more (at most the whole window) may be passed on, and takes
    /// them.
    pub(crate) async fn take(&self, bytes: usize) -> ReadCredit {
        let n = u32::try_from(bytes.clamp(1, self.size)).unwrap_or(u32::MAX);
        let permit = self
            .bytes
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the window's semaphore is never closed");
        ReadCredit(permit)
    }

    /// The window's size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Bytes that may be passed on now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

/// Bytes of a batch of messages passed on by a connection's reader, given back to its
/// window when dropped.
#[derive(Debug)]
pub struct ReadCredit(#[allow(dead_code)] OwnedSemaphorePermit);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_window_fills_and_empties_as_credits_come_and_go() {
        let w = InboundWindow::new(100);
        let a = w.take(60).await;
        let b = w.take(40).await;
        assert_eq!(w.available(), 0);
        let waiting = tokio::spawn({
            let w = w.clone();
            async move { w.take(30).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no room until a credit is dropped");
        drop(a);
        let c = waiting.await.unwrap();
        assert_eq!(w.available(), 30);
        drop((b, c));
        assert_eq!(w.available(), 100);
        // A batch larger than the window takes the whole window, not forever.
        let _all = w.take(1_000).await;
        assert_eq!(w.available(), 0);
    }
}
