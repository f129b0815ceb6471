//! Adaptive batching: which requests one reconciliation pass folds together.
//!
//! Requests already queued are always folded in. After a pass that took `T`, requests that
//! arrive within `T` (at most `Timing::max_batch_delay`) of its end are folded together too:
//! a steady feed of single updates is then reconciled in passes that grow with what a pass
//! costs, the engine busy at most about half the time, instead of one pass per update that
//! each rewrites what the last one wrote. An idle agent adds no wait, and a request someone
//! waits on (a flush) ends the wait.

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Command, Engine};

impl Engine {
    /// Takes, after the request that opened the batch, those that arrive before its
    /// deadline (up to `max_batch` in all). Returns false when the engine must stop.
    pub(super) async fn fold(
        &mut self,
        rx: &mut mpsc::Receiver<Command>,
        flushes: &mut Vec<oneshot::Sender<()>>,
        dirty: &mut bool,
    ) -> bool {
        let mut deadline = self.batch_deadline();
        let mut taken = 1;
        while taken < self.timing.max_batch {
            if !flushes.is_empty() {
                // Someone waits: take what is queued, wait for nothing more.
                deadline = Instant::now();
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(cmd)) => {
                    taken += 1;
                    if !self.take(cmd, flushes, dirty) {
                        return false;
                    }
                }
                Ok(None) => return false,
                Err(_) => break,
            }
        }
        true
    }

    /// Until when a batch that starts now folds in more requests: the batch window, or,
    /// when the last pass ended less than its own duration ago (a feed is under way), until
    /// that duration (at most `max_batch_delay`) has passed since it ended.
    fn batch_deadline(&self) -> Instant {
        let window = Instant::now() + self.timing.batch_window;
        match self.last_pass {
            Some((ended, took)) => window.max(ended + took.min(self.timing.max_batch_delay)),
            None => window,
        }
    }
}
